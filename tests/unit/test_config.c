/* test_config: config parsing (every type, quotes, comments, CRLF), the
 * environment, validation, secrets, and the golden files: the printed
 * defaults (tests/unit/golden/config_defaults.txt) and docs/configuration.md.
 * UPDATE_GOLDEN=1 rewrites both golden files from the current output. */
#include "daemon/config.h"

#include "tests/unit/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK_CONTAINS(haystack, needle)                                                           \
	do {                                                                                       \
		if (!strstr((haystack), (needle))) {                                               \
			fprintf(stderr, "%s:%d: '%s' does not contain '%s'\n", __FILE__, __LINE__, \
			        (haystack), (needle));                                             \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_STREQ(a, b)                                                                          \
	do {                                                                                       \
		if (strcmp((a), (b)) != 0) {                                                       \
			fprintf(stderr, "%s:%d: '%s' != '%s'\n", __FILE__, __LINE__, (a), (b));    \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/* Parse text into a fresh config; the parse must succeed. */
#define PARSE_OK(text) parse_ok(__FILE__, __LINE__, (text))
/* Parse text into a fresh config; it must fail with an error containing want. */
#define PARSE_ERR(text, want) parse_err(__FILE__, __LINE__, (text), (want))

#define HINT "regenerate with: tokend --print-config-reference > docs/configuration.md"

static char err[512];

static struct config *parse_ok(const char *file, int line, const char *text)
{
	struct config *cfg = config_new();
	CHECK(cfg);
	if (config_parse(cfg, text, strlen(text), err, sizeof(err)) != 0) {
		fprintf(stderr, "%s:%d: unexpected error: %s\n", file, line, err);
		exit(1);
	}
	return cfg;
}

static void parse_err(const char *file, int line, const char *text, const char *want)
{
	struct config *cfg = config_new();
	CHECK(cfg);
	err[0] = '\0';
	if (config_parse(cfg, text, strlen(text), err, sizeof(err)) == 0 || !strstr(err, want)) {
		fprintf(stderr, "%s:%d: parsing '%s': want an error containing '%s', got '%s'\n",
		        file, line, text, want, err);
		exit(1);
	}
	config_free(cfg);
}

/* config_print (cfg != NULL) or config_print_reference (cfg == NULL) into a
 * malloc'd string. */
static char *printed(const struct config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	CHECK(out);
	if (cfg)
		config_print(cfg, out);
	else
		config_print_reference(out);
	CHECK(fclose(out) == 0);
	return buf;
}

static int platform_x(void)
{
	int x = platform_index_of("x");
	CHECK(x >= 0);
	return x;
}

static void test_defaults(void)
{
	struct config *cfg = config_new();
	char *out;
	CHECK(cfg);
	CHECK_STREQ(cfg->database_url, "");
	CHECK_STREQ(cfg->admin_listen, "127.0.0.1:9180");
	CHECK_STREQ(cfg->keyring_file, "");
	CHECK_STREQ(cfg->state_directory, "/var/lib/tokend");
	CHECK_STREQ(cfg->instance_id, "");
	CHECK(cfg->log_level == LOG_LEVEL_INFO);
	CHECK(!cfg->log_timestamps);
	CHECK(cfg->load_batch_rows == 5000);
	CHECK(cfg->sched_batch == 256);
	CHECK(cfg->max_inflight == 64);
	CHECK(cfg->reconnect_min_ms == 1000);
	CHECK(cfg->reconnect_max_ms == 30000);
	CHECK(cfg->shutdown_timeout_ms == 10000);
	for (size_t i = 0; i < platform_count(); i++) {
		CHECK(memcmp(&cfg->platform[i].schedule, &platform_at(i)->schedule,
		             sizeof(cfg->platform[i].schedule)) == 0);
		CHECK(platform_at(i)->default_base_url &&
		      strcmp(cfg->platform[i].base_url, platform_at(i)->default_base_url) == 0);
	}
	CHECK(config_validate(cfg, err, sizeof(err)) == 0);
	out = printed(cfg);
	CHECK_CONTAINS(out, "reconnect_min = 1s\n");
	CHECK_CONTAINS(out, "platform.x.refresh_lead = 5m\n");
	CHECK_CONTAINS(out, "database_url = \"\"\n");
	free(out);
	config_free(cfg);
	config_free(NULL);
}

/* Every key once, in table order; names sorted within the global keys and
 * within each platform's group (the table is bsearched). */
static void test_table_order(void)
{
	struct config *cfg = config_new();
	char *out = printed(cfg), *line, *save = NULL, prev[128] = "";
	size_t lines = 0;
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128];
		const char *dot;
		CHECK(sscanf(line, "%127s =", name) == 1);
		dot = strrchr(name, '.');
		if (prev[0] &&
		    (dot ? strncmp(prev, name, (size_t)(dot - name + 1)) == 0 : !strchr(prev, '.')))
			CHECK(strcmp(prev, name) < 0);
		snprintf(prev, sizeof(prev), "%s", name);
		lines++;
	}
	CHECK(lines == 25 + 9 * platform_count()); /* global keys + keys per platform */
	free(out);
	config_free(cfg);
}

static void test_strings(void)
{
	struct config *cfg = PARSE_OK("instance_id = tokend-a\nkeyring_file = /run/keys/ring\n"
	                              "state_directory=/srv/tokend\n");
	CHECK_STREQ(cfg->instance_id, "tokend-a");
	CHECK_STREQ(cfg->keyring_file, "/run/keys/ring");
	CHECK_STREQ(cfg->state_directory, "/srv/tokend");
	config_free(cfg);
	cfg = PARSE_OK("instance_id = a\ninstance_id = b\nkeyring_file =\n");
	CHECK_STREQ(cfg->instance_id, "b"); /* last one wins */
	CHECK_STREQ(cfg->keyring_file, "");
	config_free(cfg);
	PARSE_ERR("instance_id = a\x01z\n", "line 1: instance_id: control character in value");
	PARSE_ERR("instance_id = a\tz\n", "line 1: instance_id: control character in value");
}

static void test_bools(void)
{
	static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes"};
	static const char *const no[] = {"false", "no", "off", "0", "False", "OFF"};
	char text[64];
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		struct config *cfg;
		snprintf(text, sizeof(text), "log_timestamps = %s", yes[i]);
		cfg = PARSE_OK(text);
		CHECK(cfg->log_timestamps);
		snprintf(text, sizeof(text), "log_timestamps = %s\n", no[i]);
		CHECK(config_parse(cfg, text, strlen(text), err, sizeof(err)) == 0);
		CHECK(!cfg->log_timestamps);
		config_free(cfg);
	}
	PARSE_ERR("\nlog_timestamps = maybe\n",
	          "line 2: log_timestamps: expected true/false/yes/no/on/off/1/0, got 'maybe'");
	PARSE_ERR("log_timestamps = 2\n", "line 1: log_timestamps: expected true/false");
	PARSE_ERR("log_timestamps =\n", "line 1: log_timestamps: expected true/false");
}

static void test_ints(void)
{
	struct config *cfg = PARSE_OK("sched_batch = 1\nmax_inflight = 100000\n"
	                              "load_batch_rows = 007\n");
	CHECK(cfg->sched_batch == 1);
	CHECK(cfg->max_inflight == 100000);
	CHECK(cfg->load_batch_rows == 7);
	config_free(cfg);
	PARSE_ERR("sched_batch = 0\n", "line 1: sched_batch: 0 is out of range 1..100000");
	PARSE_ERR("sched_batch = -3\n", "line 1: sched_batch: -3 is out of range 1..100000");
	PARSE_ERR("max_inflight = 100001\n", "line 1: max_inflight: 100001 is out of range");
	PARSE_ERR("sched_batch = abc\n", "line 1: sched_batch: bad integer 'abc'");
	PARSE_ERR("sched_batch = 12a\n", "line 1: sched_batch: bad integer '12a'");
	PARSE_ERR("sched_batch = 1 2\n", "line 1: sched_batch: bad integer '1 2'");
	PARSE_ERR("sched_batch = +5\n", "line 1: sched_batch: bad integer '+5'");
	PARSE_ERR("sched_batch = -\n", "line 1: sched_batch: bad integer '-'");
	PARSE_ERR("sched_batch =\n", "line 1: sched_batch: bad integer ''");
	PARSE_ERR("sched_batch = 99999999999999999999\n", "line 1: sched_batch: bad integer");
}

static void test_durations(void)
{
	static const struct {
		const char *text;
		int64_t ms;
		const char *canonical;
	} good[] = {
	    {"300", 300000, "5m"},  {"300s", 300000, "5m"},   {"5m", 300000, "5m"},
	    {"2h", 7200000, "2h"},  {"7d", 604800000, "7d"},  {"1500ms", 1500, "1500ms"},
	    {"0", 0, "0s"},         {"90s", 90000, "90s"},    {"36h", 129600000, "36h"},
	    {"1000ms", 1000, "1s"}, {"48h", 172800000, "2d"}, {"365d", 31536000000, "365d"},
	};
	static const char *const bad[] = {"5 minutes", "-5s", "5x",  "",    "s",    "1.5h",
	                                  "5S",        "+5s", "5 m", "ms5", "0x10", "5mss"};
	int x = platform_x();
	char text[128], want[128], *out;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct config *cfg;
		snprintf(text, sizeof(text), "platform.x.jitter = %s\n", good[i].text);
		cfg = PARSE_OK(text);
		CHECK(cfg->platform[x].schedule.jitter_ms == good[i].ms);
		out = printed(cfg);
		snprintf(want, sizeof(want), "platform.x.jitter = %s\n", good[i].canonical);
		CHECK_CONTAINS(out, want);
		free(out);
		config_free(cfg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "platform.x.refresh_lead = %s\n", bad[i]);
		snprintf(want, sizeof(want), "line 1: platform.x.refresh_lead: bad duration '%s'",
		         bad[i]);
		PARSE_ERR(text, want);
	}
	PARSE_ERR("platform.x.jitter = 9223372036854775807d\n", "platform.x.jitter: bad duration");
	PARSE_ERR("platform.x.jitter = 99999999999999999999\n", "platform.x.jitter: bad duration");
	PARSE_ERR("platform.x.jitter = 366d\n", "line 1: platform.x.jitter: 366d is out of range "
	                                        "0s..365d");
	PARSE_ERR("reconnect_min = 0\n", "line 1: reconnect_min: 0s is out of range 1ms..1h");
	PARSE_ERR("shutdown_timeout = 2h\n", "line 1: shutdown_timeout: 2h is out of range");
}

static void test_log_levels(void)
{
	static const char *const names[] = {"err", "warning", "notice", "info", "debug"};
	char text[64], want[64], *out;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct config *cfg;
		snprintf(text, sizeof(text), "log_level = %s\n", names[i]);
		cfg = PARSE_OK(text);
		CHECK(cfg->log_level == (enum log_level)log_level_parse(names[i]));
		out = printed(cfg);
		snprintf(want, sizeof(want), "log_level = %s\n", names[i]);
		CHECK_CONTAINS(out, want);
		free(out);
		config_free(cfg);
	}
	PARSE_ERR("log_level = loud\n",
	          "line 1: log_level: expected err/warning/notice/info/debug, got 'loud'");
}

static void test_host_port(void)
{
	static const char *const good[] = {"127.0.0.1:9180", "localhost:80", "[::1]:9180",
	                                   "tokend-admin.internal:65535", "0.0.0.0:1"};
	static const char *const bad[] = {"x",       ":80",   "h:",       "h:0",
	                                  "h:65536", "h:8o",  "::1:80",   "[::1]80",
	                                  "[]:80",   "h :80", "h:123456", "[::1:80"};
	char text[128], want[128];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct config *cfg;
		snprintf(text, sizeof(text), "admin_listen = %s\n", good[i]);
		cfg = PARSE_OK(text);
		CHECK_STREQ(cfg->admin_listen, good[i]);
		config_free(cfg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "admin_listen = \"%s\"\n", bad[i]);
		snprintf(want, sizeof(want), "line 1: admin_listen: expected host:port, got '%s'",
		         bad[i]);
		PARSE_ERR(text, want);
	}
}

/* The messages quoted in the brief, exactly. */
static void test_error_messages(void)
{
	PARSE_ERR("# tokend\n\n# database\n\nlog_level = info\n\ndatabse_url = x\n",
	          "line 7: unknown key 'databse_url'");
	CHECK_STREQ(err, "line 7: unknown key 'databse_url'");
	PARSE_ERR("\n\nadmin_listen = x\n", "");
	CHECK_STREQ(err, "line 3: admin_listen: expected host:port, got 'x'");
	PARSE_ERR("\n\n\n\n\n\n\n\nplatform.x.refresh_lead = 5 minutes\n", "");
	CHECK_STREQ(err, "line 9: platform.x.refresh_lead: bad duration '5 minutes'");
	PARSE_ERR("platform.nosuch.refresh_lead = 5m\n",
	          "line 1: unknown key 'platform.nosuch.refresh_lead'");
	PARSE_ERR("platform.x.nosuch = 5m\n", "line 1: unknown key 'platform.x.nosuch'");
	PARSE_ERR("platform.x = 5m\n", "line 1: unknown key 'platform.x'");
	PARSE_ERR("Log_Level = info\n", "line 1: unknown key 'Log_Level'");
	PARSE_ERR("log level = info\n", "line 1: unknown key 'log level'");
	PARSE_ERR("\xff\xfe = 1\n", "line 1: unknown key '?\?'");
	PARSE_ERR("log_level info\n", "line 1: expected 'key = value'");
	PARSE_ERR(" = info\n", "line 1: missing key before '='");
}

static void test_nul_byte(void)
{
	static const char text[] = "log_level = info\nsched_batch = 1\0junk\n";
	struct config *cfg = config_new();
	CHECK(cfg);
	CHECK(config_parse(cfg, text, sizeof(text) - 1, err, sizeof(err)) == -1);
	CHECK_STREQ(err, "line 2: NUL byte");
	config_free(cfg);
}

static void test_quotes(void)
{
	struct config *cfg = PARSE_OK("instance_id = \"  a # b  \"   # trailing comment\n"
	                              "keyring_file = \"\"\n"
	                              "admin_listen=\"[::1]:9180\"#comment\n"
	                              "sched_batch = \"12\"\n");
	char *out = printed(cfg);
	CHECK_STREQ(cfg->instance_id, "  a # b  ");
	CHECK_STREQ(cfg->keyring_file, "");
	CHECK_STREQ(cfg->admin_listen, "[::1]:9180");
	CHECK(cfg->sched_batch == 12);
	CHECK_CONTAINS(out, "instance_id = \"  a # b  \"\n");
	free(out);
	config_free(cfg);
	PARSE_ERR("instance_id = \"abc\n", "line 1: instance_id: missing closing quote");
	PARSE_ERR("instance_id = \"abc\" def\n",
	          "line 1: instance_id: unexpected text after closing quote");
	cfg = PARSE_OK("instance_id = a\"b\"\n"); /* quotes only count around a value */
	CHECK_STREQ(cfg->instance_id, "a\"b\"");
	config_free(cfg);
}

static void test_comments(void)
{
	struct config *cfg = PARSE_OK("# full-line comment\n"
	                              "   # indented comment\n"
	                              "\t\n"
	                              "#instance_id = commented-out\n"
	                              "keyring_file = /k#1 # the # in /k#1 is no comment\n"
	                              "state_directory = /srv\t# tab before the comment\n"
	                              "instance_id = # only a comment: empty value\n");
	CHECK_STREQ(cfg->keyring_file, "/k#1");
	CHECK_STREQ(cfg->state_directory, "/srv");
	CHECK_STREQ(cfg->instance_id, "");
	config_free(cfg);
	PARSE_ERR("log_level = debug#x\n", "line 1: log_level: expected err/warning");
	cfg = PARSE_OK("");
	config_free(cfg);
	cfg = PARSE_OK("\n\n# nothing\n");
	config_free(cfg);
}

static void test_crlf(void)
{
	struct config *cfg = PARSE_OK("\xEF\xBB\xBF# BOM and CRLF\r\nsched_batch = 9\r\n"
	                              "instance_id = \"q\"  \r\n\r\nlog_timestamps = yes\r\n"
	                              "max_inflight = 3");
	CHECK(cfg->sched_batch == 9);
	CHECK_STREQ(cfg->instance_id, "q");
	CHECK(cfg->log_timestamps);
	CHECK(cfg->max_inflight == 3);
	config_free(cfg);
	PARSE_ERR("sched_batch = 9\r\nsched_batch = x\r\n", "line 2: sched_batch: bad integer 'x'");
	PARSE_ERR("instance_id = a\r\r\n", "line 1: instance_id: control character");
}

static void test_env(void)
{
	char *env[] = {"PATH=/usr/bin",
	               "TOKEND_SCHED_BATCH=9",
	               "TOKEND_PLATFORM_X_REFRESH_LEAD=7m",
	               "TOKEND_INSTANCE_ID=  spaced # literal  ",
	               "TOKEND_SOURCE_DIR=/src (not a key: ignored)",
	               "TOKEND_LOG_LEVEL",
	               NULL};
	char *bad_env[] = {"TOKEND_ADMIN_LISTEN=x", NULL};
	char *bad_duration[] = {"TOKEND_PLATFORM_X_WARN_LEAD=5 minutes", NULL};
	struct config *cfg = PARSE_OK("sched_batch = 5\nplatform.x.refresh_lead = 3m\n");
	CHECK(config_apply_env(cfg, env, err, sizeof(err)) == 0);
	CHECK(cfg->sched_batch == 9);
	CHECK(cfg->platform[platform_x()].schedule.refresh_lead_ms == 7 * 60000);
	CHECK_STREQ(cfg->instance_id, "  spaced # literal  ");
	CHECK(config_apply_env(cfg, bad_env, err, sizeof(err)) == -1);
	CHECK_STREQ(err, "environment TOKEND_ADMIN_LISTEN: expected host:port, got 'x'");
	CHECK(config_apply_env(cfg, bad_duration, err, sizeof(err)) == -1);
	CHECK_STREQ(err, "environment TOKEND_PLATFORM_X_WARN_LEAD: bad duration '5 minutes'");
	CHECK(config_apply_env(cfg, NULL, err, sizeof(err)) == 0);
	config_free(cfg);
}

/* Every key printed by config_print can be set through its TOKEND_ name. */
static void test_env_every_key(void)
{
	struct config *defaults = config_new(), *cfg = config_new();
	char *out = printed(defaults), *line, *save = NULL, *again;
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char entry[256], *env[] = {entry, NULL};
		size_t n = (size_t)snprintf(entry, sizeof(entry), "TOKEND_%s", line);
		char *eq = strstr(entry, " = ");
		CHECK(eq && n < sizeof(entry));
		for (char *p = entry; p < eq; p++)
			*p = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
		memmove(eq + 1, eq + 3, strlen(eq + 3) + 1);
		*eq = '=';
		if (strcmp(eq + 1, "\"\"") == 0)
			eq[1] = '\0';
		if (config_apply_env(cfg, env, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s: %s\n", entry, err);
			CHECK(0);
		}
	}
	free(out);
	out = printed(defaults);
	again = printed(cfg);
	CHECK_STREQ(again, out);
	free(again);
	free(out);
	config_free(cfg);
	config_free(defaults);
}

static void test_secret(void)
{
	static const char password[] = "hunter2";
	char *bad_env[] = {"TOKEND_DATABASE_URL=postgres://u:hunter2@db/x\x01", NULL};
	char *env[] = {"TOKEND_DATABASE_URL=postgres://u:hunter2@db/x", NULL};
	struct config *cfg = PARSE_OK("database_url = \"postgres://u:hunter2@db/tokend\"\n");
	char *out = printed(cfg);
	CHECK_STREQ(cfg->database_url, "postgres://u:hunter2@db/tokend");
	CHECK_CONTAINS(out, "database_url = (secret)\n");
	CHECK(!strstr(out, password));
	free(out);
	PARSE_ERR("database_url = postgres://u:hunter2@db/\x02x\n", "line 1: database_url: ");
	CHECK(!strstr(err, password));
	PARSE_ERR("database_url = \"postgres://u:hunter2@db/x\n", "line 1: database_url: ");
	CHECK(!strstr(err, password));
	PARSE_ERR("database_url = \"postgres://u:hunter2\" x\n", "line 1: database_url: ");
	CHECK(!strstr(err, password));
	CHECK(config_apply_env(cfg, bad_env, err, sizeof(err)) == -1);
	CHECK_CONTAINS(err, "environment TOKEND_DATABASE_URL: ");
	CHECK(!strstr(err, password));
	CHECK(config_apply_env(cfg, env, err, sizeof(err)) == 0);
	CHECK_STREQ(cfg->database_url, "postgres://u:hunter2@db/x");
	config_free(cfg);
}

static void test_validate(void)
{
	struct config *cfg = PARSE_OK("reconnect_min = 1m\nreconnect_max = 30s\n");
	int x = platform_x();
	CHECK(config_validate(cfg, err, sizeof(err)) == -1);
	CHECK_STREQ(err, "reconnect_min (1m) is greater than reconnect_max (30s)");
	config_free(cfg);
	cfg = PARSE_OK("reconnect_min = 30s\nreconnect_max = 30s\n");
	CHECK(config_validate(cfg, err, sizeof(err)) == 0);
	config_free(cfg);
	cfg = PARSE_OK("platform.x.refresh_lead = 0\n");
	CHECK(config_validate(cfg, err, sizeof(err)) == -1);
	CHECK_CONTAINS(err, "platform.x.refresh_lead: must be > 0");
	cfg->platform[x].schedule.kind = REFRESH_NONE; /* then a lead of 0 is fine */
	CHECK(config_validate(cfg, err, sizeof(err)) == 0);
	cfg->platform[x].schedule.jitter_ms = -1;
	CHECK(config_validate(cfg, err, sizeof(err)) == -1);
	CHECK_STREQ(err, "platform.x.jitter: -1ms is out of range 0s..365d");
	config_free(cfg);
	cfg = PARSE_OK("state_directory = \"\"\n");
	CHECK(config_validate(cfg, err, sizeof(err)) == -1);
	CHECK_STREQ(err, "state_directory: must not be empty");
	cfg->sched_batch = 0;
	CHECK(config_validate(cfg, err, sizeof(err)) == -1);
	CHECK_STREQ(err, "sched_batch: 0 is out of range 1..100000");
	config_free(cfg);
}

static char *write_temp(const char *text)
{
	static char path[64];
	int fd;
	snprintf(path, sizeof(path), "/tmp/test_config.XXXXXX");
	fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(close(fd) == 0);
	return path;
}

static void test_load(void)
{
	char *env[] = {"TOKEND_SCHED_BATCH=9", "STATE_DIRECTORY=/var/lib/tokend-a:/var/lib/other",
	               NULL};
	char *path = write_temp("sched_batch = 5\nmax_inflight = 7\n");
	struct config *cfg = config_load(path, env, err, sizeof(err));
	CHECK(cfg);
	CHECK(cfg->sched_batch == 9); /* environment beats the file */
	CHECK(cfg->max_inflight == 7);
	CHECK_STREQ(cfg->state_directory, "/var/lib/tokend-a");
	config_free(cfg);
	unlink(path);
	path = write_temp("state_directory = /srv/tokend\n\nsched_batch = x\n");
	CHECK(!config_load(path, NULL, err, sizeof(err)));
	CHECK_CONTAINS(err, path);
	CHECK_CONTAINS(err, ": line 3: sched_batch: bad integer 'x'");
	unlink(path);
	path = write_temp("state_directory = /srv/tokend\n");
	cfg = config_load(path, env, err, sizeof(err));
	CHECK(cfg);
	CHECK_STREQ(cfg->state_directory, "/srv/tokend"); /* the file beats $STATE_DIRECTORY */
	config_free(cfg);
	unlink(path);
	CHECK(!config_load("/nonexistent/tokend.conf", NULL, err, sizeof(err)));
	CHECK_STREQ(err, "cannot read /nonexistent/tokend.conf: No such file or directory");
	CHECK(!config_load("/", NULL, err, sizeof(err)));
	CHECK_STREQ(err, "cannot read /: Is a directory");
	cfg = config_load(NULL, NULL, err, sizeof(err));
	CHECK(cfg);
	config_free(cfg);
}

static void test_validate_in_load(void)
{
	char *env[] = {"TOKEND_RECONNECT_MIN=1m", NULL};
	CHECK(!config_load(NULL, env, err, sizeof(err)));
	CHECK_CONTAINS(err, "reconnect_min (1m) is greater than reconnect_max (30s)");
}

static void test_warn_restart_keys(void)
{
	struct config *old_cfg = config_new();
	struct config *new_cfg = PARSE_OK("admin_listen = 0.0.0.0:9180\ninstance_id = b\n"
	                                  "database_url = host=db\nsched_batch = 1\n"
	                                  "log_level = debug\nplatform.x.jitter = 0\n");
	CHECK(config_warn_restart_keys(old_cfg, old_cfg) == 0);
	CHECK(config_warn_restart_keys(old_cfg, new_cfg) == 3);
	CHECK(config_warn_restart_keys(new_cfg, old_cfg) == 3);
	config_free(new_cfg);
	new_cfg = PARSE_OK("sched_batch = 1\nreconnect_max = 1m\nlog_timestamps = on\n");
	CHECK(config_warn_restart_keys(old_cfg, new_cfg) == 0);
	config_free(new_cfg);
	config_free(old_cfg);
}

/* print -> parse -> print is stable (with a secret: "(secret)" round-trips too). */
static void test_round_trip(void)
{
	struct config *cfg = PARSE_OK("instance_id = \" #x \"\nkeyring_file = a\"b\n"
	                              "platform.x.jitter = 1500ms\nlog_level = err\n"
	                              "database_url = secret\n");
	char *first = printed(cfg), *second;
	struct config *again = PARSE_OK(first);
	second = printed(again);
	CHECK_STREQ(first, second);
	free(first);
	free(second);
	config_free(again);
	config_free(cfg);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long len;
	if (!f)
		return NULL;
	CHECK(fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0);
	buf = malloc((size_t)len + 1);
	CHECK(buf && fread(buf, 1, (size_t)len, f) == (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
	printf("updated %s\n", path);
}

/* Compare actual with the file; print where they part and the hint. */
static void check_golden(const char *path, const char *actual, const char *hint)
{
	char *expected = read_file(path);
	size_t line = 1;
	if (getenv("UPDATE_GOLDEN")) {
		write_file(path, actual);
	} else if (!expected || strcmp(expected, actual) != 0) {
		for (size_t i = 0; expected && expected[i] && expected[i] == actual[i]; i++)
			line += expected[i] == '\n';
		fprintf(stderr, "%s: %s at line %zu\n%s\n", path,
		        expected ? "differs from the current output" : "cannot be read", line,
		        hint);
		exit(1);
	}
	free(expected);
}

static void test_golden_files(void)
{
	const char *src = getenv("TOKEND_SOURCE_DIR");
	struct config *cfg = config_new();
	char path[4096], *out = printed(cfg), *ref = printed(NULL);
	if (!src) {
		printf("TOKEND_SOURCE_DIR not set (ctest sets it): golden files not checked\n");
		goto done;
	}
	snprintf(path, sizeof(path), "%s/tests/unit/golden/config_defaults.txt", src);
	check_golden(path, out, "if the change is intended: UPDATE_GOLDEN=1 ./test_config");
	snprintf(path, sizeof(path), "%s/docs/configuration.md", src);
	check_golden(path, ref, HINT " (or UPDATE_GOLDEN=1 ./test_config)");
done:
	free(ref);
	free(out);
	config_free(cfg);
}

/* The example config parses and shows every global key, commented, with its
 * default. */
static void test_example_file(void)
{
	const char *src = getenv("TOKEND_SOURCE_DIR");
	struct config *cfg = config_new(), *example;
	char path[4096], *out = printed(cfg), *text, *line, *save = NULL, want[256];
	if (!src)
		goto done;
	snprintf(path, sizeof(path), "%s/systemd/tokend.conf.example", src);
	example = config_load(path, NULL, err, sizeof(err));
	if (!example)
		fprintf(stderr, "%s\n", err);
	CHECK(example);
	config_free(example);
	text = read_file(path);
	CHECK(text);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* A secret's default is printed as "(secret)": the example shows
		 * the value itself, so only the key is looked for. */
		char *secret = strstr(line, " = (secret)");
		if (secret)
			secret[3] = '\0';
		snprintf(want, sizeof(want), secret ? "\n#%s" : "\n#%s\n", line);
		if (strncmp(line, "platform.", 9) != 0)
			CHECK_CONTAINS(text, want);
	}
	free(text);
done:
	free(out);
	config_free(cfg);
}

int main(void)
{
	test_defaults();
	test_table_order();
	test_strings();
	test_bools();
	test_ints();
	test_durations();
	test_log_levels();
	test_host_port();
	test_error_messages();
	test_nul_byte();
	test_quotes();
	test_comments();
	test_crlf();
	test_env();
	test_env_every_key();
	test_secret();
	test_validate();
	test_load();
	test_validate_in_load();
	test_warn_restart_keys();
	test_round_trip();
	test_golden_files();
	test_example_file();
	printf("test_config: ok\n");
	return 0;
}
