#ifndef CART_RELAY_ACKS_H
#define CART_RELAY_ACKS_H

/*
 * Private to lib/relay.c: acknowledgements that wait (issue 8, write
 * cost; ADR 12).  On DynamoDB each ack is a write of the cart item, so
 * the relay may hold a user's published events for up to `delay` ms and
 * acknowledge all of them in one write: a cart changed several times in
 * that window costs one ack instead of one per change.  Delivery is not
 * delayed, only the removal from the outbox; a crash inside the window
 * republishes those events (at least once, as before).
 *
 * While a user's events wait here, the relay must not publish them again
 * when a fetch brings them back: relay_acks_published says how many of
 * the fetched events are already out.
 *
 * Bounded: at most ACKS_EVENTS_MAX events wait in all, and at most
 * ACKS_USER_MAX per user; past either bound the events are acked at once.
 * With a delay of 0 nothing waits.  Thread-safe.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cart/repo.h"

#define ACKS_DELAY_MAX_MS 10000
#define ACKS_USER_MAX 20        /* events one ack write removes, at most */
#define ACKS_EVENTS_MAX 8192    /* events waiting, all users (~3 MB) */

typedef struct relay_acks relay_acks;

int relay_acks_new(relay_acks **out);
void relay_acks_free(relay_acks *a);   /* accepts NULL */
/* 0..ACKS_DELAY_MAX_MS, else CART_EINVALID. */
int relay_acks_set_delay(relay_acks *a, int64_t ms);

/*
 * A fetch brought ev[0..n), the user's pending events: how many of the
 * first ones are published and waiting here.  If what waits is not a
 * prefix of ev (another relay acked, or the event was parked), it is
 * forgotten and 0 is returned: those events count as pending again.
 */
size_t relay_acks_published(relay_acks *a, const char *user_id,
			    const cart_event *ev, size_t n);

/* Like relay_acks_published, but changes nothing. */
size_t relay_acks_peek(relay_acks *a, const char *user_id,
		       const cart_event *ev, size_t n);

/*
 * The publisher accepted ev[0..n), which follow the user's waiting
 * events in its outbox.  Returns true if they now wait too.  Else (no
 * delay, or a bound reached, or `now_please`) *out receives everything
 * to ack at once, the waiting events then ev (caller frees out->events),
 * or out->events is NULL: ack ev[0..n) as it is (nothing waited; or out
 * of memory, and what waited is forgotten: published again later).
 */
bool relay_acks_defer(relay_acks *a, const char *user_id,
		      const cart_event *ev, size_t n, int64_t now_ms,
		      bool now_please, cart_outbox_batch *out);

/*
 * Takes out the users whose wait ended (all of them if `all`): *out gets
 * an array of batches to ack (caller frees each events and the array),
 * returns its length.
 */
size_t relay_acks_due(relay_acks *a, int64_t now_ms, bool all,
		      cart_outbox_batch **out);

/* ms until the next wait ends (0 if one has), or -1 if nothing waits. */
int64_t relay_acks_next_ms(relay_acks *a, int64_t now_ms);

/* Events waiting. */
size_t relay_acks_waiting(relay_acks *a);

#endif
