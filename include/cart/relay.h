#ifndef CART_RELAY_H
#define CART_RELAY_H

/*
 * The outbox relay: publishes the events that commits recorded in the
 * repository's outbox, then acknowledges them there.  An event is
 * published only after its write committed (it is read from the store),
 * and removed only after the publisher accepted it, so delivery is at
 * least once and survives crashes and publisher outages; per user the
 * order is cart_version order.
 *
 * A pass packs the events of many users into each publisher call (at
 * most CART_RELAY_CALL_MAX entries, the PutEvents bound; an event's
 * document is under 1 KB, so a call also stays far below 256 KB) and
 * keeps up to `concurrency` calls in flight.  It is a pipeline: while
 * calls are in flight it fetches again and queues the users it does not
 * hold yet, so a slow call delays only its own users.  A user's events
 * are in at most one call at a time and in cart_version order inside it;
 * what a call accepted is acked per user, up to that user's first refused
 * entry (publishers of port version 1 accept or refuse whole calls); the
 * rest waits for the next pass.
 *
 * A relay is driven by one thread at a time (cart_relay_run_once in a
 * loop; the relay's own pool threads help within a pass); several
 * processes may relay the same store: the ack is conditional, and
 * consumers deduplicate by event id or (cartId, cartVersion).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cart/ports.h"
#include "cart/repo.h"

#define CART_RELAY_CALL_MAX 10   /* entries per publisher call */
/*
 * A user's oldest pending event that the publisher refused for good
 * (CART_PUBLISH_REFUSED) this many passes in a row is parked: moved to the
 * repository's dead-letter list (cart_repo_outbox_park), so that the
 * user's later events go out.  A failure for now (throttling, an internal
 * failure, no answer) never counts, and restarts the count.
 */
#define CART_RELAY_MAX_ATTEMPTS 5
#define CART_RELAY_MAX_ATTEMPTS_MAX 100
/*
 * EVENTS_RELAY_CONCURRENCY's default (the service's; the library's is 1).
 * Calls in flight needed = events/s x call latency / events per call: the
 * 15,000 writes/s measured on 2 cores, on a 20 ms bus in calls of 10,
 * need 30 at the bus's own latency, and calls take longer than that when
 * the CPUs are busy; 64 kept delivery equal to writes in `make
 * bench-events` where 32 fell to 0.8 of them (docs/performance.md).  An
 * idle call slot costs a parked thread.
 */
#define CART_RELAY_CONCURRENCY_DEFAULT 64
/*
 * While idle (the last fetch found the outbox empty) the service's relay
 * loop fetches at most once per this interval: a commit in the process
 * wakes it at once, so polling only finds other processes' leftovers.
 */
#define CART_RELAY_IDLE_POLL_MS 5000

typedef struct cart_relay cart_relay;

typedef struct cart_relay_stats {
	uint64_t published;       /* events accepted by the publisher */
	uint64_t publish_failures;/* publisher calls that failed */
	uint64_t ack_conflicts;   /* acks that found the outbox changed */
	uint64_t parked;          /* events moved to the dead-letter list */
	size_t acks_waiting;      /* published events whose ack waits
				   * (cart_relay_set_ack_delay) */
	size_t backlog;           /* pending events at the last fetch */
	int64_t oldest_age_ms;    /* age of the oldest pending event, 0 if none */
	uint64_t delivered_per_s; /* events published per second, measured over
				   * the last window of >= 1 s of relay passes */
} cart_relay_stats;

/* Ports are borrowed; batch is the most events fetched per pass. */
int cart_relay_new(cart_relay **out, const cart_repo *repo,
		   const cart_publisher *pub, const cart_clock *clock,
		   size_t batch);
void cart_relay_free(cart_relay *r);   /* accepts NULL */

/*
 * One pass: fetch pending events (about `batch` more than the pass holds,
 * whole users), publish them in calls that mix users, ack what was
 * accepted; fetch again while calls are in flight whenever fewer events
 * are queued than the slots carry.  Returns once a fetch after the last
 * answer brought nothing new and no call is in flight (it stops fetching
 * after about a second of sustained work).  Returns the number of events
 * accepted (>= 0), or a cart_err if the outbox could not be read.  A
 * user's refused entry and everything after it stay pending for the next
 * pass, until that entry is parked (CART_RELAY_MAX_ATTEMPTS).
 */
int cart_relay_run_once(cart_relay *r);

/*
 * A commit added events: a running pass with an idle call slot fetches
 * again instead of waiting for a call to be answered (between passes the
 * caller's loop does the waking).  Cheap; safe from any thread; accepts
 * NULL.
 */
void cart_relay_kick(cart_relay *r);

/*
 * How long a loop driving the relay should wait (for a kick of a local
 * commit, or this long) after a pass returned n, given its previous wait:
 * 0 while events remain, CART_RELAY_IDLE_POLL_MS when the outbox was
 * empty, and a backoff from 20 ms to 1 s while nothing goes out although
 * events wait (publisher failing, outbox unreadable).
 */
int64_t cart_relay_next_wait_ms(const cart_relay *r, int n, int64_t prev_ms);

/*
 * Most publisher calls in flight during a pass, 1..256 (default 1: the
 * calling thread makes the calls, one at a time); n > 1 starts n pool
 * threads that make the calls while the calling thread fetches, stopped
 * by cart_relay_free.  CART_EINVALID out of range, CART_ENOMEM if threads
 * could not start (those that did are used).  Not while a pass runs.
 */
int cart_relay_set_concurrency(cart_relay *r, int n);

/*
 * Refusals for good in a row after which an event is parked, 1..
 * CART_RELAY_MAX_ATTEMPTS_MAX (default CART_RELAY_MAX_ATTEMPTS); else
 * CART_EINVALID.  Not while a pass runs.  With a repository of port
 * version 1 (no outbox_park) nothing is parked: the event stays pending.
 */
int cart_relay_set_max_attempts(cart_relay *r, int n);

/*
 * Called once for each event parked, after the store took it, with the
 * publisher's error code and the refusals counted; from any relay
 * thread, so fn must be thread-safe.  For the log line an operator needs.
 * Not while a pass runs.
 */
typedef void (*cart_relay_park_fn)(void *self, const cart_event *ev,
				   const char *code, int attempts);
void cart_relay_on_park(cart_relay *r, cart_relay_park_fn fn, void *self);

/*
 * Lets the acks of published events wait up to ms (0..10000; default 0:
 * ack at once), so that the events a user's cart produced in that window
 * are acked in one repository write (on DynamoDB: one UpdateItem instead
 * of one per change).  Delivery is not delayed; a crash inside the window
 * republishes them (at least once).  A user's waiting acks are written at
 * once when a refusal follows them or more than 20 wait, and at most
 * 8192 events wait in all (then acks are not delayed).  Their ack is
 * written by cart_relay_run_once or cart_relay_flush_acks once the
 * window ended.  CART_EINVALID out of range.
 */
int cart_relay_set_ack_delay(cart_relay *r, int64_t ms);

/*
 * Writes the acks whose wait ended (every waiting ack if `all`, e.g. at
 * shutdown) and returns the ms until the next one is due, -1 if none
 * waits: a loop driving the relay sleeps at most that long between
 * passes.  From the thread driving the relay, not while a pass runs.
 */
int64_t cart_relay_flush_acks(cart_relay *r, bool all);

/* Counters; safe to read from any thread. */
void cart_relay_stats_get(const cart_relay *r, cart_relay_stats *out);

#endif
