/* test_platform_meta: the Meta Graph platforms of platforms.md (Threads,
 * Instagram, Facebook): exchange and refresh requests, the Page check, token
 * bodies, and the Graph error classification (code/subcode table). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platforms/platform.h"
#include "tests/unit/check.h"

#define T0 INT64_C(1700000000000) /* a fixed "now" */
#define SEC(n) ((int64_t)(n)*1000)

static struct secret lit(const char *text)
{
	return (struct secret){.data = (uint8_t *)(uintptr_t)text, .len = strlen(text)};
}

static struct secret access_tok, client_secret;
static struct platform_client client = {.client_id = "cid", .client_secret = &client_secret};
static struct platform_grant grant = {.external_id = "17841400000000000",
                                      .access_token = &access_tok};

static const struct platform *find(const char *name)
{
	const struct platform *p = platform_find(name);
	CHECK(p && p->build_request && p->parse_response);
	return p;
}

/* Build for action and check: a GET to url, no body, no Authorization. */
static void expect_get(const char *name, enum action action, const char *url)
{
	struct platform_request req = {0};
	char err[128] = "";
	grant.action = action;
	if (find(name)->build_request(&client, &grant, &req, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: build_request: %s\n", name, err);
		exit(1);
	}
	CHECK(req.method == PLATFORM_GET);
	CHECK_STR(req.url, url);
	CHECK(req.body == NULL && req.body_len == 0 && req.content_type == NULL);
	CHECK(req.authorization == NULL);
	platform_request_clear(&req);
}

static struct platform_result parse_with(const char *name, enum action action, long status,
                                         const char *body, const char *retry_after)
{
	struct platform_response resp = {.status = status,
	                                 .body = body,
	                                 .body_len = strlen(body),
	                                 .retry_after = retry_after,
	                                 .now_ms = T0};
	struct platform_result res = {0};
	grant.action = action;
	find(name)->parse_response(&grant, &resp, &res);
	if (res.verdict != VERDICT_OK)
		CHECK(secret_empty(&res.access_token));
	return res;
}

static void expect(const char *name, enum action action, long status, const char *body,
                   enum platform_verdict want, const char *code)
{
	struct platform_result res = parse_with(name, action, status, body, NULL);
	if (res.verdict != want || strcmp(res.upstream_code, code) != 0) {
		fprintf(stderr, "%s %ld %s: verdict %d code \"%s\" (%s), want %d \"%s\"\n", name,
		        status, body, (int)res.verdict, res.upstream_code, res.message, (int)want,
		        code);
		exit(1);
	}
	platform_result_clear(&res);
}

static const char long_lived[] =
    "{\"access_token\":\"IGQVJ-long\",\"token_type\":\"bearer\",\"expires_in\":5183944}";

static void expect_long_lived(const char *name, enum action action)
{
	struct platform_result res = parse_with(name, action, 200, long_lived, NULL);
	CHECK(res.verdict == VERDICT_OK);
	CHECK_STR((const char *)res.access_token.data, "IGQVJ-long");
	CHECK(secret_empty(&res.refresh_token));
	CHECK(res.access_expires_at_ms == T0 + SEC(5183944));
	CHECK(res.refresh_expires_at_ms == 0);
	platform_result_clear(&res);
}

static void test_threads_instagram(void)
{
	access_tok = lit("SHORT+tok");
	client_secret = lit("csecret");
	expect_get("threads", ACTION_EXCHANGE,
	           "https://graph.threads.net/access_token?grant_type=th_exchange_token&"
	           "client_secret=csecret&access_token=SHORT%2Btok");
	expect_get("instagram", ACTION_EXCHANGE,
	           "https://graph.instagram.com/access_token?grant_type=ig_exchange_token&"
	           "client_secret=csecret&access_token=SHORT%2Btok");
	access_tok = lit("LONG");
	expect_get("threads", ACTION_REFRESH,
	           "https://graph.threads.net/refresh_access_token?grant_type=th_refresh_token&"
	           "access_token=LONG");
	expect_get("instagram", ACTION_RETRY,
	           "https://graph.instagram.com/refresh_access_token?grant_type=ig_refresh_token&"
	           "access_token=LONG");
	client.base_url = "http://127.0.0.1:9000";
	expect_get("threads", ACTION_REFRESH,
	           "http://127.0.0.1:9000/refresh_access_token?grant_type=th_refresh_token&"
	           "access_token=LONG");
	client.base_url = NULL;

	struct platform_request req = {0};
	char err[64];
	grant.access_token = NULL;
	CHECK(find("threads")->build_request(&client, &grant, &req, err, sizeof(err)) == -1);
	CHECK_STR(err, "no access token");
	grant.access_token = &access_tok;

	expect_long_lived("threads", ACTION_EXCHANGE);
	expect_long_lived("threads", ACTION_REFRESH);
	expect_long_lived("instagram", ACTION_REFRESH);
	expect("instagram", ACTION_REFRESH, 400,
	       "{\"error\":{\"message\":\"Error validating access token: Session has expired on "
	       "Tuesday, 14-Nov-23 10:00:00 PST.\",\"type\":\"OAuthException\",\"code\":190,"
	       "\"fbtrace_id\":\"AbCdEf\"}}",
	       VERDICT_DEAD, "190");
	expect("threads", ACTION_REFRESH, 400,
	       "{\"error\":{\"message\":\"Error validating access token: The session has been "
	       "invalidated because the user changed their password.\",\"type\":\"OAuthException\","
	       "\"code\":190,\"error_subcode\":460,\"fbtrace_id\":\"AbCdEf\"}}",
	       VERDICT_DEAD, "190/460");
	expect("threads", ACTION_REFRESH, 200, "{\"token_type\":\"bearer\"}", VERDICT_MALFORMED,
	       "");
	/* A readable token with an unreadable expiry is kept (expiry unknown). */
	expect("instagram", ACTION_REFRESH, 200,
	       "{\"access_token\":\"A\",\"expires_in\":\"5183944\"}", VERDICT_OK, "");
}

/* The Graph error table of platforms.md. */
static void test_graph_errors(void)
{
	static const struct {
		const char *body;
		enum platform_verdict want;
		const char *code;
	} cases[] = {
	    {"{\"code\":190}", VERDICT_DEAD, "190"},
	    {"{\"code\":190,\"error_subcode\":458}", VERDICT_DEAD, "190/458"},
	    {"{\"code\":190,\"error_subcode\":460}", VERDICT_DEAD, "190/460"},
	    {"{\"code\":190,\"error_subcode\":463}", VERDICT_DEAD, "190/463"},
	    {"{\"code\":190,\"error_subcode\":467}", VERDICT_DEAD, "190/467"},
	    {"{\"code\":190,\"error_subcode\":492}", VERDICT_DEAD, "190/492"},
	    {"{\"code\":190,\"error_subcode\":null}", VERDICT_DEAD, "190"},
	    {"{\"code\":102}", VERDICT_DEAD, "102"},
	    {"{\"code\":190,\"error_subcode\":459}", VERDICT_DEAD, "190/459"},
	    {"{\"code\":190,\"error_subcode\":464}", VERDICT_DEAD, "190/464"},
	    {"{\"code\":1}", VERDICT_TRANSIENT, "1"},
	    {"{\"code\":2}", VERDICT_TRANSIENT, "2"},
	    {"{\"code\":4}", VERDICT_TRANSIENT, "4"},
	    {"{\"code\":17}", VERDICT_TRANSIENT, "17"},
	    {"{\"code\":32}", VERDICT_TRANSIENT, "32"},
	    {"{\"code\":341}", VERDICT_TRANSIENT, "341"},
	    {"{\"code\":368}", VERDICT_TRANSIENT, "368"},
	    {"{\"code\":613}", VERDICT_TRANSIENT, "613"},
	    {"{\"code\":100,\"error_subcode\":33}", VERDICT_TRANSIENT, "100/33"},
	    {"{\"code\":\"190\"}", VERDICT_MALFORMED, ""},
	    {"{\"code\":190,\"error_subcode\":\"460\"}", VERDICT_MALFORMED, ""},
	    {"{\"message\":\"no code\"}", VERDICT_MALFORMED, ""},
	};
	char body[256];
	access_tok = lit("LONG");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body), "{\"error\":%s}", cases[i].body);
		expect("facebook", ACTION_REFRESH, 400, body, cases[i].want, cases[i].code);
		expect("threads", ACTION_REFRESH, 400, body, cases[i].want, cases[i].code);
	}
	/* 5xx never kills a grant; a 200 carrying an error is the error. */
	expect("facebook", ACTION_REFRESH, 500, "{\"error\":{\"code\":190}}", VERDICT_TRANSIENT,
	       "190");
	expect("facebook", ACTION_REFRESH, 200, "{\"error\":{\"code\":190}}", VERDICT_DEAD, "190");
	expect("facebook", ACTION_REFRESH, 400, "{\"error\":\"OAuthException\"}", VERDICT_MALFORMED,
	       "");
	struct platform_result res = parse_with("instagram", ACTION_REFRESH, 400,
	                                        "{\"error\":{\"message\":\"Error validating access "
	                                        "token: Sessions for the user are not "
	                                        "allowed because the user is not a confirmed "
	                                        "user.\",\"code\":190,\"error_subcode\":464}}",
	                                        NULL);
	CHECK(res.verdict == VERDICT_DEAD);
	CHECK(strncmp(res.message, "the user must log in to facebook.com and act: Error validating",
	              60) == 0);
	res = parse_with(
	    "facebook", ACTION_REFRESH, 400,
	    "{\"error\":{\"message\":\"Application request limit reached\",\"code\":4}}", "600");
	CHECK(res.verdict == VERDICT_TRANSIENT && res.retry_at_ms == T0 + SEC(600));
	CHECK_STR(res.message, "Application request limit reached");
}

static void test_facebook_exchange(void)
{
	access_tok = lit("EAAB|user");
	client_secret = lit("cs");
	expect_get(
	    "facebook", ACTION_EXCHANGE,
	    "https://graph.facebook.com/v21.0/oauth/access_token?grant_type=fb_exchange_token&"
	    "client_id=cid&client_secret=cs&fb_exchange_token=EAAB%7Cuser");
	expect_get(
	    "facebook", ACTION_REFRESH,
	    "https://graph.facebook.com/v21.0/oauth/access_token?grant_type=fb_exchange_token&"
	    "client_id=cid&client_secret=cs&fb_exchange_token=EAAB%7Cuser");
	expect_long_lived("facebook", ACTION_EXCHANGE);
	/* A token without expiry comes back without expires_in. */
	struct platform_result res =
	    parse_with("facebook", ACTION_REFRESH, 200,
	               "{\"access_token\":\"EAAB2\",\"token_type\":\"bearer\"}", NULL);
	CHECK(res.verdict == VERDICT_OK && res.access_expires_at_ms == 0);
	platform_result_clear(&res);
}

static void test_facebook_check(void)
{
	access_tok = lit("EAAPage");
	client_secret = lit("cs");
	expect_get("facebook", ACTION_CHECK,
	           "https://graph.facebook.com/v21.0/debug_token?input_token=EAAPage&"
	           "access_token=cid%7Ccs");

	struct platform_result res = parse_with(
	    "facebook", ACTION_CHECK, 200,
	    "{\"data\":{\"app_id\":\"138483919580948\",\"type\":\"PAGE\",\"application\":\"App\","
	    "\"data_access_expires_at\":1707000000,\"expires_at\":0,\"is_valid\":true,\"profile_"
	    "id\":"
	    "\"1\",\"scopes\":[\"pages_show_list\"],\"user_id\":\"10\"}}",
	    NULL);
	CHECK(res.verdict == VERDICT_OK);
	CHECK(secret_empty(&res.access_token) && res.access_expires_at_ms == 0);
	platform_result_clear(&res);

	res =
	    parse_with("facebook", ACTION_CHECK, 200,
	               "{\"data\":{\"app_id\":\"1\",\"type\":\"PAGE\",\"is_valid\":false,\"error\":"
	               "{\"code\":190,\"message\":\"Error validating access token: The user is not "
	               "an admin of the page.\",\"subcode\":492},"
	               "\"scopes\":[]}}",
	               NULL);
	CHECK(res.verdict == VERDICT_PAGES_NONE);
	CHECK_STR(res.upstream_code, "190/492");
	CHECK(strncmp(res.message, "Error validating access token", 29) == 0);
	expect("facebook", ACTION_CHECK, 200, "{\"data\":{\"is_valid\":false}}", VERDICT_PAGES_NONE,
	       "");
	expect("facebook", ACTION_CHECK, 400, "{\"error\":{\"code\":190,\"error_subcode\":492}}",
	       VERDICT_PAGES_NONE, "190/492");
	expect("facebook", ACTION_CHECK, 400, "{\"error\":{\"code\":190,\"error_subcode\":460}}",
	       VERDICT_PAGES_NONE, "190/460");
	expect("facebook", ACTION_CHECK, 400, "{\"error\":{\"code\":102}}", VERDICT_PAGES_NONE,
	       "102");
	/* A bare 190 on debug_token may be our app token: never drop Pages for it. */
	res = parse_with("facebook", ACTION_CHECK, 400,
	                 "{\"error\":{\"message\":\"Invalid OAuth access token signature.\","
	                 "\"type\":\"OAuthException\",\"code\":190}}",
	                 NULL);
	CHECK(res.verdict == VERDICT_TRANSIENT);
	CHECK_STR(res.upstream_code, "190");
	CHECK_STR(res.message, "debug_token rejected a token: check client_id/client_secret");
	expect("facebook", ACTION_CHECK, 400, "{\"error\":{\"code\":4}}", VERDICT_TRANSIENT, "4");
	expect("facebook", ACTION_CHECK, 503, "{\"error\":{\"code\":190,\"error_subcode\":492}}",
	       VERDICT_TRANSIENT, "190/492");
	expect("facebook", ACTION_CHECK, 400, "{\"error\":[]}", VERDICT_MALFORMED, "");
	expect("facebook", ACTION_CHECK, 200, "{\"data\":{\"is_valid\":\"true\"}}",
	       VERDICT_MALFORMED, "");
	expect("facebook", ACTION_CHECK, 200, "{\"data\":[]}", VERDICT_MALFORMED, "");
	expect("facebook", ACTION_CHECK, 200, "{\"is_valid\":true}", VERDICT_MALFORMED, "");
	expect("facebook", ACTION_CHECK, 200,
	       "{\"data\":{\"is_valid\":false,\"error\":{\"code\":\"x\"}}}", VERDICT_PAGES_NONE,
	       "");
}

int main(void)
{
	test_threads_instagram();
	test_graph_errors();
	test_facebook_exchange();
	test_facebook_check();
	printf("test_platform_meta: ok\n");
	return 0;
}
