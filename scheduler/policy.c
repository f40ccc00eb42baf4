/* policy: the next action of one account and when it is due, from its row state
 * and its platform's schedule (platforms.md). Pure: no I/O, no clock. */
#include "scheduler/policy.h"

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* Earlier-only jitter in [0, max_ms], stable for one account and token version. */
static int64_t jitter_of(const struct policy_input *in, int64_t max_ms)
{
	if (max_ms <= 0)
		return 0;
	return (int64_t)((uint64_t)in->jitter_seed % ((uint64_t)max_ms + 1));
}

/* The kind the account can use with what it holds. */
static enum refresh_kind effective_kind(const struct policy_params *params,
                                        const struct policy_input *in)
{
	switch (params->kind) {
	case REFRESH_GRANT:
		return in->has_refresh_token ? REFRESH_GRANT : REFRESH_NONE;
	case REFRESH_SELF:
		return in->cannot_extend ? REFRESH_NONE : REFRESH_SELF;
	case REFRESH_SESSION:
		if (in->has_refresh_token || in->has_app_password)
			return REFRESH_SESSION;
		return REFRESH_NONE;
	case REFRESH_NONE:
		break;
	}
	return REFRESH_NONE;
}

/* The account lives while either token does: a refresh token's expiry (0 =
 * unknown, no deadline) or a still valid access token, whichever is later. */
static int64_t refresh_token_deadline(const struct policy_input *in)
{
	if (in->refresh_expires_at_ms == 0)
		return 0;
	return max64(in->refresh_expires_at_ms, in->access_expires_at_ms);
}

static int64_t deadline_of(enum refresh_kind kind, const struct policy_input *in)
{
	switch (kind) {
	case REFRESH_NONE:
	case REFRESH_SELF:
		return in->access_expires_at_ms;
	case REFRESH_GRANT:
		return refresh_token_deadline(in);
	case REFRESH_SESSION:
		return in->has_app_password ? 0 : refresh_token_deadline(in);
	}
	return in->access_expires_at_ms;
}

int64_t policy_hard_deadline(const struct policy_params *params, const struct policy_input *in)
{
	return deadline_of(effective_kind(params, in), in);
}

static struct policy_decision decision(enum action action, int64_t due_ms, enum warn_reason reason)
{
	return (struct policy_decision){.action = action, .due_ms = due_ms, .reason = reason};
}

/* After a transient failure, nothing is tried again before next_attempt_at
 * (backoff, Retry-After), not even on request. */
static bool backoff_pending(const struct policy_input *in)
{
	return in->failure_count > 0 && in->next_attempt_at_ms > in->now_ms;
}

/* Tokens without expiry (Facebook Page): a validity check every interval;
 * a failed check again after its backoff. */
static struct policy_decision check_decision(const struct policy_params *params,
                                             const struct policy_input *in)
{
	if (params->check_interval_ms <= 0)
		return decision(ACTION_NONE, 0, REASON_NONE);
	if (backoff_pending(in))
		return decision(ACTION_CHECK, in->next_attempt_at_ms, REASON_NONE);
	if (in->refresh_requested || (in->failure_count > 0 && in->next_attempt_at_ms > 0))
		return decision(ACTION_CHECK, in->now_ms, REASON_NONE);
	int64_t base = in->last_check_at_ms ? in->last_check_at_ms : in->token_issued_at_ms;
	int64_t due = base + params->check_interval_ms - jitter_of(in, params->jitter_ms);
	return decision(ACTION_CHECK, due, REASON_NONE);
}

/* How long before expiry to refresh: the lead, shortened for short-lived
 * tokens when the platform divides the lifetime (TikTok). */
static int64_t refresh_lead(const struct policy_params *params, const struct policy_input *in)
{
	int64_t lead = params->refresh_lead_ms;
	if (params->refresh_lead_divisor <= 0 || in->token_issued_at_ms <= 0)
		return lead;
	int64_t lifetime = in->access_expires_at_ms - in->token_issued_at_ms;
	if (lifetime <= 0)
		return lead;
	return min64(lead, lifetime / params->refresh_lead_divisor);
}

/* Never refresh a token younger than the platform allows (Threads, Instagram). */
static int64_t not_before_min_age(const struct policy_params *params, const struct policy_input *in,
                                  int64_t t)
{
	if (params->min_token_age_ms <= 0 || in->token_issued_at_ms <= 0)
		return t;
	return max64(t, in->token_issued_at_ms + params->min_token_age_ms);
}

/* The scheduled refresh time, before the min-age floor. */
static int64_t scheduled_refresh_at(const struct policy_params *params,
                                    const struct policy_input *in)
{
	return in->access_expires_at_ms - refresh_lead(params, in) -
	       jitter_of(in, params->jitter_ms);
}

/* Refresh now when asked, except inside a pending backoff (Retry-After is
 * honoured); a retry at its backoff time; else the scheduled refresh. */
static struct policy_decision refresh_candidate(const struct policy_params *params,
                                                const struct policy_input *in)
{
	bool backoff = in->failure_count > 0 && in->next_attempt_at_ms > 0;
	struct policy_decision d;
	if (in->refresh_requested && !(backoff && in->next_attempt_at_ms > in->now_ms))
		d = decision(ACTION_REFRESH, in->now_ms, REASON_NONE);
	else if (backoff)
		d = decision(ACTION_RETRY, in->next_attempt_at_ms, REASON_NONE);
	else
		d = decision(ACTION_REFRESH, scheduled_refresh_at(params, in), REASON_NONE);
	d.due_ms = not_before_min_age(params, in, d.due_ms);
	return d;
}

/* Ties go to the more important action: expire, then refresh/retry, then warn. */
static int tie_rank(enum action action)
{
	switch (action) {
	case ACTION_EXPIRE:
		return 0;
	case ACTION_REFRESH:
	case ACTION_RETRY:
		return 1;
	default:
		return 2;
	}
}

static void consider(struct policy_decision *best, struct policy_decision candidate)
{
	if (best->action == ACTION_NONE || candidate.due_ms < best->due_ms ||
	    (candidate.due_ms == best->due_ms &&
	     tie_rank(candidate.action) < tie_rank(best->action)))
		*best = candidate;
}

/* Whether a refresh run at due_ms (or now, if later) still has a live
 * credential: a refresh token past its own expiry cannot be used. */
static bool refresh_possible(enum refresh_kind kind, const struct policy_input *in, int64_t due_ms)
{
	if (kind == REFRESH_SELF || (kind == REFRESH_SESSION && in->has_app_password))
		return true;
	return in->refresh_expires_at_ms == 0 ||
	       max64(due_ms, in->now_ms) < in->refresh_expires_at_ms;
}

/* The refresh (or retry) and, while it is pending, the refresh_failing warning. */
static void consider_refresh(struct policy_decision *best, const struct policy_params *params,
                             const struct policy_input *in, enum refresh_kind kind)
{
	struct policy_decision refresh = refresh_candidate(params, in);
	if (!refresh_possible(kind, in, refresh.due_ms))
		return;
	consider(best, refresh);
	if (!(in->events_fired & EVENT_FIRED_EXPIRING_REFRESH_FAILING))
		consider(best,
		         decision(ACTION_WARN, in->access_expires_at_ms - params->warn_lead_ms,
		                  REASON_REFRESH_FAILING));
}

/* The deadline nothing extends, for the reauth_required warning: the access
 * token without refresh, a fixed-life refresh token (LinkedIn partner); else 0. */
static int64_t reauth_deadline(enum refresh_kind kind, const struct policy_input *in)
{
	if (kind == REFRESH_NONE)
		return in->access_expires_at_ms;
	if (kind == REFRESH_GRANT)
		return in->refresh_expires_at_ms;
	return 0;
}

static void consider_reauth(struct policy_decision *best, const struct policy_params *params,
                            const struct policy_input *in, enum refresh_kind kind)
{
	int64_t reauth_at = reauth_deadline(kind, in);
	if (reauth_at > 0 && !(in->events_fired & EVENT_FIRED_EXPIRING_REAUTH_REQUIRED))
		consider(best, decision(ACTION_WARN, reauth_at - params->reauth_warn_lead_ms,
		                        REASON_REAUTH_REQUIRED));
}

/* An expiring token before its hard deadline: the earliest candidate. */
static struct policy_decision expiring_decision(const struct policy_params *params,
                                                const struct policy_input *in,
                                                enum refresh_kind kind, int64_t deadline)
{
	struct policy_decision best = decision(ACTION_NONE, 0, REASON_NONE);
	if (deadline != 0 && !(in->events_fired & EVENT_FIRED_REVOKED))
		consider(&best, decision(ACTION_EXPIRE, deadline, REASON_NONE));
	if (kind != REFRESH_NONE)
		consider_refresh(&best, params, in, kind);
	consider_reauth(&best, params, in, kind);
	return best;
}

/* A short-lived Meta token: exchange now, or after the backoff of a failed
 * exchange, unless it expires first. */
static struct policy_decision exchange_decision(const struct policy_input *in, int64_t deadline)
{
	int64_t due = backoff_pending(in) ? in->next_attempt_at_ms : in->now_ms;
	if (deadline != 0 && deadline < due && !(in->events_fired & EVENT_FIRED_REVOKED))
		return decision(ACTION_EXPIRE, deadline, REASON_NONE);
	return decision(ACTION_EXCHANGE, due, REASON_NONE);
}

struct policy_decision policy_next(const struct policy_params *params,
                                   const struct policy_input *in)
{
	if (!in->active)
		return decision(ACTION_NONE, 0, REASON_NONE);
	enum refresh_kind kind = effective_kind(params, in);
	int64_t deadline = deadline_of(kind, in);
	if (deadline != 0 && in->now_ms >= deadline)
		return decision(ACTION_EXPIRE, deadline, REASON_NONE);
	if (in->needs_exchange && params->exchange)
		return exchange_decision(in, deadline);
	if (in->access_expires_at_ms == 0)
		return check_decision(params, in);
	return expiring_decision(params, in, kind, deadline);
}

const char *policy_action_name(enum action action)
{
	static const char *const names[ACTION_COUNT] = {
	    [ACTION_NONE] = "none",   [ACTION_EXCHANGE] = "exchange", [ACTION_REFRESH] = "refresh",
	    [ACTION_RETRY] = "retry", [ACTION_WARN] = "warn",         [ACTION_EXPIRE] = "expire",
	    [ACTION_CHECK] = "check",
	};
	if ((unsigned)action >= ACTION_COUNT)
		return "unknown";
	return names[action];
}

const char *policy_reason_name(enum warn_reason reason)
{
	switch (reason) {
	case REASON_NONE:
		return "";
	case REASON_REFRESH_FAILING:
		return "refresh_failing";
	case REASON_REAUTH_REQUIRED:
		return "reauth_required";
	}
	return "unknown";
}
