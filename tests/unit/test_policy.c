/* test_policy: the per-platform schedule of platforms.md and the policy rules,
 * table-driven, plus a randomized property loop (seed printed, TOKEND_SEED
 * overrides). Expected times are written from platforms.md, not computed from
 * the descriptors, so a wrong descriptor fails here. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platforms/platform.h"
#include "scheduler/policy.h"

#define MINUTES(n) ((int64_t)(n)*INT64_C(60000))
#define HOURS(n) (60 * MINUTES(n))
#define DAYS(n) (24 * HOURS(n))
#define NEVER INT64_C(-1)
#define T0 INT64_C(1700000000000) /* 2023-11-14, a fixed "now" */
#define FAR DAYS(400)             /* a retry after everything else */
#define ALL_WARNINGS (EVENT_FIRED_EXPIRING_REFRESH_FAILING | EVENT_FIRED_EXPIRING_REAUTH_REQUIRED)

static __attribute__((noreturn)) void fail(const char *file, int line, const char *name,
                                           const char *what)
{
	fprintf(stderr, "%s:%d: %s: %s\n", file, line, name, what);
	exit(1);
}

#define CHECK(name, cond)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fail(__FILE__, __LINE__, (name), "failed: " #cond);                        \
	} while (0)

/* Times print as an offset from T0 in minutes: "T0+7140 min". */
static void expect_at(const char *file, int line, const char *name, struct policy_decision got,
                      enum action action, int64_t due_ms, enum warn_reason reason)
{
	if (got.action == action && got.due_ms == due_ms && got.reason == reason)
		return;
	char what[256];
	snprintf(what, sizeof(what),
	         "got %s@T0%+" PRId64 " min (%s), want %s@T0%+" PRId64 " min (%s)",
	         policy_action_name(got.action), (got.due_ms - T0) / MINUTES(1),
	         policy_reason_name(got.reason), policy_action_name(action),
	         (due_ms - T0) / MINUTES(1), policy_reason_name(reason));
	fail(file, line, name, what);
}

#define EXPECT(name, got, action, due, reason)                                                     \
	expect_at(__FILE__, __LINE__, (name), (got), (action), (due), (reason))

static const struct policy_params *schedule_of(const char *platform)
{
	const struct platform *p = platform_find(platform);
	if (p == NULL)
		fail(__FILE__, __LINE__, platform, "platform not in the registry");
	return &p->schedule;
}

/* A fresh token: issued now (T0), jitter_seed 0. Lifetimes are from T0; 0 = none. */
static struct policy_input token_at(int64_t issued, int64_t lifetime, int64_t refresh_life)
{
	return (struct policy_input){
	    .now_ms = issued,
	    .token_issued_at_ms = issued,
	    .access_expires_at_ms = lifetime ? issued + lifetime : 0,
	    .refresh_expires_at_ms = refresh_life ? T0 + refresh_life : 0,
	    .active = true,
	};
}

/* (a) One row per row of the platforms.md schedule table. Offsets: refresh is
 * before the access expiry; warn, expire and check are after T0. */
struct schedule_row {
	const char *name;
	const char *platform;
	int64_t lifetime;        /* access token; 0 = no expiry */
	int64_t refresh_life;    /* refresh token from T0; 0 = unknown */
	bool refresh_token;      /* holds a refresh token */
	bool app_password;       /* Bluesky */
	int64_t refresh_before;  /* before expiry; NEVER = no refresh */
	int64_t warn_at;         /* first token.expiring */
	enum warn_reason reason; /* of that warning */
	unsigned warn_skip;      /* warnings already fired before it */
	int64_t expire_at;       /* NEVER = no hard deadline */
	int64_t check_at;        /* tokens without expiry */
};

static const struct schedule_row schedule_table[] = {
    {"x", "x", HOURS(2), 0, true, false, MINUTES(5), HOURS(2) - MINUTES(2), REASON_REFRESH_FAILING,
     0, NEVER, 0},
    {"bluesky refreshJwt", "bluesky", MINUTES(120), DAYS(90), true, false, MINUTES(10),
     MINUTES(120) - MINUTES(2), REASON_REFRESH_FAILING, 0, DAYS(90), 0},
    {"bluesky app password", "bluesky", MINUTES(120), DAYS(90), true, true, MINUTES(10),
     MINUTES(120) - MINUTES(2), REASON_REFRESH_FAILING, 0, NEVER, 0},
    {"threads", "threads", DAYS(60), 0, false, false, DAYS(14), DAYS(60) - DAYS(7),
     REASON_REFRESH_FAILING, 0, DAYS(60), 0},
    {"instagram", "instagram", DAYS(60), 0, false, false, DAYS(14), DAYS(60) - DAYS(7),
     REASON_REFRESH_FAILING, 0, DAYS(60), 0},
    {"facebook user", "facebook", DAYS(60), 0, false, false, DAYS(14), DAYS(60) - DAYS(7),
     REASON_REFRESH_FAILING, 0, DAYS(60), 0},
    {"facebook Page", "facebook", 0, 0, false, false, NEVER, 0, REASON_NONE, 0, NEVER, HOURS(24)},
    {"linkedin no refresh", "linkedin", DAYS(60), 0, false, false, NEVER, DAYS(60) - DAYS(7),
     REASON_REAUTH_REQUIRED, 0, DAYS(60), 0},
    /* Partner: reauth_required 7 d before the fixed 365-day refresh token dies. */
    {"linkedin partner", "linkedin", DAYS(60), DAYS(365), true, false, HOURS(24),
     DAYS(365) - DAYS(7), REASON_REAUTH_REQUIRED, EVENT_FIRED_EXPIRING_REFRESH_FAILING, DAYS(365),
     0},
    {"pinterest", "pinterest", DAYS(30), DAYS(60), true, false, HOURS(24), DAYS(30) - HOURS(6),
     REASON_REFRESH_FAILING, 0, DAYS(60), 0},
    {"tiktok 24h", "tiktok", HOURS(24), DAYS(365), true, false, MINUTES(30), HOURS(24) - MINUTES(5),
     REASON_REFRESH_FAILING, 0, DAYS(365), 0},
    {"tiktok 2h", "tiktok", HOURS(2), DAYS(365), true, false, MINUTES(30), HOURS(2) - MINUTES(5),
     REASON_REFRESH_FAILING, 0, DAYS(365), 0},
    {"youtube", "youtube", HOURS(1), 0, true, false, MINUTES(5), HOURS(1) - MINUTES(2),
     REASON_REFRESH_FAILING, 0, NEVER, 0},
};

static struct policy_input row_input(const struct schedule_row *row)
{
	struct policy_input in = token_at(T0, row->lifetime, row->refresh_life);
	in.has_refresh_token = row->refresh_token;
	in.has_app_password = row->app_password;
	return in;
}

static void check_row_fresh(const struct schedule_row *row, const struct policy_params *params)
{
	struct policy_input in = row_input(row);
	struct policy_decision d = policy_next(params, &in);
	if (row->lifetime == 0)
		EXPECT(row->name, d, ACTION_CHECK, T0 + row->check_at, REASON_NONE);
	else if (row->refresh_before != NEVER)
		EXPECT(row->name, d, ACTION_REFRESH, T0 + row->lifetime - row->refresh_before,
		       REASON_NONE);
	else
		EXPECT(row->name, d, ACTION_WARN, T0 + row->warn_at, row->reason);
}

/* Past the refresh time, failing, the retry after the warning: the warning comes first. */
static void check_row_warn(const struct schedule_row *row, const struct policy_params *params)
{
	struct policy_input in = row_input(row);
	if (row->refresh_before != NEVER)
		in.now_ms = T0 + row->lifetime - row->refresh_before + MINUTES(1);
	in.failure_count = 1;
	in.next_attempt_at_ms = T0 + row->warn_at + MINUTES(1);
	in.events_fired = row->warn_skip;
	EXPECT(row->name, policy_next(params, &in), ACTION_WARN, T0 + row->warn_at, row->reason);
}

/* Both warnings fired: expiry at the hard deadline, or the retry when there is none. */
static void check_row_expire(const struct schedule_row *row, const struct policy_params *params)
{
	struct policy_input in = row_input(row);
	in.failure_count = 1;
	in.next_attempt_at_ms = T0 + FAR;
	in.events_fired = ALL_WARNINGS;
	struct policy_decision d = policy_next(params, &in);
	if (row->expire_at == NEVER) {
		EXPECT(row->name, d, ACTION_RETRY, T0 + FAR, REASON_NONE);
		CHECK(row->name, policy_hard_deadline(params, &in) == 0);
		return;
	}
	EXPECT(row->name, d, ACTION_EXPIRE, T0 + row->expire_at, REASON_NONE);
	CHECK(row->name, policy_hard_deadline(params, &in) == T0 + row->expire_at);
	in.now_ms = T0 + row->expire_at + DAYS(1);
	in.events_fired = 0;
	EXPECT(row->name, policy_next(params, &in), ACTION_EXPIRE, T0 + row->expire_at,
	       REASON_NONE);
}

static void test_schedule_table(void)
{
	size_t n = sizeof(schedule_table) / sizeof(schedule_table[0]);
	for (size_t i = 0; i < n; i++) {
		const struct schedule_row *row = &schedule_table[i];
		const struct policy_params *params = schedule_of(row->platform);
		check_row_fresh(row, params);
		if (row->lifetime == 0)
			continue;
		check_row_warn(row, params);
		check_row_expire(row, params);
	}
}

/* (b) Rules. */

static void test_inactive(void)
{
	struct policy_input in = token_at(T0, HOURS(2), 0);
	in.has_refresh_token = true;
	in.refresh_requested = true;
	in.active = false;
	EXPECT("inactive", policy_next(schedule_of("x"), &in), ACTION_NONE, 0, REASON_NONE);
}

static void test_exchange(void)
{
	static const char *const meta[] = {"threads", "instagram", "facebook"};
	for (size_t i = 0; i < 3; i++) {
		struct policy_input in = token_at(T0, HOURS(1), 0);
		in.now_ms = T0 + MINUTES(5);
		in.needs_exchange = true;
		EXPECT(meta[i], policy_next(schedule_of(meta[i]), &in), ACTION_EXCHANGE,
		       T0 + MINUTES(5), REASON_NONE);
	}
	/* A failed exchange waits for its backoff (Retry-After), even when
	 * requested, and never past the short-lived token's expiry. */
	struct policy_input ex = token_at(T0, HOURS(1), 0);
	ex.now_ms = T0 + MINUTES(5);
	ex.needs_exchange = true;
	ex.failure_count = 1;
	ex.next_attempt_at_ms = T0 + MINUTES(7);
	ex.refresh_requested = true;
	EXPECT("exchange backoff", policy_next(schedule_of("threads"), &ex), ACTION_EXCHANGE,
	       T0 + MINUTES(7), REASON_NONE);
	ex.next_attempt_at_ms = T0 + MINUTES(4);
	EXPECT("exchange backoff over", policy_next(schedule_of("threads"), &ex), ACTION_EXCHANGE,
	       T0 + MINUTES(5), REASON_NONE);
	ex.next_attempt_at_ms = T0 + MINUTES(70);
	EXPECT("exchange backoff past expiry", policy_next(schedule_of("facebook"), &ex),
	       ACTION_EXPIRE, T0 + HOURS(1), REASON_NONE);

	struct policy_input in = token_at(T0, HOURS(2), 0);
	in.has_refresh_token = true;
	in.needs_exchange = true; /* meaningless for X */
	EXPECT("x ignores exchange", policy_next(schedule_of("x"), &in), ACTION_REFRESH,
	       T0 + HOURS(2) - MINUTES(5), REASON_NONE);
}

/* Threads and Instagram refresh only tokens at least 24 h old. */
static void test_min_token_age(void)
{
	static const char *const self[] = {"threads", "instagram"};
	for (size_t i = 0; i < 2; i++) {
		const struct policy_params *params = schedule_of(self[i]);
		struct policy_input in = token_at(T0, DAYS(10), 0);
		in.now_ms = T0 + HOURS(2);
		EXPECT(self[i], policy_next(params, &in), ACTION_REFRESH, T0 + HOURS(24),
		       REASON_NONE);
		in.refresh_requested = true;
		EXPECT(self[i], policy_next(params, &in), ACTION_REFRESH, T0 + HOURS(24),
		       REASON_NONE);
		in.refresh_requested = false;
		in.now_ms = T0 + HOURS(30); /* old enough: exp - 14 d and 24 h are past, due now */
		EXPECT(self[i], policy_next(params, &in), ACTION_REFRESH, T0 + HOURS(24),
		       REASON_NONE);
	}
}

static void test_refresh_requested(void)
{
	static const char *const grant[] = {"x", "bluesky", "pinterest", "tiktok", "youtube"};
	for (size_t i = 0; i < 5; i++) {
		struct policy_input in = token_at(T0, HOURS(24), 0);
		in.has_refresh_token = true;
		in.now_ms = T0 + MINUTES(30);
		in.refresh_requested = true;
		EXPECT(grant[i], policy_next(schedule_of(grant[i]), &in), ACTION_REFRESH,
		       T0 + MINUTES(30), REASON_NONE);
	}
}

/* A request does not jump a pending backoff (Retry-After is honoured). */
static void test_requested_during_backoff(void)
{
	const struct policy_params *x = schedule_of("x");
	struct policy_input in = token_at(T0, HOURS(2), 0);
	in.has_refresh_token = true;
	in.now_ms = T0 + MINUTES(30);
	in.refresh_requested = true;
	in.failure_count = 1;
	in.next_attempt_at_ms = T0 + MINUTES(32);
	EXPECT("backoff pending", policy_next(x, &in), ACTION_RETRY, T0 + MINUTES(32), REASON_NONE);
	in.next_attempt_at_ms = T0 + MINUTES(29);
	EXPECT("backoff over", policy_next(x, &in), ACTION_REFRESH, T0 + MINUTES(30), REASON_NONE);
}

static void test_retry(void)
{
	const struct policy_params *x = schedule_of("x");
	int64_t exp = T0 + HOURS(2);
	struct policy_input in = token_at(T0, HOURS(2), 0);
	in.has_refresh_token = true;
	in.now_ms = exp - MINUTES(4);
	in.failure_count = 2;
	in.next_attempt_at_ms = exp - MINUTES(3);
	EXPECT("retry", policy_next(x, &in), ACTION_RETRY, exp - MINUTES(3), REASON_NONE);
	in.next_attempt_at_ms = 0;
	EXPECT("no retry time", policy_next(x, &in), ACTION_REFRESH, exp - MINUTES(5), REASON_NONE);
}

static void test_warn_fired(void)
{
	int64_t exp = T0 + HOURS(2);
	struct policy_input in = token_at(T0, HOURS(2), 0);
	in.has_refresh_token = true;
	in.now_ms = exp - MINUTES(4);
	in.failure_count = 1;
	in.next_attempt_at_ms = exp + MINUTES(10);
	EXPECT("warn", policy_next(schedule_of("x"), &in), ACTION_WARN, exp - MINUTES(2),
	       REASON_REFRESH_FAILING);
	in.events_fired = EVENT_FIRED_EXPIRING_REFRESH_FAILING;
	EXPECT("warn fired", policy_next(schedule_of("x"), &in), ACTION_RETRY, exp + MINUTES(10),
	       REASON_NONE);

	struct policy_input li = token_at(T0, DAYS(60), 0);
	li.now_ms = T0 + DAYS(54);
	li.events_fired = EVENT_FIRED_EXPIRING_REAUTH_REQUIRED;
	EXPECT("linkedin warn fired", policy_next(schedule_of("linkedin"), &li), ACTION_EXPIRE,
	       T0 + DAYS(60), REASON_NONE);
}

static void test_expire_past_deadline(void)
{
	struct policy_input in = token_at(T0, DAYS(60), 0);
	in.now_ms = T0 + DAYS(60) + HOURS(1);
	EXPECT("threads expired", policy_next(schedule_of("threads"), &in), ACTION_EXPIRE,
	       T0 + DAYS(60), REASON_NONE);
	in.now_ms = T0 + DAYS(60);
	EXPECT("at the deadline", policy_next(schedule_of("threads"), &in), ACTION_EXPIRE,
	       T0 + DAYS(60), REASON_NONE);
}

/* X: the access token is dead but the refresh token is not: refresh (late), not expire. */
static void test_x_expired_access(void)
{
	const struct policy_params *x = schedule_of("x");
	struct policy_input in = token_at(T0, HOURS(2), 0);
	in.has_refresh_token = true;
	in.now_ms = T0 + HOURS(3);
	EXPECT("x past exp", policy_next(x, &in), ACTION_REFRESH, T0 + HOURS(2) - MINUTES(5),
	       REASON_NONE);
	CHECK("x past exp", policy_hard_deadline(x, &in) == 0);
	in.has_refresh_token = false;
	EXPECT("x without refresh token", policy_next(x, &in), ACTION_EXPIRE, T0 + HOURS(2),
	       REASON_NONE);
}

static void test_bluesky(void)
{
	const struct policy_params *bsky = schedule_of("bluesky");
	struct policy_input in = token_at(T0, HOURS(2), DAYS(90));
	in.has_refresh_token = true;
	in.has_app_password = true;
	in.now_ms = T0 + DAYS(100); /* refreshJwt dead: the app password still works */
	CHECK("bluesky app password", policy_hard_deadline(bsky, &in) == 0);
	EXPECT("bluesky app password", policy_next(bsky, &in), ACTION_REFRESH,
	       T0 + HOURS(2) - MINUTES(10), REASON_NONE);
	in.has_refresh_token = false;
	EXPECT("bluesky app password only", policy_next(bsky, &in), ACTION_REFRESH,
	       T0 + HOURS(2) - MINUTES(10), REASON_NONE);

	in.has_refresh_token = true;
	in.has_app_password = false;
	CHECK("bluesky refreshJwt", policy_hard_deadline(bsky, &in) == T0 + DAYS(90));
	EXPECT("bluesky refreshJwt dead", policy_next(bsky, &in), ACTION_EXPIRE, T0 + DAYS(90),
	       REASON_NONE);
	in.now_ms = T0 + HOURS(3);
	in.failure_count = 3;
	in.next_attempt_at_ms = T0 + DAYS(91); /* past the refreshJwt: no retry */
	in.events_fired = ALL_WARNINGS;
	EXPECT("bluesky retry after refreshJwt", policy_next(bsky, &in), ACTION_EXPIRE,
	       T0 + DAYS(90), REASON_NONE);
	in.has_refresh_token = false;
	EXPECT("bluesky nothing", policy_next(bsky, &in), ACTION_EXPIRE, T0 + HOURS(2),
	       REASON_NONE);
}

static void test_linkedin_partner(void)
{
	const struct policy_params *li = schedule_of("linkedin");
	/* Refresh token granted at T0 for 365 d; the current access token from day 300. */
	struct policy_input in = token_at(T0 + DAYS(300), DAYS(60), DAYS(365));
	in.has_refresh_token = true;
	in.now_ms += HOURS(1);
	EXPECT("partner reauth", policy_next(li, &in), ACTION_WARN, T0 + DAYS(358),
	       REASON_REAUTH_REQUIRED);
	in.events_fired = EVENT_FIRED_EXPIRING_REAUTH_REQUIRED;
	EXPECT("partner refresh", policy_next(li, &in), ACTION_REFRESH, T0 + DAYS(359),
	       REASON_NONE);

	/* refresh_failing comes after the refresh time, before the expiry. */
	in.now_ms = T0 + DAYS(359) + HOURS(1);
	in.failure_count = 1;
	in.next_attempt_at_ms = T0 + DAYS(361);
	struct policy_decision d = policy_next(li, &in);
	CHECK("partner refresh_failing",
	      d.action == ACTION_WARN && d.reason == REASON_REFRESH_FAILING);
	CHECK("partner refresh_failing", d.due_ms > T0 + DAYS(359) && d.due_ms < T0 + DAYS(360));

	/* Access token outlives the refresh token: no refresh with a dead one, expire at exp. */
	in = token_at(T0 + DAYS(340), DAYS(60), DAYS(365));
	in.has_refresh_token = true;
	in.events_fired = EVENT_FIRED_EXPIRING_REAUTH_REQUIRED;
	CHECK("partner last token", policy_hard_deadline(li, &in) == T0 + DAYS(400));
	EXPECT("partner last token", policy_next(li, &in), ACTION_EXPIRE, T0 + DAYS(400),
	       REASON_NONE);

	/* A retry that fell due before the refresh token died, run after it: none. */
	in = token_at(T0 + DAYS(310), DAYS(60), DAYS(365));
	in.has_refresh_token = true;
	in.now_ms = T0 + DAYS(366);
	in.failure_count = 4;
	in.next_attempt_at_ms = T0 + DAYS(364);
	in.events_fired = ALL_WARNINGS;
	EXPECT("partner late retry", policy_next(li, &in), ACTION_EXPIRE, T0 + DAYS(370),
	       REASON_NONE);

	in = token_at(T0, DAYS(60), 0);
	EXPECT("linkedin no refresh", policy_next(li, &in), ACTION_WARN, T0 + DAYS(53),
	       REASON_REAUTH_REQUIRED);
}

/* A re-exchange that did not extend the token: re-auth is the only way. */
static void test_facebook_cannot_extend(void)
{
	const struct policy_params *fb = schedule_of("facebook");
	struct policy_input in = token_at(T0, DAYS(60), 0);
	in.now_ms = T0 + DAYS(47);
	in.cannot_extend = true;
	EXPECT("fb cannot extend", policy_next(fb, &in), ACTION_WARN, T0 + DAYS(53),
	       REASON_REAUTH_REQUIRED);
	in.events_fired = EVENT_FIRED_EXPIRING_REAUTH_REQUIRED;
	EXPECT("fb cannot extend", policy_next(fb, &in), ACTION_EXPIRE, T0 + DAYS(60), REASON_NONE);
	in.cannot_extend = false;
	in.now_ms = T0;
	in.events_fired = 0;
	EXPECT("fb extends", policy_next(fb, &in), ACTION_REFRESH, T0 + DAYS(46), REASON_NONE);
}

/* lead = min(30 min, lifetime / 4). */
static void test_tiktok_lead(void)
{
	static const struct {
		int64_t lifetime, lead;
	} cases[] = {
	    {HOURS(24), MINUTES(30)},
	    {HOURS(2), MINUTES(30)},
	    {HOURS(1), MINUTES(15)},
	    {MINUTES(40), MINUTES(10)},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct policy_input in = token_at(T0, cases[i].lifetime, DAYS(365));
		in.has_refresh_token = true;
		EXPECT("tiktok lead", policy_next(schedule_of("tiktok"), &in), ACTION_REFRESH,
		       T0 + cases[i].lifetime - cases[i].lead, REASON_NONE);
	}
}

/* Jitter only moves the refresh earlier, by at most jitter_ms, and never past
 * the warning. */
static void test_refresh_jitter(void)
{
	for (size_t i = 0; i < sizeof(schedule_table) / sizeof(schedule_table[0]); i++) {
		const struct schedule_row *row = &schedule_table[i];
		if (row->refresh_before == NEVER || row->lifetime == 0)
			continue;
		const struct policy_params *params = schedule_of(row->platform);
		int64_t on_time = T0 + row->lifetime - row->refresh_before;
		for (uint32_t k = 0; k < 2000; k++) {
			struct policy_input in = row_input(row);
			in.jitter_seed = k * 2654435761u;
			struct policy_decision d = policy_next(params, &in);
			CHECK(row->name, d.action == ACTION_REFRESH);
			CHECK(row->name, d.due_ms <= on_time);
			CHECK(row->name, d.due_ms >= on_time - params->jitter_ms);
			CHECK(row->name, d.due_ms >= T0);
		}
	}
}

/* Facebook Page tokens do not expire: a check once a day, jitter earlier only. */
static void test_page_check(void)
{
	const struct policy_params *fb = schedule_of("facebook");
	struct policy_input in = token_at(T0, 0, 0);
	EXPECT("page first check", policy_next(fb, &in), ACTION_CHECK, T0 + HOURS(24), REASON_NONE);
	in.now_ms = T0 + HOURS(30);
	in.last_check_at_ms = T0 + HOURS(25);
	EXPECT("page next check", policy_next(fb, &in), ACTION_CHECK, T0 + HOURS(49), REASON_NONE);
	in.refresh_requested = true;
	EXPECT("page check now", policy_next(fb, &in), ACTION_CHECK, T0 + HOURS(30), REASON_NONE);
	/* A failed check: again after its backoff, not at once, even on request. */
	in.failure_count = 1;
	in.next_attempt_at_ms = T0 + HOURS(31);
	EXPECT("page check backoff", policy_next(fb, &in), ACTION_CHECK, T0 + HOURS(31),
	       REASON_NONE);
	in.refresh_requested = false;
	EXPECT("page check backoff", policy_next(fb, &in), ACTION_CHECK, T0 + HOURS(31),
	       REASON_NONE);
	in.next_attempt_at_ms = T0 + HOURS(29);
	EXPECT("page check backoff over", policy_next(fb, &in), ACTION_CHECK, T0 + HOURS(30),
	       REASON_NONE);
	in.failure_count = 0;
	in.next_attempt_at_ms = 0;
	CHECK("page jitter", fb->jitter_ms >= 0 && fb->jitter_ms < HOURS(24));
	int64_t lo = INT64_MAX, hi = INT64_MIN;
	for (uint32_t k = 0; k < 100000; k++) {
		in.jitter_seed = k * 2654435761u;
		struct policy_decision d = policy_next(fb, &in);
		CHECK("page jitter", d.action == ACTION_CHECK);
		CHECK("page jitter", d.due_ms <= T0 + HOURS(49));
		CHECK("page jitter", d.due_ms >= T0 + HOURS(49) - fb->jitter_ms);
		lo = d.due_ms < lo ? d.due_ms : lo;
		hi = d.due_ms > hi ? d.due_ms : hi;
	}
	CHECK("page jitter spreads", hi - lo > fb->jitter_ms / 2);

	struct policy_input x = token_at(T0, 0, 0);
	x.has_refresh_token = true;
	EXPECT("x without expiry", policy_next(schedule_of("x"), &x), ACTION_NONE, 0, REASON_NONE);
}

/* Equal due times: expire, then refresh/retry, then warn. */
static void test_ties(void)
{
	struct policy_params self = {.kind = REFRESH_SELF};
	struct policy_input in = token_at(T0, HOURS(1), 0);
	EXPECT("expire beats refresh", policy_next(&self, &in), ACTION_EXPIRE, T0 + HOURS(1),
	       REASON_NONE);
	struct policy_params grant = {
	    .kind = REFRESH_GRANT, .refresh_lead_ms = MINUTES(10), .warn_lead_ms = MINUTES(10)};
	in.has_refresh_token = true;
	EXPECT("refresh beats warn", policy_next(&grant, &in), ACTION_REFRESH,
	       T0 + HOURS(1) - MINUTES(10), REASON_NONE);
	in.failure_count = 1;
	in.next_attempt_at_ms = T0 + MINUTES(50);
	EXPECT("retry beats warn", policy_next(&grant, &in), ACTION_RETRY, T0 + MINUTES(50),
	       REASON_NONE);
	struct policy_params none = {.kind = REFRESH_NONE};
	EXPECT("expire beats warn", policy_next(&none, &in), ACTION_EXPIRE, T0 + HOURS(1),
	       REASON_NONE);
}

static void test_names(void)
{
	static const char *const actions[ACTION_COUNT] = {"none", "exchange", "refresh", "retry",
	                                                  "warn", "expire",   "check"};
	for (int a = 0; a < ACTION_COUNT; a++) {
		const char *name = policy_action_name((enum action)a);
		CHECK(actions[a], name != NULL && strcmp(name, actions[a]) == 0);
	}
	CHECK("reason none", strcmp(policy_reason_name(REASON_NONE), "") == 0);
	CHECK("refresh_failing",
	      strcmp(policy_reason_name(REASON_REFRESH_FAILING), "refresh_failing") == 0);
	CHECK("reauth_required",
	      strcmp(policy_reason_name(REASON_REAUTH_REQUIRED), "reauth_required") == 0);
}

/* (c) Properties over random inputs. */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static int64_t rng_range(int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rng_next() % (uint64_t)(hi - lo + 1));
}

static bool rng_chance(unsigned percent)
{
	return rng_next() % 100 < percent;
}

static struct policy_input random_input(void)
{
	struct policy_input in = {.now_ms = T0 + rng_range(0, DAYS(100))};
	in.token_issued_at_ms = rng_chance(10) ? 0 : in.now_ms - rng_range(0, DAYS(70));
	int64_t base = in.token_issued_at_ms ? in.token_issued_at_ms : in.now_ms - DAYS(1);
	in.access_expires_at_ms = rng_chance(10) ? 0 : base + rng_range(MINUTES(1), DAYS(70));
	in.refresh_expires_at_ms = rng_chance(40) ? 0 : base + rng_range(0, DAYS(400));
	in.failure_count = (uint32_t)rng_range(0, 3);
	in.next_attempt_at_ms = rng_chance(30) ? 0 : in.now_ms + rng_range(-HOURS(1), DAYS(10));
	in.last_check_at_ms = rng_chance(50) ? 0 : in.now_ms - rng_range(0, DAYS(2));
	in.jitter_seed = (uint32_t)rng_next();
	in.events_fired = (unsigned)rng_range(0, 7);
	in.active = rng_chance(90);
	in.has_refresh_token = rng_chance(70);
	in.has_app_password = rng_chance(30);
	in.needs_exchange = rng_chance(10);
	in.refresh_requested = rng_chance(15);
	in.cannot_extend = rng_chance(15);
	return in;
}

/* The candidates of an expiring token, restated plainly from the rules. */
struct candidates {
	struct policy_decision c[4];
	int n;
};

static void add(struct candidates *cs, enum action action, int64_t due, enum warn_reason reason)
{
	cs->c[cs->n++] =
	    (struct policy_decision){.action = action, .due_ms = due, .reason = reason};
}

static bool kind_refreshes(const struct policy_params *p, const struct policy_input *in)
{
	switch (p->kind) {
	case REFRESH_GRANT:
		return in->has_refresh_token;
	case REFRESH_SELF:
		return !in->cannot_extend;
	case REFRESH_SESSION:
		return in->has_refresh_token || in->has_app_password;
	default:
		return false;
	}
}

static int64_t oracle_refresh_due(const struct policy_params *p, const struct policy_input *in,
                                  enum action *action)
{
	int64_t lead = p->refresh_lead_ms, exp = in->access_expires_at_ms, t;
	int64_t life = exp - in->token_issued_at_ms;
	if (p->refresh_lead_divisor > 0 && in->token_issued_at_ms > 0 && life > 0 &&
	    life / p->refresh_lead_divisor < lead)
		lead = life / p->refresh_lead_divisor;
	bool backoff = in->failure_count > 0 && in->next_attempt_at_ms > 0;
	*action = ACTION_REFRESH;
	if (in->refresh_requested && !(backoff && in->next_attempt_at_ms > in->now_ms)) {
		t = in->now_ms;
	} else if (backoff) {
		*action = ACTION_RETRY;
		t = in->next_attempt_at_ms;
	} else {
		t = exp - lead - (int64_t)(in->jitter_seed % (uint64_t)(p->jitter_ms + 1));
	}
	int64_t floor = in->token_issued_at_ms + p->min_token_age_ms;
	if (p->min_token_age_ms > 0 && in->token_issued_at_ms > 0 && t < floor)
		t = floor;
	return t;
}

static void oracle_refresh(struct candidates *cs, const struct policy_params *p,
                           const struct policy_input *in)
{
	enum action action;
	int64_t t = oracle_refresh_due(p, in, &action);
	bool needs_token =
	    p->kind == REFRESH_GRANT || (p->kind == REFRESH_SESSION && !in->has_app_password);
	int64_t runs_at = t > in->now_ms ? t : in->now_ms;
	if (needs_token && in->refresh_expires_at_ms && runs_at >= in->refresh_expires_at_ms)
		return;
	add(cs, action, t, REASON_NONE);
	if (!(in->events_fired & EVENT_FIRED_EXPIRING_REFRESH_FAILING))
		add(cs, ACTION_WARN, in->access_expires_at_ms - p->warn_lead_ms,
		    REASON_REFRESH_FAILING);
}

static void oracle_candidates(struct candidates *cs, const struct policy_params *p,
                              const struct policy_input *in)
{
	bool refreshes = kind_refreshes(p, in);
	int64_t deadline = policy_hard_deadline(p, in);
	if (deadline && !(in->events_fired & EVENT_FIRED_REVOKED))
		add(cs, ACTION_EXPIRE, deadline, REASON_NONE);
	if (refreshes)
		oracle_refresh(cs, p, in);
	int64_t reauth = !refreshes                 ? in->access_expires_at_ms
	                 : p->kind == REFRESH_GRANT ? in->refresh_expires_at_ms
	                                            : 0;
	if (reauth && !(in->events_fired & EVENT_FIRED_EXPIRING_REAUTH_REQUIRED))
		add(cs, ACTION_WARN, reauth - p->reauth_warn_lead_ms, REASON_REAUTH_REQUIRED);
}

static int rank(enum action a)
{
	return a == ACTION_EXPIRE ? 0 : a == ACTION_WARN ? 2 : 1;
}

static void check_is_min(const char *name, struct policy_decision d, const struct candidates *cs)
{
	CHECK(name, cs->n > 0);
	struct policy_decision best = cs->c[0];
	for (int i = 1; i < cs->n; i++) {
		const struct policy_decision *c = &cs->c[i];
		if (c->due_ms < best.due_ms ||
		    (c->due_ms == best.due_ms && rank(c->action) < rank(best.action)))
			best = *c;
	}
	for (int i = 0; i < cs->n; i++)
		CHECK(name, d.due_ms <= cs->c[i].due_ms);
	EXPECT(name, d, best.action, best.due_ms, best.reason);
}

/* Without the min-age floor, a scheduled refresh is in [exp - lead - jitter, exp - lead]. */
static void check_refresh_window(const char *name, const struct policy_params *p,
                                 const struct policy_input *in, struct policy_decision d)
{
	if (d.action != ACTION_REFRESH || in->refresh_requested || p->min_token_age_ms > 0)
		return;
	if (in->failure_count > 0 && in->next_attempt_at_ms > 0)
		return;
	int64_t lead = p->refresh_lead_ms, life = in->access_expires_at_ms - in->token_issued_at_ms;
	if (p->refresh_lead_divisor > 0 && in->token_issued_at_ms > 0 && life > 0 &&
	    life / p->refresh_lead_divisor < lead)
		lead = life / p->refresh_lead_divisor;
	CHECK(name, d.due_ms <= in->access_expires_at_ms - lead);
	CHECK(name, d.due_ms >= in->access_expires_at_ms - lead - p->jitter_ms);
}

static void check_property(const struct platform *plat, const struct policy_input *in)
{
	const struct policy_params *p = &plat->schedule;
	const char *name = plat->name;
	struct policy_decision d = policy_next(p, in);
	if (!in->active) {
		CHECK(name, d.action == ACTION_NONE);
		return;
	}
	int64_t deadline = policy_hard_deadline(p, in);
	if (deadline && in->now_ms >= deadline) {
		EXPECT(name, d, ACTION_EXPIRE, deadline, REASON_NONE);
		return;
	}
	bool backoff = in->failure_count > 0 && in->next_attempt_at_ms > in->now_ms;
	if (in->needs_exchange && p->exchange) {
		int64_t due = backoff ? in->next_attempt_at_ms : in->now_ms;
		if (deadline && deadline < due && !(in->events_fired & EVENT_FIRED_REVOKED))
			EXPECT(name, d, ACTION_EXPIRE, deadline, REASON_NONE);
		else
			EXPECT(name, d, ACTION_EXCHANGE, due, REASON_NONE);
		return;
	}
	if (in->access_expires_at_ms == 0) {
		CHECK(name, d.action == (p->check_interval_ms > 0 ? ACTION_CHECK : ACTION_NONE));
		if (p->check_interval_ms > 0 && backoff)
			CHECK(name, d.due_ms == in->next_attempt_at_ms);
		return;
	}
	if (!(in->events_fired & EVENT_FIRED_REVOKED))
		CHECK(name, d.action != ACTION_NONE);
	struct candidates cs = {.n = 0};
	oracle_candidates(&cs, p, in);
	if (cs.n == 0)
		CHECK(name, d.action == ACTION_NONE);
	else
		check_is_min(name, d, &cs);
	check_refresh_window(name, p, in, d);
}

static void test_properties(void)
{
	uint64_t seed = UINT64_C(0x70CE4D5EED);
	const char *env = getenv("TOKEND_SEED");
	if (env != NULL)
		seed = strtoull(env, NULL, 0);
	printf("test_policy: property seed 0x%" PRIx64 " (TOKEND_SEED to replay)\n", seed);
	rng_state = seed;
	for (int i = 0; i < 200000; i++) {
		const struct platform *plat =
		    platform_at((size_t)rng_range(0, (int64_t)platform_count() - 1));
		struct policy_input in = random_input();
		check_property(plat, &in);
	}
}

int main(void)
{
	test_schedule_table();
	test_inactive();
	test_exchange();
	test_min_token_age();
	test_refresh_requested();
	test_requested_during_backoff();
	test_retry();
	test_warn_fired();
	test_expire_past_deadline();
	test_x_expired_access();
	test_bluesky();
	test_linkedin_partner();
	test_facebook_cannot_extend();
	test_tiktok_lead();
	test_refresh_jitter();
	test_page_check();
	test_ties();
	test_names();
	test_properties();
	printf("test_policy: ok\n");
	return 0;
}
