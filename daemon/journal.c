/* journal: append-only, CRC-checked, group-committed by a sync thread. */
#include "daemon/journal.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/log.h"

#define RECORD_MAGIC 0x544b4a31u /* "TKJ1" */
#define RECORD_HEADER 13         /* magic 4, type 1, length 4, crc 4 */
#define RECORD_PENDING 1
#define RECORD_DONE 2
#define PAYLOAD_MAX (1u << 20)
#define FIXED_PENDING (8 + JOURNAL_ID_LEN + 8 + 8 + 8 + 1 + 4 + 4)

struct node {
	struct journal_entry entry;
	off_t end; /* file offset just past the record */
	bool durable;
	journal_durable_fn durable_cb;
	void *arg;
};

struct journal {
	int fd;
	char *path;
	off_t size;
	uint64_t next_seq;
	/* Pending entries by seq: slots[seq - base_seq], NULL once retired. */
	struct node **slots;
	uint64_t base_seq;
	size_t len, cap, pending;
	uint64_t first_undurable; /* lowest seq that may still await a sync */
	/* The sync worker. */
	pthread_t worker;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	off_t sync_requested, sync_done;
	int sync_errno;
	bool stop, worker_started;
	int notify_pipe[2];
	struct event *notify_ev;
};

/* ---- encoding ---- */

static uint32_t crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
	}
	return ~c;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint64_t get_u(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

static uint8_t *put_blob(uint8_t *p, const uint8_t *data, size_t len)
{
	p = put_u32(p, (uint32_t)len);
	if (len)
		memcpy(p, data, len);
	return p + len;
}

/* A whole record (header + payload) in a malloc'd buffer. */
static uint8_t *encode(uint8_t type, const uint8_t *payload, size_t payload_len, size_t *out_len)
{
	uint8_t *rec = malloc(RECORD_HEADER + payload_len);
	if (!rec)
		return NULL;
	uint8_t *p = put_u32(rec, RECORD_MAGIC);
	*p++ = type;
	p = put_u32(p, (uint32_t)payload_len);
	memcpy(p + 4, payload, payload_len);
	put_u32(p, crc32(p + 4, payload_len) ^ type);
	*out_len = RECORD_HEADER + payload_len;
	return rec;
}

static uint8_t *encode_pending(const struct journal_entry *e, size_t *out_len)
{
	size_t n = FIXED_PENDING + e->sealed_access_len + e->sealed_refresh_len;
	uint8_t *payload = malloc(n);
	if (!payload)
		return NULL;
	uint8_t *p = put_u64(payload, e->seq);
	memcpy(p, e->account_id, JOURNAL_ID_LEN);
	p = put_u64(p + JOURNAL_ID_LEN, (uint64_t)e->token_version);
	p = put_u64(p, (uint64_t)e->access_expires_at_ms);
	p = put_u64(p, (uint64_t)e->refresh_expires_at_ms);
	*p++ = (uint8_t)((e->cannot_extend ? 1 : 0) | (e->sealed_refresh ? 2 : 0));
	p = put_blob(p, e->sealed_access, e->sealed_access_len);
	put_blob(p, e->sealed_refresh, e->sealed_refresh_len);
	uint8_t *rec = encode(RECORD_PENDING, payload, n, out_len);
	free(payload);
	return rec;
}

static int copy_blob(const uint8_t **p, const uint8_t *end, uint8_t **out, size_t *len)
{
	if (end - *p < 4)
		return -1;
	*len = (size_t)get_u(*p, 4);
	*p += 4;
	if ((size_t)(end - *p) < *len || !(*out = malloc(*len ? *len : 1)))
		return -1;
	memcpy(*out, *p, *len);
	*p += *len;
	return 0;
}

static int decode_pending(const uint8_t *p, size_t n, struct journal_entry *e)
{
	const uint8_t *end = p + n;
	memset(e, 0, sizeof(*e));
	if (n < FIXED_PENDING)
		return -1;
	e->seq = get_u(p, 8);
	memcpy(e->account_id, p + 8, JOURNAL_ID_LEN);
	p += 8 + JOURNAL_ID_LEN;
	e->token_version = (int64_t)get_u(p, 8);
	e->access_expires_at_ms = (int64_t)get_u(p + 8, 8);
	e->refresh_expires_at_ms = (int64_t)get_u(p + 16, 8);
	uint8_t flags = p[24];
	p += 25;
	e->cannot_extend = flags & 1;
	if (copy_blob(&p, end, &e->sealed_access, &e->sealed_access_len) < 0 ||
	    copy_blob(&p, end, &e->sealed_refresh, &e->sealed_refresh_len) < 0 || p != end) {
		journal_entry_clear(e);
		return -1;
	}
	if (!(flags & 2)) {
		free(e->sealed_refresh);
		e->sealed_refresh = NULL;
	}
	return 0;
}

void journal_entry_clear(struct journal_entry *e)
{
	if (!e)
		return;
	free(e->sealed_access);
	free(e->sealed_refresh);
	e->sealed_access = e->sealed_refresh = NULL;
	e->sealed_access_len = e->sealed_refresh_len = 0;
}

/* ---- the pending table ---- */

static struct node **slot_of(const struct journal *j, uint64_t seq)
{
	if (seq < j->base_seq || seq - j->base_seq >= j->len)
		return NULL;
	return &j->slots[seq - j->base_seq];
}

static int table_add(struct journal *j, struct node *n)
{
	uint64_t seq = n->entry.seq;
	if (j->len == 0)
		j->base_seq = seq;
	if (seq < j->base_seq)
		return -1; /* appends are in seq order */
	size_t need = (size_t)(seq - j->base_seq) + 1;
	if (need > j->cap) {
		size_t cap = j->cap ? j->cap : 64;
		while (cap < need)
			cap *= 2;
		struct node **slots = realloc(j->slots, cap * sizeof(*slots));
		if (!slots)
			return -1;
		j->slots = slots;
		j->cap = cap;
	}
	for (size_t i = j->len; i < need; i++)
		j->slots[i] = NULL;
	j->len = need > j->len ? need : j->len;
	j->slots[seq - j->base_seq] = n;
	j->pending++;
	return 0;
}

/* Drop retired slots at the front so the table stays as long as what is pending. */
static void table_trim(struct journal *j)
{
	size_t skip = 0;
	while (skip < j->len && !j->slots[skip])
		skip++;
	if (!skip)
		return;
	memmove(j->slots, j->slots + skip, (j->len - skip) * sizeof(*j->slots));
	j->len -= skip;
	j->base_seq += skip;
}

static void node_free(struct node *n)
{
	journal_entry_clear(&n->entry);
	free(n);
}

/* ---- reading at open ---- */

static void apply_record(struct journal *j, uint8_t type, const uint8_t *payload, size_t n)
{
	if (type == RECORD_DONE && n == 8) {
		struct node **slot = slot_of(j, get_u(payload, 8));
		if (slot && *slot) {
			node_free(*slot);
			*slot = NULL;
			j->pending--;
		}
		return;
	}
	struct node *node = calloc(1, sizeof(*node));
	if (!node || decode_pending(payload, n, &node->entry) < 0 || table_add(j, node) < 0) {
		if (node)
			node_free(node);
		log_warnx("journal %s: dropping an unreadable entry", j->path);
		return;
	}
	node->durable = true;
	if (node->entry.seq >= j->next_seq)
		j->next_seq = node->entry.seq + 1;
}

/* Length of the valid prefix of buf; applies every record in it. */
static size_t read_records(struct journal *j, const uint8_t *buf, size_t size)
{
	size_t off = 0;
	while (size - off >= RECORD_HEADER) {
		const uint8_t *h = buf + off;
		uint32_t len = (uint32_t)get_u(h + 5, 4);
		if (get_u(h, 4) != RECORD_MAGIC || len > PAYLOAD_MAX ||
		    size - off - RECORD_HEADER < len ||
		    (crc32(h + RECORD_HEADER, len) ^ h[4]) != (uint32_t)get_u(h + 9, 4))
			break;
		apply_record(j, h[4], h + RECORD_HEADER, len);
		off += RECORD_HEADER + len;
	}
	table_trim(j);
	return off;
}

static int load_existing(struct journal *j, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(j->fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", j->path, strerror(errno));
		return -1;
	}
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	ssize_t got = buf ? pread(j->fd, buf, (size_t)st.st_size, 0) : -1;
	if (got != st.st_size) {
		snprintf(err, errlen, "cannot read %s: %s", j->path,
		         buf ? strerror(errno) : "ENOMEM");
		free(buf);
		return -1;
	}
	size_t valid = read_records(j, buf, (size_t)st.st_size);
	free(buf);
	if (valid < (size_t)st.st_size) {
		log_warnx("journal %s: %zu torn bytes at the tail dropped", j->path,
		          (size_t)st.st_size - valid);
		if (ftruncate(j->fd, (off_t)valid) < 0)
			log_warn("journal %s: truncate", j->path);
	}
	j->size = (off_t)valid;
	if (j->pending)
		log_notice("journal %s: %zu entries to replay", j->path, j->pending);
	return 0;
}

/* ---- the sync worker ---- */

static void *sync_worker(void *arg)
{
	struct journal *j = arg;
	pthread_mutex_lock(&j->lock);
	for (;;) {
		while (!j->stop && j->sync_requested <= j->sync_done)
			pthread_cond_wait(&j->wake, &j->lock);
		if (j->sync_requested <= j->sync_done)
			break;
		off_t target = j->sync_requested;
		pthread_mutex_unlock(&j->lock);
		int rc = fdatasync(j->fd);
		int saved = errno;
		pthread_mutex_lock(&j->lock);
		j->sync_done = target;
		j->sync_errno = rc < 0 ? saved : 0;
		pthread_mutex_unlock(&j->lock);
		ssize_t w = write(j->notify_pipe[1], "s", 1);
		(void)w; /* a full pipe already has a wake-up in it */
		pthread_mutex_lock(&j->lock);
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

/* Back on the loop: tell the owners of every entry the last sync covered. */
static void on_synced(evutil_socket_t fd, short what, void *arg)
{
	struct journal *j = arg;
	char drain[64];
	while (read(fd, drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&j->lock);
	off_t done = j->sync_done;
	int sync_errno = j->sync_errno;
	pthread_mutex_unlock(&j->lock);
	if (sync_errno)
		log_err("journal %s: fdatasync: %s", j->path, strerror(sync_errno));
	for (; j->first_undurable < j->next_seq; j->first_undurable++) {
		struct node **slot = slot_of(j, j->first_undurable);
		if (!slot || !*slot || (*slot)->durable)
			continue;
		if ((*slot)->end > done)
			break;
		(*slot)->durable = true;
		(*slot)->durable_cb(j->first_undurable, sync_errno == 0, (*slot)->arg);
	}
}

/* ---- public ---- */

static int start_worker(struct journal *j, struct event_base *base)
{
	if (pipe2(j->notify_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	j->notify_ev = event_new(base, j->notify_pipe[0], EV_READ | EV_PERSIST, on_synced, j);
	if (!j->notify_ev || event_add(j->notify_ev, NULL) < 0)
		return -1;
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->wake, NULL);
	if (pthread_create(&j->worker, NULL, sync_worker, j) != 0)
		return -1;
	j->worker_started = true;
	return 0;
}

struct journal *journal_open(struct event_base *base, const char *dir, char *err, size_t errlen)
{
	struct journal *j = calloc(1, sizeof(*j));
	if (!j || asprintf(&j->path, "%s/journal", dir) < 0) {
		free(j);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	j->notify_pipe[0] = j->notify_pipe[1] = -1;
	j->next_seq = 1;
	j->fd = open(j->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", j->path, strerror(errno));
		goto fail;
	}
	if (load_existing(j, err, errlen) < 0)
		goto fail;
	j->first_undurable = j->next_seq;
	if (start_worker(j, base) < 0) {
		snprintf(err, errlen, "journal %s: cannot start the sync worker: %s", j->path,
		         strerror(errno));
		goto fail;
	}
	return j;
fail:
	journal_close(j);
	return NULL;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->worker_started) {
		pthread_mutex_lock(&j->lock);
		j->stop = true;
		pthread_cond_signal(&j->wake);
		pthread_mutex_unlock(&j->lock);
		pthread_join(j->worker, NULL);
		pthread_mutex_destroy(&j->lock);
		pthread_cond_destroy(&j->wake);
	}
	if (j->notify_ev)
		event_free(j->notify_ev);
	for (int i = 0; i < 2; i++)
		if (j->notify_pipe[i] >= 0)
			close(j->notify_pipe[i]);
	for (size_t i = 0; i < j->len; i++)
		if (j->slots[i])
			node_free(j->slots[i]);
	free(j->slots);
	if (j->fd >= 0)
		close(j->fd);
	free(j->path);
	free(j);
}

static int write_all(struct journal *j, const uint8_t *rec, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(j->fd, rec + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_warn("journal %s: write", j->path);
			/* Cut a partial record so the next one starts clean. */
			if (done && ftruncate(j->fd, j->size) < 0)
				log_warn("journal %s: truncate", j->path);
			return -1;
		}
		done += (size_t)n;
	}
	j->size += (off_t)len;
	return 0;
}

static int copy_entry(struct journal_entry *dst, const struct journal_entry *src)
{
	*dst = *src;
	dst->sealed_access = malloc(src->sealed_access_len ? src->sealed_access_len : 1);
	dst->sealed_refresh = src->sealed_refresh ? malloc(src->sealed_refresh_len + 1) : NULL;
	if (!dst->sealed_access || (src->sealed_refresh && !dst->sealed_refresh)) {
		journal_entry_clear(dst);
		return -1;
	}
	memcpy(dst->sealed_access, src->sealed_access, src->sealed_access_len);
	if (src->sealed_refresh)
		memcpy(dst->sealed_refresh, src->sealed_refresh, src->sealed_refresh_len);
	return 0;
}

int journal_append(struct journal *j, const struct journal_entry *entry, journal_durable_fn durable,
                   void *arg, uint64_t *seq)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n || copy_entry(&n->entry, entry) < 0) {
		free(n);
		return -1;
	}
	n->entry.seq = j->next_seq;
	size_t len;
	uint8_t *rec = encode_pending(&n->entry, &len);
	if (!rec || write_all(j, rec, len) < 0 || table_add(j, n) < 0) {
		free(rec);
		node_free(n);
		return -1;
	}
	free(rec);
	j->next_seq++;
	n->end = j->size;
	n->durable_cb = durable;
	n->arg = arg;
	*seq = n->entry.seq;
	pthread_mutex_lock(&j->lock);
	j->sync_requested = j->size;
	pthread_cond_signal(&j->wake);
	pthread_mutex_unlock(&j->lock);
	return 0;
}

/* Nothing pending: start the file over (a crash before this is harmless:
 * replayed entries are fenced out by their token_version). */
static void compact(struct journal *j)
{
	pthread_mutex_lock(&j->lock);
	bool idle = j->sync_requested <= j->sync_done;
	pthread_mutex_unlock(&j->lock);
	if (!idle || j->size == 0)
		return;
	if (ftruncate(j->fd, 0) < 0) {
		log_warn("journal %s: compact", j->path);
		return;
	}
	pthread_mutex_lock(&j->lock);
	j->size = j->sync_requested = j->sync_done = 0;
	pthread_mutex_unlock(&j->lock);
}

void journal_retire(struct journal *j, uint64_t seq)
{
	struct node **slot = slot_of(j, seq);
	if (!slot || !*slot)
		return;
	node_free(*slot);
	*slot = NULL;
	j->pending--;
	table_trim(j);
	if (j->pending == 0) {
		compact(j);
		return;
	}
	uint8_t payload[8];
	put_u64(payload, seq);
	size_t len;
	uint8_t *rec = encode(RECORD_DONE, payload, sizeof(payload), &len);
	if (!rec || write_all(j, rec, len) < 0)
		log_warnx("journal %s: cannot record entry %llu as done; it will be replayed "
		          "and fenced out",
		          j->path, (unsigned long long)seq);
	free(rec);
}

void journal_foreach_pending(const struct journal *j, journal_visit_fn visit, void *arg)
{
	for (size_t i = 0; i < j->len; i++)
		if (j->slots[i] && j->slots[i]->durable)
			visit(&j->slots[i]->entry, arg);
}

size_t journal_pending(const struct journal *j)
{
	return j->pending;
}

bool journal_is_pending(const struct journal *j, uint64_t seq)
{
	struct node **slot = slot_of(j, seq);
	return slot && *slot;
}
