/*
 * One-line wrappers around every port call: the single place for checks
 * and, later, for instrumentation of port calls.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cart/ports.h"
#include "cart/repo.h"

const char *cart_strerror(int err)
{
	switch (err) {
#define X(name, value, str, msg, http, code, detail) \
	case CART_##name: return msg;
	CART_ERROR_MAP(X)
#undef X
	}
	return "unknown error";
}

const char *cart_err_name(int err)
{
	switch (err) {
#define X(name, value, str, msg, http, code, detail) \
	case CART_##name: return str;
	CART_ERROR_MAP(X)
#undef X
	}
	return "unknown";
}

const char *cart_event_type_name(cart_event_type t)
{
	switch (t) {
	case CART_EVENT_ITEM_ADDED: return "CartItemAdded";
	case CART_EVENT_ITEM_QUANTITY_CHANGED: return "CartItemQuantityChanged";
	case CART_EVENT_ITEM_REMOVED: return "CartItemRemoved";
	case CART_EVENT_CLEARED: return "CartCleared";
	}
	return "Unknown";
}

/* --- clock, ids, publisher ---------------------------------------------- */

int64_t cart_clock_now(const cart_clock *c)
{
	return c->ops->now_ms(c->self);
}

void cart_clock_sleep(const cart_clock *c, int64_t ms)
{
	if (ms > 0 && c->ops->sleep_ms)
		c->ops->sleep_ms(c->self, ms);
}

void cart_clock_destroy(cart_clock *c)
{
	if (c && c->ops && c->ops->destroy)
		c->ops->destroy(c->self);
	if (c)
		c->ops = NULL;
}

int cart_ids_uuid(const cart_ids *ids, char out[CART_UUID_LEN + 1])
{
	return ids->ops->uuid(ids->self, out);
}

uint64_t cart_ids_random(const cart_ids *ids, uint64_t bound)
{
	assert(bound > 0);
	return ids->ops->random(ids->self, bound);
}

void cart_ids_destroy(cart_ids *ids)
{
	if (ids && ids->ops && ids->ops->destroy)
		ids->ops->destroy(ids->self);
	if (ids)
		ids->ops = NULL;
}

int cart_publisher_publish(const cart_publisher *p, const cart_event *ev,
			   size_t n)
{
	return n ? p->ops->publish(p->self, ev, n) : CART_OK;
}

int cart_publisher_publish_each(const cart_publisher *p, const cart_event *ev,
				size_t n, bool *ok)
{
	int rc;

	if (!n)
		return CART_OK;
	if (p->ops->version >= 2 && p->ops->publish_each)
		return p->ops->publish_each(p->self, ev, n, ok);
	rc = p->ops->publish(p->self, ev, n);
	for (size_t i = 0; i < n; i++)
		ok[i] = rc == CART_OK;
	return rc;
}

int cart_publisher_publish_results(const cart_publisher *p,
				   const cart_event *ev, size_t n,
				   cart_publish_result *res)
{
	bool small[16], *ok = small;
	int rc;

	if (!n)
		return CART_OK;
	if (p->ops->version >= 3 && p->ops->publish_results)
		return p->ops->publish_results(p->self, ev, n, res);
	if (n > 16 && !(ok = malloc(n * sizeof(*ok))))
		return CART_ENOMEM;
	rc = cart_publisher_publish_each(p, ev, n, ok);
	for (size_t i = 0; i < n; i++) {
		res[i].status = ok[i] ? CART_PUBLISH_ACCEPTED : CART_PUBLISH_RETRY;
		res[i].code[0] = '\0';
	}
	if (ok != small)
		free(ok);
	return rc;
}

void cart_publisher_destroy(cart_publisher *p)
{
	if (p && p->ops && p->ops->destroy)
		p->ops->destroy(p->self);
	if (p)
		p->ops = NULL;
}

/* --- repository --------------------------------------------------------- */

int cart_repo_load(const cart_repo *r, const cart_call_ctx *call,
		   const char *user_id, cart **out)
{
	*out = NULL;
	if (r->ops->version >= 3 && r->ops->load_call)
		return r->ops->load_call(r->self, call, user_id, out);
	return r->ops->load(r->self, user_id, out);
}

void cart_repo_warm(const cart_repo *r, const char *user_id)
{
	if (r->ops->version >= 4 && r->ops->warm && user_id)
		r->ops->warm(r->self, user_id);
}

void cart_repo_warm_next(const cart_repo *r, const char *user_id)
{
	if (r->ops->version >= 5 && r->ops->warm_next && user_id)
		r->ops->warm_next(r->self, user_id);
}

int cart_repo_save(const cart_repo *r, const cart_write *w)
{
	assert(w->cart && cart_version(w->cart) == w->expected_version + 1);
	return r->ops->save(r->self, w);
}

int cart_repo_idem_get(const cart_repo *r, const char *user_id,
		       const char *key, int64_t now_ms, cart_idem **out)
{
	*out = NULL;
	return r->ops->idem_get(r->self, user_id, key, now_ms, out);
}

int cart_repo_idem_claim(const cart_repo *r, const char *user_id,
			 const cart_idem *rec, int64_t now_ms)
{
	assert(rec->state == CART_IDEM_PENDING);
	return r->ops->idem_claim(r->self, user_id, rec, now_ms);
}

int cart_repo_idem_complete(const cart_repo *r, const char *user_id,
			    const cart_idem *rec)
{
	assert(rec->state == CART_IDEM_COMPLETE);
	return r->ops->idem_complete(r->self, user_id, rec);
}

int cart_repo_idem_release(const cart_repo *r, const char *user_id,
			   const char *key, const char *fingerprint)
{
	return r->ops->idem_release(r->self, user_id, key, fingerprint);
}

int cart_repo_outbox_fetch(const cart_repo *r, size_t max_events,
			   cart_outbox *out)
{
	memset(out, 0, sizeof(*out));
	return r->ops->outbox_fetch(r->self, max_events, out);
}

int cart_repo_outbox_ack(const cart_repo *r, const char *user_id,
			 const cart_event *events, size_t n)
{
	return n ? r->ops->outbox_ack(r->self, user_id, events, n) : CART_OK;
}

bool cart_repo_can_park(const cart_repo *r)
{
	return r->ops->version >= 2 && r->ops->outbox_park;
}

int cart_repo_outbox_park(const cart_repo *r, const char *user_id,
			  const cart_event *event, const char *reason,
			  int64_t parked_at_ms)
{
	assert(cart_repo_can_park(r));
	return r->ops->outbox_park(r->self, user_id, event, reason ? reason : "",
				   parked_at_ms);
}

void cart_outbox_release(cart_outbox *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n_batches; i++)
		free(o->batches[i].events);
	free(o->batches);
	memset(o, 0, sizeof(*o));
}

int cart_repo_ping(const cart_repo *r)
{
	return r->ops->ping ? r->ops->ping(r->self) : CART_OK;
}

void cart_repo_destroy(cart_repo *r)
{
	if (r && r->ops && r->ops->destroy)
		r->ops->destroy(r->self);
	if (r)
		r->ops = NULL;
}

/* --- idempotency records ------------------------------------------------ */

int cart_idem_clone(cart_idem **out, const cart_idem *src)
{
	cart_idem *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d)
		return CART_ENOMEM;
	*d = *src;
	d->key = strdup(src->key);
	d->fingerprint = strdup(src->fingerprint);
	d->body = NULL;
	if (src->body_len) {
		d->body = malloc(src->body_len);
		if (d->body)
			memcpy(d->body, src->body, src->body_len);
	}
	if (!d->key || !d->fingerprint || (src->body_len && !d->body)) {
		cart_idem_free(d);
		return CART_ENOMEM;
	}
	*out = d;
	return CART_OK;
}

void cart_idem_free(cart_idem *rec)
{
	if (!rec)
		return;
	free(rec->key);
	free(rec->fingerprint);
	free(rec->body);
	free(rec);
}
