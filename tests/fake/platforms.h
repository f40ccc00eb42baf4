/* platforms: the table of fake platforms (one row per platform, defined
 * with its handlers in oauth.c, graph.c and bluesky.c), routing, and the
 * answers every handler gives (plat_ok, plat_fail), which keep the stats. */
#ifndef FAKE_PLATFORMS_H
#define FAKE_PLATFORMS_H

#include <stdbool.h>
#include <stddef.h>

#include "tests/fake/fake.h"
#include "tests/fake/grants.h"

extern const struct plat plat_x, plat_bluesky, plat_threads, plat_instagram, plat_facebook,
    plat_linkedin, plat_pinterest, plat_tiktok, plat_youtube;

const struct plat *plat_get(enum plat_id id);
enum plat_id plat_id_of(const struct plat *p);
/* The platform whose name is the first len bytes of name, or -1. */
int plat_index(const char *name, size_t len);

/* Finds the endpoint of a request path ("/x/2/oauth2/token"): fills
 * c->plat, c->route and c->subpath. False when no platform has it. */
bool plat_route(struct call *c, const char *path);
/* Checks the method, then runs the route's handler. */
void plat_run(struct call *c);

/* 200 with body (stolen), counted as a success. */
void plat_ok(struct call *c, json_t *body);
/* The platform's answer for why, counted by kind. */
void plat_fail(struct call *c, enum fail why, const char *detail);
/* True for a usable verdict. Otherwise answers the platform's failure
 * (a "dead" fault turns any verdict into a revoked grant) and returns false.
 * Counts reuse of spent refresh tokens. */
bool plat_accept(struct call *c, enum verdict v);
/* Stores s as g's session, unless the call is a dry run. */
void plat_commit(struct call *c, struct grant *g, const struct session *s);
/* g's token of kind in s, as a JSON string. */
json_t *plat_token(struct call *c, const struct grant *g, const struct session *s, char kind);
/* Seconds from now until g's token of kind in s expires; 0 when it never does. */
json_int_t plat_expires_in(struct call *c, const struct grant *g, const struct session *s,
                           char kind);
/* An error message: the platform's fixed text, else the handler's detail,
 * else fallback. */
const char *plat_message(const char *fixed, const char *detail, const char *fallback);
/* The client credentials a request presented (id NULL: not sent), checked
 * against --client-id/--client-secret; any non-empty values when unset. */
bool plat_client_ok(const struct call *c, const char *id, const char *secret);

#endif
