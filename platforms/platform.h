/* platform: what tokend knows of one social platform. Each platform lives in
 * its own file (x.c, bluesky.c, ...) and is one row of the registry table in
 * registry.c; nothing outside platforms/ knows a platform by name. */
#ifndef TOKEND_PLATFORM_H
#define TOKEND_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "scheduler/policy.h"

#define PLATFORM_MAX 16

struct platform {
	const char *name;                   /* as in platform_accounts.platform */
	struct policy_params schedule;      /* defaults; leads are configurable */
	int64_t default_access_lifetime_ms; /* when the token endpoint says nothing */
};

/* The registry, in table order; a platform's index is its compact id in the
 * scheduler (uint8_t). */
size_t platform_count(void);
const struct platform *platform_at(size_t index);
/* NULL when the name is not a known platform. */
const struct platform *platform_find(const char *name);
/* -1 when unknown. */
int platform_index_of(const char *name);

#endif
