/*
 * Log and no-op event publishers.  The log publisher writes one JSON line
 * per event with a single write(2), so concurrent lines never interleave.
 * Every string in an event is an id (a restricted alphabet) or a fixed
 * name, so no JSON escaping is needed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "log/log_publisher.h"

static void rfc3339(char out[64], int64_t ms)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&sec, &tm);
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

size_t cart_event_to_json(char *buf, size_t cap, const cart_event *ev)
{
	char at[64];
	int n;

	rfc3339(at, ev->occurred_at);
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

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return CART_EBACKEND;
		}
		p += n;
		len -= (size_t)n;
	}
	return CART_OK;
}

static int log_publish(void *self, const cart_event *events, size_t n)
{
	int fd = (int)(intptr_t)self;

	for (size_t i = 0; i < n; i++) {
		char line[1024];
		char at[64];
		size_t len;
		int pre;

		rfc3339(at, events[i].occurred_at);
		pre = snprintf(line, sizeof(line),
			       "{\"time\":\"%s\",\"level\":\"info\",\"msg\":\"event\","
			       "\"event\":", at);
		len = cart_event_to_json(line + pre, sizeof(line) - (size_t)pre - 2,
					 &events[i]);
		if (len >= sizeof(line) - (size_t)pre - 2)
			return CART_EBACKEND;
		len += (size_t)pre;
		line[len++] = '}';
		line[len++] = '\n';
		if (write_all(fd, line, len))
			return CART_EBACKEND;
	}
	return CART_OK;
}

static const cart_publisher_ops log_publisher_ops = {
	.publish = log_publish,
};

int cart_log_publisher_new(cart_publisher *out, int fd)
{
	out->ops = &log_publisher_ops;
	out->self = (void *)(intptr_t)fd;
	return CART_OK;
}

static int noop_publish(void *self, const cart_event *events, size_t n)
{
	return CART_OK;
}

static const cart_publisher_ops noop_publisher_ops = {
	.publish = noop_publish,
};

int cart_noop_publisher_new(cart_publisher *out)
{
	out->ops = &noop_publisher_ops;
	out->self = NULL;
	return CART_OK;
}
