/* test_platform_shared: what every platform shares: the registry rows
 * (production base URLs of platforms.md, callbacks present), the form encoder
 * and Basic header of platforms/oauth.c, the clear functions, and rules that
 * hold for every parser (no response and 5xx are transient, garbage is
 * malformed, nothing but OK carries a token). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platforms/oauth.h"
#include "platforms/platform.h"
#include "tests/unit/check.h"

#define T0 INT64_C(1700000000000)

static void test_registry(void)
{
	static const struct {
		const char *name, *base;
	} rows[] = {
	    {"x", "https://api.x.com"},
	    {"bluesky", "https://bsky.social"},
	    {"threads", "https://graph.threads.net"},
	    {"instagram", "https://graph.instagram.com"},
	    {"facebook", "https://graph.facebook.com/v21.0"},
	    {"linkedin", "https://www.linkedin.com"},
	    {"pinterest", "https://api.pinterest.com"},
	    {"tiktok", "https://open.tiktokapis.com"},
	    {"youtube", "https://oauth2.googleapis.com"},
	};
	CHECK(platform_count() == sizeof(rows) / sizeof(rows[0]));
	for (size_t i = 0; i < platform_count(); i++) {
		const struct platform *p = platform_at(i);
		CHECK_STR(p->name, rows[i].name);
		CHECK_STR(p->default_base_url, rows[i].base);
		CHECK(p->build_request && p->parse_response);
	}
}

static void test_form_encode(void)
{
	const struct oauth_param params[] = {
	    {"plain", "AZaz09-._~"},
	    {"reserved", " !\"#$%&'()*+,/:;<=>?@[\\]^`{|}"},
	    {"bytes", "\x01\x7f\xc3\xa9\xff"},
	    {"a b", NULL},
	};
	size_t len = 0;
	char *form = oauth_form_encode(params, 4, &len);
	CHECK(form != NULL);
	CHECK_STR(form, "plain=AZaz09-._~&reserved=%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%2F%3A"
	                "%3B%3C%3D%3E%3F%40%5B%5C%5D%5E%60%7B%7C%7D&bytes=%01%7F%C3%A9%FF&a%20b=");
	CHECK(len == strlen(form));
	oauth_free_text(form);
	form = oauth_form_encode(params, 0, &len);
	CHECK(form && len == 0 && form[0] == '\0');
	oauth_free_text(form);
}

static void test_headers(void)
{
	struct platform_request req = {0};
	char err[64];
	CHECK(oauth_basic_auth(&req, "Aladdin", "open sesame", err, sizeof(err)) == 0);
	CHECK_STR(req.authorization, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
	CHECK(oauth_basic_auth(&req, "", "", err, sizeof(err)) == 0);
	CHECK_STR(req.authorization, "Basic Og==");
	CHECK(oauth_bearer_auth(&req, "tok", err, sizeof(err)) == 0);
	CHECK_STR(req.authorization, "Bearer tok");
	CHECK(oauth_bearer_auth(&req, "t\r\nX-Injected: 1", err, sizeof(err)) == -1);
	CHECK(req.authorization == NULL && err[0]);
	const struct oauth_param q[] = {{"k", "v"}};
	CHECK(oauth_get(&req, "https://h//", "/p", q, 1, err, sizeof(err)) == 0);
	CHECK_STR(req.url, "https://h/p?k=v");
	CHECK(req.body == NULL && req.content_type == NULL && req.authorization == NULL);
	platform_request_clear(&req);
	platform_request_clear(NULL);
}

static void test_clear(void)
{
	struct platform_result res = {.verdict = VERDICT_DEAD, .retry_at_ms = 5};
	CHECK(secret_set(&res.access_token, "AT", 2) == 0);
	CHECK(secret_set(&res.refresh_token, "RT", 2) == 0);
	strcpy(res.message, "m");
	strcpy(res.upstream_code, "c");
	platform_result_clear(&res);
	struct platform_result zero = {0};
	CHECK(memcmp(&res, &zero, sizeof(res)) == 0);
	platform_result_clear(&res); /* idempotent */
	platform_result_clear(NULL);
}

/* Rules for every parser, every action. */
static void test_every_parser(void)
{
	static const struct {
		long status;
		const char *body;
		enum platform_verdict want;
	} cases[] = {
	    {0, "", VERDICT_TRANSIENT},
	    {500, "", VERDICT_TRANSIENT},
	    {502, "<html>Bad Gateway</html>", VERDICT_TRANSIENT},
	    {503, "{\"error\":\"invalid_grant\"}", VERDICT_TRANSIENT},
	    {429, "{}", VERDICT_TRANSIENT},
	    {200, "", VERDICT_MALFORMED},
	    {200, "<html></html>", VERDICT_MALFORMED},
	    {200, "{}", VERDICT_MALFORMED},
	    {200, "[]", VERDICT_MALFORMED},
	    {200, "null", VERDICT_MALFORMED},
	    {200, "{\"access_token\":", VERDICT_MALFORMED},
	    {400, "garbage", VERDICT_MALFORMED},
	};
	struct secret tok = {.data = (uint8_t *)(uintptr_t) "tok-tok-tok", .len = 11};
	struct platform_grant grant = {
	    .external_id = "id", .access_token = &tok, .refresh_token = &tok, .app_password = &tok};
	static const enum action actions[] = {ACTION_EXCHANGE, ACTION_REFRESH, ACTION_CHECK};
	for (size_t p = 0; p < platform_count(); p++)
		for (size_t a = 0; a < 3; a++)
			for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
				struct platform_response resp = {.status = cases[i].status,
				                                 .body = cases[i].body,
				                                 .body_len = strlen(cases[i].body),
				                                 .retry_after = "7",
				                                 .now_ms = T0};
				struct platform_result res = {0};
				grant.action = actions[a];
				platform_at(p)->parse_response(&grant, &resp, &res);
				if (res.verdict != cases[i].want) {
					fprintf(stderr, "%s %ld %s: verdict %d (%s)\n",
					        platform_at(p)->name, cases[i].status,
					        cases[i].body, (int)res.verdict, res.message);
					exit(1);
				}
				CHECK(secret_empty(&res.access_token) && res.message[0]);
				CHECK(res.retry_at_ms ==
				      (res.verdict == VERDICT_TRANSIENT ? T0 + 7000 : 0));
			}
}

int main(void)
{
	test_registry();
	test_form_encode();
	test_headers();
	test_clear();
	test_every_parser();
	printf("test_platform_shared: ok\n");
	return 0;
}
