/* tokenctl schedule: the upcoming actions of a running tokend, earliest
 * first, from its admin API (GET /v1/schedule), as a table or raw JSON. */
#include "tools/tokenctl.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tokenctl_client.h"

enum {
	OPT_LIMIT = TOKENCTL_OPT_FIRST_FREE,
	OPT_JSON,
	LIMIT_DEFAULT = 20,
	LIMIT_MAX = 10000, /* the admin API's own cap */
};

static const char schedule_usage[] =
    "Usage: tokenctl schedule [-c CONFIG] [--admin HOST:PORT] [--limit N] [--json]\n"
    "\n"
    "Show the next actions of a running tokend, earliest first: due time (UTC),\n"
    "how long until then, the action (exchange, refresh, retry, check, warn,\n"
    "expire), the platform and the account. Reads GET /v1/schedule.\n"
    "\n"
    "  --limit N                 how many actions, 1 to 10000 (default 20)\n"
    "  --json                    print the admin API's JSON as it came\n";

struct schedule_args {
	struct tokenctl_admin_opts admin;
	long limit;
	bool json;
};

static int schedule_parse_args(int argc, char **argv, struct schedule_args *a)
{
	static const struct option opts[] = {
	    TOKENCTL_ADMIN_OPTIONS,
	    {"limit", required_argument, NULL, OPT_LIMIT},
	    {"json", no_argument, NULL, OPT_JSON},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	char *end;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		if (tokenctl_admin_option(&a->admin, opt, optarg))
			continue;
		if (opt == OPT_JSON) {
			a->json = true;
			continue;
		}
		if (opt != OPT_LIMIT)
			return tokenctl_bad_option("schedule", argc, argv, opt);
		errno = 0;
		a->limit = strtol(optarg, &end, 10);
		if (errno || end == optarg || *end || a->limit < 1 || a->limit > LIMIT_MAX)
			return tokenctl_usage_error(
			    "schedule", "--limit: expected 1 to %d, got '%s'", LIMIT_MAX, optarg);
	}
	if (!a->admin.help && optind < argc)
		return tokenctl_usage_error("schedule", "unexpected argument '%s'", argv[optind]);
	return TOKENCTL_OK;
}

/* "2025-03-01T12:00:00.000Z" as "2025-03-01 12:00:00". */
static void format_due(const char *due_at, char *out, size_t outlen)
{
	if (!due_at || strlen(due_at) < 19) {
		snprintf(out, outlen, "-");
		return;
	}
	snprintf(out, outlen, "%.10s %.8s", due_at, due_at + 11);
}

static void print_entry(json_t *e)
{
	char due[32], in[32];
	json_t *due_in = json_object_get(e, "due_in_seconds");
	format_due(json_string_value(json_object_get(e, "due_at")), due, sizeof(due));
	if (json_is_true(json_object_get(e, "in_flight")))
		snprintf(in, sizeof(in), "running");
	else if (json_is_number(due_in))
		tokenctl_format_duration(json_number_value(due_in), in, sizeof(in));
	else
		snprintf(in, sizeof(in), "-");
	const char *action = json_string_value(json_object_get(e, "action"));
	const char *platform = json_string_value(json_object_get(e, "platform"));
	const char *account = json_string_value(json_object_get(e, "account_id"));
	printf("%-19s  %9s  %-8s  %-9s  %s\n", due, in, action ? action : "?",
	       platform ? platform : "?", account ? account : "?");
}

static int print_table(json_t *body)
{
	json_t *upcoming = json_object_get(body, "upcoming");
	if (!json_is_array(upcoming)) {
		tokenctl_error("schedule", "/v1/schedule answered without an 'upcoming' list");
		return TOKENCTL_FAIL;
	}
	printf("%" JSON_INTEGER_FORMAT " accounts, %" JSON_INTEGER_FORMAT
	       " with a pending action, %" JSON_INTEGER_FORMAT " in flight\n",
	       json_integer_value(json_object_get(body, "accounts")),
	       json_integer_value(json_object_get(body, "pending")),
	       json_integer_value(json_object_get(body, "in_flight")));
	printf("%-19s  %9s  %-8s  %-9s  %s\n", "DUE (UTC)", "IN", "ACTION", "PLATFORM", "ACCOUNT");
	for (size_t i = 0; i < json_array_size(upcoming); i++)
		print_entry(json_array_get(upcoming, i));
	return tokenctl_print("schedule", "", 0); /* flush, check stdout */
}

static int schedule_run(const struct tokenctl_admin *a, const struct schedule_args *args)
{
	struct tokenctl_response r;
	char path[64], why[256];
	snprintf(path, sizeof(path), "/v1/schedule?limit=%ld", args->limit);
	if (tokenctl_admin_request("schedule", a, "GET", path, &r) < 0)
		return TOKENCTL_FAIL;
	int rc = TOKENCTL_FAIL;
	json_t *body = NULL;
	if (r.status != 200) {
		tokenctl_response_error(&r, why, sizeof(why));
		tokenctl_error("schedule", "/v1/schedule: %s", why);
	} else if (args->json) {
		rc = tokenctl_print("schedule", r.body ? r.body : "", r.len);
	} else if ((body = tokenctl_response_json("schedule", "/v1/schedule", &r))) {
		rc = print_table(body);
	}
	json_decref(body);
	tokenctl_response_clear(&r);
	return rc;
}

int tokenctl_schedule(int argc, char **argv)
{
	struct schedule_args args = {.limit = LIMIT_DEFAULT};
	struct tokenctl_admin *a;
	int rc = schedule_parse_args(argc, argv, &args);
	if (rc != TOKENCTL_OK)
		return rc;
	if (args.admin.help)
		return tokenctl_admin_usage("schedule", schedule_usage, NULL);
	rc = tokenctl_admin_open("schedule", &args.admin, &a);
	if (rc != TOKENCTL_OK)
		return rc;
	rc = schedule_run(a, &args);
	tokenctl_admin_free(a);
	return rc;
}
