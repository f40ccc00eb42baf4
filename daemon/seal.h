/* seal: tokens at rest. AES-256-GCM with a random 96-bit nonce and a 128-bit
 * tag; the sealed value carries a format version and the key id, and the
 * additional authenticated data binds it to (account id, column). Keys come
 * from a keyring file: several keys open, one (the primary) seals. The byte
 * format is in docs/sealed-format.md. */
#ifndef TOKEND_SEAL_H
#define TOKEND_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/secret.h"

#define SEAL_ACCOUNT_ID_LEN 16

enum seal_column { SEAL_ACCESS_TOKEN = 1, SEAL_REFRESH_TOKEN = 2, SEAL_APP_PASSWORD = 3 };

struct keyring;

/* Load a keyring file (format in docs/sealed-format.md). Refuses files that
 * group or others can read, and malformed ones; err names the line.
 * Caller frees with keyring_free(), which wipes the keys. */
int keyring_load(const char *path, struct keyring **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Parse keyring text already in memory (no permission check). */
int keyring_parse(const char *text, size_t len, struct keyring **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void keyring_free(struct keyring *kr); /* NULL-safe */
uint32_t keyring_primary_id(const struct keyring *kr);
size_t keyring_size(const struct keyring *kr);

/* Seal plain under the primary key. *out is malloc'd; caller frees. */
int seal_value(const struct keyring *kr, const uint8_t account_id[SEAL_ACCOUNT_ID_LEN],
               enum seal_column column, const uint8_t *plain, size_t plain_len, uint8_t **out,
               size_t *out_len) __attribute__((warn_unused_result));

/* Open a sealed value. On failure err says why (bad format, unknown key id,
 * authentication failed) without any secret. */
int seal_open(const struct keyring *kr, const uint8_t account_id[SEAL_ACCOUNT_ID_LEN],
              enum seal_column column, const uint8_t *sealed, size_t sealed_len, struct secret *out,
              char *err, size_t errlen) __attribute__((warn_unused_result));

/* Key id of a sealed value without opening it; false if the header is bad. */
bool seal_key_id(const uint8_t *sealed, size_t sealed_len, uint32_t *key_id);

/* Column name as in platform_accounts ("access_token", ...); NULL if invalid. */
const char *seal_column_name(enum seal_column column);
/* -1 when unknown. */
int seal_column_parse(const char *name);

/* Parse a textual uuid into 16 bytes; false if malformed. */
bool seal_parse_uuid(const char *text, uint8_t out[SEAL_ACCOUNT_ID_LEN]);
/* Format 16 bytes as a lowercase uuid (37 bytes with NUL). */
void seal_format_uuid(const uint8_t id[SEAL_ACCOUNT_ID_LEN], char out[37]);

#endif
