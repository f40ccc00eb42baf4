/* metrics: Prometheus text exposition of the daemon's counters and gauges. */
#include "daemon/metrics.h"

#include <event2/buffer.h>
#include <inttypes.h>

#include "daemon/accounts.h"
#include "daemon/daemon.h"
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
    [RESULT_DONE] = "done",
    [RESULT_FENCED] = "fenced",
    [RESULT_FAILED] = "failed",
    [RESULT_RETRYING] = "retrying",
    [RESULT_DEFERRED] = "deferred",
};

static const char *const outcome_names[] = {
    [OUTCOME_REFRESHED] = "refreshed", [OUTCOME_CHECKED] = "checked",
    [OUTCOME_REVOKED] = "revoked",     [OUTCOME_ADOPTED] = "adopted",
    [OUTCOME_TRANSIENT] = "transient", [OUTCOME_MALFORMED] = "malformed",
    [OUTCOME_UNOPENABLE] = "unopenable",
};

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
	gauge(out, "tokend_accounts", "Accounts known to the scheduler.",
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
			evbuffer_add_printf(out,
			                    "tokend_actions_total{action=\"%s\",result=\"%s\"} %" PRIu64
			                    "\n",
			                    policy_action_name((enum action)a), result_names[r],
			                    d->metrics.actions[a][r]);
}

static void render_refreshes(const struct daemon *d, struct evbuffer *out)
{
	family(out, "tokend_refreshes_total", "counter",
	       "Requests to platforms (refresh, exchange, check), by platform and outcome.");
	for (size_t p = 0; p < platform_count(); p++)
		for (int o = 0; o < OUTCOME_COUNT; o++)
			evbuffer_add_printf(out,
			                    "tokend_refreshes_total{platform=\"%s\",outcome=\"%s\"} "
			                    "%" PRIu64 "\n",
			                    platform_at(p)->name, outcome_names[o],
			                    d->metrics.refreshes[p][o]);
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
	gauge(out, "tokend_ready", "1 once the first full load finished.", d->ready);
	gauge(out, "tokend_database_up", "1 while the PostgreSQL connection is up.",
	      store_connected(d->store));
	render_schedule(d, out);
	render_actions(d, out);
	render_refreshes(d, out);
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
