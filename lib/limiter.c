/*
 * The rate limiter port's wrappers and the bounded in-memory GCRA limiter.
 *
 * Time is counted in "units" of 1/rate ms since the limiter was made:
 * now_u = (now_ms - epoch_ms) * rate.  One emission interval T is then
 * exactly 1000 units for every rate, so TAT arithmetic is integer and
 * exact (3/s is T = 333.33.. ms, which no whole number of ms or us is).
 *
 * Each shard holds a chained hash table over a slot array that grows up
 * to the shard's cap, and a binary min-heap of its slots ordered by the
 * TAT each had when the heap last placed it: the top is the first entry
 * to drop (TAT <= now) or evict (oldest TAT).  TAT only ever grows, so a
 * heap entry is never later than its slot's TAT, and a request leaves the
 * heap alone (a sift to the bottom on every request read two scattered
 * slots at each of ~7 levels at 10,000 keys); only when a full shard
 * must drop or evict is the top brought up to date, re-placed while it
 * is stale (settle_top).
 *
 * A shard's lock is a reader-writer lock.  A take of a key the shard
 * holds shares it: the entry is found under the read lock and its TAT
 * moved by one compare-and-swap, so takes of one hot key (one client IP,
 * one client hammering) never wait for one another, not even for a take
 * whose thread was preempted inside.  With a mutex they did: every
 * request on one key, 64 connections on 2 cores, 95 sleeps a second of
 * 2.7 ms median (issue 10).  A new key, a drop or an eviction changes
 * the table and takes the lock alone; writers go first, so a stream of
 * takes cannot starve a new key.
 */
#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cart/error.h"
#include "cart/limiter.h"
#include "siphash.h"

/* --- the port ----------------------------------------------------------- */

int cart_limiter_take(const cart_limiter *l, const char *key, size_t key_len,
		      cart_limit_decision *out)
{
	assert(l && l->ops && out && (key || key_len == 0));
	memset(out, 0, sizeof(*out));
	if (key_len > CART_LIMITER_KEY_MAX)
		return CART_EINVALID;
	return l->ops->take(l->self, key, key_len, out);
}

void cart_limiter_warm(const cart_limiter *l, const char *key, size_t key_len)
{
	assert(l && l->ops && (key || key_len == 0));
	if (l->ops->version >= 2 && l->ops->warm && key_len <= CART_LIMITER_KEY_MAX)
		l->ops->warm(l->self, key, key_len);
}

void cart_limiter_get_stats(const cart_limiter *l, cart_limiter_stats *out)
{
	assert(l && l->ops && out);
	memset(out, 0, sizeof(*out));
	if (l->ops->version >= 1 && l->ops->stats)
		l->ops->stats(l->self, out);
}

void cart_limiter_destroy(cart_limiter *l)
{
	if (l && l->ops && l->ops->destroy)
		l->ops->destroy(l->self);
	if (l)
		l->ops = NULL;
}

bool cart_limit_policy_valid(const cart_limit_policy *p)
{
	return p && p->rate_per_sec >= 1 &&
	       p->rate_per_sec <= CART_LIMIT_RATE_MAX && p->burst >= 1 &&
	       p->burst <= CART_LIMIT_BURST_MAX;
}

void cart_limit_decision_fail(cart_limit_decision *out,
			      const cart_limit_policy *p, bool allow)
{
	assert(out && p);
	memset(out, 0, sizeof(*out));
	out->degraded = true;
	out->limit = p->burst;
	if (allow) {
		out->allowed = true;
		out->remaining = p->burst - 1;
		out->reset_ms = (1000 + p->rate_per_sec - 1) / p->rate_per_sec;
	} else {
		/* No store to ask: a second keeps retrying clients from
		 * hammering while it recovers. */
		out->retry_after_ms = 1000;
		out->reset_ms = 1000;
	}
}

/* --- the in-memory limiter ---------------------------------------------- */

#define SHARDS_MAX 64
#define SHARD_MIN_KEYS 64
#define NO_SLOT UINT32_MAX
#define T_UNITS 1000     /* the emission interval, in units */
#define MIN_SLOTS 8

/*
 * A key is known by its 128-bit SipHash under the limiter's random seed,
 * not by its bytes: two keys held at once share an entry only if their
 * hashes are equal, about n^2 / 2^129 for n keys (1e-26 for a million),
 * and a client cannot aim at that without the seed.  So an entry holds
 * no copy of its key: no allocation per new key, and a take compares
 * two words instead of reading a key from another cache line.
 */
struct slot {
	uint64_t hash;           /* cart_siphash128.lo: the chain and the shard */
	uint64_t hash_hi;
	_Atomic int64_t tat;     /* units; meaningful while the slot is held.
				  * Moved under the read lock (CAS). */
	uint32_t next;           /* hash chain, or the free list */
};

struct heap_ent {
	int64_t tat;             /* the slot's TAT when placed: <= slot.tat */
	uint32_t slot;
};

struct shard {
	pthread_rwlock_t lock;   /* write: the table; read: a TAT (CAS) */
	_Atomic int64_t now;     /* latest time seen, units; never decreases */
	uint32_t cap;            /* most entries this shard may hold */
	uint32_t used;           /* entries held = heap size */
	uint32_t nslots;         /* slots allocated, <= cap */
	uint32_t free_head;
	uint32_t mask;           /* buckets - 1 (power of two) */
	uint32_t *buckets;       /* chain heads */
	struct slot *slots;
	struct heap_ent *heap;   /* min-heap by heap_ent.tat */
	atomic_uint_fast64_t allowed, limited, store_errors;
	uint64_t evictions;      /* under the write lock */
} __attribute__((aligned(64)));

struct memory_limiter {
	cart_limit_policy policy;  /* immutable after _new */
	const cart_clock *clock;   /* borrowed */
	int64_t epoch_ms;          /* unit 0 */
	int64_t max_ms;            /* largest now_ms - epoch_ms kept exact */
	uint64_t seed[2];          /* SipHash key */
	uint32_t nshards;
	struct shard *shards;      /* nshards */
	/* Every shard's chain heads, nbuckets each, shard i's at
	 * i * nbuckets: fixed at _new, so a take or warm finds a key's head
	 * from these read-only fields without reading the shard's line. */
	uint32_t *buckets;
	uint32_t nbuckets;         /* a power of two */
};

/* ceil(u / rate) for u >= 0: units to whole ms, never early. */
static int64_t units_to_ms(const struct memory_limiter *m, int64_t u)
{
	return u <= 0 ? 0 : (u + m->policy.rate_per_sec - 1) / m->policy.rate_per_sec;
}

static void heap_swap(struct shard *s, uint32_t i, uint32_t j)
{
	struct heap_ent t = s->heap[i];

	s->heap[i] = s->heap[j];
	s->heap[j] = t;
}

static int64_t heap_tat(const struct shard *s, uint32_t i)
{
	return s->heap[i].tat;
}

static void sift_up(struct shard *s, uint32_t i)
{
	while (i > 0 && heap_tat(s, (i - 1) / 2) > heap_tat(s, i)) {
		heap_swap(s, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void sift_down(struct shard *s, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, min = i;
		if (l < s->used && heap_tat(s, l) < heap_tat(s, min))
			min = l;
		if (r < s->used && heap_tat(s, r) < heap_tat(s, min))
			min = r;
		if (min == i)
			return;
		heap_swap(s, i, min);
		i = min;
	}
}

static uint32_t bucket_of(const struct shard *s, uint64_t hash)
{
	return (uint32_t)hash & s->mask;
}

static uint32_t find(const struct shard *s, cart_siphash128 h)
{
	for (uint32_t i = s->buckets[bucket_of(s, h.lo)]; i != NO_SLOT;
	     i = s->slots[i].next) {
		const struct slot *e = &s->slots[i];
		if (e->hash == h.lo && e->hash_hi == h.hi)
			return i;
	}
	return NO_SLOT;
}

/*
 * Makes the top's TAT its slot's, re-placing it while it was stale; then
 * the top holds the oldest TAT of all (every entry's is <= its slot's).
 */
static void settle_top(struct shard *s)
{
	while (s->used > 0) {
		int64_t tat = atomic_load_explicit(&s->slots[s->heap[0].slot].tat,
						   memory_order_relaxed);
		if (s->heap[0].tat == tat)
			return;
		s->heap[0].tat = tat;
		sift_down(s, 0);
	}
}

/* Unlinks the heap's top entry from its chain and frees its slot. */
static void remove_top(struct shard *s)
{
	uint32_t i = s->heap[0].slot;
	struct slot *e = &s->slots[i];
	uint32_t *link = &s->buckets[bucket_of(s, e->hash)];

	while (*link != i)
		link = &s->slots[*link].next;
	*link = e->next;
	e->next = s->free_head;
	s->free_head = i;
	s->used--;
	if (s->used > 0) {
		s->heap[0] = s->heap[s->used];
		sift_down(s, 0);
	}
}

/* Room for one more entry: drop what is idle, else evict the oldest TAT. */
static void make_room(struct shard *s, int64_t now)
{
	for (settle_top(s); s->used > 0 && heap_tat(s, 0) <= now; settle_top(s))
		remove_top(s);
	if (s->used == s->cap) {
		remove_top(s);
		s->evictions++;
	}
}

/* Adds free slots, doubling up to cap.  false if out of memory. */
static bool grow(struct shard *s)
{
	uint32_t n = s->nslots ? s->nslots : MIN_SLOTS / 2;
	n = n > s->cap / 2 ? s->cap : n * 2;
	struct slot *slots = realloc(s->slots, n * sizeof(*slots));
	if (!slots)
		return false;
	s->slots = slots;
	struct heap_ent *heap = realloc(s->heap, n * sizeof(*heap));
	if (!heap)
		return false;
	s->heap = heap;
	for (uint32_t i = n; i-- > s->nslots;) {
		slots[i].next = s->free_head;
		s->free_head = i;
	}
	s->nslots = n;
	return true;
}

/* Stores a new entry with the given TAT.  false if out of memory. */
static bool insert(struct shard *s, cart_siphash128 h, int64_t tat, int64_t now)
{
	if (s->used == s->cap)
		make_room(s, now);
	if (s->free_head == NO_SLOT && !grow(s))
		return false;
	uint32_t i = s->free_head;
	struct slot *e = &s->slots[i];
	uint32_t b = bucket_of(s, h.lo);
	s->free_head = e->next;
	e->hash = h.lo;
	e->hash_hi = h.hi;
	atomic_store_explicit(&e->tat, tat, memory_order_relaxed);
	e->next = s->buckets[b];
	s->buckets[b] = i;
	s->heap[s->used] = (struct heap_ent){ tat, i };
	s->used++;
	sift_up(s, s->used - 1);
	return true;
}

/*
 * The clock in units, never going back within a shard.  Caller holds the
 * lock, read or write.
 */
static int64_t shard_now(const struct memory_limiter *m, struct shard *s)
{
	int64_t d = cart_clock_now(m->clock) - m->epoch_ms;
	if (d > m->max_ms)
		d = m->max_ms;
	else if (d < -m->max_ms)
		d = -m->max_ms;
	int64_t now = d * m->policy.rate_per_sec;
	int64_t seen = atomic_load_explicit(&s->now, memory_order_relaxed);

	while (now > seen &&
	       !atomic_compare_exchange_weak_explicit(&s->now, &seen, now,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
	return now > seen ? now : seen;
}

/*
 * GCRA's decision for a key whose TAT is tat (now for a key not held).
 * Returns whether it is allowed, with the TAT that then follows in *next.
 */
static bool gcra(const struct memory_limiter *m, int64_t tat, int64_t now,
		 int64_t *next, cart_limit_decision *out)
{
	const int64_t burst_u = m->policy.burst * T_UNITS;

	if (tat < now)
		tat = now;
	int64_t allow_at = tat + T_UNITS - burst_u;

	out->limit = m->policy.burst;
	if (now < allow_at) {
		out->allowed = false;
		out->remaining = 0;
		out->retry_after_ms = units_to_ms(m, allow_at - now);
		out->reset_ms = units_to_ms(m, tat - now);
		return false;
	}
	*next = tat + T_UNITS;
	out->allowed = true;
	out->remaining = (now - (*next - burst_u)) / T_UNITS;
	out->reset_ms = units_to_ms(m, *next - now);
	out->retry_after_ms = 0;
	return true;
}

/*
 * A take of a held key: the decision on its TAT, stored by compare-and-
 * swap (decided again on the TAT another take stored first).  Its heap
 * entry goes stale, which settle_top allows for.  Caller holds the lock,
 * read or write.
 */
static void take_held(const struct memory_limiter *m, struct slot *e,
		      int64_t now, cart_limit_decision *out)
{
	int64_t tat = atomic_load_explicit(&e->tat, memory_order_relaxed);
	int64_t next;

	while (gcra(m, tat, now, &next, out) &&
	       !atomic_compare_exchange_weak_explicit(&e->tat, &tat, next,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
}

/*
 * A take under the write lock: the key may have come since the read.
 * Returns false only when a new entry could not be allocated (nothing is
 * stored then).
 */
static bool take_alone(const struct memory_limiter *m, struct shard *s,
		       cart_siphash128 h, cart_limit_decision *out)
{
	int64_t now = shard_now(m, s), next;
	uint32_t i = find(s, h);

	if (i != NO_SLOT) {
		take_held(m, &s->slots[i], now, out);
		return true;
	}
	/* A key not held always has its whole burst (>= 1). */
	return !gcra(m, now, now, &next, out) ||
	       insert(s, h, next, now);
}

/* The shard of the key hashed to h, and its chain head's address, from
 * the limiter's read-only fields alone. */
static struct shard *shard_of(const struct memory_limiter *m, cart_siphash128 h,
			      const uint32_t **head)
{
	uint32_t i = (uint32_t)((h.lo >> 32) % m->nshards);

	*head = &m->buckets[(size_t)i * m->nbuckets + ((uint32_t)h.lo & (m->nbuckets - 1))];
	return &m->shards[i];
}

/* Prefetches the shard's lock and the key's chain head, take's first
 * misses, without waiting for either. */
static void memory_limiter_warm(void *self, const char *key, size_t key_len)
{
	struct memory_limiter *m = self;
	const uint32_t *head;
	struct shard *s = shard_of(m, cart_siphash128_of(m->seed, key, key_len), &head);

	__builtin_prefetch(&s->lock, 1);
	__builtin_prefetch(head);
}

static int memory_limiter_take(void *self, const char *key, size_t key_len,
			       cart_limit_decision *out)
{
	struct memory_limiter *m = self;
	bool ok = true;

	memset(out, 0, sizeof(*out));
	if (key_len > CART_LIMITER_KEY_MAX)
		return CART_EINVALID;
	cart_siphash128 h = cart_siphash128_of(m->seed, key, key_len);
	const uint32_t *head;
	struct shard *s = shard_of(m, h, &head);

	/* this chain head's miss overlaps the lock's */
	__builtin_prefetch(head);
	pthread_rwlock_rdlock(&s->lock);
	int64_t now = shard_now(m, s);
	uint32_t i = find(s, h);
	if (i != NO_SLOT)
		take_held(m, &s->slots[i], now, out);
	pthread_rwlock_unlock(&s->lock);
	if (i == NO_SLOT) {
		pthread_rwlock_wrlock(&s->lock);
		ok = take_alone(m, s, h, out);
		pthread_rwlock_unlock(&s->lock);
	}
	if (!ok)
		atomic_fetch_add_explicit(&s->store_errors, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(!ok || out->allowed ? &s->allowed : &s->limited,
				  1, memory_order_relaxed);
	if (!ok) {
		cart_limit_decision_fail(out, &m->policy, true);
		return CART_EBACKEND;
	}
	return CART_OK;
}

static void memory_limiter_stats(void *self, cart_limiter_stats *out)
{
	struct memory_limiter *m = self;

	memset(out, 0, sizeof(*out));
	for (uint32_t i = 0; i < m->nshards; i++) {
		struct shard *s = &m->shards[i];
		pthread_rwlock_rdlock(&s->lock);
		out->allowed += atomic_load(&s->allowed);
		out->limited += atomic_load(&s->limited);
		out->store_errors += atomic_load(&s->store_errors);
		out->evictions += s->evictions;
		out->keys += s->used;
		pthread_rwlock_unlock(&s->lock);
	}
}

static void shard_release(struct shard *s)
{
	free(s->slots);
	free(s->heap);
	pthread_rwlock_destroy(&s->lock);
}

static void memory_limiter_destroy(void *self)
{
	struct memory_limiter *m = self;

	if (!m)
		return;
	for (uint32_t i = 0; i < m->nshards; i++)
		shard_release(&m->shards[i]);
	free(m->shards);
	free(m->buckets);
	free(m);
}

static const cart_limiter_ops memory_limiter_ops = {
	.version = CART_LIMITER_OPS_VERSION,
	.take = memory_limiter_take,
	.destroy = memory_limiter_destroy,
	.stats = memory_limiter_stats,
	.warm = memory_limiter_warm,
};

/*
 * A waiting writer (a new key) holds back new readers, so the takes of a
 * busy shard cannot keep a new key out indefinitely (glibc's default lets
 * readers in ahead of a waiting writer).
 */
static int rwlock_init_writer_first(pthread_rwlock_t *l)
{
	pthread_rwlockattr_t a;
	int rc;

	if ((rc = pthread_rwlockattr_init(&a)))
		return rc;
#ifdef __GLIBC__
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
	rc = pthread_rwlock_init(l, &a);
	pthread_rwlockattr_destroy(&a);
	return rc;
}

/* buckets: the shard's nbuckets chain heads (of memory_limiter.buckets). */
static int shard_init(struct shard *s, uint32_t cap, uint32_t *buckets,
		      uint32_t nbuckets)
{
	s->cap = cap;
	s->mask = nbuckets - 1;
	s->free_head = NO_SLOT;
	s->buckets = buckets;
	if (rwlock_init_writer_first(&s->lock) != 0) {
		s->buckets = NULL;
		return CART_ENOMEM;
	}
	return CART_OK;
}

/*
 * The hash key.  Not a decision input, only where keys are stored, so it
 * may come from the kernel rather than a port; if getrandom has nothing
 * yet, addresses (ASLR) and the clock still vary it between processes.
 */
static void seed_hash(struct memory_limiter *m)
{
	if (getrandom(m->seed, sizeof(m->seed), GRND_NONBLOCK) ==
	    (ssize_t)sizeof(m->seed))
		return;
	m->seed[0] = (uint64_t)(uintptr_t)m ^ (uint64_t)m->epoch_ms;
	m->seed[1] = (uint64_t)(uintptr_t)&m ^ 0x9e3779b97f4a7c15ULL;
}

int cart_memory_limiter_new(cart_limiter *out, const cart_limit_policy *p,
			    size_t max_keys, const cart_clock *clock)
{
	assert(out && p && clock);
	out->ops = NULL;
	out->self = NULL;
	if (!cart_limit_policy_valid(p) || max_keys == 0 ||
	    max_keys > (size_t)INT32_MAX)
		return CART_EINVALID;
	struct memory_limiter *m = calloc(1, sizeof(*m));
	if (!m)
		return CART_ENOMEM;
	m->policy = *p;
	m->clock = clock;
	m->epoch_ms = cart_clock_now(clock);
	/* TATs run up to burst * T ahead of now; keep all of it in int64. */
	m->max_ms = (INT64_MAX / 4) / p->rate_per_sec;
	seed_hash(m);
	/*
	 * Every shard holds at least SHARD_MIN_KEYS, so a few keys that hash
	 * to one shard never evict each other long before max_keys is
	 * reached (with 64 shards of 1-2 slots, 5 keys collided about one
	 * run in ten).
	 */
	m->nshards = (uint32_t)(max_keys / SHARD_MIN_KEYS);
	if (m->nshards < 1)
		m->nshards = 1;
	if (m->nshards > SHARDS_MAX)
		m->nshards = SHARDS_MAX;
	m->shards = aligned_alloc(64, m->nshards * sizeof(*m->shards));
	if (!m->shards) {
		free(m);
		return CART_ENOMEM;
	}
	memset(m->shards, 0, m->nshards * sizeof(*m->shards));
	/* Caps add up to max_keys exactly; shard 0's is the largest. */
	m->nbuckets = 1;
	while (m->nbuckets < max_keys / m->nshards + (max_keys % m->nshards ? 1 : 0))
		m->nbuckets *= 2;
	m->buckets = malloc((size_t)m->nshards * m->nbuckets * sizeof(*m->buckets));
	if (!m->buckets) {
		m->nshards = 0;
		memory_limiter_destroy(m);
		return CART_ENOMEM;
	}
	memset(m->buckets, 0xff, (size_t)m->nshards * m->nbuckets * sizeof(*m->buckets));  /* NO_SLOT */
	for (uint32_t i = 0; i < m->nshards; i++) {
		uint32_t cap = (uint32_t)(max_keys / m->nshards) +
			       (i < max_keys % m->nshards ? 1 : 0);
		if (shard_init(&m->shards[i], cap, m->buckets + (size_t)i * m->nbuckets,
			       m->nbuckets) != CART_OK) {
			m->nshards = i;
			memory_limiter_destroy(m);
			return CART_ENOMEM;
		}
	}
	out->ops = &memory_limiter_ops;
	out->self = m;
	return CART_OK;
}
