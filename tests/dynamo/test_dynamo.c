/*
 * DynamoDB-specific promises beyond the repository contract: one request
 * per operation, a typical cart fits in one write unit, and unreadable
 * items become a clean CART_EBACKEND instead of a crash.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynamo/dynamo_suites.h"

static cart_repo repo;
static char table[64];

static void setup(void)
{
	cart_dynamo_config dc = { .table = table, .ready_cache_ms = 1000 };

	ck_assert_int_eq(dynamo_new_table(table, sizeof(table)), 0);
	ck_assert_int_eq(cart_dynamo_repo_new(&repo, &dc, g_env.client, &g_env.clock,
					      &g_env.ids, NULL), CART_OK);
}

static void teardown(void)
{
	cart_repo_destroy(&repo);
}

static cart *cart_with_lines(const char *user, int lines)
{
	cart_limits lim;
	cart *c = NULL;

	cart_limits_init(&lim);
	ck_assert_int_eq(cart_new(&c, user), CART_OK);
	ck_assert_int_eq(cart_begin(c, "0b5cf45c-b68f-4374-89ed-f0e4dbd060c9",
				    1767225600000LL), CART_OK);
	for (int i = 0; i < lines; i++) {
		char id[32], name[64];
		cart_attr attrs[] = { { "size", "M" } };
		cart_item_spec s = { id, 2, { 1999 + i, "EUR" }, name, attrs, 1 };
		snprintf(id, sizeof(id), "sku-%06d", 100000 + i);
		snprintf(name, sizeof(name), "Ceramic mug %d, 350 ml", i);
		ck_assert_int_eq(cart_add_item(c, &s, &lim, 1767225600000LL + i, NULL,
					       NULL), CART_OK);
	}
	cart_touch(c, 1767225601000LL, lim.ttl_ms);
	return c;
}

static int save(const char *user, int64_t expected, const cart *c)
{
	cart_write w = { user, expected, c, NULL, NULL, 0 };
	return cart_repo_save(&repo, &w);
}

START_TEST(test_dynamo_one_request_per_operation)
{
	cart_dynamo_stats a, b, d;
	cart *c = cart_with_lines("u-requests", 3), *got = NULL;
	cart_idem *rec = NULL;

	cart_dynamo_repo_stats(&repo, &a);
	ck_assert_int_eq(save("u-requests", 0, c), CART_OK);
	cart_dynamo_repo_stats(&repo, &b);
	ck_assert_uint_eq(b.requests - a.requests, 1);   /* one conditional write */
	ck_assert_int_eq(cart_repo_load(&repo, "u-requests", &got), CART_OK);
	cart_dynamo_repo_stats(&repo, &d);
	ck_assert_uint_eq(d.requests - b.requests, 1);   /* one GetItem */
	ck_assert_int_eq(cart_repo_idem_get(&repo, "u-requests", "k", 0, &rec),
			 CART_ENOTFOUND);
	cart_dynamo_repo_stats(&repo, &a);
	ck_assert_uint_eq(a.requests - d.requests, 1);
	cart_free(got);
	cart_free(c);
}
END_TEST

START_TEST(test_dynamo_ten_line_cart_costs_one_write_unit)
{
	cart_dynamo_stats a, b;
	cart *c = cart_with_lines("shopper.with.ten.lines@example.com", 10);

	cart_dynamo_repo_stats(&repo, &a);
	ck_assert_int_eq(save("shopper.with.ten.lines@example.com", 0, c), CART_OK);
	cart_dynamo_repo_stats(&repo, &b);
	fprintf(stderr, "10-line cart write: %.1f WCU\n",
		(double)(b.write_units_x10 - a.write_units_x10) / 10);
	ck_assert_uint_gt(b.write_units_x10 - a.write_units_x10, 0);
	ck_assert_uint_le(b.write_units_x10 - a.write_units_x10, 10);
	cart_free(c);
}
END_TEST

/* Writes a raw item (DynamoDB JSON members after the key) with PutItem. */
static void put_raw(const char *user, const char *members)
{
	char body[2048];
	cart_aws_response r;

	snprintf(body, sizeof(body),
		 "{\"TableName\":\"%s\",\"Item\":{\"PK\":{\"S\":\"CART#%s\"},"
		 "\"SK\":{\"S\":\"CART\"}%s}}", table, user, members);
	ck_assert_int_eq(cart_aws_call(g_env.client, "DynamoDB_20120810.PutItem",
				       body, strlen(body), &r), CART_OK);
	ck_assert_int_eq(r.status, 200);
	cart_aws_response_release(&r);
}

START_TEST(test_dynamo_bad_items_are_backend_errors)
{
	static const char *const bad[] = {
		",\"version\":{\"S\":\"one\"}",
		",\"version\":{\"N\":\"0\"}",
		",\"version\":{\"N\":\"2\"},\"cartId\":{\"S\":\"short\"},"
		"\"createdAt\":{\"N\":\"1\"},\"updatedAt\":{\"N\":\"1\"},\"expiresAt\":{\"N\":\"9\"}",
		",\"version\":{\"N\":\"2\"},\"cartId\":{\"S\":\"0b5cf45c-b68f-4374-89ed-f0e4dbd060c9\"}",
		",\"version\":{\"N\":\"2\"},\"cartId\":{\"S\":\"0b5cf45c-b68f-4374-89ed-f0e4dbd060c9\"},"
		"\"createdAt\":{\"N\":\"1\"},\"updatedAt\":{\"N\":\"1\"},\"expiresAt\":{\"N\":\"9\"},"
		"\"items\":{\"S\":\"not a list\"}",
		",\"version\":{\"N\":\"2\"},\"cartId\":{\"S\":\"0b5cf45c-b68f-4374-89ed-f0e4dbd060c9\"},"
		"\"createdAt\":{\"N\":\"1\"},\"updatedAt\":{\"N\":\"1\"},\"expiresAt\":{\"N\":\"9\"},"
		"\"currency\":{\"S\":\"EUR\"},\"items\":{\"L\":[{\"M\":{\"id\":{\"S\":\"a\"}}}]}",
		",\"version\":{\"N\":\"2\"},\"cartId\":{\"S\":\"0b5cf45c-b68f-4374-89ed-f0e4dbd060c9\"},"
		"\"createdAt\":{\"N\":\"1\"},\"updatedAt\":{\"N\":\"1\"},\"expiresAt\":{\"N\":\"9\"},"
		"\"currency\":{\"S\":\"EUR\"},\"items\":{\"L\":[{\"M\":{\"id\":{\"S\":\"bad id!\"},"
		"\"q\":{\"N\":\"1\"},\"p\":{\"N\":\"1\"},\"t\":{\"N\":\"1\"}}}]}",
		",\"version\":{\"N\":\"2\"},\"cartId\":{\"S\":\"0b5cf45c-b68f-4374-89ed-f0e4dbd060c9\"},"
		"\"createdAt\":{\"N\":\"1\"},\"updatedAt\":{\"N\":\"1\"},\"expiresAt\":{\"N\":\"9\"},"
		"\"currency\":{\"S\":\"EUR\"},\"items\":{\"L\":[{\"M\":{\"id\":{\"S\":\"a\"},"
		"\"q\":{\"N\":\"99999999999\"},\"p\":{\"N\":\"1\"},\"t\":{\"N\":\"1\"}}}]}",
	};
	cart_dynamo_stats a, b;

	cart_dynamo_repo_stats(&repo, &a);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char user[32];
		cart *got = NULL;
		snprintf(user, sizeof(user), "bad-%zu", i);
		put_raw(user, bad[i]);
		ck_assert_msg(cart_repo_load(&repo, user, &got) == CART_EBACKEND,
			      "bad item %zu was accepted", i);
		ck_assert_ptr_null(got);
	}
	cart_dynamo_repo_stats(&repo, &b);
	ck_assert_uint_eq(b.bad_items - a.bad_items, sizeof(bad) / sizeof(bad[0]));
}
END_TEST

START_TEST(test_dynamo_item_without_version_is_no_cart)
{
	cart *got = NULL;

	put_raw("only-claims", ",\"idem#k\":{\"M\":{\"fp\":{\"S\":\"x\"}}}");
	ck_assert_int_eq(cart_repo_load(&repo, "only-claims", &got), CART_ENOTFOUND);
}
END_TEST

static cart_idem record(const char *key, int64_t exp)
{
	cart_idem r = { (char *)key, "fp", CART_IDEM_COMPLETE, 200, "{}", 2, exp };
	return r;
}

static int save_keyed(const char *user, int64_t expected, const cart *c,
		      const cart_idem *rec)
{
	cart_write w = { user, expected, c, rec, NULL, 0 };
	return cart_repo_save(&repo, &w);
}

/*
 * Records are items of their own, written in one transaction with the
 * cart: 40 records of 64 KB bodies leave the cart item (and so the cost
 * of a plain write) as it was, bodies round-trip exactly through their
 * compression, and a save refused for its version stores no record.
 */
START_TEST(test_dynamo_records_never_grow_the_cart_item)
{
	int64_t now = cart_clock_now(&g_env.clock);
	size_t len = 64 * 1024;
	char *body = malloc(len), key[16];
	cart *c = cart_with_lines("u-records", 10);
	cart_dynamo_stats a, b;
	cart_idem *got = NULL;
	uint64_t plain;

	ck_assert_ptr_nonnull(body);
	for (size_t i = 0; i < len; i++)   /* JSON-like, not all one byte */
		body[i] = "{\"itemId\":\"sku-0123\",\"quantity\":7}, "[i % 37] + (i / 4096) % 3;
	cart_dynamo_repo_stats(&repo, &a);
	ck_assert_int_eq(save("u-records", 0, c), CART_OK);
	cart_dynamo_repo_stats(&repo, &b);
	plain = b.write_units_x10 - a.write_units_x10;
	for (int i = 0; i < 40; i++) {
		cart_idem rec = record(key, now + 60000);
		snprintf(key, sizeof(key), "key-%d", i);
		rec.body = body;
		rec.body_len = len;
		cart_touch(c, 1767225601000LL + i + 1, 86400000);
		ck_assert_int_eq(save_keyed("u-records", cart_version(c) - 1, c, &rec),
				 CART_OK);
	}
	cart_dynamo_repo_stats(&repo, &a);
	cart_touch(c, 1767225700000LL, 86400000);
	ck_assert_int_eq(save("u-records", cart_version(c) - 1, c), CART_OK);
	cart_dynamo_repo_stats(&repo, &b);
	ck_assert_uint_eq(b.write_units_x10 - a.write_units_x10, plain);
	ck_assert_int_eq(cart_repo_idem_get(&repo, "u-records", "key-0", now, &got),
			 CART_OK);
	ck_assert_uint_eq(got->body_len, len);
	ck_assert(memcmp(got->body, body, len) == 0);
	cart_idem_free(got);
	got = NULL;
	{
		cart_idem rec = record("lost", now + 60000);
		cart *stale = cart_with_lines("u-records", 1);   /* version 1 */

		cart_touch(stale, 1767225800000LL, 86400000);
		ck_assert_int_eq(save_keyed("u-records", 1, stale, &rec), CART_ECONFLICT);
		cart_free(stale);
		ck_assert_int_eq(cart_repo_idem_get(&repo, "u-records", "lost", now, &got),
				 CART_ENOTFOUND);
	}
	free(body);
	cart_free(c);
}
END_TEST

/*
 * A user's records are bounded: with idem_max 8, 30 keyed saves and 30
 * outcomes without a cart change all succeed, the newest records replay,
 * the oldest are gone, and a PENDING claim is never swept.
 */
START_TEST(test_dynamo_records_per_user_are_bounded)
{
	cart_dynamo_config dc = { .table = table, .ready_cache_ms = 1000, .idem_max = 8 };
	int64_t now = cart_clock_now(&g_env.clock);
	cart *c = cart_with_lines("u-bound", 1);
	cart_idem claim = record("claimed", now + 60000), *got = NULL;
	cart_repo small;
	char key[16];
	int live = 0;

	ck_assert_int_eq(cart_dynamo_repo_new(&small, &dc, g_env.client, &g_env.clock,
					      &g_env.ids, NULL), CART_OK);
	claim.state = CART_IDEM_PENDING;
	ck_assert_int_eq(cart_repo_idem_claim(&small, "u-bound", &claim, now), CART_OK);
	ck_assert_int_eq(cart_repo_save(&small, &(cart_write){ "u-bound", 0, c, NULL,
							       NULL, 0 }), CART_OK);
	for (int i = 0; i < 30; i++) {
		cart_idem rec = record(key, now + 60000 + i);
		cart_write w = { "u-bound", 0, c, &rec, NULL, 0 };

		snprintf(key, sizeof(key), "save-%02d", i);
		cart_touch(c, 1767225601000LL + i + 1, 86400000);
		w.expected_version = cart_version(c) - 1;
		ck_assert_int_eq(cart_repo_save(&small, &w), CART_OK);
	}
	for (int i = 0; i < 30; i++) {
		cart_idem rec = record(key, now + 90000 + i);

		snprintf(key, sizeof(key), "done-%02d", i);
		ck_assert_int_eq(cart_repo_idem_complete(&small, "u-bound", &rec), CART_OK);
	}
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "save-%02d", i);
		if (cart_repo_idem_get(&small, "u-bound", key, now, &got) == CART_OK)
			live++;
		cart_idem_free(got);
		got = NULL;
		snprintf(key, sizeof(key), "done-%02d", i);
		if (cart_repo_idem_get(&small, "u-bound", key, now, &got) == CART_OK)
			live++;
		cart_idem_free(got);
		got = NULL;
	}
	ck_assert_int_le(live, 8);
	ck_assert_int_ge(live, 6);     /* swept to 3/4 of 8, then refilled */
	ck_assert_int_eq(cart_repo_idem_get(&small, "u-bound", "done-29", now, &got),
			 CART_OK);      /* the newest is kept */
	cart_idem_free(got);
	got = NULL;
	ck_assert_int_eq(cart_repo_idem_get(&small, "u-bound", "save-00", now, &got),
			 CART_ENOTFOUND);   /* the oldest went first */
	ck_assert_int_eq(cart_repo_idem_get(&small, "u-bound", "claimed", now, &got),
			 CART_OK);
	ck_assert_int_eq(got->state, CART_IDEM_PENDING);
	cart_idem_free(got);
	cart_repo_destroy(&small);
	cart_free(c);
}
END_TEST

/* 100 lines x 20 attributes of 256 bytes: far over DynamoDB's 400 KB. */
START_TEST(test_dynamo_oversized_cart_is_invalid_and_not_stored)
{
	cart_limits lim;
	char value[CART_ATTR_VALUE_MAX + 1], keys[CART_ATTRS_MAX][8];
	cart_attr attrs[CART_ATTRS_MAX];
	cart *c = NULL, *got = NULL;

	cart_limits_init(&lim);
	memset(value, 'v', CART_ATTR_VALUE_MAX);
	value[CART_ATTR_VALUE_MAX] = '\0';
	for (int i = 0; i < CART_ATTRS_MAX; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		attrs[i].key = keys[i];
		attrs[i].value = value;
	}
	ck_assert_int_eq(cart_new(&c, "u-huge"), CART_OK);
	ck_assert_int_eq(cart_begin(c, "0b5cf45c-b68f-4374-89ed-f0e4dbd060c9",
				    1767225600000LL), CART_OK);
	for (int i = 0; i < 100; i++) {
		char id[16];
		cart_item_spec s = { id, 1, { 100, "EUR" }, NULL, attrs, CART_ATTRS_MAX };
		snprintf(id, sizeof(id), "sku-%d", i);
		ck_assert_int_eq(cart_add_item(c, &s, &lim, 1767225600000LL, NULL, NULL),
				 CART_OK);
	}
	cart_touch(c, 1767225600000LL, lim.ttl_ms);
	ck_assert_int_eq(save("u-huge", 0, c), CART_EINVALID);
	ck_assert_int_eq(cart_repo_load(&repo, "u-huge", &got), CART_ENOTFOUND);
	cart_free(c);
}
END_TEST

START_TEST(test_dynamo_ping_is_cached)
{
	cart_dynamo_stats a, b;

	ck_assert_int_eq(cart_repo_ping(&repo), CART_OK);
	cart_dynamo_repo_stats(&repo, &a);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(cart_repo_ping(&repo), CART_OK);
	cart_dynamo_repo_stats(&repo, &b);
	ck_assert_uint_eq(b.requests, a.requests);
}
END_TEST

Suite *dynamo_adapter_suite(void)
{
	Suite *s = suite_create("dynamodb_adapter");
	TCase *tc = tcase_create("adapter");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_dynamo_one_request_per_operation);
	tcase_add_test(tc, test_dynamo_ten_line_cart_costs_one_write_unit);
	tcase_add_test(tc, test_dynamo_bad_items_are_backend_errors);
	tcase_add_test(tc, test_dynamo_item_without_version_is_no_cart);
	tcase_add_test(tc, test_dynamo_ping_is_cached);
	tcase_add_test(tc, test_dynamo_records_never_grow_the_cart_item);
	tcase_add_test(tc, test_dynamo_records_per_user_are_bounded);
	tcase_add_test(tc, test_dynamo_oversized_cart_is_invalid_and_not_stored);
	suite_add_tcase(s, tc);
	return s;
}
