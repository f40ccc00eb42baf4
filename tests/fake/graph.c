/* graph: Meta's Graph-style token endpoints: Threads and Instagram
 * (exchange and refresh of long-lived tokens), Facebook (fb_exchange_token,
 * debug_token, /me/accounts and Page tokens). Errors are
 * {"error":{"message","type":"OAuthException","code","error_subcode","fbtrace_id"}}. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fake/codec.h"
#include "tests/fake/platforms.h"
#include "tests/fake/wire.h"

#define META_TTL_S 5183944
#define DATA_ACCESS_TTL_S (90 * 86400)
#define USER_ID_BASE 100000000000000LL
#define PAGE_ID_BASE 200000000000000LL
#define PAGES_PER_USER GRANT_PAGES_MAX

struct graph_rule {
	const char *grant_type;
	const char *token_param; /* "access_token" or "fb_exchange_token" */
	bool client_id, client_secret;
	bool refresh; /* a refresh: the token must be --meta-min-age old */
};

struct graph_error {
	int status, code, subcode;
	const char *message; /* NULL: the handler's detail */
};

static const char graph_revoked[] =
    "Error validating access token: The session has been invalidated because the user changed "
    "their password or Facebook has changed the session for security reasons.";

static const struct graph_error graph_errors[FAIL_COUNT] = {
    [FAIL_REQUEST] = {400, 100, 0, NULL},
    [FAIL_METHOD] = {400, 100, 33, "Unsupported request method."},
    [FAIL_GRANT_TYPE] = {400, 100, 0, "Unsupported grant_type"},
    [FAIL_CLIENT] = {400, 101, 0, "Error validating client secret."},
    [FAIL_INVALID] = {400, 190, 0, "Invalid OAuth access token - Cannot parse access token"},
    [FAIL_REVOKED] = {400, 190, 460, graph_revoked},
    [FAIL_EXPIRED] = {400, 190, 463, "Error validating access token: Session has expired."},
    [FAIL_SPENT] = {400, 190, 460, graph_revoked},
    [FAIL_TOO_YOUNG] = {400, 100, 0, NULL},
    [FAIL_NO_OBJECT] = {400, 100, 33,
                        "Unsupported get request. Object does not exist, cannot be loaded due to "
                        "missing permissions, or does not support this operation."},
    [FAIL_RATE] = {400, 4, 0, "(#4) Application request limit reached"},
    [FAIL_SERVER] = {500, 1, 0, "An unknown error has occurred."},
};

/* The transient codes of platforms.md: temporary failures and rate limits. */
static const char *rate_message(int code)
{
	switch (code) {
	case 1:
		return "An unknown error occurred";
	case 2:
		return "An unexpected error has occurred. Please retry your request later.";
	case 17:
		return "(#17) User request limit reached";
	case 32:
		return "(#32) Page request limit reached";
	case 341:
		return "(#341) Application limit reached";
	case 368:
		return "The action attempted has been deemed abusive or is otherwise disallowed";
	case 613:
		return "(#613) Calls to this api have exceeded the rate limit.";
	default:
		return "(#4) Application request limit reached";
	}
}

static bool rate_code(int code)
{
	return code == 1 || code == 2 || code == 17 || code == 32 || code == 341 || code == 368 ||
	       code == 613;
}

static json_t *fbtrace_id(struct fake *fake)
{
	uint64_t r = fake_random(fake);
	char text[16];

	if (codec_b64_encode(&r, sizeof(r), true, text, sizeof(text)) < 0)
		return json_string("A");
	return json_string(text);
}

static void graph_fail(struct call *c, enum fail why, const char *detail)
{
	const struct graph_error *e = &graph_errors[why];
	const char *message = plat_message(e->message, detail, "Invalid parameter");
	int code = e->code, status = e->status;
	json_t *error;

	if (why == FAIL_RATE) {
		code = rate_code(c->graph_code) ? c->graph_code : 4;
		status = c->graph_status ? c->graph_status : status;
		message = rate_message(code);
		wire_set_header(c, "x-app-usage",
		                "{\"call_count\":100,\"total_cputime\":10,\"total_time\":12}");
	}
	error = json_pack("{s:s, s:s, s:i}", "message", message, "type", "OAuthException", "code",
	                  code);
	if (e->subcode)
		json_object_set_new(error, "error_subcode", json_integer(e->subcode));
	json_object_set_new(error, "fbtrace_id", fbtrace_id(c->fake));
	wire_send(c, status, json_pack("{s:o}", "error", error));
}

static void missing(struct call *c, const char *param)
{
	char detail[96];

	snprintf(detail, sizeof(detail), "(#100) Missing parameter: %s", param);
	plat_fail(c, FAIL_REQUEST, detail);
}

/* Loads the query and returns the parameter, or answers and returns NULL. */
static const char *require(struct call *c, const char *param)
{
	const char *value;

	if (!c->have_params && wire_query(c) < 0) {
		plat_fail(c, FAIL_REQUEST, "(#100) Invalid query string");
		return NULL;
	}
	value = wire_param(c, param);
	if (!value)
		missing(c, param);
	return value;
}

static bool client_ok(struct call *c, const struct graph_rule *rule)
{
	const char *id = NULL, *secret;

	if (rule->client_id && !(id = require(c, "client_id")))
		return false;
	if (!rule->client_secret)
		return true;
	if (!(secret = require(c, "client_secret")))
		return false;
	if (plat_client_ok(c, id, secret))
		return true;
	plat_fail(c, FAIL_CLIENT, NULL);
	return false;
}

static bool old_enough(struct call *c, const struct graph_rule *rule, const struct token_ref *ref)
{
	int64_t min_age = c->fake->cfg.meta_min_age_s;
	char detail[160];

	if (!rule->refresh || ref->adopted || c->now - ref->iat >= min_age)
		return true;
	snprintf(detail, sizeof(detail),
	         "Token is %" PRId64 " s old; tokens younger than %" PRId64
	         " s cannot be refreshed (fake_platforms --meta-min-age)",
	         c->now - ref->iat, min_age);
	plat_fail(c, FAIL_TOO_YOUNG, detail);
	return false;
}

/* Exchange (short-lived -> long-lived) or refresh of a long-lived token. */
static void graph_token(struct call *c, const struct graph_rule *rule)
{
	const char *grant_type, *token;
	struct token_ref ref;
	struct session next;
	enum verdict v;
	json_t *body;

	if (!(grant_type = require(c, "grant_type")))
		return;
	if (strcmp(grant_type, rule->grant_type) != 0) {
		plat_fail(c, FAIL_GRANT_TYPE, NULL);
		return;
	}
	if (!client_ok(c, rule) || !(token = require(c, rule->token_param)))
		return;
	v = grants_check(c->fake->grants, plat_id_of(c->plat), KIND_ACCESS, token, c->now, &ref);
	if (!plat_accept(c, v) || !old_enough(c, rule, &ref))
		return;
	next = grants_next(ref.grant, ROTATE_ACCESS, c->now);
	body = json_pack("{s:o, s:s, s:I}", "access_token",
	                 plat_token(c, ref.grant, &next, KIND_ACCESS), "token_type", "bearer",
	                 "expires_in", plat_expires_in(c, ref.grant, &next, KIND_ACCESS));
	plat_commit(c, ref.grant, &next);
	plat_ok(c, body);
}

/* ---- Threads ---- */

static void th_exchange(struct call *c)
{
	static const struct graph_rule rule = {.grant_type = "th_exchange_token",
	                                       .token_param = "access_token",
	                                       .client_secret = true};

	graph_token(c, &rule);
}

static void th_refresh(struct call *c)
{
	static const struct graph_rule rule = {
	    .grant_type = "th_refresh_token", .token_param = "access_token", .refresh = true};

	graph_token(c, &rule);
}

static const struct route threads_routes[] = {
    {EVHTTP_REQ_GET, "/access_token", th_exchange},
    {EVHTTP_REQ_GET, "/refresh_access_token", th_refresh},
    {0, NULL, NULL},
};

const struct plat plat_threads = {
    .name = "threads",
    .access_only = true,
    .access_ttl_s = META_TTL_S,
    .fail = graph_fail,
    .routes = threads_routes,
};

/* ---- Instagram (Instagram Login) ---- */

static void ig_exchange(struct call *c)
{
	static const struct graph_rule rule = {.grant_type = "ig_exchange_token",
	                                       .token_param = "access_token",
	                                       .client_secret = true};

	graph_token(c, &rule);
}

static void ig_refresh(struct call *c)
{
	static const struct graph_rule rule = {
	    .grant_type = "ig_refresh_token", .token_param = "access_token", .refresh = true};

	graph_token(c, &rule);
}

static const struct route instagram_routes[] = {
    {EVHTTP_REQ_GET, "/access_token", ig_exchange},
    {EVHTTP_REQ_GET, "/refresh_access_token", ig_refresh},
    {0, NULL, NULL},
};

const struct plat plat_instagram = {
    .name = "instagram",
    .access_only = true,
    .access_ttl_s = META_TTL_S,
    .fail = graph_fail,
    .routes = instagram_routes,
};

/* ---- Facebook ---- */

static void fb_exchange(struct call *c)
{
	static const struct graph_rule rule = {.grant_type = "fb_exchange_token",
	                                       .token_param = "fb_exchange_token",
	                                       .client_id = true,
	                                       .client_secret = true};

	graph_token(c, &rule);
}

static json_t *graph_id(long long base, uint32_t grant, uint32_t page)
{
	return json_sprintf("%lld", base + (long long)grant * PAGES_PER_USER + page);
}

/* The "error" of /debug_token for an invalid input token. */
static json_t *debug_error(enum verdict v)
{
	enum fail why = FAIL_REVOKED;
	const char *message;
	int subcode;
	json_t *error;

	if (v == VERDICT_EXPIRED)
		why = FAIL_EXPIRED;
	else if (v == VERDICT_UNKNOWN || v == VERDICT_WRONG_KIND)
		why = FAIL_INVALID;
	message = graph_errors[why].message;
	subcode = graph_errors[why].subcode;
	if (v == VERDICT_NO_PAGE) {
		message = "Error validating access token: The user is not an administrator of the "
		          "page.";
		subcode = 492;
	}
	error = json_pack("{s:i, s:s}", "code", 190, "message", message);
	if (subcode)
		json_object_set_new(error, "subcode", json_integer(subcode));
	return error;
}

/* The "data" of /debug_token for input token ref, judged v. */
static json_t *debug_data(struct call *c, const char *app_token, enum verdict v,
                          const struct token_ref *ref)
{
	size_t app_len = strcspn(app_token, "|");
	bool page = ref->grant && ref->kind == KIND_PAGE;
	bool valid = v == VERDICT_OK;
	json_t *data =
	    json_pack("{s:s%, s:s}", "app_id", app_token, app_len, "application", "tokend fake");

	if (ref->grant) {
		struct session at = {.access_iat = ref->iat};
		int64_t expires = grants_expires_at(c->fake->grants, ref->grant, &at, KIND_ACCESS);
		json_object_set_new(data, "type", json_string(page ? "PAGE" : "USER"));
		json_object_set_new(data, "data_access_expires_at",
		                    json_integer(c->now + DATA_ACCESS_TTL_S));
		json_object_set_new(data, "expires_at", json_integer(page ? 0 : expires));
		json_object_set_new(data, "issued_at", json_integer(ref->iat));
		if (page)
			json_object_set_new(data, "profile_id",
			                    graph_id(PAGE_ID_BASE, ref->grant->id, ref->gen));
	}
	if (!valid)
		json_object_set_new(data, "error", debug_error(v));
	json_object_set_new(data, "is_valid", json_boolean(valid));
	json_object_set_new(data, "scopes",
	                    valid ? json_pack("[s,s,s,s]", "pages_show_list", "pages_manage_posts",
	                                      "pages_read_engagement", "public_profile")
	                          : json_array());
	if (ref->grant)
		json_object_set_new(data, "user_id", graph_id(USER_ID_BASE, ref->grant->id, 0));
	return json_pack("{s:o}", "data", data);
}

/* debug_token's access_token is the app token "app_id|app_secret": checked
 * like the client credentials of the other endpoints. */
static bool app_token_ok(struct call *c, const char *app)
{
	const char *bar = strchr(app, '|');
	char id[256];

	if (!bar || (size_t)(bar - app) >= sizeof(id))
		return false;
	memcpy(id, app, (size_t)(bar - app));
	id[bar - app] = '\0';
	return plat_client_ok(c, id, bar + 1);
}

static void fb_debug_token(struct call *c)
{
	const char *input, *app;
	struct token_ref ref = {0};
	enum verdict v;

	if (!(input = require(c, "input_token")) || !(app = require(c, "access_token")))
		return;
	if (!app_token_ok(c, app)) {
		plat_fail(c, FAIL_CLIENT, NULL);
		return;
	}
	v = grants_check(c->fake->grants, PLAT_FACEBOOK, KIND_ANY, input, c->now, &ref);
	if (v == VERDICT_UNKNOWN)
		ref.grant = NULL;
	if (c->force_dead && v == VERDICT_OK)
		v = VERDICT_REVOKED;
	plat_ok(c, debug_data(c, app, v, &ref));
}

/* The user behind access_token, or NULL after answering. */
static struct grant *user(struct call *c)
{
	const char *token = require(c, "access_token");
	struct token_ref ref;
	enum verdict v;

	if (!token)
		return NULL;
	v = grants_check(c->fake->grants, PLAT_FACEBOOK, KIND_ACCESS, token, c->now, &ref);
	return plat_accept(c, v) ? ref.grant : NULL;
}

static json_t *page_token(struct call *c, const struct grant *g, uint32_t page)
{
	char token[TOKEN_MAX];

	if (grants_page_token(c->fake->grants, g, page, c->now, token, sizeof(token)) < 0)
		return json_null();
	return json_string(token);
}

static json_t *page_entry(struct call *c, const struct grant *g, uint32_t page)
{
	return json_pack("{s:o, s:s, s:[{s:s, s:s}], s:o, s:o, s:[s,s,s,s,s,s]}", "access_token",
	                 page_token(c, g, page), "category", "Software", "category_list", "id",
	                 "2211", "name", "Software", "name", json_sprintf("Fake Page %u", page + 1),
	                 "id", graph_id(PAGE_ID_BASE, g->id, page), "tasks", "ADVERTISE", "ANALYZE",
	                 "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE");
}

static void fb_accounts(struct call *c)
{
	struct grant *g = user(c);
	json_t *data, *body;

	if (!g)
		return;
	data = json_array();
	for (uint32_t i = 0; i < g->pages; i++)
		json_array_append_new(data, page_entry(c, g, i));
	body = json_pack("{s:o}", "data", data);
	if (g->pages > 0)
		json_object_set_new(body, "paging",
		                    json_pack("{s:{s:s, s:s}}", "cursors", "before", "QVFIUmZA",
		                              "after", "QVFIUmZB"));
	plat_ok(c, body);
}

/* GET /{page-id}?fields=access_token with the managing user's token. */
static void fb_page(struct call *c)
{
	long long id = strtoll(c->subpath + 1, NULL, 10) - PAGE_ID_BASE;
	const char *fields;
	struct grant *g = user(c);
	uint32_t page;

	if (!g)
		return;
	page = (uint32_t)(id % PAGES_PER_USER);
	if (id < 0 || id / PAGES_PER_USER != g->id || page >= g->pages) {
		plat_fail(c, FAIL_NO_OBJECT, NULL);
		return;
	}
	fields = wire_param(c, "fields");
	if (fields && strstr(fields, "access_token"))
		plat_ok(c, json_pack("{s:o, s:o}", "access_token", page_token(c, g, page), "id",
		                     graph_id(PAGE_ID_BASE, g->id, page)));
	else
		plat_ok(c, json_pack("{s:o, s:o}", "name", json_sprintf("Fake Page %u", page + 1),
		                     "id", graph_id(PAGE_ID_BASE, g->id, page)));
}

static const struct route facebook_routes[] = {
    {EVHTTP_REQ_GET, "/oauth/access_token", fb_exchange},
    {EVHTTP_REQ_GET, "/debug_token", fb_debug_token},
    {EVHTTP_REQ_GET, "/me/accounts", fb_accounts},
    {EVHTTP_REQ_GET, "/{id}", fb_page},
    {0, NULL, NULL},
};

const struct plat plat_facebook = {
    .name = "facebook",
    .versioned = true,
    .access_only = true,
    .access_ttl_s = META_TTL_S,
    .fail = graph_fail,
    .routes = facebook_routes,
};
