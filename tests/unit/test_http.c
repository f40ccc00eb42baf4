/* Unit tests for daemon/http.c against an evhttp server on 127.0.0.1 in the
 * same event loop: round trips, rate-limit headers, the size cap, timeouts,
 * refused connections, concurrency with connection reuse, a loop that keeps
 * running during a slow request, TLS failures, and freeing while busy. */
#include "daemon/http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/unit/check.h"
#include "tests/unit/http_tls.h"

static struct event_base *base;

/* ---- the server ---- */

/* What the server saw of the last request. */
struct seen {
	enum evhttp_cmd_type method;
	char uri[256];
	char body[256];
	size_t body_len;
	char content_type[256];
	char authorization[256];
	char user_agent[128];
	bool has_content_type, has_authorization, has_expect;
};

struct server {
	struct evhttp *http;
	SSL_CTX *tls; /* HTTPS when set */
	int port;
	int connections; /* accepted TCP connections */
	int requests;
	struct seen seen;
};

static struct server plain;

static bool copy_header(struct evhttp_request *req, const char *name, char *out, size_t cap)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
	if (v)
		snprintf(out, cap, "%s", v);
	return v != NULL;
}

static void record(struct server *s, struct evhttp_request *req)
{
	struct seen *seen = &s->seen;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	memset(seen, 0, sizeof(*seen));
	s->requests++;
	seen->method = evhttp_request_get_command(req);
	snprintf(seen->uri, sizeof(seen->uri), "%s", evhttp_request_get_uri(req));
	seen->body_len = evbuffer_get_length(in);
	CHECK(seen->body_len < sizeof(seen->body));
	evbuffer_copyout(in, seen->body, seen->body_len);
	seen->has_content_type =
	    copy_header(req, "Content-Type", seen->content_type, sizeof(seen->content_type));
	seen->has_authorization =
	    copy_header(req, "Authorization", seen->authorization, sizeof(seen->authorization));
	copy_header(req, "User-Agent", seen->user_agent, sizeof(seen->user_agent));
	seen->has_expect = evhttp_find_header(evhttp_request_get_input_headers(req), "Expect");
}

static void reply(struct evhttp_request *req, int status, const char *body)
{
	struct evbuffer *out = evbuffer_new();
	CHECK(out);
	evbuffer_add(out, body, strlen(body));
	evhttp_send_reply(req, status, "Whatever", out);
	evbuffer_free(out);
}

/* GET: 200 "you asked for <uri>"; POST: 201 "created". */
static void serve_echo(struct evhttp_request *req, void *arg)
{
	char body[300];
	record(arg, req);
	snprintf(body, sizeof(body), "you asked for %s", evhttp_request_get_uri(req));
	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST)
		reply(req, 201, "created");
	else
		reply(req, 200, body);
}

static void serve_limits(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	record(arg, req);
	evhttp_add_header(headers, "retry-after", "120");
	evhttp_add_header(headers, "X-RATE-LIMIT-RESET", "  1700000000 ");
	reply(req, 429, "slow down");
}

static size_t query_n(struct evhttp_request *req)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	size_t n = 0;
	CHECK(q && sscanf(q, "n=%zu", &n) == 1);
	return n;
}

/* n bytes with a Content-Length. */
static void serve_big(struct evhttp_request *req, void *arg)
{
	size_t n = query_n(req);
	struct evbuffer *out = evbuffer_new();
	char *bytes = malloc(n);
	CHECK(out && bytes);
	memset(bytes, 'x', n);
	evbuffer_add(out, bytes, n);
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
	free(bytes);
}

/* n bytes, chunked (no Content-Length: only the write callback can stop it). */
static void serve_chunked(struct evhttp_request *req, void *arg)
{
	size_t n = query_n(req);
	char chunk[100];
	struct evbuffer *out = evbuffer_new();
	CHECK(out);
	memset(chunk, 'y', sizeof(chunk));
	evhttp_send_reply_start(req, 200, "OK");
	for (size_t sent = 0; sent < n; sent += sizeof(chunk)) {
		evbuffer_add(out, chunk, n - sent < sizeof(chunk) ? n - sent : sizeof(chunk));
		evhttp_send_reply_chunk(req, out);
	}
	evhttp_send_reply_end(req);
	evbuffer_free(out);
}

/* Never answers (evhttp_free frees the request at the end). */
static void serve_hang(struct evhttp_request *req, void *arg)
{
	record(arg, req);
}

static void reply_late(evutil_socket_t fd, short what, void *arg)
{
	reply(arg, 200, "late");
}

/* Answers after 300 ms. */
static void serve_slow(struct evhttp_request *req, void *arg)
{
	struct timeval tv = {0, 300 * 1000};
	CHECK(event_base_once(base, -1, EV_TIMEOUT, reply_late, req, &tv) == 0);
}

/* evhttp's bevcb: one call per accepted connection. */
static struct bufferevent *count_connection(struct event_base *b, void *arg)
{
	struct server *s = arg;
	s->connections++;
	if (s->tls)
		return http_tls_bufferevent(b, s->tls);
	return bufferevent_socket_new(b, -1, BEV_OPT_CLOSE_ON_FREE);
}

static int bound_port(evutil_socket_t fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	return ntohs(sin.sin_port);
}

/* Start s on 127.0.0.1:<any port>, speaking TLS with tls (owned) if set. */
static void server_start(struct server *s, SSL_CTX *tls)
{
	memset(s, 0, sizeof(*s));
	s->tls = tls;
	CHECK((s->http = evhttp_new(base)));
	struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
	CHECK(sock);
	s->port = bound_port(evhttp_bound_socket_get_fd(sock));
	evhttp_set_bevcb(s->http, count_connection, s);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_cb(s->http, "/echo", serve_echo, s);
	evhttp_set_cb(s->http, "/limits", serve_limits, s);
	evhttp_set_cb(s->http, "/big", serve_big, s);
	evhttp_set_cb(s->http, "/chunked", serve_chunked, s);
	evhttp_set_cb(s->http, "/hang", serve_hang, s);
	evhttp_set_cb(s->http, "/slow", serve_slow, s);
}

static void server_stop(struct server *s)
{
	evhttp_free(s->http);
	SSL_CTX_free(s->tls);
}

/* ---- the client side ---- */

/* A copy of one response, and how often its callback ran. */
struct result {
	int calls;
	long status;
	char *body;
	size_t body_len;
	char *retry_after, *rate_limit_reset, *error;
	bool too_large;
	double total_seconds;
	int *pending; /* decremented on each call */
};

static bool sending; /* inside http_send(): no callback may run then */

static char *dup_or_null(const char *s)
{
	char *copy = s ? strdup(s) : NULL;
	CHECK(!s || copy);
	return copy;
}

static void on_done(const struct http_response *resp, void *arg)
{
	struct result *r = arg;
	CHECK(!sending);
	CHECK(resp->body && resp->body[resp->body_len] == '\0');
	r->calls++;
	r->status = resp->status;
	CHECK((r->body = malloc(resp->body_len + 1)));
	memcpy(r->body, resp->body, resp->body_len + 1);
	r->body_len = resp->body_len;
	r->retry_after = dup_or_null(resp->retry_after);
	r->rate_limit_reset = dup_or_null(resp->rate_limit_reset);
	r->error = dup_or_null(resp->error);
	r->too_large = resp->too_large;
	r->total_seconds = resp->total_seconds;
	if (r->pending)
		(*r->pending)--;
}

static void result_clear(struct result *r)
{
	free(r->body);
	free(r->retry_after);
	free(r->rate_limit_reset);
	free(r->error);
	memset(r, 0, sizeof(*r));
}

static void on_hung(evutil_socket_t fd, short what, void *arg)
{
	fprintf(stderr, "%s: test hung\n", (const char *)arg);
	exit(1);
}

/* Run the loop until *pending drops to 0 (a minute at most: a hang fails). */
static void run_until(const int *pending, const char *what)
{
	struct timeval limit = {60, 0};
	struct event *watchdog = evtimer_new(base, on_hung, (void *)what);
	CHECK(watchdog && evtimer_add(watchdog, &limit) == 0);
	while (*pending > 0)
		CHECK(event_base_loop(base, EVLOOP_ONCE) == 0);
	event_free(watchdog);
}

static void on_settled(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 0;
}

/* Keep the loop running for ms: late or second callbacks would show. */
static void settle(int ms)
{
	int pending = 1;
	struct timeval tv = {0, ms * 1000};
	CHECK(event_base_once(base, -1, EV_TIMEOUT, on_settled, &pending, &tv) == 0);
	run_until(&pending, "settle");
}

static void send_ok(struct http *h, const struct http_request *req, struct result *r)
{
	sending = true;
	CHECK(http_send(h, req, on_done, r) == 0);
	sending = false;
}

static char *url(const char *scheme, int port, const char *path)
{
	static char buf[4][256];
	static int next;
	char *u = buf[next++ % 4];
	snprintf(u, sizeof(buf[0]), "%s://127.0.0.1:%d%s", scheme, port, path);
	return u;
}

/* Send one request and wait for its answer. */
static void fetch(struct http *h, const struct http_request *req, struct result *r)
{
	int pending = 1;
	r->pending = &pending;
	send_ok(h, req, r);
	CHECK(http_in_flight(h) == 1);
	run_until(&pending, req->url);
	CHECK(http_in_flight(h) == 0);
}

static const struct http_options test_options = {
    .connect_timeout_ms = 5000,
    .total_timeout_ms = 30000,
    .max_response_bytes = 1000,
    .user_agent = "tokend-test/1",
};

/* ---- tests ---- */

static void test_get(void)
{
	struct http *h = http_new(base, &test_options);
	struct result r = {0};
	struct http_request req = {.method = HTTP_GET,
	                           .url = url("http", plain.port, "/echo?a=1"),
	                           .authorization = "Bearer at-123"};
	CHECK(h);
	fetch(h, &req, &r);
	CHECK(r.calls == 1 && r.status == 200 && !r.error && !r.too_large);
	CHECK_STR(r.body, "you asked for /echo?a=1");
	CHECK(r.body_len == strlen("you asked for /echo?a=1"));
	CHECK(!r.retry_after && !r.rate_limit_reset);
	CHECK(plain.seen.method == EVHTTP_REQ_GET && plain.seen.body_len == 0);
	CHECK(plain.seen.has_authorization);
	CHECK_STR(plain.seen.authorization, "Bearer at-123");
	CHECK_STR(plain.seen.user_agent, "tokend-test/1");
	settle(50);
	CHECK(r.calls == 1);
	result_clear(&r);
	http_free(h);
}

static void test_post(void)
{
	static const char body[] = "grant_type=refresh_token&refresh_token=rt\0after-nul";
	struct http *h = http_new(base, &test_options);
	struct result r = {0};
	struct http_request req = {.method = HTTP_POST,
	                           .url = url("http", plain.port, "/echo"),
	                           .body = body,
	                           .body_len = sizeof(body) - 1,
	                           .content_type =
	                               "application/x-www-form-urlencoded; charset=utf-8",
	                           .authorization = "Basic Y2xpZW50OnNlY3JldA=="};
	CHECK(h);
	fetch(h, &req, &r);
	CHECK(r.calls == 1 && r.status == 201 && !r.error);
	CHECK_STR(r.body, "created");
	CHECK(plain.seen.method == EVHTTP_REQ_POST);
	CHECK(plain.seen.body_len == sizeof(body) - 1);
	CHECK(memcmp(plain.seen.body, body, sizeof(body) - 1) == 0);
	CHECK_STR(plain.seen.content_type, "application/x-www-form-urlencoded; charset=utf-8");
	CHECK_STR(plain.seen.authorization, "Basic Y2xpZW50OnNlY3JldA==");
	CHECK(!plain.seen.has_expect);
	result_clear(&r);

	/* No content type, no authorization, empty body. */
	req = (struct http_request){.method = HTTP_POST, .url = url("http", plain.port, "/echo")};
	fetch(h, &req, &r);
	CHECK(r.calls == 1 && r.status == 201 && !r.error);
	CHECK(plain.seen.body_len == 0 && !plain.seen.has_authorization);
	CHECK_STR(plain.seen.content_type, "application/x-www-form-urlencoded");
	result_clear(&r);
	http_free(h);
}

/* The caller's buffers are borrowed for http_send() only. */
static void test_request_copied(void)
{
	struct http *h = http_new(base, &test_options);
	struct result r = {0};
	int pending = 1;
	char u[128], body[32], auth[32];
	snprintf(u, sizeof(u), "%s", url("http", plain.port, "/echo?token=abc"));
	snprintf(body, sizeof(body), "payload");
	snprintf(auth, sizeof(auth), "Bearer xyz");
	struct http_request req = {.method = HTTP_POST,
	                           .url = u,
	                           .body = body,
	                           .body_len = strlen(body),
	                           .authorization = auth};
	CHECK(h);
	r.pending = &pending;
	send_ok(h, &req, &r);
	memset(u, 'Z', sizeof(u) - 1);
	memset(body, 'Z', sizeof(body));
	memset(auth, 'Z', sizeof(auth));
	run_until(&pending, "copied");
	CHECK(r.status == 201);
	CHECK_STR(plain.seen.uri, "/echo?token=abc");
	CHECK(plain.seen.body_len == 7 && memcmp(plain.seen.body, "payload", 7) == 0);
	CHECK_STR(plain.seen.authorization, "Bearer xyz");
	result_clear(&r);
	http_free(h);
}

static void test_rate_limit_headers(void)
{
	struct http *h = http_new(base, &test_options);
	struct result r = {0};
	struct http_request req = {.url = url("http", plain.port, "/limits")};
	CHECK(h);
	fetch(h, &req, &r);
	CHECK(r.calls == 1 && r.status == 429 && !r.error);
	CHECK_STR(r.body, "slow down");
	CHECK_STR(r.retry_after, "120");
	CHECK_STR(r.rate_limit_reset, "1700000000");
	result_clear(&r);
	http_free(h);
}

static void expect_too_large(struct http *h, const char *path)
{
	struct result r = {0};
	struct http_request req = {.url = url("http", plain.port, path)};
	fetch(h, &req, &r);
	CHECK(r.too_large && r.error && r.body_len == 0);
	CHECK(strstr(r.error, "1000"));
	settle(50);
	CHECK(r.calls == 1);
	result_clear(&r);
}

static void test_size_cap(void)
{
	struct http *h = http_new(base, &test_options); /* cap: 1000 bytes */
	struct result r = {0};
	struct http_request req = {.url = url("http", plain.port, "/big?n=1000")};
	CHECK(h);
	fetch(h, &req, &r);
	CHECK(r.status == 200 && !r.error && !r.too_large && r.body_len == 1000);
	result_clear(&r);
	req.url = url("http", plain.port, "/chunked?n=1000");
	fetch(h, &req, &r);
	CHECK(r.status == 200 && !r.error && r.body_len == 1000 && r.body[999] == 'y');
	result_clear(&r);
	expect_too_large(h, "/big?n=1001");     /* Content-Length says so */
	expect_too_large(h, "/chunked?n=5000"); /* the write callback stops it */
	expect_too_large(h, "/chunked?n=1001");

	/* A reload lowers the cap for the next request. */
	struct http_options smaller = test_options;
	smaller.max_response_bytes = 10;
	CHECK(http_set_options(h, &smaller) == 0);
	req.url = url("http", plain.port, "/big?n=11");
	fetch(h, &req, &r);
	CHECK(r.too_large && r.error && strstr(r.error, "10 bytes"));
	result_clear(&r);
	http_free(h);
}

static void test_timeout(void)
{
	struct http_options opts = test_options;
	opts.total_timeout_ms = 300;
	struct http *h = http_new(base, &opts);
	struct result r = {0};
	struct http_request req = {.url = url("http", plain.port, "/hang?access_token=SECRET")};
	CHECK(h);
	fetch(h, &req, &r);
	CHECK(r.calls == 1 && r.status == 0 && r.error && !r.too_large);
	CHECK(strstr(r.error, curl_easy_strerror(CURLE_OPERATION_TIMEDOUT)));
	CHECK(!strstr(r.error, "SECRET"));
	CHECK(r.total_seconds >= 0.25);
	fprintf(stderr, "  timeout error: %s\n", r.error);
	result_clear(&r);
	http_free(h);
}

static void test_refused(void)
{
	/* Bound but not listening: connecting is refused, and no one else can
	 * take the port meanwhile. */
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	struct http *h = http_new(base, &test_options);
	struct result r = {0};
	struct http_request req = {.url = url("http", bound_port(fd), "/x?access_token=SECRET-T")};
	CHECK(h);
	fetch(h, &req, &r);
	CHECK(r.calls == 1 && r.status == 0 && r.error && !r.too_large);
	CHECK(!strstr(r.error, "SECRET") && !strstr(r.error, "access_token"));
	fprintf(stderr, "  refused error: %s\n", r.error);
	result_clear(&r);
	/* libcurl quotes the host; were it the query, it would be cut out. */
	req.url = url("http", bound_port(fd), "/x?127.0.0.1");
	fetch(h, &req, &r);
	CHECK(r.status == 0 && r.error && !strstr(r.error, "127.0.0.1") &&
	      strstr(r.error, "[...]"));
	result_clear(&r);
	http_free(h);
	close(fd);
}

enum { CONCURRENT = 200 };

static void test_concurrent_reuse(void)
{
	struct http_options opts = test_options;
	opts.max_host_connections = 4;
	struct http *h = http_new(base, &opts);
	struct result *r = calloc(CONCURRENT, sizeof(*r));
	int pending = CONCURRENT, connections = plain.connections;
	CHECK(h && r);
	for (int i = 0; i < CONCURRENT; i++) {
		char path[32];
		snprintf(path, sizeof(path), "/echo?i=%d", i);
		struct http_request req = {.url = url("http", plain.port, path)};
		r[i].pending = &pending;
		send_ok(h, &req, &r[i]);
	}
	CHECK(http_in_flight(h) == CONCURRENT);
	run_until(&pending, "concurrent");
	settle(50);
	for (int i = 0; i < CONCURRENT; i++) {
		char want[64];
		snprintf(want, sizeof(want), "you asked for /echo?i=%d", i);
		CHECK(r[i].calls == 1 && r[i].status == 200 && !r[i].error);
		CHECK_STR(r[i].body, want);
		result_clear(&r[i]);
	}
	connections = plain.connections - connections;
	fprintf(stderr, "  %d requests over %d connections\n", CONCURRENT, connections);
	CHECK(connections >= 1 && connections <= 4);

	/* Sequential requests reuse the kept-alive connection. */
	int before = plain.connections;
	for (int i = 0; i < 5; i++) {
		struct http_request req = {.url = url("http", plain.port, "/echo")};
		fetch(h, &req, &r[0]);
		CHECK(r[0].status == 200);
		result_clear(&r[0]);
	}
	CHECK(plain.connections == before);
	free(r);
	http_free(h);
}

struct order {
	int timer_fired;
	int done_seen_by_timer; /* how many requests were done when it fired */
	struct result *r;
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct order *o = arg;
	o->timer_fired++;
	o->done_seen_by_timer = o->r->calls;
}

static void test_loop_runs_during_slow_request(void)
{
	struct http *h = http_new(base, &test_options);
	struct result r = {0};
	struct order o = {.r = &r};
	struct http_request req = {.url = url("http", plain.port, "/slow")};
	struct timeval tick = {0, 50 * 1000};
	int pending = 1;
	CHECK(h);
	r.pending = &pending;
	send_ok(h, &req, &r);
	CHECK(event_base_once(base, -1, EV_TIMEOUT, on_tick, &o, &tick) == 0);
	run_until(&pending, "slow");
	CHECK(r.status == 200);
	CHECK_STR(r.body, "late");
	CHECK(o.timer_fired == 1 && o.done_seen_by_timer == 0);
	result_clear(&r);
	http_free(h);
}

static void test_https_to_plain_port(void)
{
	struct http *h = http_new(base, &test_options);
	struct result r = {0};
	struct http_request req = {.url = url("https", plain.port, "/echo")};
	CHECK(h);
	fetch(h, &req, &r);
	CHECK(r.calls == 1 && r.status == 0 && r.error);
	fprintf(stderr, "  https to plain: %s\n", r.error);
	result_clear(&r);
	http_free(h);
}

static void test_rejected_requests(void)
{
	struct http *h = http_new(base, &test_options);
	struct result r = {0};
	const char *bad_urls[] = {
	    "",
	    "not a url",
	    "ftp://127.0.0.1/x",
	    "file:///etc/passwd",
	    "127.0.0.1/echo", /* no scheme */
	    "gopher://x/",
	};
	CHECK(h);
	for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		struct http_request req = {.url = bad_urls[i]};
		CHECK(http_send(h, &req, on_done, &r) == -1);
	}
	struct http_request req = {.url = NULL};
	CHECK(http_send(h, &req, on_done, &r) == -1);
	req = (struct http_request){.url = url("http", plain.port, "/echo"),
	                            .authorization = "Bearer x\r\nX-Evil: 1"};
	CHECK(http_send(h, &req, on_done, &r) == -1);
	req = (struct http_request){.method = HTTP_POST,
	                            .url = url("http", plain.port, "/echo"),
	                            .content_type = "text/plain\nX-Evil: 1"};
	CHECK(http_send(h, &req, on_done, &r) == -1);
	req = (struct http_request){.method = (enum http_method)7,
	                            .url = url("http", plain.port, "/echo")};
	CHECK(http_send(h, &req, on_done, &r) == -1);
	CHECK(http_in_flight(h) == 0);
	settle(20);
	CHECK(r.calls == 0);
	http_free(h);
}

/* http_free with requests in flight: no callback, nothing leaks. */
static void test_free_in_flight(void)
{
	struct http *h = http_new(base, &test_options);
	struct result r[3] = {0};
	int requests = plain.requests;
	CHECK(h);
	for (int i = 0; i < 3; i++) {
		struct http_request req = {.method = HTTP_POST,
		                           .body = "x",
		                           .body_len = 1,
		                           .url = url("http", plain.port, "/hang?token=t")};
		send_ok(h, &req, &r[i]);
	}
	while (plain.requests < requests + 3) /* connected and sent */
		CHECK(event_base_loop(base, EVLOOP_ONCE) == 0);
	http_free(h);
	settle(50);
	for (int i = 0; i < 3; i++)
		CHECK(r[i].calls == 0);
	http_free(NULL);
}

struct chain {
	struct http *h;
	struct result first, second, hung;
	int pending;
};

/* Second request's callback: free the client while the hanging request is
 * still in flight. */
static void on_second(const struct http_response *resp, void *arg)
{
	struct chain *c = arg;
	on_done(resp, &c->second);
	http_free(c->h);
	c->h = NULL;
	c->pending = 0;
}

/* First request's callback: send the second from inside it. */
static void on_first(const struct http_response *resp, void *arg)
{
	struct chain *c = arg;
	struct http_request req = {.url = url("http", plain.port, "/echo?second")};
	on_done(resp, &c->first);
	CHECK(http_send(c->h, &req, on_second, c) == 0);
	CHECK(http_in_flight(c->h) == 2);
}

static void test_callbacks_reenter(void)
{
	struct chain c = {.h = http_new(base, &test_options), .pending = 1};
	struct http_request first = {.url = url("http", plain.port, "/echo?first")};
	struct http_request hang = {.url = url("http", plain.port, "/hang")};
	CHECK(c.h);
	CHECK(http_send(c.h, &hang, on_done, &c.hung) == 0);
	CHECK(http_send(c.h, &first, on_first, &c) == 0);
	run_until(&c.pending, "reenter");
	settle(50);
	CHECK(c.first.calls == 1 && c.first.status == 200);
	CHECK(c.second.calls == 1 && c.second.status == 200);
	CHECK_STR(c.second.body, "you asked for /echo?second");
	CHECK(c.hung.calls == 0 && !c.h);
	result_clear(&c.first);
	result_clear(&c.second);
}

/* ---- TLS ---- */

struct pki {
	char dir[32];
	char ca_file[64], unknown_ca_file[64], missing_file[64];
	struct http_tls_cert ca, unknown_ca, leaf, misnamed;
};

static void pki_make(struct pki *p)
{
	snprintf(p->dir, sizeof(p->dir), "/tmp/test_http.XXXXXX");
	CHECK(mkdtemp(p->dir));
	snprintf(p->ca_file, sizeof(p->ca_file), "%s/ca.pem", p->dir);
	snprintf(p->unknown_ca_file, sizeof(p->unknown_ca_file), "%s/unknown-ca.pem", p->dir);
	snprintf(p->missing_file, sizeof(p->missing_file), "%s/missing.pem", p->dir);
	p->ca = http_tls_ca("tokend test CA");
	p->unknown_ca = http_tls_ca("tokend unknown CA");
	p->leaf = http_tls_issue(&p->ca, "IP:127.0.0.1");
	p->misnamed = http_tls_issue(&p->ca, "DNS:elsewhere.example");
	http_tls_write_pem(&p->ca, p->ca_file);
	http_tls_write_pem(&p->unknown_ca, p->unknown_ca_file);
}

static void pki_free(struct pki *p)
{
	CHECK(unlink(p->ca_file) == 0 && unlink(p->unknown_ca_file) == 0 && rmdir(p->dir) == 0);
	http_tls_cert_free(&p->ca);
	http_tls_cert_free(&p->unknown_ca);
	http_tls_cert_free(&p->leaf);
	http_tls_cert_free(&p->misnamed);
}

/* A request to s through h fails before any HTTP is spoken. */
static void expect_refused(struct http *h, struct server *s, CURLcode code)
{
	struct result r = {0};
	struct http_request req = {.url = url("https", s->port, "/echo?access_token=SECRET")};
	int requests = s->requests;
	fetch(h, &req, &r);
	CHECK(r.calls == 1 && r.status == 0 && r.error && !strstr(r.error, "SECRET"));
	if (!strstr(r.error, curl_easy_strerror(code))) {
		fprintf(stderr, "unexpected error: %s\n", r.error);
		CHECK(!"the expected error");
	}
	CHECK(s->requests == requests);
	fprintf(stderr, "  refused: %s\n", r.error);
	result_clear(&r);
}

static void expect_accepted(struct http *h, struct server *s)
{
	struct result r = {0};
	struct http_request req = {.url = url("https", s->port, "/echo?tls"),
	                           .authorization = "Bearer over-tls"};
	fetch(h, &req, &r);
	CHECK(r.calls == 1 && r.status == 200 && !r.error);
	CHECK_STR(r.body, "you asked for /echo?tls");
	CHECK_STR(s->seen.authorization, "Bearer over-tls");
	result_clear(&r);
}

static struct http *client_trusting(const char *ca_file)
{
	struct http_options opts = test_options;
	opts.ca_file = ca_file;
	struct http *h = http_new(base, &opts);
	CHECK(h);
	return h;
}

static void test_tls(void)
{
	struct pki p;
	struct server good, misnamed;
	/* The TLS test server (libevent_openssl) writes with write(2) and may
	 * hit a connection the client dropped. libcurl sends with MSG_NOSIGNAL,
	 * so the other tests run with SIGPIPE's default action (death). */
	void (*old_sigpipe)(int) = signal(SIGPIPE, SIG_IGN);
	CHECK(old_sigpipe != SIG_ERR);
	pki_make(&p);
	server_start(&good, http_tls_server_ctx(&p.leaf));
	server_start(&misnamed, http_tls_server_ctx(&p.misnamed));

	/* The configured CA: accepted, and the connection is kept alive. */
	struct http *h = client_trusting(p.ca_file);
	expect_accepted(h, &good);
	expect_accepted(h, &good);
	CHECK(good.connections == 1);
	/* Right CA, wrong name: refused (VERIFYHOST). */
	expect_refused(h, &misnamed, CURLE_PEER_FAILED_VERIFICATION);
	/* Reloaded to another CA: the verified connection is not reused. */
	struct http_options opts = test_options;
	opts.ca_file = p.unknown_ca_file;
	CHECK(http_set_options(h, &opts) == 0);
	expect_refused(h, &good, CURLE_PEER_FAILED_VERIFICATION);
	http_free(h);

	/* The system CAs and an unknown CA do not know the server's. */
	h = client_trusting(NULL);
	expect_refused(h, &good, CURLE_PEER_FAILED_VERIFICATION);
	http_free(h);
	h = client_trusting(p.unknown_ca_file);
	expect_refused(h, &good, CURLE_PEER_FAILED_VERIFICATION);
	http_free(h);
	/* A CA file that is not there fails every request, cleanly. */
	h = client_trusting(p.missing_file);
	expect_refused(h, &good, CURLE_SSL_CACERT_BADFILE);
	http_free(h);

	server_stop(&good);
	server_stop(&misnamed);
	pki_free(&p);
	CHECK(signal(SIGPIPE, old_sigpipe) != SIG_ERR);
}

int main(void)
{
	/* Hermetic: no proxy between us and 127.0.0.1. */
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	CHECK((base = event_base_new()));
	server_start(&plain, NULL);

	test_get();
	test_post();
	test_request_copied();
	test_rate_limit_headers();
	test_size_cap();
	test_timeout();
	test_refused();
	test_concurrent_reuse();
	test_loop_runs_during_slow_request();
	test_https_to_plain_port();
	test_rejected_requests();
	test_free_in_flight();
	test_callbacks_reenter();
	test_tls();

	server_stop(&plain);
	event_base_free(base);
	printf("test_http: ok\n");
	return 0;
}
