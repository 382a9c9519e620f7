#ifndef CART_DYNAMO_CODEC_H
#define CART_DYNAMO_CODEC_H

/*
 * The item decoder on its own, for tests and fuzzing: stored items are
 * input from outside the process and must never crash it.
 */

#include <stddef.h>

#include "cart/cart.h"

/*
 * Decodes a GetItem "Item" object (DynamoDB JSON text) for user_id.
 * CART_OK and *out (caller owns), CART_ENOTFOUND for an item without a
 * version (only idempotency claims), CART_EBACKEND for anything a valid
 * cart cannot hold, CART_ENOMEM.
 */
int cart_dynamo_decode_item(const char *json, size_t len, const char *user_id,
			    cart **out);

#endif
