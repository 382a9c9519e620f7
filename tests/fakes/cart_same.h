#ifndef TESTS_CART_SAME_H
#define TESTS_CART_SAME_H

/*
 * Whether two carts hold the same data, every field the accessors show
 * (for differential checks: the typed DynamoDB reader against the cJSON
 * decoder, in a unit test and in a fuzz target).  Header-only: the fuzz
 * build links no test objects.
 */
#include <stdbool.h>
#include <string.h>

#include "cart/cart.h"

static inline bool cart_same_str(const char *a, const char *b)
{
	return (!a || !b) ? a == b : !strcmp(a, b);
}

static inline bool cart_same_item(const cart_item *a, const cart_item *b)
{
	cart_money pa = cart_item_unit_price(a), pb = cart_item_unit_price(b);

	if (strcmp(cart_item_id(a), cart_item_id(b)) ||
	    cart_item_quantity(a) != cart_item_quantity(b) ||
	    pa.amount != pb.amount || strcmp(pa.currency, pb.currency) ||
	    !cart_same_str(cart_item_name(a), cart_item_name(b)) ||
	    cart_item_attr_count(a) != cart_item_attr_count(b) ||
	    cart_item_added_at(a) != cart_item_added_at(b) ||
	    cart_item_updated_at(a) != cart_item_updated_at(b))
		return false;
	for (size_t i = 0; i < cart_item_attr_count(a); i++) {
		cart_attr x = cart_item_attr_at(a, i), y = cart_item_attr_at(b, i);
		if (strcmp(x.key, y.key) || strcmp(x.value, y.value))
			return false;
	}
	return true;
}

static inline bool cart_same(const cart *a, const cart *b)
{
	if (strcmp(cart_user_id(a), cart_user_id(b)) ||
	    !cart_same_str(cart_id(a), cart_id(b)) ||
	    cart_version(a) != cart_version(b) ||
	    cart_created_at(a) != cart_created_at(b) ||
	    cart_updated_at(a) != cart_updated_at(b) ||
	    cart_expires_at(a) != cart_expires_at(b) ||
	    cart_line_count(a) != cart_line_count(b))
		return false;
	for (size_t i = 0; i < cart_line_count(a); i++)
		if (!cart_same_item(cart_item_at(a, i), cart_item_at(b, i)))
			return false;
	return true;
}

#endif
