/* secret: a plaintext secret (token, password, client secret) in a buffer
 * that is wiped before it is freed. Every module that touches plaintext
 * holds it in one of these. */
#ifndef TOKEND_SECRET_H
#define TOKEND_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A plaintext secret. Owner wipes and frees with secret_free(). data is
 * NUL-terminated one byte past len, so text secrets can be used as strings. */
struct secret {
	uint8_t *data;
	size_t len;
};

void secret_free(struct secret *s); /* OPENSSL_cleanse, then free; NULL-safe, idempotent */
/* Copy len bytes into a new secret. -1 on ENOMEM. */
int secret_set(struct secret *s, const void *data, size_t len) __attribute__((warn_unused_result));
bool secret_empty(const struct secret *s);
/* Read a secret from a file (e.g. a systemd credential), one trailing
 * newline stripped. -1 with err set (no secret in it). */
int secret_read_file(const char *path, struct secret *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
