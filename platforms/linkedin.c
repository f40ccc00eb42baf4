/* linkedin: LinkedIn: 60-day tokens, no refresh unless the app is an approved partner. */
#include "platforms/oauth.h"
#include "platforms/registry.h"

#define LINKEDIN_BASE "https://www.linkedin.com"

static const struct oauth_refresh_grant refresh_grant = {
    .default_base = LINKEDIN_BASE,
    .path = "/oauth/v2/accessToken",
    .id_field = "client_id",
    .secret_field = "client_secret",
};

static const char *const dead_errors[] = {"invalid_request", "invalid_grant", NULL};

static const struct oauth_dialect dialect = {
    .dead_errors = dead_errors,
    .tokens = {.access = "access_token",
               .access_ttl = "expires_in",
               .refresh = "refresh_token",
               .refresh_ttl = "refresh_token_expires_in"},
};

OAUTH_REFRESH_PLATFORM(refresh_grant, dialect)

const struct platform platform_linkedin = {
    .name = "linkedin",
    .schedule =
        {
            .kind = REFRESH_GRANT,
            .refresh_lead_ms = 24 * POLICY_MS_PER_HOUR,
            .warn_lead_ms = 6 * POLICY_MS_PER_HOUR,
            .reauth_warn_lead_ms = 7 * POLICY_MS_PER_DAY,
            .jitter_ms = 1 * POLICY_MS_PER_HOUR,
        },
    .default_access_lifetime_ms = 60 * POLICY_MS_PER_DAY,
    .default_base_url = LINKEDIN_BASE,
    .build_request = build_request,
    .parse_response = parse_response,
};
