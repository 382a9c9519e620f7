/*
 * Idempotency records in the in-memory repository (issue 8): bounded per
 * user in count and bytes, found by key without a scan, stored deflated
 * and replayed byte for byte.  Lookup cost is measured deterministically
 * with the adapter's step counter (memory_repo_internal.h), not a clock.
 */
#include <check.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory/memory_repo.h"
#include "memory/memory_repo_internal.h"
#include "unit/suites.h"

#define T0 1700000000000LL
#define TTL (24LL * 3600 * 1000)
#define LEASE (60LL * 1000)
#define BIG_BODY 59000           /* the answer of a 99-line cart, bytes */

static cart_repo repo;

static void setup(void)
{
	ck_assert_int_eq(cart_memory_repo_new(&repo), CART_OK);
}

static void teardown(void)
{
	cart_repo_destroy(&repo);
}

/* --- helpers ---------------------------------------------------------------- */

static cart_idem rec_of(const char *key, cart_idem_state st, const char *body,
			size_t len, int64_t expires)
{
	cart_idem r;

	memset(&r, 0, sizeof(r));
	r.key = (char *)key;
	r.fingerprint = "PATCH /v1/cart/u/items/sku #0123456789abcdef";
	r.state = st;
	r.status = st == CART_IDEM_COMPLETE ? 200 : 0;
	r.body = (char *)body;
	r.body_len = len;
	r.expires_at = expires;
	return r;
}

static void key_of(char *buf, size_t size, int i)
{
	int n = snprintf(buf, size, "key-%06d", i);
	ck_assert(n > 0 && (size_t)n < size);
}

/* A cart answer: 99 lines of JSON, like the body of the measured PATCH. */
static char *cart_body(size_t *len)
{
	size_t cap = BIG_BODY + 1024, n = 0;
	char *b = malloc(cap);
	int i = 0;

	ck_assert_ptr_nonnull(b);
	n += (size_t)snprintf(b, cap, "{\"userId\":\"u\",\"version\":7,\"items\":[");
	while (n < BIG_BODY - 700) {
		n += (size_t)snprintf(b + n, cap - n,
			"{\"sku\":\"sku-%05d\",\"name\":\"Item number %d with a "
			"reasonably long display name\",\"quantity\":%d,"
			"\"unitPrice\":{\"amount\":%d,\"currency\":\"EUR\"},"
			"\"lineTotal\":{\"amount\":%d,\"currency\":\"EUR\"},"
			"\"attributes\":{\"color\":\"c%d\",\"size\":\"s%d\"},"
			"\"addedAt\":\"2026-11-27T10:%02d:%02dZ\"},",
			i, i, i % 7 + 1, 100 + i * 37, (100 + i * 37) * (i % 7 + 1),
			i % 5, i % 3, i % 60, (i * 7) % 60);
		i++;
	}
	while (n < BIG_BODY - 2)
		b[n++] = ' ';
	b[n++] = ']';
	b[n++] = '}';
	*len = n;
	return b;
}

/* Incompressible bytes from a fixed seed (xorshift64). */
static char *random_body(size_t len, uint64_t seed)
{
	char *b = malloc(len);

	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < len; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		b[i] = (char)(seed >> 24);
	}
	return b;
}

static void complete(const char *user, const char *key, const char *body,
		     size_t len, int64_t now)
{
	cart_idem claim = rec_of(key, CART_IDEM_PENDING, NULL, 0, now + LEASE);
	cart_idem done = rec_of(key, CART_IDEM_COMPLETE, body, len, now + TTL);

	ck_assert_int_eq(cart_repo_idem_claim(&repo, user, &claim, now), CART_OK);
	ck_assert_int_eq(cart_repo_idem_complete(&repo, user, &done), CART_OK);
}

static int get_rc(const char *user, const char *key, int64_t now)
{
	cart_idem *got = NULL;
	int rc = cart_repo_idem_get(&repo, user, key, now, &got);

	cart_idem_free(got);
	return rc;
}

static void assert_replay(const char *user, const char *key, const char *body,
			  size_t len, int64_t now)
{
	cart_idem *got = NULL;

	ck_assert_int_eq(cart_repo_idem_get(&repo, user, key, now, &got), CART_OK);
	ck_assert_str_eq(got->key, key);
	ck_assert_int_eq(got->state, CART_IDEM_COMPLETE);
	ck_assert_int_eq(got->status, 200);
	ck_assert_uint_eq(got->body_len, len);
	if (len)
		ck_assert_mem_eq(got->body, body, len);
	cart_idem_free(got);
}

/* Steps to look up every key of keys[0..n) `rounds` times. */
static size_t lookup_steps(const char *user, int first, int n, int rounds)
{
	size_t before = cart_memory_repo_idem_steps(&repo);
	char key[32];

	for (int r = 0; r < rounds; r++)
		for (int i = first; i < first + n; i++) {
			key_of(key, sizeof(key), i);
			ck_assert_int_eq(get_rc(user, key, T0 + 1), CART_OK);
		}
	return cart_memory_repo_idem_steps(&repo) - before;
}

/* A user id other than user that lives in the same shard. */
static void same_shard_user(char *buf, size_t size, const char *user)
{
	size_t shard = cart_memory_repo_shard(&repo, user);

	for (int i = 0; i < 100000; i++) {
		snprintf(buf, size, "neighbour-%d", i);
		if (cart_memory_repo_shard(&repo, buf) == shard)
			return;
	}
	ck_abort_msg("no user id in the same shard");
}

/* --- the measured failure ---------------------------------------------------- */

START_TEST(test_memory_idem_heap_bounded_for_1000_large_answers)
{
	size_t len;
	char *body = cart_body(&len);
	char key[32];
	size_t before = mallinfo2().uordblks, grown;

	for (int i = 0; i < 1000; i++) {
		key_of(key, sizeof(key), i);
		complete("u", key, body, len, T0 + i);
	}
	grown = mallinfo2().uordblks - before;
	if (getenv("CART_TEST_REPORT"))
		fprintf(stderr, "memory_idem: heap growth %zu bytes for 1000 x %zu\n",
			grown, len);
	ck_assert_msg(grown < 20u * 1024 * 1024, "heap grew %zu bytes", grown);
	/* the newest answer still replays byte for byte */
	assert_replay("u", key, body, len, T0 + 1000);
	free(body);
}
END_TEST

START_TEST(test_memory_idem_lookup_cost_independent_of_count)
{
	char key[32];
	size_t one, many;

	complete("few", "key-000000", "b", 1, T0);
	for (int i = 0; i < 1000; i++) {
		key_of(key, sizeof(key), i);
		complete("many", key, "b", 1, T0);
	}
	one = lookup_steps("few", 0, 1, 100);
	/* the 100 newest keys are live under any bound */
	many = lookup_steps("many", 900, 100, 1);
	if (getenv("CART_TEST_REPORT"))
		fprintf(stderr, "memory_idem: steps per lookup: 1 record %.2f, "
			"1000 records %.2f\n", one / 100.0, many / 100.0);
	ck_assert_msg(many <= 3 * one, "%zu steps for 100 lookups among 1000 "
		      "records, %zu with 1 record", many, one);
}
END_TEST

START_TEST(test_memory_idem_claims_do_no_scan)
{
	size_t before = cart_memory_repo_idem_steps(&repo), steps;
	char key[32];

	for (int i = 0; i < 1000; i++) {
		key_of(key, sizeof(key), i);
		complete("u", key, "b", 1, T0);
	}
	steps = cart_memory_repo_idem_steps(&repo) - before;
	if (getenv("CART_TEST_REPORT"))
		fprintf(stderr, "memory_idem: %zu steps for 1000 claims and "
			"completes\n", steps);
	/* a claim and a complete each touch a few records, not all of them */
	ck_assert_msg(steps <= 10 * 1000, "%zu steps for 1000 claims", steps);
}
END_TEST

START_TEST(test_memory_idem_neighbour_unaffected)
{
	char other[64], key[32];
	size_t alone, beside;

	same_shard_user(other, sizeof(other), "heavy");
	complete(other, "key-000000", "mine", 4, T0);
	alone = lookup_steps(other, 0, 1, 100);
	for (int i = 0; i < 1000; i++) {
		key_of(key, sizeof(key), i);
		complete("heavy", key, "b", 1, T0);
	}
	beside = lookup_steps(other, 0, 1, 100);
	ck_assert_uint_eq(beside, alone);
	assert_replay(other, "key-000000", "mine", 4, T0 + 1);
	ck_assert_int_eq(get_rc(other, "key-000999", T0 + 1), CART_ENOTFOUND);
}
END_TEST

/* --- bounds ------------------------------------------------------------------ */

START_TEST(test_memory_idem_count_bound_evicts_oldest_complete)
{
	const int extra = 10;
	char key[32];

	for (int i = 0; i < CART_MEMORY_IDEM_MAX + extra; i++) {
		key_of(key, sizeof(key), i);
		complete("u", key, "b", 1, T0 + i);
	}
	for (int i = 0; i < CART_MEMORY_IDEM_MAX + extra; i++) {
		key_of(key, sizeof(key), i);
		ck_assert_int_eq(get_rc("u", key, T0 + 1000),
				 i < extra ? CART_ENOTFOUND : CART_OK);
	}
}
END_TEST

START_TEST(test_memory_idem_rewrite_makes_a_key_newest)
{
	char key[32];

	for (int i = 0; i < CART_MEMORY_IDEM_MAX; i++) {
		key_of(key, sizeof(key), i);
		complete("u", key, "b", 1, T0);
	}
	/* key 0 is completed again (a save replacing it): now the newest */
	cart_idem again = rec_of("key-000000", CART_IDEM_COMPLETE, "c", 1, T0 + TTL);
	ck_assert_int_eq(cart_repo_idem_complete(&repo, "u", &again), CART_OK);
	complete("u", "one-more", "b", 1, T0);
	ck_assert_int_eq(get_rc("u", "key-000000", T0 + 1), CART_OK);
	ck_assert_int_eq(get_rc("u", "key-000001", T0 + 1), CART_ENOTFOUND);
	ck_assert_int_eq(get_rc("u", "key-000002", T0 + 1), CART_OK);
}
END_TEST

START_TEST(test_memory_idem_byte_bound_evicts_oldest_complete)
{
	const size_t len = 64 * 1024;   /* incompressible: stored as is */
	const int n = 20;               /* 1.25 MiB in all */
	char key[32];
	int first_live = -1;

	for (int i = 0; i < n; i++) {
		char *body = random_body(len, 0x9e3779b97f4a7c15ULL + (uint64_t)i);
		key_of(key, sizeof(key), i);
		complete("u", key, body, len, T0 + i);
		free(body);
	}
	/* a suffix of the newest keys is live, everything before it is gone */
	for (int i = 0; i < n; i++) {
		key_of(key, sizeof(key), i);
		int rc = get_rc("u", key, T0 + 100);
		if (rc == CART_OK && first_live < 0)
			first_live = i;
		ck_assert_int_eq(rc, first_live >= 0 ? CART_OK : CART_ENOTFOUND);
	}
	ck_assert_int_ge(first_live, n - (int)(CART_MEMORY_IDEM_BYTES / len));
	ck_assert_int_le(first_live, n - (int)(CART_MEMORY_IDEM_BYTES / len) + 1);
	/* the newest replays byte for byte */
	char *body = random_body(len, 0x9e3779b97f4a7c15ULL + (uint64_t)(n - 1));
	key_of(key, sizeof(key), n - 1);
	assert_replay("u", key, body, len, T0 + 100);
	free(body);
}
END_TEST

START_TEST(test_memory_idem_pending_never_evicted)
{
	char key[32];
	cart_idem claim = rec_of("slow", CART_IDEM_PENDING, NULL, 0, T0 + LEASE);
	cart_idem *got = NULL;

	ck_assert_int_eq(cart_repo_idem_claim(&repo, "u", &claim, T0), CART_OK);
	for (int i = 0; i < 2 * CART_MEMORY_IDEM_MAX; i++) {
		key_of(key, sizeof(key), i);
		complete("u", key, "b", 1, T0 + 1);
	}
	ck_assert_int_eq(cart_repo_idem_get(&repo, "u", "slow", T0 + 2, &got), CART_OK);
	ck_assert_int_eq(got->state, CART_IDEM_PENDING);
	cart_idem_free(got);
	/* and it still counts as a claim */
	ck_assert_int_eq(cart_repo_idem_claim(&repo, "u", &claim, T0 + 2),
			 CART_ECONFLICT);
}
END_TEST

START_TEST(test_memory_idem_claims_alone_at_bound_are_unavailable)
{
	char key[32];
	cart_idem claim;

	for (int i = 0; i < CART_MEMORY_IDEM_MAX; i++) {
		key_of(key, sizeof(key), i);
		claim = rec_of(key, CART_IDEM_PENDING, NULL, 0, T0 + LEASE);
		ck_assert_int_eq(cart_repo_idem_claim(&repo, "u", &claim, T0), CART_OK);
	}
	claim = rec_of("late", CART_IDEM_PENDING, NULL, 0, T0 + LEASE);
	ck_assert_int_eq(cart_repo_idem_claim(&repo, "u", &claim, T0 + 1),
			 CART_EUNAVAILABLE);
	cart_idem done = rec_of("late", CART_IDEM_COMPLETE, "b", 1, T0 + TTL);
	ck_assert_int_eq(cart_repo_idem_complete(&repo, "u", &done),
			 CART_EUNAVAILABLE);
	/* a claim completing in place needs no room */
	key_of(key, sizeof(key), 0);
	done = rec_of(key, CART_IDEM_COMPLETE, "b", 1, T0 + TTL);
	ck_assert_int_eq(cart_repo_idem_complete(&repo, "u", &done), CART_OK);
	/* once the leases have ended, their room is free again */
	claim = rec_of("late", CART_IDEM_PENDING, NULL, 0, T0 + 2 * LEASE);
	ck_assert_int_eq(cart_repo_idem_claim(&repo, "u", &claim, T0 + LEASE + 1),
			 CART_OK);
	ck_assert_int_eq(get_rc("u", key, T0 + LEASE + 1), CART_OK);
}
END_TEST

START_TEST(test_memory_idem_expired_records_read_absent_and_free_room)
{
	char key[32];

	for (int i = 0; i < CART_MEMORY_IDEM_MAX; i++) {
		key_of(key, sizeof(key), i);
		complete("u", key, "b", 1, T0);
	}
	ck_assert_int_eq(get_rc("u", "key-000000", T0 + TTL), CART_ENOTFOUND);
	complete("u", "fresh", "b", 1, T0 + TTL);
	ck_assert_int_eq(get_rc("u", "fresh", T0 + TTL), CART_OK);
}
END_TEST

/* --- byte-identical replay --------------------------------------------------- */

START_TEST(test_memory_idem_replay_is_byte_identical)
{
	static const char nul_body[] = "{\"a\":\"x\0y\"}\0\0\0tail\0";
	size_t len;
	char *json = cart_body(&len);
	char *noise = random_body(100000, 42);

	complete("u", "json", json, len, T0);
	complete("u", "nul", nul_body, sizeof(nul_body), T0);
	complete("u", "noise", noise, 100000, T0);
	complete("u", "empty", NULL, 0, T0);
	complete("u", "one", "x", 1, T0);
	assert_replay("u", "json", json, len, T0 + 1);
	assert_replay("u", "nul", nul_body, sizeof(nul_body), T0 + 1);
	assert_replay("u", "noise", noise, 100000, T0 + 1);
	assert_replay("u", "empty", NULL, 0, T0 + 1);
	assert_replay("u", "one", "x", 1, T0 + 1);
	free(json);
	free(noise);
}
END_TEST

START_TEST(test_memory_idem_replay_after_save_is_byte_identical)
{
	size_t len;
	char *json = cart_body(&len);
	cart *c = NULL;
	cart_idem claim = rec_of("k", CART_IDEM_PENDING, NULL, 0, T0 + LEASE);
	cart_idem done = rec_of("k", CART_IDEM_COMPLETE, json, len, T0 + TTL);

	ck_assert_int_eq(cart_new(&c, "u"), CART_OK);
	ck_assert_int_eq(cart_restore_meta(c, NULL, 1, 0, 0, 0), CART_OK);
	cart_write w = { .user_id = "u", .expected_version = 0, .cart = c,
			 .idem = &done };
	ck_assert_int_eq(cart_repo_idem_claim(&repo, "u", &claim, T0), CART_OK);
	ck_assert_int_eq(cart_repo_save(&repo, &w), CART_OK);
	assert_replay("u", "k", json, len, T0 + 1);
	cart_free(c);
	free(json);
}
END_TEST

Suite *memory_idem_suite(void)
{
	Suite *s = suite_create("memory_idem");
	TCase *cost = tcase_create("cost");
	TCase *bounds = tcase_create("bounds");
	TCase *replay = tcase_create("replay");

	tcase_add_checked_fixture(cost, setup, teardown);
	tcase_set_timeout(cost, 30);
	tcase_add_test(cost, test_memory_idem_heap_bounded_for_1000_large_answers);
	tcase_add_test(cost, test_memory_idem_lookup_cost_independent_of_count);
	tcase_add_test(cost, test_memory_idem_claims_do_no_scan);
	tcase_add_test(cost, test_memory_idem_neighbour_unaffected);
	suite_add_tcase(s, cost);

	tcase_add_checked_fixture(bounds, setup, teardown);
	tcase_add_test(bounds, test_memory_idem_count_bound_evicts_oldest_complete);
	tcase_add_test(bounds, test_memory_idem_rewrite_makes_a_key_newest);
	tcase_add_test(bounds, test_memory_idem_byte_bound_evicts_oldest_complete);
	tcase_add_test(bounds, test_memory_idem_pending_never_evicted);
	tcase_add_test(bounds, test_memory_idem_claims_alone_at_bound_are_unavailable);
	tcase_add_test(bounds, test_memory_idem_expired_records_read_absent_and_free_room);
	suite_add_tcase(s, bounds);

	tcase_add_checked_fixture(replay, setup, teardown);
	tcase_add_test(replay, test_memory_idem_replay_is_byte_identical);
	tcase_add_test(replay, test_memory_idem_replay_after_save_is_byte_identical);
	suite_add_tcase(s, replay);
	return s;
}
