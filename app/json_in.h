#ifndef APP_JSON_IN_H
#define APP_JSON_IN_H

/*
 * Request bodies: strict JSON in, typed structs out.
 *
 * First a validating scan (RFC 8259 grammar, UTF-8, no \u0000, no lone
 * surrogates, nesting <= JSON_MAX_DEPTH), then a typed walk over the
 * validated text refuses unknown fields, duplicate keys and wrong types
 * and decodes the strings it keeps into the request's own memory
 * (json_arena.h).
 * Malformed or wrongly typed input is a 400; values that are well formed
 * but break a rule (ranges, lengths) pass through to the core, which
 * answers 422.
 */

#include <stddef.h>
#include <stdint.h>

#include "cart/cart.h"
#include "json_arena.h"

#define JSON_MAX_DEPTH 8

typedef struct input_error {
	const char *code;        /* "cart.invalid_json", "cart.invalid_field", ... */
	char detail[192];
} input_error;

/*
 * 0 if text[0..len) is one well-formed JSON value within the depth limit
 * and valid UTF-8; else -1 with err filled in.
 */
int json_validate(const char *text, size_t len, input_error *err);

typedef struct add_item_req {
	cart_item_spec spec;             /* strings in arena */
	cart_attr attrs[CART_ATTRS_MAX];
	json_arena arena;                /* owned (json_arena.h) */
} add_item_req;

/* 0 or -1 with err. On success release with add_item_req_release. */
int json_parse_add_item(add_item_req *out, const char *body, size_t len,
			input_error *err);
void add_item_req_release(add_item_req *req);   /* accepts NULL */

/* {"quantity": N}.  An integer that does not fit int32 becomes -1. */
int json_parse_set_quantity(int32_t *quantity, const char *body, size_t len,
			    input_error *err);

#endif
