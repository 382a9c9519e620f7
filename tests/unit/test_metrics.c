/*
 * Metrics helpers: bucket bounds, bounded labels, AWS outcome
 * classification, and a registry wired into the pipeline counting each
 * request once and rendering what it counted.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "jwt/jwt.h"
#include "log.h"
#include "memory/memory_repo.h"
#include "metrics.h"
#include "system/system.h"
#include "unit/suites.h"

/* --- labels ---------------------------------------------------------------- */

START_TEST(test_metrics_bucket_bounds_are_inclusive)
{
	ck_assert_int_eq(metrics_bucket(0), 0);
	ck_assert_int_eq(metrics_bucket(500000), 0);          /* le 0.0005 */
	ck_assert_int_eq(metrics_bucket(500001), 1);
	ck_assert_int_eq(metrics_bucket(1000000000), 10);     /* le 1 */
	ck_assert_str_eq(metrics_bucket_le(10), "1");
	ck_assert_int_eq(metrics_bucket(10000000000LL), METRICS_BUCKETS - 1);
	ck_assert_int_eq(metrics_bucket(10000000001LL), METRICS_BUCKETS);
	ck_assert_str_eq(metrics_bucket_le(METRICS_BUCKETS), "+Inf");
	ck_assert_str_eq(metrics_bucket_le(0), "0.0005");
}
END_TEST

START_TEST(test_metrics_labels_are_bounded)
{
	ck_assert_str_eq(metrics_method_name(metrics_method_id("PATCH")), "PATCH");
	ck_assert_str_eq(metrics_method_name(metrics_method_id("BREW")), "other");
	ck_assert_str_eq(metrics_method_name(metrics_method_id("get")), "other");
	ck_assert_str_eq(metrics_method_name(metrics_method_id(NULL)), "other");
	ck_assert_str_eq(metrics_aws_operation_name(metrics_aws_operation_id("Query")),
			 "Query");
	ck_assert_str_eq(metrics_aws_operation_name(metrics_aws_operation_id("PutEvents")),
			 "PutEvents");
	ck_assert_str_eq(metrics_aws_operation_name(metrics_aws_operation_id("ListTables")),
			 "other");
	ck_assert_str_eq(app_route_pattern(ROUTE_ITEM), "/v1/cart/{userID}/items/{itemID}");
	ck_assert_str_eq(app_route_pattern(ROUTE_METRICS), "/metrics");
	ck_assert_str_eq(app_route_pattern(ROUTE_NONE), "unmatched");
}
END_TEST

/* The reason table holds every name the JWT adapter gives, plus "missing". */
START_TEST(test_metrics_auth_reasons_cover_the_jwt_statuses)
{
	ck_assert_str_eq(metrics_auth_reason_name(metrics_auth_reason_id("missing")),
			 "missing");
	for (int st = CART_JWT_MALFORMED; st <= CART_JWT_NOMEM; st++) {
		const char *n = cart_jwt_status_name(st);
		ck_assert_str_eq(metrics_auth_reason_name(metrics_auth_reason_id(n)), n);
	}
	ck_assert_str_eq(metrics_auth_reason_name(metrics_auth_reason_id("x")), "other");
}
END_TEST

static metrics_aws_outcome outcome(int rc, long status, const char *type,
				   bool refused)
{
	cart_aws_call_info i = { .service = "dynamodb", .operation = "PutItem",
				 .rc = rc, .status = status, .error_type = type,
				 .attempts = refused ? 0 : 1, .breaker_refused = refused };

	return metrics_aws_outcome_of(&i);
}

START_TEST(test_metrics_aws_outcomes)
{
	ck_assert_int_eq(outcome(CART_OK, 200, "", false), METRICS_OK);
	ck_assert_int_eq(outcome(CART_OK, 400, "ConditionalCheckFailedException", false),
			 METRICS_CONDITIONAL_CHECK_FAILED);
	ck_assert_int_eq(outcome(CART_OK, 400, "TransactionCanceledException", false),
			 METRICS_TRANSACTION_CANCELED);
	ck_assert_int_eq(outcome(CART_OK, 400, "ProvisionedThroughputExceededException", false),
			 METRICS_THROTTLED);
	ck_assert_int_eq(outcome(CART_OK, 400, "ThrottlingException", false),
			 METRICS_THROTTLED);
	ck_assert_int_eq(outcome(CART_OK, 400, "ValidationException", false),
			 METRICS_CLIENT_ERROR);
	ck_assert_int_eq(outcome(CART_OK, 500, "InternalServerError", false),
			 METRICS_SERVER_ERROR);
	ck_assert_int_eq(outcome(CART_EUNAVAILABLE, 0, "", true), METRICS_UNAVAILABLE);
	ck_assert_int_eq(outcome(CART_EBACKEND, 0, "", false), METRICS_TRANSPORT_ERROR);
	ck_assert_str_eq(metrics_aws_outcome_name(METRICS_UNAVAILABLE), "unavailable");
}
END_TEST

/* --- the registry in the pipeline ------------------------------------------ */

static app_metrics *m;
static app_config cfg;
static cart_repo repo;
static cart_clock clk;
static cart_ids ids;
static cart_service *svc;
static app_ctx app;

static void setup(void)
{
	cart_service_config sc;
	app_metrics_sources src = { 0 };

	log_setup(LOG_ERROR, 2);
	memset(&cfg, 0, sizeof(cfg));
	cfg.request_timeout_ms = 10000;
	ck_assert_int_eq(app_metrics_new(&m), 0);
	ck_assert_int_eq(cart_memory_repo_new(&repo), CART_OK);
	cart_system_clock_init(&clk);
	cart_system_ids_init(&ids);
	cart_service_config_init(&sc);
	ck_assert_int_eq(cart_service_new(&svc, &sc, &repo, &clk, &ids), CART_OK);
	memset(&app, 0, sizeof(app));
	app.cfg = &cfg;
	app.svc = svc;
	app.ids = &ids;
	app.metrics = m;
	src.svc = svc;
	app_metrics_set_sources(m, &src);
	ck_assert_int_eq(app_pipeline_init_default(&app.pipeline, &app), 0);
	ck_assert_int_eq(app_pipeline_add_front(&app.pipeline, APP_PHASE_READ, "mb",
						app_stage_metrics_begin, m), 0);
	ck_assert_int_eq(app_pipeline_add(&app.pipeline, APP_PHASE_LOG, "m",
					  app_stage_metrics, m), 0);
}

static void teardown(void)
{
	cart_service_free(svc);
	cart_repo_destroy(&repo);
	cart_ids_destroy(&ids);
	cart_clock_destroy(&clk);
	app_metrics_free(m);
}

static const char *no_header(void *ctx, const char *name)
{
	return NULL;
}

static int run(const char *method, const char *target)
{
	http_request req = { method, target, "127.0.0.1", no_header, NULL, NULL, 0,
			     NULL, NULL };
	http_response res;
	int status;

	http_response_init(&res);
	app_handle(&app, &req, &res);
	status = res.status;
	http_response_release(&res);
	return status;
}

static char *render(void)
{
	buf b;
	size_t len;

	buf_init(&b, 1 << 20);
	app_metrics_render(m, &b, false);
	ck_assert(!b.failed);
	return buf_take(&b, &len);
}

START_TEST(test_metrics_pipeline_counts_each_request_once)
{
	char *text;

	ck_assert_int_eq(run("GET", "/v1/cart/alice"), 200);
	ck_assert_int_eq(run("GET", "/v1/cart/bob"), 200);
	ck_assert_int_eq(run("GET", "/nope"), 404);
	ck_assert_int_eq(run("BREW", "/health"), 405);
	ck_assert_int_eq(run("GET", "/metrics"), 200);
	text = render();
	ck_assert_ptr_nonnull(strstr(text,
		"http_requests_total{method=\"GET\",route=\"/v1/cart/{userID}\",status=\"200\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text,
		"http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text,
		"http_requests_total{method=\"other\",route=\"/health\",status=\"405\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text,
		"http_request_duration_seconds_count{method=\"GET\",route=\"/v1/cart/{userID}\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text,
		"http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/cart/{userID}\",le=\"+Inf\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text, "http_requests_in_flight 0\n"));
	ck_assert_ptr_null(strstr(text, "alice"));
	free(text);
}
END_TEST

START_TEST(test_metrics_aws_calls_rendered)
{
	cart_aws_call_info get = { .service = "dynamodb", .operation = "GetItem",
				   .rc = CART_OK, .status = 200, .error_type = "",
				   .attempts = 3, .throttles = 2, .duration_ns = 2000000 };
	cart_aws_call_info put = { .service = "events", .operation = "PutEvents",
				   .rc = CART_EBACKEND, .attempts = 1,
				   .duration_ns = 20000000000LL };
	cart_aws_call_info sts = { .service = "sts", .operation = "AssumeRole" };
	char *text;

	app_metrics_aws_call(m, &get);
	app_metrics_aws_call(m, &put);
	app_metrics_aws_call(m, &sts);      /* ignored: not a metered service */
	text = render();
	ck_assert_ptr_nonnull(strstr(text,
		"dynamodb_requests_total{operation=\"GetItem\",outcome=\"success\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "dynamodb_retries_total{operation=\"GetItem\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text, "dynamodb_throttles_total{operation=\"GetItem\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text,
		"dynamodb_request_duration_seconds_bucket{operation=\"GetItem\",le=\"0.001\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text,
		"dynamodb_request_duration_seconds_bucket{operation=\"GetItem\",le=\"0.0025\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text,
		"eventbridge_requests_total{operation=\"PutEvents\",outcome=\"transport_error\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text,
		"eventbridge_request_duration_seconds_bucket{operation=\"PutEvents\",le=\"10\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text,
		"eventbridge_request_duration_seconds_sum{operation=\"PutEvents\"} 20.000000000\n"));
	ck_assert_ptr_null(strstr(text, "AssumeRole"));
	free(text);
}
END_TEST

Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *labels = tcase_create("labels");
	TCase *registry = tcase_create("registry");

	tcase_add_test(labels, test_metrics_bucket_bounds_are_inclusive);
	tcase_add_test(labels, test_metrics_labels_are_bounded);
	tcase_add_test(labels, test_metrics_auth_reasons_cover_the_jwt_statuses);
	tcase_add_test(labels, test_metrics_aws_outcomes);
	suite_add_tcase(s, labels);
	tcase_add_checked_fixture(registry, setup, teardown);
	tcase_add_test(registry, test_metrics_pipeline_counts_each_request_once);
	tcase_add_test(registry, test_metrics_aws_calls_rendered);
	suite_add_tcase(s, registry);
	return s;
}
