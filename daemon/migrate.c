/* migrate: apply the embedded schema migrations under an advisory lock. */
#include "daemon/migrate.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon/log.h"

/* Any constant will do, as long as every instance uses the same one. */
#define MIGRATE_LOCK_KEY "7408395"

static bool exec_ok(PGconn *conn, const char *sql, const char *what)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		log_err("migrate: %s: %s", what, PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

static bool is_applied(PGconn *conn, int version, bool *applied)
{
	char v[16];
	snprintf(v, sizeof(v), "%d", version);
	const char *params[] = {v};
	PGresult *res = PQexecParams(conn, "SELECT 1 FROM tokend_migrations WHERE version = $1", 1,
	                             NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		log_err("migrate: reading tokend_migrations: %s", PQresultErrorMessage(res));
	else
		*applied = PQntuples(res) > 0;
	PQclear(res);
	return ok;
}

static bool record_applied(PGconn *conn, const struct migration *m)
{
	char v[16];
	snprintf(v, sizeof(v), "%d", m->version);
	const char *params[] = {v, m->name};
	PGresult *res =
	    PQexecParams(conn, "INSERT INTO tokend_migrations (version, name) VALUES ($1, $2)", 2,
	                 NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		log_err("migrate: recording %s: %s", m->name, PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/* One migration in one transaction; the migrations row commits with it. */
static int apply_one(PGconn *conn, const struct migration *m)
{
	bool applied = false;
	if (!is_applied(conn, m->version, &applied))
		return -1;
	if (applied)
		return 0;
	if (!exec_ok(conn, "BEGIN", "BEGIN"))
		return -1;
	if (!exec_ok(conn, m->sql, m->name) || !record_applied(conn, m) ||
	    !exec_ok(conn, "COMMIT", "COMMIT")) {
		PQclear(PQexec(conn, "ROLLBACK"));
		return -1;
	}
	log_notice("migrate: applied %s", m->name);
	return 1;
}

static int apply_all(PGconn *conn)
{
	int applied = 0;
	for (size_t i = 0; i < migrate_embedded_count; i++) {
		int r = apply_one(conn, &migrate_embedded[i]);
		if (r < 0)
			return -1;
		applied += r;
	}
	return applied;
}

int migrate_apply(const char *conninfo)
{
	PGconn *conn = PQconnectdb(conninfo);
	int applied = -1;
	if (PQstatus(conn) != CONNECTION_OK) {
		log_err("migrate: cannot connect: %s", PQerrorMessage(conn));
		goto fail;
	}
	if (!exec_ok(conn, "SET client_min_messages = warning", "settings") ||
	    !exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "advisory lock"))
		goto fail;
	if (exec_ok(conn,
	            "CREATE TABLE IF NOT EXISTS tokend_migrations (version integer PRIMARY KEY, "
	            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
	            "creating tokend_migrations"))
		applied = apply_all(conn);
	if (!exec_ok(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", "advisory unlock"))
		applied = -1;
	if (applied >= 0)
		log_notice("migrate: schema at version %d (%d applied now)",
		           migrate_latest_version(), applied);
fail:
	PQfinish(conn);
	return applied;
}

int migrate_latest_version(void)
{
	return migrate_embedded_count ? migrate_embedded[migrate_embedded_count - 1].version : 0;
}
