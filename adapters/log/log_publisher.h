#ifndef CART_LOG_PUBLISHER_H
#define CART_LOG_PUBLISHER_H

/*
 * Event publishers that need no infrastructure:
 *  - log: one JSON line per event on the given file descriptor (stdout in
 *    the service), the lines of one call written with a single write(2),
 *    so lines from many threads never interleave;
 *  - noop: accepts and drops everything.
 */

#include "cart/ports.h"
#include "codec/event_json.h"

/* fd is borrowed and must stay open while the publisher is used. */
int cart_log_publisher_new(cart_publisher *out, int fd);
int cart_noop_publisher_new(cart_publisher *out);

#endif
