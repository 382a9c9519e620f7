#ifndef CART_LOG_PUBLISHER_H
#define CART_LOG_PUBLISHER_H

/*
 * Event publishers that need no infrastructure:
 *  - log: one JSON line per event, the lines of one call written together:
 *    on a file descriptor with a single write(2), or handed to a line sink
 *    as one block;
 *  - noop: accepts and drops everything.
 *
 * One write(2) is not enough when the fd is shared with other writers and
 * is a pipe (stdout on ECS): a write larger than the pipe's free room waits
 * part-way and another writer's bytes land in the gap (pipe(7): writes over
 * PIPE_BUF are not atomic), tearing lines when the reader falls behind.
 * Such a process gives the publisher a sink that keeps its blocks whole
 * against its other writers (the service: app/log.c, log_write_lines,
 * which queues each block as one entry for its single stdout writer).
 */

#include <stdbool.h>
#include <stddef.h>

#include "cart/ports.h"
#include "codec/event_json.h"

/*
 * Where the log publisher's lines go.  write gets every line of one
 * publisher call (each ending in '\n') and returns CART_OK once it has
 * taken them all, to be written with no other writer's bytes among them
 * (written, or queued for a writer that the sink answers for), else an
 * error (every event of the call then counts as not published and is
 * offered again: delivery is at least once).  It may wait for room.
 */
typedef struct cart_line_sink_ops {
	int (*write)(void *self, const char *lines, size_t len);
} cart_line_sink_ops;

typedef struct cart_line_sink {
	const cart_line_sink_ops *ops;
	void *self;
} cart_line_sink;

/*
 * fd is borrowed and must stay open while the publisher is used; the
 * lines of a call go out with one write(2) (whole unless the fd is shared
 * and stalls, above).  Event lines are info lines: with enabled false (a
 * log level above info) the publisher writes nothing, but still reports
 * every event as published, so the outbox drains.
 */
int cart_log_publisher_new(cart_publisher *out, int fd, bool enabled);
/* The same, writing to sink, which is borrowed and must outlive the
 * publisher. */
int cart_log_publisher_new_sink(cart_publisher *out, const cart_line_sink *sink,
				bool enabled);
int cart_noop_publisher_new(cart_publisher *out);

#endif
