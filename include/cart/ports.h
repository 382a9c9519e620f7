#ifndef CART_PORTS_H
#define CART_PORTS_H

/*
 * The ports libcart needs: a clock, an id source and an event publisher.
 * The cart repository has its own header (cart/repo.h).
 *
 * Each port is a const table of functions plus an opaque self.  The core
 * never looks inside self; only the adapter's constructor and the port's
 * destroy know it.  Every function here must be safe to call from many
 * threads at once.
 *
 * Versioned like libgit2's backends and SQLite's VFS: every ops table
 * starts with `version` (set it to the CART_*_OPS_VERSION the adapter was
 * written against); methods are only ever appended, and the core checks
 * the version before it uses a slot newer than version 1.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cart/cart.h"
#include "cart/event.h"

/* --- clock -------------------------------------------------------------- */

#define CART_CLOCK_OPS_VERSION 1

typedef struct cart_clock_ops {
	int version;                              /* CART_CLOCK_OPS_VERSION */
	int64_t (*now_ms)(void *self);            /* wall clock, ms since epoch */
	void (*sleep_ms)(void *self, int64_t ms); /* backoff between retries */
	void (*destroy)(void *self);              /* may be NULL */
} cart_clock_ops;

typedef struct cart_clock {
	const cart_clock_ops *ops;
	void *self;
} cart_clock;

int64_t cart_clock_now(const cart_clock *c);
void cart_clock_sleep(const cart_clock *c, int64_t ms);
void cart_clock_destroy(cart_clock *c);   /* accepts NULL / empty */

/* --- ids ---------------------------------------------------------------- */

#define CART_IDS_OPS_VERSION 1

typedef struct cart_ids_ops {
	int version;                              /* CART_IDS_OPS_VERSION */
	/* Writes a fresh random UUID (36 chars + NUL). */
	int (*uuid)(void *self, char out[CART_UUID_LEN + 1]);
	/* A uniformly random integer in 0..bound-1 (bound > 0); for jitter. */
	uint64_t (*random)(void *self, uint64_t bound);
	void (*destroy)(void *self);
} cart_ids_ops;

typedef struct cart_ids {
	const cart_ids_ops *ops;
	void *self;
} cart_ids;

int cart_ids_uuid(const cart_ids *ids, char out[CART_UUID_LEN + 1]);
uint64_t cart_ids_random(const cart_ids *ids, uint64_t bound);
void cart_ids_destroy(cart_ids *ids);

/* --- event publisher ---------------------------------------------------- */

#define CART_PUBLISHER_OPS_VERSION 3

/* What became of one entry of a publisher call (port version 3). */
typedef enum cart_publish_status {
	CART_PUBLISH_ACCEPTED = 0,  /* the bus took it */
	CART_PUBLISH_RETRY = 1,     /* not taken, may be later: throttled, an
				     * internal failure, no answer, not sent */
	CART_PUBLISH_REFUSED = 2,   /* refused for good as it is: the same entry
				     * sent again will be refused again (a
				     * missing bus, a malformed or too large
				     * entry, access denied) */
} cart_publish_status;

#define CART_PUBLISH_CODE_MAX 64

typedef struct cart_publish_result {
	cart_publish_status status;
	/* The bus's error code ("MalformedDetail", "ThrottlingException"),
	 * for logs; "" when accepted or when there is none. */
	char code[CART_PUBLISH_CODE_MAX];
} cart_publish_result;

typedef struct cart_publisher_ops {
	int version;                              /* CART_PUBLISHER_OPS_VERSION */
	/*
	 * Publishes events in order.  Returns CART_OK once every event was
	 * accepted, else an error and the caller may publish them again
	 * (delivery is at least once; consumers dedupe by event id).
	 */
	int (*publish)(void *self, const cart_event *events, size_t n);
	void (*destroy)(void *self);
	/*
	 * Version 2.  Publishes events (which may belong to several users,
	 * each user's in cart_version order) and reports each entry: ok[i]
	 * is true once events[i] was accepted.  Returns CART_OK when every
	 * entry was, else an error (ok[] still tells which were).  The
	 * caller resends what failed (at least once).
	 */
	int (*publish_each)(void *self, const cart_event *events, size_t n,
			    bool *ok);
	/*
	 * Version 3.  publish_each, and for each entry res[i] says whether
	 * it was accepted, failed for now (the caller resends it), or was
	 * refused for good (the caller may stop resending it after a few
	 * tries), with the bus's error code.  Returns CART_OK when every
	 * entry was accepted, else an error (res[] still says which were).
	 */
	int (*publish_results)(void *self, const cart_event *events, size_t n,
			       cart_publish_result *res);
} cart_publisher_ops;

typedef struct cart_publisher {
	const cart_publisher_ops *ops;
	void *self;
} cart_publisher;

int cart_publisher_publish(const cart_publisher *p, const cart_event *ev,
			   size_t n);
/*
 * publish_each, or for a version-1 adapter publish with every ok[i] set
 * to whether the whole call succeeded.  ok has room for n.
 */
int cart_publisher_publish_each(const cart_publisher *p, const cart_event *ev,
				size_t n, bool *ok);
/*
 * publish_results, or for an older adapter publish_each (or publish) with
 * every entry not accepted reported CART_PUBLISH_RETRY: an older adapter
 * cannot tell a refusal for good.  res has room for n.
 */
int cart_publisher_publish_results(const cart_publisher *p,
				   const cart_event *ev, size_t n,
				   cart_publish_result *res);
void cart_publisher_destroy(cart_publisher *p);

#endif
