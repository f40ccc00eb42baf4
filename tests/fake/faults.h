/* faults: the queue of injected faults. A fault rule applies to the next
 * `count` requests of one platform (or all) whose path contains an
 * optional endpoint substring; the oldest matching rule is used first. */
#ifndef FAKE_FAULTS_H
#define FAKE_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/fake/fake.h"

enum fault_kind {
	FAULT_500,
	FAULT_429,
	FAULT_DELAY,
	FAULT_RESET,
	FAULT_MALFORMED,
	FAULT_OVERSIZED,
	FAULT_WRONG_TYPES,
	FAULT_DEAD,
	FAULT_KIND_COUNT
};

struct fault {
	enum fault_kind kind;
	int plat;           /* enum plat_id, or -1 for every platform */
	char endpoint[128]; /* substring of the request path; empty = any */
	uint32_t count;     /* requests still to hit */
	int retry_after;    /* seconds, 429 */
	int delay_ms;       /* delay */
	int code;           /* Graph rate-limit code for 429: 4, 17, 613 */
	int status;         /* Graph rate-limit HTTP status for 429 (Meta sends 400) */
	bool commit;        /* reset/malformed/oversized/wrong_types: still apply the refresh */
	uint32_t id;
};

struct faults *faults_new(void);
void faults_free(struct faults *f);
void faults_clear(struct faults *f);
/* Queues a copy of rule; returns its id, or 0 on allocation failure. */
uint32_t faults_add(struct faults *f, const struct fault *rule);
/* Takes one hit of the oldest rule matching plat and path into *out. */
bool faults_take(struct faults *f, enum plat_id plat, const char *path, struct fault *out);
/* Hits still queued, over all rules. */
uint64_t faults_pending(const struct faults *f);
/* "500", "429", "delay", ... -> kind; -1 when unknown. */
int fault_kind_parse(const char *name);
const char *fault_kind_name(enum fault_kind kind);

#endif
