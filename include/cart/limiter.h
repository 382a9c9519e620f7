#ifndef CART_LIMITER_H
#define CART_LIMITER_H

/*
 * The rate limiter port: "may this key make one more request now?".
 *
 * Limiters implement GCRA (the generic cell rate algorithm): each key has
 * a theoretical arrival time (TAT); a request at time now is allowed when
 * TAT - now <= tau, where T = 1 s / rate_per_sec is the emission interval
 * and tau = T * (burst - 1); an allowed request moves TAT to
 * max(TAT, now) + T.  It behaves like a token bucket of burst tokens
 * refilled at rate_per_sec, without a timer or a stored token count.
 *
 * Two limiters: the bounded in-memory one below (per process) and the
 * Redis adapter (adapters/redis/redis_limiter.h, shared by processes).
 *
 * All functions here are safe to call from many threads at once.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cart/ports.h"

#define CART_LIMITER_OPS_VERSION 2
#define CART_LIMITER_KEY_MAX 256           /* bytes of a key */
#define CART_LIMIT_RATE_MAX 1000000        /* requests per second */
#define CART_LIMIT_BURST_MAX 1000000000

/* Whole requests per second only; both in 1..their _MAX. */
typedef struct cart_limit_policy {
	int64_t rate_per_sec;
	int64_t burst;             /* >= 1: requests allowed at once */
} cart_limit_policy;

typedef struct cart_limit_decision {
	bool allowed;
	int64_t limit;             /* burst, for the RateLimit header */
	int64_t remaining;         /* requests still allowed right now (>= 0) */
	int64_t reset_ms;          /* time until the bucket is full again */
	int64_t retry_after_ms;    /* !allowed: time until one request is
				    * allowed; 0 when allowed */
	bool degraded;             /* the store failed; the failure policy
				    * decided (see cart_limit_decision_fail) */
} cart_limit_decision;

/*
 * Counters since the limiter was made, for metrics.  Each is read
 * separately, so a snapshot taken under load need not add up exactly.
 */
typedef struct cart_limiter_stats {
	uint64_t allowed;          /* decisions allowed (degraded ones too) */
	uint64_t limited;          /* decisions refused (degraded ones too) */
	uint64_t store_errors;     /* takes that returned CART_EBACKEND */
	uint64_t evictions;        /* live keys dropped to stay in the bound */
	uint64_t keys;             /* keys held now (0 if the store is remote) */
} cart_limiter_stats;

typedef struct cart_limiter_ops {
	int version;               /* CART_LIMITER_OPS_VERSION; methods are
				    * only ever appended */
	/*
	 * Takes one request for key (key_len bytes, any bytes, at most
	 * CART_LIMITER_KEY_MAX; key may be NULL when key_len is 0).  Always
	 * fills *out.  Returns CART_OK, or CART_EBACKEND when the store
	 * failed: *out then holds the failure policy's decision with
	 * degraded = true.  Thread-safe.
	 */
	int (*take)(void *self, const char *key, size_t key_len,
		    cart_limit_decision *out);
	/* Releases self; no take may be running or start afterwards. */
	void (*destroy)(void *self);
	/* version >= 1, may be NULL: fills *out.  Thread-safe. */
	void (*stats)(void *self, cart_limiter_stats *out);
	/*
	 * Version 2.  A hint, no effect on behaviour (may be NULL): a take of
	 * key is likely soon, so the limiter may start bringing what that
	 * take will read into the CPU's cache.  Must not block, take a lock,
	 * allocate, or read anything another thread may free.
	 */
	void (*warm)(void *self, const char *key, size_t key_len);
} cart_limiter_ops;

typedef struct cart_limiter {
	const cart_limiter_ops *ops;   /* static const table */
	void *self;                    /* owned by the limiter */
} cart_limiter;

/*
 * Calls l->take.  A key longer than CART_LIMITER_KEY_MAX is refused with
 * CART_EINVALID before the limiter sees it (*out: not allowed, nothing
 * counted).  Thread-safe.
 */
int cart_limiter_take(const cart_limiter *l, const char *key, size_t key_len,
		      cart_limit_decision *out);
/* warm (version 2) if the limiter has it and key fits; else nothing. */
void cart_limiter_warm(const cart_limiter *l, const char *key, size_t key_len);
/* Zeros *out, then fills it if the limiter keeps stats.  Thread-safe. */
void cart_limiter_get_stats(const cart_limiter *l, cart_limiter_stats *out);
/* Releases the limiter; accepts NULL and an already destroyed one. */
void cart_limiter_destroy(cart_limiter *l);

/* true when p is within the limits above. */
bool cart_limit_policy_valid(const cart_limit_policy *p);

/*
 * The decision of a failure policy, for limiters whose store failed:
 * allowed (fail open) with the numbers of a full bucket, or refused (fail
 * closed) with retry_after_ms = reset_ms = 1000.  degraded is set.
 */
void cart_limit_decision_fail(cart_limit_decision *out,
			      const cart_limit_policy *p, bool allow);

/* --- the in-memory limiter ---------------------------------------------- */

/*
 * Fills *out with a GCRA limiter that keeps its state in this process,
 * for at most max_keys keys (>= 1) at once.
 *
 * Time: the clock port in ms (borrowed; must outlive the limiter).  The
 * arithmetic is exact: time is counted in units of 1/rate ms (so T is 1000
 * units whatever the rate) and no rounding accumulates, e.g. 3/s allows
 * exactly 3000 requests over 1000 s.  Output times are rounded up to whole
 * ms.  A clock that steps back is treated as standing still.
 *
 * Bound: keys are spread over up to 64 shards by a keyed hash (seeded from
 * getrandom at start, so clients cannot aim keys at one shard), each with
 * its own reader-writer lock and a cap of about max_keys / 64.  Takes of
 * a key the shard holds share the lock (the key's TAT moves by
 * compare-and-swap), so takes of one hot key never wait for each other;
 * a new key, a drop or an eviction takes it alone.  When a shard is full, a
 * new key first drops the shard's entries whose TAT <= now (they mean the
 * same as no entry), and if none is, the entry with the oldest TAT (the
 * least constrained key) is evicted and counted in stats.evictions.  An
 * evicted key starts again with a full bucket.  A key is held as its
 * 128-bit SipHash under that seed, not its bytes (two keys held at once
 * share an entry with probability ~n^2 / 2^129).  Memory per key held: 48
 * bytes (entry and heap entry, arrays grown by doubling up to the cap),
 * no allocation of its own; the hash buckets, 4-8 bytes per key of
 * max_keys, are allocated up front.  max_keys = 10,000: at most ~0.6 MB.
 *
 * take returns CART_OK, or CART_EBACKEND when it could not allocate a new
 * key's entry: that decision is allowed and degraded (fail open).
 *
 * CART_EINVALID for a policy outside the limits or max_keys == 0
 * (or above 2^31), CART_ENOMEM.  Release with cart_limiter_destroy(out).
 */
int cart_memory_limiter_new(cart_limiter *out, const cart_limit_policy *p,
			    size_t max_keys, const cart_clock *clock);

#endif
