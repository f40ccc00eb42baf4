/* actions: carry out an account's due action. Each state change is one SQL
 * function call (schema/003_actions.sql), fenced by token_version, that
 * writes the row and its outbox event in one transaction. Actions that talk
 * to a platform (exchange, refresh, retry, check) go to the refresh engine
 * (refresh.h). */
#ifndef TOKEND_ACTIONS_H
#define TOKEND_ACTIONS_H

#include <libpq-fe.h>

#include "daemon/account.h"
#include "daemon/metrics.h"

struct daemon;

/* Called once when the action finished (whatever the result). */
typedef void (*actions_done_fn)(const struct account *acct, struct policy_decision decision,
                                enum action_result result, void *arg);

/* Start decision.action for acct (copied). -1 if it could not be started
 * (PostgreSQL unavailable): done is then not called. */
int actions_run(struct daemon *d, const struct account *acct, struct policy_decision decision,
                actions_done_fn done, void *arg) __attribute__((warn_unused_result));

/* Does the action call a platform (and so count against its limits)? */
bool actions_need_platform(enum action action);

/* The answer of a fenced SQL function returning boolean: 't' DONE, 'f' or
 * no row FENCED, an error (logged, naming the account and what) or a lost
 * connection (res NULL) FAILED. */
enum action_result actions_sql_result(const PGresult *res, const struct account *acct,
                                      const char *what);

/* When to retry after the n-th consecutive failure: exponential from one
 * minute to one hour, with earlier-only jitter from seed. */
int64_t actions_retry_at(int64_t now_ms, uint32_t failures, uint32_t seed);

#endif
