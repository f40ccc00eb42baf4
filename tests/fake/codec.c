/* codec: base64 and base32 text encodings (RFC 4648). */
#include <stdint.h>

#include "tests/fake/codec.h"

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int codec_b64_encode(const void *in, size_t n, bool url, char *out, size_t size)
{
	const unsigned char *p = in;
	const char *alphabet = url ? b64_url : b64_std;
	size_t len = url ? (n * 4 + 2) / 3 : (n + 2) / 3 * 4;
	size_t o = 0;

	if (len + 1 > size)
		return -1;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = n - i;
		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		if (left > 1)
			out[o++] = alphabet[v >> 6 & 63];
		else if (!url)
			out[o++] = '=';
		if (left > 2)
			out[o++] = alphabet[v & 63];
		else if (!url)
			out[o++] = '=';
	}
	out[o] = '\0';
	return (int)o;
}

static int b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

int codec_b64_decode(const char *in, size_t n, unsigned char *out, size_t size)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	while (n > 0 && in[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(in[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == size)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (int)o;
}

void codec_base32(const unsigned char *in, size_t nchars, char *out)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

	for (size_t i = 0; i < nchars; i++) {
		size_t bit = i * 5;
		unsigned v = (unsigned)in[bit / 8] << 8 | in[bit / 8 + 1];
		out[i] = alphabet[v >> (11 - bit % 8) & 31];
	}
	out[nchars] = '\0';
}
