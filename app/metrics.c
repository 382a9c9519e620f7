/*
 * Recording metrics: bounded label ids and relaxed atomic increments on
 * fixed arrays (metrics.h).  Nothing here locks or allocates per request.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_registry.h"

static app_metrics g_process;    /* app/ owns process-wide state (STYLE 7) */

app_metrics *app_metrics_process(void)
{
	return &g_process;
}

int app_metrics_new(app_metrics **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -1;
}

void app_metrics_free(app_metrics *m)
{
	free(m);
}

void app_metrics_set_sources(app_metrics *m, const app_metrics_sources *src)
{
	m->src = *src;
}

/* --- bounded labels --------------------------------------------------------- */

static const char *const methods[METRICS_METHOD_COUNT] = {
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
};

int metrics_method_id(const char *method)
{
	for (int i = 0; method && i < METRICS_METHOD_OTHER; i++)
		if (!strcmp(method, methods[i]))
			return i;
	return METRICS_METHOD_OTHER;
}

const char *metrics_method_name(int id)
{
	return id >= 0 && id < METRICS_METHOD_COUNT ? methods[id] : "other";
}

/* Upper bounds in ns and as Prometheus prints them; le is inclusive. */
static const int64_t bucket_ns[METRICS_BUCKETS] = {
	500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
	100000000, 250000000, 500000000, 1000000000, 2500000000LL,
	5000000000LL, 10000000000LL,
};
static const char *const bucket_le[METRICS_SLOTS] = {
	"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
	"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
};

int metrics_bucket(int64_t ns)
{
	int i = 0;

	while (i < METRICS_BUCKETS && ns > bucket_ns[i])
		i++;
	return i;
}

const char *metrics_bucket_le(int i)
{
	return i >= 0 && i < METRICS_SLOTS ? bucket_le[i] : "+Inf";
}

static const char *const aws_ops[METRICS_AWS_OPS] = {
	"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
	"BatchWriteItem", "TransactWriteItems", "DescribeTable", "CreateTable",
	"UpdateTable", "UpdateTimeToLive", "PutEvents", "other",
};

int metrics_aws_operation_id(const char *op)
{
	for (int i = 0; op && i < METRICS_AWS_OPS - 1; i++)
		if (!strcmp(op, aws_ops[i]))
			return i;
	return METRICS_AWS_OPS - 1;
}

const char *metrics_aws_operation_name(int id)
{
	return id >= 0 && id < METRICS_AWS_OPS ? aws_ops[id] : "other";
}

static const char *const outcomes[METRICS_OUTCOME_COUNT] = {
	"success", "conditional_check_failed", "transaction_canceled",
	"throttled", "client_error", "server_error", "unavailable",
	"transport_error",
};

const char *metrics_aws_outcome_name(metrics_aws_outcome o)
{
	return (unsigned)o < METRICS_OUTCOME_COUNT ? outcomes[o] : "client_error";
}

/* The AWS error types that mean "slow down" (the SDKs' throttling list). */
static bool throttling_type(const char *t)
{
	static const char *const names[] = {
		"ThrottlingException", "Throttling", "ThrottledException",
		"RequestThrottledException", "TooManyRequestsException",
		"ProvisionedThroughputExceededException",
		"TransactionInProgressException", "RequestLimitExceeded",
		"BandwidthLimitExceeded", "LimitExceededException",
		"RequestThrottled", "SlowDown", "EC2ThrottledException",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(t, names[i]))
			return true;
	return false;
}

metrics_aws_outcome metrics_aws_outcome_of(const cart_aws_call_info *info)
{
	const char *type = info->error_type ? info->error_type : "";

	if (info->rc == CART_EUNAVAILABLE || (info->breaker_refused && !info->status))
		return METRICS_UNAVAILABLE;
	if (info->rc != CART_OK || info->status == 0)
		return METRICS_TRANSPORT_ERROR;
	if (info->status >= 200 && info->status < 300)
		return METRICS_OK;
	if (!strcmp(type, "ConditionalCheckFailedException"))
		return METRICS_CONDITIONAL_CHECK_FAILED;
	if (!strcmp(type, "TransactionCanceledException"))
		return METRICS_TRANSACTION_CANCELED;
	if (info->status == 429 || throttling_type(type))
		return METRICS_THROTTLED;
	return info->status >= 500 ? METRICS_SERVER_ERROR : METRICS_CLIENT_ERROR;
}

int metrics_breaker_value(cart_breaker_state s)
{
	return s == CART_BREAKER_OPEN ? 2 : s == CART_BREAKER_HALF_OPEN ? 1 : 0;
}

/* "missing" (no bearer token), then cart_jwt_status_name's names. */
static const char *const auth_reasons[METRICS_AUTH_REASONS] = {
	"missing", "malformed", "too_large", "alg_refused", "unknown_kid",
	"bad_signature", "expired", "not_yet_valid", "bad_issuer",
	"bad_audience", "no_subject", "keys_unavailable", "nomem", "other",
};

int metrics_auth_reason_id(const char *reason)
{
	for (int i = 0; reason && i < METRICS_AUTH_REASONS - 1; i++)
		if (!strcmp(reason, auth_reasons[i]))
			return i;
	return METRICS_AUTH_REASONS - 1;
}

const char *metrics_auth_reason_name(int id)
{
	return id >= 0 && id < METRICS_AUTH_REASONS ? auth_reasons[id] : "other";
}

/* --- recording --------------------------------------------------------------- */

static void bump(counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void observe(metrics_histogram *h, int64_t ns)
{
	if (ns < 0)
		ns = 0;
	bump(&h->slot[metrics_bucket(ns)], 1);
	bump(&h->sum_ns, (uint64_t)ns);
}

uint64_t metrics_histogram_count(const metrics_histogram *h)
{
	uint64_t n = 0;

	for (int i = 0; i < METRICS_SLOTS; i++)
		n += atomic_load_explicit(&h->slot[i], memory_order_relaxed);
	return n;
}

static int aws_service_id(const char *service)
{
	if (service && !strcmp(service, "dynamodb"))
		return METRICS_AWS_DYNAMODB;
	if (service && !strcmp(service, "events"))
		return METRICS_AWS_EVENTS;
	return -1;
}

void app_metrics_aws_call(app_metrics *m, const cart_aws_call_info *info)
{
	int s = aws_service_id(info->service);
	int op = metrics_aws_operation_id(info->operation);
	metrics_aws *a;

	if (s < 0)
		return;
	a = &m->aws[s];
	bump(&a->calls[op][metrics_aws_outcome_of(info)], 1);
	observe(&a->duration[op], info->duration_ns);
	if (info->attempts > 1)
		bump(&a->retries[op], (uint64_t)(info->attempts - 1));
	if (info->throttles > 0)
		bump(&a->throttles[op], (uint64_t)info->throttles);
}

int app_stage_metrics_begin(app_request *r, void *self)
{
	app_metrics *m = self;

	atomic_fetch_add_explicit(&m->in_flight, 1, memory_order_relaxed);
	r->metrics_in_flight = true;
	return APP_NEXT;
}

/* Use-case outcomes the status and the request tell apart. */
static void count_outcome(app_metrics *m, const app_request *r, int status)
{
	if (r->replayed) {
		bump(&m->replays, 1);
		return;
	}
	if (status == 412)
		bump(&m->precondition_failed, 1);
	else if (status == 409)
		bump(&m->conflicts, 1);
	else if (status == 401 && r->auth_failure)
		bump(&m->auth_failures[metrics_auth_reason_id(r->auth_failure)], 1);
	if (r->auth_log_only) {   /* auth_enforce off: counted, not refused */
		bump(&m->auth_failures[metrics_auth_reason_id(r->auth_failure)], 1);
		bump(&m->auth_unenforced, 1);
	}
}

int app_stage_metrics(app_request *r, void *self)
{
	app_metrics *m = self;
	int method = metrics_method_id(r->http->method);
	int route = r->route < ROUTE_COUNT ? (int)r->route : ROUTE_NONE;
	int status = r->res->status;

	if (status < METRICS_STATUS_MIN || status >= METRICS_STATUS_MIN + METRICS_STATUSES)
		status = 500;   /* never expected: every answer has a status */
	bump(&m->requests[method][route][status - METRICS_STATUS_MIN], 1);
	observe(&m->duration[method][route], app_request_end_ns(r) - r->start_ns);
	count_outcome(m, r, r->res->status);
	/* Last, with release order: a scrape that sees nothing in flight
	 * sees every earlier request counted. */
	if (r->metrics_in_flight)
		atomic_fetch_sub_explicit(&m->in_flight, 1, memory_order_release);
	return APP_NEXT;
}
