/* test_platform_bluesky: Bluesky sessions per platforms.md: refreshSession
 * and createSession requests, expiries from the JWTs' exp claims (and the
 * JWT reader itself), the XRPC errors, and the NEXT_STEP flow from a dead
 * refreshJwt to the app password. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platforms/jwt.h"
#include "platforms/platform.h"
#include "tests/unit/check.h"

#define T0 INT64_C(1700000000000) /* a fixed "now" */
#define T0_S 1700000000
#define SEC(n) ((int64_t)(n)*1000)

static struct secret lit(const char *text)
{
	return (struct secret){.data = (uint8_t *)(uintptr_t)text, .len = strlen(text)};
}

/* base64url of s, no padding, appended to out. */
static void b64url(char *out, const char *s)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t len = strlen(s), at = strlen(out);
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned char)s[i] << 16;
		v |= i + 1 < len ? (unsigned char)s[i + 1] << 8 : 0;
		v |= i + 2 < len ? (unsigned char)s[i + 2] : 0;
		size_t chars = len - i >= 3 ? 4 : len - i + 1;
		for (size_t k = 0; k < chars; k++)
			out[at++] = alphabet[(v >> (18 - 6 * k)) & 63];
	}
	out[at] = '\0';
}

/* header.payload.sig with the given claims JSON. */
static const char *jwt(char *buf, const char *claims)
{
	buf[0] = '\0';
	b64url(buf, "{\"typ\":\"at+jwt\",\"alg\":\"ES256K\"}");
	strcat(buf, ".");
	b64url(buf, claims);
	strcat(buf, ".c2lnbmF0dXJl");
	return buf;
}

static void test_jwt(void)
{
	char buf[512], claims[128], err[96];
	int64_t exp = -1;
	snprintf(claims, sizeof(claims),
	         "{\"scope\":\"com.atproto.access\",\"sub\":\"did:plc:abc\",\"exp\":%d}",
	         T0_S + 7200);
	jwt(buf, claims);
	CHECK(jwt_exp(buf, strlen(buf), &exp, err, sizeof(err)) == 0 && exp == T0_S + 7200);
	/* Padding and the standard base64 alphabet are tolerated. */
	static const char padded[] = "eyJhIjoxfQ==.eyJleHAiOjE3MDAwMDcyMDB9.";
	CHECK(jwt_exp(padded, strlen(padded), &exp, err, sizeof(err)) == 0 && exp == 1700007200);
	jwt(buf, "{\"exp\":1700007200.75}");
	CHECK(jwt_exp(buf, strlen(buf), &exp, err, sizeof(err)) == 0 && exp == 1700007200);
	jwt(buf, "{\"sub\":\"did:plc:abc\"}");
	CHECK(jwt_exp(buf, strlen(buf), &exp, err, sizeof(err)) == 0 && exp == 0);

	static const char *const bad_claims[] = {
	    "{\"exp\":\"1700007200\"}", "{\"exp\":-1}", "{\"exp\":0}", "{\"exp\":1e300}",
	    "{\"exp\":true}",           "[1,2]",        "not json",    "{\"exp\":1,\"exp\":2}",
	};
	for (size_t i = 0; i < sizeof(bad_claims) / sizeof(bad_claims[0]); i++) {
		jwt(buf, bad_claims[i]);
		CHECK(jwt_exp(buf, strlen(buf), &exp, err, sizeof(err)) == -1 && err[0]);
	}
	static const char *const bad_tokens[] = {
	    "",          "abc",         "a.b", ".eyJleHAiOjF9.sig", "a..sig", "a.eyJleHAiOjF9.s.x",
	    "a.e!J.sig", "a.eyJle.sig", /* length 1 mod 4 after padding is dropped */
	};
	for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++) {
		err[0] = '\0';
		CHECK(jwt_exp(bad_tokens[i], strlen(bad_tokens[i]), &exp, err, sizeof(err)) == -1);
		CHECK(err[0] != '\0');
	}
}

static struct secret refresh_jwt, app_password;
static struct platform_client client = {.client_id = ""};
static struct platform_grant grant = {.external_id = "alice.bsky.social", .action = ACTION_REFRESH};

static const struct platform *bluesky(void)
{
	const struct platform *p = platform_find("bluesky");
	CHECK(p && p->build_request && p->parse_response);
	CHECK_STR(p->default_base_url, "https://bsky.social");
	return p;
}

static struct platform_request build(int step)
{
	struct platform_request req = {0};
	char err[128] = "";
	grant.step = step;
	if (bluesky()->build_request(&client, &grant, &req, err, sizeof(err)) != 0) {
		fprintf(stderr, "build_request: %s\n", err);
		exit(1);
	}
	CHECK(req.method == PLATFORM_POST);
	return req;
}

static void expect_create(struct platform_request *req, const char *url, const char *body)
{
	CHECK_STR(req->url, url);
	CHECK_STR(req->body, body);
	CHECK(req->body_len == strlen(body));
	CHECK_STR(req->content_type, "application/json");
	CHECK(req->authorization == NULL);
	platform_request_clear(req);
}

static void test_requests(void)
{
	refresh_jwt = lit("eyJ.refresh.jwt");
	app_password = lit("abcd-efgh-ijkl-mnop");
	grant.refresh_token = &refresh_jwt;
	grant.app_password = &app_password;

	struct platform_request req = build(0);
	CHECK_STR(req.url, "https://bsky.social/xrpc/com.atproto.server.refreshSession");
	CHECK(req.body == NULL && req.body_len == 0 && req.content_type == NULL);
	CHECK_STR(req.authorization, "Bearer eyJ.refresh.jwt");
	platform_request_clear(&req);

	req = build(1);
	expect_create(
	    &req, "https://bsky.social/xrpc/com.atproto.server.createSession",
	    "{\"identifier\":\"alice.bsky.social\",\"password\":\"abcd-efgh-ijkl-mnop\"}");

	/* No refresh token: straight to the app password; JSON escaped properly. */
	grant.refresh_token = NULL;
	grant.external_id = "a\"b\\c\n\xc3\xa9";
	app_password = lit("p\"w");
	client.base_url = "http://127.0.0.1:7000/";
	req = build(0);
	expect_create(&req, "http://127.0.0.1:7000/xrpc/com.atproto.server.createSession",
	              "{\"identifier\":\"a\\\"b\\\\c\\n\xc3\xa9\",\"password\":\"p\\\"w\"}");
	client.base_url = NULL;

	char err[96];
	grant.external_id = "\xff\xfe"; /* not UTF-8 */
	grant.step = 0;
	CHECK(bluesky()->build_request(&client, &grant, &req, err, sizeof(err)) == -1);
	CHECK(req.url == NULL && req.body == NULL);
	grant.external_id = "";
	CHECK(bluesky()->build_request(&client, &grant, &req, err, sizeof(err)) == -1);
	CHECK_STR(err, "no identifier");
	grant.external_id = "alice.bsky.social";
	grant.app_password = NULL;
	CHECK(bluesky()->build_request(&client, &grant, &req, err, sizeof(err)) == -1);
	CHECK_STR(err, "no refresh token or app password");
	grant.refresh_token = &refresh_jwt;
	grant.step = 1;
	CHECK(bluesky()->build_request(&client, &grant, &req, err, sizeof(err)) == -1);
	CHECK_STR(err, "no app password");
	grant.step = 2;
	CHECK(bluesky()->build_request(&client, &grant, &req, err, sizeof(err)) == -1);
	grant.app_password = &app_password;
	app_password = lit("abcd-efgh-ijkl-mnop");
}

static struct platform_result parse_with(int step, long status, const char *body,
                                         const char *retry_after)
{
	struct platform_response resp = {.status = status,
	                                 .body = body,
	                                 .body_len = strlen(body),
	                                 .retry_after = retry_after,
	                                 .now_ms = T0};
	struct platform_result res = {0};
	grant.step = step;
	bluesky()->parse_response(&grant, &resp, &res);
	if (res.verdict != VERDICT_OK)
		CHECK(secret_empty(&res.access_token) && secret_empty(&res.refresh_token));
	return res;
}

static void expect(int step, long status, const char *body, enum platform_verdict want,
                   const char *code)
{
	struct platform_result res = parse_with(step, status, body, NULL);
	if (res.verdict != want || strcmp(res.upstream_code, code) != 0) {
		fprintf(stderr, "step %d %ld %s: verdict %d code \"%s\" (%s), want %d \"%s\"\n",
		        step, status, body, (int)res.verdict, res.upstream_code, res.message,
		        (int)want, code);
		exit(1);
	}
	platform_result_clear(&res);
}

/* A session body with JWTs expiring access_in and refresh_in seconds from T0. */
static const char *session(char *body, size_t cap, long access_in, long refresh_in)
{
	char access[256], refresh[256], claims[96];
	snprintf(claims, sizeof(claims), "{\"scope\":\"com.atproto.access\",\"exp\":%ld}",
	         T0_S + access_in);
	jwt(access, claims);
	snprintf(claims, sizeof(claims), "{\"scope\":\"com.atproto.refresh\",\"exp\":%ld}",
	         T0_S + refresh_in);
	jwt(refresh, claims);
	snprintf(body, cap,
	         "{\"accessJwt\":\"%s\",\"refreshJwt\":\"%s\",\"handle\":\"alice.bsky.social\","
	         "\"did\":\"did:plc:abc\",\"active\":true}",
	         access, refresh);
	return body;
}

static void test_success(void)
{
	char body[1024];
	grant.refresh_token = &refresh_jwt;
	struct platform_result res =
	    parse_with(0, 200, session(body, sizeof(body), 7200, 7776000), NULL);
	CHECK(res.verdict == VERDICT_OK);
	CHECK(strncmp((const char *)res.access_token.data, "eyJ", 3) == 0);
	CHECK(strncmp((const char *)res.refresh_token.data, "eyJ", 3) == 0);
	CHECK(res.access_expires_at_ms == T0 + SEC(7200));
	CHECK(res.refresh_expires_at_ms == T0 + SEC(7776000));
	platform_result_clear(&res);

	/* Without exp claims: nothing said about expiry. */
	char access[256];
	jwt(access, "{\"sub\":\"did:plc:abc\"}");
	snprintf(body, sizeof(body), "{\"accessJwt\":\"%s\",\"did\":\"did:plc:abc\"}", access);
	res = parse_with(1, 200, body, NULL);
	CHECK(res.verdict == VERDICT_OK && res.access_expires_at_ms == 0);
	CHECK(secret_empty(&res.refresh_token));
	platform_result_clear(&res);

	expect(0, 200, session(body, sizeof(body), -10, 7776000), VERDICT_MALFORMED, "");
	expect(0, 200, session(body, sizeof(body), 7200, 400000000), VERDICT_MALFORMED, "");
	expect(0, 200, "{\"accessJwt\":\"not-a-jwt\",\"refreshJwt\":\"x\"}", VERDICT_MALFORMED, "");
	expect(0, 200, "{\"accessJwt\":7}", VERDICT_MALFORMED, "");
	expect(0, 200, "{\"refreshJwt\":\"a.b.c\"}", VERDICT_MALFORMED, "");
	snprintf(body, sizeof(body), "{\"accessJwt\":\"%s\",\"refreshJwt\":\"a.b\"}", access);
	expect(0, 200, body, VERDICT_MALFORMED, "");
}

static void test_errors(void)
{
	static const char expired[] =
	    "{\"error\":\"ExpiredToken\",\"message\":\"Token has expired\"}";
	static const char invalid[] =
	    "{\"error\":\"InvalidToken\",\"message\":\"Token is invalid\"}";
	static const char auth[] =
	    "{\"error\":\"AuthenticationRequired\",\"message\":\"Invalid identifier or password\"}";
	static const char takedown[] =
	    "{\"error\":\"AccountTakedown\",\"message\":\"Account has been taken down\"}";
	grant.refresh_token = &refresh_jwt;
	grant.app_password = &app_password;
	/* refreshSession: a dead refreshJwt moves on to the app password. */
	expect(0, 400, expired, VERDICT_NEXT_STEP, "ExpiredToken");
	expect(0, 400, invalid, VERDICT_NEXT_STEP, "InvalidToken");
	expect(0, 401, takedown, VERDICT_DEAD, "AccountTakedown");
	expect(0, 401, auth, VERDICT_TRANSIENT, "AuthenticationRequired");
	grant.app_password = NULL;
	expect(0, 400, expired, VERDICT_DEAD, "ExpiredToken");
	expect(0, 400, invalid, VERDICT_DEAD, "InvalidToken");
	/* createSession (step 1, or step 0 without a refresh token). */
	grant.app_password = &app_password;
	expect(1, 401, auth, VERDICT_DEAD, "AuthenticationRequired");
	expect(1, 401, takedown, VERDICT_DEAD, "AccountTakedown");
	expect(1, 400, expired, VERDICT_TRANSIENT, "ExpiredToken");
	grant.refresh_token = NULL;
	expect(0, 401, auth, VERDICT_DEAD, "AuthenticationRequired");
	grant.refresh_token = &refresh_jwt;

	struct platform_result res = parse_with(
	    1, 429, "{\"error\":\"RateLimitExceeded\",\"message\":\"Rate Limit Exceeded\"}", "300");
	CHECK(res.verdict == VERDICT_TRANSIENT && res.retry_at_ms == T0 + SEC(300));
	CHECK_STR(res.upstream_code, "RateLimitExceeded");
	CHECK_STR(res.message, "Rate Limit Exceeded");
	expect(0, 502, expired, VERDICT_TRANSIENT, "ExpiredToken");
	expect(0, 400, "{\"message\":\"no error\"}", VERDICT_MALFORMED, "");
	expect(0, 400, "{\"error\":{\"x\":1}}", VERDICT_MALFORMED, "");
	expect(0, 200, expired, VERDICT_NEXT_STEP, "ExpiredToken");
}

/* Dead refreshJwt -> NEXT_STEP -> createSession at step 1 -> a new session. */
static void test_next_step_flow(void)
{
	char body[1024];
	grant.refresh_token = &refresh_jwt;
	grant.app_password = &app_password;
	struct platform_request req = build(0);
	CHECK(strstr(req.url, "refreshSession") != NULL);
	platform_request_clear(&req);
	struct platform_result res = parse_with(
	    0, 400, "{\"error\":\"ExpiredToken\",\"message\":\"Token has been revoked\"}", NULL);
	CHECK(res.verdict == VERDICT_NEXT_STEP);
	CHECK_STR(res.message, "Token has been revoked");
	req = build(1);
	CHECK(strstr(req.url, "createSession") != NULL);
	platform_request_clear(&req);
	res = parse_with(1, 200, session(body, sizeof(body), 7200, 7776000), NULL);
	CHECK(res.verdict == VERDICT_OK && res.access_expires_at_ms == T0 + SEC(7200));
	platform_result_clear(&res);
}

int main(void)
{
	test_jwt();
	test_requests();
	test_success();
	test_errors();
	test_next_step_flow();
	printf("test_platform_bluesky: ok\n");
	return 0;
}
