/*
 * Log and no-op event publishers.  The log publisher writes one JSON line
 * per event, all lines of a call together: one write(2) on an fd, or one
 * block to a line sink (log_publisher.h says when that matters).
 * Every string in an event is an id (a restricted alphabet) or a fixed
 * name, so no JSON escaping is needed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* an event document is well under 1 KB; then the trace header */
#define LINE_MAX_BYTES (1024 + 128)

/*
 * Appends events[i]'s line at out; returns its length, 0 if too long.
 * No printf (the relay formats every event on the request's cores).
 */
static size_t format_line(char *out, const cart_event *ev)
{
	static const char head[] = "{\"time\":\"";
	static const char mid[] = "\",\"level\":\"info\",\"msg\":\"event\",\"event\":";
	static const char trace[] = ",\"trace_header\":\"";
	size_t len, pre, at_len, th;
	char at[64];

	cart_rfc3339(at, sizeof(at), ev->occurred_at);
	at_len = strlen(at);
	memcpy(out, head, sizeof(head) - 1);
	memcpy(out + sizeof(head) - 1, at, at_len);
	memcpy(out + sizeof(head) - 1 + at_len, mid, sizeof(mid) - 1);
	pre = sizeof(head) - 1 + at_len + sizeof(mid) - 1;
	len = cart_event_to_json(out + pre, LINE_MAX_BYTES - pre - 2, ev);
	if (len >= LINE_MAX_BYTES - pre - 2)
		return 0;
	len += pre;
	/* the request's trace, beside the document (hex, '=', ';': no escaping) */
	th = strlen(ev->trace_header);
	if (th) {
		if (len + sizeof(trace) - 1 + th + 1 >= LINE_MAX_BYTES - 2)
			return 0;
		memcpy(out + len, trace, sizeof(trace) - 1);
		len += sizeof(trace) - 1;
		memcpy(out + len, ev->trace_header, th);
		len += th;
		out[len++] = '"';
	}
	out[len++] = '}';
	out[len++] = '\n';
	return len;
}

typedef int (*emit_fn)(void *ctx, const char *lines, size_t len);

/*
 * All lines of the call in one buffer, emitted at once: a relay call is
 * one write(2) (or one sink call), not one per event.  A failed or short write fails every
 * entry (they are written again; delivery is at least once).
 */
static int publish_lines(emit_fn emit, void *ctx, const cart_event *events,
			 size_t n, bool *ok)
{
	char *buf = malloc((n ? n : 1) * LINE_MAX_BYTES);
	size_t len = 0;
	int rc = CART_OK;

	for (size_t i = 0; ok && i < n; i++)
		ok[i] = false;
	if (!buf)
		return CART_ENOMEM;
	for (size_t i = 0; i < n && !rc; i++) {
		size_t l = format_line(buf + len, &events[i]);
		if (!l)
			rc = CART_EBACKEND;
		len += l;
	}
	if (!rc && len)
		rc = emit(ctx, buf, len);
	free(buf);
	for (size_t i = 0; ok && !rc && i < n; i++)
		ok[i] = true;
	return rc;
}

static int fd_emit(void *ctx, const char *lines, size_t len)
{
	return write_all((int)(intptr_t)ctx, lines, len);
}

static int fd_publish_each(void *self, const cart_event *events, size_t n,
			   bool *ok)
{
	return publish_lines(fd_emit, self, events, n, ok);
}

static int fd_publish(void *self, const cart_event *events, size_t n)
{
	return fd_publish_each(self, events, n, NULL);
}

static const cart_publisher_ops fd_publisher_ops = {
	.version = CART_PUBLISHER_OPS_VERSION,
	.publish = fd_publish,
	.publish_each = fd_publish_each,
};

static int sink_emit(void *ctx, const char *lines, size_t len)
{
	const cart_line_sink *sink = ctx;

	return sink->ops->write(sink->self, lines, len) ? CART_EBACKEND : CART_OK;
}

static int sink_publish_each(void *self, const cart_event *events, size_t n,
			     bool *ok)
{
	return publish_lines(sink_emit, self, events, n, ok);
}

static int sink_publish(void *self, const cart_event *events, size_t n)
{
	return sink_publish_each(self, events, n, NULL);
}

static const cart_publisher_ops sink_publisher_ops = {
	.version = CART_PUBLISHER_OPS_VERSION,
	.publish = sink_publish,
	.publish_each = sink_publish_each,
};

int cart_log_publisher_new(cart_publisher *out, int fd, bool enabled)
{
	if (!enabled)
		return cart_noop_publisher_new(out);   /* below the log level */
	out->ops = &fd_publisher_ops;
	out->self = (void *)(intptr_t)fd;
	return CART_OK;
}

int cart_log_publisher_new_sink(cart_publisher *out, const cart_line_sink *sink,
				bool enabled)
{
	if (!sink || !sink->ops || !sink->ops->write)
		return CART_EINVALID;
	if (!enabled)
		return cart_noop_publisher_new(out);
	out->ops = &sink_publisher_ops;
	out->self = (void *)sink;
	return CART_OK;
}

static int noop_publish(void *self, const cart_event *events, size_t n)
{
	return CART_OK;
}

static int noop_publish_each(void *self, const cart_event *events, size_t n,
			     bool *ok)
{
	for (size_t i = 0; i < n; i++)
		ok[i] = true;
	return CART_OK;
}

static const cart_publisher_ops noop_publisher_ops = {
	.version = CART_PUBLISHER_OPS_VERSION,
	.publish = noop_publish,
	.publish_each = noop_publish_each,
};

int cart_noop_publisher_new(cart_publisher *out)
{
	out->ops = &noop_publisher_ops;
	out->self = NULL;
	return CART_OK;
}
