/* envelope: the CloudEvents 1.0 structured-JSON envelope of an outbox row,
 * and the rules that keep an invalid event off the stream. The rules are
 * those of docs/events.schema.json (tests/integration/test_events_schema.py
 * holds the two in step). Pure: no I/O, no state. */
#ifndef TOKEND_ENVELOPE_H
#define TOKEND_ENVELOPE_H

#include <stddef.h>

enum envelope_type { ENVELOPE_EXPIRING, ENVELOPE_REVOKED, ENVELOPE_RECOVERED };
#define ENVELOPE_TYPE_COUNT (ENVELOPE_RECOVERED + 1)

/* Largest data member accepted, in bytes of JSON text. */
#define ENVELOPE_DATA_MAX 8192

/* One tokend_outbox row, as text. All borrowed. */
struct envelope_row {
	const char *event_id; /* event_id: "evt_" and 32 lower-case hex digits */
	const char *type;     /* type */
	const char *subject;  /* account_id, canonical lower-case uuid */
	const char *time;     /* created_at, RFC 3339 UTC ("...Z") */
	const char *data;     /* data: JSON text of the data member */
	size_t data_len;
};

enum envelope_result { ENVELOPE_OK = 0, ENVELOPE_INVALID = -1, ENVELOPE_NOMEM = -2 };

/* The envelope of row as JSON text: compact, members in a fixed order, data
 * members in a fixed order. ENVELOPE_OK with *text (caller frees with
 * free()), *len and *type set; ENVELOPE_INVALID when the row would not make
 * a valid event (why says which rule it breaks, naming unknown members but
 * never showing their values); ENVELOPE_NOMEM on ENOMEM. */
enum envelope_result envelope_build(const struct envelope_row *row, char **text, size_t *len,
                                    enum envelope_type *type, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* 0 when text is a valid envelope (the rules envelope_build applies to a
 * row), else -1 with why set. For consumers and tests. */
int envelope_check(const char *text, size_t len, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* "token.expiring", ...; -1 from envelope_type_parse when unknown. */
const char *envelope_type_name(enum envelope_type type);
int envelope_type_parse(const char *name);

#endif
