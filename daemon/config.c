/* config: the key table and everything it drives — defaults, the file and
 * TOKEND_* environment parsers, validation, the printed effective config and
 * the Markdown reference (docs/configuration.md). */
#include "daemon/config.h"
#include "daemon/redis.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#define MS_PER_SECOND INT64_C(1000)
#define CONFIG_FILE_MAX (1024 * 1024)
#define KEY_NAME_MAX 96
#define WHY_MAX 256
#define SHOWN_MAX 64
#define ENV_PREFIX "TOKEND_"

enum key_type {
	TYPE_STRING,
	TYPE_SECRET, /* a string never printed, logged or echoed in an error */
	TYPE_BOOL,
	TYPE_INT,
	TYPE_DURATION, /* int64_t milliseconds */
	TYPE_LOG_LEVEL,
	TYPE_HOST_PORT, /* a string that must parse as host:port */
};

/* One key. Global keys live in struct config at offset; platform keys in
 * struct policy_params at offset, once per registry platform. */
struct key {
	const char *name;
	enum key_type type;
	const char *default_text; /* parsed like a file value; NULL for platform keys */
	bool reloadable;
	int64_t min, max; /* TYPE_INT, TYPE_DURATION (ms) */
	size_t offset;
	const char *help;
};

#define RELOAD true
#define RESTART false
#define MINUTE POLICY_MS_PER_MINUTE
#define HOUR POLICY_MS_PER_HOUR
#define DAY POLICY_MS_PER_DAY
#define GLOBAL(name, type, def, reload, min, max, field, help)                                     \
	{                                                                                          \
		name, type, def, reload, min, max, offsetof(struct config, field), help            \
	}
/* A platform key; def NULL = the platform descriptor's own default. */
#define PLATFORM(name, type, def, min, max, field, help)                                           \
	{                                                                                          \
		name, type, def, RELOAD, min, max, offsetof(struct platform_settings, field), help \
	}
#define PLATFORM_LEAD(name, field, help)                                                           \
	PLATFORM(name, TYPE_DURATION, NULL, 0, 365 * DAY, schedule.field, help)

/* Sorted by name (looked up with bsearch; tests check the order). */
static const struct key global_keys[] = {
    GLOBAL("admin_listen", TYPE_HOST_PORT, "127.0.0.1:9180", RESTART, 0, 0, admin_listen,
           "Address of the admin HTTP listener, host:port (IPv6 as [addr]:port). "
           "Keep it on loopback or a private network."),
    GLOBAL("admin_token_file", TYPE_STRING, "", RESTART, 0, 0, admin_token_file,
           "File holding the admin API's bearer token (one line of printable characters; "
           "e.g. a systemd credential, /run/credentials/tokend.service/admin_token). When "
           "set, every endpoint but /healthz needs 'Authorization: Bearer <token>'. "
           "Empty: no token."),
    GLOBAL("database_url", TYPE_SECRET, "", RESTART, 0, 0, database_url,
           "PostgreSQL connection: a libpq conninfo string or URI. Empty: libpq defaults "
           "(PG* environment variables). Secret: never printed, logged or echoed."),
    GLOBAL("events_channel", TYPE_STRING, "", RELOAD, 0, 0, events_channel,
           "Redis Pub/Sub channel on which each relayed event is also PUBLISHed, a "
           "best-effort nudge for live listeners. Empty: no PUBLISH. The stream is the "
           "contract."),
    GLOBAL("events_stream", TYPE_STRING, "tokend:events", RELOAD, 0, 0, events_stream,
           "Redis stream the outbox relay XADDs events to (docs/events.md)."),
    GLOBAL("events_stream_maxlen", TYPE_INT, "1000000", RELOAD, 0, INT64_C(1000000000000),
           events_stream_maxlen,
           "Approximate cap on the stream's length (XADD MAXLEN ~). 0: uncapped."),
    GLOBAL("http_ca_file", TYPE_STRING, "", RELOAD, 0, 0, http_ca_file,
           "PEM bundle to verify platform servers with. Empty: the system's CAs. TLS is "
           "always verified."),
    GLOBAL("http_connect_timeout", TYPE_DURATION, "10s", RELOAD, 1, HOUR, http_connect_timeout_ms,
           "Longest wait for a connection to a platform."),
    GLOBAL("http_max_response_size", TYPE_INT, "1048576", RELOAD, 1024, 67108864,
           http_max_response_bytes,
           "Largest token-endpoint response body read, in bytes; larger ones fail."),
    GLOBAL("http_timeout", TYPE_DURATION, "30s", RELOAD, 1, HOUR, http_timeout_ms,
           "Longest a whole token request may take, connection included."),
    GLOBAL("instance_id", TYPE_STRING, "", RESTART, 0, 0, instance_id,
           "Name of this instance in refresh leases and logs. Empty: hostname:pid."),
    GLOBAL("keyring_file", TYPE_STRING, "", RESTART, 0, 0, keyring_file,
           "File holding the token-sealing keyring. Empty: $CREDENTIALS_DIRECTORY/keyring "
           "(systemd LoadCredential=)."),
    GLOBAL("load_batch_rows", TYPE_INT, "5000", RELOAD, 1, 1000000, load_batch_rows,
           "Rows handled per event-loop turn while loading accounts, so the loop stays "
           "responsive."),
    GLOBAL("log_level", TYPE_LOG_LEVEL, "info", RELOAD, 0, 0, log_level,
           "Most verbose level logged: err, warning, notice, info or debug."),
    GLOBAL("log_timestamps", TYPE_BOOL, "false", RELOAD, 0, 0, log_timestamps,
           "Prefix log lines with a UTC timestamp (leave off under journald, which stamps "
           "lines itself)."),
    GLOBAL("max_inflight", TYPE_INT, "64", RELOAD, 1, 100000, max_inflight,
           "Most actions (refreshes, exchanges, checks) in flight at once."),
    GLOBAL("outbox_retention", TYPE_DURATION, "7d", RELOAD, 0, 365 * DAY, outbox_retention_ms,
           "Published outbox rows are deleted this long after they were published."),
    GLOBAL("reconnect_max", TYPE_DURATION, "30s", RELOAD, 1, DAY, reconnect_max_ms,
           "Backoff ceiling between reconnection attempts to PostgreSQL or Redis."),
    GLOBAL("reconnect_min", TYPE_DURATION, "1s", RELOAD, 1, HOUR, reconnect_min_ms,
           "First wait before reconnecting after a lost PostgreSQL or Redis connection; "
           "doubles up to reconnect_max."),
    GLOBAL("redis_url", TYPE_SECRET, "redis://127.0.0.1:6379/0", RESTART, 0, 0, redis_url,
           "Redis for events: redis://[[user]:password@]host[:port][/db], "
           "unix:///path[?db=N] or /path. Empty: this instance does not relay the outbox. "
           "Secret: never printed, logged or echoed."),
    GLOBAL("refresh_lease", TYPE_DURATION, "2m", RELOAD, 1000, HOUR, refresh_lease_ms,
           "How long a claimed account stays reserved for this instance's refresh; must "
           "exceed http_timeout."),
    GLOBAL("relay_batch", TYPE_INT, "500", RELOAD, 1, 100000, relay_batch,
           "Outbox rows relayed per batch (one pipelined MULTI/XADD.../EXEC)."),
    GLOBAL("sched_batch", TYPE_INT, "256", RELOAD, 1, 100000, sched_batch,
           "Due entries handed out per scheduler timer firing."),
    GLOBAL("shutdown_timeout", TYPE_DURATION, "10s", RELOAD, 0, HOUR, shutdown_timeout_ms,
           "On SIGTERM, how long in-flight work may take to finish before tokend exits."),
    GLOBAL("state_directory", TYPE_STRING, "/var/lib/tokend", RESTART, 0, 0, state_directory,
           "Directory of the refresh journal. Default: $STATE_DIRECTORY (systemd "
           "StateDirectory=) when set, else /var/lib/tokend."),
};

/* The keys of each platform, "platform.<name>.<key>"; sorted by name. */
static const struct key platform_keys[] = {
    PLATFORM("base_url", TYPE_STRING, NULL, 0, 0, base_url,
             "Root of the platform's token endpoints (tests point it at the fake server)."),
    PLATFORM("client_id", TYPE_STRING, "", 0, 0, client_id,
             "The OAuth client id (app id, client key) tokend refreshes as."),
    PLATFORM("client_secret_file", TYPE_STRING, "", 0, 0, client_secret_file,
             "File holding the client secret. Empty: $CREDENTIALS_DIRECTORY/<platform>_client_"
             "secret when it exists (systemd LoadCredential=). Never on the command line."),
    PLATFORM_LEAD("jitter", jitter_ms,
                  "Largest random shift of refresh and check times, earlier only, to spread "
                  "bursts."),
    PLATFORM("max_inflight", TYPE_INT, "16", 1, 100000, max_inflight,
             "Most requests in flight to this platform at once."),
    PLATFORM("rate_limit", TYPE_INT, "50", 0, 1000000, rate_limit,
             "Most requests per second to this platform (token bucket); 0: no limit."),
    PLATFORM_LEAD("reauth_warn_lead", reauth_warn_lead_ms,
                  "Record token.expiring (reauth_required) this long before a deadline that no "
                  "refresh can extend."),
    PLATFORM_LEAD("refresh_lead", refresh_lead_ms,
                  "Refresh this long before the access token expires (must be > 0 for platforms "
                  "that refresh)."),
    PLATFORM_LEAD("warn_lead", warn_lead_ms,
                  "Record token.expiring (refresh_failing) when the token is still not refreshed "
                  "this long before it expires."),
};

#define GLOBAL_KEY_COUNT (sizeof(global_keys) / sizeof(global_keys[0]))
#define PLATFORM_KEY_COUNT (sizeof(platform_keys) / sizeof(platform_keys[0]))

/* One key of the whole set: a global key, or a platform key of one platform. */
struct key_ref {
	const struct key *key;
	int platform; /* registry index; -1 for a global key */
	char name[KEY_NAME_MAX];
};

struct type_ops {
	const char *name;
	/* Parse text into the field; on error why says why (values via shown()). */
	int (*parse)(const struct key *key, const char *text, void *field, char *why, size_t n);
	/* Check a field's value (config_validate); same error contract. */
	int (*check)(const struct key *key, const void *field, char *why, size_t n);
	void (*print)(const void *field, FILE *out);
	bool (*equal)(const void *a, const void *b);
};

/* ---- small helpers ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool has_control_char(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* A value as it may appear in an error: truncated, unprintable bytes as '?',
 * and never a secret's. Returns buf. */
static const char *shown(const struct key *key, const char *text, char *buf, size_t n)
{
	size_t len = 0;
	if (key && key->type == TYPE_SECRET) {
		snprintf(buf, n, "(secret)");
		return buf;
	}
	for (; text[len] && len < SHOWN_MAX && len + 4 < n; len++) {
		unsigned char c = (unsigned char)text[len];
		buf[len] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	snprintf(buf + len, n - len, "%s", text[len] ? "..." : "");
	return buf;
}

static void free_string(char *s, bool secret)
{
	if (s && secret)
		OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static void *field_ptr(struct config *cfg, const struct key_ref *ref)
{
	char *base = ref->platform < 0 ? (char *)cfg : (char *)&cfg->platform[ref->platform];
	return base + ref->key->offset;
}

static const void *field_cptr(const struct config *cfg, const struct key_ref *ref)
{
	return field_ptr((struct config *)cfg, ref);
}

/* Canonical duration: the largest unit that divides it exactly. */
static void format_duration(int64_t ms, char *buf, size_t n)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} units[] = {{DAY, "d"}, {HOUR, "h"}, {MINUTE, "m"}, {MS_PER_SECOND, "s"}};
	if (ms == 0) {
		snprintf(buf, n, "0s");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms % units[i].ms == 0) {
			snprintf(buf, n, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
			return;
		}
	}
	snprintf(buf, n, "%" PRId64 "ms", ms);
}

/* ---- the key set ---- */

/* The key at index i of the whole set, in table order: global keys, then
 * each platform's keys in registry order. false past the end. */
static bool key_at(size_t i, struct key_ref *ref)
{
	if (i < GLOBAL_KEY_COUNT) {
		ref->key = &global_keys[i];
		ref->platform = -1;
		snprintf(ref->name, sizeof(ref->name), "%s", ref->key->name);
		return true;
	}
	i -= GLOBAL_KEY_COUNT;
	if (i / PLATFORM_KEY_COUNT >= platform_count())
		return false;
	ref->key = &platform_keys[i % PLATFORM_KEY_COUNT];
	ref->platform = (int)(i / PLATFORM_KEY_COUNT);
	snprintf(ref->name, sizeof(ref->name), "platform.%s.%s",
	         platform_at((size_t)ref->platform)->name, ref->key->name);
	return true;
}

static int compare_key_name(const void *name, const void *key)
{
	return strcmp(name, ((const struct key *)key)->name);
}

static const struct key *table_find(const struct key *table, size_t count, const char *name)
{
	return bsearch(name, table, count, sizeof(table[0]), compare_key_name);
}

/* "<name>.<key>" after "platform.": the platform's index and key. */
static bool platform_key_find(const char *name, struct key_ref *ref)
{
	char platform[KEY_NAME_MAX];
	const char *dot = strchr(name, '.');
	if (!dot || (size_t)(dot - name) >= sizeof(platform))
		return false;
	snprintf(platform, sizeof(platform), "%.*s", (int)(dot - name), name);
	ref->platform = platform_index_of(platform);
	ref->key = table_find(platform_keys, PLATFORM_KEY_COUNT, dot + 1);
	return ref->platform >= 0 && ref->key;
}

/* Look a key up by its full name. false when unknown. */
static bool key_find(const char *name, struct key_ref *ref)
{
	static const char prefix[] = "platform.";
	if (strlen(name) >= sizeof(ref->name))
		return false;
	snprintf(ref->name, sizeof(ref->name), "%s", name);
	ref->platform = -1;
	if (strncmp(name, prefix, sizeof(prefix) - 1) == 0)
		return platform_key_find(name + sizeof(prefix) - 1, ref);
	ref->key = table_find(global_keys, GLOBAL_KEY_COUNT, name);
	return ref->key != NULL;
}

/* TOKEND_<KEY>: upper case, '.' as '_'. */
static void env_name(const struct key_ref *ref, char *buf, size_t n)
{
	size_t len = (size_t)snprintf(buf, n, ENV_PREFIX "%s", ref->name);
	for (size_t i = 0; i < len && i < n; i++)
		buf[i] = buf[i] == '.' ? '_' : (char)toupper((unsigned char)buf[i]);
}

static bool key_find_env(const char *name, size_t len, struct key_ref *ref)
{
	char candidate[KEY_NAME_MAX + sizeof(ENV_PREFIX)];
	for (size_t i = 0; key_at(i, ref); i++) {
		env_name(ref, candidate, sizeof(candidate));
		if (strlen(candidate) == len && memcmp(candidate, name, len) == 0)
			return true;
	}
	return false;
}

/* ---- types ---- */

static int check_string(const struct key *key, const void *field, char *why, size_t n)
{
	if (*(char *const *)field)
		return 0;
	snprintf(why, n, "not set");
	return -1;
}

static int parse_string(const struct key *key, const char *text, void *field, char *why, size_t n)
{
	char **slot = field;
	char *copy = strdup(text);
	if (!copy) {
		snprintf(why, n, "out of memory");
		return -1;
	}
	free_string(*slot, key->type == TYPE_SECRET);
	*slot = copy;
	return 0;
}

/* Quote when the parser would not give the value back otherwise. A value
 * that needs quotes and holds '"' cannot come from a file (quoted values end
 * at the next '"'); from the environment it prints quoted, lossily. */
static bool needs_quotes(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || s[0] == '"' || s[0] == '#' || is_blank(s[0]) || is_blank(s[len - 1]))
		return true;
	for (size_t i = 1; i < len; i++)
		if (s[i] == '#' && is_blank(s[i - 1]))
			return true;
	return false;
}

static void print_string(const void *field, FILE *out)
{
	const char *s = *(char *const *)field;
	if (!s)
		s = "";
	fprintf(out, needs_quotes(s) ? "\"%s\"" : "%s", s);
}

static void print_secret(const void *field, FILE *out)
{
	const char *s = *(char *const *)field;
	fputs(s && *s ? "(secret)" : "\"\"", out);
}

static bool equal_string(const void *a, const void *b)
{
	const char *sa = *(char *const *)a, *sb = *(char *const *)b;
	return sa == sb || (sa && sb && strcmp(sa, sb) == 0);
}

static bool valid_port(const char *s)
{
	long port = 0;
	size_t len = strlen(s);
	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		port = port * 10 + (s[i] - '0');
	}
	return port >= 1 && port <= 65535;
}

/* host:port, the host a name or IPv4 address, or an IPv6 address in brackets. */
static bool valid_host_port(const char *s)
{
	const char *end,
	    *allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_";
	size_t host_len;
	if (s[0] == '[') {
		end = strchr(s, ']');
		host_len = end ? (size_t)(end - s - 1) : 0;
		if (!end || host_len == 0 || end[1] != ':' ||
		    strspn(s + 1, "0123456789abcdefABCDEF:.") != host_len)
			return false;
		return valid_port(end + 2);
	}
	end = strchr(s, ':');
	host_len = end ? (size_t)(end - s) : 0;
	if (host_len == 0 || strspn(s, allowed) != host_len)
		return false;
	return valid_port(end + 1);
}

static int check_host_port(const struct key *key, const void *field, char *why, size_t n)
{
	const char *s = *(char *const *)field;
	char buf[SHOWN_MAX + 8];
	if (s && valid_host_port(s))
		return 0;
	snprintf(why, n, "expected host:port, got '%s'", s ? shown(key, s, buf, sizeof(buf)) : "");
	return -1;
}

static int parse_host_port(const struct key *key, const char *text, void *field, char *why,
                           size_t n)
{
	const char *p = text;
	if (check_host_port(key, &p, why, n) < 0)
		return -1;
	return parse_string(key, text, field, why, n);
}

static int parse_bool(const struct key *key, const char *text, void *field, char *why, size_t n)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	char buf[SHOWN_MAX + 8];
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
			*(bool *)field = strcasecmp(text, yes[i]) == 0;
			return 0;
		}
	}
	snprintf(why, n, "expected true/false/yes/no/on/off/1/0, got '%s'",
	         shown(key, text, buf, sizeof(buf)));
	return -1;
}

static int check_nothing(const struct key *key, const void *field, char *why, size_t n)
{
	return 0;
}

static void print_bool(const void *field, FILE *out)
{
	fputs(*(const bool *)field ? "true" : "false", out);
}

static bool equal_bool(const void *a, const void *b)
{
	return *(const bool *)a == *(const bool *)b;
}

/* Decimal digits (at least one) into *value; false on junk or overflow.
 * *end is set past the digits. */
static bool parse_digits(const char *text, int64_t *value, const char **end)
{
	int64_t v = 0;
	const char *p = text;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return false;
		v = v * 10 + (*p - '0');
	}
	*value = v;
	*end = p;
	return p != text;
}

static int check_int(const struct key *key, const void *field, char *why, size_t n)
{
	int64_t v = *(const int64_t *)field;
	if (v >= key->min && v <= key->max)
		return 0;
	snprintf(why, n, "%" PRId64 " is out of range %" PRId64 "..%" PRId64, v, key->min,
	         key->max);
	return -1;
}

static int parse_int(const struct key *key, const char *text, void *field, char *why, size_t n)
{
	char buf[SHOWN_MAX + 8];
	const char *end;
	int64_t v;
	bool negative = text[0] == '-';
	if (!parse_digits(text + negative, &v, &end) || *end) {
		snprintf(why, n, "bad integer '%s'", shown(key, text, buf, sizeof(buf)));
		return -1;
	}
	v = negative ? -v : v;
	if (check_int(key, &v, why, n) < 0)
		return -1;
	*(int64_t *)field = v;
	return 0;
}

static void print_int(const void *field, FILE *out)
{
	fprintf(out, "%" PRId64, *(const int64_t *)field);
}

static bool equal_int64(const void *a, const void *b)
{
	return *(const int64_t *)a == *(const int64_t *)b;
}

/* "300" (seconds), "300s", "5m", "2h", "7d", "1500ms"; false on junk,
 * negatives or overflow. */
static bool parse_duration(const char *text, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"", MS_PER_SECOND}, {"ms", 1},   {"s", MS_PER_SECOND},
	             {"m", MINUTE},       {"h", HOUR}, {"d", DAY}};
	const char *end;
	int64_t count;
	if (!parse_digits(text, &count, &end))
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].unit) == 0)
			return !__builtin_mul_overflow(count, units[i].ms, ms);
	return false;
}

static int check_duration(const struct key *key, const void *field, char *why, size_t n)
{
	int64_t v = *(const int64_t *)field;
	char value[32], min[32], max[32];
	if (v >= key->min && v <= key->max)
		return 0;
	format_duration(v, value, sizeof(value));
	format_duration(key->min, min, sizeof(min));
	format_duration(key->max, max, sizeof(max));
	snprintf(why, n, "%s is out of range %s..%s", value, min, max);
	return -1;
}

static int parse_duration_value(const struct key *key, const char *text, void *field, char *why,
                                size_t n)
{
	char buf[SHOWN_MAX + 8];
	int64_t ms;
	if (!parse_duration(text, &ms)) {
		snprintf(why, n, "bad duration '%s'", shown(key, text, buf, sizeof(buf)));
		return -1;
	}
	if (check_duration(key, &ms, why, n) < 0)
		return -1;
	*(int64_t *)field = ms;
	return 0;
}

static void print_duration(const void *field, FILE *out)
{
	char buf[32];
	format_duration(*(const int64_t *)field, buf, sizeof(buf));
	fputs(buf, out);
}

static int parse_log_level(const struct key *key, const char *text, void *field, char *why,
                           size_t n)
{
	char buf[SHOWN_MAX + 8];
	int level = log_level_parse(text);
	if (level < 0) {
		snprintf(why, n, "expected err/warning/notice/info/debug, got '%s'",
		         shown(key, text, buf, sizeof(buf)));
		return -1;
	}
	*(enum log_level *)field = (enum log_level)level;
	return 0;
}

static bool valid_log_level(enum log_level level)
{
	return level >= LOG_LEVEL_ERR && level <= LOG_LEVEL_DEBUG;
}

static int check_log_level(const struct key *key, const void *field, char *why, size_t n)
{
	if (valid_log_level(*(const enum log_level *)field))
		return 0;
	snprintf(why, n, "%d is not a log level", (int)*(const enum log_level *)field);
	return -1;
}

static void print_log_level(const void *field, FILE *out)
{
	enum log_level level = *(const enum log_level *)field;
	fputs(valid_log_level(level) ? log_level_name(level) : "(invalid)", out);
}

static bool equal_log_level(const void *a, const void *b)
{
	return *(const enum log_level *)a == *(const enum log_level *)b;
}

static const struct type_ops type_ops[] = {
    [TYPE_STRING] = {"string", parse_string, check_string, print_string, equal_string},
    [TYPE_SECRET] = {"secret string", parse_string, check_string, print_secret, equal_string},
    [TYPE_BOOL] = {"bool", parse_bool, check_nothing, print_bool, equal_bool},
    [TYPE_INT] = {"integer", parse_int, check_int, print_int, equal_int64},
    [TYPE_DURATION] = {"duration", parse_duration_value, check_duration, print_duration,
                       equal_int64},
    [TYPE_LOG_LEVEL] = {"log level", parse_log_level, check_log_level, print_log_level,
                        equal_log_level},
    [TYPE_HOST_PORT] = {"host:port", parse_host_port, check_host_port, print_string, equal_string},
};

/* ---- parsing ---- */

/* Set one key from text; where ("line 3: admin_listen", "environment
 * TOKEND_X") prefixes the error. */
static int set_value(struct config *cfg, const struct key_ref *ref, const char *text,
                     const char *where, char *err, size_t errlen)
{
	char why[WHY_MAX];
	if (has_control_char(text))
		snprintf(why, sizeof(why), "control character in value");
	else if (type_ops[ref->key->type].parse(ref->key, text, field_ptr(cfg, ref), why,
	                                        sizeof(why)) == 0)
		return 0;
	set_err(err, errlen, "%s: %s", where, why);
	return -1;
}

struct span {
	const char *p;
	size_t len;
};

static struct span trim(struct span s)
{
	while (s.len > 0 && is_blank(s.p[0])) {
		s.p++;
		s.len--;
	}
	while (s.len > 0 && is_blank(s.p[s.len - 1]))
		s.len--;
	return s;
}

/* The value part of a line (after '='), without quotes or trailing comment.
 * why set on error. */
static int value_span(struct span *v, const char **why)
{
	*v = trim(*v);
	if (v->len > 0 && v->p[0] == '"') {
		const char *close = memchr(v->p + 1, '"', v->len - 1);
		struct span rest;
		if (!close) {
			*why = "missing closing quote";
			return -1;
		}
		rest = trim((struct span){close + 1, v->len - (size_t)(close + 1 - v->p)});
		if (rest.len > 0 && rest.p[0] != '#') {
			*why = "unexpected text after closing quote";
			return -1;
		}
		*v = (struct span){v->p + 1, (size_t)(close - v->p - 1)};
		return 0;
	}
	for (size_t i = 0; i < v->len; i++) {
		if (v->p[i] == '#' && (i == 0 || is_blank(v->p[i - 1]))) {
			v->len = i;
			break;
		}
	}
	*v = trim(*v);
	return 0;
}

/* Split "key = value" into the key (looked up) and a malloc'd value. */
static int split_line(struct span line, size_t lineno, struct key_ref *ref, char **value, char *err,
                      size_t errlen)
{
	const char *eq = memchr(line.p, '=', line.len), *why;
	struct span key, val;
	char name[KEY_NAME_MAX], buf[SHOWN_MAX + 8];
	if (!eq) {
		set_err(err, errlen, "line %zu: expected 'key = value'", lineno);
		return -1;
	}
	key = trim((struct span){line.p, (size_t)(eq - line.p)});
	if (key.len == 0) {
		set_err(err, errlen, "line %zu: missing key before '='", lineno);
		return -1;
	}
	snprintf(name, sizeof(name), "%.*s", (int)key.len, key.p);
	if (key.len >= sizeof(name) || !key_find(name, ref)) {
		set_err(err, errlen, "line %zu: unknown key '%s'", lineno,
		        shown(NULL, name, buf, sizeof(buf)));
		return -1;
	}
	val = (struct span){eq + 1, line.len - (size_t)(eq + 1 - line.p)};
	if (value_span(&val, &why) < 0) {
		set_err(err, errlen, "line %zu: %s: %s", lineno, ref->name, why);
		return -1;
	}
	*value = strndup(val.p, val.len);
	if (!*value)
		set_err(err, errlen, "line %zu: out of memory", lineno);
	return *value ? 0 : -1;
}

static int parse_line(struct config *cfg, struct span line, size_t lineno, char *err, size_t errlen)
{
	struct key_ref ref;
	char *value = NULL, where[KEY_NAME_MAX + 32];
	int rc;
	if (line.len > 0 && line.p[line.len - 1] == '\r')
		line.len--;
	line = trim(line);
	if (line.len == 0 || line.p[0] == '#')
		return 0;
	if (memchr(line.p, '\0', line.len)) {
		set_err(err, errlen, "line %zu: NUL byte", lineno);
		return -1;
	}
	if (split_line(line, lineno, &ref, &value, err, errlen) < 0)
		return -1;
	snprintf(where, sizeof(where), "line %zu: %s", lineno, ref.name);
	rc = set_value(cfg, &ref, value, where, err, errlen);
	free_string(value, ref.key->type == TYPE_SECRET);
	return rc;
}

int config_parse(struct config *cfg, const char *text, size_t len, char *err, size_t errlen)
{
	size_t pos = 0, lineno = 0;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		pos = 3; /* UTF-8 byte order mark */
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		if (parse_line(cfg, (struct span){text + pos, end - pos}, ++lineno, err, errlen) <
		    0)
			return -1;
		pos = end + 1;
	}
	return 0;
}

static int apply_env_entry(struct config *cfg, const char *entry, char *err, size_t errlen)
{
	const char *eq = strchr(entry, '=');
	char where[KEY_NAME_MAX + 32];
	struct key_ref ref;
	int name_len;
	if (!eq)
		return 0;
	name_len = (int)(eq - entry);
	if (!key_find_env(entry, (size_t)name_len, &ref)) {
		log_warning("config: environment %.*s: unknown key, ignored", name_len, entry);
		return 0;
	}
	snprintf(where, sizeof(where), "environment %.*s", name_len, entry);
	return set_value(cfg, &ref, eq + 1, where, err, errlen);
}

int config_apply_env(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
	for (size_t i = 0; envp && envp[i]; i++) {
		if (strncmp(envp[i], ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
			continue;
		if (apply_env_entry(cfg, envp[i], err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* ---- life cycle ---- */

struct config *config_new(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	struct key_ref ref;
	if (!cfg)
		return NULL;
	for (size_t i = 0; i < platform_count(); i++) {
		cfg->platform[i].schedule = platform_at(i)->schedule;
		const char *url = platform_at(i)->default_base_url;
		cfg->platform[i].base_url = strdup(url ? url : "");
		if (!cfg->platform[i].base_url)
			goto fail;
	}
	for (size_t i = 0; key_at(i, &ref); i++) {
		if (!ref.key->default_text)
			continue; /* the platform descriptor's default, set above */
		if (set_value(cfg, &ref, ref.key->default_text, "default", NULL, 0) < 0)
			goto fail; /* out of memory, or a bad default (the tests catch those) */
	}
	return cfg;
fail:
	config_free(cfg);
	return NULL;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	struct key_ref ref;
	for (size_t i = 0; key_at(i, &ref); i++) {
		const struct key *key = ref.key;
		char **slot = field_ptr(cfg, &ref);
		if (key->type == TYPE_STRING || key->type == TYPE_SECRET ||
		    key->type == TYPE_HOST_PORT)
			free_string(*slot, key->type == TYPE_SECRET);
	}
	free(cfg);
}

/* The first directory of $STATE_DIRECTORY (systemd may list several, ':'
 * separated) replaces the built-in default. */
static int apply_state_directory(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
	static const char name[] = "STATE_DIRECTORY=";
	struct key_ref ref;
	char *dir;
	int rc;
	for (; envp && *envp && strncmp(*envp, name, sizeof(name) - 1) != 0; envp++)
		;
	if (!envp || !*envp || (*envp)[sizeof(name) - 1] == '\0')
		return 0;
	dir = strndup(*envp + sizeof(name) - 1, strcspn(*envp + sizeof(name) - 1, ":"));
	if (!dir) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	key_find("state_directory", &ref);
	rc = set_value(cfg, &ref, dir, "environment STATE_DIRECTORY", err, errlen);
	free(dir);
	return rc;
}

/* Move the len bytes of buf (cap bytes) to a new buffer of new_cap bytes and
 * cleanse the old one: the file may hold a password. NULL on ENOMEM (buf
 * untouched). */
static char *grow(char *buf, size_t len, size_t cap, size_t new_cap)
{
	char *bigger = malloc(new_cap);
	if (!bigger || !buf)
		return bigger;
	memcpy(bigger, buf, len);
	OPENSSL_cleanse(buf, cap);
	free(buf);
	return bigger;
}

/* The whole of f, NUL-terminated, in a malloc'd buffer; NULL with errno set. */
static char *read_all(FILE *f, size_t *len_out)
{
	size_t cap = 0, len = 0, got = 1;
	char *buf = NULL, *bigger;
	while (got > 0) {
		if (cap - len < 2) {
			if (cap >= CONFIG_FILE_MAX) {
				errno = EFBIG;
				goto fail;
			}
			bigger = grow(buf, len, cap, cap ? cap * 2 : 4096);
			if (!bigger)
				goto fail;
			buf = bigger;
			cap = cap ? cap * 2 : 4096;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
	}
	if (ferror(f))
		goto fail;
	buf[len] = '\0';
	*len_out = len;
	return buf;
fail:
	if (buf)
		OPENSSL_cleanse(buf, cap);
	free(buf);
	return NULL;
}

static int load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char why[WHY_MAX];
	size_t len = 0;
	char *text = NULL;
	FILE *f;
	int rc = -1;
	errno = 0;
	f = fopen(path, "re");
	if (!f || !(text = read_all(f, &len))) {
		set_err(err, errlen, "cannot read %s: %s", path, strerror(errno ? errno : EIO));
		goto fail;
	}
	if (config_parse(cfg, text, len, why, sizeof(why)) < 0) {
		set_err(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	rc = 0;
fail:
	if (text)
		OPENSSL_cleanse(text, len);
	free(text);
	if (f)
		fclose(f);
	return rc;
}

struct config *config_load(const char *path, char *const *envp, char *err, size_t errlen)
{
	struct config *cfg = config_new();
	if (!cfg) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (apply_state_directory(cfg, envp, err, errlen) < 0)
		goto fail;
	if (path && load_file(cfg, path, err, errlen) < 0)
		goto fail;
	if (config_apply_env(cfg, envp, err, errlen) < 0)
		goto fail;
	if (config_validate(cfg, err, errlen) < 0)
		goto fail;
	return cfg;
fail:
	config_free(cfg);
	return NULL;
}

/* ---- validation ---- */

static int validate_platforms(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < platform_count(); i++) {
		const struct policy_params *p = &cfg->platform[i].schedule;
		if (p->kind != REFRESH_NONE && p->refresh_lead_ms <= 0) {
			set_err(err, errlen,
			        "platform.%s.refresh_lead: must be > 0 (%s refreshes tokens)",
			        platform_at(i)->name, platform_at(i)->name);
			return -1;
		}
	}
	return 0;
}

/* The outbox relay's keys: a stream name, a redis_url that parses (its
 * error never shows the URL: it may hold a password). */
static int validate_events(const struct config *cfg, char *err, size_t errlen)
{
	struct redis_target target;
	if (cfg->events_stream[0] == '\0') {
		set_err(err, errlen, "events_stream: must not be empty");
		return -1;
	}
	int rc = cfg->redis_url[0] ? redis_parse_url(cfg->redis_url, &target, err, errlen) : 0;
	OPENSSL_cleanse(&target, sizeof(target));
	return rc;
}

static int validate_cross(const struct config *cfg, char *err, size_t errlen)
{
	char min[32], max[32];
	if (cfg->reconnect_min_ms > cfg->reconnect_max_ms) {
		format_duration(cfg->reconnect_min_ms, min, sizeof(min));
		format_duration(cfg->reconnect_max_ms, max, sizeof(max));
		set_err(err, errlen, "reconnect_min (%s) is greater than reconnect_max (%s)", min,
		        max);
		return -1;
	}
	if (cfg->state_directory[0] == '\0') {
		set_err(err, errlen, "state_directory: must not be empty");
		return -1;
	}
	if (cfg->refresh_lease_ms <= cfg->http_timeout_ms) {
		format_duration(cfg->refresh_lease_ms, min, sizeof(min));
		format_duration(cfg->http_timeout_ms, max, sizeof(max));
		set_err(err, errlen, "refresh_lease (%s) must be longer than http_timeout (%s)",
		        min, max);
		return -1;
	}
	if (validate_events(cfg, err, errlen) < 0)
		return -1;
	return validate_platforms(cfg, err, errlen);
}

int config_validate(const struct config *cfg, char *err, size_t errlen)
{
	char why[WHY_MAX];
	struct key_ref ref;
	for (size_t i = 0; key_at(i, &ref); i++) {
		if (type_ops[ref.key->type].check(ref.key, field_cptr(cfg, &ref), why,
		                                  sizeof(why)) < 0) {
			set_err(err, errlen, "%s: %s", ref.name, why);
			return -1;
		}
	}
	return validate_cross(cfg, err, errlen);
}

/* ---- output ---- */

void config_print(const struct config *cfg, FILE *out)
{
	struct key_ref ref;
	for (size_t i = 0; key_at(i, &ref); i++) {
		fprintf(out, "%s = ", ref.name);
		type_ops[ref.key->type].print(field_cptr(cfg, &ref), out);
		fputc('\n', out);
	}
}

int config_warn_restart_keys(const struct config *old_cfg, const struct config *new_cfg)
{
	struct key_ref ref;
	int changed = 0;
	for (size_t i = 0; key_at(i, &ref); i++) {
		if (ref.key->reloadable || type_ops[ref.key->type].equal(field_cptr(old_cfg, &ref),
		                                                         field_cptr(new_cfg, &ref)))
			continue;
		log_warning("config: %s changed; takes effect after restart", ref.name);
		changed++;
	}
	return changed;
}

static const char reference_intro[] =
    "# tokend configuration\n"
    "\n"
    "<!-- Generated from the key table in daemon/config.c by\n"
    "     `tokend --print-config-reference > docs/configuration.md`; do not edit.\n"
    "     tests/unit/test_config.c fails when this file is out of date. -->\n"
    "\n"
    "tokend takes its settings from built-in defaults, then an optional\n"
    "configuration file, then `TOKEND_*` environment variables: each source\n"
    "overrides the one before. `systemd/tokend.conf.example` is a commented\n"
    "example.\n"
    "\n"
    "## File format\n"
    "\n"
    "- One `key = value` per line; whitespace around keys and values is ignored,\n"
    "  and so are blank lines. CRLF line endings are accepted.\n"
    "- `#` starts a comment: a whole line, or the rest of a line when the `#`\n"
    "  follows whitespace (`a#b` is a value, `a #b` is `a` and a comment).\n"
    "- Double quotes around a value keep it verbatim, with any spaces and `#`\n"
    "  inside (`instance_id = \"  a # b \"`). There are no escapes; a quoted value\n"
    "  ends at the next `\"`.\n"
    "- Unknown keys, malformed lines and bad values are errors that name the\n"
    "  line and key; the daemon does not start (or keeps its old configuration on\n"
    "  reload). When a key is given twice, the last one wins.\n"
    "\n"
    "## Values\n"
    "\n"
    "- duration: a whole number with a unit `ms`, `s`, `m`, `h` or `d`\n"
    "  (`1500ms`, `30s`, `5m`, `2h`, `7d`); a plain number is seconds. The\n"
    "  effective configuration prints the largest exact unit.\n"
    "- bool: `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`.\n"
    "- log level: `err`, `warning`, `notice`, `info` or `debug`.\n"
    "- host:port: a host name or IPv4 address, or an IPv6 address in brackets\n"
    "  (`[::1]:9180`), then a port 1..65535.\n"
    "- secret string: never printed (the effective configuration shows\n"
    "  `(secret)`), logged, or echoed in an error message.\n"
    "\n"
    "## Environment\n"
    "\n"
    "Every key can be set as `TOKEND_<KEY>`: the key in upper case with `.` as\n"
    "`_`, e.g. `TOKEND_DATABASE_URL`, `TOKEND_PLATFORM_X_REFRESH_LEAD`. The value\n"
    "is taken literally (no quotes, no comments). Errors name the variable.\n"
    "Other `TOKEND_*` variables are logged and ignored. `$STATE_DIRECTORY`\n"
    "(set by systemd's `StateDirectory=`) replaces the default of\n"
    "`state_directory`.\n"
    "\n"
    "## Reload\n"
    "\n"
    "SIGHUP reads the file and environment again into a new configuration and\n"
    "validates it. If it is valid it replaces the running one; if not, tokend\n"
    "keeps the old configuration and logs why. Keys marked *restart* below keep\n"
    "their old value until the next restart, and a warning names each one that\n"
    "changed.\n"
    "\n"
    "## Keys\n"
    "\n"
    "Platform keys come in one group per supported platform,\n"
    "`platform.<name>.<key>`; their defaults are the platform's schedule.\n"
    "\n";

static void describe_type(const struct key *key, char *buf, size_t n)
{
	char min[32], max[32];
	if (key->type == TYPE_INT) {
		snprintf(buf, n, "integer, %" PRId64 "..%" PRId64, key->min, key->max);
	} else if (key->type == TYPE_DURATION) {
		format_duration(key->min, min, sizeof(min));
		format_duration(key->max, max, sizeof(max));
		snprintf(buf, n, "duration, %s..%s", min, max);
	} else {
		snprintf(buf, n, "%s", type_ops[key->type].name);
	}
}

static void print_reference_row(const struct key_ref *ref, FILE *out)
{
	char type[96];
	const struct key *key = ref->key;
	describe_type(key, type, sizeof(type));
	fprintf(out, "| `%s` | %s | `", ref->name, type);
	if (!key->default_text) {
		/* The platform descriptor's own default. */
		const struct platform *p = platform_at((size_t)ref->platform);
		struct platform_settings d = {
		    .schedule = p->schedule,
		    .base_url = (char *)(p->default_base_url ? p->default_base_url : "")};
		type_ops[key->type].print((const char *)&d + key->offset, out);
	} else {
		fputs(key->default_text[0] ? key->default_text : "\"\"", out);
	}
	fprintf(out, "` | %s | %s |\n", key->reloadable ? "yes" : "restart", key->help);
}

void config_print_reference(FILE *out)
{
	struct key_ref ref;
	fputs(reference_intro, out);
	fputs("| Key | Type | Default | Reload | Description |\n", out);
	fputs("|---|---|---|---|---|\n", out);
	for (size_t i = 0; key_at(i, &ref); i++)
		print_reference_row(&ref, out);
}
