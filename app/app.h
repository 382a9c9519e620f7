#ifndef APP_APP_H
#define APP_APP_H

/*
 * The application context (what every request shares, read-only once the
 * server runs) and the per-request context (what the stages of one request
 * share: request id, route, principal, trace, timings, deadline).
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cart/call.h"
#include "cart/event.h"
#include "cart/ports.h"
#include "cart/relay.h"
#include "cart/service.h"
#include "config.h"
#include "http.h"

/*
 * Wakes the event relay after a commit, so events leave at once instead of
 * at the next poll.  Signalling is cheap and never blocks a request.
 */
typedef struct relay_kick {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_int pending;          /* set by kicks, cleared by the waiter */
	cart_relay *relay;           /* guarded by lock; borrowed, NULL: none.
				      * Kicked too, so a pass in progress
				      * fetches the new events at once */
} relay_kick;

void relay_kick_signal(relay_kick *k);            /* accepts NULL */
/* Sleeps up to ms, less if kicked; true if kicked.  A kick is cleared
 * 2 ms after it came, so the commits of those 2 ms join the same pass. */
bool relay_kick_wait(relay_kick *k, int64_t ms);

/*
 * A readiness check, registered at wiring time.  Returns CART_OK when the
 * dependency is usable, APP_READY_DEGRADED when it works but is under
 * strain (reported as "degraded", /ready stays 200), or a cart_err when
 * it is not usable (/ready 503); may append JSON members (each starting
 * with a comma) to detail, e.g. ",\"circuitBreaker\":\"open\"".
 * Thread-safe.
 */
#define APP_READY_DEGRADED 1
typedef int (*app_ready_fn)(void *self, buf *detail);

typedef struct app_ready_check {
	const char *name;
	app_ready_fn check;
	void *self;
} app_ready_check;

#define APP_MAX_READY_CHECKS 8

/*
 * A stats source, registered at wiring time: appends its counters as JSON
 * members, each starting with a comma (",\"backlog\":3").  Thread-safe.
 * Read by the periodic stats log line (and the metrics endpoint later).
 */
typedef void (*app_stats_fn)(void *self, buf *out);

typedef struct app_stats_source {
	const char *name;
	app_stats_fn fn;
	void *self;
} app_stats_source;

#define APP_MAX_STATS 12

typedef struct app_request app_request;

/* A stage returns APP_NEXT to go on, or APP_DONE once it has answered. */
enum { APP_NEXT = 0, APP_DONE = 1 };
typedef int (*app_stage_fn)(app_request *r, void *self);

/* nginx's phases, in the order they run (see pipeline.c). */
typedef enum app_phase {
	APP_PHASE_READ,        /* framing, the body */
	APP_PHASE_ROUTE,       /* route, method, ids, OPTIONS */
	APP_PHASE_PREACCESS,   /* who is calling (token), rate limits */
	APP_PHASE_ACCESS,      /* may they call at all */
	APP_PHASE_CONTENT,     /* the handler */
	APP_PHASE_LOG,         /* after the response went out; always runs */
	APP_PHASE_COUNT
} app_phase;

#define APP_MAX_STAGES 8

typedef struct app_stage {
	const char *name;
	app_stage_fn fn;
	void *self;
} app_stage;

typedef struct app_pipeline {
	app_stage stages[APP_PHASE_COUNT][APP_MAX_STAGES];
	size_t count[APP_PHASE_COUNT];
} app_pipeline;

/* Everything a request needs; shared read-only by all worker threads. */
typedef struct app_ctx {
	const app_config *cfg;
	cart_service *svc;
	const cart_ids *ids;
	relay_kick *kick;            /* NULL when this process does not relay */
	const cart_relay *relay;     /* NULL when this process does not relay */
	app_pipeline pipeline;
	struct app_xray *xray;       /* NULL: AWS_XRAY_ENABLED=false */
	app_ready_check ready[APP_MAX_READY_CHECKS];
	size_t ready_count;
	app_stats_source stats[APP_MAX_STATS];
	size_t stats_count;
	atomic_int draining;         /* set once shutdown begins */
	struct app_metrics *metrics; /* NULL: METRICS_ENABLED=false, no /metrics */
	struct app_flags *flags;     /* feature flags (flags.h); NULL: defaults */
} app_ctx;

/* Registers a readiness check (wiring time only).  -1 when full. */
int app_ready_add(app_ctx *app, const char *name, app_ready_fn check,
		  void *self);

/* Registers a stats source (wiring time only).  -1 when full. */
int app_stats_add(app_ctx *app, const char *name, app_stats_fn fn, void *self);
/* Every source as members ",\"name\":{...}". */
void app_stats_write(const app_ctx *app, buf *out);

/* Route ids; router.c has the table. */
typedef enum app_route {
	ROUTE_NONE,
	ROUTE_HEALTH,
	ROUTE_READY,
	ROUTE_METRICS,               /* only with METRICS_ENABLED (app->metrics) */
	ROUTE_CART,
	ROUTE_ITEMS,
	ROUTE_ITEM,
	ROUTE_ASTERISK,              /* the "*" target (OPTIONS *) */
	ROUTE_COUNT
} app_route;

#define APP_SUB_MAX 255

/* One request, from the first stage to the log; lives on the worker's stack. */
struct app_request {
	app_ctx *app;
	const http_request *http;
	http_response *res;
	int64_t start_ns;            /* monotonic, for durations */
	int64_t start_wall_us;       /* wall clock when it began */
	int64_t end_ns;              /* monotonic, answer sent; 0: not yet (app_request_end_ns) */
	int64_t deadline_ms;         /* wall clock: the request must be done by */

	/* READ */
	int64_t content_length;      /* -1: none */
	const char *body;            /* body_len bytes, not NUL-terminated */
	size_t body_len;

	/* ROUTE */
	app_route route;
	bool head;                   /* HEAD: answered as GET, without body */
	char path[HTTP_MAX_PATH];    /* raw path, without query */
	char user_id[CART_ID_MAX + 1];   /* percent-decoded; "" if invalid */
	char item_id[CART_ID_MAX + 1];
	bool ids_valid;

	/* PREACCESS / ACCESS */
	bool authenticated;
	char sub[APP_SUB_MAX + 1];
	cart_principal principal;
	const char *auth_failure;    /* why a token was refused (log field) */
	bool auth_log_only;          /* refused token let through: auth_enforce off */
	const char *error;           /* cart_err_name of a backend failure (log field) */
	char rate_key[APP_SUB_MAX + 8];  /* "sub:..." or "ip:..." */

	/* Trace context (trace_stage.c): the X-Ray root of the request, set
	 * in READ before any other stage, so every log line may carry it. */
	char trace_id[40];
	bool sampled;
	/* What events and downstream calls carry:
	 * "Root=...;Parent=<our segment id>;Sampled=1" (cart_call_ctx). */
	char trace_header[CART_TRACE_HEADER_MAX + 1];
	struct app_xray_segment *segment;   /* owned; NULL: not recorded */

	/* CONTENT / LOG: for metrics */
	bool replayed;               /* an idempotent replay answered */
	bool kick_relay;             /* a commit: wake the relay (LOG) */
	bool metrics_in_flight;      /* counted in flight (metrics.c) */

	/* What the use cases receive. */
	cart_call_ctx call;

	char body_buf[HTTP_MAX_BODY + 1];
};

/*
 * Per-request start: request id, timings, the call context.  Also makes r
 * the calling thread's current request for the logs (log_request_begin:
 * its request_id and trace_id on every line) until app_pipeline_log ends,
 * so r and res must outlive that call, made on the same thread.
 */
void app_request_init(app_request *r, app_ctx *app, const http_request *http,
		      http_response *res);

/* A header of the request, or NULL. */
const char *app_header(const app_request *r, const char *name);

/* Answers with a problem (instance: the request path). Returns APP_DONE. */
int app_fail(app_request *r, int status, const char *code, const char *detail);

/* Monotonic nanoseconds, for durations and deadlines (pipeline.c). */
int64_t app_mono_ns(void);
/*
 * When r's answer was sent (monotonic ns): read once, at the first call
 * after the answer (the send, else the first stage of the log phase that
 * asks), then the same for every stage that times the request.
 */
int64_t app_request_end_ns(app_request *r);

/* The route's pattern ("/v1/cart/{userID}", "unmatched"): logs, metrics. */
const char *app_route_pattern(app_route route);

/* The /v1 cart routes: the ones that need a token and are rate limited. */
static inline bool app_route_is_cart(app_route route)
{
	return route == ROUTE_CART || route == ROUTE_ITEMS || route == ROUTE_ITEM;
}

/* --- the pipeline (pipeline.c) ------------------------------------------ */

/* Adds a stage at the end of phase (wiring time only).  -1 when full. */
int app_pipeline_add(app_pipeline *p, app_phase phase, const char *name,
		     app_stage_fn fn, void *self);
/* Adds a stage at the start of phase (wiring time only).  -1 when full. */
int app_pipeline_add_front(app_pipeline *p, app_phase phase, const char *name,
			   app_stage_fn fn, void *self);
/* The standard stages: framing, body, route, content, access log. */
int app_pipeline_init_default(app_pipeline *p, app_ctx *app);
/*
 * Runs READ..CONTENT until a stage answers; always leaves a response
 * (404 if nothing answered, 500 if the response could not be built).
 */
void app_pipeline_run(const app_pipeline *p, app_request *r);
/* Runs every LOG stage, then ends the thread's current request for the
 * logs; call after the response went out. */
void app_pipeline_log(const app_pipeline *p, app_request *r);

/*
 * The whole exchange in-process (tests and fuzzing): init, run, log.
 * Thread-safe.
 */
void app_handle(app_ctx *app, const http_request *http, http_response *res);

/* --- stages (one file each) --------------------------------------------- */

int app_stage_framing(app_request *r, void *self);   /* framing.c */
int app_stage_read_body(app_request *r, void *self); /* framing.c */
int app_stage_route(app_request *r, void *self);     /* router.c */
/*
 * router.c (self: the app_ctx), PREACCESS after authentication: the
 * second half of the store hint the route made (cart_service_warm_next),
 * so what it reads overlaps the stages between it and the handler.
 */
int app_stage_warm_next(app_request *r, void *self);
int app_stage_content(app_request *r, void *self);   /* handlers.c */
int app_stage_access_log(app_request *r, void *self);/* access_log.c */
/*
 * relay_kick.c (self: the app_ctx), first in LOG: wakes the event relay
 * after a commit, once the answer is out.  The woken relay (at a better
 * priority than the workers) may take the CPU from its waker at once;
 * before the answer, that wait was the client's.
 */
int app_stage_relay_kick(app_request *r, void *self);
/*
 * trace_stage.c (self: the app_ctx).  app_stage_trace (READ, first):
 * X-Amzn-Trace-Id or traceparent, else a new root; the sampling
 * decision; the X-Amzn-Trace-Id response header; the segment when
 * sampled with X-Ray on.  Never answers.  app_stage_trace_end (LOG):
 * sends and frees the segment.
 */
int app_stage_trace(app_request *r, void *self);
int app_stage_trace_end(app_request *r, void *self);

#endif
