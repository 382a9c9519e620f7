/*
 * The cart aggregate: lifetime, adding and merging lines, every limit,
 * overflow of totals, restoring from storage, ids and error texts.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart/cart.h"
#include "cart/error.h"
#include "cart/event.h"
#include "unit/suites.h"

#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */
#define UUID_A "00000000-0000-4000-8000-00000000000a"

static cart *c;
static cart_limits lim;

static void setup(void)
{
	cart_limits_init(&lim);
	ck_assert_int_eq(cart_new(&c, "user-1"), CART_OK);
	ck_assert_ptr_nonnull(c);
}

static void teardown(void)
{
	cart_free(c);
	c = NULL;
}

static cart_item_spec spec_of(const char *item, int32_t qty, int64_t amount,
			      const char *cur)
{
	cart_item_spec s;
	memset(&s, 0, sizeof(s));
	s.item_id = item;
	s.quantity = qty;
	s.unit_price.amount = amount;
	snprintf(s.unit_price.currency, sizeof(s.unit_price.currency), "%s",
		 cur);
	return s;
}

static int add(const char *item, int32_t qty, int64_t amount, const char *cur,
	       cart_rule *rule)
{
	cart_item_spec s = spec_of(item, qty, amount, cur);
	bool created = false;
	return cart_add_item(c, &s, &lim, T0, &created, rule);
}

static int add_spec(const cart_item_spec *s, cart_rule *rule)
{
	bool created = false;
	return cart_add_item(c, s, &lim, T0, &created, rule);
}

/* A fingerprint of everything visible, to prove "c unchanged on error". */
static void snapshot(char *buf, size_t cap, const cart *x)
{
	size_t n = 0;
	cart_money st = cart_subtotal(x);
	n += (size_t)snprintf(buf + n, cap - n, "v%lld id%s lines%zu st%lld%s q%lld|",
			      (long long)cart_version(x),
			      cart_id(x) ? cart_id(x) : "-", cart_line_count(x),
			      (long long)st.amount, st.currency,
			      (long long)cart_quantity_total(x));
	for (size_t i = 0; i < cart_line_count(x) && n < cap; i++) {
		const cart_item *it = cart_item_at(x, i);
		cart_money p = cart_item_unit_price(it);
		n += (size_t)snprintf(buf + n, cap - n, "%s:%d:%lld%s:%s:%zu|",
				      cart_item_id(it), cart_item_quantity(it),
				      (long long)p.amount, p.currency,
				      cart_item_name(it) ? cart_item_name(it) : "(null)",
				      cart_item_attr_count(it));
	}
}

#define ASSERT_UNCHANGED(before)                                           \
	do {                                                               \
		char after_[4096];                                         \
		snapshot(after_, sizeof(after_), c);                       \
		ck_assert_str_eq(before, after_);                          \
	} while (0)

static char *repeat(char ch, size_t n)
{
	char *s = malloc(n + 1);
	ck_assert_ptr_nonnull(s);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

/* --- lifetime ----------------------------------------------------------- */

START_TEST(test_cart_new_is_empty)
{
	ck_assert_str_eq(cart_user_id(c), "user-1");
	ck_assert_ptr_null(cart_id(c));
	ck_assert_int_eq(cart_version(c), 0);
	ck_assert_int_eq(cart_created_at(c), 0);
	ck_assert_int_eq(cart_updated_at(c), 0);
	ck_assert_int_eq(cart_expires_at(c), 0);
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(cart_quantity_total(c), 0);
	cart_money st = cart_subtotal(c);
	ck_assert_int_eq(st.amount, 0);
	ck_assert_str_eq(st.currency, "");
	ck_assert(!cart_is_expired(c, T0));
	ck_assert_ptr_null(cart_find_item(c, "nope"));
}
END_TEST

START_TEST(test_cart_new_rejects_bad_user_id)
{
	cart *x = NULL;
	ck_assert_int_eq(cart_new(&x, ""), CART_EINVALID);
	ck_assert_int_eq(cart_new(&x, "a b"), CART_EINVALID);
	char *longid = repeat('u', CART_ID_MAX + 1);
	ck_assert_int_eq(cart_new(&x, longid), CART_EINVALID);
	free(longid);
}
END_TEST

START_TEST(test_cart_free_accepts_null)
{
	cart_free(NULL);
}
END_TEST

START_TEST(test_cart_limits_init_defaults)
{
	cart_limits l;
	memset(&l, 0xff, sizeof(l));
	cart_limits_init(&l);
	ck_assert_int_eq(l.max_item_quantity, 999);
	ck_assert_uint_eq(l.max_lines, 100);
	ck_assert_int_eq(l.ttl_ms, 30LL * 24 * 3600 * 1000);
}
END_TEST

START_TEST(test_cart_clone_is_independent)
{
	cart_attr attrs[] = { { "color", "red" } };
	cart_item_spec s = spec_of("sku-1", 2, 1999, "EUR");
	s.name = "Mug";
	s.attrs = attrs;
	s.attr_count = 1;
	ck_assert_int_eq(add_spec(&s, NULL), CART_OK);
	ck_assert_int_eq(cart_begin(c, UUID_A, T0), CART_OK);
	cart_touch(c, T0, lim.ttl_ms);

	cart *copy = NULL;
	ck_assert_int_eq(cart_clone(&copy, c), CART_OK);
	char a[4096], b[4096];
	snapshot(a, sizeof(a), c);
	snapshot(b, sizeof(b), copy);
	ck_assert_str_eq(a, b);
	ck_assert_str_eq(cart_id(copy), UUID_A);
	ck_assert_str_eq(cart_user_id(copy), "user-1");
	ck_assert_int_eq(cart_created_at(copy), cart_created_at(c));
	ck_assert_int_eq(cart_expires_at(copy), cart_expires_at(c));
	/* the lines' strings are copied into the copy's own block */
	ck_assert_ptr_ne(cart_item_name(cart_item_at(copy, 0)),
			 cart_item_name(cart_item_at(c, 0)));
	ck_assert_str_eq(cart_item_name(cart_item_at(copy, 0)), "Mug");
	cart_attr ca = cart_item_attr_at(cart_item_at(copy, 0), 0);
	ck_assert_str_eq(ca.key, "color");
	ck_assert_str_eq(ca.value, "red");

	/* Changing the copy leaves the original alone, and vice versa. */
	ck_assert_int_eq(cart_set_quantity(copy, "sku-1", 7, &lim, T0, NULL),
			 CART_OK);
	cart_clear(copy);
	ck_assert_int_eq(cart_item_quantity(cart_item_at(c, 0)), 2);
	ck_assert_str_eq(cart_id(c), UUID_A);
	/* a second copy keeps its strings after the original drops its line
	 * (make valgrind: no read after free) */
	cart *copy2 = NULL;
	ck_assert_int_eq(cart_clone(&copy2, c), CART_OK);
	ck_assert_int_eq(cart_remove_item(c, "sku-1"), CART_OK);
	ck_assert_uint_eq(cart_line_count(copy), 0);
	cart_free(copy);
	ck_assert_str_eq(cart_item_name(cart_item_at(copy2, 0)), "Mug");
	ca = cart_item_attr_at(cart_item_at(copy2, 0), 0);
	ck_assert_str_eq(ca.key, "color");
	ck_assert_str_eq(ca.value, "red");
	/* a merge with the same strings keeps them; another name builds anew */
	cart_item_spec more = s;
	more.quantity = 1;
	ck_assert_int_eq(cart_add_item(copy2, &more, &lim, T0 + 1, NULL, NULL), CART_OK);
	ck_assert_int_eq(cart_item_quantity(cart_item_at(copy2, 0)), 3);
	ck_assert_str_eq(cart_item_name(cart_item_at(copy2, 0)), "Mug");
	more.name = "Cup";
	more.attr_count = 0;
	ck_assert_int_eq(cart_add_item(copy2, &more, &lim, T0 + 2, NULL, NULL), CART_OK);
	ck_assert_int_eq(cart_item_quantity(cart_item_at(copy2, 0)), 4);
	ck_assert_str_eq(cart_item_name(cart_item_at(copy2, 0)), "Cup");
	ck_assert_uint_eq(cart_item_attr_count(cart_item_at(copy2, 0)), 0);
	cart_free(copy2);
}
END_TEST

/* --- sharing --------------------------------------------------------------- */

START_TEST(test_cart_share_counts_holders)
{
	ck_assert_int_eq(add("sku-1", 2, 1999, "EUR", NULL), CART_OK);
	ck_assert(!cart_is_shared(c));
	cart *other = cart_share(c);
	ck_assert_ptr_eq(other, c);            /* no copy */
	ck_assert(cart_is_shared(c));
	cart *third = cart_share(c);
	cart_free(other);
	ck_assert(cart_is_shared(c));
	cart_free(third);
	ck_assert(!cart_is_shared(c));         /* held alone again: may change */
	ck_assert_int_eq(cart_set_quantity(c, "sku-1", 3, &lim, T0, NULL), CART_OK);
}
END_TEST

START_TEST(test_cart_unshare_copies_only_a_shared_cart)
{
	ck_assert_int_eq(add("sku-1", 2, 1999, "EUR", NULL), CART_OK);
	cart *mine = c;
	ck_assert_int_eq(cart_unshare(&mine), CART_OK);
	ck_assert_ptr_eq(mine, c);             /* alone: nothing to copy */

	cart *reader = cart_share(c);
	mine = cart_share(c);
	ck_assert_int_eq(cart_unshare(&mine), CART_OK);
	ck_assert_ptr_ne(mine, c);
	ck_assert(!cart_is_shared(mine));
	ck_assert_int_eq(cart_set_quantity(mine, "sku-1", 9, &lim, T0, NULL), CART_OK);
	/* the readers' cart did not change */
	ck_assert_int_eq(cart_item_quantity(cart_item_at(reader, 0)), 2);
	cart_free(mine);
	cart_free(reader);
	ck_assert(!cart_is_shared(c));
}
END_TEST

/*
 * A writer's copy is sized from the line it will add before that line is
 * checked: a spec the add will refuse (missing attributes, a NULL key,
 * an id too long) gets a plain copy, nothing read past what it holds, and
 * the add then fails its checks with the copy unchanged.
 */
START_TEST(test_cart_unshare_adding_a_bad_line)
{
	cart_attr null_key[] = { { NULL, "v" } };
	char *long_id = repeat('x', CART_ID_MAX + 1);
	cart_item_spec bad[3];

	ck_assert_int_eq(add("sku-1", 2, 1999, "EUR", NULL), CART_OK);
	bad[0] = spec_of("sku-2", 1, 10, "EUR");
	bad[0].attr_count = 2;                 /* and attrs NULL */
	bad[1] = spec_of("sku-2", 1, 10, "EUR");
	bad[1].attrs = null_key;
	bad[1].attr_count = 1;
	bad[2] = spec_of(long_id, 1, 10, "EUR");
	for (size_t i = 0; i < 3; i++) {
		cart *mine = cart_share(c);
		cart_rule rule = CART_RULE_NONE;

		ck_assert_int_eq(cart_unshare_adding(&mine, &bad[i]), CART_OK);
		ck_assert_ptr_ne(mine, c);
		ck_assert_int_eq(cart_add_item(mine, &bad[i], &lim, T0, NULL, &rule),
				 CART_EINVALID);
		ck_assert_int_eq(rule, i == 2 ? CART_RULE_ID : CART_RULE_ATTRIBUTES);
		ck_assert_uint_eq(cart_line_count(mine), 1);
		ck_assert_str_eq(cart_item_id(cart_item_at(mine, 0)), "sku-1");
		cart_free(mine);
	}
	free(long_id);
	ck_assert(!cart_is_shared(c));
}
END_TEST

/* Changing a cart somebody else reads is a bug the mutators catch. */
START_TEST(test_cart_changing_a_shared_cart_aborts)
{
	cart *reader = cart_share(c);
	(void)reader;
	add("sku-1", 2, 1999, "EUR", NULL);
}
END_TEST

enum { SHARE_THREADS = 4, SHARE_LOOPS = 100000 };

static void *share_loop(void *arg)
{
	cart *x = arg;

	for (int i = 0; i < SHARE_LOOPS; i++)
		cart_free(cart_share(x));
	return NULL;
}

/* Holders on many threads at once: the count ends where it began. */
START_TEST(test_cart_share_is_thread_safe)
{
	pthread_t t[SHARE_THREADS];

	ck_assert_int_eq(add("sku-1", 2, 1999, "EUR", NULL), CART_OK);
	for (int i = 0; i < SHARE_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, share_loop, c), 0);
	for (int i = 0; i < SHARE_THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert(!cart_is_shared(c));
	ck_assert_uint_eq(cart_line_count(c), 1);
}
END_TEST

/* --- adding lines --------------------------------------------------------- */

START_TEST(test_cart_add_item_creates_line)
{
	cart_item_spec s = spec_of("sku-1", 3, 250, "EUR");
	bool created = false;
	cart_rule rule = CART_RULE_QUANTITY;
	ck_assert_int_eq(cart_add_item(c, &s, &lim, T0, &created, &rule), CART_OK);
	ck_assert(created);
	ck_assert_uint_eq(cart_line_count(c), 1);
	const cart_item *it = cart_find_item(c, "sku-1");
	ck_assert_ptr_nonnull(it);
	ck_assert_ptr_eq(it, cart_item_at(c, 0));
	ck_assert_str_eq(cart_item_id(it), "sku-1");
	ck_assert_int_eq(cart_item_quantity(it), 3);
	ck_assert_int_eq(cart_item_unit_price(it).amount, 250);
	ck_assert_str_eq(cart_item_unit_price(it).currency, "EUR");
	ck_assert_int_eq(cart_item_line_total(it).amount, 750);
	ck_assert_str_eq(cart_item_line_total(it).currency, "EUR");
	ck_assert_ptr_null(cart_item_name(it));
	ck_assert_uint_eq(cart_item_attr_count(it), 0);
	ck_assert_int_eq(cart_item_added_at(it), T0);
	ck_assert_int_eq(cart_item_updated_at(it), T0);
	ck_assert_int_eq(cart_quantity_total(c), 3);
	ck_assert_int_eq(cart_subtotal(c).amount, 750);
	ck_assert_str_eq(cart_subtotal(c).currency, "EUR");
}
END_TEST

START_TEST(test_cart_add_item_does_not_touch_version_or_times)
{
	ck_assert_int_eq(add("sku-1", 1, 100, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_version(c), 0);
	ck_assert_ptr_null(cart_id(c));
	ck_assert_int_eq(cart_updated_at(c), 0);
	ck_assert_int_eq(cart_expires_at(c), 0);
}
END_TEST

START_TEST(test_cart_add_item_merges_same_item_latest_price_wins)
{
	cart_attr a1[] = { { "size", "M" }, { "color", "red" } };
	cart_item_spec s = spec_of("sku-1", 2, 1000, "EUR");
	s.name = "Old name";
	s.attrs = a1;
	s.attr_count = 2;
	bool created = false;
	ck_assert_int_eq(cart_add_item(c, &s, &lim, T0, &created, NULL), CART_OK);
	ck_assert(created);

	cart_attr a2[] = { { "size", "L" } };
	cart_item_spec s2 = spec_of("sku-1", 3, 1200, "EUR");
	s2.name = "New name";
	s2.attrs = a2;
	s2.attr_count = 1;
	ck_assert_int_eq(cart_add_item(c, &s2, &lim, T0 + 5000, &created, NULL),
			 CART_OK);
	ck_assert(!created);
	ck_assert_uint_eq(cart_line_count(c), 1);
	const cart_item *it = cart_item_at(c, 0);
	ck_assert_int_eq(cart_item_quantity(it), 5);
	ck_assert_int_eq(cart_item_unit_price(it).amount, 1200);
	ck_assert_int_eq(cart_item_line_total(it).amount, 6000);
	ck_assert_str_eq(cart_item_name(it), "New name");
	ck_assert_uint_eq(cart_item_attr_count(it), 1);
	ck_assert_str_eq(cart_item_attr_at(it, 0).key, "size");
	ck_assert_str_eq(cart_item_attr_at(it, 0).value, "L");
	ck_assert_int_eq(cart_item_added_at(it), T0);
	ck_assert_int_eq(cart_item_updated_at(it), T0 + 5000);
	ck_assert_int_eq(cart_subtotal(c).amount, 6000);
}
END_TEST

START_TEST(test_cart_add_item_merge_without_name_clears_name)
{
	cart_item_spec s = spec_of("sku-1", 1, 10, "EUR");
	s.name = "Named";
	ck_assert_int_eq(add_spec(&s, NULL), CART_OK);
	cart_item_spec s2 = spec_of("sku-1", 1, 10, "EUR");
	ck_assert_int_eq(add_spec(&s2, NULL), CART_OK);
	ck_assert_ptr_null(cart_item_name(cart_item_at(c, 0)));
}
END_TEST

START_TEST(test_cart_add_item_keeps_insertion_order)
{
	const char *ids[] = { "c", "a", "b", "z", "m" };
	for (size_t i = 0; i < 5; i++)
		ck_assert_int_eq(add(ids[i], 1, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add("a", 4, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_remove_item(c, "b"), CART_OK);
	ck_assert_int_eq(add("b", 1, 10, "EUR", NULL), CART_OK);
	const char *want[] = { "c", "a", "z", "m", "b" };
	ck_assert_uint_eq(cart_line_count(c), 5);
	for (size_t i = 0; i < 5; i++)
		ck_assert_str_eq(cart_item_id(cart_item_at(c, i)), want[i]);
	ck_assert_int_eq(cart_quantity_total(c), 9);
}
END_TEST

/*
 * Finds compare a hash of the id before the string (lib/cart.c, id_hash):
 * two ids with the same 32-bit FNV-1a hash (0xe1f23130) stay two lines,
 * each found, changed and removed on its own, in either order, and with
 * lines of other hashes around them.
 */
START_TEST(test_cart_items_with_equal_id_hashes_stay_apart)
{
	const char *x = "sku-lx4c0nrt", *y = "sku-9z5vtd0s";

	ck_assert_int_eq(add("a", 1, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add(x, 1, 10, "EUR", NULL), CART_OK);
	ck_assert_ptr_null(cart_find_item(c, y));
	ck_assert_int_eq(add(y, 2, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add("b", 1, 10, "EUR", NULL), CART_OK);
	ck_assert_uint_eq(cart_line_count(c), 4);
	ck_assert_str_eq(cart_item_id(cart_find_item(c, x)), x);
	ck_assert_str_eq(cart_item_id(cart_find_item(c, y)), y);
	ck_assert_int_eq(add(y, 3, 10, "EUR", NULL), CART_OK);     /* merge into y */
	ck_assert_int_eq(cart_item_quantity(cart_find_item(c, x)), 1);
	ck_assert_int_eq(cart_item_quantity(cart_find_item(c, y)), 5);
	ck_assert_int_eq(cart_set_quantity(c, x, 7, &lim, T0, NULL), CART_OK);
	ck_assert_int_eq(cart_item_quantity(cart_find_item(c, x)), 7);
	ck_assert_int_eq(cart_item_quantity(cart_find_item(c, y)), 5);
	ck_assert_int_eq(cart_remove_item(c, x), CART_OK);
	ck_assert_ptr_null(cart_find_item(c, x));
	ck_assert_int_eq(cart_item_quantity(cart_find_item(c, y)), 5);
	ck_assert_int_eq(cart_remove_item(c, x), CART_ENOTFOUND);
	ck_assert_int_eq(add(x, 1, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_remove_item(c, y), CART_OK);
	ck_assert_int_eq(cart_item_quantity(cart_find_item(c, x)), 1);
	ck_assert_ptr_null(cart_find_item(c, y));
	ck_assert_ptr_null(cart_find_item(c, "sku-lx4c0nr"));
	ck_assert_uint_eq(cart_line_count(c), 3);
}
END_TEST

/*
 * A line replaced or removed leaves its bytes in the cart's arena until a
 * repack; many replacements on one private cart repack it (the strings
 * stay right) instead of growing it without bound, and a spec whose
 * strings point into the cart itself is read before its old arena goes
 * (make valgrind: no read after free).
 */
START_TEST(test_cart_replacing_lines_repacks_the_arena)
{
	cart_attr attrs[] = { { "size", "M" } };
	char name[32];

	ck_assert_int_eq(add("keep", 1, 10, "EUR", NULL), CART_OK);
	for (int i = 0; i < 2000; i++) {
		cart_item_spec s = spec_of("sku-1", 1, 10, "EUR");
		snprintf(name, sizeof(name), "name %d", i);
		s.name = name;                    /* a new name: a new region */
		s.attrs = attrs;
		s.attr_count = (size_t)(i % 2);
		ck_assert_int_eq(add_spec(&s, NULL), CART_OK);
		if (i % 100 == 99) {
			ck_assert_int_eq(cart_remove_item(c, "keep"), CART_OK);
			ck_assert_int_eq(add("keep", 1, 10, "EUR", NULL), CART_OK);
			ck_assert_int_eq(cart_set_quantity(c, "sku-1", 1, &lim, T0, NULL),
					 CART_OK);
		}
	}
	ck_assert_uint_eq(cart_line_count(c), 2);
	ck_assert_str_eq(cart_item_name(cart_find_item(c, "sku-1")), "name 1999");
	ck_assert_str_eq(cart_item_attr_at(cart_find_item(c, "sku-1"), 0).value, "M");
	ck_assert_int_eq(cart_item_quantity(cart_find_item(c, "sku-1")), 1);
	ck_assert_str_eq(cart_item_id(cart_find_item(c, "keep")), "keep");
	cart *copy;   /* a copy holds the live bytes only, whatever went before */
	ck_assert_int_eq(cart_clone(&copy, c), CART_OK);
	ck_assert_str_eq(cart_item_name(cart_find_item(copy, "sku-1")), "name 1999");
	cart_free(copy);

	/* strings taken from the cart itself, while the add repacks it */
	for (int i = 0; i < 200; i++) {
		const cart_item *o = cart_find_item(c, "sku-1");
		cart_item_spec s = spec_of(cart_item_id(cart_find_item(c, "keep")), 1, 10, "EUR");
		s.name = cart_item_name(o);       /* keep takes sku-1's name */
		ck_assert_int_eq(add_spec(&s, NULL), CART_OK);
		snprintf(name, sizeof(name), "n%d", i);
		s = spec_of("sku-1", 1, 10, "EUR");
		s.name = name;                    /* and sku-1 a new one */
		ck_assert_int_eq(add_spec(&s, NULL), CART_OK);
	}
	ck_assert_str_eq(cart_item_name(cart_find_item(c, "keep")), "n198");
	ck_assert_str_eq(cart_item_name(cart_find_item(c, "sku-1")), "n199");
	ck_assert_uint_eq(cart_item_attr_count(cart_find_item(c, "sku-1")), 0);
	cart_clear(c);
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(add("after", 1, 10, "EUR", NULL), CART_OK);
	ck_assert_str_eq(cart_item_id(cart_item_at(c, 0)), "after");
}
END_TEST

START_TEST(test_cart_add_item_rejects_currency_mismatch)
{
	ck_assert_int_eq(add("a", 1, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add("b", 1, 10, "EUR", NULL), CART_OK);
	char before[4096];
	snapshot(before, sizeof(before), c);
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add("c", 1, 10, "USD", &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_CURRENCY_MISMATCH);
	rule = CART_RULE_NONE;
	ck_assert_int_eq(add("a", 1, 10, "USD", &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_CURRENCY_MISMATCH);
	ASSERT_UNCHANGED(before);
}
END_TEST

START_TEST(test_cart_add_item_empty_cart_takes_any_currency)
{
	ck_assert_int_eq(add("a", 1, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_remove_item(c, "a"), CART_OK);
	ck_assert_str_eq(cart_subtotal(c).currency, "");
	ck_assert_int_eq(add("b", 1, 10, "USD", NULL), CART_OK);
	ck_assert_str_eq(cart_subtotal(c).currency, "USD");
}
END_TEST

START_TEST(test_cart_add_item_null_rule_is_allowed)
{
	ck_assert_int_eq(add("a", 0, 10, "EUR", NULL), CART_EINVALID);
	ck_assert_uint_eq(cart_line_count(c), 0);
}
END_TEST

/* --- limits --------------------------------------------------------------- */

START_TEST(test_cart_add_item_quantity_range)
{
	cart_rule rule;
	int32_t bad[] = { 0, -1, INT32_MIN, 1000, INT32_MAX };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rule = CART_RULE_NONE;
		ck_assert_int_eq(add("a", bad[i], 10, "EUR", &rule), CART_EINVALID);
		ck_assert_int_eq(rule, CART_RULE_QUANTITY);
	}
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(add("a", 1, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add("b", 999, 10, "EUR", NULL), CART_OK);
}
END_TEST

START_TEST(test_cart_add_item_merge_beyond_max_quantity)
{
	ck_assert_int_eq(add("a", 600, 10, "EUR", NULL), CART_OK);
	char before[4096];
	snapshot(before, sizeof(before), c);
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add("a", 400, 10, "EUR", &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_QUANTITY);
	ASSERT_UNCHANGED(before);
	ck_assert_int_eq(add("a", 399, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_item_quantity(cart_item_at(c, 0)), 999);
}
END_TEST

START_TEST(test_cart_add_item_custom_max_quantity)
{
	lim.max_item_quantity = 5;
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add("a", 6, 10, "EUR", &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_QUANTITY);
	ck_assert_int_eq(add("a", 5, 10, "EUR", NULL), CART_OK);
}
END_TEST

START_TEST(test_cart_add_item_max_lines)
{
	lim.max_lines = 3;
	ck_assert_int_eq(add("a", 1, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add("b", 1, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add("c", 1, 10, "EUR", NULL), CART_OK);
	char before[4096];
	snapshot(before, sizeof(before), c);
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add("d", 1, 10, "EUR", &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_TOO_MANY_LINES);
	ASSERT_UNCHANGED(before);
	/* merging into an existing line is fine at the limit */
	ck_assert_int_eq(add("b", 1, 10, "EUR", NULL), CART_OK);
	ck_assert_uint_eq(cart_line_count(c), 3);
}
END_TEST

START_TEST(test_cart_add_item_default_max_lines_100)
{
	char id[16];
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "sku-%d", i);
		ck_assert_int_eq(add(id, 1, 10, "EUR", NULL), CART_OK);
	}
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add("sku-100", 1, 10, "EUR", &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_TOO_MANY_LINES);
	ck_assert_uint_eq(cart_line_count(c), 100);
	ck_assert_int_eq(cart_subtotal(c).amount, 1000);
}
END_TEST

START_TEST(test_cart_add_item_amount_range)
{
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add("a", 1, -1, "EUR", &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_AMOUNT);
	rule = CART_RULE_NONE;
	ck_assert_int_eq(add("a", 1, CART_AMOUNT_MAX + 1, "EUR", &rule),
			 CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_AMOUNT);
	rule = CART_RULE_NONE;
	ck_assert_int_eq(add("a", 1, INT64_MIN, "EUR", &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_AMOUNT);
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(add("free", 1, 0, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add("max", 999, CART_AMOUNT_MAX, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_subtotal(c).amount, 999 * CART_AMOUNT_MAX);
}
END_TEST

START_TEST(test_cart_add_item_currency_syntax)
{
	const char *bad[] = { "", "eur", "Eur", "EU", "E1R", "E R", "\xc3\x84U" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cart_rule rule = CART_RULE_NONE;
		ck_assert_msg(add("a", 1, 10, bad[i], &rule) == CART_EINVALID,
			      "currency '%s' accepted", bad[i]);
		ck_assert_int_eq(rule, CART_RULE_CURRENCY);
	}
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(add("a", 1, 10, "JPY", NULL), CART_OK);
}
END_TEST

START_TEST(test_cart_currency_valid_edges)
{
	ck_assert(cart_currency_valid("EUR"));
	ck_assert(cart_currency_valid("XAU"));
	ck_assert(!cart_currency_valid(""));
	ck_assert(!cart_currency_valid("EU"));
	ck_assert(!cart_currency_valid("EURO"));
	ck_assert(!cart_currency_valid("eur"));
	ck_assert(!cart_currency_valid("EU1"));
	ck_assert(!cart_currency_valid("EU "));
	ck_assert(!cart_currency_valid("\xc3\x84UR"));
}
END_TEST

START_TEST(test_cart_add_item_bad_item_id)
{
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add("", 1, 10, "EUR", &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_ID);
	rule = CART_RULE_NONE;
	ck_assert_int_eq(add("a/b", 1, 10, "EUR", &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_ID);
	char *longid = repeat('i', CART_ID_MAX + 1);
	rule = CART_RULE_NONE;
	ck_assert_int_eq(add(longid, 1, 10, "EUR", &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_ID);
	longid[CART_ID_MAX] = '\0';
	ck_assert_int_eq(add(longid, 1, 10, "EUR", NULL), CART_OK);
	free(longid);
}
END_TEST

START_TEST(test_cart_add_item_name_length)
{
	char *name = repeat('n', CART_NAME_MAX + 1);
	cart_item_spec s = spec_of("a", 1, 10, "EUR");
	s.name = name;
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add_spec(&s, &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_NAME);
	ck_assert_uint_eq(cart_line_count(c), 0);
	name[CART_NAME_MAX] = '\0';
	ck_assert_int_eq(add_spec(&s, NULL), CART_OK);
	ck_assert_uint_eq(strlen(cart_item_name(cart_item_at(c, 0))), CART_NAME_MAX);
	free(name);
}
END_TEST

START_TEST(test_cart_add_item_name_length_counts_bytes)
{
	/* 129 two-byte characters: 258 bytes although 129 "characters". */
	char name[2 * 129 + 1];
	for (int i = 0; i < 129; i++) {
		name[2 * i] = (char)0xc3;
		name[2 * i + 1] = (char)0xa9;
	}
	name[258] = '\0';
	cart_item_spec s = spec_of("a", 1, 10, "EUR");
	s.name = name;
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add_spec(&s, &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_NAME);
	name[256] = '\0';
	ck_assert_int_eq(add_spec(&s, NULL), CART_OK);
}
END_TEST

static int add_with_attrs(const cart_attr *attrs, size_t n, cart_rule *rule)
{
	cart_item_spec s = spec_of("a", 1, 10, "EUR");
	s.attrs = attrs;
	s.attr_count = n;
	return add_spec(&s, rule);
}

START_TEST(test_cart_add_item_attribute_count)
{
	cart_attr attrs[CART_ATTRS_MAX + 1];
	char keys[CART_ATTRS_MAX + 1][16];
	for (int i = 0; i <= CART_ATTRS_MAX; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		attrs[i].key = keys[i];
		attrs[i].value = "v";
	}
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add_with_attrs(attrs, CART_ATTRS_MAX + 1, &rule),
			 CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_ATTRIBUTES);
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(add_with_attrs(attrs, CART_ATTRS_MAX, NULL), CART_OK);
	const cart_item *it = cart_item_at(c, 0);
	ck_assert_uint_eq(cart_item_attr_count(it), CART_ATTRS_MAX);
	for (size_t i = 0; i < CART_ATTRS_MAX; i++) {
		cart_attr a = cart_item_attr_at(it, i);
		ck_assert_str_eq(a.key, keys[i]);
		ck_assert_str_eq(a.value, "v");
	}
}
END_TEST

START_TEST(test_cart_add_item_attribute_key_and_value_length)
{
	char *key = repeat('k', CART_ATTR_KEY_MAX + 1);
	char *val = repeat('v', CART_ATTR_VALUE_MAX + 1);
	cart_attr a = { key, "v" };
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add_with_attrs(&a, 1, &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_ATTRIBUTES);
	a.key = "k";
	a.value = val;
	rule = CART_RULE_NONE;
	ck_assert_int_eq(add_with_attrs(&a, 1, &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_ATTRIBUTES);
	ck_assert_uint_eq(cart_line_count(c), 0);
	key[CART_ATTR_KEY_MAX] = '\0';
	val[CART_ATTR_VALUE_MAX] = '\0';
	a.key = key;
	a.value = val;
	ck_assert_int_eq(add_with_attrs(&a, 1, NULL), CART_OK);
	cart_attr got = cart_item_attr_at(cart_item_at(c, 0), 0);
	ck_assert_str_eq(got.key, key);
	ck_assert_str_eq(got.value, val);
	free(key);
	free(val);
}
END_TEST

START_TEST(test_cart_add_item_attribute_duplicate_keys)
{
	cart_attr a[] = { { "color", "red" }, { "size", "M" }, { "color", "blue" } };
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add_with_attrs(a, 3, &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_ATTRIBUTES);
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(add_with_attrs(a, 2, NULL), CART_OK);
}
END_TEST

START_TEST(test_cart_add_item_empty_attribute_value_allowed)
{
	cart_attr a = { "gift", "" };
	ck_assert_int_eq(add_with_attrs(&a, 1, NULL), CART_OK);
	ck_assert_str_eq(cart_item_attr_at(cart_item_at(c, 0), 0).value, "");
}
END_TEST

START_TEST(test_cart_item_spec_check_reports_rule)
{
	cart_rule rule = CART_RULE_NONE;
	cart_item_spec s = spec_of("a", 1, 10, "EUR");
	ck_assert_int_eq(cart_item_spec_check(&s, &lim, &rule), CART_OK);
	s.quantity = 1000;
	ck_assert_int_eq(cart_item_spec_check(&s, &lim, &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_QUANTITY);
	s = spec_of("a", 1, 10, "usd");
	ck_assert_int_eq(cart_item_spec_check(&s, &lim, &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_CURRENCY);
	s = spec_of("a", 1, -5, "USD");
	ck_assert_int_eq(cart_item_spec_check(&s, &lim, &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_AMOUNT);
	s = spec_of("a b", 1, 5, "USD");
	ck_assert_int_eq(cart_item_spec_check(&s, &lim, NULL), CART_EINVALID);
}
END_TEST

/* --- overflow ------------------------------------------------------------- */

START_TEST(test_cart_add_item_line_total_overflow)
{
	lim.max_item_quantity = INT32_MAX;
	/* 10^7 * 10^12 = 10^19 > INT64_MAX (~9.22 * 10^18) */
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add("a", 10000000, CART_AMOUNT_MAX, "EUR", &rule),
			 CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_OVERFLOW);
	ck_assert_uint_eq(cart_line_count(c), 0);
	rule = CART_RULE_NONE;
	ck_assert_int_eq(add("a", INT32_MAX, CART_AMOUNT_MAX, "EUR", &rule),
			 CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_OVERFLOW);
	/* 9 * 10^18 still fits */
	ck_assert_int_eq(add("a", 9000000, CART_AMOUNT_MAX, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_item_line_total(cart_item_at(c, 0)).amount,
			 9000000LL * CART_AMOUNT_MAX);
}
END_TEST

START_TEST(test_cart_add_item_subtotal_overflow)
{
	lim.max_item_quantity = INT32_MAX;
	ck_assert_int_eq(add("a", 9000000, CART_AMOUNT_MAX, "EUR", NULL), CART_OK);
	char before[4096];
	snapshot(before, sizeof(before), c);
	cart_rule rule = CART_RULE_NONE;
	/* 9 * 10^18 + 3 * 10^17 > INT64_MAX although each line fits */
	ck_assert_int_eq(add("b", 300000, CART_AMOUNT_MAX, "EUR", &rule),
			 CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_OVERFLOW);
	ASSERT_UNCHANGED(before);
	/* 9 * 10^18 + 2 * 10^17 = 9.2 * 10^18 still fits */
	ck_assert_int_eq(add("b", 200000, CART_AMOUNT_MAX, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_subtotal(c).amount, 9200000LL * CART_AMOUNT_MAX);
}
END_TEST

START_TEST(test_cart_add_item_merge_overflow)
{
	lim.max_item_quantity = INT32_MAX;
	ck_assert_int_eq(add("a", 9000000, CART_AMOUNT_MAX, "EUR", NULL), CART_OK);
	char before[4096];
	snapshot(before, sizeof(before), c);
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add("a", 300000, CART_AMOUNT_MAX, "EUR", &rule),
			 CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_OVERFLOW);
	ASSERT_UNCHANGED(before);
}
END_TEST

START_TEST(test_cart_add_item_merge_quantity_int32_overflow)
{
	lim.max_item_quantity = INT32_MAX;
	ck_assert_int_eq(add("a", INT32_MAX - 5, 0, "EUR", NULL), CART_OK);
	char before[4096];
	snapshot(before, sizeof(before), c);
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add("a", INT32_MAX - 5, 0, "EUR", &rule), CART_EINVALID);
	ck_assert_msg(rule == CART_RULE_QUANTITY || rule == CART_RULE_OVERFLOW,
		      "rule %d", rule);
	ASSERT_UNCHANGED(before);
}
END_TEST

START_TEST(test_cart_add_item_many_lines_overflow)
{
	lim.max_item_quantity = INT32_MAX;
	char id[16];
	/* each line 999999 * 10^12 ~ 10^18; nine fit, the tenth overflows */
	for (int i = 0; i < 9; i++) {
		snprintf(id, sizeof(id), "big-%d", i);
		ck_assert_int_eq(add(id, 999999, CART_AMOUNT_MAX, "EUR", NULL), CART_OK);
	}
	char before[4096];
	snapshot(before, sizeof(before), c);
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(add("big-9", 999999, CART_AMOUNT_MAX, "EUR", &rule),
			 CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_OVERFLOW);
	ASSERT_UNCHANGED(before);
	ck_assert_int_eq(cart_subtotal(c).amount, 9LL * 999999 * CART_AMOUNT_MAX);
	ck_assert_int_eq(cart_quantity_total(c), 9LL * 999999);
}
END_TEST

START_TEST(test_cart_set_quantity_overflow)
{
	lim.max_item_quantity = INT32_MAX;
	ck_assert_int_eq(add("a", 9000000, CART_AMOUNT_MAX, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add("b", 1, CART_AMOUNT_MAX, "EUR", NULL), CART_OK);
	char before[4096];
	snapshot(before, sizeof(before), c);
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(cart_set_quantity(c, "b", 300000, &lim, T0, &rule),
			 CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_OVERFLOW);
	rule = CART_RULE_NONE;
	ck_assert_int_eq(cart_set_quantity(c, "a", 10000000, &lim, T0, &rule),
			 CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_OVERFLOW);
	ASSERT_UNCHANGED(before);
}
END_TEST

/* --- set quantity, remove, clear ---------------------------------------- */

START_TEST(test_cart_set_quantity_updates_line)
{
	ck_assert_int_eq(add("a", 1, 150, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add("b", 1, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_set_quantity(c, "a", 7, &lim, T0 + 9, NULL), CART_OK);
	const cart_item *it = cart_find_item(c, "a");
	ck_assert_int_eq(cart_item_quantity(it), 7);
	ck_assert_int_eq(cart_item_line_total(it).amount, 1050);
	ck_assert_int_eq(cart_item_added_at(it), T0);
	ck_assert_int_eq(cart_item_updated_at(it), T0 + 9);
	ck_assert_int_eq(cart_subtotal(c).amount, 1060);
	ck_assert_int_eq(cart_quantity_total(c), 8);
	ck_assert_str_eq(cart_item_id(cart_item_at(c, 0)), "a");
}
END_TEST

START_TEST(test_cart_set_quantity_zero_removes_line)
{
	ck_assert_int_eq(add("a", 2, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add("b", 3, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(add("c", 4, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_set_quantity(c, "b", 0, &lim, T0, NULL), CART_OK);
	ck_assert_uint_eq(cart_line_count(c), 2);
	ck_assert_ptr_null(cart_find_item(c, "b"));
	ck_assert_str_eq(cart_item_id(cart_item_at(c, 0)), "a");
	ck_assert_str_eq(cart_item_id(cart_item_at(c, 1)), "c");
	ck_assert_int_eq(cart_subtotal(c).amount, 60);
}
END_TEST

START_TEST(test_cart_set_quantity_range)
{
	ck_assert_int_eq(add("a", 2, 10, "EUR", NULL), CART_OK);
	char before[4096];
	snapshot(before, sizeof(before), c);
	cart_rule rule = CART_RULE_NONE;
	ck_assert_int_eq(cart_set_quantity(c, "a", -1, &lim, T0, &rule), CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_QUANTITY);
	rule = CART_RULE_NONE;
	ck_assert_int_eq(cart_set_quantity(c, "a", 1000, &lim, T0, &rule),
			 CART_EINVALID);
	ck_assert_int_eq(rule, CART_RULE_QUANTITY);
	ASSERT_UNCHANGED(before);
	ck_assert_int_eq(cart_set_quantity(c, "a", 999, &lim, T0, NULL), CART_OK);
}
END_TEST

START_TEST(test_cart_set_quantity_unknown_item)
{
	ck_assert_int_eq(add("a", 2, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_set_quantity(c, "zzz", 3, &lim, T0, NULL), CART_ENOTFOUND);
	ck_assert_int_eq(cart_set_quantity(c, "zzz", 0, &lim, T0, NULL), CART_ENOTFOUND);
	ck_assert_uint_eq(cart_line_count(c), 1);
}
END_TEST

START_TEST(test_cart_remove_item_unknown_is_not_found)
{
	ck_assert_int_eq(cart_remove_item(c, "nope"), CART_ENOTFOUND);
	ck_assert_int_eq(add("a", 2, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_remove_item(c, "nope"), CART_ENOTFOUND);
	ck_assert_int_eq(cart_remove_item(c, "a"), CART_OK);
	ck_assert_int_eq(cart_remove_item(c, "a"), CART_ENOTFOUND);
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(cart_subtotal(c).amount, 0);
	ck_assert_str_eq(cart_subtotal(c).currency, "");
}
END_TEST

START_TEST(test_cart_clear_keeps_version_drops_identity)
{
	ck_assert_int_eq(add("a", 2, 10, "EUR", NULL), CART_OK);
	ck_assert_int_eq(cart_begin(c, UUID_A, T0), CART_OK);
	cart_touch(c, T0, lim.ttl_ms);
	cart_touch(c, T0 + 1, lim.ttl_ms);
	ck_assert_int_eq(cart_version(c), 2);
	cart_clear(c);
	ck_assert_int_eq(cart_version(c), 2);
	ck_assert_ptr_null(cart_id(c));
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(cart_quantity_total(c), 0);
	ck_assert_int_eq(cart_created_at(c), 0);
	ck_assert_int_eq(cart_updated_at(c), 0);
	ck_assert_int_eq(cart_expires_at(c), 0);
	ck_assert_str_eq(cart_subtotal(c).currency, "");
	ck_assert_str_eq(cart_user_id(c), "user-1");
	ck_assert(!cart_is_expired(c, T0 + lim.ttl_ms * 2));
}
END_TEST

/* --- identity and bookkeeping -------------------------------------------- */

START_TEST(test_cart_begin_and_touch_set_times)
{
	ck_assert_int_eq(cart_begin(c, UUID_A, T0), CART_OK);
	ck_assert_str_eq(cart_id(c), UUID_A);
	ck_assert_int_eq(cart_created_at(c), T0);
	cart_touch(c, T0 + 10, 1000);
	ck_assert_int_eq(cart_version(c), 1);
	ck_assert_int_eq(cart_updated_at(c), T0 + 10);
	/* expiry is rounded down to whole seconds, what stores keep */
	ck_assert_int_eq(cart_expires_at(c), T0 + 1000);
	ck_assert_int_eq(cart_created_at(c), T0);
	cart_touch(c, T0 + 1999, 1000);
	ck_assert_int_eq(cart_version(c), 2);
	ck_assert_int_eq(cart_expires_at(c), T0 + 2000);
}
END_TEST

START_TEST(test_cart_is_expired_after_expires_at)
{
	ck_assert_int_eq(cart_begin(c, UUID_A, T0), CART_OK);
	cart_touch(c, T0, 1000);
	ck_assert(!cart_is_expired(c, T0));
	ck_assert(!cart_is_expired(c, T0 + 999));
	ck_assert(cart_is_expired(c, T0 + 1001));
	ck_assert(cart_is_expired(c, T0 + 1000000));
}
END_TEST

/* --- restoring from storage ---------------------------------------------- */

START_TEST(test_cart_restore_meta_sets_fields)
{
	ck_assert_int_eq(cart_restore_meta(c, UUID_A, 42, T0, T0 + 5, T0 + 99),
			 CART_OK);
	ck_assert_str_eq(cart_id(c), UUID_A);
	ck_assert_int_eq(cart_version(c), 42);
	ck_assert_int_eq(cart_created_at(c), T0);
	ck_assert_int_eq(cart_updated_at(c), T0 + 5);
	ck_assert_int_eq(cart_expires_at(c), T0 + 99);
	ck_assert_int_eq(cart_restore_meta(c, NULL, 43, 0, 0, 0), CART_OK);
	ck_assert_ptr_null(cart_id(c));
	ck_assert_int_eq(cart_version(c), 43);
}
END_TEST

START_TEST(test_cart_restore_meta_rejects_bad_cart_id)
{
	ck_assert_int_eq(cart_restore_meta(c, "", 1, T0, T0, T0), CART_EINVALID);
	ck_assert_int_eq(cart_restore_meta(c, "00000000-0000-4000-8000-00000000000",
					   1, T0, T0, T0), CART_EINVALID);
	ck_assert_int_eq(cart_restore_meta(c, "00000000-0000-4000-8000-0000000000001",
					   1, T0, T0, T0), CART_EINVALID);
}
END_TEST

START_TEST(test_cart_restore_item_keeps_stored_values)
{
	cart_attr a[] = { { "k", "v" } };
	cart_item_spec s = spec_of("a", 5000, 10, "EUR"); /* above today's limit */
	s.name = "stored";
	s.attrs = a;
	s.attr_count = 1;
	ck_assert_int_eq(cart_restore_item(c, &s, T0 - 100, T0 - 50), CART_OK);
	cart_item_spec s2 = spec_of("b", 1, 20, "EUR");
	ck_assert_int_eq(cart_restore_item(c, &s2, T0 - 10, T0 - 10), CART_OK);
	ck_assert_uint_eq(cart_line_count(c), 2);
	const cart_item *it = cart_item_at(c, 0);
	ck_assert_str_eq(cart_item_id(it), "a");
	ck_assert_int_eq(cart_item_quantity(it), 5000);
	ck_assert_int_eq(cart_item_added_at(it), T0 - 100);
	ck_assert_int_eq(cart_item_updated_at(it), T0 - 50);
	ck_assert_str_eq(cart_item_name(it), "stored");
	ck_assert_int_eq(cart_subtotal(c).amount, 50020);
	ck_assert_int_eq(cart_version(c), 0);
}
END_TEST

START_TEST(test_cart_restore_item_rejects_impossible_data)
{
	cart_item_spec s = spec_of("a", 1, 10, "EUR");
	ck_assert_int_eq(cart_restore_item(c, &s, T0, T0), CART_OK);
	char before[4096];
	snapshot(before, sizeof(before), c);
	/* duplicate line */
	ck_assert_int_eq(cart_restore_item(c, &s, T0, T0), CART_EINVALID);
	/* another currency */
	cart_item_spec x = spec_of("b", 1, 10, "USD");
	ck_assert_int_eq(cart_restore_item(c, &x, T0, T0), CART_EINVALID);
	/* quantity below 1 */
	x = spec_of("b", 0, 10, "EUR");
	ck_assert_int_eq(cart_restore_item(c, &x, T0, T0), CART_EINVALID);
	x = spec_of("b", -3, 10, "EUR");
	ck_assert_int_eq(cart_restore_item(c, &x, T0, T0), CART_EINVALID);
	/* bad id, bad currency, bad amount */
	x = spec_of("b c", 1, 10, "EUR");
	ck_assert_int_eq(cart_restore_item(c, &x, T0, T0), CART_EINVALID);
	x = spec_of("b", 1, 10, "eur");
	ck_assert_int_eq(cart_restore_item(c, &x, T0, T0), CART_EINVALID);
	x = spec_of("b", 1, -10, "EUR");
	ck_assert_int_eq(cart_restore_item(c, &x, T0, T0), CART_EINVALID);
	/* name too long */
	char *name = repeat('n', CART_NAME_MAX + 1);
	x = spec_of("b", 1, 10, "EUR");
	x.name = name;
	ck_assert_int_eq(cart_restore_item(c, &x, T0, T0), CART_EINVALID);
	free(name);
	/* duplicate attribute keys */
	cart_attr dup[] = { { "k", "1" }, { "k", "2" } };
	x = spec_of("b", 1, 10, "EUR");
	x.attrs = dup;
	x.attr_count = 2;
	ck_assert_int_eq(cart_restore_item(c, &x, T0, T0), CART_EINVALID);
	/* overflow of the line and of the subtotal */
	x = spec_of("b", INT32_MAX, CART_AMOUNT_MAX, "EUR");
	ck_assert_int_eq(cart_restore_item(c, &x, T0, T0), CART_EINVALID);
	x = spec_of("b", 9000000, CART_AMOUNT_MAX, "EUR");
	ck_assert_int_eq(cart_restore_item(c, &x, T0, T0), CART_OK);
	snapshot(before, sizeof(before), c);
	x = spec_of("c", 300000, CART_AMOUNT_MAX, "EUR");
	ck_assert_int_eq(cart_restore_item(c, &x, T0, T0), CART_EINVALID);
	ASSERT_UNCHANGED(before);
}
END_TEST

/* --- ids, texts ------------------------------------------------------------ */

START_TEST(test_cart_id_valid_edges)
{
	ck_assert(!cart_id_valid(""));
	ck_assert(cart_id_valid("a"));
	ck_assert(cart_id_valid("AZaz09"));
	char *s = repeat('x', CART_ID_MAX + 1);
	ck_assert(!cart_id_valid(s));
	s[CART_ID_MAX] = '\0';
	ck_assert(cart_id_valid(s));
	free(s);
	const char *ok_punct = "._:@-";
	for (const char *p = ok_punct; *p; p++) {
		char id[4] = { 'a', *p, 'b', '\0' };
		ck_assert_msg(cart_id_valid(id), "'%s' refused", id);
		char lone[2] = { *p, '\0' };
		ck_assert_msg(cart_id_valid(lone), "'%s' refused", lone);
	}
	const char *bad[] = { "a b", " a", "a ", "a/b", "/", "a\\b", "a%20b",
			      "a+b", "a?b", "a#b", "a\tb", "a\nb", "caf\xc3\xa9",
			      "\xff", "a,b", "a;b", "a\"b", "a'b", "a*b", "a~b",
			      "{}", "a!b", "a=b", "a&b", "\x7f" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!cart_id_valid(bad[i]), "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(test_cart_strerror_never_null)
{
	int codes[] = { CART_OK, CART_EINVALID, CART_ENOTFOUND, CART_ECONFLICT,
			CART_ENOMEM, CART_EBACKEND, CART_EPRECONDITION,
			CART_EIDEM_MISMATCH, CART_EIDEM_INFLIGHT,
			CART_EUNAVAILABLE, 1, -10, -1000, INT_MIN, INT_MAX };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *s = cart_strerror(codes[i]);
		ck_assert_ptr_nonnull(s);
		ck_assert_msg(s[0] != '\0', "empty text for %d", codes[i]);
	}
	/* named codes have texts of their own */
	for (int a = CART_EUNAVAILABLE; a <= CART_OK; a++)
		for (int b = a + 1; b <= CART_OK; b++)
			ck_assert_str_ne(cart_strerror(a), cart_strerror(b));
}
END_TEST

START_TEST(test_cart_rule_name_never_null)
{
	for (int r = CART_RULE_NONE; r <= CART_RULE_TOO_LARGE; r++) {
		const char *s = cart_rule_name((cart_rule)r);
		ck_assert_ptr_nonnull(s);
		ck_assert(s[0] != '\0');
		for (int q = r + 1; q <= CART_RULE_TOO_LARGE; q++)
			ck_assert_str_ne(s, cart_rule_name((cart_rule)q));
	}
	ck_assert_str_eq(cart_rule_name(CART_RULE_QUANTITY), "quantity");
	ck_assert_str_eq(cart_rule_name(CART_RULE_CURRENCY_MISMATCH),
			 "currency_mismatch");
	ck_assert_ptr_nonnull(cart_rule_name((cart_rule)99));
	ck_assert_ptr_nonnull(cart_rule_name((cart_rule)-1));
}
END_TEST

START_TEST(test_cart_event_type_name_known_types)
{
	ck_assert_str_eq(cart_event_type_name(CART_EVENT_ITEM_ADDED), "CartItemAdded");
	for (int t = CART_EVENT_ITEM_ADDED; t <= CART_EVENT_CLEARED; t++) {
		const char *s = cart_event_type_name((cart_event_type)t);
		ck_assert_ptr_nonnull(s);
		ck_assert(s[0] != '\0');
		for (int u = t + 1; u <= CART_EVENT_CLEARED; u++)
			ck_assert_str_ne(s, cart_event_type_name((cart_event_type)u));
	}
}
END_TEST

Suite *cart_suite(void)
{
	Suite *s = suite_create("cart");
	TCase *tc;

	tc = tcase_create("lifetime");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cart_new_is_empty);
	tcase_add_test(tc, test_cart_new_rejects_bad_user_id);
	tcase_add_test(tc, test_cart_free_accepts_null);
	tcase_add_test(tc, test_cart_limits_init_defaults);
	tcase_add_test(tc, test_cart_clone_is_independent);
	tcase_add_test(tc, test_cart_share_counts_holders);
	tcase_add_test(tc, test_cart_unshare_copies_only_a_shared_cart);
	tcase_add_test(tc, test_cart_unshare_adding_a_bad_line);
	/* an abort can be caught only in a forked test (not under valgrind) */
	if (!getenv("CK_FORK") || strcmp(getenv("CK_FORK"), "no"))
		tcase_add_test_raise_signal(tc, test_cart_changing_a_shared_cart_aborts, SIGABRT);
	tcase_add_test(tc, test_cart_share_is_thread_safe);
	suite_add_tcase(s, tc);

	tc = tcase_create("add");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cart_add_item_creates_line);
	tcase_add_test(tc, test_cart_add_item_does_not_touch_version_or_times);
	tcase_add_test(tc, test_cart_add_item_merges_same_item_latest_price_wins);
	tcase_add_test(tc, test_cart_add_item_merge_without_name_clears_name);
	tcase_add_test(tc, test_cart_add_item_keeps_insertion_order);
	tcase_add_test(tc, test_cart_items_with_equal_id_hashes_stay_apart);
	tcase_add_test(tc, test_cart_replacing_lines_repacks_the_arena);
	tcase_add_test(tc, test_cart_add_item_rejects_currency_mismatch);
	tcase_add_test(tc, test_cart_add_item_empty_cart_takes_any_currency);
	tcase_add_test(tc, test_cart_add_item_null_rule_is_allowed);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cart_add_item_quantity_range);
	tcase_add_test(tc, test_cart_add_item_merge_beyond_max_quantity);
	tcase_add_test(tc, test_cart_add_item_custom_max_quantity);
	tcase_add_test(tc, test_cart_add_item_max_lines);
	tcase_add_test(tc, test_cart_add_item_default_max_lines_100);
	tcase_add_test(tc, test_cart_add_item_amount_range);
	tcase_add_test(tc, test_cart_add_item_currency_syntax);
	tcase_add_test(tc, test_cart_currency_valid_edges);
	tcase_add_test(tc, test_cart_add_item_bad_item_id);
	tcase_add_test(tc, test_cart_add_item_name_length);
	tcase_add_test(tc, test_cart_add_item_name_length_counts_bytes);
	tcase_add_test(tc, test_cart_add_item_attribute_count);
	tcase_add_test(tc, test_cart_add_item_attribute_key_and_value_length);
	tcase_add_test(tc, test_cart_add_item_attribute_duplicate_keys);
	tcase_add_test(tc, test_cart_add_item_empty_attribute_value_allowed);
	tcase_add_test(tc, test_cart_item_spec_check_reports_rule);
	suite_add_tcase(s, tc);

	tc = tcase_create("overflow");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cart_add_item_line_total_overflow);
	tcase_add_test(tc, test_cart_add_item_subtotal_overflow);
	tcase_add_test(tc, test_cart_add_item_merge_overflow);
	tcase_add_test(tc, test_cart_add_item_merge_quantity_int32_overflow);
	tcase_add_test(tc, test_cart_add_item_many_lines_overflow);
	tcase_add_test(tc, test_cart_set_quantity_overflow);
	suite_add_tcase(s, tc);

	tc = tcase_create("change");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cart_set_quantity_updates_line);
	tcase_add_test(tc, test_cart_set_quantity_zero_removes_line);
	tcase_add_test(tc, test_cart_set_quantity_range);
	tcase_add_test(tc, test_cart_set_quantity_unknown_item);
	tcase_add_test(tc, test_cart_remove_item_unknown_is_not_found);
	tcase_add_test(tc, test_cart_clear_keeps_version_drops_identity);
	suite_add_tcase(s, tc);

	tc = tcase_create("identity");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cart_begin_and_touch_set_times);
	tcase_add_test(tc, test_cart_is_expired_after_expires_at);
	tcase_add_test(tc, test_cart_restore_meta_sets_fields);
	tcase_add_test(tc, test_cart_restore_meta_rejects_bad_cart_id);
	tcase_add_test(tc, test_cart_restore_item_keeps_stored_values);
	tcase_add_test(tc, test_cart_restore_item_rejects_impossible_data);
	suite_add_tcase(s, tc);

	tc = tcase_create("texts");
	tcase_add_test(tc, test_cart_id_valid_edges);
	tcase_add_test(tc, test_cart_strerror_never_null);
	tcase_add_test(tc, test_cart_rule_name_never_null);
	tcase_add_test(tc, test_cart_event_type_name_known_types);
	suite_add_tcase(s, tc);
	return s;
}
