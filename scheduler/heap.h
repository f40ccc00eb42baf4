/* heap: an indexed 4-ary min-heap of deadlines keyed by slot number. Nodes
 * are {deadline, seq, slot}; ties on deadline are broken by a sequence number
 * so equal deadlines pop in insertion order. The heap keeps a slot -> position
 * index, so update and remove by slot are O(log n) and peek is O(1).
 * Pure data structure: no I/O, no clock. */
#ifndef TOKEND_HEAP_H
#define TOKEND_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEAP_NO_SLOT UINT32_MAX

struct heap;

/* Returns NULL on allocation failure. Caller frees with heap_free(). */
struct heap *heap_new(size_t capacity_hint);
void heap_free(struct heap *h); /* NULL-safe */

/* Insert slot with deadline, or move it if already present. -1 on ENOMEM. */
int heap_set(struct heap *h, uint32_t slot, int64_t deadline) __attribute__((warn_unused_result));
/* Remove slot if present; returns whether it was. */
bool heap_remove(struct heap *h, uint32_t slot);
bool heap_contains(const struct heap *h, uint32_t slot);
/* Deadline of slot; only valid when heap_contains(). */
int64_t heap_deadline_of(const struct heap *h, uint32_t slot);

size_t heap_size(const struct heap *h);
/* Earliest entry; returns false when empty. */
bool heap_peek(const struct heap *h, uint32_t *slot, int64_t *deadline);
/* Remove and return the earliest entry; false when empty. */
bool heap_pop(struct heap *h, uint32_t *slot, int64_t *deadline);

/* Visit up to limit entries in deadline order without modifying the heap
 * (best-first walk, O(limit log limit)). Stops early when visit returns false. */
typedef bool (*heap_visit_fn)(uint32_t slot, int64_t deadline, void *arg);
int heap_walk_in_order(const struct heap *h, size_t limit, heap_visit_fn visit, void *arg)
    __attribute__((warn_unused_result));

/* Bytes held by the heap (nodes + index), for metrics and benchmarks. */
size_t heap_memory_bytes(const struct heap *h);

#endif
