/* metrics: Prometheus text exposition of the daemon's counters and gauges. */
#include "daemon/metrics.h"

#include <event2/buffer.h>
#include <inttypes.h>

#include "daemon/accounts.h"
#include "daemon/daemon.h"
#include "daemon/store.h"
#include "scheduler/sched.h"

static const char *const bad_input_names[] = {
    [BAD_ROW_UNKNOWN_PLATFORM] = "unknown_platform", [BAD_ROW_UNPARSABLE] = "unparsable_row",
    [BAD_ROW_UNDECRYPTABLE] = "undecryptable_token", [BAD_CONFIG_RELOAD] = "config_reload",
    [BAD_ADMIN_REQUEST] = "admin_request",           [BAD_NOTIFICATION] = "notification",
};

static const char *const result_names[] = {
    [RESULT_DONE] = "done",
    [RESULT_FENCED] = "fenced",
    [RESULT_FAILED] = "failed",
    [RESULT_UNAVAILABLE] = "unavailable",
};

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

static void render_bad_input(const struct daemon *d, struct evbuffer *out)
{
	family(out, "tokend_bad_input_total", "counter",
	       "Bad input refused (rows, config reloads, requests, notifications), by kind.");
	for (int k = 0; k < BAD_INPUT_COUNT; k++)
		evbuffer_add_printf(out, "tokend_bad_input_total{kind=\"%s\"} %" PRIu64 "\n",
		                    bad_input_names[k], d->metrics.bad_input[k]);
}

void metrics_render(const struct daemon *d, struct evbuffer *out)
{
	gauge(out, "tokend_ready", "1 once the first full load finished.", d->ready);
	gauge(out, "tokend_database_up", "1 while the PostgreSQL connection is up.",
	      store_connected(d->store));
	render_schedule(d, out);
	render_actions(d, out);
	render_bad_input(d, out);
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
