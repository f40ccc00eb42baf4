/* graph: the Meta Graph API dialect (Facebook, Instagram, Threads). */
#include "platforms/graph.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int graph_build_self_refresh(const struct graph_self_refresh *g,
                             const struct platform_client *client,
                             const struct platform_grant *grant, struct platform_request *out,
                             char *err, size_t errlen)
{
	const char *token = oauth_need(grant->access_token, "access token", err, errlen);
	const char *base = oauth_base(client, g->default_base);
	if (!token)
		return -1;
	if (grant->action == ACTION_EXCHANGE) {
		const struct oauth_param exchange[] = {
		    {"grant_type", g->exchange_grant},
		    {"client_secret", oauth_text(client->client_secret)},
		    {"access_token", token},
		};
		return oauth_get(out, base, "/access_token", exchange, OAUTH_COUNT(exchange), err,
		                 errlen);
	}
	const struct oauth_param refresh[] = {{"grant_type", g->refresh_grant},
	                                      {"access_token", token}};
	return oauth_get(out, base, "/refresh_access_token", refresh, OAUTH_COUNT(refresh), err,
	                 errlen);
}

static const struct oauth_dialect graph_tokens = {
    .tokens = {.access = "access_token", .access_ttl = "expires_in"},
    .error = graph_error,
};

void graph_parse_tokens(const struct platform_grant *grant, const struct platform_response *resp,
                        struct platform_result *out)
{
	oauth_parse(&graph_tokens, grant, resp, out);
}

/* The user must log in to facebook.com (checkpoint, unconfirmed account). */
static bool user_must_act(const struct graph_error *ge)
{
	return ge->subcode == 459 || ge->subcode == 464;
}

/* 190 with any subcode (458, 460, 463, 467, 492, ...) and 102 end the grant.
 * 1, 2, 4, 17, 32, 341, 368 and 613 are temporary failures and rate limits,
 * and so is anything not known to be fatal. */
static enum platform_verdict verdict_of(const struct graph_error *ge)
{
	if (user_must_act(ge) || ge->code == 190 || ge->code == 102)
		return VERDICT_DEAD;
	return VERDICT_TRANSIENT;
}

enum platform_verdict graph_classify(struct oauth_ctx *ctx, json_t *error, struct graph_error *ge)
{
	json_t *code = oauth_member(error, "code");
	json_t *subcode = oauth_member(error, "error_subcode");
	if (!subcode)
		subcode = oauth_member(error, "subcode"); /* debug_token's data.error */
	json_t *message = oauth_member(error, "message");
	char text[48];
	if (!json_is_integer(code) || (subcode && !json_is_integer(subcode))) {
		oauth_malformed(ctx, "HTTP %ld: Graph error without integer code and subcode",
		                ctx->resp->status);
		return VERDICT_MALFORMED;
	}
	ge->code = json_integer_value(code);
	ge->subcode = json_integer_value(subcode);
	if (ge->subcode)
		snprintf(text, sizeof(text), "%" PRId64 "/%" PRId64, ge->code, ge->subcode);
	else
		snprintf(text, sizeof(text), "%" PRId64, ge->code);
	oauth_set_code(ctx, text, strlen(text));
	if (user_must_act(ge))
		snprintf(ctx->out->message, sizeof(ctx->out->message),
		         "the user must log in to facebook.com and act: ");
	if (json_is_string(message))
		oauth_append_message(ctx, json_string_value(message), json_string_length(message));
	return verdict_of(ge);
}

enum platform_verdict graph_error(struct oauth_ctx *ctx)
{
	json_t *error = oauth_member(ctx->root, "error");
	struct graph_error ge;
	if (!json_is_object(error)) {
		oauth_malformed(ctx, "HTTP %ld without a Graph error object", ctx->resp->status);
		return VERDICT_MALFORMED;
	}
	return graph_classify(ctx, error, &ge);
}
