/* codec: the digit values of hex and base64 text, for the parsers that
 * decode them (keyring keys, JWT payloads, URLs, uuids). */
#ifndef TOKEND_CODEC_H
#define TOKEND_CODEC_H

#include <stdbool.h>

/* 0..15 for a hex digit (either case), -1 otherwise. */
int codec_hex_value(char c);
/* 0..63 for a base64 character: the standard alphabet ('+', '/'), or with
 * url the URL-safe one ('-', '_') as well. -1 otherwise. */
int codec_base64_value(unsigned char c, bool url);

#endif
