/* store: one asynchronous PostgreSQL connection on the event loop (libpq in
 * non-blocking mode, never a blocking call). Requests queue FIFO and run one
 * at a time; LISTEN channels are re-subscribed on every (re)connect; a lost
 * connection fails the requests it held and reconnects with backoff.
 * COPY ... TO STDOUT streams rows to the caller a batch per loop turn, so a
 * large load never stalls the loop. */
#ifndef TOKEND_STORE_H
#define TOKEND_STORE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;

struct store_options {
	const char *conninfo;      /* borrowed for the call only */
	const char *const *listen; /* NULL-terminated channel names, or NULL */
	int64_t reconnect_min_ms;
	int64_t reconnect_max_ms;
	int64_t connect_timeout_ms;
	int copy_batch_rows;          /* COPY lines handed out per loop turn */
	const char *application_name; /* shown in pg_stat_activity */
	const char *session_sql;      /* run on every (re)connect before requests, or NULL */
};

struct store_handlers {
	void (*connected)(void *arg);    /* ready for requests (LISTEN done) */
	void (*disconnected)(void *arg); /* requests failed; reconnecting */
	void (*notify)(const char *channel, const char *payload, void *arg);
	void *arg;
};

/* Result of a query: res is NULL when the connection was lost before the
 * query completed. res is freed by store after the callback returns. */
typedef void (*store_result_fn)(const PGresult *res, void *arg);
/* One COPY text line (without the newline), valid and writable during the
 * call; line[len] may be overwritten (it holds the newline or a NUL). */
typedef void (*store_line_fn)(char *line, size_t len, void *arg);
/* End of a COPY: ok, or the error (connection lost or server error). */
typedef void (*store_copy_done_fn)(bool ok, void *arg);

/* Borrows base. Connects asynchronously at once. NULL on ENOMEM. */
struct store *store_new(struct event_base *base, const struct store_options *opts,
                        const struct store_handlers *handlers);
void store_free(struct store *st); /* NULL-safe; fails queued requests silently */

bool store_connected(const struct store *st);
size_t store_queue_length(const struct store *st);
/* Change backoff and batch settings (config reload). */
void store_set_limits(struct store *st, int64_t reconnect_min_ms, int64_t reconnect_max_ms,
                      int copy_batch_rows);

/* Queue a parameterised query (text parameters, text results). Parameters
 * are copied. -1 when disconnected or on ENOMEM: done is not called. */
int store_query(struct store *st, const char *sql, int nparams, const char *const *params,
                store_result_fn done, void *arg) __attribute__((warn_unused_result));

/* Queue a "COPY (...) TO STDOUT" and stream its lines. -1 as store_query. */
int store_copy_out(struct store *st, const char *sql, store_line_fn line, store_copy_done_fn done,
                   void *arg) __attribute__((warn_unused_result));

#endif
