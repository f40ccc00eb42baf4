/* youtube: YouTube (Google OAuth): 1-hour access tokens, refresh token does not rotate. */
#include "platforms/oauth.h"
#include "platforms/registry.h"

#define GOOGLE_BASE "https://oauth2.googleapis.com"

static const struct oauth_refresh_grant refresh_grant = {
    .default_base = GOOGLE_BASE,
    .path = "/token",
    .id_field = "client_id",
    .secret_field = "client_secret",
};

static const char *const dead_errors[] = {"invalid_grant", NULL};

static const struct oauth_dialect dialect = {
    .dead_errors = dead_errors,
    .tokens = {.access = "access_token", .access_ttl = "expires_in", .refresh = "refresh_token"},
};

OAUTH_REFRESH_PLATFORM(refresh_grant, dialect)

const struct platform platform_youtube = {
    .name = "youtube",
    .schedule =
        {
            .kind = REFRESH_GRANT,
            .refresh_lead_ms = 5 * POLICY_MS_PER_MINUTE,
            .warn_lead_ms = 2 * POLICY_MS_PER_MINUTE,
            .reauth_warn_lead_ms = 7 * POLICY_MS_PER_DAY,
            .jitter_ms = 1 * POLICY_MS_PER_MINUTE,
        },
    .default_access_lifetime_ms = 1 * POLICY_MS_PER_HOUR,
    .default_base_url = GOOGLE_BASE,
    .build_request = build_request,
    .parse_response = parse_response,
};
