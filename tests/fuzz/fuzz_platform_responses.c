/* libFuzzer target for the platforms' parse_response (and, on request, their
 * build_request with fuzzed credentials). Input layout:
 *   byte 0   platform (index mod platform_count())
 *   byte 1   HTTP status (index into statuses[])
 *   byte 2   grant: bits 0-1 action (exchange, refresh, retry, check),
 *            bit 2 step 1, bit 3 no refresh token, bit 4 no app password,
 *            bit 5 also build a request from the rest as credentials
 *   rest     "Retry-After\nx-rate-limit-reset\nbody" (an empty header line is
 *            no header); without two newlines, all of it is the body.
 * Every result is checked against the interface's promises: tokens only on
 * OK, expiries and retry times in range, error text printable and free of
 * the grant's secrets. Seeds: tests/fuzz/corpus/fuzz_platform_responses/. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platforms/platform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_MS INT64_C(1700000000000)
#define TEN_YEARS_MS (INT64_C(315360000) * 1000)
#define DAY_MS INT64_C(86400000)
#define HEADER_MAX 64

static const long statuses[] = {200, 400, 401, 429, 500, 503, 0,   201,
                                403, 404, 302, 204, 418, 502, 100, 999};
static const enum action actions[] = {ACTION_EXCHANGE, ACTION_REFRESH, ACTION_RETRY, ACTION_CHECK};

/* Long enough to be searched for in error text (>= 8 bytes). */
static struct secret access_tok = {(uint8_t *)"EAAGaccess-secret-1", 19};
static struct secret refresh_tok = {(uint8_t *)"rt.refresh-secret-2", 19};
static struct secret app_pw = {(uint8_t *)"abcd-efgh-ijkl-mnop", 19};

static bool holds(const char *text, const struct secret *s)
{
	return s && strstr(text, (const char *)s->data);
}

/* NUL-terminated within cap, printable, and no secret of the grant in it. */
static void check_text(const struct platform_grant *grant, const char *text, size_t cap)
{
	size_t len = strnlen(text, cap);
	if (len == cap)
		abort();
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] >= 0x7f)
			abort();
	if (holds(text, grant->access_token) || holds(text, grant->refresh_token) ||
	    holds(text, grant->app_password))
		abort();
}

static void check_token(const struct secret *s, bool may_be_empty)
{
	if (secret_empty(s)) {
		if (!may_be_empty)
			abort();
		return;
	}
	if (s->len > 16384 || s->data[s->len] != '\0')
		abort();
	for (size_t i = 0; i < s->len; i++)
		if (s->data[i] <= 0x20 || s->data[i] >= 0x7f)
			abort();
}

static void check_expiry(int64_t at_ms)
{
	if (at_ms != 0 && (at_ms <= NOW_MS || at_ms >= NOW_MS + TEN_YEARS_MS))
		abort();
}

static void check_result(const struct platform *p, const struct platform_grant *grant,
                         const struct platform_result *res)
{
	bool page_check = strcmp(p->name, "facebook") == 0 && grant->action == ACTION_CHECK;
	if (res->verdict > VERDICT_MALFORMED)
		abort();
	if (res->verdict == VERDICT_OK) {
		check_token(&res->access_token, page_check);
		check_token(&res->refresh_token, true);
	} else if (!secret_empty(&res->access_token) || !secret_empty(&res->refresh_token) ||
	           res->access_expires_at_ms || res->refresh_expires_at_ms) {
		abort();
	}
	if (page_check && (!secret_empty(&res->access_token) || res->access_expires_at_ms))
		abort();
	check_expiry(res->access_expires_at_ms);
	check_expiry(res->refresh_expires_at_ms);
	if (res->verdict == VERDICT_NEXT_STEP && strcmp(p->name, "bluesky") != 0)
		abort();
	if (res->verdict == VERDICT_PAGES_NONE && !page_check)
		abort();
	if (res->retry_at_ms && (res->verdict != VERDICT_TRANSIENT || res->retry_at_ms < NOW_MS ||
	                         res->retry_at_ms > NOW_MS + DAY_MS))
		abort();
	check_text(grant, res->upstream_code, sizeof(res->upstream_code));
	check_text(grant, res->message, sizeof(res->message));
	if (res->verdict != VERDICT_OK && !res->message[0])
		abort();
}

/* The next line of [*at, end) as a header (NULL when empty); false without a newline. */
static bool take_line(const uint8_t **at, const uint8_t *end, char *buf, const char **header)
{
	const uint8_t *nl = memchr(*at, '\n', (size_t)(end - *at));
	if (!nl)
		return false;
	size_t len = (size_t)(nl - *at) < HEADER_MAX ? (size_t)(nl - *at) : HEADER_MAX;
	memcpy(buf, *at, len);
	buf[len] = '\0';
	*header = len && !memchr(buf, '\0', len) ? buf : NULL;
	*at = nl + 1;
	return true;
}

/* Build with credentials from the fuzz input: whatever they hold, a request
 * comes out whole or not at all, and Bluesky's JSON body reads back. */
static void fuzz_build(const struct platform *p, struct platform_grant *grant, const uint8_t *data,
                       size_t size)
{
	struct secret cred = {0};
	struct platform_request req = {0};
	struct platform_client client = {.base_url = "http://fake", .client_id = "cid"};
	char err[128];
	char *text = malloc(size + 1);
	if (!text || secret_set(&cred, data, size) != 0)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	grant->external_id = text;
	grant->app_password = &cred;
	grant->refresh_token = grant->refresh_token ? &cred : NULL;
	client.client_secret = &cred;
	if (p->build_request(&client, grant, &req, err, sizeof(err)) == 0) {
		if (!req.url || (req.body && strlen(req.body) != req.body_len))
			abort();
		if (req.authorization && strpbrk(req.authorization, "\r\n"))
			abort();
		if (req.body && req.content_type &&
		    strcmp(req.content_type, "application/json") == 0) {
			json_t *back = json_loadb(req.body, req.body_len, 0, NULL);
			if (!back ||
			    strcmp(json_string_value(json_object_get(back, "identifier")), text))
				abort();
			json_decref(back);
		}
	} else if (req.url || req.body || req.authorization || !err[0]) {
		abort();
	}
	platform_request_clear(&req);
	secret_free(&cred);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	const struct platform *p = platform_at(data[0] % platform_count());
	uint8_t flags = data[2];
	struct platform_grant grant = {
	    .external_id = "alice.bsky.social",
	    .access_token = &access_tok,
	    .refresh_token = flags & 8 ? NULL : &refresh_tok,
	    .app_password = flags & 16 ? NULL : &app_pw,
	    .action = actions[flags & 3],
	    .step = flags & 4 ? 1 : 0,
	};
	const uint8_t *at = data + 3, *end = data + size;
	char retry_after[HEADER_MAX + 1], rate_reset[HEADER_MAX + 1];
	struct platform_response resp = {.status = statuses[data[1] % 16], .now_ms = NOW_MS};
	const uint8_t *start = at;
	if (!take_line(&at, end, retry_after, &resp.retry_after) ||
	    !take_line(&at, end, rate_reset, &resp.rate_reset)) {
		at = start;
		resp.retry_after = resp.rate_reset = NULL;
	}
	resp.body = (const char *)at;
	resp.body_len = (size_t)(end - at);
	struct platform_result res = {0};
	p->parse_response(&grant, &resp, &res);
	check_result(p, &grant, &res);
	platform_result_clear(&res);
	if (res.access_token.data || res.verdict != 0 || res.message[0])
		abort();
	if (flags & 32)
		fuzz_build(p, &grant, at, (size_t)(end - at));
	return 0;
}
