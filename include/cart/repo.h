#ifndef CART_REPO_H
#define CART_REPO_H

/*
 * The cart repository port: where carts and idempotency records live.
 *
 * One stored record per user: the cart (possibly empty after a clear),
 * its version, and beside it the user's idempotency records.  The version
 * counts every committed write for the user and never goes back, so a
 * stale If-Match can never match a newer cart (no ABA after a clear).
 *
 * All functions are safe to call from many threads at once.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cart/call.h"
#include "cart/cart.h"
#include "cart/event.h"

#define CART_IDEM_KEY_MAX 255
/*
 * Most events a user may have waiting in the outbox.  At the bound a save
 * is refused with CART_EBACKLOG (the client gets 503 and retries) until
 * the relay has published: events are never dropped, and a publisher that
 * is down stops writes instead of growing the store without limit.
 */
#define CART_OUTBOX_MAX 100

typedef enum cart_idem_state {
	CART_IDEM_PENDING = 1,  /* first request still running (a claim) */
	CART_IDEM_COMPLETE = 2, /* outcome recorded; replay it */
} cart_idem_state;

/*
 * An idempotency record: the first completed outcome of a request, kept
 * per (user, key).  status and body are the caller's rendering of the
 * outcome (for the HTTP app: the status code and the response body); the
 * core stores them without looking inside.
 */
typedef struct cart_idem {
	char *key;
	char *fingerprint;        /* identifies the request (method, path, body) */
	cart_idem_state state;
	int status;
	char *body;               /* body_len bytes, may contain NUL; may be NULL */
	size_t body_len;
	int64_t expires_at;       /* COMPLETE: forgotten after; PENDING: lease end */
} cart_idem;

/* Deep copy of src into *out (caller owns). */
int cart_idem_clone(cart_idem **out, const cart_idem *src);
/* Frees the record and every string in it; accepts NULL. */
void cart_idem_free(cart_idem *rec);

/* One user's pending events, oldest first (cart_version ascending). */
typedef struct cart_outbox_batch {
	char user_id[CART_ID_MAX + 1];
	cart_event *events;       /* n, owned by the cart_outbox; a consumer
				   may take them (free() them, leave NULL) */
	size_t n;
} cart_outbox_batch;

/* What outbox_fetch found.  Release with cart_outbox_release. */
typedef struct cart_outbox {
	cart_outbox_batch *batches;
	size_t n_batches;
	size_t backlog;           /* pending events in the whole store */
	int64_t oldest_at;        /* occurred_at of the oldest pending, 0 if none */
} cart_outbox;

void cart_outbox_release(cart_outbox *o);   /* accepts NULL */

/*
 * One atomic write; see cart_repo_ops.save. Everything is borrowed.
 * Fields are only ever appended: callers zero the struct (or use a
 * designated initializer) so a newer field reads as "none".
 */
typedef struct cart_write {
	const char *user_id;
	int64_t expected_version;   /* 0: no record may exist yet */
	const cart *cart;           /* new state; its version is expected+1 */
	const cart_idem *idem;      /* completed record to store, or NULL */
	const cart_event *events;   /* the events of this mutation */
	size_t event_count;
	/*
	 * The request this write is made for (cart/call.h), or NULL: no
	 * request (the relay, a tool).  An adapter may log or trace with it
	 * and should stop its own retries at call->deadline_ms (the
	 * DynamoDB adapter does: CART_EUNAVAILABLE once the deadline cuts
	 * its requests short).  The service sets it on every save
	 * (lib/service.c); it is independent of the ops version.
	 */
	const cart_call_ctx *call;
} cart_write;

/* See cart/ports.h on versions: methods are only ever appended. */
#define CART_REPO_OPS_VERSION 5

/* Longest reason (the bus's error code) kept with a parked event. */
#define CART_PARK_REASON_MAX 63

typedef struct cart_repo_ops {
	int version;                  /* CART_REPO_OPS_VERSION */
	/*
	 * Loads the user's cart.  Caller holds a reference to *out
	 * (cart_free), which may be shared with the store (cart_share): read
	 * it, or cart_unshare it before changing it.  Every field
	 * round-trips exactly; expires_at may be kept in whole seconds only
	 * (the core never sets anything finer).
	 * CART_ENOTFOUND if the user has no stored record.  An expired cart is
	 * returned as stored; the core decides what expiry means.
	 */
	int (*load)(void *self, const char *user_id, cart **out);
	/*
	 * Compare-and-set: stores w->cart only if the stored version still
	 * equals w->expected_version, together with w->idem (replacing a
	 * pending claim of the same key) and w->events, all or nothing.
	 * CART_ECONFLICT and nothing is written otherwise.  CART_EINVALID
	 * if the store refuses the cart as too large, CART_EBACKLOG if the
	 * user already has CART_OUTBOX_MAX events pending (or the adapter's
	 * own bound on all pending events is reached).  The events join
	 * the user's outbox (pending, in order) until outbox_ack.  The store
	 * may keep a reference to w->cart (cart_share) instead of a copy, so
	 * the caller must not change it after a save.
	 */
	int (*save)(void *self, const cart_write *w);
	/*
	 * The transactional outbox.  fetch: pending events of users that
	 * have some, whole users, oldest first, about max_events in all (at
	 * least one user's whole backlog); out->backlog and oldest_at describe
	 * the whole store.  ack: the relay published events[0..n), which were
	 * the user's oldest pending ones: they are removed, but only if they
	 * still are exactly those (by event id), else CART_ECONFLICT and
	 * nothing changes.
	 */
	int (*outbox_fetch)(void *self, size_t max_events, cart_outbox *out);
	int (*outbox_ack)(void *self, const char *user_id,
			  const cart_event *events, size_t n);
	/*
	 * Idempotency records.  A record is live until its expires_at (for a
	 * PENDING claim: the end of its lease); past it, it counts as absent
	 * everywhere below.
	 * get: caller owns *out; CART_ENOTFOUND if no live record.
	 * claim: stores the PENDING record rec if the key has no live record,
	 * else CART_ECONFLICT.
	 * complete: stores a COMPLETE record without touching the cart
	 * (outcomes that wrote nothing, such as a 404).
	 * release: deletes the key's record if it is PENDING with this
	 * fingerprint (its outcome is not to be kept).
	 * An adapter may bound a user's records (count and bytes) and evict
	 * its oldest COMPLETE records to make room; it never evicts a PENDING
	 * claim, so when claims alone fill the bound, claim, complete and a
	 * save carrying a record return CART_EUNAVAILABLE and change nothing.
	 */
	int (*idem_get)(void *self, const char *user_id, const char *key,
			int64_t now_ms, cart_idem **out);
	int (*idem_claim)(void *self, const char *user_id, const cart_idem *rec,
			  int64_t now_ms);
	int (*idem_complete)(void *self, const char *user_id,
			     const cart_idem *rec);
	int (*idem_release)(void *self, const char *user_id, const char *key,
			    const char *fingerprint);
	/* Readiness: CART_OK if the store answers. */
	int (*ping)(void *self);
	void (*destroy)(void *self);  /* may be NULL if nothing to release */
	/*
	 * Version 2.  The dead-letter list.  park: the relay gave up on
	 * event, the user's oldest pending one (the bus refuses it for
	 * good): it is kept in the user's dead-letter list with reason (at
	 * most CART_PARK_REASON_MAX bytes are kept) and parked_at_ms, and
	 * removed from the outbox if it still is the head (by event id),
	 * like outbox_ack of one event; else CART_ECONFLICT and the outbox
	 * is unchanged.  A crash may leave the event both parked and
	 * pending (it is parked again, or delivered), never neither.  How
	 * long the list keeps it, and how many, is the adapter's bound.
	 */
	int (*outbox_park)(void *self, const char *user_id,
			   const cart_event *event, const char *reason,
			   int64_t parked_at_ms);
	/*
	 * Version 3.  load for the request call (cart/call.h; may be NULL:
	 * no request): the same contract as load, and the adapter may log,
	 * trace and time the read with call and should give up at
	 * call->deadline_ms (CART_EUNAVAILABLE) instead of retrying past
	 * it.  cart_repo_load uses it when present, else load.
	 *
	 * The idempotency methods, ping and the outbox methods take no
	 * call: the outbox and ping serve no request, and the idempotency
	 * records are read and claimed before (and completed or released
	 * after) the command itself, so their calls are not bounded by the
	 * request's deadline.
	 */
	int (*load_call)(void *self, const cart_call_ctx *call,
			 const char *user_id, cart **out);
	/*
	 * Version 4.  A hint, no effect on behaviour (may be NULL): user_id's
	 * cart is likely to be loaded soon, so the adapter may start bringing
	 * what load will read into the CPU's cache.  Must not block, take a
	 * lock, allocate, or read anything another thread may free.  The
	 * request pipeline calls it when it has routed a request, before
	 * authenticating it: in the memory store the lookup's first misses
	 * then overlap that work instead of following it.
	 */
	void (*warm)(void *self, const char *user_id);
	/*
	 * Version 5.  The same kind of hint, later in the same request, after
	 * other work (may be NULL): what warm brought in is likely in the
	 * cache now, so the adapter may read it to warm what load reads next
	 * (the memory store: the user's record).  The same rules as warm.
	 */
	void (*warm_next)(void *self, const char *user_id);
} cart_repo_ops;

typedef struct cart_repo {
	const cart_repo_ops *ops;   /* static const table, never NULL */
	void *self;                 /* adapter state, owned by the adapter */
} cart_repo;

/* One-line wrappers: the single home for checks around port calls. */
/* call (borrowed, may be NULL) goes to load_call (version 3); an older
 * adapter gets load without it. */
int cart_repo_load(const cart_repo *r, const cart_call_ctx *call,
		   const char *user_id, cart **out);
int cart_repo_save(const cart_repo *r, const cart_write *w);
/* warm (version 4) if the adapter has it; else nothing. */
void cart_repo_warm(const cart_repo *r, const char *user_id);
/* warm_next (version 5) if the adapter has it; else nothing. */
void cart_repo_warm_next(const cart_repo *r, const char *user_id);
int cart_repo_idem_get(const cart_repo *r, const char *user_id,
		       const char *key, int64_t now_ms, cart_idem **out);
int cart_repo_idem_claim(const cart_repo *r, const char *user_id,
			 const cart_idem *rec, int64_t now_ms);
int cart_repo_idem_complete(const cart_repo *r, const char *user_id,
			    const cart_idem *rec);
int cart_repo_idem_release(const cart_repo *r, const char *user_id,
			   const char *key, const char *fingerprint);
int cart_repo_outbox_fetch(const cart_repo *r, size_t max_events,
			   cart_outbox *out);
int cart_repo_outbox_ack(const cart_repo *r, const char *user_id,
			 const cart_event *events, size_t n);
/* True if the adapter has outbox_park (port version 2). */
bool cart_repo_can_park(const cart_repo *r);
int cart_repo_outbox_park(const cart_repo *r, const char *user_id,
			  const cart_event *event, const char *reason,
			  int64_t parked_at_ms);
int cart_repo_ping(const cart_repo *r);
/* Releases the adapter; accepts NULL or an already destroyed repo. */
void cart_repo_destroy(cart_repo *r);

#endif
