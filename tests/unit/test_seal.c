/* Unit tests for daemon/seal.c: the sealed byte format (pinned by a test
 * vector shared with docs/sealed-format.md and by re-deriving it with EVP
 * here), tamper and binding failures, rotation, keyring parsing and loading. */
#include "daemon/seal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/check.h"
#include <openssl/evp.h>

#define AUTH_FAILED "authentication failed (wrong account, column or key, or tampered)"

/* The test vector of docs/sealed-format.md: key id 258, key bytes 00..1f,
 * nonce a0..ab, refresh_token of account 123e4567-e89b-12d3-a456-426614174000. */
static const char vector_keyring[] = "258 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= primary\n";
static const char vector_account[] = "123e4567-e89b-12d3-a456-426614174000";
static const char vector_plain[] = "1//0gExampleRefreshToken";
static const char vector_hex[] = "0100000102a0a1a2a3a4a5a6a7a8a9aaabd737531d228e7ade0f15ebb6551f"
                                 "a6ac15df3144fddc2702aa2a7a7ed76b3cb9b83e890e3b07d391";

static const uint8_t account_a[SEAL_ACCOUNT_ID_LEN] = {1, 2,  3,  4,  5,  6,  7,  8,
                                                       9, 10, 11, 12, 13, 14, 15, 16};
static char err[512];

static size_t hex_decode(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;
	CHECK(n <= cap);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		CHECK(sscanf(hex + 2 * i, "%2x", &v) == 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* Append "<id> <base64 key>[ primary]\n" to buf. */
static void add_key_line(char *buf, size_t cap, uint32_t id, uint8_t fill, int primary)
{
	uint8_t key[32];
	unsigned char b64[64];
	memset(key, fill, sizeof(key));
	EVP_EncodeBlock(b64, key, sizeof(key));
	size_t used = strlen(buf);
	snprintf(buf + used, cap - used, "%u %s%s\n", (unsigned)id, (char *)b64,
	         primary ? " primary" : "");
}

static struct keyring *parse_ok(const char *text)
{
	struct keyring *kr = NULL;
	if (keyring_parse(text, strlen(text), &kr, err, sizeof(err)) != 0) {
		fprintf(stderr, "keyring_parse: %s\n", err);
		CHECK(!"keyring parses");
	}
	return kr;
}

/* Seal with EVP directly, following docs/sealed-format.md; returns the length. */
static size_t evp_seal(const uint8_t key[32], uint32_t key_id, const uint8_t nonce[12],
                       const uint8_t account[16], uint8_t column, const char *plain, uint8_t *out)
{
	uint8_t aad[22];
	int n, plain_len = (int)strlen(plain);
	out[0] = 0x01;
	out[1] = (uint8_t)(key_id >> 24);
	out[2] = (uint8_t)(key_id >> 16);
	out[3] = (uint8_t)(key_id >> 8);
	out[4] = (uint8_t)key_id;
	memcpy(out + 5, nonce, 12);
	memcpy(aad, out, 5);
	memcpy(aad + 5, account, 16);
	aad[21] = column;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	CHECK(ctx);
	CHECK(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) == 1);
	CHECK(EVP_EncryptUpdate(ctx, NULL, &n, aad, sizeof(aad)) == 1);
	CHECK(EVP_EncryptUpdate(ctx, out + 17, &n, (const uint8_t *)plain, plain_len) == 1);
	CHECK(EVP_EncryptFinal_ex(ctx, out + 17 + n, &n) == 1);
	CHECK(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + 17 + plain_len) == 1);
	EVP_CIPHER_CTX_free(ctx);
	return 17 + (size_t)plain_len + 16;
}

/* Open with EVP directly; returns the plaintext length or -1. */
static int evp_open(const uint8_t key[32], const uint8_t account[16], uint8_t column,
                    const uint8_t *sealed, size_t len, uint8_t *plain)
{
	uint8_t aad[22], tag[16];
	int n, ok;
	memcpy(aad, sealed, 5);
	memcpy(aad + 5, account, 16);
	aad[21] = column;
	memcpy(tag, sealed + len - 16, 16);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	CHECK(ctx);
	CHECK(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, sealed + 5) == 1);
	CHECK(EVP_DecryptUpdate(ctx, NULL, &n, aad, sizeof(aad)) == 1);
	CHECK(EVP_DecryptUpdate(ctx, plain, &n, sealed + 17, (int)(len - 33)) == 1);
	CHECK(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1);
	ok = EVP_DecryptFinal_ex(ctx, plain + n, &n);
	EVP_CIPHER_CTX_free(ctx);
	return ok == 1 ? (int)(len - 33) : -1;
}

static void seal_ok(const struct keyring *kr, const uint8_t *account, enum seal_column column,
                    const char *plain, uint8_t **out, size_t *out_len)
{
	CHECK(seal_value(kr, account, column, (const uint8_t *)plain, strlen(plain), out,
	                 out_len) == 0);
}

/* Open must fail with exactly the given message and leave no plaintext. */
static void open_fails(const struct keyring *kr, const uint8_t *account, int column,
                       const uint8_t *sealed, size_t len, const char *want)
{
	struct secret s = {(uint8_t *)"x", 1};
	err[0] = '\0';
	CHECK(seal_open(kr, account, (enum seal_column)column, sealed, len, &s, err, sizeof(err)) ==
	      -1);
	CHECK(s.data == NULL && s.len == 0);
	if (want)
		CHECK_STR(err, want);
	CHECK(err[0] != '\0');
}

static void open_equals(const struct keyring *kr, const uint8_t *account, enum seal_column column,
                        const uint8_t *sealed, size_t len, const char *want)
{
	struct secret s = {0};
	if (seal_open(kr, account, column, sealed, len, &s, err, sizeof(err)) != 0) {
		fprintf(stderr, "seal_open: %s\n", err);
		CHECK(!"seal_open succeeds");
	}
	CHECK(s.len == strlen(want) && memcmp(s.data, want, s.len) == 0);
	secret_free(&s);
	CHECK(s.data == NULL && s.len == 0);
}

static void test_vector(void)
{
	uint8_t expect[128], built[128], key[32], nonce[12], account[16];
	size_t len = hex_decode(vector_hex, expect, sizeof(expect));
	struct keyring *kr = parse_ok(vector_keyring);
	uint32_t id = 0;

	CHECK(seal_parse_uuid(vector_account, account));
	open_equals(kr, account, SEAL_REFRESH_TOKEN, expect, len, vector_plain);
	CHECK(seal_key_id(expect, len, &id) && id == 258);

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 12; i++)
		nonce[i] = (uint8_t)(0xa0 + i);
	CHECK(evp_seal(key, 258, nonce, account, SEAL_REFRESH_TOKEN, vector_plain, built) == len);
	CHECK(memcmp(built, expect, len) == 0);
	keyring_free(kr);
}

/* What seal_value writes follows the documented layout and AAD. */
static void test_format(void)
{
	uint8_t key[32], plain[64], *a = NULL, *b = NULL;
	size_t alen, blen;
	struct keyring *kr = parse_ok(vector_keyring);
	const char *token = "ya29.a0AfH6SMBexample";

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	seal_ok(kr, account_a, SEAL_ACCESS_TOKEN, token, &a, &alen);
	seal_ok(kr, account_a, SEAL_ACCESS_TOKEN, token, &b, &blen);
	CHECK(alen == 33 + strlen(token) && blen == alen);
	CHECK(a[0] == 0x01 && a[1] == 0 && a[2] == 0 && a[3] == 1 && a[4] == 2);
	CHECK(memcmp(a + 5, b + 5, 12) != 0); /* a fresh nonce per seal */
	CHECK(evp_open(key, account_a, SEAL_ACCESS_TOKEN, a, alen, plain) == (int)strlen(token));
	CHECK(memcmp(plain, token, strlen(token)) == 0);
	CHECK(evp_open(key, account_a, SEAL_REFRESH_TOKEN, a, alen, plain) == -1);
	free(a);
	free(b);
	keyring_free(kr);
}

static void test_round_trip(void)
{
	static const size_t lengths[] = {0, 1, 15, 16, 17, 255, 4096};
	struct keyring *kr = parse_ok(vector_keyring);
	char plain[4097];
	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		for (int c = SEAL_ACCESS_TOKEN; c <= SEAL_APP_PASSWORD; c++) {
			uint8_t *sealed;
			size_t len;
			memset(plain, 'a' + (int)i, lengths[i]);
			plain[lengths[i]] = '\0';
			seal_ok(kr, account_a, (enum seal_column)c, plain, &sealed, &len);
			CHECK(len == 33 + lengths[i]);
			open_equals(kr, account_a, (enum seal_column)c, sealed, len, plain);
			free(sealed);
		}
	}
	keyring_free(kr);
}

static void test_tamper(void)
{
	struct keyring *kr = parse_ok(vector_keyring);
	uint8_t *sealed, copy[128];
	size_t len;
	seal_ok(kr, account_a, SEAL_ACCESS_TOKEN, "tamper-me", &sealed, &len);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(copy, sealed, len);
			copy[i] ^= (uint8_t)(1u << bit);
			open_fails(kr, account_a, SEAL_ACCESS_TOKEN, copy, len,
			           i == 0   ? "malformed sealed value"
			           : i >= 5 ? AUTH_FAILED
			                    : NULL);
		}
	}
	for (size_t cut = 0; cut < len; cut++)
		open_fails(kr, account_a, SEAL_ACCESS_TOKEN, sealed, cut,
		           cut < 33 ? "malformed sealed value" : AUTH_FAILED);
	memcpy(copy, sealed, len);
	copy[len] = 0;
	open_fails(kr, account_a, SEAL_ACCESS_TOKEN, copy, len + 1, AUTH_FAILED);
	open_fails(kr, account_a, SEAL_ACCESS_TOKEN, NULL, 0, "malformed sealed value");
	free(sealed);
	keyring_free(kr);
}

static void test_binding(void)
{
	struct keyring *kr = parse_ok(vector_keyring);
	uint8_t *sealed, other[SEAL_ACCOUNT_ID_LEN];
	size_t len;
	seal_ok(kr, account_a, SEAL_REFRESH_TOKEN, "bound", &sealed, &len);
	for (size_t i = 0; i < SEAL_ACCOUNT_ID_LEN; i++) {
		memcpy(other, account_a, sizeof(other));
		other[i] ^= 0x40;
		open_fails(kr, other, SEAL_REFRESH_TOKEN, sealed, len, AUTH_FAILED);
	}
	open_fails(kr, account_a, SEAL_ACCESS_TOKEN, sealed, len, AUTH_FAILED);
	open_fails(kr, account_a, SEAL_APP_PASSWORD, sealed, len, AUTH_FAILED);
	open_fails(kr, account_a, 0, sealed, len, "invalid column 0");
	open_fails(kr, account_a, 4, sealed, len, "invalid column 4");
	open_equals(kr, account_a, SEAL_REFRESH_TOKEN, sealed, len, "bound");
	free(sealed);
	keyring_free(kr);
}

static void test_rotation(void)
{
	char old_text[256] = "", new_text[256] = "", two_only[256] = "";
	uint8_t *old_sealed, *new_sealed;
	size_t old_len, new_len;
	uint32_t id;

	add_key_line(old_text, sizeof(old_text), 1, 0x11, 1);
	add_key_line(new_text, sizeof(new_text), 1, 0x11, 0);
	add_key_line(new_text, sizeof(new_text), 2, 0x22, 1);
	add_key_line(two_only, sizeof(two_only), 2, 0x22, 1);
	struct keyring *kr1 = parse_ok(old_text), *kr2 = parse_ok(new_text);
	struct keyring *kr_two = parse_ok(two_only);
	CHECK(keyring_primary_id(kr1) == 1 && keyring_size(kr1) == 1);
	CHECK(keyring_primary_id(kr2) == 2 && keyring_size(kr2) == 2);

	seal_ok(kr1, account_a, SEAL_ACCESS_TOKEN, "old", &old_sealed, &old_len);
	CHECK(seal_key_id(old_sealed, old_len, &id) && id == 1);
	open_equals(kr2, account_a, SEAL_ACCESS_TOKEN, old_sealed, old_len, "old");
	seal_ok(kr2, account_a, SEAL_ACCESS_TOKEN, "new", &new_sealed, &new_len);
	CHECK(seal_key_id(new_sealed, new_len, &id) && id == 2);
	open_equals(kr2, account_a, SEAL_ACCESS_TOKEN, new_sealed, new_len, "new");
	open_fails(kr1, account_a, SEAL_ACCESS_TOKEN, new_sealed, new_len, "unknown key id 2");
	open_fails(kr_two, account_a, SEAL_ACCESS_TOKEN, old_sealed, old_len, "unknown key id 1");

	free(old_sealed);
	free(new_sealed);
	keyring_free(kr1);
	keyring_free(kr2);
	keyring_free(kr_two);
}

static void test_keyring_accepts(void)
{
	const char *text = "# tokend keyring\r\n"
	                   "\n"
	                   "   \t\n"
	                   "7\tAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n"
	                   "  4294967295 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= primary"
	                   " # since 2025-01\n"
	                   "3 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=#no newline";
	struct keyring *kr = parse_ok(text);
	CHECK(keyring_size(kr) == 3);
	CHECK(keyring_primary_id(kr) == 4294967295u);
	keyring_free(kr);
	keyring_free(NULL);
}

struct parse_case {
	const char *text;
	const char *want;
};

static void test_keyring_errors(void)
{
#define K "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	static const struct parse_case cases[] = {
	    {"1 " K " primary\n2 AAEC!wQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
	     "line 2: key is not valid base64"},
	    {"1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n", "line 1: key is not valid base64"},
	    {"1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\n", "line 1: key is not valid base64"},
	    {"1 AAECAwQFBgcICQoLDA0ODw== primary\n", "line 1: key is 16 bytes, must be 32"},
	    {"# keys\n\n1 " K K " primary\n", "line 3: key is not valid base64"},
	    {"1 " K " primary\n\n1 " K "\n", "line 3: duplicate key id 1 (also on line 1)"},
	    {"1 " K "\n2 " K "\n", "no key is marked primary (mark exactly one line 'primary')"},
	    {"1 " K " primary\n2 " K " primary\n",
	     "line 2: second primary key (line 1 is primary already)"},
	    {"hello world, this is not a keyring\n",
	     "line 1: expected '<key id> <base64 key> [primary]'"},
	    {"1 " K " primary\n1\n", "line 2: expected '<key id> <base64 key> [primary]'"},
	    {"x " K " primary\n", "line 1: key id must be a decimal number from 1 to 4294967295"},
	    {"0 " K " primary\n", "line 1: key id must be a decimal number from 1 to 4294967295"},
	    {"4294967296 " K " primary\n",
	     "line 1: key id must be a decimal number from 1 to 4294967295"},
	    {"-1 " K " primary\n", "line 1: key id must be a decimal number from 1 to 4294967295"},
	    {"1 " K " primry\n", "line 1: the only word allowed after the key is 'primary'"},
	    {"", "no keys (expected lines '<key id> <base64 key> [primary]')"},
	    {"# only a comment\n", "no keys (expected lines '<key id> <base64 key> [primary]')"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct keyring *kr = (struct keyring *)1;
		err[0] = '\0';
		CHECK(keyring_parse(cases[i].text, strlen(cases[i].text), &kr, err, sizeof(err)) ==
		      -1);
		CHECK(kr == NULL);
		CHECK_STR(err, cases[i].want);
		CHECK(strstr(err, "AAEC") == NULL); /* never echo key material */
	}
	/* A NUL inside the text is just a bad byte, and a tiny err buffer is fine. */
	struct keyring *kr = NULL;
	char tiny[8];
	CHECK(keyring_parse("1 \0 primary", 11, &kr, tiny, sizeof(tiny)) == -1);
	CHECK(strcmp(tiny, "line 1:") == 0);
	CHECK(keyring_parse("1", 1, &kr, NULL, 0) == -1);
#undef K
}

static void write_temp(char *path, const char *text, mode_t mode)
{
	const char *dir = getenv("TMPDIR");
	snprintf(path, 256, "%s/test_seal.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(close(fd) == 0);
	CHECK(chmod(path, mode) == 0);
}

static void test_keyring_load(void)
{
	char path[256];
	struct keyring *kr = NULL;

	write_temp(path, vector_keyring, 0644);
	CHECK(keyring_load(path, &kr, err, sizeof(err)) == -1 && kr == NULL);
	CHECK(strstr(err, path) != NULL && strstr(err, "group or others") != NULL);
	CHECK(chmod(path, 0640) == 0);
	CHECK(keyring_load(path, &kr, err, sizeof(err)) == -1);
	CHECK(chmod(path, 0600) == 0);
	CHECK(keyring_load(path, &kr, err, sizeof(err)) == 0 && kr != NULL);
	CHECK(keyring_primary_id(kr) == 258);
	keyring_free(kr);
	CHECK(chmod(path, 0400) == 0);
	CHECK(keyring_load(path, &kr, err, sizeof(err)) == 0);
	keyring_free(kr);
	CHECK(unlink(path) == 0);

	write_temp(path, "1 AAAA primary\n", 0600);
	CHECK(keyring_load(path, &kr, err, sizeof(err)) == -1);
	CHECK(strstr(err, path) == err && strstr(err, ": line 1: key is 3 bytes") != NULL);
	CHECK(unlink(path) == 0);

	CHECK(keyring_load(path, &kr, err, sizeof(err)) == -1);
	CHECK(strstr(err, "No such file") != NULL);
}

static void test_names(void)
{
	uint8_t id[SEAL_ACCOUNT_ID_LEN];
	char text[37];
	CHECK(seal_parse_uuid("123E4567-e89b-12d3-a456-426614174000", id));
	CHECK(id[0] == 0x12 && id[1] == 0x3e && id[15] == 0x00);
	seal_format_uuid(id, text);
	CHECK_STR(text, vector_account);
	CHECK(!seal_parse_uuid("123e4567-e89b-12d3-a456-42661417400", id));
	CHECK(!seal_parse_uuid("123e4567-e89b-12d3-a456-4266141740000", id));
	CHECK(!seal_parse_uuid("123e4567xe89b-12d3-a456-426614174000", id));
	CHECK(!seal_parse_uuid("123e4567-e89b-12d3-a456-42661417400g", id));
	CHECK(!seal_parse_uuid("123e4567e89b12d3a456426614174000", id));
	CHECK(!seal_parse_uuid(NULL, id));

	CHECK_STR(seal_column_name(SEAL_ACCESS_TOKEN), "access_token");
	CHECK_STR(seal_column_name(SEAL_REFRESH_TOKEN), "refresh_token");
	CHECK_STR(seal_column_name(SEAL_APP_PASSWORD), "app_password");
	CHECK(seal_column_name((enum seal_column)0) == NULL);
	CHECK(seal_column_name((enum seal_column)4) == NULL);
	CHECK(seal_column_parse("access_token") == SEAL_ACCESS_TOKEN);
	CHECK(seal_column_parse("refresh_token") == SEAL_REFRESH_TOKEN);
	CHECK(seal_column_parse("app_password") == SEAL_APP_PASSWORD);
	CHECK(seal_column_parse("password") == -1);
	CHECK(seal_column_parse(NULL) == -1);

	uint32_t kid;
	uint8_t zero_id[33] = {0x01};
	CHECK(!seal_key_id(zero_id, sizeof(zero_id), &kid)); /* key id 0 is not a key id */
	CHECK(!seal_key_id(zero_id, 32, &kid));

	struct secret s = {0};
	secret_free(&s);
	secret_free(NULL);
}

int main(void)
{
	test_vector();
	test_format();
	test_round_trip();
	test_tamper();
	test_binding();
	test_rotation();
	test_keyring_accepts();
	test_keyring_errors();
	test_keyring_load();
	test_names();
	printf("test_seal: ok\n");
	return 0;
}
