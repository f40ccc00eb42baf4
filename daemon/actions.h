/* actions: carry out an account's due action against PostgreSQL. Each state
 * change is one SQL function call (schema/003_actions.sql), fenced by
 * token_version, that writes the row and its outbox event in one
 * transaction. Refresh-type actions need the refresh engine; until it is
 * built in they are reported as due (log line, last_error_code, retry). */
#ifndef TOKEND_ACTIONS_H
#define TOKEND_ACTIONS_H

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

/* When to retry after the n-th consecutive failure: exponential from one
 * minute to one hour, with earlier-only jitter from seed. */
int64_t actions_retry_at(int64_t now_ms, uint32_t failures, uint32_t seed);

#endif
