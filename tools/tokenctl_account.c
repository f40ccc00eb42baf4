/* tokenctl account: one account's state in a running tokend's schedule
 * (GET /v1/accounts/{id}). Never its tokens: the admin API has none. */
#include "tools/tokenctl.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "daemon/seal.h"
#include "tools/tokenctl_client.h"

enum { OPT_JSON = TOKENCTL_OPT_FIRST_FREE };

static const char account_usage[] =
    "Usage: tokenctl account ID [-c CONFIG] [--admin HOST:PORT] [--json]\n"
    "\n"
    "Show one account's state in tokend's schedule: platform, next action, when\n"
    "it is due, whether it is running now. ID is the platform_accounts id (a\n"
    "uuid). Reads GET /v1/accounts/ID; tokens are never shown (the admin API\n"
    "does not have them).\n"
    "\n"
    "  --json                    print the admin API's JSON as it came\n";

static const char account_usage_tail[] =
    "\n"
    "Exit status: 0 shown, 1 not in the schedule or unreachable, 2 usage error.\n";

struct account_args {
	struct tokenctl_admin_opts admin;
	char id[37];
	bool json;
};

static int account_parse_args(int argc, char **argv, struct account_args *a)
{
	static const struct option opts[] = {
	    TOKENCTL_ADMIN_OPTIONS,
	    {"json", no_argument, NULL, OPT_JSON},
	    {NULL, 0, NULL, 0},
	};
	uint8_t id[SEAL_ACCOUNT_ID_LEN];
	int opt;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		if (opt == OPT_JSON)
			a->json = true;
		else if (!tokenctl_admin_option(&a->admin, opt, optarg))
			return tokenctl_bad_option("account", argc, argv, opt);
	}
	if (a->admin.help)
		return TOKENCTL_OK;
	if (optind >= argc)
		return tokenctl_usage_error("account", "expected an account id");
	if (optind + 1 < argc)
		return tokenctl_usage_error("account", "unexpected argument '%s'",
		                            argv[optind + 1]);
	if (!seal_parse_uuid(argv[optind], id))
		return tokenctl_usage_error("account", "not a uuid: '%s'", argv[optind]);
	seal_format_uuid(id, a->id);
	return TOKENCTL_OK;
}

static void print_account(json_t *e)
{
	char in[32];
	json_t *due_in = json_object_get(e, "due_in_seconds");
	const char *due_at = json_string_value(json_object_get(e, "due_at"));
	const char *platform = json_string_value(json_object_get(e, "platform"));
	const char *action = json_string_value(json_object_get(e, "action"));
	printf("account     %s\n", json_string_value(json_object_get(e, "account_id")));
	printf("platform    %s\n", platform ? platform : "?");
	printf("action      %s\n", action ? action : "none");
	if (due_at && json_is_number(due_in)) {
		tokenctl_format_duration(json_number_value(due_in), in, sizeof(in));
		printf("due at      %s (%s %s)\n", due_at,
		       json_number_value(due_in) < 0 ? "late by" : "in",
		       in[0] == '-' ? in + 1 : in);
	} else {
		printf("due at      -\n");
	}
	printf("in flight   %s\n", json_is_true(json_object_get(e, "in_flight")) ? "yes" : "no");
}

static int account_run(const struct tokenctl_admin *a, const struct account_args *args)
{
	struct tokenctl_response r;
	char path[64], why[256];
	snprintf(path, sizeof(path), "/v1/accounts/%s", args->id);
	if (tokenctl_admin_request("account", a, "GET", path, &r) < 0)
		return TOKENCTL_FAIL;
	int rc = TOKENCTL_FAIL;
	json_t *body = NULL;
	if (r.status != 200) {
		tokenctl_response_error(&r, why, sizeof(why));
		tokenctl_error("account", "%s: %s", args->id, why);
	} else if (args->json) {
		rc = tokenctl_print("account", r.body ? r.body : "", r.len);
	} else if ((body = tokenctl_response_json("account", path, &r))) {
		print_account(body);
		rc = tokenctl_print("account", "", 0); /* flush, check stdout */
	}
	json_decref(body);
	tokenctl_response_clear(&r);
	return rc;
}

int tokenctl_account(int argc, char **argv)
{
	struct account_args args = {0};
	struct tokenctl_admin *a;
	int rc = account_parse_args(argc, argv, &args);
	if (rc != TOKENCTL_OK)
		return rc;
	if (args.admin.help)
		return tokenctl_admin_usage("account", account_usage, account_usage_tail);
	rc = tokenctl_admin_open("account", &args.admin, &a);
	if (rc != TOKENCTL_OK)
		return rc;
	rc = account_run(a, &args);
	tokenctl_admin_free(a);
	return rc;
}
