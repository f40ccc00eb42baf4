/* test_sched: the schedule on a real event_base with real timers. Timing
 * checks only ever say "not before due"; they never bound lateness. */
#include "scheduler/sched.h"

#include "tests/unit/check.h"
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define MAX_FIRED 256

/* What on_due saw; hook (optional) runs inside on_due after recording. */
struct recorder {
	struct sched *s;
	struct sched_due fired[MAX_FIRED];
	int64_t clock_at_fire[MAX_FIRED];
	size_t in_flight_at_fire[MAX_FIRED];
	size_t n;
	uint32_t max_inflight;
	void (*hook)(struct recorder *rec, const struct sched_due *due);
	int hook_state;
};

static void on_due(const struct sched_due *due, void *arg)
{
	struct recorder *rec = arg;

	CHECK(rec->n < MAX_FIRED);
	rec->fired[rec->n] = *due;
	rec->clock_at_fire[rec->n] = sched_now_ms();
	rec->in_flight_at_fire[rec->n] = sched_in_flight(rec->s);
	rec->n++;
	if (rec->max_inflight != 0)
		CHECK(sched_in_flight(rec->s) <= rec->max_inflight);
	if (rec->hook != NULL)
		rec->hook(rec, due);
}

/* A distinct id for n; the number sits in the last bytes, after random-looking ones. */
static void make_id(uint32_t n, uint8_t id[SCHED_ID_LEN])
{
	for (size_t i = 0; i < SCHED_ID_LEN; i++)
		id[i] = (uint8_t)((n * 2654435761u) >> (i % 4 * 8)) ^ (uint8_t)(i * 31);
	memcpy(id + SCHED_ID_LEN - sizeof(n), &n, sizeof(n));
}

static uint32_t id_number(const uint8_t id[SCHED_ID_LEN])
{
	uint32_t n;

	memcpy(&n, id + SCHED_ID_LEN - sizeof(n), sizeof(n));
	return n;
}

static void set(struct sched *s, uint32_t n, enum action action, int64_t due_ms)
{
	uint8_t id[SCHED_ID_LEN];

	make_id(n, id);
	CHECK(sched_set(s, id, (uint8_t)(n % 7), action, due_ms) == 0);
}

static bool get(const struct sched *s, uint32_t n, struct sched_entry *out)
{
	uint8_t id[SCHED_ID_LEN];

	make_id(n, id);
	return sched_get(s, id, out);
}

static bool remove_id(struct sched *s, uint32_t n)
{
	uint8_t id[SCHED_ID_LEN];

	make_id(n, id);
	return sched_remove(s, id);
}

static void run_for(struct event_base *base, int64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	CHECK(event_base_loopexit(base, &tv) == 0);
	CHECK(event_base_dispatch(base) >= 0);
}

/* Run the loop until count entries fired, for at most max_ms. */
static void run_until_fired(struct event_base *base, const struct recorder *rec, size_t count,
                            int64_t max_ms)
{
	int64_t give_up = sched_now_ms() + max_ms;

	while (rec->n < count && sched_now_ms() < give_up)
		run_for(base, 10);
}

static struct sched *setup(struct event_base **base, struct recorder *rec, uint32_t batch,
                           uint32_t max_inflight)
{
	struct sched_limits limits = {.batch = batch, .max_inflight = max_inflight};

	memset(rec, 0, sizeof(*rec));
	*base = event_base_new();
	CHECK(*base != NULL);
	rec->s = sched_new(*base, limits, on_due, rec);
	rec->max_inflight = max_inflight;
	CHECK(rec->s != NULL);
	return rec->s;
}

static void teardown(struct event_base *base, struct recorder *rec)
{
	sched_free(rec->s);
	event_base_free(base);
}

/* Past-due entries fire at once, in due order, ties in the order they were set. */
static void test_past_due_in_order(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 100, 0);
	int64_t now = sched_now_ms();

	for (uint32_t n = 0; n < 40; n++)
		set(s, n, ACTION_REFRESH, now - 5000 + (n * 7919 % 40) / 2 * 10);
	CHECK(sched_pending(s) == 40 && sched_size(s) == 40);
	run_until_fired(base, &rec, 40, 5000);
	CHECK(rec.n == 40);
	for (size_t k = 0; k < rec.n; k++) {
		const struct sched_due *d = &rec.fired[k];
		uint32_t n = id_number(d->id);

		CHECK(d->due_ms == now - 5000 + (n * 7919 % 40) / 2 * 10);
		CHECK(d->fired_ms >= d->due_ms && d->action == ACTION_REFRESH &&
		      d->platform == n % 7);
		if (k > 0) {
			const struct sched_due *p = &rec.fired[k - 1];

			CHECK(p->due_ms < d->due_ms ||
			      (p->due_ms == d->due_ms && id_number(p->id) < n));
		}
	}
	struct sched_entry e;

	CHECK(get(s, 3, &e) && e.in_flight && e.due_ms == 0);
	CHECK(sched_pending(s) == 0 && sched_in_flight(s) == 40 && sched_next_due(s) == 0);
	run_for(base, 50);
	CHECK(rec.n == 40); /* each once */
	teardown(base, &rec);
}

/* An entry due ahead fires, and not before its due time. */
static void test_future_not_before(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 10, 0);
	int64_t due = sched_now_ms() + 200;

	set(s, 1, ACTION_WARN, due);
	CHECK(sched_next_due(s) == due);
	run_for(base, 100);
	CHECK(rec.n == 0 || rec.clock_at_fire[0] >= due);
	run_until_fired(base, &rec, 1, 5000);
	CHECK(rec.n == 1);
	CHECK(rec.clock_at_fire[0] >= due && rec.fired[0].fired_ms >= due);
	CHECK(rec.fired[0].due_ms == due && rec.fired[0].action == ACTION_WARN);
	teardown(base, &rec);
}

/* Complete every in-flight entry (the owner reporting back). */
static void complete_all(struct sched *s, const struct recorder *rec, size_t *done)
{
	for (; *done < rec->n; (*done)++)
		CHECK(sched_set(s, rec->fired[*done].id, 0, ACTION_NONE, 0) == 0);
}

/* At most batch per firing, at most max_inflight out; completions let the rest flow. */
static void test_batch_and_cap(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 3, 5);
	int64_t now = sched_now_ms();
	size_t step_max = 0;

	for (uint32_t n = 0; n < 20; n++)
		set(s, n, ACTION_REFRESH, now - 1000 + n);
	/* One loop iteration runs the timer once: one batch. */
	for (int i = 0; i < 50 && rec.n < 5; i++) {
		size_t before = rec.n;

		CHECK(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) >= 0);
		CHECK(rec.n - before <= 3);
		step_max = rec.n - before > step_max ? rec.n - before : step_max;
	}
	CHECK(step_max == 3 && rec.n == 5);
	run_for(base, 100);
	CHECK(rec.n == 5 && sched_in_flight(s) == 5 && sched_pending(s) == 15);

	/* Two complete (one idle, one rescheduled far ahead): two more flow. */
	CHECK(sched_set(s, rec.fired[0].id, 1, ACTION_NONE, 0) == 0);
	CHECK(sched_set(s, rec.fired[1].id, 1, ACTION_REFRESH, now + 3600 * 1000) == 0);
	CHECK(sched_in_flight(s) == 3);
	run_until_fired(base, &rec, 7, 5000);
	run_for(base, 50);
	CHECK(rec.n == 7 && sched_in_flight(s) == 5);

	size_t done = 2;

	while (rec.n < 20 && sched_now_ms() < now + 10000) {
		complete_all(s, &rec, &done);
		run_for(base, 10);
	}
	CHECK(rec.n == 20);
	for (size_t k = 1; k < rec.n; k++)
		CHECK(rec.fired[k - 1].due_ms <= rec.fired[k].due_ms);
	teardown(base, &rec);
}

static void pause_in_callback(struct recorder *rec, const struct sched_due *due)
{
	if (rec->hook_state++ == 0)
		sched_pause(rec->s, true);
}

/* Paused: nothing fires (also when paused from on_due); resumed: all fires. */
static void test_pause(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 10, 0);
	int64_t now = sched_now_ms();

	sched_pause(s, true);
	for (uint32_t n = 0; n < 3; n++)
		set(s, n, ACTION_REFRESH, now - 100 + n);
	run_for(base, 100);
	CHECK(rec.n == 0 && sched_pending(s) == 3);
	sched_pause(s, false);
	run_until_fired(base, &rec, 3, 5000);
	CHECK(rec.n == 3);

	rec.hook = pause_in_callback;
	for (uint32_t n = 10; n < 15; n++)
		set(s, n, ACTION_REFRESH, now - 100 + n);
	run_for(base, 100);
	CHECK(rec.n == 4 && sched_pending(s) == 4);
	sched_pause(s, false);
	run_until_fired(base, &rec, 8, 5000);
	CHECK(rec.n == 8 && sched_pending(s) == 0);
	teardown(base, &rec);
}

/* Removing a pending entry keeps it from firing; removing in-flight releases the cap. */
static void test_remove(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 10, 0);
	int64_t now = sched_now_ms();
	struct sched_entry e;

	set(s, 1, ACTION_REFRESH, now + 100);
	set(s, 2, ACTION_REFRESH, now + 150);
	CHECK(remove_id(s, 1));
	CHECK(!remove_id(s, 1) && !get(s, 1, &e));
	CHECK(sched_next_due(s) == now + 150 && sched_size(s) == 1);
	run_until_fired(base, &rec, 1, 5000);
	run_for(base, 100);
	CHECK(rec.n == 1 && id_number(rec.fired[0].id) == 2);
	CHECK(sched_in_flight(s) == 1);
	CHECK(remove_id(s, 2));
	CHECK(sched_in_flight(s) == 0 && sched_size(s) == 0);
	teardown(base, &rec);
}

/* ACTION_NONE: known, idle, never fires; it also takes a pending entry out. */
static void test_idle(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 10, 0);
	int64_t now = sched_now_ms();
	struct sched_entry e;

	set(s, 1, ACTION_NONE, now - 1000);
	set(s, 2, ACTION_REFRESH, now + 100);
	set(s, 2, ACTION_NONE, 0);
	run_for(base, 300);
	CHECK(rec.n == 0 && sched_size(s) == 2 && sched_pending(s) == 0);
	CHECK(get(s, 1, &e) && e.action == ACTION_NONE && e.due_ms == 0 && !e.in_flight);
	CHECK(e.platform == 1 && id_number(e.id) == 1);
	teardown(base, &rec);
}

/* Sweep removes exactly the entries not set since the mark; freed slots are reused. */
static void test_mark_sweep(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 10, 0);
	int64_t now = sched_now_ms();
	struct sched_entry e;

	for (uint32_t n = 0; n < 10; n++)
		set(s, n, n % 3 == 0 ? ACTION_NONE : ACTION_REFRESH, now + 60000 + n);
	set(s, 9, ACTION_REFRESH, now - 10);
	run_until_fired(base, &rec, 1, 5000);
	CHECK(sched_in_flight(s) == 1);

	sched_mark_all(s);
	for (uint32_t n = 0; n < 8; n += 2)
		set(s, n, ACTION_REFRESH, now + 120000 + n);
	set(s, 100, ACTION_REFRESH, now + 120000); /* new after the mark */
	CHECK(sched_sweep(s) == 6);
	CHECK(sched_size(s) == 5 && sched_in_flight(s) == 0 && sched_pending(s) == 5);
	for (uint32_t n = 0; n < 10; n++)
		CHECK(get(s, n, &e) == (n % 2 == 0 && n < 8));
	CHECK(get(s, 100, &e) && get(s, 4, &e) && e.due_ms == now + 120004);
	CHECK(sched_sweep(s) == 0);

	for (uint32_t n = 200; n < 210; n++)
		set(s, n, ACTION_CHECK, now + 30000 + n);
	CHECK(sched_size(s) == 15 && sched_next_due(s) == now + 30200);
	for (uint32_t n = 200; n < 210; n++)
		CHECK(get(s, n, &e) && e.due_ms == now + 30000 + n && e.action == ACTION_CHECK);
	teardown(base, &rec);
}

struct walked {
	struct sched_entry entries[MAX_FIRED];
	size_t n;
	size_t stop_after;
};

static bool walk_record(const struct sched_entry *entry, void *arg)
{
	struct walked *w = arg;

	CHECK(w->n < MAX_FIRED);
	w->entries[w->n++] = *entry;
	return w->n < w->stop_after;
}

/* Upcoming entries come in due order, pending ones only, up to the limit. */
static void test_walk(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 10, 0);
	int64_t now = sched_now_ms();
	static struct walked w;

	for (uint32_t n = 0; n < 100; n++)
		set(s, n, n % 10 == 0 ? ACTION_NONE : ACTION_REFRESH,
		    now + 60000 + (n * 37 % 100) * 1000);
	memset(&w, 0, sizeof(w));
	w.stop_after = MAX_FIRED;
	CHECK(sched_walk_upcoming(s, 10, walk_record, &w) == 0);
	CHECK(w.n == 10);
	for (size_t k = 0; k < w.n; k++) {
		uint32_t n = id_number(w.entries[k].id);

		CHECK(n % 10 != 0 && w.entries[k].due_ms == now + 60000 + (n * 37 % 100) * 1000);
		if (k > 0)
			CHECK(w.entries[k - 1].due_ms < w.entries[k].due_ms);
	}
	CHECK(w.entries[0].due_ms == now + 61000); /* n * 37 % 100 == 1 for n = 73 */

	memset(&w, 0, sizeof(w));
	w.stop_after = MAX_FIRED;
	CHECK(sched_walk_upcoming(s, 1000, walk_record, &w) == 0);
	CHECK(w.n == 90 && w.n == sched_pending(s));
	for (size_t k = 1; k < w.n; k++)
		CHECK(w.entries[k - 1].due_ms < w.entries[k].due_ms);

	memset(&w, 0, sizeof(w));
	w.stop_after = 3;
	CHECK(sched_walk_upcoming(s, 10, walk_record, &w) == 0);
	CHECK(w.n == 3 && sched_pending(s) == 90);
	teardown(base, &rec);
}

/* In A's first on_due: remove B, move A behind C, add D before everything;
 * in C's: remove C itself. The batch must follow the changed schedule. */
static void reenter(struct recorder *rec, const struct sched_due *due)
{
	int64_t base_ms = rec->fired[0].due_ms + 300;

	if (id_number(due->id) == 'A' && rec->hook_state++ == 0) {
		CHECK(remove_id(rec->s, 'B'));
		set(rec->s, 'A', ACTION_RETRY, base_ms - 50);
		set(rec->s, 'D', ACTION_REFRESH, base_ms - 400);
	} else if (id_number(due->id) == 'C') {
		CHECK(remove_id(rec->s, 'C'));
	}
}

static void test_reentrant(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 10, 0);
	int64_t now = sched_now_ms();
	const uint32_t want[] = {'A', 'D', 'C', 'A'};

	rec.hook = reenter;
	set(s, 'A', ACTION_REFRESH, now - 300);
	set(s, 'B', ACTION_REFRESH, now - 200);
	set(s, 'C', ACTION_REFRESH, now - 100);
	run_until_fired(base, &rec, 4, 5000);
	run_for(base, 50);
	CHECK(rec.n == 4);
	for (size_t k = 0; k < 4; k++)
		CHECK(id_number(rec.fired[k].id) == want[k]);
	CHECK(rec.fired[3].action == ACTION_RETRY && rec.fired[3].due_ms == now - 50);
	CHECK(sched_size(s) == 2 && sched_in_flight(s) == 2 && sched_pending(s) == 0);
	teardown(base, &rec);
}

struct timers {
	size_t count;
	int64_t expires_ms;
};

static int count_timer(const struct event_base *base, const struct event *ev, void *arg)
{
	struct timers *t = arg;
	struct timeval tv;

	if (event_pending(ev, EV_TIMEOUT, &tv)) {
		t->count++;
		t->expires_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
	}
	return 0;
}

static struct timers timers_of(struct event_base *base)
{
	struct timers t = {0, 0};

	CHECK(event_base_foreach_event(base, count_timer, &t) == 0);
	return t;
}

/* One timer for all accounts, armed at most a second ahead (clock-jump check);
 * none while paused, empty or blocked on the in-flight cap. */
static void test_one_capped_timer(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 10, 1);
	int64_t now = sched_now_ms();

	CHECK(timers_of(base).count == 0);
	for (uint32_t n = 0; n < 1000; n++)
		set(s, n, ACTION_REFRESH, now + 3600 * 1000 + n);
	struct timers t = timers_of(base);

	CHECK(t.count == 1);
	CHECK(t.expires_ms >= now + 900 && t.expires_ms <= sched_now_ms() + 1100);
	set(s, 5000, ACTION_REFRESH, now + 300);
	t = timers_of(base);
	CHECK(t.count == 1 && t.expires_ms >= now + 200 && t.expires_ms <= now + 400);
	set(s, 5000, ACTION_REFRESH, now + 600); /* same top entry, later */
	t = timers_of(base);
	CHECK(t.count == 1 && t.expires_ms >= now + 500 && t.expires_ms <= now + 700);
	sched_pause(s, true);
	CHECK(timers_of(base).count == 0);
	sched_pause(s, false);
	CHECK(timers_of(base).count == 1);

	set(s, 6000, ACTION_REFRESH, now - 10);
	set(s, 6001, ACTION_REFRESH, now - 5);
	run_until_fired(base, &rec, 1, 5000);
	CHECK(rec.n == 1 && timers_of(base).count == 0); /* blocked: cap 1 */
	CHECK(remove_id(s, 6000));
	CHECK(timers_of(base).count == 1);
	run_until_fired(base, &rec, 2, 5000);
	CHECK(rec.n == 2 && id_number(rec.fired[1].id) == 6001);
	sched_free(s);
	CHECK(timers_of(base).count == 0);
	event_base_free(base);
}

/* Random sets and removes against a plain array: the id index (with its
 * backward-shift deletion), the free list and the heap stay consistent. */
static void test_index_churn(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 10, 0);
	int64_t far = sched_now_ms() + 3600 * 1000;
	static int64_t model[3000]; /* due + 1; 0 = unknown; -1 = idle */
	uint64_t x = 12345;
	size_t known = 0, pending = 0;
	struct sched_entry e;

	memset(model, 0, sizeof(model));
	for (int step = 0; step < 200000; step++) {
		x = x * 6364136223846793005u + 1442695040888963407u;
		uint32_t n = (uint32_t)(x >> 33) % 3000;
		int64_t due = far + (int64_t)(x >> 40) % 100000;

		known -= model[n] != 0;
		pending -= model[n] > 0;
		if ((x >> 20) % 3 == 0) {
			CHECK(remove_id(s, n) == (model[n] != 0));
			model[n] = 0;
		} else {
			bool idle = (x >> 24) % 8 == 0;

			set(s, n, idle ? ACTION_NONE : ACTION_REFRESH, due);
			model[n] = idle ? -1 : due + 1;
		}
		known += model[n] != 0;
		pending += model[n] > 0;
		CHECK(sched_size(s) == known && sched_pending(s) == pending);
		CHECK(get(s, n, &e) == (model[n] != 0));
	}
	for (uint32_t n = 0; n < 3000; n++) {
		CHECK(get(s, n, &e) == (model[n] != 0));
		if (model[n] != 0)
			CHECK(e.due_ms == (model[n] > 0 ? model[n] - 1 : 0) &&
			      id_number(e.id) == n);
	}
	CHECK(sched_memory_bytes(s) <= 64 * 3000 + 4096); /* freed slots were reused */
	teardown(base, &rec);
}

/* Memory per account stays within the 64-byte budget; printed for the record. */
static void test_memory(void)
{
	struct event_base *base;
	struct recorder rec;
	struct sched *s = setup(&base, &rec, 10, 0);
	int64_t now = sched_now_ms();
	const uint32_t sizes[] = {1000, 10000, 100000, 300000};
	uint32_t n = 0;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (; n < sizes[i]; n++)
			set(s, n, ACTION_REFRESH,
			    now + 3600 * 1000 + (int64_t)(n * 2654435761u % 86400000));
		double per = (double)sched_memory_bytes(s) / n;

		printf("test_sched: %u accounts: %zu bytes, %.1f bytes/account\n", n,
		       sched_memory_bytes(s), per);
		CHECK(per <= 64.0);
		CHECK(sched_size(s) == n && sched_pending(s) == n);
	}
	struct sched_entry e;

	for (n = 0; n < sizes[3]; n += 997)
		CHECK(get(s, n, &e) && e.platform == n % 7);
	teardown(base, &rec);
}

int main(void)
{
	test_past_due_in_order();
	test_future_not_before();
	test_batch_and_cap();
	test_pause();
	test_remove();
	test_idle();
	test_mark_sweep();
	test_walk();
	test_reentrant();
	test_one_capped_timer();
	test_index_churn();
	test_memory();
	printf("test_sched: ok\n");
	return 0;
}
