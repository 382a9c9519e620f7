#ifndef CART_TEST_FAKE_PUBLISHER_H
#define CART_TEST_FAKE_PUBLISHER_H

/*
 * A cart_publisher for tests: keeps a copy of every event it accepted, in
 * order, and can be told to refuse calls or single entries, to take a
 * while per call, and to speak only version 1 of the port (publish, no
 * publish_each).  It also watches concurrency: how many calls were in
 * flight at once, and whether a user's events were ever in two calls at
 * the same time.  Safe from many threads.
 */

#include <stddef.h>
#include <stdint.h>

#include "cart/ports.h"

typedef struct fake_publisher fake_publisher;

/* *ctl (may be NULL) is owned by the port; cart_publisher_destroy frees it. */
int fake_publisher_new(cart_publisher *out, fake_publisher **ctl);
/* The same fake behind a version-1 ops table (publish only). */
int fake_publisher_new_v1(cart_publisher *out, fake_publisher **ctl);

/* Events accepted so far (failed calls and entries record nothing). */
size_t fake_publisher_count(const fake_publisher *fp);
/* Copy of the i-th accepted event; i < count. */
cart_event fake_publisher_event(const fake_publisher *fp, size_t i);
/* publish() calls, successful or not. */
size_t fake_publisher_calls(const fake_publisher *fp);
/* The next n calls return err (n < 0: every call until reset). */
void fake_publisher_fail(fake_publisher *fp, int n, int err);
/* Forgets recorded events and failures. */
void fake_publisher_reset(fake_publisher *fp);

/* Every call sleeps this long (real time) before it answers. */
void fake_publisher_set_delay_ms(fake_publisher *fp, int ms);
/*
 * The entry of (user, cart_version) fails, once, in publish_each (its
 * call reports it in ok[]); through publish the whole call fails.
 */
void fake_publisher_fail_entry(fake_publisher *fp, const char *user,
			       int64_t cart_version);
/*
 * The entry of (user, cart_version) is refused permanently, on every call
 * until reset, with the error code code (e.g. "MalformedDetail"): as
 * a refused entry in publish_each's ok[].
 */
void fake_publisher_refuse_entry(fake_publisher *fp, const char *user,
				 int64_t cart_version, const char *code);
/* How many times that entry was refused so far. */
size_t fake_publisher_refusals(const fake_publisher *fp);
/* Entries in the i-th call (i < calls), and distinct users among them. */
size_t fake_publisher_call_entries(const fake_publisher *fp, size_t i);
size_t fake_publisher_call_users(const fake_publisher *fp, size_t i);
/* Most calls that were in flight at the same time. */
size_t fake_publisher_max_in_flight(const fake_publisher *fp);
/* Calls that carried a user whose events another call was still carrying. */
size_t fake_publisher_overlaps(const fake_publisher *fp);

#endif
