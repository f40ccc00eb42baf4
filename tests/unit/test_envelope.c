/* test_envelope: the CloudEvents envelope of an outbox row (exact output,
 * every rule that keeps an invalid event off the stream, envelope_check on
 * what envelope_build makes) and redis_parse_url. The JSON Schema side of the
 * same rules is tests/integration/test_events_schema.py. */
#include "daemon/envelope.h"
#include "daemon/redis.h"

#include "tests/unit/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char account[] = "2f1c6b1e-8a4d-4c3b-9e21-0d5f7a6b8c9d";
static const char event_id[] = "evt_0123456789abcdef0123456789abcdef";
static const char now[] = "2025-01-02T03:04:05.123456Z";

static struct envelope_row row_of(const char *type, const char *data)
{
	return (struct envelope_row){.event_id = event_id,
	                             .type = type,
	                             .subject = account,
	                             .time = now,
	                             .data = data,
	                             .data_len = strlen(data)};
}

/* data for a token.expiring of account, with extra members appended. */
static char *expiring_data(const char *extra)
{
	static char buf[16384];
	snprintf(buf, sizeof(buf),
	         "{\"reason\": \"reauth_required\", \"platform\": \"linkedin\", "
	         "\"account_id\": \"%s\", \"expires_at\": \"2025-03-01T00:00:00Z\", "
	         "\"external_id\": \"urn:li:person:42\", \"token_version\": 3%s}",
	         account, extra);
	return buf;
}

static void expect_valid(struct envelope_row row, const char *want)
{
	char *text = NULL, why[256] = "";
	size_t len = 0;
	enum envelope_type type;
	enum envelope_result rc = envelope_build(&row, &text, &len, &type, why, sizeof(why));
	if (rc != ENVELOPE_OK) {
		fprintf(stderr, "unexpected rejection: %s\n", why);
		exit(1);
	}
	CHECK(len == strlen(text));
	CHECK(envelope_check(text, len, why, sizeof(why)) == 0);
	if (want && strcmp(text, want) != 0) {
		fprintf(stderr, "got  %s\nwant %s\n", text, want);
		exit(1);
	}
	free(text);
}

static void expect_invalid(struct envelope_row row, const char *want_why)
{
	char *text = NULL, why[256] = "";
	size_t len = 0;
	enum envelope_type type;
	if (envelope_build(&row, &text, &len, &type, why, sizeof(why)) != ENVELOPE_INVALID ||
	    text || !strstr(why, want_why)) {
		fprintf(stderr, "row with data %s: want a rejection containing '%s', got '%s'\n",
		        row.data ? row.data : "(null)", want_why, why);
		exit(1);
	}
}

static void test_exact_output(void)
{
	char want[1024];
	snprintf(want, sizeof(want),
	         "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"tokend\","
	         "\"type\":\"token.expiring\",\"subject\":\"%s\",\"time\":\"%s\","
	         "\"datacontenttype\":\"application/json\",\"data\":{\"account_id\":\"%s\","
	         "\"platform\":\"linkedin\",\"external_id\":\"urn:li:person:42\","
	         "\"token_version\":3,\"expires_at\":\"2025-03-01T00:00:00Z\","
	         "\"reason\":\"reauth_required\"}}",
	         event_id, account, now, account);
	expect_valid(row_of("token.expiring", expiring_data("")), want);
}

static void test_types_and_reasons(void)
{
	char data[1024];
	snprintf(data, sizeof(data),
	         "{\"account_id\":\"%s\",\"platform\":\"x\",\"external_id\":\"1\","
	         "\"token_version\":9,\"reason\":\"expired\",\"error\":{\"message\":\"gone\","
	         "\"code\":\"platform_auth_failed\",\"upstream_code\":\"invalid_grant\"}}",
	         account);
	expect_valid(row_of("token.revoked", data), NULL);
	snprintf(data, sizeof(data),
	         "{\"account_id\":\"%s\",\"platform\":\"x\",\"external_id\":\"1\","
	         "\"token_version\":9,\"reason\":\"reauthorized\"}",
	         account);
	expect_valid(row_of("token.recovered", data), NULL);
	expect_invalid(row_of("token.revoked", data), "not a reason of token.revoked");
	snprintf(data, sizeof(data),
	         "{\"account_id\":\"%s\",\"platform\":\"x\",\"external_id\":\"1\","
	         "\"token_version\":9,\"reason\":\"expired\"}",
	         account);
	expect_invalid(row_of("token.revoked", data), "data.error is required");
	snprintf(data, sizeof(data),
	         "{\"account_id\":\"%s\",\"platform\":\"x\",\"external_id\":\"1\","
	         "\"token_version\":9,\"reason\":\"refreshed\",\"error\":{\"code\":\"x\"}}",
	         account);
	expect_invalid(row_of("token.recovered", data), "not allowed for token.recovered");
	expect_invalid(row_of("token.exploded", expiring_data("")), "type is not an event type");
}

static void test_scalars(void)
{
	struct envelope_row row = row_of("token.expiring", expiring_data(""));
	row.event_id = "evt_0123456789ABCDEF0123456789abcdef";
	expect_invalid(row, "id is not");
	row = row_of("token.expiring", expiring_data(""));
	row.subject = "2F1C6B1E-8A4D-4C3B-9E21-0D5F7A6B8C9D";
	expect_invalid(row, "subject is not");
	row = row_of("token.expiring", expiring_data(""));
	row.time = "2025-01-02 03:04:05+00";
	expect_invalid(row, "time is not");
	row.time = "2025-01-02T03:04:05.1234567890Z";
	expect_invalid(row, "time is not");
	row.time = "2025-01-02T03:04:05Z";
	expect_valid(row, NULL);
}

static void test_data_rules(void)
{
	expect_invalid(row_of("token.expiring", "[1]"), "data is not an object");
	expect_invalid(row_of("token.expiring", "{\"account_id\":"), "data is not JSON");
	expect_invalid(row_of("token.expiring", expiring_data(", \"access_token\": \"SECRET\"")),
	               "unexpected member \"access_token\"");
	expect_invalid(row_of("token.expiring", expiring_data(", \"token_version\": 4")),
	               "not JSON"); /* duplicate member */
	expect_invalid(row_of("token.expiring", "{\"account_id\":\"00000000-0000-0000-0000-"
	                                        "000000000000\",\"platform\":\"x\",\"external_id\":"
	                                        "\"1\",\"token_version\":1,\"reason\":"
	                                        "\"refresh_failing\"}"),
	               "not the subject");
	expect_invalid(row_of("token.expiring", expiring_data(", \"error\": {\"code\": \"x\", "
	                                                      "\"token\": \"SECRET\"}")),
	               "data.error: unexpected member \"token\"");
	expect_invalid(row_of("token.expiring", expiring_data(", \"error\": {\"message\": \"m\"}")),
	               "data.error: code is missing");
	char big[2048];
	memset(big, 'a', 1100);
	big[1100] = '\0';
	char extra[2200];
	snprintf(extra, sizeof(extra), ", \"error\": {\"code\": \"x\", \"message\": \"%s\"}", big);
	expect_invalid(row_of("token.expiring", expiring_data(extra)), "message must be 1 to 1024");
	/* 1024 two-byte characters: 2048 bytes, within the limit (code points). */
	char wide[4096] = "";
	for (int i = 0; i < 1024; i++)
		strcat(wide, "\xc3\xa9");
	char extra2[4200];
	snprintf(extra2, sizeof(extra2), ", \"error\": {\"code\": \"x\", \"message\": \"%s\"}",
	         wide);
	expect_valid(row_of("token.expiring", expiring_data(extra2)), NULL);
}

static void test_data_fields(void)
{
	char data[512];
	const char *bad[][2] = {
	    {"\"platform\":\"Linked In\"", "not a platform name"},
	    {"\"platform\":7", "platform is not a string"},
	    {"\"token_version\":0", "token_version is not an integer >= 1"},
	    {"\"token_version\":\"3\"", "token_version is not an integer >= 1"},
	    {"\"external_id\":\"\"", "external_id must be 1 to"},
	    {"\"expires_at\":\"soon\"", "expires_at is not"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* Later members replace nothing: build the object member by member. */
		snprintf(data, sizeof(data),
		         "{\"account_id\":\"%s\",\"reason\":\"refresh_failing\",%s%s%s%s}", account,
		         bad[i][0], strstr(bad[i][0], "platform") ? "" : ",\"platform\":\"x\"",
		         strstr(bad[i][0], "external_id") ? "" : ",\"external_id\":\"e\"",
		         strstr(bad[i][0], "token_version") ? "" : ",\"token_version\":1");
		expect_invalid(row_of("token.expiring", data), bad[i][1]);
	}
	snprintf(data, sizeof(data),
	         "{\"account_id\":\"%s\",\"platform\":\"x\",\"external_id\":\"e\","
	         "\"token_version\":1}",
	         account);
	expect_invalid(row_of("token.expiring", data), "reason is missing");
}

/* Strings with quotes, backslashes, control characters and non-ASCII come
 * back out as the same strings. */
static void test_escaping(void)
{
	char data[512], *text = NULL, why[256];
	size_t len;
	enum envelope_type type;
	snprintf(data, sizeof(data),
	         "{\"account_id\":\"%s\",\"platform\":\"x\",\"external_id\":"
	         "\"a\\\"b\\\\c\\n\\u0001\\u00e9\\u2028/\",\"token_version\":1,"
	         "\"reason\":\"refresh_failing\"}",
	         account);
	struct envelope_row row = row_of("token.expiring", data);
	CHECK(envelope_build(&row, &text, &len, &type, why, sizeof(why)) == ENVELOPE_OK);
	CHECK(strstr(text, "\"external_id\":\"a\\\"b\\\\c\\u000a\\u0001\xc3\xa9\xe2\x80\xa8/\""));
	CHECK(envelope_check(text, len, why, sizeof(why)) == 0);
	free(text);
}

static void test_check(void)
{
	char why[256];
	CHECK(envelope_check("{}", 2, why, sizeof(why)) < 0);
	const char *extra = "{\"specversion\":\"1.0\",\"extra\":1}";
	CHECK(envelope_check(extra, strlen(extra), why, sizeof(why)) < 0);
	CHECK(strstr(why, "unexpected member \"extra\""));
	const char *v2 = "{\"specversion\":\"2.0\"}";
	CHECK(envelope_check(v2, strlen(v2), why, sizeof(why)) < 0);
	CHECK(envelope_type_parse("token.revoked") == ENVELOPE_REVOKED);
	CHECK(envelope_type_parse("nope") < 0);
}

static void expect_url(const char *url, const char *host, int port, const char *path,
                       const char *user, const char *password, int db)
{
	struct redis_target t;
	char err[256] = "";
	if (redis_parse_url(url, &t, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: unexpected error %s\n", url, err);
		exit(1);
	}
	CHECK(strcmp(t.host, host) == 0 && t.port == port && strcmp(t.path, path) == 0);
	CHECK(strcmp(t.user, user) == 0 && strcmp(t.password, password) == 0 && t.db == db);
}

static void expect_bad_url(const char *url, const char *want)
{
	struct redis_target t;
	char err[256] = "";
	CHECK(redis_parse_url(url, &t, err, sizeof(err)) < 0);
	if (!strstr(err, want) || strstr(err, "hunter2")) {
		fprintf(stderr, "%s: error '%s' (want '%s', never the password)\n", url, err, want);
		exit(1);
	}
}

static void test_redis_url(void)
{
	expect_url("redis://127.0.0.1:6379/0", "127.0.0.1", 6379, "", "", "", 0);
	expect_url("redis://cache.internal", "cache.internal", 6379, "", "", "", 0);
	expect_url("redis://:p%40ss@h:7000/3", "h", 7000, "", "", "p@ss", 3);
	expect_url("redis://tokend:hunter2@[::1]:6380/", "::1", 6380, "", "tokend", "hunter2", 0);
	expect_url("unix:///run/redis/redis.sock?db=2", "", 0, "/run/redis/redis.sock", "", "", 2);
	expect_url("unix://:pw@/tmp/r.sock", "", 0, "/tmp/r.sock", "", "pw", 0);
	expect_url("/tmp/redis.sock", "", 0, "/tmp/redis.sock", "", "", 0);
	expect_bad_url("rediss://h", "TLS");
	expect_bad_url("http://h", "expected redis://");
	expect_bad_url("redis://hunter2@h", "user:password");
	expect_bad_url("redis://:hunter2@h:99999", "host[:port]");
	expect_bad_url("redis://:hunter2@h:6379/x", "database number");
	expect_bad_url("redis://:%zz@h", "credentials");
	expect_bad_url("redis://", "host[:port]");
	expect_bad_url("unix://relative", "absolute");
	expect_bad_url("unix:///tmp/s?x=1", "db=N");
}

int main(void)
{
	test_exact_output();
	test_types_and_reasons();
	test_scalars();
	test_data_rules();
	test_data_fields();
	test_escaping();
	test_check();
	test_redis_url();
	puts("test_envelope: ok");
	return 0;
}
