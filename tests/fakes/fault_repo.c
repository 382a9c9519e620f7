#include "fakes/fault_repo.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fault_repo {
	cart_repo inner;            /* borrowed */
	pthread_mutex_t lock;       /* guards every field below */
	int fail_n[FAULT_OP_COUNT];
	int fail_err[FAULT_OP_COUNT];
	size_t calls[FAULT_OP_COUNT];
	int conflict_n;
	bool compete;
	size_t conflicts;
	size_t rival_writes;
	fault_repo_call last_call[FAULT_SAVE + 1];   /* load and save */
};

/* Keeps a copy of what call said: it is only borrowed. */
static void note_call(struct fault_repo *fr, fault_op op,
		      const cart_call_ctx *call)
{
	fault_repo_call seen = { .had_call = call != NULL };

	if (call && call->request_id)
		snprintf(seen.request_id, sizeof(seen.request_id), "%s",
			 call->request_id);
	if (call)
		seen.deadline_ms = call->deadline_ms;
	pthread_mutex_lock(&fr->lock);
	fr->last_call[op] = seen;
	pthread_mutex_unlock(&fr->lock);
}

/* Counts the call; returns the error to inject for op, or 0. */
static int take_fault(struct fault_repo *fr, fault_op op)
{
	int err = 0;
	pthread_mutex_lock(&fr->lock);
	fr->calls[op]++;
	if (fr->fail_n[op] != 0) {
		if (fr->fail_n[op] > 0)
			fr->fail_n[op]--;
		err = fr->fail_err[op];
	}
	pthread_mutex_unlock(&fr->lock);
	return err;
}

/* Returns true if this save is to lose a race; *compete says how. */
static bool take_conflict(struct fault_repo *fr, bool *compete)
{
	bool hit = false;
	pthread_mutex_lock(&fr->lock);
	if (fr->conflict_n > 0) {
		fr->conflict_n--;
		fr->conflicts++;
		hit = true;
		*compete = fr->compete;
	}
	pthread_mutex_unlock(&fr->lock);
	return hit;
}

/* The rival's cart: the stored one, or a fresh one with a fixed id. */
static int rival_base(struct fault_repo *fr, const cart_write *w, cart **c,
		      int64_t now)
{
	int rc = cart_repo_load(&fr->inner, NULL, w->user_id, c);
	if (rc == CART_OK && (rc = cart_unshare(c)))
		cart_free(*c);
	if (rc == CART_ENOTFOUND)
		rc = cart_new(c, w->user_id);
	if (rc != CART_OK)
		return rc;
	if (cart_id(*c) == NULL) {
		char id[CART_UUID_LEN + 1];
		snprintf(id, sizeof(id), "ffffffff-ffff-4fff-bfff-%012zx",
			 fr->rival_writes + 1);
		rc = cart_begin(*c, id, now);
	}
	return rc;
}

/* A rival request that won the race: one more unit of FAULT_RIVAL_ITEM. */
static int rival_write(struct fault_repo *fr, const cart_write *w)
{
	int64_t now = w->cart ? cart_updated_at(w->cart) : 0;
	if (now <= 0)
		now = 1;
	cart *c = NULL;
	int rc = rival_base(fr, w, &c, now);
	if (rc != CART_OK) {
		cart_free(c);
		return rc;
	}
	cart_limits lim;
	cart_limits_init(&lim);
	lim.max_item_quantity = 1000000;
	cart_item_spec spec = {
		.item_id = FAULT_RIVAL_ITEM,
		.quantity = 1,
		.unit_price = { .amount = FAULT_RIVAL_AMOUNT, .currency = "EUR" },
	};
	if (cart_line_count(c) > 0)
		memcpy(spec.unit_price.currency, cart_subtotal(c).currency, 4);
	bool created;
	rc = cart_add_item(c, &spec, &lim, now, &created, NULL);
	int64_t expected = cart_version(c);
	if (rc == CART_OK) {
		cart_touch(c, now, lim.ttl_ms);
		cart_write rw = {
			.user_id = w->user_id,
			.expected_version = expected,
			.cart = c,
		};
		rc = cart_repo_save(&fr->inner, &rw);
	}
	cart_free(c);
	if (rc == CART_OK) {
		pthread_mutex_lock(&fr->lock);
		fr->rival_writes++;
		pthread_mutex_unlock(&fr->lock);
	}
	return rc;
}

static int fr_load_call(void *self, const cart_call_ctx *call,
			const char *user_id, cart **out)
{
	struct fault_repo *fr = self;
	int err = take_fault(fr, FAULT_LOAD);
	note_call(fr, FAULT_LOAD, call);
	return err ? err : cart_repo_load(&fr->inner, call, user_id, out);
}

static int fr_load(void *self, const char *user_id, cart **out)
{
	return fr_load_call(self, NULL, user_id, out);
}

static int fr_save(void *self, const cart_write *w)
{
	struct fault_repo *fr = self;
	int err = take_fault(fr, FAULT_SAVE);
	note_call(fr, FAULT_SAVE, w->call);
	if (err)
		return err;
	bool compete = false;
	if (take_conflict(fr, &compete)) {
		if (compete)
			(void)rival_write(fr, w);
		return CART_ECONFLICT;
	}
	return cart_repo_save(&fr->inner, w);
}

static int fr_idem_get(void *self, const char *user_id, const char *key,
		       int64_t now_ms, cart_idem **out)
{
	struct fault_repo *fr = self;
	int err = take_fault(fr, FAULT_IDEM_GET);
	return err ? err
		   : cart_repo_idem_get(&fr->inner, user_id, key, now_ms, out);
}

static int fr_idem_claim(void *self, const char *user_id, const cart_idem *rec,
			 int64_t now_ms)
{
	struct fault_repo *fr = self;
	int err = take_fault(fr, FAULT_IDEM_CLAIM);
	return err ? err
		   : cart_repo_idem_claim(&fr->inner, user_id, rec, now_ms);
}

static int fr_idem_complete(void *self, const char *user_id,
			    const cart_idem *rec)
{
	struct fault_repo *fr = self;
	int err = take_fault(fr, FAULT_IDEM_COMPLETE);
	return err ? err : cart_repo_idem_complete(&fr->inner, user_id, rec);
}

static int fr_idem_release(void *self, const char *user_id, const char *key,
			   const char *fingerprint)
{
	struct fault_repo *fr = self;
	int err = take_fault(fr, FAULT_IDEM_RELEASE);
	return err ? err
		   : cart_repo_idem_release(&fr->inner, user_id, key,
					    fingerprint);
}

static int fr_ping(void *self)
{
	struct fault_repo *fr = self;
	int err = take_fault(fr, FAULT_PING);
	return err ? err : cart_repo_ping(&fr->inner);
}

static void fr_destroy(void *self)
{
	struct fault_repo *fr = self;
	pthread_mutex_destroy(&fr->lock);
	free(fr);
}

static const cart_repo_ops fault_repo_ops = {
	.version = CART_REPO_OPS_VERSION,
	.load = fr_load,
	.save = fr_save,
	.idem_get = fr_idem_get,
	.idem_claim = fr_idem_claim,
	.idem_complete = fr_idem_complete,
	.idem_release = fr_idem_release,
	.ping = fr_ping,
	.destroy = fr_destroy,
	.load_call = fr_load_call,
};

int fault_repo_new(cart_repo *out, fault_repo **ctl, const cart_repo *inner)
{
	struct fault_repo *fr = calloc(1, sizeof(*fr));
	if (!fr)
		return -1;
	fr->inner = *inner;
	pthread_mutex_init(&fr->lock, NULL);
	out->ops = &fault_repo_ops;
	out->self = fr;
	if (ctl)
		*ctl = fr;
	return 0;
}

void fault_repo_fail(fault_repo *fr, fault_op op, int n, int err)
{
	pthread_mutex_lock(&fr->lock);
	fr->fail_n[op] = n;
	fr->fail_err[op] = err;
	pthread_mutex_unlock(&fr->lock);
}

void fault_repo_conflict(fault_repo *fr, int n, bool compete)
{
	pthread_mutex_lock(&fr->lock);
	fr->conflict_n = n;
	fr->compete = compete;
	pthread_mutex_unlock(&fr->lock);
}

size_t fault_repo_calls(const fault_repo *cfr, fault_op op)
{
	struct fault_repo *fr = (struct fault_repo *)cfr;
	pthread_mutex_lock(&fr->lock);
	size_t n = fr->calls[op];
	pthread_mutex_unlock(&fr->lock);
	return n;
}

fault_repo_call fault_repo_last_call(const fault_repo *cfr, fault_op op)
{
	struct fault_repo *fr = (struct fault_repo *)cfr;
	fault_repo_call seen;

	assert(op == FAULT_LOAD || op == FAULT_SAVE);
	pthread_mutex_lock(&fr->lock);
	seen = fr->last_call[op];
	pthread_mutex_unlock(&fr->lock);
	return seen;
}

size_t fault_repo_conflicts(const fault_repo *cfr)
{
	struct fault_repo *fr = (struct fault_repo *)cfr;
	pthread_mutex_lock(&fr->lock);
	size_t n = fr->conflicts;
	pthread_mutex_unlock(&fr->lock);
	return n;
}

size_t fault_repo_rival_writes(const fault_repo *cfr)
{
	struct fault_repo *fr = (struct fault_repo *)cfr;
	pthread_mutex_lock(&fr->lock);
	size_t n = fr->rival_writes;
	pthread_mutex_unlock(&fr->lock);
	return n;
}
