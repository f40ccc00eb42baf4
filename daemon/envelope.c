/* envelope: build and check CloudEvents envelopes (docs/events.schema.json). */
#include "daemon/envelope.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXTERNAL_ID_MAX 512
#define PLATFORM_MAX_LEN 32
#define ERROR_CODE_MAX 64
#define UPSTREAM_CODE_MAX 128
#define MESSAGE_MAX 1024

enum error_rule { ERROR_OPTIONAL, ERROR_REQUIRED, ERROR_FORBIDDEN };

struct type_rule {
	const char *name;
	const char *reasons[3]; /* NULL-terminated */
	enum error_rule error;
};

static const struct type_rule type_rules[ENVELOPE_TYPE_COUNT] = {
    [ENVELOPE_EXPIRING] = {"token.expiring",
                           {"refresh_failing", "reauth_required"},
                           ERROR_OPTIONAL},
    [ENVELOPE_REVOKED] = {"token.revoked", {"expired", "revoked"}, ERROR_REQUIRED},
    [ENVELOPE_RECOVERED] = {"token.recovered", {"refreshed", "reauthorized"}, ERROR_FORBIDDEN},
};

/* Data members in output order. */
static const char *const data_members[] = {"account_id", "platform", "external_id", "token_version",
                                           "expires_at", "reason",   "error"};
static const char *const error_members[] = {"code", "upstream_code", "message"};
static const char *const envelope_members[] = {"specversion", "id",   "source",          "type",
                                               "subject",     "time", "datacontenttype", "data"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int fail(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -1;
}

const char *envelope_type_name(enum envelope_type type)
{
	return type_rules[type].name;
}

int envelope_type_parse(const char *name)
{
	for (int t = 0; t < ENVELOPE_TYPE_COUNT; t++)
		if (name && strcmp(name, type_rules[t].name) == 0)
			return t;
	return -1;
}

/* ---- scalar formats ---- */

static bool is_hex_lower(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "evt_" and 32 lower-case hex digits. */
static bool valid_event_id(const char *s)
{
	if (strncmp(s, "evt_", 4) != 0 || strlen(s) != 36)
		return false;
	for (size_t i = 4; i < 36; i++)
		if (!is_hex_lower(s[i]))
			return false;
	return true;
}

/* 8-4-4-4-12 lower-case hex. */
static bool valid_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !is_hex_lower(s[i]))
			return false;
	}
	return true;
}

/* YYYY-MM-DDTHH:MM:SS, optional fraction of 1 to 9 digits, then Z. */
static bool valid_time(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	size_t i = 0;
	for (; shape[i]; i++)
		if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != shape[i])
			return false;
	if (s[i] == '.') {
		size_t start = ++i;
		while (is_digit(s[i]))
			i++;
		if (i == start || i - start > 9)
			return false;
	}
	return s[i] == 'Z' && s[i + 1] == '\0';
}

/* [a-z][a-z0-9_]* up to PLATFORM_MAX_LEN. */
static bool valid_name(const char *s, size_t max, bool allow_dot)
{
	size_t len = strlen(s);
	if (len == 0 || len > max || s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 1; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || (allow_dot && c == '.')))
			return false;
	}
	return true;
}

/* Characters (code points) of valid UTF-8, as JSON Schema's maxLength counts. */
static size_t utf8_length(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* ---- members ---- */

static bool known(const char *key, const char *const *names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(key, names[i]) == 0)
			return true;
	return false;
}

/* Every member of obj is one of names. Unknown names are quoted as names
 * only (truncated), never their values. */
static int only_members(json_t *obj, const char *const *names, size_t count, const char *where,
                        char *why, size_t n)
{
	const char *key;
	json_t *value;
	json_object_foreach(obj, key, value)
	{
		if (!known(key, names, count))
			return fail(why, n, "%s: unexpected member \"%.40s\"", where, key);
	}
	return 0;
}

/* A string member: required or optional, with a length range; *out set. */
static int string_member(json_t *obj, const char *name, bool required, size_t max, const char **out,
                         const char *where, char *why, size_t n)
{
	json_t *v = json_object_get(obj, name);
	*out = NULL;
	if (!v)
		return required ? fail(why, n, "%s: %s is missing", where, name) : 0;
	if (!json_is_string(v))
		return fail(why, n, "%s: %s is not a string", where, name);
	size_t len = utf8_length(json_string_value(v));
	if (len == 0 || len > max)
		return fail(why, n, "%s: %s must be 1 to %zu characters", where, name, max);
	*out = json_string_value(v);
	return 0;
}

static int check_error(json_t *error, char *why, size_t n)
{
	const char *code, *upstream, *message;
	if (!json_is_object(error))
		return fail(why, n, "data.error is not an object");
	if (only_members(error, error_members, COUNT(error_members), "data.error", why, n) < 0 ||
	    string_member(error, "code", true, ERROR_CODE_MAX, &code, "data.error", why, n) < 0 ||
	    string_member(error, "upstream_code", false, UPSTREAM_CODE_MAX, &upstream, "data.error",
	                  why, n) < 0 ||
	    string_member(error, "message", false, MESSAGE_MAX, &message, "data.error", why, n) < 0)
		return -1;
	if (!valid_name(code, ERROR_CODE_MAX, true))
		return fail(why, n, "data.error.code \"%s\" is not a code ([a-z][a-z0-9_.]*)",
		            code);
	return 0;
}

static int check_reason(const char *reason, enum envelope_type type, char *why, size_t n)
{
	for (const char *const *r = type_rules[type].reasons; *r; r++)
		if (strcmp(reason, *r) == 0)
			return 0;
	return fail(why, n, "data.reason \"%.40s\" is not a reason of %s", reason,
	            type_rules[type].name);
}

static int check_error_rule(json_t *data, enum envelope_type type, char *why, size_t n)
{
	json_t *error = json_object_get(data, "error");
	enum error_rule rule = type_rules[type].error;
	if (!error && rule == ERROR_REQUIRED)
		return fail(why, n, "data.error is required for %s", type_rules[type].name);
	if (error && rule == ERROR_FORBIDDEN)
		return fail(why, n, "data.error is not allowed for %s", type_rules[type].name);
	return error ? check_error(error, why, n) : 0;
}

static int check_version(json_t *data, char *why, size_t n)
{
	json_t *v = json_object_get(data, "token_version");
	if (!v)
		return fail(why, n, "data: token_version is missing");
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return fail(why, n, "data: token_version is not an integer >= 1");
	return 0;
}

/* The data member against the rules for type and the envelope's subject. */
static int check_data(json_t *data, enum envelope_type type, const char *subject, char *why,
                      size_t n)
{
	const char *account, *platform, *external, *expires, *reason;
	if (!json_is_object(data))
		return fail(why, n, "data is not an object");
	if (only_members(data, data_members, COUNT(data_members), "data", why, n) < 0 ||
	    string_member(data, "account_id", true, 36, &account, "data", why, n) < 0 ||
	    string_member(data, "platform", true, PLATFORM_MAX_LEN, &platform, "data", why, n) <
	        0 ||
	    string_member(data, "external_id", true, EXTERNAL_ID_MAX, &external, "data", why, n) <
	        0 ||
	    string_member(data, "expires_at", false, 64, &expires, "data", why, n) < 0 ||
	    string_member(data, "reason", true, 64, &reason, "data", why, n) < 0 ||
	    check_version(data, why, n) < 0)
		return -1;
	if (strcmp(account, subject) != 0)
		return fail(why, n, "data.account_id is not the subject");
	if (!valid_name(platform, PLATFORM_MAX_LEN, false))
		return fail(why, n, "data.platform \"%s\" is not a platform name", platform);
	if (expires && !valid_time(expires))
		return fail(why, n, "data.expires_at is not an RFC 3339 UTC time");
	if (check_reason(reason, type, why, n) < 0)
		return -1;
	return check_error_rule(data, type, why, n);
}

/* The envelope scalars; *type set. */
static int check_scalars(const struct envelope_row *row, enum envelope_type *type, char *why,
                         size_t n)
{
	int t = envelope_type_parse(row->type);
	if (!row->event_id || !valid_event_id(row->event_id))
		return fail(why, n, "id is not \"evt_\" and 32 lower-case hex digits");
	if (t < 0)
		return fail(why, n, "type is not an event type");
	if (!row->subject || !valid_uuid(row->subject))
		return fail(why, n, "subject is not a lower-case uuid");
	if (!row->time || !valid_time(row->time))
		return fail(why, n, "time is not an RFC 3339 UTC time");
	*type = (enum envelope_type)t;
	return 0;
}

/* ---- building ---- */

/* The envelope text grows in a malloc'd buffer; failed after ENOMEM. */
struct text {
	char *p;
	size_t len, cap;
	bool failed;
};

static void put(struct text *t, const char *s, size_t n)
{
	if (t->failed)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t cap = (t->len + n + 1) * 2;
		char *p = realloc(t->p, cap);
		if (!p) {
			t->failed = true;
			return;
		}
		t->p = p;
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void put_s(struct text *t, const char *s)
{
	put(t, s, strlen(s));
}

/* A JSON string: '"', '\\' and control characters escaped; the rest is
 * valid UTF-8 (jansson checked it, or it was validated as ASCII). */
static void put_string(struct text *t, const char *s)
{
	put(t, "\"", 1);
	for (const char *run = s;; s++) {
		unsigned char c = (unsigned char)*s;
		if (c && c != '"' && c != '\\' && c >= 0x20)
			continue;
		put(t, run, (size_t)(s - run));
		if (!c)
			break;
		char esc[8];
		snprintf(esc, sizeof(esc), c == '"' || c == '\\' ? "\\%c" : "\\u%04x", c);
		put_s(t, esc);
		run = s + 1;
	}
	put(t, "\"", 1);
}

/* A checked data member's value: a string, an integer or the error object. */
static void put_value(struct text *t, json_t *v)
{
	char num[24];
	if (json_is_string(v)) {
		put_string(t, json_string_value(v));
	} else if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		put_s(t, num);
	} else {
		put(t, "{", 1);
		for (size_t i = 0, n = 0; i < COUNT(error_members); i++) {
			json_t *m = json_object_get(v, error_members[i]);
			if (!m)
				continue;
			put_s(t, n++ ? ",\"" : "\"");
			put_s(t, error_members[i]);
			put(t, "\":", 2);
			put_string(t, json_string_value(m));
		}
		put(t, "}", 1);
	}
}

/* The envelope of a checked row and data: members in a fixed order. */
static char *dump_envelope(const struct envelope_row *row, json_t *data, size_t *len)
{
	struct text t = {0};
	put_s(&t, "{\"specversion\":\"1.0\",\"id\":");
	put_string(&t, row->event_id);
	put_s(&t, ",\"source\":\"tokend\",\"type\":");
	put_string(&t, row->type);
	put_s(&t, ",\"subject\":");
	put_string(&t, row->subject);
	put_s(&t, ",\"time\":");
	put_string(&t, row->time);
	put_s(&t, ",\"datacontenttype\":\"application/json\",\"data\":{");
	for (size_t i = 0, n = 0; i < COUNT(data_members); i++) {
		json_t *v = json_object_get(data, data_members[i]);
		if (!v)
			continue;
		put_s(&t, n++ ? ",\"" : "\"");
		put_s(&t, data_members[i]);
		put(&t, "\":", 2);
		put_value(&t, v);
	}
	put(&t, "}}", 2);
	if (t.failed) {
		free(t.p);
		return NULL;
	}
	*len = t.len;
	return t.p;
}

enum envelope_result envelope_build(const struct envelope_row *row, char **text, size_t *len,
                                    enum envelope_type *type, char *why, size_t whylen)
{
	json_error_t jerr;
	*text = NULL;
	if (check_scalars(row, type, why, whylen) < 0)
		return ENVELOPE_INVALID;
	if (!row->data || row->data_len > ENVELOPE_DATA_MAX) {
		fail(why, whylen, "data is missing or larger than %d bytes", ENVELOPE_DATA_MAX);
		return ENVELOPE_INVALID;
	}
	json_t *data = json_loadb(row->data, row->data_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!data) {
		fail(why, whylen, "data is not JSON: %s", jerr.text);
		return ENVELOPE_INVALID;
	}
	enum envelope_result rc = ENVELOPE_INVALID;
	if (check_data(data, *type, row->subject, why, whylen) == 0) {
		*text = dump_envelope(row, data, len);
		rc = *text ? ENVELOPE_OK : ENVELOPE_NOMEM;
		if (!*text)
			fail(why, whylen, "out of memory");
	}
	json_decref(data);
	return rc;
}

/* ---- checking a whole envelope ---- */

static int const_member(json_t *env, const char *name, const char *want, char *why, size_t n)
{
	const char *got = json_string_value(json_object_get(env, name));
	if (!got || strcmp(got, want) != 0)
		return fail(why, n, "%s is not \"%s\"", name, want);
	return 0;
}

static int check_envelope(json_t *env, char *why, size_t n)
{
	enum envelope_type type;
	if (!json_is_object(env))
		return fail(why, n, "the event is not a JSON object");
	if (only_members(env, envelope_members, COUNT(envelope_members), "event", why, n) < 0 ||
	    const_member(env, "specversion", "1.0", why, n) < 0 ||
	    const_member(env, "source", "tokend", why, n) < 0 ||
	    const_member(env, "datacontenttype", "application/json", why, n) < 0)
		return -1;
	struct envelope_row row = {
	    .event_id = json_string_value(json_object_get(env, "id")),
	    .type = json_string_value(json_object_get(env, "type")),
	    .subject = json_string_value(json_object_get(env, "subject")),
	    .time = json_string_value(json_object_get(env, "time")),
	};
	if (check_scalars(&row, &type, why, n) < 0)
		return -1;
	json_t *data = json_object_get(env, "data");
	if (!data)
		return fail(why, n, "data is missing");
	return check_data(data, type, row.subject, why, n);
}

int envelope_check(const char *text, size_t len, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *env = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!env)
		return fail(why, whylen, "not JSON: %s", jerr.text);
	int rc = check_envelope(env, why, whylen);
	json_decref(env);
	return rc;
}
