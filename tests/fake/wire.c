/* wire: request parameters and credentials, and sending answers: JSON
 * bodies, garbled by "malformed", "oversized" and "wrong_types" faults, or
 * a connection closed without answer for "reset". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "tests/fake/codec.h"
#include "tests/fake/wire.h"

#define CREDENTIAL_MAX 512

static int parse_params(struct call *c, const char *text)
{
	c->have_params = true; /* evhttp_parse_query_str initialises the list */
	return evhttp_parse_query_str(text, &c->params);
}

int wire_query(struct call *c)
{
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(c->req));

	return parse_params(c, query ? query : "");
}

int wire_form(struct call *c)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t len = evbuffer_get_length(in);
	char *text;
	int rc = -1;

	if (!wire_content_type_is(c, "application/x-www-form-urlencoded"))
		return -1;
	text = malloc(len + 1);
	if (!text)
		return -1;
	if (evbuffer_copyout(in, text, len) == (ev_ssize_t)len && !memchr(text, '\0', len)) {
		text[len] = '\0';
		rc = parse_params(c, text);
	}
	free(text);
	return rc;
}

const char *wire_param(const struct call *c, const char *name)
{
	const char *value;

	if (!c->have_params)
		return NULL;
	value = evhttp_find_header(&c->params, name);
	return value && *value ? value : NULL;
}

const char *wire_header(const struct call *c, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(c->req), name);
}

bool wire_content_type_is(const struct call *c, const char *type)
{
	const char *value = wire_header(c, "Content-Type");
	size_t n = strlen(type);

	if (!value)
		return false;
	value += strspn(value, " \t");
	return strncasecmp(value, type, n) == 0 && strchr("; \t", value[n]) != NULL;
}

/* The credentials after "<scheme> " in the Authorization header, or NULL. */
static const char *authorization(const struct call *c, const char *scheme)
{
	const char *value = wire_header(c, "Authorization");
	size_t n = strlen(scheme);

	if (!value || strncasecmp(value, scheme, n) != 0 || value[n] != ' ')
		return NULL;
	value += n + strspn(value + n, " ");
	return *value ? value : NULL;
}

static bool copy_part(const char *from, size_t n, char *to, size_t size)
{
	if (n == 0 || n >= size)
		return false;
	memcpy(to, from, n);
	to[n] = '\0';
	return true;
}

bool wire_basic(const struct call *c, char *id, size_t id_size, char *secret, size_t secret_size)
{
	const char *encoded = authorization(c, "Basic");
	unsigned char pair[CREDENTIAL_MAX];
	const unsigned char *colon;
	int n;

	if (!encoded)
		return false;
	n = codec_b64_decode(encoded, strcspn(encoded, " "), pair, sizeof(pair));
	if (n <= 0 || memchr(pair, '\0', (size_t)n))
		return false;
	colon = memchr(pair, ':', (size_t)n);
	if (!colon)
		return false;
	return copy_part((const char *)pair, (size_t)(colon - pair), id, id_size) &&
	       copy_part((const char *)colon + 1, (size_t)(pair + n - colon - 1), secret,
	                 secret_size);
}

const char *wire_bearer(const struct call *c)
{
	return authorization(c, "Bearer");
}

json_t *wire_json_body(const struct call *c, json_error_t *err)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t len = evbuffer_get_length(in);
	const unsigned char *text = evbuffer_pullup(in, -1);

	return json_loadb(text ? (const char *)text : "", len, JSON_REJECT_DUPLICATES, err);
}

void wire_set_header(struct call *c, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(c->req), name, value);
}

void wire_set_header_int(struct call *c, const char *name, int64_t value)
{
	char text[24];

	snprintf(text, sizeof(text), "%" PRId64, value);
	wire_set_header(c, name, text);
}

static void release(const void *data, size_t len, void *arg)
{
	free((void *)data);
}

/* Sends len bytes of text (owned, freed here) as a JSON answer. */
static void send_text(struct evhttp_request *req, int status, char *text, size_t len)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evhttp_request_get_output_buffer(req);

	evhttp_add_header(headers, "Content-Type", "application/json; charset=utf-8");
	evhttp_add_header(headers, "Cache-Control", "no-store");
	if (!text || evbuffer_add_reference(out, text, len, release, NULL) < 0) {
		free(text);
		status = HTTP_INTERNAL;
	}
	/* libevent 2.1 knows no phrase for 429 */
	evhttp_send_reply(req, status, status == 429 ? "Too Many Requests" : NULL, NULL);
}

void wire_reply(struct evhttp_request *req, int status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);

	json_decref(body);
	send_text(req, status, text, text ? strlen(text) : 0);
}

static void wrong_types(json_t *object);

/* The value with another JSON type (a string becomes a number, a number a
 * string), or NULL to keep it; objects are changed in place. */
static json_t *swap_type(json_t *value)
{
	char text[32];

	switch (json_typeof(value)) {
	case JSON_STRING:
		return json_integer((json_int_t)json_string_length(value) * 1000 + 7);
	case JSON_INTEGER:
		snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(value));
		return json_string(text);
	case JSON_REAL:
		snprintf(text, sizeof(text), "%g", json_real_value(value));
		return json_string(text);
	case JSON_TRUE:
	case JSON_FALSE:
		return json_string(json_is_true(value) ? "true" : "false");
	case JSON_OBJECT:
		wrong_types(value);
		return NULL;
	default:
		return NULL;
	}
}

static void wrong_types(json_t *object)
{
	for (void *it = json_object_iter(object); it; it = json_object_iter_next(object, it)) {
		json_t *swapped = swap_type(json_object_iter_value(it));
		if (swapped)
			json_object_iter_set_new(object, it, swapped);
	}
}

static void pad(struct fake *fake, json_t *body)
{
	if (!fake->padding) {
		fake->padding = malloc(WIRE_OVERSIZED_BYTES);
		if (!fake->padding)
			return;
		memset(fake->padding, 'x', WIRE_OVERSIZED_BYTES);
	}
	json_object_set_new(body, "padding",
	                    json_stringn_nocheck(fake->padding, WIRE_OVERSIZED_BYTES));
}

void wire_send(struct call *c, int status, json_t *body)
{
	char *text;
	size_t len;

	if (c->mangle == MANGLE_WRONG_TYPES)
		wrong_types(body);
	else if (c->mangle == MANGLE_OVERSIZED)
		pad(c->fake, body);
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	len = text ? strlen(text) : 0;
	if (c->mangle == MANGLE_MALFORMED)
		len /= 2;
	if (c->fake->cfg.verbose)
		fake_log(c->fake, "%s %s -> %d%s", c->plat ? c->plat->name : "-",
		         evhttp_uri_get_path(evhttp_request_get_evhttp_uri(c->req)), status,
		         c->drop_reply ? " (dropped)" : "");
	if (c->drop_reply) {
		free(text);
		wire_reset(c);
		return;
	}
	send_text(c->req, status, text, len);
}

void wire_reset(struct call *c)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);
	struct linger abort_on_close = {.l_onoff = 1, .l_linger = 0};
	evutil_socket_t fd = -1;

	if (evcon)
		fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	if (fd >= 0) {
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close,
		                 sizeof(abort_on_close));
		(void)shutdown(fd, SHUT_RDWR);
	}
	/* Cannot reach the peer any more; lets libevent fail and free the
	 * connection and the request in its own time. */
	evhttp_send_reply(c->req, HTTP_INTERNAL, NULL, NULL);
}

void wire_done(struct call *c)
{
	if (c->have_params)
		evhttp_clear_headers(&c->params);
	c->have_params = false;
}
