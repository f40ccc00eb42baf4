/* oauth: what the platform files share: request building (URL-encoded forms
 * and queries, JSON bodies, Basic and Bearer headers) and the response reader
 * every parser is built on (status and body classification, token and
 * lifetime fields, Retry-After, error words with tokens kept out). Private to
 * platforms/. */
#ifndef TOKEND_OAUTH_H
#define TOKEND_OAUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platforms/platform.h"

#define OAUTH_BODY_MAX 65536                         /* larger response bodies are MALFORMED */
#define OAUTH_TOKEN_MAX 16384                        /* longest token accepted from a platform */
#define OAUTH_LIFETIME_MAX_S INT64_C(315360000)      /* 10 years of 365 days */
#define OAUTH_RETRY_MAX_MS (24 * POLICY_MS_PER_HOUR) /* Retry-After and resets are capped */

#define OAUTH_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* One form or query field. value is borrowed and NUL-terminated. */
struct oauth_param {
	const char *name;
	const char *value;
};

/* ---- Requests. oauth_get and oauth_post_* start out afresh (it is an out
 * parameter: pass it zeroed or cleared); the header setters add to it. On
 * failure every builder clears out, wiping what it held, and sets err. All
 * strings stored in out are owned by it (platform_request_clear). ---- */

/* The request of a refresh_token grant (POST form grant_type=refresh_token
 * &refresh_token=... plus the client fields named here). */
enum oauth_basic { OAUTH_BASIC_NEVER, OAUTH_BASIC_IF_SECRET, OAUTH_BASIC_ALWAYS };
struct oauth_refresh_grant {
	const char *default_base;
	const char *path;
	const char *id_field;     /* form name of client_id, or NULL */
	const char *secret_field; /* form name of the client secret, or NULL */
	enum oauth_basic basic;   /* Authorization: Basic base64(client_id:secret); 0: never */
};
int oauth_build_refresh(const struct oauth_refresh_grant *g, const struct platform_client *client,
                        const struct platform_grant *grant, struct platform_request *out, char *err,
                        size_t errlen) __attribute__((warn_unused_result));

/* The text of a secret, or "" when there is none. Borrowed. */
const char *oauth_text(const struct secret *s);
/* The text of a secret the request cannot be made without: NULL with err
 * "no <what>" when missing or empty. */
const char *oauth_need(const struct secret *s, const char *what, char *err, size_t errlen);
/* The configured base URL, or fallback when none is configured. */
const char *oauth_base(const struct platform_client *client, const char *fallback);

/* GET base+path?params (n may be 0). */
int oauth_get(struct platform_request *out, const char *base, const char *path,
              const struct oauth_param *params, size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* POST base+path with an application/x-www-form-urlencoded body. */
int oauth_post_form(struct platform_request *out, const char *base, const char *path,
                    const struct oauth_param *params, size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* POST base+path with a JSON object of string members (values must be UTF-8). */
int oauth_post_json(struct platform_request *out, const char *base, const char *path,
                    const struct oauth_param *params, size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* POST base+path with no body. */
int oauth_post_empty(struct platform_request *out, const char *base, const char *path, char *err,
                     size_t errlen) __attribute__((warn_unused_result));
/* Authorization: Basic base64(user:password). */
int oauth_basic_auth(struct platform_request *out, const char *user, const char *password,
                     char *err, size_t errlen) __attribute__((warn_unused_result));
/* Authorization: Bearer token. */
int oauth_bearer_auth(struct platform_request *out, const char *token, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* a, b and c joined in a new string (caller frees with oauth_free_text). */
char *oauth_concat(const char *a, const char *b, const char *c);
void oauth_free_text(char *s); /* wipes, then frees; NULL-safe */
/* application/x-www-form-urlencoded encoding of params joined by '&'
 * (unreserved bytes as they are, every other byte %XX). Caller wipes and
 * frees; *len gets strlen. NULL on ENOMEM. */
char *oauth_form_encode(const struct oauth_param *params, size_t n, size_t *len);

/* ---- Responses. ---- */

/* One parse call: what the callbacks of a dialect read and fill. */
struct oauth_ctx {
	const struct platform_grant *grant;
	const struct platform_response *resp;
	json_t *root; /* the body, a JSON object */
	struct platform_result *out;
};

/* Names of the members of a successful token response; NULL = not sent. */
struct oauth_token_fields {
	const char *access;      /* required */
	const char *access_ttl;  /* seconds */
	const char *refresh;     /* optional: absent = keep the current one */
	const char *refresh_ttl; /* seconds */
	const char *refresh_at;  /* Unix seconds, read when refresh_ttl is absent */
};

/* Fill out from a 2xx body (verdict OK, or MALFORMED). */
typedef void oauth_success_fn(struct oauth_ctx *ctx);
/* Classify an error body (any status): fill upstream_code and message. */
typedef enum platform_verdict oauth_error_fn(struct oauth_ctx *ctx);

/* How one platform (or endpoint) answers. */
struct oauth_dialect {
	const char *error_key;          /* a 2xx body with it and no access token is an error
	                                   (NULL: "error") */
	const char *const *dead_errors; /* "error" values of a dead grant (NULL-terminated) */
	struct oauth_token_fields tokens;
	oauth_success_fn *success; /* NULL: oauth_take_tokens(tokens) */
	oauth_error_fn *error;     /* NULL: oauth_standard_error(dead_errors) */
};

/* The whole parse: no response, 5xx and 429 are TRANSIENT whatever the body
 * says; other bodies must be JSON objects (else MALFORMED); a 2xx body that is
 * not an error goes to success, everything else to error. Retry-After and
 * x-rate-limit-reset set retry_at_ms on TRANSIENT. */
void oauth_parse(const struct oauth_dialect *dialect, const struct platform_grant *grant,
                 const struct platform_response *resp, struct platform_result *out);

/* Defines the static build_request and parse_response of a platform whose
 * request is the oauth_refresh_grant `request` and whose answers follow the
 * oauth_dialect `dialect`. */
#define OAUTH_REFRESH_PLATFORM(request, dialect)                                                   \
	static int build_request(const struct platform_client *client,                             \
	                         const struct platform_grant *grant, struct platform_request *out, \
	                         char *err, size_t errlen)                                         \
	{                                                                                          \
		return oauth_build_refresh(&(request), client, grant, out, err, errlen);           \
	}                                                                                          \
	static void parse_response(const struct platform_grant *grant,                             \
	                           const struct platform_response *resp,                           \
	                           struct platform_result *out)                                    \
	{                                                                                          \
		oauth_parse(&(dialect), grant, resp, out);                                         \
	}

/* Helpers for dialect callbacks. */
json_t *oauth_member(json_t *object, const char *key); /* NULL when absent or null */
bool oauth_in_list(const char *s, const char *const *list);
/* Standard token response: OK with tokens and expiries, or MALFORMED. */
void oauth_take_tokens(struct oauth_ctx *ctx, const struct oauth_token_fields *fields);
/* A token member into dst: -1 (MALFORMED set) when wrong. When not required,
 * absent, null and "" leave dst empty. */
int oauth_take_token(struct oauth_ctx *ctx, const char *key, bool required, struct secret *dst)
    __attribute__((warn_unused_result));
/* Check an absolute expiry: 0 < at - now < 10 years, else -1 (MALFORMED, naming what). */
int oauth_check_expiry(struct oauth_ctx *ctx, const char *what, int64_t at_ms)
    __attribute__((warn_unused_result));
/* The string "error" member of the root as upstream_code (and message_key's
 * text as message); NULL with MALFORMED set when there is none. Borrowed. */
const char *oauth_error_code(struct oauth_ctx *ctx, const char *message_key);
/* Standard OAuth error {"error","error_description"}: DEAD when error is in
 * dead, TRANSIENT for other codes (client authentication failures with a
 * message blaming our config), MALFORMED without an error code. */
enum platform_verdict oauth_standard_error(struct oauth_ctx *ctx, const char *const *dead);
/* Copy obj's code member (string or integer) and message member into out.
 * false when there is no usable code. */
bool oauth_error_fields(struct oauth_ctx *ctx, json_t *obj, const char *code_key,
                        const char *message_key);
/* Set upstream_code / append to message from platform text: truncated,
 * non-printable bytes as '?', the grant's secrets and anything shaped like a
 * token as "[redacted]". */
void oauth_set_code(struct oauth_ctx *ctx, const char *text, size_t len);
void oauth_append_message(struct oauth_ctx *ctx, const char *text, size_t len);
/* Verdict MALFORMED, tokens dropped, message from fmt (our words only). */
void oauth_malformed(struct oauth_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Retry time from Retry-After (delta seconds or HTTP-date) and
 * x-rate-limit-reset (Unix seconds), the later of both, within
 * [now, now + OAUTH_RETRY_MAX_MS]; 0 when neither header is usable. */
int64_t oauth_retry_at(const struct platform_response *resp);

#endif
