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
 *   outbox L of M    pending events, oldest first: {id S, ty N, at N,
 *                    v N, c S, i S?, qb N, qa N, p N, cur S?, n N,
 *                    lt N? (when a relay took the cart over while this
 *                    event was the head, ms; see scan_index)}
 *   obPending S      while the outbox is not empty, its owner: the task
 *                    that last wrote the cart (cart_dynamo_config.owner),
 *                    "-" if that task runs no relay, or a relay that took
 *                    it over.  The key of the sparse index "outbox": each
 *                    relay queries its own partition and now and then
 *                    scans the index for carts of nobody and stale ones
 *                    (docs/adr/0008)
 *   idemN N          how many idempotency records the user holds (about:
 *                    the bound's counter, reset by each sweep)
 *
 *   PK "CART#<userID>", SK "IDEM#<key>": one idempotency record
 *   fp S, st S ("PENDING" | "COMPLETE"), status N, exp N (ms), tok S? (a
 *   claim's own mark), body B? (the response body, zlib-compressed when
 *   z N is present: z is the raw length), expiresAt N (epoch s, the TTL)
 *
 * A cart save is one UpdateItem conditional on version; a save that also
 * stores an idempotency record is one TransactWriteItems (the cart update
 * and the record's Put), so the record commits with the cart or not at all
 * and never grows the cart item.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dynamodb/dynamo_codec.h"
#include "dynamodb/dynamo_repo.h"

#define TARGET "DynamoDB_20120810."
#define IDEM_SK "IDEM#"
#define IDEM_ZMIN 512        /* bodies from this size on are compressed */
#define IDEM_MAX_DEFAULT 256 /* records kept per user (cart_dynamo_config) */
#define LEASE_MS_DEFAULT 30000
#define SCAN_INTERVAL_MS_DEFAULT 5000

typedef struct dynamo_repo {
	char table[256];
	int64_t ready_cache_ms;
	int64_t idem_max;            /* records per user before a sweep */
	cart_aws_client *client;
	const cart_clock *clock;
	const cart_ids *ids;
	const cart_aws_log *log;
	atomic_int_fast64_t ready_checked_at;
	atomic_int ready_rc;
	atomic_uint_fast64_t requests, rcu_x10, wcu_x10, bad_items;
	char owner[CART_DYNAMO_OWNER_MAX + 1];   /* obPending of our saves */
	int64_t lease_ms, scan_interval_ms;
	pthread_mutex_t scan_lock;   /* guards the three fields below */
	bool scanned;                /* a scan was claimed since the start */
	int64_t scanned_at;          /* when (clock) the last one was claimed */
	cJSON *scan_from;            /* where the next scan starts; NULL: the top */
	cJSON *query_from;           /* where the next Query starts; NULL: the top */
	atomic_uint_fast64_t queries, scans, takeovers;
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

/* The key of the user's idempotency record for key. */
static cJSON *idem_key_of(const char *user_id, const char *key)
{
	char pk[CART_ID_MAX + 8], sk[CART_IDEM_KEY_MAX + 8];
	cJSON *k = cJSON_CreateObject();

	snprintf(pk, sizeof(pk), "CART#%s", user_id);
	snprintf(sk, sizeof(sk), IDEM_SK "%s", key);
	cJSON_AddItemToObject(k, "PK", av_s(pk));
	cJSON_AddItemToObject(k, "SK", av_s(sk));
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

/* A plain JSON string member (not an attribute value), or NULL. */
static const char *get_s_plain(const cJSON *obj, const char *name)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(s) ? s->valuestring : NULL;
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

/* ConsumedCapacity: one object, or a list of them (batch, transaction). */
static void add_capacity(dynamo_repo *r, const cJSON *resp, bool write)
{
	const cJSON *cc = cJSON_GetObjectItemCaseSensitive(resp, "ConsumedCapacity");
	const cJSON *one = cJSON_IsArray(cc) ? cc->child : cc;

	for (; one; one = cJSON_IsArray(cc) ? one->next : NULL) {
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(one, "CapacityUnits");
		if (cJSON_IsNumber(u))
			atomic_fetch_add(write ? &r->wcu_x10 : &r->rcu_x10,
					 (uint64_t)(u->valuedouble * 10 + 0.5));
	}
}

/*
 * A canceled transaction: CART_ECONFLICT if a condition failed or another
 * transaction held an item (the caller reloads and decides again),
 * CART_EINVALID if an item was too large, else CART_EBACKEND.
 */
static int why_canceled(const cart_aws_response *ar)
{
	cJSON *body = cJSON_ParseWithLength(ar->body ? ar->body : "", ar->body_len);
	const cJSON *reasons = cJSON_GetObjectItemCaseSensitive(body, "CancellationReasons");
	const cJSON *reason;
	int rc = CART_EBACKEND;

	cJSON_ArrayForEach(reason, reasons) {
		const char *code = get_s_plain(reason, "Code");
		const char *msg = get_s_plain(reason, "Message");

		if (!code || !strcmp(code, "None"))
			continue;
		if (!strcmp(code, "ConditionalCheckFailed") ||
		    !strcmp(code, "TransactionConflict"))
			rc = CART_ECONFLICT;
		else if (!strcmp(code, "ValidationError") && msg && strstr(msg, "size") &&
			 rc != CART_ECONFLICT)
			rc = CART_EINVALID;
	}
	cJSON_Delete(body);
	return rc;
}

typedef struct call_result {
	cJSON *resp;             /* parsed 200 body, owned */
	bool ambiguous;
	char error_type[128];
} call_result;

/*
 * The one line for a failed call (aws.h: the client logged its attempts at
 * debug only; the app names the cart error on the access line).
 */
static void log_failure(dynamo_repo *r, const char *op, int rc,
			const cart_aws_response *ar)
{
	cart_aws_fields f;

	cart_aws_fields_init(&f);
	cart_aws_fields_str(&f, "op", op, 0);
	cart_aws_fields_str(&f, "outcome", cart_err_name(rc), 0);
	cart_aws_fields_int(&f, "status", ar->status);
	cart_aws_fields_str(&f, "error", ar->error_type, 0);
	/* no attempt: the deadline had come, or the breaker refused */
	cart_aws_fields_str(&f, "detail", ar->attempts ? ar->message
				: ar->deadline_cut ? "deadline reached: not sent"
				: "circuit open: not sent", 160);
	cart_aws_fields_int(&f, "attempts", ar->attempts);
	if (ar->deadline_cut)
		cart_aws_fields_bool(&f, "deadline_cut", true);
	if (ar->request_id[0])
		cart_aws_fields_str(&f, "aws_request_id", ar->request_id, 0);
	cart_aws_log_write(r->log, CART_AWS_LOG_WARN, "dynamodb request failed", &f);
}

/*
 * Sends op with req (consumed; NULL: text, the whole request already
 * written, TableName and ReturnConsumedCapacity included), giving up at
 * deadline_ms (wall clock, the
 * request's; 0: none): see cart_aws_call_until.  CART_OK with res->resp
 * (or, with kept, the 200 answer moved to *kept unparsed: caller releases),
 * CART_ECONFLICT for a failed condition, CART_EINVALID for an item too
 * large, CART_EUNAVAILABLE (breaker open, throttled, or the deadline
 * came), else CART_EBACKEND.
 */
static int call_until_kept(dynamo_repo *r, const char *op, cJSON *req,
			   const char *text, call_result *res, bool write,
			   int64_t deadline_ms, cart_aws_response *kept)
{
	char target[64];
	cart_aws_response ar;
	char *body = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	if (req) {
		if (strcmp(op, "TransactWriteItems") && strcmp(op, "BatchWriteItem"))
			/* those name the table per item */
			cJSON_AddStringToObject(req, "TableName", r->table);
		cJSON_AddStringToObject(req, "ReturnConsumedCapacity", "TOTAL");
		body = cJSON_PrintUnformatted(req);
		cJSON_Delete(req);
		if (!body)
			return CART_ENOMEM;
		text = body;
	}
	snprintf(target, sizeof(target), TARGET "%s", op);
	atomic_fetch_add(&r->requests, 1);
	rc = cart_aws_call_until(r->client, target, text, strlen(text),
				 deadline_ms, &ar);
	cJSON_free(body);
	res->ambiguous = ar.ambiguous;
	snprintf(res->error_type, sizeof(res->error_type), "%s", ar.error_type);
	if (rc == CART_OK && ar.status == 200 && kept) {
		*kept = ar;   /* the caller reads the body, and releases it */
		return CART_OK;
	} else if (rc == CART_OK && ar.status == 200) {
		res->resp = cJSON_ParseWithLength(ar.body ? ar.body : "", ar.body_len);
		if (!res->resp)
			rc = CART_EBACKEND;
		else
			add_capacity(r, res->resp, write);
	} else if (rc == CART_OK) {
		if (!strcmp(ar.error_type, "ConditionalCheckFailedException"))
			rc = CART_ECONFLICT;
		else if (!strcmp(ar.error_type, "TransactionCanceledException"))
			rc = why_canceled(&ar);
		else if (!strcmp(ar.error_type, "ValidationException") &&
			 strstr(ar.message, "size"))
			rc = CART_EINVALID;
		else if (ar.status == 400 && (strstr(ar.error_type, "Throughput") ||
					      strstr(ar.error_type, "Throttl") ||
					      strstr(ar.error_type, "LimitExceeded")))
			rc = CART_EUNAVAILABLE;   /* still throttled after the retries */
		else
			rc = ar.status >= 500 ? CART_EUNAVAILABLE : CART_EBACKEND;
	}
	if (rc == CART_EBACKEND || rc == CART_EINVALID || rc == CART_EUNAVAILABLE)
		log_failure(r, op, rc, &ar);
	cart_aws_response_release(&ar);
	return rc;
}

static int call_until(dynamo_repo *r, const char *op, cJSON *req,
		      call_result *res, bool write, int64_t deadline_ms)
{
	return call_until_kept(r, op, req, NULL, res, write, deadline_ms, NULL);
}

/* A request no client request waits for (the relay, ping, migrations). */
static int call(dynamo_repo *r, const char *op, cJSON *req, call_result *res,
		bool write)
{
	return call_until(r, op, req, res, write, 0);
}

/* The request's deadline (cart/call.h), 0 if there is no request. */
static int64_t deadline_of(const cart_call_ctx *c)
{
	return c ? c->deadline_ms : 0;
}

/*
 * A consistent GetItem of one top-level attribute of the user's item.
 * CART_OK with *resp (caller deletes) and *value (borrowed from it, NULL
 * if the attribute is absent), or the call's error.
 */
static int get_attr(dynamo_repo *r, const char *user_id, const char *attr,
		    int64_t deadline_ms, cJSON **resp, const cJSON **value)
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
	rc = call_until(r, "GetItem", req, &res, false, deadline_ms);
	*resp = res.resp;
	*value = rc ? NULL : cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(res.resp, "Item"), attr);
	return rc;
}

/* --- decoding ----------------------------------------------------------- */

static int bad_item(dynamo_repo *r, const char *user_id, const char *why)
{
	cart_aws_fields f;

	atomic_fetch_add(&r->bad_items, 1);
	cart_aws_fields_init(&f);
	cart_aws_fields_str(&f, "user_id", user_id, 0);
	cart_aws_fields_str(&f, "detail", why, 0);
	cart_aws_log_write(r->log, CART_AWS_LOG_ERROR, "unreadable cart item in DynamoDB", &f);
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
	if (!cart_dynamo_line_times(created, &added, &updated))
		return -1;
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
	int64_t version, created = 0, updated = 0, expires = 0;   /* s, then ms */
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
		    get_n(item, "expiresAt", &expires) ||
		    !cart_dynamo_expiry_ms(expires, &expires))) {
		cart_free(c);
		return bad_item(r, user_id, "cart times missing, not numbers or out of range");
	}
	if (version < 1 || cart_restore_meta(c, cid, version, created, updated,
					      expires)) {
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

/* A string JSON carries between quotes as it is. */
static bool json_plain(const char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
			return false;
	return true;
}

static char *put(char *o, const char *s)
{
	size_t n = strlen(s);

	memcpy(o, s, n);
	return o + n;
}

/*
 * The GetItem of the user's cart item written out, as key_of and
 * call_until would build it with cJSON, without the tree (issue 10).
 * false when the table or the user id would need escaping, or the id is
 * longer than CART_ID_MAX (key_of's key is cut there, and so must this
 * one be: never through the service, whose configuration and core allow
 * none of these), or cap is short: then cJSON builds it.
 */
static bool get_item_text(char *out, size_t cap, const char *table,
			  const char *user_id)
{
	static const char a[] = "{\"Key\":{\"PK\":{\"S\":\"CART#";
	static const char b[] = "\"},\"SK\":{\"S\":\"CART\"}},\"ConsistentRead\":true,"
				"\"TableName\":\"";
	static const char c[] = "\",\"ReturnConsumedCapacity\":\"TOTAL\"}";
	char *o = out;

	if (!json_plain(table) || !json_plain(user_id) ||
	    strlen(user_id) > CART_ID_MAX ||
	    sizeof(a) + sizeof(b) + sizeof(c) + strlen(table) + strlen(user_id) > cap)
		return false;
	o = put(o, a);
	o = put(o, user_id);
	o = put(o, b);
	o = put(o, table);
	o = put(o, c);
	*o = '\0';
	return true;
}

/* Gives up at the request's deadline: CART_EUNAVAILABLE (repo.h). */
static int dynamo_load_call(void *self, const cart_call_ctx *rq,
			    const char *user_id, cart **out)
{
	dynamo_repo *r = self;
	char text[sizeof(r->table) + CART_ID_MAX + 160];
	cJSON *req = NULL;
	const cJSON *item;
	cart_aws_response ar;
	call_result res;
	double units;
	int rc;

	if (!get_item_text(text, sizeof(text), r->table, user_id)) {
		req = cJSON_CreateObject();
		cJSON_AddItemToObject(req, "Key", key_of(user_id));
		cJSON_AddTrueToObject(req, "ConsistentRead");
	}
	rc = call_until_kept(r, "GetItem", req, text, &res, false, deadline_of(rq), &ar);
	if (rc)
		return rc;
	/* The typed reader first; cJSON for whatever it declines. */
	rc = cart_dynamo_read_get(ar.body, ar.body_len, user_id, out, &units);
	if (rc != CART_DYNAMO_DECLINED) {
		atomic_fetch_add(&r->rcu_x10, (uint64_t)(units * 10 + 0.5));
		cart_aws_response_release(&ar);
		return rc;
	}
	res.resp = cJSON_ParseWithLength(ar.body ? ar.body : "", ar.body_len);
	if (!res.resp)
		log_failure(r, "GetItem", CART_EBACKEND, &ar);
	cart_aws_response_release(&ar);
	if (!res.resp)
		return CART_EBACKEND;
	add_capacity(r, res.resp, false);
	item = cJSON_GetObjectItemCaseSensitive(res.resp, "Item");
	rc = item ? decode_cart(r, item, user_id, out) : CART_ENOTFOUND;
	cJSON_Delete(res.resp);
	return rc;
}

static int dynamo_load(void *self, const char *user_id, cart **out)
{
	return dynamo_load_call(self, NULL, user_id, out);
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

/*
 * The item of an idempotency record (NULL if out of memory).  tok: the
 * claim's own mark (see dynamo_idem_claim), or NULL.  Bodies of IDEM_ZMIN
 * bytes or more are stored compressed: a cart response is JSON with
 * repeated names, so a record stays a fraction of the cart it describes.
 */
static cJSON *encode_idem(const char *user_id, const cart_idem *rec,
			  const char *tok)
{
	cJSON *item = idem_key_of(user_id, rec->key);

	if (tok)
		cJSON_AddItemToObject(item, "tok", av_s(tok));
	cJSON_AddItemToObject(item, "fp", av_s(rec->fingerprint));
	cJSON_AddItemToObject(item, "st", av_s(rec->state == CART_IDEM_PENDING
						       ? "PENDING" : "COMPLETE"));
	cJSON_AddItemToObject(item, "status", av_n(rec->status));
	cJSON_AddItemToObject(item, "exp", av_n(rec->expires_at));
	cJSON_AddItemToObject(item, "expiresAt", av_n(rec->expires_at / 1000 + 1));
	if (rec->body_len >= IDEM_ZMIN) {
		uLongf zlen = compressBound(rec->body_len);
		Bytef *z = malloc(zlen);
		cJSON *b;

		if (!z || compress2(z, &zlen, (const Bytef *)rec->body, rec->body_len,
				    Z_DEFAULT_COMPRESSION) != Z_OK ||
		    !(b = av_b((const char *)z, zlen))) {
			free(z);
			cJSON_Delete(item);
			return NULL;
		}
		free(z);
		cJSON_AddItemToObject(item, "body", b);
		cJSON_AddItemToObject(item, "z", av_n((int64_t)rec->body_len));
	} else if (rec->body_len) {
		cJSON_AddItemToObject(item, "body", av_b(rec->body, rec->body_len));
	}
	return item;
}

/* "SET a = :x, b = :y" / "REMOVE a, b" clauses, built as the cart says. */
typedef struct clauses {
	char set[4096];
	char remove[512];
	char add[64];
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
static bool write_landed(dynamo_repo *r, const char *user_id,
			 const char *write_id, int64_t deadline_ms)
{
	const cJSON *av, *got;
	cJSON *resp;
	bool landed;

	if (get_attr(r, user_id, "writeId", deadline_ms, &resp, &av))
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
	/* optional: items written before tracing have no "tr" */
	if (ev->trace_header[0])
		cJSON_AddItemToObject(m, "tr", av_s(ev->trace_header));
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
	/* a trace header that does not fit is dropped, never the event */
	if (copy_field(ev->trace_header, sizeof(ev->trace_header),
		       get_s(m, "tr"), false))
		ev->trace_header[0] = '\0';
	ev->type = (cart_event_type)ty;
	ev->quantity_before = (int32_t)qb;
	ev->quantity_after = (int32_t)qa;
	return 0;
}

/*
 * The save's part: append the events, mark the item pending in owner's
 * partition of the index (the writer becomes the owner), bound it.
 */
static void outbox_append(expr *e, clauses *cl, const cart_write *w,
			  const char *owner, char *cond, size_t cond_cap)
{
	char ob[16], p[16], ev[16], empty[16], me[16], room[16], part[160];
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
		 expr_value(e, av_s(owner), me));
	clause_add(cl->set, sizeof(cl->set), "SET ", part);
	n = strlen(cond);
	snprintf(cond + n, cond_cap - n,
		 " AND (attribute_not_exists(%s) OR size(%s) <= %s)", obn, obn,
		 expr_value(e, av_n((int64_t)(CART_OUTBOX_MAX - w->event_count)),
			    room));
}

/* --- the bound on a user's idempotency records --------------------------- */

/* why_refused's answer when the user's records are at the bound. */
#define RECORDS_FULL 1

/*
 * For a write that stores a record: "ADD idemN 1" and the condition that
 * the user holds fewer than idem_max records.
 */
static void count_record(dynamo_repo *r, expr *e, char *cond, size_t cond_cap,
			 char *add, size_t add_cap)
{
	char nb[16], one[16], max[16];
	const char *np = expr_name(e, "idemN", nb);
	size_t n = strlen(cond);

	snprintf(cond + n, cond_cap - n, "%s(attribute_not_exists(%s) OR %s < %s)",
		 n ? " AND " : "", np, np, expr_value(e, av_n(r->idem_max), max));
	snprintf(add, add_cap, "ADD %s %s", np, expr_value(e, av_n(1), one));
}

typedef struct rec_ref {
	char *sk;
	int64_t exp;
	bool pending;
} rec_ref;

/* PENDING claims last (never evicted), COMPLETE records oldest first. */
static int rec_order(const void *a, const void *b)
{
	const rec_ref *x = a, *y = b;

	if (x->pending != y->pending)
		return x->pending ? 1 : -1;
	return (x->exp > y->exp) - (x->exp < y->exp);
}

/* Every record of the user (key, state, expiry): one Query per 1 MB. */
static int list_records(dynamo_repo *r, const char *user_id,
			int64_t deadline_ms, rec_ref **out, size_t *n_out)
{
	char pk[CART_ID_MAX + 8], b0[16], b1[16], b2[16], b3[16], b4[16], b5[16];
	char kc[96], proj[64];
	cJSON *start = NULL;
	rec_ref *refs = NULL;
	size_t n = 0, cap = 0;
	int rc = CART_OK;

	snprintf(pk, sizeof(pk), "CART#%s", user_id);
	do {
		cJSON *req = cJSON_CreateObject();
		const cJSON *it;
		call_result res;
		expr e;

		expr_init(&e);
		snprintf(kc, sizeof(kc), "%s = %s AND begins_with(%s, %s)",
			 expr_name(&e, "PK", b0), expr_value(&e, av_s(pk), b1),
			 expr_name(&e, "SK", b2), expr_value(&e, av_s(IDEM_SK), b3));
		snprintf(proj, sizeof(proj), "%s, %s, %s", b2, expr_name(&e, "st", b4),
			 expr_name(&e, "exp", b5));
		cJSON_AddStringToObject(req, "KeyConditionExpression", kc);
		cJSON_AddStringToObject(req, "ProjectionExpression", proj);
		cJSON_AddTrueToObject(req, "ConsistentRead");
		if (start)
			cJSON_AddItemToObject(req, "ExclusiveStartKey", start);
		start = NULL;
		expr_attach(&e, req);
		rc = call_until(r, "Query", req, &res, false, deadline_ms);
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(res.resp, "Items")) {
			const char *sk = get_s(it, "SK"), *st = get_s(it, "st");
			int64_t exp = 0;

			if (!sk)
				continue;
			if (n == cap) {
				rec_ref *more = realloc(refs, (cap = cap ? 2 * cap : 64) *
							      sizeof(*refs));
				if (!more) {
					rc = CART_ENOMEM;
					break;
				}
				refs = more;
			}
			get_n(it, "exp", &exp);
			refs[n].sk = strdup(sk);
			refs[n].exp = exp;
			refs[n].pending = st && !strcmp(st, "PENDING");
			if (!refs[n].sk) {
				rc = CART_ENOMEM;
				break;
			}
			n++;
		}
		if (!rc && cJSON_GetObjectItemCaseSensitive(res.resp, "LastEvaluatedKey"))
			start = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(
				res.resp, "LastEvaluatedKey"), true);
		cJSON_Delete(res.resp);
	} while (!rc && start);
	*out = refs;
	*n_out = n;
	return rc;
}

/* Deletes refs[0..n) with BatchWriteItem; returns how many went. */
static size_t delete_records(dynamo_repo *r, const char *user_id,
			     const rec_ref *refs, size_t n, int64_t deadline_ms)
{
	char pk[CART_ID_MAX + 8];
	size_t gone = 0;

	snprintf(pk, sizeof(pk), "CART#%s", user_id);
	for (size_t at = 0; at < n; at += 25) {
		cJSON *req = cJSON_CreateObject(), *ri = cJSON_CreateObject();
		cJSON *list = cJSON_CreateArray();
		size_t m = n - at < 25 ? n - at : 25;
		const cJSON *left;
		call_result res;

		for (size_t i = at; i < at + m; i++) {
			cJSON *del = cJSON_CreateObject(), *k = cJSON_CreateObject();
			cJSON *wr = cJSON_CreateObject();

			cJSON_AddItemToObject(k, "PK", av_s(pk));
			cJSON_AddItemToObject(k, "SK", av_s(refs[i].sk));
			cJSON_AddItemToObject(del, "Key", k);
			cJSON_AddItemToObject(wr, "DeleteRequest", del);
			cJSON_AddItemToArray(list, wr);
		}
		cJSON_AddItemToObject(ri, r->table, list);
		cJSON_AddItemToObject(req, "RequestItems", ri);
		if (call_until(r, "BatchWriteItem", req, &res, true,
			       deadline_ms) == CART_OK) {
			/* what DynamoDB did not get to stays for the next sweep */
			left = cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(res.resp, "UnprocessedItems"),
				r->table);
			gone += m - (size_t)cJSON_GetArraySize(left);
		}
		cJSON_Delete(res.resp);
	}
	return gone;
}

static void log_swept(dynamo_repo *r, const char *user_id, size_t gone, size_t kept)
{
	cart_aws_fields f;

	cart_aws_fields_init(&f);
	cart_aws_fields_str(&f, "user_id", user_id, 0);
	cart_aws_fields_int(&f, "deleted", (long long)gone);
	cart_aws_fields_int(&f, "kept", (long long)kept);
	cart_aws_log_write(r->log, CART_AWS_LOG_INFO, "idempotency records swept", &f);
}

/*
 * The user reached idem_max records: forget the oldest COMPLETE ones down
 * to three quarters of the bound (so a sweep runs once per idem_max / 4
 * keyed writes, not on each), and set the count to what is left.  PENDING
 * claims are never deleted.  Expired records sort first, so they go first.
 */
static int sweep_records(dynamo_repo *r, const char *user_id,
			 int64_t deadline_ms)
{
	size_t n = 0, complete = 0, keep = (size_t)(r->idem_max * 3 / 4), gone = 0;
	char nb[16], vb[16], update[48];
	rec_ref *refs = NULL;
	call_result res;
	cJSON *req;
	expr e;
	int rc;

	rc = list_records(r, user_id, deadline_ms, &refs, &n);
	if (!rc) {
		qsort(refs, n, sizeof(*refs), rec_order);
		while (complete < n && !refs[complete].pending)
			complete++;
		if (complete > keep)
			gone = delete_records(r, user_id, refs, complete - keep,
					      deadline_ms);
		req = cJSON_CreateObject();
		expr_init(&e);
		snprintf(update, sizeof(update), "SET %s = %s", expr_name(&e, "idemN", nb),
			 expr_value(&e, av_n((int64_t)(n - gone)), vb));
		cJSON_AddItemToObject(req, "Key", key_of(user_id));
		cJSON_AddStringToObject(req, "UpdateExpression", update);
		expr_attach(&e, req);
		rc = call_until(r, "UpdateItem", req, &res, true, deadline_ms);
		cJSON_Delete(res.resp);
		log_swept(r, user_id, gone, n - gone);
	}
	for (size_t i = 0; i < n; i++)
		free(refs[i].sk);
	free(refs);
	return rc;
}

/*
 * After a failed condition: was it the version (CART_ECONFLICT), a full
 * outbox (CART_EBACKLOG) or the user's records at the bound
 * (RECORDS_FULL)?
 */
static int why_refused(dynamo_repo *r, const cart_write *w)
{
	cJSON *req = cJSON_CreateObject();
	const cJSON *item, *ob;
	call_result res;
	int64_t v = 0, records = 0;
	int rc;

	cJSON_AddItemToObject(req, "Key", key_of(w->user_id));
	cJSON_AddTrueToObject(req, "ConsistentRead");
	cJSON_AddStringToObject(req, "ProjectionExpression", "version, outbox, idemN");
	if (call_until(r, "GetItem", req, &res, false, deadline_of(w->call)))
		return CART_ECONFLICT;
	item = cJSON_GetObjectItemCaseSensitive(res.resp, "Item");
	ob = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(item, "outbox"), "L");
	get_n(item, "version", &v);
	get_n(item, "idemN", &records);
	rc = v != w->expected_version ? CART_ECONFLICT
	   : (size_t)cJSON_GetArraySize(ob) + w->event_count > CART_OUTBOX_MAX
		   ? CART_EBACKLOG
	   : w->idem && records >= r->idem_max ? RECORDS_FULL : CART_ECONFLICT;
	if (rc == CART_EBACKLOG) {
		cart_aws_fields f;

		cart_aws_fields_init(&f);
		cart_aws_fields_str(&f, "user_id", w->user_id, 0);
		cart_aws_log_write(r->log, CART_AWS_LOG_WARN, "event outbox full: write refused", &f);
	}
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
 * Pending carts are in the sparse index "outbox" (only items with
 * obPending are in it), partitioned by owner.  A fetch reads one page:
 * usually a Query of our own partition; every scan_interval_ms instead a
 * Scan of the whole index (continuing where the last one stopped) that
 * also finds carts without a relay (CART_DYNAMO_OWNER_ANY) and carts of
 * another owner whose oldest event is older than the lease, and takes
 * those over.  backlog counts what that page holds for us, plus one if
 * the index has more pages.  Each Query goes on from the page the last
 * one ended at, round our partition: carts whose events are published
 * but whose acks wait (cart_relay_set_ack_delay) stay in the index for up
 * to a second, and must not hide the carts behind them.
 */

/* Claims the scan if one is due: true, and *from (caller owns; NULL for
 * the top of the index). */
static bool scan_due(dynamo_repo *r, int64_t now, cJSON **from)
{
	bool due;

	pthread_mutex_lock(&r->scan_lock);
	due = !r->scanned || now - r->scanned_at >= r->scan_interval_ms;
	if (due) {
		r->scanned = true;
		r->scanned_at = now;
		*from = r->scan_from ? cJSON_Duplicate(r->scan_from, true) : NULL;
	}
	pthread_mutex_unlock(&r->scan_lock);
	return due;
}

/* A scan's page came back: the next scan starts after it (or at the top). */
static void scan_done(dynamo_repo *r, const cJSON *resp)
{
	const cJSON *last = cJSON_GetObjectItemCaseSensitive(resp, "LastEvaluatedKey");
	cJSON *next = last ? cJSON_Duplicate(last, true) : NULL;

	pthread_mutex_lock(&r->scan_lock);
	cJSON_Delete(r->scan_from);
	r->scan_from = next;
	pthread_mutex_unlock(&r->scan_lock);
}

static int query_own(dynamo_repo *r, size_t limit, call_result *res)
{
	cJSON *req = cJSON_CreateObject();
	char nb[16], vb[16], cond[48];
	expr e;
	int rc;

	expr_init(&e);
	snprintf(cond, sizeof(cond), "%s = %s", expr_name(&e, "obPending", nb),
		 expr_value(&e, av_s(r->owner), vb));
	cJSON_AddStringToObject(req, "IndexName", OUTBOX_INDEX);
	cJSON_AddStringToObject(req, "KeyConditionExpression", cond);
	cJSON_AddNumberToObject(req, "Limit", (double)limit);
	expr_attach(&e, req);
	pthread_mutex_lock(&r->scan_lock);
	if (r->query_from)
		cJSON_AddItemToObject(req, "ExclusiveStartKey",
				      cJSON_Duplicate(r->query_from, true));
	pthread_mutex_unlock(&r->scan_lock);
	atomic_fetch_add(&r->queries, 1);
	rc = call(r, "Query", req, res, false);
	if (rc == CART_OK) {
		pthread_mutex_lock(&r->scan_lock);
		cJSON_Delete(r->query_from);
		r->query_from = cJSON_Duplicate(
			cJSON_GetObjectItemCaseSensitive(res->resp, "LastEvaluatedKey"), true);
		pthread_mutex_unlock(&r->scan_lock);
	}
	return rc;
}

/*
 * One page of the index from from (consumed, may be NULL): ours, nobody's,
 * and those whose head event is older than the lease -- unless a takeover
 * stamped that head (lt) within the lease: the head's age does not change
 * when a cart changes hands, so without the stamp every scanning task
 * would take a cart that stays behind (a refusing bus, a relay far
 * behind) from the others every few seconds and publish it again.
 */
static int scan_index(dynamo_repo *r, size_t limit, int64_t now, cJSON *from,
		      call_result *res)
{
	char p[16], ob[16], at[16], lt[16], me[16], any[16], cut[16], filter[256];
	cJSON *req = cJSON_CreateObject();
	expr e;

	expr_init(&e);
	expr_name(&e, "obPending", p);
	expr_name(&e, "outbox", ob);
	expr_name(&e, "at", at);
	expr_name(&e, "lt", lt);
	expr_value(&e, av_s(r->owner), me);
	expr_value(&e, av_s(CART_DYNAMO_OWNER_ANY), any);
	expr_value(&e, av_n(now - r->lease_ms), cut);
	snprintf(filter, sizeof(filter),
		 "%s = %s OR %s = %s OR (%s[0].%s < %s AND "
		 "(attribute_not_exists(%s[0].%s) OR %s[0].%s < %s))",
		 p, me, p, any, ob, at, cut, ob, lt, ob, lt, cut);
	cJSON_AddStringToObject(req, "IndexName", OUTBOX_INDEX);
	cJSON_AddStringToObject(req, "FilterExpression", filter);
	cJSON_AddNumberToObject(req, "Limit", (double)limit);
	if (from)
		cJSON_AddItemToObject(req, "ExclusiveStartKey", from);
	expr_attach(&e, req);
	atomic_fetch_add(&r->scans, 1);
	return call(r, "Scan", req, res, false);
}

/* The id of the item's oldest outbox event, or NULL. */
static const char *head_id(const cJSON *item)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(item, "outbox"), "L");

	return get_s(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(list, 0), "M"),
		     "id");
}

/*
 * Makes a scanned item ours if it still belongs to old with the same
 * head event, and stamps that head with the time (lt, see scan_index).
 * CART_ECONFLICT: acked, or taken by someone else, since the scan saw it.
 */
static int take_over(dynamo_repo *r, const cJSON *item, const char *old,
		     int64_t now)
{
	const char *pk = get_s(item, "PK"), *sk = get_s(item, "SK"), *head = head_id(item);
	char p[16], ob[16], id[16], lt[16], me[16], ts[16], was[16], hv[16];
	char update[96], cond[96];
	cJSON *req, *key;
	call_result res;
	expr e;
	int rc;

	if (!pk || !sk || !head)
		return CART_ECONFLICT;   /* nothing left to take */
	req = cJSON_CreateObject();
	key = cJSON_CreateObject();
	cJSON_AddItemToObject(key, "PK", av_s(pk));
	cJSON_AddItemToObject(key, "SK", av_s(sk));
	expr_init(&e);
	expr_name(&e, "obPending", p);
	expr_name(&e, "outbox", ob);
	expr_name(&e, "id", id);
	expr_name(&e, "lt", lt);
	expr_value(&e, av_s(r->owner), me);
	snprintf(update, sizeof(update), "SET %s = %s, %s[0].%s = %s", p, me, ob, lt,
		 expr_value(&e, av_n(now), ts));
	snprintf(cond, sizeof(cond), "%s = %s AND %s[0].%s = %s", p,
		 expr_value(&e, av_s(old), was), ob, id, expr_value(&e, av_s(head), hv));
	cJSON_AddItemToObject(req, "Key", key);
	cJSON_AddStringToObject(req, "UpdateExpression", update);
	cJSON_AddStringToObject(req, "ConditionExpression", cond);
	expr_attach(&e, req);
	rc = call(r, "UpdateItem", req, &res, true);
	cJSON_Delete(res.resp);
	if (rc == CART_OK)
		atomic_fetch_add(&r->takeovers, 1);
	return rc;
}

/*
 * Is a fetched item ours (now)?  A scan's item of another owner is taken
 * over first; one that cannot be is left to whoever has it (a failure
 * other than a lost race is logged once per scan, in *warned).
 */
static bool owned(dynamo_repo *r, const cJSON *item, int64_t now, bool *warned)
{
	const char *owner = get_s(item, "obPending");
	int rc;

	if (!owner)
		return false;
	if (!strcmp(owner, r->owner))
		return true;
	rc = take_over(r, item, owner, now);
	if (rc != CART_OK && rc != CART_ECONFLICT && !*warned) {
		cart_aws_fields f;

		*warned = true;
		cart_aws_fields_init(&f);
		cart_aws_fields_str(&f, "owner", owner, 0);
		cart_aws_fields_str(&f, "error", cart_strerror(rc), 0);
		cart_aws_log_write(r->log, CART_AWS_LOG_WARN,
				   "outbox takeover failed: cart left to its owner", &f);
	}
	return rc == CART_OK;
}

static int dynamo_outbox_fetch(void *self, size_t max_events, cart_outbox *out)
{
	dynamo_repo *r = self;
	size_t limit = max_events < 100 ? max_events : 100;
	int64_t now = cart_clock_now(r->clock);
	const cJSON *item;
	cJSON *from = NULL;
	bool scan = scan_due(r, now, &from), warned = false;
	call_result res;
	int rc;

	rc = scan ? scan_index(r, limit, now, from, &res) : query_own(r, limit, &res);
	if (rc)
		return rc;
	if (scan)
		scan_done(r, res.resp);
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(res.resp, "Items")) {
		if (scan && !owned(r, item, now, &warned))
			continue;
		rc = add_batch(out, item);
		if (rc == CART_EBACKEND)
			bad_item(r, get_s(item, "PK") ? get_s(item, "PK") : "?",
				 "unreadable outbox event");
		if (rc)
			break;
	}
	if (cJSON_GetObjectItemCaseSensitive(res.resp, "LastEvaluatedKey"))
		out->backlog++;          /* more pages: at least one more event */
	cJSON_Delete(res.resp);
	if (rc)
		cart_outbox_release(out);
	return rc;
}

/*
 * Appends to cond that the outbox starts with exactly ev[0..n) (by event
 * id): ob and id are the placeholders of "outbox" and "id".
 */
static void cond_head_is(expr *e, char *cond, size_t cap, const char *ob,
			 const char *id, const cart_event *ev, size_t n)
{
	char vb[16];

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(cond);
		snprintf(cond + len, cap - len, "%s%s[%zu].%s = %s", len ? " AND " : "",
			 ob, i, id, expr_value(e, av_s(ev[i].event_id), vb));
	}
}

/*
 * The common case, in one write: the events are the whole outbox, so the
 * outbox and the index key go together.  CART_ECONFLICT if the outbox is
 * not exactly these events (more arrived, or another relay acked).
 */
static int ack_all(dynamo_repo *r, const char *user_id, const cart_event *ev,
		   size_t n)
{
	char cond[40 * ACK_CHUNK + 64] = "", ob[16], p[16], id[16], vb[16], update[48];
	cJSON *req = cJSON_CreateObject();
	call_result res;
	expr e;
	int rc;

	expr_init(&e);
	expr_name(&e, "outbox", ob);
	expr_name(&e, "obPending", p);
	expr_name(&e, "id", id);
	snprintf(update, sizeof(update), "REMOVE %s, %s", ob, p);
	snprintf(cond, sizeof(cond), "size(%s) = %s", ob,
		 expr_value(&e, av_n((int64_t)n), vb));
	cond_head_is(&e, cond, sizeof(cond), ob, id, ev, n);
	cJSON_AddItemToObject(req, "Key", key_of(user_id));
	cJSON_AddStringToObject(req, "UpdateExpression", update);
	cJSON_AddStringToObject(req, "ConditionExpression", cond);
	expr_attach(&e, req);
	rc = call(r, "UpdateItem", req, &res, true);
	cJSON_Delete(res.resp);
	return rc;
}

/* Removes the first n (<= ACK_CHUNK) events if they are these ids. */
static int ack_chunk(dynamo_repo *r, const char *user_id, const cart_event *ev,
		     size_t n, bool *drained)
{
	char update[16 * ACK_CHUNK + 16] = "", cond[40 * ACK_CHUNK] = "";
	cJSON *req = cJSON_CreateObject();
	char ob[16], id[16], part[64];
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
	cond_head_is(&e, cond, sizeof(cond), ob, id, ev, n);
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

	/* Usually the relay fetched the user's whole outbox and nothing came
	 * since: one write.  Otherwise remove the prefix (and, if that left
	 * nothing, the index key) as before. */
	if (n <= ACK_CHUNK && (rc = ack_all(self, user_id, events, n)) != CART_ECONFLICT)
		return rc;
	rc = CART_OK;
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
 * The cart's UpdateItem (conditional on version, appending the events to
 * the outbox) as a request object without TableName.  NULL if out of
 * memory.
 */
static cJSON *cart_update(dynamo_repo *r, const cart_write *w,
			  const char *write_id)
{
	char nb[16], vb[16], cond[384];
	cJSON *req = cJSON_CreateObject();
	clauses cl = { "", "", "" };
	char *update;
	expr e;

	expr_init(&e);
	encode_cart(&e, &cl, w->cart, write_id);
	if (w->expected_version == 0)
		snprintf(cond, sizeof(cond), "attribute_not_exists(%s)",
			 expr_name(&e, "version", nb));
	else
		snprintf(cond, sizeof(cond), "%s = %s", expr_name(&e, "version", nb),
			 expr_value(&e, av_n(w->expected_version), vb));
	if (w->event_count)
		outbox_append(&e, &cl, w, r->owner, cond, sizeof(cond));
	if (w->idem)
		count_record(r, &e, cond, sizeof(cond), cl.add, sizeof(cl.add));
	update = malloc(strlen(cl.set) + strlen(cl.remove) + strlen(cl.add) + 3);
	if (!update) {
		expr_attach(&e, req);
		cJSON_Delete(req);
		return NULL;
	}
	sprintf(update, "%s%s%s%s%s", cl.set, cl.remove[0] ? " " : "", cl.remove,
		cl.add[0] ? " " : "", cl.add);
	cJSON_AddItemToObject(req, "Key", key_of(w->user_id));
	cJSON_AddStringToObject(req, "UpdateExpression", update);
	cJSON_AddStringToObject(req, "ConditionExpression", cond);
	free(update);
	expr_attach(&e, req);
	return req;
}

/*
 * The cart update and the record's Put in one transaction.  The write id
 * is also the ClientRequestToken, so the client's own retry of a call
 * whose answer was lost is answered without applying it twice.
 */
static cJSON *save_with_record(dynamo_repo *r, const cart_write *w,
			       cJSON *update, const char *write_id)
{
	cJSON *req = cJSON_CreateObject(), *items = cJSON_CreateArray();
	cJSON *put = cJSON_CreateObject(), *upd = cJSON_CreateObject();
	cJSON *item = encode_idem(w->user_id, w->idem, NULL);

	if (!item) {
		cJSON_Delete(req);
		cJSON_Delete(items);
		cJSON_Delete(put);
		cJSON_Delete(upd);
		cJSON_Delete(update);
		return NULL;
	}
	cJSON_AddStringToObject(update, "TableName", r->table);
	cJSON_AddItemToObject(upd, "Update", update);
	cJSON_AddItemToArray(items, upd);
	cJSON_AddStringToObject(put, "TableName", r->table);
	cJSON_AddItemToObject(put, "Item", item);
	cJSON_AddItemToArray(items, cJSON_CreateObject());
	cJSON_AddItemToObject(cJSON_GetArrayItem(items, 1), "Put", put);
	cJSON_AddItemToObject(req, "TransactItems", items);
	cJSON_AddStringToObject(req, "ClientRequestToken", write_id);
	return req;
}

static int save_once(dynamo_repo *r, const cart_write *w)
{
	char write_id[CART_UUID_LEN + 1];
	call_result res;
	cJSON *req;
	int rc;

	if (cart_ids_uuid(r->ids, write_id))
		return CART_EBACKEND;
	write_id[18] = '\0';   /* 64 random bits are plenty to tell writes apart */
	req = cart_update(r, w, write_id);
	if (req && w->idem)
		req = save_with_record(r, w, req, write_id);
	if (!req)
		return CART_ENOMEM;
	rc = call_until(r, w->idem ? "TransactWriteItems" : "UpdateItem", req,
			&res, true, deadline_of(w->call));
	cJSON_Delete(res.resp);
	/* A retried write whose first attempt may have landed fails its own
	 * condition; the writeId tells whether it was ours. */
	if (rc == CART_ECONFLICT && res.ambiguous &&
	    write_landed(r, w->user_id, write_id, deadline_of(w->call)))
		rc = CART_OK;
	if (rc == CART_ECONFLICT && (w->event_count || w->idem))
		rc = why_refused(r, w);
	return rc;
}

/*
 * At the records' bound: sweep the oldest, then try once more.  Every
 * request of it stops at the request's deadline (w->call).
 */
static int dynamo_save(void *self, const cart_write *w)
{
	int rc = save_once(self, w);

	if (rc == RECORDS_FULL &&
	    sweep_records(self, w->user_id, deadline_of(w->call)) == CART_OK)
		rc = save_once(self, w);
	return rc == RECORDS_FULL ? CART_EUNAVAILABLE : rc;   /* claims fill it */
}

/* --- the port: idempotency records -------------------------------------- */

static int decode_idem(const cJSON *item, const char *key, cart_idem **out)
{
	const char *fp = get_s(item, "fp"), *st = get_s(item, "st");
	int64_t status, exp, raw = -1;
	cart_idem *rec;
	char *z = NULL;
	size_t zlen;

	if (!fp || !st || get_n(item, "status", &status) || get_n(item, "exp", &exp) ||
	    (cJSON_GetObjectItemCaseSensitive(item, "z") &&
	     (get_n(item, "z", &raw) || raw < 1 || raw > 16 << 20)))
		return CART_EBACKEND;
	rec = calloc(1, sizeof(*rec));
	if (!rec)
		return CART_ENOMEM;
	rec->key = strdup(key);
	rec->fingerprint = strdup(fp);
	rec->state = !strcmp(st, "PENDING") ? CART_IDEM_PENDING : CART_IDEM_COMPLETE;
	rec->status = (int)status;
	rec->expires_at = exp;
	if (!rec->key || !rec->fingerprint)
		goto fail;
	if (raw < 0) {
		if (get_b(item, "body", &rec->body, &rec->body_len))
			goto fail;
		*out = rec;
		return CART_OK;
	}
	if (get_b(item, "body", &z, &zlen) || !(rec->body = malloc((size_t)raw)))
		goto fail;
	{
		uLongf len = (uLongf)raw;
		if (uncompress((Bytef *)rec->body, &len, (const Bytef *)z, zlen) != Z_OK ||
		    len != (uLongf)raw)
			goto fail;
		rec->body_len = len;
	}
	free(z);
	*out = rec;
	return CART_OK;
fail:
	free(z);
	cart_idem_free(rec);
	return CART_EBACKEND;
}

int cart_dynamo_decode_record(const char *json, size_t len, const char *key,
			      cart_idem **out)
{
	cJSON *item = cJSON_ParseWithLength(json, len);
	int rc;

	*out = NULL;
	if (!item)
		return CART_EBACKEND;
	rc = cJSON_IsObject(item) ? decode_idem(item, key, out) : CART_EBACKEND;
	cJSON_Delete(item);
	return rc;
}

/* A consistent GetItem of the key's record: *resp (caller deletes) and
 * *item, borrowed from it, NULL if there is no record. */
static int idem_read(dynamo_repo *r, const char *user_id, const char *key,
		     cJSON **resp, const cJSON **item)
{
	cJSON *req = cJSON_CreateObject();
	call_result res;
	int rc;

	cJSON_AddItemToObject(req, "Key", idem_key_of(user_id, key));
	cJSON_AddTrueToObject(req, "ConsistentRead");
	rc = call(r, "GetItem", req, &res, false);
	*resp = res.resp;
	*item = rc ? NULL : cJSON_GetObjectItemCaseSensitive(res.resp, "Item");
	return rc;
}

static int dynamo_idem_get(void *self, const char *user_id, const char *key,
			   int64_t now_ms, cart_idem **out)
{
	dynamo_repo *r = self;
	const cJSON *item;
	cJSON *resp;
	int rc;

	rc = idem_read(r, user_id, key, &resp, &item);
	if (!rc)
		rc = item ? decode_idem(item, key, out) : CART_ENOTFOUND;
	if (rc == CART_EBACKEND && item)
		bad_item(r, user_id, "unreadable idempotency record");
	if (rc == CART_OK && (*out)->expires_at <= now_ms) {
		cart_idem_free(*out);
		*out = NULL;
		rc = CART_ENOTFOUND;
	}
	cJSON_Delete(resp);
	return rc;
}

/* Is the key's stored record the claim marked tok? */
static bool claim_landed(dynamo_repo *r, const char *user_id, const char *key,
			 const char *tok)
{
	const cJSON *item;
	const char *got;
	cJSON *resp;
	bool landed;

	if (idem_read(r, user_id, key, &resp, &item))
		return false;
	got = get_s(item, "tok");
	landed = got && !strcmp(got, tok);
	cJSON_Delete(resp);
	return landed;
}

/*
 * A claim is a PutItem of a PENDING record if the key has none that is
 * live.  It carries a fresh token: if the first attempt timed out after it
 * was applied, the retry fails its own condition, and the token tells that
 * the claim is ours (else the key would look in flight for a whole lease).
 */
static int dynamo_idem_claim(void *self, const char *user_id,
			     const cart_idem *rec, int64_t now_ms)
{
	dynamo_repo *r = self;
	char tok[CART_UUID_LEN + 1], pb[16], eb[16], vb[16], cond[96];
	cJSON *req, *item;
	call_result res;
	expr e;
	int rc;

	if (cart_ids_uuid(r->ids, tok))
		return CART_EBACKEND;
	if (!(item = encode_idem(user_id, rec, tok)))
		return CART_ENOMEM;
	req = cJSON_CreateObject();
	expr_init(&e);
	snprintf(cond, sizeof(cond), "attribute_not_exists(%s) OR %s <= %s",
		 expr_name(&e, "PK", pb), expr_name(&e, "exp", eb),
		 expr_value(&e, av_n(now_ms), vb));
	cJSON_AddItemToObject(req, "Item", item);
	cJSON_AddStringToObject(req, "ConditionExpression", cond);
	expr_attach(&e, req);
	rc = call(r, "PutItem", req, &res, true);
	cJSON_Delete(res.resp);
	if (rc == CART_ECONFLICT && res.ambiguous &&
	    claim_landed(r, user_id, rec->key, tok))
		rc = CART_OK;
	return rc;
}

/*
 * An outcome that wrote nothing to the cart: the record, and the user's
 * count of records (on the cart item, which it creates without a version
 * if there is none yet), in one transaction.  CART_ECONFLICT: at the bound
 * (or another transaction held the cart item).
 */
static int complete_once(dynamo_repo *r, const char *user_id,
			 const cart_idem *rec)
{
	cJSON *req, *items, *put, *upd, *u, *item = encode_idem(user_id, rec, NULL);
	char tok[CART_UUID_LEN + 1], cond[160] = "", add[64];
	call_result res;
	expr e;
	int rc;

	if (!item)
		return CART_ENOMEM;
	if (cart_ids_uuid(r->ids, tok)) {
		cJSON_Delete(item);
		return CART_EBACKEND;
	}
	req = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(req, "TransactItems");
	put = cJSON_CreateObject();
	cJSON_AddStringToObject(put, "TableName", r->table);
	cJSON_AddItemToObject(put, "Item", item);
	upd = cJSON_CreateObject();
	cJSON_AddItemToObject(upd, "Put", put);
	cJSON_AddItemToArray(items, upd);
	u = cJSON_CreateObject();
	expr_init(&e);
	count_record(r, &e, cond, sizeof(cond), add, sizeof(add));
	cJSON_AddStringToObject(u, "TableName", r->table);
	cJSON_AddItemToObject(u, "Key", key_of(user_id));
	cJSON_AddStringToObject(u, "UpdateExpression", add);
	cJSON_AddStringToObject(u, "ConditionExpression", cond);
	expr_attach(&e, u);
	upd = cJSON_CreateObject();
	cJSON_AddItemToObject(upd, "Update", u);
	cJSON_AddItemToArray(items, upd);
	tok[18] = '\0';
	cJSON_AddStringToObject(req, "ClientRequestToken", tok);
	rc = call(r, "TransactWriteItems", req, &res, true);
	cJSON_Delete(res.resp);
	return rc;
}

static int dynamo_idem_complete(void *self, const char *user_id,
				const cart_idem *rec)
{
	int rc = complete_once(self, user_id, rec);

	if (rc == CART_ECONFLICT && sweep_records(self, user_id, 0) == CART_OK)
		rc = complete_once(self, user_id, rec);
	return rc == CART_ECONFLICT ? CART_EUNAVAILABLE : rc;
}

/* Deletes the key's record if it is still our PENDING claim. */
static int dynamo_idem_release(void *self, const char *user_id,
			       const char *key, const char *fingerprint)
{
	dynamo_repo *r = self;
	char sb[16], pb[16], fb[16], vb[16], cond[96];
	cJSON *req = cJSON_CreateObject();
	call_result res;
	expr e;
	int rc;

	expr_init(&e);
	snprintf(cond, sizeof(cond), "%s = %s AND %s = %s", expr_name(&e, "st", sb),
		 expr_value(&e, av_s("PENDING"), pb), expr_name(&e, "fp", fb),
		 expr_value(&e, av_s(fingerprint), vb));
	cJSON_AddItemToObject(req, "Key", idem_key_of(user_id, key));
	cJSON_AddStringToObject(req, "ConditionExpression", cond);
	expr_attach(&e, req);
	rc = call(r, "DeleteItem", req, &res, true);
	cJSON_Delete(res.resp);
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
	dynamo_repo *r = self;

	pthread_mutex_destroy(&r->scan_lock);
	cJSON_Delete(r->scan_from);
	cJSON_Delete(r->query_from);
	free(r);
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
	.load_call = dynamo_load_call,
};

/*
 * The given owner, checked (it is an index key and goes into logs), or a
 * fresh one: 64 random bits tell the tasks of a fleet apart.
 */
static int set_owner(dynamo_repo *r, const char *want, const cart_ids *ids)
{
	size_t n = want ? strlen(want) : 0;

	if (!n) {
		if (!ids)
			return CART_EINVALID;
		snprintf(r->owner, sizeof(r->owner), "t-%08" PRIx64 "%08" PRIx64,
			 cart_ids_random(ids, UINT64_C(1) << 32),
			 cart_ids_random(ids, UINT64_C(1) << 32));
		return CART_OK;
	}
	if (n > CART_DYNAMO_OWNER_MAX)
		return CART_EINVALID;
	for (size_t i = 0; i < n; i++) {
		char c = want[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return CART_EINVALID;
	}
	memcpy(r->owner, want, n + 1);
	return CART_OK;
}

int cart_dynamo_repo_new(cart_repo *out, const cart_dynamo_config *cfg,
			 cart_aws_client *client, const cart_clock *clock,
			 const cart_ids *ids, const cart_aws_log *log)
{
	dynamo_repo *r;

	out->ops = NULL;
	out->self = NULL;
	if (!cfg->table || !*cfg->table || strlen(cfg->table) > 255 || !client ||
	    cfg->lease_ms < 0 || cfg->scan_interval_ms < 0)
		return CART_EINVALID;
	r = calloc(1, sizeof(*r));
	if (!r)
		return CART_ENOMEM;
	if (set_owner(r, cfg->owner, ids)) {
		free(r);
		return CART_EINVALID;
	}
	r->lease_ms = cfg->lease_ms > 0 ? cfg->lease_ms : LEASE_MS_DEFAULT;
	r->scan_interval_ms = cfg->scan_interval_ms > 0 ? cfg->scan_interval_ms
							: SCAN_INTERVAL_MS_DEFAULT;
	pthread_mutex_init(&r->scan_lock, NULL);
	strcpy(r->table, cfg->table);
	r->ready_cache_ms = cfg->ready_cache_ms > 0 ? cfg->ready_cache_ms : 5000;
	r->idem_max = cfg->idem_max > 0 ? (int64_t)cfg->idem_max : IDEM_MAX_DEFAULT;
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
	out->outbox_queries = atomic_load(&r->queries);
	out->outbox_scans = atomic_load(&r->scans);
	out->takeovers = atomic_load(&r->takeovers);
}

const char *cart_dynamo_repo_owner(const cart_repo *repo)
{
	return ((const dynamo_repo *)repo->self)->owner;
}
