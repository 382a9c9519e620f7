/*
 * cart-service: reads the configuration, wires adapters into the core,
 * serves HTTP until SIGTERM/SIGINT, then drains and exits 0 within
 * SHUTDOWN_TIMEOUT_SECONDS.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cart/relay.h"
#include "cart/service.h"
#include "aws/aws.h"
#include "config.h"
#include "dynamodb/dynamo_repo.h"
#include "eventbridge/eventbridge_publisher.h"
#include "allocator.h"
#include "app.h"
#include "auth.h"
#include "appconfig/appconfig.h"
#include "aws_observe.h"
#include "flags.h"
#include "log.h"
#include "log/log_publisher.h"
#include "metrics.h"
#include "memory/memory_repo.h"
#include "ratelimit.h"
#include "secrets.h"
#include "secrets/secrets.h"
#include "server.h"
#include "xray.h"
#include "thread.h"
#include "system/system.h"

/* The longest a write waits for the relay on the memory store (pacing,
 * cart_memory_repo_pace_outbox); then it is stored, or refused at the
 * EVENTS_BACKLOG_MAX_MB bound. */
#define EVENTS_PACE_MAX_WAIT_MS 500

/* Process-wide state, set up before any thread starts (STYLE.md, 7). */
/*
 * jemalloc's settings (ADR 17), read by the allocator before main; the
 * environment's MALLOC_CONF, applied after these, can override them.
 * tcache:false: per-thread caches cost ~25 MiB of RSS across the
 * workers a run touches (+2k instructions per GET without them, the
 * price paid); freed pages go back to the kernel after 1 s, not 10 s.
 * With the DynamoDB store, server.c gives a worker a cache while it holds
 * a connection.
 */
const char *malloc_conf = "tcache:false,dirty_decay_ms:1000,muzzy_decay_ms:0";

static app_config g_cfg;
static app_ctx g_app;
static time_t g_started;
static app_metrics_emf *g_emf;   /* METRICS_EMF; main thread only */
static relay_kick g_kick = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL };

typedef struct wiring {
	cart_repo repo;
	cart_publisher pub;
	cart_clock clock;
	cart_ids ids;
	cart_aws_creds *creds;
	cart_aws_client *dynamo;
	cart_aws_client *events;
	cart_aws_client *secretsmanager;   /* NULL unless a _SECRET_ID is set */
	app_secrets *secrets;
	cart_service *svc;
	cart_relay *relay;
	app_auth *auth;              /* NULL unless AUTH_ENABLED */
	app_ratelimit *ratelimit;    /* NULL if RATE_LIMIT_RPS=0 */
	app_xray *xray;              /* NULL unless AWS_XRAY_ENABLED */
	app_flags *flags;
	cart_aws_client *appconfig_client;   /* NULL unless AppConfig flags */
	cart_appconfig *appconfig;
} wiring;

static const char *env(const char *name)
{
	return getenv(name);
}

/* Adapters log through the app's logger. */
static void aws_log_write(void *ctx, int level, const char *msg,
			  const char *fields)
{
	log_write((log_level)level, msg, fields);
}

static const cart_aws_log g_aws_log = { aws_log_write, NULL };

/* AWS credentials, once for every AWS client. */
static int ensure_creds(wiring *w, char *err, size_t err_len)
{
	if (w->creds)
		return 0;
	return cart_aws_creds_new(&w->creds, env, &w->clock, &g_aws_log, err, err_len);
}

/* A client for one AWS service: credentials, endpoint, retry, breaker. */
static int wire_aws_client(wiring *w, const app_config *cfg, cart_aws_client **out,
			   const char *service, const char *content_type,
			   const char *endpoint, char *err, size_t err_len)
{
	cart_aws_client_config cc;

	if (ensure_creds(w, err, err_len))
		return -1;
	cart_aws_client_config_init(&cc);
	cc.service = service;
	cc.region = cfg->aws_region;
	cc.endpoint = endpoint;
	cc.content_type = content_type;
	cc.connect_timeout_ms = cfg->dynamodb_connect_timeout_ms;
	cc.timeout_ms = cfg->dynamodb_timeout_ms;
	cc.retry.max_attempts = cfg->aws_max_attempts;
	cc.breaker.enabled = cfg->circuit_breaker_enabled;
	cc.breaker.failure_rate_pct = cfg->breaker_failure_rate;
	cc.breaker.min_calls = cfg->breaker_min_calls;
	cc.breaker.window_ms = cfg->breaker_window_seconds * 1000LL;
	cc.breaker.open_ms = cfg->breaker_open_seconds * 1000LL;
	cc.breaker.half_open_probes = cfg->breaker_half_open_probes;
	/* A bus name from a file or secret is not put in traces either. */
	cc.resource = !strcmp(service, "dynamodb") ? cfg->dynamodb_table :
		      !strcmp(service, "appconfig") ? cfg->appconfig_profile :
		      !strcmp(service, "events") &&
		      !app_secrets_source(w->secrets, APP_SECRET_BUS_NAME) ?
		      cfg->eventbridge_bus_name : "";
	cc.observer = &app_aws_observer;
	if (cart_aws_client_new(out, &cc, w->creds, &w->clock, &w->ids, &g_aws_log)) {
		snprintf(err, err_len, "invalid %s client settings (endpoint %.200s)",
			 service, endpoint);
		return -1;
	}
	return 0;
}

static int wire_dynamo_client(wiring *w, const app_config *cfg, char *err,
			      size_t err_len)
{
	char endpoint[512];

	cart_aws_endpoint(endpoint, sizeof(endpoint), env, "DYNAMODB_ENDPOINT",
			  "DYNAMODB", "dynamodb", cfg->aws_region);
	return wire_aws_client(w, cfg, &w->dynamo, "dynamodb",
			       "application/x-amz-json-1.0", endpoint, err, err_len);
}

/* The log event publisher's lines go through app/log.c, so stdout keeps
 * one writer at a time (log_write_lines; log_publisher.h says why). */
static int stdout_lines(void *self, const char *lines, size_t len)
{
	(void)self;
	return log_write_lines(lines, len);
}

static const cart_line_sink_ops stdout_sink_ops = { .write = stdout_lines };
static const cart_line_sink stdout_sink = { &stdout_sink_ops, NULL };

static int wire_publisher(wiring *w, const app_config *cfg, char *err,
			  size_t err_len)
{
	cart_eventbridge_config ec = { cfg->eventbridge_bus_name,
				       cfg->eventbridge_source, cfg->aws_max_attempts };
	char endpoint[512], *bus = NULL;
	size_t bus_len = 0;
	int rc;

	if (!strcmp(cfg->events_publisher, "log"))
		return cart_log_publisher_new_sink(&w->pub, &stdout_sink,
						   cfg->log_level <= LOG_INFO) ? -1 : 0;
	if (!strcmp(cfg->events_publisher, "none"))
		return cart_noop_publisher_new(&w->pub) ? -1 : 0;
	cart_aws_endpoint(endpoint, sizeof(endpoint), env, "EVENTBRIDGE_ENDPOINT",
			  "EVENTBRIDGE", "events", cfg->aws_region);
	if (wire_aws_client(w, cfg, &w->events, "events", "application/x-amz-json-1.1",
			    endpoint, err, err_len))
		return -1;
	if (app_secrets_get(w->secrets, APP_SECRET_BUS_NAME, &bus, &bus_len) == 0) {
		if (!app_secrets_bus_valid(bus, bus_len)) {
			snprintf(err, err_len, "invalid EVENTBRIDGE_BUS_NAME from %s: "
				 "expected 1..255 of A-Z a-z 0-9 -_./:",
				 app_secrets_source(w->secrets, APP_SECRET_BUS_NAME));
			cart_secret_wipe_free(bus, bus_len);
			return 2;
		}
		ec.bus = bus;
	}
	rc = cart_eventbridge_publisher_new(&w->pub, &ec, w->events, &g_aws_log);
	cart_secret_wipe_free(bus, bus_len);
	if (rc) {
		snprintf(err, err_len, "invalid EVENTBRIDGE_BUS_NAME or EVENTBRIDGE_SOURCE");
		return -1;
	}
	return 0;
}

/*
 * Feature flags: pins and the file now (a bad file: exit 2), AppConfig
 * when its three identifiers are set (docs/adr/0015-feature-flags.md).
 */
static int wire_flags(wiring *w, const app_config *cfg, char *err, size_t err_len)
{
	cart_appconfig_config ac = { cfg->appconfig_application, cfg->appconfig_environment,
				     cfg->appconfig_profile, cfg->appconfig_min_poll_seconds,
				     APP_FLAGS_DOC_MAX };
	char endpoint[512];

	if (app_flags_new(&w->flags, cfg, err, err_len))
		return -1;
	if (!cfg->appconfig_application[0])
		return 0;
	cart_aws_endpoint(endpoint, sizeof(endpoint), env, "FEATURE_FLAGS_APPCONFIG_ENDPOINT",
			  "APPCONFIGDATA", "appconfigdata", cfg->aws_region);
	if (wire_aws_client(w, cfg, &w->appconfig_client, "appconfig", "application/json",
			    endpoint, err, err_len))
		return -1;
	if (cart_appconfig_new(&w->appconfig, &ac, w->appconfig_client, &g_aws_log)) {
		snprintf(err, err_len, "invalid FEATURE_FLAGS_APPCONFIG_* identifiers");
		return -1;
	}
	app_flags_set_appconfig(w->flags, w->appconfig, cfg->appconfig_min_poll_seconds);
	return 0;
}

/* events turned on again: the held relay goes at once. */
static void flags_changed(void *self, app_flags_snapshot before, app_flags_snapshot after)
{
	if (!app_flags_on(before, APP_FLAG_EVENTS) && app_flags_on(after, APP_FLAG_EVENTS))
		relay_kick_signal(self);
}

/*
 * Secrets first, so a missing one stops the start before anything else
 * is built (README, "Secrets").  The exit code on failure (1 or 2).
 */
static int wire_secrets(wiring *w, const app_config *cfg, char *err, size_t err_len)
{
	char endpoint[512];
	int code = 1;

	if (app_secrets_use_aws(cfg)) {
		cart_aws_endpoint(endpoint, sizeof(endpoint), env, "SECRETSMANAGER_ENDPOINT",
				  "SECRETS_MANAGER", "secretsmanager", cfg->aws_region);
		if (wire_aws_client(w, cfg, &w->secretsmanager, "secretsmanager",
				    "application/x-amz-json-1.1", endpoint, err, err_len))
			return 1;
	}
	if (app_secrets_new(&w->secrets, cfg, env, w->secretsmanager, &w->clock,
			    &g_aws_log, &code, err, err_len))
		return code;
	return 0;
}

static int wire_repo(wiring *w, const app_config *cfg, char *err, size_t err_len)
{
	/* A relay owns (and publishes) what its task writes, under a fresh
	 * id; without one, the first relay that scans takes the events. */
	cart_dynamo_config dc = { .table = cfg->dynamodb_table, .ready_cache_ms = 5000,
				  .idem_max = (size_t)cfg->idempotency_max_records,
				  .owner = cfg->events_relay_enabled ? NULL
								     : CART_DYNAMO_OWNER_ANY };

	if (!strcmp(cfg->storage_backend, "memory")) {
		if (cart_memory_repo_new(&w->repo) == CART_OK) {
			size_t bound = (size_t)cfg->events_backlog_max_mb * 1024 * 1024;

			cart_memory_repo_limit_outbox(&w->repo, bound);
			/* Past a quarter of the bound, writes wait for a relay
			 * that drains (at most EVENTS_PACE_MAX_WAIT_MS, and the
			 * request's deadline) instead of filling it: 503s only
			 * when it does not drain. */
			if (cfg->events_relay_enabled)   /* else nothing drains */
				cart_memory_repo_pace_outbox(&w->repo, bound / 4,
							     EVENTS_PACE_MAX_WAIT_MS);
			return 0;
		}
		snprintf(err, err_len, "cannot create the memory repository");
		return -1;
	}
	if (wire_dynamo_client(w, cfg, err, err_len))
		return -1;
	if (cart_dynamo_repo_new(&w->repo, &dc, w->dynamo, &w->clock, &w->ids,
				 &g_aws_log)) {
		snprintf(err, err_len, "invalid DYNAMODB_TABLE");
		return -1;
	}
	return 0;
}

/*
 * The relay gave up on an event the bus refuses for good: it is out of
 * the outbox and in the store's dead-letter list (docs/adr/0008).
 */
static void log_parked(void *self, const cart_event *ev, const char *code,
		       int attempts)
{
	buf b;

	buf_init(&b, 512);
	buf_puts(&b, ",\"userId\":");
	buf_json_str(&b, ev->user_id);
	buf_puts(&b, ",\"eventId\":");
	buf_json_str(&b, ev->event_id);
	buf_puts(&b, ",\"cartId\":");
	buf_json_str(&b, ev->cart_id);
	buf_printf(&b, ",\"cartVersion\":%lld,\"eventType\":", (long long)ev->cart_version);
	buf_json_str(&b, cart_event_type_name(ev->type));
	buf_puts(&b, ",\"errorCode\":");
	buf_json_str(&b, code);
	buf_printf(&b, ",\"attempts\":%d", attempts);
	log_write(LOG_WARN, "event parked", b.failed ? NULL : b.data);
	buf_release(&b);
}

static int wire(wiring *w, const app_config *cfg, char *err, size_t err_len)
{
	cart_service_config sc;
	int rc;

	memset(w, 0, sizeof(*w));
	cart_system_clock_init(&w->clock);
	cart_system_ids_init(&w->ids);
	if ((rc = wire_secrets(w, cfg, err, err_len)))
		return rc;
	if (wire_repo(w, cfg, err, err_len))
		return -1;
	if ((rc = wire_publisher(w, cfg, err, err_len)))
		return rc;
	cart_service_config_init(&sc);
	sc.limits.max_item_quantity = cfg->max_item_quantity;
	sc.limits.max_lines = (size_t)cfg->max_cart_lines;
	sc.limits.ttl_ms = (int64_t)cfg->cart_ttl_days * 24 * 3600 * 1000;
	if (cart_service_new(&w->svc, &sc, &w->repo, &w->clock, &w->ids)) {
		snprintf(err, err_len, "cannot create the cart service");
		return -1;
	}
	/*
	 * A pass fetches whole backlogs (up to CART_OUTBOX_MAX each): enough
	 * for two carts per call in flight even when every backlog is full,
	 * so all calls have carts to carry until the pass's tail.
	 */
	if (cart_relay_new(&w->relay, &w->repo, &w->pub, &w->clock,
			   (size_t)cfg->events_relay_concurrency *
				   CART_OUTBOX_MAX * 2)) {
		snprintf(err, err_len, "the %s repository has no event outbox",
			 cfg->storage_backend);
		return -1;
	}
	cart_relay_set_max_attempts(w->relay, cfg->events_max_attempts);
	cart_relay_set_ack_delay(w->relay, cfg->events_ack_delay_ms);
	cart_relay_on_park(w->relay, log_parked, NULL);
	if (cfg->events_relay_enabled &&
	    cart_relay_set_concurrency(w->relay, cfg->events_relay_concurrency)) {
		snprintf(err, err_len, "cannot start the event relay's threads");
		return -1;
	}
	return 0;
}

static void unwire(wiring *w)
{
	app_flags_free(w->flags);   /* its thread polls AppConfig: before its client */
	cart_appconfig_free(w->appconfig);
	cart_aws_client_free(w->appconfig_client);
	app_secrets_free(w->secrets);   /* first: its thread calls the others */
	app_xray_free(w->xray);
	app_auth_free(w->auth);
	app_ratelimit_free(w->ratelimit);
	cart_relay_free(w->relay);
	cart_service_free(w->svc);
	cart_repo_destroy(&w->repo);
	cart_publisher_destroy(&w->pub);
	cart_aws_client_free(w->dynamo);
	cart_aws_client_free(w->events);
	cart_aws_client_free(w->secretsmanager);
	cart_aws_creds_free(w->creds);
	cart_ids_destroy(&w->ids);
	cart_clock_destroy(&w->clock);
}

static void log_start(const app_config *cfg, const char *warn)
{
	char fields[8192];
	size_t n = (size_t)snprintf(fields, sizeof(fields), ",\"config\":{");

	n += config_to_json(cfg, fields + n, sizeof(fields) - n);
	if (n + 40 < sizeof(fields))
		snprintf(fields + n, sizeof(fields) - n, "},\"allocator\":\"%s\"",
			 app_allocator_name());
	log_write(LOG_INFO, "starting cart-service", n + 40 < sizeof(fields) ? fields : NULL);
	if (*warn)
		log_write(LOG_WARN, warn, NULL);
}

/* --- the request path ---------------------------------------------------- */

/* Readiness of the repository: the store answers (and its breaker state). */
static int ready_repo(void *self, buf *detail)
{
	const wiring *w = self;

	buf_puts(detail, ",\"backend\":");
	buf_json_str(detail, g_cfg.storage_backend);
	if (w->dynamo) {
		buf_puts(detail, ",\"circuitBreaker\":");
		buf_json_str(detail, cart_breaker_state_name(
				      cart_aws_client_breaker_state(w->dynamo)));
	}
	return cart_repo_ping(&w->repo);
}

static void stats_service(void *self, buf *out)
{
	cart_service_stats st;

	cart_service_stats_get(self, &st);
	buf_printf(out, ",\"commits\":%llu,\"conflict_retries\":%llu",
		   (unsigned long long)st.commits, (unsigned long long)st.conflicts);
}

static void stats_relay(void *self, buf *out)
{
	cart_relay_stats st;

	cart_relay_stats_get(self, &st);
	buf_printf(out, ",\"backlog\":%zu,\"oldest_age_ms\":%lld,\"published\":%llu,"
		   "\"publish_failures\":%llu,\"delivered_per_s\":%llu,\"parked\":%llu",
		   st.backlog, (long long)st.oldest_age_ms, (unsigned long long)st.published,
		   (unsigned long long)st.publish_failures,
		   (unsigned long long)st.delivered_per_s, (unsigned long long)st.parked);
}

static void stats_breaker(void *self, buf *out)
{
	buf_puts(out, ",\"state\":");
	buf_json_str(out, cart_breaker_state_name(cart_aws_client_breaker_state(self)));
}

/*
 * The event outbox as this process sees it: degraded (still ready) when
 * the oldest pending event is over a minute old, or, on the memory store,
 * when the backlog is past 80 % of EVENTS_BACKLOG_MAX_MB -- writes then
 * start to get 503 cart.events_backlog.
 */
static int ready_events(void *self, buf *detail)
{
	cart_relay_stats st;
	size_t bound = (size_t)g_cfg.events_backlog_max_mb * 1024 * 1024 /
		       sizeof(cart_event);
	bool memory = !strcmp(g_cfg.storage_backend, "memory");

	cart_relay_stats_get(self, &st);
	buf_printf(detail, ",\"backlog\":%zu,\"oldestAgeMs\":%lld,"
		   "\"deliveredPerSecond\":%llu,\"parked\":%llu", st.backlog,
		   (long long)st.oldest_age_ms, (unsigned long long)st.delivered_per_s,
		   (unsigned long long)st.parked);
	if (memory)
		buf_printf(detail, ",\"bound\":%zu", bound);
	if (!app_flags_on(app_flags_get(g_app.flags), APP_FLAG_EVENTS))
		buf_puts(detail, ",\"publishing\":\"held\"");   /* flag events off */
	if (st.oldest_age_ms > 60000 || (memory && st.backlog * 5 >= bound * 4))
		return APP_READY_DEGRADED;
	return CART_OK;
}

/* Counters of the parts this process has; one line each. */
static int wire_stats(app_ctx *app, wiring *w)
{
	int rc = app_stats_add(app, "service", stats_service, w->svc);

	if (g_cfg.events_relay_enabled)
		rc |= app_stats_add(app, "relay", stats_relay, w->relay);
	if (w->dynamo)
		rc |= app_stats_add(app, "dynamodb_breaker", stats_breaker, w->dynamo);
	if (w->events)
		rc |= app_stats_add(app, "eventbridge_breaker", stats_breaker, w->events);
	if (w->auth)
		rc |= app_stats_add(app, "auth", app_auth_stats, w->auth);
	if (w->ratelimit)
		rc |= app_stats_add(app, "ratelimit", app_ratelimit_stats_json, w->ratelimit);
	if (w->xray)
		rc |= app_stats_add(app, "xray", app_xray_stats, w->xray);
	rc |= app_stats_add(app, "feature_flags", app_flags_stats, w->flags);
	if (app_secrets_source(w->secrets, APP_SECRET_JWKS) ||
	    app_secrets_source(w->secrets, APP_SECRET_REDIS_PASSWORD) ||
	    app_secrets_source(w->secrets, APP_SECRET_BUS_NAME))
		rc |= app_stats_add(app, "secrets", app_secrets_stats, w->secrets);
	return rc;
}

/*
 * Metrics: counted from the first READ stage to the LOG phase, so every
 * request counts once; /metrics only with METRICS_ENABLED.
 */
static int wire_metrics(app_ctx *app, wiring *w)
{
	app_metrics *m = app_metrics_process();
	app_metrics_sources src = { w->svc, app->relay, w->dynamo, w->events,
				    w->ratelimit, w->xray,
				    strcmp(g_cfg.storage_backend, "memory") ? NULL : &w->repo,
				    w->secrets, w->creds, w->flags, w->auth };

	if (!g_cfg.metrics_enabled && !g_cfg.metrics_emf)
		return 0;
	app_metrics_set_sources(m, &src);
	app->metrics = g_cfg.metrics_enabled ? m : NULL;
	return app_pipeline_add_front(&app->pipeline, APP_PHASE_READ, "metrics_begin",
				      app_stage_metrics_begin, m) ||
	       app_pipeline_add(&app->pipeline, APP_PHASE_LOG, "metrics",
				app_stage_metrics, m);
}

/* The verifier, with the JWKS from a secret if one is configured. */
static int wire_auth(wiring *w, char *err, size_t err_len)
{
	char *doc = NULL;
	size_t len = 0;
	int rc;

	if (app_secrets_get(w->secrets, APP_SECRET_JWKS, &doc, &len) < 0) {
		snprintf(err, err_len, "out of memory reading JWT_JWKS");
		return -1;
	}
	rc = app_auth_new(&w->auth, &g_cfg, &w->clock, doc, len, err, err_len);
	cart_secret_wipe_free(doc, len);
	return rc;
}

/* The limiter, with the Redis password from a secret if one is configured. */
static int wire_ratelimit(wiring *w, char *err, size_t err_len)
{
	char *pw = NULL;
	size_t len = 0;
	int rc;

	if (app_secrets_get(w->secrets, APP_SECRET_REDIS_PASSWORD, &pw, &len) < 0) {
		snprintf(err, err_len, "out of memory reading REDIS_PASSWORD");
		return -1;
	}
	rc = app_ratelimit_new_auth(&w->ratelimit, &g_cfg, &w->clock, pw, err, err_len);
	cart_secret_wipe_free(pw, len);
	return rc;
}

/*
 * The stages and checks of this process: one line each.  Authentication
 * comes before the rate limiter, so a caller is limited by its verified
 * sub (a token cannot be forged to spend someone else's budget); callers
 * with no or a bad token are limited by address, and refused in ACCESS.
 * -1 with err: a setting is unusable (exit 2).
 */
static int wire_app(app_ctx *app, wiring *w, char *err, size_t err_len)
{
	app_pipeline *p = &app->pipeline;

	app->cfg = &g_cfg;
	app->flags = w->flags;
	app->svc = w->svc;
	app->ids = &w->ids;
	app->kick = g_cfg.events_relay_enabled ? &g_kick : NULL;
	app->relay = g_cfg.events_relay_enabled ? w->relay : NULL;
	if (app_pipeline_init_default(p, app) ||
	    app_ready_add(app, "repository", ready_repo, w) ||
	    (app->relay && app_ready_add(app, "events", ready_events, w->relay))) {
		snprintf(err, err_len, "cannot build the request pipeline");
		return -1;
	}
	if (g_cfg.xray_enabled &&
	    app_xray_new(&w->xray, g_cfg.xray_daemon_address, g_cfg.xray_tracing_name,
			 g_cfg.aws_region, err, err_len))
		return -1;
	app->xray = w->xray;
	if (g_cfg.auth_enabled &&
	    (wire_auth(w, err, err_len) ||
	     app_pipeline_add(p, APP_PHASE_PREACCESS, "authenticate",
			      app_stage_authenticate, w->auth) ||
	     app_pipeline_add(p, APP_PHASE_ACCESS, "require_auth",
			      app_stage_require_auth, w->auth) ||
	     /* after the token's hash, whose time the route's hint had */
	     app_pipeline_add(p, APP_PHASE_PREACCESS, "warm_next",
			      app_stage_warm_next, app)))
		return -1;
	if (g_cfg.rate_limit_rps > 0 &&
	    (wire_ratelimit(w, err, err_len) ||
	     app_pipeline_add(p, APP_PHASE_PREACCESS, "ratelimit",
			      app_stage_ratelimit, w->ratelimit) ||
	     /* Redis has no warm: no key to build for it */
	     (g_cfg.auth_enabled && strcmp(g_cfg.rate_limit_store, "redis") &&
	      app_pipeline_add(p, APP_PHASE_ROUTE, "ratelimit_warm",
			       app_stage_ratelimit_warm, w->ratelimit))))
		return -1;
	/* Without a token to hash, last in PREACCESS: the limiter's take
	 * (and a write's body parse, next) is the time the hints get. */
	if (!g_cfg.auth_enabled &&
	    app_pipeline_add(p, APP_PHASE_PREACCESS, "warm_next",
			     app_stage_warm_next, app))
		return -1;
	app_secrets_bind(w->secrets, w->auth,
			 strcmp(g_cfg.rate_limit_store, "redis") ? NULL : w->ratelimit,
			 w->events ? &w->pub : NULL);
	if (app_secrets_start(w->secrets)) {
		snprintf(err, err_len, "cannot start the secrets' refresher thread");
		return -1;
	}
	if (wire_stats(app, w)) {
		snprintf(err, err_len, "too many stats sources");
		return -1;
	}
	if (wire_metrics(app, w)) {
		snprintf(err, err_len, "cannot add the metrics stages");
		return -1;
	}
	return 0;
}

/*
 * 256 KiB stacks for the threads this program starts (the relay, the log
 * writer, the watchdog...).  Not civetweb's HTTP_THREADS workers: Debian's
 * libcivetweb sets its own stack size, 100 KiB (USE_STACK_SIZE 102400),
 * on every thread it starts, over this default.  A request's deepest path
 * measured (memory store, auth on, a token's first RS256 verification)
 * touches 36 KiB of a worker's stack, TLS included.  Affects every thread
 * created afterwards.
 */
static void set_thread_stacks(void)
{
	pthread_attr_t attr;

	if (pthread_attr_init(&attr))
		return;
	if (!pthread_attr_setstacksize(&attr, 256 * 1024))
		pthread_setattr_default_np(&attr);
	pthread_attr_destroy(&attr);
}

/* --- the outbox relay ---------------------------------------------------- */

typedef struct relay_thread {
	cart_relay *relay;
	pthread_t thread;
	atomic_int stop;
	int started;
	relay_kick *kick;
} relay_thread;

/* Backlog and age of the oldest pending event, every 10 s while any. */
static void log_backlog(cart_relay *relay, int64_t *last_ms, int64_t now_ms)
{
	cart_relay_stats st;
	char fields[192];

	cart_relay_stats_get(relay, &st);
	if (!st.backlog || now_ms - *last_ms < 10000)
		return;
	*last_ms = now_ms;
	snprintf(fields, sizeof(fields),
		 ",\"backlog\":%zu,\"oldest_age_ms\":%lld,\"published\":%llu,"
		 "\"publish_failures\":%llu,\"parked\":%llu", st.backlog,
		 (long long)st.oldest_age_ms, (unsigned long long)st.published,
		 (unsigned long long)st.publish_failures, (unsigned long long)st.parked);
	log_write(st.oldest_age_ms > 60000 ? LOG_WARN : LOG_INFO, "event outbox",
		  fields);
}

static int64_t mono_ms(void)
{
	return app_mono_ns() / 1000000;
}

/*
 * Sleeps wait_ms or until a kick, waking meanwhile to write the acks whose
 * wait ended (EVENTS_ACK_DELAY_MS) without fetching.
 */
static void relay_sleep(relay_thread *rt, int64_t wait_ms)
{
	int64_t until = mono_ms() + wait_ms;

	for (;;) {
		int64_t left = until - mono_ms();
		int64_t acks = cart_relay_flush_acks(rt->relay, false);

		if (left <= 0 || atomic_load(&rt->stop))
			return;
		if (acks >= 0 && acks < left)
			left = acks > 0 ? acks : 1;
		if (relay_kick_wait(rt->kick, left))
			return;
	}
}

/*
 * Publishes pending events as they appear: at once after a local commit
 * (the request path kicks the relay), pass after pass while events
 * remain, and by polling for events other processes left, at most once
 * per CART_RELAY_IDLE_POLL_MS while idle (cart_relay_next_wait_ms; it
 * backs off from 20 ms to 1 s while the publisher fails).
 */
static void *relay_loop(void *arg)
{
	relay_thread *rt = arg;
	int64_t wait_ms = 0, last_log = 0;

	(void)pthread_setname_np(pthread_self(), "cart-relay");
	/*
	 * One long-lived thread that allocates and frees for every event it
	 * carries (the fetch's copies, the documents, the acks): with its own
	 * jemalloc cache those skip the arena locks the 64+ workers take
	 * (ADR 17: no cache for the workers).  callgrind: 40.7k -> 39.3k
	 * instructions per add, 32.6k -> 31.8k per PATCH.
	 */
	if (app_allocator_caches_off())
		app_allocator_thread_cache(true);

	while (!atomic_load(&rt->stop)) {
		int n;

		/* Feature flag events off: hold; the outbox keeps every event
		 * and a change back to on kicks the loop (flags_changed). */
		if (!app_flags_on(app_flags_get(g_app.flags), APP_FLAG_EVENTS)) {
			relay_sleep(rt, 1000);
			continue;
		}
		n = cart_relay_run_once(rt->relay);

		log_backlog(rt->relay, &last_log, mono_ms());
		if (n < 0)
			log_write(LOG_WARN, "event outbox unreadable", NULL);
		wait_ms = cart_relay_next_wait_ms(rt->relay, n, wait_ms);
		if (wait_ms)
			relay_sleep(rt, wait_ms);
	}
	return NULL;
}

static void relay_start(relay_thread *rt, cart_relay *relay, relay_kick *kick)
{
	rt->relay = relay;
	rt->kick = kick;
	pthread_mutex_lock(&kick->lock);
	kick->relay = relay;
	pthread_mutex_unlock(&kick->lock);
	atomic_store(&rt->stop, 0);
	rt->started = pthread_create(&rt->thread, NULL, relay_loop, rt) == 0;
	if (!rt->started)
		log_write(LOG_ERROR, "cannot start the event relay", NULL);
}

/* After the last request: one more pass, then stop the thread. */
static void relay_stop(relay_thread *rt)
{
	if (!rt->started)
		return;
	atomic_store(&rt->stop, 1);
	relay_kick_signal(rt->kick);
	pthread_join(rt->thread, NULL);
	pthread_mutex_lock(&rt->kick->lock);
	rt->kick->relay = NULL;
	pthread_mutex_unlock(&rt->kick->lock);
	if (!app_flags_on(app_flags_get(g_app.flags), APP_FLAG_EVENTS)) {
		cart_relay_stats st;
		char fields[64];

		cart_relay_stats_get(rt->relay, &st);
		snprintf(fields, sizeof(fields), ",\"backlog\":%zu", st.backlog);
		log_write(LOG_WARN, "event publishing held at shutdown (feature flag events "
			  "off): pending events stay in the outbox", fields);
		cart_relay_flush_acks(rt->relay, true);
		return;
	}
	if (cart_relay_run_once(rt->relay) < 0)
		log_write(LOG_WARN, "event outbox unreadable at shutdown", NULL);
	cart_relay_flush_acks(rt->relay, true);   /* nothing republished */
}

/* --- shutdown ----------------------------------------------------------- */

typedef struct stopper {
	server *srv;
	pthread_mutex_t lock;
	pthread_cond_t done_cv;
	int done;
} stopper;

static void *stop_thread(void *arg)
{
	stopper *st = arg;

	server_stop(st->srv);   /* waits for in-flight requests */
	pthread_mutex_lock(&st->lock);
	st->done = 1;
	pthread_cond_signal(&st->done_cv);
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

/* true if the server stopped within the timeout. */
static int stop_within(server *srv, int timeout_s)
{
	stopper st = { srv, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct timespec until;
	pthread_t t;
	int done;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_s;
	if (pthread_create(&t, NULL, stop_thread, &st)) {
		server_stop(srv);
		return 1;
	}
	pthread_mutex_lock(&st.lock);
	while (!st.done &&
	       pthread_cond_timedwait(&st.done_cv, &st.lock, &until) != ETIMEDOUT)
		;
	done = st.done;
	pthread_mutex_unlock(&st.lock);
	if (done)
		pthread_join(t, NULL);
	return done;
}

#define STATS_LOG_SECONDS 60

/* One info line with every registered stats source. */
static void log_stats(const app_ctx *app)
{
	buf b;

	if (!log_enabled(LOG_INFO))
		return;
	buf_init(&b, 16384);
	buf_puts(&b, ",\"stats\":{\"uptime_s\":");
	buf_json_i64(&b, (int64_t)(time(NULL) - g_started));
	app_stats_write(app, &b);
	buf_puts(&b, "}");
	log_write(LOG_INFO, "stats", b.failed ? NULL : b.data);
	buf_release(&b);
}

/* The main thread's job while serving: signals, the stats line, EMF. */
static int wait_for_signal(const sigset_t *set)
{
	int64_t stats_ms = STATS_LOG_SECONDS * 1000LL;
	int64_t emf_ms = g_cfg.metrics_emf_interval_seconds * 1000LL;
	int64_t next_stats = mono_ms() + stats_ms;
	int64_t next_emf = g_emf ? mono_ms() + emf_ms : INT64_MAX;

	for (;;) {
		int64_t now = mono_ms();
		int64_t left = (next_stats < next_emf ? next_stats : next_emf) - now;

		if (left > 0) {
			struct timespec t = { left / 1000, (left % 1000) * 1000000L };
			int sig = sigtimedwait(set, NULL, &t);

			if (sig == SIGHUP) {   /* re-read FEATURE_FLAGS_FILE */
				app_flags_reload(g_app.flags);
				continue;
			}
			if (sig > 0)
				return sig;
			now = mono_ms();
		}
		if (now >= next_stats) {
			log_stats(&g_app);
			next_stats = now + stats_ms;
		}
		if (now >= next_emf) {
			app_metrics_emf_write(g_emf);
			next_emf = now + emf_ms;
		}
	}
}

static void drain(const app_config *cfg, int sig)
{
	char fields[128];

	atomic_store(&g_app.draining, 1);
	snprintf(fields, sizeof(fields), ",\"signal\":%d,\"drain_seconds\":%d", sig,
		 cfg->shutdown_drain_seconds);
	log_write(LOG_INFO, "shutting down: /ready now fails", fields);
	if (cfg->shutdown_drain_seconds > 0)
		sleep((unsigned)cfg->shutdown_drain_seconds);
}

/* --- main --------------------------------------------------------------- */

static int usage_error(const char *arg)
{
	fprintf(stderr, "cart-service: unknown argument '%s' (try --help)\n", arg);
	return 2;
}

/* `cart-service migrate`: create the table and enable TTL (admin policy). */
static int migrate(const app_config *cfg)
{
	char err[512];
	wiring w;
	int rc;

	memset(&w, 0, sizeof(w));
	cart_system_clock_init(&w.clock);
	cart_system_ids_init(&w.ids);
	rc = wire_dynamo_client(&w, cfg, err, sizeof(err)) ||
	     cart_dynamo_migrate(w.dynamo, cfg->dynamodb_table, &w.clock, &g_aws_log,
				 err, sizeof(err));
	if (rc)
		fprintf(stderr, "cart-service migrate: %s\n", err);
	unwire(&w);
	return rc ? 1 : 0;
}

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
	return size * n;
}

/*
 * `cart-service healthcheck`: GET /health on this container's own port
 * (APP_PORT, LISTEN_ADDR or loopback), 2 s at most; exit 0 on 200, else
 * 1.  For the image's HEALTHCHECK and the ECS container health check:
 * the runtime image has no curl.
 */
static int healthcheck(const app_config *cfg)
{
	char url[128];
	long status = 0;
	CURL *h = curl_easy_init();
	CURLcode rc;

	snprintf(url, sizeof(url), "http://%s:%d/health",
		 strcmp(cfg->listen_addr, "0.0.0.0") ? cfg->listen_addr : "127.0.0.1",
		 cfg->port);
	if (!h)
		return 1;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK || status != 200) {
		fprintf(stderr, "cart-service healthcheck: %s: %s (HTTP %ld)\n", url,
			rc == CURLE_OK ? "not healthy" : curl_easy_strerror(rc), status);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char err[512], warn[256];
	bool do_migrate = false, do_healthcheck = false;
	relay_thread rt = { 0 };
	sigset_t sigs;
	wiring w;
	server *srv;
	int sig;

	if (argc > 1) {
		if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
			config_print_help(stdout);
			return 0;
		}
		if ((strcmp(argv[1], "migrate") && strcmp(argv[1], "healthcheck")) || argc > 2)
			return usage_error(argv[argc > 2 ? 2 : 1]);
		do_migrate = !strcmp(argv[1], "migrate");
		do_healthcheck = !do_migrate;
	}
	if (config_load(&g_cfg, env, err, sizeof(err)) ||
	    config_check_prefix(environ, "FEATURE_", err, sizeof(err)) ||
	    config_check_features(&g_cfg, err, sizeof(err), warn, sizeof(warn))) {
		fprintf(stderr, "cart-service: %s\n", err);
		return 2;
	}
	log_setup(g_cfg.log_level, STDOUT_FILENO);
	curl_global_init(CURL_GLOBAL_DEFAULT);   /* before any thread starts */
	if (do_healthcheck)
		return healthcheck(&g_cfg);
	if (do_migrate)
		return migrate(&g_cfg);
	/* Every thread inherits this mask; only main receives the signals. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);   /* feature flags: re-read the file */
	/* The body-read watchdog's signal: workers unblock it while reading. */
	sigaddset(&sigs, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sigdelset(&sigs, SIGUSR2);
	set_thread_stacks();
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Every thread started from here inherits SCHED_BATCH; the request
	 * workers switch back (app/server.c, worker_sched).  A background
	 * thread that woke with the CPU's priority over a worker preempted it
	 * wherever it was; inside a lock (an allocator arena's, a store
	 * shard's) it left the lock held while 64 workers queued on it and
	 * went to sleep one by one, and each sleeper then waited for its turn
	 * among the runnable workers: on one core, 91-501 such sleeps and
	 * 1-7 s of waiting in all per 4 s of adds, convoys of 20-90 ms, p99
	 * 8-15 ms (ADR 20; docs/performance.md, eighteenth session).
	 */
	if (g_cfg.background_batch && app_thread_batch(true))
		log_write(LOG_WARN, "cannot run the background threads under SCHED_BATCH "
			  "(BACKGROUND_SCHED_BATCH)", NULL);

	if ((sig = wire(&w, &g_cfg, err, sizeof(err)))) {
		fprintf(stderr, "cart-service: %s\n", err);
		unwire(&w);
		return sig > 0 ? sig : 1;
	}
	if (wire_flags(&w, &g_cfg, err, sizeof(err))) {
		fprintf(stderr, "cart-service: %s\n", err);
		unwire(&w);
		return 2;
	}
	app_flags_on_change(w.flags, flags_changed, &g_kick);
	if (wire_app(&g_app, &w, err, sizeof(err))) {
		fprintf(stderr, "cart-service: %s\n", err);
		unwire(&w);
		return 2;
	}
	g_started = time(NULL);
	log_start(&g_cfg, warn);
	if (g_cfg.metrics_emf && app_metrics_emf_new(&g_emf, app_metrics_process()))
		log_write(LOG_ERROR, "METRICS_EMF: out of memory, no EMF lines", NULL);
	if (g_emf && !log_enabled(LOG_INFO))
		log_write(LOG_WARN, "METRICS_EMF=true writes at level info: "
			  "with this LOG_LEVEL no EMF line is written", NULL);
	/* From here on lines go through the writer thread (app/log.h): the
	 * first requests are served before server_start returns. */
	/* At the process's own priority, as the relay (app/log.c, writer_main). */
	if (log_start_writer(0))
		log_write(LOG_WARN, "log writer not started: logging synchronously", NULL);
	/* Before the first request: AppConfig's flags count from the start. */
	if (app_flags_start(w.flags))
		log_write(LOG_ERROR, "feature flags: reloader not started: the flags "
			  "stay as they are", NULL);
	if (server_start(&srv, &g_app, err, sizeof(err))) {
		log_stop();   /* the failure is written synchronously, after the rest */
		fprintf(stderr, "cart-service: %s\n", err);
		log_write(LOG_ERROR, err, NULL);
		unwire(&w);
		return 1;
	}
	log_write(LOG_INFO, "listening", NULL);
	if (g_cfg.events_relay_enabled)
		relay_start(&rt, w.relay, &g_kick);
	else
		log_write(LOG_WARN, "event relay off (EVENTS_RELAY_ENABLED=false): "
			  "another process must publish the outbox", NULL);

	sig = wait_for_signal(&sigs);
	drain(&g_cfg, sig);
	if (!stop_within(srv, g_cfg.shutdown_timeout_seconds)) {
		log_write(LOG_WARN, "shutdown timeout: exiting with requests in flight", NULL);
		log_stop();
		fflush(stdout);
		_exit(0);   /* pending events stay in the outbox for the next start */
	}
	relay_stop(&rt);
	log_stats(&g_app);   /* the counters of the whole run, e.g. parked */
	app_metrics_emf_write(g_emf);   /* what the last interval saw */
	app_metrics_emf_free(g_emf);
	unwire(&w);
	log_write(LOG_INFO, "stopped", NULL);
	log_stop();   /* drains the queue (bounded): tests read every line */
	return 0;
}
