/*
 * METRICS_EMF=true: the figures of /metrics as CloudWatch Embedded Metric
 * Format documents, one JSON log line each (namespace CartService):
 *
 *   - one with dimension Service: requests in flight, use-case outcomes,
 *     the outbox and the breakers;
 *   - one per route and method that had requests since the previous
 *     emission (dimensions Service, Route, Method): Requests, ClientErrors
 *     (4xx), ServerErrors (5xx), Latency (mean, ms);
 *   - one per AWS operation that had calls (dimensions Service,
 *     Dependency, Operation): Calls, Errors (not "success"), Throttles,
 *     Retries, Latency (mean, ms).
 *
 * An EMF document has one value per dimension, so each route, method and
 * operation needs its own line.  Counters are sent as deltas since the
 * previous emission (CloudWatch sums them); gauges as they are.  Runs on
 * the main thread only (its previous figures are not shared).
 */
#include <stdlib.h>
#include <time.h>

#include "cart/relay.h"
#include "log.h"
#include "metrics_registry.h"
#include "ratelimit.h"

#define LOAD(c) atomic_load_explicit(&(c), memory_order_relaxed)

/* A counter's previous value, to send deltas. */
typedef struct mark {
	uint64_t n, errors4, errors5, sum_ns, throttles, retries;
} mark;

struct app_metrics_emf {
	app_metrics *m;
	mark http[METRICS_METHOD_COUNT][ROUTE_COUNT];
	mark aws[METRICS_AWS_COUNT][METRICS_AWS_OPS];
	uint64_t prev[9];            /* the service line's counters, in order */
};

int app_metrics_emf_new(app_metrics_emf **out, app_metrics *m)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -1;
	(*out)->m = m;
	return 0;
}

void app_metrics_emf_free(app_metrics_emf *e)
{
	free(e);
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct metric_def {
	const char *name;
	const char *unit;
} metric_def;

/* ,"_aws":{...} for one dimension set and these metrics. */
static void emf_head(buf *b, const char *const *dims, size_t ndims,
		     const metric_def *defs, size_t ndefs)
{
	buf_printf(b, ",\"_aws\":{\"Timestamp\":%lld,\"CloudWatchMetrics\":"
		   "[{\"Namespace\":\"CartService\",\"Dimensions\":[[",
		   (long long)wall_ms());
	for (size_t i = 0; i < ndims; i++)
		buf_printf(b, "%s\"%s\"", i ? "," : "", dims[i]);
	buf_puts(b, "]],\"Metrics\":[");
	for (size_t i = 0; i < ndefs; i++)
		buf_printf(b, "%s{\"Name\":\"%s\",\"Unit\":\"%s\"}", i ? "," : "",
			   defs[i].name, defs[i].unit);
	buf_puts(b, "]}]}");
}

static void emit(buf *b)
{
	log_write(LOG_INFO, "metrics", b->failed ? NULL : b->data);
	buf_reset(b);
}

static uint64_t delta(uint64_t *prev, uint64_t now)
{
	uint64_t d = now >= *prev ? now - *prev : now;

	*prev = now;
	return d;
}

static double mean_ms(uint64_t sum_ns, uint64_t n)
{
	return n ? (double)sum_ns / (double)n / 1e6 : 0.0;
}

static void service_line(app_metrics_emf *e, buf *b)
{
	static const char *const dims[] = { "Service" };
	static const metric_def defs[] = {
		{ "RequestsInFlight", "Count" }, { "VersionConflictRetries", "Count" },
		{ "PreconditionFailures", "Count" }, { "Conflicts", "Count" },
		{ "IdempotentReplays", "Count" }, { "AuthFailures", "Count" },
		{ "RateLimitRejections", "Count" }, { "OutboxEventsPublished", "Count" },
		{ "OutboxPublishFailures", "Count" }, { "OutboxEventsParked", "Count" },
		{ "OutboxBacklog", "Count" }, { "OutboxOldestAgeSeconds", "Seconds" },
		{ "CircuitBreakerStateDynamoDB", "None" },
		{ "CircuitBreakerStateEventBridge", "None" },
	};
	const app_metrics *m = e->m;
	cart_service_stats ss = { 0 };
	cart_relay_stats rs = { 0 };
	cart_limiter_stats ls = { 0 };
	uint64_t auth = 0;

	if (m->src.svc)
		cart_service_stats_get(m->src.svc, &ss);
	if (m->src.relay)
		cart_relay_stats_get(m->src.relay, &rs);
	if (m->src.ratelimit)
		app_ratelimit_stats(m->src.ratelimit, &ls);
	for (int i = 0; i < METRICS_AUTH_REASONS; i++)
		auth += LOAD(m->auth_failures[i]);
	emf_head(b, dims, 1, defs, sizeof(defs) / sizeof(defs[0]));
	buf_printf(b, ",\"Service\":\"cart-service\",\"RequestsInFlight\":%d",
		   atomic_load(&m->in_flight));
	buf_printf(b, ",\"VersionConflictRetries\":%llu,\"PreconditionFailures\":%llu,"
		   "\"Conflicts\":%llu,\"IdempotentReplays\":%llu,\"AuthFailures\":%llu,"
		   "\"RateLimitRejections\":%llu,\"OutboxEventsPublished\":%llu,"
		   "\"OutboxPublishFailures\":%llu,\"OutboxEventsParked\":%llu",
		   (unsigned long long)delta(&e->prev[0], ss.conflicts),
		   (unsigned long long)delta(&e->prev[1], LOAD(m->precondition_failed)),
		   (unsigned long long)delta(&e->prev[2], LOAD(m->conflicts)),
		   (unsigned long long)delta(&e->prev[3], LOAD(m->replays)),
		   (unsigned long long)delta(&e->prev[4], auth),
		   (unsigned long long)delta(&e->prev[5], ls.limited),
		   (unsigned long long)delta(&e->prev[6], rs.published),
		   (unsigned long long)delta(&e->prev[7], rs.publish_failures),
		   (unsigned long long)delta(&e->prev[8], rs.parked));
	buf_printf(b, ",\"OutboxBacklog\":%zu,\"OutboxOldestAgeSeconds\":%.3f",
		   rs.backlog, (double)rs.oldest_age_ms / 1000.0);
	buf_printf(b, ",\"CircuitBreakerStateDynamoDB\":%d,\"CircuitBreakerStateEventBridge\":%d",
		   m->src.dynamo ? metrics_breaker_value(cart_aws_client_breaker_state(m->src.dynamo)) : 0,
		   m->src.events ? metrics_breaker_value(cart_aws_client_breaker_state(m->src.events)) : 0);
	emit(b);
}

static void http_line(app_metrics_emf *e, buf *b, int me, int ro)
{
	static const char *const dims[] = { "Service", "Route", "Method" };
	static const metric_def defs[] = {
		{ "Requests", "Count" }, { "ClientErrors", "Count" },
		{ "ServerErrors", "Count" }, { "Latency", "Milliseconds" },
	};
	const app_metrics *m = e->m;
	mark *k = &e->http[me][ro];
	uint64_t n = 0, e4 = 0, e5 = 0;

	for (int st = 0; st < METRICS_STATUSES; st++) {
		uint64_t v = LOAD(m->requests[me][ro][st]);
		int status = st + METRICS_STATUS_MIN;
		n += v;
		e4 += status >= 400 && status < 500 ? v : 0;
		e5 += status >= 500 ? v : 0;
	}
	if (n == k->n)
		return;
	n = delta(&k->n, n);
	emf_head(b, dims, 3, defs, 4);
	buf_printf(b, ",\"Service\":\"cart-service\",\"Route\":\"%s\",\"Method\":\"%s\","
		   "\"Requests\":%llu,\"ClientErrors\":%llu,\"ServerErrors\":%llu,"
		   "\"Latency\":%.3f", app_route_pattern((app_route)ro),
		   metrics_method_name(me), (unsigned long long)n,
		   (unsigned long long)delta(&k->errors4, e4),
		   (unsigned long long)delta(&k->errors5, e5),
		   mean_ms(delta(&k->sum_ns, LOAD(m->duration[me][ro].sum_ns)), n));
	emit(b);
}

static void aws_line(app_metrics_emf *e, buf *b, int s, int op)
{
	static const char *const dims[] = { "Service", "Dependency", "Operation" };
	static const metric_def defs[] = {
		{ "Calls", "Count" }, { "Errors", "Count" }, { "Throttles", "Count" },
		{ "Retries", "Count" }, { "Latency", "Milliseconds" },
	};
	const metrics_aws *a = &e->m->aws[s];
	mark *k = &e->aws[s][op];
	uint64_t n = 0, errors = 0;

	for (int o = 0; o < METRICS_OUTCOME_COUNT; o++) {
		n += LOAD(a->calls[op][o]);
		errors += o == METRICS_OK ? 0 : LOAD(a->calls[op][o]);
	}
	if (n == k->n)
		return;
	n = delta(&k->n, n);
	emf_head(b, dims, 3, defs, 5);
	buf_printf(b, ",\"Service\":\"cart-service\",\"Dependency\":\"%s\",\"Operation\":\"%s\","
		   "\"Calls\":%llu,\"Errors\":%llu,\"Throttles\":%llu,\"Retries\":%llu,"
		   "\"Latency\":%.3f", s == METRICS_AWS_DYNAMODB ? "DynamoDB" : "EventBridge",
		   metrics_aws_operation_name(op), (unsigned long long)n,
		   (unsigned long long)delta(&k->errors4, errors),
		   (unsigned long long)delta(&k->throttles, LOAD(a->throttles[op])),
		   (unsigned long long)delta(&k->retries, LOAD(a->retries[op])),
		   mean_ms(delta(&k->sum_ns, LOAD(a->duration[op].sum_ns)), n));
	emit(b);
}

void app_metrics_emf_write(app_metrics_emf *e)
{
	buf b;

	if (!e || !log_enabled(LOG_INFO))
		return;
	buf_init(&b, 4096);
	service_line(e, &b);
	for (int me = 0; me < METRICS_METHOD_COUNT; me++)
		for (int ro = 0; ro < ROUTE_COUNT; ro++)
			http_line(e, &b, me, ro);
	for (int s = 0; s < METRICS_AWS_COUNT; s++)
		for (int op = 0; op < METRICS_AWS_OPS; op++)
			aws_line(e, &b, s, op);
	buf_release(&b);
}
