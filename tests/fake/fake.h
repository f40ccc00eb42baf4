/* fake: shared types of the fake platform server (tests/fake): its
 * configuration and context, one request in flight, and the platform table's
 * row type. Every module of the fake takes a `struct fake *`; no globals. */
#ifndef FAKE_H
#define FAKE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

enum plat_id {
	PLAT_X,
	PLAT_BLUESKY,
	PLAT_THREADS,
	PLAT_INSTAGRAM,
	PLAT_FACEBOOK,
	PLAT_LINKEDIN,
	PLAT_PINTEREST,
	PLAT_TIKTOK,
	PLAT_YOUTUBE,
	PLAT_COUNT
};

/* Why a request is refused. Each platform renders these in its own shape
 * (status, body, headers); see the platform's `fail` function. */
enum fail {
	FAIL_REQUEST,    /* malformed: content type, missing parameter, bad JSON */
	FAIL_METHOD,     /* wrong HTTP method for the endpoint */
	FAIL_GRANT_TYPE, /* grant_type other than the endpoint's */
	FAIL_CLIENT,     /* client authentication missing or wrong */
	FAIL_INVALID,    /* token unparsable, unknown, or of the wrong kind */
	FAIL_REVOKED,    /* grant revoked (control API, "dead" fault, reuse) */
	FAIL_EXPIRED,    /* token past its lifetime */
	FAIL_SPENT,      /* rotated refresh token presented again */
	FAIL_TOO_YOUNG,  /* Threads/Instagram: long-lived token too young to refresh */
	FAIL_NO_OBJECT,  /* Graph: no such object (page) for this token */
	FAIL_PASSWORD,   /* Bluesky createSession: wrong identifier or password */
	FAIL_TAKEDOWN,   /* Bluesky: account taken down */
	FAIL_RATE,       /* rate limited: c->retry_after, c->graph_code */
	FAIL_SERVER,     /* internal server error */
	FAIL_COUNT
};

/* How a fault garbles an answer that the handler still produces. */
enum mangle { MANGLE_NONE, MANGLE_MALFORMED, MANGLE_OVERSIZED, MANGLE_WRONG_TYPES };

struct fake_config {
	const char *bind; /* loopback address */
	int port;         /* plain HTTP; -1 = none */
	int tls_port;     /* HTTPS; -1 = none */
	const char *tls_cert, *tls_key;
	bool quiet, verbose;
	bool x_public_client;      /* X: client_id alone is enough (no Basic) */
	bool reuse_revokes;        /* reuse of a spent refresh token kills the grant */
	const char *client_id;     /* NULL: any non-empty client id is accepted */
	const char *client_secret; /* NULL: any non-empty secret is accepted */
	int64_t bluesky_grace_s;   /* a rotated refreshJwt keeps working this long */
	int64_t meta_min_age_s;    /* Threads/Instagram: youngest refreshable token */
	int bluesky_session_limit; /* createSession per identifier per 5 min; 0 = off */
	int64_t access_ttl_s[PLAT_COUNT];
	int64_t refresh_ttl_s[PLAT_COUNT]; /* 0 = never expires */
};

struct plat_stats {
	uint64_t requests, ok, rejected, dead, reuse, grace_reuse, faults, rate_limited;
};

struct grants;
struct faults;
struct delayed;

struct fake {
	struct event_base *base;
	struct fake_config cfg;
	struct grants *grants;
	struct faults *faults;
	struct delayed *delayed; /* requests held back by a "delay" fault */
	struct plat_stats stats[PLAT_COUNT];
	uint64_t unrouted;
	int64_t started;
	uint64_t rng;
	char *padding; /* 2 MiB of filler for "oversized", built on first use */
};

struct plat;
struct route;

/* One request in flight. Lives on the dispatcher's stack, or on the heap
 * while a "delay" fault holds it. */
struct call {
	struct fake *fake;
	struct evhttp_request *req;
	const struct plat *plat;
	const struct route *route;
	const char *subpath; /* path below the platform prefix (and API version) */
	int64_t now;
	struct evkeyvalq params; /* query or form parameters, once loaded */
	bool have_params;
	/* Set by a fault: */
	bool faulted;       /* answered under a fault: not counted as ok/dead */
	enum mangle mangle; /* garble whatever is sent */
	bool dry_run;       /* compute the answer but commit no state change */
	bool drop_reply;    /* close the connection instead of answering */
	bool force_dead;    /* treat the presented grant as revoked */
	int retry_after;    /* seconds, for FAIL_RATE */
	int graph_code;     /* Graph rate-limit code (4, 17, 613), for FAIL_RATE */
	int graph_status;   /* Graph rate-limit HTTP status, for FAIL_RATE */
};

struct route {
	enum evhttp_cmd_type method;
	const char *path; /* below the platform prefix; "/{id}" matches a numeric id */
	void (*handle)(struct call *c);
};

struct plat {
	const char *name;      /* path prefix and token prefix */
	bool rotates;          /* a refresh returns a new refresh token */
	bool versioned;        /* path carries a Graph version: /facebook/v21.0/... */
	bool access_only;      /* Meta: the long-lived access token is what refreshes */
	int64_t access_ttl_s;  /* defaults (platforms.md) */
	int64_t refresh_ttl_s; /* 0 = never expires */
	/* Answers `why` in the platform's own error shape; `detail` may be NULL. */
	void (*fail)(struct call *c, enum fail why, const char *detail);
	const struct route *routes; /* terminated by a NULL path */
};

/* Small pseudo-random numbers (xorshift) for ids in error bodies; not secrets. */
uint64_t fake_random(struct fake *fake);
/* Logs to stderr unless --quiet; never token material. */
void fake_log(const struct fake *fake, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
