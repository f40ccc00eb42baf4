/* jwt: a small, tolerant reader of a JWT's exp claim. */
#include "platforms/jwt.h"

#include "common/codec.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXP_MAX 1e12 /* year ~33658: past it a NumericDate is garbage */

/* Decode base64url, padding optional, into a new buffer (caller frees).
 * NULL when s is not base64url or on ENOMEM. */
static unsigned char *b64url_decode(const char *s, size_t len, size_t *out_len)
{
	while (len && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return NULL;
	unsigned char *out = malloc(len * 3 / 4 + 1);
	unsigned acc = 0, bits = 0;
	size_t n = 0;
	for (size_t i = 0; out && i < len; i++) {
		int v = codec_base64_value((unsigned char)s[i], true);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = ((acc << 6) | (unsigned)v) & 0xffffu;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	*out_len = n;
	return out;
}

static int fail(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return -1;
}

static int read_exp(json_t *claims, int64_t *exp_s, char *err, size_t errlen)
{
	if (!json_is_object(claims))
		return fail(err, errlen, "JWT payload is not a JSON object");
	json_t *exp = json_object_get(claims, "exp");
	if (!exp || json_is_null(exp)) {
		*exp_s = 0;
		return 0;
	}
	double value = json_is_number(exp) ? json_number_value(exp) : -1;
	if (!(value >= 1 && value < EXP_MAX))
		return fail(err, errlen, "JWT exp is not a positive NumericDate");
	*exp_s = (int64_t)value;
	return 0;
}

int jwt_exp(const char *token, size_t len, int64_t *exp_s, char *err, size_t errlen)
{
	const char *end = token + len;
	const char *dot1 = memchr(token, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
	if (!dot2 || dot1 == token || dot2 == dot1 + 1 ||
	    memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
		return fail(err, errlen, "not a JWT (header.payload.signature)");
	size_t payload_len = 0;
	unsigned char *payload = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &payload_len);
	if (!payload)
		return fail(err, errlen, "JWT payload is not base64url");
	json_t *claims =
	    json_loadb((const char *)payload, payload_len, JSON_REJECT_DUPLICATES, NULL);
	free(payload);
	int rc = read_exp(claims, exp_s, err, errlen);
	json_decref(claims);
	return rc;
}
