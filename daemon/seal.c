/* seal: AES-256-GCM sealing of tokens at rest, and the keyring that holds the
 * keys. The byte format and the keyring syntax are in docs/sealed-format.md. */
#include "daemon/seal.h"

#include "common/codec.h"

#include "daemon/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/*
 * Sealed value, format version 1; n = total length, at least 33:
 *
 *   offset   size  field
 *   0        1     format version, 0x01
 *   1        4     key id, uint32 big-endian, > 0
 *   5        12    nonce, random per seal
 *   17       n-33  ciphertext (as long as the plaintext)
 *   n-16     16    GCM tag
 *
 * AAD (22 bytes) = sealed[0..5) (version || key id) || account id (16 bytes)
 *                  || column number (1 byte: 1, 2 or 3, enum seal_column).
 */
enum {
	SEAL_VERSION = 0x01,
	KEY_LEN = 32,
	KEY_ID_OFF = 1,
	NONCE_OFF = 5,
	NONCE_LEN = 12,
	HEADER_LEN = NONCE_OFF + NONCE_LEN,
	TAG_LEN = 16,
	OVERHEAD = HEADER_LEN + TAG_LEN,
	AAD_LEN = NONCE_OFF + SEAL_ACCOUNT_ID_LEN + 1,
	KEYRING_MAX_BYTES = 1 << 20,
};

#define AUTH_FAILED "authentication failed (wrong account, column or key, or tampered)"

struct key {
	uint32_t id;
	size_t line; /* where it was defined, for duplicate messages */
	uint8_t bytes[KEY_LEN];
};

/* keys is an OPENSSL_ allocation of cap slots, wiped when freed. */
struct keyring {
	struct key *keys;
	size_t n;
	size_t cap;
	size_t primary; /* index into keys; valid once has_primary */
	bool has_primary;
};

/* A whitespace-separated field of a keyring line: not NUL-terminated. */
struct field {
	const char *p;
	size_t len;
};

static const char *const column_names[] = {
    [SEAL_ACCESS_TOKEN] = "access_token",
    [SEAL_REFRESH_TOKEN] = "refresh_token",
    [SEAL_APP_PASSWORD] = "app_password",
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Log an OpenSSL failure with the library's own words, and empty its queue. */
static void log_openssl(const char *what)
{
	char buf[256] = "no OpenSSL error queued";
	unsigned long code = ERR_get_error();
	if (code)
		ERR_error_string_n(code, buf, sizeof(buf));
	log_err("seal: %s failed: %s", what, buf);
	ERR_clear_error();
}

/* ---- keyring ---- */

void keyring_free(struct keyring *kr)
{
	if (!kr)
		return;
	OPENSSL_clear_free(kr->keys, kr->cap * sizeof(*kr->keys));
	free(kr);
}

uint32_t keyring_primary_id(const struct keyring *kr)
{
	return kr->keys[kr->primary].id;
}

size_t keyring_size(const struct keyring *kr)
{
	return kr->n;
}

static const struct key *keyring_find(const struct keyring *kr, uint32_t id)
{
	for (size_t i = 0; i < kr->n; i++)
		if (kr->keys[i].id == id)
			return &kr->keys[i];
	return NULL;
}

/* Make room for one more key; the old array is wiped by the realloc. */
static int keyring_reserve(struct keyring *kr)
{
	if (kr->n < kr->cap)
		return 0;
	size_t cap = kr->cap ? kr->cap * 2 : 4;
	struct key *keys =
	    OPENSSL_clear_realloc(kr->keys, kr->cap * sizeof(*keys), cap * sizeof(*keys));
	if (!keys)
		return -1;
	kr->keys = keys;
	kr->cap = cap;
	return 0;
}

/* Strict RFC 4648 base64: standard alphabet, padded, canonical trailing bits.
 * out has room for len / 4 * 3 bytes. Returns the decoded length, -1 if invalid. */
static long b64_decode(const char *in, size_t len, uint8_t *out)
{
	if (len == 0 || len % 4 != 0)
		return -1;
	size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
	size_t o = 0;
	uint32_t acc = 0;
	for (size_t i = 0; i < len; i++) {
		int v = i < len - pad ? codec_base64_value((unsigned char)in[i], false) : 0;
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		if (i % 4 != 3)
			continue;
		out[o++] = (uint8_t)(acc >> 16);
		out[o++] = (uint8_t)(acc >> 8);
		out[o++] = (uint8_t)acc;
	}
	if ((pad == 1 && (acc & 0xff)) || (pad == 2 && (acc & 0xffff)))
		return -1;
	return (long)(o - pad);
}

/* Split a line into up to 4 fields at spaces, tabs and CRs; '#' starts a
 * comment. Returns the number of fields, 4 meaning "too many". */
static size_t split_fields(const char *line, size_t len, struct field f[4])
{
	size_t nf = 0, i = 0;
	while (i < len && nf < 4) {
		while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
			i++;
		if (i == len || line[i] == '#')
			break;
		f[nf].p = line + i;
		while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' &&
		       line[i] != '#')
			i++;
		f[nf].len = (size_t)(line + i - f[nf].p);
		nf++;
	}
	return nf;
}

static bool field_is(struct field f, const char *word)
{
	return f.len == strlen(word) && memcmp(f.p, word, f.len) == 0;
}

/* Decimal 1..UINT32_MAX, digits only. */
static bool parse_key_id(struct field f, uint32_t *id)
{
	uint64_t v = 0;
	if (f.len == 0 || f.len > 10)
		return false;
	for (size_t i = 0; i < f.len; i++) {
		if (f.p[i] < '0' || f.p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(f.p[i] - '0');
	}
	if (v == 0 || v > UINT32_MAX)
		return false;
	*id = (uint32_t)v;
	return true;
}

/* Decode a base64 key into key[]; the scratch buffer is wiped. */
static int decode_key(struct field f, uint8_t key[KEY_LEN], size_t line, char *err, size_t errlen)
{
	size_t cap = f.len / 4 * 3 + 3;
	uint8_t *buf = OPENSSL_malloc(cap);
	int rc = -1;
	if (!buf) {
		set_err(err, errlen, "line %zu: out of memory", line);
		return -1;
	}
	long n = b64_decode(f.p, f.len, buf);
	if (n < 0) {
		set_err(err, errlen, "line %zu: key is not valid base64", line);
	} else if (n != KEY_LEN) {
		set_err(err, errlen, "line %zu: key is %ld bytes, must be %d", line, n, KEY_LEN);
	} else {
		memcpy(key, buf, KEY_LEN);
		rc = 0;
	}
	OPENSSL_clear_free(buf, cap);
	return rc;
}

/* Check a line's id and flag against the keys before it. */
static int check_line(const struct keyring *kr, const struct field f[4], size_t nf, size_t line,
                      uint32_t *id, char *err, size_t errlen)
{
	if (nf < 2 || nf > 3) {
		set_err(err, errlen, "line %zu: expected '<key id> <base64 key> [primary]'", line);
		return -1;
	}
	if (!parse_key_id(f[0], id)) {
		set_err(err, errlen, "line %zu: key id must be a decimal number from 1 to %" PRIu32,
		        line, UINT32_MAX);
		return -1;
	}
	if (nf == 3 && !field_is(f[2], "primary")) {
		set_err(err, errlen, "line %zu: the only word allowed after the key is 'primary'",
		        line);
		return -1;
	}
	const struct key *dup = keyring_find(kr, *id);
	if (dup) {
		set_err(err, errlen, "line %zu: duplicate key id %" PRIu32 " (also on line %zu)",
		        line, *id, dup->line);
		return -1;
	}
	if (nf == 3 && kr->has_primary) {
		set_err(err, errlen, "line %zu: second primary key (line %zu is primary already)",
		        line, kr->keys[kr->primary].line);
		return -1;
	}
	return 0;
}

/* Parse one line (without its '\n') into kr; blank and comment lines are fine. */
static int parse_line(struct keyring *kr, const char *text, size_t len, size_t line, char *err,
                      size_t errlen)
{
	struct field f[4];
	size_t nf = split_fields(text, len, f);
	uint32_t id;
	if (nf == 0)
		return 0;
	if (check_line(kr, f, nf, line, &id, err, errlen) < 0)
		return -1;
	if (keyring_reserve(kr) < 0) {
		set_err(err, errlen, "line %zu: out of memory", line);
		return -1;
	}
	struct key *k = &kr->keys[kr->n];
	if (decode_key(f[1], k->bytes, line, err, errlen) < 0)
		return -1;
	k->id = id;
	k->line = line;
	if (nf == 3) {
		kr->primary = kr->n;
		kr->has_primary = true;
	}
	kr->n++;
	return 0;
}

int keyring_parse(const char *text, size_t len, struct keyring **out, char *err, size_t errlen)
{
	struct keyring *kr = calloc(1, sizeof(*kr));
	size_t pos = 0, line = 0;
	*out = NULL;
	if (!kr) {
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		if (parse_line(kr, text + pos, end - pos, ++line, err, errlen) < 0)
			goto fail;
		pos = end + 1;
	}
	if (kr->n == 0) {
		set_err(err, errlen, "no keys (expected lines '<key id> <base64 key> [primary]')");
		goto fail;
	}
	if (!kr->has_primary) {
		set_err(err, errlen, "no key is marked primary (mark exactly one line 'primary')");
		goto fail;
	}
	*out = kr;
	return 0;
fail:
	keyring_free(kr);
	return -1;
}

/* Read a whole small file into an OPENSSL_ buffer of *cap bytes. */
static int read_file(int fd, const struct stat *st, char **out, size_t *len, size_t *cap)
{
	*cap = (size_t)st->st_size + 1;
	*len = 0;
	*out = OPENSSL_malloc(*cap);
	if (!*out)
		return -1;
	while (*len < *cap) {
		ssize_t n = read(fd, *out + *len, *cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		*len += (size_t)n;
	}
	errno = EAGAIN; /* it grew while we read */
	return -1;
}

static int check_mode(const char *path, const struct stat *st, char *err, size_t errlen)
{
	if (!S_ISREG(st->st_mode)) {
		set_err(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	if (st->st_mode & 077) {
		set_err(err, errlen,
		        "%s: mode %03o lets group or others access the keyring; "
		        "make it owner-only (chmod 600)",
		        path, (unsigned)(st->st_mode & 0777));
		return -1;
	}
	if (st->st_size > KEYRING_MAX_BYTES) {
		set_err(err, errlen, "%s: larger than %d bytes, not a keyring", path,
		        KEYRING_MAX_BYTES);
		return -1;
	}
	return 0;
}

int keyring_load(const char *path, struct keyring **out, char *err, size_t errlen)
{
	char *text = NULL, why[256];
	size_t len = 0, cap = 0;
	struct stat st;
	int rc = -1;
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (check_mode(path, &st, err, errlen) < 0)
		goto fail;
	if (read_file(fd, &st, &text, &len, &cap) < 0) {
		set_err(err, errlen, "%s: read: %s", path, strerror(errno));
		goto fail;
	}
	if (keyring_parse(text, len, out, why, sizeof(why)) < 0) {
		set_err(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	rc = 0;
fail:
	OPENSSL_clear_free(text, cap);
	close(fd);
	return rc;
}

/* ---- sealing ---- */

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* header = the sealed value's first 5 bytes (version, key id). */
static void make_aad(uint8_t aad[AAD_LEN], const uint8_t *header,
                     const uint8_t account_id[SEAL_ACCOUNT_ID_LEN], enum seal_column column)
{
	memcpy(aad, header, NONCE_OFF);
	memcpy(aad + NONCE_OFF, account_id, SEAL_ACCOUNT_ID_LEN);
	aad[AAD_LEN - 1] = (uint8_t)column;
}

/* AES-256-GCM over plain[0..len) into cipher (same length) and tag. */
static int gcm_encrypt(const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
                       const uint8_t *plain, size_t len, uint8_t *cipher, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, rc = -1;
	if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, aad, AAD_LEN) != 1 ||
	    (len > 0 && EVP_EncryptUpdate(ctx, cipher, &n, plain, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(ctx, cipher + len, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1) {
		log_openssl("AES-256-GCM encryption");
		goto fail;
	}
	rc = 0;
fail:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* Returns 0, -1 when the tag does not verify, -2 on a library failure.
 * plain may hold unauthenticated bytes on failure: the caller wipes it. */
static int gcm_decrypt(const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
                       const uint8_t *cipher, size_t len, const uint8_t *tag, uint8_t *plain)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t tag_copy[TAG_LEN];
	int n = 0, rc = -2;
	memcpy(tag_copy, tag, TAG_LEN);
	if (!ctx || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, aad, AAD_LEN) != 1 ||
	    (len > 0 && EVP_DecryptUpdate(ctx, plain, &n, cipher, (int)len) != 1) ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag_copy) != 1) {
		log_openssl("AES-256-GCM decryption");
		goto fail;
	}
	rc = EVP_DecryptFinal_ex(ctx, plain + len, &n) == 1 ? 0 : -1;
	ERR_clear_error();
fail:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int seal_value(const struct keyring *kr, const uint8_t account_id[SEAL_ACCOUNT_ID_LEN],
               enum seal_column column, const uint8_t *plain, size_t plain_len, uint8_t **out,
               size_t *out_len)
{
	const struct key *k = &kr->keys[kr->primary];
	uint8_t aad[AAD_LEN], *buf = NULL;
	size_t n = OVERHEAD + plain_len;
	*out = NULL;
	*out_len = 0;
	if (!seal_column_name(column) || plain_len > (size_t)INT_MAX - OVERHEAD) {
		log_err("seal: refusing column %d, %zu bytes", (int)column, plain_len);
		return -1;
	}
	buf = malloc(n);
	if (!buf) {
		log_err("seal: out of memory");
		goto fail;
	}
	buf[0] = SEAL_VERSION;
	put_be32(buf + KEY_ID_OFF, k->id);
	if (RAND_bytes(buf + NONCE_OFF, NONCE_LEN) != 1) {
		log_openssl("RAND_bytes");
		goto fail;
	}
	make_aad(aad, buf, account_id, column);
	if (gcm_encrypt(k->bytes, buf + NONCE_OFF, aad, plain, plain_len, buf + HEADER_LEN,
	                buf + n - TAG_LEN) < 0)
		goto fail;
	*out = buf;
	*out_len = n;
	return 0;
fail:
	free(buf);
	return -1;
}

bool seal_key_id(const uint8_t *sealed, size_t sealed_len, uint32_t *key_id)
{
	if (!sealed || sealed_len < OVERHEAD || sealed_len - OVERHEAD > INT_MAX ||
	    sealed[0] != SEAL_VERSION)
		return false;
	*key_id = get_be32(sealed + KEY_ID_OFF);
	return *key_id != 0;
}

int seal_open(const struct keyring *kr, const uint8_t account_id[SEAL_ACCOUNT_ID_LEN],
              enum seal_column column, const uint8_t *sealed, size_t sealed_len, struct secret *out,
              char *err, size_t errlen)
{
	uint8_t aad[AAD_LEN], *plain = NULL;
	uint32_t id = 0;
	out->data = NULL;
	out->len = 0;
	if (!seal_column_name(column)) {
		set_err(err, errlen, "invalid column %d", (int)column);
		return -1;
	}
	if (!seal_key_id(sealed, sealed_len, &id)) {
		set_err(err, errlen, "malformed sealed value");
		return -1;
	}
	const struct key *k = keyring_find(kr, id);
	if (!k) {
		set_err(err, errlen, "unknown key id %" PRIu32, id);
		return -1;
	}
	size_t len = sealed_len - OVERHEAD;
	plain = malloc(len + 1); /* NUL after the text: see struct secret */
	if (!plain) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	make_aad(aad, sealed, account_id, column);
	int rc = gcm_decrypt(k->bytes, sealed + NONCE_OFF, aad, sealed + HEADER_LEN, len,
	                     sealed + sealed_len - TAG_LEN, plain);
	if (rc < 0) {
		set_err(err, errlen, "%s", rc == -1 ? AUTH_FAILED : "decryption failed (see log)");
		OPENSSL_cleanse(plain, len);
		free(plain);
		return -1;
	}
	plain[len] = 0;
	out->data = plain;
	out->len = len;
	return 0;
}

/* ---- names ---- */

const char *seal_column_name(enum seal_column column)
{
	if (column < SEAL_ACCESS_TOKEN || column > SEAL_APP_PASSWORD)
		return NULL;
	return column_names[column];
}

int seal_column_parse(const char *name)
{
	for (int c = SEAL_ACCESS_TOKEN; c <= SEAL_APP_PASSWORD; c++)
		if (name && strcmp(name, column_names[c]) == 0)
			return c;
	return -1;
}

static bool uuid_dash_at(size_t i)
{
	return i == 8 || i == 13 || i == 18 || i == 23;
}

bool seal_parse_uuid(const char *text, uint8_t out[SEAL_ACCOUNT_ID_LEN])
{
	uint8_t id[SEAL_ACCOUNT_ID_LEN];
	size_t o = 0, i = 0;
	if (!text || strnlen(text, 37) != 36)
		return false;
	while (i < 36) {
		if (uuid_dash_at(i)) {
			if (text[i++] != '-')
				return false;
			continue;
		}
		int hi = codec_hex_value(text[i]), lo = codec_hex_value(text[i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		id[o++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	memcpy(out, id, sizeof(id));
	return true;
}

void seal_format_uuid(const uint8_t id[SEAL_ACCOUNT_ID_LEN], char out[37])
{
	static const char digits[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < SEAL_ACCOUNT_ID_LEN; i++) {
		if (uuid_dash_at(o))
			out[o++] = '-';
		out[o++] = digits[id[i] >> 4];
		out[o++] = digits[id[i] & 0xf];
	}
	out[o] = '\0';
}
