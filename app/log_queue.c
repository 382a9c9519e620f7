/*
 * Vyukov's bounded queue: cell i of the ring is free for the producer
 * that claimed position p when its seq equals p, and holds a line for the
 * consumer at position p when its seq equals p + 1.  Producers claim a
 * position with one CAS on head; the single consumer owns ctail.
 *
 * Two changes for the cache (issue 10): the consumer publishes its
 * position (tail) only every TAIL_EVERY lines and whenever it stops, not
 * on every line, so the producers that read tail do not miss on it per
 * line; and a producer whose position is less than a ring ahead of
 * tail knows its cell is free without loading the cell's seq (the
 * consumer stores seq before it publishes a tail past it).  That load
 * was a miss on every push: a lap of the ring is larger than a core's
 * L2, and it blocked, where the producer's stores into the cell do not.
 * Only a queue that looks full (tail stale or not) checks the seq.
 */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log_queue.h"

typedef struct cell {
	atomic_size_t seq;
	size_t len;
	char *heap;                     /* owned copy of a long line, or NULL */
	char data[LOG_CELL_INLINE];
} cell;

_Static_assert(sizeof(cell) == 512, "a cell is 8 cache lines (LOG_CELL_INLINE)");

/* The consumer publishes tail at least this often (a power of two). */
#define TAIL_EVERY 64

struct log_queue {
	cell *cells;
	size_t mask;
	alignas(64) atomic_size_t head;  /* next position to push */
	alignas(64) atomic_size_t tail;  /* ctail as last published: <= ctail */
	alignas(64) size_t ctail;        /* next position to pop; the consumer's */
};

int log_queue_new(log_queue **out, size_t cells)
{
	log_queue *q;

	*out = NULL;
	if (cells < 2 || (cells & (cells - 1)))
		return -1;
	q = aligned_alloc(64, sizeof(*q));
	if (!q)
		return -1;
	memset(q, 0, sizeof(*q));
	q->cells = calloc(cells, sizeof(cell));
	if (!q->cells) {
		free(q);
		return -1;
	}
	q->mask = cells - 1;
	for (size_t i = 0; i < cells; i++)
		atomic_init(&q->cells[i].seq, i);
	atomic_init(&q->head, 0);
	atomic_init(&q->tail, 0);
	q->ctail = 0;
	*out = q;
	return 0;
}

void log_queue_free(log_queue *q)
{
	if (!q)
		return;
	for (size_t i = 0; i <= q->mask; i++)
		free(q->cells[i].heap);
	free(q->cells);
	free(q);
}

/* Claims a free cell; NULL if the queue is full. */
static cell *claim(log_queue *q, size_t *pos_out)
{
	size_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);

	for (;;) {
		cell *c = &q->cells[pos & q->mask];
		size_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
		size_t seq;
		intptr_t diff;

		/* pos - tail wraps to huge when pos is stale (behind tail) */
		if (pos - tail <= q->mask)
			seq = pos;   /* line pos - ring was popped: seq was set */
		else
			seq = atomic_load_explicit(&c->seq, memory_order_acquire);
		diff = (intptr_t)seq - (intptr_t)pos;
		if (diff == 0) {
			if (atomic_compare_exchange_weak_explicit(
				    &q->head, &pos, pos + 1, memory_order_relaxed,
				    memory_order_relaxed)) {
				*pos_out = pos;
				return c;
			}
		} else if (diff < 0) {
			return NULL;   /* the cell a lap behind is still unread */
		} else {
			pos = atomic_load_explicit(&q->head, memory_order_relaxed);
		}
	}
}

/*
 * Asks for the next push's cell ahead of it, for writing.  A lap of the
 * ring (4 MiB at 8,192 cells) is larger than a core's L2, so every cell a
 * push claims has been out of cache since the writer emptied it: its seq
 * load and the copy into it were ~0.27 us of a 19 us GET on one core
 * (perf, issue 10).  The next push comes one request later, on this core
 * or the other, and finds the lines on their way or there.  The first
 * WARM_BYTES cover an access line (200-500 bytes); a prefetch never
 * faults and changes nothing a reader sees.
 */
#define WARM_BYTES 384

static void warm_next(const log_queue *q, size_t pos)
{
	const char *p = (const char *)&q->cells[(pos + 1) & q->mask];

	for (size_t off = 0; off < WARM_BYTES; off += 64)
		__builtin_prefetch(p + off, 1, 3);
}

int log_queue_push(log_queue *q, const char *line, size_t len)
{
	char *heap = NULL;
	size_t pos;
	cell *c;

	if (len > LOG_CELL_INLINE) {
		heap = malloc(len);
		if (!heap)
			return LOG_QUEUE_NOMEM;
		memcpy(heap, line, len);
	}
	c = claim(q, &pos);
	if (!c) {
		free(heap);
		return LOG_QUEUE_FULL;
	}
	warm_next(q, pos);
	c->len = len;
	c->heap = heap;
	if (!heap)
		memcpy(c->data, line, len);
	atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
	return 0;
}

/* Lets producers see the consumer's position (after the seqs it freed). */
static void publish_tail(log_queue *q)
{
	atomic_store_explicit(&q->tail, q->ctail, memory_order_release);
}

int log_queue_pop(log_queue *q, char *dst, size_t cap, size_t *len)
{
	size_t pos = q->ctail;
	cell *c = &q->cells[pos & q->mask];
	size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);

	if (seq != pos + 1) {
		publish_tail(q);
		return 0;
	}
	if (c->len > cap - *len) {
		publish_tail(q);
		return -1;
	}
	memcpy(dst + *len, c->heap ? c->heap : c->data, c->len);
	*len += c->len;
	free(c->heap);
	c->heap = NULL;
	atomic_store_explicit(&c->seq, pos + q->mask + 1, memory_order_release);
	q->ctail = pos + 1;
	if (!(q->ctail & (TAIL_EVERY - 1)))
		publish_tail(q);
	return 1;
}

size_t log_queue_used(const log_queue *q)
{
	size_t head = atomic_load_explicit(&((log_queue *)q)->head, memory_order_relaxed);
	size_t tail = atomic_load_explicit(&((log_queue *)q)->tail, memory_order_relaxed);

	return head > tail ? head - tail : 0;
}

size_t log_queue_cap(const log_queue *q)
{
	return q->mask + 1;
}
