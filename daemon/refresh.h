/* refresh: the refresh engine. Carries out the actions that talk to a
 * platform (exchange, refresh, retry, check) with a write path that never
 * loses a rotated token:
 *
 *   claim (lease, fenced by token_version) -> open the sealed tokens ->
 *   HTTP via the platform module -> seal the new tokens and append them to
 *   the journal (fsync'd) -> one SQL statement stores them, bumps the
 *   version, releases the lease -> retire the journal entry.
 *
 * A dead grant is revoked only if nobody stored a newer token meanwhile
 * (tokend_revoke re-reads the row). Transient failures are recorded with a
 * backoff honouring Retry-After. Each platform has an in-flight cap and a
 * token-bucket rate limit; work over them is deferred, earliest due first.
 * Journal entries left by a crash or an outage are committed whenever the
 * database (re)connects, before the schedule is loaded. */
#ifndef TOKEND_REFRESH_H
#define TOKEND_REFRESH_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/actions.h"

struct daemon;
struct refresh;

/* Opens the journal in the state directory and the HTTP client. NULL with
 * err set on failure. Borrows d. */
struct refresh *refresh_new(struct daemon *d, char *err, size_t errlen);
void refresh_free(struct refresh *r); /* NULL-safe; requests in flight are dropped */

/* Config reload: client secrets, HTTP options, rate limits. -1 with err
 * (the old settings stay). */
int refresh_reload(struct refresh *r, char *err, size_t errlen) __attribute__((warn_unused_result));

/* May a request to platform start now? 0 = yes (counted against the rate
 * limit), else the wall-clock time to ask again. Asked before the row is
 * re-read, so held-back work costs no database round trip. */
int64_t refresh_admit(struct refresh *r, int platform, int64_t now);

/* Start a refresh-type action (EXCHANGE, REFRESH, RETRY, CHECK) for acct.
 * done is called once, from the loop. -1 when it cannot start (PostgreSQL
 * down): done is not called. */
int refresh_start(struct refresh *r, const struct account *acct, struct policy_decision decision,
                  actions_done_fn done, void *arg) __attribute__((warn_unused_result));

/* Commit what the journal holds. Runs whenever the write path's own
 * PostgreSQL connection (re)connects; an account due meanwhile commits its
 * kept tokens itself instead of calling the platform. */
void refresh_replay_journal(struct refresh *r);

/* The write path's connection is up. */
bool refresh_connected(const struct refresh *r);

size_t refresh_in_flight(const struct refresh *r);
size_t refresh_journal_pending(const struct refresh *r);

#endif
