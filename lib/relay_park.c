/*
 * Refusals for good, counted per (user, event id) in a small fixed table,
 * and the park at the bound.  See relay_park.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "relay_park.h"

#define PARK_SLOTS 256
#define STALE_MS 60000   /* a head is refused again within a few seconds */

typedef struct strike {
	char user_id[CART_ID_MAX + 1];
	char event_id[CART_UUID_LEN + 1];
	int count;                  /* 0: the slot is free */
	int64_t last_ms;
} strike;

struct relay_parker {
	pthread_mutex_t lock;       /* guards slots and n_used */
	strike slots[PARK_SLOTS];
	atomic_size_t n_used;
	int max_attempts;
	cart_relay_park_fn on_park;
	void *on_park_self;
	atomic_uint_fast64_t parked;
};

int relay_parker_new(relay_parker **out)
{
	relay_parker *pk = calloc(1, sizeof(*pk));

	*out = pk;
	if (!pk)
		return CART_ENOMEM;
	pthread_mutex_init(&pk->lock, NULL);
	pk->max_attempts = CART_RELAY_MAX_ATTEMPTS;
	return CART_OK;
}

void relay_parker_free(relay_parker *pk)
{
	if (!pk)
		return;
	pthread_mutex_destroy(&pk->lock);
	free(pk);
}

void relay_parker_set_max_attempts(relay_parker *pk, int n)
{
	pk->max_attempts = n;
}

void relay_parker_on_park(relay_parker *pk, cart_relay_park_fn fn, void *self)
{
	pk->on_park = fn;
	pk->on_park_self = self;
}

uint64_t relay_parker_parked(const relay_parker *pk)
{
	return atomic_load(&((relay_parker *)pk)->parked);
}

/* ev's slot, or NULL.  Caller holds the lock. */
static strike *find(relay_parker *pk, const cart_event *ev)
{
	for (size_t i = 0; i < PARK_SLOTS; i++)
		if (pk->slots[i].count && !strcmp(pk->slots[i].event_id, ev->event_id) &&
		    !strcmp(pk->slots[i].user_id, ev->user_id))
			return &pk->slots[i];
	return NULL;
}

/* A free slot, else a stale one, else the fewest refusals (the oldest). */
static strike *take_slot(relay_parker *pk, int64_t now_ms)
{
	strike *best = &pk->slots[0];

	for (size_t i = 0; i < PARK_SLOTS; i++) {
		strike *s = &pk->slots[i];
		if (!s->count || now_ms - s->last_ms > STALE_MS)
			return s;
		if (s->count < best->count ||
		    (s->count == best->count && s->last_ms < best->last_ms))
			best = s;
	}
	return best;
}

static void forget(relay_parker *pk, const cart_event *ev)
{
	strike *s;

	if (!atomic_load(&pk->n_used))
		return;   /* the common case: nothing refused lately */
	pthread_mutex_lock(&pk->lock);
	if ((s = find(pk, ev)) != NULL) {
		s->count = 0;
		atomic_fetch_sub(&pk->n_used, 1);
	}
	pthread_mutex_unlock(&pk->lock);
}

/* One more refusal of ev; returns how many in a row so far. */
static int strike_once(relay_parker *pk, const cart_event *ev, int64_t now_ms)
{
	strike *s;
	int n;

	pthread_mutex_lock(&pk->lock);
	if ((s = find(pk, ev)) == NULL) {
		s = take_slot(pk, now_ms);
		if (!s->count)
			atomic_fetch_add(&pk->n_used, 1);
		memcpy(s->user_id, ev->user_id, sizeof(s->user_id));
		memcpy(s->event_id, ev->event_id, sizeof(s->event_id));
		s->count = 0;
	}
	if (s->count < CART_RELAY_MAX_ATTEMPTS_MAX)
		s->count++;
	s->last_ms = now_ms;
	n = s->count;
	pthread_mutex_unlock(&pk->lock);
	return n;
}

bool relay_parker_judge(relay_parker *pk, const cart_repo *repo,
			const cart_clock *clock, const cart_event *ev,
			const cart_publish_result *res)
{
	int64_t now = cart_clock_now(clock);
	int n, err;

	if (res->status != CART_PUBLISH_REFUSED) {
		forget(pk, ev);
		return false;
	}
	n = strike_once(pk, ev, now);
	if (n < pk->max_attempts || !cart_repo_can_park(repo))
		return false;
	err = cart_repo_outbox_park(repo, ev->user_id, ev, res->code, now);
	if (err && err != CART_ECONFLICT)
		return false;   /* the store failed: park at the next refusal */
	forget(pk, ev);     /* parked, or no longer the head anyway */
	if (err)
		return false;
	atomic_fetch_add(&pk->parked, 1);
	if (pk->on_park)
		pk->on_park(pk->on_park_self, ev, res->code, n);
	return true;
}
