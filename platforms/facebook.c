/* facebook: Facebook: user tokens exchanged short -> long and re-exchanged; Page tokens (no expiry) checked daily. */
#include "platforms/registry.h"

const struct platform platform_facebook = {
    .name = "facebook",
    .schedule =
        {
            .kind = REFRESH_SELF,
            .refresh_lead_ms = 14 * POLICY_MS_PER_DAY,
            .warn_lead_ms = 7 * POLICY_MS_PER_DAY,
            .reauth_warn_lead_ms = 7 * POLICY_MS_PER_DAY,
            .check_interval_ms = 24 * POLICY_MS_PER_HOUR,
            .jitter_ms = 6 * POLICY_MS_PER_HOUR,
            .exchange = true,
        },
    .default_access_lifetime_ms = 60 * POLICY_MS_PER_DAY,
};
