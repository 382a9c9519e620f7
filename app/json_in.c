#include <ctype.h>
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

/* Printable ASCII other than '"' and '\\': a string's common bytes. */
static const unsigned char ascii_plain[256] = {
	[0x20] = 1, [0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7e] = 1, [0x7f] = 1,
};

static bool scan_string(scan *s)
{
	s->p++;   /* opening quote */
	while (s->p < s->end) {
		const unsigned char *p = s->p, *end = s->end;
		unsigned c;

		while (p < end && ascii_plain[*p])
			p++;
		s->p = p;
		if (p == end)
			return false;
		c = *p;
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

/* --- the typed walk ------------------------------------------------------
 *
 * Over text json_validate accepted, so the grammar, UTF-8 and escapes are
 * known good: it reads the members of the objects it expects, decodes
 * only the strings it keeps (into the request's arena) and skips the
 * rest with the scanner.  The checks and their order are the schema's:
 * unknown fields (first in document order), then duplicate keys (the
 * first in byte order), then each field in turn.
 */

typedef struct walk {
	const unsigned char *p, *end;
	json_arena *arena;
	input_error *err;
} walk;

/*
 * One member of an object: its decoded key and where its value starts.
 * A key without escapes is its own bytes in the body (not NUL-terminated:
 * use key_len); one with escapes is decoded into the arena.
 */
typedef struct member {
	const char *key;
	size_t key_len;
	const unsigned char *value;
} member;

/* Key equals the C string name (first bytes first: the schema's names
 * all differ there). */
static bool key_is(const char *key, size_t len, const char *name)
{
	return len && key[0] == name[0] && !strncmp(name, key, len) && !name[len];
}

/* Byte order of two keys, as strcmp orders C strings (keys hold no NUL). */
static int key_cmp(const member *a, const member *b)
{
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(a->key, b->key, n);

	return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/* For error details: at most 64 bytes of a key. */
#define KEY_FMT "%.*s"
#define KEY_ARG(m) (int)((m)->key_len < 64 ? (m)->key_len : 64), (m)->key

static void walk_ws(walk *w)
{
	while (w->p < w->end &&
	       (*w->p == ' ' || *w->p == '\t' || *w->p == '\n' || *w->p == '\r'))
		w->p++;
}

/* Past the string whose opening quote is at p (validated). */
static const unsigned char *string_end(const unsigned char *p)
{
	for (p++; *p != '"'; p += *p == '\\' ? 2 : 1)
		;
	return p + 1;
}

/*
 * Past the value at w->p.  The text is validated, so this only finds
 * where the value ends: no UTF-8 or grammar checks a second time.
 */
static void skip_value(walk *w)
{
	const unsigned char *p = w->p;
	int depth = 0;

	do {
		switch (*p) {
		case '"': p = string_end(p); break;
		case '{': case '[': depth++; p++; break;
		case '}': case ']': depth--; p++; break;
		default: p++; break;   /* , : digits, literals, white space */
		}
		/* a scalar at depth 0 ends where its token does */
		if (!depth)
			while (p < w->end && (isalnum(*p) || *p == '.' || *p == '+' || *p == '-'))
				p++;
	} while (depth > 0);
	w->p = p;
}

static void put_utf8(unsigned char **o, unsigned cp)
{
	unsigned char *q = *o;

	if (cp < 0x80) {
		*q++ = (unsigned char)cp;
	} else if (cp < 0x800) {
		*q++ = (unsigned char)(0xc0 | cp >> 6);
		*q++ = (unsigned char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*q++ = (unsigned char)(0xe0 | cp >> 12);
		*q++ = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		*q++ = (unsigned char)(0x80 | (cp & 0x3f));
	} else {
		*q++ = (unsigned char)(0xf0 | cp >> 18);
		*q++ = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
		*q++ = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		*q++ = (unsigned char)(0x80 | (cp & 0x3f));
	}
	*o = q;
}

/*
 * The string at w->p (its opening quote), decoded into the arena and
 * NUL-terminated; w->p moves past it.  Decoding never lengthens a
 * string, so its raw length is room enough.  NULL if out of memory.
 */
static const char *decode_string(walk *w)
{
	const unsigned char *raw = w->p + 1, *q;
	unsigned char *out, *o;

	w->p = string_end(w->p);
	q = w->p - 1;   /* the closing quote */
	if (!(out = json_arena_alloc(w->arena, (size_t)(q - raw) + 1)))
		return NULL;
	o = out;
	while (raw < q) {
		const unsigned char *bs = memchr(raw, '\\', (size_t)(q - raw));
		size_t plain = (size_t)((bs ? bs : q) - raw);
		unsigned cp;

		memcpy(o, raw, plain);
		o += plain;
		raw += plain;
		if (raw == q)
			break;
		raw++;   /* the backslash */
		switch (*raw++) {
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			cp = (unsigned)hex4(raw);
			raw += 4;
			if (cp >= 0xd800 && cp <= 0xdbff) {   /* a pair (validated) */
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     ((unsigned)hex4(raw + 2) - 0xdc00);
				raw += 6;
			}
			put_utf8(&o, cp);
			break;
		default: *o++ = raw[-1]; break;   /* " \ / */
		}
	}
	*o = '\0';
	return (const char *)out;
}

#define OOM(err) bad(err, "cart.invalid_json", "%s", "out of memory")

/*
 * The members of the object at w->p, in document order, into *out (the
 * arena; *n of them).  A key not among names (NULL: any key) is an
 * unknown field: the first such is the error.  With names, keys without
 * escapes are not copied (the schema only compares them); without
 * (attributes, which are kept), every key is decoded and NUL-terminated.
 */
static int read_members(walk *w, const char *const *names, member **out,
			size_t *n, input_error *err)
{
	size_t cap = 8, count = 0;
	member *m = json_arena_alloc(w->arena, cap * sizeof(*m));

	if (!m)
		return OOM(err);
	w->p++;   /* { */
	walk_ws(w);
	while (*w->p != '}') {
		const unsigned char *raw, *end;
		member this;

		walk_ws(w);
		raw = w->p + 1;
		end = string_end(w->p);
		this.key_len = (size_t)(end - 1 - raw);
		if (names && !memchr(raw, '\\', this.key_len)) {
			this.key = (const char *)raw;
			w->p = end;
		} else {
			if (!(this.key = decode_string(w)))
				return OOM(err);
			this.key_len = strlen(this.key);
		}
		if (names) {
			const char *const *k = names;
			while (*k && !key_is(this.key, this.key_len, *k))
				k++;
			if (!*k)
				return bad(err, "cart.invalid_field", "unknown field \"" KEY_FMT "\"",
					   KEY_ARG(&this));
		}
		walk_ws(w);
		w->p++;   /* : */
		walk_ws(w);
		if (count == cap) {
			member *grown = json_arena_alloc(w->arena, 2 * cap * sizeof(*m));
			if (!grown)
				return OOM(err);
			memcpy(grown, m, count * sizeof(*m));
			m = grown;
			cap *= 2;
		}
		this.value = w->p;
		m[count++] = this;
		skip_value(w);
		walk_ws(w);
		if (*w->p == ',')
			w->p++;
	}
	w->p++;   /* } */
	*out = m;
	*n = count;
	return 0;
}

static int cmp_members(const void *a, const void *b)
{
	return key_cmp(a, b);
}

/*
 * -1 with err if two members share a key: the first such in byte order.
 * Few members (every body the schema accepts) are compared pairwise;
 * many are sorted.
 */
static int no_duplicates(const member *m, size_t n, json_arena *arena,
			 input_error *err)
{
	const member *dup = NULL;
	member *sorted;

	if (n < 2)
		return 0;
	if (n <= 16) {
		for (size_t i = 0; i < n; i++)
			for (size_t j = i + 1; j < n; j++)
				if (m[i].key_len == m[j].key_len && !key_cmp(&m[i], &m[j]) &&
				    (!dup || key_cmp(&m[i], dup) < 0))
					dup = &m[i];
	} else {
		if (!(sorted = json_arena_alloc(arena, n * sizeof(*sorted))))
			return OOM(err);
		memcpy(sorted, m, n * sizeof(*sorted));
		qsort(sorted, n, sizeof(*sorted), cmp_members);
		for (size_t i = 1; i < n && !dup; i++)
			if (!key_cmp(&sorted[i - 1], &sorted[i]))
				dup = &sorted[i];
	}
	if (dup)
		return bad(err, "cart.invalid_json", "duplicate key \"" KEY_FMT "\"", KEY_ARG(dup));
	return 0;
}

/* The value of key among m, NULL if absent (the first, as cJSON did). */
static const unsigned char *find(const member *m, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (key_is(m[i].key, m[i].key_len, key))
			return m[i].value;
	return NULL;
}

static bool is_number(const unsigned char *v)
{
	return *v == '-' || (*v >= '0' && *v <= '9');
}

/*
 * v[0..n) as a double if it is an optional '-' and at most 15 digits:
 * such a value is exact in a double, so this is what strtod returns.
 */
static bool plain_integer(const unsigned char *v, size_t n, double *out)
{
	bool neg = *v == '-';
	int64_t x = 0;

	if (n - neg == 0 || n - neg > 15)
		return false;
	for (size_t i = neg; i < n; i++) {
		if (!isdigit(v[i]))
			return false;
		x = x * 10 + (v[i] - '0');
	}
	*out = neg ? -(double)x : (double)x;
	return true;
}

/*
 * An integral JSON number (the value at v; NULL: absent), read as a
 * double as before, so 2.0 and 1e3 are integers and 2.5 is not.  Values
 * beyond [min, max] come back as out_of_range (a well-formed number that
 * breaks a rule, so 422 later).
 */
static int integer(walk *w, const unsigned char *v, const char *field,
		   int64_t min, int64_t max, int64_t out_of_range, int64_t *out,
		   input_error *err)
{
	char small[64], *text = small;
	size_t n = 0;
	double d;

	if (!v)
		return bad(err, "cart.invalid_field", "missing required field \"%s\"", field);
	if (!is_number(v))
		return bad(err, "cart.invalid_field", "\"%s\" must be an integer", field);
	while (v + n < w->end && v[n] && (isdigit(v[n]) || strchr("+-.eE", v[n])))
		n++;
	if (n <= 16 && plain_integer(v, n, &d)) {
		/* exact, as strtod would read it */
	} else {
		if (n >= sizeof(small) && !(text = json_arena_alloc(w->arena, n + 1)))
			return OOM(err);
		memcpy(text, v, n);
		text[n] = '\0';
		d = strtod(text, NULL);
	}
	if (!isfinite(d) || d != trunc(d))
		return bad(err, "cart.invalid_field", "\"%s\" must be an integer", field);
	*out = d < (double)min || d > (double)max ? out_of_range : (int64_t)d;
	return 0;
}

/* A string value at v (else NULL), decoded. */
static int string_value(walk *w, const unsigned char *v, const char **out,
			input_error *err)
{
	w->p = v;
	if (!(*out = decode_string(w)))
		return OOM(err);
	return 0;
}

/* Opens the body: validated, one object; its members into *m, *n. */
static int walk_root(walk *w, const char *body, size_t len,
		     const char *const *names, member **m, size_t *n,
		     input_error *err)
{
	if (json_validate(body, len, err))
		return -1;
	w->p = (const unsigned char *)body;
	w->end = w->p + len;
	w->err = err;
	walk_ws(w);
	if (*w->p != '{')
		return BAD_JSON(err, "request body must be a JSON object");
	if (read_members(w, names, m, n, err) ||
	    no_duplicates(*m, *n, w->arena, err))
		return -1;
	return 0;
}

static int parse_price(walk *w, cart_money *money, const unsigned char *price,
		       input_error *err)
{
	static const char *const fields[] = { "amount", "currency", NULL };
	const unsigned char *cur;
	const char *code;
	member *m;
	size_t n;
	int64_t amount;

	if (!price)
		return bad(err, "cart.invalid_field", "missing required field \"%s\"", "unitPrice");
	if (*price != '{')
		return bad(err, "cart.invalid_field", "\"%s\" must be an object", "unitPrice");
	w->p = price;
	if (read_members(w, fields, &m, &n, err) || no_duplicates(m, n, w->arena, err))
		return -1;
	if (integer(w, find(m, n, "amount"), "unitPrice.amount",
		    -CART_AMOUNT_MAX - 1, CART_AMOUNT_MAX + 1, -1, &amount, err))
		return -1;
	cur = find(m, n, "currency");
	if (!cur)
		return bad(err, "cart.invalid_field", "missing required field \"%s\"",
			   "unitPrice.currency");
	if (*cur != '"')
		return bad(err, "cart.invalid_field", "\"%s\" must be a string",
			   "unitPrice.currency");
	if (string_value(w, cur, &code, err))
		return -1;
	money->amount = amount;
	/* A wrong-looking code is a rule violation (422), decided by the core. */
	if (strlen(code) == 3)
		memcpy(money->currency, code, 4);
	else
		strcpy(money->currency, "?");
	return 0;
}

static int parse_attrs(walk *w, add_item_req *req, const unsigned char *attrs,
		       input_error *err)
{
	member *m;
	size_t n;

	if (!attrs || *attrs == 'n')
		return 0;
	if (*attrs != '{')
		return bad(err, "cart.invalid_field", "\"%s\" must be an object of strings",
			   "attributes");
	w->p = attrs;
	if (read_members(w, NULL, &m, &n, err) || no_duplicates(m, n, w->arena, err))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (*m[i].value != '"')
			return bad(err, "cart.invalid_field",
				   "attribute \"" KEY_FMT "\" must be a string", KEY_ARG(&m[i]));
	/* More than allowed is a rule (422): tell the core with the count. */
	req->spec.attr_count = n;
	req->spec.attrs = req->attrs;
	if (n > CART_ATTRS_MAX) {
		req->spec.attrs = NULL;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		req->attrs[i].key = m[i].key;
		if (string_value(w, m[i].value, &req->attrs[i].value, err))
			return -1;
	}
	return 0;
}

int json_parse_add_item(add_item_req *out, const char *body, size_t len,
			input_error *err)
{
	static const char *const fields[] = { "itemId", "quantity", "unitPrice",
					      "name", "attributes", NULL };
	const unsigned char *id, *name;
	const char *item_id, *name_str = NULL;
	walk w = { .arena = &out->arena };
	member *m;
	size_t n;
	int64_t q;

	memset(out, 0, offsetof(add_item_req, arena));   /* not the arena's bytes */
	json_arena_init(&out->arena);
	if (walk_root(&w, body, len, fields, &m, &n, err))
		goto fail;
	id = find(m, n, "itemId");
	if (!id) {
		bad(err, "cart.invalid_field", "missing required field \"%s\"", "itemId");
		goto fail;
	}
	if (*id != '"') {
		bad(err, "cart.invalid_field", "\"%s\" must be a string", "itemId");
		goto fail;
	}
	if (string_value(&w, id, &item_id, err))
		goto fail;
	if (!cart_id_valid(item_id)) {
		bad(err, "cart.invalid_id", "%s",
		    "itemId must be 1-128 characters of A-Z a-z 0-9 . _ : @ -");
		goto fail;
	}
	if (integer(&w, find(m, n, "quantity"), "quantity", INT32_MIN, INT32_MAX,
		    -1, &q, err) ||
	    parse_price(&w, &out->spec.unit_price, find(m, n, "unitPrice"), err) ||
	    parse_attrs(&w, out, find(m, n, "attributes"), err))
		goto fail;
	name = find(m, n, "name");
	if (name && *name != 'n' && *name != '"') {
		bad(err, "cart.invalid_field", "\"%s\" must be a string", "name");
		goto fail;
	}
	if (name && *name == '"' && string_value(&w, name, &name_str, err))
		goto fail;
	out->spec.item_id = item_id;
	out->spec.quantity = (int32_t)q;
	out->spec.name = name_str;
	return 0;
fail:
	add_item_req_release(out);
	return -1;
}

void add_item_req_release(add_item_req *req)
{
	if (!req)
		return;
	json_arena_release(&req->arena);
	memset(req, 0, offsetof(add_item_req, arena));
}

int json_parse_set_quantity(int32_t *quantity, const char *body, size_t len,
			    input_error *err)
{
	static const char *const fields[] = { "quantity", NULL };
	json_arena arena;
	walk w = { .arena = &arena };
	member *m;
	size_t n;
	int64_t q;
	int rc;

	json_arena_init(&arena);
	rc = walk_root(&w, body, len, fields, &m, &n, err);
	if (!rc)
		rc = integer(&w, find(m, n, "quantity"), "quantity", INT32_MIN,
			     INT32_MAX, -1, &q, err);
	if (!rc)
		*quantity = (int32_t)q;
	json_arena_release(&arena);
	return rc;
}
