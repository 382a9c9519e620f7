/*
 * Retry policy and circuit breaker, driven by the fake clock and fake ids
 * so every time step and every jitter draw is under the test's control.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>

#include "cart/error.h"
#include "cart/resilience.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_ids.h"
#include "unit/suites.h"

#define T0 1767225600000LL
#define DRAWS 2000

static cart_clock clk;
static fake_clock *fclk;
static cart_ids ids;
static fake_ids *fids;
static cart_retry *retry;
static cart_breaker *brk;

static void setup(void)
{
	ck_assert_int_eq(fake_clock_new(&clk, &fclk, T0), 0);
	ck_assert_int_eq(fake_ids_new(&ids, &fids), 0);
	retry = NULL;
	brk = NULL;
}

static void teardown(void)
{
	cart_retry_free(retry);
	cart_breaker_free(brk);
	retry = NULL;
	brk = NULL;
	cart_ids_destroy(&ids);
	cart_clock_destroy(&clk);
}

static void new_retry(const cart_retry_config *cfg)
{
	cart_retry_free(retry);
	retry = NULL;
	ck_assert_int_eq(cart_retry_new(&retry, cfg, &ids), CART_OK);
	ck_assert_ptr_nonnull(retry);
}

static void new_breaker(const cart_breaker_config *cfg)
{
	cart_breaker_free(brk);
	brk = NULL;
	ck_assert_int_eq(cart_breaker_new(&brk, cfg, &clk), CART_OK);
	ck_assert_ptr_nonnull(brk);
}

/* A breaker that trips at 50% failures after 4 calls in a 1 s window. */
static cart_breaker_config small_breaker(void)
{
	cart_breaker_config cfg;
	cart_breaker_config_init(&cfg);
	cfg.failure_rate_pct = 50;
	cfg.min_calls = 4;
	cfg.window_ms = 1000;
	cfg.open_ms = 500;
	cfg.half_open_probes = 2;
	return cfg;
}

static void record_n(int n, bool success)
{
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(cart_breaker_allow(brk, NULL), CART_OK);
		cart_breaker_record(brk, success);
	}
}

static void trip_small_breaker(void)
{
	cart_breaker_config cfg = small_breaker();
	new_breaker(&cfg);
	record_n(4, false);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_OPEN);
}

/* --- config ------------------------------------------------------------- */

START_TEST(test_resilience_config_defaults)
{
	cart_retry_config rc;
	cart_retry_config_init(&rc);
	ck_assert_int_eq(rc.max_attempts, 3);
	ck_assert_int_eq(rc.base_ms, 100);
	ck_assert_int_eq(rc.cap_ms, 20000);
	ck_assert_int_eq(rc.quota, 500);
	ck_assert_int_eq(rc.retry_cost, 5);
	ck_assert_int_eq(rc.timeout_cost, 10);
	ck_assert_int_eq(rc.success_refund, 1);

	cart_breaker_config bc;
	cart_breaker_config_init(&bc);
	ck_assert(bc.enabled);
	ck_assert_int_eq(bc.failure_rate_pct, 50);
	ck_assert_int_eq(bc.min_calls, 20);
	ck_assert_int_eq(bc.window_ms, 10000);
	ck_assert_int_eq(bc.open_ms, 5000);
	ck_assert_int_eq(bc.half_open_probes, 3);

	new_retry(&rc);
	ck_assert_int_eq(cart_retry_tokens(retry), 500);
	new_breaker(&bc);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
}
END_TEST

START_TEST(test_resilience_free_accepts_null)
{
	cart_retry_free(NULL);
	cart_breaker_free(NULL);
}
END_TEST

START_TEST(test_resilience_state_names)
{
	ck_assert_str_eq(cart_breaker_state_name(CART_BREAKER_CLOSED), "closed");
	ck_assert_str_eq(cart_breaker_state_name(CART_BREAKER_OPEN), "open");
	ck_assert_str_eq(cart_breaker_state_name(CART_BREAKER_HALF_OPEN),
			 "half-open");
	ck_assert_str_eq(cart_breaker_state_name((cart_breaker_state)42),
			 "unknown");
}
END_TEST

static void expect_retry_invalid(const cart_retry_config *cfg)
{
	cart_retry *r = (cart_retry *)&r;   /* must be overwritten */
	ck_assert_int_eq(cart_retry_new(&r, cfg, &ids), CART_EINVALID);
	ck_assert_ptr_null(r);
}

START_TEST(test_resilience_retry_rejects_invalid_config)
{
	cart_retry_config base, c;
	cart_retry_config_init(&base);
	c = base; c.max_attempts = 0; expect_retry_invalid(&c);
	c = base; c.max_attempts = -3; expect_retry_invalid(&c);
	c = base; c.retry_cost = -1; expect_retry_invalid(&c);
	c = base; c.timeout_cost = -1; expect_retry_invalid(&c);
	c = base; c.success_refund = -1; expect_retry_invalid(&c);
	c = base; c.quota = -1; expect_retry_invalid(&c);
	c = base; c.base_ms = -1; expect_retry_invalid(&c);
	c = base; c.cap_ms = -1; expect_retry_invalid(&c);
	c = base; c.max_attempts = 1; new_retry(&c);   /* smallest valid */
}
END_TEST

static void expect_breaker_invalid(const cart_breaker_config *cfg)
{
	cart_breaker *b = (cart_breaker *)&b;   /* must be overwritten */
	ck_assert_int_eq(cart_breaker_new(&b, cfg, &clk), CART_EINVALID);
	ck_assert_ptr_null(b);
}

START_TEST(test_resilience_breaker_rejects_invalid_config)
{
	cart_breaker_config base, c;
	cart_breaker_config_init(&base);
	c = base; c.failure_rate_pct = 0; expect_breaker_invalid(&c);
	c = base; c.failure_rate_pct = 101; expect_breaker_invalid(&c);
	c = base; c.failure_rate_pct = -5; expect_breaker_invalid(&c);
	c = base; c.window_ms = 0; expect_breaker_invalid(&c);
	c = base; c.window_ms = -1; expect_breaker_invalid(&c);
	c = base; c.open_ms = 0; expect_breaker_invalid(&c);
	c = base; c.open_ms = -1; expect_breaker_invalid(&c);
	c = base; c.half_open_probes = 0; expect_breaker_invalid(&c);
	c = base; c.min_calls = 0; expect_breaker_invalid(&c);
	c = base; c.failure_rate_pct = 1; new_breaker(&c);
	c = base; c.failure_rate_pct = 100; c.window_ms = 1; new_breaker(&c);
}
END_TEST

/* --- retry ------------------------------------------------------------- */

START_TEST(test_resilience_retry_backoff_bounds)
{
	cart_retry_config cfg;
	cart_retry_config_init(&cfg);
	cfg.max_attempts = 10;
	cfg.base_ms = 100;
	cfg.cap_ms = 20000;
	cfg.quota = 1000000;
	new_retry(&cfg);
	for (int attempt = 1; attempt <= 3; attempt++) {
		int64_t bound = 100LL << (attempt - 1);
		int64_t max_seen = -1, min_seen = bound + 1;
		for (int i = 0; i < DRAWS; i++) {
			int64_t d = -1;
			ck_assert(cart_retry_next(retry, attempt, false, &d));
			ck_assert_int_ge(d, 0);
			ck_assert_int_le(d, bound);
			if (d > max_seen)
				max_seen = d;
			if (d < min_seen)
				min_seen = d;
		}
		/* full jitter: draws spread over the whole range */
		ck_assert_int_gt(max_seen, bound / 2);
		ck_assert_int_lt(min_seen, bound / 2);
	}
}
END_TEST

START_TEST(test_resilience_retry_cap_applies)
{
	cart_retry_config cfg;
	cart_retry_config_init(&cfg);
	cfg.max_attempts = 1000;
	cfg.base_ms = 100;
	cfg.cap_ms = 250;
	cfg.quota = 1000000;
	new_retry(&cfg);
	int attempts[] = { 3, 4, 64, 500, 999 };
	for (size_t k = 0; k < sizeof(attempts) / sizeof(attempts[0]); k++) {
		int64_t max_seen = -1;
		for (int i = 0; i < DRAWS; i++) {
			int64_t d = -1;
			ck_assert(cart_retry_next(retry, attempts[k], false, &d));
			ck_assert_int_ge(d, 0);
			ck_assert_int_le(d, 250);
			if (d > max_seen)
				max_seen = d;
		}
		ck_assert_int_gt(max_seen, 200);
	}
}
END_TEST

START_TEST(test_resilience_retry_zero_base_never_waits)
{
	cart_retry_config cfg;
	cart_retry_config_init(&cfg);
	cfg.base_ms = 0;
	new_retry(&cfg);
	int64_t d = -1;
	ck_assert(cart_retry_next(retry, 2, false, &d));
	ck_assert_int_eq(d, 0);
}
END_TEST

START_TEST(test_resilience_retry_respects_max_attempts)
{
	cart_retry_config cfg;
	cart_retry_config_init(&cfg);
	cfg.max_attempts = 3;
	new_retry(&cfg);
	int64_t d;
	ck_assert(cart_retry_next(retry, 1, false, &d));
	ck_assert(cart_retry_next(retry, 2, false, &d));
	ck_assert(!cart_retry_next(retry, 3, false, &d));
	ck_assert(!cart_retry_next(retry, 4, false, &d));
	/* a refusal for attempts takes no tokens */
	ck_assert_int_eq(cart_retry_tokens(retry), 500 - 2 * 5);

	cfg.max_attempts = 1;   /* one attempt: never retry */
	new_retry(&cfg);
	ck_assert(!cart_retry_next(retry, 1, false, &d));
	ck_assert_int_eq(cart_retry_tokens(retry), 500);
}
END_TEST

START_TEST(test_resilience_retry_quota_exhaustion)
{
	cart_retry_config cfg;
	cart_retry_config_init(&cfg);
	cfg.max_attempts = 100;
	cfg.quota = 10;
	cfg.retry_cost = 5;
	cfg.timeout_cost = 10;
	new_retry(&cfg);
	int64_t d;
	ck_assert(cart_retry_next(retry, 1, false, &d));
	ck_assert_int_eq(cart_retry_tokens(retry), 5);
	ck_assert(cart_retry_next(retry, 1, false, &d));
	ck_assert_int_eq(cart_retry_tokens(retry), 0);
	ck_assert(!cart_retry_next(retry, 1, false, &d));
	ck_assert_int_eq(cart_retry_tokens(retry), 0);

	/* a timeout costs 10: one retry, then none, not even a cheap one */
	new_retry(&cfg);
	ck_assert(cart_retry_next(retry, 1, true, &d));
	ck_assert_int_eq(cart_retry_tokens(retry), 0);
	ck_assert(!cart_retry_next(retry, 1, false, &d));

	/* a timeout needs 10, so 5 left is not enough */
	new_retry(&cfg);
	ck_assert(cart_retry_next(retry, 1, false, &d));
	ck_assert(!cart_retry_next(retry, 1, true, &d));
	ck_assert_int_eq(cart_retry_tokens(retry), 5);
}
END_TEST

START_TEST(test_resilience_retry_refund_capped_at_quota)
{
	cart_retry_config cfg;
	cart_retry_config_init(&cfg);
	cfg.quota = 10;
	cfg.retry_cost = 5;
	cfg.success_refund = 3;
	new_retry(&cfg);
	cart_retry_success(retry);
	ck_assert_int_eq(cart_retry_tokens(retry), 10);

	int64_t d;
	ck_assert(cart_retry_next(retry, 1, false, &d));
	ck_assert(cart_retry_next(retry, 1, false, &d));
	ck_assert_int_eq(cart_retry_tokens(retry), 0);
	ck_assert(!cart_retry_next(retry, 1, false, &d));
	cart_retry_success(retry);
	ck_assert_int_eq(cart_retry_tokens(retry), 3);
	cart_retry_success(retry);
	ck_assert_int_eq(cart_retry_tokens(retry), 6);
	ck_assert(cart_retry_next(retry, 1, false, &d));   /* retries again */
	ck_assert_int_eq(cart_retry_tokens(retry), 1);
	for (int i = 0; i < 10; i++)
		cart_retry_success(retry);
	ck_assert_int_eq(cart_retry_tokens(retry), 10);

	cfg.success_refund = 2147483647;   /* no overflow past the quota */
	new_retry(&cfg);
	ck_assert(cart_retry_next(retry, 1, false, &d));
	cart_retry_success(retry);
	ck_assert_int_eq(cart_retry_tokens(retry), 10);
}
END_TEST

/* A retry allowed but then not made (a deadline) costs nothing. */
START_TEST(test_resilience_retry_cancel_gives_the_tokens_back)
{
	cart_retry_config cfg;
	cart_retry_config_init(&cfg);
	cfg.quota = 20;
	cfg.retry_cost = 5;
	cfg.timeout_cost = 10;
	new_retry(&cfg);
	int64_t d;
	ck_assert(cart_retry_next(retry, 1, false, &d));
	ck_assert(cart_retry_next(retry, 1, true, &d));
	ck_assert_int_eq(cart_retry_tokens(retry), 5);
	cart_retry_cancel(retry, true);
	ck_assert_int_eq(cart_retry_tokens(retry), 15);
	cart_retry_cancel(retry, false);
	ck_assert_int_eq(cart_retry_tokens(retry), 20);
	cart_retry_cancel(retry, true);                  /* never past the quota */
	ck_assert_int_eq(cart_retry_tokens(retry), 20);
}
END_TEST

/* --- breaker: closed ------------------------------------------------------ */

START_TEST(test_resilience_breaker_opens_only_after_min_calls)
{
	cart_breaker_config cfg = small_breaker();
	new_breaker(&cfg);
	record_n(3, false);   /* 100% failures, but only 3 < min_calls */
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
	record_n(1, false);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_OPEN);
}
END_TEST

START_TEST(test_resilience_breaker_opens_at_threshold)
{
	cart_breaker_config cfg = small_breaker();
	cfg.min_calls = 10;
	new_breaker(&cfg);
	record_n(5, true);
	record_n(4, false);   /* 9 calls: still below min_calls */
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
	record_n(1, false);   /* 5/10 = 50%: reaches the rate */
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_OPEN);
}
END_TEST

START_TEST(test_resilience_breaker_stays_closed_below_rate)
{
	cart_breaker_config cfg = small_breaker();
	cfg.min_calls = 10;
	new_breaker(&cfg);
	for (int i = 0; i < 20; i++) {
		record_n(3, true);
		record_n(2, false);   /* 40% < 50% */
	}
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
	ck_assert_int_eq(cart_breaker_allow(brk, NULL), CART_OK);
}
END_TEST

START_TEST(test_resilience_breaker_forgets_old_outcomes)
{
	cart_breaker_config cfg = small_breaker();
	new_breaker(&cfg);
	record_n(3, false);
	fake_clock_advance(fclk, 1000);   /* a full window later */
	record_n(3, false);   /* only 3 in the window: not enough calls */
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
	fake_clock_advance(fclk, 999);
	record_n(1, false);   /* 3 + 1 within one window: trips */
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_OPEN);
}
END_TEST

START_TEST(test_resilience_breaker_old_successes_do_not_dilute)
{
	cart_breaker_config cfg = small_breaker();
	new_breaker(&cfg);
	record_n(100, true);
	fake_clock_advance(fclk, 5000);
	record_n(4, false);   /* the 100 successes are gone */
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_OPEN);
}
END_TEST

/* --- breaker: open and half-open ------------------------------------------ */

START_TEST(test_resilience_breaker_open_refuses_with_retry_after)
{
	trip_small_breaker();
	int64_t after = -1;
	ck_assert_int_eq(cart_breaker_allow(brk, &after), CART_EUNAVAILABLE);
	ck_assert_int_eq(after, 500);
	fake_clock_advance(fclk, 200);
	ck_assert_int_eq(cart_breaker_allow(brk, &after), CART_EUNAVAILABLE);
	ck_assert_int_eq(after, 300);
	fake_clock_advance(fclk, 299);
	ck_assert_int_eq(cart_breaker_allow(brk, &after), CART_EUNAVAILABLE);
	ck_assert_int_eq(after, 1);
	ck_assert_int_eq(cart_breaker_allow(brk, NULL), CART_EUNAVAILABLE);
	/* late outcomes of calls from before the trip change nothing */
	cart_breaker_record(brk, true);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_OPEN);
}
END_TEST

START_TEST(test_resilience_breaker_clock_stepping_back_is_ignored)
{
	trip_small_breaker();
	fake_clock_set(fclk, T0 - 60000);   /* wall clock stepped back */
	int64_t after = -1;
	ck_assert_int_eq(cart_breaker_allow(brk, &after), CART_EUNAVAILABLE);
	ck_assert_int_eq(after, 500);       /* never longer than open_ms */
	fake_clock_set(fclk, T0 + 500);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_HALF_OPEN);
}
END_TEST

START_TEST(test_resilience_breaker_half_open_after_open_ms)
{
	trip_small_breaker();
	fake_clock_advance(fclk, 499);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_OPEN);
	fake_clock_advance(fclk, 1);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_HALF_OPEN);
	ck_assert_int_eq(cart_breaker_allow(brk, NULL), CART_OK);
}
END_TEST

START_TEST(test_resilience_breaker_limits_probes)
{
	trip_small_breaker();
	fake_clock_advance(fclk, 500);
	ck_assert_int_eq(cart_breaker_allow(brk, NULL), CART_OK);
	ck_assert_int_eq(cart_breaker_allow(brk, NULL), CART_OK);
	int64_t after = -1;
	ck_assert_int_eq(cart_breaker_allow(brk, &after), CART_EUNAVAILABLE);
	ck_assert_int_gt(after, 0);
	/* one probe back is not a verdict, and no new probe goes */
	cart_breaker_record(brk, true);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_HALF_OPEN);
	ck_assert_int_eq(cart_breaker_allow(brk, NULL), CART_EUNAVAILABLE);
}
END_TEST

START_TEST(test_resilience_breaker_closes_after_good_probes)
{
	trip_small_breaker();
	fake_clock_advance(fclk, 500);
	record_n(2, true);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
	/* the window starts empty: 3 failures are below min_calls */
	record_n(3, false);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
	record_n(1, false);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_OPEN);
}
END_TEST

START_TEST(test_resilience_breaker_reopens_on_failed_probe)
{
	trip_small_breaker();
	fake_clock_advance(fclk, 500);
	ck_assert_int_eq(cart_breaker_allow(brk, NULL), CART_OK);
	ck_assert_int_eq(cart_breaker_allow(brk, NULL), CART_OK);
	cart_breaker_record(brk, true);
	fake_clock_advance(fclk, 10);
	cart_breaker_record(brk, false);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_OPEN);
	int64_t after = -1;
	ck_assert_int_eq(cart_breaker_allow(brk, &after), CART_EUNAVAILABLE);
	ck_assert_int_eq(after, 500);   /* a fresh open_ms from the failure */
	fake_clock_advance(fclk, 500);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_HALF_OPEN);
	record_n(2, true);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
}
END_TEST

START_TEST(test_resilience_breaker_half_open_ignores_unasked_outcomes)
{
	trip_small_breaker();
	fake_clock_advance(fclk, 500);
	/* outcomes of calls let through before the trip: not probes */
	cart_breaker_record(brk, false);
	cart_breaker_record(brk, true);
	cart_breaker_record(brk, true);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_HALF_OPEN);
	record_n(2, true);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
}
END_TEST

START_TEST(test_resilience_breaker_disabled_never_refuses)
{
	cart_breaker_config cfg = small_breaker();
	cfg.enabled = false;
	new_breaker(&cfg);
	for (int i = 0; i < 1000; i++) {
		int64_t after = -1;
		ck_assert_int_eq(cart_breaker_allow(brk, &after), CART_OK);
		ck_assert_int_eq(after, -1);   /* untouched */
		cart_breaker_record(brk, false);
	}
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
	fake_clock_advance(fclk, 100000);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
}
END_TEST

/* --- threads ------------------------------------------------------------- */

#define THREADS 4
#define ROUNDS 10000

static void *breaker_worker(void *arg)
{
	int seed = *(int *)arg;
	for (int i = 0; i < ROUNDS; i++) {
		int64_t after = 0;
		if (cart_breaker_allow(brk, &after) == CART_OK)
			cart_breaker_record(brk, (i + seed) % 3 != 0);
		else if (after < 0 || after > 500)
			return (void *)1;
		cart_breaker_state s = cart_breaker_get_state(brk);
		if (s != CART_BREAKER_CLOSED && s != CART_BREAKER_OPEN &&
		    s != CART_BREAKER_HALF_OPEN)
			return (void *)1;
		if (i % 16 == 0)
			fake_clock_advance(fclk, 7);
	}
	return NULL;
}

static void *success_worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		if (cart_breaker_allow(brk, NULL) != CART_OK)
			return (void *)1;
		cart_breaker_record(brk, true);
	}
	return NULL;
}

static void *retry_worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		int64_t d = -1;
		if (!cart_retry_next(retry, 1 + i % 2, i % 4 == 0, &d))
			return (void *)1;
		if (d < 0 || d > 200)
			return (void *)1;
		cart_retry_success(retry);
	}
	return NULL;
}

static void run_threads(void *(*fn)(void *))
{
	pthread_t th[THREADS];
	int seeds[THREADS];
	for (int i = 0; i < THREADS; i++) {
		seeds[i] = i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, fn, &seeds[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		void *res = (void *)1;
		ck_assert_int_eq(pthread_join(th[i], &res), 0);
		ck_assert_ptr_null(res);
	}
}

START_TEST(test_resilience_breaker_threads_smoke)
{
	cart_breaker_config cfg = small_breaker();
	new_breaker(&cfg);
	run_threads(breaker_worker);
	/* still a working breaker: a long quiet spell leads back to closed */
	fake_clock_advance(fclk, 10000);
	while (cart_breaker_get_state(brk) == CART_BREAKER_HALF_OPEN &&
	       cart_breaker_allow(brk, NULL) == CART_OK)
		cart_breaker_record(brk, true);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
	ck_assert_int_eq(cart_breaker_allow(brk, NULL), CART_OK);
}
END_TEST

START_TEST(test_resilience_breaker_threads_all_successes_stay_closed)
{
	cart_breaker_config cfg = small_breaker();
	cfg.failure_rate_pct = 1;
	new_breaker(&cfg);
	run_threads(success_worker);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
	/* one failure among 40000 counted successes is far below 1%; it
	 * would trip if the successes had been lost (fewer than 100) */
	ck_assert_int_eq(cart_breaker_allow(brk, NULL), CART_OK);
	cart_breaker_record(brk, false);
	ck_assert_int_eq(cart_breaker_get_state(brk), CART_BREAKER_CLOSED);
}
END_TEST

START_TEST(test_resilience_retry_threads_keep_exact_tokens)
{
	cart_retry_config cfg;
	cart_retry_config_init(&cfg);
	cfg.max_attempts = 3;
	cfg.base_ms = 100;
	cfg.retry_cost = 5;
	cfg.timeout_cost = 10;
	cfg.success_refund = 1;
	/* per round: cost 5 or 10 (1 in 4 timeouts), refund 1 */
	int spend = THREADS * (ROUNDS / 4 * 10 + (ROUNDS - ROUNDS / 4) * 5);
	cfg.quota = spend;
	new_retry(&cfg);
	run_threads(retry_worker);
	/* every refund fit under the quota, so the count is exact */
	ck_assert_int_eq(cart_retry_tokens(retry), THREADS * ROUNDS);
}
END_TEST

Suite *resilience_suite(void)
{
	Suite *s = suite_create("resilience");
	TCase *tc = tcase_create("config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_resilience_config_defaults);
	tcase_add_test(tc, test_resilience_free_accepts_null);
	tcase_add_test(tc, test_resilience_state_names);
	tcase_add_test(tc, test_resilience_retry_rejects_invalid_config);
	tcase_add_test(tc, test_resilience_breaker_rejects_invalid_config);
	suite_add_tcase(s, tc);

	tc = tcase_create("retry");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_resilience_retry_backoff_bounds);
	tcase_add_test(tc, test_resilience_retry_cap_applies);
	tcase_add_test(tc, test_resilience_retry_zero_base_never_waits);
	tcase_add_test(tc, test_resilience_retry_respects_max_attempts);
	tcase_add_test(tc, test_resilience_retry_quota_exhaustion);
	tcase_add_test(tc, test_resilience_retry_refund_capped_at_quota);
	tcase_add_test(tc, test_resilience_retry_cancel_gives_the_tokens_back);
	suite_add_tcase(s, tc);

	tc = tcase_create("breaker-closed");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_resilience_breaker_opens_only_after_min_calls);
	tcase_add_test(tc, test_resilience_breaker_opens_at_threshold);
	tcase_add_test(tc, test_resilience_breaker_stays_closed_below_rate);
	tcase_add_test(tc, test_resilience_breaker_forgets_old_outcomes);
	tcase_add_test(tc, test_resilience_breaker_old_successes_do_not_dilute);
	tcase_add_test(tc, test_resilience_breaker_disabled_never_refuses);
	suite_add_tcase(s, tc);

	tc = tcase_create("breaker-open");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_resilience_breaker_open_refuses_with_retry_after);
	tcase_add_test(tc, test_resilience_breaker_clock_stepping_back_is_ignored);
	tcase_add_test(tc, test_resilience_breaker_half_open_after_open_ms);
	tcase_add_test(tc, test_resilience_breaker_limits_probes);
	tcase_add_test(tc, test_resilience_breaker_closes_after_good_probes);
	tcase_add_test(tc, test_resilience_breaker_reopens_on_failed_probe);
	tcase_add_test(tc, test_resilience_breaker_half_open_ignores_unasked_outcomes);
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);   /* valgrind serialises the threads */
	tcase_add_test(tc, test_resilience_breaker_threads_smoke);
	tcase_add_test(tc, test_resilience_breaker_threads_all_successes_stay_closed);
	tcase_add_test(tc, test_resilience_retry_threads_keep_exact_tokens);
	suite_add_tcase(s, tc);
	return s;
}
