/* tiktok: TikTok: 24 h (or 2 h) access tokens, rotating refresh tokens. */
#include "platforms/oauth.h"
#include "platforms/registry.h"

#define TIKTOK_BASE "https://open.tiktokapis.com"

static const struct oauth_refresh_grant refresh_grant = {
    .default_base = TIKTOK_BASE,
    .path = "/v2/oauth/token/",
    .id_field = "client_key",
    .secret_field = "client_secret",
};

static const char *const dead_errors[] = {"invalid_grant", NULL};

static const struct oauth_dialect dialect = {
    .dead_errors = dead_errors,
    .tokens = {.access = "access_token",
               .access_ttl = "expires_in",
               .refresh = "refresh_token",
               .refresh_ttl = "refresh_expires_in"},
};

OAUTH_REFRESH_PLATFORM(refresh_grant, dialect)

const struct platform platform_tiktok = {
    .name = "tiktok",
    .schedule =
        {
            .kind = REFRESH_GRANT,
            .refresh_lead_ms = 30 * POLICY_MS_PER_MINUTE,
            .refresh_lead_divisor = 4,
            .warn_lead_ms = 5 * POLICY_MS_PER_MINUTE,
            .reauth_warn_lead_ms = 7 * POLICY_MS_PER_DAY,
            .jitter_ms = 1 * POLICY_MS_PER_MINUTE,
        },
    .default_access_lifetime_ms = 24 * POLICY_MS_PER_HOUR,
    .default_base_url = TIKTOK_BASE,
    .build_request = build_request,
    .parse_response = parse_response,
};
