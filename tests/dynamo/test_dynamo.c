/*
 * DynamoDB-specific promises beyond the repository contract: one request
 * per operation, a typical cart fits in one write unit, and unreadable
 * items become a clean CART_EBACKEND instead of a crash.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynamo/dynamo_suites.h"
#include "fakes/fake_clock.h"

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
	cart_write w = { user, expected, c, NULL, NULL, 0, NULL };
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
	ck_assert_int_eq(cart_repo_load(&repo, NULL, "u-requests", &got), CART_OK);
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
		ck_assert_msg(cart_repo_load(&repo, NULL, user, &got) == CART_EBACKEND,
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
	ck_assert_int_eq(cart_repo_load(&repo, NULL, "only-claims", &got), CART_ENOTFOUND);
}
END_TEST

/*
 * A load is a GetItem written out without cJSON when the id needs no
 * escaping (dynamo_repo.c: get_item_text); ids the core would refuse,
 * which a library caller may still pass, take cJSON's path and are
 * simply absent, not a malformed request (CART_EBACKEND).
 */
START_TEST(test_dynamo_odd_ids_load_as_absent)
{
	char long_id[CART_ID_MAX + 20];
	const char *odd[] = { "quote\"d", "back\\slash", "tab\there", long_id };
	cart *got = NULL;

	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		ck_assert_msg(cart_repo_load(&repo, NULL, odd[i], &got) == CART_ENOTFOUND,
			      "odd id %zu", i);
		ck_assert_ptr_null(got);
	}
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
	cart_write w = { user, expected, c, rec, NULL, 0, NULL };
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
							       NULL, 0, NULL }), CART_OK);
	for (int i = 0; i < 30; i++) {
		cart_idem rec = record(key, now + 60000 + i);
		cart_write w = { "u-bound", 0, c, &rec, NULL, 0, NULL };

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
	ck_assert_int_eq(cart_repo_load(&repo, NULL, "u-huge", &got), CART_ENOTFOUND);
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

/* --- outbox ownership ------------------------------------------------------ */

#define T0 1767225600000LL
#define LEASE 30000
#define NO_SCAN (1000LL * 3600 * 24)   /* scan_interval_ms: only the first */

static cart_clock oclock;
static fake_clock *oclock_ctl;

static void owner_setup(void)
{
	setup();
	ck_assert_int_eq(fake_clock_new(&oclock, &oclock_ctl, T0), 0);
}

static void owner_teardown(void)
{
	teardown();
	cart_clock_destroy(&oclock);
}

/* A repository on the test's table as task owner, on the fake clock. */
static cart_repo owner_repo(const char *owner, int64_t scan_interval_ms)
{
	cart_dynamo_config dc = { .table = table, .owner = owner, .lease_ms = LEASE,
				  .scan_interval_ms = scan_interval_ms };
	cart_repo r;

	ck_assert_int_eq(cart_dynamo_repo_new(&r, &dc, g_env.client, &oclock,
					      &g_env.ids, NULL), CART_OK);
	ck_assert_str_eq(cart_dynamo_repo_owner(&r), owner);
	return r;
}

/* Saves user's first cart version with two events that occur now. */
static void save_two_events(const cart_repo *r, const char *user)
{
	cart *c = cart_with_lines(user, 1);
	cart_event ev[2];
	cart_write w = { user, 0, c, NULL, ev, 2, NULL };

	memset(ev, 0, sizeof(ev));
	for (int i = 0; i < 2; i++) {
		ev[i].type = CART_EVENT_ITEM_ADDED;
		ck_assert_int_eq(cart_ids_uuid(&g_env.ids, ev[i].event_id), 0);
		ev[i].occurred_at = fake_clock_now(oclock_ctl);
		snprintf(ev[i].user_id, sizeof(ev[i].user_id), "%s", user);
		snprintf(ev[i].cart_id, sizeof(ev[i].cart_id), "%s", cart_id(c));
		ev[i].cart_version = 1;
		snprintf(ev[i].item_id, sizeof(ev[i].item_id), "sku-%d", i);
		ev[i].quantity_after = 1;
		ev[i].unit_price = (cart_money){ 100, "EUR" };
	}
	ck_assert_int_eq(cart_repo_save(r, &w), CART_OK);
	cart_free(c);
}

/* Fetches, and copies user's batch into *got (got->n 0 if none). */
static void fetch_user(const cart_repo *r, const char *user, cart_outbox_batch *got,
		       cart_event *events)
{
	cart_outbox o;

	memset(got, 0, sizeof(*got));
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	for (size_t i = 0; i < o.n_batches; i++) {
		if (strcmp(o.batches[i].user_id, user))
			continue;
		ck_assert_uint_le(o.batches[i].n, 4);
		memcpy(events, o.batches[i].events, o.batches[i].n * sizeof(*events));
		got->n = o.batches[i].n;
		got->events = events;
	}
	cart_outbox_release(&o);
}

/* The cart item's obPending ("" when absent), read consistently. */
static void pending_owner(const char *user, char *out, size_t cap)
{
	char body[512];
	cart_aws_response r;
	cJSON *doc;
	const cJSON *s;

	snprintf(body, sizeof(body),
		 "{\"TableName\":\"%s\",\"ConsistentRead\":true,\"Key\":"
		 "{\"PK\":{\"S\":\"CART#%s\"},\"SK\":{\"S\":\"CART\"}}}", table, user);
	ck_assert_int_eq(cart_aws_call(g_env.client, "DynamoDB_20120810.GetItem", body,
				       strlen(body), &r), CART_OK);
	ck_assert_int_eq(r.status, 200);
	doc = cJSON_ParseWithLength(r.body, r.body_len);
	s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(doc, "Item"), "obPending"), "S");
	snprintf(out, cap, "%s", cJSON_IsString(s) ? s->valuestring : "");
	cJSON_Delete(doc);
	cart_aws_response_release(&r);
}

/* How many items the outbox index holds (a Scan straight to the table). */
static int index_size(void)
{
	char body[256];
	cart_aws_response r;
	cJSON *doc;
	int n;

	snprintf(body, sizeof(body), "{\"TableName\":\"%s\",\"IndexName\":\"outbox\","
		 "\"Select\":\"COUNT\"}", table);
	ck_assert_int_eq(cart_aws_call(g_env.client, "DynamoDB_20120810.Scan", body,
				       strlen(body), &r), CART_OK);
	ck_assert_int_eq(r.status, 200);
	doc = cJSON_ParseWithLength(r.body, r.body_len);
	n = cJSON_GetObjectItemCaseSensitive(doc, "Count")->valueint;
	cJSON_Delete(doc);
	cart_aws_response_release(&r);
	return n;
}

/*
 * A fresh cart of another task is left to it: B's scan skips it, A's
 * fetch returns it, A's ack takes it out of the index.
 */
START_TEST(test_dynamo_outbox_fresh_foreign_cart_is_left_to_its_owner)
{
	cart_repo a = owner_repo("t-a", NO_SCAN), b = owner_repo("t-b", NO_SCAN);
	cart_outbox_batch got;
	cart_event ev[4];
	cart_dynamo_stats st;
	char owner[80];

	save_two_events(&a, "u-fresh");
	pending_owner("u-fresh", owner, sizeof(owner));
	ck_assert_str_eq(owner, "t-a");             /* the writer owns it */
	fake_clock_advance(oclock_ctl, LEASE - 1);
	fetch_user(&b, "u-fresh", &got, ev);
	ck_assert_uint_eq(got.n, 0);
	cart_dynamo_repo_stats(&b, &st);
	ck_assert_uint_eq(st.outbox_scans, 1);
	ck_assert_uint_eq(st.takeovers, 0);
	pending_owner("u-fresh", owner, sizeof(owner));
	ck_assert_str_eq(owner, "t-a");
	fetch_user(&a, "u-fresh", &got, ev);
	ck_assert_uint_eq(got.n, 2);
	ck_assert_int_eq(cart_repo_outbox_ack(&a, "u-fresh", got.events, got.n), CART_OK);
	pending_owner("u-fresh", owner, sizeof(owner));
	ck_assert_str_eq(owner, "");
	ck_assert_int_eq(index_size(), 0);
	cart_repo_destroy(&a);
	cart_repo_destroy(&b);
}
END_TEST

/*
 * Past the lease, B's scan takes A's cart over; A's own Query no longer
 * sees it, and A's late ack of the same events is clean.
 */
START_TEST(test_dynamo_outbox_stale_cart_is_taken_over)
{
	cart_repo a = owner_repo("t-a", NO_SCAN), b = owner_repo("t-b", NO_SCAN);
	cart_outbox_batch got, took;
	cart_event ev[4], ev_b[4];
	cart_dynamo_stats st;
	char owner[80];
	int rc;

	save_two_events(&a, "u-stale");
	fetch_user(&a, "u-stale", &got, ev);        /* A's first fetch: its scan */
	ck_assert_uint_eq(got.n, 2);
	fake_clock_advance(oclock_ctl, LEASE + 1);  /* A is stuck */
	fetch_user(&b, "u-stale", &took, ev_b);
	ck_assert_uint_eq(took.n, 2);
	ck_assert_str_eq(took.events[0].event_id, ev[0].event_id);
	pending_owner("u-stale", owner, sizeof(owner));
	ck_assert_str_eq(owner, "t-b");
	cart_dynamo_repo_stats(&b, &st);
	ck_assert_uint_eq(st.takeovers, 1);
	/* the head is still older than the lease, but B's lease is fresh: a
	 * third task's scan leaves the cart to B until B is stale too */
	fake_clock_advance(oclock_ctl, LEASE - 1);
	{
		cart_repo c = owner_repo("t-c", 1);

		fetch_user(&c, "u-stale", &got, ev);
		ck_assert_uint_eq(got.n, 0);
		pending_owner("u-stale", owner, sizeof(owner));
		ck_assert_str_eq(owner, "t-b");
		fake_clock_advance(oclock_ctl, 2);
		fetch_user(&c, "u-stale", &got, ev);
		ck_assert_uint_eq(got.n, 2);
		pending_owner("u-stale", owner, sizeof(owner));
		ck_assert_str_eq(owner, "t-c");
		cart_repo_destroy(&c);
	}
	fetch_user(&a, "u-stale", &got, ev);
	ck_assert_uint_eq(got.n, 0);
	cart_dynamo_repo_stats(&a, &st);
	ck_assert_uint_eq(st.outbox_queries, 1);
	ck_assert_uint_eq(st.outbox_scans, 1);
	rc = cart_repo_outbox_ack(&a, "u-stale", ev_b, 2);
	ck_assert_msg(rc == CART_OK || rc == CART_ECONFLICT, "ack: %d", rc);
	ck_assert_int_eq(cart_repo_outbox_ack(&b, "u-stale", ev_b, 2),
			 rc == CART_OK ? CART_ECONFLICT : CART_OK);
	ck_assert_int_eq(index_size(), 0);
	cart_repo_destroy(&a);
	cart_repo_destroy(&b);
}
END_TEST

/* A relay-less writer's carts go to the first relay that scans, at once. */
START_TEST(test_dynamo_outbox_unowned_cart_is_taken_at_once)
{
	cart_repo w = owner_repo(CART_DYNAMO_OWNER_ANY, NO_SCAN);
	cart_repo b = owner_repo("t-b", NO_SCAN), c = owner_repo("t-c", NO_SCAN);
	cart_outbox_batch got;
	cart_event ev[4];
	char owner[80];

	save_two_events(&w, "u-any");
	pending_owner("u-any", owner, sizeof(owner));
	ck_assert_str_eq(owner, "-");
	fetch_user(&b, "u-any", &got, ev);
	ck_assert_uint_eq(got.n, 2);
	pending_owner("u-any", owner, sizeof(owner));
	ck_assert_str_eq(owner, "t-b");
	fetch_user(&c, "u-any", &got, ev);          /* fresh, and B's now */
	ck_assert_uint_eq(got.n, 0);
	cart_repo_destroy(&w);
	cart_repo_destroy(&b);
	cart_repo_destroy(&c);
}
END_TEST

/*
 * Only the first fetch and then one per scan_interval_ms scan; the rest
 * query the own partition: an idle relay costs one request per fetch.
 */
START_TEST(test_dynamo_outbox_scans_once_per_interval)
{
	cart_repo a = owner_repo("t-a", 5000);
	cart_dynamo_stats s0, s1;
	cart_outbox_batch got;
	cart_event ev[4];

	cart_dynamo_repo_stats(&a, &s0);
	fetch_user(&a, "nobody", &got, ev);
	cart_dynamo_repo_stats(&a, &s1);
	ck_assert_uint_eq(s1.outbox_scans, 1);
	ck_assert_uint_eq(s1.outbox_queries, 0);
	ck_assert_uint_eq(s1.requests - s0.requests, 1);
	for (int i = 0; i < 10; i++) {
		fake_clock_advance(oclock_ctl, 499);
		fetch_user(&a, "nobody", &got, ev);
	}
	cart_dynamo_repo_stats(&a, &s0);
	ck_assert_uint_eq(s0.outbox_scans, 1);      /* 4990 ms: not yet */
	ck_assert_uint_eq(s0.outbox_queries, 10);
	ck_assert_uint_eq(s0.requests - s1.requests, 10);
	fake_clock_advance(oclock_ctl, 10);
	fetch_user(&a, "nobody", &got, ev);
	cart_dynamo_repo_stats(&a, &s1);
	ck_assert_uint_eq(s1.outbox_scans, 2);
	ck_assert_uint_eq(s1.outbox_queries, 10);
	cart_repo_destroy(&a);
}
END_TEST

/* Successive scans walk an index larger than one page. */
START_TEST(test_dynamo_outbox_scans_continue_where_they_stopped)
{
	cart_repo w = owner_repo(CART_DYNAMO_OWNER_ANY, NO_SCAN);
	cart_repo b = owner_repo("t-b", 1);
	bool seen[5] = { false };
	int passes = 0, distinct = 0;
	char user[16];

	for (int i = 0; i < 5; i++) {
		snprintf(user, sizeof(user), "u-walk-%d", i);
		save_two_events(&w, user);
	}
	/* pages of 2: the third scan reaches the last one (a page may also
	 * show carts B took already, now in its own partition) */
	while (distinct < 5 && passes++ < 5) {
		cart_outbox o;

		fake_clock_advance(oclock_ctl, 1);
		ck_assert_int_eq(cart_repo_outbox_fetch(&b, 2, &o), CART_OK);
		ck_assert_uint_le(o.n_batches, 2);
		for (size_t i = 0; i < o.n_batches; i++) {
			int k = o.batches[i].user_id[7] - '0';
			distinct += !seen[k];
			seen[k] = true;
		}
		cart_outbox_release(&o);
	}
	ck_assert_int_eq(distinct, 5);
	ck_assert_int_le(passes, 3);
	ck_assert_int_eq(index_size(), 5);          /* all B's, none acked */
	cart_repo_destroy(&w);
	cart_repo_destroy(&b);
}
END_TEST

START_TEST(test_dynamo_bad_owner_is_refused)
{
	static const char *const bad[] = {
		"t a", "t/a", "CART#x", "t-\xc3\xa9",
		"0123456789012345678901234567890123456789012345678901234567890123x",
	};
	cart_dynamo_config dc = { .table = table };
	cart_repo r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dc.owner = bad[i];
		ck_assert_msg(cart_dynamo_repo_new(&r, &dc, g_env.client, &g_env.clock,
						   &g_env.ids, NULL) == CART_EINVALID,
			      "owner %zu was accepted", i);
		ck_assert_ptr_null(r.self);
	}
	dc.owner = "0123456789012345678901234567890123456789012345678901234567890123";
	ck_assert_int_eq(cart_dynamo_repo_new(&r, &dc, g_env.client, &g_env.clock,
					      &g_env.ids, NULL), CART_OK);
	cart_repo_destroy(&r);
	dc.owner = "";                              /* generated: t- + 16 hex */
	ck_assert_int_eq(cart_dynamo_repo_new(&r, &dc, g_env.client, &g_env.clock,
					      &g_env.ids, NULL), CART_OK);
	ck_assert_uint_eq(strlen(cart_dynamo_repo_owner(&r)), 18);
	ck_assert_int_eq(strncmp(cart_dynamo_repo_owner(&r), "t-", 2), 0);
	ck_assert_uint_eq(strspn(cart_dynamo_repo_owner(&r) + 2, "0123456789abcdef"), 16);
	cart_repo_destroy(&r);
}
END_TEST

/* --- the call observer (metrics and traces, issue 9) --------------------- */

typedef struct seen_calls {
	int n;
	char op[4][32], type[4][64], rid[4][64], res[4][64];
	long status[4];
	int attempts[4], rc[4];
	int64_t dur_ns[4], start[4], end[4];
} seen_calls;

static void note_call(void *self, const cart_aws_call_info *in)
{
	seen_calls *s = self;
	int i = s->n < 4 ? s->n : 3;

	s->n++;
	snprintf(s->op[i], sizeof(s->op[i]), "%s", in->operation);
	snprintf(s->type[i], sizeof(s->type[i]), "%s", in->error_type);
	snprintf(s->rid[i], sizeof(s->rid[i]), "%s", in->request_id);
	snprintf(s->res[i], sizeof(s->res[i]), "%s", in->resource);
	s->status[i] = in->status;
	s->attempts[i] = in->attempts;
	s->rc[i] = in->rc;
	s->dur_ns[i] = in->duration_ns;
	s->start[i] = in->start_ms;
	s->end[i] = in->end_ms;
}

/* Each call is reported once: operation, outcome, AWS request id, timing. */
START_TEST(test_dynamo_observer_sees_each_call_once)
{
	seen_calls seen = { 0 };
	cart_aws_observer obs = { note_call, &seen };
	cart_aws_client_config cc;
	cart_aws_client *c;
	cart_aws_response r;
	char body[512];

	cart_aws_client_config_init(&cc);
	cc.resource = table;
	cc.observer = &obs;
	ck_assert_int_eq(dynamo_env_client(&c, NULL, NULL, NULL, &cc), CART_OK);
	snprintf(body, sizeof(body), "{\"TableName\":\"%s\",\"Key\":{\"PK\":{\"S\":\"CART#o\"},"
		 "\"SK\":{\"S\":\"CART\"}}}", table);
	ck_assert_int_eq(cart_aws_call(c, "DynamoDB_20120810.GetItem", body,
				       strlen(body), &r), CART_OK);
	cart_aws_response_release(&r);
	snprintf(body, sizeof(body), "{\"TableName\":\"%s\",\"Item\":{\"PK\":{\"S\":\"CART#o\"},"
		 "\"SK\":{\"S\":\"CART\"}},\"ConditionExpression\":\"attribute_exists(PK)\"}",
		 table);
	ck_assert_int_eq(cart_aws_call(c, "DynamoDB_20120810.PutItem", body,
				       strlen(body), &r), CART_OK);
	cart_aws_response_release(&r);
	cart_aws_client_free(c);

	ck_assert_int_eq(seen.n, 2);
	ck_assert_str_eq(seen.op[0], "GetItem");
	ck_assert_int_eq(seen.status[0], 200);
	ck_assert_str_eq(seen.type[0], "");
	ck_assert_str_eq(seen.res[0], table);
	ck_assert_int_eq(seen.attempts[0], 1);
	ck_assert_int_ge(strlen(seen.rid[0]), 8);     /* x-amzn-RequestId */
	ck_assert_int_gt(seen.dur_ns[0], 0);
	ck_assert_int_ge(seen.end[0], seen.start[0]);
	ck_assert_str_eq(seen.op[1], "PutItem");
	ck_assert_int_eq(seen.status[1], 400);
	ck_assert_str_eq(seen.type[1], "ConditionalCheckFailedException");
	ck_assert_int_eq(seen.rc[1], CART_OK);
	ck_assert_str_ne(seen.rid[0], seen.rid[1]);
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
	tcase_add_test(tc, test_dynamo_odd_ids_load_as_absent);
	tcase_add_test(tc, test_dynamo_item_without_version_is_no_cart);
	tcase_add_test(tc, test_dynamo_ping_is_cached);
	tcase_add_test(tc, test_dynamo_observer_sees_each_call_once);
	tcase_add_test(tc, test_dynamo_records_never_grow_the_cart_item);
	tcase_add_test(tc, test_dynamo_records_per_user_are_bounded);
	tcase_add_test(tc, test_dynamo_oversized_cart_is_invalid_and_not_stored);
	tcase_add_test(tc, test_dynamo_bad_owner_is_refused);
	suite_add_tcase(s, tc);
	tc = tcase_create("outbox_owner");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, owner_setup, owner_teardown);
	tcase_add_test(tc, test_dynamo_outbox_fresh_foreign_cart_is_left_to_its_owner);
	tcase_add_test(tc, test_dynamo_outbox_stale_cart_is_taken_over);
	tcase_add_test(tc, test_dynamo_outbox_unowned_cart_is_taken_at_once);
	tcase_add_test(tc, test_dynamo_outbox_scans_once_per_interval);
	tcase_add_test(tc, test_dynamo_outbox_scans_continue_where_they_stopped);
	suite_add_tcase(s, tc);
	return s;
}
