/* faults: a small FIFO of fault rules; spent rules are dropped. */
#include <stdlib.h>
#include <string.h>

#include "tests/fake/faults.h"

struct faults {
	struct fault *v;
	size_t n, cap;
	uint32_t next_id;
};

static const char *const kind_names[FAULT_KIND_COUNT] = {
    [FAULT_500] = "500",
    [FAULT_429] = "429",
    [FAULT_DELAY] = "delay",
    [FAULT_RESET] = "reset",
    [FAULT_MALFORMED] = "malformed",
    [FAULT_OVERSIZED] = "oversized",
    [FAULT_WRONG_TYPES] = "wrong_types",
    [FAULT_DEAD] = "dead",
};

struct faults *faults_new(void)
{
	return calloc(1, sizeof(struct faults));
}

void faults_free(struct faults *f)
{
	if (!f)
		return;
	free(f->v);
	free(f);
}

void faults_clear(struct faults *f)
{
	f->n = 0;
}

uint32_t faults_add(struct faults *f, const struct fault *rule)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct fault *v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return 0;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n] = *rule;
	f->v[f->n].id = ++f->next_id;
	return f->v[f->n++].id;
}

static bool matches(const struct fault *rule, enum plat_id plat, const char *path)
{
	return (rule->plat < 0 || rule->plat == (int)plat) &&
	       (rule->endpoint[0] == '\0' || strstr(path, rule->endpoint) != NULL);
}

bool faults_take(struct faults *f, enum plat_id plat, const char *path, struct fault *out)
{
	for (size_t i = 0; i < f->n; i++) {
		if (!matches(&f->v[i], plat, path))
			continue;
		*out = f->v[i];
		if (--f->v[i].count == 0) {
			memmove(&f->v[i], &f->v[i + 1], (f->n - i - 1) * sizeof(f->v[0]));
			f->n--;
		}
		return true;
	}
	return false;
}

uint64_t faults_pending(const struct faults *f)
{
	uint64_t total = 0;

	for (size_t i = 0; i < f->n; i++)
		total += f->v[i].count;
	return total;
}

int fault_kind_parse(const char *name)
{
	for (int i = 0; i < FAULT_KIND_COUNT; i++)
		if (strcmp(kind_names[i], name) == 0)
			return i;
	return -1;
}

const char *fault_kind_name(enum fault_kind kind)
{
	return kind_names[kind];
}
