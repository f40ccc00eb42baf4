/* tokenctl refresh: ask a running tokend to refresh one account now
 * (POST /v1/accounts/{id}/refresh): the same path as the API's
 * tokend_request_refresh(), so requests coalesce and survive a restart. */
#include "tools/tokenctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/seal.h"
#include "tools/tokenctl_client.h"

enum { OPT_TOKEN_VERSION = TOKENCTL_OPT_FIRST_FREE };

static const char refresh_usage[] =
    "Usage: tokenctl refresh ID [--token-version N] [-c CONFIG] [--admin HOST:PORT]\n"
    "\n"
    "Ask tokend to refresh account ID (a platform_accounts uuid) now. The request\n"
    "is recorded in PostgreSQL and the refresh runs in the background: watch it\n"
    "with 'tokenctl account ID'. Duplicate requests make one refresh.\n"
    "\n"
    "  --token-version N         the token version that failed (e.g. got a 401):\n"
    "                            nothing happens if a newer token is stored already\n";

static const char refresh_usage_tail[] =
    "\n"
    "Exit status: 0 requested, 1 no such active account or unreachable, 2 usage error.\n";

struct refresh_args {
	struct tokenctl_admin_opts admin;
	char id[37];
	long long token_version; /* 0: not given */
};

static int parse_version(const char *text, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno || end == text || *end || v < 1)
		return tokenctl_usage_error(
		    "refresh", "--token-version: expected a positive integer, got '%s'", text);
	*out = v;
	return TOKENCTL_OK;
}

static int refresh_parse_args(int argc, char **argv, struct refresh_args *a)
{
	static const struct option opts[] = {
	    TOKENCTL_ADMIN_OPTIONS,
	    {"token-version", required_argument, NULL, OPT_TOKEN_VERSION},
	    {NULL, 0, NULL, 0},
	};
	uint8_t id[SEAL_ACCOUNT_ID_LEN];
	int opt, rc;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		if (opt == OPT_TOKEN_VERSION) {
			if ((rc = parse_version(optarg, &a->token_version)) != TOKENCTL_OK)
				return rc;
		} else if (!tokenctl_admin_option(&a->admin, opt, optarg)) {
			return tokenctl_bad_option("refresh", argc, argv, opt);
		}
	}
	if (a->admin.help)
		return TOKENCTL_OK;
	if (optind >= argc)
		return tokenctl_usage_error("refresh", "expected an account id");
	if (optind + 1 < argc)
		return tokenctl_usage_error("refresh", "unexpected argument '%s'",
		                            argv[optind + 1]);
	if (!seal_parse_uuid(argv[optind], id))
		return tokenctl_usage_error("refresh", "not a uuid: '%s'", argv[optind]);
	seal_format_uuid(id, a->id);
	return TOKENCTL_OK;
}

static int refresh_run(const struct tokenctl_admin *a, const struct refresh_args *args)
{
	struct tokenctl_response r;
	char path[96], why[256], line[96];
	int n = snprintf(path, sizeof(path), "/v1/accounts/%s/refresh", args->id);
	if (args->token_version)
		snprintf(path + n, sizeof(path) - (size_t)n, "?token_version=%lld",
		         args->token_version);
	if (tokenctl_admin_request("refresh", a, "POST", path, &r) < 0)
		return TOKENCTL_FAIL;
	long status = r.status;
	tokenctl_response_error(&r, why, sizeof(why));
	tokenctl_response_clear(&r);
	if (status != 202) {
		tokenctl_error("refresh", "%s: %s", args->id, why);
		return TOKENCTL_FAIL;
	}
	n = snprintf(line, sizeof(line), "refresh requested for %s\n", args->id);
	return tokenctl_print("refresh", line, (size_t)n);
}

int tokenctl_refresh(int argc, char **argv)
{
	struct refresh_args args = {0};
	struct tokenctl_admin *a;
	int rc = refresh_parse_args(argc, argv, &args);
	if (rc != TOKENCTL_OK)
		return rc;
	if (args.admin.help)
		return tokenctl_admin_usage("refresh", refresh_usage, refresh_usage_tail);
	rc = tokenctl_admin_open("refresh", &args.admin, &a);
	if (rc != TOKENCTL_OK)
		return rc;
	rc = refresh_run(a, &args);
	tokenctl_admin_free(a);
	return rc;
}
