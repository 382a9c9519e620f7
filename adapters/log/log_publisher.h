#ifndef CART_LOG_PUBLISHER_H
#define CART_LOG_PUBLISHER_H

/*
 * Event publishers that need no infrastructure:
 *  - log: one JSON line per event on the given file descriptor (stdout in
 *    the service), the lines of one call written with a single write(2),
 *    so lines from many threads never interleave;
 *  - noop: accepts and drops everything.
 */

#include <stdbool.h>

#include "cart/ports.h"
#include "codec/event_json.h"

/*
 * fd is borrowed and must stay open while the publisher is used.  Event
 * lines are info lines: with enabled false (a log level above info) the
 * publisher writes nothing, but still reports every event as published,
 * so the outbox drains.
 */
int cart_log_publisher_new(cart_publisher *out, int fd, bool enabled);
int cart_noop_publisher_new(cart_publisher *out);

#endif
