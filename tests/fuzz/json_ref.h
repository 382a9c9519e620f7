#ifndef TESTS_FUZZ_JSON_REF_H
#define TESTS_FUZZ_JSON_REF_H

/*
 * The oracle for fuzz_json.c: the request-body schema walk as it was
 * before the typed parser (app/json_in.c), on a cJSON tree, kept here
 * only to compare the two on every input.  Uses json_validate and the
 * error helper of json_in.c through the same messages.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_in.h"

typedef struct ref_add_item {
	cart_item_spec spec;
	cart_attr attrs[CART_ATTRS_MAX];
	void *root;
} ref_add_item;

__attribute__((format(printf, 3, 4)))
static int bad(input_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
	return -1;
}

#define BAD_JSON(err, what) bad(err, "cart.invalid_json", "%s", what)

static void ref_add_item_release(ref_add_item *req);


static int ref_cmp_keys(const void *a, const void *b)
{
	return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* -1 with err if obj has the same key twice. */
static int ref_no_duplicates(const cJSON *obj, input_error *err)
{
	cJSON *small[32], **keys = small;
	size_t n = 0, i;
	int rc = 0;

	for (cJSON *c = obj->child; c; c = c->next)
		n++;
	if (n < 2)
		return 0;
	if (n > 32 && !(keys = malloc(n * sizeof(*keys))))
		return bad(err, "cart.invalid_json", "%s", "out of memory");
	i = 0;
	for (cJSON *c = obj->child; c; c = c->next)
		keys[i++] = c;
	qsort(keys, n, sizeof(*keys), ref_cmp_keys);
	for (i = 1; i < n && !rc; i++)
		if (!strcmp(keys[i - 1]->string, keys[i]->string))
			rc = bad(err, "cart.invalid_json", "duplicate key \"%.64s\"",
				 keys[i]->string);
	if (keys != small)
		free(keys);
	return rc;
}

/* Members of obj must be among names (NULL-terminated). */
static int ref_known_fields(const cJSON *obj, const char *const *names,
			input_error *err)
{
	for (cJSON *c = obj->child; c; c = c->next) {
		const char *const *n = names;
		while (*n && strcmp(*n, c->string))
			n++;
		if (!*n)
			return bad(err, "cart.invalid_field", "unknown field \"%.64s\"",
				   c->string);
	}
	return ref_no_duplicates(obj, err);
}

/*
 * An integral JSON number.  Values beyond int64 range come back as
 * out_of_range (a well-formed number that breaks a rule, so 422 later).
 */
static int ref_integer(const cJSON *v, const char *field, int64_t min, int64_t max,
		   int64_t out_of_range, int64_t *out, input_error *err)
{
	double d;

	if (!v)
		return bad(err, "cart.invalid_field", "missing required field \"%s\"", field);
	if (!cJSON_IsNumber(v))
		return bad(err, "cart.invalid_field", "\"%s\" must be an integer", field);
	d = v->valuedouble;
	if (!isfinite(d) || d != trunc(d))
		return bad(err, "cart.invalid_field", "\"%s\" must be an integer", field);
	*out = d < (double)min || d > (double)max ? out_of_range : (int64_t)d;
	return 0;
}

static int ref_parse_root(cJSON **root, const char *body, size_t len,
		      input_error *err)
{
	*root = NULL;
	if (json_validate(body, len, err))
		return -1;
	*root = cJSON_ParseWithLength(body, len);
	if (!*root)
		return BAD_JSON(err, "request body could not be parsed");
	if (!cJSON_IsObject(*root)) {
		cJSON_Delete(*root);
		*root = NULL;
		return BAD_JSON(err, "request body must be a JSON object");
	}
	return 0;
}

static int ref_parse_price(cart_money *m, const cJSON *price, input_error *err)
{
	static const char *const fields[] = { "amount", "currency", NULL };
	const cJSON *cur;
	int64_t amount;

	if (!price)
		return bad(err, "cart.invalid_field", "missing required field \"%s\"", "unitPrice");
	if (!cJSON_IsObject(price))
		return bad(err, "cart.invalid_field", "\"%s\" must be an object", "unitPrice");
	if (ref_known_fields(price, fields, err))
		return -1;
	if (ref_integer(cJSON_GetObjectItemCaseSensitive(price, "amount"),
		    "unitPrice.amount", -CART_AMOUNT_MAX - 1, CART_AMOUNT_MAX + 1,
		    -1, &amount, err))
		return -1;
	cur = cJSON_GetObjectItemCaseSensitive(price, "currency");
	if (!cur)
		return bad(err, "cart.invalid_field", "missing required field \"%s\"",
			   "unitPrice.currency");
	if (!cJSON_IsString(cur))
		return bad(err, "cart.invalid_field", "\"%s\" must be a string",
			   "unitPrice.currency");
	m->amount = amount;
	/* A wrong-looking code is a rule violation (422), decided by the core. */
	if (strlen(cur->valuestring) == 3)
		memcpy(m->currency, cur->valuestring, 4);
	else
		strcpy(m->currency, "?");
	return 0;
}

static int ref_parse_attrs(ref_add_item *req, const cJSON *attrs, input_error *err)
{
	size_t n = 0;

	if (!attrs || cJSON_IsNull(attrs))
		return 0;
	if (!cJSON_IsObject(attrs))
		return bad(err, "cart.invalid_field", "\"%s\" must be an object of strings",
			   "attributes");
	if (ref_no_duplicates(attrs, err))
		return -1;
	for (cJSON *c = attrs->child; c; c = c->next) {
		if (!cJSON_IsString(c))
			return bad(err, "cart.invalid_field",
				   "attribute \"%.64s\" must be a string", c->string);
		n++;
	}
	/* More than allowed is a rule (422): tell the core with the count. */
	req->spec.attr_count = n;
	req->spec.attrs = req->attrs;
	if (n > CART_ATTRS_MAX) {
		req->spec.attrs = NULL;
		return 0;
	}
	n = 0;
	for (cJSON *c = attrs->child; c; c = c->next, n++) {
		req->attrs[n].key = c->string;
		req->attrs[n].value = c->valuestring;
	}
	return 0;
}

static int ref_parse_add_item(ref_add_item *out, const char *body, size_t len,
			input_error *err)
{
	static const char *const fields[] = { "itemId", "quantity", "unitPrice",
					      "name", "attributes", NULL };
	const cJSON *id, *name;
	cJSON *root;
	int64_t q;

	memset(out, 0, sizeof(*out));
	if (ref_parse_root(&root, body, len, err))
		return -1;
	out->root = root;
	if (ref_known_fields(root, fields, err))
		goto fail;
	id = cJSON_GetObjectItemCaseSensitive(root, "itemId");
	if (!id) {
		bad(err, "cart.invalid_field", "missing required field \"%s\"", "itemId");
		goto fail;
	}
	if (!cJSON_IsString(id)) {
		bad(err, "cart.invalid_field", "\"%s\" must be a string", "itemId");
		goto fail;
	}
	if (!cart_id_valid(id->valuestring)) {
		bad(err, "cart.invalid_id", "%s",
		    "itemId must be 1-128 characters of A-Z a-z 0-9 . _ : @ -");
		goto fail;
	}
	if (ref_integer(cJSON_GetObjectItemCaseSensitive(root, "quantity"), "quantity",
		    INT32_MIN, INT32_MAX, -1, &q, err) ||
	    ref_parse_price(&out->spec.unit_price,
			cJSON_GetObjectItemCaseSensitive(root, "unitPrice"), err) ||
	    ref_parse_attrs(out, cJSON_GetObjectItemCaseSensitive(root, "attributes"), err))
		goto fail;
	name = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (name && !cJSON_IsNull(name) && !cJSON_IsString(name)) {
		bad(err, "cart.invalid_field", "\"%s\" must be a string", "name");
		goto fail;
	}
	out->spec.item_id = id->valuestring;
	out->spec.quantity = (int32_t)q;
	out->spec.name = cJSON_IsString(name) ? name->valuestring : NULL;
	return 0;
fail:
	ref_add_item_release(out);
	return -1;
}

static void ref_add_item_release(ref_add_item *req)
{
	if (!req)
		return;
	cJSON_Delete(req->root);
	memset(req, 0, sizeof(*req));
}

static int ref_parse_set_quantity(int32_t *quantity, const char *body, size_t len,
			    input_error *err)
{
	static const char *const fields[] = { "quantity", NULL };
	cJSON *root;
	int64_t q;
	int rc;

	if (ref_parse_root(&root, body, len, err))
		return -1;
	rc = ref_known_fields(root, fields, err);
	if (!rc)
		rc = ref_integer(cJSON_GetObjectItemCaseSensitive(root, "quantity"),
			     "quantity", INT32_MIN, INT32_MAX, -1, &q, err);
	if (!rc)
		*quantity = (int32_t)q;
	cJSON_Delete(root);
	return rc;
}

#endif
