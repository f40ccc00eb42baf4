/* bench_seed: print N platform_accounts rows in COPY text format, with real
 * sealed tokens, for the benchmarks to load with psql \copy:
 *   bench_seed KEYRING PLATFORM N EXPIRES_IN_SECONDS [WITH_REFRESH=1]
 * Columns: id, platform, external_id, access_token, refresh_token,
 * access_expires_at (Unix seconds; the loader converts). */
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/seal.h"

static void print_hex(const uint8_t *p, size_t n)
{
	fputs("\\\\x", stdout);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

static int print_sealed(const struct keyring *kr, const uint8_t id[16], enum seal_column col,
                        const char *plain)
{
	uint8_t *sealed;
	size_t len;
	if (seal_value(kr, id, col, (const uint8_t *)plain, strlen(plain), &sealed, &len) < 0)
		return -1;
	print_hex(sealed, len);
	free(sealed);
	return 0;
}

static int print_row(const struct keyring *kr, const char *platform, long i, time_t expires,
                     bool refresh)
{
	uint8_t id[16];
	char text[37], token[128];
	if (RAND_bytes(id, sizeof(id)) != 1)
		return -1;
	id[6] = (id[6] & 0x0f) | 0x40; /* a version-4 uuid */
	id[8] = (id[8] & 0x3f) | 0x80;
	seal_format_uuid(id, text);
	printf("%s\t%s\tbench-%ld\t", text, platform, i);
	snprintf(token, sizeof(token), "%s-at-%s", platform, text);
	if (print_sealed(kr, id, SEAL_ACCESS_TOKEN, token) < 0)
		return -1;
	putchar('\t');
	snprintf(token, sizeof(token), "%s-rt-%s", platform, text);
	if (!refresh)
		fputs("\\N", stdout);
	else if (print_sealed(kr, id, SEAL_REFRESH_TOKEN, token) < 0)
		return -1;
	printf("\t%lld\n", (long long)expires);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr,
		        "usage: bench_seed KEYRING PLATFORM N EXPIRES_IN_SECONDS [WITH_REFRESH]\n");
		return 2;
	}
	struct keyring *kr = NULL;
	char err[256];
	if (keyring_load(argv[1], &kr, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_seed: %s\n", err);
		return 1;
	}
	long n = atol(argv[3]);
	time_t expires = time(NULL) + atol(argv[4]);
	bool refresh = argc < 6 || atoi(argv[5]) != 0;
	for (long i = 0; i < n; i++)
		if (print_row(kr, argv[2], i, expires, refresh) < 0) {
			fprintf(stderr, "bench_seed: sealing failed\n");
			return 1;
		}
	keyring_free(kr);
	return 0;
}
