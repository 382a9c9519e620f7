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

/* A bounded writer with snprintf's result: n counts every byte wanted. */
typedef struct out {
	char *p;
	size_t cap, n;
} out;

static void put(out *o, const char *s, size_t len)
{
	if (o->n < o->cap) {
		size_t room = o->cap - o->n;
		memcpy(o->p + o->n, s, len < room ? len : room);
	}
	o->n += len;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_str(out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_i64(out *o, int64_t v)
{
	char tmp[24], *e = tmp + sizeof(tmp), *d = e;
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;

	do {
		*--d = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--d = '-';
	put(o, d, (size_t)(e - d));
}

/*
 * Without printf (issue 10: the relay formats every event, on the cores
 * the requests need).  Ids and names need no escaping (see the top).
 */
size_t cart_event_to_json(char *buf, size_t cap, const cart_event *ev)
{
	out o = { buf, cap, 0 };
	char at[64];

	cart_rfc3339(at, sizeof(at), ev->occurred_at);
	PUT_LIT(&o, "{\"schemaVersion\":");
	put_i64(&o, CART_EVENT_SCHEMA_VERSION);
	PUT_LIT(&o, ",\"eventId\":\"");
	put_str(&o, ev->event_id);
	PUT_LIT(&o, "\",\"eventType\":\"");
	put_str(&o, cart_event_type_name(ev->type));
	PUT_LIT(&o, "\",\"occurredAt\":\"");
	put_str(&o, at);
	PUT_LIT(&o, "\",\"userId\":\"");
	put_str(&o, ev->user_id);
	PUT_LIT(&o, "\",\"cartId\":\"");
	put_str(&o, ev->cart_id);
	PUT_LIT(&o, "\",\"cartVersion\":");
	put_i64(&o, ev->cart_version);
	if (ev->type == CART_EVENT_CLEARED) {
		PUT_LIT(&o, ",\"itemCountBefore\":");
		put_i64(&o, ev->item_count_before);
		PUT_LIT(&o, "}");
	} else {
		PUT_LIT(&o, ",\"itemId\":\"");
		put_str(&o, ev->item_id);
		PUT_LIT(&o, "\",\"quantityBefore\":");
		put_i64(&o, ev->quantity_before);
		PUT_LIT(&o, ",\"quantityAfter\":");
		put_i64(&o, ev->quantity_after);
		PUT_LIT(&o, ",\"unitPrice\":{\"amount\":");
		put_i64(&o, ev->unit_price.amount);
		PUT_LIT(&o, ",\"currency\":\"");
		put_str(&o, ev->unit_price.currency);
		PUT_LIT(&o, "\"}}");
	}
	if (cap)
		buf[o.n < cap ? o.n : cap - 1] = '\0';
	return o.n;
}

