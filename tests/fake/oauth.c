/* oauth: the OAuth 2.0 refresh_token grant of X, LinkedIn, Pinterest,
 * TikTok and YouTube (Google): one handler, and per platform its client
 * authentication, success body and error shapes (platforms.md). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tests/fake/platforms.h"
#include "tests/fake/wire.h"

#define CLIENT_MAX 256

struct oauth_rule {
	bool basic;           /* client authenticates with HTTP Basic, else in the body */
	bool public_ok;       /* --x-public-client lets the body's client id alone do */
	const char *id_param; /* client id parameter in the body, or NULL */
	enum rotation rotation;
	json_t *(*body)(struct call *c, const struct grant *g, const struct session *s);
};

/* One row per failure: the status and the OAuth error; a NULL description
 * means "use the handler's detail". A zero status falls back to FAIL_REVOKED. */
struct oauth_error {
	int status;
	const char *error;
	const char *description;
};

struct oauth_style {
	const struct oauth_error *errors; /* indexed by enum fail */
	bool log_id;                      /* TikTok adds a log_id */
	bool retry_after;                 /* Retry-After on 429 */
};

static bool refuse(struct call *c, enum fail why, const char *detail)
{
	plat_fail(c, why, detail);
	return false;
}

static bool missing(struct call *c, const char *param)
{
	char detail[96];

	snprintf(detail, sizeof(detail), "Missing required parameter: %s", param);
	return refuse(c, FAIL_REQUEST, detail);
}

/* Checks the client as the rule says; answers and returns false when wrong. */
static bool client_ok(struct call *c, const struct oauth_rule *rule)
{
	char id[CLIENT_MAX], secret[CLIENT_MAX];
	const char *body_id = rule->id_param ? wire_param(c, rule->id_param) : NULL;
	const char *body_secret;

	if (rule->id_param && !body_id)
		return missing(c, rule->id_param);
	if (!rule->basic) {
		body_secret = wire_param(c, "client_secret");
		if (!body_secret)
			return missing(c, "client_secret");
		if (!plat_client_ok(c, body_id, body_secret))
			return refuse(c, FAIL_CLIENT, NULL);
		return true;
	}
	if (!wire_basic(c, id, sizeof(id), secret, sizeof(secret))) {
		if (rule->public_ok && c->fake->cfg.x_public_client)
			return true;
		return refuse(c, FAIL_CLIENT, NULL);
	}
	if (!plat_client_ok(c, id, secret) || (body_id && strcmp(body_id, id) != 0))
		return refuse(c, FAIL_CLIENT, NULL);
	return true;
}

static void oauth_refresh(struct call *c, const struct oauth_rule *rule)
{
	const char *grant_type, *token;
	struct token_ref ref;
	struct session next;
	enum verdict v;
	json_t *body;

	if (wire_form(c) < 0) {
		plat_fail(c, FAIL_REQUEST,
		          "Content-Type must be application/x-www-form-urlencoded");
		return;
	}
	if (!client_ok(c, rule))
		return;
	grant_type = wire_param(c, "grant_type");
	if (!grant_type) {
		missing(c, "grant_type");
		return;
	}
	if (strcmp(grant_type, "refresh_token") != 0) {
		plat_fail(c, FAIL_GRANT_TYPE, "Unsupported grant_type");
		return;
	}
	token = wire_param(c, "refresh_token");
	if (!token) {
		missing(c, "refresh_token");
		return;
	}
	v = grants_check(c->fake->grants, plat_id_of(c->plat), KIND_REFRESH, token, c->now, &ref);
	if (!plat_accept(c, v))
		return;
	next = grants_next(ref.grant, rule->rotation, c->now);
	body = rule->body(c, ref.grant, &next);
	plat_commit(c, ref.grant, &next);
	plat_ok(c, body);
}

static void oauth_fail(struct call *c, const struct oauth_style *style, enum fail why,
                       const char *detail)
{
	const struct oauth_error *e = &style->errors[why];
	json_t *body;

	if (e->status == 0)
		e = &style->errors[FAIL_REVOKED];
	body = json_pack("{s:s, s:s}", "error", e->error, "error_description",
	                 plat_message(e->description, detail, "Bad Request"));
	if (style->log_id)
		json_object_set_new(body, "log_id",
		                    json_sprintf("%016" PRIX64, fake_random(c->fake)));
	if (why == FAIL_RATE && style->retry_after)
		wire_set_header_int(c, "Retry-After", c->retry_after);
	wire_send(c, e->status, body);
}

/* ---- X ---- */

static json_t *x_body(struct call *c, const struct grant *g, const struct session *s)
{
	return json_pack("{s:s, s:I, s:o, s:s, s:o}", "token_type", "bearer", "expires_in",
	                 plat_expires_in(c, g, s, KIND_ACCESS), "access_token",
	                 plat_token(c, g, s, KIND_ACCESS), "scope",
	                 "tweet.read tweet.write users.read offline.access", "refresh_token",
	                 plat_token(c, g, s, KIND_REFRESH));
}

static const struct oauth_rule x_rule = {
    .basic = true,
    .public_ok = true,
    .id_param = "client_id",
    .rotation = ROTATE_BOTH,
    .body = x_body,
};

static const struct oauth_error x_errors[FAIL_COUNT] = {
    [FAIL_REQUEST] = {400, "invalid_request", NULL},
    [FAIL_METHOD] = {405, "invalid_request", NULL},
    [FAIL_GRANT_TYPE] = {400, "invalid_request",
                         "Value passed for the grant type was invalid. Grant type should be one "
                         "of [authorization_code, refresh_token]."},
    [FAIL_CLIENT] = {401, "unauthorized_client", "Missing valid authorization header"},
    [FAIL_REVOKED] = {400, "invalid_request", "Value passed for the token was invalid."},
};
static const struct oauth_style x_style = {.errors = x_errors};

/* X's v1.1-style error list: 429 carries code 88 and x-rate-limit-* headers. */
static void x_fail(struct call *c, enum fail why, const char *detail)
{
	bool rate = why == FAIL_RATE;

	if (why != FAIL_RATE && why != FAIL_SERVER) {
		oauth_fail(c, &x_style, why, detail);
		return;
	}
	if (rate) {
		wire_set_header_int(c, "x-rate-limit-limit", 25);
		wire_set_header_int(c, "x-rate-limit-remaining", 0);
		wire_set_header_int(c, "x-rate-limit-reset", c->now + c->retry_after);
	}
	wire_send(c, rate ? 429 : 500,
	          json_pack("{s:[{s:i, s:s}]}", "errors", "code", rate ? 88 : 131, "message",
	                    rate ? "Rate limit exceeded" : "Internal error"));
}

static void x_refresh(struct call *c)
{
	oauth_refresh(c, &x_rule);
}

static const struct route x_routes[] = {
    {EVHTTP_REQ_POST, "/2/oauth2/token", x_refresh},
    {0, NULL, NULL},
};

const struct plat plat_x = {
    .name = "x",
    .rotates = true,
    .access_ttl_s = 7200,
    .refresh_ttl_s = 0,
    .fail = x_fail,
    .routes = x_routes,
};

/* ---- LinkedIn ---- */

static json_t *linkedin_body(struct call *c, const struct grant *g, const struct session *s)
{
	return json_pack(
	    "{s:o, s:I, s:o, s:I, s:s}", "access_token", plat_token(c, g, s, KIND_ACCESS),
	    "expires_in", plat_expires_in(c, g, s, KIND_ACCESS), "refresh_token",
	    plat_token(c, g, s, KIND_REFRESH), "refresh_token_expires_in",
	    plat_expires_in(c, g, s, KIND_REFRESH), "scope", "openid,profile,w_member_social");
}

static const struct oauth_rule linkedin_rule = {
    .id_param = "client_id",
    .rotation = ROTATE_ACCESS,
    .body = linkedin_body,
};

static const struct oauth_error linkedin_errors[FAIL_COUNT] = {
    [FAIL_REQUEST] = {400, "invalid_request", NULL},
    [FAIL_METHOD] = {405, "invalid_request", NULL},
    [FAIL_GRANT_TYPE] = {400, "unsupported_grant_type", NULL},
    [FAIL_CLIENT] = {401, "invalid_client", "Client authentication failed"},
    [FAIL_REVOKED] = {400, "invalid_request",
                      "The provided authorization grant or refresh token is invalid, expired or "
                      "revoked"},
    [FAIL_RATE] = {429, "rate_limit_exceeded", "Throttle limit reached"},
    [FAIL_SERVER] = {500, "server_error", "Internal Server Error"},
};
static const struct oauth_style linkedin_style = {.errors = linkedin_errors, .retry_after = true};

static void linkedin_fail(struct call *c, enum fail why, const char *detail)
{
	oauth_fail(c, &linkedin_style, why, detail);
}

static void linkedin_refresh(struct call *c)
{
	oauth_refresh(c, &linkedin_rule);
}

static const struct route linkedin_routes[] = {
    {EVHTTP_REQ_POST, "/oauth/v2/accessToken", linkedin_refresh},
    {0, NULL, NULL},
};

const struct plat plat_linkedin = {
    .name = "linkedin",
    .rotates = false,
    .access_ttl_s = 60 * 86400,
    .refresh_ttl_s = 365 * 86400,
    .fail = linkedin_fail,
    .routes = linkedin_routes,
};

/* ---- Pinterest: errors are {"code","message"} ---- */

static json_t *pinterest_body(struct call *c, const struct grant *g, const struct session *s)
{
	return json_pack("{s:o, s:s, s:I, s:s, s:o, s:I, s:I}", "access_token",
	                 plat_token(c, g, s, KIND_ACCESS), "token_type", "bearer", "expires_in",
	                 plat_expires_in(c, g, s, KIND_ACCESS), "scope",
	                 "boards:read,pins:read,user_accounts:read", "refresh_token",
	                 plat_token(c, g, s, KIND_REFRESH), "refresh_token_expires_in",
	                 plat_expires_in(c, g, s, KIND_REFRESH), "refresh_token_expires_at",
	                 (json_int_t)grants_expires_at(c->fake->grants, g, s, KIND_REFRESH));
}

static const struct oauth_rule pinterest_rule = {
    .basic = true,
    .rotation = ROTATE_BOTH,
    .body = pinterest_body,
};

static void pinterest_fail(struct call *c, enum fail why, const char *detail)
{
	static const struct {
		int status, code;
		const char *message;
	} errors[FAIL_COUNT] = {
	    [FAIL_REQUEST] = {400, 1, NULL},
	    [FAIL_METHOD] = {405, 1, NULL},
	    [FAIL_GRANT_TYPE] = {400, 1, "Unsupported grant type"},
	    [FAIL_CLIENT] = {401, 2, "Authentication failed."},
	    [FAIL_REVOKED] = {400, 1, "Invalid refresh token."},
	    [FAIL_RATE] = {429, 8, "You have exceeded your rate limit. Try again later."},
	    [FAIL_SERVER] = {500, 5, "Internal server error."},
	};
	enum fail row = errors[why].status ? why : FAIL_REVOKED;

	if (why == FAIL_RATE)
		wire_set_header_int(c, "Retry-After", c->retry_after);
	wire_send(c, errors[row].status,
	          json_pack("{s:i, s:s}", "code", errors[row].code, "message",
	                    plat_message(errors[row].message, detail, "Invalid parameters.")));
}

static void pinterest_refresh(struct call *c)
{
	oauth_refresh(c, &pinterest_rule);
}

static const struct route pinterest_routes[] = {
    {EVHTTP_REQ_POST, "/v5/oauth/token", pinterest_refresh},
    {0, NULL, NULL},
};

const struct plat plat_pinterest = {
    .name = "pinterest",
    .rotates = true,
    .access_ttl_s = 30 * 86400,
    .refresh_ttl_s = 60 * 86400,
    .fail = pinterest_fail,
    .routes = pinterest_routes,
};

/* ---- TikTok ---- */

static json_t *tiktok_body(struct call *c, const struct grant *g, const struct session *s)
{
	return json_pack("{s:s, s:s, s:o, s:I, s:o, s:I, s:s}", "open_id", g->did + 8, "scope",
	                 "user.info.basic,video.publish", "access_token",
	                 plat_token(c, g, s, KIND_ACCESS), "expires_in",
	                 plat_expires_in(c, g, s, KIND_ACCESS), "refresh_token",
	                 plat_token(c, g, s, KIND_REFRESH), "refresh_expires_in",
	                 plat_expires_in(c, g, s, KIND_REFRESH), "token_type", "Bearer");
}

static const struct oauth_rule tiktok_rule = {
    .id_param = "client_key",
    .rotation = ROTATE_BOTH,
    .body = tiktok_body,
};

static const struct oauth_error tiktok_errors[FAIL_COUNT] = {
    [FAIL_REQUEST] = {400, "invalid_request", NULL},
    [FAIL_METHOD] = {405, "invalid_request", NULL},
    [FAIL_GRANT_TYPE] = {400, "unsupported_grant_type", NULL},
    [FAIL_CLIENT] = {401, "invalid_client", "Client key or secret is incorrect."},
    [FAIL_REVOKED] = {400, "invalid_grant", "Refresh token is invalid or expired."},
    [FAIL_RATE] = {429, "rate_limit_exceeded", "Rate limit exceeded. Try again later."},
    [FAIL_SERVER] = {500, "internal_error", "Internal server error."},
};
static const struct oauth_style tiktok_style = {
    .errors = tiktok_errors,
    .log_id = true,
    .retry_after = true,
};

static void tiktok_fail(struct call *c, enum fail why, const char *detail)
{
	oauth_fail(c, &tiktok_style, why, detail);
}

static void tiktok_refresh(struct call *c)
{
	oauth_refresh(c, &tiktok_rule);
}

static const struct route tiktok_routes[] = {
    {EVHTTP_REQ_POST, "/v2/oauth/token/", tiktok_refresh},
    {0, NULL, NULL},
};

const struct plat plat_tiktok = {
    .name = "tiktok",
    .rotates = true,
    .access_ttl_s = 86400,
    .refresh_ttl_s = 365 * 86400,
    .fail = tiktok_fail,
    .routes = tiktok_routes,
};

/* ---- YouTube (Google) ---- */

static json_t *youtube_body(struct call *c, const struct grant *g, const struct session *s)
{
	return json_pack("{s:o, s:I, s:s, s:s}", "access_token", plat_token(c, g, s, KIND_ACCESS),
	                 "expires_in", plat_expires_in(c, g, s, KIND_ACCESS), "scope",
	                 "https://www.googleapis.com/auth/youtube.upload", "token_type", "Bearer");
}

static const struct oauth_rule youtube_rule = {
    .id_param = "client_id",
    .rotation = ROTATE_ACCESS,
    .body = youtube_body,
};

static const struct oauth_error youtube_errors[FAIL_COUNT] = {
    [FAIL_REQUEST] = {400, "invalid_request", NULL},
    [FAIL_METHOD] = {405, "invalid_request", NULL},
    [FAIL_GRANT_TYPE] = {400, "unsupported_grant_type", "Invalid grant_type"},
    [FAIL_CLIENT] = {401, "invalid_client", "Unauthorized"},
    [FAIL_REVOKED] = {400, "invalid_grant", "Token has been expired or revoked."},
    [FAIL_RATE] = {429, "rate_limit_exceeded", "Rate Limit Exceeded"},
    [FAIL_SERVER] = {500, "internal_failure", "Backend Error"},
};
static const struct oauth_style youtube_style = {.errors = youtube_errors, .retry_after = true};

static void youtube_fail(struct call *c, enum fail why, const char *detail)
{
	oauth_fail(c, &youtube_style, why, detail);
}

static void youtube_refresh(struct call *c)
{
	oauth_refresh(c, &youtube_rule);
}

static const struct route youtube_routes[] = {
    {EVHTTP_REQ_POST, "/token", youtube_refresh},
    {0, NULL, NULL},
};

const struct plat plat_youtube = {
    .name = "youtube",
    .rotates = false,
    .access_ttl_s = 3599,
    .refresh_ttl_s = 0,
    .fail = youtube_fail,
    .routes = youtube_routes,
};
