/*
 * DynamoDB repository.  Item layout (docs/adr/0006):
 *
 *   PK "CART#<userID>", SK "CART"
 *   version N        every committed write +1; absent until the first
 *   writeId S        unique per write attempt: tells an unknown outcome
 *   cartId S, createdAt N (ms), updatedAt N (ms), expiresAt N (epoch s,
 *   the TTL attribute), currency S, items L of M
 *     {id S, q N (quantity), p N (unit price, minor units), n S? (name),
 *      a M? (attributes), t N (added, ms after createdAt),
 *      u N? (updated, ms after createdAt; absent when equal to t)}
 *                    all absent while the user has no cart (cleared)
 *   Line attribute names are one letter and line times are offsets, so a
 *   typical 10-line cart stays under 1 KB: one write unit per mutation.
 *   "idem#<key>" M   {fp S, st S, status N, exp N (ms), body B?}
 *   outbox L of M    pending events, oldest first: {id S, ty N, at N,
 *                    v N, c S, i S?, qb N, qa N, p N, cur S?, n N}
 *   obPending S      "1" while the outbox is not empty: the key of the
 *                    sparse index "outbox" the relay queries
 *
 * Writes are UpdateItem so that a claim (one idem# attribute) and a cart
 * save (the cart attributes) never overwrite each other; the cart save is
 * conditional on version.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynamodb/dynamo_codec.h"
#include "dynamodb/dynamo_repo.h"

#define TARGET "DynamoDB_20120810."
#define IDEM_PREFIX "idem#"

typedef struct dynamo_repo {
	char table[256];
	int64_t ready_cache_ms;
	cart_aws_client *client;
	const cart_clock *clock;
	const cart_ids *ids;
	const cart_aws_log *log;
	atomic_int_fast64_t ready_checked_at;
	atomic_int ready_rc;
	atomic_uint_fast64_t requests, rcu_x10, wcu_x10, bad_items;
} dynamo_repo;

/* --- JSON helpers ------------------------------------------------------- */

static cJSON *av_s(const char *s)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "S", s);
	return o;
}

static cJSON *av_n(int64_t n)
{
	char tmp[24];
	cJSON *o = cJSON_CreateObject();
	snprintf(tmp, sizeof(tmp), "%" PRId64, n);
	cJSON_AddStringToObject(o, "N", tmp);
	return o;
}

static cJSON *key_of(const char *user_id)
{
	char pk[CART_ID_MAX + 8];
	cJSON *k = cJSON_CreateObject();

	snprintf(pk, sizeof(pk), "CART#%s", user_id);
	cJSON_AddItemToObject(k, "PK", av_s(pk));
	cJSON_AddItemToObject(k, "SK", av_s("CART"));
	return k;
}

static const char *get_s(const cJSON *item, const char *name)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(item, name);
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(a, "S");
	return cJSON_IsString(s) ? s->valuestring : NULL;
}

/* 0 and *out if item.name is {"N": "<int64>"}; -1 if absent or not one. */
static int get_n(const cJSON *item, const char *name, int64_t *out)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(item, name);
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(a, "N");
	char *end;
	long long v;

	if (!cJSON_IsString(n) || !*n->valuestring)
		return -1;
	errno = 0;
	v = strtoll(n->valuestring, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static cJSON *av_b(const char *data, size_t len)
{
	char *enc = malloc(4 * ((len + 2) / 3) + 1);
	cJSON *o;

	if (!enc)
		return NULL;
	EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)data, (int)len);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "B", enc);
	free(enc);
	return o;
}

/* Decodes {"B": base64} into a malloc'd buffer. */
static int get_b(const cJSON *item, const char *name, char **out, size_t *len)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(item, name);
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(a, "B");
	size_t in, pad = 0;
	int n;

	*out = NULL;
	*len = 0;
	if (!a)
		return 0;
	if (!cJSON_IsString(b) || (in = strlen(b->valuestring)) % 4)
		return -1;
	if (!in)
		return 0;
	*out = malloc(in / 4 * 3 + 1);
	if (!*out)
		return -1;
	n = EVP_DecodeBlock((unsigned char *)*out, (const unsigned char *)b->valuestring,
			    (int)in);
	if (n < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	pad = (b->valuestring[in - 1] == '=') + (b->valuestring[in - 2] == '=');
	*len = (size_t)n - pad;
	return 0;
}

/* Expression attribute names and values, added as they are used. */
typedef struct expr {
	cJSON *names;
	cJSON *values;
	int n;
} expr;

static void expr_init(expr *e)
{
	e->names = cJSON_CreateObject();
	e->values = cJSON_CreateObject();
	e->n = 0;
}

/* Returns a placeholder "#nK" for an attribute name (static per call). */
static const char *expr_name(expr *e, const char *name, char buf[16])
{
	snprintf(buf, 16, "#n%d", e->n++);
	cJSON_AddStringToObject(e->names, buf, name);
	return buf;
}

/* Returns ":vK" for a value; takes ownership of v. */
static const char *expr_value(expr *e, cJSON *v, char buf[16])
{
	snprintf(buf, 16, ":v%d", e->n++);
	cJSON_AddItemToObject(e->values, buf, v);
	return buf;
}

static void expr_attach(expr *e, cJSON *req)
{
	if (e->names->child)
		cJSON_AddItemToObject(req, "ExpressionAttributeNames", e->names);
	else
		cJSON_Delete(e->names);
	if (e->values->child)
		cJSON_AddItemToObject(req, "ExpressionAttributeValues", e->values);
	else
		cJSON_Delete(e->values);
	e->names = e->values = NULL;
}

/* --- calls -------------------------------------------------------------- */

static void add_capacity(dynamo_repo *r, const cJSON *resp, bool write)
{
	const cJSON *cc = cJSON_GetObjectItemCaseSensitive(resp, "ConsumedCapacity");
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(cc, "CapacityUnits");

	if (cJSON_IsNumber(u))
		atomic_fetch_add(write ? &r->wcu_x10 : &r->rcu_x10,
				 (uint64_t)(u->valuedouble * 10 + 0.5));
}

typedef struct call_result {
	cJSON *resp;             /* parsed 200 body, owned */
	bool ambiguous;
	char error_type[128];
} call_result;

/*
 * Sends op with req (consumed).  CART_OK with res->resp, CART_ECONFLICT for
 * a failed condition, CART_EINVALID for an item too large,
 * CART_EUNAVAILABLE (breaker open or throttled), else CART_EBACKEND.
 */
static int call(dynamo_repo *r, const char *op, cJSON *req, call_result *res,
		bool write)
{
	char target[64];
	cart_aws_response ar;
	char *body;
	int rc;

	memset(res, 0, sizeof(*res));
	cJSON_AddStringToObject(req, "TableName", r->table);
	cJSON_AddStringToObject(req, "ReturnConsumedCapacity", "TOTAL");
	body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!body)
		return CART_ENOMEM;
	snprintf(target, sizeof(target), TARGET "%s", op);
	atomic_fetch_add(&r->requests, 1);
	rc = cart_aws_call(r->client, target, body, strlen(body), &ar);
	cJSON_free(body);
	res->ambiguous = ar.ambiguous;
	snprintf(res->error_type, sizeof(res->error_type), "%s", ar.error_type);
	if (rc == CART_OK && ar.status == 200) {
		res->resp = cJSON_ParseWithLength(ar.body ? ar.body : "", ar.body_len);
		if (!res->resp)
			rc = CART_EBACKEND;
		else
			add_capacity(r, res->resp, write);
	} else if (rc == CART_OK) {
		if (!strcmp(ar.error_type, "ConditionalCheckFailedException"))
			rc = CART_ECONFLICT;
		else if (!strcmp(ar.error_type, "ValidationException") &&
			 strstr(ar.message, "size"))
			rc = CART_EINVALID;
		else if (ar.status == 400 && (strstr(ar.error_type, "Throughput") ||
					      strstr(ar.error_type, "Throttl") ||
					      strstr(ar.error_type, "LimitExceeded")))
			rc = CART_EUNAVAILABLE;   /* still throttled after the retries */
		else
			rc = ar.status >= 500 ? CART_EUNAVAILABLE : CART_EBACKEND;
		if (rc == CART_EBACKEND || rc == CART_EINVALID)
			cart_aws_logf(r->log, 3, "dynamodb request failed",
				      ",\"op\":\"%s\",\"status\":%ld,\"error\":\"%s\","
				      "\"detail\":\"%.160s\"", op, ar.status,
				      ar.error_type, ar.message);
	}
	cart_aws_response_release(&ar);
	return rc;
}

/*
 * A consistent GetItem of one top-level attribute of the user's item.
 * CART_OK with *resp (caller deletes) and *value (borrowed from it, NULL
 * if the attribute is absent), or the call's error.
 */
static int get_attr(dynamo_repo *r, const char *user_id, const char *attr,
		    cJSON **resp, const cJSON **value)
{
	cJSON *req = cJSON_CreateObject();
	call_result res;
	char nb[16];
	expr e;
	int rc;

	expr_init(&e);
	cJSON_AddItemToObject(req, "Key", key_of(user_id));
	cJSON_AddTrueToObject(req, "ConsistentRead");
	cJSON_AddStringToObject(req, "ProjectionExpression", expr_name(&e, attr, nb));
	expr_attach(&e, req);
	rc = call(r, "GetItem", req, &res, false);
	*resp = res.resp;
	*value = rc ? NULL : cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(res.resp, "Item"), attr);
	return rc;
}

/* --- decoding ----------------------------------------------------------- */

static int bad_item(dynamo_repo *r, const char *user_id, const char *why)
{
	atomic_fetch_add(&r->bad_items, 1);
	cart_aws_logf(r->log, 3, "unreadable cart item in DynamoDB",
		      ",\"user_id\":\"%s\",\"detail\":\"%s\"", user_id, why);
	return CART_EBACKEND;
}

static int decode_attrs(const cJSON *m, cart_attr *attrs, size_t *n)
{
	const cJSON *map = cJSON_GetObjectItemCaseSensitive(m, "M");
	const cJSON *a;

	*n = 0;
	if (!m)
		return 0;
	if (!cJSON_IsObject(map))
		return -1;
	cJSON_ArrayForEach(a, map) {
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(a, "S");
		if (*n >= CART_ATTRS_MAX || !cJSON_IsString(s))
			return -1;
		attrs[*n].key = a->string;
		attrs[*n].value = s->valuestring;
		(*n)++;
	}
	return 0;
}

static int decode_line(cart *c, const cJSON *av, const char *currency,
		       int64_t created)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(av, "M");
	cart_attr attrs[CART_ATTRS_MAX];
	cart_item_spec spec = { 0 };
	int64_t q, price, added, updated;

	if (!cJSON_IsObject(m) || !currency || strlen(currency) != 3 ||
	    !(spec.item_id = get_s(m, "id")) || get_n(m, "q", &q) ||
	    get_n(m, "p", &price) || get_n(m, "t", &added) ||
	    q < 1 || q > INT32_MAX ||
	    decode_attrs(cJSON_GetObjectItemCaseSensitive(m, "a"), attrs,
			 &spec.attr_count))
		return -1;
	if (get_n(m, "u", &updated))
		updated = added;
	added += created;
	updated += created;
	spec.quantity = (int32_t)q;
	spec.unit_price.amount = price;
	memcpy(spec.unit_price.currency, currency, 4);
	spec.name = get_s(m, "n");
	spec.attrs = attrs;
	return cart_restore_item(c, &spec, added, updated) ? -1 : 0;
}

static int decode_cart(dynamo_repo *r, const cJSON *item, const char *user_id,
		       cart **out)
{
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(item, "items");
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(items, "L");
	const char *cid = get_s(item, "cartId");
	int64_t version, created = 0, updated = 0, expires = 0;
	const cJSON *line;
	cart *c;

	if (get_n(item, "version", &version))
		return cJSON_GetObjectItemCaseSensitive(item, "version")
			       ? bad_item(r, user_id, "version is not a number")
			       : CART_ENOTFOUND;   /* only idempotency claims so far */
	if (cart_new(&c, user_id))
		return CART_ENOMEM;
	if (cid && (get_n(item, "createdAt", &created) ||
		    get_n(item, "updatedAt", &updated) ||
		    get_n(item, "expiresAt", &expires) || expires > INT64_MAX / 1000)) {
		cart_free(c);
		return bad_item(r, user_id, "cart times missing or not numbers");
	}
	if (version < 1 || cart_restore_meta(c, cid, version, created, updated,
					      expires * 1000)) {
		cart_free(c);
		return bad_item(r, user_id, "bad version or cartId");
	}
	if (items && (!cid || !cJSON_IsArray(list))) {
		cart_free(c);
		return bad_item(r, user_id, "items is not a list");
	}
	cJSON_ArrayForEach(line, list) {
		if (decode_line(c, line, get_s(item, "currency"), created)) {
			cart_free(c);
			return bad_item(r, user_id, "a line is malformed");
		}
	}
	*out = c;
	return CART_OK;
}

int cart_dynamo_decode_item(const char *json, size_t len, const char *user_id,
			    cart **out)
{
	dynamo_repo quiet = { .log = NULL };   /* counters and no log */
	cJSON *item = cJSON_ParseWithLength(json, len);
	int rc;

	*out = NULL;
	if (!item)
		return CART_EBACKEND;
	rc = cJSON_IsObject(item) ? decode_cart(&quiet, item, user_id, out)
				  : CART_EBACKEND;
	cJSON_Delete(item);
	return rc;
}

/* --- the port: carts ---------------------------------------------------- */

static int dynamo_load(void *self, const char *user_id, cart **out)
{
	dynamo_repo *r = self;
	cJSON *req = cJSON_CreateObject();
	const cJSON *item;
	call_result res;
	int rc;

	cJSON_AddItemToObject(req, "Key", key_of(user_id));
	cJSON_AddTrueToObject(req, "ConsistentRead");
	rc = call(r, "GetItem", req, &res, false);
	if (rc)
		return rc;
	item = cJSON_GetObjectItemCaseSensitive(res.resp, "Item");
	rc = item ? decode_cart(r, item, user_id, out) : CART_ENOTFOUND;
	cJSON_Delete(res.resp);
	return rc;
}

static cJSON *encode_line(const cart_item *it, int64_t created)
{
	cJSON *m = cJSON_CreateObject(), *av = cJSON_CreateObject();

	cJSON_AddItemToObject(m, "id", av_s(cart_item_id(it)));
	cJSON_AddItemToObject(m, "q", av_n(cart_item_quantity(it)));
	cJSON_AddItemToObject(m, "p", av_n(cart_item_unit_price(it).amount));
	if (cart_item_name(it))
		cJSON_AddItemToObject(m, "n", av_s(cart_item_name(it)));
	if (cart_item_attr_count(it)) {
		cJSON *attrs = cJSON_CreateObject(), *wrap = cJSON_CreateObject();
		for (size_t i = 0; i < cart_item_attr_count(it); i++) {
			cart_attr a = cart_item_attr_at(it, i);
			cJSON_AddItemToObject(attrs, a.key, av_s(a.value));
		}
		cJSON_AddItemToObject(wrap, "M", attrs);
		cJSON_AddItemToObject(m, "a", wrap);
	}
	cJSON_AddItemToObject(m, "t", av_n(cart_item_added_at(it) - created));
	if (cart_item_updated_at(it) != cart_item_added_at(it))
		cJSON_AddItemToObject(m, "u", av_n(cart_item_updated_at(it) - created));
	cJSON_AddItemToObject(av, "M", m);
	return av;
}

/* tok: the claim's own mark (see dynamo_idem_claim), or NULL. */
static cJSON *encode_idem(const cart_idem *rec, const char *tok)
{
	cJSON *m = cJSON_CreateObject(), *av = cJSON_CreateObject();

	if (tok)
		cJSON_AddItemToObject(m, "tok", av_s(tok));
	cJSON_AddItemToObject(m, "fp", av_s(rec->fingerprint));
	cJSON_AddItemToObject(m, "st", av_s(rec->state == CART_IDEM_PENDING ? "PENDING"
									    : "COMPLETE"));
	cJSON_AddItemToObject(m, "status", av_n(rec->status));
	cJSON_AddItemToObject(m, "exp", av_n(rec->expires_at));
	if (rec->body_len)
		cJSON_AddItemToObject(m, "body", av_b(rec->body, rec->body_len));
	cJSON_AddItemToObject(av, "M", m);
	return av;
}

static void idem_attr_name(char *out, size_t cap, const char *key)
{
	snprintf(out, cap, IDEM_PREFIX "%s", key);
}

/* "SET a = :x, b = :y" / "REMOVE a, b" clauses, built as the cart says. */
typedef struct clauses {
	char set[4096];
	char remove[512];
} clauses;

static void clause_add(char *clause, size_t cap, const char *verb,
		       const char *part)
{
	size_t n = strlen(clause);
	snprintf(clause + n, cap - n, "%s%s", n ? ", " : verb, part);
}

static void set_attr(expr *e, clauses *cl, const char *name, cJSON *value)
{
	char nb[16], vb[16], part[40];
	const char *np = expr_name(e, name, nb);
	const char *vp = expr_value(e, value, vb);

	snprintf(part, sizeof(part), "%s = %s", np, vp);
	clause_add(cl->set, sizeof(cl->set), "SET ", part);
}

static void remove_attr(expr *e, clauses *cl, const char *name)
{
	char nb[16];
	clause_add(cl->remove, sizeof(cl->remove), "REMOVE ", expr_name(e, name, nb));
}

static void encode_cart(expr *e, clauses *cl, const cart *c, const char *write_id)
{
	static const char *const identity[] = { "cartId", "createdAt", "updatedAt",
						"expiresAt", "items", "currency", NULL };
	cart_money sub = cart_subtotal(c);

	set_attr(e, cl, "version", av_n(cart_version(c)));
	set_attr(e, cl, "writeId", av_s(write_id));
	if (!cart_id(c)) {
		for (int i = 0; identity[i]; i++)
			remove_attr(e, cl, identity[i]);
		return;
	}
	set_attr(e, cl, "cartId", av_s(cart_id(c)));
	set_attr(e, cl, "createdAt", av_n(cart_created_at(c)));
	set_attr(e, cl, "updatedAt", av_n(cart_updated_at(c)));
	set_attr(e, cl, "expiresAt", av_n(cart_expires_at(c) / 1000));
	if (cart_line_count(c)) {
		cJSON *list = cJSON_CreateArray(), *av = cJSON_CreateObject();
		for (size_t i = 0; i < cart_line_count(c); i++)
			cJSON_AddItemToArray(list, encode_line(cart_item_at(c, i),
							       cart_created_at(c)));
		cJSON_AddItemToObject(av, "L", list);
		set_attr(e, cl, "items", av);
		set_attr(e, cl, "currency", av_s(sub.currency));
	} else {
		remove_attr(e, cl, "items");
		remove_attr(e, cl, "currency");
	}
}

/* After an unknown outcome: did our attempt (write_id) commit after all? */
static bool write_landed(dynamo_repo *r, const char *user_id, const char *write_id)
{
	const cJSON *av, *got;
	cJSON *resp;
	bool landed;

	if (get_attr(r, user_id, "writeId", &resp, &av))
		return false;
	got = cJSON_GetObjectItemCaseSensitive(av, "S");
	landed = cJSON_IsString(got) && !strcmp(got->valuestring, write_id);
	cJSON_Delete(resp);
	return landed;
}

/* --- the outbox ---------------------------------------------------------- */

#define OUTBOX_INDEX "outbox"
#define ACK_CHUNK 25          /* list elements removed per UpdateItem */

static cJSON *encode_event(const cart_event *ev)
{
	cJSON *m = cJSON_CreateObject(), *av = cJSON_CreateObject();

	cJSON_AddItemToObject(m, "id", av_s(ev->event_id));
	cJSON_AddItemToObject(m, "ty", av_n(ev->type));
	cJSON_AddItemToObject(m, "at", av_n(ev->occurred_at));
	cJSON_AddItemToObject(m, "v", av_n(ev->cart_version));
	cJSON_AddItemToObject(m, "c", av_s(ev->cart_id));
	if (ev->item_id[0])
		cJSON_AddItemToObject(m, "i", av_s(ev->item_id));
	cJSON_AddItemToObject(m, "qb", av_n(ev->quantity_before));
	cJSON_AddItemToObject(m, "qa", av_n(ev->quantity_after));
	cJSON_AddItemToObject(m, "p", av_n(ev->unit_price.amount));
	if (ev->unit_price.currency[0])
		cJSON_AddItemToObject(m, "cur", av_s(ev->unit_price.currency));
	cJSON_AddItemToObject(m, "n", av_n(ev->item_count_before));
	cJSON_AddItemToObject(av, "M", m);
	return av;
}

static int copy_field(char *dst, size_t cap, const char *src, bool required)
{
	if (!src)
		return required ? -1 : 0;
	if (strlen(src) >= cap)
		return -1;
	strcpy(dst, src);
	return 0;
}

static int decode_event(const cJSON *av, const char *user_id, cart_event *ev)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(av, "M");
	int64_t ty, qb, qa;

	memset(ev, 0, sizeof(*ev));
	if (!cJSON_IsObject(m) || get_n(m, "ty", &ty) || ty < CART_EVENT_ITEM_ADDED ||
	    ty > CART_EVENT_CLEARED || get_n(m, "at", &ev->occurred_at) ||
	    get_n(m, "v", &ev->cart_version) || get_n(m, "qb", &qb) ||
	    get_n(m, "qa", &qa) || get_n(m, "p", &ev->unit_price.amount) ||
	    get_n(m, "n", &ev->item_count_before) || qb < 0 || qb > INT32_MAX ||
	    qa < 0 || qa > INT32_MAX ||
	    copy_field(ev->event_id, sizeof(ev->event_id), get_s(m, "id"), true) ||
	    copy_field(ev->cart_id, sizeof(ev->cart_id), get_s(m, "c"), true) ||
	    copy_field(ev->item_id, sizeof(ev->item_id), get_s(m, "i"), false) ||
	    copy_field(ev->unit_price.currency, sizeof(ev->unit_price.currency),
		       get_s(m, "cur"), false) ||
	    copy_field(ev->user_id, sizeof(ev->user_id), user_id, true))
		return -1;
	ev->type = (cart_event_type)ty;
	ev->quantity_before = (int32_t)qb;
	ev->quantity_after = (int32_t)qa;
	return 0;
}

/* The save's part: append the events, mark the item pending, bound it. */
static void outbox_append(expr *e, clauses *cl, const cart_write *w,
			  char *cond, size_t cond_cap)
{
	char ob[16], p[16], ev[16], empty[16], one[16], room[16], part[160];
	cJSON *list = cJSON_CreateArray(), *av = cJSON_CreateObject();
	cJSON *none = cJSON_CreateObject();
	const char *obn = expr_name(e, "outbox", ob);
	size_t n;

	for (size_t i = 0; i < w->event_count; i++)
		cJSON_AddItemToArray(list, encode_event(&w->events[i]));
	cJSON_AddItemToObject(av, "L", list);
	cJSON_AddItemToObject(none, "L", cJSON_CreateArray());
	snprintf(part, sizeof(part), "%s = list_append(if_not_exists(%s, %s), %s)",
		 obn, obn, expr_value(e, none, empty), expr_value(e, av, ev));
	clause_add(cl->set, sizeof(cl->set), "SET ", part);
	snprintf(part, sizeof(part), "%s = %s", expr_name(e, "obPending", p),
		 expr_value(e, av_s("1"), one));
	clause_add(cl->set, sizeof(cl->set), "SET ", part);
	n = strlen(cond);
	snprintf(cond + n, cond_cap - n,
		 " AND (attribute_not_exists(%s) OR size(%s) <= %s)", obn, obn,
		 expr_value(e, av_n((int64_t)(CART_OUTBOX_MAX - w->event_count)),
			    room));
}

/* After a failed condition: was it the version, or a full outbox? */
static int why_refused(dynamo_repo *r, const cart_write *w)
{
	cJSON *req = cJSON_CreateObject();
	const cJSON *item, *ob;
	call_result res;
	int64_t v = 0;
	int rc;

	cJSON_AddItemToObject(req, "Key", key_of(w->user_id));
	cJSON_AddTrueToObject(req, "ConsistentRead");
	cJSON_AddStringToObject(req, "ProjectionExpression", "version, outbox");
	if (call(r, "GetItem", req, &res, false))
		return CART_ECONFLICT;
	item = cJSON_GetObjectItemCaseSensitive(res.resp, "Item");
	ob = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(item, "outbox"), "L");
	get_n(item, "version", &v);
	rc = v == w->expected_version &&
	     (size_t)cJSON_GetArraySize(ob) + w->event_count > CART_OUTBOX_MAX
		     ? CART_EBACKLOG : CART_ECONFLICT;
	if (rc == CART_EBACKLOG)
		cart_aws_logf(r->log, 2, "event outbox full: write refused",
			      ",\"user_id\":\"%s\"", w->user_id);
	cJSON_Delete(res.resp);
	return rc;
}

static int add_batch(cart_outbox *out, const cJSON *item)
{
	const char *pk = get_s(item, "PK");
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(item, "outbox"), "L");
	cart_outbox_batch *grown, *b;
	size_t n = (size_t)cJSON_GetArraySize(list), i = 0;
	const cJSON *av;

	if (!pk || strncmp(pk, "CART#", 5) || !n)
		return CART_OK;   /* not a cart, or drained since the index saw it */
	grown = realloc(out->batches, (out->n_batches + 1) * sizeof(*grown));
	if (!grown)
		return CART_ENOMEM;
	out->batches = grown;
	b = &out->batches[out->n_batches];
	b->events = calloc(n, sizeof(*b->events));
	if (!b->events || copy_field(b->user_id, sizeof(b->user_id), pk + 5, true)) {
		free(b->events);
		return b->events ? CART_OK : CART_ENOMEM;
	}
	cJSON_ArrayForEach(av, list) {
		if (decode_event(av, b->user_id, &b->events[i])) {
			free(b->events);
			return CART_EBACKEND;
		}
		i++;
	}
	b->n = n;
	out->n_batches++;
	out->backlog += n;
	if (!out->oldest_at || b->events[0].occurred_at < out->oldest_at)
		out->oldest_at = b->events[0].occurred_at;
	return CART_OK;
}

/*
 * Users with pending events come from the sparse index "outbox" (only
 * items with obPending are in it), one Query page; backlog counts what
 * that page holds.
 */
static int dynamo_outbox_fetch(void *self, size_t max_events, cart_outbox *out)
{
	dynamo_repo *r = self;
	cJSON *req = cJSON_CreateObject();
	const cJSON *items, *item;
	char nb[16], vb[16], cond[48];
	call_result res;
	expr e;
	int rc;

	expr_init(&e);
	snprintf(cond, sizeof(cond), "%s = %s", expr_name(&e, "obPending", nb),
		 expr_value(&e, av_s("1"), vb));
	cJSON_AddStringToObject(req, "IndexName", OUTBOX_INDEX);
	cJSON_AddStringToObject(req, "KeyConditionExpression", cond);
	cJSON_AddNumberToObject(req, "Limit", max_events < 100 ? (double)max_events : 100);
	expr_attach(&e, req);
	rc = call(r, "Query", req, &res, false);
	if (rc)
		return rc;
	items = cJSON_GetObjectItemCaseSensitive(res.resp, "Items");
	cJSON_ArrayForEach(item, items) {
		rc = add_batch(out, item);
		if (rc == CART_EBACKEND)
			bad_item(r, get_s(item, "PK") ? get_s(item, "PK") : "?",
				 "unreadable outbox event");
		if (rc)
			break;
	}
	cJSON_Delete(res.resp);
	if (rc)
		cart_outbox_release(out);
	return rc;
}

/* Removes the first n (<= ACK_CHUNK) events if they are these ids. */
static int ack_chunk(dynamo_repo *r, const char *user_id, const cart_event *ev,
		     size_t n, bool *drained)
{
	char update[16 * ACK_CHUNK + 16] = "", cond[40 * ACK_CHUNK] = "";
	cJSON *req = cJSON_CreateObject();
	char ob[16], id[16], vb[16], part[64];
	const cJSON *left;
	call_result res;
	expr e;
	int rc;

	expr_init(&e);
	expr_name(&e, "outbox", ob);
	expr_name(&e, "id", id);
	/*
	 * Highest index first: DynamoDB resolves every path against the item
	 * before the update, dynalite one after another; in this order both
	 * remove exactly elements 0..n-1.
	 */
	for (size_t i = n; i-- > 0;) {
		snprintf(part, sizeof(part), "%s[%zu]", ob, i);
		clause_add(update, sizeof(update), "REMOVE ", part);
	}
	for (size_t i = 0; i < n; i++)
		snprintf(cond + strlen(cond), sizeof(cond) - strlen(cond),
			 "%s%s[%zu].%s = %s", i ? " AND " : "", ob, i, id,
			 expr_value(&e, av_s(ev[i].event_id), vb));
	cJSON_AddItemToObject(req, "Key", key_of(user_id));
	cJSON_AddStringToObject(req, "UpdateExpression", update);
	cJSON_AddStringToObject(req, "ConditionExpression", cond);
	cJSON_AddStringToObject(req, "ReturnValues", "UPDATED_NEW");
	expr_attach(&e, req);
	rc = call(r, "UpdateItem", req, &res, true);
	left = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(res.resp, "Attributes"), "outbox"),
		"L");
	*drained = rc == CART_OK && cJSON_GetArraySize(left) == 0;
	cJSON_Delete(res.resp);
	return rc;
}

/* The outbox is empty: take the item out of the index, unless it refilled. */
static void clear_pending(dynamo_repo *r, const char *user_id)
{
	cJSON *req = cJSON_CreateObject();
	char ob[16], p[16], zero[16], update[48], cond[64];
	call_result res;
	expr e;

	expr_init(&e);
	expr_name(&e, "outbox", ob);
	expr_name(&e, "obPending", p);
	snprintf(update, sizeof(update), "REMOVE %s, %s", p, ob);
	snprintf(cond, sizeof(cond), "size(%s) = %s", ob,
		 expr_value(&e, av_n(0), zero));
	cJSON_AddItemToObject(req, "Key", key_of(user_id));
	cJSON_AddStringToObject(req, "UpdateExpression", update);
	cJSON_AddStringToObject(req, "ConditionExpression", cond);
	expr_attach(&e, req);
	call(r, "UpdateItem", req, &res, true);   /* refilled: stays pending */
	cJSON_Delete(res.resp);
}

static int dynamo_outbox_ack(void *self, const char *user_id,
			     const cart_event *events, size_t n)
{
	bool drained = false;
	int rc = CART_OK;

	for (size_t at = 0; at < n && !rc; at += ACK_CHUNK)
		rc = ack_chunk(self, user_id, events + at,
			       n - at < ACK_CHUNK ? n - at : ACK_CHUNK, &drained);
	if (!rc && drained)
		clear_pending(self, user_id);
	return rc;
}

/*
 * The dead-letter list: one item per parked event in the cart's partition,
 * beside the cart item and outside the outbox index (no obPending):
 *
 *   PK "CART#<userID>", SK "DLQ#<eventId>"
 *   event M          the event, encoded as in the outbox (encode_event)
 *   reason S         the bus's error code, e.g. "MalformedDetail"
 *   parkedAt N       ms since the epoch
 *   expiresAt N      epoch s, parkedAt + 14 days: the table's TTL removes it
 *
 * Written with UpdateItem (an upsert), the action the runtime policy
 * already grants on the table; parking the same event again overwrites
 * its item.
 */
#define DLQ_PREFIX "DLQ#"
#define DLQ_TTL_SECONDS (14 * 24 * 3600)

static int put_dead_letter(dynamo_repo *r, const char *user_id,
			   const cart_event *ev, const char *reason,
			   int64_t parked_at_ms)
{
	char pk[8 + CART_ID_MAX], sk[8 + CART_UUID_LEN], why[CART_PARK_REASON_MAX + 1];
	char n[4][16], v[4][16], update[160];
	cJSON *req = cJSON_CreateObject(), *key = cJSON_CreateObject();
	call_result res;
	expr e;
	int rc;

	snprintf(pk, sizeof(pk), "CART#%s", user_id);
	snprintf(sk, sizeof(sk), DLQ_PREFIX "%s", ev->event_id);
	snprintf(why, sizeof(why), "%s", reason);
	cJSON_AddItemToObject(key, "PK", av_s(pk));
	cJSON_AddItemToObject(key, "SK", av_s(sk));
	expr_init(&e);
	expr_name(&e, "event", n[0]);
	expr_value(&e, encode_event(ev), v[0]);
	expr_name(&e, "reason", n[1]);
	expr_value(&e, av_s(why), v[1]);
	expr_name(&e, "parkedAt", n[2]);
	expr_value(&e, av_n(parked_at_ms), v[2]);
	expr_name(&e, "expiresAt", n[3]);
	expr_value(&e, av_n(parked_at_ms / 1000 + DLQ_TTL_SECONDS), v[3]);
	snprintf(update, sizeof(update), "SET %s = %s, %s = %s, %s = %s, %s = %s",
		 n[0], v[0], n[1], v[1], n[2], v[2], n[3], v[3]);
	cJSON_AddItemToObject(req, "Key", key);
	cJSON_AddStringToObject(req, "UpdateExpression", update);
	expr_attach(&e, req);
	rc = call(r, "UpdateItem", req, &res, true);
	cJSON_Delete(res.resp);
	return rc;
}

/*
 * The dead-letter item first, then the event out of the outbox (the ack
 * of one event, conditional on it being the head): a crash in between
 * leaves the event parked and still pending -- parked again or delivered
 * later, a duplicate at worst, never lost.
 */
static int dynamo_outbox_park(void *self, const char *user_id,
			      const cart_event *event, const char *reason,
			      int64_t parked_at_ms)
{
	int rc = put_dead_letter(self, user_id, event, reason, parked_at_ms);

	return rc ? rc : dynamo_outbox_ack(self, user_id, event, 1);
}

/*
 * Removes the idempotency records of old_item that are past their
 * expiry, each only if it is still the record we saw.  Housekeeping after
 * a save (at most one extra write, and only when something expired), so
 * that records of long-lived carts do not pile up in the item.
 */
static void prune_expired(dynamo_repo *r, const char *user_id,
			  const cJSON *old_item, const char *skip_key)
{
	int64_t now = cart_clock_now(r->clock);
	cJSON *req = cJSON_CreateObject();
	char update[1024] = "", cond[2048] = "";
	const cJSON *a;
	call_result res;
	int n = 0;
	expr e;

	expr_init(&e);
	cJSON_ArrayForEach(a, old_item) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(a, "M");
		char nb[16], vb[16], fb[16], part[64];
		const char *np;
		int64_t exp;

		if (strncmp(a->string, IDEM_PREFIX, strlen(IDEM_PREFIX)) ||
		    (skip_key && !strcmp(a->string + strlen(IDEM_PREFIX), skip_key)) ||
		    get_n(m, "exp", &exp) || exp > now || n == 16)
			continue;
		np = expr_name(&e, a->string, nb);
		clause_add(update, sizeof(update), "REMOVE ", np);
		snprintf(part, sizeof(part), "%s.%s = %s", np, expr_name(&e, "exp", fb),
			 expr_value(&e, av_n(exp), vb));
		snprintf(cond + strlen(cond), sizeof(cond) - strlen(cond), "%s%s",
			 n ? " AND " : "", part);
		n++;
	}
	if (!n) {
		expr_attach(&e, req);
		cJSON_Delete(req);
		return;
	}
	cJSON_AddItemToObject(req, "Key", key_of(user_id));
	cJSON_AddStringToObject(req, "UpdateExpression", update);
	cJSON_AddStringToObject(req, "ConditionExpression", cond);
	expr_attach(&e, req);
	if (call(r, "UpdateItem", req, &res, true) == CART_OK)
		cart_aws_logf(r->log, 0, "expired idempotency records removed",
			      ",\"count\":%d", n);
	cJSON_Delete(res.resp);
}

static int dynamo_save(void *self, const cart_write *w)
{
	dynamo_repo *r = self;
	char write_id[CART_UUID_LEN + 1], nb[16], vb[16], cond[256], idem[300];
	cJSON *req = cJSON_CreateObject();
	clauses cl = { "", "" };
	call_result res;
	char *update;
	expr e;
	int rc;

	if (cart_ids_uuid(r->ids, write_id)) {
		cJSON_Delete(req);
		return CART_EBACKEND;
	}
	write_id[18] = '\0';   /* 64 random bits are plenty to tell writes apart */
	expr_init(&e);
	encode_cart(&e, &cl, w->cart, write_id);
	if (w->idem) {
		idem_attr_name(idem, sizeof(idem), w->idem->key);
		set_attr(&e, &cl, idem, encode_idem(w->idem, NULL));
	}
	if (w->expected_version == 0)
		snprintf(cond, sizeof(cond), "attribute_not_exists(%s)",
			 expr_name(&e, "version", nb));
	else
		snprintf(cond, sizeof(cond), "%s = %s", expr_name(&e, "version", nb),
			 expr_value(&e, av_n(w->expected_version), vb));
	if (w->event_count)
		outbox_append(&e, &cl, w, cond, sizeof(cond));
	update = malloc(strlen(cl.set) + strlen(cl.remove) + 2);
	if (!update) {
		expr_attach(&e, req);
		cJSON_Delete(req);
		return CART_ENOMEM;
	}
	sprintf(update, "%s%s%s", cl.set, cl.remove[0] ? " " : "", cl.remove);
	cJSON_AddItemToObject(req, "Key", key_of(w->user_id));
	cJSON_AddStringToObject(req, "UpdateExpression", update);
	cJSON_AddStringToObject(req, "ConditionExpression", cond);
	cJSON_AddStringToObject(req, "ReturnValues", "ALL_OLD");
	free(update);
	expr_attach(&e, req);
	rc = call(r, "UpdateItem", req, &res, true);
	if (rc == CART_OK)
		prune_expired(r, w->user_id,
			      cJSON_GetObjectItemCaseSensitive(res.resp, "Attributes"),
			      w->idem ? w->idem->key : NULL);
	cJSON_Delete(res.resp);
	/* A retried write whose first attempt may have landed fails its own
	 * condition; the writeId tells whether it was ours. */
	if (rc == CART_ECONFLICT && res.ambiguous &&
	    write_landed(r, w->user_id, write_id))
		rc = CART_OK;
	if (rc == CART_ECONFLICT && w->event_count)
		rc = why_refused(r, w);
	return rc;
}

/* --- the port: idempotency records -------------------------------------- */

static int decode_idem(const cJSON *av, const char *key, cart_idem **out)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(av, "M");
	const char *fp = get_s(m, "fp"), *st = get_s(m, "st");
	int64_t status, exp;
	cart_idem *rec;

	if (!fp || !st || get_n(m, "status", &status) || get_n(m, "exp", &exp))
		return CART_EBACKEND;
	rec = calloc(1, sizeof(*rec));
	if (!rec)
		return CART_ENOMEM;
	rec->key = strdup(key);
	rec->fingerprint = strdup(fp);
	rec->state = !strcmp(st, "PENDING") ? CART_IDEM_PENDING : CART_IDEM_COMPLETE;
	rec->status = (int)status;
	rec->expires_at = exp;
	if (!rec->key || !rec->fingerprint ||
	    get_b(m, "body", &rec->body, &rec->body_len)) {
		cart_idem_free(rec);
		return CART_EBACKEND;
	}
	*out = rec;
	return CART_OK;
}

static int dynamo_idem_get(void *self, const char *user_id, const char *key,
			   int64_t now_ms, cart_idem **out)
{
	dynamo_repo *r = self;
	char name[300];
	const cJSON *av;
	cJSON *resp;
	int rc;

	idem_attr_name(name, sizeof(name), key);
	rc = get_attr(r, user_id, name, &resp, &av);
	if (!rc)
		rc = av ? decode_idem(av, key, out) : CART_ENOTFOUND;
	if (rc == CART_EBACKEND && av)
		bad_item(r, user_id, "unreadable idempotency record");
	if (rc == CART_OK && (*out)->expires_at <= now_ms) {
		cart_idem_free(*out);
		*out = NULL;
		rc = CART_ENOTFOUND;
	}
	cJSON_Delete(resp);
	return rc;
}

typedef enum idem_cond {
	COND_NONE,
	COND_NOT_LIVE,        /* absent, or its exp has passed (v1: now) */
	COND_PENDING_OWN,     /* PENDING with this fingerprint (v1: fp) */
} idem_cond;

/* One UpdateItem on a record attribute: SET rec, or REMOVE when NULL. */
static int idem_update(dynamo_repo *r, const char *user_id, const char *key,
		       const cart_idem *rec, const char *tok, idem_cond kind,
		       cJSON *v1, bool *ambiguous)
{
	cJSON *req = cJSON_CreateObject();
	char name[300], nb[16], fb[16], sb[16], vb[16], v1b[16], stb[16];
	char update[64], cond[160];
	const char *np;
	call_result res;
	expr e;
	int rc;

	idem_attr_name(name, sizeof(name), key);
	expr_init(&e);
	np = expr_name(&e, name, nb);
	if (rec)
		snprintf(update, sizeof(update), "SET %s = %s", np,
			 expr_value(&e, encode_idem(rec, tok), vb));
	else
		snprintf(update, sizeof(update), "REMOVE %s", np);
	cJSON_AddItemToObject(req, "Key", key_of(user_id));
	cJSON_AddStringToObject(req, "UpdateExpression", update);
	if (kind == COND_NOT_LIVE) {
		snprintf(cond, sizeof(cond), "attribute_not_exists(%s) OR %s.%s <= %s",
			 np, np, expr_name(&e, "exp", fb), expr_value(&e, v1, v1b));
		cJSON_AddStringToObject(req, "ConditionExpression", cond);
	} else if (kind == COND_PENDING_OWN) {
		const char *st = expr_name(&e, "st", sb);
		const char *pending = expr_value(&e, av_s("PENDING"), stb);
		snprintf(cond, sizeof(cond), "%s.%s = %s AND %s.%s = %s", np, st,
			 pending, np, expr_name(&e, "fp", fb), expr_value(&e, v1, v1b));
		cJSON_AddStringToObject(req, "ConditionExpression", cond);
	}
	expr_attach(&e, req);
	rc = call(r, "UpdateItem", req, &res, true);
	if (ambiguous)
		*ambiguous = res.ambiguous;
	cJSON_Delete(res.resp);
	return rc;
}

/* Is the key's stored record the claim marked tok? */
static bool claim_landed(dynamo_repo *r, const char *user_id, const char *key,
			 const char *tok)
{
	char name[300];
	const cJSON *av;
	const char *got;
	cJSON *resp;
	bool landed;

	idem_attr_name(name, sizeof(name), key);
	if (get_attr(r, user_id, name, &resp, &av))
		return false;
	got = get_s(cJSON_GetObjectItemCaseSensitive(av, "M"), "tok");
	landed = got && !strcmp(got, tok);
	cJSON_Delete(resp);
	return landed;
}

/*
 * A claim carries a fresh token: if the first attempt timed out after it
 * was applied, the retry fails its own condition, and the token tells
 * that the claim is ours (else the key would look in flight for a whole
 * lease).
 */
static int dynamo_idem_claim(void *self, const char *user_id,
			     const cart_idem *rec, int64_t now_ms)
{
	dynamo_repo *r = self;
	char tok[CART_UUID_LEN + 1];
	bool ambiguous = false;
	int rc;

	if (cart_ids_uuid(r->ids, tok))
		return CART_EBACKEND;
	rc = idem_update(r, user_id, rec->key, rec, tok, COND_NOT_LIVE,
			 av_n(now_ms), &ambiguous);
	if (rc == CART_ECONFLICT && ambiguous &&
	    claim_landed(r, user_id, rec->key, tok))
		rc = CART_OK;
	return rc;
}

static int dynamo_idem_complete(void *self, const char *user_id,
				const cart_idem *rec)
{
	return idem_update(self, user_id, rec->key, rec, NULL, COND_NONE, NULL, NULL);
}

static int dynamo_idem_release(void *self, const char *user_id,
			       const char *key, const char *fingerprint)
{
	int rc = idem_update(self, user_id, key, NULL, NULL, COND_PENDING_OWN,
			     av_s(fingerprint), NULL);
	return rc == CART_ECONFLICT ? CART_OK : rc;  /* not ours, or gone */
}

/* --- readiness ---------------------------------------------------------- */

/*
 * A GetItem of a sentinel key: allowed by the runtime policy (unlike
 * DescribeTable) and proves table, credentials and network.  Cached so
 * that probes cannot hammer DynamoDB.
 */
static int dynamo_ping(void *self)
{
	dynamo_repo *r = self;
	int64_t now = cart_clock_now(r->clock);
	cJSON *req;
	call_result res;
	int rc;

	if (now - atomic_load(&r->ready_checked_at) < r->ready_cache_ms)
		return atomic_load(&r->ready_rc);
	req = cJSON_CreateObject();
	cJSON *k = cJSON_CreateObject();
	cJSON_AddItemToObject(k, "PK", av_s("HEALTH#ready"));
	cJSON_AddItemToObject(k, "SK", av_s("HEALTH"));
	cJSON_AddItemToObject(req, "Key", k);
	cJSON_AddStringToObject(req, "ProjectionExpression", "PK");
	rc = call(r, "GetItem", req, &res, false);
	cJSON_Delete(res.resp);
	atomic_store(&r->ready_rc, rc);
	atomic_store(&r->ready_checked_at, now);
	return rc;
}

static void dynamo_destroy(void *self)
{
	free(self);
}

static const cart_repo_ops dynamo_repo_ops = {
	.version = CART_REPO_OPS_VERSION,
	.load = dynamo_load,
	.save = dynamo_save,
	.idem_get = dynamo_idem_get,
	.idem_claim = dynamo_idem_claim,
	.idem_complete = dynamo_idem_complete,
	.idem_release = dynamo_idem_release,
	.outbox_fetch = dynamo_outbox_fetch,
	.outbox_ack = dynamo_outbox_ack,
	.ping = dynamo_ping,
	.destroy = dynamo_destroy,
	.outbox_park = dynamo_outbox_park,
};

int cart_dynamo_repo_new(cart_repo *out, const cart_dynamo_config *cfg,
			 cart_aws_client *client, const cart_clock *clock,
			 const cart_ids *ids, const cart_aws_log *log)
{
	dynamo_repo *r;

	out->ops = NULL;
	out->self = NULL;
	if (!cfg->table || !*cfg->table || strlen(cfg->table) > 255 || !client)
		return CART_EINVALID;
	r = calloc(1, sizeof(*r));
	if (!r)
		return CART_ENOMEM;
	strcpy(r->table, cfg->table);
	r->ready_cache_ms = cfg->ready_cache_ms > 0 ? cfg->ready_cache_ms : 5000;
	r->client = client;
	r->clock = clock;
	r->ids = ids;
	r->log = log;
	atomic_store(&r->ready_checked_at, INT64_MIN / 2);
	out->ops = &dynamo_repo_ops;
	out->self = r;
	return CART_OK;
}

void cart_dynamo_repo_stats(const cart_repo *repo, cart_dynamo_stats *out)
{
	dynamo_repo *r = repo->self;

	out->requests = atomic_load(&r->requests);
	out->read_units_x10 = atomic_load(&r->rcu_x10);
	out->write_units_x10 = atomic_load(&r->wcu_x10);
	out->bad_items = atomic_load(&r->bad_items);
}
