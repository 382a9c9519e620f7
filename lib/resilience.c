/*
 * Retry policy (AWS "standard" mode) and circuit breaker.  Time comes only
 * from the clock port and randomness only from the ids port, so tests can
 * steer both; nothing here sleeps.
 */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cart/error.h"
#include "cart/resilience.h"
#include "cart/sync.h"

/* --- retry ------------------------------------------------------------ */

struct cart_retry {
	cart_retry_config cfg;     /* immutable after _new */
	const cart_ids *ids;       /* borrowed */
	_Atomic int tokens;        /* 0..cfg.quota */
};

void cart_retry_config_init(cart_retry_config *cfg)
{
	assert(cfg);
	cfg->max_attempts = 3;
	cfg->base_ms = 100;
	cfg->cap_ms = 20000;
	cfg->quota = 500;
	cfg->retry_cost = 5;
	cfg->timeout_cost = 10;
	cfg->success_refund = 1;
}

static bool retry_config_valid(const cart_retry_config *cfg)
{
	return cfg->max_attempts >= 1 && cfg->base_ms >= 0 &&
	       cfg->cap_ms >= 0 && cfg->quota >= 0 && cfg->retry_cost >= 0 &&
	       cfg->timeout_cost >= 0 && cfg->success_refund >= 0;
}

int cart_retry_new(cart_retry **out, const cart_retry_config *cfg,
		   const cart_ids *ids)
{
	assert(out && cfg && ids);
	*out = NULL;
	if (!retry_config_valid(cfg))
		return CART_EINVALID;
	cart_retry *r = calloc(1, sizeof(*r));
	if (!r)
		return CART_ENOMEM;
	r->cfg = *cfg;
	r->ids = ids;
	atomic_init(&r->tokens, cfg->quota);
	*out = r;
	return CART_OK;
}

void cart_retry_free(cart_retry *r)
{
	free(r);
}

/* min(cap, base * 2^(attempt-1)) without overflowing int64. */
static int64_t backoff_bound(int64_t base, int64_t cap, int attempt)
{
	int64_t b = base < cap ? base : cap;
	for (int i = 1; i < attempt && b > 0 && b < cap; i++)
		b = b > cap / 2 ? cap : b * 2;
	return b;
}

/* Takes cost tokens if there are that many; lock-free. */
static bool take_tokens(cart_retry *r, int cost)
{
	int have = atomic_load(&r->tokens);
	do {
		if (have < cost)
			return false;
	} while (!atomic_compare_exchange_weak(&r->tokens, &have, have - cost));
	return true;
}

bool cart_retry_next(cart_retry *r, int attempt, bool timeout,
		     int64_t *delay_ms)
{
	assert(r && attempt >= 1);
	if (attempt >= r->cfg.max_attempts)
		return false;
	if (!take_tokens(r, timeout ? r->cfg.timeout_cost : r->cfg.retry_cost))
		return false;
	int64_t bound = backoff_bound(r->cfg.base_ms, r->cfg.cap_ms, attempt);
	if (delay_ms)
		*delay_ms = (int64_t)cart_ids_random(r->ids, (uint64_t)bound + 1);
	return true;
}

/* Adds n tokens, up to the quota; lock-free. */
static void give_tokens(cart_retry *r, int n)
{
	int have = atomic_load(&r->tokens), want;
	do {
		/* tokens <= quota, so this comparison cannot overflow */
		want = n >= r->cfg.quota - have ? r->cfg.quota : have + n;
	} while (!atomic_compare_exchange_weak(&r->tokens, &have, want));
}

void cart_retry_success(cart_retry *r)
{
	assert(r);
	give_tokens(r, r->cfg.success_refund);
}

void cart_retry_cancel(cart_retry *r, bool timeout)
{
	assert(r);
	give_tokens(r, timeout ? r->cfg.timeout_cost : r->cfg.retry_cost);
}

int cart_retry_tokens(const cart_retry *r)
{
	assert(r);
	return atomic_load(&r->tokens);
}

/* --- breaker ------------------------------------------------------------ */

#define MAX_BUCKETS 10

/* Outcomes of one slice of the window; epoch = time / bucket_ms. */
struct bucket {
	int64_t epoch;
	int64_t ok;
	int64_t failed;
};

struct cart_breaker {
	pthread_mutex_t lock;      /* guards every mutable field below */
	cart_breaker_config cfg;   /* immutable after _new */
	const cart_clock *clock;   /* borrowed */
	int nbuckets;              /* nbuckets * bucket_ms <= window_ms */
	int64_t bucket_ms;
	int64_t now;               /* latest clock reading seen; never decreases */
	cart_breaker_state state;
	int64_t opened_at;         /* OPEN: when it opened */
	int probes_issued;         /* HALF_OPEN: calls let through */
	int probes_done;           /* HALF_OPEN: outcomes recorded */
	struct bucket buckets[MAX_BUCKETS];
};

const char *cart_breaker_state_name(cart_breaker_state s)
{
	switch (s) {
	case CART_BREAKER_CLOSED: return "closed";
	case CART_BREAKER_OPEN: return "open";
	case CART_BREAKER_HALF_OPEN: return "half-open";
	}
	return "unknown";
}

void cart_breaker_config_init(cart_breaker_config *cfg)
{
	assert(cfg);
	cfg->enabled = true;
	cfg->failure_rate_pct = 50;
	cfg->min_calls = 20;
	cfg->window_ms = 10000;
	cfg->open_ms = 5000;
	cfg->half_open_probes = 3;
}

static bool breaker_config_valid(const cart_breaker_config *cfg)
{
	return cfg->failure_rate_pct >= 1 && cfg->failure_rate_pct <= 100 &&
	       cfg->min_calls >= 1 && cfg->window_ms > 0 && cfg->open_ms > 0 &&
	       cfg->half_open_probes >= 1;
}

int cart_breaker_new(cart_breaker **out, const cart_breaker_config *cfg,
		     const cart_clock *clock)
{
	assert(out && cfg && clock);
	*out = NULL;
	if (!breaker_config_valid(cfg))
		return CART_EINVALID;
	cart_breaker *b = calloc(1, sizeof(*b));
	if (!b)
		return CART_ENOMEM;
	if (cart_mutex_init_short(&b->lock) != 0) {
		free(b);
		return CART_ENOMEM;
	}
	b->cfg = *cfg;
	b->clock = clock;
	/* Whole buckets only, so nothing older than window_ms is counted. */
	b->nbuckets = cfg->window_ms < MAX_BUCKETS ? (int)cfg->window_ms
						   : MAX_BUCKETS;
	b->bucket_ms = cfg->window_ms / b->nbuckets;
	b->state = CART_BREAKER_CLOSED;
	b->now = cart_clock_now(clock);
	*out = b;
	return CART_OK;
}

void cart_breaker_free(cart_breaker *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static int64_t floor_div(int64_t a, int64_t d)
{
	int64_t q = a / d;
	return (a % d != 0 && (a < 0) != (d < 0)) ? q - 1 : q;
}

static size_t bucket_slot(int64_t epoch, int n)
{
	int64_t m = epoch % n;
	return (size_t)(m < 0 ? m + n : m);
}

static void window_reset(cart_breaker *b)
{
	for (int i = 0; i < MAX_BUCKETS; i++)
		b->buckets[i] = (struct bucket){ 0 };
}

static void window_add(cart_breaker *b, int64_t now, bool success)
{
	int64_t epoch = floor_div(now, b->bucket_ms);
	struct bucket *bk = &b->buckets[bucket_slot(epoch, b->nbuckets)];
	if (bk->epoch != epoch)
		*bk = (struct bucket){ .epoch = epoch };
	if (success)
		bk->ok++;
	else
		bk->failed++;
}

/* Sums the buckets of the last nbuckets slices up to and including now. */
static void window_sum(const cart_breaker *b, int64_t now, int64_t *total,
		       int64_t *failed)
{
	int64_t epoch = floor_div(now, b->bucket_ms);
	*total = *failed = 0;
	for (int i = 0; i < b->nbuckets; i++) {
		const struct bucket *bk = &b->buckets[i];
		if (bk->epoch > epoch - b->nbuckets && bk->epoch <= epoch) {
			*total += bk->ok + bk->failed;
			*failed += bk->failed;
		}
	}
}

static void trip(cart_breaker *b, int64_t now)
{
	b->state = CART_BREAKER_OPEN;
	b->opened_at = now;
	window_reset(b);
}

/*
 * Reads the clock and moves the breaker along in time: OPEN turns HALF_OPEN
 * once open_ms has passed.  Time never runs backwards here, whether the
 * wall clock steps back or another thread read it later but locked first.
 * Caller holds the lock; returns the time to use.
 */
static int64_t advance(cart_breaker *b)
{
	int64_t now = cart_clock_now(b->clock);
	if (now > b->now)
		b->now = now;
	now = b->now;
	if (b->state == CART_BREAKER_OPEN && now - b->opened_at >= b->cfg.open_ms) {
		b->state = CART_BREAKER_HALF_OPEN;
		b->probes_issued = 0;
		b->probes_done = 0;
	}
	return now;
}

int cart_breaker_allow(cart_breaker *b, int64_t *retry_after_ms)
{
	assert(b);
	if (!b->cfg.enabled)
		return CART_OK;
	int64_t wait = 0;
	int rc = CART_OK;
	pthread_mutex_lock(&b->lock);
	int64_t now = advance(b);
	if (b->state == CART_BREAKER_OPEN) {
		rc = CART_EUNAVAILABLE;
		wait = b->opened_at + b->cfg.open_ms - now;
	} else if (b->state == CART_BREAKER_HALF_OPEN) {
		if (b->probes_issued < b->cfg.half_open_probes) {
			b->probes_issued++;
		} else {
			/* Probes in flight decide; worst case one fails and
			 * the breaker stays open for open_ms. */
			rc = CART_EUNAVAILABLE;
			wait = b->cfg.open_ms;
		}
	}
	pthread_mutex_unlock(&b->lock);
	if (rc != CART_OK && retry_after_ms)
		*retry_after_ms = wait;
	return rc;
}

static void record_closed(cart_breaker *b, int64_t now, bool success)
{
	window_add(b, now, success);
	int64_t total, failed;
	window_sum(b, now, &total, &failed);
	if (total >= b->cfg.min_calls &&
	    failed * 100 >= (int64_t)b->cfg.failure_rate_pct * total)
		trip(b, now);
}

static void record_half_open(cart_breaker *b, int64_t now, bool success)
{
	/* Ignore late outcomes of calls let through before the probes. */
	if (b->probes_done >= b->probes_issued)
		return;
	b->probes_done++;
	if (!success) {
		trip(b, now);
	} else if (b->probes_done >= b->cfg.half_open_probes) {
		b->state = CART_BREAKER_CLOSED;
		window_reset(b);
	}
}

void cart_breaker_record(cart_breaker *b, bool success)
{
	assert(b);
	if (!b->cfg.enabled)
		return;
	pthread_mutex_lock(&b->lock);
	int64_t now = advance(b);
	if (b->state == CART_BREAKER_CLOSED)
		record_closed(b, now, success);
	else if (b->state == CART_BREAKER_HALF_OPEN)
		record_half_open(b, now, success);
	/* OPEN: a call from before the trip; it changes nothing. */
	pthread_mutex_unlock(&b->lock);
}

cart_breaker_state cart_breaker_get_state(cart_breaker *b)
{
	assert(b);
	if (!b->cfg.enabled)
		return CART_BREAKER_CLOSED;
	pthread_mutex_lock(&b->lock);
	advance(b);
	cart_breaker_state s = b->state;
	pthread_mutex_unlock(&b->lock);
	return s;
}
