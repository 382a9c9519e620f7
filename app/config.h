#ifndef APP_CONFIG_H
#define APP_CONFIG_H

/*
 * Service configuration from the environment.  Parsed once in main before
 * any thread starts, read-only afterwards.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum log_level {
	LOG_DEBUG = 0,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
} log_level;

typedef struct app_config {
	int port;
	char listen_addr[64];
	char env_name[16];
	log_level log_level;
	char aws_region[32];
	char dynamodb_table[256];
	char dynamodb_endpoint[512];
	int dynamodb_connect_timeout_ms;
	int dynamodb_timeout_ms;
	int aws_max_attempts;
	bool xray_enabled;
	bool metrics_enabled;        /* GET /metrics */
	bool metrics_emf;            /* CloudWatch EMF lines on stdout */
	int metrics_emf_interval_seconds;
	char xray_daemon_address[256];   /* host:port, checked by app_xray_new */
	char xray_tracing_name[200];     /* segment name */
	int rate_limit_rps;
	int rate_limit_burst;
	char rate_limit_store[16];   /* memory | redis */
	int rate_limit_max_keys;
	char rate_limit_on_failure[8];   /* allow | deny */
	char redis_url[256];
	int redis_timeout_ms;
	char trusted_proxies[512];
	bool auth_enabled;
	char jwt_jwks_file[256];
	char jwt_jwks_url[512];
	/* Secrets (app/secrets.h): where a value comes from, never the value
	 * itself (JWT_JWKS and REDIS_PASSWORD are read from the environment
	 * when wiring; only their presence is kept here). */
	bool set_jwt_jwks;
	char jwt_jwks_secret_id[648];
	bool set_redis_password;
	char redis_password_file[256];
	char redis_password_secret_id[648];
	bool set_bus_name;
	char eventbridge_bus_name_file[256];
	char eventbridge_bus_name_secret_id[648];
	int secrets_ttl_seconds;
	char secretsmanager_endpoint[512];
	char jwt_issuer[256];
	char jwt_audience[256];
	char jwt_client_id[128];
	char jwt_algorithms[32];
	int jwt_leeway_seconds;
	int jwt_cache_entries;       /* 0: off */
	int jwt_jwks_min_refresh_seconds;
	int jwt_jwks_max_age_seconds;
	int jwt_jwks_timeout_ms;
	char jwt_admin_scope[128];
	bool circuit_breaker_enabled;
	int breaker_failure_rate;
	int breaker_min_calls;
	int breaker_window_seconds;
	int breaker_open_seconds;
	int breaker_half_open_probes;
	bool eventbridge_enabled;
	bool events_relay_enabled;
	int events_backlog_max_mb;
	int events_relay_concurrency;
	int events_max_attempts;     /* refusals for good before an event is parked */
	int events_ack_delay_ms;     /* how long acks may wait (relay) */
	int idempotency_max_records; /* DynamoDB: records kept per user */
	char eventbridge_bus_name[256];
	char eventbridge_endpoint[512];
	char eventbridge_source[128];
	char storage_backend[16];    /* memory | dynamodb */
	char events_publisher[16];   /* log | none | eventbridge */
	int max_item_quantity;
	int max_cart_lines;
	int cart_ttl_days;
	int shutdown_timeout_seconds;
	int shutdown_drain_seconds;
	int http_threads;
	int http_worker_nice;     /* added to each worker thread's nice value */
	bool background_batch;    /* threads other than the workers: SCHED_BATCH */
	int keep_alive_timeout_ms;
	int request_timeout_ms;
	/* Feature flags (app/flags.h): FEATURE_<NAME> pins ("on", "off" or
	 * "" when unset), the flags file and AppConfig. */
	char feature_require_if_match[4];
	char feature_idempotency_required[4];
	char feature_events[4];
	char feature_auth_enforce[4];
	char feature_flags_file[256];
	int feature_flags_reload_seconds;
	char appconfig_application[129];
	char appconfig_environment[129];
	char appconfig_profile[129];
	char appconfig_endpoint[512];
	int appconfig_min_poll_seconds;
	/* Which variables were set explicitly (for "feature not in this build"). */
	bool set_rate_limit;
	bool set_auth;
	bool set_breaker;
	bool set_storage;
	bool set_publisher;
	bool set_ack_delay;
	bool set_relay_concurrency;
	bool set_eventbridge;
} app_config;

/*
 * Reads every variable through getenv_fn (getenv in the service; tests
 * pass their own).  On an invalid value writes one line naming the
 * variable into err and returns -1.
 */
typedef const char *(*config_getenv_fn)(const char *name);
int config_load(app_config *cfg, config_getenv_fn getenv_fn, char *err,
		size_t err_len);

/*
 * Refuses features this build does not provide when they are switched on
 * explicitly (or implied by ENV_NAME); writes the reason into err.
 * Returns -1 to stop the start.  *warn gets a note on configured but
 * unprovided features that were not asked for explicitly ("" if none).
 */
int config_check_features(const app_config *cfg, char *err, size_t err_len,
			  char *warn, size_t warn_len);

/*
 * A variable in envp ("NAME=value" strings) that starts with prefix but is
 * not one of ours, e.g. FEATURE_EVENT=off for FEATURE_EVENTS (a typo
 * would otherwise be ignored): -1 with one line naming it in err.
 */
int config_check_prefix(char *const *envp, const char *prefix, char *err,
			size_t err_len);

/* Prints the --help text: every variable with its default. */
void config_print_help(FILE *out);

/* The effective configuration as JSON object members (no braces). */
size_t config_to_json(const app_config *cfg, char *buf, size_t cap);

const char *log_level_name(log_level l);

#endif
