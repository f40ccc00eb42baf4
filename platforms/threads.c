/* threads: Threads: short-lived token exchanged once, long-lived 60-day token refreshes itself. */
#include "platforms/graph.h"
#include "platforms/registry.h"

#define THREADS_BASE "https://graph.threads.net"

static const struct graph_self_refresh endpoints = {
    .default_base = THREADS_BASE,
    .exchange_grant = "th_exchange_token",
    .refresh_grant = "th_refresh_token",
};

static int build_request(const struct platform_client *client, const struct platform_grant *grant,
                         struct platform_request *out, char *err, size_t errlen)
{
	return graph_build_self_refresh(&endpoints, client, grant, out, err, errlen);
}

const struct platform platform_threads = {
    .name = "threads",
    .schedule =
        {
            .kind = REFRESH_SELF,
            .refresh_lead_ms = 14 * POLICY_MS_PER_DAY,
            .warn_lead_ms = 7 * POLICY_MS_PER_DAY,
            .reauth_warn_lead_ms = 7 * POLICY_MS_PER_DAY,
            .min_token_age_ms = 24 * POLICY_MS_PER_HOUR,
            .jitter_ms = 6 * POLICY_MS_PER_HOUR,
            .exchange = true,
        },
    .default_access_lifetime_ms = 60 * POLICY_MS_PER_DAY,
    .default_base_url = THREADS_BASE,
    .build_request = build_request,
    .parse_response = graph_parse_tokens,
};
