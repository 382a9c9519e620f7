#ifndef CART_RELAY_PARK_H
#define CART_RELAY_PARK_H

/*
 * Private to lib/relay.c: what the relay does with an entry the bus
 * refused.  It counts the consecutive refusals for good of each user's
 * head event and, at the bound (max_attempts), parks the event in the
 * repository's dead-letter list (cart_repo_outbox_park), so the user's
 * later events go out again.
 *
 * Memory is bounded: at most PARK_SLOTS events are counted at once.  A
 * new one takes a free slot, else one not refused for a minute (its
 * event was delivered, parked elsewhere, or the relay stopped seeing
 * it), else the one with the fewest refusals: those closest to the bound
 * keep their counts, so parking always makes progress, however many
 * carts are poisoned at once.
 */

#include <stdatomic.h>
#include <stdbool.h>

#include "cart/ports.h"
#include "cart/relay.h"
#include "cart/repo.h"

typedef struct relay_parker relay_parker;

int relay_parker_new(relay_parker **out);
void relay_parker_free(relay_parker *pk);   /* accepts NULL */
/* 1..CART_RELAY_MAX_ATTEMPTS_MAX; not while a pass runs. */
void relay_parker_set_max_attempts(relay_parker *pk, int n);
void relay_parker_on_park(relay_parker *pk, cart_relay_park_fn fn, void *self);

/*
 * ev, a user's oldest pending event, was not accepted: res says why.
 * Counts a refusal for good and parks ev at the bound (true when it
 * did); a failure for now ends the count.  Safe from many threads.
 */
bool relay_parker_judge(relay_parker *pk, const cart_repo *repo,
			const cart_clock *clock, const cart_event *ev,
			const cart_publish_result *res);
uint64_t relay_parker_parked(const relay_parker *pk);

#endif
