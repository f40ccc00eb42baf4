/* batcher: per-loop-turn batching of items. */
#include "daemon/batcher.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

struct batcher {
	struct event *turn; /* activated when the first item arrives */
	batcher_flush_fn flush;
	void *arg;
	void **items;
	size_t len, max;
};

/* Hand the queued items over. A new array takes their place first, so the
 * flush callback may queue more items (they go in the next batch). */
static void flush_now(struct batcher *b)
{
	void **items = b->items;
	size_t n = b->len;
	b->items = calloc(b->max, sizeof(void *));
	b->len = 0;
	if (!b->items) { /* keep going with the old array, after this flush */
		b->flush(items, n, b->arg);
		b->items = items;
		return;
	}
	b->flush(items, n, b->arg);
	free(items);
}

static void on_turn(evutil_socket_t fd, short what, void *arg)
{
	struct batcher *b = arg;
	if (b->len)
		flush_now(b);
}

struct batcher *batcher_new(struct event_base *base, size_t max, batcher_flush_fn flush, void *arg)
{
	struct batcher *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	*b = (struct batcher){.flush = flush, .arg = arg, .max = max ? max : 1};
	b->items = calloc(b->max, sizeof(void *));
	b->turn = event_new(base, -1, 0, on_turn, b);
	if (!b->items || !b->turn) {
		batcher_free(b);
		return NULL;
	}
	return b;
}

void batcher_free(struct batcher *b)
{
	if (!b)
		return;
	if (b->turn)
		event_free(b->turn);
	free(b->items);
	free(b);
}

int batcher_add(struct batcher *b, void *item)
{
	if (!b->items)
		return -1;
	b->items[b->len++] = item;
	if (b->len == 1)
		event_active(b->turn, EV_TIMEOUT, 0);
	if (b->len == b->max)
		flush_now(b);
	return 0;
}

size_t batcher_pending(const struct batcher *b)
{
	return b->len;
}
