#ifndef CART_DYNAMO_REPO_H
#define CART_DYNAMO_REPO_H

/*
 * The cart repository on DynamoDB: single table, one item per user
 * (PK = "CART#<userID>", SK = "CART") holding the cart, its version and
 * its event outbox, so every mutation is one conditional UpdateItem and
 * every read one GetItem; idempotency records are items of their own in
 * the same partition (SK = "IDEM#<key>"), written with the cart in one
 * transaction.  See docs/adr/0006-dynamodb-single-table.md.
 *
 * Thread-safe.  The client, clock, ids and log are borrowed.
 */

#include "aws/aws.h"
#include "cart/repo.h"

typedef struct cart_dynamo_config {
	const char *table;
	int64_t ready_cache_ms;      /* /ready probes at most this often; default 5000 */
	/*
	 * Idempotency records kept per user, default 256 (0: the default).
	 * At the bound the oldest completed records are deleted down to
	 * three quarters of it; if pending claims alone fill it, a write
	 * that stores a record is CART_EUNAVAILABLE.
	 */
	size_t idem_max;
} cart_dynamo_config;

typedef struct cart_dynamo_stats {
	uint64_t requests;           /* DynamoDB requests sent (after retries: 1 each) */
	uint64_t read_units_x10;     /* consumed capacity, tenths of a unit */
	uint64_t write_units_x10;
	uint64_t bad_items;          /* stored items that could not be decoded */
} cart_dynamo_stats;

/*
 * Fills *out.  The repository takes ownership of nothing; destroy it with
 * cart_repo_destroy before freeing the client.
 */
int cart_dynamo_repo_new(cart_repo *out, const cart_dynamo_config *cfg,
			 cart_aws_client *client, const cart_clock *clock,
			 const cart_ids *ids, const cart_aws_log *log);
/* Counters of a repository made by cart_dynamo_repo_new. */
void cart_dynamo_repo_stats(const cart_repo *repo, cart_dynamo_stats *out);

/*
 * Creates the table if missing (PK/SK strings, PAY_PER_REQUEST), waits
 * until it is ACTIVE, and enables TTL on expiresAt where the endpoint
 * supports it (a warning where it does not).  Idempotent.  0 or -1 with a
 * reason in err.  Needs the admin policy (docs/iam/admin-policy.json).
 */
int cart_dynamo_migrate(cart_aws_client *client, const char *table,
			const cart_clock *clock, const cart_aws_log *log,
			char *err, size_t err_len);

#endif
