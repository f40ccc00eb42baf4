/* tokend: boot, signals, the event loop, reload and shutdown. */
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "daemon/accounts.h"
#include "daemon/admin.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/log.h"
#include "daemon/migrate.h"
#include "daemon/refresh.h"
#include "daemon/relay.h"
#include "daemon/seal.h"
#include "daemon/store.h"
#include "scheduler/sched.h"

/* event_free() is not NULL-safe. */
static void free_event(struct event *ev)
{
	if (ev)
		event_free(ev);
}

extern char **environ;

#define TICK_MS 1000
#define CLOCK_JUMP_MS 1000

struct runtime {
	struct daemon d;
	struct event *sig_term, *sig_int, *sig_hup, *tick, *drain;
	int64_t clock_offset_ms; /* wall clock minus monotonic clock */
	int64_t drain_deadline_ms;
	uint64_t watchdog_usec;
};

static void usage(FILE *out)
{
	fprintf(out, "usage: tokend [-c FILE] [--check-config | --print-config-reference | "
	             "--migrate | --version]\n"
	             "  -c, --config FILE           configuration file\n"
	             "      --check-config          validate, print the effective config, exit\n"
	             "      --print-config-reference  Markdown reference of every key\n"
	             "      --migrate               apply schema migrations and exit\n"
	             "      --print-load-sql        the SQL of the initial load (for benchmarks)\n"
	             "      --version               print the version and exit\n");
}

static int64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *keyring_path(const struct config *cfg)
{
	if (cfg->keyring_file[0])
		return strdup(cfg->keyring_file);
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char *path = NULL;
	if (asprintf(&path, "%s/keyring", dir ? dir : "/etc/tokend") < 0)
		return NULL;
	return path;
}

static struct keyring *load_keyring(const struct config *cfg, char *err, size_t errlen)
{
	char *path = keyring_path(cfg);
	struct keyring *kr = NULL;
	if (!path)
		snprintf(err, errlen, "out of memory");
	else if (keyring_load(path, &kr, err, errlen) < 0)
		kr = NULL;
	else
		log_info("keyring %s: %zu keys, primary %" PRIu32, path, keyring_size(kr),
		         keyring_primary_id(kr));
	free(path);
	return kr;
}

static struct relay_settings relay_settings_of(const struct config *cfg)
{
	return (struct relay_settings){.stream = cfg->events_stream,
	                               .channel = cfg->events_channel,
	                               .stream_maxlen = cfg->events_stream_maxlen,
	                               .batch_rows = cfg->relay_batch,
	                               .retention_ms = cfg->outbox_retention_ms,
	                               .reconnect_min_ms = cfg->reconnect_min_ms,
	                               .reconnect_max_ms = cfg->reconnect_max_ms};
}

static void apply_runtime_settings(struct daemon *d)
{
	const struct config *cfg = d->cfg;
	struct relay_settings relay = relay_settings_of(cfg);
	if (d->relay && relay_configure(d->relay, &relay) < 0)
		log_warnx(
		    "reload: out of memory applying the relay settings; keeping the old ones");
	log_set_level(cfg->log_level);
	log_set_timestamps(cfg->log_timestamps);
	sched_set_limits(d->sched,
	                 (struct sched_limits){.batch = (uint32_t)cfg->sched_batch,
	                                       .max_inflight = (uint32_t)cfg->max_inflight});
	if (d->store)
		store_set_limits(d->store, cfg->reconnect_min_ms, cfg->reconnect_max_ms,
		                 (int)cfg->load_batch_rows);
}

/* Put cfg and kr in place and apply them; on failure put the old ones back
 * and free the new. */
static int swap_config(struct daemon *d, struct config *cfg, struct keyring *kr, char *err,
                       size_t errlen)
{
	struct config *old_cfg = d->cfg;
	struct keyring *old_kr = d->keyring;
	d->cfg = cfg;
	d->keyring = kr;
	if (refresh_reload(d->refresh, err, errlen) < 0) {
		d->cfg = old_cfg;
		d->keyring = old_kr;
		config_free(cfg);
		keyring_free(kr);
		return -1;
	}
	config_warn_restart_keys(old_cfg, cfg);
	config_free(old_cfg);
	keyring_free(old_kr);
	apply_runtime_settings(d);
	return 0;
}

/* SIGHUP: parse into a new config and keyring, validate, then swap; on any
 * error keep what runs and say why. */
static void reload(struct runtime *rt)
{
	struct daemon *d = &rt->d;
	char err[512];
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRId64, monotonic_ms() * 1000);
	struct config *cfg = config_load(d->config_path, environ, err, sizeof(err));
	struct keyring *kr = cfg ? load_keyring(cfg, err, sizeof(err)) : NULL;
	if (!cfg || !kr) {
		d->metrics.bad_input[BAD_CONFIG_RELOAD]++;
		log_err("reload rejected: %s; keeping the running configuration", err);
		config_free(cfg);
	} else if (swap_config(d, cfg, kr, err, sizeof(err)) < 0) {
		d->metrics.bad_input[BAD_CONFIG_RELOAD]++;
		log_err("reload rejected: %s; keeping the running configuration", err);
	} else {
		d->metrics.config_reloads++;
		log_notice("reload: configuration and keyring applied");
		accounts_reload(d->accounts); /* leads may have changed */
	}
	sd_notify(0, "READY=1");
}

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct runtime *rt = arg;
	size_t running = accounts_running(rt->d.accounts);
	if ((running == 0 && relay_idle(rt->d.relay)) || sched_now_ms() >= rt->drain_deadline_ms) {
		if (running)
			log_warnx("shutdown: %zu actions still running at the deadline", running);
		event_base_loopexit(rt->d.base, NULL);
		return;
	}
	struct timeval tv = {0, 100 * 1000};
	evtimer_add(rt->drain, &tv);
}

/* SIGTERM: stop taking work, let running actions commit, then exit. */
static void begin_shutdown(struct runtime *rt)
{
	if (rt->d.stopping)
		return;
	rt->d.stopping = true;
	sd_notify(0, "STOPPING=1");
	log_notice("shutdown: draining %zu running actions", accounts_running(rt->d.accounts));
	sched_pause(rt->d.sched, true);
	relay_pause(rt->d.relay); /* the batch in flight may finish */
	rt->drain_deadline_ms = sched_now_ms() + rt->d.cfg->shutdown_timeout_ms;
	on_drain_check(-1, 0, rt);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct runtime *rt = arg;
	if (sig == SIGHUP)
		reload(rt);
	else
		begin_shutdown(rt);
}

/* Once a second: notice wall-clock jumps (deadlines are wall-clock) and tell
 * the watchdog the loop is turning. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct runtime *rt = arg;
	int64_t offset = sched_now_ms() - monotonic_ms();
	int64_t jump = offset - rt->clock_offset_ms;
	if (jump > CLOCK_JUMP_MS || jump < -CLOCK_JUMP_MS) {
		rt->d.metrics.clock_jumps++;
		log_notice("clock: wall clock jumped by %" PRId64 " ms; re-arming the schedule",
		           jump);
		sched_rearm(rt->d.sched);
	}
	rt->clock_offset_ms = offset;
	metrics_census_tick(&rt->d); /* tokend_accounts{platform,status} */
	if (rt->watchdog_usec)
		sd_notify(0, "WATCHDOG=1");
}

static void store_connected_cb(void *arg)
{
	struct daemon *d = arg;
	accounts_on_connected(d->accounts);
}

static void store_disconnected_cb(void *arg)
{
	struct daemon *d = arg;
	accounts_on_disconnected(d->accounts);
}

static void store_notify_cb(const char *channel, const char *payload, void *arg)
{
	struct daemon *d = arg;
	accounts_on_notify(d->accounts, channel, payload);
}

static int start_clients(struct daemon *d, char *err, size_t errlen)
{
	static const char *const channels[] = {"tokend_accounts", NULL};
	const struct config *cfg = d->cfg;
	struct store_options opts = {.conninfo = cfg->database_url,
	                             .listen = channels,
	                             .reconnect_min_ms = cfg->reconnect_min_ms,
	                             .reconnect_max_ms = cfg->reconnect_max_ms,
	                             .copy_batch_rows = (int)cfg->load_batch_rows,
	                             .application_name = "tokend",
	                             .session_sql = "SET tokend.origin = 'engine'"};
	struct store_handlers handlers = {.connected = store_connected_cb,
	                                  .disconnected = store_disconnected_cb,
	                                  .notify = store_notify_cb,
	                                  .arg = d};
	d->accounts = accounts_new(d);
	d->sched = d->accounts
	               ? sched_new(d->base, (struct sched_limits){0}, accounts_on_due, d->accounts)
	               : NULL;
	if (!d->sched) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sched_pause(d->sched, true); /* until the first load */
	apply_runtime_settings(d);
	d->refresh = refresh_new(d, err, errlen);
	if (!d->refresh)
		return -1;
	d->admin = admin_new(d, cfg->admin_listen, err, errlen);
	if (!d->admin)
		return -1;
	d->store = store_new(d->base, &opts, &handlers);
	if (!d->store) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	struct relay_settings relay = relay_settings_of(cfg);
	d->relay = relay_new(d->base, cfg->database_url, cfg->redis_url, &relay, err, errlen);
	return d->relay ? 0 : -1;
}

static int add_events(struct runtime *rt)
{
	struct event_base *base = rt->d.base;
	rt->sig_term = evsignal_new(base, SIGTERM, on_signal, rt);
	rt->sig_int = evsignal_new(base, SIGINT, on_signal, rt);
	rt->sig_hup = evsignal_new(base, SIGHUP, on_signal, rt);
	rt->tick = event_new(base, -1, EV_PERSIST, on_tick, rt);
	rt->drain = evtimer_new(base, on_drain_check, rt);
	if (!rt->sig_term || !rt->sig_int || !rt->sig_hup || !rt->tick || !rt->drain)
		return -1;
	struct timeval tick = {TICK_MS / 1000, 0};
	if (rt->watchdog_usec && rt->watchdog_usec / 2 < (uint64_t)TICK_MS * 1000)
		tick = (struct timeval){0, (suseconds_t)(rt->watchdog_usec / 2)};
	rt->clock_offset_ms = sched_now_ms() - monotonic_ms();
	return event_add(rt->sig_term, NULL) | event_add(rt->sig_int, NULL) |
	       event_add(rt->sig_hup, NULL) | event_add(rt->tick, &tick);
}

static void teardown(struct runtime *rt)
{
	struct daemon *d = &rt->d;
	free_event(rt->sig_term);
	free_event(rt->sig_int);
	free_event(rt->sig_hup);
	free_event(rt->tick);
	free_event(rt->drain);
	admin_free(d->admin);
	relay_free(d->relay);
	store_free(d->store);
	refresh_free(d->refresh); /* after the store: no query callback reaches a job */
	sched_free(d->sched);
	accounts_free(d->accounts);
	keyring_free(d->keyring);
	config_free(d->cfg);
	if (d->base)
		event_base_free(d->base);
}

static int run(struct runtime *rt)
{
	struct daemon *d = &rt->d;
	char err[512];
	if (!(d->keyring = load_keyring(d->cfg, err, sizeof(err)))) {
		log_err("keyring: %s", err);
		return 1;
	}
	sd_watchdog_enabled(0, &rt->watchdog_usec);
	d->base = event_base_new();
	d->started_ms = sched_now_ms();
	if (!d->base || add_events(rt) < 0) {
		log_err("cannot set up the event loop");
		return 1;
	}
	if (start_clients(d, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
	sd_notify(0, "STATUS=loading accounts");
	log_notice("tokend %s starting", TOKEND_VERSION);
	event_base_dispatch(d->base);
	log_notice("tokend stopped");
	return 0;
}

enum mode { MODE_RUN, MODE_CHECK, MODE_REFERENCE, MODE_MIGRATE, MODE_LOAD_SQL };

static enum mode parse_args(int argc, char **argv, const char **config_path)
{
	static const struct option options[] = {{"config", required_argument, NULL, 'c'},
	                                        {"check-config", no_argument, NULL, 'C'},
	                                        {"print-config-reference", no_argument, NULL, 'R'},
	                                        {"migrate", no_argument, NULL, 'M'},
	                                        {"version", no_argument, NULL, 'V'},
	                                        {"print-load-sql", no_argument, NULL, 'L'},
	                                        {"help", no_argument, NULL, 'h'},
	                                        {NULL, 0, NULL, 0}};
	enum mode mode = MODE_RUN;
	int c;
	while ((c = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		switch (c) {
		case 'c':
			*config_path = optarg;
			break;
		case 'C':
			mode = MODE_CHECK;
			break;
		case 'R':
			mode = MODE_REFERENCE;
			break;
		case 'M':
			mode = MODE_MIGRATE;
			break;
		case 'L':
			mode = MODE_LOAD_SQL;
			break;
		case 'V':
			printf("tokend %s\n", TOKEND_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	return mode;
}

int main(int argc, char **argv)
{
	struct runtime rt = {0};
	signal(SIGPIPE, SIG_IGN); /* a peer that hangs up is an error return, not a death */
	enum mode mode = parse_args(argc, argv, &rt.d.config_path);
	if (mode == MODE_REFERENCE) {
		config_print_reference(stdout);
		return 0;
	}
	if (mode == MODE_LOAD_SQL) {
		printf("%s\n", accounts_load_sql());
		return 0;
	}
	char err[512];
	rt.d.cfg = config_load(rt.d.config_path, environ, err, sizeof(err));
	if (!rt.d.cfg) {
		log_err("config: %s", err);
		return mode == MODE_CHECK ? 1 : 78; /* EX_CONFIG */
	}
	log_set_level(rt.d.cfg->log_level);
	log_set_timestamps(rt.d.cfg->log_timestamps);
	int status = 0;
	if (mode == MODE_CHECK)
		config_print(rt.d.cfg, stdout);
	else if (mode == MODE_MIGRATE)
		status = migrate_apply(rt.d.cfg->database_url) < 0;
	else
		status = run(&rt);
	teardown(&rt);
	return status;
}
