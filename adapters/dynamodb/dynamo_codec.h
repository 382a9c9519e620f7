#ifndef CART_DYNAMO_CODEC_H
#define CART_DYNAMO_CODEC_H

/*
 * The item decoder on its own, for tests and fuzzing: stored items are
 * input from outside the process and must never crash it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cart/cart.h"
#include "cart/repo.h"

/*
 * Decodes a GetItem "Item" object (DynamoDB JSON text) for user_id.
 * CART_OK and *out (caller owns), CART_ENOTFOUND for an item without a
 * version, CART_EBACKEND for anything a valid cart cannot hold,
 * CART_ENOMEM.
 */
int cart_dynamo_decode_item(const char *json, size_t len, const char *user_id,
			    cart **out);

/*
 * The stored times to the cart's, for both decoders alike: expiresAt
 * (seconds) to ms, and a line's offsets t and u from createdAt to times.
 * false if a result does not fit in int64: a bad item.
 */
static inline bool cart_dynamo_expiry_ms(int64_t s, int64_t *ms)
{
	return !__builtin_mul_overflow(s, 1000, ms);
}

static inline bool cart_dynamo_line_times(int64_t created, int64_t *added,
					  int64_t *updated)
{
	return !__builtin_add_overflow(*added, created, added) &&
	       !__builtin_add_overflow(*updated, created, updated);
}

/* cart_dynamo_read_get: the body is not one this reader takes for sure. */
#define CART_DYNAMO_DECLINED 1

/*
 * Reads a whole GetItem answer body (the item, and ConsumedCapacity's
 * CapacityUnits into *units, 0 if absent) in one pass, without a tree
 * (dynamo_item.c).  CART_OK and *out (caller owns), CART_ENOTFOUND (no
 * Item, or an Item without a version), CART_ENOMEM, or
 * CART_DYNAMO_DECLINED for anything else: the caller then decodes the
 * same body with cJSON and cart_dynamo_decode_item's rules, which give
 * every body this reader accepts the same cart.
 */
int cart_dynamo_read_get(const char *body, size_t len, const char *user_id,
			 cart **out, double *units);

/*
 * Decodes an idempotency record item (SK "IDEM#<key>", its body possibly
 * zlib-compressed) as key's record.  CART_OK and *out (caller owns),
 * CART_EBACKEND for anything malformed (including a body that does not
 * inflate to its stated length), CART_ENOMEM.
 */
int cart_dynamo_decode_record(const char *json, size_t len, const char *key,
			      cart_idem **out);

#endif
