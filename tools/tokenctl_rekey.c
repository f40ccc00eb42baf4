/* tokenctl rekey: re-seal every sealed value not under the keyring's primary
 * key, online. Rows are visited in id order in batches; each row is opened
 * and sealed again here, then written by tokend_reseal() (schema/006), which
 * is fenced by token_version and by the old sealed bytes, and keeps the
 * version: a token the daemon (or the API) stored meanwhile is never
 * overwritten, and the daemon sees no token change. Resumable: a new run
 * picks up whatever is still under an old key. Blocking libpq is fine here. */
#include "tools/tokenctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/config.h"
#include "daemon/seal.h"
#include "tools/tokenctl_client.h"

enum {
	OPT_KEYRING = TOKENCTL_OPT_FIRST_FREE,
	OPT_BATCH,
	OPT_DRY_RUN,
	OPT_PAUSE,
	OPT_DATABASE_URL,
	BATCH_DEFAULT = 100,
	BATCH_MAX = 10000,
	PAUSE_MAX_MS = 60000,
	PASSES_MAX = 5, /* passes while rows change under us */
	COLUMNS = 3,    /* access_token, refresh_token, app_password */
	OID_BYTEA = 17,
	OID_INT8 = 20,
	OID_UUID = 2950,
};

static const char rekey_usage[] =
    "Usage: tokenctl rekey [-c CONFIG] [--keyring FILE] [--database-url URL]\n"
    "                      [--batch N] [--pause MS] [--dry-run]\n"
    "\n"
    "Re-seal every sealed value (access_token, refresh_token, app_password) whose\n"
    "key id is not the keyring's primary under the primary key, in batches of\n"
    "rows, while tokend keeps running: a token stored meanwhile is never\n"
    "overwritten and token_version does not change. Interrupt it at any time;\n"
    "a new run picks up the rows still under an old key. Step 3 of \"Rotating\n"
    "keys\" in docs/sealed-format.md; needs schema 006 ('tokenctl migrate').\n"
    "\n"
    "  -c, --config FILE     tokend's config file, for database_url and\n"
    "                        keyring_file (default " TOKENCTL_DEFAULT_CONFIG "\n"
    "                        when readable)\n"
    "  --keyring FILE        keyring (default: $TOKEND_KEYRING, else keyring_file\n"
    "                        from the config, else $CREDENTIALS_DIRECTORY/keyring);\n"
    "                        the same keys as tokend's, primary included\n"
    "  --database-url URL    libpq URI or conninfo string (overrides the config)\n"
    "  --batch N             rows per batch, 1 to 10000 (default 100)\n"
    "  --pause MS            sleep between batches, to go easy on a busy database\n"
    "  --dry-run             open the values that need it, write nothing, report\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 when no value is left under an old key (--dry-run: when\n"
    "every such value opens), 1 otherwise or on failure, 2 usage error.\n";

/* A row holds a value whose key id (bytes 2..5 of the sealed value) is not
 * $1. A NULL column makes its comparison NULL, which OR passes over. */
#define UNDER_OLD_KEY                                                                              \
	"(substring(access_token from 2 for 4) <> $1 OR substring(refresh_token from 2 for 4) <> " \
	"$1 OR substring(app_password from 2 for 4) <> $1)"

static const char count_sql[] = "SELECT count(*) FROM platform_accounts WHERE " UNDER_OLD_KEY;

static const char keys_sql[] =
    "SELECT (get_byte(v, 1)::bigint << 24) + (get_byte(v, 2) << 16) + (get_byte(v, 3) << 8)"
    " + get_byte(v, 4), count(*)"
    " FROM platform_accounts,"
    " LATERAL (VALUES (access_token), (refresh_token), (app_password)) AS c(v)"
    " WHERE length(v) >= 5 AND substring(v from 2 for 4) <> $1 GROUP BY 1 ORDER BY 1";

static const char batch_sql[] =
    "SELECT id, token_version, access_token, refresh_token, app_password"
    " FROM platform_accounts WHERE ($2::uuid IS NULL OR id > $2::uuid) AND " UNDER_OLD_KEY
    " ORDER BY id LIMIT $3";

static const char reseal_sql[] = "SELECT tokend_reseal($1, $2, $3, $4, $5, $6, $7, $8)";

static const char has_reseal_sql[] =
    "SELECT to_regprocedure('tokend_reseal(uuid,bigint,bytea,bytea,bytea,bytea,bytea,bytea)')"
    " IS NOT NULL";

struct rekey_args {
	const char *config, *keyring, *database_url;
	long batch, pause_ms;
	bool dry_run, help;
};

struct rekey {
	const struct rekey_args *args;
	PGconn *conn;
	struct keyring *kr;
	uint32_t primary;
	uint8_t primary_be[4]; /* the primary key id as stored: big-endian */
	uint8_t cursor[SEAL_ACCOUNT_ID_LEN];
	bool have_cursor;
	long total;      /* rows under an old key when the run started */
	long resealed;   /* rows written (or, dry run, that would be) */
	long values;     /* values re-sealed (or that would be) */
	long fenced;     /* this pass: rows that changed between read and write */
	long unopenable; /* this pass: rows with a value that does not open */
};

/* One sealed column of a row: the value read, and the value to write. */
struct column_value {
	bool null;
	const uint8_t *old;
	size_t old_len;
	uint8_t *fresh; /* malloc'd; NULL: write old back (already under the primary) */
	size_t fresh_len;
};

/* ---- arguments ---- */

static int parse_range(const char *opt, const char *text, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max)
		return tokenctl_usage_error("rekey", "%s: expected %ld to %ld, got '%s'", opt, min,
		                            max, text);
	*out = v;
	return TOKENCTL_OK;
}

static int rekey_option(struct rekey_args *a, int opt, int argc, char **argv)
{
	switch (opt) {
	case 'c':
		a->config = optarg;
		return TOKENCTL_OK;
	case OPT_KEYRING:
		a->keyring = optarg;
		return TOKENCTL_OK;
	case OPT_DATABASE_URL:
		a->database_url = optarg;
		return TOKENCTL_OK;
	case OPT_DRY_RUN:
		a->dry_run = true;
		return TOKENCTL_OK;
	case 'h':
		a->help = true;
		return TOKENCTL_OK;
	case OPT_BATCH:
		return parse_range("--batch", optarg, 1, BATCH_MAX, &a->batch);
	case OPT_PAUSE:
		return parse_range("--pause", optarg, 0, PAUSE_MAX_MS, &a->pause_ms);
	default:
		return tokenctl_bad_option("rekey", argc, argv, opt);
	}
}

static int rekey_parse_args(int argc, char **argv, struct rekey_args *a)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"keyring", required_argument, NULL, OPT_KEYRING},
	    {"database-url", required_argument, NULL, OPT_DATABASE_URL},
	    {"batch", required_argument, NULL, OPT_BATCH},
	    {"pause", required_argument, NULL, OPT_PAUSE},
	    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt, rc;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1)
		if ((rc = rekey_option(a, opt, argc, argv)) != TOKENCTL_OK)
			return rc;
	if (!a->help && optind < argc)
		return tokenctl_usage_error("rekey", "unexpected argument '%s'", argv[optind]);
	return TOKENCTL_OK;
}

/* ---- queries ---- */

/* Run a query with binary parameters of the given types; NULL after
 * reporting what failed. Caller PQclear()s. */
static PGresult *query(struct rekey *rk, const char *what, const char *sql, int n, const Oid *types,
                       const char *const *values, const int *lengths, int result_format)
{
	static const int binary[] = {1, 1, 1, 1, 1, 1, 1, 1};
	PGresult *res =
	    PQexecParams(rk->conn, sql, n, types, values, lengths, binary, result_format);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		return res;
	tokenctl_pq_error("rekey", what,
	                  res ? PQresultErrorMessage(res) : PQerrorMessage(rk->conn));
	PQclear(res);
	return NULL;
}

/* Rows under an old key, or -1. */
static long count_left(struct rekey *rk)
{
	const Oid types[] = {OID_BYTEA};
	const char *values[] = {(const char *)rk->primary_be};
	const int lengths[] = {4};
	PGresult *res =
	    query(rk, "counting rows under an old key", count_sql, 1, types, values, lengths, 0);
	long n = res ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : -1;
	PQclear(res);
	return n;
}

static int print_keys(struct rekey *rk)
{
	const Oid types[] = {OID_BYTEA};
	const char *values[] = {(const char *)rk->primary_be};
	const int lengths[] = {4};
	PGresult *res =
	    query(rk, "counting values by key id", keys_sql, 1, types, values, lengths, 0);
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		printf("rekey: %s values under key %s\n", PQgetvalue(res, i, 1),
		       PQgetvalue(res, i, 0));
	PQclear(res);
	return 0;
}

/* The next batch of rows under an old key after the cursor (binary
 * results: id 16 bytes, token_version 8 bytes big-endian, raw bytea). */
static PGresult *select_batch(struct rekey *rk)
{
	uint8_t limit_be[8];
	for (int i = 0; i < 8; i++)
		limit_be[i] = (uint8_t)((uint64_t)rk->args->batch >> (56 - 8 * i));
	const Oid types[] = {OID_BYTEA, OID_UUID, OID_INT8};
	const char *values[] = {(const char *)rk->primary_be,
	                        rk->have_cursor ? (const char *)rk->cursor : NULL,
	                        (const char *)limit_be};
	const int lengths[] = {4, SEAL_ACCOUNT_ID_LEN, sizeof(limit_be)};
	return query(rk, "reading a batch of rows", batch_sql, 3, types, values, lengths, 1);
}

/* ---- one row ---- */

/* Open c's value and (unless a dry run) seal it again under the primary;
 * values under the primary already are kept. -1 when it does not open. */
static int reseal_value(struct rekey *rk, const uint8_t id[SEAL_ACCOUNT_ID_LEN],
                        enum seal_column column, struct column_value *c)
{
	struct secret plain = {0};
	char err[256], text[37];
	uint32_t key_id;
	if (c->null || (seal_key_id(c->old, c->old_len, &key_id) && key_id == rk->primary))
		return 0;
	if (seal_open(rk->kr, id, column, c->old, c->old_len, &plain, err, sizeof(err)) < 0) {
		seal_format_uuid(id, text);
		tokenctl_error("rekey", "account %s %s: %s", text, seal_column_name(column), err);
		return -1;
	}
	int rc = 0;
	if (!rk->args->dry_run)
		rc =
		    seal_value(rk->kr, id, column, plain.data, plain.len, &c->fresh, &c->fresh_len);
	secret_free(&plain); /* the plaintext lives only between open and seal */
	if (rc < 0) {
		seal_format_uuid(id, text);
		tokenctl_error("rekey", "account %s %s: sealing failed", text,
		               seal_column_name(column));
		return -1;
	}
	rk->values++;
	return 0;
}

/* Write the re-sealed values with tokend_reseal: 1 written, 0 fenced (the
 * row changed since it was read), -1 on a database error. */
static int store_row(struct rekey *rk, const uint8_t *id, const char *version_be,
                     const struct column_value cols[COLUMNS])
{
	const Oid types[] = {OID_UUID,  OID_INT8,  OID_BYTEA, OID_BYTEA,
	                     OID_BYTEA, OID_BYTEA, OID_BYTEA, OID_BYTEA};
	const char *values[8] = {(const char *)id, version_be};
	int lengths[8] = {SEAL_ACCOUNT_ID_LEN, 8};
	for (int i = 0; i < COLUMNS; i++) {
		const struct column_value *c = &cols[i];
		values[2 + 2 * i] = c->null ? NULL : (const char *)c->old;
		lengths[2 + 2 * i] = (int)c->old_len;
		values[3 + 2 * i] = c->null ? NULL : (const char *)(c->fresh ? c->fresh : c->old);
		lengths[3 + 2 * i] = (int)(c->fresh ? c->fresh_len : c->old_len);
	}
	PGresult *res = query(rk, "tokend_reseal", reseal_sql, 8, types, values, lengths, 0);
	if (!res)
		return -1;
	int written = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return written;
}

/* Re-seal row i of a batch. -1 only on a database error. */
static int reseal_row(struct rekey *rk, const PGresult *res, int row)
{
	struct column_value cols[COLUMNS] = {0};
	const uint8_t *id = (const uint8_t *)PQgetvalue(res, row, 0);
	bool opened = true;
	int rc = 0;
	if (PQgetlength(res, row, 0) != SEAL_ACCOUNT_ID_LEN || PQgetlength(res, row, 1) != 8) {
		tokenctl_error("rekey", "unexpected row shape from platform_accounts");
		return -1;
	}
	for (int i = 0; i < COLUMNS; i++) {
		cols[i].null = PQgetisnull(res, row, 2 + i);
		cols[i].old = (const uint8_t *)PQgetvalue(res, row, 2 + i);
		cols[i].old_len = (size_t)PQgetlength(res, row, 2 + i);
		if (opened &&
		    reseal_value(rk, id, (enum seal_column)(SEAL_ACCESS_TOKEN + i), &cols[i]) < 0)
			opened = false;
	}
	if (!opened)
		rk->unopenable++;
	else if (rk->args->dry_run)
		rk->resealed++;
	else if ((rc = store_row(rk, id, PQgetvalue(res, row, 1), cols)) == 1)
		rk->resealed++;
	else if (rc == 0)
		rk->fenced++;
	for (int i = 0; i < COLUMNS; i++)
		free(cols[i].fresh);
	return rc < 0 ? -1 : 0;
}

/* ---- passes ---- */

static void pause_between_batches(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void print_progress(const struct rekey *rk)
{
	/* Rows the daemon refreshed meanwhile leave the count unseen: at most. */
	long left = rk->total - rk->resealed;
	printf("rekey: %ld rows %s, up to %ld left\n", rk->resealed,
	       rk->args->dry_run ? "would be re-sealed" : "re-sealed", left > 0 ? left : 0);
	fflush(stdout);
}

/* Every row under an old key, once, in id order. -1 on a database error. */
static int rekey_pass(struct rekey *rk)
{
	rk->have_cursor = false;
	rk->fenced = rk->unopenable = 0;
	for (;;) {
		PGresult *res = select_batch(rk);
		if (!res)
			return -1;
		int n = PQntuples(res), rc = 0;
		for (int i = 0; i < n && rc == 0; i++)
			rc = reseal_row(rk, res, i);
		if (n > 0) {
			memcpy(rk->cursor, PQgetvalue(res, n - 1, 0), SEAL_ACCOUNT_ID_LEN);
			rk->have_cursor = true;
		}
		PQclear(res);
		if (rc < 0)
			return -1;
		if (n > 0)
			print_progress(rk);
		if (n < rk->args->batch)
			return 0;
		pause_between_batches(rk->args->pause_ms);
	}
}

/* Passes until nothing is left, or a pass met no row that changed under it
 * (what is left then does not open: a new pass would not help). */
static int rekey_passes(struct rekey *rk, long *left)
{
	for (int pass = 1; pass <= PASSES_MAX; pass++) {
		if (rekey_pass(rk) < 0 || (*left = count_left(rk)) < 0)
			return -1;
		if (rk->args->dry_run || *left == 0 || rk->fenced == 0)
			return 0;
		printf("rekey: %ld rows changed while being re-sealed; another pass\n", rk->fenced);
	}
	return 0;
}

static int report(const struct rekey *rk, long left)
{
	if (rk->args->dry_run) {
		printf("rekey: dry run: %ld rows (%ld values) would be re-sealed, %ld rows have a "
		       "value that does not open; %ld left under an old key\n",
		       rk->resealed, rk->values, rk->unopenable, left);
		return tokenctl_print("rekey", "", 0) == TOKENCTL_OK && rk->unopenable == 0
		           ? TOKENCTL_OK
		           : TOKENCTL_FAIL;
	}
	printf("rekey: done: %ld rows re-sealed (%ld values) under key %u; %ld left under an old "
	       "key\n",
	       rk->resealed, rk->values, rk->primary, left);
	if (tokenctl_print("rekey", "", 0) != TOKENCTL_OK)
		return TOKENCTL_FAIL;
	if (left == 0)
		return TOKENCTL_OK;
	tokenctl_error("rekey",
	               "%ld rows still hold a value under an old key (%ld do not open: "
	               "see above); run it again once they are fixed",
	               left, rk->unopenable);
	return TOKENCTL_FAIL;
}

/* ---- setup ---- */

static int check_schema(struct rekey *rk)
{
	PGresult *res =
	    query(rk, "looking for tokend_reseal", has_reseal_sql, 0, NULL, NULL, NULL, 0);
	if (!res)
		return TOKENCTL_FAIL;
	bool present = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (present)
		return TOKENCTL_OK;
	tokenctl_error("rekey", "the database has no tokend_reseal() (schema older than 006): "
	                        "run 'tokenctl migrate' first");
	return TOKENCTL_FAIL;
}

static int rekey_run(struct rekey *rk)
{
	long left;
	if (!rk->args->dry_run && check_schema(rk) != TOKENCTL_OK)
		return TOKENCTL_FAIL;
	if ((rk->total = count_left(rk)) < 0)
		return TOKENCTL_FAIL;
	printf("rekey: primary key %u; %ld rows hold values under other keys\n", rk->primary,
	       rk->total);
	if (rk->total == 0) {
		printf("rekey: nothing to do; 0 left under an old key\n");
		return tokenctl_print("rekey", "", 0);
	}
	if (print_keys(rk) < 0 || rekey_passes(rk, &left) < 0)
		return TOKENCTL_FAIL;
	return report(rk, left);
}

/* The keyring: --keyring, else $TOKEND_KEYRING, else keyring_file from the
 * config, else $CREDENTIALS_DIRECTORY/keyring (tokenctl_load_keyring). */
static int open_keyring(struct rekey *rk, const struct config *cfg)
{
	const char *path = rk->args->keyring;
	const char *env = getenv("TOKEND_KEYRING");
	if (!path && !(env && *env) && cfg && cfg->keyring_file[0])
		path = cfg->keyring_file;
	int rc = tokenctl_load_keyring("rekey", path, &rk->kr);
	if (rc != TOKENCTL_OK)
		return rc;
	rk->primary = keyring_primary_id(rk->kr);
	for (int i = 0; i < 4; i++)
		rk->primary_be[i] = (uint8_t)(rk->primary >> (24 - 8 * i));
	return TOKENCTL_OK;
}

static int rekey_setup(struct rekey *rk)
{
	const struct rekey_args *a = rk->args;
	const char *env = getenv("TOKEND_KEYRING");
	bool need_config = a->config || !a->database_url || (!a->keyring && !(env && *env));
	struct config *cfg = NULL;
	char *conninfo = NULL;
	int rc = need_config ? tokenctl_load_config("rekey", a->config, &cfg) : TOKENCTL_OK;
	if (rc == TOKENCTL_OK)
		rc = open_keyring(rk, cfg);
	if (rc == TOKENCTL_OK)
		rc = tokenctl_conninfo("rekey", a->database_url, cfg, &conninfo);
	if (rc == TOKENCTL_OK && !(rk->conn = tokenctl_db_connect("rekey", conninfo)))
		rc = TOKENCTL_FAIL;
	tokenctl_free_conninfo(conninfo);
	config_free(cfg);
	return rc;
}

int tokenctl_rekey(int argc, char **argv)
{
	struct rekey_args args = {.batch = BATCH_DEFAULT};
	struct rekey rk = {.args = &args};
	int rc = rekey_parse_args(argc, argv, &args);
	if (rc != TOKENCTL_OK)
		return rc;
	if (args.help)
		return tokenctl_print("rekey", rekey_usage, sizeof(rekey_usage) - 1);
	rc = rekey_setup(&rk);
	if (rc == TOKENCTL_OK)
		rc = rekey_run(&rk);
	PQfinish(rk.conn);
	keyring_free(rk.kr);
	return rc;
}
