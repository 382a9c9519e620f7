/*
 * The outbox relay.  Publish, then acknowledge: a crash between the two
 * republishes (at least once), never loses; an event is never published
 * for a write that did not commit because only committed writes reach the
 * outbox.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "cart/relay.h"

struct cart_relay {
	cart_repo repo;
	cart_publisher pub;
	cart_clock clock;
	size_t batch;
	atomic_uint_fast64_t published;
	atomic_uint_fast64_t publish_failures;
	atomic_uint_fast64_t ack_conflicts;
	atomic_size_t backlog;
	atomic_int_fast64_t oldest_age_ms;
};

int cart_relay_new(cart_relay **out, const cart_repo *repo,
		   const cart_publisher *pub, const cart_clock *clock,
		   size_t batch)
{
	cart_relay *r;

	*out = NULL;
	if (!repo || !repo->ops || repo->ops->version < 1 ||
	    !repo->ops->outbox_fetch || !pub || !pub->ops || pub->ops->version < 1 ||
	    !clock || !clock->ops || batch < 1)
		return CART_EINVALID;
	r = calloc(1, sizeof(*r));
	if (!r)
		return CART_ENOMEM;
	r->repo = *repo;
	r->pub = *pub;
	r->clock = *clock;
	r->batch = batch;
	*out = r;
	return CART_OK;
}

void cart_relay_free(cart_relay *r)
{
	free(r);
}

/* Publishes one user's events and acks them; returns how many went out. */
static size_t relay_user(cart_relay *r, const cart_outbox_batch *b)
{
	int err;

	if (cart_publisher_publish(&r->pub, b->events, b->n)) {
		atomic_fetch_add(&r->publish_failures, 1);
		return 0;
	}
	atomic_fetch_add(&r->published, b->n);
	err = cart_repo_outbox_ack(&r->repo, b->user_id, b->events, b->n);
	if (err == CART_ECONFLICT)
		atomic_fetch_add(&r->ack_conflicts, 1);
	return b->n;
}

int cart_relay_run_once(cart_relay *r)
{
	cart_outbox box;
	size_t sent = 0;
	int err = cart_repo_outbox_fetch(&r->repo, r->batch, &box);

	if (err)
		return err;
	atomic_store(&r->backlog, box.backlog);
	atomic_store(&r->oldest_age_ms,
		     box.oldest_at ? cart_clock_now(&r->clock) - box.oldest_at : 0);
	for (size_t i = 0; i < box.n_batches; i++)
		sent += relay_user(r, &box.batches[i]);
	cart_outbox_release(&box);
	return (int)sent;
}

void cart_relay_stats_get(const cart_relay *r, cart_relay_stats *out)
{
	cart_relay *m = (cart_relay *)r;

	out->published = atomic_load(&m->published);
	out->publish_failures = atomic_load(&m->publish_failures);
	out->ack_conflicts = atomic_load(&m->ack_conflicts);
	out->backlog = atomic_load(&m->backlog);
	out->oldest_age_ms = atomic_load(&m->oldest_age_ms);
}

int cart_relay_set_concurrency(cart_relay *r, int n)
{
	return n >= 1 && n <= 64 ? CART_OK : CART_EINVALID;
}
