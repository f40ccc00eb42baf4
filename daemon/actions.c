/* actions: lifecycle state changes as fenced SQL function calls. */
#include "daemon/actions.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/log.h"
#include "daemon/seal.h"
#include "daemon/store.h"
#include "platforms/platform.h"

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

/* A boolean SQL function answered: 't' done, 'f' fenced out, else failed. */
static enum action_result bool_result(const PGresult *res, const char *what, const struct run *r)
{
	if (!res)
		return RESULT_FAILED;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("account %s (%s): %s failed: %s", r->acct.id_text, platform_name(r), what,
		          PQresultErrorMessage(res));
		return RESULT_FAILED;
	}
	return PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? RESULT_DONE
	                                                                       : RESULT_FENCED;
}

static void warn_done(const PGresult *res, void *arg)
{
	struct run *r = arg;
	enum action_result result = bool_result(res, "token.expiring", r);
	if (result == RESULT_DONE)
		log_notice("account %s (%s): token.expiring recorded (reason %s, expires in %" PRId64
		           " s)",
		           r->acct.id_text, platform_name(r), policy_reason_name(r->decision.reason),
		           (r->acct.state.access_expires_at_ms - r->acct.state.now_ms) / 1000);
	finish(r, result);
}

static void expire_done(const PGresult *res, void *arg)
{
	struct run *r = arg;
	enum action_result result = bool_result(res, "expire", r);
	if (result == RESULT_DONE)
		log_notice("account %s (%s): token expired; status expired, token.revoked recorded",
		           r->acct.id_text, platform_name(r));
	finish(r, result);
}

static void failure_recorded(const PGresult *res, void *arg)
{
	struct run *r = arg;
	enum action_result result = bool_result(res, "recording the attempt", r);
	finish(r, result == RESULT_DONE ? RESULT_UNAVAILABLE : result);
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

static int record_failure(struct run *r, const char *code)
{
	int64_t at = actions_retry_at(r->acct.state.now_ms, r->acct.state.failure_count,
	                              r->acct.state.jitter_seed);
	char at_text[32];
	snprintf(at_text, sizeof(at_text), "%.3f", (double)at / 1000.0);
	const char *params[] = {r->acct.id_text, r->version, code, at_text};
	return store_query(r->d->store,
	                   "SELECT tokend_record_failure($1, $2, $3, to_timestamp($4::float8))", 4,
	                   params, failure_recorded, r);
}

static const enum seal_column sealed_columns[] = {SEAL_ACCESS_TOKEN, SEAL_REFRESH_TOKEN,
                                                  SEAL_APP_PASSWORD};

/* Open one sealed column to prove it is usable; the plaintext is wiped at
 * once. true when NULL or it opens. */
static bool column_opens(const struct run *r, const PGresult *res, int col)
{
	if (PQgetisnull(res, 0, col))
		return true;
	size_t len = 0;
	unsigned char *sealed = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, col), &len);
	struct secret plain = {0};
	char err[160] = "not valid bytea";
	bool ok = sealed && seal_open(r->d->keyring, r->acct.id, sealed_columns[col], sealed, len,
	                              &plain, err, sizeof(err)) == 0;
	secret_free(&plain);
	PQfreemem(sealed);
	if (!ok)
		log_err("account %s (%s): %s does not open: %s", r->acct.id_text, platform_name(r),
		        seal_column_name(sealed_columns[col]), err);
	return ok;
}

static void tokens_read(const PGresult *res, void *arg)
{
	struct run *r = arg;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		finish(r, res && PQresultStatus(res) == PGRES_TUPLES_OK ? RESULT_FENCED
		                                                        : RESULT_FAILED);
		return;
	}
	bool opens = true;
	for (int col = 0; col < 3; col++)
		opens = column_opens(r, res, col) && opens;
	const char *code = "refresh_unavailable";
	if (!opens) {
		r->d->metrics.bad_input[BAD_ROW_UNDECRYPTABLE]++;
		code = "token_undecryptable";
	} else {
		log_notice("account %s (%s): %s due (late by %" PRId64
		           " ms); the refresh engine is not in this build",
		           r->acct.id_text, platform_name(r), policy_action_name(r->decision.action),
		           r->acct.state.now_ms - r->decision.due_ms);
	}
	if (record_failure(r, code) < 0)
		finish(r, RESULT_FAILED);
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
	case ACTION_EXCHANGE:
	case ACTION_REFRESH:
	case ACTION_RETRY:
	case ACTION_CHECK:
		return store_query(r->d->store,
		                   "SELECT access_token, refresh_token, app_password "
		                   "FROM platform_accounts WHERE id = $1 AND token_version = $2",
		                   2, params, tokens_read, r);
	case ACTION_NONE:
		break;
	}
	return -1;
}

int actions_run(struct daemon *d, const struct account *acct, struct policy_decision decision,
                actions_done_fn done, void *arg)
{
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
