/* http: libcurl multi driven by libevent (one event per socket libcurl asks
 * for, one timer); completions are handled after curl_multi_socket_action()
 * returns, never inside a libcurl callback. */
#include "daemon/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/log.h"

#ifndef TOKEND_VERSION
#define TOKEND_VERSION "dev"
#endif

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_TOTAL_TIMEOUT_MS 30000
#define DEFAULT_MAX_RESPONSE_BYTES ((size_t)1 << 20)
#define DEFAULT_MAX_CONNECTIONS 64L
#define DEFAULT_MAX_HOST_CONNECTIONS 8L
#define DEFAULT_USER_AGENT "tokend/" TOKEND_VERSION
#define PROTOCOLS "http,https"

/* One socket libcurl asked us to watch (its curl_multi_assign() pointer). */
struct sock {
	struct sock *prev, *next;
	struct http *h;
	struct event *ev;
};

/* One request, from http_send() until its done callback returned. */
struct transfer {
	struct transfer *prev, *next;
	struct http *h;
	CURL *easy;
	struct curl_slist *headers; /* may hold "Authorization: ..." */
	char *url;                  /* may hold tokens in its query */
	char *body;                 /* request body (POST) */
	size_t body_len;
	char *data; /* response body so far, NUL-terminated */
	size_t data_len, data_cap, max_bytes;
	char *retry_after, *rate_limit_reset;
	bool too_large;
	http_done_fn done;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
};

/* The options with defaults applied and strings owned. */
struct settings {
	char *ca_file;
	char *user_agent;
	int64_t connect_timeout_ms, total_timeout_ms;
	size_t max_response_bytes;
	long max_connections, max_host_connections;
};

struct http {
	struct event_base *base;
	CURLM *multi;
	struct event *timer; /* libcurl's one timeout */
	struct settings set;
	struct transfer *transfers; /* in flight */
	struct sock *socks;         /* watched */
	size_t in_flight;
	bool dispatching; /* inside dispatch(): http_free() defers to it */
	bool closing;     /* http_free() was called during dispatch() */
};

static void dispatch(struct http *h);

/* libcurl's allocator: every block is wiped before it is freed, so the copies
 * libcurl makes (URL, header list, request and receive buffers) never linger
 * in freed memory. Only used when http.c is the first to initialise libcurl. */
static void wipe_free(void *p)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, malloc_usable_size(p));
	free(p);
}

static void *wipe_realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	if (!n) {
		wipe_free(p);
		return NULL;
	}
	void *q = malloc(n);
	if (!q)
		return NULL;
	size_t old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	wipe_free(p);
	return q;
}

static char *wipe_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *copy = malloc(n);
	return copy ? memcpy(copy, s, n) : NULL;
}

static void wipe_string(char *s)
{
	if (s)
		OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static void settings_clear(struct settings *s)
{
	free(s->ca_file);
	free(s->user_agent);
	memset(s, 0, sizeof(*s));
}

/* Copy opts into *s with defaults applied; -1 on ENOMEM (*s unchanged). */
static int settings_copy(struct settings *s, const struct http_options *o)
{
	struct settings n = {
	    .connect_timeout_ms =
	        o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS,
	    .total_timeout_ms =
	        o->total_timeout_ms > 0 ? o->total_timeout_ms : DEFAULT_TOTAL_TIMEOUT_MS,
	    .max_response_bytes =
	        o->max_response_bytes ? o->max_response_bytes : DEFAULT_MAX_RESPONSE_BYTES,
	    .max_connections =
	        o->max_connections > 0 ? o->max_connections : DEFAULT_MAX_CONNECTIONS,
	    .max_host_connections = o->max_host_connections > 0 ? o->max_host_connections
	                                                        : DEFAULT_MAX_HOST_CONNECTIONS,
	};
	n.ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
	n.user_agent = strdup(o->user_agent ? o->user_agent : DEFAULT_USER_AGENT);
	if ((o->ca_file && !n.ca_file) || !n.user_agent) {
		settings_clear(&n);
		return -1;
	}
	settings_clear(s);
	*s = n;
	return 0;
}

/* ---- sockets and the timer: libcurl tells, libevent watches ---- */

static void sock_free(struct http *h, struct sock *sk)
{
	if (!sk)
		return;
	if (sk->prev)
		sk->prev->next = sk->next;
	else
		h->socks = sk->next;
	if (sk->next)
		sk->next->prev = sk->prev;
	event_free(sk->ev);
	free(sk);
}

static void on_socket_ready(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = ((struct sock *)arg)->h; /* the sock may be freed below */
	int action =
	    (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;
	CURLMcode rc = curl_multi_socket_action(h->multi, fd, action, &running);
	if (rc != CURLM_OK)
		log_warnx("http: curl_multi_socket_action: %s", curl_multi_strerror(rc));
	dispatch(h);
}

static struct sock *sock_new(struct http *h, curl_socket_t s)
{
	struct sock *sk = calloc(1, sizeof(*sk));
	if (!sk)
		return NULL;
	sk->h = h;
	sk->ev = event_new(h->base, s, 0, on_socket_ready, sk);
	if (!sk->ev || curl_multi_assign(h->multi, s, sk) != CURLM_OK) {
		if (sk->ev)
			event_free(sk->ev);
		free(sk);
		return NULL;
	}
	sk->next = h->socks;
	if (h->socks)
		h->socks->prev = sk;
	h->socks = sk;
	return sk;
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what libcurl waits for. Runs inside
 * libcurl: calls nothing of libcurl's but curl_multi_assign(). */
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct http *h = userp;
	struct sock *sk = socketp;
	if (what == CURL_POLL_REMOVE) {
		sock_free(h, sk);
		return 0;
	}
	if (!sk && !(sk = sock_new(h, s)))
		return -1; /* libcurl fails the transfers on this socket */
	short events = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	               (what & CURL_POLL_OUT ? EV_WRITE : 0);
	event_del(sk->ev);
	event_assign(sk->ev, h->base, s, events, on_socket_ready, sk);
	return event_add(sk->ev, NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;
	int running;
	CURLMcode rc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	if (rc != CURLM_OK)
		log_warnx("http: curl_multi_socket_action: %s", curl_multi_strerror(rc));
	dispatch(h);
}

/* CURLMOPT_TIMERFUNCTION: (re)arm or stop the one timer; 0 means "soon",
 * which is the next loop turn, never a call back into libcurl from here. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct http *h = userp;
	if (timeout_ms < 0)
		return evtimer_del(h->timer);
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	return evtimer_add(h->timer, &tv);
}

/* ---- one transfer ---- */

static void transfer_free(struct transfer *t)
{
	if (!t)
		return;
	if (t->easy)
		curl_easy_cleanup(t->easy);
	for (struct curl_slist *l = t->headers; l; l = l->next)
		OPENSSL_cleanse(l->data, strlen(l->data));
	curl_slist_free_all(t->headers);
	wipe_string(t->url);
	if (t->body)
		OPENSSL_cleanse(t->body, t->body_len);
	free(t->body);
	if (t->data)
		OPENSSL_cleanse(t->data, t->data_cap);
	free(t->data);
	free(t->retry_after);
	free(t->rate_limit_reset);
	free(t);
}

/* Grow the response buffer to hold need bytes; the old one is wiped. */
static int reserve(struct transfer *t, size_t need)
{
	if (need <= t->data_cap)
		return 0;
	size_t cap = t->data_cap ? t->data_cap : 1024;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = malloc(cap);
	if (!p)
		return -1;
	if (t->data) {
		memcpy(p, t->data, t->data_len + 1);
		OPENSSL_cleanse(t->data, t->data_cap);
		free(t->data);
	}
	t->data = p;
	t->data_cap = cap;
	return 0;
}

/* CURLOPT_WRITEFUNCTION: keep the body; returning short aborts the transfer. */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	n *= size; /* size is 1, as libcurl promises */
	if (n > t->max_bytes - t->data_len) {
		t->too_large = true;
		return 0;
	}
	if (reserve(t, t->data_len + n + 1) < 0)
		return 0;
	memcpy(t->data + t->data_len, data, n);
	t->data_len += n;
	t->data[t->data_len] = '\0';
	return n;
}

/* If line is the header name (any case), replace *slot with its trimmed
 * value. 0 when it is another header, -1 on ENOMEM. */
static int capture(char **slot, const char *name, const char *line, size_t len)
{
	size_t name_len = strlen(name);
	if (len <= name_len || line[name_len] != ':' || strncasecmp(line, name, name_len) != 0)
		return 0;
	const char *v = line + name_len + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	char *copy = strndup(v, (size_t)(end - v));
	if (!copy)
		return -1;
	free(*slot);
	*slot = copy;
	return 1;
}

/* CURLOPT_HEADERFUNCTION: one header line (not NUL-terminated) at a time;
 * a status line starts a new response (after a 1xx), forgetting the last. */
static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	n *= size;
	if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		free(t->retry_after);
		free(t->rate_limit_reset);
		t->retry_after = t->rate_limit_reset = NULL;
		return n;
	}
	if (capture(&t->retry_after, "retry-after", line, n) < 0 ||
	    capture(&t->rate_limit_reset, "x-rate-limit-reset", line, n) < 0)
		return 0;
	return n;
}

/* Append "name: value" to the header list; libcurl copies it. */
static int add_header(struct curl_slist **list, const char *name, const char *value)
{
	size_t len = strlen(name) + strlen(value) + 3;
	char *line = malloc(len);
	if (!line)
		return -1;
	snprintf(line, len, "%s: %s", name, value);
	struct curl_slist *grown = curl_slist_append(*list, line);
	OPENSSL_cleanse(line, len);
	free(line);
	if (!grown)
		return -1;
	*list = grown;
	return 0;
}

/* Copy the request's body and headers into t. -1 on ENOMEM. */
static int copy_request(struct transfer *t, const struct http_request *req)
{
	if (add_header(&t->headers, "Expect", "") < 0) /* no 100-continue round trip */
		return -1;
	if (req->authorization && add_header(&t->headers, "Authorization", req->authorization) < 0)
		return -1;
	if (req->method != HTTP_POST)
		return 0;
	if (req->content_type && add_header(&t->headers, "Content-Type", req->content_type) < 0)
		return -1;
	t->body_len = req->body ? req->body_len : 0;
	if (!(t->body = malloc(t->body_len + 1)))
		return -1;
	if (t->body_len)
		memcpy(t->body, req->body, t->body_len);
	t->body[t->body_len] = '\0';
	return 0;
}

/* Options every request gets: what is spoken, how long, how much, how safely. */
static int set_policy(CURL *e, const struct settings *s)
{
	int rc = 0;
	rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, PROTOCOLS);
	rc |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, PROTOCOLS);
	rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	rc |= curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (s->ca_file) { /* replaces the system CAs */
		rc |= curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
		rc |= curl_easy_setopt(e, CURLOPT_CAPATH, (char *)NULL);
	}
	rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_timeout_ms);
	rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->total_timeout_ms);
	if (s->max_response_bytes <= INT64_MAX) /* fail early on a Content-Length too large */
		rc |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
		                       (curl_off_t)s->max_response_bytes);
	rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, s->user_agent);
	return rc;
}

/* Options of this request: where, what, and where the answer goes. */
static int set_request(struct transfer *t, const struct http_request *req)
{
	CURL *e = t->easy;
	int rc = 0;
	rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)t);
	rc |= curl_easy_setopt(e, CURLOPT_URL, t->url);
	rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
	rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)t);
	rc |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	rc |= curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)t);
	if (req->method == HTTP_POST) {
		rc |= curl_easy_setopt(e, CURLOPT_POST, 1L);
		rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
		rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
	} else {
		rc |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	return rc;
}

static struct transfer *transfer_new(struct http *h, const struct http_request *req,
                                     http_done_fn done, void *arg)
{
	struct transfer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->h = h;
	t->done = done;
	t->arg = arg;
	t->max_bytes = h->set.max_response_bytes;
	t->url = strdup(req->url);
	t->easy = curl_easy_init();
	if (!t->url || !t->easy || copy_request(t, req) < 0 || set_policy(t->easy, &h->set) ||
	    set_request(t, req)) {
		transfer_free(t);
		return NULL;
	}
	return t;
}

static void transfer_unlink(struct http *h, struct transfer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		h->transfers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
	h->in_flight--;
}

/* Cut msg where it quotes the URL's query (libcurl's messages name hosts
 * and ports, not queries, but a future message might). */
static void redact_query(char *msg, size_t cap, const char *url)
{
	const char *query = strchr(url, '?');
	char *quoted = query && query[1] ? strstr(msg, query + 1) : NULL;
	if (quoted)
		snprintf(quoted, cap - (size_t)(quoted - msg), "[...]");
}

/* The error words for a failed transfer, into out. */
static void describe_error(const struct transfer *t, CURLcode result, char *out, size_t cap)
{
	size_t n = strlen(t->errbuf);
	while (n > 0 && (t->errbuf[n - 1] == '\n' || t->errbuf[n - 1] == '\r'))
		n--;
	if (t->too_large)
		snprintf(out, cap, "response body larger than %zu bytes", t->max_bytes);
	else if (n)
		snprintf(out, cap, "%s: %.*s", curl_easy_strerror(result), (int)n, t->errbuf);
	else
		snprintf(out, cap, "%s", curl_easy_strerror(result));
	redact_query(out, cap, t->url);
}

/* The transfer is over: take it out of libcurl, tell its owner, free it.
 * Called from dispatch() only, outside any libcurl callback. */
static void finish(struct http *h, struct transfer *t, CURLcode result)
{
	transfer_unlink(h, t);
	curl_multi_remove_handle(h->multi, t->easy);
	char error[CURL_ERROR_SIZE + 128];
	struct http_response resp = {
	    .body = t->data && result == CURLE_OK ? t->data : "",
	    .body_len = result == CURLE_OK ? t->data_len : 0,
	    .retry_after = t->retry_after,
	    .rate_limit_reset = t->rate_limit_reset,
	};
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &resp.status);
	curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &resp.total_seconds);
	if (result == CURLE_FILESIZE_EXCEEDED)
		t->too_large = true;
	if (result != CURLE_OK) {
		describe_error(t, result, error, sizeof(error));
		resp.error = error;
		resp.too_large = t->too_large;
	}
	t->done(&resp, t->arg);
	transfer_free(t);
}

/* Tear everything down; in-flight requests end without their callback. */
static void destroy(struct http *h)
{
	while (h->transfers) {
		struct transfer *t = h->transfers;
		transfer_unlink(h, t);
		curl_multi_remove_handle(h->multi, t->easy);
		transfer_free(t);
	}
	if (h->multi)
		curl_multi_cleanup(h->multi); /* may still call on_curl_socket/timer */
	while (h->socks)
		sock_free(h, h->socks);
	if (h->timer)
		event_free(h->timer);
	settings_clear(&h->set);
	free(h);
	curl_global_cleanup();
}

/* Run the done callbacks of finished transfers. Called last thing in an
 * event callback, after curl_multi_socket_action() returned: h may be freed
 * (by a done callback calling http_free) when this returns. */
static void dispatch(struct http *h)
{
	CURLMsg *msg;
	int left;
	h->dispatching = true;
	while (!h->closing && (msg = curl_multi_info_read(h->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURLcode result = msg->data.result;
		char *t = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
		finish(h, (struct transfer *)(void *)t, result); /* msg is invalid now */
	}
	h->dispatching = false;
	if (h->closing)
		destroy(h);
}

/* ---- public ---- */

static int setup_multi(struct http *h)
{
	int rc = 0;
	rc |= curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	rc |= curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, (void *)h);
	rc |= curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	rc |= curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, (void *)h);
	return rc ? -1 : 0;
}

struct http *http_new(struct event_base *base, const struct http_options *opts)
{
	CURLcode rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wipe_free, wipe_realloc,
	                                   wipe_strdup, calloc);
	if (rc != CURLE_OK) {
		log_warnx("http: curl_global_init: %s", curl_easy_strerror(rc));
		return NULL;
	}
	struct http *h = calloc(1, sizeof(*h));
	if (!h) {
		curl_global_cleanup();
		log_warnx("http: out of memory");
		return NULL;
	}
	h->base = base;
	h->multi = curl_multi_init();
	h->timer = evtimer_new(base, on_timer, h);
	if (!h->multi || !h->timer || setup_multi(h) < 0 || http_set_options(h, opts) < 0) {
		log_warnx("http: cannot create the libcurl multi handle (out of memory)");
		destroy(h);
		return NULL;
	}
	return h;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	if (h->dispatching)
		h->closing = true; /* dispatch() destroys h when the callback returns */
	else
		destroy(h);
}

int http_set_options(struct http *h, const struct http_options *opts)
{
	if (settings_copy(&h->set, opts) < 0)
		return -1;
	/* Keep idle connections to every host we talk to, up to the total cap. */
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, h->set.max_connections);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, h->set.max_connections);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, h->set.max_host_connections);
	return 0;
}

/* An http or https URL that libcurl can parse. */
static bool url_acceptable(const char *url)
{
	CURLU *u = url ? curl_url() : NULL;
	char *scheme = NULL;
	bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	          curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	          (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
	curl_free(scheme);
	curl_url_cleanup(u);
	return ok;
}

/* A header value that cannot smuggle another header in. */
static bool header_acceptable(const char *value)
{
	return !value || !value[strcspn(value, "\r\n")];
}

int http_send(struct http *h, const struct http_request *req, http_done_fn done, void *arg)
{
	if ((req->method != HTTP_GET && req->method != HTTP_POST) || !url_acceptable(req->url) ||
	    !header_acceptable(req->content_type) || !header_acceptable(req->authorization)) {
		errno = EINVAL;
		return -1;
	}
	struct transfer *t = transfer_new(h, req, done, arg);
	if (!t) {
		errno = ENOMEM;
		return -1;
	}
	/* Arms the timer (on_curl_timer) for the next loop turn; no I/O here. */
	if (curl_multi_add_handle(h->multi, t->easy) != CURLM_OK) {
		transfer_free(t);
		errno = ENOMEM;
		return -1;
	}
	t->next = h->transfers;
	if (h->transfers)
		h->transfers->prev = t;
	h->transfers = t;
	h->in_flight++;
	return 0;
}

size_t http_in_flight(const struct http *h)
{
	return h->in_flight;
}
