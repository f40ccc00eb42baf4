/* tiktok: TikTok: 24 h (or 2 h) access tokens, rotating refresh tokens. */
#include "platforms/registry.h"

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
};
