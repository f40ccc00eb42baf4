/* bluesky: Bluesky (AT Protocol) sessions: accessJwt ~2 h, rotating refreshJwt, app password
 * fallback. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "platforms/jwt.h"
#include "platforms/oauth.h"
#include "platforms/registry.h"

#define BLUESKY_BASE "https://bsky.social"

/* Step 0 with a refresh token refreshes the session; otherwise (step 0
 * without one, or step 1 after a dead refreshJwt) a new session is created
 * from the app password. */
static bool refreshing(const struct platform_grant *grant)
{
	return grant->step == 0 && !secret_empty(grant->refresh_token);
}

static int build_create(const struct platform_client *client, const struct platform_grant *grant,
                        struct platform_request *out, char *err, size_t errlen)
{
	const char *password =
	    oauth_need(grant->app_password,
	               grant->step ? "app password" : "refresh token or app password", err, errlen);
	if (!password)
		return -1;
	if (!grant->external_id || !grant->external_id[0]) {
		snprintf(err, errlen, "no identifier");
		return -1;
	}
	const struct oauth_param body[] = {{"identifier", grant->external_id},
	                                   {"password", password}};
	return oauth_post_json(out, oauth_base(client, BLUESKY_BASE),
	                       "/xrpc/com.atproto.server.createSession", body, OAUTH_COUNT(body),
	                       err, errlen);
}

static int build_request(const struct platform_client *client, const struct platform_grant *grant,
                         struct platform_request *out, char *err, size_t errlen)
{
	if (grant->step < 0 || grant->step > 1) {
		snprintf(err, errlen, "no step %d", grant->step);
		return -1;
	}
	if (!refreshing(grant))
		return build_create(client, grant, out, err, errlen);
	if (oauth_post_empty(out, oauth_base(client, BLUESKY_BASE),
	                     "/xrpc/com.atproto.server.refreshSession", err, errlen) != 0)
		return -1;
	return oauth_bearer_auth(out, oauth_text(grant->refresh_token), err, errlen);
}

/* A JWT member into dst and its exp into *expires_at_ms (left 0 without exp). */
static int take_jwt(struct oauth_ctx *ctx, const char *key, bool required, struct secret *dst,
                    int64_t *expires_at_ms)
{
	char why[64];
	int64_t exp_s = 0;
	if (oauth_take_token(ctx, key, required, dst) != 0)
		return -1;
	if (secret_empty(dst))
		return 0;
	if (jwt_exp((const char *)dst->data, dst->len, &exp_s, why, sizeof(why)) != 0) {
		oauth_malformed(ctx, "%s: %s", key, why);
		return -1;
	}
	if (exp_s && oauth_check_expiry(ctx, key, exp_s * 1000) != 0)
		return -1;
	*expires_at_ms = exp_s * 1000;
	return 0;
}

static void session_success(struct oauth_ctx *ctx)
{
	struct platform_result *out = ctx->out;
	if (take_jwt(ctx, "accessJwt", true, &out->access_token, &out->access_expires_at_ms) ||
	    take_jwt(ctx, "refreshJwt", false, &out->refresh_token, &out->refresh_expires_at_ms))
		return;
	out->verdict = VERDICT_OK;
}

/* Errors of refreshSession that mean the refreshJwt is dead. */
static const char *const dead_refresh[] = {"ExpiredToken", "InvalidToken", NULL};

/* XRPC errors {"error","message"}. A takedown is dead; a dead refreshJwt
 * moves on to the app password when there is one; a wrong app password
 * (createSession's AuthenticationRequired) is dead. */
static enum platform_verdict session_error(struct oauth_ctx *ctx)
{
	const char *code = oauth_error_code(ctx, "message");
	if (!code)
		return VERDICT_MALFORMED;
	if (strcmp(code, "AccountTakedown") == 0)
		return VERDICT_DEAD;
	if (!refreshing(ctx->grant)) {
		bool wrong_password = strcmp(code, "AuthenticationRequired") == 0;
		return wrong_password ? VERDICT_DEAD : VERDICT_TRANSIENT;
	}
	if (!oauth_in_list(code, dead_refresh))
		return VERDICT_TRANSIENT;
	return secret_empty(ctx->grant->app_password) ? VERDICT_DEAD : VERDICT_NEXT_STEP;
}

static const struct oauth_dialect dialect = {
    .tokens = {.access = "accessJwt"},
    .success = session_success,
    .error = session_error,
};

static void parse_response(const struct platform_grant *grant, const struct platform_response *resp,
                           struct platform_result *out)
{
	oauth_parse(&dialect, grant, resp, out);
}

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
    .default_base_url = BLUESKY_BASE,
    .build_request = build_request,
    .parse_response = parse_response,
};
