/* youtube: YouTube (Google OAuth): 1-hour access tokens, refresh token does not rotate. */
#include "platforms/registry.h"

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
};
