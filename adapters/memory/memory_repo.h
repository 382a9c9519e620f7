#ifndef CART_MEMORY_REPO_H
#define CART_MEMORY_REPO_H

/*
 * In-memory cart repository: the embedded default for development and for
 * programs that link libcart.  Thread-safe; records are spread over
 * lock-striped shards so requests for different users rarely contend.
 * Nothing survives the process.
 */

#include <stddef.h>

#include "cart/repo.h"

/*
 * Bounds on one user's idempotency records (issue 8; ADR 3, "Bounds in
 * memory").  A client retries the key of the request it is waiting for,
 * so a handful of keys per user are ever retried; 256 live records is far
 * above that.  Bytes count what is kept per record (the deflated body, the
 * key, the fingerprint and the bookkeeping): a 59 KB answer of a 99-line
 * cart deflates to 4-7 KB, so 1 MiB holds 150-250 of them, about where the
 * count bound binds, and a user's records stay near 1 MiB at worst.  At
 * either bound the oldest COMPLETE records are forgotten first; PENDING
 * claims are never evicted, so when claims alone fill a bound a new record
 * is refused with CART_EUNAVAILABLE until their leases end.
 */
#define CART_MEMORY_IDEM_MAX 256
#define CART_MEMORY_IDEM_BYTES (1024 * 1024)

/*
 * Fills *out with a new, empty repository.  Release it with
 * cart_repo_destroy(out).  CART_ENOMEM.
 */
int cart_memory_repo_new(cart_repo *out);

/*
 * For tests: the shard (0..63) that holds user_id's records.  Pure, so
 * safe from any thread.
 */
size_t cart_memory_repo_shard_of(const char *user_id);

/*
 * Bounds the events waiting in all outboxes of this repository together
 * (what the process holds for the relay) to max_bytes (0: no bound, the
 * default); each pending event counts sizeof(cart_event).  At the bound a
 * save with events gets CART_EBACKLOG, like a cart at CART_OUTBOX_MAX.
 * Call once, before the repository is shared.
 */
void cart_memory_repo_limit_outbox(cart_repo *r, size_t max_bytes);

#endif
