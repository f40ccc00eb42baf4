/* test_platform_oauth: the refresh_token-grant platforms of platforms.md (X,
 * LinkedIn, Pinterest, TikTok, YouTube): request shape, the documented
 * success and error bodies, bodies that must be MALFORMED, Retry-After and
 * x-rate-limit-reset. Expected values are written from platforms.md. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platforms/platform.h"
#include "tests/unit/check.h"

#define T0 INT64_C(1700000000000) /* 2023-11-14T22:13:20Z, a fixed "now" */
#define SEC(n) ((int64_t)(n)*1000)

#define CHECK_VERDICT(res, want)                                                                   \
	do {                                                                                       \
		if ((res).verdict != (want)) {                                                     \
			fprintf(stderr,                                                            \
			        "%s:%d: verdict %d, want %d (code \"%s\", message \"%s\")\n",      \
			        __FILE__, __LINE__, (int)(res).verdict, (int)(want),               \
			        (res).upstream_code, (res).message);                               \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/* A borrowed secret over a literal. */
static struct secret lit(const char *text)
{
	return (struct secret){.data = (uint8_t *)(uintptr_t)text, .len = strlen(text)};
}

static struct secret refresh_tok, client_secret;
static struct platform_client client = {.client_id = "cid", .client_secret = &client_secret};
static struct platform_grant grant = {
    .external_id = "u1", .refresh_token = &refresh_tok, .action = ACTION_REFRESH};

static const struct platform *find(const char *name)
{
	const struct platform *p = platform_find(name);
	CHECK(p && p->build_request && p->parse_response);
	return p;
}

static struct platform_request build(const char *name)
{
	struct platform_request req = {0};
	char err[128] = "";
	if (find(name)->build_request(&client, &grant, &req, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: build_request: %s\n", name, err);
		exit(1);
	}
	return req;
}

static struct platform_result parse_with(const char *name, long status, const char *body,
                                         const char *retry_after, const char *rate_reset)
{
	struct platform_response resp = {.status = status,
	                                 .body = body,
	                                 .body_len = body ? strlen(body) : 0,
	                                 .retry_after = retry_after,
	                                 .rate_reset = rate_reset,
	                                 .now_ms = T0};
	struct platform_result res = {0};
	find(name)->parse_response(&grant, &resp, &res);
	if (res.verdict != VERDICT_OK)
		CHECK(secret_empty(&res.access_token) && secret_empty(&res.refresh_token));
	CHECK(strlen(res.message) < sizeof(res.message));
	return res;
}

static struct platform_result parse(const char *name, long status, const char *body)
{
	return parse_with(name, status, body, NULL, NULL);
}

static void expect_verdict(const char *name, long status, const char *body,
                           enum platform_verdict want, const char *code)
{
	struct platform_result res = parse(name, status, body);
	if (res.verdict != want || (code && strcmp(res.upstream_code, code) != 0)) {
		fprintf(stderr, "%s %ld %s: verdict %d code \"%s\" (%s), want %d \"%s\"\n", name,
		        status, body, (int)res.verdict, res.upstream_code, res.message, (int)want,
		        code ? code : "");
		exit(1);
	}
	platform_result_clear(&res);
}

static void expect_request(struct platform_request *req, enum platform_method method,
                           const char *url, const char *body, const char *auth)
{
	CHECK(req->method == method);
	CHECK_STR(req->url, url);
	if (body) {
		CHECK_STR(req->body, body);
		CHECK(req->body_len == strlen(body));
		CHECK_STR(req->content_type, "application/x-www-form-urlencoded");
	} else {
		CHECK(req->body == NULL && req->body_len == 0);
	}
	if (auth)
		CHECK_STR(req->authorization, auth);
	else
		CHECK(req->authorization == NULL);
	platform_request_clear(req);
	CHECK(req->url == NULL && req->body == NULL && req->authorization == NULL);
}

static void reset(void)
{
	refresh_tok = lit("R-1");
	client_secret = lit("csecret");
	client.base_url = NULL;
	client.client_id = "cid";
	client.client_secret = &client_secret;
}

/* ---- X ---- */

static void test_x_request(void)
{
	reset();
	struct platform_request req = build("x");
	expect_request(&req, PLATFORM_POST, "https://api.x.com/2/oauth2/token",
	               "grant_type=refresh_token&refresh_token=R-1&client_id=cid",
	               "Basic Y2lkOmNzZWNyZXQ=");

	client.client_secret = NULL; /* public client: no Basic */
	client.base_url = "http://127.0.0.1:8080/";
	refresh_tok = lit("a b+c/d=&\xc3\xa9~");
	req = build("x");
	expect_request(
	    &req, PLATFORM_POST, "http://127.0.0.1:8080/2/oauth2/token",
	    "grant_type=refresh_token&refresh_token=a%20b%2Bc%2Fd%3D%26%C3%A9~&client_id=cid",
	    NULL);

	struct secret empty = {0};
	grant.refresh_token = &empty;
	char err[64] = "";
	CHECK(find("x")->build_request(&client, &grant, &req, err, sizeof(err)) == -1);
	CHECK_STR(err, "no refresh token");
	grant.refresh_token = NULL;
	CHECK(find("x")->build_request(&client, &grant, &req, err, sizeof(err)) == -1);
	CHECK(req.url == NULL && req.body == NULL);
	grant.refresh_token = &refresh_tok;
}

static void test_x_responses(void)
{
	reset();
	struct platform_result res =
	    parse("x", 200,
	          "{\"token_type\":\"bearer\",\"expires_in\":7200,\"access_token\":\"AT-x\","
	          "\"scope\":\"tweet.read offline.access\",\"refresh_token\":\"RT-x\"}");
	CHECK_VERDICT(res, VERDICT_OK);
	CHECK_STR((const char *)res.access_token.data, "AT-x");
	CHECK_STR((const char *)res.refresh_token.data, "RT-x");
	CHECK(res.access_expires_at_ms == T0 + SEC(7200));
	CHECK(res.refresh_expires_at_ms == 0 && res.retry_at_ms == 0);
	platform_result_clear(&res);
	CHECK(res.access_token.data == NULL && res.verdict == 0 && res.message[0] == 0);

	res = parse("x", 400,
	            "{\"error\":\"invalid_request\",\"error_description\":\"Value passed for the "
	            "token was invalid.\"}");
	CHECK_VERDICT(res, VERDICT_DEAD);
	CHECK_STR(res.upstream_code, "invalid_request");
	CHECK_STR(res.message, "Value passed for the token was invalid.");

	expect_verdict("x", 400, "{\"error\":\"invalid_grant\"}", VERDICT_DEAD, "invalid_grant");
	/* Classified by the body: a 200 carrying an error is that error. */
	expect_verdict("x", 200, "{\"error\":\"invalid_grant\"}", VERDICT_DEAD, "invalid_grant");
	/* Our configuration, not the user's grant. */
	res = parse("x", 401,
	            "{\"error\":\"unauthorized_client\",\"error_description\":\"Missing valid "
	            "authorization header\"}");
	CHECK_VERDICT(res, VERDICT_TRANSIENT);
	CHECK_STR(res.upstream_code, "unauthorized_client");
	CHECK_STR(res.message, "client authentication failed: check client_id/client_secret");
	expect_verdict("x", 400, "{\"error\":\"unsupported_grant_type\"}", VERDICT_TRANSIENT,
	               "unsupported_grant_type");

	res =
	    parse_with("x", 429, "{\"errors\":[{\"code\":88,\"message\":\"Rate limit exceeded\"}]}",
	               NULL, "1700000900");
	CHECK_VERDICT(res, VERDICT_TRANSIENT);
	CHECK_STR(res.upstream_code, "88");
	CHECK_STR(res.message, "Rate limit exceeded");
	CHECK(res.retry_at_ms == SEC(1700000900));

	/* 5xx, 429 and no response are transient whatever the body says. */
	expect_verdict("x", 500, "{\"error\":\"invalid_grant\"}", VERDICT_TRANSIENT,
	               "invalid_grant");
	expect_verdict("x", 503, "<html>busy</html>", VERDICT_TRANSIENT, "");
	expect_verdict("x", 429, "", VERDICT_TRANSIENT, "");
	expect_verdict("x", 0, NULL, VERDICT_TRANSIENT, "");
	/* Other statuses without a readable error. */
	expect_verdict("x", 400, "{}", VERDICT_MALFORMED, "");
	expect_verdict("x", 400, "<html>bad</html>", VERDICT_MALFORMED, "");
	expect_verdict("x", 404, "{\"error\":\"not_found\"}", VERDICT_TRANSIENT, "not_found");
}

/* 200 bodies that must not be taken. */
static void test_malformed(void)
{
	static const char *const bodies[] = {
	    "",
	    "{",
	    "{\"access_token\":\"A\",\"expires_in\":7200",
	    "[\"access_token\",\"A\"]",
	    "\"A\"",
	    "{\"expires_in\":7200}",
	    "{\"access_token\":null}",
	    "{\"access_token\":\"\"}",
	    "{\"access_token\":42}",
	    "{\"access_token\":[\"A\"]}",
	    "{\"access_token\":\"A B\"}",
	    "{\"access_token\":\"A\\nB\"}",
	    "{\"access_token\":\"A\\u0000B\"}",
	    "{\"access_token\":\"\\u00e9\"}",
	    "{\"access_token\":\"A\",\"expires_in\":99999999999999999999999}",
	    "{\"access_token\":\"A\",\"expires_in\":1e400}",
	    "{\"access_token\":\"A\",\"refresh_token\":5}",
	    "{\"access_token\":\"A\",\"refresh_token\":\"R\\u0001\"}",
	    "{\"access_token\":\"A\",\"access_token\":\"B\"}",
	    "{\"access_token\":\"A\"} trailing",
	};
	reset();
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		expect_verdict("x", 200, bodies[i], VERDICT_MALFORMED, "");
		expect_verdict("youtube", 200, bodies[i], VERDICT_MALFORMED, "");
	}
	/* Readable tokens with an unreadable expiry: OK, because the platform
	 * has already rotated the refresh token; the expiry counts as unknown. */
	static const char *const bad_expiry[] = {
	    "{\"access_token\":\"A\",\"refresh_token\":\"R\",\"expires_in\":\"7200\"}",
	    "{\"access_token\":\"A\",\"refresh_token\":\"R\",\"expires_in\":-5}",
	    "{\"access_token\":\"A\",\"refresh_token\":\"R\",\"expires_in\":0}",
	    "{\"access_token\":\"A\",\"refresh_token\":\"R\",\"expires_in\":7200.5}",
	    "{\"access_token\":\"A\",\"refresh_token\":\"R\",\"expires_in\":315360000}",
	    "{\"access_token\":\"A\",\"refresh_token\":\"R\",\"expires_in\":true}",
	};
	for (size_t i = 0; i < sizeof(bad_expiry) / sizeof(bad_expiry[0]); i++) {
		struct platform_result ok = parse("x", 200, bad_expiry[i]);
		CHECK(ok.verdict == VERDICT_OK);
		CHECK(ok.access_expires_at_ms == 0);
		CHECK_STR((const char *)ok.refresh_token.data, "R");
		CHECK(strstr(ok.message, "expires_in: ") &&
		      strstr(ok.message, "treated as unknown"));
		platform_result_clear(&ok);
	}
	struct platform_result res;
	res = parse("x", 200, "{\"access_token\":");
	CHECK(strncmp(res.message, "HTTP 200: invalid JSON at 1:", 28) == 0);

	/* Sizes: a 16 KiB token is fine, one byte more is not; bodies over 64 KiB. */
	size_t cap = 16384 + 64;
	char *body = malloc(70000);
	CHECK(body);
	snprintf(body, cap, "{\"access_token\":\"%016384d\"}", 0);
	res = parse("x", 200, body);
	CHECK_VERDICT(res, VERDICT_OK);
	CHECK(res.access_token.len == 16384);
	platform_result_clear(&res);
	snprintf(body, cap, "{\"access_token\":\"%016385d\"}", 0);
	expect_verdict("x", 200, body, VERDICT_MALFORMED, "");
	memset(body, ' ', 69999);
	body[0] = '{';
	memcpy(body + 69990, "}", 2);
	expect_verdict("x", 200, body, VERDICT_MALFORMED, "");
	free(body);

	/* Optional fields: null and "" refresh tokens are absent (keep the current one). */
	res =
	    parse("x", 200, "{\"access_token\":\"A\",\"refresh_token\":\"\",\"expires_in\":null}");
	CHECK_VERDICT(res, VERDICT_OK);
	CHECK(secret_empty(&res.refresh_token) && res.access_expires_at_ms == 0);
	platform_result_clear(&res);
	res = parse("x", 200, "{\"access_token\":\"A\",\"expires_in\":315359999}");
	CHECK_VERDICT(res, VERDICT_OK);
	platform_result_clear(&res);
}

/* Retry-After as delta seconds or HTTP-date, x-rate-limit-reset, caps. */
static void test_retry_after(void)
{
	static const struct {
		const char *retry_after, *rate_reset;
		int64_t want;
	} cases[] = {
	    {"120", NULL, T0 + SEC(120)},
	    {" 0 ", NULL, T0},
	    {"Tue, 14 Nov 2023 22:15:20 GMT", NULL, T0 + SEC(120)},
	    {"Tuesday, 14-Nov-23 22:15:20 GMT", NULL, T0 + SEC(120)},
	    {"Tue Nov 14 22:15:20 2023", NULL, T0 + SEC(120)},
	    {"Mon, 13 Nov 2023 00:00:00 GMT", NULL, T0}, /* past: now */
	    {"99999999", NULL, T0 + SEC(86400)},         /* capped at a day */
	    {"-5", NULL, 0},
	    {"12abc", NULL, 0},
	    {"", NULL, 0},
	    {"9999999999999", NULL, 0},
	    {NULL, "1700000060", T0 + SEC(60)},
	    {NULL, "1600000000", T0},
	    {NULL, "soon", 0},
	    {"30", "1700000060", T0 + SEC(60)}, /* the later of both */
	    {"90", "1700000060", T0 + SEC(90)},
	};
	reset();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct platform_result res =
		    parse_with("x", 429, "{}", cases[i].retry_after, cases[i].rate_reset);
		CHECK_VERDICT(res, VERDICT_TRANSIENT);
		if (res.retry_at_ms != cases[i].want) {
			fprintf(stderr,
			        "case %zu: retry_at T0%+" PRId64 " ms, want T0%+" PRId64 "\n", i,
			        res.retry_at_ms - T0, cases[i].want - T0);
			exit(1);
		}
	}
	/* Only transient verdicts carry a retry time. */
	struct platform_result res =
	    parse_with("x", 400, "{\"error\":\"invalid_grant\"}", "120", "1700000060");
	CHECK_VERDICT(res, VERDICT_DEAD);
	CHECK(res.retry_at_ms == 0);
}

/* Error words are copied cleaned: no grant secret, nothing token-shaped,
 * no control bytes, truncated. */
static void test_error_text(void)
{
	reset();
	refresh_tok = lit("short-secret");
	struct platform_result res =
	    parse("x", 400,
	          "{\"error\":\"invalid_request\",\"error_description\":\"bad token short-secret, "
	          "not AAAABBBBCCCCDDDDEEEEFFFF1234; tab\\there\\u0007 \\u00e9\"}");
	CHECK_VERDICT(res, VERDICT_DEAD);
	CHECK_STR(res.message, "bad token [redacted], not [redacted]; tab?here? ??");
	CHECK(strstr(res.message, "short-secret") == NULL);

	char body[2048];
	snprintf(body, sizeof(body), "{\"error\":\"%0100d\",\"error_description\":\"%0500d\"}", 0,
	         0);
	res = parse("x", 400, body);
	CHECK_STR(res.upstream_code, "[redacted]");
	CHECK_STR(res.message, "[redacted]");
	memset(body, 0, sizeof(body));
	strcpy(body, "{\"error\":\"e\",\"error_description\":\"");
	for (int i = 0; i < 100; i++)
		strcat(body, "word ");
	strcat(body, "\"}");
	res = parse("x", 400, body);
	CHECK(strlen(res.message) == sizeof(res.message) - 1);
	CHECK(strncmp(res.message, "word word ", 10) == 0);
	/* jansson's error text quotes the body: cleaned too. */
	res = parse("x", 200, "{\"access_token\": ya29AAAABBBBCCCCDDDDEEEEFFFF}");
	CHECK_VERDICT(res, VERDICT_MALFORMED);
	CHECK(strstr(res.message, "AAAABBBB") == NULL);
}

/* ---- LinkedIn ---- */

static void test_linkedin(void)
{
	reset();
	struct platform_request req = build("linkedin");
	expect_request(
	    &req, PLATFORM_POST, "https://www.linkedin.com/oauth/v2/accessToken",
	    "grant_type=refresh_token&refresh_token=R-1&client_id=cid&client_secret=csecret", NULL);
	struct platform_result res =
	    parse("linkedin", 200,
	          "{\"access_token\":\"AT-li\",\"expires_in\":5184000,\"refresh_token\":\"R-1\","
	          "\"refresh_token_expires_in\":525600,\"scope\":\"r_basicprofile\"}");
	CHECK_VERDICT(res, VERDICT_OK);
	CHECK_STR((const char *)res.access_token.data, "AT-li");
	CHECK_STR((const char *)res.refresh_token.data, "R-1");
	CHECK(res.access_expires_at_ms == T0 + SEC(5184000));
	CHECK(res.refresh_expires_at_ms == T0 + SEC(525600));
	platform_result_clear(&res);
	/* Not rotated: without refresh_token in the answer, keep the current one. */
	res = parse("linkedin", 200,
	            "{\"access_token\":\"AT-li\",\"expires_in\":5184000,"
	            "\"refresh_token_expires_in\":525600}");
	CHECK_VERDICT(res, VERDICT_OK);
	CHECK(secret_empty(&res.refresh_token));
	CHECK(res.refresh_expires_at_ms == T0 + SEC(525600));
	platform_result_clear(&res);
	expect_verdict("linkedin", 400,
	               "{\"error\":\"invalid_request\",\"error_description\":\"The provided "
	               "authorization grant or refresh token is invalid, expired or revoked.\"}",
	               VERDICT_DEAD, "invalid_request");
	expect_verdict("linkedin", 400, "{\"error\":\"invalid_grant\"}", VERDICT_DEAD,
	               "invalid_grant");
	expect_verdict("linkedin", 401, "{\"error\":\"invalid_client\"}", VERDICT_TRANSIENT,
	               "invalid_client");
	expect_verdict("linkedin", 200,
	               "{\"access_token\":\"A\",\"refresh_token_expires_in\":\"525600\"}",
	               VERDICT_OK, "");
}

/* ---- Pinterest ---- */

static void test_pinterest(void)
{
	reset();
	client.client_id = "app1";
	client_secret = lit("appsecret");
	struct platform_request req = build("pinterest");
	expect_request(&req, PLATFORM_POST, "https://api.pinterest.com/v5/oauth/token",
	               "grant_type=refresh_token&refresh_token=R-1", "Basic YXBwMTphcHBzZWNyZXQ=");
	struct platform_result res = parse(
	    "pinterest", 200,
	    "{\"access_token\":\"pina_AT\",\"token_type\":\"bearer\",\"expires_in\":2592000,"
	    "\"scope\":\"boards:read\",\"refresh_token\":\"pinr_RT\",\"refresh_token_expires_in\":"
	    "5184000,\"refresh_token_expires_at\":1705184000}");
	CHECK_VERDICT(res, VERDICT_OK);
	CHECK_STR((const char *)res.refresh_token.data, "pinr_RT");
	CHECK(res.access_expires_at_ms == T0 + SEC(2592000));
	CHECK(res.refresh_expires_at_ms == T0 + SEC(5184000));
	platform_result_clear(&res);
	/* Only the absolute expiry. */
	res = parse("pinterest", 200,
	            "{\"access_token\":\"pina_AT\",\"expires_in\":2592000,\"refresh_token\":\"R\","
	            "\"refresh_token_expires_at\":1705184000}");
	CHECK_VERDICT(res, VERDICT_OK);
	CHECK(res.refresh_expires_at_ms == SEC(1705184000));
	platform_result_clear(&res);
	/* Unreadable refresh expiries: the tokens are kept, the expiry unknown. */
	static const char *const bad_refresh_at[] = {
	    "{\"access_token\":\"A\",\"refresh_token_expires_at\":16e8}",
	    "{\"access_token\":\"A\",\"refresh_token_expires_at\":1600000000}",
	    "{\"access_token\":\"A\",\"refresh_token_expires_at\":9223372036854775807}",
	};
	for (size_t i = 0; i < sizeof(bad_refresh_at) / sizeof(bad_refresh_at[0]); i++) {
		res = parse("pinterest", 200, bad_refresh_at[i]);
		CHECK(res.verdict == VERDICT_OK && res.refresh_expires_at_ms == 0);
		platform_result_clear(&res);
	}

	expect_verdict("pinterest", 400, "{\"code\":1,\"message\":\"Invalid refresh token.\"}",
	               VERDICT_DEAD, "1");
	expect_verdict("pinterest", 401, "{\"code\":2,\"message\":\"Authentication failed.\"}",
	               VERDICT_DEAD, "2");
	expect_verdict("pinterest", 400, "{\"error\":\"invalid_grant\"}", VERDICT_DEAD,
	               "invalid_grant");
	expect_verdict("pinterest", 403, "{\"code\":3,\"message\":\"Authorization failed.\"}",
	               VERDICT_TRANSIENT, "3");
	expect_verdict("pinterest", 500, "{\"code\":-1,\"message\":\"oops\"}", VERDICT_TRANSIENT,
	               "-1");
	expect_verdict("pinterest", 400, "{\"message\":\"no code\"}", VERDICT_MALFORMED, "");
	expect_verdict("pinterest", 200, "{\"code\":1,\"message\":\"x\"}", VERDICT_TRANSIENT, "1");
	res = parse_with("pinterest", 429, "{\"code\":8,\"message\":\"Rate limit\"}", "60", NULL);
	CHECK_VERDICT(res, VERDICT_TRANSIENT);
	CHECK(res.retry_at_ms == T0 + SEC(60));
	CHECK_STR(res.upstream_code, "8");
}

/* ---- TikTok ---- */

static void test_tiktok(void)
{
	reset();
	client.client_id = "ck";
	struct platform_request req = build("tiktok");
	expect_request(
	    &req, PLATFORM_POST, "https://open.tiktokapis.com/v2/oauth/token/",
	    "grant_type=refresh_token&refresh_token=R-1&client_key=ck&client_secret=csecret", NULL);
	struct platform_result res = parse(
	    "tiktok", 200,
	    "{\"open_id\":\"723f24d7\",\"scope\":\"user.info.basic,video.publish\",\"access_"
	    "token\":"
	    "\"act.AT\",\"expires_in\":86400,\"refresh_token\":\"rft.RT\",\"refresh_expires_in\":"
	    "31536000,\"token_type\":\"Bearer\"}");
	CHECK_VERDICT(res, VERDICT_OK);
	CHECK_STR((const char *)res.access_token.data, "act.AT");
	CHECK_STR((const char *)res.refresh_token.data, "rft.RT");
	CHECK(res.access_expires_at_ms == T0 + SEC(86400));
	CHECK(res.refresh_expires_at_ms == T0 + SEC(31536000));
	platform_result_clear(&res);
	static const char dead[] = "{\"error\":\"invalid_grant\",\"error_description\":\"Refresh "
	                           "token is invalid or expired.\",\"log_id\":\"2023\"}";
	expect_verdict("tiktok", 400, dead, VERDICT_DEAD, "invalid_grant");
	expect_verdict("tiktok", 200, dead, VERDICT_DEAD, "invalid_grant");
	expect_verdict("tiktok", 401, "{\"error\":\"invalid_client\"}", VERDICT_TRANSIENT,
	               "invalid_client");
	expect_verdict("tiktok", 400, "{\"error\":\"invalid_request\"}", VERDICT_TRANSIENT,
	               "invalid_request");
	expect_verdict("tiktok", 200, "{\"error\":{\"code\":\"ok\"}}", VERDICT_MALFORMED, "");
	expect_verdict("tiktok", 200, "{\"access_token\":\"A\",\"refresh_expires_in\":-1}",
	               VERDICT_OK, "");
}

/* ---- YouTube / Google ---- */

static void test_youtube(void)
{
	reset();
	client.client_id = "123.apps.googleusercontent.com";
	refresh_tok = lit("1//0gRT");
	struct platform_request req = build("youtube");
	expect_request(&req, PLATFORM_POST, "https://oauth2.googleapis.com/token",
	               "grant_type=refresh_token&refresh_token=1%2F%2F0gRT&"
	               "client_id=123.apps.googleusercontent.com&client_secret=csecret",
	               NULL);
	struct platform_result res =
	    parse("youtube", 200,
	          "{\"access_token\":\"ya29.AT\",\"expires_in\":3599,\"scope\":\"https://"
	          "www.googleapis.com/auth/youtube\",\"token_type\":\"Bearer\"}");
	CHECK_VERDICT(res, VERDICT_OK);
	CHECK_STR((const char *)res.access_token.data, "ya29.AT");
	CHECK(secret_empty(&res.refresh_token)); /* keep the old one */
	CHECK(res.access_expires_at_ms == T0 + SEC(3599));
	platform_result_clear(&res);
	res =
	    parse("youtube", 400,
	          "{\"error\":\"invalid_grant\",\"error_description\":\"Token has been expired or "
	          "revoked.\"}");
	CHECK_VERDICT(res, VERDICT_DEAD);
	CHECK_STR(res.upstream_code, "invalid_grant");
	CHECK_STR(res.message, "Token has been expired or revoked.");
	expect_verdict("youtube", 401,
	               "{\"error\":\"invalid_client\",\"error_description\":"
	               "\"Unauthorized\"}",
	               VERDICT_TRANSIENT, "invalid_client");
	expect_verdict("youtube", 400, "{\"error\":\"invalid_request\"}", VERDICT_TRANSIENT,
	               "invalid_request");
	expect_verdict("youtube", 400, "{\"error\":7}", VERDICT_MALFORMED, "");
}

int main(void)
{
	test_x_request();
	test_x_responses();
	test_malformed();
	test_retry_after();
	test_error_text();
	test_linkedin();
	test_pinterest();
	test_tiktok();
	test_youtube();
	printf("test_platform_oauth: ok\n");
	return 0;
}
