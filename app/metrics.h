#ifndef APP_METRICS_H
#define APP_METRICS_H

/*
 * Metrics: counters the request path and the AWS clients bump, rendered
 * on GET /metrics in the Prometheus text format 0.0.4 (metrics_render.c)
 * and, with METRICS_EMF=true, as CloudWatch Embedded Metric Format lines
 * (metrics_emf.c).
 *
 * Hot path: every counter is a relaxed C11 atomic in a fixed array indexed
 * by bounded label ids (method, route pattern, status, AWS operation,
 * outcome), so recording takes no lock and allocates nothing.  Histograms
 * are atomic per-bucket counters (not cumulative) plus a nanosecond sum;
 * the renderer accumulates them.  Labels never carry raw paths or ids.
 *
 * Threads: the record functions and app_metrics_render() are safe from any
 * number of threads at once; app_metrics_set_sources() is wiring time only.
 */

#include <stdbool.h>
#include <stdint.h>

#include "app.h"
#include "aws/aws.h"
#include "buf.h"

typedef struct app_metrics app_metrics;
typedef struct app_ratelimit app_ratelimit;

/* Bounded HTTP methods: the ones the router knows, then "other". */
enum { METRICS_GET, METRICS_HEAD, METRICS_POST, METRICS_PUT, METRICS_PATCH,
       METRICS_DELETE, METRICS_OPTIONS, METRICS_METHOD_OTHER,
       METRICS_METHOD_COUNT };

/* Histogram buckets (upper bounds, seconds): 0.5 ms .. 10 s, then +Inf. */
#define METRICS_BUCKETS 14
#define METRICS_SLOTS (METRICS_BUCKETS + 1)

/* AWS services with metrics ("dynamodb", "events"), then none. */
enum { METRICS_AWS_DYNAMODB, METRICS_AWS_EVENTS, METRICS_AWS_COUNT };

/* Outcomes of one AWS call, all attempts together. */
typedef enum metrics_aws_outcome {
	METRICS_OK, METRICS_CONDITIONAL_CHECK_FAILED, METRICS_TRANSACTION_CANCELED,
	METRICS_THROTTLED, METRICS_CLIENT_ERROR, METRICS_SERVER_ERROR,
	METRICS_UNAVAILABLE, METRICS_TRANSPORT_ERROR, METRICS_OUTCOME_COUNT
} metrics_aws_outcome;

#define METRICS_AWS_OPS 14       /* 13 known operations, then "other" */

/* Why a /v1 request got 401: "missing", then the JWT statuses, "other". */
#define METRICS_AUTH_REASONS 14

/*
 * The process's registry: what the stages and the AWS observer record
 * into (the observer is one const table shared by every client, so it
 * cannot carry a pointer).  Never NULL, never freed.
 */
app_metrics *app_metrics_process(void);

/* A separate, zeroed registry (tests).  app_metrics_free accepts NULL. */
int app_metrics_new(app_metrics **out);
void app_metrics_free(app_metrics *m);

/* What /metrics reads at scrape time; borrowed, each may be NULL. */
typedef struct app_metrics_sources {
	const cart_service *svc;
	const cart_relay *relay;          /* NULL: this process does not relay */
	cart_aws_client *dynamo;
	cart_aws_client *events;
	const app_ratelimit *ratelimit;
	const struct app_xray *xray;      /* NULL unless AWS_XRAY_ENABLED */
	const cart_repo *memory_repo;     /* the memory store's pacing; else NULL */
	const struct app_secrets *secrets;   /* reads and rotations; may be NULL */
	cart_aws_creds *creds;            /* NULL: no AWS client in this process */
	const struct app_flags *flags;    /* NULL: the defaults are shown */
	struct app_auth *auth;            /* NULL: AUTH_ENABLED=false */
} app_metrics_sources;

void app_metrics_set_sources(app_metrics *m, const app_metrics_sources *src);

/* --- bounded labels (exposed for tests) ----------------------------------- */

int metrics_method_id(const char *method);
const char *metrics_method_name(int id);
/* The bucket (0..METRICS_BUCKETS, the last is +Inf) of a duration. */
int metrics_bucket(int64_t ns);
/* "0.0005" .. "10", "+Inf" for i == METRICS_BUCKETS. */
const char *metrics_bucket_le(int i);
int metrics_aws_operation_id(const char *op);
const char *metrics_aws_operation_name(int id);
metrics_aws_outcome metrics_aws_outcome_of(const cart_aws_call_info *info);
const char *metrics_aws_outcome_name(metrics_aws_outcome o);
/* 0 closed, 1 half-open, 2 open (the order of severity). */
int metrics_breaker_value(cart_breaker_state s);
int metrics_auth_reason_id(const char *reason);
const char *metrics_auth_reason_name(int id);

/* --- recording -------------------------------------------------------------- */

/* One AWS call (from aws_observe.c).  Other services are ignored. */
void app_metrics_aws_call(app_metrics *m, const cart_aws_call_info *info);

/* Stages (self: app_metrics): READ (first) counts the request in flight;
 * LOG counts it once, by method, route pattern, status and duration. */
int app_stage_metrics_begin(app_request *r, void *self);
int app_stage_metrics(app_request *r, void *self);

/* --- views ------------------------------------------------------------------ */

/*
 * Every metric in the Prometheus text format 0.0.4 (metrics_render.c).
 * scrape: called by a request counted in flight, which is not reported.
 */
void app_metrics_render(app_metrics *m, buf *out, bool scrape);

/* The GET /metrics handler (CONTENT; r->app->metrics). */
void app_metrics_respond(app_request *r);

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * CloudWatch Embedded Metric Format (metrics_emf.c): writes, through the
 * app logger at info, one line of process-wide figures, then one per
 * route and method, and one per AWS operation, that saw calls since the
 * previous emission (counters as deltas).  Keeps the previous figures in
 * *state; call from one thread only.  state: app_metrics_emf_new.
 */
typedef struct app_metrics_emf app_metrics_emf;
int app_metrics_emf_new(app_metrics_emf **out, app_metrics *m);
void app_metrics_emf_free(app_metrics_emf *e);   /* accepts NULL */
void app_metrics_emf_write(app_metrics_emf *e);

#endif
