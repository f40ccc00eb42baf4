/* libFuzzer target for daemon/seal.c: the parsers of untrusted bytes.
 * The first input byte picks what the rest feeds:
 *   0 mod 3: byte 1 picks the column, the rest is a sealed value opened with
 *            a fixed keyring (keys 1 and 258, the docs' test vector key);
 *   1 mod 3: keyring text for keyring_parse, then a round trip with the result;
 *   2 mod 3: a uuid for seal_parse_uuid / seal_format_uuid.
 * Seeds: tests/fuzz/corpus/fuzz_seal/. */

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixed_keyring[] = "1 ERERERERERERERERERERERERERERERERERERERERERE=\n"
                                    "258 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= primary\n";

/* The docs' test vector account, 123e4567-e89b-12d3-a456-426614174000. */
static const uint8_t fixed_account[SEAL_ACCOUNT_ID_LEN] = {
    0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00,
};

static struct keyring *fixed(void)
{
	static struct keyring *kr;
	char why[256];
	if (!kr &&
	    keyring_parse(fixed_keyring, sizeof(fixed_keyring) - 1, &kr, why, sizeof(why)) != 0) {
		fprintf(stderr, "fixed keyring: %s\n", why);
		abort();
	}
	return kr;
}

/* Seal then open under kr: must give the plaintext back. */
static void round_trip(const struct keyring *kr, enum seal_column column, const uint8_t *plain,
                       size_t len)
{
	uint8_t *sealed = NULL;
	size_t sealed_len = 0;
	struct secret back = {0};
	char why[256];
	uint32_t id = 0;
	if (seal_value(kr, fixed_account, column, plain, len, &sealed, &sealed_len) != 0)
		abort();
	if (!seal_key_id(sealed, sealed_len, &id) || id != keyring_primary_id(kr))
		abort();
	if (seal_open(kr, fixed_account, column, sealed, sealed_len, &back, why, sizeof(why)) != 0)
		abort();
	if (back.len != len || (len && memcmp(back.data, plain, len) != 0))
		abort();
	secret_free(&back);
	free(sealed);
}

static void fuzz_open(const uint8_t *data, size_t size)
{
	struct secret plain = {0};
	char why[256];
	if (size < 1)
		return;
	enum seal_column column = (enum seal_column)(data[0] % 3 + 1);
	if (seal_open(fixed(), fixed_account, column, data + 1, size - 1, &plain, why,
	              sizeof(why)) == 0) {
		round_trip(fixed(), column, plain.data, plain.len);
		secret_free(&plain);
	} else if (plain.data || why[0] == '\0') {
		abort();
	}
}

static void fuzz_keyring(const uint8_t *data, size_t size)
{
	struct keyring *kr = NULL;
	char why[256];
	if (keyring_parse((const char *)data, size, &kr, why, sizeof(why)) != 0) {
		if (kr || why[0] == '\0')
			abort();
		return;
	}
	if (keyring_size(kr) == 0 || keyring_primary_id(kr) == 0)
		abort();
	round_trip(kr, SEAL_APP_PASSWORD, data, size < 64 ? size : 64);
	keyring_free(kr);
}

static void fuzz_uuid(const uint8_t *data, size_t size)
{
	char text[40], back[37];
	uint8_t id[SEAL_ACCOUNT_ID_LEN];
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	memcpy(text, data, n);
	text[n] = '\0';
	if (!seal_parse_uuid(text, id))
		return;
	seal_format_uuid(id, back);
	for (size_t i = 0; i < 36; i++)
		if (tolower((unsigned char)text[i]) != back[i])
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_open(data + 1, size - 1);
		break;
	case 1:
		fuzz_keyring(data + 1, size - 1);
		break;
	default:
		fuzz_uuid(data + 1, size - 1);
		break;
	}
	return 0;
}
