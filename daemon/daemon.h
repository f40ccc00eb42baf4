/* daemon: the state one tokend process carries. No globals but the logger:
 * everything reaches the event base, config and clients through this. */
#ifndef TOKEND_DAEMON_H
#define TOKEND_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon/metrics.h"

struct event_base;
struct config;
struct keyring;
struct sched;
struct store;
struct admin;
struct accounts;
struct refresh;
struct relay;

struct daemon {
	struct event_base *base;
	struct config *cfg; /* current; replaced whole on a good reload */
	const char *config_path;
	struct keyring *keyring;
	struct sched *sched;
	struct store *store; /* LISTEN, loads, row reads and lifecycle writes */
	struct admin *admin;
	struct accounts *accounts;
	struct refresh *refresh; /* the refresh engine: HTTP, journal, limits */
	struct relay *relay;     /* outbox → Redis stream, on its own PostgreSQL session */
	struct metrics metrics;
	int64_t started_ms;
	bool ready;    /* READY=1 sent: the first full load finished */
	bool stopping; /* SIGTERM: draining */
};

#endif
