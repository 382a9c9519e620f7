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

#define CART_PUBLISHER_OPS_VERSION 2

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
void cart_publisher_destroy(cart_publisher *p);

#endif
