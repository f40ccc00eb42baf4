/* relay: the outbox → Redis stream pipeline. */
#include "daemon/relay.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/log.h"
#include "daemon/redis.h"
#include "daemon/store.h"

/* Any constant, the same in every instance (migrate.c uses 7408395). */
#define RELAY_LOCK_KEY "7408396"
#define LOCK_RETRY_MS 2000
#define POLL_MS 5000 /* safety poll and backlog count */
#define PRUNE_MS 60000
#define PRUNE_ROWS 1000
#define REPLY_TIMEOUT_MS 15000
#define MAX_IN_FLIGHT 3 /* batches read and not yet marked published */
/* During a long drain, VACUUM the queue every this many rows: each read
 * starts at its lowest id and would otherwise step over every row deleted
 * since the last (auto)vacuum. */
#define VACUUM_EVERY 100000

/* The queue is tokend_outbox_pending (schema/004_events_relay.sql). Every
 * read takes the lowest pending ids visible now that are not in flight,
 * never "the ids after the last batch": a row may commit after rows with
 * higher ids (its id was taken earlier), and skipping it could put an
 * account's later event first. (An account's events commit in id order:
 * each producer holds the account's row lock when it takes an id; so when
 * an event is visible, every earlier one of its account is too.) The ids are
 * limited first, then looked up one by one: a merge join would walk the
 * outbox's published rows. $2 (the ids in flight) is hashed by PostgreSQL. */
static const char fetch_sql[] = "SELECT o.id, o.event_id, o.type, o.account_id, "
                                "(extract(epoch FROM o.created_at) * 1000000)::bigint, "
                                "o.data::text FROM (SELECT id FROM tokend_outbox_pending "
                                "WHERE NOT (id = ANY($2::bigint[])) ORDER BY id LIMIT $1) p "
                                "JOIN tokend_outbox o ON o.id = p.id ORDER BY p.id";
static const char mark_sql[] =
    "WITH sent AS (DELETE FROM tokend_outbox_pending WHERE id = ANY($1::bigint[])) "
    "UPDATE tokend_outbox SET published_at = now() "
    "WHERE id = ANY($1::bigint[]) AND published_at IS NULL";
static const char reject_sql[] =
    "WITH gone AS (DELETE FROM tokend_outbox_pending WHERE id = $1::bigint) "
    "UPDATE tokend_outbox SET rejected_at = now(), rejected_reason = $2 WHERE id = $1::bigint";
static const char count_sql[] =
    "SELECT count(*), coalesce(extract(epoch FROM now() - (SELECT created_at "
    "FROM tokend_outbox WHERE id = (SELECT min(id) FROM tokend_outbox_pending))), 0) "
    "FROM tokend_outbox_pending";
static const char prune_sql[] =
    "DELETE FROM tokend_outbox WHERE id IN (SELECT id FROM tokend_outbox "
    "WHERE published_at < now() - $1::interval ORDER BY id LIMIT 1000)";
static const char lock_sql[] = "SELECT pg_try_advisory_lock(" RELAY_LOCK_KEY ")";
static const char vacuum_sql[] = "VACUUM tokend_outbox_pending";

/* event_free() is not NULL-safe. */
static void free_event(struct event *ev)
{
	if (ev)
		event_free(ev);
}

struct event_out {
	int64_t id;
	enum envelope_type type;
	char event_id[40];
	char *json;
	size_t len;
};

/* A batch goes READY (read, enveloped) → SENT (MULTI … EXEC at Redis, one
 * batch at a time, in read order) → MARKING (the UPDATE is queued) → gone.
 * A failure drops every READY batch: they are read again after the backoff. */
enum stage { STAGE_READY, STAGE_SENT, STAGE_MARKING };

struct batch {
	struct batch *next; /* in flight, in read order */
	struct relay *r;
	enum stage stage;
	struct event_out *events;
	size_t count;    /* events to XADD */
	int64_t last_id; /* highest id read */
	size_t pending;  /* replies not yet received (+1 while queueing) */
	bool failed;
	char error[300];                    /* the first error, Redis's words */
	int64_t read_us, sent_us, acked_us; /* for the debug log: where the time goes */
};

struct relay {
	struct event_base *base;
	struct store *store;
	struct redis *redis; /* NULL: no redis_url, standby only */
	char *stream, *channel;
	char maxlen_text[24]; /* "" for no MAXLEN */
	int64_t batch_rows, retention_ms, backoff_min_ms, backoff_max_ms, backoff_ms;
	struct event *retry_ev, *poll_ev, *lock_ev, *prune_ev, *reply_ev;
	struct batch *head, *tail; /* in flight, in read order */
	uint32_t failures;         /* consecutive failures */
	uint64_t marked_since_vacuum;
	int64_t fetch_started_us;
	bool fetching;    /* a read is queued */
	bool fetch_stale; /* ... and its rows are to be dropped (a failure came since) */
	bool caught_up;   /* the last read got less than a batch */
	bool again;       /* a NOTIFY (or the poll) since the last read */
	bool leader, locking, retry_pending, paused, counting, pruning, vacuuming, standby_logged;
	bool freeing;
	struct relay_stats stats;
};

static void pump(struct relay *r);

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool query_ok(const PGresult *res, ExecStatusType want, const char *what)
{
	if (!res)
		return false; /* connection lost: store logged it */
	if (PQresultStatus(res) == want)
		return true;
	log_warnx("relay: %s failed: %s", what, PQresultErrorMessage(res));
	return false;
}

/* ---- batches in flight ---- */

static void batch_free(struct batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->count; i++)
		free(b->events[i].json);
	free(b->events);
	free(b);
}

static void batch_append(struct relay *r, struct batch *b)
{
	if (r->tail)
		r->tail->next = b;
	else
		r->head = b;
	r->tail = b;
}

/* Unlink b (in flight) and free it. */
static void batch_done(struct relay *r, struct batch *b)
{
	struct batch **p = &r->head;
	while (*p && *p != b)
		p = &(*p)->next;
	if (*p)
		*p = b->next;
	if (r->tail == b) {
		r->tail = NULL;
		for (struct batch *x = r->head; x; x = x->next)
			r->tail = x;
	}
	batch_free(b);
}

static size_t in_flight(const struct relay *r, bool ready_only)
{
	size_t n = 0;
	for (const struct batch *b = r->head; b; b = b->next)
		n += !ready_only || b->stage == STAGE_READY;
	return n;
}

static const struct batch *sent_batch(const struct relay *r)
{
	for (const struct batch *b = r->head; b; b = b->next)
		if (b->stage == STAGE_SENT)
			return b;
	return NULL;
}

/* "{id,id,...}" of the events of b, or of every batch in flight (b NULL).
 * Caller frees; NULL on ENOMEM. */
static char *id_array(const struct relay *r, const struct batch *only)
{
	size_t n = 0;
	for (const struct batch *b = only ? only : r->head; b; b = only ? NULL : b->next)
		n += b->count;
	char *text = malloc(n * 21 + 3), *p = text;
	if (!text)
		return NULL;
	*p++ = '{';
	for (const struct batch *b = only ? only : r->head; b; b = only ? NULL : b->next)
		for (size_t i = 0; i < b->count; i++)
			p += sprintf(p, "%s%" PRId64, p - text > 1 ? "," : "", b->events[i].id);
	strcpy(p, "}");
	return text;
}

/* A failure: log it, drop the batches not yet sent (and the rows of a read
 * in progress), and go on after a backoff. A batch at Redis finishes. */
static void fail(struct relay *r, const char *failure)
{
	for (struct batch *b = r->head, *next; b; b = next) {
		next = b->next;
		if (b->stage == STAGE_READY)
			batch_done(r, b);
	}
	r->fetch_stale = r->fetching;
	r->caught_up = false;
	r->failures++;
	if (r->retry_pending) {
		log_warnx("relay: %s; nothing marked published", failure);
		return;
	}
	int64_t delay = r->backoff_ms;
	delay -= delay > 4 ? (int64_t)(random() % (delay / 4)) : 0;
	r->backoff_ms =
	    r->backoff_ms * 2 > r->backoff_max_ms ? r->backoff_max_ms : r->backoff_ms * 2;
	r->retry_pending = true;
	struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
	evtimer_add(r->retry_ev, &tv);
	log_warnx("relay: %s; nothing marked published; retrying in %lld ms", failure,
	          (long long)delay);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	r->retry_pending = false;
	r->again = true;
	pump(r);
}

/* ---- marking ---- */

static void vacuumed(const PGresult *res, void *arg)
{
	struct relay *r = arg;
	r->vacuuming = false;
	if (query_ok(res, PGRES_COMMAND_OK, "vacuuming tokend_outbox_pending"))
		log_debug("relay: vacuumed tokend_outbox_pending");
}

static void maybe_vacuum(struct relay *r, size_t marked)
{
	r->marked_since_vacuum += marked;
	if (r->marked_since_vacuum < VACUUM_EVERY || r->vacuuming)
		return;
	r->marked_since_vacuum = 0;
	r->vacuuming = store_query(r->store, vacuum_sql, 0, NULL, vacuumed, r) == 0;
}

static void marked(const PGresult *res, void *arg)
{
	struct batch *b = arg;
	struct relay *r = b->r;
	if (!query_ok(res, PGRES_COMMAND_OK, "marking events published")) {
		batch_done(r, b);
		fail(r, "marking a delivered batch failed (it will be sent again)");
		return;
	}
	for (size_t i = 0; i < b->count; i++)
		r->stats.published[b->events[i].type]++;
	if (r->stats.backlog > 0)
		r->stats.backlog -=
		    (int64_t)b->count < r->stats.backlog ? (int64_t)b->count : r->stats.backlog;
	log_debug("relay: %zu events published, up to outbox id %" PRId64
	          " (read %.1f ms, Redis %.1f ms, mark %.1f ms)",
	          b->count, b->last_id, (double)(b->sent_us - b->read_us) / 1e3,
	          (double)(b->acked_us - b->sent_us) / 1e3, (double)(now_us() - b->acked_us) / 1e3);
	maybe_vacuum(r, b->count);
	batch_done(r, b);
	if (r->failures)
		log_notice("relay: delivering again after %" PRIu32 " failures", r->failures);
	r->failures = 0;
	r->backoff_ms = r->backoff_min_ms;
	pump(r);
}

static void mark(struct relay *r, struct batch *b)
{
	char *ids = id_array(r, b);
	const char *params[] = {ids};
	b->stage = STAGE_MARKING;
	for (size_t i = 0; i < b->count; i++) { /* sent: only ids and types are needed now */
		free(b->events[i].json);
		b->events[i].json = NULL;
	}
	if (!ids || store_query(r->store, mark_sql, 1, params, marked, b) < 0) {
		free(ids);
		batch_done(r, b);
		fail(r,
		     "PostgreSQL is unavailable to mark a delivered batch (it will be sent again)");
		return;
	}
	free(ids);
}

/* ---- sending ---- */

/* Best effort: live listeners get each event on the channel. */
static void publish_nudges(struct relay *r, struct batch *b)
{
	redisAsyncContext *ac = redis_context(r->redis);
	if (!r->channel[0] || !ac)
		return;
	for (size_t i = 0; i < b->count; i++) {
		const char *argv[] = {"PUBLISH", r->channel, b->events[i].json};
		size_t lens[] = {7, strlen(r->channel), b->events[i].len};
		if (redisAsyncCommandArgv(ac, NULL, NULL, 3, argv, lens) != REDIS_OK)
			break;
	}
}

static void note_error(struct batch *b, const char *prefix, const char *msg, size_t len)
{
	if (b->failed)
		return;
	b->failed = true;
	snprintf(b->error, sizeof(b->error), "%s%.*s", prefix, (int)len, msg);
}

/* One reply less to wait for; the last one decides the batch. */
static void reply_received(struct batch *b)
{
	struct relay *r = b->r;
	if (--b->pending > 0 || r->freeing)
		return;
	evtimer_del(r->reply_ev);
	b->acked_us = now_us();
	if (b->failed) {
		char why[400];
		r->stats.failed_batches++;
		snprintf(why, sizeof(why),
		         "Redis did not take a batch of %zu events for stream %s: %s", b->count,
		         r->stream, b->error);
		batch_done(r, b);
		fail(r, why);
		return;
	}
	publish_nudges(r, b);
	mark(r, b);
	pump(r); /* the next batch may go to Redis now */
}

/* A lost connection or an error reply spoils the batch; false then. */
static bool reply_ok(struct batch *b, const redisReply *reply)
{
	if (!reply)
		note_error(b, "connection lost before the reply", "", 0);
	else if (reply->type == REDIS_REPLY_ERROR)
		note_error(b, "", reply->str, reply->len);
	return reply && reply->type != REDIS_REPLY_ERROR;
}

static void on_reply(redisAsyncContext *ac, void *reply_ptr, void *arg)
{
	struct batch *b = arg;
	reply_ok(b, reply_ptr);
	reply_received(b);
}

/* EXEC: an array with one stream entry id per XADD, or an error. */
static void on_exec(redisAsyncContext *ac, void *reply_ptr, void *arg)
{
	struct batch *b = arg;
	redisReply *reply = reply_ptr;
	if (reply_ok(b, reply) && (reply->type != REDIS_REPLY_ARRAY || reply->elements != b->count))
		note_error(b, "EXEC: unexpected reply", "", 0);
	for (size_t i = 0; reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++)
		if (reply->element[i]->type == REDIS_REPLY_ERROR)
			note_error(b, "", reply->element[i]->str, reply->element[i]->len);
	reply_received(b);
}

static void queue_command(struct batch *b, redisAsyncContext *ac, redisCallbackFn *fn, int argc,
                          const char **argv, const size_t *lens)
{
	if (b->failed)
		return; /* never an XADD outside the transaction */
	if (redisAsyncCommandArgv(ac, fn, b, argc, argv, lens) == REDIS_OK)
		b->pending++;
	else
		note_error(b, "cannot queue a command: ", ac->errstr, strlen(ac->errstr));
}

static void queue_xadd(struct relay *r, struct batch *b, redisAsyncContext *ac,
                       const struct event_out *e)
{
	const char *type = envelope_type_name(e->type);
	const char *argv[] = {"XADD", r->stream,   "MAXLEN", "~",  r->maxlen_text, "*",
	                      "id",   e->event_id, "type",   type, "event",        e->json};
	size_t lens[] = {
	    4, strlen(r->stream), 6, 1,     strlen(r->maxlen_text), 1, 2, strlen(e->event_id),
	    4, strlen(type),      5, e->len};
	if (r->maxlen_text[0])
		queue_command(b, ac, on_reply, 12, argv, lens);
	else /* no cap: skip MAXLEN ~ N */
		queue_command(b, ac, on_reply, 9,
		              (const char *[]){"XADD", r->stream, "*", "id", e->event_id, "type",
		                               type, "event", e->json},
		              (const size_t[]){4, lens[1], 1, 2, lens[7], 4, lens[9], 5, e->len});
}

/* MULTI, an XADD per event, EXEC: all of the batch or none of it. */
static void send_batch(struct relay *r, struct batch *b)
{
	redisAsyncContext *ac = redis_context(r->redis);
	b->stage = STAGE_SENT;
	b->pending = 1; /* held while queueing */
	b->sent_us = now_us();
	if (!ac) {
		note_error(b, "Redis is not connected", "", 0);
	} else {
		queue_command(b, ac, on_reply, 1, (const char *[]){"MULTI"}, (const size_t[]){5});
		for (size_t i = 0; i < b->count; i++)
			queue_xadd(r, b, ac, &b->events[i]);
		queue_command(b, ac, on_exec, 1, (const char *[]){"EXEC"}, (const size_t[]){4});
		struct timeval tv = {REPLY_TIMEOUT_MS / 1000, 0};
		evtimer_add(r->reply_ev, &tv);
		if (b->failed && b->pending > 1)
			redis_drop(r->redis, "a batch could not be queued whole");
	}
	reply_received(b);
}

static void on_reply_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	if (sent_batch(r))
		redis_drop(r->redis, "no reply to a batch within 15 s");
}

/* ---- reading ---- */

static void rejected_done(const PGresult *res, void *arg)
{
	query_ok(res, PGRES_COMMAND_OK, "setting an invalid outbox row aside");
}

/* A row that would not make a valid event: logged, counted, set aside. */
static void reject_row(struct relay *r, const PGresult *res, int i, const char *why)
{
	log_err("relay: outbox row %s (event %s, account %s) is not a valid %s event: %s; "
	        "set aside (rejected_at), not sent",
	        PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 3),
	        PQgetvalue(res, i, 2), why);
	r->stats.rejected++;
	const char *params[] = {PQgetvalue(res, i, 0), why};
	if (store_query(r->store, reject_sql, 2, params, rejected_done, NULL) < 0)
		log_warnx("relay: cannot set outbox row %s aside now", PQgetvalue(res, i, 0));
}

/* RFC 3339 UTC with microseconds from microseconds since the epoch (no
 * dependence on the session's TimeZone or DateStyle). */
static void format_time(const char *micros_text, char out[40])
{
	long long us = strtoll(micros_text, NULL, 10);
	long long secs = us / 1000000 - (us % 1000000 < 0);
	time_t t = (time_t)secs;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
		snprintf(out, 40, "invalid");
		return;
	}
	size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 40 - n, ".%06lldZ", us - secs * 1000000);
}

/* Envelope row i into b's next event, or reject it. -1 on ENOMEM. */
static int add_row(struct relay *r, struct batch *b, const PGresult *res, int i)
{
	char time[40];
	format_time(PQgetvalue(res, i, 4), time);
	struct envelope_row row = {.event_id = PQgetvalue(res, i, 1),
	                           .type = PQgetvalue(res, i, 2),
	                           .subject = PQgetvalue(res, i, 3),
	                           .time = time,
	                           .data = PQgetvalue(res, i, 5),
	                           .data_len = (size_t)PQgetlength(res, i, 5)};
	struct event_out *e = &b->events[b->count];
	char why[256];
	b->last_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	switch (envelope_build(&row, &e->json, &e->len, &e->type, why, sizeof(why))) {
	case ENVELOPE_OK:
		e->id = b->last_id;
		snprintf(e->event_id, sizeof(e->event_id), "%s", row.event_id);
		b->count++;
		return 0;
	case ENVELOPE_INVALID:
		reject_row(r, res, i, why);
		return 0;
	case ENVELOPE_NOMEM:
		break;
	}
	return -1;
}

static struct batch *batch_new(struct relay *r, const PGresult *res)
{
	int n = PQntuples(res);
	struct batch *b = calloc(1, sizeof(*b));
	if (!b || !(b->events = calloc((size_t)n, sizeof(*b->events)))) {
		free(b);
		return NULL;
	}
	b->r = r;
	b->read_us = r->fetch_started_us;
	for (int i = 0; i < n; i++) {
		if (add_row(r, b, res, i) < 0) {
			batch_free(b);
			return NULL;
		}
	}
	return b;
}

static void fetched(const PGresult *res, void *arg)
{
	struct relay *r = arg;
	bool stale = r->fetch_stale;
	r->fetching = r->fetch_stale = false;
	if (stale || r->freeing) {
		pump(r);
		return;
	}
	if (!query_ok(res, PGRES_TUPLES_OK, "reading the outbox")) {
		fail(r, "reading the outbox failed");
		return;
	}
	int n = PQntuples(res);
	r->caught_up = n < r->batch_rows;
	if (n == 0 && !r->head) {
		r->stats.backlog = 0; /* nothing left (new rows bring a NOTIFY) */
		r->stats.oldest_seconds = 0;
	}
	struct batch *b = n ? batch_new(r, res) : NULL;
	if (n && !b) {
		fail(r, "out of memory building a batch");
		return;
	}
	if (b && b->count)
		batch_append(r, b);
	else
		batch_free(b); /* every row was set aside */
	pump(r);
}

/* Read the next batch: the lowest pending ids not in flight. */
static void fetch(struct relay *r)
{
	char limit[24], *ids = id_array(r, NULL);
	snprintf(limit, sizeof(limit), "%" PRId64, r->batch_rows);
	const char *params[] = {limit, ids};
	r->again = false;
	r->fetch_started_us = now_us();
	r->fetching = ids && store_query(r->store, fetch_sql, 2, params, fetched, r) == 0;
	free(ids);
	if (!r->fetching)
		fail(r, ids ? "PostgreSQL is unavailable" : "out of memory reading the outbox");
}

/* Move the pipeline on: send the oldest READY batch when none is at Redis,
 * read the next one when there may be more and room in flight. Called after
 * anything changed (a reply, a read, a mark, a NOTIFY, Redis up, the lock). */
static void pump(struct relay *r)
{
	if (r->freeing || !r->leader || r->retry_pending || r->paused || !redis_is_up(r->redis))
		return;
	if (!sent_batch(r)) {
		for (struct batch *b = r->head; b; b = b->next)
			if (b->stage == STAGE_READY) {
				send_batch(r, b); /* may fail and drop batches: look again */
				pump(r);
				return;
			}
	}
	if (!r->fetching && (!r->caught_up || r->again) && in_flight(r, true) == 0 &&
	    in_flight(r, false) < MAX_IN_FLIGHT)
		fetch(r);
}

/* New rows may be there (NOTIFY, the poll, Redis back, the lock taken). */
static void kick(struct relay *r)
{
	r->again = true;
	pump(r);
}

/* ---- the lock, the backlog count, pruning ---- */

static void prune_step(struct relay *r);

static void pruned(const PGresult *res, void *arg)
{
	struct relay *r = arg;
	r->pruning = false;
	if (!query_ok(res, PGRES_COMMAND_OK, "pruning published events"))
		return;
	long n = strtol(PQcmdTuples((PGresult *)res), NULL, 10);
	r->stats.pruned += (uint64_t)n;
	if (n > 0)
		log_debug("relay: pruned %ld published events", n);
	if (n >= PRUNE_ROWS)
		prune_step(r);
}

static void prune_step(struct relay *r)
{
	char retention[48];
	if (!r->leader || r->pruning)
		return;
	snprintf(retention, sizeof(retention), "%" PRId64 " milliseconds", r->retention_ms);
	const char *params[] = {retention};
	r->pruning = store_query(r->store, prune_sql, 1, params, pruned, r) == 0;
}

static void counted(const PGresult *res, void *arg)
{
	struct relay *r = arg;
	r->counting = false;
	if (!query_ok(res, PGRES_TUPLES_OK, "counting the backlog"))
		return;
	r->stats.backlog = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	r->stats.oldest_seconds = strtod(PQgetvalue(res, 0, 1), NULL);
}

static void count_backlog(struct relay *r)
{
	if (r->counting || !store_connected(r->store))
		return;
	r->counting = store_query(r->store, count_sql, 0, NULL, counted, r) == 0;
}

static void locked(const PGresult *res, void *arg)
{
	struct relay *r = arg;
	r->locking = false;
	if (query_ok(res, PGRES_TUPLES_OK, "taking the relay lock") &&
	    strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		r->leader = true;
		r->standby_logged = false;
		log_notice("relay: this instance relays the outbox to stream %s", r->stream);
		kick(r);
		prune_step(r);
		return;
	}
	if (res && !r->standby_logged)
		log_info("relay: another instance relays the outbox; standing by");
	r->standby_logged = res != NULL;
	struct timeval tv = {LOCK_RETRY_MS / 1000, (LOCK_RETRY_MS % 1000) * 1000};
	evtimer_add(r->lock_ev, &tv);
}

static void try_lock(struct relay *r)
{
	if (!r->redis || r->leader || r->locking || !store_connected(r->store))
		return;
	r->locking = store_query(r->store, lock_sql, 0, NULL, locked, r) == 0;
}

static void on_lock_retry(evutil_socket_t fd, short what, void *arg)
{
	try_lock(arg);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	count_backlog(r);
	kick(r);
}

static void on_prune(evutil_socket_t fd, short what, void *arg)
{
	prune_step(arg);
}

/* ---- handlers ---- */

static void store_connected_cb(void *arg)
{
	struct relay *r = arg;
	count_backlog(r);
	try_lock(r);
}

static void store_disconnected_cb(void *arg)
{
	struct relay *r = arg;
	if (r->leader)
		log_notice("relay: the relay lock went with the PostgreSQL session");
	r->leader = r->locking = r->counting = r->pruning = r->vacuuming = false;
}

static void store_notify_cb(const char *channel, const char *payload, void *arg)
{
	kick(arg);
}

static void redis_up_cb(void *arg)
{
	kick(arg);
}

/* ---- life cycle ---- */

int relay_configure(struct relay *r, const struct relay_settings *s)
{
	char *stream = strdup(s->stream), *channel = strdup(s->channel);
	if (!stream || !channel) {
		free(stream);
		free(channel);
		return -1;
	}
	free(r->stream);
	free(r->channel);
	r->stream = stream;
	r->channel = channel;
	if (s->stream_maxlen > 0)
		snprintf(r->maxlen_text, sizeof(r->maxlen_text), "%" PRId64, s->stream_maxlen);
	else
		r->maxlen_text[0] = '\0';
	r->batch_rows = s->batch_rows > 0 ? s->batch_rows : 500;
	r->retention_ms = s->retention_ms;
	r->backoff_min_ms = s->reconnect_min_ms > 0 ? s->reconnect_min_ms : 1000;
	r->backoff_max_ms =
	    s->reconnect_max_ms > r->backoff_min_ms ? s->reconnect_max_ms : r->backoff_min_ms;
	if (r->backoff_ms < r->backoff_min_ms || r->backoff_ms > r->backoff_max_ms)
		r->backoff_ms = r->backoff_min_ms;
	if (r->redis)
		redis_set_backoff(r->redis, r->backoff_min_ms, r->backoff_max_ms);
	return 0;
}

static int add_timers(struct relay *r)
{
	struct event_base *base = r->base;
	r->retry_ev = evtimer_new(base, on_retry, r);
	r->lock_ev = evtimer_new(base, on_lock_retry, r);
	r->reply_ev = evtimer_new(base, on_reply_timeout, r);
	r->poll_ev = event_new(base, -1, EV_PERSIST, on_poll, r);
	r->prune_ev = event_new(base, -1, EV_PERSIST, on_prune, r);
	if (!r->retry_ev || !r->lock_ev || !r->reply_ev || !r->poll_ev || !r->prune_ev)
		return -1;
	struct timeval poll = {POLL_MS / 1000, 0}, prune = {PRUNE_MS / 1000, 0};
	return event_add(r->poll_ev, &poll) | event_add(r->prune_ev, &prune);
}

static int connect_redis(struct relay *r, const char *redis_url, char *err, size_t errlen)
{
	struct redis_target target;
	char where[300];
	if (!redis_url[0]) {
		log_notice("relay: redis_url is empty: events stay in the outbox for an "
		           "instance that relays");
		return 0;
	}
	if (redis_parse_url(redis_url, &target, err, errlen) < 0)
		return -1;
	redis_target_describe(&target, where, sizeof(where));
	log_info("relay: events go to Redis at %s, stream %s", where, r->stream);
	struct redis_handlers handlers = {.up = redis_up_cb, .arg = r};
	r->redis = redis_new(r->base, &target, r->backoff_min_ms, r->backoff_max_ms, &handlers);
	memset(&target, 0, sizeof(target)); /* the password */
	if (!r->redis)
		snprintf(err, errlen, "out of memory");
	return r->redis ? 0 : -1;
}

struct relay *relay_new(struct event_base *base, const char *conninfo, const char *redis_url,
                        const struct relay_settings *settings, char *err, size_t errlen)
{
	static const char *const channels[] = {"tokend_outbox", NULL};
	struct relay *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->base = base;
	r->stats.backlog = -1;
	if (relay_configure(r, settings) < 0 || add_timers(r) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (connect_redis(r, redis_url, err, errlen) < 0)
		goto fail;
	struct store_options opts = {.conninfo = conninfo,
	                             .listen = channels,
	                             .reconnect_min_ms = r->backoff_min_ms,
	                             .reconnect_max_ms = r->backoff_max_ms,
	                             .application_name = "tokend-relay"};
	struct store_handlers handlers = {.connected = store_connected_cb,
	                                  .disconnected = store_disconnected_cb,
	                                  .notify = store_notify_cb,
	                                  .arg = r};
	if (!(r->store = store_new(base, &opts, &handlers))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return r;
fail:
	relay_free(r);
	return NULL;
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	r->freeing = true;
	redis_free(r->redis); /* a pending batch's callbacks run now and see freeing */
	store_free(r->store); /* queued queries are dropped without their callbacks */
	while (r->head)
		batch_done(r, r->head);
	free_event(r->retry_ev);
	free_event(r->lock_ev);
	free_event(r->reply_ev);
	free_event(r->poll_ev);
	free_event(r->prune_ev);
	free(r->stream);
	free(r->channel);
	free(r);
}

void relay_pause(struct relay *r)
{
	if (r)
		r->paused = true;
}

bool relay_idle(const struct relay *r)
{
	return !r || (!r->fetching && !sent_batch(r) && in_flight(r, false) == in_flight(r, true));
}

void relay_stats(const struct relay *r, struct relay_stats *out)
{
	if (!r) {
		*out = (struct relay_stats){.backlog = -1};
		return;
	}
	*out = r->stats;
	out->redis_configured = r->redis != NULL;
	out->redis_up = redis_is_up(r->redis);
	out->relaying = r->leader;
}
