/* tokenctl migrate: apply the schema migrations this build carries (the same
 * code as `tokend --migrate`: daemon/migrate.c). */
#include "tools/tokenctl.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "daemon/config.h"
#include "daemon/log.h"
#include "daemon/migrate.h"
#include "tools/tokenctl_client.h"

enum { OPT_DATABASE_URL = TOKENCTL_OPT_FIRST_FREE };

static const char migrate_usage[] =
    "Usage: tokenctl migrate [-c CONFIG] [--database-url URL]\n"
    "\n"
    "Apply the schema migrations (schema/NNN_name.sql, built in) that the\n"
    "database lacks, each in its own transaction, under an advisory lock: safe\n"
    "to rerun, and to run while tokend runs or starts.\n"
    "\n"
    "  -c, --config FILE     tokend's config file, for database_url (default\n"
    "                        " TOKENCTL_DEFAULT_CONFIG " when readable; TOKEND_DATABASE_URL\n"
    "                        overrides it, as for tokend)\n"
    "  --database-url URL    libpq URI or conninfo string (overrides the config)\n"
    "  -h, --help            show this help\n";

struct migrate_args {
	const char *config;
	const char *database_url;
	bool help;
};

static int migrate_parse_args(int argc, char **argv, struct migrate_args *a)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"database-url", required_argument, NULL, OPT_DATABASE_URL},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			a->config = optarg;
			break;
		case OPT_DATABASE_URL:
			a->database_url = optarg;
			break;
		case 'h':
			a->help = true;
			return TOKENCTL_OK;
		default:
			return tokenctl_bad_option("migrate", argc, argv, opt);
		}
	}
	if (optind < argc)
		return tokenctl_usage_error("migrate", "unexpected argument '%s'", argv[optind]);
	return TOKENCTL_OK;
}

int tokenctl_migrate(int argc, char **argv)
{
	struct migrate_args a = {0};
	struct config *cfg = NULL;
	char *conninfo = NULL, line[128];
	int rc = migrate_parse_args(argc, argv, &a);
	if (rc != TOKENCTL_OK)
		return rc;
	if (a.help)
		return tokenctl_print("migrate", migrate_usage, sizeof(migrate_usage) - 1);
	if (!a.database_url &&
	    (rc = tokenctl_load_config("migrate", a.config, &cfg)) != TOKENCTL_OK)
		return rc;
	rc = tokenctl_conninfo("migrate", a.database_url, cfg, &conninfo);
	config_free(cfg);
	if (rc != TOKENCTL_OK)
		return rc;
	/* migrate_apply logs its failures (libpq's words) at err; its notices
	 * are replaced by the summary below. */
	log_set_level(LOG_LEVEL_WARNING);
	int applied = migrate_apply(conninfo);
	tokenctl_free_conninfo(conninfo);
	if (applied < 0) {
		tokenctl_error("migrate", "migrations failed (see the message above)");
		return TOKENCTL_FAIL;
	}
	int n = snprintf(line, sizeof(line), "schema at version %d (%d migration%s applied now)\n",
	                 migrate_latest_version(), applied, applied == 1 ? "" : "s");
	return tokenctl_print("migrate", line, (size_t)n);
}
