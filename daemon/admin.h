/* admin: the operator's HTTP listener (libevent evhttp, loopback by
 * default): /healthz, /readyz, /metrics, GET /v1/schedule, GET
 * /v1/accounts/{id}. JSON everywhere but /metrics; never a token. With
 * admin_token_file set, every endpoint but /healthz needs the bearer token
 * (401 otherwise). */
#ifndef TOKEND_ADMIN_H
#define TOKEND_ADMIN_H

#include <stddef.h>

struct daemon;
struct admin;

/* Bind listen ("host:port") and read d->cfg->admin_token_file. Borrows d.
 * NULL with err set on failure. */
struct admin *admin_new(struct daemon *d, const char *listen, char *err, size_t errlen);
void admin_free(struct admin *adm); /* NULL-safe */

#endif
