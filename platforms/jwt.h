/* jwt: the exp claim of a JSON Web Token, read without checking the
 * signature (the issuer checks it; tokend only schedules by it). Private to
 * platforms/. */
#ifndef TOKEND_JWT_H
#define TOKEND_JWT_H

#include <stddef.h>
#include <stdint.h>

/* token (len bytes, compact form header.payload.signature, base64url with or
 * without padding): *exp_s = the exp claim in Unix seconds, 0 when the
 * payload has none. -1 with err (our words, nothing of the token) when token
 * is not a JWT, the payload is not a JSON object or exp is not a positive
 * NumericDate. */
int jwt_exp(const char *token, size_t len, int64_t *exp_s, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
