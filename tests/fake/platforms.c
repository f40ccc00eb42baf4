/* platforms: the table (adding a platform = one row here and its
 * handlers), request routing, and the common answers with their stats. */
#include <ctype.h>
#include <string.h>

#include "tests/fake/platforms.h"
#include "tests/fake/wire.h"

static const struct plat *const table[PLAT_COUNT] = {
    [PLAT_X] = &plat_x,
    [PLAT_BLUESKY] = &plat_bluesky,
    [PLAT_THREADS] = &plat_threads,
    [PLAT_INSTAGRAM] = &plat_instagram,
    [PLAT_FACEBOOK] = &plat_facebook,
    [PLAT_LINKEDIN] = &plat_linkedin,
    [PLAT_PINTEREST] = &plat_pinterest,
    [PLAT_TIKTOK] = &plat_tiktok,
    [PLAT_YOUTUBE] = &plat_youtube,
};

const struct plat *plat_get(enum plat_id id)
{
	return table[id];
}

enum plat_id plat_id_of(const struct plat *p)
{
	for (int i = 0; i < PLAT_COUNT; i++)
		if (table[i] == p)
			return (enum plat_id)i;
	return PLAT_COUNT;
}

int plat_index(const char *name, size_t len)
{
	for (int i = 0; i < PLAT_COUNT; i++)
		if (strlen(table[i]->name) == len && memcmp(table[i]->name, name, len) == 0)
			return i;
	return -1;
}

/* Skips a Graph API version segment "/v<digits>.<digits>"; NULL if absent. */
static const char *skip_version(const char *path)
{
	const char *p = path;

	if (strncmp(p, "/v", 2) != 0 || !isdigit((unsigned char)p[2]))
		return NULL;
	for (p += 2; isdigit((unsigned char)*p); p++)
		;
	if (*p++ != '.' || !isdigit((unsigned char)*p))
		return NULL;
	while (isdigit((unsigned char)*p))
		p++;
	return *p == '/' ? p : NULL;
}

static bool path_matches(const char *pattern, const char *path)
{
	if (strcmp(pattern, "/{id}") != 0)
		return strcmp(pattern, path) == 0;
	if (path[0] != '/' || path[1] == '\0')
		return false;
	for (path++; *path; path++)
		if (!isdigit((unsigned char)*path))
			return false;
	return true;
}

bool plat_route(struct call *c, const char *path)
{
	const char *slash;
	int i;

	if (path[0] != '/')
		return false;
	slash = strchr(path + 1, '/');
	i = slash ? plat_index(path + 1, (size_t)(slash - path - 1)) : -1;
	if (i < 0)
		return false;
	c->plat = table[i];
	c->subpath = c->plat->versioned ? skip_version(slash) : slash;
	if (!c->subpath)
		return false;
	for (const struct route *r = c->plat->routes; r->path; r++) {
		if (path_matches(r->path, c->subpath)) {
			c->route = r;
			return true;
		}
	}
	return false;
}

void plat_run(struct call *c)
{
	if (evhttp_request_get_command(c->req) != c->route->method) {
		plat_fail(c, FAIL_METHOD, "Method Not Allowed");
		return;
	}
	c->route->handle(c);
}

static struct plat_stats *stats(struct call *c)
{
	return &c->fake->stats[plat_id_of(c->plat)];
}

void plat_ok(struct call *c, json_t *body)
{
	if (!c->faulted)
		stats(c)->ok++;
	wire_send(c, HTTP_OK, body);
}

/* The counter a failure goes to when it is not a fault's: a refused
 * request, a dead grant, a real rate limit, or none (server errors). */
static uint64_t *counter(struct plat_stats *st, enum fail why)
{
	switch (why) {
	case FAIL_REQUEST:
	case FAIL_METHOD:
	case FAIL_GRANT_TYPE:
	case FAIL_CLIENT:
	case FAIL_TOO_YOUNG:
		return &st->rejected;
	case FAIL_RATE:
		return &st->rate_limited;
	case FAIL_SERVER:
	case FAIL_COUNT:
		return NULL;
	default:
		return &st->dead;
	}
}

void plat_fail(struct call *c, enum fail why, const char *detail)
{
	uint64_t *n = counter(stats(c), why);

	if (n && !c->faulted)
		(*n)++;
	c->plat->fail(c, why, detail);
}

bool plat_accept(struct call *c, enum verdict v)
{
	static const enum fail failure[] = {
	    [VERDICT_UNKNOWN] = FAIL_INVALID,   [VERDICT_WRONG_KIND] = FAIL_INVALID,
	    [VERDICT_REVOKED] = FAIL_REVOKED,   [VERDICT_TAKEDOWN] = FAIL_TAKEDOWN,
	    [VERDICT_EXPIRED] = FAIL_EXPIRED,   [VERDICT_SPENT] = FAIL_SPENT,
	    [VERDICT_NO_PAGE] = FAIL_NO_OBJECT,
	};

	if (v == VERDICT_SPENT || v == VERDICT_GRACE)
		stats(c)->reuse++;
	if (v == VERDICT_GRACE)
		stats(c)->grace_reuse++;
	if ((v == VERDICT_OK || v == VERDICT_GRACE) && c->force_dead)
		v = VERDICT_REVOKED;
	if (v == VERDICT_OK || v == VERDICT_GRACE)
		return true;
	plat_fail(c, failure[v], v == VERDICT_WRONG_KIND ? "Invalid token type" : NULL);
	return false;
}

void plat_commit(struct call *c, struct grant *g, const struct session *s)
{
	if (!c->dry_run)
		g->s = *s;
}

json_t *plat_token(struct call *c, const struct grant *g, const struct session *s, char kind)
{
	char token[TOKEN_MAX];

	if (grants_token(c->fake->grants, g, s, kind, token, sizeof(token)) < 0)
		return json_null();
	return json_string(token);
}

json_int_t plat_expires_in(struct call *c, const struct grant *g, const struct session *s,
                           char kind)
{
	int64_t at = grants_expires_at(c->fake->grants, g, s, kind);

	return at == 0 ? 0 : (json_int_t)(at > c->now ? at - c->now : 0);
}

const char *plat_message(const char *fixed, const char *detail, const char *fallback)
{
	return fixed ? fixed : detail ? detail : fallback;
}

bool plat_client_ok(const struct call *c, const char *id, const char *secret)
{
	const struct fake_config *cfg = &c->fake->cfg;

	if ((id && !*id) || !secret || !*secret)
		return false;
	return (!id || !cfg->client_id || strcmp(cfg->client_id, id) == 0) &&
	       (!cfg->client_secret || strcmp(cfg->client_secret, secret) == 0);
}
