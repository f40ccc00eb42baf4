/* metrics: the daemon's counters, fixed-bucket histograms and account
 * census, and their Prometheus text rendering (docs/metrics.md). Plain
 * values in struct daemon, bumped where things happen; no labels carry ids
 * or secrets. */
#ifndef TOKEND_METRICS_H
#define TOKEND_METRICS_H

#include <stdbool.h>
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

/* The histograms; each kind has its own fixed buckets (metrics.c). */
enum histogram_kind {
	HISTOGRAM_REFRESH_DURATION,  /* seconds from claim to the end of a refresh */
	HISTOGRAM_REFRESH_LEAD,      /* seconds before the old token's expiry */
	HISTOGRAM_SCHEDULE_LATENESS, /* seconds an action started after its due time */
};
#define HISTOGRAM_KIND_COUNT (HISTOGRAM_SCHEDULE_LATENESS + 1)
#define HISTOGRAM_BUCKETS_MAX 16

/* Observations per bucket (not cumulative; slot [bounds] is +Inf). */
struct histogram {
	uint64_t buckets[HISTOGRAM_BUCKETS_MAX + 1];
	uint64_t count;
	double sum;
};

/* platform_accounts.status (schema/001_accounts.sql). */
enum account_status { STATUS_ACTIVE, STATUS_REVOKED, STATUS_EXPIRED };
#define STATUS_COUNT (STATUS_EXPIRED + 1)

/* The last count of platform_accounts by platform and status (the schedule
 * holds no status): taken every METRICS_CENSUS_INTERVAL_MS and after each
 * full load, never per scrape. Row [PLATFORM_MAX] counts unknown platforms. */
struct census {
	uint64_t accounts[PLATFORM_MAX + 1][STATUS_COUNT];
	int64_t counted_ms;     /* wall clock of the last count; 0 = none yet */
	int64_t started_ms;     /* wall clock the last count was asked for */
	uint64_t loads_counted; /* metrics.loads when it was asked for */
	bool running;
};

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
	uint64_t expired_while_active[PLATFORM_MAX]; /* see metrics_expired_unnoticed() */
	struct histogram refresh_duration[PLATFORM_MAX];
	struct histogram refresh_lead[PLATFORM_MAX];
	struct histogram schedule_lateness;
	struct census census;
};

const char *metrics_bad_input_name(enum bad_input kind);
const char *metrics_result_name(enum action_result result);
const char *metrics_outcome_name(enum refresh_outcome outcome);
/* Append the Prometheus text exposition of the daemon's state to out. */
void metrics_render(const struct daemon *d, struct evbuffer *out);

/* Add one observation (in the histogram's unit, seconds) to h, a histogram
 * of the given kind. */
void metrics_observe(struct histogram *h, enum histogram_kind kind, double value);

/* A token that expired while active, unnoticed (promise 4 broken): state
 * is an account's row as it was when an action started, and that action
 * has just completed (RESULT_DONE). True when the account was active, its
 * access token had expired more than METRICS_EXPIRY_GRACE_MS before, and
 * nothing had been recorded for that token version: no token.expiring, no
 * token.revoked. Every completed action changes one of these (a refresh
 * brings a new version, warn and expire record events, a revocation the
 * status), so an occurrence is counted once. docs/metrics.md. */
#define METRICS_EXPIRY_GRACE_MS 60000
bool metrics_expired_unnoticed(const struct policy_input *state);

/* Called once a second from the loop: starts a count of platform_accounts
 * by platform and status (one async query on d->store) when the last one is
 * older than METRICS_CENSUS_INTERVAL_MS or a full load finished since; not
 * while one runs or PostgreSQL is down. */
#define METRICS_CENSUS_INTERVAL_MS 30000
void metrics_census_tick(struct daemon *d);

/* Monotonic clock in milliseconds, for durations. */
int64_t metrics_monotonic_ms(void);

#endif
