/* metrics: the daemon's counters and their Prometheus text rendering.
 * Plain counters in struct daemon, bumped where things happen; no labels
 * carry ids or secrets. */
#ifndef TOKEND_METRICS_H
#define TOKEND_METRICS_H

#include <stdint.h>

#include "platforms/platform.h"
#include "scheduler/policy.h"

struct evbuffer;
struct daemon;

enum bad_input {
	BAD_ROW_UNKNOWN_PLATFORM,
	BAD_ROW_UNPARSABLE,
	BAD_ROW_UNDECRYPTABLE,
	BAD_CONFIG_RELOAD,
	BAD_ADMIN_REQUEST,
	BAD_NOTIFICATION,
	BAD_UPSTREAM_BODY,
};
#define BAD_INPUT_COUNT (BAD_UPSTREAM_BODY + 1)

/* How an action ended. */
enum action_result {
	RESULT_DONE,     /* the state change is committed */
	RESULT_FENCED,   /* someone else changed the account first: re-read it */
	RESULT_FAILED,   /* PostgreSQL failed or went away: try again later */
	RESULT_RETRYING, /* the platform failed transiently; a retry is recorded */
	RESULT_DEFERRED, /* held back by the platform's rate limit or in-flight cap */
};
#define RESULT_COUNT (RESULT_DEFERRED + 1)

/* What a refresh-type request to a platform came to. */
enum refresh_outcome {
	OUTCOME_REFRESHED,  /* new tokens stored */
	OUTCOME_CHECKED,    /* validity check passed */
	OUTCOME_REVOKED,    /* dead grant: revoked */
	OUTCOME_ADOPTED,    /* dead grant, but a newer token was already stored */
	OUTCOME_TRANSIENT,  /* platform or network failure: retry */
	OUTCOME_MALFORMED,  /* unreadable response: retry */
	OUTCOME_UNOPENABLE, /* the stored token does not open */
};
#define OUTCOME_COUNT (OUTCOME_UNOPENABLE + 1)

struct metrics {
	uint64_t bad_input[BAD_INPUT_COUNT];
	uint64_t actions[ACTION_COUNT][RESULT_COUNT];
	uint64_t refreshes[PLATFORM_MAX][OUTCOME_COUNT];
	uint64_t journal_replayed;
	uint64_t notifications;
	uint64_t loads;
	uint64_t rows_loaded;
	uint64_t config_reloads;
	uint64_t clock_jumps;
};

const char *metrics_bad_input_name(enum bad_input kind);
const char *metrics_result_name(enum action_result result);
const char *metrics_outcome_name(enum refresh_outcome outcome);
/* Append the Prometheus text exposition of the daemon's state to out. */
void metrics_render(const struct daemon *d, struct evbuffer *out);

#endif
