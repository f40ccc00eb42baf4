/* fake_platforms: a fake of the social platforms' token endpoints, for
 * tokend's integration tests, demo and benchmarks: one libevent loop, one
 * evhttp per listener (plain HTTP and/or HTTPS), loopback only. Endpoints,
 * token conventions and the control API are in README.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tests/fake/control.h"
#include "tests/fake/faults.h"
#include "tests/fake/grants.h"
#include "tests/fake/platforms.h"
#include "tests/fake/wire.h"

#define REQUEST_BODY_MAX (64 * 1024)
#define REQUEST_HEADERS_MAX (16 * 1024)
#define IDLE_TIMEOUT_S 60

/* A request held back by a "delay" fault. */
struct delayed {
	struct call call;
	struct event *timer;
	struct delayed *next, **prev;
};

/* The listeners and what they own. */
struct server {
	struct evhttp *http, *https;
	SSL_CTX *tls;
	struct event *sigterm, *sigint;
};

uint64_t fake_random(struct fake *fake)
{
	uint64_t x = fake->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	fake->rng = x;
	return x * 2685821657736338717u;
}

void fake_log(const struct fake *fake, const char *fmt, ...)
{
	va_list ap;

	if (fake->cfg.quiet)
		return;
	va_start(ap, fmt);
	fputs("fake_platforms: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- requests ---- */

static void unlink_delayed(struct delayed *d)
{
	if (d->next)
		d->next->prev = d->prev;
	*d->prev = d->next;
}

static void free_delayed(struct delayed *d)
{
	wire_done(&d->call);
	event_free(d->timer);
	free(d);
}

static void on_delay_over(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg;

	unlink_delayed(d);
	d->call.now = time(NULL);
	plat_run(&d->call);
	free_delayed(d);
}

/* Runs the call's handler after ms milliseconds (at once if that fails). */
static void delay(struct call *c, int ms)
{
	struct fake *fake = c->fake;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	struct delayed *d = calloc(1, sizeof(*d));

	if (d)
		d->timer = evtimer_new(fake->base, on_delay_over, d);
	if (!d || !d->timer || evtimer_add(d->timer, &tv) < 0) {
		if (d && d->timer)
			event_free(d->timer);
		free(d);
		plat_run(c);
		return;
	}
	d->call = *c;
	d->next = fake->delayed;
	d->prev = &fake->delayed;
	if (fake->delayed)
		fake->delayed->prev = &d->next;
	fake->delayed = d;
}

/* Hands every delayed request back to libevent at shutdown: a 503 where the
 * client is still connected (likely never flushed), freed where it is gone. */
static void flush_delayed(struct fake *fake)
{
	while (fake->delayed) {
		struct delayed *d = fake->delayed;
		unlink_delayed(d);
		evhttp_send_error(d->call.req, HTTP_SERVUNAVAIL, NULL);
		free_delayed(d);
	}
}

static enum mangle mangle_of(enum fault_kind kind)
{
	return kind == FAULT_MALFORMED   ? MANGLE_MALFORMED
	       : kind == FAULT_OVERSIZED ? MANGLE_OVERSIZED
	                                 : MANGLE_WRONG_TYPES;
}

/* Serves the next fault queued for this request, if any. */
static bool serve_fault(struct call *c, const char *path)
{
	struct fault f;

	if (!faults_take(c->fake->faults, plat_id_of(c->plat), path, &f))
		return false;
	c->fake->stats[plat_id_of(c->plat)].faults++;
	c->faulted = f.kind != FAULT_DELAY;
	if (c->fake->cfg.verbose)
		fake_log(c->fake, "fault #%u (%s) on %s", f.id, fault_kind_name(f.kind), path);
	switch (f.kind) {
	case FAULT_500:
		plat_fail(c, FAIL_SERVER, NULL);
		break;
	case FAULT_429:
		c->retry_after = f.retry_after;
		c->graph_code = f.code;
		c->graph_status = f.status;
		plat_fail(c, FAIL_RATE, NULL);
		break;
	case FAULT_DELAY:
		delay(c, f.delay_ms);
		break;
	case FAULT_RESET:
		c->drop_reply = true;
		if (f.commit)
			plat_run(c);
		else
			wire_reset(c);
		break;
	case FAULT_DEAD:
		c->force_dead = true;
		plat_run(c);
		break;
	default:
		c->mangle = mangle_of(f.kind);
		c->dry_run = !f.commit;
		plat_run(c);
		break;
	}
	return true;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct fake *fake = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct call c = {.fake = fake, .req = req, .now = time(NULL)};

	if (!path)
		path = "";
	if (strncmp(path, "/_control/", 10) == 0) {
		control_handle(fake, req, path);
		return;
	}
	if (!plat_route(&c, path)) {
		fake->unrouted++;
		wire_reply(req, HTTP_NOTFOUND,
		           json_pack("{s:s, s:s}", "error", "not_found", "path", path));
		return;
	}
	fake->stats[plat_id_of(c.plat)].requests++;
	if (!serve_fault(&c, path))
		plat_run(&c);
	wire_done(&c);
}

/* ---- listeners ---- */

static struct bufferevent *tls_bufferevent(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);
	struct bufferevent *bev;

	if (!ssl)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (bev)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static void tls_error(const char *what, const char *file)
{
	char reason[256] = "unknown error";
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	fprintf(stderr, "fake_platforms: %s %s: %s\n", what, file, reason);
}

static SSL_CTX *tls_context(const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		tls_error("cannot create a TLS context for", cert);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_error("cannot load certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_error("cannot load private key", key);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static void print_listening(const char *bind, int port, bool tls)
{
	bool v6 = strchr(bind, ':') != NULL;

	printf("listening on %s%s%s:%d%s\n", v6 ? "[" : "", bind, v6 ? "]" : "", port,
	       tls ? " (tls)" : "");
}

/* An evhttp listening on bind:port; prints the port it got. */
static struct evhttp *listen_http(struct fake *fake, int port, SSL_CTX *tls)
{
	struct evhttp *http = evhttp_new(fake->base);
	struct evhttp_bound_socket *sock;
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	int on = 1;

	if (!http)
		return NULL;
	evhttp_set_gencb(http, on_request, fake);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	                                     EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
	                                     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_max_body_size(http, REQUEST_BODY_MAX);
	evhttp_set_max_headers_size(http, REQUEST_HEADERS_MAX);
	evhttp_set_timeout(http, IDLE_TIMEOUT_S);
	if (tls)
		evhttp_set_bevcb(http, tls_bufferevent, tls);
	sock = evhttp_bind_socket_with_handle(http, fake->cfg.bind, (ev_uint16_t)port);
	/* Accepted sockets inherit TCP_NODELAY (Linux): without it, a TLS
	 * answer written as two records waits for a delayed ACK. */
	if (!sock ||
	    setsockopt(evhttp_bound_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &on,
	               sizeof(on)) < 0 ||
	    getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&addr, &len) < 0) {
		fprintf(stderr, "fake_platforms: cannot listen on %s port %d: %s\n", fake->cfg.bind,
		        port, strerror(errno));
		evhttp_free(http);
		return NULL;
	}
	port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
	                                        : ((struct sockaddr_in *)&addr)->sin_port);
	print_listening(fake->cfg.bind, port, tls != NULL);
	return http;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct fake *fake = arg;

	fake_log(fake, "signal %d: exiting", (int)sig);
	event_base_loopexit(fake->base, NULL);
}

static int start(struct fake *fake, struct server *srv)
{
	const struct fake_config *cfg = &fake->cfg;

	fake->base = event_base_new();
	fake->grants = grants_new(cfg);
	fake->faults = faults_new();
	if (!fake->base || !fake->grants || !fake->faults)
		return -1;
	srv->sigterm = evsignal_new(fake->base, SIGTERM, on_signal, fake);
	srv->sigint = evsignal_new(fake->base, SIGINT, on_signal, fake);
	if (!srv->sigterm || !srv->sigint || evsignal_add(srv->sigterm, NULL) < 0 ||
	    evsignal_add(srv->sigint, NULL) < 0)
		return -1;
	if (cfg->tls_cert && !(srv->tls = tls_context(cfg->tls_cert, cfg->tls_key)))
		return -1;
	if (cfg->port >= 0 && !(srv->http = listen_http(fake, cfg->port, NULL)))
		return -1;
	if (srv->tls && !(srv->https = listen_http(fake, cfg->tls_port, srv->tls)))
		return -1;
	return fflush(stdout) == 0 ? 0 : -1;
}

static void stop(struct fake *fake, struct server *srv)
{
	if (fake->base)
		flush_delayed(fake);
	if (srv->http)
		evhttp_free(srv->http);
	if (srv->https)
		evhttp_free(srv->https);
	SSL_CTX_free(srv->tls);
	if (srv->sigterm)
		event_free(srv->sigterm);
	if (srv->sigint)
		event_free(srv->sigint);
	grants_free(fake->grants);
	faults_free(fake->faults);
	free(fake->padding);
	if (fake->base)
		event_base_free(fake->base);
}

/* ---- command line ---- */

static void usage(FILE *out)
{
	fputs("usage: fake_platforms [options]\n"
	      "  --port N                 plain HTTP port (0: pick one; default 0)\n"
	      "  --no-http                no plain HTTP listener (with --tls-cert)\n"
	      "  --bind ADDR              loopback address (default 127.0.0.1)\n"
	      "  --tls-cert FILE          serve HTTPS with this certificate chain (PEM)\n"
	      "  --tls-key FILE           ... and this private key (PEM)\n"
	      "  --tls-port N             HTTPS port (0: pick one; default 0)\n"
	      "  --access-ttl P=SECONDS   access token lifetime of platform P (\"meta\" =\n"
	      "                           threads, instagram, facebook; \"*\" = all)\n"
	      "  --refresh-ttl P=SECONDS  refresh token lifetime (0: never expires)\n"
	      "  --bluesky-grace SECONDS  a rotated refreshJwt keeps working (default 7200)\n"
	      "  --meta-min-age SECONDS   youngest refreshable Threads/Instagram token\n"
	      "                           (default 86400; 0 to refresh at once)\n"
	      "  --bluesky-session-limit N  createSession per identifier per 5 min (default\n"
	      "                           30; 0: unlimited)\n"
	      "  --client-id ID           accept only this client id (default: any)\n"
	      "  --client-secret SECRET   accept only this client secret (default: any)\n"
	      "  --x-public-client        X: no Basic auth needed (public client)\n"
	      "  --reuse-revokes          reusing a spent refresh token kills the grant\n"
	      "  --quiet                  log nothing but errors\n"
	      "  --verbose                log every request\n"
	      "The first stdout line is \"listening on ADDR:PORT\" (then one per listener;\n"
	      "the HTTPS one ends in \" (tls)\").\n",
	      out);
}

static int parse_int(const char *opt, const char *text, long long min, long long max,
                     long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || *out < min || *out > max) {
		fprintf(stderr, "fake_platforms: %s: \"%s\" is not a number in [%lld, %lld]\n", opt,
		        text, min, max);
		return -1;
	}
	return 0;
}

/* --access-ttl / --refresh-ttl P=SECONDS into ttl[]. */
static int parse_ttl(const char *opt, const char *arg, int64_t ttl[PLAT_COUNT], long long min)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : 0;
	bool all = n == 1 && arg[0] == '*', meta = n == 4 && strncmp(arg, "meta", 4) == 0;
	int i = eq ? plat_index(arg, n) : -1;
	long long seconds;

	if (!eq || (i < 0 && !all && !meta)) {
		fprintf(stderr, "fake_platforms: %s wants PLATFORM=SECONDS, got \"%s\"\n", opt,
		        arg);
		return -1;
	}
	if (parse_int(opt, eq + 1, min, 100LL * 365 * 86400, &seconds) < 0)
		return -1;
	for (int p = 0; p < PLAT_COUNT; p++)
		if (p == i || all || (meta && plat_get((enum plat_id)p)->access_only))
			ttl[p] = seconds;
	return 0;
}

static bool is_loopback(const char *addr)
{
	struct in_addr v4;
	struct in6_addr v6;

	if (inet_pton(AF_INET, addr, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, addr, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

static void defaults(struct fake_config *cfg)
{
	*cfg = (struct fake_config){
	    .bind = "127.0.0.1",
	    .port = 0,
	    .tls_port = 0,
	    .bluesky_grace_s = 2 * 3600,
	    .meta_min_age_s = 86400,
	    .bluesky_session_limit = 30,
	};
	for (int i = 0; i < PLAT_COUNT; i++) {
		cfg->access_ttl_s[i] = plat_get((enum plat_id)i)->access_ttl_s;
		cfg->refresh_ttl_s[i] = plat_get((enum plat_id)i)->refresh_ttl_s;
	}
}

enum {
	OPT_PORT = 256,
	OPT_NO_HTTP,
	OPT_BIND,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_PORT,
	OPT_ACCESS_TTL,
	OPT_REFRESH_TTL,
	OPT_GRACE,
	OPT_MIN_AGE,
	OPT_SESSION_LIMIT,
	OPT_CLIENT_ID,
	OPT_CLIENT_SECRET,
	OPT_X_PUBLIC,
	OPT_REUSE_REVOKES,
	OPT_QUIET,
	OPT_VERBOSE,
	OPT_HELP,
};

static const struct option options[] = {
    {"port", required_argument, NULL, OPT_PORT},
    {"no-http", no_argument, NULL, OPT_NO_HTTP},
    {"bind", required_argument, NULL, OPT_BIND},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-port", required_argument, NULL, OPT_TLS_PORT},
    {"access-ttl", required_argument, NULL, OPT_ACCESS_TTL},
    {"refresh-ttl", required_argument, NULL, OPT_REFRESH_TTL},
    {"bluesky-grace", required_argument, NULL, OPT_GRACE},
    {"meta-min-age", required_argument, NULL, OPT_MIN_AGE},
    {"bluesky-session-limit", required_argument, NULL, OPT_SESSION_LIMIT},
    {"client-id", required_argument, NULL, OPT_CLIENT_ID},
    {"client-secret", required_argument, NULL, OPT_CLIENT_SECRET},
    {"x-public-client", no_argument, NULL, OPT_X_PUBLIC},
    {"reuse-revokes", no_argument, NULL, OPT_REUSE_REVOKES},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* One option into cfg; -1 on a bad value. */
static int apply_option(struct fake_config *cfg, int opt, const char *arg)
{
	long long n = 0;
	int rc = 0;

	switch (opt) {
	case OPT_PORT:
		rc = parse_int("--port", arg, 0, 65535, &n);
		cfg->port = (int)n;
		break;
	case OPT_NO_HTTP:
		cfg->port = -1;
		break;
	case OPT_BIND:
		cfg->bind = arg;
		break;
	case OPT_TLS_CERT:
		cfg->tls_cert = arg;
		break;
	case OPT_TLS_KEY:
		cfg->tls_key = arg;
		break;
	case OPT_TLS_PORT:
		rc = parse_int("--tls-port", arg, 0, 65535, &n);
		cfg->tls_port = (int)n;
		break;
	case OPT_ACCESS_TTL:
		return parse_ttl("--access-ttl", arg, cfg->access_ttl_s, 1);
	case OPT_REFRESH_TTL:
		return parse_ttl("--refresh-ttl", arg, cfg->refresh_ttl_s, 0);
	case OPT_GRACE:
		rc = parse_int("--bluesky-grace", arg, 0, 365LL * 86400, &n);
		cfg->bluesky_grace_s = n;
		break;
	case OPT_MIN_AGE:
		rc = parse_int("--meta-min-age", arg, 0, 365LL * 86400, &n);
		cfg->meta_min_age_s = n;
		break;
	case OPT_SESSION_LIMIT:
		rc = parse_int("--bluesky-session-limit", arg, 0, 100000, &n);
		cfg->bluesky_session_limit = (int)n;
		break;
	case OPT_CLIENT_ID:
		cfg->client_id = arg;
		break;
	case OPT_CLIENT_SECRET:
		cfg->client_secret = arg;
		break;
	case OPT_X_PUBLIC:
		cfg->x_public_client = true;
		break;
	case OPT_REUSE_REVOKES:
		cfg->reuse_revokes = true;
		break;
	case OPT_QUIET:
		cfg->quiet = true;
		break;
	case OPT_VERBOSE:
		cfg->verbose = true;
		break;
	default:
		return -1;
	}
	return rc;
}

/* 0: run; 1: exit 0 (help); -1: exit 2. */
static int parse_args(struct fake_config *cfg, int argc, char **argv)
{
	int opt;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if (opt == OPT_HELP) {
			usage(stdout);
			return 1;
		}
		if (opt == '?') {
			usage(stderr);
			return -1;
		}
		if (apply_option(cfg, opt, optarg) < 0)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "fake_platforms: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	if (!is_loopback(cfg->bind)) {
		fprintf(stderr, "fake_platforms: --bind %s: loopback addresses only\n", cfg->bind);
		return -1;
	}
	if (!cfg->tls_cert != !cfg->tls_key) {
		fprintf(stderr, "fake_platforms: --tls-cert and --tls-key go together\n");
		return -1;
	}
	if (cfg->port < 0 && !cfg->tls_cert) {
		fprintf(stderr, "fake_platforms: --no-http needs --tls-cert and --tls-key\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct fake fake = {0};
	struct server srv = {0};
	int rc;

	defaults(&fake.cfg);
	rc = parse_args(&fake.cfg, argc, argv);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	signal(SIGPIPE, SIG_IGN);
	fake.started = time(NULL);
	fake.rng = (uint64_t)fake.started * 0x9E3779B97F4A7C15u | 1;
	rc = start(&fake, &srv);
	if (rc == 0)
		rc = event_base_dispatch(fake.base) < 0 ? -1 : 0;
	else
		fprintf(stderr, "fake_platforms: cannot start\n");
	stop(&fake, &srv);
	libevent_global_shutdown();
	return rc == 0 ? 0 : 1;
}
