/* fuzz_config: libFuzzer target for the config file parser. Arbitrary bytes
 * go to config_parse on fresh defaults, then config_validate and
 * config_print. When the parse succeeds, the printed config must parse again
 * and print the same: the printer and parser agree on quoting and units. */
#include "daemon/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* config_print into a malloc'd string. */
static char *printed(const struct config *cfg, size_t *len)
{
	char *buf = NULL;
	FILE *out = open_memstream(&buf, len);
	if (!out)
		abort();
	config_print(cfg, out);
	if (fclose(out) != 0)
		abort();
	return buf;
}

static void check_round_trip(const struct config *cfg)
{
	char err[256];
	size_t len, again_len;
	char *text = printed(cfg, &len), *again_text;
	struct config *again = config_new();
	if (!again)
		abort();
	if (config_parse(again, text, len, err, sizeof(err)) != 0) {
		fprintf(stderr, "printed config does not parse: %s\n%s", err, text);
		abort();
	}
	again_text = printed(again, &again_len);
	if (strcmp(text, again_text) != 0) {
		fprintf(stderr, "print/parse/print differs:\n%s---\n%s", text, again_text);
		abort();
	}
	free(again_text);
	free(text);
	config_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	char err[256];
	struct config *cfg = config_new();
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	if (!cfg || !devnull)
		abort();
	if (config_parse(cfg, (const char *)data, size, err, sizeof(err)) == 0) {
		if (config_validate(cfg, err, sizeof(err)) == 0)
			config_print(cfg, devnull);
		check_round_trip(cfg);
	}
	config_print(cfg, devnull);
	config_free(cfg);
	return 0;
}
