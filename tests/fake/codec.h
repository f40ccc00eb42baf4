/* codec: base64 (RFC 4648, standard and URL-safe alphabets) and base32 text
 * for the fake platform server. */
#ifndef FAKE_CODEC_H
#define FAKE_CODEC_H

#include <stdbool.h>
#include <stddef.h>

/* Encodes n bytes into out (NUL-terminated); the URL alphabet is written
 * without padding. Returns the length written, or -1 when out is too small. */
int codec_b64_encode(const void *in, size_t n, bool url, char *out, size_t size)
    __attribute__((warn_unused_result));
/* Decodes n characters of either alphabet, padding optional. Returns the byte
 * count, or -1 on a character outside the alphabet or when out is too small. */
int codec_b64_decode(const char *in, size_t n, unsigned char *out, size_t size)
    __attribute__((warn_unused_result));
/* Writes nchars lowercase base32 characters (a-z2-7) drawn from the bits of
 * in, then a NUL; in must hold at least nchars * 5 / 8 + 1 bytes. */
void codec_base32(const unsigned char *in, size_t nchars, char *out);

#endif
