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

#include "codec/event_json.h"
#include "log/log_publisher.h"

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

		cart_rfc3339(at, sizeof(at), events[i].occurred_at);
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
	.version = CART_PUBLISHER_OPS_VERSION,
	.publish = log_publish,
};

int cart_log_publisher_new(cart_publisher *out, int fd, bool enabled)
{
	if (!enabled)
		return cart_noop_publisher_new(out);   /* below the log level */
	out->ops = &log_publisher_ops;
	out->self = (void *)(intptr_t)fd;
	return CART_OK;
}

static int noop_publish(void *self, const cart_event *events, size_t n)
{
	return CART_OK;
}

static const cart_publisher_ops noop_publisher_ops = {
	.version = CART_PUBLISHER_OPS_VERSION,
	.publish = noop_publish,
};

int cart_noop_publisher_new(cart_publisher *out)
{
	out->ops = &noop_publisher_ops;
	out->self = NULL;
	return CART_OK;
}
