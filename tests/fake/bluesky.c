/* bluesky: the fake PDS: com.atproto.server.refreshSession (Bearer
 * refreshJwt, rotated, the old one honoured for --bluesky-grace) and
 * createSession (identifier + app password, rate limited per identifier).
 * Errors are atproto XRPC bodies {"error","message"}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fake/platforms.h"
#include "tests/fake/wire.h"

#define IDENTIFIER_MAX 256

static void bluesky_fail(struct call *c, enum fail why, const char *detail)
{
	static const struct {
		int status;
		const char *error, *message;
	} errors[FAIL_COUNT] = {
	    [FAIL_REQUEST] = {400, "InvalidRequest", NULL},
	    [FAIL_METHOD] = {400, "InvalidRequest", "Incorrect HTTP method, expected POST"},
	    [FAIL_GRANT_TYPE] = {400, "InvalidRequest", NULL},
	    [FAIL_CLIENT] = {401, "AuthMissing", "Authentication Required"},
	    [FAIL_INVALID] = {400, "InvalidToken", NULL},
	    [FAIL_REVOKED] = {400, "ExpiredToken", "Token has been revoked"},
	    [FAIL_EXPIRED] = {400, "ExpiredToken", "Token has expired"},
	    [FAIL_SPENT] = {400, "ExpiredToken", "Token has been revoked"},
	    [FAIL_TOO_YOUNG] = {400, "InvalidRequest", NULL},
	    [FAIL_NO_OBJECT] = {400, "InvalidRequest", NULL},
	    [FAIL_PASSWORD] = {401, "AuthenticationRequired", "Invalid identifier or password"},
	    [FAIL_TAKEDOWN] = {401, "AccountTakedown", "Account has been taken down"},
	    [FAIL_RATE] = {429, "RateLimitExceeded", "Rate Limit Exceeded"},
	    [FAIL_SERVER] = {500, "InternalServerError", "Internal Server Error"},
	};
	const char *fallback = why == FAIL_INVALID ? "Token could not be verified" : "Bad request";
	char policy[32];

	if (why == FAIL_RATE) {
		snprintf(policy, sizeof(policy), "%d;w=300", c->fake->cfg.bluesky_session_limit);
		wire_set_header_int(c, "Retry-After", c->retry_after);
		wire_set_header_int(c, "RateLimit-Limit", c->fake->cfg.bluesky_session_limit);
		wire_set_header_int(c, "RateLimit-Remaining", 0);
		wire_set_header_int(c, "RateLimit-Reset", c->now + c->retry_after);
		wire_set_header(c, "RateLimit-Policy", policy);
	}
	wire_send(c, errors[why].status,
	          json_pack("{s:s, s:s}", "error", errors[why].error, "message",
	                    plat_message(errors[why].message, detail, fallback)));
}

/* The identifier a createSession grant was made for, as its handle when it
 * is one; otherwise a handle derived from the DID. */
static json_t *handle_of(const struct grant *g)
{
	const char *id = strncmp(g->key, "id:", 3) == 0 ? g->key + 3 : NULL;

	if (id && strchr(id, '.') && !strchr(id, '@') && strncmp(id, "did:", 4) != 0)
		return json_string(id);
	return json_sprintf("u%.10s.fake.bsky.social", g->did + 8);
}

static json_t *session_body(struct call *c, const struct grant *g, const struct session *s)
{
	return json_pack("{s:o, s:o, s:o, s:s, s:b}", "accessJwt", plat_token(c, g, s, KIND_ACCESS),
	                 "refreshJwt", plat_token(c, g, s, KIND_REFRESH), "handle", handle_of(g),
	                 "did", g->did, "active", 1);
}

static void refresh_session(struct call *c)
{
	const char *token = wire_bearer(c);
	struct token_ref ref;
	struct session next;
	enum verdict v;
	json_t *body;

	if (!token) {
		plat_fail(c, FAIL_CLIENT, NULL);
		return;
	}
	v = grants_check(c->fake->grants, PLAT_BLUESKY, KIND_REFRESH, token, c->now, &ref);
	if (!plat_accept(c, v))
		return;
	/* In grace, the current refreshJwt again (atproto: "upon refresh token
	 * reuse you always receive a refresh token with the same id"). */
	next = grants_next(ref.grant, v == VERDICT_GRACE ? ROTATE_ACCESS : ROTATE_BOTH, c->now);
	body = session_body(c, ref.grant, &next);
	plat_commit(c, ref.grant, &next);
	plat_ok(c, body);
}

/* The grant of identifier, made on first sight with this password. */
static struct grant *account(struct call *c, const char *identifier, const char *password)
{
	char key[IDENTIFIER_MAX + 4];
	struct grant *g;

	snprintf(key, sizeof(key), "id:%s", identifier);
	g = grants_by_key(c->fake->grants, key);
	if (g)
		return g;
	g = grants_add(c->fake->grants, PLAT_BLUESKY, key, 0, c->now);
	if (g && !(g->password = strdup(password)))
		g->locked = true;
	return g;
}

/* Answers createSession for identifier and password. */
static void login(struct call *c, const char *identifier, const char *password)
{
	struct grant *g = account(c, identifier, password);
	struct session next;
	json_t *body;
	int retry_after = 1;

	if (!g) {
		plat_fail(c, FAIL_SERVER, NULL);
		return;
	}
	if (!grants_login_allowed(c->fake->grants, g, c->now, &retry_after)) {
		c->retry_after = retry_after;
		plat_fail(c, FAIL_RATE, NULL);
		return;
	}
	if (c->force_dead || g->locked || !g->password || strcmp(g->password, password) != 0) {
		plat_fail(c, FAIL_PASSWORD, NULL);
		return;
	}
	if (g->takedown) {
		plat_fail(c, FAIL_TAKEDOWN, NULL);
		return;
	}
	next = grants_next(g, ROTATE_BOTH, c->now);
	body = session_body(c, g, &next);
	if (!c->dry_run)
		g->revoked = false; /* a new session is alive */
	plat_commit(c, g, &next);
	plat_ok(c, body);
}

static void create_session(struct call *c)
{
	json_error_t err;
	json_t *input;
	const char *identifier, *password;

	if (!wire_content_type_is(c, "application/json")) {
		plat_fail(c, FAIL_REQUEST,
		          "Wrong request encoding (Content-Type): expected "
		          "application/json");
		return;
	}
	input = wire_json_body(c, &err);
	identifier = json_string_value(json_object_get(input, "identifier"));
	password = json_string_value(json_object_get(input, "password"));
	if (!json_is_object(input))
		plat_fail(c, FAIL_REQUEST, "Request body is not a JSON object");
	else if (!identifier || !*identifier || strlen(identifier) > IDENTIFIER_MAX)
		plat_fail(c, FAIL_REQUEST, "Input must have the property \"identifier\"");
	else if (!password || !*password)
		plat_fail(c, FAIL_REQUEST, "Input must have the property \"password\"");
	else
		login(c, identifier, password);
	json_decref(input);
}

static const struct route bluesky_routes[] = {
    {EVHTTP_REQ_POST, "/xrpc/com.atproto.server.refreshSession", refresh_session},
    {EVHTTP_REQ_POST, "/xrpc/com.atproto.server.createSession", create_session},
    {0, NULL, NULL},
};

const struct plat plat_bluesky = {
    .name = "bluesky",
    .rotates = true,
    .access_ttl_s = 7200,
    .refresh_ttl_s = 90 * 86400,
    .fail = bluesky_fail,
    .routes = bluesky_routes,
};
