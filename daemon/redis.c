/* redis: a hiredis async connection driven by libevent, with reconnects. */
#include "daemon/redis.h"

#include "common/codec.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/log.h"

#define CONNECT_TIMEOUT_MS 10000
#define DEFAULT_PORT 6379
#define DB_MAX 100000

/* event_free() is not NULL-safe. */
static void free_event(struct event *ev)
{
	if (ev)
		event_free(ev);
}

enum redis_state { REDIS_DOWN, REDIS_RESOLVING, REDIS_CONNECTING, REDIS_UP };

struct redis {
	struct event_base *base;
	struct redis_target target;
	char where[300]; /* for logs */
	struct redis_handlers handlers;
	enum redis_state state;
	redisAsyncContext *ac; /* the live context; NULL when none */
	struct evdns_base *dns;
	struct evdns_getaddrinfo_request *dns_req;
	struct event *retry_ev, *deadline_ev;
	int64_t reconnect_min_ms, reconnect_max_ms, backoff_ms;
	bool freeing;
};

/* ---- URL parsing ---- */

/* Percent-decode len bytes of s into out (n bytes). -1 when malformed or
 * too long. */
static int decode(const char *s, size_t len, char *out, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			int hi = i + 2 < len ? codec_hex_value(s[i + 1]) : -1;
			int lo = hi >= 0 ? codec_hex_value(s[i + 2]) : -1;
			if (lo < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == '\0' || o + 1 >= n)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* "user:password" (either may be empty, the colon is required). */
static int parse_userinfo(const char *s, size_t len, struct redis_target *t, char *err,
                          size_t errlen)
{
	const char *colon = memchr(s, ':', len);
	if (!colon) {
		snprintf(err, errlen, "redis_url: credentials must be user:password or :password");
		return -1;
	}
	if (decode(s, (size_t)(colon - s), t->user, sizeof(t->user)) < 0 ||
	    decode(colon + 1, len - (size_t)(colon + 1 - s), t->password, sizeof(t->password)) <
	        0) {
		snprintf(err, errlen, "redis_url: malformed or too long credentials");
		return -1;
	}
	return 0;
}

static int parse_number(const char *s, size_t len, long max, long *out)
{
	long v = 0;
	if (len == 0 || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* "host", "host:port", "[v6]" or "[v6]:port". */
static int parse_hostport(const char *s, size_t len, struct redis_target *t, char *err,
                          size_t errlen)
{
	const char *host = s, *port = NULL;
	size_t host_len = len;
	long p = DEFAULT_PORT;
	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (!close || (close + 1 < s + len && close[1] != ':'))
			goto bad;
		host = s + 1;
		host_len = (size_t)(close - s - 1);
		port = close + 1 < s + len ? close + 2 : NULL;
	} else {
		const char *colon = memchr(s, ':', len);
		host_len = colon ? (size_t)(colon - s) : len;
		port = colon ? colon + 1 : NULL;
	}
	if (host_len == 0 || host_len >= sizeof(t->host) || memchr(host, '%', host_len))
		goto bad;
	if (port && parse_number(port, (size_t)(s + len - port), 65535, &p) < 0)
		goto bad;
	if (p < 1)
		goto bad;
	memcpy(t->host, host, host_len);
	t->host[host_len] = '\0';
	t->port = (int)p;
	return 0;
bad:
	snprintf(err, errlen, "redis_url: expected host[:port] after redis://");
	return -1;
}

/* Split "[userinfo@]rest": rest returned, userinfo parsed. */
static const char *take_userinfo(const char *s, size_t *len, struct redis_target *t, char *err,
                                 size_t errlen, bool *failed)
{
	const char *at = memchr(s, '@', *len);
	*failed = false;
	if (!at)
		return s;
	if (parse_userinfo(s, (size_t)(at - s), t, err, errlen) < 0) {
		*failed = true;
		return NULL;
	}
	*len -= (size_t)(at + 1 - s);
	return at + 1;
}

static int parse_tcp(const char *s, struct redis_target *t, char *err, size_t errlen)
{
	size_t len = strlen(s);
	bool failed;
	const char *rest = take_userinfo(s, &len, t, err, errlen, &failed);
	if (failed)
		return -1;
	const char *slash = memchr(rest, '/', len);
	size_t hp_len = slash ? (size_t)(slash - rest) : len;
	if (parse_hostport(rest, hp_len, t, err, errlen) < 0)
		return -1;
	long db = 0;
	if (slash && slash + 1 < rest + len &&
	    parse_number(slash + 1, len - hp_len - 1, DB_MAX, &db) < 0) {
		snprintf(err, errlen, "redis_url: the path must be a database number");
		return -1;
	}
	t->db = (int)db;
	return 0;
}

static int parse_unix(const char *s, struct redis_target *t, char *err, size_t errlen)
{
	size_t len = strlen(s);
	bool failed;
	const char *path = take_userinfo(s, &len, t, err, errlen, &failed);
	if (failed)
		return -1;
	const char *query = memchr(path, '?', len);
	size_t path_len = query ? (size_t)(query - path) : len;
	long db = 0;
	if (path_len == 0 || path[0] != '/' || path_len >= sizeof(t->path)) {
		snprintf(err, errlen, "redis_url: expected an absolute socket path after unix://");
		return -1;
	}
	if (query && (strncmp(query, "?db=", 4) != 0 ||
	              parse_number(query + 4, len - path_len - 4, DB_MAX, &db) < 0)) {
		snprintf(err, errlen, "redis_url: the only query parameter is db=N");
		return -1;
	}
	memcpy(t->path, path, path_len);
	t->path[path_len] = '\0';
	t->db = (int)db;
	return 0;
}

int redis_parse_url(const char *url, struct redis_target *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	if (strncmp(url, "redis://", 8) == 0)
		return parse_tcp(url + 8, t, err, errlen);
	if (strncmp(url, "unix://", 7) == 0)
		return parse_unix(url + 7, t, err, errlen);
	if (url[0] == '/')
		return parse_unix(url, t, err, errlen);
	if (strncmp(url, "rediss://", 9) == 0)
		snprintf(err, errlen,
		         "redis_url: TLS (rediss://) is not supported; use a local "
		         "TLS proxy or a unix socket");
	else
		snprintf(err, errlen,
		         "redis_url: expected redis://host[:port][/db], "
		         "unix:///path[?db=N] or /path");
	return -1;
}

void redis_target_describe(const struct redis_target *t, char *buf, size_t n)
{
	if (t->path[0])
		snprintf(buf, n, "%s", t->path);
	else if (strchr(t->host, ':'))
		snprintf(buf, n, "[%s]:%d", t->host, t->port);
	else
		snprintf(buf, n, "%s:%d", t->host, t->port);
}

/* ---- the connection ---- */

static void connect_start(struct redis *rc);

static void schedule_reconnect(struct redis *rc)
{
	int64_t delay = rc->backoff_ms;
	delay -= delay > 4 ? (int64_t)(random() % (delay / 4)) : 0;
	rc->backoff_ms =
	    rc->backoff_ms * 2 > rc->reconnect_max_ms ? rc->reconnect_max_ms : rc->backoff_ms * 2;
	struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
	evtimer_add(rc->retry_ev, &tv);
	log_info("redis: reconnecting to %s in %lld ms", rc->where, (long long)delay);
}

/* The connection is gone (rc->ac already detached): tell the owner, retry. */
static void lost(struct redis *rc)
{
	bool was_up = rc->state == REDIS_UP;
	rc->state = REDIS_DOWN;
	evtimer_del(rc->deadline_ev);
	if (was_up && rc->handlers.down)
		rc->handlers.down(rc->handlers.arg);
	schedule_reconnect(rc);
}

void redis_drop(struct redis *rc, const char *why)
{
	redisAsyncContext *ac = rc->ac;
	if (!ac)
		return;
	log_warnx("redis: dropping the connection to %s: %s", rc->where, why);
	rc->ac = NULL;
	lost(rc);
	redisAsyncFree(ac); /* deferred by hiredis when inside a callback */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis *rc = ac->data;
	if (rc->ac != ac)
		return; /* dropped or freed by us */
	rc->ac = NULL;
	log_warnx("redis: connection to %s lost: %s", rc->where,
	          ac->errstr && ac->errstr[0] ? ac->errstr : "closed");
	lost(rc);
}

static void on_ready(redisAsyncContext *ac, void *reply_ptr, void *arg)
{
	struct redis *rc = arg;
	redisReply *reply = reply_ptr;
	if (!reply || rc->ac != ac || rc->state != REDIS_CONNECTING)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		char why[300];
		snprintf(why, sizeof(why), "PING refused: %s", reply->str);
		redis_drop(rc, why);
		return;
	}
	evtimer_del(rc->deadline_ev);
	rc->state = REDIS_UP;
	rc->backoff_ms = rc->reconnect_min_ms;
	log_notice("redis: connected to %s", rc->where);
	if (rc->handlers.up)
		rc->handlers.up(rc->handlers.arg);
}

/* AUTH and SELECT: an error reply drops the connection with Redis's words. */
static void on_setup_reply(redisAsyncContext *ac, void *reply_ptr, void *arg)
{
	struct redis *rc = ac->data;
	redisReply *reply = reply_ptr;
	if (!reply || rc->ac != ac || reply->type != REDIS_REPLY_ERROR)
		return;
	char why[300];
	snprintf(why, sizeof(why), "%s refused: %s", (const char *)arg, reply->str);
	redis_drop(rc, why);
}

static void send_setup(struct redis *rc, redisAsyncContext *ac)
{
	const struct redis_target *t = &rc->target;
	if (t->password[0] && t->user[0])
		redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s %s", t->user, t->password);
	else if (t->password[0])
		redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", t->password);
	if (t->db > 0)
		redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %d", t->db);
	redisAsyncCommand(ac, on_ready, rc, "PING");
}

static void on_connect(const redisAsyncContext *cac, int status)
{
	struct redis *rc = cac->data;
	if (rc->ac != cac)
		return;
	if (status != REDIS_OK) {
		rc->ac = NULL; /* hiredis frees it after this callback */
		log_warnx("redis: cannot connect to %s: %s", rc->where,
		          cac->errstr ? cac->errstr : "unknown error");
		lost(rc);
		return;
	}
	send_setup(rc, rc->ac);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	redis_drop(arg, "connect timed out");
}

/* A context for ip (numeric) or the socket path, attached to the loop. */
static void connect_to(struct redis *rc, const char *ip)
{
	redisAsyncContext *ac =
	    ip ? redisAsyncConnect(ip, rc->target.port) : redisAsyncConnectUnix(rc->target.path);
	if (!ac || ac->err) {
		log_warnx("redis: cannot connect to %s: %s", rc->where,
		          ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		lost(rc);
		return;
	}
	if (ip)
		redisEnableKeepAlive(&ac->c);
	ac->data = rc;
	redisLibeventAttach(ac, rc->base);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	rc->ac = ac;
	rc->state = REDIS_CONNECTING;
	struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, 0};
	evtimer_add(rc->deadline_ev, &tv);
}

/* The first IPv4 address, else the first one, as text. */
static int pick_address(const struct evutil_addrinfo *ai, char *ip, size_t n)
{
	const struct evutil_addrinfo *pick = ai;
	for (const struct evutil_addrinfo *a = ai; a; a = a->ai_next)
		if (a->ai_family == AF_INET) {
			pick = a;
			break;
		}
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
	const void *addr = &v4.sin_addr;
	if (pick->ai_family == AF_INET && pick->ai_addrlen >= sizeof(v4)) {
		memcpy(&v4, pick->ai_addr, sizeof(v4)); /* ai_addr may be unaligned for the cast */
	} else if (pick->ai_family == AF_INET6 && pick->ai_addrlen >= sizeof(v6)) {
		memcpy(&v6, pick->ai_addr, sizeof(v6));
		addr = &v6.sin6_addr;
	} else {
		return -1;
	}
	return evutil_inet_ntop(pick->ai_family, addr, ip, n) ? 0 : -1;
}

static void on_resolved(int result, struct evutil_addrinfo *ai, void *arg)
{
	struct redis *rc = arg;
	char ip[64];
	rc->dns_req = NULL;
	if (result == EVUTIL_EAI_CANCEL)
		return;
	if (result != 0 || !ai || pick_address(ai, ip, sizeof(ip)) < 0) {
		log_warnx("redis: cannot resolve %s: %s", rc->target.host,
		          result ? evutil_gai_strerror(result) : "no address");
		if (ai)
			evutil_freeaddrinfo(ai);
		lost(rc);
		return;
	}
	evutil_freeaddrinfo(ai);
	connect_to(rc, ip);
}

static bool is_numeric(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void connect_start(struct redis *rc)
{
	if (rc->target.path[0] || is_numeric(rc->target.host)) {
		connect_to(rc, rc->target.path[0] ? NULL : rc->target.host);
		return;
	}
	if (!rc->dns &&
	    !(rc->dns = evdns_base_new(rc->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	                                             EVDNS_BASE_DISABLE_WHEN_INACTIVE))) {
		log_warnx("redis: cannot set up the DNS resolver");
		lost(rc);
		return;
	}
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	rc->state = REDIS_RESOLVING;
	rc->dns_req = evdns_getaddrinfo(rc->dns, rc->target.host, NULL, &hints, on_resolved, rc);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	connect_start(arg);
}

struct redis *redis_new(struct event_base *base, const struct redis_target *t,
                        int64_t reconnect_min_ms, int64_t reconnect_max_ms,
                        const struct redis_handlers *handlers)
{
	struct redis *rc = calloc(1, sizeof(*rc));
	if (!rc)
		return NULL;
	rc->base = base;
	rc->target = *t;
	rc->handlers = *handlers;
	redis_target_describe(t, rc->where, sizeof(rc->where));
	rc->retry_ev = evtimer_new(base, on_retry, rc);
	rc->deadline_ev = evtimer_new(base, on_deadline, rc);
	if (!rc->retry_ev || !rc->deadline_ev) {
		redis_free(rc);
		return NULL;
	}
	redis_set_backoff(rc, reconnect_min_ms, reconnect_max_ms);
	rc->backoff_ms = rc->reconnect_min_ms;
	connect_start(rc);
	return rc;
}

void redis_set_backoff(struct redis *rc, int64_t reconnect_min_ms, int64_t reconnect_max_ms)
{
	rc->reconnect_min_ms = reconnect_min_ms > 0 ? reconnect_min_ms : 1000;
	rc->reconnect_max_ms =
	    reconnect_max_ms >= rc->reconnect_min_ms ? reconnect_max_ms : rc->reconnect_min_ms;
	if (rc->backoff_ms > rc->reconnect_max_ms)
		rc->backoff_ms = rc->reconnect_max_ms;
}

void redis_free(struct redis *rc)
{
	if (!rc)
		return;
	rc->freeing = true;
	rc->handlers = (struct redis_handlers){0};
	if (rc->dns_req)
		evdns_getaddrinfo_cancel(rc->dns_req); /* calls on_resolved with CANCEL */
	if (rc->ac) {
		redisAsyncContext *ac = rc->ac;
		rc->ac = NULL;
		redisAsyncFree(ac);
	}
	if (rc->dns)
		evdns_base_free(rc->dns, 1);
	free_event(rc->retry_ev);
	free_event(rc->deadline_ev);
	OPENSSL_cleanse(rc->target.password, sizeof(rc->target.password));
	free(rc);
}

bool redis_is_up(const struct redis *rc)
{
	return rc && rc->state == REDIS_UP;
}

redisAsyncContext *redis_context(struct redis *rc)
{
	return redis_is_up(rc) ? rc->ac : NULL;
}
