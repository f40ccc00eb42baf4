/* redis: one hiredis async connection on the event loop (hiredis's libevent
 * adapter), never a blocking call: host names are resolved with evdns, the
 * connect is non-blocking, AUTH/SELECT/PING run as async commands before the
 * connection counts as up, a connect that takes too long is dropped, and a
 * lost connection reconnects with backoff and jitter. Commands are issued on
 * redis_context() by the owner; every reply callback is called exactly once,
 * with a NULL reply when the connection went away first. */
#ifndef TOKEND_REDIS_H
#define TOKEND_REDIS_H

#include <hiredis/async.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redis;

/* Where to connect: TCP host and port, or a unix socket path. */
struct redis_target {
	char host[256]; /* "" for a unix socket */
	int port;
	char path[108];     /* unix socket path, "" for TCP */
	char user[128];     /* ACL user for AUTH, "" for none (default user) */
	char password[256]; /* "" for no AUTH */
	int db;             /* SELECT db when > 0 */
};

/* Parse "redis://[[user]:password@]host[:port][/db]" (port 6379, db 0 by
 * default; IPv6 in brackets), "unix://[[user]:password@]/path[?db=N]" or a
 * bare "/path". user and password are percent-decoded. -1 with err set
 * (never showing the password) when malformed. */
int redis_parse_url(const char *url, struct redis_target *t, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* "host:port" or the socket path, for logs (no credentials). */
void redis_target_describe(const struct redis_target *t, char *buf, size_t n);

struct redis_handlers {
	void (*up)(void *arg);   /* connected and ready for commands */
	void (*down)(void *arg); /* the connection is gone; reconnecting */
	void *arg;
};

/* Copies t (and wipes nothing of the caller's). Starts connecting at once.
 * Borrows base. NULL on ENOMEM. */
struct redis *redis_new(struct event_base *base, const struct redis_target *t,
                        int64_t reconnect_min_ms, int64_t reconnect_max_ms,
                        const struct redis_handlers *handlers);
/* NULL-safe. Pending reply callbacks are called with NULL replies (during
 * this call); the handlers are not. */
void redis_free(struct redis *rc);

void redis_set_backoff(struct redis *rc, int64_t reconnect_min_ms, int64_t reconnect_max_ms);
bool redis_is_up(const struct redis *rc);
/* The connection for commands while up, else NULL. Borrowed: valid until
 * the next return to the event loop. */
redisAsyncContext *redis_context(struct redis *rc);
/* Drop the connection now (why is logged) and reconnect after the backoff:
 * pending callbacks get NULL replies, the down handler runs. Safe inside a
 * reply callback. */
void redis_drop(struct redis *rc, const char *why);

#endif
