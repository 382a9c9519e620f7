/*
 * The typed reader of a GetItem answer for a cart (issue 10): one pass
 * over the body text straight into a cart, instead of a cJSON tree (a
 * node and a copy per value, then lookups by name and a free per node:
 * ~50k of the ~235k instructions of a DynamoDB GET; this reader ~15k).
 *
 * It reads the shapes this adapter writes and nothing else.  Anything it
 * does not know for sure (an escape or a control byte in any string, a
 * number DynamoDB would not send, a key twice, an attribute of another
 * type, a cart the core refuses, nesting past READ_DEPTH_MAX) makes it
 * decline, and the caller decodes the same bytes with cJSON
 * (dynamo_repo.c: decode_cart), which keeps the one meaning, and the
 * error and log line, of every odd item.  So for every body it accepts,
 * the cart is the one decode_cart builds: tests/fuzz/fuzz_dynamo_item.c
 * checks that on every input it tries.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dynamodb/dynamo_codec.h"

#define READ_DEPTH_MAX 64

typedef struct rd {
	const char *p, *end;
	char *scratch;   /* every string kept, NUL-terminated: len + 1 bytes */
	size_t used;
	int depth;
} rd;

/* A value's place, to be read later (the cart's lines, after currency). */
typedef struct span {
	const char *at;
	bool seen;
} span;

static void ws(rd *r)
{
	while (r->p < r->end &&
	       (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* The next non-blank byte is c: step past it.  DynamoDB sends no blanks,
 * so the byte at hand is tried first. */
static inline bool eat(rd *r, char c)
{
	if (r->p < r->end && *r->p == c) {
		r->p++;
		return true;
	}
	ws(r);
	if (r->p < r->end && *r->p == c) {
		r->p++;
		return true;
	}
	return false;
}

/*
 * A string with neither escapes nor control bytes: *raw and *len its
 * bytes (either may be NULL); copied NUL-terminated into the scratch when
 * out is set.  Every string, kept or skipped, is read here: a backslash
 * anywhere declines the body (our items hold none; cJSON decodes, and
 * refuses some, \u escapes, which this reader need not repeat).
 */
static bool plain_str(rd *r, const char **raw, size_t *len, const char **out)
{
	/* the bytes that end a plain string's run: '"', '\\', below 0x20 */
	static const unsigned char stop[256] = {
		[0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1,
	};
	const unsigned char *p, *end = (const unsigned char *)r->end, *s;

	if (!eat(r, '"'))
		return false;
	for (s = p = (const unsigned char *)r->p; p < end && !stop[*p]; p++)
		;
	if (p == end || *p != '"')
		return false;
	r->p = (const char *)p + 1;
	if (raw)
		*raw = (const char *)s;
	if (len)
		*len = (size_t)(p - s);
	if (out) {
		char *d = r->scratch + r->used;
		memcpy(d, s, (size_t)(p - s));
		d[p - s] = '\0';
		r->used += (size_t)(p - s) + 1;
		*out = d;
	}
	return true;
}

/* The key of a member and its colon. */
static bool key(rd *r, const char **k, size_t *klen)
{
	return plain_str(r, k, klen, NULL) && eat(r, ':');
}

static bool key_is(const char *k, size_t n, const char *name)
{
	return strlen(name) == n && !memcmp(k, name, n);
}

/* After a member: true and *more if a ',' follows, false if neither. */
static bool next(rd *r, bool *more)
{
	if (eat(r, ',')) {
		*more = true;
		return true;
	}
	*more = false;
	return eat(r, '}');
}

/* --- skipping what is not read (checked as JSON all the same) ---------- */

static bool skip(rd *r);

static bool digit(const rd *r)
{
	return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

/* A JSON number (the grammar exactly). */
static bool skip_num(rd *r)
{
	if (r->p < r->end && *r->p == '-')
		r->p++;
	if (!digit(r))
		return false;
	if (*r->p++ != '0')
		while (digit(r))
			r->p++;
	if (r->p < r->end && *r->p == '.') {
		r->p++;
		if (!digit(r))
			return false;
		while (digit(r))
			r->p++;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		if (!digit(r))
			return false;
		while (digit(r))
			r->p++;
	}
	return true;
}

static bool skip_word(rd *r, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n))
		return false;
	r->p += n;
	return true;
}

static bool skip_container(rd *r, char close)
{
	bool more = true;

	if (++r->depth > READ_DEPTH_MAX)
		return false;
	r->p++;
	if (eat(r, close)) {
		r->depth--;
		return true;
	}
	while (more) {
		if (close == '}') {
			const char *k;
			size_t n;

			if (!key(r, &k, &n))
				return false;
		}
		if (!skip(r))
			return false;
		if (eat(r, ','))
			continue;
		if (!eat(r, close))
			return false;
		more = false;
	}
	r->depth--;
	return true;
}

static bool skip(rd *r)
{
	ws(r);
	if (r->p == r->end)
		return false;
	switch (*r->p) {
	case '"': return plain_str(r, NULL, NULL, NULL);
	case '{': return skip_container(r, '}');
	case '[': return skip_container(r, ']');
	case 't': return skip_word(r, "true");
	case 'f': return skip_word(r, "false");
	case 'n': return skip_word(r, "null");
	default: return skip_num(r);
	}
}

/* --- attribute values -------------------------------------------------- */

/* {"S": "<plain>"} exactly. */
static bool av_s(rd *r, const char **out)
{
	const char *k;
	size_t n;

	return eat(r, '{') && key(r, &k, &n) && key_is(k, n, "S") &&
	       plain_str(r, NULL, NULL, out) && eat(r, '}');
}

/*
 * {"N": "<int64>"} exactly, the number an optional '-' and 1-18 digits:
 * what strtoll reads the same and DynamoDB sends for our integers.
 */
static bool av_n(rd *r, int64_t *out)
{
	const char *k, *s;
	size_t n, len, i;
	int64_t v = 0;

	if (!eat(r, '{') || !key(r, &k, &n) || !key_is(k, n, "N") ||
	    !plain_str(r, &s, &len, NULL) || !eat(r, '}'))
		return false;
	i = len && s[0] == '-';
	if (len == i || len - i > 18)
		return false;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = s[0] == '-' ? -v : v;
	return true;
}

/* {"M": {name: {"S": value}, ...}} into attrs (document order). */
static bool av_attrs(rd *r, cart_attr *attrs, size_t *count)
{
	const char *k;
	size_t n;
	bool more = true;

	*count = 0;
	if (!eat(r, '{') || !key(r, &k, &n) || !key_is(k, n, "M") || !eat(r, '{'))
		return false;
	if (!eat(r, '}')) {
		while (more) {
			if (*count >= CART_ATTRS_MAX ||
			    !plain_str(r, NULL, NULL, &attrs[*count].key) || !eat(r, ':') ||
			    !av_s(r, &attrs[*count].value) || !next(r, &more))
				return false;
			(*count)++;
		}
	}
	return eat(r, '}');
}

/* --- the cart ---------------------------------------------------------- */

/* One element of "items": {"M": {id, q, p, t, u?, n?, a?}}. */
static bool read_line(rd *r, cart *c, const char *currency, int64_t created)
{
	cart_attr attrs[CART_ATTRS_MAX];
	cart_item_spec spec = { 0 };
	bool id = false, q = false, p = false, t = false, u = false, nm = false,
	     a = false, more = true;
	int64_t qty = 0, added = 0, updated = 0;
	const char *k;
	size_t n;

	if (!eat(r, '{') || !key(r, &k, &n) || !key_is(k, n, "M") || !eat(r, '{'))
		return false;
	while (more) {   /* an empty map has no key: declined below */
		bool ok, *seen;

		if (!key(r, &k, &n))
			return false;
		seen = NULL;
		if (n == 2 && !memcmp(k, "id", 2)) {
			seen = &id;
			ok = av_s(r, &spec.item_id);
		} else if (n == 1 && *k == 'q') {
			seen = &q;
			ok = av_n(r, &qty);
		} else if (n == 1 && *k == 'p') {
			seen = &p;
			ok = av_n(r, &spec.unit_price.amount);
		} else if (n == 1 && *k == 't') {
			seen = &t;
			ok = av_n(r, &added);
		} else if (n == 1 && *k == 'u') {
			seen = &u;
			ok = av_n(r, &updated);
		} else if (n == 1 && *k == 'n') {
			seen = &nm;
			ok = av_s(r, &spec.name);
		} else if (n == 1 && *k == 'a') {
			seen = &a;
			ok = av_attrs(r, attrs, &spec.attr_count);
		} else {
			ok = skip(r);
		}
		if (!ok || (seen && *seen))
			return false;   /* a key twice: cJSON reads the first */
		if (seen)
			*seen = true;
		if (!next(r, &more))
			return false;
	}
	if (!eat(r, '}') || !id || !q || !p || !t || qty < 1 || qty > INT32_MAX)
		return false;
	if (!u)
		updated = added;
	spec.quantity = (int32_t)qty;
	memcpy(spec.unit_price.currency, currency, 4);
	spec.attrs = attrs;
	return cart_dynamo_line_times(created, &added, &updated) &&
	       !cart_restore_item(c, &spec, added, updated);
}

/* The item's attributes this reader uses; the rest is skipped. */
typedef struct item_fields {
	bool version, cart_id, created, updated, expires, currency;
	int64_t v, created_at, updated_at, expires_at;   /* expires_at: s, then ms */
	const char *cid, *cur;
	span items;
} item_fields;

static int read_item(rd *r, const char *user_id, cart **out)
{
	item_fields f = { 0 };
	bool more = true;
	const char *k;
	size_t n;
	cart *c;

	if (!eat(r, '{'))
		return CART_DYNAMO_DECLINED;
	if (eat(r, '}'))
		return CART_ENOTFOUND;   /* no version: nothing stored */
	while (more) {
		bool ok, *seen = NULL;

		if (!key(r, &k, &n))
			return CART_DYNAMO_DECLINED;
		if (key_is(k, n, "version")) {
			seen = &f.version;
			ok = av_n(r, &f.v);
		} else if (key_is(k, n, "cartId")) {
			seen = &f.cart_id;
			ok = av_s(r, &f.cid);
		} else if (key_is(k, n, "createdAt")) {
			seen = &f.created;
			ok = av_n(r, &f.created_at);
		} else if (key_is(k, n, "updatedAt")) {
			seen = &f.updated;
			ok = av_n(r, &f.updated_at);
		} else if (key_is(k, n, "expiresAt")) {
			seen = &f.expires;
			ok = av_n(r, &f.expires_at);
		} else if (key_is(k, n, "currency")) {
			seen = &f.currency;
			ok = av_s(r, &f.cur);
		} else if (key_is(k, n, "items")) {
			seen = &f.items.seen;
			ws(r);
			f.items.at = r->p;
			ok = skip(r);
		} else {
			ok = skip(r);
		}
		if (!ok || (seen && *seen))
			return CART_DYNAMO_DECLINED;
		if (seen)
			*seen = true;
		if (!next(r, &more))
			return CART_DYNAMO_DECLINED;
	}
	if (!f.version)
		return CART_ENOTFOUND;   /* only idempotency records so far */
	if (!f.cart_id) {
		/* decode_cart reads no times for a cart without an identity */
		f.created_at = f.updated_at = f.expires_at = 0;
	} else if (!f.created || !f.updated || !f.expires ||
		   !cart_dynamo_expiry_ms(f.expires_at, &f.expires_at)) {
		return CART_DYNAMO_DECLINED;
	}
	if (f.v < 1 || (f.items.seen && !f.cart_id))
		return CART_DYNAMO_DECLINED;
	if (cart_new(&c, user_id))
		return CART_ENOMEM;
	if (cart_restore_meta(c, f.cart_id ? f.cid : NULL, f.v, f.created_at,
			      f.updated_at, f.expires_at))
		goto decline;
	if (f.items.seen) {
		rd lines = *r;
		const char *lk;
		size_t ln;

		lines.p = f.items.at;
		if (!eat(&lines, '{') || !key(&lines, &lk, &ln) || !key_is(lk, ln, "L") ||
		    !eat(&lines, '['))
			goto decline;
		if (!eat(&lines, ']')) {
			do {
				if (!f.currency || strlen(f.cur) != 3 ||
				    !read_line(&lines, c, f.cur, f.created_at))
					goto decline;
			} while (eat(&lines, ','));
			if (!eat(&lines, ']'))
				goto decline;
		}
		if (!eat(&lines, '}'))
			goto decline;
		r->used = lines.used;
	}
	*out = c;
	return CART_OK;
decline:
	cart_free(c);
	return CART_DYNAMO_DECLINED;
}

/* ConsumedCapacity: {"CapacityUnits": <number>, ...}; others skipped. */
static bool read_capacity(rd *r, double *units)
{
	bool more = true, seen = false;
	const char *k;
	size_t n;

	if (!eat(r, '{'))
		return false;
	if (eat(r, '}'))
		return true;
	while (more) {
		if (!key(r, &k, &n))
			return false;
		if (key_is(k, n, "CapacityUnits")) {
			char num[64];
			const char *s;

			ws(r);
			s = r->p;
			if (seen || !skip_num(r) || (size_t)(r->p - s) >= sizeof(num))
				return false;
			memcpy(num, s, (size_t)(r->p - s));
			num[r->p - s] = '\0';
			*units = strtod(num, NULL);
			seen = true;
		} else if (!skip(r)) {
			return false;
		}
		if (!next(r, &more))
			return false;
	}
	return true;
}

/* The answer's members; the Item is read where it stands, in one pass. */
static int read_answer(rd *r, const char *user_id, cart **c, double *units)
{
	bool more = true, item = false, cc = false;
	int rc = CART_ENOTFOUND;   /* no Item: a user never seen */
	const char *k;
	size_t n;

	if (!eat(r, '{'))
		return CART_DYNAMO_DECLINED;
	if (!eat(r, '}')) {
		while (more) {
			if (!key(r, &k, &n))
				return CART_DYNAMO_DECLINED;
			if (key_is(k, n, "Item")) {
				if (item)
					return CART_DYNAMO_DECLINED;
				item = true;
				rc = read_item(r, user_id, c);
				if (rc == CART_DYNAMO_DECLINED || rc == CART_ENOMEM)
					return rc;
			} else if (key_is(k, n, "ConsumedCapacity")) {
				if (cc || !read_capacity(r, units))
					return CART_DYNAMO_DECLINED;
				cc = true;
			} else if (!skip(r)) {
				return CART_DYNAMO_DECLINED;
			}
			if (!next(r, &more))
				return CART_DYNAMO_DECLINED;
		}
	}
	ws(r);
	if (r->p != r->end)
		return CART_DYNAMO_DECLINED;   /* trailing bytes: cJSON's call */
	return rc;
}

int cart_dynamo_read_get(const char *body, size_t len, const char *user_id,
			 cart **out, double *units)
{
	rd r = { body, body + len, NULL, 0, 0 };
	cart *c = NULL;
	int rc;

	*out = NULL;
	*units = 0;
	if (!body)
		return CART_DYNAMO_DECLINED;
	/* Every string kept is shorter than the body: one allocation. */
	if (!(r.scratch = malloc(len + 1)))
		return CART_ENOMEM;
	rc = read_answer(&r, user_id, &c, units);
	free(r.scratch);   /* the cart copied what it keeps */
	if (rc == CART_OK)
		*out = c;
	else
		cart_free(c);
	return rc;
}
