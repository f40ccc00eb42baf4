/* migrate: apply schema/NNN_name.sql migrations (embedded at build time) in
 * order, each in its own transaction, recorded in tokend_migrations. Safe to
 * rerun, and safe when several instances start at once (advisory lock). Runs
 * before the event loop (blocking libpq is fine here, and only here). */
#ifndef TOKEND_MIGRATE_H
#define TOKEND_MIGRATE_H

#include <stddef.h>

struct migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct migration migrate_embedded[];
extern const size_t migrate_embedded_count;

/* Apply pending migrations to the database at conninfo. Logs each applied
 * one; returns how many were applied, or -1 with the reason logged. */
int migrate_apply(const char *conninfo) __attribute__((warn_unused_result));

/* Highest migration version this build knows. */
int migrate_latest_version(void);

#endif
