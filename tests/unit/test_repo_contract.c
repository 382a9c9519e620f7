/*
 * The repository contract: what every cart_repo adapter promises, written
 * once against the port and run unchanged per adapter (memory now,
 * DynamoDB later).  Each registered adapter gets its own Suite; the tests
 * are loop tests whose index names the adapter's factory.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart/cart.h"
#include "cart/repo.h"
#include "unit/repo_contract.h"

#define T0 1767225600000LL
#define TTL (30LL * 24 * 3600 * 1000)
#define UUID_1 "00000000-0000-4000-8000-000000000001"
#define UUID_2 "00000000-0000-4000-8000-000000000002"

static struct {
	const char *name;
	repo_factory factory;
	void *arg;
} adapters[REPO_CONTRACT_MAX];
static int adapter_count;

static cart_repo repo;
static int repo_open;

static void setup(void)
{
	memset(&repo, 0, sizeof(repo));
	repo_open = 0;
}

static void teardown(void)
{
	if (repo_open)
		cart_repo_destroy(&repo);
	repo_open = 0;
}

/* A fresh repository from adapter i; released by the fixture. */
static const cart_repo *open_repo(int i)
{
	ck_assert_int_lt(i, adapter_count);
	ck_assert_int_eq(adapters[i].factory(&repo, adapters[i].arg), CART_OK);
	ck_assert_ptr_nonnull(repo.ops);
	repo_open = 1;
	return &repo;
}

/* --- building and comparing carts ---------------------------------------- */

static cart_item_spec spec_of(const char *item, int32_t qty, int64_t amount,
			      const char *cur)
{
	cart_item_spec s;
	memset(&s, 0, sizeof(s));
	s.item_id = item;
	s.quantity = qty;
	s.unit_price.amount = amount;
	snprintf(s.unit_price.currency, sizeof(s.unit_price.currency), "%s", cur);
	return s;
}

/* An empty cart with stored identity; cart_id NULL for a cleared one. */
static cart *meta_cart(const char *user, const char *cid, int64_t version,
		       int64_t t)
{
	cart *c = NULL;
	ck_assert_int_eq(cart_new(&c, user), CART_OK);
	if (cid)
		ck_assert_int_eq(cart_restore_meta(c, cid, version, t, t + 1,
						   t + 1000 + TTL), CART_OK);
	else
		ck_assert_int_eq(cart_restore_meta(c, NULL, version, 0, 0, 0),
				 CART_OK);
	return c;
}

/* A cart with varied lines: no name, a name, attributes, odd order. */
static cart *rich_cart(const char *user, const char *cid, int64_t version)
{
	cart *c = meta_cart(user, cid, version, T0);
	cart_item_spec s = spec_of("zeta", 2, 1999, "EUR");
	ck_assert_int_eq(cart_restore_item(c, &s, T0 - 30, T0 - 20), CART_OK);
	cart_attr attrs[] = { { "size", "L" }, { "color", "dark red" },
			      { "a:b", "" } };
	s = spec_of("alpha", 1, 0, "EUR");
	s.name = "Mug \xe2\x98\x95 \"quoted\" \\ slash";
	s.attrs = attrs;
	s.attr_count = 3;
	ck_assert_int_eq(cart_restore_item(c, &s, T0 - 10, T0 - 5), CART_OK);
	s = spec_of("mid.item@x:y-z_1", 999, CART_AMOUNT_MAX, "EUR");
	s.name = "";
	ck_assert_int_eq(cart_restore_item(c, &s, T0, T0), CART_OK);
	return c;
}

static void assert_same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		ck_assert_ptr_eq(a, b);
	else
		ck_assert_str_eq(a, b);
}

static void assert_same_item(const cart_item *a, const cart_item *b)
{
	ck_assert_str_eq(cart_item_id(a), cart_item_id(b));
	ck_assert_int_eq(cart_item_quantity(a), cart_item_quantity(b));
	ck_assert_int_eq(cart_item_unit_price(a).amount, cart_item_unit_price(b).amount);
	ck_assert_str_eq(cart_item_unit_price(a).currency,
			 cart_item_unit_price(b).currency);
	ck_assert_int_eq(cart_item_line_total(a).amount, cart_item_line_total(b).amount);
	assert_same_str(cart_item_name(a), cart_item_name(b));
	ck_assert_uint_eq(cart_item_attr_count(a), cart_item_attr_count(b));
	for (size_t i = 0; i < cart_item_attr_count(a); i++) {
		cart_attr x = cart_item_attr_at(a, i), y = cart_item_attr_at(b, i);
		ck_assert_str_eq(x.key, y.key);
		ck_assert_str_eq(x.value, y.value);
	}
	ck_assert_int_eq(cart_item_added_at(a), cart_item_added_at(b));
	ck_assert_int_eq(cart_item_updated_at(a), cart_item_updated_at(b));
}

static void assert_same_cart(const cart *a, const cart *b)
{
	ck_assert_str_eq(cart_user_id(a), cart_user_id(b));
	assert_same_str(cart_id(a), cart_id(b));
	ck_assert_int_eq(cart_version(a), cart_version(b));
	ck_assert_int_eq(cart_created_at(a), cart_created_at(b));
	ck_assert_int_eq(cart_updated_at(a), cart_updated_at(b));
	ck_assert_int_eq(cart_expires_at(a), cart_expires_at(b));
	ck_assert_uint_eq(cart_line_count(a), cart_line_count(b));
	for (size_t i = 0; i < cart_line_count(a); i++)
		assert_same_item(cart_item_at(a, i), cart_item_at(b, i));
	ck_assert_int_eq(cart_subtotal(a).amount, cart_subtotal(b).amount);
	ck_assert_str_eq(cart_subtotal(a).currency, cart_subtotal(b).currency);
}

static int save(const cart_repo *r, const char *user, int64_t expected,
		const cart *c, const cart_idem *idem)
{
	cart_write w = {
		.user_id = user,
		.expected_version = expected,
		.cart = c,
		.idem = idem,
	};
	return cart_repo_save(r, &w);
}

/* Saves a simple cart at version v (expecting v-1); returns it (owned). */
static cart *save_simple(const cart_repo *r, const char *user, int64_t v)
{
	cart *c = meta_cart(user, UUID_1, v, T0);
	cart_item_spec s = spec_of("sku", (int32_t)v, 10, "EUR");
	ck_assert_int_eq(cart_restore_item(c, &s, T0, T0), CART_OK);
	ck_assert_int_eq(save(r, user, v - 1, c, NULL), CART_OK);
	return c;
}

static void assert_stored(const cart_repo *r, const char *user, const cart *want)
{
	cart *got = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, user, &got), CART_OK);
	ck_assert_ptr_nonnull(got);
	assert_same_cart(got, want);
	cart_free(got);
}

static void assert_version(const cart_repo *r, const char *user, int64_t v)
{
	cart *got = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, user, &got), CART_OK);
	ck_assert_int_eq(cart_version(got), v);
	cart_free(got);
}

static cart_idem idem_rec(const char *key, const char *fp, cart_idem_state st,
			  int status, const char *body, size_t len,
			  int64_t expires)
{
	cart_idem r;
	memset(&r, 0, sizeof(r));
	r.key = (char *)key;
	r.fingerprint = (char *)fp;
	r.state = st;
	r.status = status;
	r.body = (char *)body;
	r.body_len = len;
	r.expires_at = expires;
	return r;
}

static void assert_idem(const cart_repo *r, const char *user, const char *key,
			int64_t now, const cart_idem *want)
{
	cart_idem *got = NULL;
	ck_assert_int_eq(cart_repo_idem_get(r, user, key, now, &got), CART_OK);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got->key, want->key);
	ck_assert_str_eq(got->fingerprint, want->fingerprint);
	ck_assert_int_eq(got->state, want->state);
	if (want->state == CART_IDEM_COMPLETE) {
		ck_assert_int_eq(got->status, want->status);
		ck_assert_uint_eq(got->body_len, want->body_len);
		if (want->body_len)
			ck_assert_mem_eq(got->body, want->body, want->body_len);
	}
	ck_assert_int_eq(got->expires_at, want->expires_at);
	cart_idem_free(got);
}

static void assert_no_idem(const cart_repo *r, const char *user,
			   const char *key, int64_t now)
{
	cart_idem *got = NULL;
	int rc = cart_repo_idem_get(r, user, key, now, &got);
	if (rc == CART_OK)
		cart_idem_free(got);   /* no leak when the assertion fails */
	ck_assert_int_eq(rc, CART_ENOTFOUND);
}

/* --- carts ----------------------------------------------------------------- */

START_TEST(test_repo_load_missing_is_not_found)
{
	const cart_repo *r = open_repo(_i);
	cart *c = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, "nobody", &c), CART_ENOTFOUND);
}
END_TEST

START_TEST(test_repo_save_expected_zero_creates)
{
	const cart_repo *r = open_repo(_i);
	cart *c = save_simple(r, "u1", 1);
	assert_stored(r, "u1", c);
	cart_free(c);
}
END_TEST

START_TEST(test_repo_round_trip_preserves_every_field)
{
	const cart_repo *r = open_repo(_i);
	cart *c = rich_cart("user.name@example.com", UUID_2, 1);
	ck_assert_int_eq(save(r, "user.name@example.com", 0, c, NULL), CART_OK);
	assert_stored(r, "user.name@example.com", c);
	cart *got = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, "user.name@example.com", &got), CART_OK);
	ck_assert_str_eq(cart_item_id(cart_item_at(got, 0)), "zeta");
	ck_assert_ptr_null(cart_item_name(cart_item_at(got, 0)));
	ck_assert_str_eq(cart_item_name(cart_item_at(got, 2)), "");
	ck_assert_int_eq(cart_expires_at(got), T0 + 1000 + TTL);
	cart_free(got);
	cart_free(c);
}
END_TEST

START_TEST(test_repo_round_trip_cleared_cart)
{
	const cart_repo *r = open_repo(_i);
	cart *c = save_simple(r, "u1", 1);
	cart_free(c);
	c = meta_cart("u1", NULL, 2, 0);
	ck_assert_int_eq(save(r, "u1", 1, c, NULL), CART_OK);
	cart *got = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, "u1", &got), CART_OK);
	ck_assert_ptr_null(cart_id(got));
	ck_assert_int_eq(cart_version(got), 2);
	ck_assert_uint_eq(cart_line_count(got), 0);
	assert_same_cart(got, c);
	cart_free(got);
	cart_free(c);
}
END_TEST

START_TEST(test_repo_save_wrong_version_conflicts)
{
	const cart_repo *r = open_repo(_i);
	/* absent record: only expected 0 may create */
	cart *c = meta_cart("u1", UUID_1, 4, T0);
	ck_assert_int_eq(save(r, "u1", 3, c, NULL), CART_ECONFLICT);
	cart *none = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, "u1", &none), CART_ENOTFOUND);
	cart_free(c);

	cart *v1 = save_simple(r, "u1", 1);
	c = rich_cart("u1", UUID_2, 1);
	ck_assert_int_eq(save(r, "u1", 0, c, NULL), CART_ECONFLICT);
	cart_free(c);
	c = rich_cart("u1", UUID_2, 3);
	ck_assert_int_eq(save(r, "u1", 2, c, NULL), CART_ECONFLICT);
	cart_free(c);
	c = rich_cart("u1", UUID_2, 6);
	ck_assert_int_eq(save(r, "u1", 5, c, NULL), CART_ECONFLICT);
	cart_free(c);
	assert_stored(r, "u1", v1);
	cart_free(v1);
}
END_TEST

START_TEST(test_repo_save_successive_versions)
{
	const cart_repo *r = open_repo(_i);
	for (int64_t v = 1; v <= 5; v++)
		cart_free(save_simple(r, "u1", v));
	assert_version(r, "u1", 5);
	cart *stale = meta_cart("u1", UUID_1, 2, T0);
	ck_assert_int_eq(save(r, "u1", 1, stale, NULL), CART_ECONFLICT);
	cart_free(stale);
	stale = meta_cart("u1", UUID_1, 5, T0);
	ck_assert_int_eq(save(r, "u1", 4, stale, NULL), CART_ECONFLICT);
	cart_free(stale);
	assert_version(r, "u1", 5);
	cart *got = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, "u1", &got), CART_OK);
	ck_assert_int_eq(cart_item_quantity(cart_item_at(got, 0)), 5);
	cart_free(got);
}
END_TEST

/*
 * A loaded cart may be the store's own (shared, read-only): unshared, it
 * can be changed without touching the store.  The saved object may be
 * freed after save (the store keeps its own reference or a copy).
 */
START_TEST(test_repo_load_is_read_only_until_unshared)
{
	const cart_repo *r = open_repo(_i);
	cart *c = rich_cart("u1", UUID_1, 1);
	ck_assert_int_eq(save(r, "u1", 0, c, NULL), CART_OK);
	cart_free(c);
	cart *got = NULL, *again = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, "u1", &got), CART_OK);
	ck_assert_int_eq(cart_repo_load(r, NULL, "u1", &again), CART_OK);
	ck_assert_int_eq(cart_unshare(&got), CART_OK);
	ck_assert(!cart_is_shared(got));
	cart_clear(got);
	cart_free(got);
	/* neither the store nor the other reader's cart changed */
	c = rich_cart("u1", UUID_1, 1);
	assert_stored(r, "u1", c);
	ck_assert_uint_gt(cart_line_count(c), 0);
	ck_assert_uint_eq(cart_line_count(again), cart_line_count(c));
	ck_assert_str_eq(cart_id(again), cart_id(c));
	cart_free(again);
	cart_free(c);
}
END_TEST

START_TEST(test_repo_expired_cart_returned_as_stored)
{
	const cart_repo *r = open_repo(_i);
	cart *c = meta_cart("u1", UUID_1, 1, 1000);   /* expired long ago */
	cart_item_spec s = spec_of("old", 1, 5, "USD");
	ck_assert_int_eq(cart_restore_item(c, &s, 1000, 1000), CART_OK);
	ck_assert_int_eq(save(r, "u1", 0, c, NULL), CART_OK);
	assert_stored(r, "u1", c);
	cart_free(c);
}
END_TEST

START_TEST(test_repo_users_are_independent)
{
	const cart_repo *r = open_repo(_i);
	cart *a = save_simple(r, "alice", 1);
	cart *b = rich_cart("bob", UUID_2, 1);
	ck_assert_int_eq(save(r, "bob", 0, b, NULL), CART_OK);
	cart *a2 = save_simple(r, "alice", 2);
	assert_stored(r, "alice", a2);
	assert_stored(r, "bob", b);
	cart *none = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, "carol", &none), CART_ENOTFOUND);
	cart_free(a);
	cart_free(a2);
	cart_free(b);
}
END_TEST

START_TEST(test_repo_save_with_events_succeeds)
{
	const cart_repo *r = open_repo(_i);
	cart *c = rich_cart("u1", UUID_1, 1);
	cart_event ev[2];
	memset(ev, 0, sizeof(ev));
	for (int i = 0; i < 2; i++) {
		ev[i].type = CART_EVENT_ITEM_ADDED;
		snprintf(ev[i].event_id, sizeof(ev[i].event_id),
			 "00000000-0000-4000-8000-00000000010%c", '0' + i);
		ev[i].occurred_at = T0;
		snprintf(ev[i].user_id, sizeof(ev[i].user_id), "u1");
		snprintf(ev[i].cart_id, sizeof(ev[i].cart_id), UUID_1);
		ev[i].cart_version = 1;
		snprintf(ev[i].item_id, sizeof(ev[i].item_id), "zeta");
		ev[i].quantity_after = 2;
	}
	cart_write w = { .user_id = "u1", .expected_version = 0, .cart = c,
			 .events = ev, .event_count = 2 };
	ck_assert_int_eq(cart_repo_save(r, &w), CART_OK);
	assert_stored(r, "u1", c);
	/* a conflicting write with events writes nothing either */
	w.expected_version = 0;
	ck_assert_int_eq(cart_repo_save(r, &w), CART_ECONFLICT);
	assert_version(r, "u1", 1);
	cart_free(c);
}
END_TEST

/* --- idempotency records --------------------------------------------------- */

START_TEST(test_repo_save_stores_idem_record_atomically)
{
	const cart_repo *r = open_repo(_i);
	cart *c = rich_cart("u1", UUID_1, 1);
	static const char body[] = "{\"cartId\":\"x\"}";
	cart_idem rec = idem_rec("key-1", "POST /v1/cart/u1/items #abc",
				 CART_IDEM_COMPLETE, 201, body, sizeof(body) - 1,
				 T0 + 86400000);
	ck_assert_int_eq(save(r, "u1", 0, c, &rec), CART_OK);
	assert_stored(r, "u1", c);
	assert_idem(r, "u1", "key-1", T0, &rec);

	/* a losing save stores neither the cart nor its record */
	cart *c2 = rich_cart("u1", UUID_2, 1);
	cart_idem rec2 = idem_rec("key-2", "fp2", CART_IDEM_COMPLETE, 200, "b",
				  1, T0 + 86400000);
	ck_assert_int_eq(save(r, "u1", 0, c2, &rec2), CART_ECONFLICT);
	assert_no_idem(r, "u1", "key-2", T0);
	assert_stored(r, "u1", c);
	cart_free(c);
	cart_free(c2);
}
END_TEST

START_TEST(test_repo_save_replaces_pending_claim)
{
	const cart_repo *r = open_repo(_i);
	cart_idem claim = idem_rec("k", "fp", CART_IDEM_PENDING, 0, NULL, 0,
				   T0 + 60000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0), CART_OK);
	cart *c = rich_cart("u1", UUID_1, 1);
	cart_idem done = idem_rec("k", "fp", CART_IDEM_COMPLETE, 201, "done", 4,
				  T0 + 86400000);
	ck_assert_int_eq(save(r, "u1", 0, c, &done), CART_OK);
	assert_idem(r, "u1", "k", T0 + 1, &done);
	/* and no longer counts as a claim */
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0 + 120000),
			 CART_ECONFLICT);
	cart_free(c);
}
END_TEST

START_TEST(test_repo_idem_claim_on_absent_key)
{
	const cart_repo *r = open_repo(_i);
	cart_idem claim = idem_rec("k", "fp", CART_IDEM_PENDING, 0, NULL, 0,
				   T0 + 60000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0), CART_OK);
	assert_idem(r, "u1", "k", T0, &claim);
}
END_TEST

START_TEST(test_repo_idem_claim_does_not_create_cart)
{
	const cart_repo *r = open_repo(_i);
	cart_idem claim = idem_rec("k", "fp", CART_IDEM_PENDING, 0, NULL, 0,
				   T0 + 60000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0), CART_OK);
	cart *none = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, "u1", &none), CART_ENOTFOUND);
	cart_idem done = idem_rec("k2", "fp", CART_IDEM_COMPLETE, 404, "nf", 2,
				  T0 + 60000);
	ck_assert_int_eq(cart_repo_idem_complete(r, "u1", &done), CART_OK);
	ck_assert_int_eq(cart_repo_load(r, NULL, "u1", &none), CART_ENOTFOUND);
	/* the user still has no version: the first save expects 0 */
	cart_free(save_simple(r, "u1", 1));
	assert_idem(r, "u1", "k", T0, &claim);
	assert_idem(r, "u1", "k2", T0, &done);
}
END_TEST

START_TEST(test_repo_idem_second_claim_conflicts)
{
	const cart_repo *r = open_repo(_i);
	cart_idem claim = idem_rec("k", "fp", CART_IDEM_PENDING, 0, NULL, 0,
				   T0 + 60000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0), CART_OK);
	cart_idem other = idem_rec("k", "fp-other", CART_IDEM_PENDING, 0, NULL,
				   0, T0 + 70000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0 + 1), CART_ECONFLICT);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &other, T0 + 59999),
			 CART_ECONFLICT);
	assert_idem(r, "u1", "k", T0, &claim);
}
END_TEST

START_TEST(test_repo_idem_claim_over_expired_lease)
{
	const cart_repo *r = open_repo(_i);
	cart_idem claim = idem_rec("k", "fp", CART_IDEM_PENDING, 0, NULL, 0,
				   T0 + 60000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0), CART_OK);
	cart_idem next = idem_rec("k", "fp2", CART_IDEM_PENDING, 0, NULL, 0,
				  T0 + 200000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &next, T0 + 60001), CART_OK);
	assert_idem(r, "u1", "k", T0 + 60001, &next);
	/* the new lease holds */
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0 + 60002),
			 CART_ECONFLICT);
}
END_TEST

START_TEST(test_repo_idem_claim_over_complete_conflicts)
{
	const cart_repo *r = open_repo(_i);
	cart_idem done = idem_rec("k", "fp", CART_IDEM_COMPLETE, 200, "ok", 2,
				  T0 + 86400000);
	ck_assert_int_eq(cart_repo_idem_complete(r, "u1", &done), CART_OK);
	cart_idem claim = idem_rec("k", "fp", CART_IDEM_PENDING, 0, NULL, 0,
				   T0 + 60000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0), CART_ECONFLICT);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0 + 3600000),
			 CART_ECONFLICT);
	assert_idem(r, "u1", "k", T0, &done);
}
END_TEST

START_TEST(test_repo_idem_complete_replaces_claim)
{
	const cart_repo *r = open_repo(_i);
	cart_idem claim = idem_rec("k", "fp", CART_IDEM_PENDING, 0, NULL, 0,
				   T0 + 60000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0), CART_OK);
	cart_idem done = idem_rec("k", "fp", CART_IDEM_COMPLETE, 404,
				  "{\"code\":\"cart.item_not_found\"}",
				  strlen("{\"code\":\"cart.item_not_found\"}"),
				  T0 + 86400000);
	ck_assert_int_eq(cart_repo_idem_complete(r, "u1", &done), CART_OK);
	assert_idem(r, "u1", "k", T0 + 70000, &done);
	cart *none = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, "u1", &none), CART_ENOTFOUND);
}
END_TEST

START_TEST(test_repo_idem_release_pending_same_fingerprint)
{
	const cart_repo *r = open_repo(_i);
	cart_idem claim = idem_rec("k", "fp", CART_IDEM_PENDING, 0, NULL, 0,
				   T0 + 60000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0), CART_OK);
	ck_assert_int_eq(cart_repo_idem_release(r, "u1", "k", "fp"), CART_OK);
	assert_no_idem(r, "u1", "k", T0);
	/* the key is free again */
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0), CART_OK);
}
END_TEST

START_TEST(test_repo_idem_release_keeps_other_records)
{
	const cart_repo *r = open_repo(_i);
	cart_idem claim = idem_rec("k", "fp", CART_IDEM_PENDING, 0, NULL, 0,
				   T0 + 60000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0), CART_OK);
	(void)cart_repo_idem_release(r, "u1", "k", "someone-else");
	assert_idem(r, "u1", "k", T0, &claim);

	cart_idem done = idem_rec("k2", "fp", CART_IDEM_COMPLETE, 200, "x", 1,
				  T0 + 86400000);
	ck_assert_int_eq(cart_repo_idem_complete(r, "u1", &done), CART_OK);
	(void)cart_repo_idem_release(r, "u1", "k2", "fp");
	assert_idem(r, "u1", "k2", T0, &done);

	/* releasing what is not there harms nothing */
	(void)cart_repo_idem_release(r, "u1", "absent", "fp");
	(void)cart_repo_idem_release(r, "nobody", "k", "fp");
	assert_idem(r, "u1", "k", T0, &claim);
}
END_TEST

START_TEST(test_repo_idem_get_after_expiry_not_found)
{
	const cart_repo *r = open_repo(_i);
	cart_idem done = idem_rec("k", "fp", CART_IDEM_COMPLETE, 200, "x", 1,
				  T0 + 1000);
	ck_assert_int_eq(cart_repo_idem_complete(r, "u1", &done), CART_OK);
	assert_idem(r, "u1", "k", T0 + 999, &done);
	assert_no_idem(r, "u1", "k", T0 + 1001);
	assert_no_idem(r, "u1", "k", T0 + 86400000);
}
END_TEST

/* The header: get is CART_ENOTFOUND "past expires_at", a claim's lease end. */
START_TEST(test_repo_idem_get_after_lease_end_not_found)
{
	const cart_repo *r = open_repo(_i);
	cart_idem claim = idem_rec("p", "fp", CART_IDEM_PENDING, 0, NULL, 0,
				   T0 + 500);
	ck_assert_int_eq(cart_repo_idem_claim(r, "u1", &claim, T0), CART_OK);
	assert_idem(r, "u1", "p", T0 + 499, &claim);
	assert_no_idem(r, "u1", "p", T0 + 501);
}
END_TEST

START_TEST(test_repo_idem_get_missing)
{
	const cart_repo *r = open_repo(_i);
	assert_no_idem(r, "u1", "k", T0);
	cart_free(save_simple(r, "u1", 1));
	assert_no_idem(r, "u1", "k", T0);
}
END_TEST

START_TEST(test_repo_idem_keys_scoped_per_user)
{
	const cart_repo *r = open_repo(_i);
	cart_idem a = idem_rec("same", "fa", CART_IDEM_COMPLETE, 201, "A", 1,
			       T0 + 86400000);
	cart_idem b = idem_rec("same", "fb", CART_IDEM_COMPLETE, 200, "BB", 2,
			       T0 + 86400000);
	ck_assert_int_eq(cart_repo_idem_complete(r, "alice", &a), CART_OK);
	ck_assert_int_eq(cart_repo_idem_complete(r, "bob", &b), CART_OK);
	assert_idem(r, "alice", "same", T0, &a);
	assert_idem(r, "bob", "same", T0, &b);
	assert_no_idem(r, "carol", "same", T0);
	cart_idem claim = idem_rec("same", "fc", CART_IDEM_PENDING, 0, NULL, 0,
				   T0 + 60000);
	ck_assert_int_eq(cart_repo_idem_claim(r, "carol", &claim, T0), CART_OK);
}
END_TEST

START_TEST(test_repo_idem_body_with_nul_bytes)
{
	const cart_repo *r = open_repo(_i);
	static const char body[] = "a\0b\0\0c\xff\x01";
	size_t len = sizeof(body) - 1;
	cart_idem done = idem_rec("k", "fp", CART_IDEM_COMPLETE, 200, body, len,
				  T0 + 86400000);
	ck_assert_int_eq(cart_repo_idem_complete(r, "u1", &done), CART_OK);
	assert_idem(r, "u1", "k", T0, &done);

	cart *c = rich_cart("u1", UUID_1, 1);
	cart_idem viasave = idem_rec("k2", "fp", CART_IDEM_COMPLETE, 201, body,
				     len, T0 + 86400000);
	ck_assert_int_eq(save(r, "u1", 0, c, &viasave), CART_OK);
	assert_idem(r, "u1", "k2", T0, &viasave);
	cart_free(c);

	/* an empty body: NULL and 0 */
	cart_idem empty = idem_rec("k3", "fp", CART_IDEM_COMPLETE, 204, NULL, 0,
				   T0 + 86400000);
	ck_assert_int_eq(cart_repo_idem_complete(r, "u1", &empty), CART_OK);
	assert_idem(r, "u1", "k3", T0, &empty);
}
END_TEST

START_TEST(test_repo_idem_longest_key)
{
	const cart_repo *r = open_repo(_i);
	char key[CART_IDEM_KEY_MAX + 1];
	for (int i = 0; i < CART_IDEM_KEY_MAX; i++)
		key[i] = (char)(0x21 + i % 94);
	key[CART_IDEM_KEY_MAX] = '\0';
	cart_idem done = idem_rec(key, "fp", CART_IDEM_COMPLETE, 200, "x", 1,
				  T0 + 86400000);
	ck_assert_int_eq(cart_repo_idem_complete(r, "u1", &done), CART_OK);
	assert_idem(r, "u1", key, T0, &done);
	key[CART_IDEM_KEY_MAX - 1] = '#';
	assert_no_idem(r, "u1", key, T0);
}
END_TEST

START_TEST(test_repo_ping_ok)
{
	const cart_repo *r = open_repo(_i);
	ck_assert_int_eq(cart_repo_ping(r), CART_OK);
}
END_TEST

/* --- concurrency ------------------------------------------------------------ */

#define CAS_THREADS 8
#define USERS 40

/* Increments per thread: 200, or CART_CONTRACT_LOOPS for a store that is
 * slow per request (DynamoDB through the signature-checking proxy). */
static int cas_loops(void)
{
	const char *v = getenv("CART_CONTRACT_LOOPS");
	int n = v ? atoi(v) : 0;
	return n > 0 ? n : 200;
}
#define CAS_LOOPS cas_loops()

struct cas_arg {
	const cart_repo *r;
	int thread;
	int loops;
	const char *user;     /* NULL: walk over USERS users */
	int errors;
	int conflicts;
};

/* load, add one unit, save expecting the loaded version; retry on conflict */
static int cas_increment(struct cas_arg *a, const char *user)
{
	cart_limits lim;
	cart_limits_init(&lim);
	lim.max_item_quantity = 1000000;
	for (;;) {
		cart *c = NULL;
		int rc = cart_repo_load(a->r, NULL, user, &c);
		if (rc == CART_OK)
			rc = cart_unshare(&c);   /* the loaded one is read-only */
		if (rc == CART_ENOTFOUND) {
			char id[CART_UUID_LEN + 1];
			snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012x",
				 (unsigned)a->thread & 0xffffu);
			rc = cart_new(&c, user);
			if (rc == CART_OK)
				rc = cart_begin(c, id, T0);
		}
		if (rc != CART_OK) {
			cart_free(c);
			return rc;
		}
		cart_item_spec s = spec_of("sku", 1, 3, "EUR");
		bool created;
		int64_t expected = cart_version(c);
		rc = cart_add_item(c, &s, &lim, T0, &created, NULL);
		if (rc == CART_OK) {
			cart_touch(c, T0, TTL);
			rc = save(a->r, user, expected, c, NULL);
		}
		cart_free(c);
		if (rc != CART_ECONFLICT)
			return rc;
		a->conflicts++;
	}
}

static void *cas_worker(void *p)
{
	struct cas_arg *a = p;
	char user[32];
	for (int i = 0; i < a->loops; i++) {
		const char *u = a->user;
		if (!u) {
			snprintf(user, sizeof(user), "user-%d",
				 (i + a->thread * 7) % USERS);
			u = user;
		}
		if (cas_increment(a, u) != CART_OK)
			a->errors++;
	}
	return NULL;
}

static void run_workers(struct cas_arg *args, int n)
{
	pthread_t th[CAS_THREADS];
	for (int t = 0; t < n; t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, cas_worker, &args[t]), 0);
	for (int t = 0; t < n; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < n; t++)
		ck_assert_int_eq(args[t].errors, 0);
}

START_TEST(test_repo_concurrent_cas_increments_lose_nothing)
{
	const cart_repo *r = open_repo(_i);
	struct cas_arg args[CAS_THREADS];
	memset(args, 0, sizeof(args));
	for (int t = 0; t < CAS_THREADS; t++) {
		args[t].r = r;
		args[t].thread = t + 1;
		args[t].loops = CAS_LOOPS;
		args[t].user = "hot-user";
	}
	run_workers(args, CAS_THREADS);
	cart *c = NULL;
	ck_assert_int_eq(cart_repo_load(r, NULL, "hot-user", &c), CART_OK);
	ck_assert_int_eq(cart_version(c), CAS_THREADS * CAS_LOOPS);
	ck_assert_uint_eq(cart_line_count(c), 1);
	ck_assert_int_eq(cart_quantity_total(c), CAS_THREADS * CAS_LOOPS);
	ck_assert_int_eq(cart_subtotal(c).amount, 3 * CAS_THREADS * CAS_LOOPS);
	cart_free(c);
}
END_TEST

START_TEST(test_repo_concurrent_many_users)
{
	const cart_repo *r = open_repo(_i);
	struct cas_arg args[CAS_THREADS];
	memset(args, 0, sizeof(args));
	for (int t = 0; t < CAS_THREADS; t++) {
		args[t].r = r;
		args[t].thread = t + 1;
		args[t].loops = USERS * 3;  /* every thread visits each user 3x */
	}
	run_workers(args, CAS_THREADS);
	for (int u = 0; u < USERS; u++) {
		char user[32];
		snprintf(user, sizeof(user), "user-%d", u);
		cart *c = NULL;
		ck_assert_int_eq(cart_repo_load(r, NULL, user, &c), CART_OK);
		ck_assert_int_eq(cart_version(c), CAS_THREADS * 3);
		ck_assert_int_eq(cart_quantity_total(c), CAS_THREADS * 3);
		cart_free(c);
	}
}
END_TEST


/* --- the outbox ------------------------------------------------------------ */

/* Event n of user (cart version v), with every field set. */
static cart_event outbox_event(const char *user, int n, int64_t v)
{
	cart_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = n % 4 == 3 ? CART_EVENT_CLEARED : CART_EVENT_ITEM_QUANTITY_CHANGED;
	snprintf(ev.event_id, sizeof(ev.event_id),
		 "00000000-0000-4000-8000-%012d", n);
	ev.occurred_at = T0 + n;
	snprintf(ev.user_id, sizeof(ev.user_id), "%s", user);
	snprintf(ev.cart_id, sizeof(ev.cart_id), UUID_1);
	ev.cart_version = v;
	if (ev.type != CART_EVENT_CLEARED) {
		snprintf(ev.item_id, sizeof(ev.item_id), "sku-%d", n);
		ev.quantity_before = n;
		ev.quantity_after = n + 1;
		ev.unit_price.amount = 1999;
		snprintf(ev.unit_price.currency, sizeof(ev.unit_price.currency), "EUR");
	} else {
		ev.item_count_before = 7;
	}
	if (n % 2)   /* odd events carry their request's trace, even ones none */
		snprintf(ev.trace_header, sizeof(ev.trace_header),
			 "Root=1-5759e988-bd862e3fe1be46a9942727%02d;"
			 "Parent=53995c3f42cd8ad8;Sampled=1", n % 100);
	return ev;
}

/* Saves version v of user's cart with k events numbered from first. */
static int save_with_events(const cart_repo *r, const char *user, int64_t v,
			    int first, int k)
{
	cart_event ev[4];
	cart *c = meta_cart(user, UUID_1, v, T0);
	ck_assert_int_le(k, 4);
	for (int i = 0; i < k; i++)
		ev[i] = outbox_event(user, first + i, v);
	cart_write w = { .user_id = user, .expected_version = v - 1, .cart = c,
			 .events = ev, .event_count = (size_t)k };
	int rc = cart_repo_save(r, &w);
	cart_free(c);
	return rc;
}

static const cart_outbox_batch *batch_of(const cart_outbox *o, const char *user)
{
	for (size_t i = 0; i < o->n_batches; i++)
		if (!strcmp(o->batches[i].user_id, user))
			return &o->batches[i];
	return NULL;
}

START_TEST(test_repo_outbox_empty)
{
	const cart_repo *r = open_repo(_i);
	cart_outbox o;
	cart_free(save_simple(r, "u1", 1));   /* a write without events */
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	ck_assert_uint_eq(o.n_batches, 0);
	ck_assert_uint_eq(o.backlog, 0);
	ck_assert_int_eq(o.oldest_at, 0);
	cart_outbox_release(&o);
}
END_TEST

START_TEST(test_repo_outbox_keeps_events_in_order_with_every_field)
{
	const cart_repo *r = open_repo(_i);
	cart_outbox o;
	ck_assert_int_eq(save_with_events(r, "u1", 1, 1, 2), CART_OK);
	ck_assert_int_eq(save_with_events(r, "u1", 2, 3, 1), CART_OK);
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	const cart_outbox_batch *b = batch_of(&o, "u1");
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(b->n, 3);
	ck_assert_uint_ge(o.backlog, 3);
	ck_assert_int_eq(o.oldest_at, T0 + 1);
	for (int i = 0; i < 3; i++) {
		cart_event want = outbox_event("u1", i + 1, i < 2 ? 1 : 2);
		const cart_event *got = &b->events[i];
		ck_assert_str_eq(got->event_id, want.event_id);
		ck_assert_int_eq(got->type, want.type);
		ck_assert_int_eq(got->occurred_at, want.occurred_at);
		ck_assert_str_eq(got->user_id, "u1");
		ck_assert_str_eq(got->cart_id, want.cart_id);
		ck_assert_int_eq(got->cart_version, want.cart_version);
		ck_assert_str_eq(got->item_id, want.item_id);
		ck_assert_int_eq(got->quantity_before, want.quantity_before);
		ck_assert_int_eq(got->quantity_after, want.quantity_after);
		ck_assert_int_eq(got->unit_price.amount, want.unit_price.amount);
		ck_assert_str_eq(got->unit_price.currency, want.unit_price.currency);
		ck_assert_int_eq(got->item_count_before, want.item_count_before);
		ck_assert_str_eq(got->trace_header, want.trace_header);
	}
	cart_outbox_release(&o);
}
END_TEST

START_TEST(test_repo_outbox_ack_removes_only_the_named_prefix)
{
	const cart_repo *r = open_repo(_i);
	cart_outbox o;
	ck_assert_int_eq(save_with_events(r, "u1", 1, 1, 3), CART_OK);
	ck_assert_int_eq(save_with_events(r, "u2", 1, 10, 1), CART_OK);
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	const cart_outbox_batch *b = batch_of(&o, "u1");
	ck_assert_ptr_nonnull(b);
	/* not the oldest: refused, nothing removed */
	ck_assert_int_eq(cart_repo_outbox_ack(r, "u1", b->events + 1, 1),
			 CART_ECONFLICT);
	ck_assert_int_eq(cart_repo_outbox_ack(r, "u1", b->events, 2), CART_OK);
	/* already acknowledged: refused */
	ck_assert_int_eq(cart_repo_outbox_ack(r, "u1", b->events, 1), CART_ECONFLICT);
	cart_outbox_release(&o);
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	b = batch_of(&o, "u1");
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(b->n, 1);
	ck_assert_str_eq(b->events[0].event_id, outbox_event("u1", 3, 1).event_id);
	ck_assert_ptr_nonnull(batch_of(&o, "u2"));
	ck_assert_int_eq(cart_repo_outbox_ack(r, "u1", b->events, 1), CART_OK);
	ck_assert_int_eq(cart_repo_outbox_ack(r, "u2", batch_of(&o, "u2")->events, 1),
			 CART_OK);
	cart_outbox_release(&o);
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	ck_assert_uint_eq(o.n_batches, 0);
	cart_outbox_release(&o);
	/* the user is pending again after the next write */
	ck_assert_int_eq(save_with_events(r, "u1", 2, 20, 1), CART_OK);
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	ck_assert_ptr_nonnull(batch_of(&o, "u1"));
	cart_outbox_release(&o);
}
END_TEST

/* Version 2: park takes the head out of the outbox, and only the head. */
START_TEST(test_repo_outbox_park_removes_only_the_head)
{
	const cart_repo *r = open_repo(_i);
	cart_outbox o;
	cart_event ev[2];

	ck_assert(cart_repo_can_park(r));
	ck_assert_int_eq(save_with_events(r, "u1", 1, 1, 2), CART_OK);
	ck_assert_int_eq(save_with_events(r, "u2", 1, 10, 1), CART_OK);
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	ck_assert_uint_eq(batch_of(&o, "u1")->n, 2);
	memcpy(ev, batch_of(&o, "u1")->events, sizeof(ev));
	cart_outbox_release(&o);
	/* not the oldest: refused, nothing removed */
	ck_assert_int_eq(cart_repo_outbox_park(r, "u1", &ev[1], "MalformedDetail", T0),
			 CART_ECONFLICT);
	ck_assert_int_eq(cart_repo_outbox_park(r, "u1", &ev[0], "MalformedDetail", T0),
			 CART_OK);
	/* gone from the outbox: parking or acking it again is refused */
	ck_assert_int_eq(cart_repo_outbox_park(r, "u1", &ev[0], "MalformedDetail", T0),
			 CART_ECONFLICT);
	ck_assert_int_eq(cart_repo_outbox_ack(r, "u1", &ev[0], 1), CART_ECONFLICT);
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	ck_assert_uint_eq(batch_of(&o, "u1")->n, 1);
	ck_assert_str_eq(batch_of(&o, "u1")->events[0].event_id, ev[1].event_id);
	ck_assert_uint_eq(batch_of(&o, "u2")->n, 1);
	cart_outbox_release(&o);
	/* the last one: the user has nothing pending any more */
	ck_assert_int_eq(cart_repo_outbox_park(r, "u1", &ev[1], "InvalidArgument", T0),
			 CART_OK);
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	ck_assert_ptr_null(batch_of(&o, "u1"));
	cart_outbox_release(&o);
	ck_assert_int_eq(cart_repo_outbox_park(r, "nobody", &ev[1], "x", T0),
			 CART_ECONFLICT);
	/* and is pending again after the next write */
	ck_assert_int_eq(save_with_events(r, "u1", 2, 20, 1), CART_OK);
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	ck_assert_ptr_nonnull(batch_of(&o, "u1"));
	cart_outbox_release(&o);
}
END_TEST

START_TEST(test_repo_outbox_conflicting_write_records_nothing)
{
	const cart_repo *r = open_repo(_i);
	cart_outbox o;
	ck_assert_int_eq(save_with_events(r, "u1", 1, 1, 1), CART_OK);
	/* a second writer that also expected version 0 */
	ck_assert_int_eq(save_with_events(r, "u1", 1, 2, 1), CART_ECONFLICT);
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 100, &o), CART_OK);
	ck_assert_uint_eq(batch_of(&o, "u1")->n, 1);
	cart_outbox_release(&o);
}
END_TEST

START_TEST(test_repo_outbox_bound_refuses_writes)
{
	const cart_repo *r = open_repo(_i);
	cart_outbox o;
	int64_t v = 0;
	while (v * 4 < CART_OUTBOX_MAX) {
		v++;
		ck_assert_int_eq(save_with_events(r, "u1", v, (int)v * 4, 4), CART_OK);
	}
	/* CART_OUTBOX_MAX events wait: the next write is refused, not lost */
	ck_assert_int_eq(save_with_events(r, "u1", v + 1, 9000, 1), CART_EBACKLOG);
	assert_version(r, "u1", v);
	ck_assert_int_eq(cart_repo_outbox_fetch(r, 1000, &o), CART_OK);
	const cart_outbox_batch *b = batch_of(&o, "u1");
	ck_assert_uint_eq(b->n, CART_OUTBOX_MAX);
	ck_assert_int_eq(cart_repo_outbox_ack(r, "u1", b->events, 4), CART_OK);
	cart_outbox_release(&o);
	ck_assert_int_eq(save_with_events(r, "u1", v + 1, 9000, 1), CART_OK);
}
END_TEST

/* --- suite ---------------------------------------------------------------- */

#define ADD(tc, fn) tcase_add_loop_test(tc, fn, idx, idx + 1)

Suite *repo_contract_suite(const char *name, repo_factory f, void *arg)
{
	if (adapter_count >= REPO_CONTRACT_MAX)
		return NULL;
	int idx = adapter_count++;
	adapters[idx].name = name;
	adapters[idx].factory = f;
	adapters[idx].arg = arg;

	Suite *s = suite_create(name);
	TCase *tc;

	tc = tcase_create("carts");
	tcase_add_checked_fixture(tc, setup, teardown);
	ADD(tc, test_repo_load_missing_is_not_found);
	ADD(tc, test_repo_save_expected_zero_creates);
	ADD(tc, test_repo_round_trip_preserves_every_field);
	ADD(tc, test_repo_round_trip_cleared_cart);
	ADD(tc, test_repo_save_wrong_version_conflicts);
	ADD(tc, test_repo_save_successive_versions);
	ADD(tc, test_repo_load_is_read_only_until_unshared);
	ADD(tc, test_repo_expired_cart_returned_as_stored);
	ADD(tc, test_repo_users_are_independent);
	ADD(tc, test_repo_save_with_events_succeeds);
	ADD(tc, test_repo_ping_ok);
	suite_add_tcase(s, tc);

	tc = tcase_create("idempotency");
	tcase_add_checked_fixture(tc, setup, teardown);
	ADD(tc, test_repo_save_stores_idem_record_atomically);
	ADD(tc, test_repo_save_replaces_pending_claim);
	ADD(tc, test_repo_idem_claim_on_absent_key);
	ADD(tc, test_repo_idem_claim_does_not_create_cart);
	ADD(tc, test_repo_idem_second_claim_conflicts);
	ADD(tc, test_repo_idem_claim_over_expired_lease);
	ADD(tc, test_repo_idem_claim_over_complete_conflicts);
	ADD(tc, test_repo_idem_complete_replaces_claim);
	ADD(tc, test_repo_idem_release_pending_same_fingerprint);
	ADD(tc, test_repo_idem_release_keeps_other_records);
	ADD(tc, test_repo_idem_get_after_expiry_not_found);
	ADD(tc, test_repo_idem_get_after_lease_end_not_found);
	ADD(tc, test_repo_idem_get_missing);
	ADD(tc, test_repo_idem_keys_scoped_per_user);
	ADD(tc, test_repo_idem_body_with_nul_bytes);
	ADD(tc, test_repo_idem_longest_key);
	suite_add_tcase(s, tc);

	tc = tcase_create("outbox");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	ADD(tc, test_repo_outbox_empty);
	ADD(tc, test_repo_outbox_keeps_events_in_order_with_every_field);
	ADD(tc, test_repo_outbox_ack_removes_only_the_named_prefix);
	ADD(tc, test_repo_outbox_park_removes_only_the_head);
	ADD(tc, test_repo_outbox_conflicting_write_records_nothing);
	ADD(tc, test_repo_outbox_bound_refuses_writes);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	ADD(tc, test_repo_concurrent_cas_increments_lose_nothing);
	ADD(tc, test_repo_concurrent_many_users);
	suite_add_tcase(s, tc);
	return s;
}
