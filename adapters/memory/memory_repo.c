/*
 * In-memory repository.  Users are hashed over SHARDS independent shards,
 * each a chained hash table under its own mutex, so requests for
 * different users seldom share a lock and no lock is process-wide.
 * Objects are copied outside the lock where possible; the lock covers
 * only the lookup and the pointer swap.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cart/sync.h"
#include "memory/memory_repo.h"
#include "memory/memory_repo_internal.h"

#define SHARDS 64
#define INITIAL_BUCKETS 16
/*
 * Emptied outboxes a shard keeps for its next writes.  Most writes carry
 * one event and find their cart's outbox empty (the relay keeps up), so
 * each write took a malloc of ~480 bytes and its ack a free of the same:
 * ~900 instructions of jemalloc without thread caches (ADR 17), an arena
 * lock each.  Only one-event blocks are kept (one that grew for a
 * backlog is freed), so the bound is 64 shards x 4 x ~512 bytes: 128 KiB.
 */
#define OUTBOX_SPARES 4

struct user_rec {
	struct user_rec *next;
	uint64_t hash;
	cart *cart;               /* NULL until the first cart write */
	struct idem_table *idem;  /* idempotency records; NULL until the first */
	cart_event *outbox;       /* pending events, oldest first */
	size_t n_outbox;
	/* On the shard's pending list while n_outbox > 0. */
	struct user_rec *pend_next, **pend_pprev;
	uint32_t fetch_gen;       /* the fetch that last took its events */
	char user_id[];
};

/*
 * A shard's bucket array.  One that a grow replaced is kept (older) until
 * the store is freed, so memory_warm and memory_warm_next may read the
 * one they found without the lock: the arrays a shard ever had add up to
 * less than twice its current one (8 bytes per bucket, at most one bucket
 * per user after a doubling, so under 16 bytes per user at most).
 */
struct table {
	size_t n;
	struct table *older;
	struct user_rec *b[];     /* stored with __atomic_store_n: read racily */
};

struct shard {
	pthread_mutex_t lock;     /* guards every field below */
	struct table *table;      /* also published in memory_repo.hint */
	/* table->b and table->n, kept beside the lock: a lookup under the
	 * lock reads them here, not from the table's own header */
	struct user_rec **buckets;
	size_t n_buckets;
	size_t n_users;
	size_t n_pending;         /* events in all outboxes of this shard */
	/*
	 * The users with pending events, so a relay pass costs the backlog,
	 * not the store: walking every bucket took a million-cart store's
	 * locks for milliseconds on every pass.  Sorted by their oldest
	 * pending event when linked (pending_link), so a fetch merges the
	 * shards' heads instead of sorting the backlog.
	 */
	struct user_rec *pending;
	struct user_rec **pend_tail;   /* &last->pend_next, or &pending */
	size_t idem_steps;        /* see cart_memory_repo_idem_steps */
	cart_event *spares[OUTBOX_SPARES];   /* emptied outboxes, for reuse */
	/* How many; written under the lock, read without it by a save
	 * deciding whether to allocate before locking. */
	atomic_uint n_spares;
};

/* The dead-letter list: a ring of CART_MEMORY_DLQ_MAX, oldest at head. */
struct dlq {
	pthread_mutex_t lock;         /* guards every field below; taken
				       * inside a shard lock, never around one */
	cart_memory_parked *ring;     /* CART_MEMORY_DLQ_MAX, on first use */
	size_t head, n;
	size_t dropped;
};

/*
 * Pacing (cart_memory_repo_pace_outbox): a save that would take the
 * backlog past `from` waits on `room` until the relay's acks make room
 * for it, its wait ends, or its call's deadline: writes are admitted at
 * the rate the relay drains.  Each event acked wakes one waiter (no
 * herd).  A waiter that sees no ack for PACE_STALL_MS marks the relay
 * stalled (a failing publisher, or one not started): until the next ack
 * nobody waits, and the bound alone applies.
 */
struct pace {
	pthread_mutex_t lock;         /* only for the condition variable */
	pthread_cond_t room;          /* CLOCK_MONOTONIC */
	size_t from;                  /* events; 0: no pacing */
	int64_t max_wait_ms;
	atomic_int waiters;
	atomic_llong last_ack_ms;     /* monotonic ms of the latest ack, 0: none */
	atomic_llong stalled_ms;      /* when a waiter last saw no ack, 0: never */
	atomic_ullong paced;          /* saves that waited */
	atomic_ullong paced_ms;       /* their waits, in ms */
};

struct memory_repo {
	struct shard shards[SHARDS];
	/* Each shard's table as last published, read without its lock by the
	 * warm hints: apart from the shards' written lines, so the hint's own
	 * read seldom misses. */
	_Atomic(struct table *) hint[SHARDS];
	struct dlq dlq;
	size_t max_pending;           /* events in all outboxes; 0: no bound */
	atomic_size_t pending;        /* events in all outboxes (sum of n_pending) */
	atomic_uint fetch_gen;        /* numbers the fetches (user_rec.fetch_gen) */
	struct pace pace;
};

/* A waiter that sees no ack for this long stops waiting, and so does
 * everyone until the next ack: the relay is not draining. */
#define PACE_STALL_MS 250
/* A busy cart's writes wait only for a relay that acked within this. */
#define PACE_CART_IDLE_MS 1000

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void abs_ms(struct timespec *ts, int64_t ms)
{
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

/* When a wait that starts at t0 must end: max_wait_ms, or the call's
 * deadline if sooner. */
static int64_t pace_end(const struct pace *p, const cart_write *w, int64_t t0)
{
	int64_t end = t0 + p->max_wait_ms;

	if (w->call && w->call->deadline_ms) {
		int64_t left = w->call->deadline_ms - wall_ms();
		if (t0 + left < end)
			end = t0 + left;
	}
	return end;
}

/*
 * Before a save with events: waits while pacing applies (see struct
 * pace).  Takes no shard lock.
 */
static void pace_wait(struct memory_repo *repo, const cart_write *w)
{
	struct pace *p = &repo->pace;
	int64_t t0, end, now;
	struct timespec until;

	if (!p->from || !w->event_count ||
	    atomic_load(&repo->pending) + w->event_count <= p->from ||
	    atomic_load(&p->stalled_ms) > atomic_load(&p->last_ack_ms))
		return;
	t0 = now = mono_ms();
	end = pace_end(p, w, t0);
	if (end <= t0)
		return;
	pthread_mutex_lock(&p->lock);
	atomic_fetch_add(&p->waiters, 1);
	/* seq_cst: either room_freed sees this waiter, or this sees its acks */
	while (atomic_load(&repo->pending) + w->event_count > p->from && now < end) {
		int64_t last = atomic_load(&p->last_ack_ms);
		int64_t stall = (last > t0 ? last : t0) + PACE_STALL_MS;

		if (now >= stall) {
			atomic_store(&p->stalled_ms, now);
			break;
		}
		abs_ms(&until, stall < end ? stall : end);
		pthread_cond_timedwait(&p->room, &p->lock, &until);
		now = mono_ms();
	}
	atomic_fetch_sub(&p->waiters, 1);
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_add(&p->paced, 1);
	atomic_fetch_add(&p->paced_ms, (unsigned long long)(now - t0));
}

/*
 * A cart's own outbox past half its bound (CART_OUTBOX_MAX) paces its
 * writes too: the process-wide backlog may be small while one busy cart
 * fills its own 100 events and gets 503 (make bench-events: 1,000 carts
 * taking ~14 writes a second each, a relay ~7 s behind).  One round: the
 * caller saw last_ack_ms == seen under the shard lock and let it go;
 * waits for the next ack, at most PACE_STALL_MS and never past the
 * pacing's limit (*end, set on the first round from *t0).  false: stop
 * waiting (limit, deadline, or a relay not draining).
 */
static bool pace_cart_round(struct memory_repo *repo, const cart_write *w,
			    int64_t seen, int64_t *t0, int64_t *end)
{
	struct pace *p = &repo->pace;
	int64_t now = mono_ms(), stall;
	struct timespec until;

	if (!*t0) {
		*t0 = now;
		*end = pace_end(p, w, now);
	}
	/* Not for a relay that is not draining: pace_wait found it stalled,
	 * or nothing was acked for PACE_CART_IDLE_MS (or ever).  Not
	 * PACE_STALL_MS as pace_wait: acks come in bursts, a relay pass at a
	 * time, and a busy cart that stopped waiting fills its outbox at
	 * once. */
	if (now >= *end || atomic_load(&p->stalled_ms) > seen ||
	    now - seen > PACE_CART_IDLE_MS)
		return false;
	stall = now + PACE_STALL_MS;
	pthread_mutex_lock(&p->lock);
	atomic_fetch_add(&p->waiters, 1);
	/* seq_cst: either room_freed sees this waiter, or this sees its ack */
	if (atomic_load(&p->last_ack_ms) == seen) {
		abs_ms(&until, stall < *end ? stall : *end);
		pthread_cond_timedwait(&p->room, &p->lock, &until);
	}
	atomic_fetch_sub(&p->waiters, 1);
	pthread_mutex_unlock(&p->lock);
	return true;
}

/* Whether this write would take its cart's outbox past half the bound,
 * with pacing on (shard lock held). */
static bool cart_busy(const struct memory_repo *repo, const struct user_rec *r,
		      const cart_write *w)
{
	return repo->pace.from && w->event_count &&
	       r->n_outbox + w->event_count > CART_OUTBOX_MAX / 2;
}

/* After n events left the outboxes (no shard lock held). */
static void room_freed(struct memory_repo *repo, size_t n)
{
	struct pace *p = &repo->pace;

	if (!p->from)
		return;
	atomic_store(&p->last_ack_ms, mono_ms());
	if (atomic_load(&p->waiters)) {
		pthread_mutex_lock(&p->lock);
		while (n--)
			pthread_cond_signal(&p->room);
		pthread_mutex_unlock(&p->lock);
	}
}

/*
 * FNV-1a, then murmur3's fmix64: FNV alone barely mixes the last byte into
 * the high bits, so user-1..user-N filled only 16 of the 64 shards.
 */
static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static size_t shard_index(uint64_t h)
{
	return (size_t)((h >> 32) % SHARDS);
}

static struct shard *shard_of(struct memory_repo *repo, uint64_t h)
{
	return &repo->shards[shard_index(h)];
}

size_t cart_memory_repo_shard_of(const char *user_id)
{
	return shard_index(hash_str(user_id));
}

/* Caller holds s->lock. */
static struct user_rec *find(struct shard *s, const char *user_id, uint64_t h)
{
	struct user_rec *r = s->buckets[h % s->n_buckets];
	for (; r; r = r->next)
		if (r->hash == h && strcmp(r->user_id, user_id) == 0)
			return r;
	return NULL;
}

static struct table *table_new(size_t n)
{
	struct table *t = calloc(1, sizeof(*t) + n * sizeof(t->b[0]));

	if (t)
		t->n = n;
	return t;
}

/* Caller holds s->lock.  Doubling keeps chains short; failure is harmless. */
static void maybe_grow(struct memory_repo *repo, struct shard *s)
{
	size_t n = s->n_buckets * 2;
	struct table *t;

	if (s->n_users < s->n_buckets)
		return;
	t = table_new(n);
	if (!t)
		return;
	for (size_t i = 0; i < s->n_buckets; i++) {
		struct user_rec *r = s->buckets[i], *next;
		for (; r; r = next) {
			next = r->next;
			r->next = t->b[r->hash % n];
			t->b[r->hash % n] = r;
		}
	}
	t->older = s->table;
	s->table = t;
	s->buckets = t->b;
	s->n_buckets = n;
	atomic_store_explicit(&repo->hint[s - repo->shards], t, memory_order_release);
}

/* Caller holds s->lock.  Finds or creates the user's record. */
static struct user_rec *find_or_add(struct memory_repo *repo, struct shard *s,
				    const char *user_id, uint64_t h)
{
	struct user_rec *r = find(s, user_id, h);
	size_t len;

	if (r)
		return r;
	len = strlen(user_id);
	r = calloc(1, sizeof(*r) + len + 1);
	if (!r)
		return NULL;
	memcpy(r->user_id, user_id, len + 1);
	r->hash = h;
	maybe_grow(repo, s);
	r->next = s->buckets[h % s->n_buckets];
	__atomic_store_n(&s->buckets[h % s->n_buckets], r, __ATOMIC_RELAXED);
	s->n_users++;
	return r;
}

static int64_t stored_version(const struct user_rec *r)
{
	return r && r->cart ? cart_version(r->cart) : 0;
}

/* --- idempotency records (memory_idem.c; caller holds the shard lock) -- */

/* The live entry of key, or NULL; an expired one met on the way is dropped. */
static struct idem_entry *idem_live(struct shard *s, struct user_rec *r,
				    const char *key, int64_t now)
{
	struct idem_entry *e = r && r->idem ?
		memory_idem_find(r->idem, key, &s->idem_steps) : NULL;

	if (e && e->expires_at <= now) {
		memory_idem_drop(r->idem, e, &s->idem_steps);
		e = NULL;
	}
	return e;
}

/* Stores e in the user's table, made on first use; see memory_idem_put. */
static int idem_put(struct shard *s, struct user_rec *r, struct idem_entry *e)
{
	if (!r->idem)
		r->idem = calloc(1, sizeof(*r->idem));
	return r->idem ? memory_idem_put(r->idem, e, &s->idem_steps)
		       : CART_ENOMEM;
}

/* --- the port ----------------------------------------------------------- */

/* Prefetches the shard's lock and the user's chain head: memory_load's
 * first two misses.  The table is never freed before the store. */
static void memory_warm(void *self, const char *user_id)
{
	struct memory_repo *repo = self;
	uint64_t h = hash_str(user_id);
	size_t i = shard_index(h);
	const struct table *t = atomic_load_explicit(&repo->hint[i], memory_order_acquire);

	__builtin_prefetch(&repo->shards[i].lock);
	/* an address, not a read: the chain head is what this brings in */
	__builtin_prefetch(&t->b[h % t->n]);
}

/*
 * Later in the same request: the chain head memory_warm brought in is
 * read (racily: a table found is never freed, and a record pointer there
 * is only prefetched, never read through) and its first record, most
 * often the user's, prefetched: memory_load's next miss.
 */
static void memory_warm_next(void *self, const char *user_id)
{
	struct memory_repo *repo = self;
	uint64_t h = hash_str(user_id);
	const struct table *t = atomic_load_explicit(&repo->hint[shard_index(h)],
						     memory_order_acquire);

	__builtin_prefetch(__atomic_load_n(&t->b[h % t->n], __ATOMIC_RELAXED));
}

static int memory_load(void *self, const char *user_id, cart **out)
{
	uint64_t h = hash_str(user_id);
	struct shard *s = shard_of(self, h);
	struct user_rec *r;
	int err = CART_ENOTFOUND;

	pthread_mutex_lock(&s->lock);
	r = find(s, user_id, h);
	if (r && r->cart) {
		cart_prefetch(r->cart);
		*out = cart_share(r->cart);   /* read-only; no copy */
		err = CART_OK;
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* Events r's outbox array holds without growing (its allocation's size). */
static size_t outbox_capacity(const struct user_rec *r)
{
	return r->outbox ? malloc_usable_size(r->outbox) / sizeof(*r->outbox) : 0;
}

/*
 * Events the array for r's outbox must hold after n more, if it must be
 * replaced: 0 when the outbox is empty (the caller's fresh array or a
 * spare fits; see outbox_reserve) or its array has room.  Caller holds
 * s->lock.
 */
static size_t outbox_need(const struct user_rec *r, size_t n)
{
	if (!n || !r->n_outbox || r->n_outbox + n <= outbox_capacity(r))
		return 0;
	return r->n_outbox + n;
}

/*
 * Makes room for n more outbox events; nothing changes on failure.  The
 * process bound is read without the other shards' locks, so concurrent
 * writes may pass it by at most one write each.  *fresh, if not NULL, is
 * an array of room events the caller allocated before taking the lock:
 * an empty outbox (the usual case, the relay keeps up) takes it, and a
 * pending one moves into it when it has room, leaving the old array in
 * *gone for the caller to free after unlocking.  Without one that fits,
 * one event takes a spare of the shard's (OUTBOX_SPARES), more grow the
 * array here, under the lock (memory_save allocates first, so that is
 * the rare case).  Caller holds s->lock.
 */
static int outbox_reserve(struct memory_repo *repo, struct shard *s,
			  struct user_rec *r, size_t n, cart_event **fresh,
			  size_t room, cart_event **gone)
{
	cart_event *grown;
	unsigned k;

	if (!n)
		return CART_OK;
	if (r->n_outbox + n > CART_OUTBOX_MAX)
		return CART_EBACKLOG;
	if (repo->max_pending &&
	    atomic_load(&repo->pending) + n > repo->max_pending)
		return CART_EBACKLOG;
	if (!outbox_need(r, n) && r->n_outbox)
		return CART_OK;      /* fits the array it has */
	if (*fresh && room >= r->n_outbox + n) {
		if (r->n_outbox)
			memcpy(*fresh, r->outbox, r->n_outbox * sizeof(**fresh));
		*gone = r->outbox;   /* NULL: an empty outbox holds no memory */
		r->outbox = *fresh;
		*fresh = NULL;
		return CART_OK;
	}
	if (!r->n_outbox && n == 1 && !r->outbox && (k = atomic_load(&s->n_spares))) {
		r->outbox = s->spares[--k];
		atomic_store(&s->n_spares, k);
		return CART_OK;
	}
	grown = realloc(r->outbox, (r->n_outbox + n) * sizeof(*grown));
	if (!grown && r->n_outbox + n)
		return CART_ENOMEM;
	r->outbox = grown;
	return CART_OK;
}

/* The user before the one whose pend_pprev is pprev; NULL at the head. */
static struct user_rec *pend_before(struct shard *s, struct user_rec **pprev)
{
	if (pprev == &s->pending)
		return NULL;
	return (struct user_rec *)((char *)pprev - offsetof(struct user_rec, pend_next));
}

/*
 * r has just got its first pending events, the oldest at `at`: links it
 * keeping the list sorted by oldest event, after the last user not newer,
 * found from the tail (at once, unless the clock went back).  Caller
 * holds s->lock.
 */
static void pending_link(struct shard *s, struct user_rec *r, int64_t at)
{
	struct user_rec *p = pend_before(s, s->pend_tail);

	while (p && p->outbox[0].occurred_at > at)
		p = pend_before(s, p->pend_pprev);
	r->pend_pprev = p ? &p->pend_next : &s->pending;
	r->pend_next = *r->pend_pprev;
	if (r->pend_next)
		r->pend_next->pend_pprev = &r->pend_next;
	else
		s->pend_tail = &r->pend_next;
	*r->pend_pprev = r;
}

/*
 * After events left r's outbox.  An emptied outbox leaves the pending list
 * and gives its array up: a cart_event is ~470 bytes, so keeping the
 * capacity of a cart's last write (3 events) would cost more than the cart
 * itself, for every cart ever written.  The array becomes one of the
 * shard's spares, or is returned for the caller to free after unlocking
 * (a free may wait for a malloc arena: never while holding a shard).
 * NULL if the outbox is not empty or was kept.  Caller holds s->lock.
 */
static cart_event *outbox_shrink(struct shard *s, struct user_rec *r)
{
	cart_event *gone = r->outbox;
	unsigned k = atomic_load(&s->n_spares);

	if (r->n_outbox)
		return NULL;
	r->outbox = NULL;
	if (gone && k < OUTBOX_SPARES &&
	    malloc_usable_size(gone) < 2 * sizeof(*gone)) {
		s->spares[k] = gone;
		atomic_store(&s->n_spares, k + 1);
		gone = NULL;
	}
	if (r->pend_pprev) {
		*r->pend_pprev = r->pend_next;
		if (r->pend_next)
			r->pend_next->pend_pprev = r->pend_pprev;
		else
			s->pend_tail = r->pend_pprev;
		r->pend_next = NULL;
		r->pend_pprev = NULL;
	}
	return gone;
}

/* Times a save (or a fetch) drops its shard's lock to allocate room for
 * the events the lock showed and looks again; past this it allocates
 * under the lock. */
#define OUTBOX_ALLOC_TRIES 2

static int memory_save(void *self, const cart_write *w)
{
	uint64_t h = hash_str(w->user_id);
	struct shard *s = shard_of(self, h);
	struct idem_entry *idem = NULL;
	struct user_rec *r;
	cart *copy = cart_share(w->cart);   /* kept as is; read-only from now */
	/* One event will likely find a spare under the lock (if another save
	 * takes it first, outbox_reserve allocates there). */
	bool spare = w->event_count == 1 &&
		     atomic_load_explicit(&s->n_spares, memory_order_relaxed);
	/* Otherwise allocated and freed outside the lock: for an empty
	 * outbox (the usual case), and again, once the lock showed how much
	 * a pending one needs (outbox_need).  An allocator's lock may wait
	 * for another core; a shard's lock must not wait with it. */
	size_t room = w->event_count && !spare ? w->event_count : 0;
	cart_event *fresh = room ? malloc(room * sizeof(*fresh)) : NULL;
	cart_event *gone = NULL;
	struct memory_repo *repo = self;
	int64_t t0 = 0, end = 0;    /* the cart's own pacing, if it waited */
	int tries = 0;
	int err;

	if (!fresh)
		room = 0;
	pace_wait(self, w);
	if (w->idem && (err = memory_idem_entry_new(&idem, w->idem))) {
		cart_free(copy);
		free(fresh);
		return err;
	}
	for (;;) {
		int64_t seen;
		size_t need;

		pthread_mutex_lock(&s->lock);
		r = find_or_add(repo, s, w->user_id, h);
		if (!r || stored_version(r) != w->expected_version)
			break;
		if (cart_busy(repo, r, w)) {
			seen = atomic_load(&repo->pace.last_ack_ms);
			pthread_mutex_unlock(&s->lock);
			if (pace_cart_round(repo, w, seen, &t0, &end))
				continue;
			pthread_mutex_lock(&s->lock);
			r = find_or_add(repo, s, w->user_id, h);
			break;
		}
		need = outbox_need(r, w->event_count);
		if (!need || need <= room || tries++ == OUTBOX_ALLOC_TRIES ||
		    need > CART_OUTBOX_MAX)
			break;
		pthread_mutex_unlock(&s->lock);
		free(fresh);
		room = need;         /* the allocator's size class may add room */
		if (!(fresh = malloc(room * sizeof(*fresh))))
			room = 0;
	}
	if (t0) {
		atomic_fetch_add(&repo->pace.paced, 1);
		atomic_fetch_add(&repo->pace.paced_ms, (unsigned long long)(mono_ms() - t0));
	}
	if (!r) {
		err = CART_ENOMEM;
	} else if (stored_version(r) != w->expected_version) {
		err = CART_ECONFLICT;
	} else if ((err = outbox_reserve(self, s, r, w->event_count, &fresh, room,
					 &gone)) == CART_OK) {
		/* The record goes first: if it cannot be stored, nothing is. */
		err = idem ? idem_put(s, r, idem) : CART_OK;
		if (!err) {
			cart *old = r->cart;

			idem = NULL;
			r->cart = copy;
			copy = old;          /* the replaced state, freed after unlocking */
			if (!r->n_outbox && w->event_count)
				pending_link(s, r, w->events[0].occurred_at);
			for (size_t i = 0; i < w->event_count; i++)
				r->outbox[r->n_outbox++] = w->events[i];
			s->n_pending += w->event_count;
			atomic_fetch_add(&((struct memory_repo *)self)->pending,
					 w->event_count);
		}
	}
	pthread_mutex_unlock(&s->lock);
	cart_free(copy);
	free(fresh);
	free(gone);
	memory_idem_entry_free(idem);
	return err;
}

/* The lock covers the lookup and a copy of the stored bytes; inflating does not. */
static int memory_idem_get(void *self, const char *user_id, const char *key,
			   int64_t now_ms, cart_idem **out)
{
	uint64_t h = hash_str(user_id);
	struct shard *s = shard_of(self, h);
	struct idem_entry *e, *copy = NULL;
	int err = CART_ENOTFOUND;

	*out = NULL;
	pthread_mutex_lock(&s->lock);
	e = idem_live(s, find(s, user_id, h), key, now_ms);
	if (e)
		err = memory_idem_entry_copy(&copy, e);
	pthread_mutex_unlock(&s->lock);
	if (!err)
		err = memory_idem_entry_unpack(out, copy);
	memory_idem_entry_free(copy);
	return err;
}

/*
 * Stores e for the user unless the key has a live record.  At a bound
 * filled by PENDING claims alone, expired claims anywhere are dropped
 * before giving up.  Caller holds the lock; takes e on success.
 */
static int claim_locked(struct shard *s, struct user_rec *r,
			struct idem_entry *e, int64_t now)
{
	int err;

	if (r->idem)
		memory_idem_prune(r->idem, now, false, &s->idem_steps);
	if (idem_live(s, r, e->key, now))
		return CART_ECONFLICT;
	err = idem_put(s, r, e);
	if (err == CART_EUNAVAILABLE) {
		memory_idem_prune(r->idem, now, true, &s->idem_steps);
		err = idem_put(s, r, e);
	}
	return err;
}

static int memory_idem_claim(void *self, const char *user_id,
			     const cart_idem *rec, int64_t now_ms)
{
	uint64_t h = hash_str(user_id);
	struct shard *s = shard_of(self, h);
	struct user_rec *r;
	struct idem_entry *e;
	int err = memory_idem_entry_new(&e, rec);

	if (err)
		return err;
	pthread_mutex_lock(&s->lock);
	r = find_or_add(self, s, user_id, h);
	err = r ? claim_locked(s, r, e, now_ms) : CART_ENOMEM;
	pthread_mutex_unlock(&s->lock);
	if (err)
		memory_idem_entry_free(e);
	return err;
}

static int memory_idem_complete(void *self, const char *user_id,
				const cart_idem *rec)
{
	uint64_t h = hash_str(user_id);
	struct shard *s = shard_of(self, h);
	struct user_rec *r;
	struct idem_entry *e;
	int err = memory_idem_entry_new(&e, rec);

	if (err)
		return err;
	pthread_mutex_lock(&s->lock);
	r = find_or_add(self, s, user_id, h);
	err = r ? idem_put(s, r, e) : CART_ENOMEM;
	pthread_mutex_unlock(&s->lock);
	if (err)
		memory_idem_entry_free(e);
	return err;
}

static int memory_idem_release(void *self, const char *user_id,
			       const char *key, const char *fingerprint)
{
	uint64_t h = hash_str(user_id);
	struct shard *s = shard_of(self, h);
	struct user_rec *r;
	struct idem_entry *e;

	pthread_mutex_lock(&s->lock);
	r = find(s, user_id, h);
	e = r && r->idem ? memory_idem_find(r->idem, key, &s->idem_steps) : NULL;
	if (e && e->state == CART_IDEM_PENDING &&
	    strcmp(e->fingerprint, fingerprint) == 0)
		memory_idem_drop(r->idem, e, &s->idem_steps);
	pthread_mutex_unlock(&s->lock);
	return CART_OK;
}

/* --- the outbox ---------------------------------------------------------- */

/*
 * Events a fetch allocates for a user before taking its shard's lock: one,
 * what a user has pending while the relay keeps up.  Four made a 2 KiB
 * block (jemalloc packs four to a slab: ~1,080 instructions a malloc
 * against ~500 for one event's 480 bytes), and the relay now keeps the
 * block until the events are acked.
 */
#define TAKE_SPARE 1

/*
 * Appends r's pending events to out as one batch.  Caller holds the lock
 * and has made room for the batch; *spare (room for spare_n events, or
 * NULL) is used when the events fit.  memory_outbox_fetch allocates it
 * before taking the lock, for as many events as the lock last showed;
 * only a user whose outbox grew again meanwhile gets its block allocated
 * under the lock.
 */
static int outbox_take(cart_outbox *out, const struct user_rec *r,
		       cart_event **spare, size_t spare_n)
{
	cart_outbox_batch *b = &out->batches[out->n_batches];

	if (*spare && r->n_outbox <= spare_n) {
		b->events = *spare;
		*spare = NULL;
	} else if (!(b->events = malloc(r->n_outbox * sizeof(*b->events)))) {
		return CART_ENOMEM;
	}
	memcpy(b->events, r->outbox, r->n_outbox * sizeof(*b->events));
	b->n = r->n_outbox;
	strcpy(b->user_id, r->user_id);
	out->n_batches++;
	return CART_OK;
}

/* Room for one more batch, grown by doubling; outside any lock. */
static int batch_room(cart_outbox *out, size_t *cap)
{
	cart_outbox_batch *grown;
	size_t want = *cap ? *cap * 2 : 16;

	if (out->n_batches < *cap)
		return CART_OK;
	grown = realloc(out->batches, want * sizeof(*grown));
	if (!grown)
		return CART_ENOMEM;
	out->batches = grown;
	*cap = want;
	return CART_OK;
}

/*
 * The next user a fetch takes from a shard, skipping those this fetch
 * already took (gen).  Caller holds the shard's lock.
 */
static struct user_rec *next_untaken(struct user_rec *r, uint32_t gen)
{
	while (r && r->fetch_gen == gen)
		r = r->pend_next;
	return r;
}

/* A shard's place in a fetch: the next user to take and its oldest event. */
struct fetch_head {
	struct user_rec *next;
	int64_t at;
};

/* Oldest head first; among equals the lower shard, as a scan would. */
static bool head_before(const struct fetch_head *cur, int a, int b)
{
	return cur[a].at < cur[b].at || (cur[a].at == cur[b].at && a < b);
}

/* Restores the min-heap h[0..n) of shard numbers below position i. */
static void heap_down(int *h, int n, const struct fetch_head *cur, int i)
{
	for (;;) {
		int l = 2 * i + 1, m = i, t;

		if (l < n && head_before(cur, h[l], h[m]))
			m = l;
		if (l + 1 < n && head_before(cur, h[l + 1], h[m]))
			m = l + 1;
		if (m == i)
			return;
		t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/*
 * Oldest first across shards, costing the events taken, not the backlog:
 * each shard's pending list is sorted by its users' oldest pending event
 * (as it was when they were linked; a user partly acked keeps its place),
 * so the fetch repeatedly takes the user at the head of the shard whose
 * head is oldest (a merge of 64 sorted lists, through a min-heap of the
 * shards: a scan of all 64 heads per user taken was ~800 instructions
 * an event).  Between
 * takes a shard's lock is dropped; user records are never freed while
 * the store lives, so a shard's cursor stays valid memory, and if its
 * user left the list meanwhile (an ack of an earlier fetch) the shard is
 * walked again from its head, skipping the users this fetch took.
 * Scanning in table order instead would serve the same carts on every
 * pass and starve the rest while the first ones keep writing; sorting
 * every pending user on every fetch made a 35,000-event backlog cost the
 * relay most of a core (issue 10, one core).
 */
static int memory_outbox_fetch(void *self, size_t max_events, cart_outbox *out)
{
	struct memory_repo *repo = self;
	struct fetch_head cur[SHARDS];
	int heap[SHARDS], n_heap = 0;
	uint32_t gen = (uint32_t)atomic_fetch_add(&repo->fetch_gen, 1) + 1;
	size_t taken = 0, cap = 0, spare_n = 0;
	cart_event *spare = NULL;
	int tries = 0, err = CART_OK;

	if (!gen)   /* 0 is every record's start: never a fetch's number */
		gen = (uint32_t)atomic_fetch_add(&repo->fetch_gen, 1) + 1;

	for (int i = 0; i < SHARDS; i++) {
		struct shard *s = &repo->shards[i];

		pthread_mutex_lock(&s->lock);
		out->backlog += s->n_pending;
		cur[i].next = s->pending;
		cur[i].at = s->pending ? s->pending->outbox[0].occurred_at : INT64_MAX;
		if (s->pending && (!out->oldest_at || cur[i].at < out->oldest_at))
			out->oldest_at = cur[i].at;
		pthread_mutex_unlock(&s->lock);
		if (cur[i].next)
			heap[n_heap++] = i;
	}
	for (int i = n_heap / 2 - 1; i >= 0; i--)
		heap_down(heap, n_heap, cur, i);
	while (taken < max_events && !err && n_heap) {
		struct user_rec *r;
		struct shard *s;
		int best = heap[0];

		if ((err = batch_room(out, &cap)))
			break;
		if (!spare) {
			spare_n = TAKE_SPARE;
			spare = malloc(spare_n * sizeof(*spare));
		}
		s = &repo->shards[best];
		pthread_mutex_lock(&s->lock);
		r = cur[best].next;
		if (!r->pend_pprev || r->fetch_gen == gen)
			r = next_untaken(s->pending, gen);
		if (r && r->n_outbox > spare_n && tries++ < OUTBOX_ALLOC_TRIES) {
			/* a backlog (a slow bus): allocate outside the lock,
			 * then look again */
			size_t need = r->n_outbox;

			pthread_mutex_unlock(&s->lock);
			free(spare);
			spare = malloc(need * sizeof(*spare));
			spare_n = spare ? need : 0;
			continue;
		}
		tries = 0;
		if (r) {
			err = outbox_take(out, r, &spare, spare_n);
			r->fetch_gen = gen;
			taken += r->n_outbox;
			r = next_untaken(r->pend_next, gen);
		}
		cur[best].next = r;
		cur[best].at = r ? r->outbox[0].occurred_at : INT64_MAX;
		pthread_mutex_unlock(&s->lock);
		if (!r)
			heap[0] = heap[--n_heap];   /* this shard has nothing left */
		heap_down(heap, n_heap, cur, 0);
	}
	free(spare);
	if (err)
		cart_outbox_release(out);
	return err;
}

static int memory_outbox_ack(void *self, const char *user_id,
			     const cart_event *events, size_t n)
{
	uint64_t h = hash_str(user_id);
	struct shard *s = shard_of(self, h);
	struct user_rec *r;
	cart_event *gone = NULL;
	int err = CART_OK;

	pthread_mutex_lock(&s->lock);
	r = find(s, user_id, h);
	if (!r || r->n_outbox < n)
		err = CART_ECONFLICT;
	for (size_t i = 0; !err && i < n; i++)
		if (strcmp(r->outbox[i].event_id, events[i].event_id))
			err = CART_ECONFLICT;
	if (!err) {
		memmove(r->outbox, r->outbox + n, (r->n_outbox - n) * sizeof(*r->outbox));
		r->n_outbox -= n;
		gone = outbox_shrink(s, r);
		s->n_pending -= n;
		atomic_fetch_sub(&((struct memory_repo *)self)->pending, n);
	}
	pthread_mutex_unlock(&s->lock);
	free(gone);
	if (!err)
		room_freed(self, n);
	return err;
}

/* Appends to the ring, dropping the oldest when full.  Holds dlq->lock. */
static int dlq_push(struct dlq *q, const cart_event *event, const char *reason,
		    int64_t parked_at_ms)
{
	cart_memory_parked *p;

	if (!q->ring && !(q->ring = calloc(CART_MEMORY_DLQ_MAX, sizeof(*q->ring))))
		return CART_ENOMEM;
	if (q->n == CART_MEMORY_DLQ_MAX) {
		q->head = (q->head + 1) % CART_MEMORY_DLQ_MAX;
		q->n--;
		q->dropped++;
	}
	p = &q->ring[(q->head + q->n++) % CART_MEMORY_DLQ_MAX];
	p->event = *event;
	snprintf(p->reason, sizeof(p->reason), "%s", reason);
	p->parked_at_ms = parked_at_ms;
	return CART_OK;
}

/* Both under the shard lock: the event is in exactly one of the lists. */
static int memory_outbox_park(void *self, const char *user_id,
			      const cart_event *event, const char *reason,
			      int64_t parked_at_ms)
{
	struct memory_repo *repo = self;
	uint64_t h = hash_str(user_id);
	struct shard *s = shard_of(repo, h);
	struct user_rec *r;
	cart_event *gone = NULL;
	int err = CART_OK;

	pthread_mutex_lock(&s->lock);
	r = find(s, user_id, h);
	if (!r || !r->n_outbox || strcmp(r->outbox[0].event_id, event->event_id))
		err = CART_ECONFLICT;
	if (!err) {
		pthread_mutex_lock(&repo->dlq.lock);
		err = dlq_push(&repo->dlq, &r->outbox[0], reason, parked_at_ms);
		pthread_mutex_unlock(&repo->dlq.lock);
	}
	if (!err) {
		memmove(r->outbox, r->outbox + 1, (r->n_outbox - 1) * sizeof(*r->outbox));
		r->n_outbox--;
		gone = outbox_shrink(s, r);
		s->n_pending--;
		atomic_fetch_sub(&repo->pending, 1);
	}
	pthread_mutex_unlock(&s->lock);
	free(gone);
	if (!err)
		room_freed(repo, 1);
	return err;
}

bool cart_memory_repo_parked(const cart_repo *rp, size_t i,
			     cart_memory_parked *out, size_t *n_kept,
			     size_t *n_dropped)
{
	struct memory_repo *repo = rp->self;
	struct dlq *q = &repo->dlq;
	bool found;

	pthread_mutex_lock(&q->lock);
	found = i < q->n;
	if (found && out)
		*out = q->ring[(q->head + i) % CART_MEMORY_DLQ_MAX];
	if (n_kept)
		*n_kept = q->n;
	if (n_dropped)
		*n_dropped = q->dropped;
	pthread_mutex_unlock(&q->lock);
	return found;
}

static int memory_ping(void *self)
{
	return CART_OK;
}

static void memory_destroy(void *self)
{
	struct memory_repo *repo = self;

	if (!repo)
		return;
	for (int i = 0; i < SHARDS; i++) {
		struct shard *s = &repo->shards[i];
		for (size_t b = 0; b < s->n_buckets; b++) {
			struct user_rec *r = s->buckets[b], *next;
			for (; r; r = next) {
				next = r->next;
				if (r->idem)
					memory_idem_clear(r->idem);
				free(r->idem);
				cart_free(r->cart);
				free(r->outbox);
				free(r);
			}
		}
		for (struct table *t = s->table, *older; t; t = older) {
			older = t->older;
			free(t);
		}
		for (unsigned k = 0; k < atomic_load(&s->n_spares); k++)
			free(s->spares[k]);
		pthread_mutex_destroy(&s->lock);
	}
	free(repo->dlq.ring);
	pthread_mutex_destroy(&repo->dlq.lock);
	pthread_cond_destroy(&repo->pace.room);
	pthread_mutex_destroy(&repo->pace.lock);
	free(repo);
}

/* No I/O and nothing to wait for: the request's deadline cannot matter. */
static int memory_load_call(void *self, const cart_call_ctx *call,
			    const char *user_id, cart **out)
{
	return memory_load(self, user_id, out);
}

static const cart_repo_ops memory_repo_ops = {
	.version = CART_REPO_OPS_VERSION,
	.load = memory_load,
	.save = memory_save,
	.idem_get = memory_idem_get,
	.idem_claim = memory_idem_claim,
	.idem_complete = memory_idem_complete,
	.idem_release = memory_idem_release,
	.outbox_fetch = memory_outbox_fetch,
	.outbox_ack = memory_outbox_ack,
	.ping = memory_ping,
	.destroy = memory_destroy,
	.outbox_park = memory_outbox_park,
	.load_call = memory_load_call,
	.warm = memory_warm,
	.warm_next = memory_warm_next,
};

int cart_memory_repo_new(cart_repo *out)
{
	struct memory_repo *repo = calloc(1, sizeof(*repo));

	out->ops = NULL;
	out->self = NULL;
	if (!repo)
		return CART_ENOMEM;
	pthread_mutex_init(&repo->dlq.lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_mutex_init(&repo->pace.lock, NULL);
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&repo->pace.room, &ca);
		pthread_condattr_destroy(&ca);
	}
	for (int i = 0; i < SHARDS; i++) {
		struct shard *s = &repo->shards[i];
		cart_mutex_init_short(&s->lock);
		s->pend_tail = &s->pending;
		s->table = table_new(INITIAL_BUCKETS);
		s->buckets = s->table ? s->table->b : NULL;
		s->n_buckets = s->table ? INITIAL_BUCKETS : 0;
		atomic_init(&repo->hint[i], s->table);
		if (!s->table) {
			for (int j = i + 1; j < SHARDS; j++)
				cart_mutex_init_short(&repo->shards[j].lock);
			memory_destroy(repo);
			return CART_ENOMEM;
		}
	}
	out->ops = &memory_repo_ops;
	out->self = repo;
	return CART_OK;
}

void cart_memory_repo_limit_outbox(cart_repo *r, size_t max_bytes)
{
	struct memory_repo *repo = r->self;

	repo->max_pending = max_bytes / sizeof(cart_event);
	if (max_bytes && !repo->max_pending)
		repo->max_pending = 1;
}

void cart_memory_repo_pace_outbox(cart_repo *r, size_t from_bytes, int64_t max_wait_ms)
{
	struct memory_repo *repo = r->self;

	repo->pace.from = from_bytes / sizeof(cart_event);
	if (from_bytes && !repo->pace.from)
		repo->pace.from = 1;
	repo->pace.max_wait_ms = max_wait_ms > 0 ? max_wait_ms : 0;
}

void cart_memory_repo_pace_stats(const cart_repo *r, uint64_t *paced, uint64_t *paced_ms)
{
	struct memory_repo *repo = r->self;

	*paced = atomic_load(&repo->pace.paced);
	*paced_ms = atomic_load(&repo->pace.paced_ms);
}

size_t cart_memory_repo_idem_steps(const cart_repo *r)
{
	struct memory_repo *repo = r->self;
	size_t sum = 0;

	for (int i = 0; i < SHARDS; i++) {
		struct shard *s = &repo->shards[i];
		pthread_mutex_lock(&s->lock);
		sum += s->idem_steps;
		pthread_mutex_unlock(&s->lock);
	}
	return sum;
}

size_t cart_memory_repo_shard(const cart_repo *r, const char *user_id)
{
	struct memory_repo *repo = r->self;

	return (size_t)(shard_of(repo, hash_str(user_id)) - repo->shards);
}
