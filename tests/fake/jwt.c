/* jwt: HS256 JSON Web Tokens: sign, recognise, verify and open. */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tests/fake/codec.h"
#include "tests/fake/jwt.h"

#define JWT_MAX 4096

static bool mac(const unsigned char key[JWT_KEY_LEN], const char *data, size_t n,
                unsigned char md[EVP_MAX_MD_SIZE], unsigned *mdlen)
{
	return HMAC(EVP_sha256(), key, JWT_KEY_LEN, (const unsigned char *)data, n, md, mdlen) !=
	       NULL;
}

int jwt_sign(const unsigned char key[JWT_KEY_LEN], const char *header, const char *payload,
             char *out, size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen;
	int a, b, s;

	a = codec_b64_encode(header, strlen(header), true, out, size);
	if (a < 0 || (size_t)a + 2 > size)
		return -1;
	out[a] = '.';
	b = codec_b64_encode(payload, strlen(payload), true, out + a + 1, size - (size_t)a - 1);
	if (b < 0 || (size_t)(a + b) + 3 > size)
		return -1;
	if (!mac(key, out, (size_t)(a + 1 + b), md, &mdlen))
		return -1;
	out[a + 1 + b] = '.';
	s = codec_b64_encode(md, mdlen, true, out + a + b + 2, size - (size_t)(a + b) - 2);
	return s < 0 ? -1 : a + b + 2 + s;
}

static bool b64url_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '_';
}

bool jwt_looks_like(const char *token)
{
	int dots = 0;
	size_t segment = 0;

	for (const char *p = token; *p; p++) {
		if (*p == '.') {
			if (segment == 0)
				return false;
			dots++;
			segment = 0;
		} else if (b64url_char(*p)) {
			segment++;
		} else {
			return false;
		}
	}
	return dots == 2 && segment > 0;
}

json_t *jwt_open(const unsigned char key[JWT_KEY_LEN], const char *token)
{
	unsigned char md[EVP_MAX_MD_SIZE], given[EVP_MAX_MD_SIZE];
	unsigned char payload[JWT_MAX];
	unsigned mdlen;
	const char *dot1, *dot2;
	int n, plen;

	if (!jwt_looks_like(token) || strlen(token) >= JWT_MAX)
		return NULL;
	dot1 = strchr(token, '.');
	dot2 = strchr(dot1 + 1, '.');
	if (!mac(key, token, (size_t)(dot2 - token), md, &mdlen))
		return NULL;
	n = codec_b64_decode(dot2 + 1, strlen(dot2 + 1), given, sizeof(given));
	if (n != (int)mdlen || CRYPTO_memcmp(md, given, mdlen) != 0)
		return NULL;
	plen = codec_b64_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, sizeof(payload));
	if (plen < 0)
		return NULL;
	return json_loadb((const char *)payload, (size_t)plen, JSON_REJECT_DUPLICATES, NULL);
}
