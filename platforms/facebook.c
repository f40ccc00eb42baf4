/* facebook: Facebook: user tokens exchanged short -> long and re-exchanged; Page tokens (no expiry)
 * checked daily. */
#include <stdbool.h>
#include <stdio.h>

#include "platforms/graph.h"
#include "platforms/registry.h"

#define FACEBOOK_BASE "https://graph.facebook.com/v21.0"

/* A user token, short or long-lived, exchanged for a (new) long-lived one. */
static int build_exchange(const struct platform_client *client, const char *token,
                          struct platform_request *out, char *err, size_t errlen)
{
	const struct oauth_param query[] = {
	    {"grant_type", "fb_exchange_token"},
	    {"client_id", client->client_id},
	    {"client_secret", oauth_text(client->client_secret)},
	    {"fb_exchange_token", token},
	};
	return oauth_get(out, oauth_base(client, FACEBOOK_BASE), "/oauth/access_token", query,
	                 OAUTH_COUNT(query), err, errlen);
}

/* The validity check of a Page token, with the app token client_id|secret. */
static int build_check(const struct platform_client *client, const char *token,
                       struct platform_request *out, char *err, size_t errlen)
{
	char *app_token = oauth_concat(client->client_id ? client->client_id : "", "|",
	                               oauth_text(client->client_secret));
	if (!app_token) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	const struct oauth_param query[] = {{"input_token", token}, {"access_token", app_token}};
	int rc = oauth_get(out, oauth_base(client, FACEBOOK_BASE), "/debug_token", query,
	                   OAUTH_COUNT(query), err, errlen);
	oauth_free_text(app_token);
	return rc;
}

static int build_request(const struct platform_client *client, const struct platform_grant *grant,
                         struct platform_request *out, char *err, size_t errlen)
{
	bool check = grant->action == ACTION_CHECK;
	const char *token =
	    oauth_need(grant->access_token, check ? "page token" : "user token", err, errlen);
	if (!token)
		return -1;
	return check ? build_check(client, token, out, err, errlen)
	             : build_exchange(client, token, out, err, errlen);
}

/* debug_token answered: data.is_valid says whether the Page token still works. */
static void check_success(struct oauth_ctx *ctx)
{
	json_t *data = oauth_member(ctx->root, "data");
	json_t *valid = oauth_member(data, "is_valid");
	json_t *error = oauth_member(data, "error");
	struct graph_error ge;
	if (!json_is_object(data) || !json_is_boolean(valid)) {
		oauth_malformed(ctx, "debug_token: data.is_valid missing or not a boolean");
		return;
	}
	if (json_is_true(valid)) {
		ctx->out->verdict = VERDICT_OK; /* no new token, no expiry */
		return;
	}
	if (!json_is_object(error) || graph_classify(ctx, error, &ge) == VERDICT_MALFORMED)
		snprintf(ctx->out->message, sizeof(ctx->out->message),
		         "debug_token: the Page token is not valid");
	ctx->out->verdict = VERDICT_PAGES_NONE;
}

/* An error of the check itself. Dead-grant errors mean the Page is lost
 * (190/492: the user lost the Page role), except a bare 190, which on
 * debug_token is as likely our app token (client_id|secret) as the Page's:
 * transient, like any other failure. */
static enum platform_verdict check_error(struct oauth_ctx *ctx)
{
	struct graph_error ge = {0};
	json_t *error = oauth_member(ctx->root, "error");
	if (!json_is_object(error))
		return graph_error(ctx); /* MALFORMED */
	enum platform_verdict verdict = graph_classify(ctx, error, &ge);
	if (verdict != VERDICT_DEAD)
		return verdict;
	if (ge.code == 190 && ge.subcode == 0) {
		snprintf(ctx->out->message, sizeof(ctx->out->message),
		         "debug_token rejected a token: check client_id/client_secret");
		return VERDICT_TRANSIENT;
	}
	return VERDICT_PAGES_NONE;
}

static const struct oauth_dialect check_dialect = {
    .success = check_success,
    .error = check_error,
};

static void parse_response(const struct platform_grant *grant, const struct platform_response *resp,
                           struct platform_result *out)
{
	if (grant->action == ACTION_CHECK)
		oauth_parse(&check_dialect, grant, resp, out);
	else
		graph_parse_tokens(grant, resp, out);
}

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
    .default_base_url = FACEBOOK_BASE,
    .build_request = build_request,
    .parse_response = parse_response,
};
