/* heap: indexed 4-ary min-heap of {deadline, seq, slot} nodes with a
 * slot -> position index. Ties on deadline are broken by seq, a counter
 * taken on every heap_set, so equal deadlines pop in the order they were set. */
#include "scheduler/heap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The counter is renumbered (order-preserving) when it reaches this value.
 * Tests define a small limit to exercise the renumbering. */
#ifndef HEAP_SEQ_LIMIT
#define HEAP_SEQ_LIMIT UINT32_MAX
#endif

/* Positions are uint32 with HEAP_NO_SLOT reserved, and renumbering needs
 * size < HEAP_SEQ_LIMIT: keep the heap well below both. */
#define HEAP_MAX_SIZE ((size_t)(HEAP_SEQ_LIMIT / 2))

#define ARITY 4

struct heap_node {
	int64_t deadline;
	uint32_t seq;
	uint32_t slot;
};
_Static_assert(sizeof(struct heap_node) == 16, "heap nodes are 16 bytes");

struct heap {
	struct heap_node *nodes; /* nodes[0] is the earliest */
	size_t size;
	size_t node_cap;
	uint32_t *pos; /* slot -> index in nodes, HEAP_NO_SLOT when absent */
	size_t pos_cap;
	uint32_t next_seq;
};

/* Whether a comes out before b. */
static bool before(const struct heap_node *a, const struct heap_node *b)
{
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline;
	return a->seq < b->seq;
}

static size_t parent_of(size_t i)
{
	return (i - 1) / ARITY;
}

/* Growth by 1.25x (+16): geometric, so amortised O(1), and at most 25% slack;
 * large blocks are grown by mremap in glibc, without a copy. */
static size_t grown(size_t cap, size_t needed)
{
	size_t next = cap + cap / 4 + 16;

	return next > needed ? next : needed;
}

static int reserve_nodes(struct heap *h, size_t needed)
{
	if (needed <= h->node_cap)
		return 0;
	size_t cap = grown(h->node_cap, needed);
	struct heap_node *nodes = realloc(h->nodes, cap * sizeof(*nodes));

	if (nodes == NULL)
		return -1;
	h->nodes = nodes;
	h->node_cap = cap;
	return 0;
}

/* Make slot addressable in the position index (new entries absent). */
static int reserve_pos(struct heap *h, uint32_t slot)
{
	if (slot < h->pos_cap)
		return 0;
	size_t cap = grown(h->pos_cap, (size_t)slot + 1);
	uint32_t *pos = realloc(h->pos, cap * sizeof(*pos));

	if (pos == NULL)
		return -1;
	memset(pos + h->pos_cap, 0xff, (cap - h->pos_cap) * sizeof(*pos));
	h->pos = pos;
	h->pos_cap = cap;
	return 0;
}

static void place(struct heap *h, size_t i, struct heap_node node)
{
	h->nodes[i] = node;
	h->pos[node.slot] = (uint32_t)i;
}

/* Put node at hole i or above it. */
static void sift_up(struct heap *h, size_t i, struct heap_node node)
{
	while (i > 0) {
		size_t p = parent_of(i);

		if (!before(&node, &h->nodes[p]))
			break;
		place(h, i, h->nodes[p]);
		i = p;
	}
	place(h, i, node);
}

/* Index of the earliest child of i; i itself when it has none. Prefetches
 * the children's children: the walk down is a chain of cache misses. */
static size_t earliest_child(const struct heap *h, size_t i)
{
	size_t first = ARITY * i + 1;

	if (first >= h->size)
		return i;
	size_t last = first + ARITY < h->size ? first + ARITY : h->size;
	size_t best = first;

	for (size_t c = first; c < last && ARITY * c + 1 < h->size; c++)
		__builtin_prefetch(&h->nodes[ARITY * c + 1]);

	for (size_t c = first + 1; c < last; c++)
		if (before(&h->nodes[c], &h->nodes[best]))
			best = c;
	return best;
}

/* Put node at hole i or below it. */
static void sift_down(struct heap *h, size_t i, struct heap_node node)
{
	for (;;) {
		size_t c = earliest_child(h, i);

		if (c == i || !before(&h->nodes[c], &node))
			break;
		place(h, i, h->nodes[c]);
		i = c;
	}
	place(h, i, node);
}

/* Put node at hole i, moving it up or down as its key requires. */
static void settle(struct heap *h, size_t i, struct heap_node node)
{
	if (i > 0 && before(&node, &h->nodes[parent_of(i)]))
		sift_up(h, i, node);
	else
		sift_down(h, i, node);
}

static int compare_nodes(const void *a, const void *b)
{
	const struct heap_node *x = a;
	const struct heap_node *y = b;

	return before(x, y) ? -1 : before(y, x) ? 1 : 0;
}

/* The counter ran out: sort the nodes (a sorted array is a valid heap) and
 * number them 0..size-1, which keeps their relative order. Needs no memory. */
static void renumber(struct heap *h)
{
	qsort(h->nodes, h->size, sizeof(*h->nodes), compare_nodes);
	for (size_t i = 0; i < h->size; i++) {
		h->nodes[i].seq = (uint32_t)i;
		h->pos[h->nodes[i].slot] = (uint32_t)i;
	}
	h->next_seq = (uint32_t)h->size;
}

static uint32_t take_seq(struct heap *h)
{
	if (h->next_seq >= HEAP_SEQ_LIMIT)
		renumber(h);
	return h->next_seq++;
}

struct heap *heap_new(size_t capacity_hint)
{
	struct heap *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	if (capacity_hint > HEAP_MAX_SIZE)
		capacity_hint = HEAP_MAX_SIZE;
	if (capacity_hint > 0 && (reserve_nodes(h, capacity_hint) != 0 ||
	                          reserve_pos(h, (uint32_t)capacity_hint - 1) != 0))
		goto fail;
	return h;
fail:
	heap_free(h);
	return NULL;
}

void heap_free(struct heap *h)
{
	if (h == NULL)
		return;
	free(h->pos);
	free(h->nodes);
	free(h);
}

/* Also -1 (EINVAL) for slot HEAP_NO_SLOT, which stands for "absent". */
int heap_set(struct heap *h, uint32_t slot, int64_t deadline)
{
	if (slot == HEAP_NO_SLOT) {
		errno = EINVAL;
		return -1;
	}
	if (reserve_pos(h, slot) != 0)
		return -1;
	bool present = h->pos[slot] != HEAP_NO_SLOT;

	if (!present) {
		if (h->size >= HEAP_MAX_SIZE) {
			errno = ENOMEM;
			return -1;
		}
		if (reserve_nodes(h, h->size + 1) != 0)
			return -1;
	}
	/* Before reading the position: renumbering reorders the nodes. */
	uint32_t seq = take_seq(h);
	size_t at = present ? h->pos[slot] : h->size++;
	struct heap_node node = {.deadline = deadline, .seq = seq, .slot = slot};

	settle(h, at, node);
	return 0;
}

bool heap_remove(struct heap *h, uint32_t slot)
{
	if (!heap_contains(h, slot))
		return false;
	size_t at = h->pos[slot];

	h->pos[slot] = HEAP_NO_SLOT;
	h->size--;
	if (at < h->size)
		settle(h, at, h->nodes[h->size]);
	return true;
}

bool heap_contains(const struct heap *h, uint32_t slot)
{
	return slot < h->pos_cap && h->pos[slot] != HEAP_NO_SLOT;
}

int64_t heap_deadline_of(const struct heap *h, uint32_t slot)
{
	return h->nodes[h->pos[slot]].deadline;
}

size_t heap_size(const struct heap *h)
{
	return h->size;
}

bool heap_peek(const struct heap *h, uint32_t *slot, int64_t *deadline)
{
	if (h->size == 0)
		return false;
	*slot = h->nodes[0].slot;
	*deadline = h->nodes[0].deadline;
	return true;
}

bool heap_pop(struct heap *h, uint32_t *slot, int64_t *deadline)
{
	if (!heap_peek(h, slot, deadline))
		return false;
	heap_remove(h, *slot);
	return true;
}

/* The walk's frontier: a binary min-heap of positions in h, ordered by the
 * nodes they point at. */
struct frontier {
	const struct heap *h;
	uint32_t *at;
	size_t size;
};

static bool frontier_before(const struct frontier *f, size_t i, size_t j)
{
	return before(&f->h->nodes[f->at[i]], &f->h->nodes[f->at[j]]);
}

static void frontier_swap(struct frontier *f, size_t i, size_t j)
{
	uint32_t t = f->at[i];

	f->at[i] = f->at[j];
	f->at[j] = t;
}

static void frontier_push(struct frontier *f, uint32_t position)
{
	size_t i = f->size++;

	f->at[i] = position;
	while (i > 0 && frontier_before(f, i, (i - 1) / 2)) {
		frontier_swap(f, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static uint32_t frontier_pop(struct frontier *f)
{
	uint32_t top = f->at[0];
	size_t i = 0;

	f->at[0] = f->at[--f->size];
	for (;;) {
		size_t l = 2 * i + 1, best = i;

		if (l < f->size && frontier_before(f, l, best))
			best = l;
		if (l + 1 < f->size && frontier_before(f, l + 1, best))
			best = l + 1;
		if (best == i)
			return top;
		frontier_swap(f, i, best);
		i = best;
	}
}

/* Best-first: the next entry in order is always in the frontier, which starts
 * at the root and takes the children of each visited node. Visiting k nodes
 * leaves at most 1 + k * (ARITY - 1) positions in it. */
int heap_walk_in_order(const struct heap *h, size_t limit, heap_visit_fn visit, void *arg)
{
	if (limit > h->size)
		limit = h->size;
	if (limit == 0)
		return 0;
	size_t cap = limit * (ARITY - 1) + 1; /* limit <= HEAP_MAX_SIZE: no overflow */
	struct frontier f = {.h = h, .at = malloc(cap * sizeof(uint32_t)), .size = 0};

	if (f.at == NULL)
		return -1;
	frontier_push(&f, 0);
	for (size_t seen = 0; seen < limit; seen++) {
		uint32_t i = frontier_pop(&f);

		if (!visit(h->nodes[i].slot, h->nodes[i].deadline, arg))
			break;
		for (size_t c = ARITY * (size_t)i + 1;
		     c <= ARITY * (size_t)i + ARITY && c < h->size; c++)
			frontier_push(&f, (uint32_t)c);
	}
	free(f.at);
	return 0;
}

size_t heap_memory_bytes(const struct heap *h)
{
	return sizeof(*h) + h->node_cap * sizeof(*h->nodes) + h->pos_cap * sizeof(*h->pos);
}
