/* accounts: keeps the schedule in step with platform_accounts. A full load
 * (COPY, streamed) on every (re)connect, then LISTEN/NOTIFY: each notified
 * id is re-read (batched) and rescheduled; a row that is gone is forgotten.
 * When the scheduler hands out a due account, its row is re-read first and
 * the action runs only if the fresh row still makes it due. */
#ifndef TOKEND_ACCOUNTS_H
#define TOKEND_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scheduler/sched.h"

struct daemon;
struct accounts;

/* Borrows d (its store, sched, cfg). NULL on ENOMEM. */
struct accounts *accounts_new(struct daemon *d);
void accounts_free(struct accounts *a); /* NULL-safe */

/* store handlers: connected starts a full load; disconnected pauses. */
void accounts_on_connected(struct accounts *a);
void accounts_on_disconnected(struct accounts *a);
/* Recompute every account's schedule from a fresh load (after the platform
 * schedules changed on reload). */
void accounts_reload(struct accounts *a);
void accounts_on_notify(struct accounts *a, const char *channel, const char *payload);
/* sched handler (arg = struct accounts *). */
void accounts_on_due(const struct sched_due *due, void *arg);

/* Re-read and reschedule one account now (e.g. after an admin request). */
int accounts_refetch(struct accounts *a, const uint8_t id[SCHED_ID_LEN])
    __attribute__((warn_unused_result));

/* The SQL of the full load (for benchmarks comparing it with psql). */
const char *accounts_load_sql(void);

bool accounts_loaded(const struct accounts *a); /* a full load finished since connect */
bool accounts_loading(const struct accounts *a);
size_t accounts_running(const struct accounts *a);       /* actions in progress */
int64_t accounts_last_load_ms(const struct accounts *a); /* duration of the last full load */

#endif
