/*
 * Table migration: what `cart-service migrate` runs with the admin policy.
 * Idempotent: an existing table is fine, TTL already on is fine, and an
 * endpoint without UpdateTimeToLive (dynalite) gets a warning.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "dynamodb/dynamo_repo.h"

/* The sparse index of items with pending events (the outbox relay's Query). */
#define OUTBOX_INDEX \
	"{\"IndexName\":\"outbox\",\"KeySchema\":[{\"AttributeName\":\"obPending\"," \
	"\"KeyType\":\"HASH\"}],\"Projection\":{\"ProjectionType\":\"INCLUDE\"," \
	"\"NonKeyAttributes\":[\"outbox\"]}}"
#define ATTRS \
	"{\"AttributeName\":\"PK\",\"AttributeType\":\"S\"}," \
	"{\"AttributeName\":\"SK\",\"AttributeType\":\"S\"}," \
	"{\"AttributeName\":\"obPending\",\"AttributeType\":\"S\"}"

static int admin_call(cart_aws_client *c, const char *op, const char *json,
		      cart_aws_response *out)
{
	char target[64];

	snprintf(target, sizeof(target), "DynamoDB_20120810.%s", op);
	return cart_aws_call(c, target, json, strlen(json), out);
}

static int create_table(cart_aws_client *c, const char *table, char *err,
			size_t err_len, bool *created)
{
	char json[1024];
	cart_aws_response r;
	int rc;

	snprintf(json, sizeof(json),
		 "{\"TableName\":\"%s\",\"BillingMode\":\"PAY_PER_REQUEST\","
		 "\"AttributeDefinitions\":[" ATTRS "],"
		 "\"KeySchema\":[{\"AttributeName\":\"PK\",\"KeyType\":\"HASH\"},"
		 "{\"AttributeName\":\"SK\",\"KeyType\":\"RANGE\"}],"
		 "\"GlobalSecondaryIndexes\":[" OUTBOX_INDEX "]}", table);
	rc = admin_call(c, "CreateTable", json, &r);
	*created = rc == CART_OK && r.status == 200;
	if (rc == CART_OK && (r.status == 200 ||
			      !strcmp(r.error_type, "ResourceInUseException")))
		rc = 0;
	else {
		snprintf(err, err_len, "CreateTable %s failed: HTTP %ld %s %s", table,
			 r.status, r.error_type, r.message);
		rc = -1;
	}
	cart_aws_response_release(&r);
	return rc;
}

enum { INDEX_MISSING, INDEX_BUILDING, INDEX_ACTIVE };

static int index_state(const cJSON *table)
{
	const cJSON *ix;

	cJSON_ArrayForEach(ix, cJSON_GetObjectItemCaseSensitive(table,
								"GlobalSecondaryIndexes")) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(ix, "IndexName");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(ix, "IndexStatus");
		if (cJSON_IsString(name) && !strcmp(name->valuestring, "outbox"))
			return cJSON_IsString(st) && !strcmp(st->valuestring, "ACTIVE")
				       ? INDEX_ACTIVE : INDEX_BUILDING;
	}
	return INDEX_MISSING;
}

/* A table from before the outbox: add the index (UpdateTable). */
static int add_index(cart_aws_client *c, const char *table, char *err,
		     size_t err_len)
{
	char json[1024];
	cart_aws_response r;
	int rc = 0;

	snprintf(json, sizeof(json),
		 "{\"TableName\":\"%s\",\"AttributeDefinitions\":[" ATTRS "],"
		 "\"GlobalSecondaryIndexUpdates\":[{\"Create\":" OUTBOX_INDEX "}]}",
		 table);
	if (admin_call(c, "UpdateTable", json, &r) || r.status != 200) {
		snprintf(err, err_len, "UpdateTable %s (add index outbox) failed: HTTP %ld %s %s",
			 table, r.status, r.error_type, r.message);
		rc = -1;
	}
	cart_aws_response_release(&r);
	return rc;
}

/* Polls DescribeTable until the table and its outbox index are ACTIVE. */
static int wait_active(cart_aws_client *c, const char *table,
		       const cart_clock *clock, char *err, size_t err_len)
{
	char json[512];

	snprintf(json, sizeof(json), "{\"TableName\":\"%s\"}", table);
	for (int i = 0; i < 300; i++) {
		cart_aws_response r;
		cJSON *doc;
		const cJSON *st;
		bool active;

		if (admin_call(c, "DescribeTable", json, &r) || r.status != 200) {
			snprintf(err, err_len, "DescribeTable %s failed: HTTP %ld %s", table,
				 r.status, r.error_type);
			cart_aws_response_release(&r);
			return -1;
		}
		doc = cJSON_Parse(r.body);
		st = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(doc, "Table"), "TableStatus");
		active = cJSON_IsString(st) && !strcmp(st->valuestring, "ACTIVE");
		if (active) {
			int ix = index_state(cJSON_GetObjectItemCaseSensitive(doc, "Table"));
			if (ix == INDEX_MISSING && add_index(c, table, err, err_len)) {
				cJSON_Delete(doc);
				cart_aws_response_release(&r);
				return -1;
			}
			active = ix == INDEX_ACTIVE;
		}
		cJSON_Delete(doc);
		cart_aws_response_release(&r);
		if (active)
			return 0;
		cart_clock_sleep(clock, 200);
	}
	snprintf(err, err_len, "table %s did not become ACTIVE", table);
	return -1;
}

static int enable_ttl(cart_aws_client *c, const char *table,
		      const cart_aws_log *log, char *err, size_t err_len)
{
	char json[512];
	cart_aws_response r;
	int rc = 0;

	snprintf(json, sizeof(json),
		 "{\"TableName\":\"%s\",\"TimeToLiveSpecification\":"
		 "{\"Enabled\":true,\"AttributeName\":\"expiresAt\"}}", table);
	if (admin_call(c, "UpdateTimeToLive", json, &r)) {
		snprintf(err, err_len, "UpdateTimeToLive failed: %s", r.message);
		rc = -1;
	} else if (r.status == 200) {
		cart_aws_log_write(log, CART_AWS_LOG_INFO, "TTL enabled on expiresAt", NULL);
	} else if (strstr(r.message, "already enabled")) {
		cart_aws_log_write(log, CART_AWS_LOG_INFO, "TTL already enabled", NULL);
	} else if (!strcmp(r.error_type, "UnknownOperationException")) {
		cart_aws_fields f;

		cart_aws_fields_init(&f);
		cart_aws_fields_str(&f, "table", table, 0);
		cart_aws_log_write(log, CART_AWS_LOG_WARN,
				   "this endpoint has no UpdateTimeToLive: TTL not enabled; "
				   "expired carts still read as absent", &f);
	} else {
		snprintf(err, err_len, "UpdateTimeToLive failed: HTTP %ld %s %s", r.status,
			 r.error_type, r.message);
		rc = -1;
	}
	cart_aws_response_release(&r);
	return rc;
}

int cart_dynamo_migrate(cart_aws_client *client, const char *table,
			const cart_clock *clock, const cart_aws_log *log,
			char *err, size_t err_len)
{
	bool created = false;
	cart_aws_fields f;

	if (create_table(client, table, err, err_len, &created) ||
	    wait_active(client, table, clock, err, err_len))
		return -1;
	cart_aws_fields_init(&f);
	cart_aws_fields_str(&f, "table", table, 0);
	cart_aws_log_write(log, CART_AWS_LOG_INFO, created ? "table created" : "table exists", &f);
	return enable_ttl(client, table, log, err, err_len);
}
