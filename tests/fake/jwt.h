/* jwt: HS256 JSON Web Tokens (RFC 7519), enough for the fake Bluesky PDS. */
#ifndef FAKE_JWT_H
#define FAKE_JWT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define JWT_KEY_LEN 32

/* Writes base64url(header).base64url(payload).base64url(HMAC-SHA256) into out.
 * header and payload are JSON texts. Returns the length, or -1 when out is
 * too small. */
int jwt_sign(const unsigned char key[JWT_KEY_LEN], const char *header, const char *payload,
             char *out, size_t size) __attribute__((warn_unused_result));
/* True when token has the shape of a JWT: three base64url segments. */
bool jwt_looks_like(const char *token);
/* The payload of token when its signature verifies under key, else NULL.
 * Caller releases it with json_decref(). */
json_t *jwt_open(const unsigned char key[JWT_KEY_LEN], const char *token);

#endif
