/* test_journal: entries survive a restart until retired; torn and corrupt
 * tails are dropped; durability is reported from the loop; compaction. */
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/journal.h"
#include "tests/unit/check.h"

static char dir[256];
static char path[300];

struct durable_log {
	int calls;
	uint64_t last_seq;
	bool ok;
};

static void on_durable(uint64_t seq, bool ok, void *arg)
{
	struct durable_log *l = arg;
	l->calls++;
	l->last_seq = seq;
	l->ok = ok;
}

static void make_entry(struct journal_entry *e, uint8_t tag, bool with_refresh)
{
	static uint8_t access[40], refresh[50];
	memset(e, 0, sizeof(*e));
	memset(e->account_id, tag, sizeof(e->account_id));
	memset(access, tag, sizeof(access));
	memset(refresh, (uint8_t)(tag + 1), sizeof(refresh));
	e->token_version = 7 + tag;
	e->access_expires_at_ms = 1000 * tag;
	e->refresh_expires_at_ms = with_refresh ? 2000 * tag : 0;
	e->cannot_extend = tag % 2;
	e->sealed_access = access;
	e->sealed_access_len = sizeof(access);
	e->sealed_refresh = with_refresh ? refresh : NULL;
	e->sealed_refresh_len = with_refresh ? sizeof(refresh) : 0;
}

/* Run the loop until the durable callback count reaches want. */
static void wait_durable(struct event_base *base, struct durable_log *l, int want)
{
	for (int i = 0; i < 1000 && l->calls < want; i++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(l->calls == want);
}

struct collected {
	int n;
	struct journal_entry entries[8];
};

static void collect(const struct journal_entry *e, void *arg)
{
	struct collected *c = arg;
	CHECK(c->n < 8);
	c->entries[c->n++] = *e; /* shallow: valid while the journal is open */
}

static struct journal *reopen(struct event_base *base, struct journal *j)
{
	char err[256];
	journal_close(j);
	j = journal_open(base, dir, err, sizeof(err));
	if (!j)
		fprintf(stderr, "journal_open: %s\n", err);
	CHECK(j);
	return j;
}

static void test_survives_restart_until_retired(struct event_base *base)
{
	char err[256];
	struct journal *j = journal_open(base, dir, err, sizeof(err));
	CHECK(j);
	struct durable_log l = {0};
	struct journal_entry e;
	uint64_t s1, s2, s3;
	make_entry(&e, 1, true);
	CHECK(journal_append(j, &e, on_durable, &l, &s1) == 0);
	make_entry(&e, 2, false);
	CHECK(journal_append(j, &e, on_durable, &l, &s2) == 0);
	make_entry(&e, 3, true);
	CHECK(journal_append(j, &e, on_durable, &l, &s3) == 0);
	CHECK(l.calls == 0); /* never from inside append */
	wait_durable(base, &l, 3);
	CHECK(l.ok && l.last_seq == s3);
	journal_retire(j, s2);
	CHECK(journal_pending(j) == 2);

	j = reopen(base, j);
	struct collected c = {0};
	journal_foreach_pending(j, collect, &c);
	CHECK(c.n == 2);
	CHECK(c.entries[0].seq == s1 && c.entries[1].seq == s3);
	CHECK(c.entries[0].token_version == 8 && c.entries[0].account_id[0] == 1);
	CHECK(c.entries[0].sealed_access_len == 40 && c.entries[0].sealed_access[39] == 1);
	CHECK(c.entries[0].sealed_refresh_len == 50 && c.entries[0].sealed_refresh[0] == 2);
	CHECK(c.entries[0].refresh_expires_at_ms == 2000 && c.entries[0].cannot_extend);
	CHECK(c.entries[1].access_expires_at_ms == 3000 && c.entries[1].cannot_extend);

	/* New appends continue after the highest seq. */
	struct durable_log l2 = {0};
	uint64_t s4;
	make_entry(&e, 4, false);
	CHECK(journal_append(j, &e, on_durable, &l2, &s4) == 0);
	CHECK(s4 > s3);
	wait_durable(base, &l2, 1);
	struct collected c2 = {0};
	journal_foreach_pending(j, collect, &c2);
	CHECK(c2.n == 3 && c2.entries[2].sealed_refresh == NULL);

	/* Retiring everything compacts the file. */
	journal_retire(j, s1);
	journal_retire(j, s3);
	journal_retire(j, s4);
	CHECK(journal_pending(j) == 0);
	struct stat st;
	CHECK(stat(path, &st) == 0 && st.st_size == 0);
	CHECK((st.st_mode & 077) == 0);
	j = reopen(base, j);
	CHECK(journal_pending(j) == 0);
	journal_close(j);
}

static void append_two(struct event_base *base)
{
	char err[256];
	struct journal *j = journal_open(base, dir, err, sizeof(err));
	CHECK(j);
	struct durable_log l = {0};
	struct journal_entry e;
	uint64_t seq;
	make_entry(&e, 5, true);
	CHECK(journal_append(j, &e, on_durable, &l, &seq) == 0);
	make_entry(&e, 6, true);
	CHECK(journal_append(j, &e, on_durable, &l, &seq) == 0);
	wait_durable(base, &l, 2);
	journal_close(j);
}

static void test_torn_tail_is_dropped(struct event_base *base)
{
	unlink(path);
	append_two(base);
	struct stat st;
	CHECK(stat(path, &st) == 0);
	CHECK(truncate(path, st.st_size - 7) == 0); /* crash in the middle of the 2nd record */
	char err[256];
	struct journal *j = journal_open(base, dir, err, sizeof(err));
	CHECK(j);
	struct collected c = {0};
	journal_foreach_pending(j, collect, &c);
	CHECK(c.n == 1 && c.entries[0].account_id[0] == 5);
	journal_close(j);
}

static void test_corrupt_record_stops_the_read(struct event_base *base)
{
	unlink(path);
	append_two(base);
	struct stat st;
	CHECK(stat(path, &st) == 0);
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, "X", 1, st.st_size - 3) == 1); /* flip a byte of the 2nd record */
	close(fd);
	char err[256];
	struct journal *j = journal_open(base, dir, err, sizeof(err));
	CHECK(j);
	CHECK(journal_pending(j) == 1);
	journal_close(j);
}

static void test_unwritable_directory(struct event_base *base)
{
	char err[256];
	CHECK(journal_open(base, "/nonexistent/tokend", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "/nonexistent/tokend/journal") != NULL);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/test_journal.XXXXXX", tmp ? tmp : "/tmp");
	CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal", dir);
	struct event_base *base = event_base_new();
	test_survives_restart_until_retired(base);
	test_torn_tail_is_dropped(base);
	test_corrupt_record_stops_the_read(base);
	test_unwritable_directory(base);
	unlink(path);
	rmdir(dir);
	event_base_free(base);
	printf("test_journal: ok\n");
	return 0;
}
