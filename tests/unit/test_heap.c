/* test_heap: deterministic cases and a randomized property test of the
 * deadline heap against a plain array model, checking the heap invariant
 * after every operation. The seed comes from TEST_SEED or the clock and is
 * printed at start and on failure.
 *
 * heap.c is compiled into this file with a small sequence limit, so that the
 * order-preserving renumbering of the tie-break counter runs many times. */
#define HEAP_SEQ_LIMIT 10007u
#include "scheduler/heap.c"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

static uint64_t seed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s (TEST_SEED=%" PRIu64 ")\n",       \
			        __FILE__, __LINE__, #cond, seed);                                  \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return rng() % n;
}

/* The heap's own invariants: order, position index both ways, sequence bound. */
static void check_invariant(const struct heap *h)
{
	CHECK(h->size <= h->node_cap);
	CHECK(h->next_seq <= HEAP_SEQ_LIMIT);
	for (size_t i = 0; i < h->size; i++) {
		const struct heap_node *n = &h->nodes[i];

		CHECK(n->slot < h->pos_cap && h->pos[n->slot] == i);
		CHECK(n->seq < h->next_seq);
		if (i > 0)
			CHECK(!before(n, &h->nodes[parent_of(i)]));
	}
	size_t present = 0;

	for (size_t slot = 0; slot < h->pos_cap; slot++)
		if (h->pos[slot] != HEAP_NO_SLOT) {
			CHECK(h->pos[slot] < h->size);
			present++;
		}
	CHECK(present == h->size);
}

/* Collects a walk. */
struct visits {
	uint32_t slots[64];
	int64_t deadlines[64];
	size_t n;
	size_t stop_after; /* visit returns false after this many */
};

static bool record(uint32_t slot, int64_t deadline, void *arg)
{
	struct visits *v = arg;

	CHECK(v->n < 64);
	v->slots[v->n] = slot;
	v->deadlines[v->n] = deadline;
	v->n++;
	return v->n < v->stop_after;
}

static void test_empty(void)
{
	struct heap *h = heap_new(0);
	uint32_t slot = 7;
	int64_t deadline = 7;
	struct visits v = {.stop_after = 64};

	CHECK(h != NULL);
	CHECK(heap_size(h) == 0);
	CHECK(!heap_peek(h, &slot, &deadline));
	CHECK(!heap_pop(h, &slot, &deadline));
	CHECK(slot == 7 && deadline == 7);
	CHECK(!heap_remove(h, 0));
	CHECK(!heap_contains(h, 0));
	CHECK(heap_walk_in_order(h, 10, record, &v) == 0);
	CHECK(v.n == 0);
	check_invariant(h);
	heap_free(h);
	heap_free(NULL);
}

static void test_remove_absent(void)
{
	struct heap *h = heap_new(4);

	CHECK(heap_set(h, 3, 30) == 0);
	CHECK(!heap_remove(h, 2));       /* within the index, never set */
	CHECK(!heap_remove(h, 1000000)); /* beyond the index */
	CHECK(!heap_remove(h, HEAP_NO_SLOT));
	CHECK(!heap_contains(h, HEAP_NO_SLOT));
	CHECK(heap_set(h, HEAP_NO_SLOT, 1) == -1);
	CHECK(heap_remove(h, 3));
	CHECK(!heap_remove(h, 3)); /* twice */
	CHECK(heap_size(h) == 0);
	check_invariant(h);
	heap_free(h);
}

static void test_ties_in_set_order(void)
{
	struct heap *h = heap_new(0);
	const uint32_t order[] = {9, 2, 40, 0, 17};
	uint32_t slot;
	int64_t deadline;

	for (size_t i = 0; i < 5; i++)
		CHECK(heap_set(h, order[i], 100) == 0);
	CHECK(heap_set(h, 5, 99) == 0);
	CHECK(heap_set(h, 2, 100) == 0); /* re-set: goes behind the other ties */
	const uint32_t want[] = {5, 9, 40, 0, 17, 2};

	for (size_t i = 0; i < 6; i++) {
		CHECK(heap_pop(h, &slot, &deadline));
		CHECK(slot == want[i]);
		CHECK(deadline == (i == 0 ? 99 : 100));
		check_invariant(h);
	}
	CHECK(!heap_pop(h, &slot, &deadline));
	heap_free(h);
}

static void test_walk_stops_early(void)
{
	struct heap *h = heap_new(0);
	struct visits v = {.stop_after = 3};

	for (uint32_t slot = 0; slot < 50; slot++)
		CHECK(heap_set(h, slot, 1000 - slot) == 0);
	CHECK(heap_walk_in_order(h, 10, record, &v) == 0);
	CHECK(v.n == 3);
	for (size_t i = 0; i < 3; i++)
		CHECK(v.slots[i] == 49 - i);
	CHECK(heap_size(h) == 50);
	check_invariant(h);
	heap_free(h);
}

/* The model: per slot, present, deadline and the order of its last set. */
#define MODEL_SLOTS 2000

struct model {
	bool present[MODEL_SLOTS];
	int64_t deadline[MODEL_SLOTS];
	uint64_t order[MODEL_SLOTS];
	uint64_t next_order;
	size_t size;
};

static bool model_before(const struct model *m, uint32_t a, uint32_t b)
{
	if (m->deadline[a] != m->deadline[b])
		return m->deadline[a] < m->deadline[b];
	return m->order[a] < m->order[b];
}

/* The k earliest present slots, in order (selection: slow and obvious). */
static size_t model_first(const struct model *m, size_t k, uint32_t *out)
{
	size_t n = 0;

	for (; n < k && n < m->size; n++) {
		uint32_t best = HEAP_NO_SLOT;

		for (uint32_t slot = 0; slot < MODEL_SLOTS; slot++) {
			if (!m->present[slot] || (n > 0 && !model_before(m, out[n - 1], slot)))
				continue;
			if (best == HEAP_NO_SLOT || model_before(m, slot, best))
				best = slot;
		}
		out[n] = best;
	}
	return n;
}

static int64_t random_deadline(void)
{
	switch (below(4)) {
	case 0:
		return (int64_t)below(8); /* many ties */
	case 1:
		return (int64_t)below(1000) - 500;
	case 2:
		return below(2) ? INT64_MAX - (int64_t)below(3) : INT64_MIN + (int64_t)below(3);
	default:
		return (int64_t)rng();
	}
}

/* A slot from a range that grows with the phase, so the index grows too. */
static uint32_t random_slot(size_t range)
{
	return (uint32_t)below(range);
}

static void op_set(struct heap *h, struct model *m, uint32_t slot)
{
	int64_t deadline = random_deadline();

	CHECK(heap_set(h, slot, deadline) == 0);
	if (!m->present[slot])
		m->size++;
	m->present[slot] = true;
	m->deadline[slot] = deadline;
	m->order[slot] = m->next_order++;
}

static void op_remove(struct heap *h, struct model *m, uint32_t slot)
{
	CHECK(heap_remove(h, slot) == m->present[slot]);
	if (m->present[slot])
		m->size--;
	m->present[slot] = false;
}

static void op_pop(struct heap *h, struct model *m, bool pop)
{
	uint32_t want, slot;
	int64_t deadline;
	bool got = pop ? heap_pop(h, &slot, &deadline) : heap_peek(h, &slot, &deadline);

	CHECK(got == (model_first(m, 1, &want) == 1));
	if (!got)
		return;
	CHECK(slot == want && deadline == m->deadline[want]);
	if (pop) {
		m->present[slot] = false;
		m->size--;
	}
}

static void op_walk(const struct heap *h, const struct model *m)
{
	uint32_t want[64];
	size_t limit = below(65);
	struct visits v = {.stop_after = 64};
	size_t n = model_first(m, limit, want);

	CHECK(heap_walk_in_order(h, limit, record, &v) == 0);
	CHECK(v.n == n);
	for (size_t i = 0; i < n; i++)
		CHECK(v.slots[i] == want[i] && v.deadlines[i] == m->deadline[want[i]]);
}

static void op_query(const struct heap *h, const struct model *m, uint32_t slot)
{
	CHECK(heap_contains(h, slot) == m->present[slot]);
	if (m->present[slot])
		CHECK(heap_deadline_of(h, slot) == m->deadline[slot]);
	CHECK(heap_size(h) == m->size);
}

/* One random operation; the mix shifts between growing and shrinking phases. */
static void random_op(struct heap *h, struct model *m, size_t step)
{
	size_t phase = step / 10000;
	size_t range = 16 + (phase * 97) % MODEL_SLOTS;
	uint32_t slot = random_slot(range < MODEL_SLOTS ? range : MODEL_SLOTS);
	unsigned grow = phase % 2 == 0 ? 60 : 25; /* percent of sets */
	unsigned r = (unsigned)below(100);

	if (r < grow)
		op_set(h, m, slot);
	else if (r < grow + 20)
		op_remove(h, m, slot);
	else if (r < grow + 30)
		op_pop(h, m, true);
	else if (r < grow + 35)
		op_pop(h, m, false);
	else if (r < grow + 37)
		op_walk(h, m);
	else
		op_query(h, m, slot);
}

static void test_random(size_t steps)
{
	struct heap *h = heap_new(0);
	static struct model m;
	size_t renumbers = 0;

	CHECK(h != NULL);
	for (size_t step = 0; step < steps; step++) {
		uint32_t seq_before = h->next_seq;

		random_op(h, &m, step);
		check_invariant(h);
		CHECK(heap_size(h) == m.size);
		renumbers += h->next_seq < seq_before;
	}
	printf("test_heap: %zu random operations, %zu renumberings, final size %zu\n", steps,
	       renumbers, heap_size(h));
	CHECK(renumbers > 0);
	heap_free(h);
}

int main(void)
{
	const char *env = getenv("TEST_SEED");

	seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	rng_state = seed;
	printf("test_heap: TEST_SEED=%" PRIu64 "\n", seed);
	test_empty();
	test_remove_absent();
	test_ties_in_set_order();
	test_walk_stops_early();
	test_random(250000);
	printf("test_heap: ok\n");
	return 0;
}
