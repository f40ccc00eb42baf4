/* sched: the schedule. A slot table of compact entries, an open-addressing
 * id -> slot index, the deadline heap (heap.c) and one libevent timer armed
 * at the heap top, at most SCHED_CHECK_MS ahead so that a wall-clock jump is
 * noticed within a second. */
#include "scheduler/sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

#include "scheduler/heap.h"

/* Longest the timer sleeps: deadlines are wall clock, libevent timers are
 * monotonic, so each firing re-reads the wall clock. */
#define SCHED_CHECK_MS 1000

#define NO_SLOT HEAP_NO_SLOT
#define INDEX_MIN_CAP 16
#define INDEX_MIN_SLOT_BITS 16
/* The index grows past 7/10 full (load between 0.35 and 0.7). */
#define INDEX_LOAD_NUM 7
#define INDEX_LOAD_DEN 10

enum {
	ENTRY_USED = 0x1,      /* slot holds an account; else it is on the free list */
	ENTRY_IN_FLIGHT = 0x2, /* handed out by on_due, not yet reported back */
	ENTRY_STALE = 0x4,     /* marked by sched_mark_all, cleared by sched_set */
};

/* One account. Its due time lives in the heap only. A free slot keeps the
 * next free slot number in the first bytes of id. */
struct entry {
	uint8_t id[SCHED_ID_LEN];
	uint8_t platform;
	uint8_t action; /* enum action */
	uint8_t flags;  /* ENTRY_* */
};
_Static_assert(sizeof(struct entry) == SCHED_ID_LEN + 3, "entries stay compact");

struct sched {
	struct event_base *base; /* borrowed */
	struct event *timer;
	struct sched_limits limits;
	sched_due_fn on_due;
	void *arg;

	struct entry *slots;
	uint32_t slots_used; /* high-water mark: slots [0, slots_used) were handed out */
	uint32_t slot_cap;
	uint32_t free_head; /* first free slot below slots_used, NO_SLOT if none */

	/* The id index: open addressing, linear probing, power-of-two size.
	 * A bucket holds a slot number in its low slot_bits bits and, above
	 * them, a fingerprint (high hash bits), so that probing rarely reads a
	 * slot that does not match. NO_SLOT (all ones) is an empty bucket: the
	 * slot field never is all ones, as slot_cap <= slot_field_max(). */
	uint32_t *index;
	size_t index_mask;
	unsigned slot_bits;

	struct heap *heap;
	size_t count;
	size_t in_flight;
	bool paused;
	bool firing;  /* inside the timer callback: it re-arms when done */
	bool blocked; /* due work waits for in-flight capacity: timer off */
};

/* The heap top, to notice when a change moved it. */
struct top {
	uint32_t slot;
	int64_t due;
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* Both halves of the uuid: v7 uuids share their first bytes (timestamp). */
static uint64_t hash_id(const uint8_t id[SCHED_ID_LEN])
{
	uint64_t lo, hi;

	memcpy(&lo, id, sizeof(lo));
	memcpy(&hi, id + sizeof(lo), sizeof(hi));
	return mix64(lo ^ mix64(hi));
}

static size_t home_of(const struct sched *s, uint32_t slot)
{
	return (size_t)hash_id(s->slots[slot].id) & s->index_mask;
}

static uint32_t slot_field_max(const struct sched *s)
{
	return (uint32_t)((UINT64_C(1) << s->slot_bits) - 1);
}

/* The fingerprint of hash, in place above the slot field (none at 32 bits). */
static uint32_t fingerprint(const struct sched *s, uint64_t hash)
{
	return (uint32_t)((hash >> 32) << s->slot_bits);
}

static uint32_t bucket_slot(const struct sched *s, uint32_t bucket)
{
	return bucket & slot_field_max(s);
}

/* Slot of id, or NO_SLOT; *bucket gets the bucket holding it, or the empty
 * bucket where it would go. */
static uint32_t lookup(const struct sched *s, const uint8_t id[SCHED_ID_LEN], size_t *bucket)
{
	uint64_t hash = hash_id(id);
	uint32_t fp = fingerprint(s, hash);
	size_t b = (size_t)hash & s->index_mask;

	for (;; b = (b + 1) & s->index_mask) {
		uint32_t v = s->index[b];

		if (v == NO_SLOT) {
			*bucket = b;
			return NO_SLOT;
		}
		uint32_t slot = bucket_slot(s, v);

		if ((v & ~slot_field_max(s)) == fp &&
		    memcmp(s->slots[slot].id, id, SCHED_ID_LEN) == 0) {
			*bucket = b;
			return slot;
		}
	}
}

/* Store slot at bucket b (empty). */
static void index_place(struct sched *s, size_t b, uint32_t slot)
{
	s->index[b] = slot | fingerprint(s, hash_id(s->slots[slot].id));
}

static void index_put(struct sched *s, uint32_t slot)
{
	size_t b = home_of(s, slot);

	while (s->index[b] != NO_SLOT)
		b = (b + 1) & s->index_mask;
	index_place(s, b, slot);
}

/* Empty bucket b and shift later members of its probe run back, so that no
 * lookup meets a hole before its key (no tombstones). */
static void index_delete(struct sched *s, size_t b)
{
	size_t hole = b;

	s->index[hole] = NO_SLOT;
	for (size_t j = (hole + 1) & s->index_mask; s->index[j] != NO_SLOT;
	     j = (j + 1) & s->index_mask) {
		size_t home = home_of(s, bucket_slot(s, s->index[j]));

		/* Movable unless home lies cyclically in (hole, j]. */
		if (((j - home) & s->index_mask) >= ((j - hole) & s->index_mask)) {
			s->index[hole] = s->index[j];
			s->index[j] = NO_SLOT;
			hole = j;
		}
	}
}

/* Room in the index for one more account (doubling and rehashing). */
static int index_reserve(struct sched *s)
{
	size_t cap = s->index_mask + 1;

	if ((s->count + 1) * INDEX_LOAD_DEN <= cap * INDEX_LOAD_NUM)
		return 0;
	uint32_t *index = malloc(2 * cap * sizeof(*index));

	if (index == NULL)
		return -1;
	memset(index, 0xff, 2 * cap * sizeof(*index));
	free(s->index);
	s->index = index;
	s->index_mask = 2 * cap - 1;
	for (uint32_t slot = 0; slot < s->slots_used; slot++)
		if (s->slots[slot].flags & ENTRY_USED)
			index_put(s, slot);
	return 0;
}

/* Widen the slot field to hold slot numbers below slot_cap, in place: the
 * shorter fingerprint is the low part of the longer one. */
static void index_widen(struct sched *s, uint32_t slot_cap)
{
	unsigned old_bits = s->slot_bits;

	while (slot_cap > slot_field_max(s))
		s->slot_bits++;
	if (s->slot_bits == old_bits)
		return;
	uint32_t old_max = (uint32_t)((UINT64_C(1) << old_bits) - 1);

	for (size_t b = 0; b <= s->index_mask; b++) {
		uint32_t v = s->index[b];

		if (v != NO_SLOT)
			s->index[b] =
			    (v & old_max) | (uint32_t)((uint64_t)(v >> old_bits) << s->slot_bits);
	}
}

/* A free slot number (not yet marked used), or NO_SLOT on ENOMEM. The table
 * grows by 1.25x: amortised O(1), little slack. */
static uint32_t slot_alloc(struct sched *s)
{
	uint32_t slot = s->free_head;

	if (slot != NO_SLOT) {
		memcpy(&s->free_head, s->slots[slot].id, sizeof(s->free_head));
		return slot;
	}
	if (s->slots_used == s->slot_cap) {
		if (s->slot_cap >= NO_SLOT / 2) {
			errno = ENOMEM;
			return NO_SLOT;
		}
		uint32_t cap = s->slot_cap + s->slot_cap / 4 + 16;
		struct entry *slots = realloc(s->slots, (size_t)cap * sizeof(*slots));

		if (slots == NULL)
			return NO_SLOT;
		s->slots = slots;
		s->slot_cap = cap;
		index_widen(s, cap);
	}
	return s->slots_used++;
}

static void slot_release(struct sched *s, uint32_t slot)
{
	s->slots[slot].flags = 0;
	memcpy(s->slots[slot].id, &s->free_head, sizeof(s->free_head));
	s->free_head = slot;
}

static struct top top_of(const struct sched *s)
{
	struct top t = {.slot = NO_SLOT, .due = 0};

	heap_peek(s->heap, &t.slot, &t.due);
	return t;
}

/* A batch of 0 would never hand out work: it counts as 1. */
static uint32_t batch_of(const struct sched *s)
{
	return s->limits.batch != 0 ? s->limits.batch : 1;
}

static bool cap_reached(const struct sched *s)
{
	return s->limits.max_inflight != 0 && s->in_flight >= s->limits.max_inflight;
}

/* Point the timer at the heap top (at most SCHED_CHECK_MS ahead), or stop it
 * when paused, empty, or when due work waits for in-flight capacity (then a
 * completion re-arms). Inside the callback it does nothing: the callback
 * re-arms on its way out. */
static void arm(struct sched *s)
{
	if (s->firing)
		return;
	s->blocked = false;
	struct top t = top_of(s);

	if (s->paused || t.slot == NO_SLOT) {
		evtimer_del(s->timer);
		return;
	}
	int64_t delay = t.due - sched_now_ms();

	if (delay <= 0 && cap_reached(s)) {
		s->blocked = true;
		evtimer_del(s->timer);
		return;
	}
	delay = delay < 0 ? 0 : delay > SCHED_CHECK_MS ? SCHED_CHECK_MS : delay;
	struct timeval tv = {.tv_sec = (time_t)(delay / 1000),
	                     .tv_usec = (suseconds_t)(delay % 1000) * 1000};

	evtimer_add(s->timer, &tv);
}

/* Re-arm after a change if the heap top moved, or if capacity came back
 * while due work was waiting for it. */
static void rearm_after(struct sched *s, struct top before, bool freed_capacity)
{
	struct top after = top_of(s);

	if (after.slot != before.slot || after.due != before.due || (freed_capacity && s->blocked))
		arm(s);
}

/* Hand out the next due entry, if any and if the caps allow. Reads everything
 * afresh: the previous on_due may have changed the schedule. */
static bool fire_one(struct sched *s, int64_t now)
{
	struct top t = top_of(s);

	if (s->paused || cap_reached(s) || t.slot == NO_SLOT || t.due > now)
		return false;
	heap_remove(s->heap, t.slot);
	struct entry *e = &s->slots[t.slot];
	struct sched_due due = {
	    .platform = e->platform, .action = e->action, .due_ms = t.due, .fired_ms = now};

	memcpy(due.id, e->id, SCHED_ID_LEN);
	e->flags |= ENTRY_IN_FLIGHT;
	s->in_flight++;
	s->on_due(&due, s->arg); /* may call back into sched; e may be stale after */
	return true;
}

/* The timer: hand out up to limits.batch due entries in due order, then
 * re-arm (at once if more is due, so other events run between batches).
 * on_due may call any sched function but sched_free, for any entry: each
 * step re-reads the heap top, caps and pause. One clock reading per batch
 * decides what is due and is the batch's fired_ms. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	int64_t now = sched_now_ms();

	s->firing = true;
	for (uint32_t n = 0; n < batch_of(s); n++)
		if (!fire_one(s, now))
			break;
	s->firing = false;
	arm(s);
}

struct sched *sched_new(struct event_base *base, struct sched_limits limits, sched_due_fn on_due,
                        void *arg)
{
	struct sched *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->base = base;
	s->limits = limits;
	s->on_due = on_due;
	s->arg = arg;
	s->free_head = NO_SLOT;
	s->index_mask = INDEX_MIN_CAP - 1;
	s->slot_bits = INDEX_MIN_SLOT_BITS;
	s->index = malloc(INDEX_MIN_CAP * sizeof(*s->index));
	s->heap = heap_new(0);
	s->timer = evtimer_new(base, on_timer, s);
	if (s->index == NULL || s->heap == NULL || s->timer == NULL)
		goto fail;
	memset(s->index, 0xff, INDEX_MIN_CAP * sizeof(*s->index));
	return s;
fail:
	sched_free(s);
	return NULL;
}

void sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	if (s->timer != NULL)
		event_free(s->timer);
	heap_free(s->heap);
	free(s->index);
	free(s->slots);
	free(s);
}

void sched_set_limits(struct sched *s, struct sched_limits limits)
{
	s->limits = limits;
	arm(s);
}

/* A new account with id, placed at bucket (from lookup); NO_SLOT on ENOMEM. */
static uint32_t entry_insert(struct sched *s, const uint8_t id[SCHED_ID_LEN], size_t bucket)
{
	size_t mask = s->index_mask;

	if (index_reserve(s) != 0)
		return NO_SLOT;
	uint32_t slot = slot_alloc(s);

	if (slot == NO_SLOT)
		return NO_SLOT;
	struct entry *e = &s->slots[slot];

	memcpy(e->id, id, SCHED_ID_LEN);
	e->flags = ENTRY_USED;
	if (mask == s->index_mask)
		index_place(s, bucket, slot);
	else
		index_put(s, slot); /* the index was rebuilt */
	s->count++;
	return slot;
}

/* Forget slot (found at bucket); whether it was in flight. */
static bool entry_delete(struct sched *s, uint32_t slot, size_t bucket)
{
	bool was_in_flight = s->slots[slot].flags & ENTRY_IN_FLIGHT;

	if (was_in_flight)
		s->in_flight--;
	heap_remove(s->heap, slot);
	index_delete(s, bucket);
	slot_release(s, slot);
	s->count--;
	return was_in_flight;
}

int sched_set(struct sched *s, const uint8_t id[SCHED_ID_LEN], uint8_t platform, enum action action,
              int64_t due_ms)
{
	struct top before = top_of(s);
	size_t bucket;
	uint32_t slot = lookup(s, id, &bucket);
	bool is_new = slot == NO_SLOT;

	if (is_new && (slot = entry_insert(s, id, bucket)) == NO_SLOT)
		return -1;
	if (action == ACTION_NONE) {
		heap_remove(s->heap, slot);
	} else if (heap_set(s->heap, slot, due_ms) != 0) {
		if (is_new) {
			lookup(s, id, &bucket);
			entry_delete(s, slot, bucket);
		}
		return -1;
	}
	struct entry *e = &s->slots[slot];
	bool was_in_flight = e->flags & ENTRY_IN_FLIGHT;

	e->platform = platform;
	e->action = (uint8_t)action;
	e->flags &= (uint8_t) ~(ENTRY_IN_FLIGHT | ENTRY_STALE);
	if (was_in_flight)
		s->in_flight--;
	rearm_after(s, before, was_in_flight);
	return 0;
}

bool sched_remove(struct sched *s, const uint8_t id[SCHED_ID_LEN])
{
	struct top before = top_of(s);
	size_t bucket;
	uint32_t slot = lookup(s, id, &bucket);

	if (slot == NO_SLOT)
		return false;
	bool was_in_flight = entry_delete(s, slot, bucket);

	rearm_after(s, before, was_in_flight);
	return true;
}

static void fill_entry(const struct sched *s, uint32_t slot, struct sched_entry *out)
{
	const struct entry *e = &s->slots[slot];

	memcpy(out->id, e->id, SCHED_ID_LEN);
	out->platform = e->platform;
	out->action = (enum action)e->action;
	out->in_flight = e->flags & ENTRY_IN_FLIGHT;
	out->due_ms = heap_contains(s->heap, slot) ? heap_deadline_of(s->heap, slot) : 0;
}

bool sched_get(const struct sched *s, const uint8_t id[SCHED_ID_LEN], struct sched_entry *out)
{
	size_t bucket;
	uint32_t slot = lookup(s, id, &bucket);

	if (slot == NO_SLOT)
		return false;
	fill_entry(s, slot, out);
	return true;
}

void sched_mark_all(struct sched *s)
{
	for (uint32_t slot = 0; slot < s->slots_used; slot++)
		if (s->slots[slot].flags & ENTRY_USED)
			s->slots[slot].flags |= ENTRY_STALE;
}

size_t sched_sweep(struct sched *s)
{
	struct top before = top_of(s);
	bool freed_capacity = false;
	size_t removed = 0;

	for (uint32_t slot = 0; slot < s->slots_used; slot++) {
		if (!(s->slots[slot].flags & ENTRY_STALE))
			continue;
		size_t bucket;

		lookup(s, s->slots[slot].id, &bucket);
		freed_capacity |= entry_delete(s, slot, bucket);
		removed++;
	}
	rearm_after(s, before, freed_capacity);
	return removed;
}

size_t sched_size(const struct sched *s)
{
	return s->count;
}

size_t sched_pending(const struct sched *s)
{
	return heap_size(s->heap);
}

size_t sched_in_flight(const struct sched *s)
{
	return s->in_flight;
}

int64_t sched_next_due(const struct sched *s)
{
	struct top t = top_of(s);

	return t.slot == NO_SLOT ? 0 : t.due;
}

size_t sched_memory_bytes(const struct sched *s)
{
	return sizeof(*s) + event_get_struct_event_size() +
	       (size_t)s->slot_cap * sizeof(*s->slots) + (s->index_mask + 1) * sizeof(*s->index) +
	       heap_memory_bytes(s->heap);
}

struct walk {
	const struct sched *s;
	sched_visit_fn visit;
	void *arg;
};

static bool walk_visit(uint32_t slot, int64_t deadline, void *arg)
{
	struct walk *w = arg;
	struct sched_entry entry;

	fill_entry(w->s, slot, &entry);
	return w->visit(&entry, w->arg);
}

/* visit must not change the schedule. */
int sched_walk_upcoming(const struct sched *s, size_t limit, sched_visit_fn visit, void *arg)
{
	struct walk w = {.s = s, .visit = visit, .arg = arg};

	return heap_walk_in_order(s->heap, limit, walk_visit, &w);
}

void sched_pause(struct sched *s, bool paused)
{
	s->paused = paused;
	arm(s);
}

void sched_rearm(struct sched *s)
{
	arm(s);
}

int64_t sched_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
