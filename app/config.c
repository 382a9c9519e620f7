/*
 * Configuration from the environment.  One table lists every variable
 * with its default, type, range and help, so parsing, --help and the
 * start-up log cannot drift apart.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cart/relay.h"
#include "config.h"
#include "secrets.h"

/* V_SECRET: a secret's value given inline; only its presence is kept
 * (app/secrets.c reads it when wiring), the start line shows "***".
 * V_ADDR: a literal IPv4 address (inet_pton); no names, no IPv6 (below). */
typedef enum var_kind { V_INT, V_BOOL, V_STR, V_ENUM, V_LEVEL, V_SECRET, V_ADDR } var_kind;

typedef struct var {
	const char *name;
	const char *def;           /* NULL: computed (see help) */
	var_kind kind;
	size_t offset;             /* into app_config */
	size_t size;               /* V_STR/V_ENUM: buffer size */
	long min, max;             /* V_INT range; V_STR min length */
	const char *choices;       /* V_ENUM: "a|b|c"; V_STR: allowed chars */
	size_t set_offset;         /* bool "set explicitly" flag, or 0 */
	const char *help;
} var;

#define F(field) offsetof(app_config, field), sizeof(((app_config *)0)->field)
#define SET(field) offsetof(app_config, field)
#define NOSET 0
/* A numeric macro as the string of its value (defaults shared with lib/). */
#define STR_(x) #x
#define STR(x) STR_(x)

#define ID_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
/* RFC 3986 characters minus quotes and backslashes: safe to log as is. */
#define URL_CHARS ID_CHARS "-._~:/?#[]@!$&()*+,;=%"
#define PATH_CHARS ID_CHARS "-._/"
/* A Secrets Manager name or ARN, then optionally #key (app/secrets.h). */
#define SECRET_ID_CHARS ID_CHARS "/_+=.@-:#"
/* A secret-capable variable X also reads X_FILE and X_SECRET_ID. */
static const var vars[] = {
	{ "APP_PORT", "8080", V_INT, F(port), 1, 65535, NULL, NOSET,
	  "HTTP port (plain HTTP; TLS ends at the load balancer)" },
	{ "LISTEN_ADDR", "0.0.0.0", V_ADDR, F(listen_addr), 0, 0, NULL, NOSET,
	  "IPv4 address to bind, dotted decimal (0.0.0.0: every interface; no host names, no IPv6)" },
	{ "ENV_NAME", "dev", V_ENUM, F(env_name), 0, 0, "dev|test|staging|prod", NOSET,
	  "dev uses the memory store and log events; staging/prod default to DynamoDB and EventBridge" },
	{ "LOG_LEVEL", "info", V_LEVEL, offsetof(app_config, log_level), 0, 0, 0,
	  "debug|info|warn|error", NOSET, "lowest level written to stdout" },
	{ "AWS_REGION", "us-east-1", V_STR, F(aws_region), 1, 0, ID_CHARS "-", NOSET,
	  "AWS region" },
	{ "DYNAMODB_TABLE", "cart-service-carts", V_STR, F(dynamodb_table), 3, 0, ID_CHARS "-_.", NOSET,
	  "DynamoDB table name" },
	{ "DYNAMODB_ENDPOINT", "", V_STR, F(dynamodb_endpoint), 0, 0, NULL, NOSET,
	  "DynamoDB endpoint URL (default: the regional AWS endpoint)" },
	{ "DYNAMODB_CONNECT_TIMEOUT_MS", "1000", V_INT, F(dynamodb_connect_timeout_ms), 10, 60000, NULL, NOSET,
	  "DynamoDB TCP connect timeout per attempt" },
	{ "DYNAMODB_TIMEOUT_MS", "3000", V_INT, F(dynamodb_timeout_ms), 10, 120000, NULL, NOSET,
	  "DynamoDB whole-request timeout per attempt" },
	{ "AWS_MAX_ATTEMPTS", "3", V_INT, F(aws_max_attempts), 1, 10, NULL, NOSET,
	  "attempts per AWS call (standard retry mode: backoff with full jitter, retry quota)" },
	{ "AWS_XRAY_ENABLED", "false", V_BOOL, F(xray_enabled), 0, 0, NULL, NOSET,
	  "send X-Ray segments of sampled requests to the X-Ray daemon (UDP)" },
	{ "AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:2000", V_STR, F(xray_daemon_address), 3, 0,
	  ID_CHARS "-.:", NOSET, "X-Ray daemon host:port (UDP), resolved once at start" },
	{ "AWS_XRAY_TRACING_NAME", "cart-service", V_STR, F(xray_tracing_name), 1, 0,
	  ID_CHARS "-_.:/ ", NOSET, "name of the X-Ray segments (the service in the trace map)" },
	{ "METRICS_ENABLED", "true", V_BOOL, F(metrics_enabled), 0, 0, NULL, NOSET,
	  "serve GET /metrics (Prometheus text; no token, not rate-limited: keep it off the public load balancer)" },
	{ "METRICS_EMF", "false", V_BOOL, F(metrics_emf), 0, 0, NULL, NOSET,
	  "also write the metrics as CloudWatch Embedded Metric Format lines on stdout" },
	{ "METRICS_EMF_INTERVAL_SECONDS", "60", V_INT, F(metrics_emf_interval_seconds), 1, 3600, NULL, NOSET,
	  "seconds between two EMF emissions (and one at shutdown)" },
	{ "RATE_LIMIT_RPS", "100", V_INT, F(rate_limit_rps), 0, 1000000, NULL, SET(set_rate_limit),
	  "requests per second per caller (token sub, else client IP) on /v1 routes; 0 disables" },
	{ "RATE_LIMIT_BURST", "0", V_INT, F(rate_limit_burst), 0, 10000000, NULL, NOSET,
	  "requests a caller may send at once (0: 2 x RATE_LIMIT_RPS)" },
	{ "RATE_LIMIT_STORE", "memory", V_ENUM, F(rate_limit_store), 0, 0, "memory|redis", NOSET,
	  "memory (per process) or redis (one limit across every task, REDIS_URL)" },
	{ "RATE_LIMIT_MAX_KEYS", "100000", V_INT, F(rate_limit_max_keys), 64, 100000000, NULL, NOSET,
	  "memory store: most callers tracked at once (least constrained evicted first)" },
	{ "RATE_LIMIT_ON_STORE_FAILURE", "allow", V_ENUM, F(rate_limit_on_failure), 0, 0, "allow|deny", NOSET,
	  "redis store: when Redis is down or slow, allow (and count) or deny (503 with Retry-After)" },
	{ "REDIS_URL", "", V_STR, F(redis_url), 0, 0, URL_CHARS, NOSET,
	  "redis://[[user]:password@]host[:port][/db] for RATE_LIMIT_STORE=redis" },
	{ "REDIS_PASSWORD", "", V_SECRET, F(set_redis_password), 0, APP_SECRET_MAX_INLINE, NULL, NOSET,
	  "Redis AUTH password (secret; or REDIS_PASSWORD_FILE, REDIS_PASSWORD_SECRET_ID, or in REDIS_URL)" },
	{ "REDIS_PASSWORD_FILE", "", V_STR, F(redis_password_file), 0, 0, PATH_CHARS, NOSET,
	  "file holding the Redis password (re-read in the background, README Secrets)" },
	{ "REDIS_PASSWORD_SECRET_ID", "", V_STR, F(redis_password_secret_id), 0, 0, SECRET_ID_CHARS, NOSET,
	  "Secrets Manager secret (name or ARN, #key for a JSON member) holding the Redis password" },
	{ "REDIS_TIMEOUT_MS", "5", V_INT, F(redis_timeout_ms), 1, 10000, NULL, NOSET,
	  "redis store: per-request command timeout (connect: 10x, at least 50)" },
	{ "TRUSTED_PROXIES", "", V_STR, F(trusted_proxies), 0, 0, "0123456789./, ", NOSET,
	  "comma-separated IPv4 CIDRs whose X-Forwarded-For is believed (the load balancer's subnets)" },
	{ "AUTH_ENABLED", NULL, V_BOOL, F(auth_enabled), 0, 0, NULL, SET(set_auth),
	  "require a JWT bearer token on /v1 routes (default: false in dev/test, true otherwise)" },
	{ "JWT_JWKS", "", V_SECRET, F(set_jwt_jwks), 0, APP_SECRET_MAX_INLINE, NULL, NOSET,
	  "the JWKS document itself (secret; or JWT_JWKS_FILE, JWT_JWKS_SECRET_ID, JWT_JWKS_URL)" },
	{ "JWT_JWKS_FILE", "", V_STR, F(jwt_jwks_file), 0, 0, PATH_CHARS, NOSET,
	  "JWKS document with the token signing keys (re-read when it changed, on an unknown kid or JWT_JWKS_MAX_AGE_SECONDS)" },
	{ "JWT_JWKS_SECRET_ID", "", V_STR, F(jwt_jwks_secret_id), 0, 0, SECRET_ID_CHARS, NOSET,
	  "Secrets Manager secret (name or ARN, #key for a JSON member) holding the JWKS document" },
	{ "JWT_JWKS_URL", "", V_STR, F(jwt_jwks_url), 0, 0, URL_CHARS, NOSET,
	  "https URL of the JWKS, e.g. https://cognito-idp.<region>.amazonaws.com/<pool>/.well-known/jwks.json" },
	{ "JWT_ISSUER", "", V_STR, F(jwt_issuer), 0, 0, URL_CHARS, NOSET,
	  "required iss, e.g. https://cognito-idp.<region>.amazonaws.com/<pool>" },
	{ "JWT_AUDIENCE", "", V_STR, F(jwt_audience), 0, 0, URL_CHARS, NOSET,
	  "required aud (string or array member); or JWT_CLIENT_ID" },
	{ "JWT_CLIENT_ID", "", V_STR, F(jwt_client_id), 0, 0, ID_CHARS "-._", NOSET,
	  "Cognito app client id: access tokens without aud carry client_id instead" },
	{ "JWT_ALGORITHMS", "RS256,ES256", V_STR, F(jwt_algorithms), 1, 0, "RSE256, ", NOSET,
	  "accepted signature algorithms: RS256, ES256 or both (none and HMAC are always refused)" },
	{ "JWT_LEEWAY_SECONDS", "30", V_INT, F(jwt_leeway_seconds), 0, 60, NULL, NOSET,
	  "clock skew allowed for exp, nbf and iat" },
	{ "JWT_JWKS_MIN_REFRESH_SECONDS", "30", V_INT, F(jwt_jwks_min_refresh_seconds), 1, 86400, NULL, NOSET,
	  "an unknown kid refetches the JWKS at most once per this (key rotation without restart)" },
	{ "JWT_JWKS_MAX_AGE_SECONDS", "3600", V_INT, F(jwt_jwks_max_age_seconds), 0, 604800, NULL, NOSET,
	  "keys older than this are refetched (0: only on an unknown kid)" },
	{ "JWT_JWKS_TIMEOUT_MS", "2000", V_INT, F(jwt_jwks_timeout_ms), 1, 60000, NULL, NOSET,
	  "JWKS fetch timeout" },
	{ "JWT_CACHE_ENTRIES", "32768", V_INT, F(jwt_cache_entries), 0, 1048576, NULL, NOSET,
	  "verified tokens remembered (136 bytes each, allocated at start; 0: verify every token); size it to the distinct tokens a task sees within their lifetime" },
	{ "JWT_ADMIN_SCOPE", "cart:admin", V_STR, F(jwt_admin_scope), 1, 0, ID_CHARS "-._:/", NOSET,
	  "a token whose scope or cognito:groups holds this may act on every cart" },
	{ "CIRCUIT_BREAKER_ENABLED", "true", V_BOOL, F(circuit_breaker_enabled), 0, 0, NULL, SET(set_breaker),
	  "circuit breaker around remote dependencies" },
	{ "CIRCUIT_BREAKER_FAILURE_RATE", "50", V_INT, F(breaker_failure_rate), 1, 100, NULL, NOSET,
	  "percent of failed calls in the window that opens the breaker" },
	{ "CIRCUIT_BREAKER_MIN_CALLS", "20", V_INT, F(breaker_min_calls), 1, 100000, NULL, NOSET,
	  "calls the window must hold before the rate counts" },
	{ "CIRCUIT_BREAKER_WINDOW_SECONDS", "10", V_INT, F(breaker_window_seconds), 1, 3600, NULL, NOSET,
	  "sliding window of outcomes" },
	{ "CIRCUIT_BREAKER_OPEN_SECONDS", "5", V_INT, F(breaker_open_seconds), 1, 3600, NULL, NOSET,
	  "how long an open breaker refuses calls (503 with Retry-After)" },
	{ "CIRCUIT_BREAKER_HALF_OPEN_PROBES", "3", V_INT, F(breaker_half_open_probes), 1, 1000, NULL, NOSET,
	  "trial calls in half-open; all must succeed to close" },
	{ "EVENTBRIDGE_ENABLED", "true", V_BOOL, F(eventbridge_enabled), 0, 0, NULL, SET(set_eventbridge),
	  "publish events to EventBridge outside ENV_NAME=dev" },
	{ "EVENTBRIDGE_ENDPOINT", "", V_STR, F(eventbridge_endpoint), 0, 0, NULL, NOSET,
	  "EventBridge endpoint URL (default: AWS_ENDPOINT_URL_EVENTBRIDGE, AWS_ENDPOINT_URL, the region's)" },
	{ "EVENTBRIDGE_SOURCE", "cart-service", V_STR, F(eventbridge_source), 1, 0, ID_CHARS "-_./:", NOSET,
	  "Source of the EventBridge entries" },
	{ "EVENTS_BACKLOG_MAX_MB", "64", V_INT, F(events_backlog_max_mb), 1, 65536, NULL, NOSET,
	  "memory store: events waiting for the relay, all carts together (past a quarter of it writes wait up to 500 ms for a draining relay; at the bound, and at 100 for one cart, writes get 503 cart.events_backlog)" },
	{ "EVENTS_RELAY_ENABLED", "true", V_BOOL, F(events_relay_enabled), 0, 0, NULL, NOSET,
	  "publish the event outbox from this process (false: another task relays)" },
	{ "EVENTS_RELAY_CONCURRENCY", NULL, V_INT, F(events_relay_concurrency), 1, 256, NULL, SET(set_relay_concurrency),
	  "event publisher calls in flight at once (each carries up to 10 events of several carts; default: " STR(CART_RELAY_CONCURRENCY_DEFAULT) " for eventbridge, 1 for log and none, which never wait on a network)" },
	{ "EVENTS_MAX_ATTEMPTS", "5", V_INT, F(events_max_attempts), 1, 100, NULL, NOSET,
	  "relay passes in a row the bus may refuse an event for good (malformed, invalid; not a missing bus or permission) before it is parked in the store's dead-letter list" },
	{ "EVENTS_ACK_DELAY_MS", NULL, V_INT, F(events_ack_delay_ms), 0, 10000, NULL, SET(set_ack_delay),
	  "how long the relay may hold the acks of a cart's published events to remove several from the outbox in one write (default: 1000 on dynamodb, 0 on memory; delivery is not delayed)" },
	{ "IDEMPOTENCY_MAX_RECORDS", "256", V_INT, F(idempotency_max_records), 8, 100000, NULL, NOSET,
	  "DynamoDB store: idempotency records kept per user; at the bound the oldest are swept to 3/4 of it (the memory store keeps 256 and 1 MiB per user)" },
	{ "EVENTBRIDGE_BUS_NAME", "default", V_STR, F(eventbridge_bus_name), 1, 0, ID_CHARS "-_./:", SET(set_bus_name),
	  "EventBridge bus name or ARN (secret-capable: or EVENTBRIDGE_BUS_NAME_FILE, EVENTBRIDGE_BUS_NAME_SECRET_ID)" },
	{ "EVENTBRIDGE_BUS_NAME_FILE", "", V_STR, F(eventbridge_bus_name_file), 0, 0, PATH_CHARS, NOSET,
	  "file holding the bus name or ARN (re-read in the background, README Secrets)" },
	{ "EVENTBRIDGE_BUS_NAME_SECRET_ID", "", V_STR, F(eventbridge_bus_name_secret_id), 0, 0, SECRET_ID_CHARS, NOSET,
	  "Secrets Manager secret (name or ARN, #key for a JSON member) holding the bus name or ARN" },
	{ "SECRETS_TTL_SECONDS", "300", V_INT, F(secrets_ttl_seconds), 1, 86400, NULL, NOSET,
	  "a secret from a _FILE or _SECRET_ID is re-read after 3/4 of this (a failed read keeps the last value, retried from 1 s to 60 s)" },
	{ "SECRETSMANAGER_ENDPOINT", "", V_STR, F(secretsmanager_endpoint), 0, 0, NULL, NOSET,
	  "Secrets Manager endpoint URL (default: AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL, the region's)" },
	{ "STORAGE_BACKEND", NULL, V_ENUM, F(storage_backend), 0, 0, "memory|dynamodb", SET(set_storage),
	  "memory|dynamodb (default: memory in dev, dynamodb otherwise)" },
	{ "EVENTS_PUBLISHER", NULL, V_ENUM, F(events_publisher), 0, 0, "log|none|eventbridge", SET(set_publisher),
	  "log|none|eventbridge (default: log in dev, else eventbridge if EVENTBRIDGE_ENABLED, else none)" },
	{ "MAX_ITEM_QUANTITY", "999", V_INT, F(max_item_quantity), 1, 1000000, NULL, NOSET,
	  "largest quantity of one line" },
	{ "MAX_CART_LINES", "100", V_INT, F(max_cart_lines), 1, 1000, NULL, NOSET,
	  "most distinct items in one cart" },
	{ "CART_TTL_DAYS", "30", V_INT, F(cart_ttl_days), 1, 3650, NULL, NOSET,
	  "a cart expires this many days after its last change" },
	{ "SHUTDOWN_TIMEOUT_SECONDS", "25", V_INT, F(shutdown_timeout_seconds), 1, 3600, NULL, NOSET,
	  "on SIGTERM, in-flight requests get this long to finish" },
	{ "SHUTDOWN_DRAIN_SECONDS", "0", V_INT, F(shutdown_drain_seconds), 0, 600, NULL, NOSET,
	  "on SIGTERM, keep serving with /ready at 503 this long before closing the listener" },
	{ "HTTP_THREADS", "1024", V_INT, F(http_threads), 2, 8192, NULL, NOSET,
	  "worker threads (100 KiB stacks, civetweb's own); each open connection holds one, so this is the most open connections served at once" },
	{ "HTTP_WORKER_NICE", "5", V_INT, F(http_worker_nice), 0, 19, NULL, NOSET,
	  "worker threads run this much nicer than the process's own threads (the event relay, the log writer), so a saturated CPU still gives those the share they need to keep up" },
	{ "BACKGROUND_SCHED_BATCH", "true", V_BOOL, F(background_batch), 0, 0, NULL, NOSET,
	  "the threads other than the request workers (event relay and its pool, log writer, watchdog, refreshers) run under SCHED_BATCH: the same CPU share, but waking up they wait for the running worker to block instead of preempting it, so they cannot suspend a worker that holds a lock the others need" },
	{ "KEEP_ALIVE_TIMEOUT_MS", "5000", V_INT, F(keep_alive_timeout_ms), 0, 600000, NULL, NOSET,
	  "idle keep-alive connections are closed after this long" },
	{ "REQUEST_TIMEOUT_MS", "10000", V_INT, F(request_timeout_ms), 100, 120000, NULL, NOSET,
	  "a client must send the request line and headers within this, and then the body within this (else 408 and close)" },
	/* Feature flags (app/flags.h, docs/adr/0015-feature-flags.md). */
	{ "FEATURE_REQUIRE_IF_MATCH", NULL, V_ENUM, F(feature_require_if_match), 0, 0, "on|off", NOSET,
	  "on|off pins the flag (default off): changes without If-Match get 428 cart.if_match_required" },
	{ "FEATURE_IDEMPOTENCY_REQUIRED", NULL, V_ENUM, F(feature_idempotency_required), 0, 0, "on|off", NOSET,
	  "on|off pins the flag (default off): changes without Idempotency-Key get 428 cart.idempotency_key_required" },
	{ "FEATURE_EVENTS", NULL, V_ENUM, F(feature_events), 0, 0, "on|off", NOSET,
	  "on|off pins the flag (default on): off holds publishing, the outbox keeps recording" },
	{ "FEATURE_AUTH_ENFORCE", NULL, V_ENUM, F(feature_auth_enforce), 0, 0, "on|off", NOSET,
	  "on|off pins the flag (default on; with AUTH_ENABLED): off lets requests with no or a bad token through, logged at warn and counted" },
	{ "FEATURE_FLAGS_FILE", "", V_STR, F(feature_flags_file), 0, 0, ID_CHARS "-._/", NOSET,
	  "JSON file of flags ({\"events\": false, ...}, at most 64 KiB), read at start (invalid: exit 2), on SIGHUP and when it changes" },
	{ "FEATURE_FLAGS_RELOAD_SECONDS", "30", V_INT, F(feature_flags_reload_seconds), 1, 3600, NULL, NOSET,
	  "how often FEATURE_FLAGS_FILE is checked for a change" },
	{ "FEATURE_FLAGS_APPCONFIG_APPLICATION", "", V_STR, F(appconfig_application), 0, 0, ID_CHARS "-._", NOSET,
	  "AWS AppConfig application (name or id) of the flags; with _ENVIRONMENT and _PROFILE turns the AppConfig source on" },
	{ "FEATURE_FLAGS_APPCONFIG_ENVIRONMENT", "", V_STR, F(appconfig_environment), 0, 0, ID_CHARS "-._", NOSET,
	  "AWS AppConfig environment (name or id)" },
	{ "FEATURE_FLAGS_APPCONFIG_PROFILE", "", V_STR, F(appconfig_profile), 0, 0, ID_CHARS "-._", NOSET,
	  "AWS AppConfig configuration profile (name or id): a feature-flags or freeform JSON profile" },
	{ "FEATURE_FLAGS_APPCONFIG_ENDPOINT", "", V_STR, F(appconfig_endpoint), 0, 0, NULL, NOSET,
	  "AppConfig data endpoint URL (default: AWS_ENDPOINT_URL_APPCONFIGDATA, AWS_ENDPOINT_URL, the region's appconfigdata)" },
	{ "FEATURE_FLAGS_APPCONFIG_MIN_POLL_SECONDS", "15", V_INT, F(appconfig_min_poll_seconds), 1, 86400, NULL, NOSET,
	  "shortest wait between two AppConfig polls, whatever NextPollIntervalInSeconds says (also the session's RequiredMinimumPollIntervalInSeconds, at least 15)" },
};
#define N_VARS (sizeof(vars) / sizeof(vars[0]))

const char *log_level_name(log_level l)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	return (unsigned)l < 4 ? names[l] : "info";
}

static bool in_choices(const char *choices, const char *v)
{
	size_t len = strlen(v);
	const char *p = choices;

	while (len && p && *p) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);
		if (n == len && strncmp(p, v, n) == 0)
			return true;
		p = bar ? bar + 1 : NULL;
	}
	return false;
}

/* A decimal integer, optionally negative: no spaces, no '+', no hex. */
static bool parse_int(const char *val, long *out)
{
	const char *d = val + (*val == '-');
	char *end;

	if (*d < '0' || *d > '9')
		return false;
	errno = 0;
	*out = strtol(val, &end, 10);
	return !errno && !*end;
}

/*
 * LISTEN_ADDR: what inet_pton(AF_INET) accepts (four decimal parts of
 * 0-255, no leading zeros).  civetweb binds literal addresses only, and
 * Debian's build has no IPv6 (mg_check_feature(8) is 0).
 */
static const char *check_addr(const char *val)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, val, &a4) == 1)
		return NULL;
	if (inet_pton(AF_INET6, val, &a6) == 1)
		return "an IPv4 address: this build's HTTP server (Debian's civetweb) has no IPv6";
	return "an IPv4 address in dotted decimal, e.g. 0.0.0.0 or 127.0.0.1 (no host names)";
}

/* Writes what v accepts into why ("" if the help text says it best). */
static void expected(const var *v, char *why, size_t cap)
{
	switch (v->kind) {
	case V_INT:
		snprintf(why, cap, "an integer from %ld to %ld", v->min, v->max);
		return;
	case V_BOOL:
		snprintf(why, cap, "true or false (or 1 or 0)");
		return;
	case V_ENUM:
	case V_LEVEL: {
		size_t n = (size_t)snprintf(why, cap, "one of ");
		for (const char *c = v->choices; *c && n + 2 < cap; c++)
			n += (size_t)snprintf(why + n, cap - n, *c == '|' ? ", " : "%c", *c);
		return;
	}
	default:
		snprintf(why, cap, "%s", v->help);
	}
}

/* 0, or -1 with the reason in why. */
static int parse_one(app_config *cfg, const var *v, const char *val,
		     char *why, size_t why_len)
{
	char *base = (char *)cfg + v->offset;
	const char *bad;
	long n;

	switch (v->kind) {
	case V_INT:
		if (!parse_int(val, &n) || n < v->min || n > v->max)
			goto invalid;
		*(int *)base = (int)n;
		return 0;
	case V_BOOL:
		if (!strcasecmp(val, "true") || !strcmp(val, "1"))
			*(bool *)base = true;
		else if (!strcasecmp(val, "false") || !strcmp(val, "0"))
			*(bool *)base = false;
		else
			goto invalid;
		return 0;
	case V_LEVEL:
		for (int l = LOG_DEBUG; l <= LOG_ERROR; l++)
			if (!strcasecmp(val, log_level_name((log_level)l))) {
				*(log_level *)base = (log_level)l;
				return 0;
			}
		goto invalid;
	case V_ENUM:
		if (!in_choices(v->choices, val))
			goto invalid;
		break;
	case V_ADDR:
		if ((bad = check_addr(val))) {
			snprintf(why, why_len, "%s", bad);
			return -1;
		}
		break;
	case V_SECRET:
		/* Bounded, and never copied: app/secrets.c reads it again. */
		if (strlen(val) > (size_t)v->max) {
			snprintf(why, why_len, "at most %ld bytes", v->max);
			return -1;
		}
		*(bool *)base = *val != '\0';
		return 0;
	case V_STR:
		if (strlen(val) < (size_t)v->min ||
		    (v->choices && strspn(val, v->choices) != strlen(val)))
			goto invalid;
		break;
	}
	if (strlen(val) >= v->size) {
		snprintf(why, why_len, "at most %zu characters", v->size - 1);
		return -1;
	}
	strcpy(base, val);
	return 0;
invalid:
	expected(v, why, why_len);
	return -1;
}

static int check_endpoint(const char *url)
{
	if (!*url)
		return 0;
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return -1;
	for (; *url; url++)   /* no quotes, spaces or controls: it is logged */
		if ((unsigned char)*url <= ' ' || *url == '"' || *url == '\\' ||
		    *url == 0x7f)
			return -1;
	return 0;
}

#define ENDPOINT_EXPECTED "an http:// or https:// URL without spaces or quotes"

static bool is_endpoint(const var *v)
{
	return v->offset == offsetof(app_config, dynamodb_endpoint) ||
	       v->offset == offsetof(app_config, eventbridge_endpoint) ||
	       v->offset == offsetof(app_config, secretsmanager_endpoint) ||
	       v->offset == offsetof(app_config, appconfig_endpoint);
}

/* The dev rule: memory and log events unless told otherwise. */
static void apply_env_defaults(app_config *cfg)
{
	bool dev = !strcmp(cfg->env_name, "dev") || !strcmp(cfg->env_name, "test");

	if (!cfg->set_storage)
		strcpy(cfg->storage_backend, dev ? "memory" : "dynamodb");
	if (!cfg->set_publisher)
		strcpy(cfg->events_publisher,
		       dev ? "log" : cfg->eventbridge_enabled ? "eventbridge" : "none");
	if (!cfg->set_auth)
		cfg->auth_enabled = !dev;
	/* A pool of callers only pays where calls wait on a network: for the
	 * log and none publishers it would be threads woken for nothing. */
	if (!cfg->set_relay_concurrency)
		cfg->events_relay_concurrency = strcmp(cfg->events_publisher, "eventbridge") ?
						1 : CART_RELAY_CONCURRENCY_DEFAULT;
	if (!cfg->set_ack_delay)
		cfg->events_ack_delay_ms = strcmp(cfg->storage_backend, "dynamodb") ? 0 : 1000;
	if (!cfg->rate_limit_burst)
		cfg->rate_limit_burst = cfg->rate_limit_rps > 5000000 ? 10000000 :
					2 * cfg->rate_limit_rps;
}

/* The SDKs' endpoint variables the AWS clients read (aws_client.c). */
static const char *const sdk_endpoint_vars[] = {
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_EVENTBRIDGE",
};

/*
 * The credential variables, where an AWS client will be made: a key
 * without its secret, a container URI that is not http(s), or nothing at
 * all stop the start here (exit 2) rather than at wiring (exit 1).
 */
static int check_aws_env(const app_config *cfg, config_getenv_fn getenv_fn,
			 char *err, size_t err_len)
{
	const char *akid = getenv_fn("AWS_ACCESS_KEY_ID");
	const char *secret = getenv_fn("AWS_SECRET_ACCESS_KEY");
	const char *rel = getenv_fn("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = getenv_fn("AWS_CONTAINER_CREDENTIALS_FULL_URI");

	for (size_t i = 0; i < sizeof(sdk_endpoint_vars) / sizeof(*sdk_endpoint_vars); i++) {
		const char *v = getenv_fn(sdk_endpoint_vars[i]);
		if (v && check_endpoint(v)) {
			snprintf(err, err_len, "invalid %s=\"%.64s\": expected %s",
				 sdk_endpoint_vars[i], v, ENDPOINT_EXPECTED);
			return -1;
		}
	}
	if (strcmp(cfg->storage_backend, "dynamodb") &&
	    strcmp(cfg->events_publisher, "eventbridge"))
		return 0;
	if (akid && *akid) {
		if (!secret || !*secret) {
			snprintf(err, err_len, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY "
				 "is missing");
			return -1;
		}
		return 0;
	}
	if (rel && *rel)
		return 0;
	if (full && *full) {
		if (check_endpoint(full)) {
			snprintf(err, err_len, "invalid AWS_CONTAINER_CREDENTIALS_FULL_URI: "
				 "expected %s", ENDPOINT_EXPECTED);
			return -1;
		}
		return 0;
	}
	snprintf(err, err_len, "no AWS credentials for STORAGE_BACKEND=%s/EVENTS_PUBLISHER=%s: "
		 "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an ECS task role "
		 "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)", cfg->storage_backend,
		 cfg->events_publisher);
	return -1;
}

int config_load(app_config *cfg, config_getenv_fn getenv_fn, char *err,
		size_t err_len)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < N_VARS; i++) {
		const var *v = &vars[i];
		const char *val = getenv_fn(v->name);
		bool given = val != NULL;
		char why[256];

		if (!val)
			val = v->def;
		if (!val)
			continue;
		if (v->set_offset && given)
			*(bool *)((char *)cfg + v->set_offset) = true;
		if (!parse_one(cfg, v, val, why, sizeof(why))) {
			if (!is_endpoint(v) || !check_endpoint(val))
				continue;
			snprintf(why, sizeof(why), "%s", ENDPOINT_EXPECTED);
		}
		snprintf(err, err_len, "invalid %s=\"%.64s\": expected %s", v->name,
			 v->kind == V_SECRET ? "***" : val, why);
		return -1;
	}
	apply_env_defaults(cfg);
	return check_aws_env(cfg, getenv_fn, err, err_len);
}

/* "host:port" with a port of 1-65535 (resolved only when X-Ray is on). */
static bool host_port_valid(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (!colon || colon == s)
		return false;
	port = strtol(colon + 1, &end, 10);
	return colon[1] && !*end && port >= 1 && port <= 65535;
}

/* Settings that are valid one by one but not together. */
static int check_combinations(const app_config *cfg, char *err, size_t err_len)
{
	bool keys = cfg->jwt_jwks_file[0] || cfg->jwt_jwks_url[0] ||
		    cfg->set_jwt_jwks || cfg->jwt_jwks_secret_id[0];

	if (cfg->rate_limit_rps > 0 && !strcmp(cfg->rate_limit_store, "redis") &&
	    strncmp(cfg->redis_url, "redis://", 8)) {
		snprintf(err, err_len, "RATE_LIMIT_STORE=redis needs REDIS_URL=redis://host:port");
		return -1;
	}
	if ((!!cfg->appconfig_application[0] + !!cfg->appconfig_environment[0] +
	     !!cfg->appconfig_profile[0]) % 3) {
		snprintf(err, err_len, "FEATURE_FLAGS_APPCONFIG_APPLICATION, "
			 "FEATURE_FLAGS_APPCONFIG_ENVIRONMENT and FEATURE_FLAGS_APPCONFIG_PROFILE "
			 "go together: set all three or none");
		return -1;
	}
	/* PutEvents refuses the AWS services' own sources for every entry. */
	if (!strcmp(cfg->events_publisher, "eventbridge") &&
	    !strncmp(cfg->eventbridge_source, "aws.", 4)) {
		snprintf(err, err_len, "invalid EVENTBRIDGE_SOURCE=\"%.64s\": the aws. prefix "
			 "is reserved for AWS services", cfg->eventbridge_source);
		return -1;
	}
	if (cfg->rate_limit_rps > 0 && cfg->rate_limit_burst < 1) {
		snprintf(err, err_len, "invalid RATE_LIMIT_BURST: must be at least 1");
		return -1;
	}
	if (app_secrets_check(cfg, err, err_len))
		return -1;
	if (!cfg->auth_enabled)
		return 0;
	if (!keys) {
		snprintf(err, err_len,
			 "AUTH_ENABLED is on (ENV_NAME=%s) but no keys are configured: set "
			 "JWT_JWKS_URL, JWT_JWKS_FILE, JWT_JWKS_SECRET_ID or JWT_JWKS (and "
			 "JWT_ISSUER), or set AUTH_ENABLED=false explicitly", cfg->env_name);
		return -1;
	}
	if (!cfg->jwt_issuer[0]) {
		snprintf(err, err_len, "AUTH_ENABLED needs JWT_ISSUER (the iss tokens must carry)");
		return -1;
	}
	if (!cfg->jwt_audience[0] && !cfg->jwt_client_id[0]) {
		snprintf(err, err_len, "AUTH_ENABLED needs JWT_AUDIENCE or JWT_CLIENT_ID");
		return -1;
	}
	return 0;
}

int config_check_features(const app_config *cfg, char *err, size_t err_len,
			  char *warn, size_t warn_len)
{
	bool dev = !strcmp(cfg->env_name, "dev") || !strcmp(cfg->env_name, "test");

	*warn = '\0';
	if (!host_port_valid(cfg->xray_daemon_address)) {
		snprintf(err, err_len, "invalid AWS_XRAY_DAEMON_ADDRESS: must be host:port "
			 "(e.g. 127.0.0.1:2000)");
		return -1;
	}
	if (check_combinations(cfg, err, err_len))
		return -1;
	if (!dev && !cfg->auth_enabled)
		snprintf(warn, warn_len, "AUTH_ENABLED=false outside dev/test: "
			 "every caller may read and change every cart");
	return 0;
}

int config_check_prefix(char *const *envp, const char *prefix, char *err,
			size_t err_len)
{
	size_t pl = strlen(prefix);

	for (; envp && *envp; envp++) {
		size_t nl = strcspn(*envp, "=");
		bool known = false;

		if (strncmp(*envp, prefix, pl))
			continue;
		for (size_t i = 0; i < N_VARS && !known; i++)
			known = strlen(vars[i].name) == nl && !strncmp(vars[i].name, *envp, nl);
		if (!known) {
			snprintf(err, err_len, "unknown variable %.*s: not a setting of this "
				 "service (see --help)", (int)(nl < 64 ? nl : 64), *envp);
			return -1;
		}
	}
	return 0;
}

void config_print_help(FILE *out)
{
	fprintf(out,
		"usage: cart-service [--help | migrate | healthcheck]\n\n"
		"Shopping-cart REST service, configured by environment variables:\n\n");
	for (size_t i = 0; i < N_VARS; i++)
		fprintf(out, "  %-32s default: %-20s %s\n", vars[i].name,
			vars[i].def ? (*vars[i].def ? vars[i].def : "(none)") : "(see text)",
			vars[i].help);
	fprintf(out,
		"\n`migrate` creates the DynamoDB table (PK/SK, on-demand) and enables\n"
		"TTL on expiresAt, then exits.\n"
		"`healthcheck` asks GET /health of the service on APP_PORT (LISTEN_ADDR,\n"
		"or 127.0.0.1 for 0.0.0.0) within 2 s: exit 0 on 200, else 1 (the\n"
		"image's HEALTHCHECK; the image has no curl).\n"
		"AWS credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and\n"
		"AWS_SESSION_TOKEN, or the ECS task role (AWS_CONTAINER_CREDENTIALS_\n"
		"RELATIVE_URI, or _FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN).\n"
		"The DynamoDB endpoint is DYNAMODB_ENDPOINT, else AWS_ENDPOINT_URL_DYNAMODB,\n"
		"else AWS_ENDPOINT_URL, else the region's public endpoint.\n"
		"Secrets (JWT_JWKS, REDIS_PASSWORD, EVENTBRIDGE_BUS_NAME): set one of X,\n"
		"X_FILE or X_SECRET_ID (a Secrets Manager name or ARN, #key for a member\n"
		"of a JSON secret); files and secrets are re-read after 3/4 of\n"
		"SECRETS_TTL_SECONDS and new values used without a restart. No value is\n"
		"ever logged.\n");
}

static size_t put_kv(char *buf, size_t cap, size_t at, const char *k,
		     const char *v, bool quote)
{
	int n = snprintf(at < cap ? buf + at : NULL, at < cap ? cap - at : 0,
			 "%s\"%s\":%s%s%s", at ? "," : "", k, quote ? "\"" : "",
			 v, quote ? "\"" : "");
	return at + (n > 0 ? (size_t)n : 0);
}

size_t config_to_json(const app_config *cfg, char *buf, size_t cap)
{
	size_t at = 0;

	if (cap)
		*buf = '\0';
	for (size_t i = 0; i < N_VARS; i++) {
		const var *v = &vars[i];
		const char *base = (const char *)cfg + v->offset;
		char num[32];

		switch (v->kind) {
		case V_INT:
			snprintf(num, sizeof(num), "%d", *(const int *)base);
			at = put_kv(buf, cap, at, v->name, num, false);
			break;
		case V_BOOL:
			at = put_kv(buf, cap, at, v->name,
				    *(const bool *)base ? "true" : "false", false);
			break;
		case V_LEVEL:
			at = put_kv(buf, cap, at, v->name,
				    log_level_name(*(const log_level *)base), true);
			break;
		case V_SECRET:
			at = put_kv(buf, cap, at, v->name, *(const bool *)base ? "***" : "", true);
			break;
		default:
			/* Strings are validated to characters that need no
			 * escaping; a password in REDIS_URL is never logged. */
			if (v->offset == offsetof(app_config, redis_url) &&
			    strchr(base, '@')) {
				char red[sizeof(cfg->redis_url) + 16];
				snprintf(red, sizeof(red), "redis://***@%s",
					 strrchr(base, '@') + 1);
				at = put_kv(buf, cap, at, v->name, red, true);
			} else if (v->offset == offsetof(app_config, eventbridge_bus_name) &&
				   cfg->set_bus_name) {
				/* secret-capable: given explicitly, it is masked */
				at = put_kv(buf, cap, at, v->name, "***", true);
			} else {
				at = put_kv(buf, cap, at, v->name, base, true);
			}
		}
	}
	return at;
}
