#ifndef CART_LOG_PUBLISHER_H
#define CART_LOG_PUBLISHER_H

/*
 * Event publishers that need no infrastructure:
 *  - log: one JSON line per event on the given file descriptor (stdout in
 *    the service), each written with a single write(2), so lines from many
 *    threads never interleave;
 *  - noop: accepts and drops everything.
 */

#include "cart/ports.h"

/* fd is borrowed and must stay open while the publisher is used. */
int cart_log_publisher_new(cart_publisher *out, int fd);
int cart_noop_publisher_new(cart_publisher *out);

/*
 * Writes one event as a JSON object (no newline) into buf; returns the
 * length it needed, like snprintf, so a result >= cap means truncated.
 */
size_t cart_event_to_json(char *buf, size_t cap, const cart_event *ev);

#endif
