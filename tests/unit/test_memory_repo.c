/* The repository contract, run against the in-memory adapter. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memory/memory_repo.h"
#include "unit/repo_contract.h"
#include "unit/suites.h"

static int memory_factory(cart_repo *out, void *arg)
{
	(void)arg;
	return cart_memory_repo_new(out);
}

/* Sequential ids (user-1, user-2, ...) spread evenly over all 64 shards. */
START_TEST(test_memory_repo_shards_spread_sequential_ids)
{
	size_t count[64] = { 0 };
	char id[32];

	for (int i = 1; i <= 10000; i++) {
		snprintf(id, sizeof(id), "user-%d", i);
		size_t s = cart_memory_repo_shard_of(id);
		ck_assert_uint_lt(s, 64);
		count[s]++;
	}
	/* 10000/64 = 156 per shard; 100..220 is over 4 standard deviations. */
	for (size_t s = 0; s < 64; s++)
		ck_assert_msg(count[s] >= 100 && count[s] <= 220,
			      "shard %zu holds %zu of 10000 users", s, count[s]);
}
END_TEST

/* One write of version v with one event (id n, at `at`) for user, under
 * call (may be NULL); returns the save's code. */
static int save_event(const cart_repo *r, const char *user, int64_t v, int n,
		      int64_t at, const cart_call_ctx *call)
{
	cart_event ev;
	cart *c = NULL;
	int rc;

	memset(&ev, 0, sizeof(ev));
	ev.type = CART_EVENT_CLEARED;
	snprintf(ev.event_id, sizeof(ev.event_id), "00000000-0000-4000-8000-%012d", n);
	snprintf(ev.user_id, sizeof(ev.user_id), "%s", user);
	ev.cart_version = v;
	ev.occurred_at = at;
	ck_assert_int_eq(cart_new(&c, user), CART_OK);
	ck_assert_int_eq(cart_restore_meta(c, NULL, v, 0, 0, 0), CART_OK);
	cart_write w = { .user_id = user, .expected_version = v - 1, .cart = c,
			 .events = &ev, .event_count = 1, .call = call };
	rc = cart_repo_save(r, &w);
	cart_free(c);
	return rc;
}

static int save_one_event(const cart_repo *r, const char *user, int64_t v, int n)
{
	return save_event(r, user, v, n, 0, NULL);
}

static int save_event_at(const cart_repo *r, const char *user, int64_t v, int n, int64_t at)
{
	return save_event(r, user, v, n, at, NULL);
}

/* EVENTS_BACKLOG_MAX_MB: all carts' pending events together are bounded. */
START_TEST(test_memory_repo_outbox_process_bound)
{
	cart_repo r;
	cart_outbox o;

	ck_assert_int_eq(cart_memory_repo_new(&r), CART_OK);
	cart_memory_repo_limit_outbox(&r, 3 * sizeof(cart_event));
	ck_assert_int_eq(save_one_event(&r, "a", 1, 1), CART_OK);
	ck_assert_int_eq(save_one_event(&r, "b", 1, 2), CART_OK);
	ck_assert_int_eq(save_one_event(&r, "c", 1, 3), CART_OK);
	/* A fourth cart's event would pass the bound: refused, nothing kept. */
	ck_assert_int_eq(save_one_event(&r, "d", 1, 4), CART_EBACKLOG);
	cart *c = NULL;
	ck_assert_int_eq(cart_repo_load(&r, NULL, "d", &c), CART_ENOTFOUND);
	/* Publishing one frees one place. */
	ck_assert_int_eq(cart_repo_outbox_fetch(&r, 100, &o), CART_OK);
	ck_assert_uint_eq(o.backlog, 3);
	ck_assert_int_eq(cart_repo_outbox_ack(&r, o.batches[0].user_id,
					      o.batches[0].events, 1), CART_OK);
	cart_outbox_release(&o);
	ck_assert_int_eq(save_one_event(&r, "d", 1, 4), CART_OK);
	ck_assert_int_eq(save_one_event(&r, "e", 1, 5), CART_EBACKLOG);
	cart_repo_destroy(&r);
}
END_TEST

/* --- pacing (cart_memory_repo_pace_outbox) ------------------------------ */

static int64_t test_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Publishes (acks) the oldest pending user's events. */
static void ack_one_user(const cart_repo *r)
{
	cart_outbox o;

	ck_assert_int_eq(cart_repo_outbox_fetch(r, 1, &o), CART_OK);
	ck_assert_uint_ge(o.n_batches, 1);
	ck_assert_int_eq(cart_repo_outbox_ack(r, o.batches[0].user_id, o.batches[0].events,
					      o.batches[0].n), CART_OK);
	cart_outbox_release(&o);
}

typedef struct paced_save {
	const cart_repo *r;
	const char *user;
	int n;
	int rc;
	int64_t took_ms;
	atomic_int done;
} paced_save;

static void *paced_save_thread(void *arg)
{
	paced_save *ps = arg;
	int64_t t0 = test_mono_ms();

	ps->rc = save_one_event(ps->r, ps->user, 1, ps->n);
	ps->took_ms = test_mono_ms() - t0;
	atomic_store(&ps->done, 1);
	return NULL;
}

/* Past the pacing level a save waits until an ack makes room, then goes. */
START_TEST(test_memory_repo_pacing_admits_writes_as_the_relay_acks)
{
	cart_repo r;
	pthread_t t;
	paced_save ps = { .r = &r, .user = "p-e", .n = 5 };
	uint64_t paced, paced_ms;

	ck_assert_int_eq(cart_memory_repo_new(&r), CART_OK);
	cart_memory_repo_limit_outbox(&r, 100 * sizeof(cart_event));
	cart_memory_repo_pace_outbox(&r, 4 * sizeof(cart_event), 5000);
	/* a relay that works: one event published */
	ck_assert_int_eq(save_one_event(&r, "p-0", 1, 100), CART_OK);
	ack_one_user(&r);
	ck_assert_int_eq(save_one_event(&r, "p-a", 1, 1), CART_OK);
	ck_assert_int_eq(save_one_event(&r, "p-b", 1, 2), CART_OK);
	ck_assert_int_eq(save_one_event(&r, "p-c", 1, 3), CART_OK);
	ck_assert_int_eq(save_one_event(&r, "p-d", 1, 4), CART_OK);
	cart_memory_repo_pace_stats(&r, &paced, &paced_ms);
	ck_assert_uint_eq(paced, 0);
	/* the fifth waits ... */
	ck_assert_int_eq(pthread_create(&t, NULL, paced_save_thread, &ps), 0);
	sleep_ms(150);
	ck_assert_int_eq(atomic_load(&ps.done), 0);
	/* ... until one event leaves (150 ms < the 250 ms stall rule: the
	 * relay counts as draining), then goes at once */
	ack_one_user(&r);
	pthread_join(t, NULL);
	ck_assert_int_eq(ps.rc, CART_OK);
	ck_assert_int_ge(ps.took_ms, 140);
	ck_assert_int_lt(ps.took_ms, 1000);
	cart_memory_repo_pace_stats(&r, &paced, &paced_ms);
	ck_assert_uint_eq(paced, 1);
	ck_assert_uint_ge(paced_ms, 140);
	cart_repo_destroy(&r);
}
END_TEST

/* A relay that acks nothing costs one waiter PACE_STALL_MS, then nobody
 * waits until an ack comes; a deadline shortens a wait. */
START_TEST(test_memory_repo_pacing_stops_for_a_stalled_relay)
{
	cart_repo r;
	int64_t t0;
	char user[32];

	ck_assert_int_eq(cart_memory_repo_new(&r), CART_OK);
	cart_memory_repo_limit_outbox(&r, 100 * sizeof(cart_event));
	cart_memory_repo_pace_outbox(&r, 2 * sizeof(cart_event), 5000);
	ck_assert_int_eq(save_one_event(&r, "s-0", 1, 1), CART_OK);
	ck_assert_int_eq(save_one_event(&r, "s-1", 1, 2), CART_OK);
	/* never acked: the first save past the level waits ~250 ms, no more */
	t0 = test_mono_ms();
	ck_assert_int_eq(save_one_event(&r, "s-2", 1, 3), CART_OK);
	ck_assert_int_ge(test_mono_ms() - t0, 240);
	ck_assert_int_lt(test_mono_ms() - t0, 2000);
	/* the relay is stalled now: the next ones do not wait */
	t0 = test_mono_ms();
	for (int i = 3; i < 8; i++) {
		snprintf(user, sizeof(user), "s-%d", i);
		ck_assert_int_eq(save_one_event(&r, user, 1, i + 1), CART_OK);
	}
	ck_assert_int_lt(test_mono_ms() - t0, 200);
	/* an ack: waiting is back, here cut by the call's deadline (60 ms) */
	ack_one_user(&r);
	{
		struct timespec now;
		cart_call_ctx call = { 0 };

		clock_gettime(CLOCK_REALTIME, &now);
		call.deadline_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 60;
		t0 = test_mono_ms();
		ck_assert_int_eq(save_event(&r, "s-dl", 1, 99, 0, &call), CART_OK);
		ck_assert_int_ge(test_mono_ms() - t0, 50);
		ck_assert_int_lt(test_mono_ms() - t0, 240);
	}
	cart_repo_destroy(&r);
}
END_TEST

/* A fetch takes the oldest carts first across all shards, whatever order
 * they were written in, and the next fetch the next oldest. */
START_TEST(test_memory_repo_fetch_merges_oldest_first)
{
	enum { USERS = 5000 };
	cart_repo r;
	cart_outbox o;
	char user[32];

	ck_assert_int_eq(cart_memory_repo_new(&r), CART_OK);
	/* written in a scrambled time order: user i's event is at T + perm(i) */
	for (int i = 0; i < USERS; i++) {
		int t = (int)(((long long)i * 7919) % USERS);   /* 7919 is prime: a permutation */
		snprintf(user, sizeof(user), "m-%d", t);
		ck_assert_int_eq(save_event_at(&r, user, 1, i, 1000000 + t), CART_OK);
	}
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(cart_repo_outbox_fetch(&r, 50, &o), CART_OK);
		ck_assert_uint_eq(o.backlog, USERS - 50 * round);
		ck_assert_int_eq(o.oldest_at, 1000000 + 50 * round);
		ck_assert_uint_eq(o.n_batches, 50);
		for (size_t b = 0; b < o.n_batches; b++) {
			snprintf(user, sizeof(user), "m-%d", (int)(50 * round + b));
			ck_assert_str_eq(o.batches[b].user_id, user);
			ck_assert_int_eq(cart_repo_outbox_ack(&r, o.batches[b].user_id,
							      o.batches[b].events, 1), CART_OK);
		}
		cart_outbox_release(&o);
	}
	cart_repo_destroy(&r);
}
END_TEST

typedef struct churn {
	const cart_repo *r;
	atomic_int done;
	atomic_int written;
} churn;

/* Writes one event per user, CHURN_ROUNDS rounds over CHURN_USERS users. */
enum { CHURN_USERS = 300, CHURN_ROUNDS = 15 };

static void *churn_writer(void *arg)
{
	churn *c = arg;
	char user[32];

	for (int v = 1; v <= CHURN_ROUNDS; v++)
		for (int u = 0; u < CHURN_USERS; u++) {
			snprintf(user, sizeof(user), "c-%d", u);
			ck_assert_int_eq(save_event_at(c->r, user, v, v * 1000 + u, v * 1000 + u),
					 CART_OK);
			atomic_fetch_add(&c->written, 1);
		}
	atomic_store(&c->done, 1);
	return NULL;
}

/* Fetches racing writes and acks: never a user twice in one fetch, every
 * event delivered once, in order per user. */
START_TEST(test_memory_repo_fetch_under_churn)
{
	cart_repo r;
	churn c = { 0 };
	pthread_t t;
	int acked = 0, last_v[CHURN_USERS] = { 0 };

	ck_assert_int_eq(cart_memory_repo_new(&r), CART_OK);
	c.r = &r;
	ck_assert_int_eq(pthread_create(&t, NULL, churn_writer, &c), 0);
	for (;;) {
		int done = atomic_load(&c.done);
		size_t n;
		cart_outbox o;
		char seen[CHURN_USERS] = { 0 };

		ck_assert_int_eq(cart_repo_outbox_fetch(&r, 37, &o), CART_OK);
		for (size_t b = 0; b < o.n_batches; b++) {
			int u = atoi(o.batches[b].user_id + 2);
			ck_assert_int_eq(seen[u], 0);
			seen[u] = 1;
			for (size_t i = 0; i < o.batches[b].n; i++) {
				ck_assert_int_eq((int)o.batches[b].events[i].cart_version, last_v[u] + 1);
				last_v[u]++;
			}
			ck_assert_int_eq(cart_repo_outbox_ack(&r, o.batches[b].user_id,
							      o.batches[b].events, o.batches[b].n),
					 CART_OK);
			acked += (int)o.batches[b].n;
		}
		n = o.n_batches;
		cart_outbox_release(&o);
		if (done && !n)
			break;
	}
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&c.written), CHURN_USERS * CHURN_ROUNDS);
	ck_assert_int_eq(acked, CHURN_USERS * CHURN_ROUNDS);
	for (int u = 0; u < CHURN_USERS; u++)
		ck_assert_int_eq(last_v[u], CHURN_ROUNDS);
	cart_repo_destroy(&r);
}
END_TEST

/* A write of version v carrying `count` events numbered id, id+1, ... */
static void save_events(const cart_repo *r, const char *user, int64_t v, int id, int count)
{
	cart_event ev[4];
	cart *c = NULL;

	ck_assert_int_le(count, 4);
	memset(ev, 0, sizeof(ev));
	for (int i = 0; i < count; i++) {
		ev[i].type = CART_EVENT_CLEARED;
		snprintf(ev[i].event_id, sizeof(ev[i].event_id),
			 "00000000-0000-4000-8000-%012d", id + i);
		snprintf(ev[i].user_id, sizeof(ev[i].user_id), "%s", user);
		ev[i].cart_version = v;
	}
	ck_assert_int_eq(cart_new(&c, user), CART_OK);
	ck_assert_int_eq(cart_restore_meta(c, NULL, v, 0, 0, 0), CART_OK);
	cart_write w = { .user_id = user, .expected_version = v - 1, .cart = c,
			 .events = ev, .event_count = (size_t)count };
	ck_assert_int_eq(cart_repo_save(r, &w), CART_OK);
	cart_free(c);
}

/* Fetches everything pending and checks user u-K holds exactly the
 * events want[K] .. want[K] + n[K] - 1, in order; acks the first
 * `ack_first` of each (all if 0). */
static void expect_pending(const cart_repo *r, int users, const int *want, const int *n,
			   size_t ack_first)
{
	cart_outbox o;
	int seen = 0;

	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100000, &o), CART_OK);
	for (size_t b = 0; b < o.n_batches; b++) {
		int u = atoi(o.batches[b].user_id + 2);
		size_t k = ack_first && ack_first < o.batches[b].n ? ack_first : o.batches[b].n;

		ck_assert_int_lt(u, users);
		ck_assert_uint_eq(o.batches[b].n, (size_t)n[u]);
		for (size_t i = 0; i < o.batches[b].n; i++) {
			char id[40];

			snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", want[u] + (int)i);
			ck_assert_str_eq(o.batches[b].events[i].event_id, id);
		}
		ck_assert_int_eq(cart_repo_outbox_ack(r, o.batches[b].user_id,
						      o.batches[b].events, k), CART_OK);
		seen++;
	}
	cart_outbox_release(&o);
	ck_assert_int_eq(seen, users);
}

/* Emptied outboxes are kept as spares for the next writes (OUTBOX_SPARES
 * a shard): a spare taken, grown by a second write, partly acked, and
 * given back again carries exactly its own events each round; valgrind
 * (make check) sees no block used after it was kept or freed twice. */
START_TEST(test_memory_repo_outbox_spares_reused_cleanly)
{
	enum { USERS = 400 };
	cart_repo r;
	char user[32];
	int want[USERS], n[USERS], id = 1;
	int64_t v = 0;

	ck_assert_int_eq(cart_memory_repo_new(&r), CART_OK);
	for (int round = 0; round < 6; round++) {
		/* one event each: most take a spare of their shard once the
		 * first round's acks have filled the spares */
		v++;
		for (int u = 0; u < USERS; u++) {
			snprintf(user, sizeof(user), "s-%d", u);
			want[u] = id;
			n[u] = 1;
			save_events(&r, user, v, id, 1);
			id += 4;   /* room for this user's next write's ids */
		}
		if (round % 2) {
			/* a second write before the relay: the spare grows */
			v++;
			for (int u = 0; u < USERS; u++) {
				snprintf(user, sizeof(user), "s-%d", u);
				save_events(&r, user, v, want[u] + 1, 3);
				n[u] = 4;
			}
			/* acks of one, then of the rest */
			expect_pending(&r, USERS, want, n, 1);
			for (int u = 0; u < USERS; u++) {
				want[u]++;
				n[u] = 3;
			}
		}
		expect_pending(&r, USERS, want, n, 0);
	}
	cart_repo_destroy(&r);
}
END_TEST

/* The dead-letter list keeps the newest CART_MEMORY_DLQ_MAX, counts drops. */
START_TEST(test_memory_repo_dead_letters_bounded_oldest_dropped)
{
	enum { N = CART_MEMORY_DLQ_MAX + 3 };
	cart_repo r;
	cart_memory_parked p;
	size_t kept, dropped;

	ck_assert_int_eq(cart_memory_repo_new(&r), CART_OK);
	ck_assert(!cart_memory_repo_parked(&r, 0, &p, &kept, &dropped));
	ck_assert_uint_eq(kept, 0);
	for (int i = 0; i < N; i++) {
		char user[32];
		cart *c = NULL;
		cart_event ev;
		memset(&ev, 0, sizeof(ev));
		snprintf(user, sizeof(user), "dlq-%d", i);
		snprintf(ev.event_id, sizeof(ev.event_id),
			 "00000000-0000-4000-8000-%012d", i);
		snprintf(ev.user_id, sizeof(ev.user_id), "%s", user);
		ev.type = CART_EVENT_CLEARED;
		ev.cart_version = 1;
		ck_assert_int_eq(cart_new(&c, user), CART_OK);
		ck_assert_int_eq(cart_restore_meta(c, "10000000-0000-4000-8000-000000000001",
						   1, 1, 1, 2), CART_OK);
		cart_write w = { .user_id = user, .expected_version = 0, .cart = c,
				 .events = &ev, .event_count = 1 };
		ck_assert_int_eq(cart_repo_save(&r, &w), CART_OK);
		cart_free(c);
		ck_assert_int_eq(cart_repo_outbox_park(&r, user, &ev, "MalformedDetail", i),
				 CART_OK);
	}
	ck_assert(cart_memory_repo_parked(&r, 0, &p, &kept, &dropped));
	ck_assert_uint_eq(kept, CART_MEMORY_DLQ_MAX);
	ck_assert_uint_eq(dropped, 3);
	ck_assert_str_eq(p.event.user_id, "dlq-3");
	ck_assert_int_eq(p.parked_at_ms, 3);
	ck_assert_str_eq(p.reason, "MalformedDetail");
	ck_assert(cart_memory_repo_parked(&r, CART_MEMORY_DLQ_MAX - 1, &p, NULL, NULL));
	ck_assert_str_eq(p.event.user_id, "dlq-1026");
	ck_assert(!cart_memory_repo_parked(&r, CART_MEMORY_DLQ_MAX, &p, NULL, NULL));
	cart_repo_destroy(&r);
}
END_TEST

Suite *memory_repo_contract_suite(void)
{
	Suite *s = repo_contract_suite("repo_contract_memory", memory_factory,
				       NULL);
	TCase *tc = tcase_create("shards");

	tcase_add_test(tc, test_memory_repo_shards_spread_sequential_ids);
	tcase_add_test(tc, test_memory_repo_outbox_process_bound);
	tcase_add_test(tc, test_memory_repo_pacing_admits_writes_as_the_relay_acks);
	tcase_add_test(tc, test_memory_repo_pacing_stops_for_a_stalled_relay);
	tcase_add_test(tc, test_memory_repo_fetch_merges_oldest_first);
	tcase_add_test(tc, test_memory_repo_fetch_under_churn);
	tcase_add_test(tc, test_memory_repo_outbox_spares_reused_cleanly);
	tcase_add_test(tc, test_memory_repo_dead_letters_bounded_oldest_dropped);
	suite_add_tcase(s, tc);
	return s;
}
