/* x: X (Twitter) OAuth 2.0: 2-hour access tokens, single-use rotating refresh tokens. */
#include "platforms/oauth.h"
#include "platforms/registry.h"

#define X_BASE "https://api.x.com"

/* Confidential clients authenticate with Basic; public ones only name themselves. */
static const struct oauth_refresh_grant refresh_grant = {
    .default_base = X_BASE,
    .path = "/2/oauth2/token",
    .id_field = "client_id",
    .basic = OAUTH_BASIC_IF_SECRET,
};

/* A spent or revoked refresh token is a 400 invalid_request (3rd party). */
static const char *const dead_errors[] = {"invalid_request", "invalid_grant", NULL};

/* OAuth errors, or the API's {"errors":[{"code":88,"message":...}]} (429). */
static enum platform_verdict x_error(struct oauth_ctx *ctx)
{
	json_t *first = json_array_get(oauth_member(ctx->root, "errors"), 0);
	if (!oauth_member(ctx->root, "error") && oauth_error_fields(ctx, first, "code", "message"))
		return VERDICT_TRANSIENT;
	return oauth_standard_error(ctx, dead_errors);
}

static const struct oauth_dialect dialect = {
    .tokens = {.access = "access_token", .access_ttl = "expires_in", .refresh = "refresh_token"},
    .error = x_error,
};

OAUTH_REFRESH_PLATFORM(refresh_grant, dialect)

const struct platform platform_x = {
    .name = "x",
    .schedule =
        {
            .kind = REFRESH_GRANT,
            .refresh_lead_ms = 5 * POLICY_MS_PER_MINUTE,
            .warn_lead_ms = 2 * POLICY_MS_PER_MINUTE,
            .reauth_warn_lead_ms = 7 * POLICY_MS_PER_DAY,
            .jitter_ms = 1 * POLICY_MS_PER_MINUTE,
        },
    .default_access_lifetime_ms = 2 * POLICY_MS_PER_HOUR,
    .default_base_url = X_BASE,
    .build_request = build_request,
    .parse_response = parse_response,
};
