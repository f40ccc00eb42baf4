/* log: one line per event to stderr, with sd-daemon priority prefixes
 * ("<3>" ...) that journald turns into priorities. The only global state. */
#ifndef TOKEND_LOG_H
#define TOKEND_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7
};

/* Parse "err", "warning", "notice", "info" or "debug"; -1 when unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);
void log_set_level(enum log_level level);
/* Prefix every line with a wall-clock timestamp (off under journald). */
void log_set_timestamps(bool on);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
/* log_warn appends ": strerror(errno)"; log_warnx does not (OpenBSD's split). */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define log_warnx(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
/* Log at err and exit(1): only before READY or for a broken invariant. */
void log_fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
