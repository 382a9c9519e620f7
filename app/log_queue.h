#ifndef APP_LOG_QUEUE_H
#define APP_LOG_QUEUE_H

/*
 * A bounded, lock-free queue of log lines: Dmitry Vyukov's bounded MPMC
 * queue (a ring of cells, each with a sequence number, C11 atomics), used
 * here with many producers (any thread calling log_write) and exactly one
 * consumer (the log writer thread).
 *
 * Each cell holds a line of up to LOG_CELL_INLINE bytes in place; a longer
 * line (the start configuration, the stats line: never a request line) is
 * copied to the heap and the cell keeps the pointer, so no line is ever
 * split or truncated.  Pushing never waits: a full queue refuses the line.
 */

#include <stddef.h>

typedef struct log_queue log_queue;

/* Bytes of a line kept inside its cell, so that a cell is 512 bytes (an
 * access line is 250-350; the relay's event blocks and the start and
 * stats lines go to the heap). */
#define LOG_CELL_INLINE 488

/* cells: a power of two >= 2.  -1 if not, or out of memory. */
int log_queue_new(log_queue **out, size_t cells);
/* Frees the queue and any line still in it.  Accepts NULL.  No thread
 * may use q any more. */
void log_queue_free(log_queue *q);

/*
 * Copies line[0..len) into the queue.  0 on success; LOG_QUEUE_FULL (-1)
 * if the queue is full, LOG_QUEUE_NOMEM (-2) if a long line's copy could
 * not be allocated: nothing was queued.  Lock-free, safe from any number
 * of threads.
 */
#define LOG_QUEUE_FULL (-1)
#define LOG_QUEUE_NOMEM (-2)
int log_queue_push(log_queue *q, const char *line, size_t len);

/*
 * The consumer's side (one thread only).  Appends the oldest line to
 * dst + *len if it fits in cap - *len, and advances *len.
 * 1: a line was taken; 0: the queue is empty; -1: the oldest line does
 * not fit (it stays queued; take it with a larger room).
 */
int log_queue_pop(log_queue *q, char *dst, size_t cap, size_t *len);
/* The consumer must pop until pop returns 0 or -1 before it stops for a
 * while (as a drain does): until then producers may see its last few
 * lines as still queued. */

/* Lines queued now (a snapshot; exact only when nobody pushes or pops).
 * While the consumer is taking lines it may count up to 63 it has
 * already taken; once pop has returned 0 or -1 it is exact again. */
size_t log_queue_used(const log_queue *q);
size_t log_queue_cap(const log_queue *q);

#endif
