/* tokenctl_client: what the subcommands that talk to tokend share: finding
 * the config file, the admin API's address and bearer token, a blocking
 * HTTP client for the admin API (libcurl easy: blocking is fine in a CLI),
 * and a PostgreSQL connection (blocking libpq, same reason). */
#ifndef TOKEND_TOKENCTL_CLIENT_H
#define TOKEND_TOKENCTL_CLIENT_H

#include <getopt.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct config;
struct tokenctl_admin;

#define TOKENCTL_DEFAULT_CONFIG "/etc/tokend/tokend.conf"
#define TOKENCTL_DEFAULT_ADMIN "127.0.0.1:9180"

/* getopt_long values of the long-only options below; a subcommand's own
 * long-only options start at TOKENCTL_OPT_FIRST_FREE. */
enum {
	TOKENCTL_OPT_ADMIN = 0x100,
	TOKENCTL_OPT_ADMIN_TOKEN_FILE,
	TOKENCTL_OPT_FIRST_FREE,
};

/* The getopt_long rows of the options every admin API subcommand takes;
 * they go with the short options "c:h". */
/* clang-format off */
#define TOKENCTL_ADMIN_OPTIONS                                                          \
	{"config", required_argument, NULL, 'c'},                                       \
	{"admin", required_argument, NULL, TOKENCTL_OPT_ADMIN},                         \
	{"admin-token-file", required_argument, NULL, TOKENCTL_OPT_ADMIN_TOKEN_FILE},   \
	{"help", no_argument, NULL, 'h'}
/* clang-format on */

/* What TOKENCTL_ADMIN_OPTIONS set. Strings borrow argv. */
struct tokenctl_admin_opts {
	const char *config;     /* -c; NULL: the default file when readable */
	const char *admin;      /* --admin; NULL: from the config */
	const char *token_file; /* --admin-token-file; NULL: $TOKEND_ADMIN_TOKEN_FILE */
	bool help;
};

/* Take opt (a getopt_long result) when it is one of TOKENCTL_ADMIN_OPTIONS;
 * false when it is not. */
bool tokenctl_admin_option(struct tokenctl_admin_opts *o, int opt, const char *arg);

/* Report a getopt_long failure (opt '?' or ':'); returns TOKENCTL_USAGE. */
int tokenctl_bad_option(const char *cmd, int argc, char **argv, int opt);

/* Print a subcommand's usage: head, the TOKENCTL_ADMIN_OPTIONS lines, then
 * tail (may be NULL). Returns an enum tokenctl_exit. */
int tokenctl_admin_usage(const char *cmd, const char *head, const char *tail)
    __attribute__((warn_unused_result));

/* Print text (len bytes) to stdout and flush; returns an enum tokenctl_exit
 * (TOKENCTL_FAIL after reporting a write error). */
int tokenctl_print(const char *cmd, const char *text, size_t len)
    __attribute__((warn_unused_result));

/* Load tokend's config: path must load when given; NULL means the default
 * file when it is readable, else defaults. TOKEND_* environment overrides
 * apply as in the daemon. Reports its own errors; returns an enum
 * tokenctl_exit. Caller frees *out with config_free(). */
int tokenctl_load_config(const char *cmd, const char *path, struct config **out)
    __attribute__((warn_unused_result));

/* The admin API target from o: --admin, else admin_listen from the config,
 * else TOKENCTL_DEFAULT_ADMIN; a wildcard listen address (0.0.0.0, [::])
 * is reached on loopback. Reads the bearer token file now. Reports its own
 * errors; returns an enum tokenctl_exit. Caller frees *out with
 * tokenctl_admin_free(), which wipes the token. */
int tokenctl_admin_open(const char *cmd, const struct tokenctl_admin_opts *o,
                        struct tokenctl_admin **out) __attribute__((warn_unused_result));
void tokenctl_admin_free(struct tokenctl_admin *a); /* NULL-safe */
/* "host:port" as given or configured, for messages. Borrowed from a. */
const char *tokenctl_admin_address(const struct tokenctl_admin *a);

/* An admin API response. Caller frees body with tokenctl_response_clear(). */
struct tokenctl_response {
	long status;
	char *body; /* NUL-terminated */
	size_t len;
};
void tokenctl_response_clear(struct tokenctl_response *r);

/* method ("GET" or "POST") on path (e.g. "/readyz") of the admin API. 0 with
 * *r filled, whatever the HTTP status; -1 after reporting "cannot reach the
 * admin API at ADDR: <curl's words>". */
int tokenctl_admin_request(const char *cmd, const struct tokenctl_admin *a, const char *method,
                           const char *path, struct tokenctl_response *r)
    __attribute__((warn_unused_result));

/* The body of r as JSON; NULL after reporting that what (e.g. "/readyz")
 * answered something else. Caller decrefs. */
json_t *tokenctl_response_json(const char *cmd, const char *what,
                               const struct tokenctl_response *r);

/* The message of an admin API error body ({"error": {"message": ...}}), else
 * "HTTP <status>", into out. */
void tokenctl_response_error(const struct tokenctl_response *r, char *out, size_t outlen);

/* "4m59s", "-12s", "3d4h", "0s": a signed duration for people. */
void tokenctl_format_duration(double seconds, char *out, size_t outlen);

/* The database URL: option (--database-url) when given, else database_url
 * from cfg (may be NULL). Reports its own errors; returns an enum
 * tokenctl_exit. Caller frees *out with tokenctl_free_conninfo(), which
 * wipes it (it may hold a password). */
int tokenctl_conninfo(const char *cmd, const char *option, const struct config *cfg, char **out)
    __attribute__((warn_unused_result));
void tokenctl_free_conninfo(char *conninfo); /* NULL-safe */

/* Connect to PostgreSQL (blocking), application_name "tokenctl CMD". NULL
 * after reporting libpq's words. Caller closes with PQfinish(). */
PGconn *tokenctl_db_connect(const char *cmd, const char *conninfo);
/* Report "tokenctl CMD: what: message" with libpq's message (which ends in
 * a newline) trimmed. */
void tokenctl_pq_error(const char *cmd, const char *what, const char *message);

#endif
