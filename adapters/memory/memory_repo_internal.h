#ifndef CART_MEMORY_REPO_INTERNAL_H
#define CART_MEMORY_REPO_INTERNAL_H

/*
 * Private to adapters/memory (and its unit tests): one user's table of
 * idempotency records, and the repository's diagnostics for tests.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cart/repo.h"

/* --- one user's idempotency records (memory_idem.c) ---------------------- */

/*
 * A stored record: the body as kept (deflated when that made it smaller),
 * and its place in the user's table.  Made and unpacked outside any lock;
 * only the table operations below need the shard lock.
 */
struct idem_entry {
	struct idem_entry *next;      /* bucket chain */
	struct idem_entry *older;     /* write order: eviction takes the oldest */
	struct idem_entry *newer;
	uint64_t hash;                /* of key */
	char *key;
	char *fingerprint;
	cart_idem_state state;
	int status;
	int64_t expires_at;
	unsigned char *data;          /* data_len bytes, NULL if body_len is 0 */
	size_t data_len;
	size_t body_len;              /* of the original body */
	bool deflated;                /* data is body_len bytes deflated */
	size_t cost;                  /* bytes charged to the user's bound */
};

/*
 * One user's records: a chained hash by key (O(1) lookup, at most
 * CART_MEMORY_IDEM_MAX entries) and a list in write order.  All zero is an
 * empty table.  Not thread-safe: the caller holds the shard lock.  Every
 * function adds the records it visits to *steps (the test diagnostic).
 */
struct idem_table {
	struct idem_entry **buckets;  /* n_buckets (a power of two), or NULL */
	size_t n_buckets;
	struct idem_entry *oldest, *newest;
	size_t n, bytes;              /* every record, and their cost */
	size_t n_complete;            /* the evictable ones, and their cost */
	size_t complete_bytes;
};

/*
 * Copies rec into a new entry, deflating the body (zlib level 1) unless
 * that does not make it smaller.  No lock needed.  Caller owns *out
 * (memory_idem_entry_free).  CART_ENOMEM, CART_EBACKEND if zlib fails.
 */
int memory_idem_entry_new(struct idem_entry **out, const cart_idem *rec);
/* Copy of e's stored form, not linked anywhere: cheap enough under a lock. */
int memory_idem_entry_copy(struct idem_entry **out, const struct idem_entry *e);
/* The original record, body inflated.  No lock needed.  Caller owns *out. */
int memory_idem_entry_unpack(cart_idem **out, const struct idem_entry *e);
void memory_idem_entry_free(struct idem_entry *e);   /* accepts NULL */

/* The key's entry (borrowed, live or not), or NULL. */
struct idem_entry *memory_idem_find(struct idem_table *t, const char *key,
				    size_t *steps);
/*
 * Stores e in place of any entry of its key, taking ownership on success.
 * To stay within CART_MEMORY_IDEM_MAX and CART_MEMORY_IDEM_BYTES it evicts
 * the oldest COMPLETE entries, never a PENDING one.  CART_EUNAVAILABLE if
 * even evicting every COMPLETE entry leaves no room, CART_ENOMEM; nothing
 * changes on failure.
 */
int memory_idem_put(struct idem_table *t, struct idem_entry *e, size_t *steps);
/* Unlinks e (an entry of t) and frees it. */
void memory_idem_drop(struct idem_table *t, struct idem_entry *e, size_t *steps);
/*
 * Drops entries that are no longer live at now: from the oldest end up to
 * the first live one, or with everywhere, all of them.
 */
void memory_idem_prune(struct idem_table *t, int64_t now, bool everywhere,
		       size_t *steps);
/* Frees every entry and the buckets; t is empty again. */
void memory_idem_clear(struct idem_table *t);

/* --- diagnostics for tests (memory_repo.c) ------------------------------- */

/*
 * Idempotency records visited under a shard lock so far, summed over the
 * shards (lookups, unlinks, pruning and eviction all count): the work a
 * call does while other users of its shard wait.  Thread-safe.  r must
 * have been made by cart_memory_repo_new.
 */
size_t cart_memory_repo_idem_steps(const cart_repo *r);

/* The shard that holds user_id's records. */
size_t cart_memory_repo_shard(const cart_repo *r, const char *user_id);

#endif
