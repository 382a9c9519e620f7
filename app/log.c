/*
 * log_write: formats a line on the caller's stack, then either writes it
 * (synchronous mode) or pushes it into the writer's lock-free queue.  The
 * writer thread drains the queue many lines per write(2).  See log.h for
 * the drop policy.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "log_queue.h"
#include "thread.h"

#define LINE_MAX_BYTES (64 * 1024)
#define BATCH_BYTES (2 * LINE_MAX_BYTES)   /* any line fits an empty batch */
#define IDLE_WAIT_MS 200                   /* re-checks drops while idle */
#define GATHER_MS 5                        /* a small batch waits this long for more */
/* A caller of log_write drains a batch itself once the queue is this full
 * (a fraction of its cells) and the pipe has room (help_drain). */
#define HELP_AT_NUM 1
#define HELP_AT_DEN 2
/* Pipe room a caller leaves unused: the kernel keeps a pipe in pages, and a
 * partly read first page and a partly written last one hold fewer bytes
 * than they take. */
#define PIPE_SLACK (2 * 4096)
#define HELP_MIN_BYTES (8 * 1024)   /* less room than this: leave it to the writer */

typedef struct writer {
	log_queue *q;
	int fd;
	size_t pipe_bytes;     /* fd's pipe capacity; 0: not a pipe, callers never drain */
	/* Held by whoever takes lines from the queue and writes them: the
	 * writer thread, or a caller of log_write that helps (help_drain).
	 * One consumer at a time (log_queue.h) and lines in queue order. */
	pthread_mutex_t drain;
	pthread_t thread;
	sem_t wake;
	atomic_int sleeping;   /* the thread waits on wake: post to wake it */
	atomic_int stopping;
	uint64_t reported[4];  /* drops already told in a "log lines dropped" */
	char *batch;           /* BATCH_BYTES; used under drain */
	int nice;              /* the thread's nice, above the process's */
} writer;

/* Process-wide, set by main before worker threads start. */
static log_level g_min_level = LOG_INFO;
static int g_fd = 1;
/* The running writer; NULL in synchronous mode. */
static _Atomic(writer *) g_writer;
/* A stopped writer, kept (never freed) for the next log_start_writer: a line
 * racing log_stop still finds a valid queue. */
static writer *g_idle;
/* A writer log_stop gave up on (its fd stalled); it still owns its state. */
static writer *g_abandoned;
static atomic_uint_fast64_t g_dropped[4];
/* log_hold_writer: the writer thread takes no lines while set (tests). */
static atomic_int g_hold;
/*
 * Held by every write to g_fd: the writer thread's and a helping caller's
 * batches (taken after drain) and a synchronous line (no writer thread:
 * at start and stop, when one may still be finishing its last batch).
 * A write to a pipe larger than its free room is not atomic (pipe(7)): it
 * waits part-way for the reader, and another writer's bytes would land in
 * the gap, tearing lines.  With this lock stdout has one writer at a time.
 * The relay's event lines are queued (log_write_lines), not written.
 */
static pthread_mutex_t g_out = PTHREAD_MUTEX_INITIALIZER;

static _Thread_local const char *t_request_id;
static _Thread_local const char *t_trace_id;

void log_setup(log_level min_level, int fd)
{
	g_min_level = min_level;
	g_fd = fd;
}

int log_enabled(log_level level)
{
	return level >= g_min_level;
}

uint64_t log_dropped(log_level level)
{
	return (unsigned)level < 4 ? atomic_load(&g_dropped[level]) : 0;
}

size_t log_queued(void)
{
	writer *w = atomic_load_explicit(&g_writer, memory_order_acquire);

	return w ? log_queue_used(w->q) : 0;
}

void log_request_begin(const char *request_id, const char *trace_id)
{
	t_request_id = request_id;
	t_trace_id = trace_id;
}

void log_request_end(void)
{
	t_request_id = t_trace_id = NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 0 once all is written; -1 on an error.  The caller holds g_out. */
static int write_all(int fd, const char *p, size_t left)
{
	while (left) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		left -= (size_t)n;
	}
	return 0;
}

static void format_line(buf *b, log_level level, const char *msg, const char *fields)
{
	buf_puts(b, "{\"time\":");
	buf_json_time(b, now_ms());
	buf_puts(b, ",\"level\":\"");
	buf_puts(b, log_level_name(level));
	buf_puts(b, "\",\"msg\":");
	buf_json_str(b, msg);
	if (t_request_id && *t_request_id) {
		buf_puts(b, ",\"request_id\":");
		buf_json_str(b, t_request_id);
	}
	if (t_trace_id && *t_trace_id) {
		buf_puts(b, ",\"trace_id\":");
		buf_json_str(b, t_trace_id);
	}
	if (fields)
		buf_puts(b, fields);
	buf_puts(b, "}\n");
}

static void sleep_ms(long ms);

static void wake(writer *w)
{
	/* pairs with the fence in wait_for_lines: either it sees our line or
	 * we see it sleeping */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&w->sleeping, memory_order_relaxed) &&
	    atomic_exchange(&w->sleeping, 0))
		sem_post(&w->wake);
}

static void report_drops(writer *w, size_t *len);

/*
 * One batch out: the pending drop report, then queued lines while they
 * fit in cap bytes (<= BATCH_BYTES), in one write.  The caller holds
 * drain, then g_out.  Returns the bytes written (0: nothing was queued).
 */
static size_t drain_batch(writer *w, size_t cap)
{
	size_t len = 0;

	report_drops(w, &len);
	while (log_queue_pop(w->q, w->batch, cap, &len) == 1)
		;
	if (len)
		(void)write_all(w->fd, w->batch, len);
	return len;
}

/* Pipe bytes free now, less PIPE_SLACK; 0 if unknown.  w->fd is a pipe
 * (w->pipe_bytes set). */
static size_t pipe_room(const writer *w)
{
	int unread = 0;

	if (ioctl(w->fd, FIONREAD, &unread) || unread < 0 ||
	    (size_t)unread + PIPE_SLACK >= w->pipe_bytes)
		return 0;
	return w->pipe_bytes - (size_t)unread - PIPE_SLACK;
}

/*
 * The queue is filling while the pipe has room: the writer thread is not
 * getting the CPU (on a saturated core it is one thread among many busy
 * request workers), not held back by stdout.  The caller then takes lines
 * and writes them itself, so lines are dropped only when stdout cannot
 * keep up (or a thread holding drain is preempted: the others do not wait
 * for it).  Never waits: drain and g_out are tried, not taken (a writer
 * thread blocked on a stalled pipe holds them), and each write is of
 * whole lines, at most PIPE_BUF bytes, made only when poll says the pipe
 * has a free slot (a page): such a write fits in one, so it cannot block
 * while g_out keeps every other writer out.  The byte count (FIONREAD)
 * alone cannot say that: a write goes into the last page only if its
 * tail fits there, so a pipe that refuses more may hold well under its
 * size (a line-at-a-time pipe here refused at 1,021,440 of 1,048,576
 * bytes, and a caller that trusted the count blocked in write for good,
 * holding g_out).  A request thread writes at most half the free room
 * the count shows, and leaves the rest to the writer thread; a line
 * longer than PIPE_BUF is left to it too.  Only for a pipe (stdout on
 * ECS): a regular file's write can wait on the disk.
 */
static void help_drain(writer *w)
{
	struct pollfd pfd = { .fd = w->fd, .events = POLLOUT };
	size_t budget, done = 0;

	if (!w->pipe_bytes || pthread_mutex_trylock(&w->drain))
		return;
	if (!pthread_mutex_trylock(&g_out)) {
		budget = pipe_room(w) / 2;
		if (budget < HELP_MIN_BYTES)
			budget = 0;
		while (done < budget &&
		       poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT)) {
			size_t len = 0;

			while (log_queue_pop(w->q, w->batch, PIPE_BUF, &len) == 1)
				;
			if (!len || write_all(w->fd, w->batch, len))
				break;
			done += len;
		}
		pthread_mutex_unlock(&g_out);
	}
	pthread_mutex_unlock(&w->drain);
}

static void enqueue(writer *w, log_level level, const char *line, size_t len)
{
	size_t cap = log_queue_cap(w->q);

	if (log_queue_used(w->q) >= cap / HELP_AT_DEN * HELP_AT_NUM)
		help_drain(w);
	if ((level < LOG_WARN && log_queue_used(w->q) >= cap / 4 * 3) ||
	    log_queue_push(w->q, line, len)) {
		atomic_fetch_add_explicit(&g_dropped[level], 1, memory_order_relaxed);
		return;
	}
	wake(w);
}

void log_write(log_level level, const char *msg, const char *fields)
{
	char stack[2048];
	writer *w;
	buf b;

	if (!log_enabled(level))
		return;
	buf_init_on(&b, stack, sizeof(stack), LINE_MAX_BYTES);
	format_line(&b, level, msg, fields);
	if (!b.failed) {
		w = atomic_load_explicit(&g_writer, memory_order_acquire);
		if (w) {
			enqueue(w, (unsigned)level < 4 ? level : LOG_INFO, b.data, b.len);
		} else {
			pthread_mutex_lock(&g_out);
			(void)write_all(g_fd, b.data, b.len);
			pthread_mutex_unlock(&g_out);
		}
	}
	buf_release(&b);
}

/*
 * Through the queue, as one entry, so the caller (the relay) never takes
 * g_out nor waits on the pipe.  It did until 2026-11-29: on one saturated
 * core the relay needs more CPU than its share among 64 busy workers and
 * waited 27-42 ms to run (perf sched, p90-p99), and when that happened
 * inside its write it held g_out, so the writer thread stood behind it
 * and request lines were dropped (issue 10).  It waits here instead,
 * holding nothing, while the queue is 3/4 full (the last quarter stays
 * for warn and error lines, as for request lines): a stalled stdout still
 * holds the relay back rather than losing events.
 */
int log_write_lines(const char *lines, size_t len)
{
	writer *w;
	int rc;

	while ((w = atomic_load_explicit(&g_writer, memory_order_acquire))) {
		size_t cap = log_queue_cap(w->q);

		if (log_queue_used(w->q) < cap / 4 * 3) {
			int pushed = log_queue_push(w->q, lines, len);

			if (pushed == 0) {
				wake(w);
				return 0;
			}
			if (pushed == LOG_QUEUE_NOMEM)
				return -1;
		}
		wake(w);
		sleep_ms(1);
	}
	pthread_mutex_lock(&g_out);
	rc = write_all(g_fd, lines, len);
	pthread_mutex_unlock(&g_out);
	return rc;
}

/* --- the writer thread -------------------------------------------------- */

static int drops_pending(const writer *w)
{
	for (int l = 0; l < 4; l++)
		if (atomic_load_explicit(&g_dropped[l], memory_order_relaxed) != w->reported[l])
			return 1;
	return 0;
}

/* The "log lines dropped" line, if any were dropped since the last one. */
static void report_drops(writer *w, size_t *len)
{
	uint64_t now[4];
	buf b;

	if (!drops_pending(w))
		return;
	buf_init_on(&b, w->batch + *len, BATCH_BYTES - *len, BATCH_BYTES - *len - 1);
	buf_puts(&b, "{\"time\":");
	buf_json_time(&b, now_ms());
	buf_puts(&b, ",\"level\":\"warn\",\"msg\":\"log lines dropped\",\"dropped\":{");
	for (int l = 0; l < 4; l++) {
		now[l] = atomic_load(&g_dropped[l]);
		buf_printf(&b, "%s\"%s\":%llu", l ? "," : "", log_level_name((log_level)l),
			   (unsigned long long)(now[l] - w->reported[l]));
	}
	buf_puts(&b, "}}\n");
	if (!b.failed && b.data == w->batch + *len) {
		*len += b.len;
		memcpy(w->reported, now, sizeof(now));
	}
	buf_release(&b);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void wait_for_lines(writer *w)
{
	struct timespec until;

	atomic_store(&w->sleeping, 1);
	atomic_thread_fence(memory_order_seq_cst);
	if (log_queue_used(w->q) || atomic_load(&w->stopping) || drops_pending(w)) {
		atomic_store(&w->sleeping, 0);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += IDLE_WAIT_MS * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	while (sem_timedwait(&w->wake, &until) && errno == EINTR)
		;
	atomic_store(&w->sleeping, 0);
}

static void *writer_main(void *arg)
{
	writer *w = arg;

	(void)pthread_setname_np(pthread_self(), "cart-log");
	/* Below the process by w->nice (Linux: nice applies per thread;
	 * relative, so a process started nicer stays as nice).  main gives 0:
	 * the process's priority, above the request workers (HTTP_WORKER_NICE).
	 * Until 2026-11-29 it ran 5 below the workers; on one saturated core
	 * it then got ~1/200 of the CPU among 64 busy workers, waited up to
	 * 400 ms to run, and ~20 % of the request lines were dropped while
	 * the pipe's reader kept up.  Worse, starved while holding drain, it
	 * kept callers from draining for it (help_drain).  At the process's
	 * priority, two cores: GETs 0.96 of the ceiling against 0.92 (one
	 * alternated run, docs/performance.md). */
	(void)app_thread_nicer(w->nice);

	for (;;) {
		int stopping = atomic_load(&w->stopping);
		size_t len;

		if (atomic_load_explicit(&g_hold, memory_order_relaxed) && !stopping) {
			sleep_ms(1);
			continue;
		}
		pthread_mutex_lock(&w->drain);
		pthread_mutex_lock(&g_out);
		len = drain_batch(w, BATCH_BYTES);
		pthread_mutex_unlock(&g_out);
		pthread_mutex_unlock(&w->drain);
		if (len) {
			/* A small batch: let lines gather (GATHER_MS), so a busy
			 * server costs ~200 writes and wake-ups a second, not one
			 * per line; the queue holds ~0.1 s of lines at 75k/s. */
			if (!stopping && len < BATCH_BYTES / 4)
				sleep_ms(GATHER_MS);
		} else if (stopping) {
			return NULL;
		} else {
			wait_for_lines(w);
		}
	}
}

static writer *writer_new(void)
{
	writer *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->batch = malloc(BATCH_BYTES);
	if (!w->batch || log_queue_new(&w->q, LOG_QUEUE_LINES)) {
		free(w->batch);
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->drain, NULL);
	return w;
}

/*
 * stdout is a pipe on ECS (the awslogs or FireLens driver reads it).  The
 * default 64 KiB holds ~6 ms of access lines at 40k requests/s: a reader
 * late by more blocks the writer and the queue starts dropping info lines
 * (make bench-logs saw 1,056 in one run).  1 MiB (Linux's default
 * pipe-max-size for an unprivileged process) holds ~100 ms.  Best effort:
 * a smaller limit or another kind of fd keeps what it has.
 */
static size_t grow_pipe(int fd)
{
	struct stat st;
	int got;

	if (fstat(fd, &st) || !S_ISFIFO(st.st_mode))
		return 0;
	(void)fcntl(fd, F_SETPIPE_SZ, LOG_PIPE_BYTES);
	got = fcntl(fd, F_GETPIPE_SZ);
	return got > 0 ? (size_t)got : 0;
}

int log_start_writer(int nice)
{
	writer *w = g_idle ? g_idle : writer_new();

	if (!w || atomic_load(&g_writer))
		return -1;
	g_idle = NULL;
	w->fd = g_fd;
	w->nice = nice;
	w->pipe_bytes = grow_pipe(w->fd);
	atomic_store(&w->sleeping, 0);
	atomic_store(&w->stopping, 0);
	for (int l = 0; l < 4; l++)
		w->reported[l] = atomic_load(&g_dropped[l]);
	if (sem_init(&w->wake, 0, 0)) {
		g_idle = w;
		return -1;
	}
	if (pthread_create(&w->thread, NULL, writer_main, w)) {
		sem_destroy(&w->wake);
		g_idle = w;
		return -1;
	}
	atomic_store_explicit(&g_writer, w, memory_order_release);
	return 0;
}

void log_hold_writer(int on)
{
	atomic_store(&g_hold, on);
}

int log_stop(void)
{
	writer *w = atomic_exchange(&g_writer, NULL);
	struct timespec until;

	if (!w)
		return 0;
	atomic_store(&w->stopping, 1);
	sem_post(&w->wake);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += LOG_STOP_WAIT_MS / 1000;
	until.tv_nsec += (LOG_STOP_WAIT_MS % 1000) * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	if (pthread_timedjoin_np(w->thread, NULL, &until)) {
		pthread_detach(w->thread);
		g_abandoned = w;
		return 1;
	}
	sem_destroy(&w->wake);
	g_idle = w;
	return 0;
}
