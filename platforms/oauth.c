/* oauth: request building and response reading shared by the platform files.
 * Every buffer that held a secret is wiped before it is freed. */
#include "platforms/oauth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FORM_CONTENT_TYPE "application/x-www-form-urlencoded"
#define JSON_CONTENT_TYPE "application/json"
#define REDACTED "[redacted]"
#define TOKEN_RUN_MIN 24   /* this many token-alphabet bytes in a row may be a token */
#define SECRET_MATCH_MIN 8 /* shorter grant secrets are not searched for in error text */

static void wipe_free(void *p, size_t len)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

void oauth_free_text(char *s)
{
	if (s)
		wipe_free(s, strlen(s));
}

/* jansson keeps its own copies of strings: wipe them before the tree goes. */
static void wipe_json(json_t *json)
{
	if (json_is_string(json)) {
		OPENSSL_cleanse((char *)json_string_value(json), json_string_length(json));
	} else if (json_is_object(json)) {
		for (void *it = json_object_iter(json); it; it = json_object_iter_next(json, it))
			wipe_json(json_object_iter_value(it));
	} else if (json_is_array(json)) {
		for (size_t i = 0; i < json_array_size(json); i++)
			wipe_json(json_array_get(json, i));
	}
}

static void free_json(json_t *json)
{
	if (!json)
		return;
	wipe_json(json);
	json_decref(json);
}

void platform_request_clear(struct platform_request *req)
{
	if (!req)
		return;
	oauth_free_text(req->url);
	wipe_free(req->body, req->body_len);
	oauth_free_text(req->authorization);
	memset(req, 0, sizeof(*req));
}

void platform_result_clear(struct platform_result *res)
{
	if (!res)
		return;
	secret_free(&res->access_token);
	secret_free(&res->refresh_token);
	OPENSSL_cleanse(res, sizeof(*res)); /* zeroes: verdict, times, code and message */
}

/* ---- Request building ---- */

const char *oauth_text(const struct secret *s)
{
	return secret_empty(s) ? "" : (const char *)s->data;
}

const char *oauth_need(const struct secret *s, const char *what, char *err, size_t errlen)
{
	if (!secret_empty(s))
		return (const char *)s->data;
	snprintf(err, errlen, "no %s", what);
	return NULL;
}

const char *oauth_base(const struct platform_client *client, const char *fallback)
{
	return client->base_url && client->base_url[0] ? client->base_url : fallback;
}

static int fail(struct platform_request *out, char *err, size_t errlen, const char *why)
{
	platform_request_clear(out);
	snprintf(err, errlen, "%s", why);
	return -1;
}

char *oauth_concat(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 1);
	if (!s)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb);
	memcpy(s + la + lb, c, lc + 1);
	return s;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static size_t encoded_len(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += unreserved((unsigned char)*s) ? 1 : 3;
	return n;
}

static char *encode_into(char *dst, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (unreserved(c)) {
			*dst++ = (char)c;
			continue;
		}
		*dst++ = '%';
		*dst++ = hex[c >> 4];
		*dst++ = hex[c & 15];
	}
	return dst;
}

static const char *value_of(const struct oauth_param *p)
{
	return p->value ? p->value : "";
}

char *oauth_form_encode(const struct oauth_param *params, size_t n, size_t *len)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += (i ? 1 : 0) + encoded_len(params[i].name) + 1 +
		         encoded_len(value_of(&params[i]));
	char *form = malloc(total + 1);
	if (!form)
		return NULL;
	char *p = form;
	for (size_t i = 0; i < n; i++) {
		if (i)
			*p++ = '&';
		p = encode_into(p, params[i].name);
		*p++ = '=';
		p = encode_into(p, value_of(&params[i]));
	}
	*p = '\0';
	*len = total;
	return form;
}

/* base (trailing slashes dropped) + path [+ '?' + query]. */
static char *make_url(const char *base, const char *path, const char *query, size_t query_len)
{
	size_t base_len = strlen(base), path_len = strlen(path);
	while (base_len && base[base_len - 1] == '/')
		base_len--;
	char *url = malloc(base_len + path_len + (query ? query_len + 1 : 0) + 1);
	if (!url)
		return NULL;
	char *p = url;
	memcpy(p, base, base_len);
	p += base_len;
	memcpy(p, path, path_len);
	p += path_len;
	if (query) {
		*p++ = '?';
		memcpy(p, query, query_len);
		p += query_len;
	}
	*p = '\0';
	return url;
}

static int start(struct platform_request *out, enum platform_method method, const char *base,
                 const char *path, const struct oauth_param *params, size_t n, char *err,
                 size_t errlen)
{
	size_t query_len = 0;
	char *query = n ? oauth_form_encode(params, n, &query_len) : NULL;
	memset(out, 0, sizeof(*out)); /* an out parameter: never free what the caller left */
	out->method = method;
	if (n == 0 || query)
		out->url = make_url(base, path, query, query_len);
	wipe_free(query, query_len);
	return out->url ? 0 : fail(out, err, errlen, "out of memory");
}

int oauth_get(struct platform_request *out, const char *base, const char *path,
              const struct oauth_param *params, size_t n, char *err, size_t errlen)
{
	return start(out, PLATFORM_GET, base, path, params, n, err, errlen);
}

int oauth_post_empty(struct platform_request *out, const char *base, const char *path, char *err,
                     size_t errlen)
{
	return start(out, PLATFORM_POST, base, path, NULL, 0, err, errlen);
}

/* A compact JSON object of params as a new NUL-terminated string. */
static char *json_body(const struct oauth_param *params, size_t n, size_t *len)
{
	json_t *object = json_object();
	char *body = NULL;
	size_t size = 0;
	for (size_t i = 0; object && i < n; i++)
		if (json_object_set_new(object, params[i].name, json_string(value_of(&params[i]))))
			goto done;
	size = object ? json_dumpb(object, NULL, 0, JSON_COMPACT) : 0;
	body = size ? malloc(size + 1) : NULL;
	if (body && json_dumpb(object, body, size, JSON_COMPACT) == size) {
		body[size] = '\0';
		*len = size;
	} else {
		wipe_free(body, size);
		body = NULL;
	}
done:
	free_json(object);
	return body;
}

typedef char *body_encoder(const struct oauth_param *params, size_t n, size_t *len);

/* POST base+path with params encoded by encode as a content_type body. */
static int post_body(struct platform_request *out, const char *base, const char *path,
                     const struct oauth_param *params, size_t n, body_encoder *encode,
                     const char *content_type, char *err, size_t errlen)
{
	if (start(out, PLATFORM_POST, base, path, NULL, 0, err, errlen) != 0)
		return -1;
	out->body = encode(params, n, &out->body_len);
	if (!out->body)
		return fail(out, err, errlen, "cannot encode the body (not UTF-8, or no memory)");
	out->content_type = content_type;
	return 0;
}

int oauth_post_form(struct platform_request *out, const char *base, const char *path,
                    const struct oauth_param *params, size_t n, char *err, size_t errlen)
{
	return post_body(out, base, path, params, n, oauth_form_encode, FORM_CONTENT_TYPE, err,
	                 errlen);
}

int oauth_post_json(struct platform_request *out, const char *base, const char *path,
                    const struct oauth_param *params, size_t n, char *err, size_t errlen)
{
	return post_body(out, base, path, params, n, json_body, JSON_CONTENT_TYPE, err, errlen);
}

/* Bytes a token may hold: printable ASCII without space. */
static bool printable_token(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static int set_authorization(struct platform_request *out, char *value, char *err, size_t errlen)
{
	if (!value)
		return fail(out, err, errlen, "out of memory");
	oauth_free_text(out->authorization);
	out->authorization = value;
	return 0;
}

int oauth_basic_auth(struct platform_request *out, const char *user, const char *password,
                     char *err, size_t errlen)
{
	static const char scheme[] = "Basic ";
	char *raw = oauth_concat(user, ":", password);
	size_t raw_len = raw ? strlen(raw) : 0;
	char *header = raw ? malloc(sizeof(scheme) + 4 * ((raw_len + 2) / 3)) : NULL;
	if (header) {
		memcpy(header, scheme, sizeof(scheme) - 1);
		EVP_EncodeBlock((unsigned char *)header + sizeof(scheme) - 1, (unsigned char *)raw,
		                (int)raw_len);
	}
	oauth_free_text(raw);
	return set_authorization(out, header, err, errlen);
}

int oauth_bearer_auth(struct platform_request *out, const char *token, char *err, size_t errlen)
{
	if (!printable_token(token, strlen(token)))
		return fail(out, err, errlen, "token not printable ASCII: unusable in a header");
	return set_authorization(out, oauth_concat("Bearer ", token, ""), err, errlen);
}

int oauth_build_refresh(const struct oauth_refresh_grant *g, const struct platform_client *client,
                        const struct platform_grant *grant, struct platform_request *out, char *err,
                        size_t errlen)
{
	const char *refresh = oauth_need(grant->refresh_token, "refresh token", err, errlen);
	const char *secret = oauth_text(client->client_secret);
	if (!refresh)
		return -1;
	struct oauth_param form[4] = {{"grant_type", "refresh_token"}, {"refresh_token", refresh}};
	size_t n = 2;
	if (g->id_field)
		form[n++] = (struct oauth_param){g->id_field, client->client_id};
	if (g->secret_field)
		form[n++] = (struct oauth_param){g->secret_field, secret};
	const char *base = oauth_base(client, g->default_base);
	if (oauth_post_form(out, base, g->path, form, n, err, errlen) != 0)
		return -1;
	if (g->basic == OAUTH_BASIC_NEVER || (g->basic == OAUTH_BASIC_IF_SECRET && !secret[0]))
		return 0;
	return oauth_basic_auth(out, client->client_id ? client->client_id : "", secret, err,
	                        errlen);
}

/* ---- Platform text into the result ---- */

static bool token_byte(unsigned char c)
{
	return unreserved(c) || (c && strchr("+/=%|", c));
}

/* Length of the run of token-alphabet bytes at s when it is long enough to be
 * a token, else 0. */
static size_t token_run(const char *s, size_t len)
{
	size_t n = 0;
	while (n < len && token_byte((unsigned char)s[n]))
		n++;
	return n >= TOKEN_RUN_MIN ? n : 0;
}

/* Length of a grant secret that stands at s, else 0. */
static size_t secret_at(const struct platform_grant *grant, const char *s, size_t len)
{
	if (!grant)
		return 0;
	const struct secret *secrets[] = {grant->access_token, grant->refresh_token,
	                                  grant->app_password};
	for (size_t i = 0; i < OAUTH_COUNT(secrets); i++) {
		const struct secret *x = secrets[i];
		if (!secret_empty(x) && x->len >= SECRET_MATCH_MIN && x->len <= len &&
		    memcmp(s, x->data, x->len) == 0)
			return x->len;
	}
	return 0;
}

/* Append platform text to dst (cap bytes with its NUL), cleaned. */
static void append_clean(const struct platform_grant *grant, char *dst, size_t cap, const char *src,
                         size_t len)
{
	size_t at = strnlen(dst, cap - 1);
	for (size_t i = 0; i < len && at + 1 < cap;) {
		size_t skip = secret_at(grant, src + i, len - i);
		if (!skip)
			skip = token_run(src + i, len - i);
		if (skip) {
			if (at + sizeof(REDACTED) > cap)
				break;
			memcpy(dst + at, REDACTED, sizeof(REDACTED) - 1);
			at += sizeof(REDACTED) - 1;
			i += skip;
			continue;
		}
		unsigned char c = (unsigned char)src[i++];
		dst[at++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[at] = '\0';
}

void oauth_set_code(struct oauth_ctx *ctx, const char *text, size_t len)
{
	struct platform_result *out = ctx->out;
	out->upstream_code[0] = '\0';
	append_clean(ctx->grant, out->upstream_code, sizeof(out->upstream_code), text, len);
}

void oauth_append_message(struct oauth_ctx *ctx, const char *text, size_t len)
{
	struct platform_result *out = ctx->out;
	append_clean(ctx->grant, out->message, sizeof(out->message), text, len);
}

static void drop_tokens(struct platform_result *out)
{
	secret_free(&out->access_token);
	secret_free(&out->refresh_token);
	out->access_expires_at_ms = 0;
	out->refresh_expires_at_ms = 0;
}

void oauth_malformed(struct oauth_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	drop_tokens(ctx->out);
	ctx->out->verdict = VERDICT_MALFORMED;
	va_start(ap, fmt);
	vsnprintf(ctx->out->message, sizeof(ctx->out->message), fmt, ap);
	va_end(ap);
}

/* ---- Reading bodies ---- */

json_t *oauth_member(json_t *object, const char *key)
{
	json_t *value = key && json_is_object(object) ? json_object_get(object, key) : NULL;
	return json_is_null(value) ? NULL : value;
}

bool oauth_in_list(const char *s, const char *const *list)
{
	for (; s && list && *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

int oauth_take_token(struct oauth_ctx *ctx, const char *key, bool required, struct secret *dst)
{
	json_t *value = oauth_member(ctx->root, key);
	size_t len = json_string_length(value);
	if (!required && (!value || (json_is_string(value) && len == 0)))
		return 0;
	if (!json_is_string(value)) {
		oauth_malformed(ctx, "%s: %s", key, value ? "not a string" : "missing");
		return -1;
	}
	if (len == 0 || len > OAUTH_TOKEN_MAX || !printable_token(json_string_value(value), len)) {
		oauth_malformed(ctx, "%s: empty, over %d bytes, or not printable ASCII", key,
		                OAUTH_TOKEN_MAX);
		return -1;
	}
	if (secret_set(dst, json_string_value(value), len) != 0) {
		oauth_malformed(ctx, "%s: out of memory", key);
		return -1;
	}
	return 0;
}

int oauth_check_expiry(struct oauth_ctx *ctx, const char *what, int64_t at_ms)
{
	int64_t now = ctx->resp->now_ms;
	if (at_ms > now && at_ms - now < OAUTH_LIFETIME_MAX_S * 1000)
		return 0;
	oauth_malformed(ctx, "%s: expiry not within 10 years from now", what);
	return -1;
}

/* A lifetime in seconds (key may be NULL): *at_ms = now + lifetime. -1
 * with why set when present but unreadable. */
static int take_ttl(struct oauth_ctx *ctx, const char *key, int64_t *at_ms, char *why, size_t n)
{
	json_t *value = oauth_member(ctx->root, key);
	json_int_t seconds = json_integer_value(value);
	if (!value)
		return 0;
	if (!json_is_integer(value) || seconds <= 0 || seconds >= OAUTH_LIFETIME_MAX_S) {
		snprintf(why, n, "%s: not an integer number of seconds in (0, 10 years)", key);
		return -1;
	}
	*at_ms = ctx->resp->now_ms + (int64_t)seconds * 1000;
	return 0;
}

/* An expiry in Unix seconds (key may be NULL); as take_ttl. */
static int take_at(struct oauth_ctx *ctx, const char *key, int64_t *at_ms, char *why, size_t n)
{
	json_t *value = oauth_member(ctx->root, key);
	json_int_t seconds = json_integer_value(value);
	int64_t now = ctx->resp->now_ms;
	if (!value)
		return 0;
	if (!json_is_integer(value) || seconds <= 0 || seconds > INT64_MAX / 1000 ||
	    seconds * 1000 <= now || seconds * 1000 - now >= OAUTH_LIFETIME_MAX_S * 1000) {
		snprintf(why, n, "%s: not a Unix time within 10 years from now", key);
		return -1;
	}
	*at_ms = (int64_t)seconds * 1000;
	return 0;
}

/* The tokens decide: once they are readable the answer is OK, because the
 * platform has already rotated the refresh token and the new one must be
 * kept. An unreadable expiry is then treated as unknown (the platform's
 * default lifetime applies) and said in message. */
void oauth_take_tokens(struct oauth_ctx *ctx, const struct oauth_token_fields *fields)
{
	struct platform_result *out = ctx->out;
	char why[128] = "";
	if (oauth_take_token(ctx, fields->access, true, &out->access_token) != 0 ||
	    (fields->refresh && oauth_take_token(ctx, fields->refresh, false, &out->refresh_token)))
		return;
	if (take_ttl(ctx, fields->access_ttl, &out->access_expires_at_ms, why, sizeof(why)) != 0)
		out->access_expires_at_ms = 0;
	if (take_ttl(ctx, fields->refresh_ttl, &out->refresh_expires_at_ms, why, sizeof(why)) ||
	    (!out->refresh_expires_at_ms &&
	     take_at(ctx, fields->refresh_at, &out->refresh_expires_at_ms, why, sizeof(why))))
		out->refresh_expires_at_ms = 0;
	if (why[0])
		snprintf(out->message, sizeof(out->message), "%s; expiry treated as unknown", why);
	out->verdict = VERDICT_OK;
}

/* ---- Error bodies ---- */

bool oauth_error_fields(struct oauth_ctx *ctx, json_t *obj, const char *code_key,
                        const char *message_key)
{
	json_t *code = oauth_member(obj, code_key);
	json_t *message = oauth_member(obj, message_key);
	char number[32];
	if (json_is_string(code) && json_string_length(code) > 0) {
		oauth_set_code(ctx, json_string_value(code), json_string_length(code));
	} else if (json_is_integer(code)) {
		snprintf(number, sizeof(number), "%" JSON_INTEGER_FORMAT, json_integer_value(code));
		oauth_set_code(ctx, number, strlen(number));
	} else {
		return false;
	}
	if (json_is_string(message))
		oauth_append_message(ctx, json_string_value(message), json_string_length(message));
	return true;
}

const char *oauth_error_code(struct oauth_ctx *ctx, const char *message_key)
{
	json_t *code = oauth_member(ctx->root, "error");
	if (!json_is_string(code) || !oauth_error_fields(ctx, ctx->root, "error", message_key)) {
		oauth_malformed(ctx, "HTTP %ld without an error code", ctx->resp->status);
		return NULL;
	}
	return json_string_value(code);
}

/* Errors that say our client credentials are wrong, not the user's grant. */
static const char *const client_auth_errors[] = {"invalid_client", "unauthorized_client", NULL};

enum platform_verdict oauth_standard_error(struct oauth_ctx *ctx, const char *const *dead)
{
	const char *code = oauth_error_code(ctx, "error_description");
	if (!code)
		return VERDICT_MALFORMED;
	if (oauth_in_list(code, dead))
		return VERDICT_DEAD;
	if (oauth_in_list(code, client_auth_errors))
		snprintf(ctx->out->message, sizeof(ctx->out->message),
		         "client authentication failed: check client_id/client_secret");
	return VERDICT_TRANSIENT;
}

/* ---- The parse ---- */

/* Statuses that are never the grant's fault: no response, rate limits, 5xx. */
static bool transient_status(long status)
{
	return status <= 0 || status == 429 || status >= 500;
}

/* ctx->root from the body, a JSON object; -1 with MALFORMED set. */
static int load_body(struct oauth_ctx *ctx)
{
	const struct platform_response *resp = ctx->resp;
	json_error_t jerr;
	if (resp->body_len > OAUTH_BODY_MAX || !resp->body || resp->body_len == 0) {
		oauth_malformed(ctx, "HTTP %ld: body empty or over %d bytes", resp->status,
		                OAUTH_BODY_MAX);
		return -1;
	}
	ctx->root = json_loadb(resp->body, resp->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!ctx->root) {
		oauth_malformed(ctx, "HTTP %ld: invalid JSON at %d:%d: ", resp->status, jerr.line,
		                jerr.column);
		oauth_append_message(ctx, jerr.text, strnlen(jerr.text, sizeof(jerr.text)));
		return -1;
	}
	if (!json_is_object(ctx->root)) {
		oauth_malformed(ctx, "HTTP %ld: body is not a JSON object", resp->status);
		return -1;
	}
	return 0;
}

static bool is_success(const struct oauth_dialect *d, const struct oauth_ctx *ctx)
{
	long status = ctx->resp->status;
	const char *error_key = d->error_key ? d->error_key : "error";
	if (status < 200 || status > 299)
		return false;
	return !oauth_member(ctx->root, error_key) || oauth_member(ctx->root, d->tokens.access);
}

/* Rules that hold whatever the platform: see oauth_parse. */
static void finish(struct oauth_ctx *ctx)
{
	struct platform_result *out = ctx->out;
	if (transient_status(ctx->resp->status))
		out->verdict = VERDICT_TRANSIENT;
	if (out->verdict != VERDICT_OK)
		drop_tokens(out);
	if (out->verdict == VERDICT_TRANSIENT)
		out->retry_at_ms = oauth_retry_at(ctx->resp);
	if (out->verdict != VERDICT_OK && !out->message[0])
		snprintf(out->message, sizeof(out->message), "HTTP %ld", ctx->resp->status);
}

static void dispatch(const struct oauth_dialect *d, struct oauth_ctx *ctx)
{
	if (!is_success(d, ctx))
		ctx->out->verdict =
		    d->error ? d->error(ctx) : oauth_standard_error(ctx, d->dead_errors);
	else if (d->success)
		d->success(ctx);
	else
		oauth_take_tokens(ctx, &d->tokens);
}

void oauth_parse(const struct oauth_dialect *d, const struct platform_grant *grant,
                 const struct platform_response *resp, struct platform_result *out)
{
	struct oauth_ctx ctx = {.grant = grant, .resp = resp, .out = out};
	out->verdict = VERDICT_MALFORMED; /* until a callback says otherwise */
	if (resp->status <= 0)
		snprintf(out->message, sizeof(out->message), "no response (timeout or connection)");
	else if (load_body(&ctx) == 0)
		dispatch(d, &ctx);
	finish(&ctx);
	free_json(ctx.root);
}

/* ---- Retry-After and rate-limit resets ---- */

static const char *skip_blanks(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* 1 to 12 decimal digits, blanks around. */
static bool parse_seconds(const char *s, int64_t *value)
{
	int64_t v = 0;
	int digits = 0;
	for (s = skip_blanks(s); *s >= '0' && *s <= '9' && digits < 13; s++, digits++)
		v = v * 10 + (*s - '0');
	*value = v;
	return digits > 0 && digits <= 12 && *skip_blanks(s) == '\0';
}

/* An HTTP-date (IMF-fixdate, RFC 850 or asctime form) as Unix milliseconds. */
static bool parse_http_date(const char *s, int64_t *at_ms)
{
	static const char *const formats[] = {"%a, %d %b %Y %H:%M:%S GMT",
	                                      "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
	for (size_t i = 0; i < OAUTH_COUNT(formats); i++) {
		struct tm tm = {0};
		const char *end = strptime(skip_blanks(s), formats[i], &tm);
		if (!end || *skip_blanks(end) != '\0')
			continue;
		time_t t = timegm(&tm);
		if (t == (time_t)-1)
			continue;
		*at_ms = (int64_t)t * 1000;
		return true;
	}
	return false;
}

static int64_t clamp_retry(int64_t now_ms, int64_t at_ms)
{
	if (at_ms < now_ms)
		return now_ms;
	return at_ms - now_ms > OAUTH_RETRY_MAX_MS ? now_ms + OAUTH_RETRY_MAX_MS : at_ms;
}

int64_t oauth_retry_at(const struct platform_response *resp)
{
	int64_t now = resp->now_ms, best = 0, v;
	if (resp->retry_after && parse_seconds(resp->retry_after, &v))
		best = clamp_retry(now, now + v * 1000);
	else if (resp->retry_after && parse_http_date(resp->retry_after, &v))
		best = clamp_retry(now, v);
	if (resp->rate_reset && parse_seconds(resp->rate_reset, &v)) {
		int64_t reset = clamp_retry(now, v * 1000);
		best = reset > best ? reset : best;
	}
	return best;
}
