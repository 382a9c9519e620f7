#ifndef CART_MEMORY_REPO_H
#define CART_MEMORY_REPO_H

/*
 * In-memory cart repository: the embedded default for development and for
 * programs that link libcart.  Thread-safe; records are spread over
 * lock-striped shards so requests for different users rarely contend.
 * Nothing survives the process.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/*
 * Slows writers down to the relay's pace instead of refusing them, for a
 * relay that works but cannot keep up (one core, where 64 request threads
 * out-ran the relay's one thread and writes got CART_EBACKLOG).
 *
 * Once the events waiting in all outboxes would pass from_bytes (each
 * counts sizeof(cart_event)), a save with events first waits until the
 * relay's acks make room for them under from_bytes -- each event acked
 * lets one waiting save go, so writes go at the rate the relay drains --
 * for at most max_wait_ms, and never past its call's deadline
 * (cart_write.call->deadline_ms, read against the system's wall clock);
 * then it goes on as usual (so the bound of cart_memory_repo_limit_outbox
 * still refuses it there).  Only while the relay is draining: a waiter
 * that sees no ack for 250 ms stops waiting, and until the next ack no
 * save waits (a failing publisher costs one such wait, not one per
 * write).  The wait holds no lock.
 *
 * A cart's own outbox is paced as well: a save that would take it past
 * half of CART_OUTBOX_MAX waits for acks the same way (each round at
 * most 250 ms, all rounds at most max_wait_ms and never past the
 * deadline; no wait when the relay counts as stalled or acked nothing in
 * the last second), so one busy cart is slowed down before it reaches
 * its own bound.
 *
 * from_bytes 0: no pacing (the default).  Call once, before the
 * repository is shared.
 */
void cart_memory_repo_pace_outbox(cart_repo *r, size_t from_bytes, int64_t max_wait_ms);

/* Saves that waited for the relay, and their waits in ms, so far.
 * Thread-safe. */
void cart_memory_repo_pace_stats(const cart_repo *r, uint64_t *paced, uint64_t *paced_ms);

/*
 * The dead-letter list (outbox_park): the events the relay gave up on,
 * for the whole process, at most CART_MEMORY_DLQ_MAX; when it is full the
 * oldest is dropped (and counted) to make room.  Like everything here it
 * does not survive the process.
 */
#define CART_MEMORY_DLQ_MAX 1024

typedef struct cart_memory_parked {
	cart_event event;
	char reason[CART_PARK_REASON_MAX + 1];
	int64_t parked_at_ms;
} cart_memory_parked;

/*
 * Copies the i-th parked event (0: the oldest kept) into *out; false if
 * there is no such entry.  *n_kept and *n_dropped (either may be NULL):
 * entries kept, and dropped at the bound so far.  Thread-safe.
 */
bool cart_memory_repo_parked(const cart_repo *r, size_t i,
			     cart_memory_parked *out, size_t *n_kept,
			     size_t *n_dropped);

#endif
