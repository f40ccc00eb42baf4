/* account: parse platform_accounts rows into scheduler state. */
#include "daemon/account.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/seal.h"
#include "platforms/platform.h"

enum column {
	COL_ID,
	COL_PLATFORM,
	COL_STATUS,
	COL_VERSION,
	COL_ACCESS_EXP,
	COL_REFRESH_EXP,
	COL_ISSUED,
	COL_NEXT_ATTEMPT,
	COL_LAST_CHECK,
	COL_FAILURES,
	COL_EVENTS,
	COL_HAS_REFRESH,
	COL_HAS_APP_PASSWORD,
	COL_NEEDS_EXCHANGE,
	COL_REFRESH_REQUESTED,
	COL_CANNOT_EXTEND,
};
_Static_assert(COL_CANNOT_EXTEND + 1 == ACCOUNT_NFIELDS, "columns and ACCOUNT_COLUMNS agree");

static const char *const column_names[] = {
    "id",
    "platform",
    "status",
    "token_version",
    "access_expires_at",
    "refresh_expires_at",
    "token_issued_at",
    "next_attempt_at",
    "last_check_at",
    "failure_count",
    "events_fired",
    "refresh_token",
    "app_password",
    "needs_exchange",
    "refresh_requested_at",
    "cannot_extend",
};

/* NULL means 0 ("none") for times and counters. */
static bool parse_int(const char *text, int64_t *out)
{
	if (!text) {
		*out = 0;
		return true;
	}
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno || end == text || *end)
		return false;
	*out = v;
	return true;
}

static bool parse_bool(const char *text, bool *out)
{
	if (!text || (strcmp(text, "t") && strcmp(text, "f")))
		return false;
	*out = text[0] == 't';
	return true;
}

static int bad_column(struct account *out, enum column col, char *err, size_t errlen)
{
	snprintf(err, errlen, "account %s: bad %s", out->id_text[0] ? out->id_text : "(no id)",
	         column_names[col]);
	return -1;
}

static int parse_ints(const char *const f[], struct account *out, char *err, size_t errlen)
{
	struct policy_input *s = &out->state;
	int64_t failures, events;
	int64_t *targets[] = {&out->token_version,
	                      &s->access_expires_at_ms,
	                      &s->refresh_expires_at_ms,
	                      &s->token_issued_at_ms,
	                      &s->next_attempt_at_ms,
	                      &s->last_check_at_ms,
	                      &failures,
	                      &events};
	for (int c = COL_VERSION; c <= COL_EVENTS; c++)
		if (!parse_int(f[c], targets[c - COL_VERSION]))
			return bad_column(out, (enum column)c, err, errlen);
	if (failures < 0 || failures > UINT32_MAX)
		return bad_column(out, COL_FAILURES, err, errlen);
	if (events < 0 || events > UINT32_MAX)
		return bad_column(out, COL_EVENTS, err, errlen);
	s->failure_count = (uint32_t)failures;
	s->events_fired = (unsigned)events;
	return 0;
}

static int parse_bools(const char *const f[], struct account *out, char *err, size_t errlen)
{
	struct policy_input *s = &out->state;
	bool *targets[] = {&s->has_refresh_token, &s->has_app_password, &s->needs_exchange,
	                   &s->refresh_requested, &s->cannot_extend};
	for (int c = COL_HAS_REFRESH; c <= COL_CANNOT_EXTEND; c++)
		if (!parse_bool(f[c], targets[c - COL_HAS_REFRESH]))
			return bad_column(out, (enum column)c, err, errlen);
	return 0;
}

int account_parse_fields(const char *const f[ACCOUNT_NFIELDS], struct account *out, char *err,
                         size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!f[COL_ID] || !seal_parse_uuid(f[COL_ID], out->id))
		return bad_column(out, COL_ID, err, errlen);
	seal_format_uuid(out->id, out->id_text);
	if (!f[COL_PLATFORM] || !f[COL_STATUS])
		return bad_column(out, f[COL_PLATFORM] ? COL_STATUS : COL_PLATFORM, err, errlen);
	snprintf(out->platform_name, sizeof(out->platform_name), "%s", f[COL_PLATFORM]);
	out->platform = platform_index_of(f[COL_PLATFORM]);
	out->state.active = strcmp(f[COL_STATUS], "active") == 0;
	if (parse_ints(f, out, err, errlen) || parse_bools(f, out, err, errlen))
		return -1;
	return 0;
}

int account_parse_copy_line(char *line, size_t len, struct account *out, char *err, size_t errlen)
{
	const char *fields[ACCOUNT_NFIELDS];
	size_t n = 0;
	char *start = line;
	for (size_t i = 0; i <= len && n < ACCOUNT_NFIELDS; i++) {
		if (i < len && line[i] != '\t')
			continue;
		line[i] = '\0'; /* the byte after the last field is the line's end */
		fields[n++] = strcmp(start, "\\N") == 0 ? NULL : start;
		start = line + i + 1;
	}
	if (n != ACCOUNT_NFIELDS || start != line + len + 1) {
		memset(out, 0, sizeof(*out));
		snprintf(err, errlen, "COPY line with %zu fields, expected %d", n, ACCOUNT_NFIELDS);
		return -1;
	}
	return account_parse_fields(fields, out, err, errlen);
}

uint32_t account_jitter_seed(const uint8_t id[SCHED_ID_LEN], int64_t token_version)
{
	/* FNV-1a over id and version: stable across restarts and instances. */
	uint32_t h = 2166136261u;
	for (int i = 0; i < SCHED_ID_LEN; i++)
		h = (h ^ id[i]) * 16777619u;
	for (int i = 0; i < 8; i++)
		h = (h ^ (uint8_t)((uint64_t)token_version >> (8 * i))) * 16777619u;
	return h;
}
