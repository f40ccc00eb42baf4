/* platform: what tokend knows of one social platform. Each platform lives in
 * its own file (x.c, bluesky.c, ...) and is one row of the registry table in
 * registry.c; nothing outside platforms/ knows a platform by name. */
#ifndef TOKEND_PLATFORM_H
#define TOKEND_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/secret.h"
#include "scheduler/policy.h"

#define PLATFORM_MAX 16

/* Who tokend is to the platform, and where the platform is (config). */
struct platform_client {
	const char *base_url;               /* no trailing slash; tests point it at the fake */
	const char *client_id;              /* "" when not configured */
	const struct secret *client_secret; /* NULL when not configured */
};

/* What tokend holds for the account, opened for one request. Borrowed. */
struct platform_grant {
	const char *external_id;            /* upstream user/page id; Bluesky identifier */
	const struct secret *access_token;  /* NULL when the row has none */
	const struct secret *refresh_token; /* NULL when the row has none */
	const struct secret *app_password;  /* NULL when the row has none (all but Bluesky) */
	enum action action;                 /* EXCHANGE, REFRESH (RETRY is one), or CHECK */
	int step;                           /* 0, then n+1 after VERDICT_NEXT_STEP */
};

enum platform_method { PLATFORM_GET, PLATFORM_POST };

/* One HTTP request to a token endpoint. Every string is owned and wiped by
 * platform_request_clear(): the URL of a Graph call carries a token. */
struct platform_request {
	enum platform_method method;
	char *url;
	char *body; /* NULL for none */
	size_t body_len;
	const char *content_type; /* static; NULL for none */
	char *authorization;      /* whole header value ("Basic ...", "Bearer ..."), or NULL */
};
void platform_request_clear(struct platform_request *req); /* NULL-safe */

/* What came back. Borrowed for the parse call. */
struct platform_response {
	long status;      /* HTTP status */
	const char *body; /* not NUL-terminated */
	size_t body_len;
	const char *retry_after; /* raw Retry-After header, or NULL */
	const char *rate_reset;  /* raw x-rate-limit-reset (Unix seconds), or NULL */
	int64_t now_ms;
};

enum platform_verdict {
	VERDICT_OK,         /* new tokens in the result (or, for CHECK, still valid) */
	VERDICT_NEXT_STEP,  /* build the request again with step + 1 (Bluesky: app password) */
	VERDICT_DEAD,       /* the grant is dead: re-authorisation needed */
	VERDICT_PAGES_NONE, /* a Facebook Page the user can no longer manage */
	VERDICT_TRANSIENT,  /* try again later */
	VERDICT_MALFORMED,  /* a body we cannot read (transient, counted as bad input) */
};

/* The outcome of one call. Owned by the caller; platform_result_clear()
 * wipes the tokens. */
struct platform_result {
	enum platform_verdict verdict;
	struct secret access_token;    /* new access token (OK) */
	struct secret refresh_token;   /* new refresh token; empty = keep the current one */
	int64_t access_expires_at_ms;  /* 0 = the response said nothing */
	int64_t refresh_expires_at_ms; /* 0 = unknown or unchanged */
	int64_t retry_at_ms;           /* TRANSIENT: not before this (Retry-After etc.); 0 = none */
	char upstream_code[48];        /* the platform's error code ("invalid_grant", "190/460") */
	char message[160];             /* the platform's own error words; never a token */
};
void platform_result_clear(struct platform_result *res); /* NULL-safe */

struct platform {
	const char *name;                   /* as in platform_accounts.platform */
	struct policy_params schedule;      /* defaults; leads are configurable */
	int64_t default_access_lifetime_ms; /* when the token endpoint says nothing */
	const char *default_base_url;       /* production endpoint root */
	/* Build the request for grant. -1 with err when it cannot be made: err
	 * names what the grant lacks (e.g. "no refresh token": the caller treats
	 * the grant as dead), or contains "out of memory" (the caller retries). */
	int (*build_request)(const struct platform_client *client,
	                     const struct platform_grant *grant, struct platform_request *out,
	                     char *err, size_t errlen);
	/* Read the response into out (zeroed by the caller). Never trusts the
	 * body: wrong types, huge values and garbage give VERDICT_MALFORMED. */
	void (*parse_response)(const struct platform_grant *grant,
	                       const struct platform_response *resp, struct platform_result *out);
};

/* The registry, in table order; a platform's index is its compact id in the
 * scheduler (uint8_t). */
size_t platform_count(void);
const struct platform *platform_at(size_t index);
/* NULL when the name is not a known platform. */
const struct platform *platform_find(const char *name);
/* -1 when unknown. */
int platform_index_of(const char *name);

#endif
