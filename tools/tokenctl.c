/* tokenctl: subcommand dispatch, the helpers subcommands share, and the two
 * commands that need no database: seal (a token from stdin to a sealed
 * column value) and keygen (a new keyring line). There is no "open": tokens
 * never leave the daemon. */
#include "tools/tokenctl.h"

#include "daemon/seal.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

enum {
	KEY_LEN = 32,
	STDIN_MAX_BYTES = 1 << 20, /* no token comes near; a bigger stdin is a mistake */
};

static const struct tokenctl_command commands[] = {
    {"account", tokenctl_account, "show one account's state in the schedule (never its tokens)"},
    {"events", tokenctl_events, "read the event stream (tail) or check events (check)"},
    {"keygen", tokenctl_keygen, "print a new keyring line with a random key"},
    {"migrate", tokenctl_migrate, "apply the schema migrations the database lacks"},
    {"refresh", tokenctl_refresh, "ask tokend to refresh one account now"},
    {"rekey", tokenctl_rekey, "re-seal stored tokens under the primary key, online"},
    {"schedule", tokenctl_schedule, "show the upcoming actions, earliest first"},
    {"seal", tokenctl_seal, "seal a token read from stdin for one account and column"},
    {"status", tokenctl_status, "show the daemon's health at a glance"},
    /* Keep sorted. */
};

static const char main_usage[] = "Usage: tokenctl [--help | --version] COMMAND [ARGS...]\n"
                                 "\n"
                                 "Operator tool for tokend. Commands:\n";

static const char main_usage_tail[] =
    "\n"
    "Run 'tokenctl COMMAND --help' for a command's options.\n"
    "Exit status: 0 success, 1 operational failure, 2 usage error.\n";

/* ---- shared helpers ---- */

static void vreport(const char *cmd, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vreport(const char *cmd, const char *fmt, va_list ap)
{
	fprintf(stderr, "tokenctl%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void tokenctl_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(cmd, fmt, ap);
	va_end(ap);
}

int tokenctl_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(cmd, fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'tokenctl%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
	return TOKENCTL_USAGE;
}

int tokenctl_load_keyring(const char *cmd, const char *option, struct keyring **out)
{
	char path[4096], err[512];
	const char *env = getenv("TOKEND_KEYRING");
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	*out = NULL;
	if (option && *option) {
		snprintf(path, sizeof(path), "%s", option);
	} else if (env && *env) {
		snprintf(path, sizeof(path), "%s", env);
	} else if (creds && *creds) {
		snprintf(path, sizeof(path), "%s/keyring", creds);
	} else {
		return tokenctl_usage_error(cmd, "no keyring: give --keyring FILE or set "
		                                 "TOKEND_KEYRING or CREDENTIALS_DIRECTORY");
	}
	if (keyring_load(path, out, err, sizeof(err)) < 0) {
		tokenctl_error(cmd, "%s", err);
		return TOKENCTL_FAIL;
	}
	return TOKENCTL_OK;
}

/* The offending argument after getopt_long returned '?' or ':'. */
static int bad_option(const char *cmd, int argc, char **argv, int opt)
{
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
	if (opt == ':')
		return tokenctl_usage_error(cmd, "option '%s' needs a value", arg);
	return tokenctl_usage_error(cmd, "unknown option '%s'", arg);
}

/* Write all of buf to stdout and flush; false (with errno) on failure. */
static bool write_stdout(const char *buf, size_t len)
{
	return fwrite(buf, 1, len, stdout) == len && fflush(stdout) == 0 && !ferror(stdout);
}

/* ---- seal ---- */

static const char seal_usage[] =
    "Usage: tokenctl seal --account UUID --column COLUMN [--keyring FILE]\n"
    "                     [--format hex|base64]\n"
    "\n"
    "Seal a token read from standard input (one trailing newline is dropped)\n"
    "under the keyring's primary key, bound to one account and column, and print\n"
    "the sealed value: PostgreSQL bytea hex ('\\x...') by default, or base64.\n"
    "\n"
    "  --account UUID    platform_accounts.id the value belongs to\n"
    "  --column COLUMN   access_token, refresh_token or app_password\n"
    "  --keyring FILE    keyring file (default: $TOKEND_KEYRING, else\n"
    "                    $CREDENTIALS_DIRECTORY/keyring)\n"
    "  --format FORMAT   hex (default) or base64\n"
    "  -h, --help        show this help\n"
    "\n"
    "Example:\n"
    "  printf %s \"$TOKEN\" | tokenctl seal --account 123e4567-e89b-12d3-a456-426614174000 \\\n"
    "      --column access_token\n";

struct seal_args {
	const char *keyring;
	uint8_t account[SEAL_ACCOUNT_ID_LEN];
	int column;
	bool base64;
	bool help;
};

static int seal_parse_args(int argc, char **argv, struct seal_args *a)
{
	static const struct option opts[] = {
	    {"account", required_argument, NULL, 'a'}, {"column", required_argument, NULL, 'c'},
	    {"keyring", required_argument, NULL, 'k'}, {"format", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	bool have_account = false;
	int opt;
	memset(a, 0, sizeof(*a));
	a->column = -1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			if (!seal_parse_uuid(optarg, a->account))
				return tokenctl_usage_error("seal", "--account: not a uuid: '%s'",
				                            optarg);
			have_account = true;
			break;
		case 'c':
			a->column = seal_column_parse(optarg);
			if (a->column < 0)
				return tokenctl_usage_error("seal",
				                            "--column: expected access_token, "
				                            "refresh_token or app_password");
			break;
		case 'k':
			a->keyring = optarg;
			break;
		case 'f':
			if (strcmp(optarg, "hex") != 0 && strcmp(optarg, "base64") != 0)
				return tokenctl_usage_error("seal",
				                            "--format: expected hex or base64");
			a->base64 = strcmp(optarg, "base64") == 0;
			break;
		case 'h':
			a->help = true;
			return TOKENCTL_OK;
		default:
			return bad_option("seal", argc, argv, opt);
		}
	}
	if (optind < argc)
		return tokenctl_usage_error("seal", "unexpected argument '%s'", argv[optind]);
	if (!have_account || a->column < 0)
		return tokenctl_usage_error("seal", "--account and --column are required");
	return TOKENCTL_OK;
}

/* Grow a malloc'd secret buffer, wiping the old copy. */
static int grow_secret(struct secret *s, size_t *cap)
{
	size_t ncap = *cap ? *cap * 2 : 4096;
	uint8_t *p = malloc(ncap);
	if (!p)
		return -1;
	if (s->data) {
		memcpy(p, s->data, s->len);
		OPENSSL_cleanse(s->data, *cap);
		free(s->data);
	}
	s->data = p;
	*cap = ncap;
	return 0;
}

/* Read all of stdin (at most STDIN_MAX_BYTES bytes) into *s and drop one trailing
 * "\n" or "\r\n". On failure *s is wiped and freed. */
static int read_stdin_secret(struct secret *s)
{
	size_t cap = 0;
	int saved_errno;
	s->data = NULL;
	s->len = 0;
	for (;;) {
		if (s->len == cap && cap >= STDIN_MAX_BYTES) {
			errno = EFBIG;
			goto fail;
		}
		if (s->len == cap && grow_secret(s, &cap) < 0)
			goto fail;
		ssize_t n = read(STDIN_FILENO, s->data + s->len, cap - s->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		s->len += (size_t)n;
	}
	if (s->len > 0 && s->data[s->len - 1] == '\n')
		s->len--;
	if (s->len > 0 && s->data[s->len - 1] == '\r')
		s->len--;
	OPENSSL_cleanse(s->data + s->len, cap - s->len);
	return 0;
fail:
	saved_errno = errno;
	if (s->data)
		OPENSSL_cleanse(s->data, cap);
	free(s->data);
	s->data = NULL;
	s->len = 0;
	errno = saved_errno;
	return -1;
}

/* Print a sealed value as "\x<hex>\n" or "<base64>\n". */
static int print_sealed(const uint8_t *sealed, size_t len, bool base64)
{
	static const char digits[] = "0123456789abcdef";
	size_t cap = base64 ? 4 * ((len + 2) / 3) + 2 : 2 * len + 4;
	char *text = malloc(cap);
	size_t o = 0;
	bool ok;
	if (!text)
		return -1;
	if (base64) {
		o = (size_t)EVP_EncodeBlock((unsigned char *)text, sealed, (int)len);
	} else {
		text[o++] = '\\';
		text[o++] = 'x';
		for (size_t i = 0; i < len; i++) {
			text[o++] = digits[sealed[i] >> 4];
			text[o++] = digits[sealed[i] & 0xf];
		}
	}
	text[o++] = '\n';
	ok = write_stdout(text, o);
	free(text);
	return ok ? 0 : -1;
}

static int seal_run(const struct seal_args *a)
{
	struct keyring *kr = NULL;
	struct secret plain = {0};
	uint8_t *sealed = NULL;
	size_t sealed_len = 0;
	int rc = tokenctl_load_keyring("seal", a->keyring, &kr);
	if (rc != TOKENCTL_OK)
		return rc;
	rc = TOKENCTL_FAIL;
	if (read_stdin_secret(&plain) < 0) {
		tokenctl_error("seal", "reading standard input: %s", strerror(errno));
		goto fail;
	}
	if (plain.len == 0) {
		tokenctl_error("seal", "standard input is empty: nothing to seal");
		goto fail;
	}
	if (seal_value(kr, a->account, (enum seal_column)a->column, plain.data, plain.len, &sealed,
	               &sealed_len) < 0) {
		tokenctl_error("seal", "sealing failed");
		goto fail;
	}
	if (print_sealed(sealed, sealed_len, a->base64) < 0) {
		tokenctl_error("seal", "writing standard output: %s", strerror(errno));
		goto fail;
	}
	rc = TOKENCTL_OK;
fail:
	free(sealed);
	secret_free(&plain);
	keyring_free(kr);
	return rc;
}

int tokenctl_seal(int argc, char **argv)
{
	struct seal_args args;
	int rc = seal_parse_args(argc, argv, &args);
	if (rc != TOKENCTL_OK)
		return rc;
	if (args.help)
		return write_stdout(seal_usage, sizeof(seal_usage) - 1) ? TOKENCTL_OK
		                                                        : TOKENCTL_FAIL;
	return seal_run(&args);
}

/* ---- keygen ---- */

static const char keygen_usage[] =
    "Usage: tokenctl keygen [--id N] [--primary]\n"
    "\n"
    "Print a keyring line '<id> <base64 key>' with a fresh random 256-bit key.\n"
    "Append it to the keyring of every host, then move the 'primary' mark to it\n"
    "(see docs/sealed-format.md, \"Rotating keys\").\n"
    "\n"
    "  --id N       key id, 1 to 4294967295 (default 1); unique in the keyring\n"
    "  --primary    mark the key primary (only for the first key of a keyring)\n"
    "  -h, --help   show this help\n"
    "\n"
    "Example, a new keyring:\n"
    "  (umask 077 && tokenctl keygen --id 1 --primary > keyring)\n";

static bool parse_id(const char *text, uint32_t *id)
{
	char *end;
	if (!text || *text < '0' || *text > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || *end || v == 0 || v > UINT32_MAX)
		return false;
	*id = (uint32_t)v;
	return true;
}

/* Print "<id> <base64 of a fresh key>[ primary]\n"; the key is wiped. */
static int keygen_print(uint32_t id, bool primary)
{
	unsigned char key[KEY_LEN], b64[4 * ((KEY_LEN + 2) / 3) + 1];
	char line[128];
	int rc = TOKENCTL_FAIL;
	if (RAND_priv_bytes(key, sizeof(key)) != 1) {
		tokenctl_error("keygen", "the random generator failed");
		goto fail;
	}
	EVP_EncodeBlock(b64, key, (int)sizeof(key));
	int n = snprintf(line, sizeof(line), "%u %s%s\n", (unsigned)id, (const char *)b64,
	                 primary ? " primary" : "");
	if (!write_stdout(line, (size_t)n)) {
		tokenctl_error("keygen", "writing standard output: %s", strerror(errno));
		goto fail;
	}
	rc = TOKENCTL_OK;
fail:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(b64, sizeof(b64));
	OPENSSL_cleanse(line, sizeof(line));
	return rc;
}

int tokenctl_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"id", required_argument, NULL, 'i'},
	    {"primary", no_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	uint32_t id = 1;
	bool primary = false;
	int opt;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			if (!parse_id(optarg, &id))
				return tokenctl_usage_error("keygen",
				                            "--id: expected 1 to 4294967295");
			break;
		case 'p':
			primary = true;
			break;
		case 'h':
			return write_stdout(keygen_usage, sizeof(keygen_usage) - 1) ? TOKENCTL_OK
			                                                            : TOKENCTL_FAIL;
		default:
			return bad_option("keygen", argc, argv, opt);
		}
	}
	if (optind < argc)
		return tokenctl_usage_error("keygen", "unexpected argument '%s'", argv[optind]);
	return keygen_print(id, primary);
}

/* ---- dispatch ---- */

static int print_main_usage(FILE *out)
{
	fputs(main_usage, out);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs(main_usage_tail, out);
	return fflush(out) == 0 && !ferror(out) ? TOKENCTL_OK : TOKENCTL_FAIL;
}

static const struct tokenctl_command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
	return NULL;
}

/* "tokenctl help [COMMAND]" is "tokenctl COMMAND --help". */
static int help_command(int argc, char **argv)
{
	if (argc < 2)
		return print_main_usage(stdout);
	const struct tokenctl_command *cmd = find_command(argv[1]);
	if (!cmd)
		return tokenctl_usage_error(NULL, "unknown command '%s'", argv[1]);
	char *help_argv[] = {argv[1], "--help", NULL};
	return cmd->fn(2, help_argv);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_main_usage(stderr);
		return TOKENCTL_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
		return print_main_usage(stdout);
	if (strcmp(name, "--version") == 0) {
		printf("tokenctl %s\n", TOKEND_VERSION);
		return fflush(stdout) == 0 ? TOKENCTL_OK : TOKENCTL_FAIL;
	}
	if (strcmp(name, "help") == 0)
		return help_command(argc - 1, argv + 1);
	if (name[0] == '-')
		return tokenctl_usage_error(NULL, "unknown option '%s'", name);
	const struct tokenctl_command *cmd = find_command(name);
	if (!cmd)
		return tokenctl_usage_error(NULL, "unknown command '%s'", name);
	return cmd->fn(argc - 1, argv + 1);
}
