#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_in.h"

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

/* --- the validating scan ------------------------------------------------ */

typedef struct scan {
	const unsigned char *p, *end;
	int depth;
	input_error *err;
} scan;

static void skip_ws(scan *s)
{
	while (s->p < s->end &&
	       (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* One UTF-8 sequence at s->p (shortest form, no surrogates, <= U+10FFFF). */
static bool utf8_char(scan *s)
{
	const unsigned char *p = s->p;
	unsigned c = *p;
	int n;
	unsigned cp, min;

	if (c < 0x80) {
		s->p++;
		return true;
	}
	if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; min = 0x80; }
	else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; min = 0x800; }
	else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; min = 0x10000; }
	else return false;
	if (s->end - p <= n)
		return false;
	for (int i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return false;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return false;
	s->p += n + 1;
	return true;
}

static int hex4(const unsigned char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		int c = p[i], d;
		if (c >= '0' && c <= '9') d = c - '0';
		else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
		else return -1;
		v = v * 16 + d;
	}
	return v;
}

/* \uXXXX at s->p (after the backslash and u); pairs surrogates. */
static bool unicode_escape(scan *s)
{
	int hi, lo;

	if (s->end - s->p < 4 || (hi = hex4(s->p)) < 0)
		return false;
	s->p += 4;
	if (hi == 0)
		return false;   /* NUL would cut the C string short */
	if (hi >= 0xdc00 && hi <= 0xdfff)
		return false;
	if (hi < 0xd800 || hi > 0xdbff)
		return true;
	if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
	    (lo = hex4(s->p + 2)) < 0xdc00 || lo > 0xdfff)
		return false;
	s->p += 6;
	return true;
}

static bool scan_string(scan *s)
{
	s->p++;   /* opening quote */
	while (s->p < s->end) {
		unsigned c = *s->p;
		if (c == '"') {
			s->p++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			if (++s->p >= s->end)
				return false;
			c = *s->p++;
			if (c == 'u') {
				if (!unicode_escape(s))
					return false;
			} else if (!strchr("\"\\/bfnrt", (int)c) || c == 0) {
				return false;
			}
			continue;
		}
		if (!utf8_char(s))
			return false;
	}
	return false;
}

static bool digits(scan *s)
{
	const unsigned char *start = s->p;
	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > start;
}

static bool scan_number(scan *s)
{
	if (*s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (!digits(s))
		return false;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (!digits(s))
			return false;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (!digits(s))
			return false;
	}
	return true;
}

static bool literal(scan *s, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return false;
	s->p += n;
	return true;
}

static bool scan_value(scan *s);

/* Object or array at s->p; close is '}' or ']'. */
static bool scan_container(scan *s, unsigned char close)
{
	bool object = close == '}';

	if (++s->depth > JSON_MAX_DEPTH) {
		bad(s->err, "cart.invalid_json", "JSON nesting deeper than %s levels", "8");
		return false;
	}
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		s->depth--;
		return true;
	}
	for (;;) {
		if (object) {
			skip_ws(s);
			if (s->p >= s->end || *s->p != '"' || !scan_string(s))
				return false;
			skip_ws(s);
			if (s->p >= s->end || *s->p++ != ':')
				return false;
		}
		if (!scan_value(s))
			return false;
		skip_ws(s);
		if (s->p >= s->end)
			return false;
		if (*s->p == close) {
			s->p++;
			s->depth--;
			return true;
		}
		if (*s->p++ != ',')
			return false;
	}
}

static bool scan_value(scan *s)
{
	skip_ws(s);
	if (s->p >= s->end)
		return false;
	switch (*s->p) {
	case '{': return scan_container(s, '}');
	case '[': return scan_container(s, ']');
	case '"': return scan_string(s);
	case 't': return literal(s, "true");
	case 'f': return literal(s, "false");
	case 'n': return literal(s, "null");
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return scan_number(s);
		return false;
	}
}

int json_validate(const char *text, size_t len, input_error *err)
{
	scan s = { (const unsigned char *)text, (const unsigned char *)text + len,
		   0, err };

	err->code = NULL;
	if (scan_value(&s)) {
		skip_ws(&s);
		if (s.p == s.end)
			return 0;
	}
	if (!err->code) {
		err->code = "cart.invalid_json";
		snprintf(err->detail, sizeof(err->detail),
			 "request body is not well-formed UTF-8 JSON (at byte %zu)",
			 (size_t)(s.p - (const unsigned char *)text));
	}
	return -1;
}

/* --- schema ------------------------------------------------------------- */

static int cmp_keys(const void *a, const void *b)
{
	return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* -1 with err if obj has the same key twice. */
static int no_duplicates(const cJSON *obj, input_error *err)
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
	qsort(keys, n, sizeof(*keys), cmp_keys);
	for (i = 1; i < n && !rc; i++)
		if (!strcmp(keys[i - 1]->string, keys[i]->string))
			rc = bad(err, "cart.invalid_json", "duplicate key \"%.64s\"",
				 keys[i]->string);
	if (keys != small)
		free(keys);
	return rc;
}

/* Members of obj must be among names (NULL-terminated). */
static int known_fields(const cJSON *obj, const char *const *names,
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
	return no_duplicates(obj, err);
}

/*
 * An integral JSON number.  Values beyond int64 range come back as
 * out_of_range (a well-formed number that breaks a rule, so 422 later).
 */
static int integer(const cJSON *v, const char *field, int64_t min, int64_t max,
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

/* On failure the arena is released; on success the caller releases it
 * after deleting the tree. */
static int parse_root(cJSON **root, json_arena *arena, const char *body,
		      size_t len, input_error *err)
{
	*root = NULL;
	if (json_validate(body, len, err))
		return -1;
	*root = json_arena_parse(arena, body, len);
	if (!*root) {
		json_arena_release(arena);
		return BAD_JSON(err, "request body could not be parsed");
	}
	if (!cJSON_IsObject(*root)) {
		cJSON_Delete(*root);
		json_arena_release(arena);
		*root = NULL;
		return BAD_JSON(err, "request body must be a JSON object");
	}
	return 0;
}

static int parse_price(cart_money *m, const cJSON *price, input_error *err)
{
	static const char *const fields[] = { "amount", "currency", NULL };
	const cJSON *cur;
	int64_t amount;

	if (!price)
		return bad(err, "cart.invalid_field", "missing required field \"%s\"", "unitPrice");
	if (!cJSON_IsObject(price))
		return bad(err, "cart.invalid_field", "\"%s\" must be an object", "unitPrice");
	if (known_fields(price, fields, err))
		return -1;
	if (integer(cJSON_GetObjectItemCaseSensitive(price, "amount"),
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

static int parse_attrs(add_item_req *req, const cJSON *attrs, input_error *err)
{
	size_t n = 0;

	if (!attrs || cJSON_IsNull(attrs))
		return 0;
	if (!cJSON_IsObject(attrs))
		return bad(err, "cart.invalid_field", "\"%s\" must be an object of strings",
			   "attributes");
	if (no_duplicates(attrs, err))
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

int json_parse_add_item(add_item_req *out, const char *body, size_t len,
			input_error *err)
{
	static const char *const fields[] = { "itemId", "quantity", "unitPrice",
					      "name", "attributes", NULL };
	const cJSON *id, *name;
	cJSON *root;
	int64_t q;

	memset(out, 0, offsetof(add_item_req, arena));   /* not the arena's bytes */
	if (parse_root(&root, &out->arena, body, len, err))
		return -1;
	out->root = root;
	if (known_fields(root, fields, err))
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
	if (integer(cJSON_GetObjectItemCaseSensitive(root, "quantity"), "quantity",
		    INT32_MIN, INT32_MAX, -1, &q, err) ||
	    parse_price(&out->spec.unit_price,
			cJSON_GetObjectItemCaseSensitive(root, "unitPrice"), err) ||
	    parse_attrs(out, cJSON_GetObjectItemCaseSensitive(root, "attributes"), err))
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
	add_item_req_release(out);
	return -1;
}

void add_item_req_release(add_item_req *req)
{
	if (!req)
		return;
	cJSON_Delete(req->root);
	json_arena_release(&req->arena);
	memset(req, 0, offsetof(add_item_req, arena));
}

int json_parse_set_quantity(int32_t *quantity, const char *body, size_t len,
			    input_error *err)
{
	static const char *const fields[] = { "quantity", NULL };
	json_arena arena;
	cJSON *root;
	int64_t q;
	int rc;

	if (parse_root(&root, &arena, body, len, err))
		return -1;
	rc = known_fields(root, fields, err);
	if (!rc)
		rc = integer(cJSON_GetObjectItemCaseSensitive(root, "quantity"),
			     "quantity", INT32_MIN, INT32_MAX, -1, &q, err);
	if (!rc)
		*quantity = (int32_t)q;
	cJSON_Delete(root);
	json_arena_release(&arena);
	return rc;
}
