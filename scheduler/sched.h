/* sched: the schedule. One entry per account (id, platform, next action, due
 * time) in a slot table with an id -> slot hash index and the deadline heap,
 * driven by a single libevent timer armed at the heap top. When entries fall
 * due, sched hands them to the owner in batches within an in-flight cap; the
 * owner reports back with sched_set() (next action) or sched_remove().
 * Holds no tokens. Deadlines are wall-clock Unix milliseconds; a clock jump
 * is noticed by a periodic check that re-arms the timer. */
#ifndef TOKEND_SCHED_H
#define TOKEND_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scheduler/policy.h"

struct event_base;
struct sched;

#define SCHED_ID_LEN 16 /* a uuid, binary */

/* A due entry handed to the owner. While the owner works on it the entry is
 * "in flight": not in the heap, counted against the cap, still found by
 * sched_get(). */
struct sched_due {
	uint8_t id[SCHED_ID_LEN];
	uint8_t platform;
	enum action action;
	int64_t due_ms;
	int64_t fired_ms; /* wall clock when handed out (lateness = fired - due) */
};

/* Called once per due entry from the timer callback. */
typedef void (*sched_due_fn)(const struct sched_due *due, void *arg);

struct sched_entry {
	uint8_t id[SCHED_ID_LEN];
	uint8_t platform;
	enum action action;
	int64_t due_ms; /* 0 when in flight or idle */
	bool in_flight;
};

struct sched_limits {
	uint32_t batch;        /* most entries handed out per timer firing */
	uint32_t max_inflight; /* most entries in flight at once (0 = no cap) */
};

/* Borrows base; caller frees with sched_free(). NULL on ENOMEM. */
struct sched *sched_new(struct event_base *base, struct sched_limits limits, sched_due_fn on_due,
                        void *arg);
void sched_free(struct sched *s); /* NULL-safe */
void sched_set_limits(struct sched *s, struct sched_limits limits);

/* Insert or update an account's next action (ACTION_NONE keeps the entry
 * known but idle, out of the heap). Clears in-flight. -1 on ENOMEM. */
int sched_set(struct sched *s, const uint8_t id[SCHED_ID_LEN], uint8_t platform, enum action action,
              int64_t due_ms) __attribute__((warn_unused_result));
/* Forget an account (deleted row). Returns whether it was known. */
bool sched_remove(struct sched *s, const uint8_t id[SCHED_ID_LEN]);
bool sched_get(const struct sched *s, const uint8_t id[SCHED_ID_LEN], struct sched_entry *out);

/* Mark-and-sweep for a full reload: sched_mark_all() marks every entry
 * stale; sched_set() clears the mark; sched_sweep() removes what is still
 * marked and returns how many. */
void sched_mark_all(struct sched *s);
size_t sched_sweep(struct sched *s);

size_t sched_size(const struct sched *s);      /* accounts known */
size_t sched_pending(const struct sched *s);   /* entries in the heap */
size_t sched_in_flight(const struct sched *s); /* entries handed out */
/* Earliest due time in the heap, 0 when empty. */
int64_t sched_next_due(const struct sched *s);
size_t sched_memory_bytes(const struct sched *s);

/* Upcoming entries in due order, up to limit. */
typedef bool (*sched_visit_fn)(const struct sched_entry *entry, void *arg);
int sched_walk_upcoming(const struct sched *s, size_t limit, sched_visit_fn visit, void *arg)
    __attribute__((warn_unused_result));

/* Pause/resume handing out work (e.g. while PostgreSQL is down). */
void sched_pause(struct sched *s, bool paused);
/* Re-arm the timer now (after a change of clock or limits). */
void sched_rearm(struct sched *s);

/* Wall clock in Unix milliseconds. */
int64_t sched_now_ms(void);

#endif
