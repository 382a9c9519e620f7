/*
 * The outbox relay.  Publish, then acknowledge: a crash between the two
 * republishes (at least once), never loses; an event is never published
 * for a write that did not commit because only committed writes reach the
 * outbox.
 *
 * One pass fetches many users' backlogs and packs them into publisher
 * calls of at most CART_RELAY_CALL_MAX entries, mixing users.  Up to
 * `concurrency` calls are in flight: the thread running the pass makes
 * calls itself, helped by concurrency - 1 pool threads.  A user is in at
 * most one call at a time: when a backlog does not fit the call, the rest
 * waits until that call is answered and acked, so each user's events go
 * out in cart_version order.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cart/relay.h"
#include "relay_park.h"

#define CONCURRENCY_MAX 64

/* Users of one pass still to publish: a FIFO of batch indexes. */
typedef struct relay_pass {
	cart_outbox_batch *batches;   /* borrowed from the pass's cart_outbox */
	size_t *next;                 /* per batch: first event not yet sent */
	size_t *ready;                /* ring of n_batches indexes */
	size_t head, n_ready, cap;
	size_t busy;                  /* calls in flight */
	size_t sent;                  /* events accepted this pass */
} relay_pass;

/* A user's run of events inside one call. */
typedef struct call_seg {
	size_t batch, first, n;       /* batches[batch].events[first..first+n) */
	size_t at;                    /* where the run starts in the call */
} call_seg;

struct cart_relay {
	cart_repo repo;
	cart_publisher pub;
	cart_clock clock;
	size_t batch;
	atomic_uint_fast64_t published;
	atomic_uint_fast64_t publish_failures;
	atomic_uint_fast64_t ack_conflicts;
	relay_parker *parker;         /* refusals for good; see relay_park.h */
	atomic_size_t backlog;
	atomic_int_fast64_t oldest_age_ms;
	atomic_uint_fast64_t delivered_per_s;  /* over the last window */
	int64_t window_start_ms;      /* relay thread only */
	uint64_t window_published;    /* relay thread only: published then */

	pthread_mutex_t lock;         /* guards the fields below */
	pthread_cond_t work;          /* a pass started or users became ready */
	pthread_cond_t done;          /* a call finished */
	relay_pass *pass;             /* the running pass, NULL between passes */
	bool stopping;
	pthread_t *pool;
	int n_pool;
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
	if (!r || relay_parker_new(&r->parker)) {
		free(r);
		return CART_ENOMEM;
	}
	r->repo = *repo;
	r->pub = *pub;
	r->clock = *clock;
	r->batch = batch;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->work, NULL);
	pthread_cond_init(&r->done, NULL);
	*out = r;
	return CART_OK;
}

static void pool_stop(cart_relay *r)
{
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->work);
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < r->n_pool; i++)
		pthread_join(r->pool[i], NULL);
	free(r->pool);
	r->pool = NULL;
	r->n_pool = 0;
	r->stopping = false;
}

void cart_relay_free(cart_relay *r)
{
	if (!r)
		return;
	pool_stop(r);
	relay_parker_free(r->parker);
	pthread_cond_destroy(&r->done);
	pthread_cond_destroy(&r->work);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* --- one call ----------------------------------------------------------- */

static size_t pop_ready(relay_pass *p)
{
	size_t idx = p->ready[p->head];

	p->head = (p->head + 1) % p->cap;
	p->n_ready--;
	return idx;
}

static void push_ready(relay_pass *p, size_t idx)
{
	p->ready[(p->head + p->n_ready) % p->cap] = idx;
	p->n_ready++;
}

/*
 * Fills ev with the oldest unsent events of ready users, whole backlogs
 * where they fit; a user cut short stays out of the queue until this call
 * is done.  Returns the number of entries.  Caller holds the lock.
 */
static size_t pack_call(relay_pass *p, cart_event *ev, call_seg *seg,
			size_t *n_seg)
{
	size_t n = 0;

	*n_seg = 0;
	while (n < CART_RELAY_CALL_MAX && p->n_ready) {
		size_t idx = pop_ready(p);
		const cart_outbox_batch *b = &p->batches[idx];
		size_t k = b->n - p->next[idx];

		if (k > CART_RELAY_CALL_MAX - n)
			k = CART_RELAY_CALL_MAX - n;
		memcpy(ev + n, b->events + p->next[idx], k * sizeof(*ev));
		seg[(*n_seg)++] = (call_seg){ .batch = idx, .first = p->next[idx],
					      .n = k, .at = n };
		p->next[idx] += k;
		n += k;
	}
	return n;
}

/*
 * Acks the accepted prefix of one user's run; returns its length, and
 * whether the user may go on (everything accepted and acked).  The first
 * entry not accepted is now the user's head: the parker judges it.
 */
static size_t ack_seg(cart_relay *r, const relay_pass *p, const call_seg *s,
		      const cart_publish_result *res, bool *go_on)
{
	const cart_outbox_batch *b = &p->batches[s->batch];
	size_t k = 0;
	int err = CART_OK;

	while (k < s->n && res[s->at + k].status == CART_PUBLISH_ACCEPTED)
		k++;
	*go_on = k == s->n;
	if (k)
		err = cart_repo_outbox_ack(&r->repo, b->user_id, b->events + s->first, k);
	if (err) {
		if (err == CART_ECONFLICT)
			atomic_fetch_add(&r->ack_conflicts, 1);
		*go_on = false;
	} else if (k < s->n) {
		relay_parker_judge(r->parker, &r->repo, &r->clock,
				   &b->events[s->first + k], &res[s->at + k]);
	}
	return k;
}

/*
 * Makes one publisher call from the ready users, then acks.  Called and
 * returns with the lock held; drops it around the publisher and the repo.
 */
static void relay_call(cart_relay *r, relay_pass *p)
{
	cart_event ev[CART_RELAY_CALL_MAX];
	cart_publish_result res[CART_RELAY_CALL_MAX];
	bool go_on[CART_RELAY_CALL_MAX];
	call_seg seg[CART_RELAY_CALL_MAX];
	size_t n_seg, n = pack_call(p, ev, seg, &n_seg), sent = 0;

	p->busy++;
	pthread_mutex_unlock(&r->lock);
	if (cart_publisher_publish_results(&r->pub, ev, n, res))
		atomic_fetch_add(&r->publish_failures, 1);
	for (size_t i = 0; i < n_seg; i++)
		sent += ack_seg(r, p, &seg[i], res, &go_on[i]);
	atomic_fetch_add(&r->published, sent);
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < n_seg; i++)
		if (go_on[i] && p->next[seg[i].batch] < p->batches[seg[i].batch].n)
			push_ready(p, seg[i].batch);
	p->sent += sent;
	p->busy--;
	pthread_cond_broadcast(&r->done);
	if (p->n_ready)
		pthread_cond_broadcast(&r->work);
}

/* --- the pool ----------------------------------------------------------- */

static void *pool_thread(void *arg)
{
	cart_relay *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		if (r->pass && r->pass->n_ready)
			relay_call(r, r->pass);
		else
			pthread_cond_wait(&r->work, &r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int cart_relay_set_concurrency(cart_relay *r, int n)
{
	int rc = CART_OK;

	if (n < 1 || n > CONCURRENCY_MAX)
		return CART_EINVALID;
	pool_stop(r);
	if (n == 1)
		return CART_OK;
	r->pool = calloc((size_t)n - 1, sizeof(*r->pool));
	if (!r->pool)
		return CART_ENOMEM;
	while (r->n_pool < n - 1 && rc == CART_OK) {
		if (pthread_create(&r->pool[r->n_pool], NULL, pool_thread, r))
			rc = CART_ENOMEM;
		else
			r->n_pool++;
	}
	return rc;
}

/* --- a pass ------------------------------------------------------------- */

static int pass_init(relay_pass *p, const cart_outbox *box)
{
	memset(p, 0, sizeof(*p));
	p->batches = box->batches;
	p->cap = box->n_batches;
	if (!p->cap)
		return CART_OK;
	p->next = calloc(p->cap, sizeof(*p->next));
	p->ready = calloc(p->cap, sizeof(*p->ready));
	if (!p->next || !p->ready)
		return CART_ENOMEM;
	for (size_t i = 0; i < p->cap; i++)
		if (box->batches[i].n)
			push_ready(p, i);
	return CART_OK;
}

/* Makes calls while users are ready; returns once none is in flight. */
static size_t pass_run(cart_relay *r, relay_pass *p)
{
	pthread_mutex_lock(&r->lock);
	r->pass = p;
	pthread_cond_broadcast(&r->work);
	while (p->n_ready || p->busy) {
		if (p->n_ready)
			relay_call(r, p);
		else
			pthread_cond_wait(&r->done, &r->lock);
	}
	r->pass = NULL;
	pthread_mutex_unlock(&r->lock);
	return p->sent;
}

/* Delivery rate over windows of at least a second (relay thread only). */
static void measure_rate(cart_relay *r)
{
	int64_t now = cart_clock_now(&r->clock);
	uint64_t published = atomic_load(&r->published);

	if (!r->window_start_ms) {
		r->window_start_ms = now;
		r->window_published = published;
	} else if (now - r->window_start_ms >= 1000) {
		atomic_store(&r->delivered_per_s,
			     (published - r->window_published) * 1000 /
			     (uint64_t)(now - r->window_start_ms));
		r->window_start_ms = now;
		r->window_published = published;
	}
}

int cart_relay_run_once(cart_relay *r)
{
	cart_outbox box;
	relay_pass pass;
	size_t sent = 0;
	int err = cart_repo_outbox_fetch(&r->repo, r->batch, &box);

	if (err)
		return err;
	atomic_store(&r->backlog, box.backlog);
	atomic_store(&r->oldest_age_ms,
		     box.oldest_at ? cart_clock_now(&r->clock) - box.oldest_at : 0);
	err = pass_init(&pass, &box);
	if (!err)
		sent = pass_run(r, &pass);
	free(pass.next);
	free(pass.ready);
	cart_outbox_release(&box);
	measure_rate(r);
	return err ? err : (int)sent;
}

int cart_relay_set_max_attempts(cart_relay *r, int n)
{
	if (n < 1 || n > CART_RELAY_MAX_ATTEMPTS_MAX)
		return CART_EINVALID;
	relay_parker_set_max_attempts(r->parker, n);
	return CART_OK;
}

void cart_relay_on_park(cart_relay *r, cart_relay_park_fn fn, void *self)
{
	relay_parker_on_park(r->parker, fn, self);
}

void cart_relay_stats_get(const cart_relay *r, cart_relay_stats *out)
{
	cart_relay *m = (cart_relay *)r;

	out->published = atomic_load(&m->published);
	out->publish_failures = atomic_load(&m->publish_failures);
	out->ack_conflicts = atomic_load(&m->ack_conflicts);
	out->parked = relay_parker_parked(m->parker);
	out->backlog = atomic_load(&m->backlog);
	out->oldest_age_ms = atomic_load(&m->oldest_age_ms);
	out->delivered_per_s = atomic_load(&m->delivered_per_s);
}
