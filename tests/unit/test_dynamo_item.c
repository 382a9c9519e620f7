/*
 * The typed reader of GetItem answers (adapters/dynamodb/dynamo_item.c)
 * against the cJSON decoder: the bodies our writes produce are read, and
 * read to the same cart; anything else is declined (and then decoded by
 * cJSON, which the DynamoDB suites and the fuzz target check).  Offline:
 * the bodies are written here, in the adapter's item shape.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynamodb/dynamo_codec.h"
#include "fakes/cart_same.h"
#include "unit/suites.h"

#define CID "0b5cf45c-b68f-4374-89ed-f0e4dbd060c9"

/* The item of a stored 3-line cart as this adapter writes it: keys, the
 * write id, an outbox with an event, the lines (one with attributes, one
 * updated later, one without a name). */
#define IDENTITY \
	"\"PK\":{\"S\":\"CART#u-1\"},\"SK\":{\"S\":\"CART\"}," \
	"\"version\":{\"N\":\"4\"},\"writeId\":{\"S\":\"w-1\"}," \
	"\"cartId\":{\"S\":\"" CID "\"},\"createdAt\":{\"N\":\"1767225600000\"}," \
	"\"updatedAt\":{\"N\":\"1767225609000\"},\"expiresAt\":{\"N\":\"1769817609\"}"
#define LINES \
	"\"items\":{\"L\":[" \
	"{\"M\":{\"id\":{\"S\":\"sku-1\"},\"q\":{\"N\":\"2\"},\"p\":{\"N\":\"1999\"}," \
	"\"n\":{\"S\":\"Ceramic mug, 350 ml\"},\"a\":{\"M\":{\"size\":{\"S\":\"M\"}," \
	"\"colour\":{\"S\":\"blue\"}}},\"t\":{\"N\":\"0\"}}}," \
	"{\"M\":{\"id\":{\"S\":\"sku-2\"},\"q\":{\"N\":\"1\"},\"p\":{\"N\":\"1\"}," \
	"\"n\":{\"S\":\"Voucher\"},\"t\":{\"N\":\"1000\"},\"u\":{\"N\":\"9000\"}}}," \
	"{\"M\":{\"id\":{\"S\":\"sku-3\"},\"q\":{\"N\":\"999\"},\"p\":{\"N\":\"0\"}," \
	"\"t\":{\"N\":\"2000\"}}}]},\"currency\":{\"S\":\"EUR\"}"
#define OUTBOX \
	"\"outbox\":{\"L\":[{\"M\":{\"id\":{\"S\":\"e-1\"},\"ty\":{\"N\":\"1\"}," \
	"\"at\":{\"N\":\"1767225609000\"},\"v\":{\"N\":\"4\"},\"c\":{\"S\":\"" CID "\"}," \
	"\"qb\":{\"N\":\"0\"},\"qa\":{\"N\":\"1\"},\"p\":{\"N\":\"1999\"}," \
	"\"tr\":{\"S\":\"Root=1-6b0a79ab-2212de16c6467a0401aad4bd;Sampled=0\"}}}]}," \
	"\"obPending\":{\"S\":\"task-1\"},\"flags\":{\"BOOL\":true}," \
	"\"tags\":{\"SS\":[\"a\",\"b\"]},\"nothing\":{\"NULL\":true},\"ratio\":{\"N\":\"1.5e3\"}"
#define CAPACITY "\"ConsumedCapacity\":{\"TableName\":\"carts\",\"CapacityUnits\":0.5}"

/*
 * item: an Item's text.  The reader's answer on {"Item": item} and a
 * ConsumedCapacity; if it reads a cart, cJSON's decoder of the same item
 * must give the same cart.  Returns the reader's code.
 */
static int read_both(const char *item)
{
	char body[8192];
	cart *fast = NULL, *slow = NULL;
	double units = -1;
	int rc, src;

	snprintf(body, sizeof(body), "{" CAPACITY ",\"Item\":%s}", item);
	rc = cart_dynamo_read_get(body, strlen(body), "u-1", &fast, &units);
	src = cart_dynamo_decode_item(item, strlen(item), "u-1", &slow);
	ck_assert_int_eq(rc == CART_OK, fast != NULL);
	if (rc == CART_OK) {
		ck_assert_int_eq(src, CART_OK);
		ck_assert_msg(cart_same(fast, slow), "the reader and cJSON disagree on %s", item);
	}
	if (rc == CART_ENOTFOUND)
		ck_assert_int_eq(src, CART_ENOTFOUND);
	if (rc != CART_DYNAMO_DECLINED)
		ck_assert(units == 0.5);
	cart_free(fast);
	cart_free(slow);
	return rc;
}

START_TEST(test_reads_what_the_adapter_writes)
{
	char body[8192];
	cart *c = NULL;
	double units;

	ck_assert_int_eq(read_both("{" IDENTITY "," LINES "," OUTBOX "}"), CART_OK);
	/* members in another order, white space anywhere */
	ck_assert_int_eq(read_both("{ " OUTBOX " , " LINES " ,\n" IDENTITY " }"), CART_OK);

	/* and the values themselves, not only agreement */
	snprintf(body, sizeof(body), "{\"Item\":{" IDENTITY "," LINES "}}");
	ck_assert_int_eq(cart_dynamo_read_get(body, strlen(body), "u-1", &c, &units), CART_OK);
	ck_assert(units == 0);
	ck_assert_str_eq(cart_id(c), CID);
	ck_assert_int_eq(cart_version(c), 4);
	ck_assert_int_eq(cart_created_at(c), 1767225600000LL);
	ck_assert_int_eq(cart_expires_at(c), 1769817609000LL);
	ck_assert_uint_eq(cart_line_count(c), 3);
	ck_assert_str_eq(cart_item_name(cart_item_at(c, 0)), "Ceramic mug, 350 ml");
	ck_assert_uint_eq(cart_item_attr_count(cart_item_at(c, 0)), 2);
	ck_assert_str_eq(cart_item_attr_at(cart_item_at(c, 0), 1).value, "blue");
	ck_assert_int_eq(cart_item_added_at(cart_item_at(c, 1)), 1767225601000LL);
	ck_assert_int_eq(cart_item_updated_at(cart_item_at(c, 1)), 1767225609000LL);
	ck_assert_int_eq(cart_item_updated_at(cart_item_at(c, 2)), 1767225602000LL);
	ck_assert_ptr_null(cart_item_name(cart_item_at(c, 2)));
	ck_assert_int_eq(cart_item_quantity(cart_item_at(c, 2)), 999);
	ck_assert_int_eq(cart_subtotal(c).amount, 2 * 1999 + 1);
	cart_free(c);
}
END_TEST

START_TEST(test_no_cart)
{
	char body[256];
	cart *c = (cart *)1;
	double units;

	/* no Item at all: a user never seen */
	snprintf(body, sizeof(body), "{" CAPACITY "}");
	ck_assert_int_eq(cart_dynamo_read_get(body, strlen(body), "u-1", &c, &units),
			 CART_ENOTFOUND);
	ck_assert_ptr_null(c);
	ck_assert(units == 0.5);
	ck_assert_int_eq(cart_dynamo_read_get("{}", 2, "u-1", &c, &units), CART_ENOTFOUND);
	/* an Item without a version: idempotency claims only */
	ck_assert_int_eq(read_both("{}"), CART_ENOTFOUND);
	ck_assert_int_eq(read_both("{\"PK\":{\"S\":\"CART#u-1\"},\"idem#k\":{\"M\":{}}}"),
			 CART_ENOTFOUND);
	/* a cleared cart: a version and nothing else, whatever times linger */
	ck_assert_int_eq(read_both("{\"version\":{\"N\":\"9\"}}"), CART_OK);
	ck_assert_int_eq(read_both("{\"version\":{\"N\":\"9\"},\"createdAt\":{\"N\":\"x\"}}"),
			 CART_DYNAMO_DECLINED);
}
END_TEST

/* What the reader leaves to cJSON; read_both checks cJSON never reads a
 * cart where the reader says there is none. */
START_TEST(test_declines_what_it_does_not_know)
{
	static const char *const odd[] = {
		/* escapes: the reader keeps no \ sequence */
		"{" IDENTITY ",\"items\":{\"L\":[{\"M\":{\"id\":{\"S\":\"a\"},\"q\":{\"N\":\"1\"},"
		"\"p\":{\"N\":\"1\"},\"t\":{\"N\":\"1\"},\"n\":{\"S\":\"12\\\" vinyl\"}}}]},"
		"\"currency\":{\"S\":\"EUR\"}}",
		"{" IDENTITY ",\"note\":{\"S\":\"caf\\u00e9\"}}",
		/* a key twice */
		"{" IDENTITY ",\"version\":{\"N\":\"5\"}}",
		"{" IDENTITY ",\"items\":{\"L\":[{\"M\":{\"id\":{\"S\":\"a\"},\"q\":{\"N\":\"1\"},"
		"\"q\":{\"N\":\"2\"},\"p\":{\"N\":\"1\"},\"t\":{\"N\":\"1\"}}}]},"
		"\"currency\":{\"S\":\"EUR\"}}",
		/* numbers DynamoDB does not send for our integers */
		"{\"version\":{\"N\":\"+4\"}}",
		"{\"version\":{\"N\":\" 4\"}}",
		"{\"version\":{\"N\":\"1234567890123456789\"}}",
		"{\"version\":{\"N\":\"\"}}",
		/* another type, or more than the one type */
		"{\"version\":{\"S\":\"4\"}}",
		"{\"version\":{\"N\":\"4\",\"S\":\"x\"}}",
		"{\"version\":{\"N\":\"4\"},\"cartId\":{\"N\":\"1\"}}",
		/* what the core refuses, and the cJSON decoder calls bad */
		"{\"version\":{\"N\":\"0\"}}",
		"{" IDENTITY ",\"items\":{\"L\":[{\"M\":{\"id\":{\"S\":\"a\"}}}]},"
		"\"currency\":{\"S\":\"EUR\"}}",
		"{" IDENTITY ",\"items\":{\"L\":[{\"M\":{\"id\":{\"S\":\"a\"},\"q\":{\"N\":\"1\"},"
		"\"p\":{\"N\":\"1\"},\"t\":{\"N\":\"1\"}}}]}}",
		"{\"version\":{\"N\":\"2\"},\"cartId\":{\"S\":\"" CID "\"}}",
		/* not JSON, or past the depth the reader follows */
		"{\"version\":{\"N\":\"4\"}",
		"{\"version\":{\"N\":\"4\"},}",
		"{\"version\":{\"N\":\"4\"},\"x\":01}",
		"{\"version\":{\"N\":\"4\"},\"x\":tru}",
		"{\"version\":{\"N\":\"4\"},\"x\":"
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
		"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
	};

	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		ck_assert_msg(read_both(odd[i]) == CART_DYNAMO_DECLINED,
			      "case %zu was not declined: %s", i, odd[i]);
}
END_TEST

/*
 * Times that do not fit: an expiry whose ms overflow int64 (found by the
 * fuzz target: -76981767225601000 s), a line's offset that overflows
 * when added to createdAt.  Both decoders refuse the item; nothing is
 * computed past int64 (UBSan in the fuzz build).
 */
START_TEST(test_times_past_int64_are_bad_items)
{
#define TIMES(exp) \
	"\"PK\":{\"S\":\"CART#u-1\"},\"SK\":{\"S\":\"CART\"}," \
	"\"version\":{\"N\":\"4\"},\"cartId\":{\"S\":\"" CID "\"}," \
	"\"createdAt\":{\"N\":\"1767225600000\"},\"updatedAt\":{\"N\":\"1767225609000\"}," \
	"\"expiresAt\":{\"N\":\"" exp "\"}"
#define LINE_AT(t, u) \
	",\"items\":{\"L\":[{\"M\":{\"id\":{\"S\":\"a\"},\"q\":{\"N\":\"1\"}," \
	"\"p\":{\"N\":\"1\"},\"t\":{\"N\":\"" t "\"}" u "}}]},\"currency\":{\"S\":\"EUR\"}"
	static const char *const bad[] = {
		"{" TIMES("-76981767225601000") "}",
		"{" TIMES("9223372036854776") "}",
		"{" TIMES("1769817609") LINE_AT("9223372036854775000", "") "}",
		"{" TIMES("1769817609") LINE_AT("0", ",\"u\":{\"N\":\"9223372036854775000\"}") "}",
	};
#undef TIMES
#undef LINE_AT

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cart *c = NULL;

		ck_assert_msg(read_both(bad[i]) == CART_DYNAMO_DECLINED,
			      "case %zu was not declined: %s", i, bad[i]);
		ck_assert_msg(cart_dynamo_decode_item(bad[i], strlen(bad[i]), "u-1", &c) ==
			      CART_EBACKEND, "case %zu was not a bad item: %s", i, bad[i]);
		ck_assert_ptr_null(c);
	}
}
END_TEST

START_TEST(test_declines_bodies_it_cannot_take_whole)
{
	static const char *const bodies[] = {
		"",
		"[]",
		"{\"Item\":{\"version\":{\"N\":\"4\"}}} trailing",
		"{\"Item\":{\"version\":{\"N\":\"4\"}},\"Item\":{}}",
		"{\"Item\":5}",
		"{\"ConsumedCapacity\":[{\"CapacityUnits\":1}]}",
		"{\"Item\":{\"version\":{\"N\":\"4\"}}",
	};
	cart *c;
	double units;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		ck_assert_msg(cart_dynamo_read_get(bodies[i], strlen(bodies[i]), "u-1", &c,
						   &units) == CART_DYNAMO_DECLINED,
			      "body %zu was not declined", i);
		ck_assert_ptr_null(c);
	}
	/* NUL bytes are bytes like any other: a body is its length */
	ck_assert_int_eq(cart_dynamo_read_get("{\"Item\":{\"version\":{\"N\":\"4\0\"}}}", 31,
					      "u-1", &c, &units), CART_DYNAMO_DECLINED);
}
END_TEST

Suite *dynamo_item_suite(void)
{
	Suite *s = suite_create("dynamo_item");
	TCase *tc = tcase_create("reader");

	tcase_add_test(tc, test_reads_what_the_adapter_writes);
	tcase_add_test(tc, test_no_cart);
	tcase_add_test(tc, test_declines_what_it_does_not_know);
	tcase_add_test(tc, test_declines_bodies_it_cannot_take_whole);
	tcase_add_test(tc, test_times_past_int64_are_bad_items);
	suite_add_tcase(s, tc);
	return s;
}
