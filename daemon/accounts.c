/* accounts: load, follow and act on platform_accounts rows. */
#include "daemon/accounts.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <systemd/sd-daemon.h>

#include "daemon/account.h"
#include "daemon/actions.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/log.h"
#include "daemon/refresh.h"
#include "daemon/seal.h"
#include "daemon/sqlarray.h"
#include "daemon/store.h"
#include "platforms/platform.h"

#define FETCH_BATCH 1000
/* After an action failed (database error or lost connection), try again this
 * much later rather than at once: a failing statement must not spin. */
#define FAILED_ACTION_DELAY_MS 30000
/* A full load that failed on a live connection is tried again after this. */
#define LOAD_RETRY_MS 5000
/* Fenced out by another writer (most often another instance's live lease):
 * look again after this rather than at once, which would spin. */
#define FENCED_DELAY_MS 2000
/* An action could not start (a connection is down): try again soon. */
#define NOT_STARTED_DELAY_MS 1000
/* A platform's in-flight cap was full when the action started. */
#define DEFERRED_DELAY_MS 50

struct id_list {
	uint8_t (*ids)[SCHED_ID_LEN];
	size_t len, cap;
};

struct fetch {
	struct accounts *a;
	struct id_list ids; /* requested, sorted */
};

struct accounts {
	struct daemon *d;
	struct id_list pending; /* to re-read */
	struct id_list running; /* actions in progress */
	bool fetching;
	bool loading, loaded;
	bool reload_pending;      /* a reload was asked for during a load */
	struct event *load_retry; /* after a load failed on a live connection */
	int64_t load_started_ms, last_load_ms;
	uint64_t load_rows;
};

static const char *const fetch_sql =
    "SELECT " ACCOUNT_COLUMNS " FROM platform_accounts WHERE id = ANY($1::uuid[])";
static const char *const load_sql =
    "COPY (SELECT " ACCOUNT_COLUMNS " FROM platform_accounts) TO STDOUT";

static void flush_fetches(struct accounts *a);

static int id_list_add(struct id_list *l, const uint8_t id[SCHED_ID_LEN])
{
	if (l->len == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *ids = realloc(l->ids, cap * SCHED_ID_LEN);
		if (!ids)
			return -1;
		l->ids = ids;
		l->cap = cap;
	}
	memcpy(l->ids[l->len++], id, SCHED_ID_LEN);
	return 0;
}

static ssize_t id_list_find(const struct id_list *l, const uint8_t id[SCHED_ID_LEN])
{
	for (size_t i = 0; i < l->len; i++)
		if (memcmp(l->ids[i], id, SCHED_ID_LEN) == 0)
			return (ssize_t)i;
	return -1;
}

static void id_list_remove_at(struct id_list *l, size_t i)
{
	memcpy(l->ids[i], l->ids[--l->len], SCHED_ID_LEN);
}

static int compare_ids(const void *x, const void *y)
{
	return memcmp(x, y, SCHED_ID_LEN);
}

static void on_load_retry(evutil_socket_t fd, short what, void *arg)
{
	accounts_reload(arg);
}

struct accounts *accounts_new(struct daemon *d)
{
	struct accounts *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->d = d;
	a->load_retry = evtimer_new(d->base, on_load_retry, a);
	if (!a->load_retry) {
		free(a);
		return NULL;
	}
	return a;
}

void accounts_free(struct accounts *a)
{
	if (!a)
		return;
	event_free(a->load_retry);
	free(a->pending.ids);
	free(a->running.ids);
	free(a);
}

static struct policy_decision decide(const struct accounts *a, struct account *acct)
{
	acct->state.now_ms = sched_now_ms();
	acct->state.jitter_seed = account_jitter_seed(acct->id, acct->token_version);
	return policy_next(&a->d->cfg->platform[acct->platform].schedule, &acct->state);
}

/* An action completed on an account whose access token had expired before
 * anyone was told (metrics_expired_unnoticed): promise 4 was broken. */
static void note_unnoticed_expiry(struct accounts *a, const struct account *acct)
{
	a->d->metrics.expired_while_active[acct->platform]++;
	log_err("account %s (%s): access token had expired %" PRId64 " s before tokend acted, "
	        "with no token.expiring or token.revoked recorded",
	        acct->id_text, acct->platform_name,
	        (acct->state.now_ms - acct->state.access_expires_at_ms) / 1000);
}

static void action_done(const struct account *acct, struct policy_decision decision,
                        enum action_result result, void *arg)
{
	struct accounts *a = arg;
	ssize_t i = id_list_find(&a->running, acct->id);
	if (i >= 0)
		id_list_remove_at(&a->running, (size_t)i);
	if (result == RESULT_DONE && metrics_expired_unnoticed(&acct->state))
		note_unnoticed_expiry(a, acct);
	if (result == RESULT_FAILED || result == RESULT_DEFERRED || result == RESULT_FENCED) {
		int64_t delay = result == RESULT_FAILED   ? FAILED_ACTION_DELAY_MS
		                : result == RESULT_FENCED ? FENCED_DELAY_MS
		                                          : DEFERRED_DELAY_MS;
		if (sched_set(a->d->sched, acct->id, (uint8_t)acct->platform, decision.action,
		              sched_now_ms() + delay) < 0)
			log_err("account %s: out of memory rescheduling it", acct->id_text);
		return;
	}
	/* Re-read: the row changed. */
	if (accounts_refetch(a, acct->id) < 0)
		log_debug("accounts: re-read after action deferred to the next load");
}

static void start_action(struct accounts *a, const struct account *acct,
                         struct policy_decision decision)
{
	if (id_list_add(&a->running, acct->id) < 0)
		return;
	if (actions_run(a->d, acct, decision, action_done, a) < 0) {
		/* PostgreSQL (the write path's connection) is not there: the entry
		 * must not stay handed out with nobody working on it. */
		id_list_remove_at(&a->running, a->running.len - 1);
		if (sched_set(a->d->sched, acct->id, (uint8_t)acct->platform, decision.action,
		              sched_now_ms() + NOT_STARTED_DELAY_MS) < 0)
			log_err("account %s: out of memory rescheduling it", acct->id_text);
		return;
	}
	metrics_observe(&a->d->metrics.schedule_lateness, HISTOGRAM_SCHEDULE_LATENESS,
	                (double)(acct->state.now_ms - decision.due_ms) / 1000.0);
}

static void schedule(struct accounts *a, const struct account *acct,
                     struct policy_decision decision)
{
	if (sched_set(a->d->sched, acct->id, (uint8_t)acct->platform, decision.action,
	              decision.due_ms) < 0)
		log_err("account %s: out of memory scheduling it", acct->id_text);
}

static void forget_unknown_platform(struct accounts *a, const struct account *acct)
{
	a->d->metrics.bad_input[BAD_ROW_UNKNOWN_PLATFORM]++;
	log_warnx("account %s: unknown platform '%s'; not scheduled", acct->id_text,
	          acct->platform_name);
	sched_remove(a->d->sched, acct->id);
}

/* A fresh row: act on it if the scheduler handed it out and it is still
 * due, otherwise (re)schedule it. */
static void apply_row(struct accounts *a, struct account *acct)
{
	if (acct->platform < 0) {
		forget_unknown_platform(a, acct);
		return;
	}
	if (id_list_find(&a->running, acct->id) >= 0)
		return; /* the action's end re-reads the row */
	struct policy_decision decision = decide(a, acct);
	struct sched_entry entry;
	bool handed_out = sched_get(a->d->sched, acct->id, &entry) && entry.in_flight;
	if (handed_out && decision.action != ACTION_NONE && decision.due_ms <= acct->state.now_ms)
		start_action(a, acct, decision);
	else
		schedule(a, acct, decision);
}

static void bad_row(struct accounts *a, const char *err)
{
	a->d->metrics.bad_input[BAD_ROW_UNPARSABLE]++;
	log_warnx("accounts: skipping row: %s", err);
}

static void on_load_line(char *line, size_t len, void *arg)
{
	struct accounts *a = arg;
	struct account acct;
	char err[128];
	a->load_rows++;
	if (account_parse_copy_line(line, len, &acct, err, sizeof(err)) < 0)
		bad_row(a, err);
	else
		apply_row(a, &acct);
}

static void announce_ready(struct accounts *a)
{
	struct daemon *d = a->d;
	char status[160];
	snprintf(status, sizeof(status), "STATUS=%zu accounts scheduled, %zu pending",
	         sched_size(d->sched), sched_pending(d->sched));
	if (!d->ready) {
		d->ready = true;
		sd_notifyf(0, "READY=1\n%s", status);
		log_notice("tokend ready: %zu accounts loaded in %" PRId64 " ms",
		           sched_size(d->sched), a->last_load_ms);
	} else {
		sd_notify(0, status);
	}
}

static void on_load_done(bool ok, void *arg)
{
	struct accounts *a = arg;
	a->loading = false;
	if (!ok) {
		/* Lost connection: the reconnect reloads. A load that failed on a
		 * live connection (a statement timeout, say) is retried here. */
		bool up = store_connected(a->d->store);
		log_warnx("accounts: load failed after %" PRIu64 " rows; retrying %s", a->load_rows,
		          up ? "in 5 s" : "on reconnect");
		if (up) {
			struct timeval tv = {LOAD_RETRY_MS / 1000, 0};
			evtimer_add(a->load_retry, &tv);
		}
		return;
	}
	size_t gone = sched_sweep(a->d->sched);
	a->loaded = true;
	a->last_load_ms = sched_now_ms() - a->load_started_ms;
	a->d->metrics.loads++;
	a->d->metrics.rows_loaded += a->load_rows;
	log_info("accounts: loaded %" PRIu64 " rows in %" PRId64 " ms (%zu forgotten)",
	         a->load_rows, a->last_load_ms, gone);
	sched_pause(a->d->sched, a->d->stopping);
	announce_ready(a);
	flush_fetches(a);
	if (a->reload_pending) {
		a->reload_pending = false;
		accounts_reload(a);
	}
}

void accounts_on_connected(struct accounts *a)
{
	a->loading = true;
	a->load_rows = 0;
	a->load_started_ms = sched_now_ms();
	sched_mark_all(a->d->sched);
	if (store_copy_out(a->d->store, load_sql, on_load_line, on_load_done, a) < 0) {
		a->loading = false;
		log_warnx("accounts: cannot start the load; retrying on reconnect");
	}
}

void accounts_reload(struct accounts *a)
{
	if (a->loading)
		a->reload_pending = true;
	else if (store_connected(a->d->store))
		accounts_on_connected(a);
}

void accounts_on_disconnected(struct accounts *a)
{
	/* In-flight work failed with the connection; the next load re-reads all. */
	a->loaded = a->loading = a->fetching = a->reload_pending = false;
	a->pending.len = 0;
	sched_pause(a->d->sched, true);
}

static void apply_result_rows(struct accounts *a, const PGresult *res, struct fetch *f, bool *seen)
{
	for (int row = 0; row < PQntuples(res); row++) {
		const char *fields[ACCOUNT_NFIELDS];
		for (int c = 0; c < ACCOUNT_NFIELDS; c++)
			fields[c] = PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
		struct account acct;
		char err[128];
		if (account_parse_fields(fields, &acct, err, sizeof(err)) < 0) {
			bad_row(a, err);
			continue;
		}
		uint8_t(*hit)[SCHED_ID_LEN] =
		    bsearch(acct.id, f->ids.ids, f->ids.len, SCHED_ID_LEN, compare_ids);
		if (hit)
			seen[hit - f->ids.ids] = true;
		apply_row(a, &acct);
	}
}

/* Requested ids with no row were deleted: forget them. */
static void forget_missing(struct accounts *a, const struct fetch *f, const bool *seen)
{
	for (size_t i = 0; i < f->ids.len; i++) {
		if (seen[i] || id_list_find(&a->running, f->ids.ids[i]) >= 0)
			continue;
		if (sched_remove(a->d->sched, f->ids.ids[i])) {
			char id[37];
			seal_format_uuid(f->ids.ids[i], id);
			log_info("account %s: row deleted; forgotten", id);
		}
	}
}

/* A re-read that failed while the connection stayed up (a statement
 * timeout, a cancel, out of memory): the accounts it held try again later,
 * so none stays handed out with nobody working on it. */
static void defer_ids(struct accounts *a, const struct id_list *ids)
{
	int64_t again = sched_now_ms() + FAILED_ACTION_DELAY_MS;
	for (size_t i = 0; i < ids->len; i++) {
		struct sched_entry e;
		if (sched_get(a->d->sched, ids->ids[i], &e) &&
		    sched_set(a->d->sched, e.id, e.platform, e.action, again) < 0)
			log_err("accounts: out of memory deferring a re-read");
	}
}

static void on_fetched(const PGresult *res, void *arg)
{
	struct fetch *f = arg;
	struct accounts *a = f->a;
	bool *seen = res && PQresultStatus(res) == PGRES_TUPLES_OK
	                 ? calloc(f->ids.len ? f->ids.len : 1, sizeof(bool))
	                 : NULL;
	if (seen) {
		apply_result_rows(a, res, f, seen);
		forget_missing(a, f, seen);
	} else if (res) {
		log_warnx("accounts: re-reading %zu rows failed (%s); trying again in %d s",
		          f->ids.len, PQresultErrorMessage(res), FAILED_ACTION_DELAY_MS / 1000);
		defer_ids(a, &f->ids);
	}
	free(seen);
	free(f->ids.ids);
	free(f);
	if (res) {
		a->fetching = false;
		flush_fetches(a);
	}
}

static struct fetch *take_batch(struct accounts *a)
{
	struct fetch *f = calloc(1, sizeof(*f));
	size_t n = a->pending.len < FETCH_BATCH ? a->pending.len : FETCH_BATCH;
	if (!f || !(f->ids.ids = malloc(n * SCHED_ID_LEN))) {
		free(f);
		return NULL;
	}
	f->a = a;
	f->ids.len = f->ids.cap = n;
	memcpy(f->ids.ids, a->pending.ids[a->pending.len - n], n * SCHED_ID_LEN);
	a->pending.len -= n;
	qsort(f->ids.ids, n, SCHED_ID_LEN, compare_ids);
	size_t unique = 0; /* one account notified twice is read once */
	for (size_t i = 0; i < n; i++)
		if (!unique || compare_ids(f->ids.ids[unique - 1], f->ids.ids[i]))
			memmove(f->ids.ids[unique++], f->ids.ids[i], SCHED_ID_LEN);
	f->ids.len = unique;
	return f;
}

static char *uuid_array_literal(const struct id_list *ids)
{
	struct sqlarray array;
	char text[37];
	sqlarray_init(&array);
	for (size_t i = 0; i < ids->len; i++) {
		seal_format_uuid(ids->ids[i], text);
		sqlarray_add(&array, text);
	}
	return sqlarray_finish(&array);
}

/* One batched re-read at a time; the next goes when it returns. */
static void flush_fetches(struct accounts *a)
{
	if (a->fetching || !a->pending.len || !store_connected(a->d->store))
		return;
	struct fetch *f = take_batch(a);
	if (!f) {
		log_err("accounts: out of memory re-reading rows");
		return;
	}
	char *literal = uuid_array_literal(&f->ids);
	const char *params[] = {literal};
	a->fetching = true;
	if (!literal || store_query(a->d->store, fetch_sql, 1, params, on_fetched, f) < 0) {
		a->fetching = false;
		defer_ids(a, &f->ids);
		free(f->ids.ids);
		free(f);
	}
	free(literal);
}

int accounts_refetch(struct accounts *a, const uint8_t id[SCHED_ID_LEN])
{
	if (!store_connected(a->d->store) || id_list_add(&a->pending, id) < 0)
		return -1;
	flush_fetches(a);
	return 0;
}

void accounts_on_notify(struct accounts *a, const char *channel, const char *payload)
{
	uint8_t id[SCHED_ID_LEN];
	a->d->metrics.notifications++;
	/* "<op>:<uuid>"; the op does not matter: the row says what is true now. */
	if (!payload || strlen(payload) < 3 || payload[1] != ':' ||
	    !seal_parse_uuid(payload + 2, id)) {
		a->d->metrics.bad_input[BAD_NOTIFICATION]++;
		log_warnx("accounts: ignoring malformed notification on %s", channel);
		return;
	}
	if (accounts_refetch(a, id) < 0)
		log_warnx("accounts: cannot queue re-read of %s", payload + 2);
}

void accounts_on_due(const struct sched_due *due, void *arg)
{
	struct accounts *a = arg;
	if (actions_need_platform(due->action)) {
		/* Over the platform's limits: wait in the heap, not in a query. */
		int64_t again = refresh_admit(a->d->refresh, due->platform, due->fired_ms);
		if (again) {
			if (sched_set(a->d->sched, due->id, due->platform, due->action, again) < 0)
				log_err("accounts: out of memory deferring a refresh");
			return;
		}
	}
	if (accounts_refetch(a, due->id) < 0)
		log_debug("accounts: due account waits for the connection");
}

const char *accounts_load_sql(void)
{
	return load_sql;
}

bool accounts_loaded(const struct accounts *a)
{
	return a->loaded;
}

bool accounts_loading(const struct accounts *a)
{
	return a->loading;
}

size_t accounts_running(const struct accounts *a)
{
	return a->running.len;
}

int64_t accounts_last_load_ms(const struct accounts *a)
{
	return a->last_load_ms;
}
