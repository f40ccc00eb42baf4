/* bench_heap: the schedule (sched + heap) against the timer layout a libevent
 * user writes first, one struct event per account, at N accounts each.
 * Phases: insert all, reschedule all, pop all (fire every entry through
 * event_base_dispatch); ops/s each, and bytes per account (reported by
 * sched_memory_bytes, and VmRSS growth over the insert phase). Each run is
 * in its own forked process so RSS deltas do not mix. Prints figures only.
 *
 * Usage: bench_heap [N ...]   (default: 1000000 10000000)
 *
 * Deadlines: sched gets absolute wall-clock deadlines, uniformly random over
 * the WINDOW_MS before the start (all due, so "pop all" fires at once).
 * libevent timers only take relative timeouts, so they get random timeouts
 * in [0, WINDOW_US), and the pop phase starts once the last one is due (the
 * wait is not timed). Both key sets have 10^6 distinct values; libevent's
 * drift upward while inserting (its keys are now + timeout), if anything,
 * favours it. */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scheduler/sched.h"

#define WINDOW_MS INT64_C(1000000)
#define WINDOW_US INT64_C(1000000)
#define SCHED_BATCH 1000

struct result {
	double insert_s, resched_s, pop_s; /* seconds per phase */
	double reported_bytes;             /* sched_memory_bytes, 0 for libevent */
	double rss_bytes;                  /* VmRSS growth over the insert phase */
	int ok;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VmRSS of this process in bytes, 0 if unreadable. */
static double rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	double kb = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %lf kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

static uint64_t mix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* A random-looking uuid for account i, recomputed rather than stored. */
static void make_id(uint64_t i, uint8_t id[SCHED_ID_LEN])
{
	uint64_t lo = mix64(i), hi = mix64(i ^ UINT64_C(0x5bd1e9955bd1e995));

	memcpy(id, &lo, sizeof(lo));
	memcpy(id + sizeof(lo), &hi, sizeof(hi));
}

static int64_t random_below(uint64_t *rng, int64_t n)
{
	*rng = mix64(*rng);
	return (int64_t)(*rng % (uint64_t)n);
}

struct sched_run {
	struct event_base *base;
	size_t n;
	size_t fired;
};

static void sched_fired(const struct sched_due *due, void *arg)
{
	struct sched_run *run = arg;

	if (++run->fired == run->n)
		event_base_loopbreak(run->base);
}

/* Set every account to a random deadline; -1 on failure. */
static int sched_set_all(struct sched *s, size_t n, uint64_t *rng, int64_t start_ms)
{
	uint8_t id[SCHED_ID_LEN];

	for (size_t i = 0; i < n; i++) {
		make_id(i, id);
		int64_t due = start_ms - WINDOW_MS + random_below(rng, WINDOW_MS);

		if (sched_set(s, id, (uint8_t)(i % 9), ACTION_REFRESH, due) != 0)
			return -1;
	}
	return 0;
}

static struct result bench_sched(size_t n)
{
	struct result r = {0};
	struct sched_run run = {.n = n};
	struct sched_limits limits = {.batch = SCHED_BATCH, .max_inflight = 0};
	uint64_t rng = 1;
	int64_t start_ms = sched_now_ms();
	double rss0 = rss_bytes(), t0;

	run.base = event_base_new();
	struct sched *s = run.base ? sched_new(run.base, limits, sched_fired, &run) : NULL;

	if (s == NULL)
		return r;
	t0 = now_s();
	if (sched_set_all(s, n, &rng, start_ms) != 0)
		return r;
	r.insert_s = now_s() - t0;
	r.rss_bytes = rss_bytes() - rss0;
	r.reported_bytes = (double)sched_memory_bytes(s);
	t0 = now_s();
	if (sched_set_all(s, n, &rng, start_ms) != 0)
		return r;
	r.resched_s = now_s() - t0;
	t0 = now_s();
	event_base_dispatch(run.base);
	r.pop_s = now_s() - t0;
	r.ok = run.fired == n && sched_pending(s) == 0;
	sched_free(s);
	event_base_free(run.base);
	return r;
}

/* The baseline's account: its id and its own timer. */
struct account {
	uint8_t id[SCHED_ID_LEN];
	struct event *timer;
};

static void account_fired(evutil_socket_t fd, short what, void *arg)
{
	struct account *a = arg;

	a->id[0] ^= 1; /* the callback looks at its account */
}

static struct timeval random_timeout(uint64_t *rng)
{
	int64_t us = random_below(rng, WINDOW_US);

	return (struct timeval){.tv_sec = (time_t)(us / 1000000),
	                        .tv_usec = (suseconds_t)(us % 1000000)};
}

static int events_insert(struct event_base *base, struct account *accounts, size_t n, uint64_t *rng)
{
	for (size_t i = 0; i < n; i++) {
		struct timeval tv = random_timeout(rng);

		make_id(i, accounts[i].id);
		accounts[i].timer = event_new(base, -1, 0, account_fired, &accounts[i]);
		if (accounts[i].timer == NULL || event_add(accounts[i].timer, &tv) != 0)
			return -1;
	}
	return 0;
}

static int events_reschedule(struct account *accounts, size_t n, uint64_t *rng)
{
	for (size_t i = 0; i < n; i++) {
		struct timeval tv = random_timeout(rng);

		if (event_add(accounts[i].timer, &tv) != 0)
			return -1;
	}
	return 0;
}

/* Sleep (untimed) until every timer set before `since` is due. */
static void wait_window(double since)
{
	double left = since + (double)WINDOW_US / 1e6 + 0.01 - now_s();

	if (left > 0) {
		struct timespec ts = {.tv_sec = (time_t)left,
		                      .tv_nsec = (long)((left - (double)(time_t)left) * 1e9)};

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

static struct result bench_libevent(size_t n)
{
	struct result r = {0};
	uint64_t rng = 1;
	double rss0 = rss_bytes(), t0;
	struct event_base *base = event_base_new();
	struct account *accounts = calloc(n, sizeof(*accounts));

	if (base == NULL || accounts == NULL)
		return r;
	t0 = now_s();
	if (events_insert(base, accounts, n, &rng) != 0)
		return r;
	r.insert_s = now_s() - t0;
	r.rss_bytes = rss_bytes() - rss0;
	t0 = now_s();
	if (events_reschedule(accounts, n, &rng) != 0)
		return r;
	r.resched_s = now_s() - t0;
	wait_window(now_s());
	t0 = now_s();
	event_base_dispatch(base); /* returns when no event is left pending */
	r.pop_s = now_s() - t0;
	r.ok = event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED) == 0;
	for (size_t i = 0; i < n; i++)
		event_free(accounts[i].timer);
	free(accounts);
	event_base_free(base);
	return r;
}

/* Run one benchmark in a child process; r.ok == 0 when it failed. */
static struct result in_child(struct result (*bench)(size_t), size_t n)
{
	struct result r = {0};
	int fds[2];

	if (pipe(fds) != 0)
		return r;
	fflush(stdout);
	pid_t pid = fork();

	if (pid == 0) {
		r = bench(n);
		_exit(write(fds[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
	}
	close(fds[1]);
	if (pid < 0 || read(fds[0], &r, sizeof(r)) != (ssize_t)sizeof(r))
		memset(&r, 0, sizeof(r));
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return r;
}

static void print_row(const char *name, size_t n, const struct result *r)
{
	printf("%-22s", name);
	if (!r->ok) {
		printf("  FAILED (allocation or libevent error)\n");
		return;
	}
	printf(" %10.2f %10.2f %10.2f", (double)n / r->insert_s / 1e6,
	       (double)n / r->resched_s / 1e6, (double)n / r->pop_s / 1e6);
	if (r->reported_bytes > 0)
		printf(" %12.1f", r->reported_bytes / (double)n);
	else
		printf(" %12s", "-");
	printf(" %12.1f   (%.1f s)\n", r->rss_bytes / (double)n,
	       r->insert_s + r->resched_s + r->pop_s);
}

static void print_ratios(const struct result *s, const struct result *e)
{
	if (!s->ok || !e->ok)
		return;
	printf("%-22s %9.1fx %9.1fx %9.1fx %12s %11.1fx   (memory: libevent / sched)\n",
	       "speed sched/libevent", e->insert_s / s->insert_s, e->resched_s / s->resched_s,
	       e->pop_s / s->pop_s, "", e->rss_bytes / s->rss_bytes);
}

static void bench_n(size_t n)
{
	struct result s = in_child(bench_sched, n);
	struct result e = in_child(bench_libevent, n);

	printf("\nN = %zu accounts\n", n);
	printf("%-22s %10s %10s %10s %12s %12s\n", "", "insert", "reschedule", "pop all", "B/acct",
	       "B/acct");
	printf("%-22s %10s %10s %10s %12s %12s\n", "", "M ops/s", "M ops/s", "M ops/s",
	       "(reported)", "(RSS delta)");
	print_row("sched (heap+index)", n, &s);
	print_row("libevent event/acct", n, &e);
	print_ratios(&s, &e);
}

int main(int argc, char **argv)
{
	static const size_t defaults[] = {1000000, 10000000};

	printf("bench_heap: sched batch %d, deadlines over 10^6 distinct values, one process per "
	       "row\n",
	       SCHED_BATCH);
	printf("pop all = event_base_dispatch until every entry fired (sched: on_due; libevent: "
	       "callbacks)\n");
	printf(
	    "libevent baseline: struct account {id[16]; struct event *} + event_new per account, "
	    "no id index\n");
	if (argc < 2) {
		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
			bench_n(defaults[i]);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		char *end;
		unsigned long long n = strtoull(argv[i], &end, 10);

		if (*end != '\0' || n == 0 || n > UINT32_MAX / 2) {
			fprintf(stderr, "bench_heap: bad N '%s' (1 .. %u)\n", argv[i],
			        UINT32_MAX / 2);
			return 2;
		}
		bench_n((size_t)n);
	}
	return 0;
}
