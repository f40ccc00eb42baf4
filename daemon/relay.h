/* relay: drains the PostgreSQL outbox (tokend_outbox) to a Redis stream.
 *
 * It owns a second PostgreSQL session (its own store: the account loads
 * never wait behind it; LISTEN tokend_outbox) and a Redis connection
 * (redis.c), both on the daemon's loop. One instance relays at a time: the
 * one holding a session advisory lock on its relay session; the others stand
 * by and try the lock every few seconds, so a dead relayer is replaced
 * within seconds and nothing is relayed twice over by two instances.
 *
 * The queue is tokend_outbox_pending (schema/004_events_relay.sql). A batch:
 * the lowest pending ids not in flight → each row checked and wrapped in its
 * CloudEvents envelope (envelope.c; a row that would not make a valid event
 * is set aside with rejected_at) → MULTI, XADD <stream> MAXLEN ~ <cap> * id
 * <event_id> type <type> event <json> …, EXEC → when EXEC acknowledged every
 * XADD: optional PUBLISH nudges, and the rows leave the queue with
 * published_at set. Pipelined: the next batch is read and enveloped while
 * one is at Redis, and sent when that one was acknowledged, so batches reach
 * the stream in id order, one transaction at a time. An error reply, a lost
 * connection or no reply in time marks nothing: the batches not yet
 * acknowledged are read again after a backoff and sent with the same event
 * ids (at-least-once). Published rows are deleted after the retention
 * period, a small batch at a time. */
#ifndef TOKEND_RELAY_H
#define TOKEND_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/envelope.h"

struct event_base;
struct relay;

/* The reloadable settings. Strings are copied. */
struct relay_settings {
	const char *stream;       /* XADD key */
	const char *channel;      /* PUBLISH channel; "" for none */
	int64_t stream_maxlen;    /* MAXLEN ~ cap; 0 for none */
	int64_t batch_rows;       /* rows per batch */
	int64_t retention_ms;     /* published rows older than this are deleted */
	int64_t reconnect_min_ms; /* backoff after a failure, first step */
	int64_t reconnect_max_ms; /* backoff ceiling */
};

struct relay_stats {
	uint64_t published[ENVELOPE_TYPE_COUNT]; /* rows marked published, by type */
	uint64_t rejected;                       /* rows set aside as invalid */
	uint64_t failed_batches;                 /* batches Redis refused or never acknowledged */
	uint64_t pruned;                         /* published rows deleted after the retention */
	int64_t backlog;       /* unpublished rows (last count minus published since); -1 unknown */
	double oldest_seconds; /* age of the oldest unpublished row at the last count */
	bool redis_configured; /* redis_url is not empty */
	bool redis_up;
	bool relaying; /* this instance holds the relay lock */
};

/* Connects to PostgreSQL (conninfo) and, when redis_url is not empty, to
 * Redis; with an empty redis_url the relay only counts the backlog and never
 * takes the lock. Borrows base; copies the rest. NULL with err set when
 * redis_url is malformed or on ENOMEM. */
struct relay *relay_new(struct event_base *base, const char *conninfo, const char *redis_url,
                        const struct relay_settings *settings, char *err, size_t errlen);
/* NULL-safe. Nothing is marked for a batch in flight: it is sent again. */
void relay_free(struct relay *r);

/* Apply reloaded settings; they take effect from the next batch. */
int relay_configure(struct relay *r, const struct relay_settings *settings)
    __attribute__((warn_unused_result));
/* Shutdown: start no new batch (the one in flight finishes). */
void relay_pause(struct relay *r);
/* No batch in flight (true for NULL). */
bool relay_idle(const struct relay *r);
/* A snapshot of the counters; zeros and backlog -1 for NULL. */
void relay_stats(const struct relay *r, struct relay_stats *out);

#endif
