/* tokenctl: the operator's command line. Each subcommand is one function
 * with main()'s signature; the table in tokenctl.c maps names to them.
 *
 * Adding a subcommand: write tools/<name>.c defining tokenctl_<name>(),
 * declare it below, and add one row to the table in tokenctl.c. The function
 * gets argv[0] = its own name, handles --help itself (usage on stdout, exit 0)
 * and returns one of enum tokenctl_exit. */
#ifndef TOKEND_TOKENCTL_H
#define TOKEND_TOKENCTL_H

struct keyring;

/* Exit codes of tokenctl and of every subcommand. */
enum tokenctl_exit {
	TOKENCTL_OK = 0,    /* done */
	TOKENCTL_FAIL = 1,  /* operational failure: I/O, database, keyring, crypto */
	TOKENCTL_USAGE = 2, /* bad command line */
};

struct tokenctl_command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary; /* one line for `tokenctl --help` */
};

/* Subcommands. seal and keygen live in tokenctl.c; later ones get their own
 * file: migrate, schedule, account, refresh, status, rekey, events. */
int tokenctl_seal(int argc, char **argv);
int tokenctl_keygen(int argc, char **argv);
int tokenctl_events(int argc, char **argv);   /* tools/tokenctl_events.c */
int tokenctl_account(int argc, char **argv);  /* tools/tokenctl_account.c */
int tokenctl_migrate(int argc, char **argv);  /* tools/tokenctl_migrate.c */
int tokenctl_refresh(int argc, char **argv);  /* tools/tokenctl_refresh.c */
int tokenctl_rekey(int argc, char **argv);    /* tools/tokenctl_rekey.c */
int tokenctl_schedule(int argc, char **argv); /* tools/tokenctl_schedule.c */
int tokenctl_status(int argc, char **argv);   /* tools/tokenctl_status.c */

/* Shared helpers. */

/* Print "tokenctl CMD: message" to stderr. */
void tokenctl_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "tokenctl CMD: message" and a pointer to --help; returns TOKENCTL_USAGE. */
int tokenctl_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Load the keyring from option (a --keyring value, may be NULL), else
 * $TOKEND_KEYRING, else $CREDENTIALS_DIRECTORY/keyring. Reports its own
 * errors; returns an enum tokenctl_exit. Caller frees *out with keyring_free(). */
int tokenctl_load_keyring(const char *cmd, const char *option, struct keyring **out)
    __attribute__((warn_unused_result));

#endif
