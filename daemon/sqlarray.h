/* sqlarray: build the text of a PostgreSQL array parameter ("{a,b,NULL}")
 * for statements that take many rows at once (= ANY($1), unnest($1, ...)). */
#ifndef TOKEND_SQLARRAY_H
#define TOKEND_SQLARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlarray {
	char *buf;
	size_t len, cap;
	size_t count;
	bool failed; /* out of memory: sqlarray_finish returns NULL */
};

void sqlarray_init(struct sqlarray *a);
/* One element, quoted (any text). */
void sqlarray_add(struct sqlarray *a, const char *text);
void sqlarray_add_null(struct sqlarray *a);
/* A bytea element in hex form. */
void sqlarray_add_bytea(struct sqlarray *a, const uint8_t *data, size_t len);
/* The array's text, malloc'd (caller frees), or NULL on ENOMEM. Resets a. */
char *sqlarray_finish(struct sqlarray *a);

#endif
