/* tokenctl status: a running tokend's health at a glance, from its admin
 * API (/readyz and /metrics). Exit 0 when ready, 1 when not (or unreachable). */
#include "tools/tokenctl.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tokenctl_client.h"

static const char status_usage[] =
    "Usage: tokenctl status [-c CONFIG] [--admin HOST:PORT] [--admin-token-file FILE]\n"
    "\n"
    "Show a running tokend's health: ready or not, PostgreSQL and Redis, the\n"
    "schedule (accounts, heap size, next deadline, actions in flight), the\n"
    "outbox backlog and the journal entries not yet committed. Reads /readyz\n"
    "and /metrics of the admin API.\n"
    "\n";

static const char status_usage_tail[] =
    "\n"
    "Exit status: 0 ready, 1 not ready or unreachable, 2 usage error.\n";

/* The value of an unlabelled series in Prometheus text; false when absent. */
static bool metric(const char *text, const char *name, double *value)
{
	size_t len = strlen(name);
	const char *line = text;
	while (line) {
		if (strncmp(line, name, len) == 0 && line[len] == ' ') {
			char *end;
			*value = strtod(line + len + 1, &end);
			return end != line + len + 1;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return false;
}

static void print_count(const char *label, const char *metrics, const char *name)
{
	double v;
	if (metrics && metric(metrics, name, &v))
		printf("  %-16s %.0f\n", label, v);
	else
		printf("  %-16s unknown\n", label);
}

static void print_deadline(const char *metrics, double heap_size)
{
	double v;
	char in[32];
	if (!metrics || !metric(metrics, "tokend_next_deadline_seconds", &v)) {
		printf("  %-16s unknown\n", "next deadline");
		return;
	}
	if (heap_size == 0) {
		printf("  %-16s none\n", "next deadline");
		return;
	}
	tokenctl_format_duration(v, in, sizeof(in));
	printf("  %-16s %s %s\n", "next deadline", v < 0 ? "late by" : "in", v < 0 ? in + 1 : in);
}

static const char *yes_no(json_t *v, const char *yes, const char *no)
{
	return json_is_boolean(v) ? (json_is_true(v) ? yes : no) : "unknown";
}

/* The lines from /readyz. */
static void print_readiness(json_t *readyz)
{
	json_t *checks = json_object_get(readyz, "checks");
	json_t *events = json_object_get(readyz, "events");
	printf("  %-16s %s\n", "database",
	       yes_no(json_object_get(checks, "database"), "up", "down"));
	printf("  %-16s %s\n", "schedule loaded",
	       yes_no(json_object_get(checks, "loaded"), "yes", "no"));
	if (json_is_true(json_object_get(checks, "stopping")))
		printf("  %-16s yes\n", "stopping");
	printf("  %-16s %s%s\n", "redis", yes_no(json_object_get(events, "redis"), "up", "down"),
	       json_is_true(json_object_get(events, "relaying")) ? " (relaying events)" : "");
}

/* The lines from /metrics (NULL when it could not be read). */
static void print_metrics(const char *metrics)
{
	double heap = -1;
	print_count("accounts", metrics, "tokend_scheduled_accounts");
	print_count("heap size", metrics, "tokend_heap_size");
	if (metrics)
		metric(metrics, "tokend_heap_size", &heap);
	print_deadline(metrics, heap);
	print_count("in flight", metrics, "tokend_actions_in_flight");
	print_count("outbox backlog", metrics, "tokend_outbox_backlog");
	print_count("journal pending", metrics, "tokend_journal_pending");
}

static int status_run(const struct tokenctl_admin *a)
{
	struct tokenctl_response readyz_r, metrics_r = {0};
	if (tokenctl_admin_request("status", a, "GET", "/readyz", &readyz_r) < 0)
		return TOKENCTL_FAIL;
	json_t *readyz = tokenctl_response_json("status", "/readyz", &readyz_r);
	bool ready = readyz_r.status == 200 && json_is_true(json_object_get(readyz, "ready"));
	tokenctl_response_clear(&readyz_r);
	if (!readyz)
		return TOKENCTL_FAIL;
	if (tokenctl_admin_request("status", a, "GET", "/metrics", &metrics_r) == 0 &&
	    metrics_r.status != 200) {
		tokenctl_error("status", "/metrics answered HTTP %ld", metrics_r.status);
		tokenctl_response_clear(&metrics_r);
	}
	printf("tokend at %s: %s\n", tokenctl_admin_address(a), ready ? "ready" : "NOT READY");
	print_readiness(readyz);
	print_metrics(metrics_r.body);
	json_decref(readyz);
	tokenctl_response_clear(&metrics_r);
	if (tokenctl_print("status", "", 0) != TOKENCTL_OK) /* flush, check stdout */
		return TOKENCTL_FAIL;
	return ready ? TOKENCTL_OK : TOKENCTL_FAIL;
}

int tokenctl_status(int argc, char **argv)
{
	static const struct option opts[] = {
	    TOKENCTL_ADMIN_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct tokenctl_admin_opts o = {0};
	struct tokenctl_admin *a;
	int opt;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1)
		if (!tokenctl_admin_option(&o, opt, optarg))
			return tokenctl_bad_option("status", argc, argv, opt);
	if (o.help)
		return tokenctl_admin_usage("status", status_usage, status_usage_tail);
	if (optind < argc)
		return tokenctl_usage_error("status", "unexpected argument '%s'", argv[optind]);
	int rc = tokenctl_admin_open("status", &o, &a);
	if (rc != TOKENCTL_OK)
		return rc;
	rc = status_run(a);
	tokenctl_admin_free(a);
	return rc;
}
