/* bluesky: Bluesky (AT Protocol) sessions: accessJwt ~2 h, rotating refreshJwt, app password fallback. */
#include "platforms/registry.h"

const struct platform platform_bluesky = {
    .name = "bluesky",
    .schedule =
        {
            .kind = REFRESH_SESSION,
            .refresh_lead_ms = 10 * POLICY_MS_PER_MINUTE,
            .warn_lead_ms = 2 * POLICY_MS_PER_MINUTE,
            .reauth_warn_lead_ms = 7 * POLICY_MS_PER_DAY,
            .jitter_ms = 1 * POLICY_MS_PER_MINUTE,
        },
    .default_access_lifetime_ms = 2 * POLICY_MS_PER_HOUR,
};
