/* wire: HTTP plumbing of the fake: request parameters and credentials, and
 * the one place answers leave (where a fault garbles or drops them). */
#ifndef FAKE_WIRE_H
#define FAKE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/fake/fake.h"

#define WIRE_OVERSIZED_BYTES (2u << 20)

/* Loads the query string's parameters. -1 when it does not parse. */
int wire_query(struct call *c) __attribute__((warn_unused_result));
/* Loads an application/x-www-form-urlencoded body. -1 when the content
 * type is another or the body does not parse. */
int wire_form(struct call *c) __attribute__((warn_unused_result));
/* A loaded parameter; NULL when absent or empty. */
const char *wire_param(const struct call *c, const char *name);
const char *wire_header(const struct call *c, const char *name);
/* True when the request's media type is type (parameters such as charset ignored). */
bool wire_content_type_is(const struct call *c, const char *type);
/* Decodes "Authorization: Basic base64(id:secret)" into the buffers.
 * False when absent, malformed or too long. */
bool wire_basic(const struct call *c, char *id, size_t id_size, char *secret, size_t secret_size);
/* The token of "Authorization: Bearer <token>", or NULL. */
const char *wire_bearer(const struct call *c);
/* The body parsed as JSON (caller decrefs), or NULL with err filled. */
json_t *wire_json_body(const struct call *c, json_error_t *err);
void wire_set_header(struct call *c, const char *name, const char *value);
void wire_set_header_int(struct call *c, const char *name, int64_t value);
/* Sends body (stolen) with status, garbled or dropped as the call's fault says. */
void wire_send(struct call *c, int status, json_t *body);
/* Closes the connection without answering. */
void wire_reset(struct call *c);
/* Releases what the call loaded; the call may be reused or freed after. */
void wire_done(struct call *c);

/* Sends body (stolen) as JSON on req: for the control API and 404s. */
void wire_reply(struct evhttp_request *req, int status, json_t *body);

#endif
