/* admin: evhttp handlers for health, readiness, metrics and the schedule. */
#include "daemon/admin.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/secret.h"
#include "daemon/accounts.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/log.h"
#include "daemon/relay.h"
#include "daemon/seal.h"
#include "daemon/store.h"
#include "platforms/platform.h"
#include "scheduler/sched.h"

#define SCHEDULE_DEFAULT_LIMIT 100
#define SCHEDULE_MAX_LIMIT 10000

#define TOKEN_DIGEST_LEN 32 /* SHA-256 */

struct admin {
	struct daemon *d;
	struct evhttp *http;
	/* admin_token_file: only the token's digest is kept, so comparing
	 * takes the same time whatever the length or content offered. */
	bool need_token;
	uint8_t token_digest[TOKEN_DIGEST_LEN];
};

static void reply_json(struct evhttp_request *req, int code, json_t *body)
{
	struct evbuffer *buf = evbuffer_new();
	char *text = json_dumps(body, JSON_COMPACT);
	if (buf && text) {
		evbuffer_add_printf(buf, "%s\n", text);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		                  "application/json");
		evhttp_send_reply(req, code, NULL, buf);
	} else {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
	}
	free(text);
	evbuffer_free(buf);
	json_decref(body);
}

static void reply_error(struct admin *adm, struct evhttp_request *req, int code,
                        const char *message)
{
	if (code >= 400 && code < 500)
		adm->d->metrics.bad_input[BAD_ADMIN_REQUEST]++;
	reply_json(req, code,
	           json_pack("{s:{s:i,s:s}}", "error", "status", code, "message", message));
}

/* RFC 3339 UTC with milliseconds. */
static void format_time(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static json_t *entry_json(const struct sched_entry *e, int64_t now)
{
	char id[37], due[32];
	seal_format_uuid(e->id, id);
	const struct platform *p = platform_at(e->platform);
	json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "account_id", id, "platform", p ? p->name : "?",
	                      "action", policy_action_name(e->action), "in_flight", e->in_flight);
	if (o && e->due_ms) {
		format_time(e->due_ms, due);
		json_object_set_new(o, "due_at", json_string(due));
		json_object_set_new(o, "due_in_seconds",
		                    json_real((double)(e->due_ms - now) / 1e3));
	}
	return o;
}

struct walk {
	json_t *entries;
	int64_t now;
};

static bool add_entry(const struct sched_entry *e, void *arg)
{
	struct walk *w = arg;
	return json_array_append_new(w->entries, entry_json(e, w->now)) == 0;
}

/* ?limit=N: 1..SCHEDULE_MAX_LIMIT; -1 when malformed. */
static long parse_limit(const char *query)
{
	struct evkeyvalq params = {0};
	long limit = SCHEDULE_DEFAULT_LIMIT;
	if (query && evhttp_parse_query_str(query, &params) < 0)
		return -1;
	const char *text = evhttp_find_header(&params, "limit");
	if (text) {
		char *end;
		errno = 0;
		limit = strtol(text, &end, 10);
		if (errno || end == text || *end || limit < 1 || limit > SCHEDULE_MAX_LIMIT)
			limit = -1;
	}
	evhttp_clear_headers(&params);
	return limit;
}

static void get_schedule(struct admin *adm, struct evhttp_request *req, const char *query)
{
	long limit = parse_limit(query);
	if (limit < 0) {
		reply_error(adm, req, HTTP_BADREQUEST, "limit must be an integer from 1 to 10000");
		return;
	}
	struct daemon *d = adm->d;
	struct walk w = {.entries = json_array(), .now = sched_now_ms()};
	if (!w.entries || sched_walk_upcoming(d->sched, (size_t)limit, add_entry, &w) < 0) {
		json_decref(w.entries);
		reply_error(adm, req, HTTP_INTERNAL, "out of memory");
		return;
	}
	reply_json(req, HTTP_OK,
	           json_pack("{s:I,s:I,s:I,s:o}", "accounts", (json_int_t)sched_size(d->sched),
	                     "pending", (json_int_t)sched_pending(d->sched), "in_flight",
	                     (json_int_t)sched_in_flight(d->sched), "upcoming", w.entries));
}

static void get_account(struct admin *adm, struct evhttp_request *req, const char *id_text)
{
	uint8_t id[SCHED_ID_LEN];
	struct sched_entry e;
	if (!seal_parse_uuid(id_text, id)) {
		reply_error(adm, req, HTTP_BADREQUEST, "account id must be a uuid");
		return;
	}
	if (!sched_get(adm->d->sched, id, &e)) {
		reply_error(adm, req, HTTP_NOTFOUND, "no such account in the schedule");
		return;
	}
	reply_json(req, HTTP_OK, entry_json(&e, sched_now_ms()));
}

/* The relay's state for /readyz: reported, not part of readiness (a Redis
 * outage must not take the whole service out; the outbox holds the events;
 * docs/events.md). backlog is null until first counted. */
static json_t *events_json(const struct daemon *d)
{
	struct relay_stats s;
	relay_stats(d->relay, &s);
	return json_pack("{s:b,s:b,s:o,s:f}", "redis", s.redis_up, "relaying", s.relaying,
	                 "backlog", s.backlog < 0 ? json_null() : json_integer(s.backlog),
	                 "oldest_unpublished_seconds", s.oldest_seconds);
}

static void get_readyz(struct admin *adm, struct evhttp_request *req)
{
	struct daemon *d = adm->d;
	bool db = store_connected(d->store), loaded = accounts_loaded(d->accounts);
	bool ready = d->ready && db && loaded && !d->stopping;
	reply_json(req, ready ? HTTP_OK : 503,
	           json_pack("{s:b,s:{s:b,s:b,s:b},s:o}", "ready", ready, "checks", "database", db,
	                     "loaded", loaded, "stopping", d->stopping, "events", events_json(d)));
}

static void get_metrics(struct admin *adm, struct evhttp_request *req)
{
	struct evbuffer *buf = evbuffer_new();
	if (!buf) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	metrics_render(adm->d, buf);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, NULL, buf);
	evbuffer_free(buf);
}

/* A POST /v1/accounts/{id}/refresh waiting for PostgreSQL. If the client
 * goes away first, evhttp frees the request: the close callback forgets it. */
struct pending_refresh {
	struct admin *adm;
	struct evhttp_request *req; /* NULL once the client went away */
	char id[37];
};

static void client_gone(struct evhttp_connection *conn, void *arg)
{
	struct pending_refresh *p = arg;
	p->req = NULL;
}

static void refresh_requested(const PGresult *res, void *arg)
{
	struct pending_refresh *p = arg;
	if (p->req) {
		evhttp_connection_set_closecb(evhttp_request_get_connection(p->req), NULL, NULL);
		if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
			reply_error(p->adm, p->req, 503, "PostgreSQL is unavailable; try again");
		else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
			reply_error(p->adm, p->req, HTTP_NOTFOUND, "no such active account");
		else
			reply_json(
			    p->req, 202,
			    json_pack("{s:s,s:b}", "account_id", p->id, "refresh_requested", 1));
	}
	free(p);
}

/* ?token_version=N (the version that failed): copied to out, "" when
 * absent; -1 when malformed. */
static int seen_version(const char *query, char out[24])
{
	struct evkeyvalq params = {0};
	out[0] = '\0';
	if (query && evhttp_parse_query_str(query, &params) < 0)
		return -1;
	const char *text = evhttp_find_header(&params, "token_version");
	int rc = 0;
	if (text) {
		char *end;
		errno = 0;
		long long v = strtoll(text, &end, 10);
		if (errno || end == text || *end || v < 1)
			rc = -1;
		else
			snprintf(out, 24, "%lld", v);
	}
	evhttp_clear_headers(&params);
	return rc;
}

/* POST /v1/accounts/{id}/refresh[?token_version=N]: the same path as the API's SQL call
 * (tokend_request_refresh), so duplicate requests coalesce into one refresh
 * and a request survives a restart. */
static void post_refresh(struct admin *adm, struct evhttp_request *req, const char *rest,
                         const char *query)
{
	uint8_t id[SCHED_ID_LEN];
	char text[37], seen[24];
	const char *slash = strchr(rest, '/');
	if (!slash || strcmp(slash, "/refresh") != 0 || slash - rest != 36) {
		reply_error(adm, req, HTTP_NOTFOUND, "no such endpoint");
		return;
	}
	memcpy(text, rest, 36);
	text[36] = '\0';
	if (!seal_parse_uuid(text, id)) {
		reply_error(adm, req, HTTP_BADREQUEST, "account id must be a uuid");
		return;
	}
	if (seen_version(query, seen) < 0) {
		reply_error(adm, req, HTTP_BADREQUEST, "token_version must be a positive integer");
		return;
	}
	struct pending_refresh *p = calloc(1, sizeof(*p));
	const char *params[] = {text, seen[0] ? seen : NULL};
	if (!p) {
		reply_error(adm, req, HTTP_INTERNAL, "out of memory");
		return;
	}
	*p = (struct pending_refresh){.adm = adm, .req = req};
	seal_format_uuid(id, p->id);
	if (store_query(adm->d->store, "SELECT tokend_request_refresh($1, $2)", 2, params,
	                refresh_requested, p) < 0) {
		free(p);
		reply_error(adm, req, 503, "PostgreSQL is unavailable; try again");
		return;
	}
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), client_gone, p);
}

static void route_get(struct admin *adm, struct evhttp_request *req, const char *path,
                      const char *query)
{
	static const char accounts_prefix[] = "/v1/accounts/";
	if (strcmp(path, "/healthz") == 0)
		reply_json(req, HTTP_OK, json_pack("{s:s}", "status", "ok"));
	else if (strcmp(path, "/readyz") == 0)
		get_readyz(adm, req);
	else if (strcmp(path, "/metrics") == 0)
		get_metrics(adm, req);
	else if (strcmp(path, "/v1/schedule") == 0)
		get_schedule(adm, req, query);
	else if (strncmp(path, accounts_prefix, sizeof(accounts_prefix) - 1) == 0)
		get_account(adm, req, path + sizeof(accounts_prefix) - 1);
	else
		reply_error(adm, req, HTTP_NOTFOUND, "no such endpoint");
}

static int token_digest(const void *token, size_t len, uint8_t out[TOKEN_DIGEST_LEN])
{
	unsigned int n = 0;
	return EVP_Digest(token, len, out, &n, EVP_sha256(), NULL) == 1 && n == TOKEN_DIGEST_LEN
	           ? 0
	           : -1;
}

/* "Authorization: Bearer <token>" (scheme case-insensitive, RFC 7235)
 * with the configured token, compared in constant time. */
static bool authorized(const struct admin *adm, struct evhttp_request *req)
{
	static const char scheme[] = "bearer ";
	const char *value =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	uint8_t offered[TOKEN_DIGEST_LEN];
	if (!value || strncasecmp(value, scheme, sizeof(scheme) - 1) != 0)
		return false;
	value += sizeof(scheme) - 1;
	value += strspn(value, " ");
	if (token_digest(value, strlen(value), offered) < 0)
		return false;
	bool ok = CRYPTO_memcmp(offered, adm->token_digest, TOKEN_DIGEST_LEN) == 0;
	OPENSSL_cleanse(offered, sizeof(offered));
	return ok;
}

static void reply_unauthorized(struct admin *adm, struct evhttp_request *req)
{
	char *peer = NULL;
	ev_uint16_t port = 0;
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &port);
	log_warnx("admin: refused a request from %s:%u without a valid bearer token",
	          peer ? peer : "?", (unsigned)port);
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
	                  "Bearer realm=\"tokend\"");
	reply_error(adm, req, 401, "a valid 'Authorization: Bearer <token>' header is required");
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct admin *adm = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (!path) {
		reply_error(adm, req, HTTP_BADREQUEST, "malformed request target");
		return;
	}
	if (adm->need_token && strcmp(path, "/healthz") != 0 && !authorized(adm, req)) {
		reply_unauthorized(adm, req);
		return;
	}
	static const char accounts_prefix[] = "/v1/accounts/";
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	if (method == EVHTTP_REQ_POST &&
	    strncmp(path, accounts_prefix, sizeof(accounts_prefix) - 1) == 0)
		post_refresh(adm, req, path + sizeof(accounts_prefix) - 1,
		             evhttp_uri_get_query(uri));
	else if (method != EVHTTP_REQ_GET)
		reply_error(adm, req, HTTP_BADMETHOD, "method not allowed");
	else
		route_get(adm, req, path, evhttp_uri_get_query(uri));
}

static int split_listen(const char *listen, char *host, size_t hostlen, unsigned *port)
{
	const char *colon = strrchr(listen, ':');
	char *end;
	if (!colon || (size_t)(colon - listen) >= hostlen)
		return -1;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (*end || p > 65535)
		return -1;
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	/* [::1]:9180 */
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host) - 2);
		host[strlen(host) - 2] = '\0';
	}
	*port = (unsigned)p;
	return 0;
}

/* Read admin_token_file (when set) and keep its digest; the token itself is
 * wiped at once. */
static int load_token(struct admin *adm, const char *path, char *err, size_t errlen)
{
	struct secret token = {0};
	char why[256];
	if (!path[0])
		return 0;
	if (secret_read_file(path, &token, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "admin_token_file: %s", why);
		return -1;
	}
	bool printable = token.len > 0;
	for (size_t i = 0; i < token.len; i++)
		printable = printable && token.data[i] > 0x20 && token.data[i] < 0x7f;
	int rc = -1;
	if (!printable)
		snprintf(err, errlen,
		         "admin_token_file %s: the token must be one line of printable characters, "
		         "without spaces",
		         path);
	else if (token_digest(token.data, token.len, adm->token_digest) < 0)
		snprintf(err, errlen, "admin_token_file: cannot hash the token");
	else
		rc = 0;
	secret_free(&token);
	adm->need_token = rc == 0;
	return rc;
}

struct admin *admin_new(struct daemon *d, const char *listen, char *err, size_t errlen)
{
	char host[256];
	unsigned port;
	if (split_listen(listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "admin_listen: expected host:port, got '%s'", listen);
		return NULL;
	}
	struct admin *adm = calloc(1, sizeof(*adm));
	if (!adm || !(adm->http = evhttp_new(d->base))) {
		snprintf(err, errlen, "out of memory");
		free(adm);
		return NULL;
	}
	adm->d = d;
	if (load_token(adm, d->cfg->admin_token_file, err, errlen) < 0) {
		admin_free(adm);
		return NULL;
	}
	evhttp_set_allowed_methods(adm->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(adm->http, 16384);
	evhttp_set_max_body_size(adm->http, 65536);
	evhttp_set_timeout(adm->http, 10);
	evhttp_set_gencb(adm->http, handle, adm);
	if (evhttp_bind_socket(adm->http, host, (uint16_t)port) < 0) {
		snprintf(err, errlen, "admin_listen: cannot listen on %s: %s", listen,
		         strerror(errno));
		admin_free(adm);
		return NULL;
	}
	log_info("admin: listening on %s%s", listen,
	         adm->need_token ? " (bearer token required but for /healthz)" : "");
	return adm;
}

void admin_free(struct admin *adm)
{
	if (!adm)
		return;
	evhttp_free(adm->http);
	OPENSSL_cleanse(adm->token_digest, sizeof(adm->token_digest));
	free(adm);
}
