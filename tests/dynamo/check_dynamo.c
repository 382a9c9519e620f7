/*
 * The DynamoDB adapter's tests, against a DynamoDB-protocol server that
 * the harness started (tests/aws/stack.py: dynalite behind a proxy that
 * verifies every SigV4 signature).  Needs DYNAMODB_ENDPOINT and AWS
 * credentials in the environment and fails loudly without them: a skipped
 * backend test is a hidden failure.
 */
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dynamo/dynamo_suites.h"
#include "system/system.h"
#include "unit/repo_contract.h"

dynamo_env g_env;

static const char *env(const char *name)
{
	return getenv(name);
}

static void test_log(void *ctx, int level, const char *msg, const char *fields)
{
	if (level >= 2 || getenv("CART_TEST_VERBOSE"))
		fprintf(stderr, "[dynamo %d] %s%s\n", level, msg, fields ? fields : "");
}

static const cart_aws_log quiet_log = { test_log, NULL };

int dynamo_env_client(cart_aws_client **out, const char *endpoint,
		      const cart_clock *clock, const cart_ids *ids,
		      const cart_aws_client_config *overrides)
{
	cart_aws_client_config cc;

	if (overrides)
		cc = *overrides;
	else
		cart_aws_client_config_init(&cc);
	cc.service = "dynamodb";
	cc.region = g_env.region;
	cc.endpoint = endpoint ? endpoint : g_env.endpoint;
	return cart_aws_client_new(out, &cc, g_env.creds, clock ? clock : &g_env.clock,
				   ids ? ids : &g_env.ids, &quiet_log);
}

/* A fresh table per repository: the contract wants an empty store. */
int dynamo_new_table(char *name, size_t cap)
{
	static int counter;
	char err[256];

	snprintf(name, cap, "contract-%d-%d", (int)getpid(), ++counter);
	if (cart_dynamo_migrate(g_env.client, name, &g_env.clock, &quiet_log, err,
				sizeof(err))) {
		fprintf(stderr, "migrate %s: %s\n", name, err);
		return -1;
	}
	return 0;
}

/*
 * The contract runs on its own timeline starting 2026-01-01 and passes
 * "now" explicitly; the adapter's clock (housekeeping of expired records)
 * must stand at that timeline's start, not at the wall clock.
 */
static int64_t contract_now(void *self)
{
	return 1767225600000LL;
}

static const cart_clock_ops contract_clock_ops = {
	CART_CLOCK_OPS_VERSION, contract_now, NULL, NULL
};
static const cart_clock contract_clock = { &contract_clock_ops, NULL };

static int dynamo_factory(cart_repo *out, void *arg)
{
	char table[64];
	cart_dynamo_config dc = { .table = table, .ready_cache_ms = 1000 };

	if (dynamo_new_table(table, sizeof(table)))
		return CART_EBACKEND;
	return cart_dynamo_repo_new(out, &dc, g_env.client, &contract_clock,
				    &g_env.ids, &quiet_log);
}

static void env_setup(void)
{
	char err[256];

	g_env.endpoint = getenv("DYNAMODB_ENDPOINT");
	g_env.control = getenv("CART_TEST_CONTROL");
	g_env.region = getenv("AWS_REGION") ? getenv("AWS_REGION") : "us-east-1";
	if (!g_env.endpoint || !*g_env.endpoint) {
		fprintf(stderr, "check_dynamo: DYNAMODB_ENDPOINT is not set; run it "
				"through tests/aws/stack.py (make check does)\n");
		exit(2);
	}
	cart_system_clock_init(&g_env.clock);
	cart_system_ids_init(&g_env.ids);
	if (cart_aws_creds_new(&g_env.creds, env, &g_env.clock, &quiet_log, err,
			       sizeof(err)) ||
	    dynamo_env_client(&g_env.client, NULL, NULL, NULL, NULL)) {
		fprintf(stderr, "check_dynamo: %s\n", err);
		exit(2);
	}
}

int main(void)
{
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	env_setup();
	sr = srunner_create(repo_contract_suite("repo_contract_dynamodb",
						dynamo_factory, NULL));
	srunner_add_suite(sr, dynamo_adapter_suite());
	srunner_add_suite(sr, dynamo_deadline_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	cart_aws_client_free(g_env.client);
	cart_aws_creds_free(g_env.creds);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
