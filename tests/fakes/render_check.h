#ifndef CART_TEST_RENDER_CHECK_H
#define CART_TEST_RENDER_CHECK_H

/*
 * Reads a rendered cart document back with cJSON and compares every field
 * with the cart's accessors (tests/unit/test_render.c and fuzz_render).
 * Returns NULL when they agree, else a static description of the first
 * difference.  Times are compared as the strings cart_rfc3339 writes.
 */

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cart/cart.h"
#include "codec/event_json.h"

static inline bool rc_str(const cJSON *j, const char *want)
{
	if (!want)
		return cJSON_IsNull(j);
	return cJSON_IsString(j) && !strcmp(j->valuestring, want);
}

static inline bool rc_int(const cJSON *j, int64_t want)
{
	return cJSON_IsNumber(j) && j->valuedouble == (double)want;
}

static inline bool rc_time(const cJSON *j, int64_t ms)
{
	char want[64];

	if (ms <= 0)
		return cJSON_IsNull(j);
	cart_rfc3339(want, sizeof(want), ms);
	return rc_str(j, want);
}

static inline bool rc_money(const cJSON *j, cart_money m)
{
	return cJSON_IsObject(j) && cJSON_GetArraySize(j) == 2 &&
	       rc_int(cJSON_GetObjectItemCaseSensitive(j, "amount"), m.amount) &&
	       rc_str(cJSON_GetObjectItemCaseSensitive(j, "currency"),
		      m.currency[0] ? m.currency : NULL);
}

#define RC_FIELD(obj, name) cJSON_GetObjectItemCaseSensitive((obj), (name))

static inline const char *render_check(const char *json, size_t len, const cart *c)
{
	static char why[128];
	cJSON *doc = cJSON_ParseWithLength(json, len), *items;
	const char *bad = NULL;

	if (!doc)
		return "not JSON";
	items = RC_FIELD(doc, "items");
	if (cJSON_GetArraySize(doc) != 9)
		bad = "cart members";
	else if (!rc_str(RC_FIELD(doc, "cartId"), cart_id(c)))
		bad = "cartId";
	else if (!rc_str(RC_FIELD(doc, "userId"), cart_user_id(c)))
		bad = "userId";
	else if (!cJSON_IsArray(items) || (size_t)cJSON_GetArraySize(items) != cart_line_count(c))
		bad = "items";
	else if (!rc_int(RC_FIELD(doc, "itemCount"), cart_quantity_total(c)))
		bad = "itemCount";
	else if (!rc_money(RC_FIELD(doc, "subtotal"), cart_subtotal(c)))
		bad = "subtotal";
	else if (!rc_int(RC_FIELD(doc, "version"), cart_version(c)))
		bad = "version";
	else if (!rc_time(RC_FIELD(doc, "createdAt"), cart_created_at(c)))
		bad = "createdAt";
	else if (!rc_time(RC_FIELD(doc, "updatedAt"), cart_updated_at(c)))
		bad = "updatedAt";
	else if (!rc_time(RC_FIELD(doc, "expiresAt"), cart_expires_at(c)))
		bad = "expiresAt";
	for (size_t i = 0; !bad && i < cart_line_count(c); i++) {
		const cart_item *it = cart_item_at(c, i);
		cJSON *j = cJSON_GetArrayItem(items, (int)i), *attrs = RC_FIELD(j, "attributes");

		snprintf(why, sizeof(why), "line %zu: ", i);
		if (cJSON_GetArraySize(j) != 8)
			bad = "members";
		else if (!rc_str(RC_FIELD(j, "itemId"), cart_item_id(it)))
			bad = "itemId";
		else if (!rc_int(RC_FIELD(j, "quantity"), cart_item_quantity(it)))
			bad = "quantity";
		else if (!rc_money(RC_FIELD(j, "unitPrice"), cart_item_unit_price(it)))
			bad = "unitPrice";
		else if (!rc_money(RC_FIELD(j, "lineTotal"), cart_item_line_total(it)))
			bad = "lineTotal";
		else if (!rc_str(RC_FIELD(j, "name"), cart_item_name(it)))
			bad = "name";
		else if (!rc_time(RC_FIELD(j, "addedAt"), cart_item_added_at(it)))
			bad = "addedAt";
		else if (!rc_time(RC_FIELD(j, "updatedAt"), cart_item_updated_at(it)))
			bad = "updatedAt";
		else if (!cJSON_IsObject(attrs) ||
			 (size_t)cJSON_GetArraySize(attrs) != cart_item_attr_count(it))
			bad = "attributes";
		for (size_t k = 0; !bad && k < cart_item_attr_count(it); k++) {
			cart_attr a = cart_item_attr_at(it, k);
			cJSON *v = cJSON_GetArrayItem(attrs, (int)k);

			if (!v || strcmp(v->string, a.key) || !rc_str(v, a.value))
				bad = "attribute";
		}
		if (bad) {
			strncat(why, bad, sizeof(why) - strlen(why) - 1);
			bad = why;
		}
	}
	cJSON_Delete(doc);
	return bad;
}

#endif
