/* actions: lifecycle state changes as fenced SQL function calls. */
#include "daemon/actions.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/log.h"
#include "daemon/refresh.h"
#include "daemon/store.h"

bool actions_need_platform(enum action action)
{
	return action == ACTION_EXCHANGE || action == ACTION_REFRESH || action == ACTION_RETRY ||
	       action == ACTION_CHECK;
}

#define RETRY_MIN_MS (60 * 1000)
#define RETRY_MAX_MS (60 * 60 * 1000)

struct run {
	struct daemon *d;
	struct account acct;
	struct policy_decision decision;
	actions_done_fn done;
	void *arg;
	char version[24];
};

static const char *platform_name(const struct run *r)
{
	return r->acct.platform_name;
}

static void finish(struct run *r, enum action_result result)
{
	r->d->metrics.actions[r->decision.action][result]++;
	r->done(&r->acct, r->decision, result, r->arg);
	free(r);
}

enum action_result actions_sql_result(const PGresult *res, const struct account *acct,
                                      const char *what)
{
	if (!res)
		return RESULT_FAILED;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("account %s (%s): %s failed: %s", acct->id_text, acct->platform_name,
		          what, PQresultErrorMessage(res));
		return RESULT_FAILED;
	}
	return PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? RESULT_DONE
	                                                                      : RESULT_FENCED;
}

static void warn_done(const PGresult *res, void *arg)
{
	struct run *r = arg;
	enum action_result result = actions_sql_result(res, &r->acct, "token.expiring");
	if (result == RESULT_DONE)
		log_notice(
		    "account %s (%s): token.expiring recorded (reason %s, expires in %" PRId64
		    " s)",
		    r->acct.id_text, platform_name(r), policy_reason_name(r->decision.reason),
		    (r->acct.state.access_expires_at_ms - r->acct.state.now_ms) / 1000);
	finish(r, result);
}

static void expire_done(const PGresult *res, void *arg)
{
	struct run *r = arg;
	enum action_result result = actions_sql_result(res, &r->acct, "expire");
	if (result == RESULT_DONE)
		log_notice("account %s (%s): token expired; status expired, token.revoked recorded",
		           r->acct.id_text, platform_name(r));
	finish(r, result);
}

int64_t actions_retry_at(int64_t now_ms, uint32_t failures, uint32_t seed)
{
	int64_t delay = RETRY_MIN_MS;
	for (uint32_t i = 0; i < failures && delay < RETRY_MAX_MS; i++)
		delay *= 2;
	if (delay > RETRY_MAX_MS)
		delay = RETRY_MAX_MS;
	return now_ms + delay - (int64_t)(seed % (uint32_t)(delay / 10 + 1));
}

static int start(struct run *r)
{
	const char *params[] = {r->acct.id_text, r->version,
	                        policy_reason_name(r->decision.reason)};
	switch (r->decision.action) {
	case ACTION_WARN:
		return store_query(r->d->store, "SELECT tokend_fire_expiring($1, $2, $3)", 3,
		                   params, warn_done, r);
	case ACTION_EXPIRE:
		return store_query(r->d->store, "SELECT tokend_expire($1, $2)", 2, params,
		                   expire_done, r);
	default:
		break;
	}
	return -1;
}

int actions_run(struct daemon *d, const struct account *acct, struct policy_decision decision,
                actions_done_fn done, void *arg)
{
	if (actions_need_platform(decision.action))
		return refresh_start(d->refresh, acct, decision, done, arg);
	struct run *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	*r = (struct run){.d = d, .acct = *acct, .decision = decision, .done = done, .arg = arg};
	snprintf(r->version, sizeof(r->version), "%" PRId64, acct->token_version);
	if (start(r) < 0) {
		free(r);
		return -1;
	}
	return 0;
}
