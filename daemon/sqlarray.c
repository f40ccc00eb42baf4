/* sqlarray: PostgreSQL array literals. */
#include "daemon/sqlarray.h"

#include <stdlib.h>
#include <string.h>

void sqlarray_init(struct sqlarray *a)
{
	*a = (struct sqlarray){0};
}

static bool reserve(struct sqlarray *a, size_t more)
{
	if (a->failed)
		return false;
	if (a->len + more + 3 <= a->cap) /* room for the closing "}" and NUL */
		return true;
	size_t cap = a->cap ? a->cap : 256;
	while (cap < a->len + more + 3)
		cap *= 2;
	char *buf = realloc(a->buf, cap);
	if (!buf) {
		a->failed = true;
		return false;
	}
	a->buf = buf;
	a->cap = cap;
	return true;
}

static void put(struct sqlarray *a, const char *s, size_t n)
{
	memcpy(a->buf + a->len, s, n);
	a->len += n;
}

static bool begin_element(struct sqlarray *a, size_t size)
{
	if (!reserve(a, size + 1))
		return false;
	put(a, a->count++ ? "," : "{", 1);
	return true;
}

void sqlarray_add(struct sqlarray *a, const char *text)
{
	size_t n = strlen(text);
	if (!begin_element(a, 2 * n + 2))
		return;
	put(a, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		if (text[i] == '"' || text[i] == '\\')
			put(a, "\\", 1);
		put(a, text + i, 1);
	}
	put(a, "\"", 1);
}

void sqlarray_add_null(struct sqlarray *a)
{
	if (begin_element(a, 4))
		put(a, "NULL", 4);
}

void sqlarray_add_bytea(struct sqlarray *a, const uint8_t *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	if (!begin_element(a, 2 * len + 6))
		return;
	put(a, "\"\\\\x", 4); /* the element's text is \x...: its backslash escaped */
	for (size_t i = 0; i < len; i++) {
		char pair[2] = {hex[data[i] >> 4], hex[data[i] & 15]};
		put(a, pair, 2);
	}
	put(a, "\"", 1);
}

char *sqlarray_finish(struct sqlarray *a)
{
	if (!a->failed && !a->count && reserve(a, 1))
		put(a, "{", 1);
	if (a->failed || !reserve(a, 1)) {
		free(a->buf);
		sqlarray_init(a);
		return NULL;
	}
	put(a, "}", 1);
	a->buf[a->len] = '\0';
	char *text = a->buf;
	sqlarray_init(a);
	return text;
}
