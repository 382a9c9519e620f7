/*
 * The event document: the same JSON object on every channel (a log line's
 * "event" member, an EventBridge entry's Detail); docs/events holds its
 * schema.  Every string in an event is an id (a restricted alphabet) or a
 * fixed name, so no JSON escaping is needed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "codec/event_json.h"

static void put_digits(char *p, unsigned v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

/*
 * Without gmtime_r and printf (issue 10: every response and log line
 * writes times): days to a civil date by H. Hinnant's civil_from_days,
 * exact for the proleptic Gregorian calendar.  Years outside 0000-9999,
 * or a cap under 25, take the libc path.
 */
void cart_rfc3339(char *out, size_t cap, int64_t ms)
{
	int64_t s = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	int64_t days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
	int64_t sod = s - days * 86400, z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097, y;
	unsigned doe = (unsigned)(z - era * 146097), yoe, doy, mp, d, m;

	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y = (int64_t)yoe + era * 400 + (m <= 2);
	if (cap < 25 || y < 0 || y > 9999) {
		time_t sec = (time_t)s;
		struct tm tm;

		gmtime_r(&sec, &tm);
		snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, (int)(ms - s * 1000));
		return;
	}
	memcpy(out, "0000-00-00T00:00:00.000Z", 25);
	put_digits(out, (unsigned)y, 4);
	put_digits(out + 5, m, 2);
	put_digits(out + 8, d, 2);
	put_digits(out + 11, (unsigned)(sod / 3600), 2);
	put_digits(out + 14, (unsigned)(sod / 60 % 60), 2);
	put_digits(out + 17, (unsigned)(sod % 60), 2);
	put_digits(out + 20, (unsigned)(ms - s * 1000), 3);
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

