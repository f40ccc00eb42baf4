/* graph: the Meta Graph API dialect shared by facebook.c, instagram.c and
 * threads.c: token responses, the error object and its classification, and
 * the exchange/refresh requests of self-refreshing long-lived tokens. Private
 * to platforms/. */
#ifndef TOKEND_GRAPH_H
#define TOKEND_GRAPH_H

#include <stdint.h>

#include "platforms/oauth.h"

/* A Graph error's numbers; subcode 0 when absent. */
struct graph_error {
	int64_t code;
	int64_t subcode;
};

/* The two endpoints of a token that refreshes itself (Threads, Instagram). */
struct graph_self_refresh {
	const char *default_base;
	const char *exchange_grant; /* grant_type of GET /access_token (short -> long) */
	const char *refresh_grant;  /* grant_type of GET /refresh_access_token */
};

/* ACTION_EXCHANGE: the exchange of the short-lived access token; any other
 * action: the refresh of the long-lived one. */
int graph_build_self_refresh(const struct graph_self_refresh *g,
                             const struct platform_client *client,
                             const struct platform_grant *grant, struct platform_request *out,
                             char *err, size_t errlen) __attribute__((warn_unused_result));

/* A token response {"access_token","token_type","expires_in"} or a Graph error. */
void graph_parse_tokens(const struct platform_grant *grant, const struct platform_response *resp,
                        struct platform_result *out);

/* Copy error's code and subcode ("190/460"; error_subcode, or subcode as in
 * debug_token's data.error) and message into ctx->out and classify it:
 * codes 190 and 102 and subcodes 459 and 464 (the user must act on
 * facebook.com, said in the message) DEAD, everything else TRANSIENT;
 * MALFORMED without an integer code. */
enum platform_verdict graph_classify(struct oauth_ctx *ctx, json_t *error, struct graph_error *ge);
/* Dialect error callback: graph_classify of the root's "error" object. */
enum platform_verdict graph_error(struct oauth_ctx *ctx);

#endif
