/*
 * libFuzzer target for the request-body parsers: the validating scan and
 * the typed walk must never crash, leak or read out of bounds, whatever
 * they accept must be valid input for the core, and they must decide as
 * the cJSON schema walk they replaced did (json_ref.h): the same outcome,
 * error and fields for every input.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_in.h"
#include "json_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void same_outcome(int rc, const input_error *e, int ref_rc,
			 const input_error *ref_e)
{
	assert(rc == ref_rc);
	if (rc) {
		assert(!strcmp(e->code, ref_e->code));
		assert(!strcmp(e->detail, ref_e->detail));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exact-size copy, so ASan sees any read past the end. */
	char *body = malloc(size ? size : 1);
	add_item_req req;
	ref_add_item ref;
	input_error err, ref_err;
	int32_t q = 0, ref_q = 0;
	int rc, ref_rc;

	if (!body)
		return 0;
	memcpy(body, data, size);
	rc = json_parse_add_item(&req, body, size, &err);
	ref_rc = ref_parse_add_item(&ref, body, size, &ref_err);
	same_outcome(rc, &err, ref_rc, &ref_err);
	if (rc == 0) {
		assert(cart_id_valid(req.spec.item_id));
		assert(req.spec.attr_count <= CART_ATTRS_MAX || !req.spec.attrs);
	} else {
		assert(err.code && err.detail[0]);
	}
	if (rc == 0 && ref_rc == 0) {
		assert(!strcmp(req.spec.item_id, ref.spec.item_id));
		assert(req.spec.quantity == ref.spec.quantity);
		assert(req.spec.unit_price.amount == ref.spec.unit_price.amount);
		assert(!strcmp(req.spec.unit_price.currency, ref.spec.unit_price.currency));
		assert(same_str(req.spec.name, ref.spec.name));
		assert(req.spec.attr_count == ref.spec.attr_count);
		assert(!req.spec.attrs == !ref.spec.attrs);
		for (size_t i = 0; req.spec.attrs && i < req.spec.attr_count; i++) {
			assert(!strcmp(req.spec.attrs[i].key, ref.spec.attrs[i].key));
			assert(!strcmp(req.spec.attrs[i].value, ref.spec.attrs[i].value));
		}
	}
	if (rc == 0)
		add_item_req_release(&req);
	if (ref_rc == 0)
		ref_add_item_release(&ref);
	rc = json_parse_set_quantity(&q, body, size, &err);
	ref_rc = ref_parse_set_quantity(&ref_q, body, size, &ref_err);
	same_outcome(rc, &err, ref_rc, &ref_err);
	assert(rc || ref_rc || q == ref_q);
	free(body);
	return 0;
}
