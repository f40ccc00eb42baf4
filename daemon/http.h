/* http: an HTTP client on the event loop. One libcurl multi handle driven by
 * libevent (one event per socket, one timer; never a blocking call), so
 * connections to a host are kept alive and reused across requests.
 * TLS is always verified, redirects are never followed, only http and https
 * are spoken (HTTP/1.1), proxies come from the environment as libcurl reads
 * them (https_proxy, no_proxy ...). Requests and responses carry tokens:
 * http.c wipes its copies of URLs, headers and bodies, and libcurl's own
 * copies are wiped by the allocator http_new() gives it. */
#ifndef TOKEND_HTTP_H
#define TOKEND_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http;

/* Zero (or NULL) in any field selects its default. */
struct http_options {
	const char *ca_file;        /* PEM bundle to verify servers; NULL = system CAs */
	int64_t connect_timeout_ms; /* default 10000 */
	/* Whole transfer from http_send(), default 30000. Time queued behind
	 * the connection caps counts: a request still queued when it runs out
	 * fails with a timeout error. */
	int64_t total_timeout_ms;
	size_t max_response_bytes; /* larger bodies fail with too_large; default 1 MiB */
	long max_connections;      /* open connections in total; default 64 */
	long max_host_connections; /* per host; more requests queue; default 8 */
	const char *user_agent;    /* default "tokend/<version>" */
};

enum http_method { HTTP_GET = 0, HTTP_POST = 1 };

/* Everything is borrowed for the duration of http_send() only. */
struct http_request {
	enum http_method method;
	const char *url;  /* http:// or https:// only */
	const char *body; /* POST only; may hold NUL bytes; NULL = empty */
	size_t body_len;
	const char *content_type;  /* POST; NULL = application/x-www-form-urlencoded */
	const char *authorization; /* whole header value ("Bearer ..."), or NULL */
};

/* Valid only during the done callback; the body is wiped afterwards. */
struct http_response {
	long status;      /* 0 when no HTTP response arrived */
	const char *body; /* NUL-terminated, never NULL; "" when error is set */
	size_t body_len;
	const char *retry_after;      /* Retry-After header value, or NULL */
	const char *rate_limit_reset; /* x-rate-limit-reset header value, or NULL */
	/* NULL when the transfer succeeded (whatever the status), else libcurl's
	 * words ("Timeout was reached: ..."); never contains the URL's query. */
	const char *error;
	bool too_large;       /* body exceeded max_response_bytes (error is set) */
	double total_seconds; /* whole transfer as libcurl measured it */
};

/* Called exactly once per sent request, from the event loop (never from
 * inside http_send). May call http_send() and http_free(). */
typedef void (*http_done_fn)(const struct http_response *resp, void *arg);

/* Borrows base (which must outlive the client) and opts (copied). The first
 * call initialises libcurl (curl_global_init_mem, with a wiping allocator):
 * make it from the main thread before other threads start, and before
 * anything else initialises libcurl. NULL on failure (logged). */
struct http *http_new(struct event_base *base, const struct http_options *opts);

/* NULL-safe. Cancels requests in flight: their done callbacks are not
 * called. Safe to call from a done callback. */
void http_free(struct http *h);

/* Replace the options (config reload). Requests in flight keep the ones
 * they started with. -1 on ENOMEM: the old options stay. */
int http_set_options(struct http *h, const struct http_options *opts)
    __attribute__((warn_unused_result));

/* Start a request; req and everything it points to are copied. done(arg)
 * is called once when it ends. -1 (done never called) with errno ENOMEM, or
 * EINVAL for a URL libcurl cannot parse or not http(s), an unknown method,
 * or CR/LF in a header value. */
int http_send(struct http *h, const struct http_request *req, http_done_fn done, void *arg)
    __attribute__((warn_unused_result));

/* Requests sent whose done callback has not run yet. */
size_t http_in_flight(const struct http *h);

#endif
