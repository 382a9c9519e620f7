#ifndef CART_TEST_DYNAMO_SUITES_H
#define CART_TEST_DYNAMO_SUITES_H

#include <check.h>
#include <stddef.h>

#include "aws/aws.h"
#include "dynamodb/dynamo_repo.h"

/* Process-wide test environment, set up once in main. */
typedef struct dynamo_env {
	const char *endpoint;   /* the signature-checking proxy */
	const char *control;    /* its /__control/ base URL, or NULL */
	const char *region;
	cart_clock clock;
	cart_ids ids;
	cart_aws_creds *creds;
	cart_aws_client *client;
} dynamo_env;

extern dynamo_env g_env;

/* A client like the service's, to endpoint (NULL: the proxy); clock/ids
 * NULL for the system ones; overrides NULL for defaults. */
int dynamo_env_client(cart_aws_client **out, const char *endpoint,
		      const cart_clock *clock, const cart_ids *ids,
		      const cart_aws_client_config *overrides);
/* Creates a fresh table through the service's own migration. */
int dynamo_new_table(char *name, size_t cap);

Suite *dynamo_adapter_suite(void);
/* cart_aws_call_until and the adapter under a deadline (test_deadline.c). */
Suite *dynamo_deadline_suite(void);

#endif
