/* config: tokend's configuration. One sorted table in config.c describes
 * every key (name, type, default, reloadable, secret, help) and drives
 * parsing, environment overrides, --check-config, the printed effective
 * config and docs/configuration.md. File format: "key = value" lines, '#'
 * comments. Environment: TOKEND_<KEY> with '.' as '_', upper case. */
#ifndef TOKEND_CONFIG_H
#define TOKEND_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "daemon/log.h"
#include "platforms/platform.h"

/* One platform's settings: its schedule (defaults from the platform's
 * descriptor) and how tokend reaches it. */
struct platform_settings {
	struct policy_params schedule;
	char *base_url;           /* token endpoint root; default: the platform's own */
	char *client_id;          /* "" = not configured */
	char *client_secret_file; /* "" = $CREDENTIALS_DIRECTORY/<name>_client_secret if present */
	int64_t rate_limit;       /* requests per second to this platform; 0 = no limit */
	int64_t max_inflight;     /* requests in flight to this platform at once */
};

struct config {
	char *database_url;     /* libpq conninfo or URI (secret: may hold a password) */
	char *admin_listen;     /* host:port of the admin HTTP listener */
	char *admin_token_file; /* "" = the admin API needs no bearer token */
	char *keyring_file;     /* "" = $CREDENTIALS_DIRECTORY/keyring */
	char *state_directory;  /* journal lives here */
	char *instance_id;      /* "" = hostname:pid */
	enum log_level log_level;
	bool log_timestamps;
	int64_t load_batch_rows;     /* rows handled per loop turn while loading */
	int64_t sched_batch;         /* due entries handed out per timer firing */
	int64_t max_inflight;        /* actions in flight at once */
	int64_t reconnect_min_ms;    /* backoff after a lost connection, first step */
	int64_t reconnect_max_ms;    /* backoff ceiling */
	int64_t shutdown_timeout_ms; /* SIGTERM: how long to drain in-flight work */
	char *http_ca_file;          /* "" = system CAs */
	int64_t http_connect_timeout_ms;
	int64_t http_timeout_ms;
	int64_t http_max_response_bytes;
	int64_t refresh_lease_ms; /* claim duration; > http_timeout_ms */
	/* Events: the outbox relay (daemon/relay.c). */
	char *redis_url;              /* "" = do not relay (secret: may hold a password) */
	char *events_stream;          /* XADD key */
	char *events_channel;         /* PUBLISH channel; "" = none */
	int64_t events_stream_maxlen; /* MAXLEN ~ cap; 0 = none */
	int64_t relay_batch;          /* outbox rows per batch */
	int64_t outbox_retention_ms;  /* published rows are deleted after this */
	/* Per platform, indexed like the registry. */
	struct platform_settings platform[PLATFORM_MAX];
};

/* Defaults for every key. Caller frees with config_free(). NULL on ENOMEM. */
struct config *config_new(void);
void config_free(struct config *cfg); /* NULL-safe */

/* Parse text into cfg (on top of what it holds). On error, err says which
 * line and key and why; cfg may be partly updated (parse into a fresh one). */
int config_parse(struct config *cfg, const char *text, size_t len, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Apply TOKEND_* environment overrides from envp (NULL-terminated). */
int config_apply_env(struct config *cfg, char *const *envp, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Defaults + file (path may be NULL) + environment, then validate.
 * NULL with err set when anything is wrong. */
struct config *config_load(const char *path, char *const *envp, char *err, size_t errlen);
/* Cross-key checks (ranges, reconnect_min <= reconnect_max, ...). */
int config_validate(const struct config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Effective config as "key = value" lines, secrets shown as "(secret)". */
void config_print(const struct config *cfg, FILE *out);
/* Markdown reference of every key (docs/configuration.md is this output). */
void config_print_reference(FILE *out);
/* Log a warning for each changed key that only takes effect on restart;
 * returns how many. */
int config_warn_restart_keys(const struct config *old_cfg, const struct config *new_cfg);

#endif
