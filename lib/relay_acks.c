/*
 * Acknowledgements that wait: see relay_acks.h.  An open-addressing
 * table of users (linear probing, deletion by shifting back), under one
 * mutex: it is touched once per user per publisher call and per fetch,
 * never on the request path.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cart/error.h"
#include "relay_acks.h"

#define SLOTS 16384   /* power of two, >= 2 x ACKS_EVENTS_MAX users */

typedef struct waiting {
	char user_id[CART_ID_MAX + 1];
	cart_event *ev;               /* n, owned */
	size_t n;
	int64_t due_ms;
} waiting;

struct relay_acks {
	pthread_mutex_t lock;
	int64_t delay_ms;
	size_t events;                /* waiting, all users */
	waiting *slot[SLOTS];
};

static void waiting_free(waiting *w)
{
	if (w) {
		free(w->ev);
		free(w);
	}
}

int relay_acks_new(relay_acks **out)
{
	relay_acks *a = calloc(1, sizeof(*a));

	*out = a;
	if (!a)
		return CART_ENOMEM;
	pthread_mutex_init(&a->lock, NULL);
	return CART_OK;
}

void relay_acks_free(relay_acks *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < SLOTS; i++)
		waiting_free(a->slot[i]);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

int relay_acks_set_delay(relay_acks *a, int64_t ms)
{
	if (ms < 0 || ms > ACKS_DELAY_MAX_MS)
		return CART_EINVALID;
	pthread_mutex_lock(&a->lock);
	a->delay_ms = ms;
	pthread_mutex_unlock(&a->lock);
	return CART_OK;
}

static size_t home(const char *s)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return (size_t)(h ^ (h >> 29)) & (SLOTS - 1);
}

/* The user's slot, or the empty slot where it would go.  Lock held. */
static size_t find(const relay_acks *a, const char *user_id)
{
	size_t i = home(user_id);

	while (a->slot[i] && strcmp(a->slot[i]->user_id, user_id))
		i = (i + 1) & (SLOTS - 1);
	return i;
}

/* Empties slot i and shifts later members of its run back.  Lock held. */
static waiting *take_slot(relay_acks *a, size_t i)
{
	waiting *w = a->slot[i];
	size_t j = i;

	a->events -= w->n;
	a->slot[i] = NULL;
	for (;;) {
		size_t h;

		j = (j + 1) & (SLOTS - 1);
		if (!a->slot[j])
			break;
		h = home(a->slot[j]->user_id);
		/* move j back to i unless its home lies in (i, j] */
		if ((i < j) ? (h <= i || h > j) : (h <= i && h > j)) {
			a->slot[i] = a->slot[j];
			a->slot[j] = NULL;
			i = j;
		}
	}
	return w;
}

/* How many of ev[0..n) w holds, if w is a prefix of them; else 0. */
static size_t prefix_of(const waiting *w, const cart_event *ev, size_t n)
{
	size_t k = 0;

	while (w && k < w->n && k < n && !strcmp(w->ev[k].event_id, ev[k].event_id))
		k++;
	return w && k == w->n ? k : 0;
}

size_t relay_acks_peek(relay_acks *a, const char *user_id,
		       const cart_event *ev, size_t n)
{
	size_t k;

	pthread_mutex_lock(&a->lock);
	k = prefix_of(a->slot[find(a, user_id)], ev, n);
	pthread_mutex_unlock(&a->lock);
	return k;
}

size_t relay_acks_published(relay_acks *a, const char *user_id,
			    const cart_event *ev, size_t n)
{
	size_t i, k;
	waiting *w;

	pthread_mutex_lock(&a->lock);
	i = find(a, user_id);
	w = a->slot[i];
	k = prefix_of(w, ev, n);
	if (w && !k)                  /* not a prefix any more: forget it */
		waiting_free(take_slot(a, i));
	pthread_mutex_unlock(&a->lock);
	return k;
}

/*
 * Moves the waiting events of w, then ev[0..n), into out and frees w.
 * out->events is NULL when w is (nothing waited: ack ev[0..n) alone, no
 * copy), and out of memory (what waited is forgotten: republished
 * later, at least once).  Lock held.
 */
static void hand_over(waiting *w, const cart_event *ev, size_t n,
		      cart_outbox_batch *out, const char *user_id)
{
	size_t had = w ? w->n : 0;

	strcpy(out->user_id, user_id);
	out->n = 0;
	out->events = NULL;
	if (!w)                       /* nothing waited: ack ev as it is */
		return;
	if (!n) {                /* no copy: the array changes hands */
		out->events = w->ev;
		out->n = had;
		free(w);
		return;
	}
	out->events = malloc((had + n) * sizeof(*out->events));
	if (out->events) {
		if (had)
			memcpy(out->events, w->ev, had * sizeof(*w->ev));
		memcpy(out->events + had, ev, n * sizeof(*ev));
		out->n = had + n;
	}
	waiting_free(w);
}

bool relay_acks_defer(relay_acks *a, const char *user_id,
		      const cart_event *ev, size_t n, int64_t now_ms,
		      bool now_please, cart_outbox_batch *out)
{
	size_t i;
	waiting *w;

	pthread_mutex_lock(&a->lock);
	i = find(a, user_id);
	w = a->slot[i];
	if (!now_please && a->delay_ms > 0 &&
	    (w ? w->n : 0) + n <= ACKS_USER_MAX &&
	    a->events + n <= ACKS_EVENTS_MAX) {
		cart_event *grown;

		if (!w && (w = calloc(1, sizeof(*w))) != NULL) {
			strcpy(w->user_id, user_id);
			w->due_ms = now_ms + a->delay_ms;
			a->slot[i] = w;
		}
		grown = w ? realloc(w->ev, (w->n + n) * sizeof(*grown)) : NULL;
		if (grown) {
			w->ev = grown;
			memcpy(w->ev + w->n, ev, n * sizeof(*ev));
			w->n += n;
			a->events += n;
			pthread_mutex_unlock(&a->lock);
			return true;
		}
		if (w && !w->n) {     /* just made, out of memory */
			waiting_free(take_slot(a, i));
			w = NULL;
		}
	}
	if (w)
		w = take_slot(a, i);
	hand_over(w, ev, n, out, user_id);
	pthread_mutex_unlock(&a->lock);
	return false;
}

size_t relay_acks_due(relay_acks *a, int64_t now_ms, bool all,
		      cart_outbox_batch **out)
{
	cart_outbox_batch *b = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < SLOTS && a->events; i++) {
		waiting *w = a->slot[i];

		if (!w || (!all && w->due_ms > now_ms))
			continue;
		if (n == cap) {
			cart_outbox_batch *g = realloc(b, (cap ? cap * 2 : 16) * sizeof(*g));
			if (!g)
				break;        /* the rest stays for the next call */
			b = g;
			cap = cap ? cap * 2 : 16;
		}
		w = take_slot(a, i);
		hand_over(w, NULL, 0, &b[n], w->user_id);
		n++;
		i--;                  /* take_slot may have moved a user into i */
	}
	pthread_mutex_unlock(&a->lock);
	*out = b;
	return n;
}

int64_t relay_acks_next_ms(relay_acks *a, int64_t now_ms)
{
	int64_t next = -1;

	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < SLOTS && a->events; i++) {
		const waiting *w = a->slot[i];
		int64_t in;

		if (!w)
			continue;
		in = w->due_ms > now_ms ? w->due_ms - now_ms : 0;
		if (next < 0 || in < next)
			next = in;
	}
	pthread_mutex_unlock(&a->lock);
	return next;
}

size_t relay_acks_waiting(relay_acks *a)
{
	size_t n;

	pthread_mutex_lock(&a->lock);
	n = a->events;
	pthread_mutex_unlock(&a->lock);
	return n;
}
