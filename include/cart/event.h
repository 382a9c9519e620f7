#ifndef CART_EVENT_H
#define CART_EVENT_H

/*
 * Domain events: one per committed mutation, never for a rejected one.
 * (cart_id, cart_version) names the cart state the event produced, so
 * consumers order and deduplicate by that pair.
 */

#include <stdint.h>

#include "cart/cart.h"

#define CART_EVENT_SCHEMA_VERSION 1

/* An X-Ray trace header "Root=1-...;Parent=<16 hex>;Sampled=1" is 74 bytes. */
#define CART_TRACE_HEADER_MAX 79

typedef enum cart_event_type {
	CART_EVENT_ITEM_ADDED = 1,
	CART_EVENT_ITEM_QUANTITY_CHANGED,
	CART_EVENT_ITEM_REMOVED,
	CART_EVENT_CLEARED,
} cart_event_type;

/* "CartItemAdded", ...; static text. */
const char *cart_event_type_name(cart_event_type t);

typedef struct cart_event {
	cart_event_type type;
	char event_id[CART_UUID_LEN + 1];
	int64_t occurred_at;          /* ms since epoch */
	char user_id[CART_ID_MAX + 1];
	char cart_id[CART_UUID_LEN + 1];
	int64_t cart_version;
	char item_id[CART_ID_MAX + 1]; /* "" for CART_EVENT_CLEARED */
	int32_t quantity_before;      /* 0 when the line did not exist */
	int32_t quantity_after;       /* 0 when the line is gone */
	cart_money unit_price;        /* the line's price after the change */
	int64_t item_count_before;    /* CLEARED: quantities dropped */
	/*
	 * The trace of the request that caused the change, as an X-Ray trace
	 * header (cart_call_ctx.trace_header), or "" when none.  Travels in the
	 * publishers' envelopes (EventBridge TraceHeader), not in the event
	 * document: consumers follow the request to the event through it.
	 */
	char trace_header[CART_TRACE_HEADER_MAX + 1];
} cart_event;

#endif
