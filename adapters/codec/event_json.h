#ifndef CART_EVENT_JSON_H
#define CART_EVENT_JSON_H

/*
 * Event serialisation shared by the publishers (a support library like
 * adapters/aws/, not an adapter).  Thread-safe, no allocation.
 */

#include <stddef.h>
#include <stdint.h>

#include "cart/event.h"

/*
 * Writes one event as a JSON object (no newline) into buf; returns the
 * length it needed, like snprintf, so a result >= cap means truncated.
 * The document is docs/events/cart-events.schema.json.
 */
size_t cart_event_to_json(char *buf, size_t cap, const cart_event *ev);

/* ms since the epoch as RFC 3339 UTC with milliseconds (cap >= 32). */
void cart_rfc3339(char *out, size_t cap, int64_t ms);

#endif
