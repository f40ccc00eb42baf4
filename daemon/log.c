/* log: stderr lines with journald priority prefixes. */
#include "daemon/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum log_level max_level = LOG_LEVEL_INFO;
static bool with_timestamps;

static const char *const level_names[] = {
    [LOG_LEVEL_ERR] = "err",   [LOG_LEVEL_WARNING] = "warning", [LOG_LEVEL_NOTICE] = "notice",
    [LOG_LEVEL_INFO] = "info", [LOG_LEVEL_DEBUG] = "debug",
};

int log_level_parse(const char *name)
{
	for (int i = LOG_LEVEL_ERR; i <= LOG_LEVEL_DEBUG; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return level_names[level];
}

void log_set_level(enum log_level level)
{
	max_level = level;
}

void log_set_timestamps(bool on)
{
	with_timestamps = on;
}

__attribute__((format(printf, 3, 0))) static void vlog(enum log_level level, const char *suffix,
                                                       const char *fmt, va_list ap)
{
	char line[2048];
	int off = snprintf(line, sizeof(line), "<%d>", (int)level);
	if (with_timestamps) {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		off +=
		    (int)strftime(line + off, sizeof(line) - (size_t)off, "%Y-%m-%dT%H:%M:%S", &tm);
		off += snprintf(line + off, sizeof(line) - (size_t)off, ".%03ldZ ",
		                ts.tv_nsec / 1000000);
	}
	int n = vsnprintf(line + off, sizeof(line) - (size_t)off, fmt, ap);
	if (n > 0)
		off = off + n < (int)sizeof(line) ? off + n : (int)sizeof(line) - 1;
	/* One write per line keeps lines whole when several processes share stderr. */
	fprintf(stderr, "%s%s\n", line, suffix ? suffix : "");
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > max_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(level, NULL, fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	char suffix[256];
	snprintf(suffix, sizeof(suffix), ": %s", strerror(errno));
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LEVEL_WARNING, suffix, fmt, ap);
	va_end(ap);
}

void log_fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
