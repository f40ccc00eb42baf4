/* policy: the next action of one account and when it is due, computed from the
 * account's row state and its platform's schedule. Pure: no I/O, and the
 * clock is an input, so every rule is table-tested. */
#ifndef TOKEND_POLICY_H
#define TOKEND_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define POLICY_MS_PER_MINUTE INT64_C(60000)
#define POLICY_MS_PER_HOUR (60 * POLICY_MS_PER_MINUTE)
#define POLICY_MS_PER_DAY (24 * POLICY_MS_PER_HOUR)

enum action {
	ACTION_NONE = 0, /* nothing scheduled: inactive, or a token that never expires */
	ACTION_EXCHANGE, /* Meta short-lived token: exchange for a long-lived one, now */
	ACTION_REFRESH,  /* refresh on schedule, or at once when requested */
	ACTION_RETRY,    /* refresh again after a transient failure */
	ACTION_WARN,     /* record token.expiring */
	ACTION_EXPIRE,   /* status = expired, record token.revoked (reason expired) */
	ACTION_CHECK,    /* validity check of a token without expiry (Facebook Page) */
};
#define ACTION_COUNT (ACTION_CHECK + 1)

enum warn_reason { REASON_NONE = 0, REASON_REFRESH_FAILING, REASON_REAUTH_REQUIRED };

/* How a platform keeps a token alive. */
enum refresh_kind {
	REFRESH_NONE,    /* no refresh: warn reauth_required ahead, expire at expiry */
	REFRESH_GRANT,   /* OAuth refresh_token grant; without a refresh token, as REFRESH_NONE */
	REFRESH_SELF,    /* the long-lived access token refreshes itself (Threads, Instagram,
	                    Facebook re-exchange); as REFRESH_NONE once it cannot extend */
	REFRESH_SESSION, /* Bluesky: refreshJwt, or a new session from the app password */
};

/* Bits of platform_accounts.events_fired: what was already recorded for the
 * current token version (the database resets them when the version changes). */
#define EVENT_FIRED_EXPIRING_REFRESH_FAILING 0x1u
#define EVENT_FIRED_EXPIRING_REAUTH_REQUIRED 0x2u
#define EVENT_FIRED_REVOKED 0x4u

/* A platform's schedule. Leads are milliseconds before the relevant expiry. */
struct policy_params {
	enum refresh_kind kind;
	int64_t refresh_lead_ms;      /* refresh this long before the access token expires */
	int64_t refresh_lead_divisor; /* if > 0, lead = min(refresh_lead, lifetime / divisor)
	                                 (TikTok) */
	int64_t warn_lead_ms;         /* token.expiring (refresh_failing) if still not refreshed */
	int64_t reauth_warn_lead_ms;  /* token.expiring (reauth_required) before a deadline nothing
	                                 extends */
	int64_t min_token_age_ms; /* never refresh a token younger than this (Threads, Instagram) */
	int64_t check_interval_ms; /* validity check of tokens without expiry; 0 = none */
	int64_t jitter_ms;         /* largest earlier-only jitter on refresh and check times */
	bool exchange;             /* short-lived tokens are exchanged for long-lived ones */
};

/* One account's state, as loaded from its row. Times are Unix milliseconds;
 * 0 means "none" (no expiry, never checked, no retry pending). */
struct policy_input {
	int64_t now_ms;
	int64_t access_expires_at_ms;
	int64_t refresh_expires_at_ms;
	int64_t token_issued_at_ms; /* when the current access token was obtained */
	int64_t next_attempt_at_ms; /* retry time after a transient failure */
	int64_t last_check_at_ms;   /* last validity check (tokens without expiry) */
	uint32_t failure_count;     /* consecutive transient failures */
	uint32_t jitter_seed;       /* stable per account and token version */
	unsigned events_fired;      /* EVENT_FIRED_* */
	bool active;                /* status = 'active' */
	bool has_refresh_token;
	bool has_app_password;
	bool needs_exchange;    /* Meta token still short-lived */
	bool refresh_requested; /* the API asked for a refresh now */
	bool cannot_extend;     /* the last refresh did not move the expiry */
};

struct policy_decision {
	enum action action;
	int64_t due_ms;          /* may be in the past: due now, and late by now - due */
	enum warn_reason reason; /* for ACTION_WARN */
};

/* The single next action for an account. */
struct policy_decision policy_next(const struct policy_params *params,
                                   const struct policy_input *in);

/* The latest moment any token can keep the account alive (0 = none): past it,
 * the account is expired. Exposed for the admin API and tests. */
int64_t policy_hard_deadline(const struct policy_params *params, const struct policy_input *in);

const char *policy_action_name(enum action action);
const char *policy_reason_name(enum warn_reason reason);

#endif
