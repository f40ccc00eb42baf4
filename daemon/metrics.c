/* metrics: Prometheus text exposition of the daemon's counters and gauges. */
#include "daemon/metrics.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/accounts.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/log.h"
#include "daemon/refresh.h"
#include "daemon/relay.h"
#include "daemon/store.h"
#include "scheduler/sched.h"

static const char *const bad_input_names[] = {
    [BAD_ROW_UNKNOWN_PLATFORM] = "unknown_platform", [BAD_ROW_UNPARSABLE] = "unparsable_row",
    [BAD_ROW_UNDECRYPTABLE] = "undecryptable_token", [BAD_CONFIG_RELOAD] = "config_reload",
    [BAD_ADMIN_REQUEST] = "admin_request",           [BAD_NOTIFICATION] = "notification",
    [BAD_UPSTREAM_BODY] = "upstream_body",
};

static const char *const result_names[] = {
    [RESULT_DONE] = "done",         [RESULT_FENCED] = "fenced",     [RESULT_FAILED] = "failed",
    [RESULT_RETRYING] = "retrying", [RESULT_DEFERRED] = "deferred",
};

static const char *const outcome_names[] = {
    [OUTCOME_REFRESHED] = "refreshed",   [OUTCOME_CHECKED] = "checked",
    [OUTCOME_REVOKED] = "revoked",       [OUTCOME_ADOPTED] = "adopted",
    [OUTCOME_TRANSIENT] = "transient",   [OUTCOME_MALFORMED] = "malformed",
    [OUTCOME_UNOPENABLE] = "unopenable",
};

/* One histogram kind: its upper bounds (ascending; +Inf is implied). */
struct histogram_spec {
	const double *bounds;
	size_t n;
};

/* Refreshes take one round trip plus a commit: tens of milliseconds to the
 * http_timeout (30 s by default). */
static const double refresh_duration_bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
/* Leads are minutes (X, Bluesky, TikTok), a day (LinkedIn, Pinterest) or two
 * weeks (Meta); le="0" counts refreshes after the old token had expired. */
static const double refresh_lead_bounds[] = {0,     60,    120,    300,    600,     1800,   3600,
                                             21600, 86400, 259200, 604800, 1209600, 2592000};
/* The timer fires within milliseconds; rate limits and a backlog after an
 * outage add seconds to hours. */
static const double schedule_lateness_bounds[] = {0.005, 0.01, 0.05, 0.1, 0.5, 1,
                                                  5,     10,   30,   60,  300, 3600};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
static const struct histogram_spec histogram_specs[HISTOGRAM_KIND_COUNT] = {
    [HISTOGRAM_REFRESH_DURATION] = {refresh_duration_bounds, COUNT_OF(refresh_duration_bounds)},
    [HISTOGRAM_REFRESH_LEAD] = {refresh_lead_bounds, COUNT_OF(refresh_lead_bounds)},
    [HISTOGRAM_SCHEDULE_LATENESS] = {schedule_lateness_bounds, COUNT_OF(schedule_lateness_bounds)},
};
_Static_assert(COUNT_OF(refresh_duration_bounds) <= HISTOGRAM_BUCKETS_MAX, "too many buckets");
_Static_assert(COUNT_OF(refresh_lead_bounds) <= HISTOGRAM_BUCKETS_MAX, "too many buckets");
_Static_assert(COUNT_OF(schedule_lateness_bounds) <= HISTOGRAM_BUCKETS_MAX, "too many buckets");

void metrics_observe(struct histogram *h, enum histogram_kind kind, double value)
{
	const struct histogram_spec *spec = &histogram_specs[kind];
	size_t i = 0;
	while (i < spec->n && value > spec->bounds[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum += value;
}

int64_t metrics_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool metrics_expired_unnoticed(const struct policy_input *s)
{
	const unsigned told = EVENT_FIRED_EXPIRING_REFRESH_FAILING |
	                      EVENT_FIRED_EXPIRING_REAUTH_REQUIRED | EVENT_FIRED_REVOKED;
	return s->active && s->access_expires_at_ms > 0 &&
	       s->now_ms - s->access_expires_at_ms > METRICS_EXPIRY_GRACE_MS &&
	       !(s->events_fired & told);
}

const char *metrics_outcome_name(enum refresh_outcome outcome)
{
	return outcome_names[outcome];
}

const char *metrics_bad_input_name(enum bad_input kind)
{
	return bad_input_names[kind];
}

const char *metrics_result_name(enum action_result result)
{
	return result_names[result];
}

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct evbuffer *out, const char *name, const char *help, double value)
{
	family(out, name, "gauge", help);
	evbuffer_add_printf(out, "%s %.17g\n", name, value);
}

static void counter(struct evbuffer *out, const char *name, const char *help, uint64_t value)
{
	family(out, name, "counter", help);
	evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, value);
}

static void render_schedule(const struct daemon *d, struct evbuffer *out)
{
	gauge(out, "tokend_scheduled_accounts",
	      "Accounts known to this instance's scheduler (active or not).",
	      (double)sched_size(d->sched));
	gauge(out, "tokend_heap_size", "Accounts with a pending action in the deadline heap.",
	      (double)sched_pending(d->sched));
	gauge(out, "tokend_actions_in_flight", "Due actions handed out and not finished.",
	      (double)sched_in_flight(d->sched));
	int64_t next = sched_next_due(d->sched);
	gauge(out, "tokend_next_deadline_seconds",
	      "Seconds until the earliest pending action (negative when late; 0 when none).",
	      next ? (double)(next - sched_now_ms()) / 1000.0 : 0.0);
	gauge(out, "tokend_scheduler_memory_bytes", "Bytes held by the schedule (no tokens).",
	      (double)sched_memory_bytes(d->sched));
}

static void render_actions(const struct daemon *d, struct evbuffer *out)
{
	family(out, "tokend_actions_total", "counter", "Lifecycle actions carried out, by result.");
	for (int a = ACTION_EXCHANGE; a < ACTION_COUNT; a++)
		for (int r = 0; r < RESULT_COUNT; r++)
			evbuffer_add_printf(
			    out, "tokend_actions_total{action=\"%s\",result=\"%s\"} %" PRIu64 "\n",
			    policy_action_name((enum action)a), result_names[r],
			    d->metrics.actions[a][r]);
}

static void render_refreshes(const struct daemon *d, struct evbuffer *out)
{
	family(out, "tokend_refreshes_total", "counter",
	       "Requests to platforms (refresh, exchange, check), by platform and outcome.");
	for (size_t p = 0; p < platform_count(); p++)
		for (int o = 0; o < OUTCOME_COUNT; o++)
			evbuffer_add_printf(
			    out,
			    "tokend_refreshes_total{platform=\"%s\",outcome=\"%s\"} "
			    "%" PRIu64 "\n",
			    platform_at(p)->name, outcome_names[o], d->metrics.refreshes[p][o]);
}

/* One histogram's series; label_value NULL for an unlabelled one. */
static void render_histogram(struct evbuffer *out, const char *name, const char *label,
                             const char *label_value, const struct histogram *h,
                             enum histogram_kind kind)
{
	const struct histogram_spec *spec = &histogram_specs[kind];
	char sel[96] = "";
	if (label_value)
		snprintf(sel, sizeof(sel), "%s=\"%s\"", label, label_value);
	const char *comma = sel[0] ? "," : "";
	uint64_t cumulative = 0;
	for (size_t i = 0; i < spec->n; i++) {
		cumulative += h->buckets[i];
		evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%.15g\"} %" PRIu64 "\n", name, sel,
		                    comma, spec->bounds[i], cumulative);
	}
	evbuffer_add_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, sel, comma,
	                    h->count);
	evbuffer_add_printf(out, "%s_sum%s%s%s %.17g\n", name, sel[0] ? "{" : "", sel,
	                    sel[0] ? "}" : "", h->sum);
	evbuffer_add_printf(out, "%s_count%s%s%s %" PRIu64 "\n", name, sel[0] ? "{" : "", sel,
	                    sel[0] ? "}" : "", h->count);
}

/* A histogram per platform. */
static void render_platform_histograms(struct evbuffer *out, const char *name, const char *help,
                                       const struct histogram *h, enum histogram_kind kind)
{
	family(out, name, "histogram", help);
	for (size_t p = 0; p < platform_count(); p++)
		render_histogram(out, name, "platform", platform_at(p)->name, &h[p], kind);
}

static void render_refresh_timing(const struct daemon *d, struct evbuffer *out)
{
	gauge(out, "tokend_refreshes_in_flight",
	      "Refresh-type actions (exchange, refresh, retry, check) between claim and commit.",
	      (double)refresh_in_flight(d->refresh));
	render_platform_histograms(
	    out, "tokend_refresh_duration_seconds",
	    "Time from claiming an account to the end of its refresh (claim, token request, "
	    "journal fsync, commit), for refreshes that sent a request to the platform.",
	    d->metrics.refresh_duration, HISTOGRAM_REFRESH_DURATION);
	render_platform_histograms(
	    out, "tokend_refresh_lead_seconds",
	    "How long before the old access token's expiry a refresh stored the new token "
	    "(negative: after it expired).",
	    d->metrics.refresh_lead, HISTOGRAM_REFRESH_LEAD);
	family(out, "tokend_schedule_lateness_seconds", "histogram",
	       "How late an action started: start time minus the due time the fresh row gives.");
	render_histogram(out, "tokend_schedule_lateness_seconds", NULL, NULL,
	                 &d->metrics.schedule_lateness, HISTOGRAM_SCHEDULE_LATENESS);
	family(out, "tokend_tokens_expired_while_active_total", "counter",
	       "Access tokens found expired (by over a minute) on an active account with no "
	       "token.expiring or token.revoked recorded first. Must stay 0.");
	for (size_t p = 0; p < platform_count(); p++)
		evbuffer_add_printf(
		    out, "tokend_tokens_expired_while_active_total{platform=\"%s\"} %" PRIu64 "\n",
		    platform_at(p)->name, d->metrics.expired_while_active[p]);
}

/* ---- the account census ---- */

static const char *const status_names[STATUS_COUNT] = {
    [STATUS_ACTIVE] = "active", [STATUS_REVOKED] = "revoked", [STATUS_EXPIRED] = "expired"};

static int status_index(const char *name)
{
	for (int i = 0; i < STATUS_COUNT; i++)
		if (strcmp(name, status_names[i]) == 0)
			return i;
	return -1;
}

static void census_counted(const PGresult *res, void *arg)
{
	struct daemon *d = arg;
	struct census *c = &d->metrics.census;
	c->running = false;
	if (!res)
		return; /* connection lost: a later tick asks again */
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("metrics: counting accounts failed: %s", PQresultErrorMessage(res));
		return;
	}
	memset(c->accounts, 0, sizeof(c->accounts));
	for (int row = 0; row < PQntuples(res); row++) {
		int p = platform_index_of(PQgetvalue(res, row, 0));
		int status = status_index(PQgetvalue(res, row, 1));
		if (status >= 0)
			c->accounts[p < 0 ? PLATFORM_MAX : p][status] +=
			    strtoull(PQgetvalue(res, row, 2), NULL, 10);
	}
	c->counted_ms = sched_now_ms();
}

void metrics_census_tick(struct daemon *d)
{
	static const char sql[] =
	    "SELECT platform, status, count(*) FROM platform_accounts GROUP BY 1, 2";
	struct census *c = &d->metrics.census;
	int64_t now = sched_now_ms();
	bool stale = now - c->started_ms >= METRICS_CENSUS_INTERVAL_MS || now < c->started_ms;
	if (c->running || d->stopping || !d->store || !store_connected(d->store) ||
	    (!stale && c->loads_counted == d->metrics.loads))
		return;
	if (store_query(d->store, sql, 0, NULL, census_counted, d) < 0)
		return;
	c->running = true;
	c->started_ms = now;
	c->loads_counted = d->metrics.loads;
}

static void render_census(const struct daemon *d, struct evbuffer *out)
{
	const struct census *c = &d->metrics.census;
	if (!c->counted_ms)
		return; /* not counted yet */
	family(out, "tokend_accounts", "gauge",
	       "Rows of platform_accounts by platform and status at the last count (every 30 s "
	       "and after each load; every instance counts the same table).");
	for (size_t p = 0; p <= platform_count(); p++) {
		bool unknown = p == platform_count();
		const uint64_t *row = c->accounts[unknown ? PLATFORM_MAX : p];
		for (int st = 0; st < STATUS_COUNT; st++)
			evbuffer_add_printf(
			    out, "tokend_accounts{platform=\"%s\",status=\"%s\"} %" PRIu64 "\n",
			    unknown ? "unknown" : platform_at(p)->name, status_names[st], row[st]);
	}
	gauge(out, "tokend_accounts_counted_timestamp_seconds",
	      "Unix time of the last count behind tokend_accounts.",
	      (double)c->counted_ms / 1000.0);
}

static void render_bad_input(const struct daemon *d, struct evbuffer *out)
{
	family(out, "tokend_bad_input_total", "counter",
	       "Bad input refused (rows, config reloads, requests, notifications), by kind.");
	for (int k = 0; k < BAD_INPUT_COUNT; k++)
		evbuffer_add_printf(out, "tokend_bad_input_total{kind=\"%s\"} %" PRIu64 "\n",
		                    bad_input_names[k], d->metrics.bad_input[k]);
}

/* The outbox relay (daemon/relay.c). */
static void render_events(const struct daemon *d, struct evbuffer *out)
{
	struct relay_stats s;
	relay_stats(d->relay, &s);
	family(out, "tokend_events_published_total", "counter",
	       "Events acknowledged by Redis and marked published, by type.");
	for (int t = 0; t < ENVELOPE_TYPE_COUNT; t++)
		evbuffer_add_printf(out, "tokend_events_published_total{type=\"%s\"} %" PRIu64 "\n",
		                    envelope_type_name((enum envelope_type)t), s.published[t]);
	counter(out, "tokend_events_rejected_total",
	        "Outbox rows set aside because they would not make a valid event.", s.rejected);
	counter(out, "tokend_relay_failed_batches_total",
	        "Batches Redis refused or did not acknowledge (retried).", s.failed_batches);
	counter(out, "tokend_outbox_pruned_total", "Published outbox rows deleted after retention.",
	        s.pruned);
	if (d->cfg->redis_url[0]) /* an instance that does not relay has no Redis to be up */
		gauge(out, "tokend_redis_up", "1 while the Redis connection is up.", s.redis_up);
	gauge(out, "tokend_relay_active", "1 while this instance holds the relay lock.",
	      s.relaying);
	if (s.backlog < 0)
		return; /* not counted yet */
	gauge(out, "tokend_outbox_backlog", "Outbox rows not yet published.", (double)s.backlog);
	gauge(out, "tokend_outbox_oldest_unpublished_seconds",
	      "Age of the oldest unpublished outbox row at the last count.", s.oldest_seconds);
}

void metrics_render(const struct daemon *d, struct evbuffer *out)
{
	family(out, "tokend_build_info", "gauge", "Always 1; the version in a label.");
	evbuffer_add_printf(out, "tokend_build_info{version=\"%s\"} 1\n", TOKEND_VERSION);
	gauge(out, "tokend_start_time_seconds", "Unix time this process started.",
	      (double)d->started_ms / 1000.0);
	gauge(out, "tokend_ready", "1 once the first full load finished.", d->ready);
	gauge(out, "tokend_database_up", "1 while the PostgreSQL connection is up.",
	      store_connected(d->store));
	render_census(d, out);
	render_schedule(d, out);
	render_actions(d, out);
	render_refreshes(d, out);
	render_refresh_timing(d, out);
	render_bad_input(d, out);
	render_events(d, out);
	gauge(out, "tokend_journal_pending",
	      "Upstream responses kept in the journal, not yet committed to PostgreSQL.",
	      (double)refresh_journal_pending(d->refresh));
	counter(out, "tokend_journal_replayed_total",
	        "Journal entries committed after a restart or an outage.",
	        d->metrics.journal_replayed);
	counter(out, "tokend_notifications_total", "Change notifications received.",
	        d->metrics.notifications);
	counter(out, "tokend_loads_total", "Full loads of platform_accounts completed.",
	        d->metrics.loads);
	counter(out, "tokend_config_reloads_total", "Configuration reloads applied.",
	        d->metrics.config_reloads);
	counter(out, "tokend_clock_jumps_total", "Wall-clock jumps noticed.",
	        d->metrics.clock_jumps);
	gauge(out, "tokend_last_load_seconds", "Duration of the last full load.",
	      (double)accounts_last_load_ms(d->accounts) / 1000.0);
}
