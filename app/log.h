#ifndef APP_LOG_H
#define APP_LOG_H

/*
 * Structured logs: one JSON object per line on stdout,
 *   {"time","level","msg"[,"request_id"][,"trace_id"]<fields>}
 * level is a name ("debug", "info", "warn", "error").
 *
 * Two modes.  Until log_start_writer (and again after log_stop) log_write
 * writes each line with one write(2) from the calling thread: the start and its
 * failures stay synchronous.  Between them a line is formatted on the
 * caller's stack and pushed into a lock-free bounded queue
 * (LOG_QUEUE_LINES lines, app/log_queue.h) that one writer thread drains,
 * many lines per write(2).  log_write then never waits for I/O, a lock or
 * another thread.  When stdout is a pipe and the queue is half full while
 * the pipe has room, the writer thread is short of CPU (one thread among
 * the many busy request workers of a saturated core), and the caller
 * writes one batch of queued lines itself: at most half the pipe's free
 * room, and only if no other thread is draining (a try-lock).
 *
 * When stdout cannot keep up (a stalled pipe, or not a pipe and the writer
 * thread short of CPU) the queue fills:
 *  - debug and info lines are dropped once it is 3/4 full,
 *  - warn and error lines only when it is full;
 * each drop is counted per level (log_dropped), and the writer, as soon as
 * it can write again, first writes
 *   {"level":"warn","msg":"log lines dropped","dropped":{"debug":0,"info":N,"warn":0,"error":0}}
 * with the lines dropped since its previous such line.
 *
 * The level is set once in main before threads start.
 */

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The queue bound: 8192 lines of up to 488 bytes in place (4 MiB);
 * longer lines are copied to the heap and take one slot.  Until
 * 2026-11-29 4096 of up to 1000 bytes: the same memory held half the
 * lines, and on one saturated core a writer thread that lost the core
 * while it held the drain (so no worker could help) ran the queue to
 * its info bound in ~40 ms of GETs; with twice the lines, 1-core runs
 * dropped lines in 2 of 8 runs against 6 of 8 (issue 10). */
#define LOG_QUEUE_LINES 8192
/* log_start_writer asks for this much pipe buffer when the fd is a pipe
 * (fcntl F_SETPIPE_SZ; kept as is if refused). */
#define LOG_PIPE_BYTES (1024 * 1024)
/* How long log_stop waits for the writer to drain the queue. */
#define LOG_STOP_WAIT_MS 2000

/* Before any thread starts.  fd is borrowed. */
void log_setup(log_level min_level, int fd);
int log_enabled(log_level level);

/*
 * Starts the writer thread (asynchronous mode); it runs `nice` nicer than
 * the process (0-19; the kernel caps the sum at 19).  0, or -1 if the
 * queue or the thread could not be made: logging stays synchronous.
 * Call once, from main; not concurrently with log_stop.
 */
int log_start_writer(int nice);
/*
 * Back to synchronous mode: lines written from now on go straight to the
 * fd; the writer drains what is queued (and reports drops) for at most
 * LOG_STOP_WAIT_MS, then stops.  If the fd stays stalled past that the
 * writer is abandoned (the process is about to exit) and 1 is returned;
 * else 0.  Call once the threads that log are stopped, or accept that a
 * line pushed while the writer finishes may be lost.
 */
int log_stop(void);
/* Tests: while on, the writer thread takes no lines from the queue, as a
 * writer thread that gets no CPU; lines wait there or callers drain them.
 * log_stop drains regardless. */
void log_hold_writer(int on);

/*
 * Writes {"time","level","msg"...<fields>}.  fields is NULL or a run of
 * JSON members each starting with a comma: ",\"k\":1,\"s\":\"x\"", built
 * with an escaping writer (buf_json_str), never by pasting raw strings.
 * Thread-safe; never blocks in asynchronous mode.
 */
void log_write(log_level level, const char *msg, const char *fields);

/*
 * Writes whole lines (len bytes, each ending in '\n', already formatted:
 * the log event publisher's) as one entry of the queue, never dropped:
 * no other line's bytes land among them, and they keep their place among
 * the lines queued.  While the queue is 3/4 full it waits (1 ms at a
 * time, holding no lock) for room: for a thread that may, never a request
 * worker.  Without a writer thread (before log_start_writer, after
 * log_stop) it writes to the fd at once.  0 once queued (or written), -1
 * if a block longer than a cell could not be copied or the fd failed.
 * Queued lines are written by the writer thread like any other: a crash
 * loses them, log_stop writes them (bounded by LOG_STOP_WAIT_MS).
 */
int log_write_lines(const char *lines, size_t len);

/* Lines of this level dropped since the process started (a queue full or
 * over 3/4 full).  Thread-safe; for the metrics exporter. */
uint64_t log_dropped(log_level level);
/* Lines in the writer's queue now (0 without a writer thread; may count
 * up to 63 lines already taken).  Thread-safe. */
size_t log_queued(void);

/*
 * The calling thread's current request: until log_request_end every line
 * this thread writes carries "request_id" and, when non-empty, "trace_id".
 * Both strings are borrowed and read at each log_write (so a trace id
 * filled later shows up); they must stay valid until log_request_end.
 * Set by app_request_init, cleared after the request's LOG phase.
 */
void log_request_begin(const char *request_id, const char *trace_id);
void log_request_end(void);

#endif
