/* tokenctl_client: config lookup, the admin API client (libcurl easy) and
 * the PostgreSQL connection that several tokenctl subcommands share. */
#include "tools/tokenctl_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/secret.h"
#include "daemon/config.h"
#include "tools/tokenctl.h"

extern char **environ;

enum {
	RESPONSE_MAX_BYTES = 64 << 20, /* /v1/schedule?limit=10000 is a few MiB */
	CONNECT_TIMEOUT_MS = 5000,
	REQUEST_TIMEOUT_MS = 30000,
	HOST_MAX = 256,
};

struct tokenctl_admin {
	char address[HOST_MAX + 8]; /* as given or configured */
	char base[HOST_MAX + 24];   /* http://host:port */
	struct curl_slist *headers; /* Authorization, when a token was given */
};

/* ---- options and output ---- */

static const char admin_options_help[] =
    "  -c, --config FILE         tokend's config file, for admin_listen (default\n"
    "                            " TOKENCTL_DEFAULT_CONFIG " when readable)\n"
    "  --admin HOST:PORT         the admin API (default: admin_listen from the\n"
    "                            config, else " TOKENCTL_DEFAULT_ADMIN ")\n"
    "  --admin-token-file FILE   send 'Authorization: Bearer <file contents>'\n"
    "                            (default: $TOKEND_ADMIN_TOKEN_FILE)\n"
    "  -h, --help                show this help\n";

bool tokenctl_admin_option(struct tokenctl_admin_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case 'c':
		o->config = arg;
		return true;
	case TOKENCTL_OPT_ADMIN:
		o->admin = arg;
		return true;
	case TOKENCTL_OPT_ADMIN_TOKEN_FILE:
		o->token_file = arg;
		return true;
	case 'h':
		o->help = true;
		return true;
	default:
		return false;
	}
}

int tokenctl_bad_option(const char *cmd, int argc, char **argv, int opt)
{
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
	if (opt == ':')
		return tokenctl_usage_error(cmd, "option '%s' needs a value", arg);
	return tokenctl_usage_error(cmd, "unknown option '%s'", arg);
}

int tokenctl_print(const char *cmd, const char *text, size_t len)
{
	if (fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0 && !ferror(stdout))
		return TOKENCTL_OK;
	tokenctl_error(cmd, "writing standard output: %s", strerror(errno));
	return TOKENCTL_FAIL;
}

int tokenctl_admin_usage(const char *cmd, const char *head, const char *tail)
{
	fputs(head, stdout);
	fputs(admin_options_help, stdout);
	if (tail)
		fputs(tail, stdout);
	return tokenctl_print(cmd, "", 0); /* flush, check stdout */
}

void tokenctl_format_duration(double seconds, char *out, size_t outlen)
{
	const char *sign = seconds < 0 ? "-" : "";
	double magnitude = seconds < 0 ? -seconds : seconds;
	long long s = (long long)(magnitude + 0.5);
	if (s < 60)
		snprintf(out, outlen, "%s%llds", sign, s);
	else if (s < 3600)
		snprintf(out, outlen, "%s%lldm%02llds", sign, s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, outlen, "%s%lldh%02lldm", sign, s / 3600, s % 3600 / 60);
	else
		snprintf(out, outlen, "%s%lldd%02lldh", sign, s / 86400, s % 86400 / 3600);
}

/* ---- config ---- */

/* environ without tokenctl's own TOKEND_* variables, which are no config
 * keys (config_load would warn about them). Caller frees the array only. */
static char **config_environment(void)
{
	static const char *const own[] = {"TOKEND_KEYRING=", "TOKEND_ADMIN_TOKEN_FILE="};
	size_t n = 0, kept = 0;
	while (environ && environ[n])
		n++;
	char **envp = calloc(n + 1, sizeof(*envp));
	for (size_t i = 0; envp && i < n; i++) {
		bool skip = false;
		for (size_t k = 0; k < sizeof(own) / sizeof(own[0]); k++)
			skip = skip || strncmp(environ[i], own[k], strlen(own[k])) == 0;
		if (!skip)
			envp[kept++] = environ[i];
	}
	return envp;
}

int tokenctl_load_config(const char *cmd, const char *path, struct config **out)
{
	char err[512];
	char **envp = config_environment();
	*out = NULL;
	if (!envp) {
		tokenctl_error(cmd, "out of memory");
		return TOKENCTL_FAIL;
	}
	if (!path && access(TOKENCTL_DEFAULT_CONFIG, R_OK) == 0)
		path = TOKENCTL_DEFAULT_CONFIG;
	*out = config_load(path, envp, err, sizeof(err));
	free(envp);
	if (!*out) {
		tokenctl_error(cmd, "config%s%s: %s", path ? " " : "", path ? path : "", err);
		return TOKENCTL_FAIL;
	}
	return TOKENCTL_OK;
}

/* ---- the admin API's address and token ---- */

/* host:port to the host to connect to (brackets kept for IPv6) and port;
 * wildcard listen addresses become loopback. false when malformed. */
static bool split_address(const char *address, char host[HOST_MAX], unsigned *port)
{
	const char *colon = strrchr(address, ':');
	char *end;
	if (!colon || (size_t)(colon - address) >= HOST_MAX || colon[1] < '0' || colon[1] > '9')
		return false;
	errno = 0;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (errno || *end || p == 0 || p > 65535)
		return false;
	memcpy(host, address, (size_t)(colon - address));
	host[colon - address] = '\0';
	bool bracketed = host[0] == '[' && host[strlen(host) - 1] == ']';
	if (!bracketed && strchr(host, ':'))
		return false; /* an IPv6 address needs brackets */
	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
		snprintf(host, HOST_MAX, "127.0.0.1");
	else if (strcmp(host, "[::]") == 0)
		snprintf(host, HOST_MAX, "[::1]");
	*port = (unsigned)p;
	return true;
}

/* The address to use: --admin, else admin_listen from the config. */
static int resolve_address(const char *cmd, const struct tokenctl_admin_opts *o,
                           struct tokenctl_admin *a)
{
	char host[HOST_MAX];
	unsigned port;
	if (o->admin) {
		if (!split_address(o->admin, host, &port))
			return tokenctl_usage_error(cmd, "--admin: expected HOST:PORT, got '%s'",
			                            o->admin);
		snprintf(a->address, sizeof(a->address), "%s", o->admin);
	} else {
		struct config *cfg;
		int rc = tokenctl_load_config(cmd, o->config, &cfg);
		if (rc != TOKENCTL_OK)
			return rc;
		snprintf(a->address, sizeof(a->address), "%s",
		         cfg->admin_listen[0] ? cfg->admin_listen : TOKENCTL_DEFAULT_ADMIN);
		config_free(cfg);
		if (!split_address(a->address, host, &port)) {
			tokenctl_error(cmd, "admin_listen: expected host:port, got '%s'",
			               a->address);
			return TOKENCTL_FAIL;
		}
	}
	snprintf(a->base, sizeof(a->base), "http://%s:%u", host, port);
	return TOKENCTL_OK;
}

/* A token that can go in a header as it is: no control characters. */
static bool printable(const struct secret *token)
{
	if (token->len == 0)
		return false;
	for (size_t i = 0; i < token->len; i++)
		if (token->data[i] < 0x21 || token->data[i] == 0x7f)
			return false;
	return true;
}

/* The Authorization header from the token file, if one was given. */
static int load_token(const char *cmd, const struct tokenctl_admin_opts *o,
                      struct tokenctl_admin *a)
{
	const char *env = getenv("TOKEND_ADMIN_TOKEN_FILE");
	const char *path = o->token_file ? o->token_file : env && *env ? env : NULL;
	static const char prefix[] = "Authorization: Bearer ";
	struct secret token = {0};
	char err[512];
	if (!path)
		return TOKENCTL_OK;
	if (secret_read_file(path, &token, err, sizeof(err)) < 0) {
		tokenctl_error(cmd, "admin token file: %s", err);
		return TOKENCTL_FAIL;
	}
	if (!printable(&token)) {
		secret_free(&token);
		tokenctl_error(cmd,
		               "admin token file %s: the token must be one line of printable "
		               "characters",
		               path);
		return TOKENCTL_FAIL;
	}
	size_t len = sizeof(prefix) + token.len;
	char *header = malloc(len);
	if (header) {
		snprintf(header, len, "%s%s", prefix, (const char *)token.data);
		a->headers = curl_slist_append(NULL, header);
		OPENSSL_cleanse(header, len);
		free(header);
	}
	secret_free(&token);
	if (!a->headers) {
		tokenctl_error(cmd, "out of memory");
		return TOKENCTL_FAIL;
	}
	return TOKENCTL_OK;
}

int tokenctl_admin_open(const char *cmd, const struct tokenctl_admin_opts *o,
                        struct tokenctl_admin **out)
{
	struct tokenctl_admin *a = calloc(1, sizeof(*a));
	int rc = TOKENCTL_FAIL;
	*out = NULL;
	if (!a) {
		tokenctl_error(cmd, "out of memory");
		return TOKENCTL_FAIL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		tokenctl_error(cmd, "libcurl failed to initialise");
		free(a);
		return TOKENCTL_FAIL;
	}
	rc = resolve_address(cmd, o, a);
	if (rc == TOKENCTL_OK)
		rc = load_token(cmd, o, a);
	if (rc != TOKENCTL_OK) {
		tokenctl_admin_free(a);
		return rc;
	}
	*out = a;
	return TOKENCTL_OK;
}

void tokenctl_admin_free(struct tokenctl_admin *a)
{
	if (!a)
		return;
	for (struct curl_slist *h = a->headers; h; h = h->next)
		OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(a->headers);
	free(a);
	curl_global_cleanup();
}

const char *tokenctl_admin_address(const struct tokenctl_admin *a)
{
	return a->address;
}

/* ---- requests ---- */

void tokenctl_response_clear(struct tokenctl_response *r)
{
	free(r->body);
	*r = (struct tokenctl_response){0};
}

static size_t collect(char *data, size_t size, size_t nmemb, void *arg)
{
	struct tokenctl_response *r = arg;
	size_t len = size * nmemb;
	if (len > RESPONSE_MAX_BYTES - r->len)
		return 0; /* curl reports a write error */
	char *body = realloc(r->body, r->len + len + 1);
	if (!body)
		return 0;
	memcpy(body + r->len, data, len);
	r->len += len;
	body[r->len] = '\0';
	r->body = body;
	return len;
}

static void set_options(CURL *curl, const struct tokenctl_admin *a, const char *method,
                        const char *url, struct tokenctl_response *r, char *errbuf)
{
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "tokenctl/" TOKEND_VERSION);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	if (a->headers)
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, a->headers);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(curl, CURLOPT_POST, 1L);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
	}
}

int tokenctl_admin_request(const char *cmd, const struct tokenctl_admin *a, const char *method,
                           const char *path, struct tokenctl_response *r)
{
	char url[sizeof(a->base) + 512], errbuf[CURL_ERROR_SIZE] = "";
	CURL *curl = curl_easy_init();
	*r = (struct tokenctl_response){0};
	if (!curl) {
		tokenctl_error(cmd, "libcurl: out of memory");
		return -1;
	}
	snprintf(url, sizeof(url), "%s%s", a->base, path);
	set_options(curl, a, method, url, r, errbuf);
	CURLcode rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
	else
		tokenctl_error(cmd, "cannot reach the admin API at %s: %s", a->address,
		               errbuf[0] ? errbuf : curl_easy_strerror(rc));
	curl_easy_cleanup(curl);
	if (rc != CURLE_OK) {
		tokenctl_response_clear(r);
		return -1;
	}
	return 0;
}

json_t *tokenctl_response_json(const char *cmd, const char *what, const struct tokenctl_response *r)
{
	json_error_t err;
	json_t *body = r->body ? json_loadb(r->body, r->len, 0, &err) : NULL;
	if (!body)
		tokenctl_error(cmd, "%s answered HTTP %ld with a body that is not JSON%s%s", what,
		               r->status, r->body ? ": " : "", r->body ? err.text : "");
	return body;
}

void tokenctl_response_error(const struct tokenctl_response *r, char *out, size_t outlen)
{
	json_t *body = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *message =
	    json_string_value(json_object_get(json_object_get(body, "error"), "message"));
	if (message)
		snprintf(out, outlen, "%s", message);
	else
		snprintf(out, outlen, "HTTP %ld", r->status);
	json_decref(body);
}

/* ---- PostgreSQL ---- */

int tokenctl_conninfo(const char *cmd, const char *option, const struct config *cfg, char **out)
{
	const char *url = option ? option : cfg ? cfg->database_url : "";
	*out = NULL;
	if (!url[0])
		return tokenctl_usage_error(cmd, "no database: give --database-url, or "
		                                 "database_url in the config file");
	*out = strdup(url);
	if (!*out) {
		tokenctl_error(cmd, "out of memory");
		return TOKENCTL_FAIL;
	}
	return TOKENCTL_OK;
}

void tokenctl_free_conninfo(char *conninfo)
{
	if (!conninfo)
		return;
	OPENSSL_cleanse(conninfo, strlen(conninfo));
	free(conninfo);
}

PGconn *tokenctl_db_connect(const char *cmd, const char *conninfo)
{
	char appname[64];
	snprintf(appname, sizeof(appname), "tokenctl %s", cmd);
	const char *const keys[] = {"connect_timeout", "dbname", "fallback_application_name", NULL};
	const char *const values[] = {"10", conninfo, appname, NULL};
	PGconn *conn = PQconnectdbParams(keys, values, 1);
	if (PQstatus(conn) == CONNECTION_OK)
		return conn;
	/* libpq's message names host and port, never the password. */
	tokenctl_pq_error(cmd, "cannot connect to PostgreSQL",
	                  conn ? PQerrorMessage(conn) : "out of memory");
	PQfinish(conn);
	return NULL;
}

void tokenctl_pq_error(const char *cmd, const char *what, const char *message)
{
	size_t len = strlen(message);
	while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == ' '))
		len--;
	tokenctl_error(cmd, "%s: %.*s", what, (int)len, message);
}
