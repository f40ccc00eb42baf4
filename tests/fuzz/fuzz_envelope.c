/* fuzz_envelope: libFuzzer target for the event envelope (daemon/envelope.c).
 * The input is an outbox row's data member for envelope_build (a fixed,
 * valid id, type, subject and time; the first byte picks the type), and a
 * whole event for envelope_check. Whatever envelope_build accepts, the
 * envelope it makes must pass envelope_check and hold no control character:
 * the builder and the checker agree, and the text is one line on the stream. */
#include "daemon/envelope.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_built(const char *text, size_t len)
{
	char why[256];
	if (envelope_check(text, len, why, sizeof(why)) != 0)
		abort(); /* built but not valid */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] < 0x20)
			abort(); /* not one line */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[] = {"token.expiring", "token.revoked", "token.recovered"};
	char why[256], *text = NULL;
	size_t len = 0;
	enum envelope_type type;
	if (size == 0)
		return 0;
	struct envelope_row row = {.event_id = "evt_0123456789abcdef0123456789abcdef",
	                           .type = types[data[0] % 3],
	                           .subject = "2f1c6b1e-8a4d-4c3b-9e21-0d5f7a6b8c9d",
	                           .time = "2025-01-02T03:04:05.123456Z",
	                           .data = (const char *)data + 1,
	                           .data_len = size - 1};
	enum envelope_result rc = envelope_build(&row, &text, &len, &type, why, sizeof(why));
	if (rc == ENVELOPE_OK)
		check_built(text, len);
	else if (text)
		abort(); /* no text on failure */
	free(text);
	(void)envelope_check((const char *)data, size, why, sizeof(why));
	return 0;
}
