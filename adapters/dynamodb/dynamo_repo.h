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

/*
 * The owner of a process that runs no relay: its carts' pending events
 * belong to no task, and the first relay that scans takes them at once.
 */
#define CART_DYNAMO_OWNER_ANY "-"
#define CART_DYNAMO_OWNER_MAX 64     /* bytes of an owner id */

typedef struct cart_dynamo_config {
	const char *table;
	/*
	 * The outbox partition this repository writes and relays: a save
	 * sets the cart's obPending to it, and outbox_fetch returns only the
	 * pending carts it owns (or takes over, see lease_ms).  The task's
	 * id, 1..CART_DYNAMO_OWNER_MAX of [A-Za-z0-9._-], copied; NULL or ""
	 * generates "t-" + 16 hex digits from the ids port; anything else is
	 * CART_EINVALID.  CART_DYNAMO_OWNER_ANY for a process that does not
	 * relay.  See docs/adr/0008-transactional-outbox.md.
	 */
	const char *owner;
	/*
	 * A pending cart of another owner whose oldest event is older than
	 * this (by the repository's clock) is taken over by the next scan:
	 * its task is gone or stuck.  A cart taken over is then left to its
	 * new owner for this long, however old its events.  Default 30000
	 * (0: the default).
	 */
	int64_t lease_ms;
	/*
	 * outbox_fetch scans the whole index (one page, continuing where the
	 * previous scan stopped) at most this often, and otherwise queries
	 * only its own partition.  Default 5000 (0: the default); the first
	 * fetch always scans.
	 */
	int64_t scan_interval_ms;
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
	uint64_t outbox_queries;     /* outbox_fetch Queries of the own partition */
	uint64_t outbox_scans;       /* outbox_fetch Scans of the whole index */
	uint64_t takeovers;          /* pending carts taken from another owner */
} cart_dynamo_stats;

/*
 * Fills *out.  The repository takes ownership of nothing (cfg's strings
 * are copied); destroy it with cart_repo_destroy before freeing the
 * client.  CART_EINVALID for a missing or too long table name or a bad
 * owner, CART_ENOMEM.
 */
int cart_dynamo_repo_new(cart_repo *out, const cart_dynamo_config *cfg,
			 cart_aws_client *client, const cart_clock *clock,
			 const cart_ids *ids, const cart_aws_log *log);
/* Counters of a repository made by cart_dynamo_repo_new.  Thread-safe. */
void cart_dynamo_repo_stats(const cart_repo *repo, cart_dynamo_stats *out);
/*
 * The owner id of a repository made by cart_dynamo_repo_new (the given or
 * the generated one): borrowed, valid until the repository is destroyed.
 */
const char *cart_dynamo_repo_owner(const cart_repo *repo);

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
