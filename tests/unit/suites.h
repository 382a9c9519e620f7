#ifndef CART_TEST_SUITES_H
#define CART_TEST_SUITES_H

#include <check.h>

/* One constructor per suite; check_main.c runs them all. */
Suite *cart_suite(void);
Suite *service_suite(void);
Suite *memory_repo_contract_suite(void);
Suite *memory_idem_suite(void);
Suite *ports_suite(void);
Suite *fakes_suite(void);
Suite *resilience_suite(void);
Suite *pipeline_suite(void);
Suite *jwt_suite(void);
Suite *limiter_suite(void);
Suite *relay_suite(void);
Suite *metrics_suite(void);
Suite *log_suite(void);
Suite *log_stall_suite(void);
Suite *trace_suite(void);
Suite *json_in_suite(void);
Suite *flags_suite(void);
Suite *secrets_suite(void);
Suite *sigv4_suite(void);
Suite *dynamo_item_suite(void);
Suite *render_suite(void);

#endif
