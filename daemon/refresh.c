/* refresh: claim, call the platform, journal, store — fenced at each step. */
#include "daemon/refresh.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/batcher.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/http.h"
#include "daemon/journal.h"
#include "daemon/log.h"
#include "daemon/seal.h"
#include "daemon/sqlarray.h"
#include "daemon/store.h"

#define OWNER_MAX 128
#define DEFER_MIN_MS 50
#define WRITER_DOWN_DELAY_MS 500
/* Most accounts claimed or stored by one statement. */
#define BATCH_MAX 500

/* A platform's in-flight cap and rate limit (GCRA: a virtual schedule that
 * lets one second's worth through at once). */
struct limiter {
	double next_ms; /* theoretical arrival time of the next request */
	size_t in_flight;
};

struct refresh {
	struct daemon *d;
	struct http *http;
	struct journal *journal;
	struct secret client_secret[PLATFORM_MAX];
	struct limiter limit[PLATFORM_MAX];
	char owner[OWNER_MAX];
	size_t in_flight;
	struct job *jobs;       /* every job in flight, freed by refresh_free */
	struct batcher *claims; /* jobs to claim, one statement per loop turn */
	struct batcher *stores; /* journaled tokens to store, likewise */
	struct store *store;    /* the write path's own PostgreSQL connection */
};

/* One refresh-type action from claim to commit. */
struct job {
	struct job *prev, *next;
	struct refresh *r;
	struct account acct;
	struct policy_decision decision;
	actions_done_fn done;
	void *arg;
	char version[24];
	struct secret tokens[3]; /* access, refresh, app password: opened, wiped at the end */
	char *external_id;
	int step;
	struct journal_entry entry; /* the new tokens, sealed */
	uint64_t seq;
	enum action_result result;
	int64_t started_mono_ms; /* for tokend_refresh_duration_seconds */
	bool requested;          /* a request went to the platform */
};

static const enum seal_column columns[3] = {SEAL_ACCESS_TOKEN, SEAL_REFRESH_TOKEN,
                                            SEAL_APP_PASSWORD};

static const struct platform *job_platform(const struct job *job)
{
	return platform_at((size_t)job->acct.platform);
}

static struct platform_settings *job_settings(const struct job *job)
{
	return &job->r->d->cfg->platform[job->acct.platform];
}

/* ---- limits ---- */

#define BURST_MS 1000.0

int64_t refresh_admit(struct refresh *r, int platform, int64_t now)
{
	struct limiter *l = &r->limit[platform];
	const struct platform_settings *s = &r->d->cfg->platform[platform];
	if (!store_connected(r->store))
		return now +
		       WRITER_DOWN_DELAY_MS; /* the write path's connection is (re)connecting */
	if (l->in_flight >= (size_t)s->max_inflight)
		return now + DEFER_MIN_MS;
	if (s->rate_limit <= 0)
		return 0;
	double interval = 1000.0 / (double)s->rate_limit;
	double conforms_at = l->next_ms - BURST_MS;
	if (conforms_at > (double)now)
		return (int64_t)conforms_at + 1;
	l->next_ms = (l->next_ms > (double)now ? l->next_ms : (double)now) + interval;
	return 0;
}

/* ---- ending a job ---- */

static void job_free(struct job *job)
{
	if (job->prev)
		job->prev->next = job->next;
	else if (job->r->jobs == job)
		job->r->jobs = job->next;
	if (job->next)
		job->next->prev = job->prev;
	for (int i = 0; i < 3; i++)
		secret_free(&job->tokens[i]);
	free(job->external_id);
	journal_entry_clear(&job->entry);
	free(job);
}

static void finish(struct job *job, enum action_result result)
{
	struct refresh *r = job->r;
	if (job->requested)
		metrics_observe(&r->d->metrics.refresh_duration[job->acct.platform],
		                HISTOGRAM_REFRESH_DURATION,
		                (double)(metrics_monotonic_ms() - job->started_mono_ms) / 1000.0);
	r->in_flight--;
	r->limit[job->acct.platform].in_flight--;
	r->d->metrics.actions[job->decision.action][result]++;
	job->done(&job->acct, job->decision, result, job->arg);
	job_free(job);
}

static void count(struct job *job, enum refresh_outcome outcome)
{
	job->r->d->metrics.refreshes[job->acct.platform][outcome]++;
}

static enum action_result sql_result(const struct job *job, const PGresult *res, const char *what)
{
	return actions_sql_result(res, &job->acct, what);
}

static void failure_recorded(const PGresult *res, void *arg)
{
	struct job *job = arg;
	enum action_result result = sql_result(job, res, "recording the failure");
	finish(job, result == RESULT_DONE ? RESULT_RETRYING : result);
}

/* Count a failed attempt and schedule the retry (not before retry_at). */
static void record_failure(struct job *job, const char *code, int64_t retry_at)
{
	const struct policy_input *s = &job->acct.state;
	int64_t now = sched_now_ms();
	int64_t at = actions_retry_at(now, s->failure_count, s->jitter_seed);
	if (retry_at > at)
		at = retry_at;
	char at_text[32];
	snprintf(at_text, sizeof(at_text), "%.3f", (double)at / 1000.0);
	const char *params[] = {job->acct.id_text, job->version, code, at_text, job->r->owner};
	if (store_query(job->r->store,
	                "SELECT tokend_record_failure($1, $2, $3, to_timestamp($4::float8), $5)", 5,
	                params, failure_recorded, job) < 0)
		finish(job, RESULT_FAILED);
}

/* ---- dead grants ---- */

static void revoke_done(const PGresult *res, void *arg)
{
	struct job *job = arg;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		finish(job, sql_result(job, res, "revoking"));
		return;
	}
	const char *outcome = PQgetvalue(res, 0, 0);
	if (strcmp(outcome, "revoked") == 0) {
		count(job, OUTCOME_REVOKED);
		log_notice("account %s (%s): grant is dead; status revoked, token.revoked recorded",
		           job->acct.id_text, job->acct.platform_name);
		finish(job, RESULT_DONE);
		return;
	}
	if (strcmp(outcome, "adopted") == 0) {
		count(job, OUTCOME_ADOPTED);
		log_notice("account %s (%s): grant refused, but a newer token was stored "
		           "meanwhile; adopting it",
		           job->acct.id_text, job->acct.platform_name);
	}
	finish(job, RESULT_FENCED);
}

static void revoke_grant(struct job *job, const struct platform_result *res)
{
	const char *code =
	    res->verdict == VERDICT_PAGES_NONE ? "facebook.pages.none" : "platform_auth_failed";
	log_info("account %s (%s): platform refused the grant: %s %s", job->acct.id_text,
	         job->acct.platform_name, res->upstream_code, res->message);
	const char *params[] = {job->acct.id_text,
	                        job->version,
	                        code,
	                        res->upstream_code[0] ? res->upstream_code : NULL,
	                        res->message[0] ? res->message : NULL,
	                        job->r->owner};
	if (store_query(job->r->store, "SELECT tokend_revoke($1, $2, $3, $4, $5, $6)", 6, params,
	                revoke_done, job) < 0)
		finish(job, RESULT_FAILED);
}

/* ---- storing new tokens ---- */

/* A claim or store batch: its jobs sorted by account id, so result rows
 * (which carry the id) find their job by binary search. A job is handed on
 * at most once; it may be freed right after, so the batch keeps the id. */
struct batch_entry {
	uint8_t id[SCHED_ID_LEN];
	struct job *job; /* NULL once handed on */
};

struct batch {
	size_t n;
	struct batch_entry entries[];
};

static int compare_entries(const void *a, const void *b)
{
	return memcmp(((const struct batch_entry *)a)->id, ((const struct batch_entry *)b)->id,
	              SCHED_ID_LEN);
}

static struct batch *batch_new(void **items, size_t n)
{
	struct batch *batch = malloc(sizeof(*batch) + n * sizeof(struct batch_entry));
	if (!batch)
		return NULL;
	batch->n = n;
	for (size_t i = 0; i < n; i++) {
		struct job *job = items[i];
		memcpy(batch->entries[i].id, job->acct.id, SCHED_ID_LEN);
		batch->entries[i].job = job;
	}
	qsort(batch->entries, n, sizeof(struct batch_entry), compare_entries);
	return batch;
}

/* The job of a result row's id (column 0), taken out of the batch; NULL if
 * none (or already taken). */
static struct job *batch_take(struct batch *batch, const PGresult *res, int row)
{
	struct batch_entry key;
	if (!seal_parse_uuid(PQgetvalue(res, row, 0), key.id))
		return NULL;
	struct batch_entry *e =
	    bsearch(&key, batch->entries, batch->n, sizeof(struct batch_entry), compare_entries);
	struct job *job = e ? e->job : NULL;
	if (e)
		e->job = NULL;
	return job;
}

static char *bytea_param(const uint8_t *data, size_t len)
{
	char *text = malloc(2 * len + 3);
	if (!text)
		return NULL;
	text[0] = '\\';
	text[1] = 'x';
	for (size_t i = 0; i < len; i++)
		snprintf(text + 2 + 2 * i, 3, "%02x", data[i]);
	text[2 + 2 * len] = '\0';
	return text;
}

static void ms_param(int64_t ms, char out[32])
{
	snprintf(out, 32, "%.3f", (double)ms / 1000.0);
}

typedef void (*stored_fn)(const PGresult *res, void *arg);

/* The one statement that stores a journal entry (from a job or a replay). */
static int store_entry(struct refresh *r, const struct journal_entry *e, stored_fn cb, void *arg)
{
	char id[37], version[24], access_at[32], refresh_at[32];
	seal_format_uuid(e->account_id, id);
	snprintf(version, sizeof(version), "%" PRId64, e->token_version);
	ms_param(e->access_expires_at_ms, access_at);
	ms_param(e->refresh_expires_at_ms, refresh_at);
	char *access = bytea_param(e->sealed_access, e->sealed_access_len);
	char *refresh =
	    e->sealed_refresh ? bytea_param(e->sealed_refresh, e->sealed_refresh_len) : NULL;
	const char *params[] = {id,
	                        version,
	                        access,
	                        refresh,
	                        e->access_expires_at_ms ? access_at : NULL,
	                        e->refresh_expires_at_ms ? refresh_at : NULL,
	                        e->cannot_extend ? "t" : "f"};
	int rc = -1;
	if (access && (refresh || !e->sealed_refresh))
		rc = store_query(r->store,
		                 "SELECT tokend_store_tokens($1, $2, $3::bytea, $4::bytea, "
		                 "to_timestamp($5::float8), to_timestamp($6::float8), $7)",
		                 7, params, cb, arg);
	free(access);
	free(refresh);
	return rc;
}

/* tokend_refresh_lead_seconds: how long before the old token's expiry the
 * new one was stored. */
static void observe_lead(const struct job *job)
{
	int64_t old_expiry = job->acct.state.access_expires_at_ms;
	if (old_expiry)
		metrics_observe(&job->r->d->metrics.refresh_lead[job->acct.platform],
		                HISTOGRAM_REFRESH_LEAD,
		                (double)(old_expiry - sched_now_ms()) / 1000.0);
}

/* The store failed (PostgreSQL away or refusing): the journal keeps the
 * tokens; they are committed on reconnect or by the account's next attempt
 * (commit_kept). */
static void tokens_not_stored(struct job *job)
{
	log_warnx("account %s (%s): new tokens kept in the journal until PostgreSQL takes them",
	          job->acct.id_text, job->acct.platform_name);
	finish(job, RESULT_FAILED);
}

/* PostgreSQL answered for this job's tokens: stored (DONE), or fenced out
 * because the version moved on (the journal entry is obsolete either way). */
static void tokens_stored(struct job *job, enum action_result result)
{
	if (job->seq)
		journal_retire(job->r->journal, job->seq);
	if (result == RESULT_DONE) {
		count(job, OUTCOME_REFRESHED);
		observe_lead(job);
		log_info("account %s (%s): %s done; new token expires in %" PRId64 " s",
		         job->acct.id_text, job->acct.platform_name,
		         policy_action_name(job->decision.action),
		         (job->entry.access_expires_at_ms - sched_now_ms()) / 1000);
	}
	finish(job, result);
}

static void stores_answered(const PGresult *res, void *arg)
{
	struct batch *batch = arg;
	bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
	if (res && !ok)
		log_warnx("refresh: storing %zu refreshes failed: %s", batch->n,
		          PQresultErrorMessage(res));
	for (int row = 0; ok && row < PQntuples(res); row++) {
		struct job *job = batch_take(batch, res, row);
		if (job)
			tokens_stored(job, RESULT_DONE);
	}
	for (size_t i = 0; i < batch->n; i++) {
		struct job *job = batch->entries[i].job;
		if (job && ok)
			tokens_stored(job, RESULT_FENCED);
		else if (job)
			tokens_not_stored(job);
	}
	free(batch);
}

/* The seven arrays of tokend_store_many, one element per job. */
struct store_arrays {
	struct sqlarray ids, versions, access, refresh, access_at, refresh_at, cannot_extend;
};

static void add_store_row(struct store_arrays *a, const struct job *job)
{
	const struct journal_entry *e = &job->entry;
	char at[32];
	sqlarray_add(&a->ids, job->acct.id_text);
	sqlarray_add(&a->versions, job->version);
	sqlarray_add_bytea(&a->access, e->sealed_access, e->sealed_access_len);
	if (e->sealed_refresh)
		sqlarray_add_bytea(&a->refresh, e->sealed_refresh, e->sealed_refresh_len);
	else
		sqlarray_add_null(&a->refresh);
	ms_param(e->access_expires_at_ms, at);
	sqlarray_add(&a->access_at, at);
	ms_param(e->refresh_expires_at_ms, at);
	if (e->refresh_expires_at_ms)
		sqlarray_add(&a->refresh_at, at);
	else
		sqlarray_add_null(&a->refresh_at);
	sqlarray_add(&a->cannot_extend, e->cannot_extend ? "t" : "f");
}

/* One statement stores every refresh whose journal entry became durable
 * this loop turn. */
static void send_stores(void **items, size_t n, void *arg)
{
	struct refresh *r = arg;
	struct batch *batch = batch_new(items, n);
	struct store_arrays a;
	struct sqlarray *arrays[] = {&a.ids,       &a.versions,   &a.access,       &a.refresh,
	                             &a.access_at, &a.refresh_at, &a.cannot_extend};
	char *texts[7] = {0};
	bool complete = batch != NULL;
	for (size_t i = 0; i < 7; i++)
		sqlarray_init(arrays[i]);
	for (size_t i = 0; i < n; i++)
		add_store_row(&a, items[i]);
	for (size_t i = 0; i < 7; i++)
		complete = (texts[i] = sqlarray_finish(arrays[i])) && complete;
	bool sent = false;
	if (complete)
		sent = store_query(r->store,
		                   "SELECT tokend_store_many($1::uuid[], $2::int8[], $3::bytea[], "
		                   "$4::bytea[], $5::float8[], $6::float8[], $7::bool[])",
		                   7, (const char *const *)texts, stores_answered, batch) == 0;
	for (size_t i = 0; i < 7; i++)
		free(texts[i]);
	if (!sent) {
		free(batch);
		for (size_t i = 0; i < n; i++)
			tokens_not_stored(items[i]);
	}
}

static void journaled(uint64_t seq, bool ok, void *arg)
{
	struct job *job = arg;
	if (!ok)
		log_err("account %s (%s): the journal could not be synced; storing the new "
		        "tokens without it",
		        job->acct.id_text, job->acct.platform_name);
	if (batcher_add(job->r->stores, job) < 0)
		tokens_not_stored(job);
}

static int seal_into(const struct job *job, enum seal_column col, const struct secret *plain,
                     uint8_t **out, size_t *len)
{
	return seal_value(job->r->d->keyring, job->acct.id, col, plain->data, plain->len, out, len);
}

/* Seal the new tokens into job->entry. */
static int build_entry(struct job *job, const struct platform_result *res)
{
	struct journal_entry *e = &job->entry;
	const struct policy_input *s = &job->acct.state;
	int64_t now = sched_now_ms();
	memcpy(e->account_id, job->acct.id, sizeof(e->account_id));
	e->token_version = job->acct.token_version;
	e->access_expires_at_ms = res->access_expires_at_ms
	                              ? res->access_expires_at_ms
	                              : now + job_platform(job)->default_access_lifetime_ms;
	e->refresh_expires_at_ms = res->refresh_expires_at_ms;
	/* A re-exchange that did not move the expiry cannot keep the account alive. */
	e->cannot_extend =
	    s->access_expires_at_ms &&
	    e->access_expires_at_ms <= s->access_expires_at_ms + POLICY_MS_PER_MINUTE;
	if (seal_into(job, SEAL_ACCESS_TOKEN, &res->access_token, &e->sealed_access,
	              &e->sealed_access_len) < 0)
		return -1;
	if (!secret_empty(&res->refresh_token) &&
	    seal_into(job, SEAL_REFRESH_TOKEN, &res->refresh_token, &e->sealed_refresh,
	              &e->sealed_refresh_len) < 0)
		return -1;
	return 0;
}

/* The platform returned tokens: durable first, then PostgreSQL. */
static void keep_new_tokens(struct job *job, const struct platform_result *res)
{
	if (build_entry(job, res) < 0) {
		log_err("account %s (%s): cannot seal the new tokens", job->acct.id_text,
		        job->acct.platform_name);
		finish(job, RESULT_FAILED);
		return;
	}
	if (journal_append(job->r->journal, &job->entry, journaled, job, &job->seq) < 0) {
		log_err("account %s (%s): journal write failed; storing the new tokens without it",
		        job->acct.id_text, job->acct.platform_name);
		job->seq = 0;
		journaled(0, false, job);
	}
}

static void check_passed(const PGresult *res, void *arg)
{
	struct job *job = arg;
	enum action_result result = sql_result(job, res, "recording the check");
	if (result == RESULT_DONE)
		count(job, OUTCOME_CHECKED);
	finish(job, result);
}

/* ---- the platform call ---- */

static void send_request(struct job *job);

static void transient(struct job *job, const struct platform_result *res, bool malformed)
{
	count(job, malformed ? OUTCOME_MALFORMED : OUTCOME_TRANSIENT);
	if (malformed)
		job->r->d->metrics.bad_input[BAD_UPSTREAM_BODY]++;
	log_warnx("account %s (%s): %s failed, will retry: %s%s%s", job->acct.id_text,
	          job->acct.platform_name, policy_action_name(job->decision.action),
	          res->upstream_code, res->upstream_code[0] ? " " : "", res->message);
	const char *code = res->upstream_code[0] ? res->upstream_code
	                   : malformed           ? "malformed_response"
	                                         : "transient";
	record_failure(job, code, res->retry_at_ms);
}

static void act_on_result(struct job *job, const struct platform_result *res)
{
	switch (res->verdict) {
	case VERDICT_OK:
		if (res->message[0]) { /* usable tokens, but something in the body was off */
			job->r->d->metrics.bad_input[BAD_UPSTREAM_BODY]++;
			log_warnx("account %s (%s): %s", job->acct.id_text, job->acct.platform_name,
			          res->message);
		}
		if (job->decision.action == ACTION_CHECK) {
			const char *params[] = {job->acct.id_text, job->version, job->r->owner};
			if (store_query(job->r->store, "SELECT tokend_record_check($1, $2, $3)", 3,
			                params, check_passed, job) < 0)
				finish(job, RESULT_FAILED);
		} else {
			keep_new_tokens(job, res);
		}
		return;
	case VERDICT_NEXT_STEP:
		job->step++;
		send_request(job);
		return;
	case VERDICT_DEAD:
	case VERDICT_PAGES_NONE:
		revoke_grant(job, res);
		return;
	case VERDICT_TRANSIENT:
	case VERDICT_MALFORMED:
		transient(job, res, res->verdict == VERDICT_MALFORMED);
		return;
	}
}

static void network_failure(struct job *job, const struct http_response *resp)
{
	struct platform_result res = {.verdict =
	                                  resp->too_large ? VERDICT_MALFORMED : VERDICT_TRANSIENT};
	snprintf(res.upstream_code, sizeof(res.upstream_code), "%s",
	         resp->too_large ? "response_too_large" : "network_error");
	snprintf(res.message, sizeof(res.message), "%s", resp->error);
	act_on_result(job, &res);
}

static struct platform_grant grant_of(const struct job *job)
{
	const struct secret *t = job->tokens;
	return (struct platform_grant){
	    .external_id = job->external_id ? job->external_id : "",
	    .access_token = secret_empty(&t[0]) ? NULL : &t[0],
	    .refresh_token = secret_empty(&t[1]) ? NULL : &t[1],
	    .app_password = secret_empty(&t[2]) ? NULL : &t[2],
	    .action = job->decision.action == ACTION_RETRY ? ACTION_REFRESH : job->decision.action,
	    .step = job->step,
	};
}

static void on_response(const struct http_response *resp, void *arg)
{
	struct job *job = arg;
	job->requested = true;
	if (resp->error) {
		network_failure(job, resp);
		return;
	}
	struct platform_response pr = {.status = resp->status,
	                               .body = resp->body,
	                               .body_len = resp->body_len,
	                               .retry_after = resp->retry_after,
	                               .rate_reset = resp->rate_limit_reset,
	                               .now_ms = sched_now_ms()};
	struct platform_grant grant = grant_of(job); /* the one the request was built from */
	struct platform_result res = {0};
	job_platform(job)->parse_response(&grant, &pr, &res);
	act_on_result(job, &res);
	platform_result_clear(&res);
}

static void send_request(struct job *job)
{
	struct platform_settings *s = job_settings(job);
	struct platform_client client = {
	    .base_url = s->base_url,
	    .client_id = s->client_id,
	    .client_secret = secret_empty(&job->r->client_secret[job->acct.platform])
	                         ? NULL
	                         : &job->r->client_secret[job->acct.platform]};
	struct platform_grant grant = grant_of(job);
	struct platform_request req = {0};
	char err[160] = "";
	if (job_platform(job)->build_request(&client, &grant, &req, err, sizeof(err)) < 0) {
		/* Out of memory is ours to retry; anything else is the grant's. */
		bool ours = strstr(err, "out of memory") || strstr(err, "no memory");
		struct platform_result res = {.verdict = ours ? VERDICT_TRANSIENT : VERDICT_DEAD};
		snprintf(res.upstream_code, sizeof(res.upstream_code), "%s",
		         ours ? "out_of_memory" : "no_usable_grant");
		snprintf(res.message, sizeof(res.message), "%s", err);
		act_on_result(job, &res);
		return;
	}
	struct http_request hr = {.method = req.method == PLATFORM_POST ? HTTP_POST : HTTP_GET,
	                          .url = req.url,
	                          .body = req.body,
	                          .body_len = req.body_len,
	                          .content_type = req.content_type,
	                          .authorization = req.authorization};
	int rc = http_send(job->r->http, &hr, on_response, job);
	platform_request_clear(&req);
	if (rc < 0) {
		struct platform_result res = {.verdict = VERDICT_TRANSIENT};
		snprintf(res.upstream_code, sizeof(res.upstream_code), "request_not_sent");
		act_on_result(job, &res);
	}
}

/* ---- claim and open ---- */

/* Columns of tokend_claim_many: id, then the three sealed columns, then
 * external_id. */
#define CLAIM_TOKENS 1
#define CLAIM_EXTERNAL_ID 4

static bool open_column(struct job *job, const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, CLAIM_TOKENS + col))
		return true;
	size_t len = 0;
	unsigned char *sealed =
	    PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, CLAIM_TOKENS + col), &len);
	char err[160] = "not valid bytea";
	bool ok = sealed && seal_open(job->r->d->keyring, job->acct.id, columns[col], sealed, len,
	                              &job->tokens[col], err, sizeof(err)) == 0;
	PQfreemem(sealed);
	if (!ok)
		log_err("account %s (%s): %s does not open: %s", job->acct.id_text,
		        job->acct.platform_name, seal_column_name(columns[col]), err);
	return ok;
}

/* The account is ours for the lease: open its tokens and call the platform. */
static void claimed_row(struct job *job, const PGresult *res, int row)
{
	bool opens = true;
	for (int col = 0; col < 3; col++)
		opens = open_column(job, res, row, col) && opens;
	if (!opens) {
		job->r->d->metrics.bad_input[BAD_ROW_UNDECRYPTABLE]++;
		count(job, OUTCOME_UNOPENABLE);
		record_failure(job, "token_undecryptable", 0);
		return;
	}
	if (!PQgetisnull(res, row, CLAIM_EXTERNAL_ID))
		job->external_id = strdup(PQgetvalue(res, row, CLAIM_EXTERNAL_ID));
	send_request(job);
}

/* Claimed rows go on; jobs without a row were fenced out (leased elsewhere,
 * token changed, not active): their accounts are re-read. */
static void claims_answered(const PGresult *res, void *arg)
{
	struct batch *batch = arg;
	bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
	if (res && !ok)
		log_warnx("refresh: claiming %zu accounts failed: %s", batch->n,
		          PQresultErrorMessage(res));
	for (int row = 0; ok && row < PQntuples(res); row++) {
		struct job *job = batch_take(batch, res, row);
		if (job)
			claimed_row(job, res, row);
	}
	for (size_t i = 0; i < batch->n; i++)
		if (batch->entries[i].job)
			finish(batch->entries[i].job, ok ? RESULT_FENCED : RESULT_FAILED);
	free(batch);
}

/* One statement claims every account that started this loop turn. */
static void send_claims(void **items, size_t n, void *arg)
{
	struct refresh *r = arg;
	struct batch *batch = batch_new(items, n);
	struct sqlarray ids, versions;
	sqlarray_init(&ids);
	sqlarray_init(&versions);
	for (size_t i = 0; i < n; i++) {
		struct job *job = items[i];
		sqlarray_add(&ids, job->acct.id_text);
		sqlarray_add(&versions, job->version);
	}
	char *id_text = sqlarray_finish(&ids), *version_text = sqlarray_finish(&versions);
	char lease[24];
	snprintf(lease, sizeof(lease), "%" PRId64, r->d->cfg->refresh_lease_ms);
	const char *params[] = {id_text, version_text, r->owner, lease};
	bool sent = false;
	if (batch && id_text && version_text)
		sent =
		    store_query(r->store,
		                "SELECT * FROM tokend_claim_many($1::uuid[], $2::int8[], $3, $4)",
		                4, params, claims_answered, batch) == 0;
	free(id_text);
	free(version_text);
	if (!sent) {
		free(batch);
		for (size_t i = 0; i < n; i++)
			finish(items[i], RESULT_FAILED);
	}
}

static void deferred(evutil_socket_t fd, short what, void *arg)
{
	struct job *job = arg;
	finish(job, RESULT_DEFERRED);
}

/* ---- tokens kept from an earlier attempt ---- */

struct kept_search {
	const uint8_t *account_id;
	const struct journal_entry *found;
};

static void find_kept(const struct journal_entry *e, void *arg)
{
	struct kept_search *s = arg;
	if (!s->found && memcmp(e->account_id, s->account_id, JOURNAL_ID_LEN) == 0)
		s->found = e;
}

static void kept_stored(const PGresult *res, void *arg)
{
	struct job *job = arg;
	enum action_result result = sql_result(job, res, "storing the kept tokens");
	if (result != RESULT_FAILED) {
		if (result == RESULT_DONE)
			job->r->d->metrics.journal_replayed++;
		journal_retire(job->r->journal, job->seq);
		log_notice("journal: entry %llu %s", (unsigned long long)job->seq,
		           result == RESULT_DONE ? "committed" : "already superseded; dropped");
	}
	finish(job, result);
}

/* The platform already answered an earlier attempt and the journal still
 * holds that answer (PostgreSQL refused or missed the commit): the refresh
 * token on the row is spent, so this attempt commits the kept tokens instead
 * of calling the platform. 1: storing them, 0: nothing kept, -1: error. */
static int commit_kept(struct job *job)
{
	struct kept_search search = {.account_id = job->acct.id};
	journal_foreach_pending(job->r->journal, find_kept, &search);
	if (!search.found)
		return 0;
	job->seq = search.found->seq;
	log_notice("account %s (%s): committing the tokens kept in journal entry %llu instead "
	           "of calling the platform",
	           job->acct.id_text, job->acct.platform_name, (unsigned long long)job->seq);
	return store_entry(job->r, search.found, kept_stored, job) < 0 ? -1 : 1;
}

int refresh_start(struct refresh *r, const struct account *acct, struct policy_decision decision,
                  actions_done_fn done, void *arg)
{
	struct job *job = calloc(1, sizeof(*job));
	if (!job)
		return -1;
	*job = (struct job){.r = r,
	                    .acct = *acct,
	                    .decision = decision,
	                    .done = done,
	                    .arg = arg,
	                    .started_mono_ms = metrics_monotonic_ms()};
	job->next = r->jobs;
	if (r->jobs)
		r->jobs->prev = job;
	r->jobs = job;
	snprintf(job->version, sizeof(job->version), "%" PRId64, acct->token_version);
	struct limiter *l = &r->limit[acct->platform];
	r->in_flight++;
	l->in_flight++;
	if (l->in_flight > (size_t)job_settings(job)->max_inflight) {
		/* Admitted while others were starting: finish on the next loop turn. */
		struct timeval tv = {0, 0};
		if (event_base_once(r->d->base, -1, EV_TIMEOUT, deferred, job, &tv) < 0)
			goto fail;
		return 0;
	}
	int kept = commit_kept(job);
	if (kept < 0)
		goto fail;
	if (kept)
		return 0;
	if (!store_connected(r->store) || batcher_add(r->claims, job) < 0)
		goto fail;
	return 0;
fail:
	r->in_flight--;
	l->in_flight--;
	job_free(job);
	return -1;
}

/* ---- journal replay ---- */

struct replay {
	struct refresh *r;
	uint64_t seq;
};

static void replayed(const PGresult *res, void *arg)
{
	struct replay *rp = arg;
	struct refresh *r = rp->r;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
		bool stored_now = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		if (stored_now)
			r->d->metrics.journal_replayed++;
		log_notice("journal: entry %llu %s", (unsigned long long)rp->seq,
		           stored_now ? "committed" : "already superseded; dropped");
		journal_retire(r->journal, rp->seq);
	} else if (res) {
		log_err("journal: entry %llu not committed: %s", (unsigned long long)rp->seq,
		        PQresultErrorMessage(res));
	}
	free(rp);
}

static void replay_one(const struct journal_entry *e, void *arg)
{
	struct refresh *r = arg;
	struct replay *rp = malloc(sizeof(*rp));
	if (!rp)
		return;
	*rp = (struct replay){.r = r, .seq = e->seq};
	if (store_entry(r, e, replayed, rp) < 0)
		free(rp);
}

void refresh_replay_journal(struct refresh *r)
{
	if (journal_pending(r->journal))
		log_notice("journal: committing %zu entries kept while PostgreSQL was away",
		           journal_pending(r->journal));
	journal_foreach_pending(r->journal, replay_one, r);
}

/* ---- life cycle ---- */

static int load_client_secrets(struct refresh *r, struct secret *out, char *err, size_t errlen)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	for (size_t i = 0; i < platform_count(); i++) {
		const char *file = r->d->cfg->platform[i].client_secret_file;
		char path[4096];
		if (file[0])
			snprintf(path, sizeof(path), "%s", file);
		else if (creds)
			snprintf(path, sizeof(path), "%s/%s_client_secret", creds,
			         platform_at(i)->name);
		else
			continue;
		if (!file[0] && access(path, F_OK) != 0)
			continue; /* no credential for this platform */
		char why[256];
		if (secret_read_file(path, &out[i], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "platform.%s.client_secret_file: %s",
			         platform_at(i)->name, why);
			return -1;
		}
	}
	return 0;
}

static long max_platform_inflight(const struct config *cfg)
{
	int64_t most = 1;
	for (size_t i = 0; i < platform_count(); i++)
		if (cfg->platform[i].max_inflight > most)
			most = cfg->platform[i].max_inflight;
	return (long)most;
}

static struct http_options http_options_of(const struct config *cfg)
{
	return (struct http_options){
	    .ca_file = cfg->http_ca_file[0] ? cfg->http_ca_file : NULL,
	    .connect_timeout_ms = cfg->http_connect_timeout_ms,
	    .total_timeout_ms = cfg->http_timeout_ms,
	    .max_response_bytes = (size_t)cfg->http_max_response_bytes,
	    /* Above every platform's in-flight cap, so requests never queue
	     * inside curl (queue time would count against http_timeout). */
	    .max_host_connections = max_platform_inflight(cfg),
	    .max_connections = 4 * max_platform_inflight(cfg),
	};
}

int refresh_reload(struct refresh *r, char *err, size_t errlen)
{
	struct secret secrets[PLATFORM_MAX] = {0};
	struct http_options opts = http_options_of(r->d->cfg);
	if (load_client_secrets(r, secrets, err, errlen) < 0 ||
	    http_set_options(r->http, &opts) < 0) {
		for (size_t i = 0; i < PLATFORM_MAX; i++)
			secret_free(&secrets[i]);
		if (!err[0])
			snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < PLATFORM_MAX; i++) {
		secret_free(&r->client_secret[i]);
		r->client_secret[i] = secrets[i];
	}
	return 0;
}

static void set_owner(struct refresh *r)
{
	const char *id = r->d->cfg->instance_id;
	if (id[0]) {
		snprintf(r->owner, sizeof(r->owner), "%s", id);
		return;
	}
	char host[64] = "localhost";
	gethostname(host, sizeof(host) - 1);
	snprintf(r->owner, sizeof(r->owner), "%s:%d", host, (int)getpid());
}

static void writer_connected(void *arg)
{
	refresh_replay_journal(arg);
}

/* The write path has a connection of its own, so claims and stores never
 * wait behind the loads and re-reads of the schedule's connection. Kept
 * tokens are committed whenever it (re)connects. */
static int open_store(struct refresh *r)
{
	const struct config *cfg = r->d->cfg;
	struct store_options opts = {.conninfo = cfg->database_url,
	                             .reconnect_min_ms = cfg->reconnect_min_ms,
	                             .reconnect_max_ms = cfg->reconnect_max_ms,
	                             .application_name = "tokend",
	                             .session_sql = "SET tokend.origin = 'engine'"};
	struct store_handlers handlers = {.connected = writer_connected, .arg = r};
	r->store = store_new(r->d->base, &opts, &handlers);
	return r->store ? 0 : -1;
}

struct refresh *refresh_new(struct daemon *d, char *err, size_t errlen)
{
	struct refresh *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->d = d;
	set_owner(r);
	struct http_options opts = http_options_of(d->cfg);
	err[0] = '\0';
	if (!(r->journal = journal_open(d->base, d->cfg->state_directory, err, errlen)))
		goto fail;
	if (!(r->http = http_new(d->base, &opts))) {
		snprintf(err, errlen, "cannot start the HTTP client");
		goto fail;
	}
	if (load_client_secrets(r, r->client_secret, err, errlen) < 0)
		goto fail;
	if (open_store(r) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	r->claims = batcher_new(d->base, BATCH_MAX, send_claims, r);
	r->stores = batcher_new(d->base, BATCH_MAX, send_stores, r);
	if (!r->claims || !r->stores) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	log_info("refresh: instance %s, journal with %zu pending entries", r->owner,
	         journal_pending(r->journal));
	return r;
fail:
	refresh_free(r);
	return NULL;
}

void refresh_free(struct refresh *r)
{
	if (!r)
		return;
	store_free(r->store); /* no callback runs after this */
	http_free(r->http);
	batcher_free(r->claims);
	batcher_free(r->stores);
	while (r->jobs)
		job_free(r->jobs);
	journal_close(r->journal);
	for (size_t i = 0; i < PLATFORM_MAX; i++)
		secret_free(&r->client_secret[i]);
	free(r);
}

bool refresh_connected(const struct refresh *r)
{
	return store_connected(r->store);
}

size_t refresh_in_flight(const struct refresh *r)
{
	return r->in_flight;
}

size_t refresh_journal_pending(const struct refresh *r)
{
	return journal_pending(r->journal);
}
