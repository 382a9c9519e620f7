/*
 * The unit test runner: every suite in one SRunner.  Run under valgrind
 * with CK_FORK=no so leaks in the code under test show up.
 */
#include <stdlib.h>

#include "unit/suites.h"

int main(void)
{
	SRunner *sr = srunner_create(cart_suite());
	srunner_add_suite(sr, ports_suite());
	srunner_add_suite(sr, fakes_suite());
	srunner_add_suite(sr, memory_repo_contract_suite());
	srunner_add_suite(sr, memory_idem_suite());
	srunner_add_suite(sr, service_suite());
	srunner_add_suite(sr, resilience_suite());
	srunner_add_suite(sr, pipeline_suite());
	srunner_add_suite(sr, jwt_suite());
	srunner_add_suite(sr, limiter_suite());
	srunner_add_suite(sr, relay_suite());
	srunner_add_suite(sr, metrics_suite());
	srunner_add_suite(sr, log_suite());
	srunner_add_suite(sr, log_stall_suite());
	srunner_add_suite(sr, trace_suite());
	srunner_add_suite(sr, json_in_suite());
	srunner_add_suite(sr, flags_suite());
	srunner_add_suite(sr, secrets_suite());
	srunner_add_suite(sr, sigv4_suite());
	srunner_add_suite(sr, dynamo_item_suite());
	srunner_add_suite(sr, render_suite());
	srunner_run_all(sr, CK_ENV);  /* CK_VERBOSITY=verbose lists each test */
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
