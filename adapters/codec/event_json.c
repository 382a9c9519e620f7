/*
 * The event document: the same JSON object on every channel (a log line's
 * "event" member, an EventBridge entry's Detail); docs/events holds its
 * schema.  Every string in an event is an id (a restricted alphabet) or a
 * fixed name, so no JSON escaping is needed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "codec/event_json.h"

void cart_rfc3339(char *out, size_t cap, int64_t ms)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&sec, &tm);
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

size_t cart_event_to_json(char *buf, size_t cap, const cart_event *ev)
{
	char at[64];
	int n;

	cart_rfc3339(at, sizeof(at), ev->occurred_at);
	n = snprintf(buf, cap,
		     "{\"schemaVersion\":%d,\"eventId\":\"%s\",\"eventType\":\"%s\","
		     "\"occurredAt\":\"%s\",\"userId\":\"%s\",\"cartId\":\"%s\","
		     "\"cartVersion\":%" PRId64,
		     CART_EVENT_SCHEMA_VERSION, ev->event_id,
		     cart_event_type_name(ev->type), at, ev->user_id,
		     ev->cart_id, ev->cart_version);
	if (n < 0)
		return 0;
	if (ev->type == CART_EVENT_CLEARED)
		n += snprintf((size_t)n < cap ? buf + n : NULL,
			      (size_t)n < cap ? cap - (size_t)n : 0,
			      ",\"itemCountBefore\":%" PRId64 "}",
			      ev->item_count_before);
	else
		n += snprintf((size_t)n < cap ? buf + n : NULL,
			      (size_t)n < cap ? cap - (size_t)n : 0,
			      ",\"itemId\":\"%s\",\"quantityBefore\":%d,"
			      "\"quantityAfter\":%d,\"unitPrice\":{\"amount\":%" PRId64
			      ",\"currency\":\"%s\"}}",
			      ev->item_id, (int)ev->quantity_before,
			      (int)ev->quantity_after, ev->unit_price.amount,
			      ev->unit_price.currency);
	return (size_t)n;
}

