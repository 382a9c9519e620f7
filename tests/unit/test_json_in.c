/*
 * The request-body parsers' memory (json_arena.h): a typical add body's
 * tree lives in the request's arena, a larger one spills to the heap and
 * is freed all the same (valgrind runs this suite), and every failure
 * path gives the thread's arena back.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "json_in.h"
#include "unit/suites.h"

static const char ADD[] =
	"{\"itemId\":\"sku-1\",\"quantity\":2,\"unitPrice\":{\"amount\":1999,"
	"\"currency\":\"EUR\"},\"name\":\"Mug\",\"attributes\":{\"color\":\"red\"}}";

static bool in_arena(const json_arena *a, const char *p)
{
	const unsigned char *x = (const unsigned char *)p;

	return x >= a->mem && x < a->mem + sizeof(a->mem);
}

static void setup(void)
{
	json_arena_install();
}

START_TEST(test_add_body_tree_in_the_arena)
{
	add_item_req req;
	input_error err;

	ck_assert_int_eq(json_parse_add_item(&req, ADD, strlen(ADD), &err), 0);
	ck_assert_str_eq(req.spec.item_id, "sku-1");
	ck_assert_int_eq(req.spec.quantity, 2);
	ck_assert_int_eq(req.spec.unit_price.amount, 1999);
	ck_assert_str_eq(req.spec.unit_price.currency, "EUR");
	ck_assert_str_eq(req.spec.name, "Mug");
	ck_assert_uint_eq(req.spec.attr_count, 1);
	ck_assert_str_eq(req.spec.attrs[0].key, "color");
	ck_assert_str_eq(req.spec.attrs[0].value, "red");
	/* the nodes and strings came from the arena */
	ck_assert_uint_gt(json_arena_used(&req.arena), 400);
	ck_assert(in_arena(&req.arena, req.spec.item_id));
	ck_assert(in_arena(&req.arena, req.spec.attrs[0].value));
	add_item_req_release(&req);
}
END_TEST

/* Twenty 100-byte attributes: ~5 KiB of tree, more than the arena. */
START_TEST(test_large_body_spills_to_the_heap)
{
	char body[8192], val[101];
	size_t n;
	add_item_req req;
	input_error err;

	memset(val, 'v', 100);
	val[100] = '\0';
	n = (size_t)snprintf(body, sizeof(body),
			     "{\"itemId\":\"sku-2\",\"quantity\":1,\"unitPrice\":{\"amount\":5,"
			     "\"currency\":\"EUR\"},\"attributes\":{");
	for (int i = 0; i < CART_ATTRS_MAX; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s\"k%02d\":\"%s\"",
				      i ? "," : "", i, val);
	n += (size_t)snprintf(body + n, sizeof(body) - n, "}}");
	ck_assert_uint_lt(n, sizeof(body));
	ck_assert_int_eq(json_parse_add_item(&req, body, n, &err), 0);
	ck_assert_uint_eq(req.spec.attr_count, CART_ATTRS_MAX);
	for (int i = 0; i < CART_ATTRS_MAX; i++)
		ck_assert_str_eq(req.spec.attrs[i].value, val);
	ck_assert_msg(!in_arena(&req.arena, req.spec.attrs[CART_ATTRS_MAX - 1].value),
		      "the last attribute should have spilled to the heap");
	add_item_req_release(&req);
}
END_TEST

/* After each kind of failure the next parse uses its arena again. */
START_TEST(test_failures_give_the_arena_back)
{
	static const char *const bad[] = {
		"{\"itemId\":", "[1,2]", "{\"itemId\":\"a\",\"bogus\":1}",
		"{\"itemId\":\"a\",\"quantity\":\"x\"}", "{\"quantity\":1}",
	};
	add_item_req req;
	input_error err;
	int32_t q;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(json_parse_add_item(&req, bad[i], strlen(bad[i]), &err), -1);
		ck_assert_int_eq(json_parse_set_quantity(&q, bad[i], strlen(bad[i]), &err),
				 i == 4 ? 0 : -1);
		ck_assert_int_eq(json_parse_add_item(&req, ADD, strlen(ADD), &err), 0);
		ck_assert_msg(json_arena_used(&req.arena) > 0, "case %zu left the arena taken", i);
		add_item_req_release(&req);
	}
	ck_assert_int_eq(q, 1);
}
END_TEST

/* A second parse while the first tree lives uses the heap; both free. */
START_TEST(test_second_tree_meanwhile_uses_the_heap)
{
	add_item_req a, b;
	input_error err;

	ck_assert_int_eq(json_parse_add_item(&a, ADD, strlen(ADD), &err), 0);
	ck_assert_int_eq(json_parse_add_item(&b, ADD, strlen(ADD), &err), 0);
	ck_assert_uint_gt(json_arena_used(&a.arena), 0);
	ck_assert(in_arena(&a.arena, a.spec.item_id));
	ck_assert_msg(!in_arena(&b.arena, b.spec.item_id), "the second tree must not be in its arena");
	ck_assert_str_eq(b.spec.item_id, "sku-1");
	add_item_req_release(&b);
	add_item_req_release(&a);
}
END_TEST

Suite *json_in_suite(void)
{
	Suite *s = suite_create("json_in");
	TCase *tc = tcase_create("arena");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_add_body_tree_in_the_arena);
	tcase_add_test(tc, test_large_body_spills_to_the_heap);
	tcase_add_test(tc, test_failures_give_the_arena_back);
	tcase_add_test(tc, test_second_tree_meanwhile_uses_the_heap);
	suite_add_tcase(s, tc);
	return s;
}
