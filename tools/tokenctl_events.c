/* tokenctl events: a small consumer of tokend's event stream (tail: read
 * with a consumer group, print, acknowledge) and a checker of event JSON
 * against the envelope rules (check). A command-line tool: blocking hiredis
 * is fine here. */
#include "tools/tokenctl.h"

#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/envelope.h"
#include "daemon/redis.h"

#define READ_COUNT 100
#define LINE_MAX_BYTES (64 * 1024)

static const char events_usage[] =
    "Usage: tokenctl events tail [--redis-url URL] [--stream NAME] [--group G]\n"
    "                            [--consumer C] [--from-start] [--count N]\n"
    "                            [--timeout SECONDS]\n"
    "       tokenctl events check < EVENTS\n"
    "\n"
    "tail reads tokend's event stream as consumer C of consumer group G\n"
    "(XREADGROUP; the group is created when missing), prints each event's\n"
    "JSON on a line of its own, then acknowledges it (XACK): at-least-once,\n"
    "like a webhook worker. Entries this consumer read earlier but never\n"
    "acknowledged come first.\n"
    "\n"
    "  --redis-url URL    redis://[[user]:password@]host[:port][/db], unix:///path\n"
    "                     (default: $TOKEND_REDIS_URL, else redis://127.0.0.1:6379/0)\n"
    "  --stream NAME      the stream (default tokend:events)\n"
    "  --group G          consumer group (default tokenctl)\n"
    "  --consumer C       consumer name (default tokenctl-<pid>)\n"
    "  --from-start       a new group starts at the first entry (default: new entries)\n"
    "  --count N          exit after N events\n"
    "  --timeout SECONDS  exit when no event arrived for this long (default: wait\n"
    "                     forever); exit status 1 if --count was not reached\n"
    "  -h, --help         show this help\n"
    "\n"
    "check reads events (JSON, one per line) from standard input and prints\n"
    "'ok' or 'invalid: <why>' for each, by the rules of docs/events.schema.json.\n"
    "Exit status 1 if any is invalid.\n";

struct tail_args {
	const char *url, *stream, *group;
	char consumer[64];
	bool from_start;
	long count;      /* 0: no limit */
	long timeout_ms; /* 0: forever */
};

static bool write_out(const char *text, size_t len)
{
	return fwrite(text, 1, len, stdout) == len && fputc('\n', stdout) != EOF &&
	       fflush(stdout) == 0;
}

/* ---- tail ---- */

static bool parse_long(const char *text, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < 1 || v > max)
		return false;
	*out = v;
	return true;
}

static int tail_parse_args(int argc, char **argv, struct tail_args *a)
{
	static const struct option opts[] = {
	    {"redis-url", required_argument, NULL, 'u'}, {"stream", required_argument, NULL, 's'},
	    {"group", required_argument, NULL, 'g'},     {"consumer", required_argument, NULL, 'c'},
	    {"from-start", no_argument, NULL, 'f'},      {"count", required_argument, NULL, 'n'},
	    {"timeout", required_argument, NULL, 't'},   {NULL, 0, NULL, 0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			a->url = optarg;
			break;
		case 's':
			a->stream = optarg;
			break;
		case 'g':
			a->group = optarg;
			break;
		case 'c':
			snprintf(a->consumer, sizeof(a->consumer), "%s", optarg);
			break;
		case 'f':
			a->from_start = true;
			break;
		case 'n':
			if (!parse_long(optarg, LONG_MAX, &a->count))
				return tokenctl_usage_error("events",
				                            "--count: expected a number >= 1");
			break;
		case 't':
			if (!parse_long(optarg, 86400, &a->timeout_ms))
				return tokenctl_usage_error(
				    "events", "--timeout: expected 1 to 86400 seconds");
			a->timeout_ms *= 1000;
			break;
		default:
			return tokenctl_usage_error("events", "bad option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return tokenctl_usage_error("events", "unexpected argument '%s'", argv[optind]);
	return TOKENCTL_OK;
}

/* A command's reply, or NULL after reporting the failure (Redis's words). */
static redisReply *command(redisContext *c, const char *what, int argc, const char **argv)
{
	redisReply *reply = redisCommandArgv(c, argc, argv, NULL);
	if (!reply) {
		tokenctl_error("events", "%s: %s", what, c->errstr);
		return NULL;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		tokenctl_error("events", "%s: %s", what, reply->str);
		freeReplyObject(reply);
		return NULL;
	}
	return reply;
}

static bool simple(redisContext *c, const char *what, int argc, const char **argv)
{
	redisReply *reply = command(c, what, argc, argv);
	freeReplyObject(reply);
	return reply != NULL;
}

static redisContext *open_redis(const char *url)
{
	struct redis_target t;
	char err[256], db[16];
	struct timeval tv = {5, 0};
	if (redis_parse_url(url, &t, err, sizeof(err)) < 0) {
		tokenctl_error("events", "%s", err);
		return NULL;
	}
	redisContext *c = t.path[0] ? redisConnectUnixWithTimeout(t.path, tv)
	                            : redisConnectWithTimeout(t.host, t.port, tv);
	bool ok = c && !c->err;
	if (!ok)
		tokenctl_error("events", "cannot connect to Redis: %s",
		               c ? c->errstr : "out of memory");
	if (ok && t.password[0]) {
		const char *auth[] = {"AUTH", t.user[0] ? t.user : t.password, t.password};
		ok = simple(c, "AUTH", t.user[0] ? 3 : 2, auth);
	}
	snprintf(db, sizeof(db), "%d", t.db);
	if (ok && t.db > 0)
		ok = simple(c, "SELECT", 2, (const char *[]){"SELECT", db});
	OPENSSL_cleanse(&t, sizeof(t));
	if (!ok && c) {
		redisFree(c);
		c = NULL;
	}
	return c;
}

/* XGROUP CREATE, unless the group exists. */
static bool ensure_group(redisContext *c, const struct tail_args *a)
{
	const char *argv[] = {"XGROUP",  "CREATE", a->stream, a->group, a->from_start ? "0" : "$",
	                      "MKSTREAM"};
	redisReply *reply = redisCommandArgv(c, 6, argv, NULL);
	bool ok =
	    reply && (reply->type != REDIS_REPLY_ERROR || strncmp(reply->str, "BUSYGROUP", 9) == 0);
	if (!ok)
		tokenctl_error("events", "XGROUP CREATE: %s", reply ? reply->str : c->errstr);
	freeReplyObject(reply);
	return ok;
}

/* The value of field name in a stream entry's field list, or NULL. */
static const redisReply *field(const redisReply *fields, const char *name)
{
	for (size_t i = 0; fields && fields->type == REDIS_REPLY_ARRAY && i + 1 < fields->elements;
	     i += 2)
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(fields->element[i]->str, name) == 0)
			return fields->element[i + 1];
	return NULL;
}

/* Print one entry's event (entries deleted while pending have no fields:
 * only acknowledged), then XACK it. */
static int handle_entry(redisContext *c, const struct tail_args *a, const redisReply *entry,
                        long *printed)
{
	if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
	    entry->element[0]->type != REDIS_REPLY_STRING) {
		tokenctl_error("events", "unexpected stream entry shape");
		return TOKENCTL_FAIL;
	}
	const redisReply *event = field(entry->element[1], "event");
	if (event && event->type == REDIS_REPLY_STRING) {
		if (!write_out(event->str, event->len)) {
			tokenctl_error("events", "writing standard output: %s", strerror(errno));
			return TOKENCTL_FAIL;
		}
		(*printed)++;
	}
	const char *ack[] = {"XACK", a->stream, a->group, entry->element[0]->str};
	return simple(c, "XACK", 4, ack) ? TOKENCTL_OK : TOKENCTL_FAIL;
}

/* One XREADGROUP from id ("0": this consumer's pending entries; ">": new
 * ones, blocking). *entries is how many came. */
static int read_once(redisContext *c, const struct tail_args *a, const char *id, long *printed,
                     size_t *entries)
{
	char count[16], block[24];
	const char *argv[11];
	int n = 0;
	snprintf(count, sizeof(count), "%d", READ_COUNT);
	snprintf(block, sizeof(block), "%ld", a->timeout_ms);
	argv[n++] = "XREADGROUP", argv[n++] = "GROUP", argv[n++] = a->group;
	argv[n++] = a->consumer, argv[n++] = "COUNT", argv[n++] = count;
	if (strcmp(id, ">") == 0) /* pending entries come at once; new ones are awaited */
		argv[n++] = "BLOCK", argv[n++] = block;
	argv[n++] = "STREAMS", argv[n++] = a->stream, argv[n++] = id;
	redisReply *reply = command(c, "XREADGROUP", n, argv);
	*entries = 0;
	if (!reply)
		return TOKENCTL_FAIL;
	int rc = TOKENCTL_OK;
	const redisReply *list = reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
	                                 reply->element[0]->elements == 2
	                             ? reply->element[0]->element[1]
	                             : NULL;
	for (size_t i = 0; list && i < list->elements && rc == TOKENCTL_OK; i++) {
		if (a->count && *printed >= a->count)
			break;
		rc = handle_entry(c, a, list->element[i], printed);
		(*entries)++;
	}
	freeReplyObject(reply);
	return rc;
}

static int tail_run(const struct tail_args *a)
{
	redisContext *c = open_redis(a->url);
	long printed = 0;
	size_t entries = 1;
	int rc = TOKENCTL_FAIL;
	/* Blocking reads may wait --timeout (or forever): no socket timeout
	 * shorter than that. */
	struct timeval tv = {a->timeout_ms ? a->timeout_ms / 1000 + 10 : 0, 0};
	if (!c || redisSetTimeout(c, tv) != REDIS_OK || !ensure_group(c, a))
		goto done;
	rc = TOKENCTL_OK;
	while (rc == TOKENCTL_OK && entries > 0 && (!a->count || printed < a->count))
		rc = read_once(c, a, "0", &printed, &entries);
	entries = 1;
	while (rc == TOKENCTL_OK && (!a->count || printed < a->count)) {
		rc = read_once(c, a, ">", &printed, &entries);
		if (rc == TOKENCTL_OK && entries == 0 && a->timeout_ms)
			break; /* idle for --timeout */
	}
	if (rc == TOKENCTL_OK && a->count && printed < a->count) {
		tokenctl_error("events", "%ld of %ld events before the timeout", printed, a->count);
		rc = TOKENCTL_FAIL;
	}
done:
	if (c)
		redisFree(c);
	return rc;
}

static int events_tail(int argc, char **argv)
{
	const char *env = getenv("TOKEND_REDIS_URL");
	struct tail_args a = {.url = env && *env ? env : "redis://127.0.0.1:6379/0",
	                      .stream = "tokend:events",
	                      .group = "tokenctl"};
	snprintf(a.consumer, sizeof(a.consumer), "tokenctl-%ld", (long)getpid());
	int rc = tail_parse_args(argc, argv, &a);
	return rc == TOKENCTL_OK ? tail_run(&a) : rc;
}

/* ---- check ---- */

static int events_check(int argc, char **argv)
{
	char *line = NULL, why[256];
	size_t cap = 0;
	ssize_t len;
	int rc = TOKENCTL_OK;
	if (argc > 1)
		return tokenctl_usage_error("events", "check takes no arguments");
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len > LINE_MAX_BYTES) {
			snprintf(why, sizeof(why), "longer than %d bytes", LINE_MAX_BYTES);
		} else if (envelope_check(line, (size_t)len, why, sizeof(why)) == 0) {
			puts("ok");
			continue;
		}
		printf("invalid: %s\n", why);
		rc = TOKENCTL_FAIL;
	}
	free(line);
	return fflush(stdout) == 0 ? rc : TOKENCTL_FAIL;
}

int tokenctl_events(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return fputs(events_usage, stdout) >= 0 ? TOKENCTL_OK : TOKENCTL_FAIL;
	if (argc < 2)
		return tokenctl_usage_error("events", "expected a subcommand: tail or check");
	opterr = 0;
	if (strcmp(argv[1], "tail") == 0)
		return events_tail(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return events_check(argc - 1, argv + 1);
	return tokenctl_usage_error("events", "unknown subcommand '%s'", argv[1]);
}
