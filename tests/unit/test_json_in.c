/*
 * The request-body parsers: strings decoded as JSON says (escapes,
 * surrogate pairs), a typical add body's strings in the request's inline
 * memory, a larger one spilled to the heap and freed all the same
 * (valgrind runs this suite), and numbers of any length.  That the walk
 * decides as the cJSON schema walk did is the fuzz target's job
 * (tests/fuzz/fuzz_json.c).
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

START_TEST(test_add_body_in_the_arena)
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
	ck_assert(in_arena(&req.arena, req.spec.item_id));
	ck_assert(in_arena(&req.arena, req.spec.attrs[0].value));
	ck_assert_ptr_null(req.arena.spill);
	add_item_req_release(&req);
}
END_TEST

START_TEST(test_strings_are_decoded)
{
	static const char body[] =
		"{\"itemId\":\"a\",\"quantity\":1,\"unitPrice\":{\"amount\":1,\"currency\":"
		"\"\\u0045UR\"},\"name\":\"caf\\u00e9 \\\"x\\\" \\\\ \\/ \\b\\f\\n\\r\\t "
		"\\ud83d\\ude00 \xe2\x82\xac\"}";
	add_item_req req;
	input_error err;

	ck_assert_int_eq(json_parse_add_item(&req, body, strlen(body), &err), 0);
	ck_assert_str_eq(req.spec.unit_price.currency, "EUR");
	ck_assert_str_eq(req.spec.name,
			 "caf\xc3\xa9 \"x\" \\ / \b\f\n\r\t \xf0\x9f\x98\x80 \xe2\x82\xac");
	add_item_req_release(&req);
}
END_TEST

/* Twenty 200-byte attributes: ~4 KiB of strings, more than the arena. */
START_TEST(test_large_body_spills_to_the_heap)
{
	char body[8192], val[201];
	size_t n;
	add_item_req req;
	input_error err;

	memset(val, 'v', 200);
	val[200] = '\0';
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
	ck_assert_ptr_nonnull(req.arena.spill);
	ck_assert(!in_arena(&req.arena, req.spec.attrs[CART_ATTRS_MAX - 1].value));
	add_item_req_release(&req);
	ck_assert_ptr_null(req.arena.spill);
}
END_TEST

/* After each kind of failure the request holds nothing (valgrind). */
START_TEST(test_failures_free_everything)
{
	static const char *const bad[] = {
		"{\"itemId\":", "[1,2]", "{\"itemId\":\"a\",\"bogus\":1}",
		"{\"itemId\":\"a\",\"quantity\":\"x\"}", "{\"quantity\":1}",
		"{\"quantity\":1,\"quantity\":2}",
	};
	static const char *const detail[] = {
		"request body is not well-formed UTF-8 JSON (at byte 10)",
		"request body must be a JSON object",
		"unknown field \"bogus\"",
		"\"quantity\" must be an integer",
		"missing required field \"itemId\"",
		"duplicate key \"quantity\"",
	};
	add_item_req req;
	input_error err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(json_parse_add_item(&req, bad[i], strlen(bad[i]), &err), -1);
		ck_assert_str_eq(err.detail, detail[i]);
		ck_assert_ptr_null(req.arena.spill);
	}
}
END_TEST

/*
 * Keys: compared in place when they have no escapes, decoded when they
 * do; either way a key is the same key (escaped or not), a prefix or an
 * extension of a field's name is another key, and the errors name the
 * decoded key (at most 64 bytes of it).
 */
START_TEST(test_keys_escaped_or_not)
{
	static const char ok[] =
		"{\"\\u0069temId\":\"a\",\"qu\\u0061ntity\":2,"
		"\"unitPrice\":{\"amount\":1,\"curr\\u0065ncy\":\"EUR\"},"
		"\"attributes\":{\"c\\u006flor\":\"red\",\"size\":\"M\"}}";
	static const char *const bad[] = {
		"{\"quantity\":1,\"qu\\u0061ntity\":2}",
		"{\"name\":\"x\",\"itemId\":\"a\",\"name\":\"y\",\"itemId\":\"b\"}",
		"{\"item\":\"a\"}", "{\"itemIdx\":\"a\"}", "{\"\":1}", "{\"b\\u006fgus\":1}",
		"{\"itemId\":\"a\",\"quantity\":1,\"unitPrice\":{\"amount\":1,\"currency\":\"EUR\"},"
		"\"attributes\":{\"k\":\"1\",\"k\\u0000\":\"2\"}}",
		"{\"itemId\":\"a\",\"quantity\":1,\"unitPrice\":{\"amount\":1,\"currency\":\"EUR\","
		"\"amount\":2}}",
		"{\"itemId\":\"a\",\"quantity\":1,\"unitPrice\":{\"amount\":1,\"currency\":\"EUR\"},"
		"\"attributes\":{\"k\":\"1\",\"k\\u0031\":\"2\",\"k1\":\"3\"}}",
	};
	static const char *const detail[] = {
		"duplicate key \"quantity\"",
		"duplicate key \"itemId\"",
		"unknown field \"item\"", "unknown field \"itemIdx\"", "unknown field \"\"",
		"unknown field \"bogus\"",
		"request body is not well-formed UTF-8 JSON (at byte 99)",   /* at the escape of NUL */
		"duplicate key \"amount\"",
		"duplicate key \"k1\"",
	};
	char body[512], key[101];
	add_item_req req;
	input_error err;

	ck_assert_int_eq(json_parse_add_item(&req, ok, strlen(ok), &err), 0);
	ck_assert_str_eq(req.spec.item_id, "a");
	ck_assert_int_eq(req.spec.quantity, 2);
	ck_assert_str_eq(req.spec.unit_price.currency, "EUR");
	ck_assert_uint_eq(req.spec.attr_count, 2);
	ck_assert_str_eq(req.spec.attrs[0].key, "color");
	ck_assert_str_eq(req.spec.attrs[1].key, "size");
	add_item_req_release(&req);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(json_parse_add_item(&req, bad[i], strlen(bad[i]), &err) == -1,
			      "%s", bad[i]);
		ck_assert_str_eq(err.detail, detail[i]);
	}
	/* a long unknown key: 64 bytes of it */
	memset(key, 'x', 100);
	key[100] = '\0';
	snprintf(body, sizeof(body), "{\"%s\":1}", key);
	ck_assert_int_eq(json_parse_add_item(&req, body, strlen(body), &err), -1);
	key[64] = '\0';
	snprintf(body, sizeof(body), "unknown field \"%s\"", key);
	ck_assert_str_eq(err.detail, body);
	/* more than 16 members: the sorted check finds the duplicate */
	strcpy(body, "{");
	for (int i = 0; i < 17; i++)
		strcat(body, i ? ",\"quantity\":1" : "\"quantity\":1");
	strcat(body, "}");
	ck_assert_int_eq(json_parse_add_item(&req, body, strlen(body), &err), -1);
	ck_assert_str_eq(err.detail, "duplicate key \"quantity\"");
}
END_TEST

/* Any length of number is read (1e70 is out of range, so 422 later). */
START_TEST(test_numbers_of_any_length)
{
	char body[256];
	int32_t q = 0;
	input_error err;

	snprintf(body, sizeof(body), "{\"quantity\":1%070d}", 0);
	ck_assert_int_eq(json_parse_set_quantity(&q, body, strlen(body), &err), 0);
	ck_assert_int_eq(q, -1);
	ck_assert_int_eq(json_parse_set_quantity(&q, "{\"quantity\":3e0}", 16, &err), 0);
	ck_assert_int_eq(q, 3);
	ck_assert_int_eq(json_parse_set_quantity(&q, "{\"quantity\":2.5}", 16, &err), -1);
	ck_assert_str_eq(err.detail, "\"quantity\" must be an integer");
}
END_TEST

Suite *json_in_suite(void)
{
	Suite *s = suite_create("json_in");
	TCase *tc = tcase_create("walk");

	tcase_add_test(tc, test_add_body_in_the_arena);
	tcase_add_test(tc, test_strings_are_decoded);
	tcase_add_test(tc, test_large_body_spills_to_the_heap);
	tcase_add_test(tc, test_failures_free_everything);
	tcase_add_test(tc, test_numbers_of_any_length);
	tcase_add_test(tc, test_keys_escaped_or_not);
	suite_add_tcase(s, tc);
	return s;
}
