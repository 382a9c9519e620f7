/*
 * The cart document (app/render.c): the bytes of a plain cart and of lines
 * that need escaping or odd times (the two writers must agree), the number
 * and time writers at their edges, growth past small storage and the
 * buffer's maximum, and random carts read back with cJSON.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fakes/render_check.h"
#include "render.h"
#include "unit/suites.h"

#define CID "0b5cf45c-b68f-4374-89ed-f0e4dbd060c9"
#define T0 1767225600000LL   /* 2026-01-01T00:00:00.000Z */

static cart *new_cart(const char *user)
{
	cart *c = NULL;

	ck_assert_int_eq(cart_new(&c, user), CART_OK);
	ck_assert_int_eq(cart_restore_meta(c, CID, 7, T0, T0 + 9000, T0 + 86400000), CART_OK);
	return c;
}

static void line(cart *c, const char *id, int32_t q, int64_t amount, const char *name,
		 const cart_attr *attrs, size_t n, int64_t added, int64_t updated)
{
	cart_item_spec s = { id, q, { amount, "EUR" }, name, attrs, n };

	ck_assert_int_eq(cart_restore_item(c, &s, added, updated), CART_OK);
}

static char *render(const cart *c, size_t *len)
{
	buf b;
	char *out;

	buf_init(&b, 1 << 20);
	render_cart(&b, c);
	ck_assert(!b.failed);
	out = buf_take(&b, len);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(strlen(out), *len);
	return out;
}

#define PLAIN_LINE_1 \
	"{\"itemId\":\"sku-1\",\"quantity\":2,\"unitPrice\":{\"amount\":1999,\"currency\":\"EUR\"}," \
	"\"lineTotal\":{\"amount\":3998,\"currency\":\"EUR\"},\"name\":\"Ceramic mug, 350 ml\"," \
	"\"attributes\":{\"size\":\"M\",\"colour\":\"blue\"}," \
	"\"addedAt\":\"2026-01-01T00:00:00.001Z\",\"updatedAt\":\"2026-01-01T23:59:59.999Z\"}"
#define PLAIN_LINE_2 \
	"{\"itemId\":\"sku-2\",\"quantity\":999,\"unitPrice\":{\"amount\":0,\"currency\":\"EUR\"}," \
	"\"lineTotal\":{\"amount\":0,\"currency\":\"EUR\"},\"name\":null,\"attributes\":{}," \
	"\"addedAt\":null,\"updatedAt\":\"2026-01-02T00:00:00.000Z\"}"
#define CART_TAIL(count, sub) \
	"],\"itemCount\":" count ",\"subtotal\":{\"amount\":" sub ",\"currency\":\"EUR\"}," \
	"\"version\":7,\"createdAt\":\"2026-01-01T00:00:00.000Z\"," \
	"\"updatedAt\":\"2026-01-01T00:00:09.000Z\",\"expiresAt\":\"2026-01-02T00:00:00.000Z\"}"

START_TEST(test_plain_cart_bytes)
{
	cart_attr a[] = { { "size", "M" }, { "colour", "blue" } };
	cart *c = new_cart("u-1");
	size_t len;
	char *out;

	line(c, "sku-1", 2, 1999, "Ceramic mug, 350 ml", a, 2, T0 + 1, T0 + 86399999);
	line(c, "sku-2", 999, 0, NULL, NULL, 0, 0, T0 + 86400000);
	out = render(c, &len);
	ck_assert_str_eq(out, "{\"cartId\":\"" CID "\",\"userId\":\"u-1\",\"items\":["
			 PLAIN_LINE_1 "," PLAIN_LINE_2 CART_TAIL("1001", "3998"));
	ck_assert_ptr_null(render_check(out, len, c));
	free(out);
	cart_free(c);
}
END_TEST

/* Lines that take the checked writers, between plain ones: the same
 * document as if every line had. */
START_TEST(test_escaped_lines_bytes)
{
	cart_attr plain[] = { { "size", "M" }, { "colour", "blue" } };
	cart_attr odd[] = { { "k\"ey", "v\\al" }, { "nl", "a\nb" } };
	cart *c = new_cart("u-1");
	size_t len;
	char *out;

	line(c, "sku-1", 2, 1999, "Ceramic mug, 350 ml", plain, 2, T0 + 1, T0 + 86399999);
	line(c, "sku-3", 1, 5, "say \"hi\"\\\t\x01\x1f caf\xc3\xa9 \x7f", NULL, 0, T0, T0);
	line(c, "sku-4", 1, 5, "plain", odd, 2, T0, T0);
	line(c, "sku-2", 999, 0, NULL, NULL, 0, 0, T0 + 86400000);
	out = render(c, &len);
	ck_assert_str_eq(out, "{\"cartId\":\"" CID "\",\"userId\":\"u-1\",\"items\":["
			 PLAIN_LINE_1 ","
			 "{\"itemId\":\"sku-3\",\"quantity\":1,\"unitPrice\":{\"amount\":5,\"currency\":\"EUR\"},"
			 "\"lineTotal\":{\"amount\":5,\"currency\":\"EUR\"},"
			 "\"name\":\"say \\\"hi\\\"\\\\\\u0009\\u0001\\u001f caf\xc3\xa9 \x7f\","
			 "\"attributes\":{},\"addedAt\":\"2026-01-01T00:00:00.000Z\","
			 "\"updatedAt\":\"2026-01-01T00:00:00.000Z\"},"
			 "{\"itemId\":\"sku-4\",\"quantity\":1,\"unitPrice\":{\"amount\":5,\"currency\":\"EUR\"},"
			 "\"lineTotal\":{\"amount\":5,\"currency\":\"EUR\"},\"name\":\"plain\","
			 "\"attributes\":{\"k\\\"ey\":\"v\\\\al\",\"nl\":\"a\\u000ab\"},"
			 "\"addedAt\":\"2026-01-01T00:00:00.000Z\",\"updatedAt\":\"2026-01-01T00:00:00.000Z\"},"
			 PLAIN_LINE_2 CART_TAIL("1003", "4008"));
	ck_assert_ptr_null(render_check(out, len, c));
	free(out);
	cart_free(c);
}
END_TEST

/* The last millisecond before the year 10000 is plain; from there the
 * checked writer spells the year out as cart_rfc3339 does. */
START_TEST(test_times_at_the_edges)
{
	cart *c = new_cart("u-1");
	size_t len;
	char *out;

	line(c, "a", 1, 1, NULL, NULL, 0, BUF_TIME_MAX - 1, BUF_TIME_MAX);
	line(c, "b", 1, 1, NULL, NULL, 0, 1, INT64_MAX);
	line(c, "c", 1, 1, NULL, NULL, 0, T0 + 86400000LL * 365, T0 - 1);
	out = render(c, &len);
	ck_assert_ptr_nonnull(strstr(out, "\"itemId\":\"a\""));
	ck_assert_ptr_nonnull(strstr(out, "\"addedAt\":\"9999-12-31T23:59:59.999Z\","
				     "\"updatedAt\":\"10000-01-01T00:00:00.000Z\"}"));
	ck_assert_ptr_nonnull(strstr(out, "\"addedAt\":\"1970-01-01T00:00:00.001Z\""));
	ck_assert_ptr_nonnull(strstr(out, "\"addedAt\":\"2027-01-01T00:00:00.000Z\","
				     "\"updatedAt\":\"2025-12-31T23:59:59.999Z\"}"));
	ck_assert_ptr_null(render_check(out, len, c));
	free(out);
	cart_free(c);
}
END_TEST

START_TEST(test_numbers_at_the_edges)
{
	static const int64_t v[] = {
		0, 1, 9, 10, 99, 100, 101, 999, 1000, 9999, 10000, 65535, 99999999,
		100000000, 1000000000000LL, 999999999999999999LL, INT64_MAX, -1, -10,
		-99, -100, INT64_MIN, INT64_MIN + 1,
	};
	char want[32], got[32];
	buf b;

	buf_init(&b, 4096);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		snprintf(want, sizeof(want), "%" PRId64, v[i]);
		*put_i64(got, v[i]) = '\0';
		ck_assert_str_eq(got, want);
		buf_reset(&b);
		buf_json_i64(&b, v[i]);
		ck_assert_str_eq(b.data, want);
		if (v[i] >= 0) {
			ck_assert_uint_eq(fmt_u64(got, (uint64_t)v[i]), strlen(want));
			ck_assert_str_eq(got, want);
		}
	}
	*put_u64(got, UINT64_MAX) = '\0';
	ck_assert_str_eq(got, "18446744073709551615");
	/* either side of the 32-bit path */
	*put_u64(got, UINT32_MAX) = '\0';
	ck_assert_str_eq(got, "4294967295");
	*put_u64(got, (uint64_t)UINT32_MAX + 1) = '\0';
	ck_assert_str_eq(got, "4294967296");
	for (uint64_t p = 1; p <= UINT64_MAX / 10; p *= 10) {
		snprintf(want, sizeof(want), "%" PRIu64, p - 1);
		*put_u64(got, p - 1) = '\0';
		ck_assert_str_eq(got, want);
		snprintf(want, sizeof(want), "%" PRIu64, p);
		*put_u64(got, p) = '\0';
		ck_assert_str_eq(got, want);
	}
	buf_release(&b);
}
END_TEST

/* The largest line (a 128-byte id, 256-byte name, 20 attributes of 64 and
 * 256 bytes) from 64 bytes of caller storage; a maximum of the document's
 * exact size holds it, and one byte less fails the buffer instead of
 * cutting it. */
START_TEST(test_big_lines_grow_and_maximum_fails)
{
	char id[CART_ID_MAX + 1], name[CART_NAME_MAX + 1], keys[CART_ATTRS_MAX][CART_ATTR_KEY_MAX + 1];
	char val[CART_ATTR_VALUE_MAX + 1], small[64], *full;
	cart_attr a[CART_ATTRS_MAX];
	cart *c = new_cart("u-1");
	size_t len;
	buf b;

	memset(id, 'i', CART_ID_MAX);
	id[CART_ID_MAX] = '\0';
	memset(name, 'n', CART_NAME_MAX);
	name[CART_NAME_MAX] = '\0';
	memset(val, 'v', CART_ATTR_VALUE_MAX);
	val[CART_ATTR_VALUE_MAX] = '\0';
	for (int i = 0; i < CART_ATTRS_MAX; i++) {
		memset(keys[i], 'a' + i, CART_ATTR_KEY_MAX);
		keys[i][CART_ATTR_KEY_MAX] = '\0';
		a[i] = (cart_attr){ keys[i], val };
	}
	line(c, id, 3, 1000000000000LL, name, a, CART_ATTRS_MAX, T0, T0);
	id[0] = 'j';
	line(c, id, 999, 1000000000000LL, name, a, CART_ATTRS_MAX, T0, T0);

	buf_init_on(&b, small, sizeof(small), 1 << 20);
	render_cart(&b, c);
	ck_assert(!b.failed);
	ck_assert(!b.borrowed);
	ck_assert_uint_gt(b.len, 2 * CART_ATTRS_MAX * (CART_ATTR_KEY_MAX + CART_ATTR_VALUE_MAX));
	ck_assert_ptr_null(render_check(b.data, b.len, c));
	full = buf_take(&b, &len);
	buf_release(&b);

	/* A maximum of exactly the document's size holds it. */
	buf_init(&b, len);
	render_cart(&b, c);
	ck_assert(!b.failed);
	ck_assert_str_eq(b.data, full);
	buf_release(&b);
	buf_init(&b, len - 1);
	render_cart(&b, c);
	ck_assert(b.failed);
	buf_release(&b);
	buf_init(&b, 4096);
	render_cart(&b, c);
	ck_assert(b.failed);
	buf_release(&b);
	free(full);
	cart_free(c);
}
END_TEST

/* A line's bound is generous (ITEM_FIXED): a small last line before a
 * short tail must still fit a maximum of the document's exact size. */
START_TEST(test_small_cart_at_exact_maximum)
{
	cart *c = NULL;
	size_t len;
	char *full;
	buf b;

	ck_assert_int_eq(cart_new(&c, "u"), CART_OK);
	line(c, "a", 1, 0, NULL, NULL, 0, 0, 0);
	full = render(c, &len);
	buf_init(&b, len);
	render_cart(&b, c);
	ck_assert(!b.failed);
	ck_assert_str_eq(b.data, full);
	buf_release(&b);
	free(full);
	cart_free(c);
}
END_TEST

/* xorshift64*: the same carts on every run. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static void rnd_text(uint64_t *s, char *out, size_t max)
{
	static const char pool[] = "abcXYZ 09-\"\\\t\n\x01\x1f\x7f\xc3\xa9/:";
	size_t n = rnd(s) % (max + 1);

	for (size_t i = 0; i < n; i++)
		out[i] = rnd(s) % 4 ? "plain-text"[rnd(s) % 10] : pool[rnd(s) % (sizeof(pool) - 1)];
	out[n] = '\0';
}

START_TEST(test_random_carts_read_back)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	for (int round = 0; round < 300; round++) {
		cart *c = new_cart("u-r");
		size_t lines = rnd(&seed) % 12, len;
		char *out;

		for (size_t i = 0; i < lines; i++) {
			char id[16], name[40], kv[4][2][24];
			cart_attr a[4];
			size_t na = rnd(&seed) % 5, used = 0;
			int64_t t[] = { 0, T0, T0 + (int64_t)(rnd(&seed) % 100000000000ULL),
					BUF_TIME_MAX - 1, BUF_TIME_MAX };

			snprintf(id, sizeof(id), "sku-%zu", i);
			rnd_text(&seed, name, sizeof(name) - 1);
			for (size_t k = 0; k < na; k++) {
				rnd_text(&seed, kv[used][0], sizeof(kv[0][0]) - 1);
				rnd_text(&seed, kv[used][1], sizeof(kv[0][1]) - 1);
				a[used] = (cart_attr){ kv[used][0], kv[used][1] };
				if (kv[used][0][0])   /* keys are 1..64 bytes */
					used++;
				for (size_t j = 0; j + 1 < used; j++)
					if (!strcmp(a[j].key, a[used - 1].key)) {
						used--;
						break;
					}
			}
			line(c, id, 1 + (int32_t)(rnd(&seed) % 999),
			     (int64_t)(rnd(&seed) % 1000000000001ULL),
			     rnd(&seed) % 5 ? name : NULL, a, used,
			     t[rnd(&seed) % 5], t[rnd(&seed) % 5]);
		}
		out = render(c, &len);
		ck_assert_msg(render_check(out, len, c) == NULL, "round %d: %s in %s", round,
			      render_check(out, len, c), out);
		free(out);
		cart_free(c);
	}
}
END_TEST

Suite *render_suite(void)
{
	Suite *s = suite_create("render");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_plain_cart_bytes);
	tcase_add_test(tc, test_escaped_lines_bytes);
	tcase_add_test(tc, test_times_at_the_edges);
	tcase_add_test(tc, test_numbers_at_the_edges);
	tcase_add_test(tc, test_big_lines_grow_and_maximum_fails);
	tcase_add_test(tc, test_small_cart_at_exact_maximum);
	tcase_add_test(tc, test_random_carts_read_back);
	suite_add_tcase(s, tc);
	return s;
}
