/* journal: the local, fsync'd record of every upstream token response that
 * PostgreSQL has not committed yet (spec 6.1: no rotated refresh token is
 * lost). An entry holds the new tokens already sealed (the same bytes that
 * go into platform_accounts), so the file never holds plaintext.
 *
 * One append-only file, <state_directory>/journal. Appends are written at
 * once and made durable by a worker thread's fdatasync, batched (group
 * commit): the loop never waits on the disk. An entry is retired (a DONE
 * record) once PostgreSQL committed it or proved it obsolete; entries not
 * retired are replayed at start-up and whenever the database comes back.
 * A torn record at the tail (crash mid-write) is detected by its CRC and
 * dropped; the file is compacted when nothing is pending. */
#ifndef TOKEND_JOURNAL_H
#define TOKEND_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct journal;

#define JOURNAL_ID_LEN 16

/* The new tokens of one refresh, as they will be stored. */
struct journal_entry {
	uint64_t seq; /* assigned by journal_append */
	uint8_t account_id[JOURNAL_ID_LEN];
	int64_t token_version;         /* the version the refresh started from */
	int64_t access_expires_at_ms;  /* 0 = none */
	int64_t refresh_expires_at_ms; /* 0 = keep what the row has */
	bool cannot_extend;            /* the refresh did not move the expiry */
	uint8_t *sealed_access;        /* owned by the entry */
	size_t sealed_access_len;
	uint8_t *sealed_refresh; /* NULL = keep the row's refresh token */
	size_t sealed_refresh_len;
};

/* Called from the loop once the entry is on disk (ok) or could not be made
 * durable (!ok: the disk failed; the caller must not rely on it). */
typedef void (*journal_durable_fn)(uint64_t seq, bool ok, void *arg);
typedef void (*journal_visit_fn)(const struct journal_entry *entry, void *arg);

/* Open or create dir/journal (mode 0600) and read what is pending. Borrows
 * base. NULL with err set (path and strerror) on failure. */
struct journal *journal_open(struct event_base *base, const char *dir, char *err, size_t errlen);
void journal_close(struct journal *j); /* NULL-safe; waits for the worker */

/* Append entry (copied; seq assigned and returned in *seq). durable is
 * called later from the loop. -1 on a write error (logged). */
int journal_append(struct journal *j, const struct journal_entry *entry, journal_durable_fn durable,
                   void *arg, uint64_t *seq) __attribute__((warn_unused_result));
/* PostgreSQL committed the entry (or it was obsolete): forget it. */
void journal_retire(struct journal *j, uint64_t seq);
/* Visit every pending (durable, not retired) entry in append order. */
void journal_foreach_pending(const struct journal *j, journal_visit_fn visit, void *arg);
size_t journal_pending(const struct journal *j);
bool journal_is_pending(const struct journal *j, uint64_t seq);

/* Free the buffers of an entry built by the caller or copied by the journal. */
void journal_entry_clear(struct journal_entry *entry);

#endif
