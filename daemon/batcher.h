/* batcher: collect items during one loop turn and hand them over together,
 * so work that arrives in bursts (a batch of due accounts, a group-committed
 * journal sync) becomes one SQL statement instead of one per item. A batch
 * goes when it reaches max items, or when the loop comes round. */
#ifndef TOKEND_BATCHER_H
#define TOKEND_BATCHER_H

#include <stddef.h>

struct event_base;
struct batcher;

/* items are valid during the call only (the batcher reuses its array). */
typedef void (*batcher_flush_fn)(void **items, size_t n, void *arg);

/* Borrows base. NULL on ENOMEM. */
struct batcher *batcher_new(struct event_base *base, size_t max, batcher_flush_fn flush, void *arg);
void batcher_free(struct batcher *b); /* NULL-safe; pending items are dropped */
/* Queue item. -1 on ENOMEM (item not queued). */
int batcher_add(struct batcher *b, void *item) __attribute__((warn_unused_result));
size_t batcher_pending(const struct batcher *b);

#endif
