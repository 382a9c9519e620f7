#ifndef CART_TEST_FAKE_PUBLISHER_H
#define CART_TEST_FAKE_PUBLISHER_H

/*
 * A cart_publisher for tests: keeps a copy of every event it accepted, in
 * order, and can be told to refuse calls.  Safe from many threads.
 */

#include <stddef.h>

#include "cart/ports.h"

typedef struct fake_publisher fake_publisher;

/* *ctl (may be NULL) is owned by the port; cart_publisher_destroy frees it. */
int fake_publisher_new(cart_publisher *out, fake_publisher **ctl);

/* Events accepted so far (failed calls record nothing). */
size_t fake_publisher_count(const fake_publisher *fp);
/* Copy of the i-th accepted event; i < count. */
cart_event fake_publisher_event(const fake_publisher *fp, size_t i);
/* publish() calls, successful or not. */
size_t fake_publisher_calls(const fake_publisher *fp);
/* The next n calls return err (n < 0: every call until reset). */
void fake_publisher_fail(fake_publisher *fp, int n, int err);
/* Forgets recorded events and failures. */
void fake_publisher_reset(fake_publisher *fp);

#endif
