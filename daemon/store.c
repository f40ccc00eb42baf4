/* store: an asynchronous libpq connection driven by libevent. */
#include "daemon/store.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"

/* event_free() is not NULL-safe. */
static void free_event(struct event *ev)
{
	if (ev)
		event_free(ev);
}

enum request_kind { REQ_QUERY, REQ_SIMPLE, REQ_COPY };

struct request {
	struct request *next;
	enum request_kind kind;
	char *sql;
	int nparams;
	char **params;
	store_result_fn done;
	store_line_fn line;
	store_copy_done_fn copy_done;
	void *arg;
	PGresult *last;     /* latest result; the one handed to done */
	bool copy_started;  /* COPY_OUT result seen */
	bool copy_finished; /* all lines read */
	bool failed;        /* a SIMPLE statement failed */
};

enum store_state { STORE_DISCONNECTED, STORE_CONNECTING, STORE_READY };

struct store {
	struct event_base *base;
	PGconn *conn;
	enum store_state state;
	char *conninfo;
	char *application_name;
	char *listen_sql; /* session settings and "LISTEN a; LISTEN b", run on connect */
	struct store_handlers handlers;
	int64_t reconnect_min_ms, reconnect_max_ms, connect_timeout_ms, backoff_ms;
	int copy_batch_rows;
	struct event *sock_ev;   /* readable (persistent) or connect polling */
	struct event *write_ev;  /* pending output to flush */
	struct event *resume_ev; /* continue a COPY on the next loop turn */
	struct event *broken_ev; /* tear down on the next loop turn (see fail_soon) */
	const char *broken_why;
	struct event *retry_ev;    /* reconnect timer */
	struct event *deadline_ev; /* connect timeout */
	struct request *in_flight;
	struct request *head, *tail;
	size_t queued;
};

static void connect_start(struct store *st);
static void process_in_flight(struct store *st);

static void request_free(struct request *req)
{
	if (!req)
		return;
	for (int i = 0; i < req->nparams; i++)
		free(req->params[i]);
	free(req->params);
	free(req->sql);
	PQclear(req->last);
	free(req);
}

/* Tell the owner a request ended without a result (connection lost). */
static void request_fail(struct request *req)
{
	if (req->kind == REQ_COPY && req->copy_done)
		req->copy_done(false, req->arg);
	else if (req->kind == REQ_QUERY && req->done)
		req->done(NULL, req->arg);
	request_free(req);
}

static void clear_events(struct store *st)
{
	free_event(st->sock_ev);
	free_event(st->write_ev);
	free_event(st->deadline_ev);
	st->sock_ev = st->write_ev = st->deadline_ev = NULL;
	if (st->resume_ev)
		event_del(st->resume_ev);
	if (st->broken_ev)
		event_del(st->broken_ev);
}

static void fail_all(struct store *st)
{
	struct request *req = st->in_flight;
	st->in_flight = NULL;
	if (req)
		request_fail(req);
	while ((req = st->head)) {
		st->head = req->next;
		st->queued--;
		request_fail(req);
	}
	st->tail = NULL;
}

static void schedule_reconnect(struct store *st)
{
	int64_t delay = st->backoff_ms;
	/* Up to a quarter less, so a fleet does not reconnect in lockstep. */
	delay -= delay > 4 ? (int64_t)(random() % (delay / 4)) : 0;
	st->backoff_ms =
	    st->backoff_ms * 2 > st->reconnect_max_ms ? st->reconnect_max_ms : st->backoff_ms * 2;
	struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
	evtimer_add(st->retry_ev, &tv);
	log_info("store: reconnecting in %lld ms", (long long)delay);
}

/* The connection is gone (or never came): fail what it held, retry later. */
static void teardown(struct store *st, const char *why)
{
	bool was_ready = st->state == STORE_READY;
	log_warnx("store: PostgreSQL connection %s: %s", was_ready ? "lost" : "failed",
	          st->conn ? PQerrorMessage(st->conn) : why);
	clear_events(st);
	PQfinish(st->conn);
	st->conn = NULL;
	st->state = STORE_DISCONNECTED;
	fail_all(st);
	if (was_ready && st->handlers.disconnected)
		st->handlers.disconnected(st->handlers.arg);
	schedule_reconnect(st);
}

/* Sending failed. Sends happen inside store_query(), whose caller must not
 * see its callbacks (or the disconnect handler) run before it returns: the
 * teardown runs on the next loop turn instead. */
static void fail_soon(struct store *st, const char *why)
{
	st->broken_why = why;
	event_active(st->broken_ev, EV_TIMEOUT, 0);
}

static void on_broken(evutil_socket_t fd, short what, void *arg)
{
	struct store *st = arg;
	if (st->conn)
		teardown(st, st->broken_why);
}

static void flush_output(struct store *st)
{
	int r = PQflush(st->conn);
	if (r < 0)
		fail_soon(st, "flush failed");
	else if (r > 0)
		event_add(st->write_ev, NULL);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	flush_output(arg);
}

static int send_request(struct store *st, struct request *req)
{
	switch (req->kind) {
	case REQ_QUERY:
		return PQsendQueryParams(st->conn, req->sql, req->nparams, NULL,
		                         (const char *const *)req->params, NULL, NULL, 0);
	case REQ_SIMPLE:
	case REQ_COPY:
		return PQsendQuery(st->conn, req->sql);
	}
	return 0;
}

static void start_next(struct store *st)
{
	if (st->in_flight || !st->head || st->state != STORE_READY)
		return;
	struct request *req = st->head;
	st->head = req->next;
	if (!st->head)
		st->tail = NULL;
	st->queued--;
	st->in_flight = req;
	if (!send_request(st, req)) {
		fail_soon(st, "send failed");
		return;
	}
	flush_output(st);
}

static void drain_notifies(struct store *st)
{
	PGnotify *n;
	while (st->conn && (n = PQnotifies(st->conn))) {
		if (st->handlers.notify)
			st->handlers.notify(n->relname, n->extra, st->handlers.arg);
		PQfreemem(n);
	}
}

/* All results of the in-flight request are in: hand them over. */
static void complete_in_flight(struct store *st)
{
	struct request *req = st->in_flight;
	st->in_flight = NULL;
	ExecStatusType status = req->last ? PQresultStatus(req->last) : PGRES_FATAL_ERROR;
	if (req->kind == REQ_COPY) {
		if (status != PGRES_COMMAND_OK)
			log_warnx("store: COPY failed: %s",
			          req->last ? PQresultErrorMessage(req->last) : "no result");
		if (req->copy_done)
			req->copy_done(status == PGRES_COMMAND_OK && req->copy_finished, req->arg);
	} else if (req->kind == REQ_QUERY) {
		req->done(req->last, req->arg);
	} else if (req->failed) {
		log_warnx("store: statement failed: %s", req->sql);
	} else if (st->handlers.connected) {
		st->handlers.connected(st->handlers.arg); /* the LISTEN request */
	}
	request_free(req);
	start_next(st);
}

static void keep_result(struct request *req, PGresult *res)
{
	ExecStatusType status = PQresultStatus(res);
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_COPY_OUT)
		req->failed = true;
	PQclear(req->last);
	req->last = res;
}

/* Hand out COPY lines; false when the loop must come back later (waiting
 * for input, or a batch is done and the loop gets a turn). */
static bool stream_copy(struct store *st, struct request *req)
{
	for (int n = 0; n < st->copy_batch_rows; n++) {
		char *buf = NULL;
		int len = PQgetCopyData(st->conn, &buf, 1);
		if (len == 0)
			return false;
		if (len < 0) {
			req->copy_finished = len == -1;
			return true;
		}
		size_t l = (size_t)len;
		if (l > 0 && buf[l - 1] == '\n')
			l--;
		req->line(buf, l, req->arg);
		PQfreemem(buf);
	}
	event_active(st->resume_ev, EV_TIMEOUT, 0);
	return false;
}

static void process_in_flight(struct store *st)
{
	while (st->in_flight && st->conn) {
		struct request *req = st->in_flight;
		if (req->kind == REQ_COPY && req->copy_started && !req->copy_finished &&
		    !req->failed) {
			if (!stream_copy(st, req))
				return;
			if (!req->copy_finished)
				req->failed = true;
			continue;
		}
		if (PQisBusy(st->conn))
			return;
		PGresult *res = PQgetResult(st->conn);
		if (!res) {
			complete_in_flight(st);
			continue;
		}
		if (PQresultStatus(res) == PGRES_COPY_OUT)
			req->copy_started = true;
		keep_result(req, res);
	}
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct store *st = arg;
	if (!PQconsumeInput(st->conn)) {
		teardown(st, "read failed");
		return;
	}
	drain_notifies(st);
	process_in_flight(st);
	if (st->conn && PQstatus(st->conn) == CONNECTION_BAD)
		teardown(st, "connection bad");
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	process_in_flight(arg);
}

static void notice_to_log(void *arg, const char *message)
{
	log_debug("store: server says: %s", message);
}

static int queue_request(struct store *st, struct request *req, bool at_head)
{
	if (at_head) {
		req->next = st->head;
		st->head = req;
		if (!st->tail)
			st->tail = req;
	} else {
		if (st->tail)
			st->tail->next = req;
		else
			st->head = req;
		st->tail = req;
	}
	st->queued++;
	start_next(st);
	return 0;
}

static void became_ready(struct store *st)
{
	free_event(st->sock_ev);
	free_event(st->deadline_ev);
	st->deadline_ev = NULL;
	PQsetnonblocking(st->conn, 1);
	PQsetNoticeProcessor(st->conn, notice_to_log, st);
	int fd = PQsocket(st->conn);
	st->sock_ev = event_new(st->base, fd, EV_READ | EV_PERSIST, on_readable, st);
	st->write_ev = event_new(st->base, fd, EV_WRITE, on_writable, st);
	event_add(st->sock_ev, NULL);
	st->state = STORE_READY;
	st->backoff_ms = st->reconnect_min_ms;
	log_notice("store: connected to PostgreSQL %d (%s)", PQserverVersion(st->conn),
	           PQdb(st->conn));
	struct request *listen = calloc(1, sizeof(*listen));
	if (!listen || !(listen->sql = strdup(st->listen_sql[0] ? st->listen_sql : "SELECT 1"))) {
		free(listen);
		teardown(st, "out of memory");
		return;
	}
	listen->kind = REQ_SIMPLE;
	queue_request(st, listen, true);
}

static void poll_connect(evutil_socket_t fd, short what, void *arg);

static void wait_socket(struct store *st, short what)
{
	free_event(st->sock_ev);
	st->sock_ev = event_new(st->base, PQsocket(st->conn), what, poll_connect, st);
	event_add(st->sock_ev, NULL);
}

static void poll_connect(evutil_socket_t fd, short what, void *arg)
{
	struct store *st = arg;
	switch (PQconnectPoll(st->conn)) {
	case PGRES_POLLING_READING:
		wait_socket(st, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		wait_socket(st, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		became_ready(st);
		break;
	default:
		teardown(st, "connect failed");
	}
}

static void on_connect_deadline(evutil_socket_t fd, short what, void *arg)
{
	teardown(arg, "connect timed out");
}

static void connect_start(struct store *st)
{
	const char *keys[] = {"application_name",
	                      "keepalives",
	                      "keepalives_idle",
	                      "keepalives_interval",
	                      "keepalives_count",
	                      "dbname",
	                      NULL};
	const char *values[] = {st->application_name, "1", "30", "10", "3", st->conninfo, NULL};
	st->state = STORE_CONNECTING;
	st->conn = PQconnectStartParams(keys, values, 1);
	if (!st->conn || PQstatus(st->conn) == CONNECTION_BAD) {
		teardown(st, "cannot start a connection");
		return;
	}
	int64_t t = st->connect_timeout_ms;
	struct timeval tv = {.tv_sec = t / 1000, .tv_usec = (t % 1000) * 1000};
	st->deadline_ev = evtimer_new(st->base, on_connect_deadline, st);
	evtimer_add(st->deadline_ev, &tv);
	wait_socket(st, EV_WRITE);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	connect_start(arg);
}

/* What runs on every (re)connect: the session settings, then LISTEN. */
static char *session_statements(const char *session_sql, const char *const *channels)
{
	size_t len = 1 + (session_sql ? strlen(session_sql) + 2 : 0);
	for (const char *const *c = channels; c && *c; c++)
		len += strlen(*c) + 16;
	char *sql = calloc(1, len);
	if (!sql)
		return NULL;
	if (session_sql) {
		strcat(sql, session_sql);
		strcat(sql, "; ");
	}
	for (const char *const *c = channels; c && *c; c++) {
		strcat(sql, "LISTEN \"");
		strcat(sql, *c);
		strcat(sql, "\"; ");
	}
	return sql;
}

struct store *store_new(struct event_base *base, const struct store_options *opts,
                        const struct store_handlers *handlers)
{
	struct store *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->base = base;
	st->handlers = *handlers;
	st->conninfo = strdup(opts->conninfo);
	st->application_name = strdup(opts->application_name ? opts->application_name : "tokend");
	st->listen_sql = session_statements(opts->session_sql, opts->listen);
	st->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000;
	st->retry_ev = evtimer_new(base, on_retry, st);
	st->resume_ev = event_new(base, -1, 0, on_resume, st);
	st->broken_ev = event_new(base, -1, 0, on_broken, st);
	if (!st->conninfo || !st->application_name || !st->listen_sql || !st->retry_ev ||
	    !st->resume_ev) {
		store_free(st);
		return NULL;
	}
	store_set_limits(st, opts->reconnect_min_ms, opts->reconnect_max_ms, opts->copy_batch_rows);
	st->backoff_ms = st->reconnect_min_ms;
	connect_start(st);
	return st;
}

void store_set_limits(struct store *st, int64_t reconnect_min_ms, int64_t reconnect_max_ms,
                      int copy_batch_rows)
{
	st->reconnect_min_ms = reconnect_min_ms > 0 ? reconnect_min_ms : 1000;
	st->reconnect_max_ms =
	    reconnect_max_ms >= st->reconnect_min_ms ? reconnect_max_ms : st->reconnect_min_ms;
	st->copy_batch_rows = copy_batch_rows > 0 ? copy_batch_rows : 5000;
}

void store_free(struct store *st)
{
	if (!st)
		return;
	if (st->in_flight)
		st->in_flight->done = NULL, st->in_flight->copy_done = NULL;
	for (struct request *r = st->head; r; r = r->next)
		r->done = NULL, r->copy_done = NULL;
	fail_all(st);
	clear_events(st);
	free_event(st->resume_ev);
	free_event(st->broken_ev);
	free_event(st->retry_ev);
	PQfinish(st->conn);
	if (st->conninfo)
		memset(st->conninfo, 0, strlen(st->conninfo)); /* may hold a password */
	free(st->conninfo);
	free(st->application_name);
	free(st->listen_sql);
	free(st);
}

bool store_connected(const struct store *st)
{
	return st->state == STORE_READY;
}

size_t store_queue_length(const struct store *st)
{
	return st->queued + (st->in_flight ? 1 : 0);
}

static struct request *request_new(enum request_kind kind, const char *sql, int nparams,
                                   const char *const *params)
{
	struct request *req = calloc(1, sizeof(*req));
	if (!req)
		return NULL;
	req->kind = kind;
	req->sql = strdup(sql);
	req->params = nparams ? calloc((size_t)nparams, sizeof(char *)) : NULL;
	bool ok = req->sql && (!nparams || req->params);
	for (int i = 0; ok && i < nparams; i++) {
		req->nparams = i + 1;
		ok = !params[i] || (req->params[i] = strdup(params[i]));
	}
	if (!ok) {
		request_free(req);
		return NULL;
	}
	return req;
}

int store_query(struct store *st, const char *sql, int nparams, const char *const *params,
                store_result_fn done, void *arg)
{
	if (st->state != STORE_READY)
		return -1;
	struct request *req = request_new(REQ_QUERY, sql, nparams, params);
	if (!req)
		return -1;
	req->done = done;
	req->arg = arg;
	return queue_request(st, req, false);
}

int store_copy_out(struct store *st, const char *sql, store_line_fn line, store_copy_done_fn done,
                   void *arg)
{
	if (st->state != STORE_READY)
		return -1;
	struct request *req = request_new(REQ_COPY, sql, 0, NULL);
	if (!req)
		return -1;
	req->line = line;
	req->copy_done = done;
	req->arg = arg;
	return queue_request(st, req, false);
}
