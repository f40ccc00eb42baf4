/* http_tls: see http_tls.h. */
#include "tests/unit/http_tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>

#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond);         \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	REQUIRE(ext && X509_add_ext(x, ext, -1));
	X509_EXTENSION_free(ext);
}

/* A certificate for key named cn, valid from an hour ago for a day, signed
 * by issuer (NULL: self-signed). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const struct http_tls_cert *issuer)
{
	static long serial = 1;
	X509 *x = X509_new();
	REQUIRE(x && X509_set_version(x, X509_VERSION_3));
	REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++));
	REQUIRE(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	REQUIRE(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	REQUIRE(X509_set_pubkey(x, key));
	X509_NAME *name = X509_get_subject_name(x);
	REQUIRE(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
	                                   -1, 0));
	REQUIRE(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert) : name));
	return x;
}

static void sign(X509 *x, EVP_PKEY *key)
{
	REQUIRE(X509_sign(x, key, EVP_sha256()) > 0);
}

struct http_tls_cert http_tls_ca(const char *cn)
{
	struct http_tls_cert ca = {.key = EVP_EC_gen("P-256")};
	REQUIRE(ca.key);
	ca.cert = make_cert(ca.key, cn, NULL);
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, ca.cert, ca.cert, NULL, NULL, 0);
	add_ext(ca.cert, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	add_ext(ca.cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
	add_ext(ca.cert, &ctx, NID_subject_key_identifier, "hash");
	sign(ca.cert, ca.key);
	return ca;
}

struct http_tls_cert http_tls_issue(const struct http_tls_cert *ca, const char *san)
{
	struct http_tls_cert leaf = {.key = EVP_EC_gen("P-256")};
	REQUIRE(leaf.key);
	leaf.cert = make_cert(leaf.key, "test server", ca);
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, ca->cert, leaf.cert, NULL, NULL, 0);
	add_ext(leaf.cert, &ctx, NID_basic_constraints, "critical,CA:FALSE");
	add_ext(leaf.cert, &ctx, NID_key_usage, "critical,digitalSignature");
	add_ext(leaf.cert, &ctx, NID_ext_key_usage, "serverAuth");
	add_ext(leaf.cert, &ctx, NID_subject_key_identifier, "hash");
	add_ext(leaf.cert, &ctx, NID_authority_key_identifier, "keyid:always");
	add_ext(leaf.cert, &ctx, NID_subject_alt_name, san);
	sign(leaf.cert, ca->key);
	return leaf;
}

void http_tls_cert_free(struct http_tls_cert *c)
{
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
	c->cert = NULL;
	c->key = NULL;
}

void http_tls_write_pem(const struct http_tls_cert *c, const char *path)
{
	FILE *f = fopen(path, "w");
	REQUIRE(f && PEM_write_X509(f, c->cert));
	REQUIRE(fclose(f) == 0);
}

SSL_CTX *http_tls_server_ctx(const struct http_tls_cert *leaf)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	REQUIRE(ctx);
	REQUIRE(SSL_CTX_use_certificate(ctx, leaf->cert) == 1);
	REQUIRE(SSL_CTX_use_PrivateKey(ctx, leaf->key) == 1);
	REQUIRE(SSL_CTX_check_private_key(ctx) == 1);
	return ctx;
}

struct bufferevent *http_tls_bufferevent(struct event_base *base, SSL_CTX *ctx)
{
	SSL *ssl = SSL_new(ctx);
	REQUIRE(ssl);
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	REQUIRE(bev);
	/* Clients may close without close_notify; that is not an error here. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}
