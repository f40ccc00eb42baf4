/* pinterest: Pinterest v5: 30-day access tokens, rotating 60-day continuous refresh tokens. */
#include "platforms/registry.h"

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
};
