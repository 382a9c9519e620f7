#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "render.h"

/*
 * The cart document.  A line whose strings need no escaping (ids, names,
 * currencies and attributes of printable text without '"' or '\\': nearly
 * all) and whose times are before the year 10000 is written in one
 * reservation of a bound on its size, without a check per write; any
 * other line, and a line whose bound would pass the buffer's maximum,
 * takes the checked writers of buf.h.  Both write the same bytes
 * (tests/unit/test_render.c, fuzz_render).
 */

static bool time_plain(int64_t ms)
{
	return ms < BUF_TIME_MAX;
}

static char *put_plain(char *d, const char *s, size_t n)
{
	*d++ = '"';
	memcpy(d, s, n);
	d += n;
	*d++ = '"';
	return d;
}

/* {"amount":N,"currency":"XYZ"}: at most 48 bytes (null for ""); 58 kept. */
#define MONEY_MAX 58
static char *put_money(char *d, const cart_money *m, size_t ncur)
{
	d = PUT_LIT(d, "{\"amount\":");
	d = put_i64(d, m->amount);
	d = PUT_LIT(d, ",\"currency\":");
	d = m->currency[0] ? put_plain(d, m->currency, ncur) : PUT_LIT(d, "null");
	*d++ = '}';
	return d;
}

static void money(buf *b, cart_money m)
{
	buf_puts(b, "{\"amount\":");
	buf_json_i64(b, m.amount);
	buf_puts(b, ",\"currency\":");
	buf_json_str(b, m.currency[0] ? m.currency : NULL);
	buf_puts(b, "}");
}

static void render_item_checked(buf *b, const cart_item *it)
{
	buf_puts(b, "{\"itemId\":");
	buf_json_str(b, cart_item_id(it));
	buf_puts(b, ",\"quantity\":");
	buf_json_i64(b, cart_item_quantity(it));
	buf_puts(b, ",\"unitPrice\":");
	money(b, cart_item_unit_price(it));
	buf_puts(b, ",\"lineTotal\":");
	money(b, cart_item_line_total(it));
	buf_puts(b, ",\"name\":");
	buf_json_str(b, cart_item_name(it));
	buf_puts(b, ",\"attributes\":{");
	for (size_t i = 0; i < cart_item_attr_count(it); i++) {
		cart_attr a = cart_item_attr_at(it, i);
		if (i)
			buf_puts(b, ",");
		buf_json_str(b, a.key);
		buf_puts(b, ":");
		buf_json_str(b, a.value);
	}
	buf_puts(b, "},\"addedAt\":");
	buf_json_time(b, cart_item_added_at(it));
	buf_puts(b, ",\"updatedAt\":");
	buf_json_time(b, cart_item_updated_at(it));
	buf_puts(b, "}");
}

/* A line's fixed bytes: the literals (~110), quantity (20), two moneys
 * and two times (26), rounded up. */
#define ITEM_FIXED (128 + 20 + 2 * MONEY_MAX + 2 * 26)

static void render_item(buf *b, const cart_item *it)
{
	const char *id = cart_item_id(it), *name = cart_item_name(it);
	cart_money unit = cart_item_unit_price(it), total = cart_item_line_total(it);
	size_t na = cart_item_attr_count(it), nid, nname = 0, ncur, ntot, need;
	size_t alen[2 * CART_ATTRS_MAX];
	int64_t added = cart_item_added_at(it), updated = cart_item_updated_at(it);
	char *d;

	nid = json_plain_len(id);
	if (name)
		nname = json_plain_len(name);
	ncur = json_plain_len(unit.currency);
	ntot = json_plain_len(total.currency);
	if (nid == SIZE_MAX || nname == SIZE_MAX || ncur == SIZE_MAX || ntot == SIZE_MAX ||
	    na > CART_ATTRS_MAX || !time_plain(added) || !time_plain(updated))
		goto checked;
	need = ITEM_FIXED + nid + nname;
	for (size_t i = 0; i < na; i++) {
		cart_attr a = cart_item_attr_at(it, i);

		alen[2 * i] = json_plain_len(a.key);
		alen[2 * i + 1] = json_plain_len(a.value);
		if (alen[2 * i] == SIZE_MAX || alen[2 * i + 1] == SIZE_MAX)
			goto checked;
		need += alen[2 * i] + alen[2 * i + 1] + 6;
	}
	if (b->len + need > b->max)   /* the bound is generous: near the maximum, be exact */
		goto checked;
	if (!(d = buf_room(b, need)))
		return;
	d = PUT_LIT(d, "{\"itemId\":");
	d = put_plain(d, id, nid);
	d = PUT_LIT(d, ",\"quantity\":");
	d = put_i64(d, cart_item_quantity(it));
	d = PUT_LIT(d, ",\"unitPrice\":");
	d = put_money(d, &unit, ncur);
	d = PUT_LIT(d, ",\"lineTotal\":");
	d = put_money(d, &total, ntot);
	d = PUT_LIT(d, ",\"name\":");
	d = name ? put_plain(d, name, nname) : PUT_LIT(d, "null");
	d = PUT_LIT(d, ",\"attributes\":{");
	for (size_t i = 0; i < na; i++) {
		cart_attr a = cart_item_attr_at(it, i);

		if (i)
			*d++ = ',';
		d = put_plain(d, a.key, alen[2 * i]);
		*d++ = ':';
		d = put_plain(d, a.value, alen[2 * i + 1]);
	}
	d = PUT_LIT(d, "},\"addedAt\":");
	d = put_json_time(d, added);
	d = PUT_LIT(d, ",\"updatedAt\":");
	d = put_json_time(d, updated);
	*d++ = '}';
	buf_commit(b, d);
	return;
checked:
	render_item_checked(b, it);
}

void render_cart(buf *b, const cart *c)
{
	buf_puts(b, "{\"cartId\":");
	buf_json_str(b, cart_id(c));
	buf_puts(b, ",\"userId\":");
	buf_json_str(b, cart_user_id(c));
	buf_puts(b, ",\"items\":[");
	for (size_t i = 0; i < cart_line_count(c); i++) {
		if (i)
			buf_puts(b, ",");
		render_item(b, cart_item_at(c, i));
	}
	buf_puts(b, "],\"itemCount\":");
	buf_json_i64(b, cart_quantity_total(c));
	buf_puts(b, ",\"subtotal\":");
	money(b, cart_subtotal(c));
	buf_puts(b, ",\"version\":");
	buf_json_i64(b, cart_version(c));
	buf_puts(b, ",\"createdAt\":");
	buf_json_time(b, cart_created_at(c));
	buf_puts(b, ",\"updatedAt\":");
	buf_json_time(b, cart_updated_at(c));
	buf_puts(b, ",\"expiresAt\":");
	buf_json_time(b, cart_expires_at(c));
	buf_puts(b, "}");
}

/* --- problems ----------------------------------------------------------- */

static const struct {
	cart_rule rule;
	const char *code;
	const char *detail;
} rule_problems[] = {
	{ CART_RULE_ID, "cart.invalid_id", "ids are 1-128 characters of A-Z a-z 0-9 . _ : @ -" },
	{ CART_RULE_QUANTITY, "cart.quantity_out_of_range", "quantity is outside the allowed range" },
	{ CART_RULE_CURRENCY, "cart.currency_invalid", "currency must be an ISO 4217 code of three upper-case letters" },
	{ CART_RULE_CURRENCY_MISMATCH, "cart.currency_mismatch", "the cart already holds items in another currency" },
	{ CART_RULE_AMOUNT, "cart.amount_out_of_range", "unitPrice.amount must be 0..1000000000000 minor units" },
	{ CART_RULE_NAME, "cart.name_too_long", "name must be at most 256 bytes" },
	{ CART_RULE_ATTRIBUTES, "cart.attributes_invalid", "at most 20 attributes, unique keys of 1-64 bytes, values of at most 256 bytes" },
	{ CART_RULE_TOO_MANY_LINES, "cart.too_many_lines", "the cart holds the most distinct items allowed" },
	{ CART_RULE_OVERFLOW, "cart.total_overflow", "the cart total would overflow" },
	{ CART_RULE_TOO_LARGE, "cart.too_large", "the cart is too large to store" },
};

problem problem_for(int err, cart_rule rule)
{
	problem p = { 500, "cart.internal_error", "an internal error occurred", -1 };

	switch (err) {
#define X(name, value, str, msg, http, code, detail) \
	case CART_##name: p = (problem){ http, code, detail, -1 }; break;
	CART_ERROR_MAP(X)
#undef X
	}
	if (err != CART_EINVALID)
		return p;
	for (size_t i = 0; i < sizeof(rule_problems) / sizeof(rule_problems[0]); i++)
		if (rule_problems[i].rule == rule) {
			p.code = rule_problems[i].code;
			p.detail = rule_problems[i].detail;
			/* A bad id is malformed input, not a broken rule. */
			if (rule == CART_RULE_ID)
				p.status = 400;
		}
	return p;
}

static const char *title_for(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 401: return "Unauthorized";
	case 414: return "URI Too Long";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 505: return "HTTP Version Not Supported";
	case 409: return "Conflict";
	case 412: return "Precondition Failed";
	case 428: return "Precondition Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

void render_problem(http_response *res, const problem *p, const char *instance)
{
	const char *slug = strchr(p->code, '.');
	buf *b = &res->body;

	buf_reset(b);
	res->status = p->status;
	res->content_type = "application/problem+json";
	buf_puts(b, "{\"type\":\"https://cart-service.dev/problems/");
	for (slug = slug ? slug + 1 : p->code; *slug; slug++)
		buf_put(b, *slug == '_' ? "-" : slug, 1);
	buf_puts(b, "\",\"title\":");
	buf_json_str(b, title_for(p->status));
	buf_puts(b, ",\"status\":");
	buf_json_i64(b, p->status);
	buf_puts(b, ",\"detail\":");
	buf_json_str(b, p->detail);
	buf_puts(b, ",\"code\":");
	buf_json_str(b, p->code);
	if (instance) {
		buf_puts(b, ",\"instance\":");
		buf_json_str(b, instance);
	}
	if (res->request_id[0]) {
		buf_puts(b, ",\"requestId\":");
		buf_json_str(b, res->request_id);
	}
	if (p->current_version >= 0) {
		buf_puts(b, ",\"currentVersion\":");
		buf_json_i64(b, p->current_version);
	}
	buf_puts(b, "}");
}

const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	default: return title_for(status);
	}
}
