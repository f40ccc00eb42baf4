/* http_tls: throwaway PKI and TLS server contexts for test_http: a CA made
 * in memory, leaf certificates it issues, and TLS bufferevents for an evhttp
 * server (evhttp_set_bevcb). Every failure exits the test. */
#ifndef TOKEND_TEST_HTTP_TLS_H
#define TOKEND_TEST_HTTP_TLS_H

#include <openssl/ssl.h>

struct bufferevent;
struct event_base;

/* A key and its certificate; owner frees with http_tls_cert_free(). */
struct http_tls_cert {
	EVP_PKEY *key;
	X509 *cert;
};

/* A self-signed CA named cn. */
struct http_tls_cert http_tls_ca(const char *cn);
/* A server certificate signed by ca for san ("IP:127.0.0.1", "DNS:x"). */
struct http_tls_cert http_tls_issue(const struct http_tls_cert *ca, const char *san);
void http_tls_cert_free(struct http_tls_cert *c);
/* Write the certificate as PEM to path (a ca_file). */
void http_tls_write_pem(const struct http_tls_cert *c, const char *path);

/* A server context presenting leaf; caller frees with SSL_CTX_free(). */
SSL_CTX *http_tls_server_ctx(const struct http_tls_cert *leaf);
/* A bufferevent that accepts TLS with ctx, for an evhttp_set_bevcb() callback. */
struct bufferevent *http_tls_bufferevent(struct event_base *base, SSL_CTX *ctx);

#endif
