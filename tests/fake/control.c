/* control: /_control/ endpoints. Requests are strict: unknown keys and
 * wrong types are refused with 400 {"error": ...}, so a typo in a test
 * fails loudly instead of injecting nothing. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "tests/fake/control.h"
#include "tests/fake/faults.h"
#include "tests/fake/grants.h"
#include "tests/fake/platforms.h"
#include "tests/fake/wire.h"

#define ERROR_MAX 256

struct control_route {
	enum evhttp_cmd_type method;
	const char *path;
	const char *const *keys; /* accepted keys of the input; NULL-terminated */
	/* input: the JSON body (POST) or the query as strings (GET); borrowed */
	void (*handle)(struct fake *fake, struct evhttp_request *req, json_t *input);
};

static void refuse(struct evhttp_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(struct evhttp_request *req, int status, const char *fmt, ...)
{
	char message[ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	wire_reply(req, status, json_pack("{s:s}", "error", message));
}

/* An optional integer within [min, max], or def; false (answered) when wrong. */
static bool int_arg(struct evhttp_request *req, json_t *input, const char *key, json_int_t def,
                    json_int_t min, json_int_t max, json_int_t *out)
{
	json_t *value = json_object_get(input, key);

	*out = value ? json_integer_value(value) : def;
	if (value && !json_is_integer(value)) {
		refuse(req, 400, "\"%s\" must be an integer", key);
		return false;
	}
	if (*out < min || *out > max) {
		refuse(req, 400,
		       "\"%s\" must be within [%" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT "]",
		       key, min, max);
		return false;
	}
	return true;
}

/* An optional string, or NULL; false (answered) when of another type. */
static bool str_arg(struct evhttp_request *req, json_t *input, const char *key, const char **out)
{
	json_t *value = json_object_get(input, key);

	*out = json_string_value(value);
	if (value && !*out) {
		refuse(req, 400, "\"%s\" must be a string", key);
		return false;
	}
	return true;
}

static bool bool_arg(struct evhttp_request *req, json_t *input, const char *key, bool *out)
{
	json_t *value = json_object_get(input, key);

	*out = json_is_true(value);
	if (value && !json_is_boolean(value)) {
		refuse(req, 400, "\"%s\" must be true or false", key);
		return false;
	}
	return true;
}

static bool fault_target(struct evhttp_request *req, json_t *input, struct fault *f)
{
	const char *platform, *endpoint;

	if (!str_arg(req, input, "platform", &platform) ||
	    !str_arg(req, input, "endpoint", &endpoint))
		return false;
	if (!platform) {
		refuse(req, 400, "\"platform\" is required: a platform name or \"*\"");
		return false;
	}
	f->plat = strcmp(platform, "*") == 0 ? -1 : plat_index(platform, strlen(platform));
	if (f->plat < 0 && strcmp(platform, "*") != 0) {
		refuse(req, 400, "unknown platform \"%s\"", platform);
		return false;
	}
	if (endpoint && strlen(endpoint) >= sizeof(f->endpoint)) {
		refuse(req, 400, "\"endpoint\" is too long");
		return false;
	}
	snprintf(f->endpoint, sizeof(f->endpoint), "%s", endpoint ? endpoint : "");
	return true;
}

static bool fault_kind(struct evhttp_request *req, json_t *input, struct fault *f)
{
	const char *kind;
	int k;

	if (!str_arg(req, input, "kind", &kind))
		return false;
	k = kind ? fault_kind_parse(kind) : -1;
	if (k < 0) {
		refuse(req, 400,
		       "\"kind\" must be one of 500, 429, delay, reset, malformed, oversized, "
		       "wrong_types, dead");
		return false;
	}
	f->kind = (enum fault_kind)k;
	return true;
}

static void control_fault(struct fake *fake, struct evhttp_request *req, json_t *input)
{
	struct fault f = {0};
	json_int_t count, retry_after, delay_ms, code, status;
	uint32_t id;

	if (!fault_target(req, input, &f) || !fault_kind(req, input, &f) ||
	    !int_arg(req, input, "count", 1, 1, 1000000000, &count) ||
	    !int_arg(req, input, "retry_after", 1, 0, 86400, &retry_after) ||
	    !int_arg(req, input, "delay_ms", 1000, 0, 600000, &delay_ms) ||
	    !int_arg(req, input, "code", 4, 1, 1000, &code) ||
	    !int_arg(req, input, "status", 400, 400, 599, &status) ||
	    !bool_arg(req, input, "commit", &f.commit))
		return;
	if (code != 1 && code != 2 && code != 4 && code != 17 && code != 32 && code != 341 &&
	    code != 368 && code != 613) {
		refuse(req, 400, "\"code\" must be 1, 2, 4, 17, 32, 341, 368 or 613");
		return;
	}
	f.count = (uint32_t)count;
	f.retry_after = (int)retry_after;
	f.delay_ms = (int)delay_ms;
	f.code = (int)code;
	f.status = (int)status;
	id = faults_add(fake->faults, &f);
	if (id == 0) {
		refuse(req, 500, "out of memory");
		return;
	}
	fake_log(fake, "fault #%u: %s x%u on %s%s%s", id, fault_kind_name(f.kind), f.count,
	         f.plat < 0 ? "*" : plat_get((enum plat_id)f.plat)->name, f.endpoint[0] ? " " : "",
	         f.endpoint);
	wire_reply(req, 200,
	           json_pack("{s:i, s:I}", "id", (json_int_t)id, "pending",
	                     (json_int_t)faults_pending(fake->faults)));
}

static void control_clear_faults(struct fake *fake, struct evhttp_request *req, json_t *input)
{
	faults_clear(fake->faults);
	wire_reply(req, 200, json_pack("{s:i}", "pending", 0));
}

static void put(json_t *object, const char *key, uint64_t value)
{
	json_object_set_new(object, key, json_integer((json_int_t)value));
}

static json_t *stats_object(const struct plat_stats *s, size_t grants)
{
	json_t *o = json_object();

	put(o, "requests", s->requests);
	put(o, "ok", s->ok);
	put(o, "rejected", s->rejected);
	put(o, "dead", s->dead);
	put(o, "reuse", s->reuse);
	put(o, "grace_reuse", s->grace_reuse);
	put(o, "faults", s->faults);
	put(o, "rate_limited", s->rate_limited);
	put(o, "grants", grants);
	return o;
}

static void add_stats(struct plat_stats *sum, const struct plat_stats *s)
{
	sum->requests += s->requests;
	sum->ok += s->ok;
	sum->rejected += s->rejected;
	sum->dead += s->dead;
	sum->reuse += s->reuse;
	sum->grace_reuse += s->grace_reuse;
	sum->faults += s->faults;
	sum->rate_limited += s->rate_limited;
}

static void control_stats(struct fake *fake, struct evhttp_request *req, json_t *input)
{
	json_t *out = json_object(), *platforms = json_object();
	struct plat_stats total = {0};
	size_t grants = 0;

	for (int i = 0; i < PLAT_COUNT; i++) {
		size_t n = grants_count(fake->grants, (enum plat_id)i);
		json_object_set_new(platforms, plat_get((enum plat_id)i)->name,
		                    stats_object(&fake->stats[i], n));
		add_stats(&total, &fake->stats[i]);
		grants += n;
	}
	put(out, "uptime_s", (uint64_t)(time(NULL) - fake->started));
	json_object_set_new(out, "platforms", platforms);
	json_object_set_new(out, "total", stats_object(&total, grants));
	put(out, "faults_pending", faults_pending(fake->faults));
	put(out, "unrouted", fake->unrouted);
	wire_reply(req, 200, out);
}

/* A grant adopted for a token the fake has not seen yet. */
static struct grant *adopt(struct fake *fake, const char *token, int plat)
{
	char kind = plat_get((enum plat_id)plat)->access_only ? KIND_ACCESS : KIND_REFRESH;

	if (strlen(token) >= TOKEN_MAX)
		return NULL;
	return grants_add(fake->grants, (enum plat_id)plat, token, kind, time(NULL));
}

/* The grant an account key names: a seed token, or a Bluesky identifier.
 * When create, an unseen seed is adopted, and an unseen identifier with
 * "platform":"bluesky" gets a locked grant (no password works). */
static struct grant *by_account(struct fake *fake, const char *account, const char *platform,
                                bool create)
{
	char key[TOKEN_MAX];
	struct grant *g = grants_by_key(fake->grants, account);
	int plat = grants_platform_of(account);

	snprintf(key, sizeof(key), "id:%s", account);
	if (!g)
		g = grants_by_key(fake->grants, key);
	if (g || !create)
		return g;
	if (plat >= 0 && (!platform || strcmp(platform, plat_get((enum plat_id)plat)->name) == 0))
		return adopt(fake, account, plat);
	if (!platform || strcmp(platform, "bluesky") != 0 || strlen(key) >= sizeof(key) - 1)
		return NULL;
	g = grants_add(fake->grants, PLAT_BLUESKY, key, 0, time(NULL));
	if (g)
		g->locked = true;
	return g;
}

/* The grant that "token" or "account" of input names; adopts unseen ones
 * when create. NULL (answered) when there is none. */
static struct grant *target(struct fake *fake, struct evhttp_request *req, json_t *input,
                            bool create)
{
	const char *token, *account, *platform;
	struct token_ref ref;
	struct grant *g = NULL;
	int plat;

	if (!str_arg(req, input, "token", &token) || !str_arg(req, input, "account", &account) ||
	    !str_arg(req, input, "platform", &platform))
		return NULL;
	if (!token == !account) {
		refuse(req, 400, "give exactly one of \"token\" and \"account\"");
		return NULL;
	}
	if (account) {
		g = by_account(fake, account, platform, create);
	} else if (grants_find(fake->grants, token, &ref)) {
		g = ref.grant;
	} else if (create && (plat = grants_platform_of(token)) >= 0) {
		g = adopt(fake, token, plat);
	}
	if (!g)
		refuse(req, 404,
		       "no such grant (tokens must start with \"<platform>-\"; Bluesky "
		       "identifiers need \"platform\":\"bluesky\")");
	return g;
}

static json_t *grant_summary(const struct grant *g)
{
	return json_pack("{s:I, s:s, s:s}", "grant", (json_int_t)g->id, "platform",
	                 plat_get(g->plat)->name, "key", g->key);
}

static void control_revoke(struct fake *fake, struct evhttp_request *req, json_t *input)
{
	struct grant *g;
	bool takedown;

	if (!bool_arg(req, input, "takedown", &takedown) || !(g = target(fake, req, input, true)))
		return;
	g->revoked = true;
	if (json_object_get(input, "account"))
		g->locked = true;
	if (takedown)
		g->takedown = true;
	fake_log(fake, "revoked %s grant %u%s", plat_get(g->plat)->name, g->id,
	         takedown ? " (takedown)" : "");
	wire_reply(req, 200, grant_summary(g));
}

static void control_reset(struct fake *fake, struct evhttp_request *req, json_t *input)
{
	grants_reset(fake->grants);
	faults_clear(fake->faults);
	memset(fake->stats, 0, sizeof(fake->stats));
	fake->unrouted = 0;
	fake_log(fake, "reset: all grants, faults and stats cleared");
	wire_reply(req, 200, json_pack("{s:b}", "reset", 1));
}

static void control_pages(struct fake *fake, struct evhttp_request *req, json_t *input)
{
	json_int_t count;
	struct grant *g;

	if (!int_arg(req, input, "count", -1, 0, GRANT_PAGES_MAX, &count) ||
	    !(g = target(fake, req, input, true)))
		return;
	if (g->plat != PLAT_FACEBOOK) {
		refuse(req, 400, "pages are for facebook grants");
		return;
	}
	g->pages = (uint32_t)count;
	wire_reply(req, 200, grant_summary(g));
}

static void set_token(struct fake *fake, json_t *out, const char *name, const struct grant *g,
                      char kind)
{
	char token[TOKEN_MAX];

	if (grants_token(fake->grants, g, &g->s, kind, token, sizeof(token)) >= 0)
		json_object_set_new(out, name, json_string(token));
	json_object_set_new(out, kind == KIND_ACCESS ? "access_expires_at" : "refresh_expires_at",
	                    json_integer(grants_expires_at(fake->grants, g, &g->s, kind)));
}

static void control_account(struct fake *fake, struct evhttp_request *req, json_t *input)
{
	struct grant *g = target(fake, req, input, false);
	json_t *out;

	if (!g)
		return;
	out = grant_summary(g);
	json_object_set_new(out, "revoked", json_boolean(g->revoked));
	json_object_set_new(out, "locked", json_boolean(g->locked));
	json_object_set_new(out, "takedown", json_boolean(g->takedown));
	put(out, "reuse", g->reuse);
	put(out, "access_generation", g->s.access_gen);
	put(out, "refresh_generation", g->s.refresh_gen);
	put(out, "pages", g->pages);
	json_object_set_new(out, "did", json_string(g->did));
	put(out, "created", (uint64_t)g->created);
	if (g->s.access_gen > 0 || g->seed_kind == KIND_ACCESS)
		set_token(fake, out, "access_token", g, KIND_ACCESS);
	if (!plat_get(g->plat)->access_only && (g->s.refresh_gen > 0 || g->seed_kind))
		set_token(fake, out, "refresh_token", g, KIND_REFRESH);
	wire_reply(req, 200, out);
}

static const char *const fault_keys[] = {
    "platform", "kind", "count",  "retry_after", "delay_ms",
    "endpoint", "code", "status", "commit",      NULL,
};
static const char *const revoke_keys[] = {"token", "account", "platform", "takedown", NULL};
static const char *const pages_keys[] = {"token", "account", "platform", "count", NULL};
static const char *const account_keys[] = {"token", "account", "platform", NULL};
static const char *const no_keys[] = {NULL};

static const struct control_route routes[] = {
    {EVHTTP_REQ_POST, "/_control/fault", fault_keys, control_fault},
    {EVHTTP_REQ_DELETE, "/_control/fault", no_keys, control_clear_faults},
    {EVHTTP_REQ_GET, "/_control/stats", no_keys, control_stats},
    {EVHTTP_REQ_POST, "/_control/revoke", revoke_keys, control_revoke},
    {EVHTTP_REQ_POST, "/_control/reset", no_keys, control_reset},
    {EVHTTP_REQ_POST, "/_control/pages", pages_keys, control_pages},
    {EVHTTP_REQ_GET, "/_control/account", account_keys, control_account},
};

/* The request's input: its JSON body for POST, its query for others. */
static json_t *load_input(struct evhttp_request *req, json_error_t *err)
{
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(body);
	struct evkeyvalq query;
	const char *q;
	json_t *input;

	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST && len > 0)
		return json_loadb((const char *)evbuffer_pullup(body, -1), len,
		                  JSON_REJECT_DUPLICATES, err);
	q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (evhttp_parse_query_str(q ? q : "", &query) < 0) {
		snprintf(err->text, sizeof(err->text), "malformed query string");
		return NULL;
	}
	input = json_object();
	for (struct evkeyval *kv = query.tqh_first; kv; kv = kv->next.tqe_next)
		json_object_set_new(input, kv->key, json_string(kv->value));
	evhttp_clear_headers(&query);
	return input;
}

static bool keys_ok(struct evhttp_request *req, json_t *input, const char *const *keys)
{
	const char *key;
	json_t *value;
	size_t i;

	json_object_foreach(input, key, value)
	{
		for (i = 0; keys[i] && strcmp(keys[i], key) != 0; i++)
			;
		if (!keys[i]) {
			refuse(req, 400, "unknown key \"%s\"", key);
			return false;
		}
	}
	return true;
}

void control_handle(struct fake *fake, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const struct control_route *route = NULL;
	bool path_known = false;
	json_error_t err;
	json_t *input;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(routes[i].path, path) != 0)
			continue;
		path_known = true;
		if (routes[i].method == method)
			route = &routes[i];
	}
	if (!route) {
		refuse(req, path_known ? 405 : 404, "%s %s",
		       path_known ? "method not allowed on" : "no such control endpoint", path);
		return;
	}
	input = load_input(req, &err);
	if (!json_is_object(input))
		refuse(req, 400, "input must be a JSON object: %s",
		       input ? "not an object" : err.text);
	else if (keys_ok(req, input, route->keys))
		route->handle(fake, req, input);
	json_decref(input);
}
