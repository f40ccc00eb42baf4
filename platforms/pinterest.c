/* pinterest: Pinterest v5: 30-day access tokens, rotating 60-day continuous refresh tokens. */
#include "platforms/oauth.h"
#include "platforms/registry.h"

#define PINTEREST_BASE "https://api.pinterest.com"

static const struct oauth_refresh_grant refresh_grant = {
    .default_base = PINTEREST_BASE,
    .path = "/v5/oauth/token",
    .basic = OAUTH_BASIC_ALWAYS,
};

/* {"code":int,"message":str} (standard OAuth fields accepted too): on the
 * refresh grant, 400 and 401 mean the grant is dead. */
static enum platform_verdict pinterest_error(struct oauth_ctx *ctx)
{
	long status = ctx->resp->status;
	if (!oauth_error_fields(ctx, ctx->root, "code", "message") &&
	    !oauth_error_code(ctx, "error_description"))
		return VERDICT_MALFORMED;
	return status == 400 || status == 401 ? VERDICT_DEAD : VERDICT_TRANSIENT;
}

static const struct oauth_dialect dialect = {
    .error_key = "code",
    .tokens = {.access = "access_token",
               .access_ttl = "expires_in",
               .refresh = "refresh_token",
               .refresh_ttl = "refresh_token_expires_in",
               .refresh_at = "refresh_token_expires_at"},
    .error = pinterest_error,
};

OAUTH_REFRESH_PLATFORM(refresh_grant, dialect)

const struct platform platform_pinterest = {
    .name = "pinterest",
    .schedule =
        {
            .kind = REFRESH_GRANT,
            .refresh_lead_ms = 24 * POLICY_MS_PER_HOUR,
            .warn_lead_ms = 6 * POLICY_MS_PER_HOUR,
            .reauth_warn_lead_ms = 7 * POLICY_MS_PER_DAY,
            .jitter_ms = 1 * POLICY_MS_PER_HOUR,
        },
    .default_access_lifetime_ms = 30 * POLICY_MS_PER_DAY,
    .default_base_url = PINTEREST_BASE,
    .build_request = build_request,
    .parse_response = parse_response,
};
