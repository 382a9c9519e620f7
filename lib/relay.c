/*
 * The outbox relay.  Publish, then acknowledge: a crash between the two
 * republishes (at least once), never loses; an event is never published
 * for a write that did not commit because only committed writes reach the
 * outbox.
 *
 * A pass packs many users' backlogs into publisher calls of at most
 * CART_RELAY_CALL_MAX entries, mixing users, with up to `concurrency`
 * calls in flight, made by the pool threads (by the thread running the
 * pass when there is no pool).  The pass is a pipeline: while calls are
 * in flight, the thread running it fetches again as soon as fewer events
 * are queued than one call per slot, and queues the users it does not
 * hold yet, so a slow call holds up only its own users, never the other
 * slots.
 *
 * A user is held by the pass from the fetch that brought it until its
 * events are acked (or refused): it is in at most one call at a time, a
 * backlog that does not fit a call waits for that call's answer and ack,
 * so each user's events go out in cart_version order, and a fetch never
 * brings back events the pass already holds.  A user released while a
 * fetch ran is kept as released until the next fetch starts: that fetch
 * may have read the events just acked.
 *
 * With an ack delay (cart_relay_set_ack_delay) the acks of a user's
 * published events wait in relay_acks.h's table, and a fetch that brings
 * them back skips them: they are held as already sent.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cart/relay.h"
#include "cart/sync.h"
#include "relay_acks.h"
#include "relay_park.h"

#define CONCURRENCY_MAX 256
#define PASS_MS 1000        /* a pass stops fetching after this long */
#define PASS_FETCHES 1000   /* ... or after this many fetches (any clock) */
#define RETRY_FIRST_MS 20   /* waits after a pass that delivered nothing */
#define RETRY_MAX_MS 1000
#define SPARE_USERS_MAX 1024   /* relay_users kept for reuse: 176 KiB */

typedef enum relay_user_state {
	USER_QUEUED,          /* in the ready list */
	USER_IN_CALL,         /* some of its events are in a call */
	USER_WAITING,         /* an entry was refused: waits for the next pass
			       * (not the dead-letter "parked"; see relay_park.h) */
	USER_RELEASED         /* all acked; forgotten when the next fetch starts */
} relay_user_state;

/* One user held by the pass: its events as fetched. */
typedef struct relay_user {
	char user_id[CART_ID_MAX + 1];
	cart_event *events;           /* n, owned */
	size_t n, next;               /* next: first event not yet sent */
	relay_user_state state;
	struct relay_user *next_ready;   /* also the spare list's link */
} relay_user;

typedef struct relay_pass {
	relay_user **users;           /* every user held, owned */
	size_t n_users, cap_users;
	relay_user *ready, *ready_tail;   /* FIFO of USER_QUEUED users */
	size_t ready_events;          /* unsent events of queued users */
	size_t held_events;           /* events of users held, still pending */
	size_t busy;                  /* calls in flight */
	uint64_t changes;             /* calls answered and kicks so far */
	size_t sent;                  /* events accepted this pass */
	int err;                      /* the first fetch's error */
} relay_pass;

/* A user's run of events inside one call. */
typedef struct call_seg {
	relay_user *u;
	size_t first, n;              /* u->events[first..first+n) */
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
	relay_acks *acks;             /* acks that wait; see relay_acks.h */
	atomic_size_t backlog;
	atomic_int_fast64_t oldest_age_ms;
	atomic_uint_fast64_t delivered_per_s;  /* over the last window */
	int64_t window_start_ms;      /* relay thread only */
	uint64_t window_published;    /* relay thread only: published then */

	pthread_mutex_t lock;         /* guards the fields below */
	pthread_cond_t work;          /* a pass started or users became ready */
	pthread_cond_t done;          /* a call finished, or a kick */
	relay_pass *pass;             /* the running pass, NULL between passes */
	relay_user *spare;            /* users forgotten, for the next fetches:
				       * a calloc and a free per user fetched
				       * were two malloc-arena locks per event */
	size_t n_spare;
	cart_outbox_batch *jobs;      /* acks handed to the pool, or NULL */
	size_t n_jobs, next_job, jobs_left;
	bool jobs_all;
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
	if (!r || relay_parker_new(&r->parker) || relay_acks_new(&r->acks)) {
		if (r)
			relay_parker_free(r->parker);
		free(r);
		return CART_ENOMEM;
	}
	r->repo = *repo;
	r->pub = *pub;
	r->clock = *clock;
	r->batch = batch;
	cart_mutex_init_short(&r->lock);
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
	while (r->spare) {
		relay_user *u = r->spare;
		r->spare = u->next_ready;
		free(u);
	}
	relay_parker_free(r->parker);
	relay_acks_free(r->acks);
	pthread_cond_destroy(&r->done);
	pthread_cond_destroy(&r->work);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* --- the users a pass holds (caller holds the lock) ---------------------- */

static void push_ready(relay_pass *p, relay_user *u)
{
	u->state = USER_QUEUED;
	u->next_ready = NULL;
	if (p->ready_tail)
		p->ready_tail->next_ready = u;
	else
		p->ready = u;
	p->ready_tail = u;
	p->ready_events += u->n - u->next;
}

static relay_user *pop_ready(relay_pass *p)
{
	relay_user *u = p->ready;

	p->ready = u->next_ready;
	if (!p->ready)
		p->ready_tail = NULL;
	p->ready_events -= u->n - u->next;
	return u;
}

/* Frees u's events and keeps u for reuse (up to SPARE_USERS_MAX). */
static void user_forget(cart_relay *r, relay_user *u)
{
	free(u->events);
	u->events = NULL;
	if (r->n_spare >= SPARE_USERS_MAX) {
		free(u);
		return;
	}
	u->next_ready = r->spare;
	r->spare = u;
	r->n_spare++;
}

/* A zeroed user, reused or new; NULL if out of memory. */
static relay_user *user_new(cart_relay *r)
{
	relay_user *u = r->spare;

	if (!u)
		return calloc(1, sizeof(*u));
	r->spare = u->next_ready;
	r->n_spare--;
	memset(u, 0, sizeof(*u));
	return u;
}

/* Forgets the users released before this point (a fetch starts). */
static void forget_released(cart_relay *r, relay_pass *p)
{
	size_t k = 0;

	for (size_t i = 0; i < p->n_users; i++) {
		if (p->users[i]->state == USER_RELEASED)
			user_forget(r, p->users[i]);
		else
			p->users[k++] = p->users[i];
	}
	p->n_users = k;
}

static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

/* Open addressing over users[]: slots hold index + 1, 0 is empty. */
static size_t *index_users(const relay_pass *p, size_t extra, size_t *mask)
{
	size_t cap = 16, *slot;

	while (cap < 2 * (p->n_users + extra))
		cap *= 2;
	slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return NULL;
	*mask = cap - 1;
	for (size_t i = 0; i < p->n_users; i++) {
		size_t h = (size_t)hash_id(p->users[i]->user_id) & *mask;
		while (slot[h])
			h = (h + 1) & *mask;
		slot[h] = i + 1;
	}
	return slot;
}

/*
 * Queues the users of box the pass does not hold yet (their events, taken
 * out of box rather than copied: that was a malloc, a copy and a free per
 * user; the first ones marked sent if they wait for their ack); returns
 * the number of events queued.
 */
static size_t take_new_users(cart_relay *r, relay_pass *p, cart_outbox *box)
{
	size_t mask, *slot, queued = 0;

	if (!box->n_batches)
		return 0;
	if (p->n_users + box->n_batches > p->cap_users) {
		size_t cap = (p->n_users + box->n_batches) * 2;
		relay_user **g = realloc(p->users, cap * sizeof(*g));
		if (!g)
			return 0;
		p->users = g;
		p->cap_users = cap;
	}
	slot = index_users(p, box->n_batches, &mask);
	if (!slot)
		return 0;
	for (size_t i = 0; i < box->n_batches; i++) {
		cart_outbox_batch *b = &box->batches[i];
		size_t h = (size_t)hash_id(b->user_id) & mask;
		relay_user *u;
		bool held = false;
		size_t sent;

		if (!b->n)
			continue;
		for (; slot[h] && !held; h = (h + 1) & mask)
			held = !strcmp(p->users[slot[h] - 1]->user_id, b->user_id);
		if (held)
			continue;
		sent = relay_acks_published(r->acks, b->user_id, b->events, b->n);
		if (sent == b->n)
			continue;     /* all out, the ack waits */
		if (!(u = user_new(r)))
			break;
		memcpy(u->user_id, b->user_id, sizeof(u->user_id));
		u->events = b->events;   /* now the user's: box's release skips it */
		b->events = NULL;
		u->n = b->n;
		u->next = sent;
		slot[h] = p->n_users + 1;
		p->users[p->n_users++] = u;
		p->held_events += u->n - sent;
		push_ready(p, u);
		queued += u->n - sent;
	}
	free(slot);
	return queued;
}

/* --- one call ----------------------------------------------------------- */

/*
 * Fills ev with the oldest unsent events of ready users, whole backlogs
 * where they fit; every user in the call stays out of the queue until
 * the call is done.  Returns the number of entries.  Caller holds the lock.
 */
static size_t pack_call(relay_pass *p, cart_event *ev, call_seg *seg,
			size_t *n_seg)
{
	size_t n = 0;

	*n_seg = 0;
	while (n < CART_RELAY_CALL_MAX && p->ready) {
		relay_user *u = pop_ready(p);
		size_t k = u->n - u->next;

		if (k > CART_RELAY_CALL_MAX - n)
			k = CART_RELAY_CALL_MAX - n;
		memcpy(ev + n, u->events + u->next, k * sizeof(*ev));
		seg[(*n_seg)++] = (call_seg){ .u = u, .first = u->next,
					      .n = k, .at = n };
		u->state = USER_IN_CALL;
		u->next += k;
		n += k;
	}
	return n;
}

/*
 * Acks ev[0..n) of user, which follow the user's waiting acks, or lets
 * them wait too; `now` (a refusal follows: the parker needs the head
 * acked) acks everything at once.
 */
static int ack_or_wait(cart_relay *r, const char *user_id,
		       const cart_event *ev, size_t n, bool now)
{
	cart_outbox_batch b;
	int err = CART_OK;

	if (relay_acks_defer(r->acks, user_id, ev, n, cart_clock_now(&r->clock),
			     now, &b))
		return CART_OK;
	if (b.events && b.n)
		err = cart_repo_outbox_ack(&r->repo, user_id, b.events, b.n);
	else if (!b.events && n)
		err = cart_repo_outbox_ack(&r->repo, user_id, ev, n);
	free(b.events);
	return err;
}

/*
 * Acks the accepted prefix of one user's run (or lets the ack wait);
 * returns its length, and whether the user may go on (everything
 * accepted and acked).  The first entry not accepted is now the user's
 * head: the parker judges it.
 */
static size_t ack_seg(cart_relay *r, const call_seg *s,
		      const cart_publish_result *res, bool *go_on)
{
	size_t k = 0;
	int err;

	while (k < s->n && res[s->at + k].status == CART_PUBLISH_ACCEPTED)
		k++;
	*go_on = k == s->n;
	err = ack_or_wait(r, s->u->user_id, s->u->events + s->first, k, k < s->n);
	if (err) {
		if (err == CART_ECONFLICT)
			atomic_fetch_add(&r->ack_conflicts, 1);
		*go_on = false;
	} else if (k < s->n) {
		relay_parker_judge(r->parker, &r->repo, &r->clock,
				   &s->u->events[s->first + k], &res[s->at + k]);
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
	size_t acked[CART_RELAY_CALL_MAX];
	size_t n_seg, n = pack_call(p, ev, seg, &n_seg), sent = 0;

	p->busy++;
	pthread_mutex_unlock(&r->lock);
	if (cart_publisher_publish_results(&r->pub, ev, n, res))
		atomic_fetch_add(&r->publish_failures, 1);
	for (size_t i = 0; i < n_seg; i++) {
		acked[i] = ack_seg(r, &seg[i], res, &go_on[i]);
		sent += acked[i];
	}
	atomic_fetch_add(&r->published, sent);
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < n_seg; i++) {
		relay_user *u = seg[i].u;
		p->held_events -= acked[i];
		if (!go_on[i])   /* refused, or the outbox changed: the rest */
			u->state = USER_WAITING;   /* until the next pass */
		else if (u->next < u->n)
			push_ready(p, u);
		else
			u->state = USER_RELEASED;
	}
	p->sent += sent;
	p->busy--;
	p->changes++;
	pthread_cond_broadcast(&r->done);
	if (p->ready)
		pthread_cond_broadcast(&r->work);
}

/* --- the pool ----------------------------------------------------------- */

/* Writes one waited ack; a failure for now waits again (unless `all`). */
static void ack_job(cart_relay *r, cart_outbox_batch *b, bool all)
{
	int err = b->events ? cart_repo_outbox_ack(&r->repo, b->user_id,
						   b->events, b->n)
			    : CART_OK;

	if (err == CART_ECONFLICT)
		atomic_fetch_add(&r->ack_conflicts, 1);
	else if (err && !all)
		ack_or_wait(r, b->user_id, b->events, b->n, false);
	free(b->events);
	b->events = NULL;
}

/* Takes the next ack of r->jobs.  Called and returns with the lock held. */
static void pool_ack_job(cart_relay *r)
{
	cart_outbox_batch *b = &r->jobs[r->next_job++];
	bool all = r->jobs_all;

	pthread_mutex_unlock(&r->lock);
	ack_job(r, b, all);
	pthread_mutex_lock(&r->lock);
	if (--r->jobs_left == 0)
		pthread_cond_broadcast(&r->done);
}

static void *pool_thread(void *arg)
{
	cart_relay *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		if (r->pass && r->pass->ready)
			relay_call(r, r->pass);
		else if (r->jobs && r->next_job < r->n_jobs)
			pool_ack_job(r);
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
	r->pool = calloc((size_t)n, sizeof(*r->pool));
	if (!r->pool)
		return CART_ENOMEM;
	while (r->n_pool < n && rc == CART_OK) {
		if (pthread_create(&r->pool[r->n_pool], NULL, pool_thread, r))
			rc = CART_ENOMEM;
		else
			r->n_pool++;
	}
	return rc;
}

/* --- a pass ------------------------------------------------------------- */

/*
 * The backlog a fetch shows, less the events published whose acks wait:
 * what the fetched users still have to send, plus what the store holds
 * beyond what it returned.
 */
static size_t undelivered(cart_relay *r, const cart_outbox *box)
{
	size_t fetched = 0, left = 0;

	for (size_t i = 0; i < box->n_batches; i++) {
		const cart_outbox_batch *b = &box->batches[i];
		fetched += b->n;
		left += b->n - relay_acks_peek(r->acks, b->user_id, b->events, b->n);
	}
	return left + (box->backlog > fetched ? box->backlog - fetched : 0);
}

/*
 * One fetch, with the lock dropped around the repository: users held stay
 * out, the rest is queued.  Called and returns with the lock held.
 * Returns the fetch's error.
 */
static int pass_fetch(cart_relay *r, relay_pass *p)
{
	cart_outbox box;
	size_t want = p->held_events + r->batch;
	int err;

	forget_released(r, p);
	pthread_mutex_unlock(&r->lock);
	err = cart_repo_outbox_fetch(&r->repo, want, &box);
	if (!err) {
		atomic_store(&r->backlog, undelivered(r, &box));
		atomic_store(&r->oldest_age_ms, box.oldest_at ?
			     cart_clock_now(&r->clock) - box.oldest_at : 0);
	}
	if (!err) {
		pthread_mutex_lock(&r->lock);
		if (take_new_users(r, p, &box))
			pthread_cond_broadcast(&r->work);
		pthread_mutex_unlock(&r->lock);
		cart_outbox_release(&box);
	}
	pthread_mutex_lock(&r->lock);
	return err;
}

/*
 * Fetches, then makes calls while users are ready, fetching again
 * whenever fewer events are queued than the slots could carry and a call
 * was answered (its users may have more) or a commit kicked the relay
 * since the last fetch.  Returns
 * once a fetch after the last answer brought nothing and no call is in
 * flight; stops fetching after PASS_MS or PASS_FETCHES so that refused
 * users get their retry and the caller its look at the stats.
 */
static void pass_run(cart_relay *r, relay_pass *p)
{
	int64_t start = cart_clock_now(&r->clock);
	size_t low = (size_t)(r->n_pool ? r->n_pool : 1) * CART_RELAY_CALL_MAX;
	uint64_t fetched_at = 0;
	unsigned fetches = 0;
	bool fetching = true;

	pthread_mutex_lock(&r->lock);
	r->pass = p;
	p->err = pass_fetch(r, p);
	fetches++;
	if (p->err)
		fetching = false;
	while (p->ready || p->busy ||
	       (fetching && p->changes != fetched_at)) {
		if (fetching && p->ready_events < low &&
		    p->changes != fetched_at) {
			fetched_at = p->changes;
			if (pass_fetch(r, p) ||
			    ++fetches >= PASS_FETCHES ||
			    cart_clock_now(&r->clock) - start >= PASS_MS)
				fetching = false;
		} else if (p->ready && !r->n_pool) {
			relay_call(r, p);
		} else {
			pthread_cond_wait(&r->done, &r->lock);
		}
	}
	r->pass = NULL;
	pthread_mutex_unlock(&r->lock);
}

static void pass_free(cart_relay *r, relay_pass *p)
{
	for (size_t i = 0; i < p->n_users; i++) {   /* frees outside the lock */
		free(p->users[i]->events);
		p->users[i]->events = NULL;
	}
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < p->n_users; i++)
		user_forget(r, p->users[i]);
	pthread_mutex_unlock(&r->lock);
	free(p->users);
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

/*
 * Writes the acks whose wait ended (all if `all`), by the pool threads
 * when there are (each ack is a write: on DynamoDB a round trip), and
 * returns when all are written, so no fetch runs while they are.
 */
static void flush_acks(cart_relay *r, bool all)
{
	cart_outbox_batch *b;
	size_t n = relay_acks_due(r->acks, cart_clock_now(&r->clock), all, &b);

	if (n > 1 && r->n_pool) {
		pthread_mutex_lock(&r->lock);
		r->jobs = b;
		r->n_jobs = r->jobs_left = n;
		r->next_job = 0;
		r->jobs_all = all;
		pthread_cond_broadcast(&r->work);
		while (r->jobs_left)
			pthread_cond_wait(&r->done, &r->lock);
		r->jobs = NULL;
		pthread_mutex_unlock(&r->lock);
	} else {
		for (size_t i = 0; i < n; i++)
			ack_job(r, &b[i], all);
	}
	free(b);
}

int64_t cart_relay_flush_acks(cart_relay *r, bool all)
{
	flush_acks(r, all);
	return relay_acks_next_ms(r->acks, cart_clock_now(&r->clock));
}

int cart_relay_set_ack_delay(cart_relay *r, int64_t ms)
{
	return relay_acks_set_delay(r->acks, ms);
}

int cart_relay_run_once(cart_relay *r)
{
	relay_pass pass;

	flush_acks(r, false);
	memset(&pass, 0, sizeof(pass));
	pass_run(r, &pass);
	pass_free(r, &pass);
	measure_rate(r);
	return pass.err ? pass.err : (int)pass.sent;
}

void cart_relay_kick(cart_relay *r)
{
	relay_pass *p;

	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	p = r->pass;
	if (p && !p->ready && p->busy < (size_t)(r->n_pool ? r->n_pool : 1)) {
		p->changes++;            /* a slot is idle: fetch again */
		pthread_cond_broadcast(&r->done);
	}
	pthread_mutex_unlock(&r->lock);
}

int64_t cart_relay_next_wait_ms(const cart_relay *r, int n, int64_t prev_ms)
{
	size_t backlog = atomic_load(&((cart_relay *)r)->backlog);

	if (n > 0 && backlog > 0)
		return 0;                      /* more may be waiting */
	if (n >= 0 && backlog == 0)
		return CART_RELAY_IDLE_POLL_MS;
	/* nothing went out although events wait, or the outbox is unreadable */
	if (prev_ms < RETRY_FIRST_MS)
		return RETRY_FIRST_MS;
	return prev_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : prev_ms * 2;
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
	out->acks_waiting = relay_acks_waiting(m->acks);
	out->backlog = atomic_load(&m->backlog);
	out->oldest_age_ms = atomic_load(&m->oldest_age_ms);
	out->delivered_per_s = atomic_load(&m->delivered_per_s);
}
