/* account: one platform_accounts row as the scheduler needs it (ids, times,
 * flags; never tokens), parsed from the text columns of ACCOUNT_SELECT,
 * whether they arrive as a COPY line or as a query result row. */
#ifndef TOKEND_ACCOUNT_H
#define TOKEND_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scheduler/policy.h"
#include "scheduler/sched.h"

/* Milliseconds since the epoch, with infinities mapped: 'infinity' is
 * treated as "no expiry" (NULL) and '-infinity' as long past (1). */
#define ACCOUNT_MS(col)                                                                            \
	"CASE WHEN " col " IS NULL OR " col " = 'infinity' THEN NULL "                             \
	"WHEN " col " = '-infinity' THEN 1 "                                                       \
	"ELSE (extract(epoch FROM " col ") * 1000)::int8 END"

/* The columns, in the order account_parse_fields() expects. */
#define ACCOUNT_COLUMNS                                                                                                                                                                 \
	"id, platform, status, token_version, " ACCOUNT_MS("access_expires_at") ", " ACCOUNT_MS("refresh_expires_at") ", " ACCOUNT_MS(                                                  \
	    "token_issued_at") ", " ACCOUNT_MS("next_attempt_at") ", " ACCOUNT_MS("last_check_at") ", "                                                                                 \
	                                                                                           "failure_count, events_fired, refresh_token IS NOT NULL, app_password IS NOT NULL, " \
	                                                                                           "needs_exchange, refresh_requested_at IS NOT NULL, cannot_extend"
#define ACCOUNT_NFIELDS 16

struct account {
	uint8_t id[SCHED_ID_LEN];
	char id_text[37];
	char platform_name[33]; /* as stored, truncated; for log lines */
	int platform;           /* registry index, -1 when unknown */
	int64_t token_version;
	struct policy_input state; /* now_ms and jitter_seed filled by the caller */
};

/* Parse one row. fields[i] is NULL for SQL NULL. Returns -1 with err naming
 * the bad column (the row's id is in out->id_text when it parsed). */
int account_parse_fields(const char *const fields[ACCOUNT_NFIELDS], struct account *out, char *err,
                         size_t errlen) __attribute__((warn_unused_result));

/* Parse one COPY text-format line in place (tabs, \N for NULL). */
int account_parse_copy_line(char *line, size_t len, struct account *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Stable earlier-only jitter seed for an account's token version. */
uint32_t account_jitter_seed(const uint8_t id[SCHED_ID_LEN], int64_t token_version);

#endif
