/*
 * libFuzzer target for the DynamoDB item decoders: whatever a table holds
 * (hand-edited items, another writer's bugs), decoding gives a valid cart
 * or idempotency record (compressed bodies included) or a clean error,
 * never a crash, leak or out-of-bounds read.
 *
 * And the typed reader of GetItem answers (dynamo_item.c) against the
 * cJSON decoder: the input as a GetItem answer's Item, {"Item":<input>}.
 * Whatever the reader does not decline, the decoder must read the same:
 * the same cart, or no cart.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../fakes/cart_same.h"
#include "dynamodb/dynamo_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *json = malloc(size ? size : 1);
	cart *c = NULL;
	int rc;

	if (!json)
		return 0;
	memcpy(json, data, size);
	rc = cart_dynamo_decode_item(json, size, "fuzz-user", &c);
	assert(rc == CART_OK || rc == CART_ENOTFOUND || rc == CART_EBACKEND ||
	       rc == CART_ENOMEM);
	assert((rc == CART_OK) == (c != NULL));
	if (c) {
		/* A decoded cart keeps the aggregate's invariants. */
		cart_money sub = cart_subtotal(c);
		assert(sub.amount >= 0);
		for (size_t i = 0; i < cart_line_count(c); i++)
			assert(cart_id_valid(cart_item_id(cart_item_at(c, i))));
	}
	{
		static const char head[] = "{\"Item\":";
		char *body = malloc(sizeof(head) + size + 1);
		cart *fast = NULL;
		double units;
		int frc;

		if (body) {
			memcpy(body, head, sizeof(head) - 1);
			memcpy(body + sizeof(head) - 1, data, size);
			body[sizeof(head) - 1 + size] = '}';
			frc = cart_dynamo_read_get(body, sizeof(head) + size, "fuzz-user",
						   &fast, &units);
			assert(frc == CART_OK || frc == CART_ENOTFOUND ||
			       frc == CART_ENOMEM || frc == CART_DYNAMO_DECLINED);
			assert((frc == CART_OK) == (fast != NULL));
			if (frc == CART_OK)
				assert(rc == CART_OK && cart_same(fast, c));
			if (frc == CART_ENOTFOUND)
				assert(rc == CART_ENOTFOUND);
			cart_free(fast);
			free(body);
		}
	}
	cart_free(c);
	{
		cart_idem *rec = NULL;

		rc = cart_dynamo_decode_record(json, size, "fuzz-key", &rec);
		assert(rc == CART_OK || rc == CART_EBACKEND || rc == CART_ENOMEM);
		assert((rc == CART_OK) == (rec != NULL));
		if (rec)
			assert(rec->body_len == 0 || rec->body != NULL);
		cart_idem_free(rec);
	}
	free(json);
	return 0;
}
