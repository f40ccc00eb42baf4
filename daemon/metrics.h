/* metrics: the daemon's counters and their Prometheus text rendering.
 * Plain counters in struct daemon, bumped where things happen; no labels
 * carry ids or secrets. */
#ifndef TOKEND_METRICS_H
#define TOKEND_METRICS_H

#include <stdint.h>

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
};
#define BAD_INPUT_COUNT (BAD_NOTIFICATION + 1)

enum action_result { RESULT_DONE, RESULT_FENCED, RESULT_FAILED, RESULT_UNAVAILABLE };
#define RESULT_COUNT (RESULT_UNAVAILABLE + 1)

struct metrics {
	uint64_t bad_input[BAD_INPUT_COUNT];
	uint64_t actions[ACTION_COUNT][RESULT_COUNT];
	uint64_t notifications;
	uint64_t loads;
	uint64_t rows_loaded;
	uint64_t config_reloads;
	uint64_t clock_jumps;
};

const char *metrics_bad_input_name(enum bad_input kind);
const char *metrics_result_name(enum action_result result);
/* Append the Prometheus text exposition of the daemon's state to out. */
void metrics_render(const struct daemon *d, struct evbuffer *out);

#endif
