/*
 * The log writer (app/log.c, app/log_queue.c) and the adapters' escaping
 * field builder (adapters/aws/aws_log.c): no line lost or interleaved
 * across threads, a stalled stdout never stalls log_write, info dropped
 * before error and the drops reported, every value escaped.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <valgrind/valgrind.h>
#include <cjson/cJSON.h>

#include "aws/aws.h"
#include "buf.h"
#include "codec/event_json.h"
#include "log.h"
#include "log_queue.h"
#include "trace.h"
#include "unit/suites.h"

/* --- helpers ------------------------------------------------------------ */

typedef struct collected {
	int fd;
	char *data;
	size_t len, cap;
} collected;

/* Reads fd to EOF (a reader thread). */
static void *collect(void *arg)
{
	collected *c = arg;

	for (;;) {
		ssize_t n;

		if (c->cap - c->len < 65536) {
			c->cap = c->cap ? c->cap * 2 : 1 << 20;
			c->data = realloc(c->data, c->cap);
			ck_assert_ptr_nonnull(c->data);
		}
		n = read(c->fd, c->data + c->len, c->cap - c->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		c->len += (size_t)n;
	}
	c->data[c->len] = '\0';
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Calls fn on each line parsed as JSON (fails on a line that is not). */
typedef void (*line_fn)(const cJSON *line, void *ctx);

static size_t each_line(char *data, line_fn fn, void *ctx)
{
	size_t n = 0;
	char *save = NULL;

	for (char *l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		cJSON *j = cJSON_Parse(l);

		ck_assert_msg(j != NULL, "not JSON: %.200s", l);
		ck_assert(cJSON_IsString(cJSON_GetObjectItem(j, "msg")));
		ck_assert(cJSON_IsString(cJSON_GetObjectItem(j, "level")));
		fn(j, ctx);
		cJSON_Delete(j);
		n++;
	}
	return n;
}

/*
 * The pipe of the test running now, and its reader thread once started.
 * A test that fails halfway leaves them behind, and CK_FORK=no (make
 * valgrind) runs every test in one process: a writer blocked on a pipe
 * nobody reads holds the stdout lock, and the next test's log_write
 * waited for it forever (make check hung once, 2026-11-29).  teardown
 * unblocks the writer, stops it and joins the reader, which collects
 * into this static, not the failed test's stack.
 */
static struct {
	int fd[2];
	pthread_t reader;
	bool reading;
	collected got;
} t_pipe = { { -1, -1 }, 0, false, { -1, NULL, 0, 0 } };

static void open_pipe(int p[2])
{
	ck_assert_int_eq(pipe(p), 0);
	t_pipe.fd[0] = p[0];
	t_pipe.fd[1] = p[1];
}

static void start_reader(int fd)
{
	t_pipe.got = (collected){ fd, NULL, 0, 0 };
	ck_assert_int_eq(pthread_create(&t_pipe.reader, NULL, collect, &t_pipe.got), 0);
	t_pipe.reading = true;
}

/* Stops the writer, then ends the pipe: 0, or 1 when the writer did not
 * stop in time (log_stop).  Without a reader, the read end is closed
 * first, so a write waiting on the pipe fails (EPIPE) instead. */
static int close_pipe(void)
{
	int stopped;

	if (!t_pipe.reading && t_pipe.fd[0] >= 0) {
		close(t_pipe.fd[0]);
		t_pipe.fd[0] = -1;
	}
	stopped = log_stop();
	if (t_pipe.fd[1] >= 0)
		close(t_pipe.fd[1]);
	if (t_pipe.reading)
		pthread_join(t_pipe.reader, NULL);   /* it reads to EOF */
	if (t_pipe.fd[0] >= 0)
		close(t_pipe.fd[0]);
	t_pipe.fd[0] = t_pipe.fd[1] = -1;
	t_pipe.reading = false;
	return stopped;
}

/* A pipe with a reader thread collecting it, as the log's fd, and the
 * writer started; piped_finish stops the writer, joins the reader and
 * hands over what it read (the caller frees c->data). */
static void piped_start(int p[2])
{
	open_pipe(p);
	start_reader(p[0]);
	log_setup(LOG_INFO, p[1]);
	ck_assert_int_eq(log_start_writer(5), 0);
}

static void piped_finish(collected *c)
{
	int stopped = close_pipe();

	*c = t_pipe.got;
	t_pipe.got = (collected){ -1, NULL, 0, 0 };
	ck_assert_int_eq(stopped, 0);
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);   /* as the service does (app/main.c) */
	log_setup(LOG_DEBUG, 2);
}

static void teardown(void)
{
	log_hold_writer(0);
	close_pipe();
	free(t_pipe.got.data);   /* a failed test's */
	t_pipe.got = (collected){ -1, NULL, 0, 0 };
	log_request_end();
	log_setup(LOG_ERROR, 2);
}

/* --- the queue ---------------------------------------------------------- */

START_TEST(test_log_queue_fifo_bounded_and_long_lines)
{
	log_queue *q;
	char big[3000], out[8192];
	size_t len = 0;

	ck_assert_int_eq(log_queue_new(&q, 3), -1);
	ck_assert_int_eq(log_queue_new(&q, 4), 0);
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(log_queue_push(q, "a\n", 2), 0);
	ck_assert_int_eq(log_queue_push(q, big, sizeof(big)), 0);   /* on the heap */
	ck_assert_int_eq(log_queue_push(q, "c\n", 2), 0);
	ck_assert_int_eq(log_queue_push(q, "d\n", 2), 0);
	ck_assert_int_eq(log_queue_push(q, "e\n", 2), -1);          /* full */
	ck_assert_uint_eq(log_queue_used(q), 4);
	ck_assert_int_eq(log_queue_pop(q, out, sizeof(out), &len), 1);
	ck_assert_int_eq(log_queue_pop(q, out, 100, &len), -1);     /* does not fit */
	ck_assert_int_eq(log_queue_pop(q, out, sizeof(out), &len), 1);
	ck_assert_uint_eq(len, 2 + sizeof(big));
	ck_assert_int_eq(memcmp(out, "a\n", 2), 0);
	ck_assert_int_eq(out[2 + sizeof(big) - 1], 'x');
	ck_assert_int_eq(log_queue_push(q, "e\n", 2), 0);           /* room again */
	log_queue_free(q);                                          /* frees what is left */
	log_queue_free(NULL);
}
END_TEST

/*
 * Producers and the consumer on a ring small enough to be full most of the
 * time, so both of a producer's ways to know a cell is free run: the
 * consumer's published position (tail, published every 64 lines and when
 * it stops) and the cell's own seq.  Every line arrives once, each
 * producer's in order, and the count is exact once the consumer stops.
 */
enum { QP = 4, QLINES = 20000 };

struct qprod {
	log_queue *q;
	int id;
	long full;     /* pushes refused: the ring was full */
};

static void *queue_producer(void *arg)
{
	struct qprod *p = arg;
	char line[32];

	for (int i = 0; i < QLINES; i++) {
		int n = snprintf(line, sizeof(line), "%d %d\n", p->id, i);
		while (log_queue_push(p->q, line, (size_t)n)) {
			p->full++;
			sched_yield();
		}
	}
	return NULL;
}

START_TEST(test_log_queue_many_producers_one_consumer)
{
	log_queue *q;
	pthread_t t[QP];
	struct qprod p[QP];
	int next[QP] = { 0 };
	long got = 0, full = 0;
	char out[4096];

	ck_assert_int_eq(log_queue_new(&q, 128), 0);
	for (int i = 0; i < QP; i++) {
		p[i] = (struct qprod){ q, i, 0 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, queue_producer, &p[i]), 0);
	}
	while (got < (long)QP * QLINES) {
		size_t len = 0;
		int rc;

		while ((rc = log_queue_pop(q, out, sizeof(out) - 1, &len)) == 1)
			;
		ck_assert_int_ge(rc, 0);
		out[len] = '\0';   /* sscanf reads a string */
		for (char *l = out; l < out + len;) {
			char *nl = memchr(l, '\n', (size_t)(out + len - l));
			int id, i;

			ck_assert_ptr_nonnull(nl);
			ck_assert_int_eq(sscanf(l, "%d %d", &id, &i), 2);
			ck_assert(id >= 0 && id < QP);
			ck_assert_int_eq(i, next[id]);   /* once, in order */
			next[id]++;
			got++;
			l = nl + 1;
		}
		if (!len)
			sched_yield();
	}
	for (int i = 0; i < QP; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(next[i], QLINES);
		full += p[i].full;
	}
	ck_assert_uint_eq(log_queue_used(q), 0);   /* exact: pop returned 0 */
	ck_assert_int_gt(full, 0);                 /* the full path ran */
	log_queue_free(q);
}
END_TEST

/* The count producers see is exact after the consumer stops, also past
 * 64 lines and across a lap of the ring. */
START_TEST(test_log_queue_count_exact_after_a_drain)
{
	log_queue *q;
	char out[8192];
	size_t len;

	ck_assert_int_eq(log_queue_new(&q, 256), 0);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 200; i++)
			ck_assert_int_eq(log_queue_push(q, "x\n", 2), 0);
		ck_assert_uint_eq(log_queue_used(q), 200);
		len = 0;
		for (int i = 0; i < 70; i++)   /* past a publish, stopped short */
			ck_assert_int_eq(log_queue_pop(q, out, sizeof(out), &len), 1);
		ck_assert_int_eq(log_queue_pop(q, out, 2 * 70 + 1, &len), -1);
		ck_assert_uint_eq(log_queue_used(q), 130);
		for (int i = 0; i < 126; i++)   /* 256 queued: full */
			ck_assert_int_eq(log_queue_push(q, "x\n", 2), 0);
		ck_assert_int_eq(log_queue_push(q, "x\n", 2), -1);   /* full */
		len = 0;
		while (log_queue_pop(q, out, sizeof(out), &len) == 1)
			;
		ck_assert_uint_eq(len, 2 * 256);
		ck_assert_uint_eq(log_queue_used(q), 0);
	}
	log_queue_free(q);
}
END_TEST

/* --- many threads ------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 350   /* 2800 lines: under 3/4 of the queue, so none may drop */

static void *writer_thread(void *arg)
{
	long t = (long)(intptr_t)arg;
	char fields[4200], pad[3100];

	for (int i = 0; i < PER_THREAD; i++) {
		/* every 50th line is long (kept on the heap by the queue) */
		size_t n = i % 50 == 7 ? 3000 : (size_t)(i % 200);

		memset(pad, 'a' + (int)(t % 26), n);
		pad[n] = '\0';
		snprintf(fields, sizeof(fields), ",\"t\":%ld,\"i\":%d,\"pad\":\"%s\"", t, i, pad);
		log_write(i % 3 ? LOG_INFO : LOG_WARN, "concurrent", fields);
	}
	return NULL;
}

typedef struct seen_lines {
	unsigned char seen[THREADS][PER_THREAD];
	int next[THREADS];
	bool in_order;
} seen_lines;

static void check_concurrent(const cJSON *j, void *ctx)
{
	seen_lines *s = ctx;
	int t = cJSON_GetObjectItem(j, "t")->valueint;
	int i = cJSON_GetObjectItem(j, "i")->valueint;
	const char *pad = cJSON_GetObjectItem(j, "pad")->valuestring;

	ck_assert(t >= 0 && t < THREADS && i >= 0 && i < PER_THREAD);
	ck_assert_uint_eq(strlen(pad), i % 50 == 7 ? 3000 : (size_t)(i % 200));
	ck_assert_int_eq(s->seen[t][i]++, 0);
	if (i != s->next[t])
		s->in_order = false;
	s->next[t] = i + 1;
}

START_TEST(test_log_concurrent_writers_lose_nothing_and_never_interleave)
{
	static seen_lines s;
	collected c = { 0 };
	pthread_t th[THREADS];
	uint64_t dropped = log_dropped(LOG_INFO) + log_dropped(LOG_WARN);
	int p[2];

	memset(&s, 0, sizeof(s));
	s.in_order = true;
	piped_start(p);
	for (long t = 0; t < THREADS; t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, writer_thread, (void *)(intptr_t)t), 0);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	piped_finish(&c);
	ck_assert_uint_eq(log_dropped(LOG_INFO) + log_dropped(LOG_WARN), dropped);
	ck_assert_uint_eq(each_line(c.data, check_concurrent, &s), THREADS * PER_THREAD);
	ck_assert(s.in_order);   /* one thread's lines keep their order */
	free(c.data);
}
END_TEST

/* --- a stalled stdout --------------------------------------------------- */

typedef struct stall_seen {
	int info, error, dropped_lines;
	long long dropped_info, dropped_error;
	int errors_before_report;  /* error lines after the writer could write again */
} stall_seen;

static void check_stalled(const cJSON *j, void *ctx)
{
	stall_seen *s = ctx;
	const char *msg = cJSON_GetObjectItem(j, "msg")->valuestring;

	if (!strcmp(msg, "stalled info")) {
		s->info++;
	} else if (!strcmp(msg, "stalled error")) {
		s->error++;
		if (!s->dropped_lines)
			s->errors_before_report++;
	} else if (!strcmp(msg, "log lines dropped")) {
		const cJSON *d = cJSON_GetObjectItem(j, "dropped");

		ck_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "warn");
		ck_assert(cJSON_IsObject(d));
		s->dropped_lines++;
		s->dropped_info += (long long)cJSON_GetObjectItem(d, "info")->valuedouble;
		s->dropped_error += (long long)cJSON_GetObjectItem(d, "error")->valuedouble;
		ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(d, "debug")));
		ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(d, "warn")));
	}
}

/*
 * Joins t if it ends within bound seconds; else detaches it and returns
 * false (teardown unblocks a thread left waiting on the test's pipe).
 */
static bool joined_within(pthread_t t, double bound)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)bound;
	if (pthread_timedjoin_np(t, NULL, &until)) {
		pthread_detach(t);
		return false;
	}
	return true;
}

enum { STALLED_INFOS = 20000, STALLED_ERRORS = 500 };

static void *stalled_writes(void *arg)
{
	(void)arg;
	for (int i = 0; i < STALLED_INFOS; i++)
		log_write(LOG_INFO, "stalled info", ",\"pad\":\"................................................................\"");
	for (int i = 0; i < STALLED_ERRORS; i++)
		log_write(LOG_ERROR, "stalled error", NULL);
	return NULL;
}

START_TEST(test_log_stalled_stdout_drops_info_first_and_reports)
{
	uint64_t info0 = log_dropped(LOG_INFO), err0 = log_dropped(LOG_ERROR);
	/* a generous bound: the point is that nothing waited for the pipe,
	 * which nobody reads yet (a log_write that waited would never end) */
	const double bound = RUNNING_ON_VALGRIND ? 60.0 : 5.0;
	stall_seen s = { 0 };
	collected c = { 0 };
	pthread_t writes;
	int p[2];

	open_pipe(p);   /* blocking, and nobody reads yet */
	log_setup(LOG_INFO, p[1]);
	ck_assert_int_eq(log_start_writer(5), 0);
	ck_assert_int_eq(pthread_create(&writes, NULL, stalled_writes, NULL), 0);
	if (!joined_within(writes, bound))
		ck_abort_msg("log_write blocked: not done in %.0f s", bound);
	ck_assert_uint_gt(log_dropped(LOG_INFO) - info0, 0);
	ck_assert_uint_eq(log_dropped(LOG_ERROR) - err0, 0);   /* room kept for them */

	start_reader(p[0]);   /* the reader comes back */
	piped_finish(&c);
	each_line(c.data, check_stalled, &s);
	ck_assert_int_eq(s.error, STALLED_ERRORS);
	ck_assert_int_eq(s.info + s.dropped_info, STALLED_INFOS);
	ck_assert_int_ge(s.dropped_lines, 1);
	ck_assert_int_eq(s.dropped_info, (long long)(log_dropped(LOG_INFO) - info0));
	ck_assert_int_eq(s.dropped_error, 0);
	/* errors were queued behind the drops, so they come after the report */
	ck_assert_int_eq(s.errors_before_report, 0);
	free(c.data);
}
END_TEST

/*
 * The relay's blocks (log_write_lines) are queued as whole entries in
 * their place among the other lines.  Until 2026-11-29 the caller wrote
 * them itself under the stdout lock, ahead of the lines already queued
 * (this test failed: the events came before the "before" lines), and a
 * relay preempted inside that write held up the writer thread.
 */
enum { RELAY_BLOCKS = 50 };

typedef struct relay_run {
	atomic_int done;      /* blocks whose call has returned */
	atomic_int failed;
} relay_run;

static void *relay_blocks(void *arg)
{
	relay_run *r = arg;
	char block[256];

	for (int k = 0; k < RELAY_BLOCKS; k++) {
		int n = snprintf(block, sizeof(block),
				 "{\"level\":\"info\",\"msg\":\"event\",\"k\":%d,\"j\":0}\n"
				 "{\"level\":\"info\",\"msg\":\"event\",\"k\":%d,\"j\":1}\n", k, k);
		if (log_write_lines(block, (size_t)n))
			atomic_fetch_add(&r->failed, 1);
		atomic_fetch_add(&r->done, 1);
	}
	return NULL;
}

typedef struct order_seen {
	int before, after, events, errors, next_k, next_j;
	bool event_seen, event_before_marker, marker_before_events, torn;
} order_seen;

static void check_order(const cJSON *j, void *ctx)
{
	order_seen *s = ctx;
	const char *msg = cJSON_GetObjectItem(j, "msg")->valuestring;

	if (!strcmp(msg, "event")) {
		int k = cJSON_GetObjectItem(j, "k")->valueint;
		int jj = cJSON_GetObjectItem(j, "j")->valueint;

		if (k != s->next_k || jj != s->next_j)
			s->torn = true;
		s->next_k = jj ? k + 1 : k;
		s->next_j = !jj;
		s->events++;
		s->event_seen = true;
	} else if (!strcmp(msg, "before")) {
		s->before++;
		if (s->event_seen)
			s->event_before_marker = true;
	} else if (!strcmp(msg, "while waiting")) {
		s->errors++;
	} else if (!strcmp(msg, "after")) {
		s->after++;
		if (s->events != 2 * RELAY_BLOCKS)
			s->marker_before_events = true;
	}
}

START_TEST(test_log_relay_blocks_queue_in_place)
{
	order_seen s = { 0 };
	relay_run r = { 0 };
	collected c = { 0 };
	int p[2];

	piped_start(p);
	log_hold_writer(1);   /* queued lines stay queued; the pipe has room */
	for (int i = 0; i < 100; i++)
		log_write(LOG_INFO, "before", NULL);
	relay_blocks(&r);     /* returns: the queue has room */
	ck_assert_int_eq(atomic_load(&r.done), RELAY_BLOCKS);
	ck_assert_int_eq(atomic_load(&r.failed), 0);
	log_write(LOG_INFO, "after", NULL);
	log_hold_writer(0);
	piped_finish(&c);
	each_line(c.data, check_order, &s);
	ck_assert_int_eq(s.before, 100);
	ck_assert_int_eq(s.events, 2 * RELAY_BLOCKS);
	ck_assert(!s.torn);
	ck_assert(!s.event_before_marker);
	ck_assert(!s.marker_before_events);
	ck_assert_int_eq(s.after, 1);
	free(c.data);
}
END_TEST

#define BEFORE_PAD ",\"pad\":\"................................................................................................................................................................\""

/*
 * Fills the pipe (write end wr, nobody reading) with whole JSON lines the
 * checks ignore, until the next one does not fit.  Each line is shorter
 * than PIPE_BUF, so a non-blocking write takes it whole or not at all.
 * Counting on the writer to fill the pipe was not enough: valgrind runs
 * one thread at a time and the writer might not have run yet, and a pipe
 * that refuses more can hold well under its size (the kernel merges a
 * write into the last page only if the write's tail fits there).
 */
static void fill_pipe(int wr)
{
	static const char line[] = "{\"level\":\"info\",\"msg\":\"fill\"" BEFORE_PAD "}\n";
	int fl = fcntl(wr, F_GETFL);

	ck_assert_int_eq(fcntl(wr, F_SETFL, fl | O_NONBLOCK), 0);
	while (write(wr, line, sizeof(line) - 1) == (ssize_t)sizeof(line) - 1)
		;
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(fcntl(wr, F_SETFL, fl), 0);
}

/*
 * On a stalled stdout the relay's blocks are not dropped: while the queue
 * is 3/4 full the caller waits, holding nothing (error lines still go
 * into the queue meanwhile), and every block is written once the reader
 * is back, after the lines queued before it.
 */
START_TEST(test_log_relay_blocks_wait_for_room)
{
	uint64_t err0 = log_dropped(LOG_ERROR);
	static relay_run r;   /* outlives a failed test: teardown lets the relay finish */
	order_seen s = { 0 };
	collected c = { 0 };
	pthread_t relay;
	int p[2];

	open_pipe(p);   /* blocking, and nobody reads yet */
	log_setup(LOG_INFO, p[1]);
	ck_assert_int_eq(log_start_writer(5), 0);   /* grows the pipe */
	fill_pipe(p[1]);
	/* error lines are never dropped for room: they fill the queue past
	 * 3/4, all of them kept until it is full.  The writer's first write
	 * (one batch, ~500 of them, whenever it runs) waits on the pipe. */
	for (int i = 0; i < 3 * LOG_QUEUE_LINES; i++)
		log_write(LOG_ERROR, "before", BEFORE_PAD);
	/* the premise: nothing reads the pipe, so the queue stays full */
	ck_assert_msg(log_queued() >= LOG_QUEUE_LINES / 4 * 3,
		      "the queue drained without a reader: %zu lines queued", log_queued());
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(pthread_create(&relay, NULL, relay_blocks, &r), 0);
	usleep(200 * 1000);
	if (atomic_load(&r.done)) {   /* say what the queue and the pipe held */
		int unread = -1;

		(void)ioctl(p[0], FIONREAD, &unread);
		ck_abort_msg("the relay did not wait: %d blocks in; %zu lines queued; pipe %d "
			     "of %d bytes unread, %llu error lines dropped, %d failed",
			     atomic_load(&r.done), log_queued(), unread,
			     fcntl(p[1], F_GETPIPE_SZ),
			     (unsigned long long)(log_dropped(LOG_ERROR) - err0),
			     atomic_load(&r.failed));
	}
	for (int i = 0; i < 10; i++)                 /* nothing held meanwhile */
		log_write(LOG_ERROR, "while waiting", NULL);

	start_reader(p[0]);             /* the reader comes back */
	pthread_join(relay, NULL);
	ck_assert_int_eq(atomic_load(&r.failed), 0);
	log_write(LOG_ERROR, "after", NULL);
	piped_finish(&c);
	each_line(c.data, check_order, &s);
	ck_assert_int_eq(s.events, 2 * RELAY_BLOCKS);
	ck_assert(!s.torn);                          /* whole blocks, in order */
	ck_assert(!s.event_before_marker);           /* after what was queued */
	ck_assert(!s.marker_before_events);          /* before what came after */
	ck_assert_int_eq(s.after, 1);
	ck_assert_int_eq(s.errors + s.before + (int)(log_dropped(LOG_ERROR) - err0),
			 10 + 3 * LOG_QUEUE_LINES);
	free(c.data);
}
END_TEST

/*
 * A caller that drains for a starved writer never waits on the pipe,
 * even one whose pages are partly filled: by its byte count such a pipe
 * has room, but it refuses the next write.  Before 2026-11-29 the caller
 * trusted the count, wrote ~10 KB, and blocked for good holding the
 * stdout lock (found under valgrind by the relay-wait test's fill_pipe).
 */
static void *held_writes(void *arg)
{
	(void)arg;
	for (int i = 0; i < LOG_QUEUE_LINES; i++)
		log_write(LOG_INFO, "held", BEFORE_PAD);
	return NULL;
}

START_TEST(test_log_callers_never_block_on_a_pipe_full_of_partial_pages)
{
	const double bound = RUNNING_ON_VALGRIND ? 60.0 : 5.0;
	uint64_t info0 = log_dropped(LOG_INFO);
	pthread_t writes;
	int p[2], unread = 0, size;

	open_pipe(p);   /* blocking, and nobody reads yet */
	log_setup(LOG_INFO, p[1]);
	ck_assert_int_eq(log_start_writer(5), 0);
	fill_pipe(p[1]);
	/* the premise: the count shows room a caller would help into (app/log.c:
	 * half of it, less PIPE_SLACK 8 KiB, is at least HELP_MIN_BYTES 8 KiB) */
	size = fcntl(p[1], F_GETPIPE_SZ);
	ck_assert_int_eq(ioctl(p[0], FIONREAD, &unread), 0);
	ck_assert_msg(size - unread >= 3 * 8192, "the pipe shows only %d bytes free",
		      size - unread);
	log_hold_writer(1);   /* the writer thread takes nothing: callers drain */
	ck_assert_int_eq(pthread_create(&writes, NULL, held_writes, NULL), 0);
	if (!joined_within(writes, bound))
		ck_abort_msg("log_write blocked on the pipe: not done in %.0f s", bound);
	/* nothing could go out: the queue filled to 3/4, then info dropped */
	ck_assert_uint_eq(log_dropped(LOG_INFO) - info0,
			  LOG_QUEUE_LINES - LOG_QUEUE_LINES / 4 * 3);
}
END_TEST

/*
 * A writer thread that gets no CPU (one thread among the busy request
 * workers of a saturated core, and nicer than them: on one core at full
 * load the service dropped ~20 % of its request lines while the pipe's
 * reader kept up) costs no line when stdout is a pipe with room: callers
 * write batches themselves, in order.
 */
typedef struct seq_seen {
	int next, lines;
	bool in_order;
} seq_seen;

static void check_seq(const cJSON *j, void *ctx)
{
	seq_seen *s = ctx;
	const cJSON *i = cJSON_GetObjectItem(j, "i");

	if (!i)
		return;   /* not one of ours */
	if (i->valueint != s->next)
		s->in_order = false;
	s->next = i->valueint + 1;
	s->lines++;
}

/* A queue and a quarter, ~0.86 MB: more than the queue holds, less than
 * the (grown, 1 MiB) pipe, so the result does not depend on when the
 * reader runs (the test checks that).  Two queues' worth was that until
 * the queue doubled (fd5c7d0); then a reader starved by a busy machine
 * let the pipe fill and lines were dropped. */
#define STARVED_LINES (LOG_QUEUE_LINES + LOG_QUEUE_LINES / 4)

START_TEST(test_log_starved_writer_callers_drain_into_a_pipe)
{
	uint64_t info0 = log_dropped(LOG_INFO);
	seq_seen s = { 0, 0, true };
	collected c = { 0 };
	char fields[64];
	int p[2], pipe_bytes;

	piped_start(p);
	pipe_bytes = fcntl(p[1], F_GETPIPE_SZ);
	log_hold_writer(1);
	for (int i = 0; i < STARVED_LINES; i++) {
		snprintf(fields, sizeof(fields), ",\"i\":%d", i);
		log_write(LOG_INFO, "starved writer", fields);
	}
	/* two queues' worth went through while the writer took nothing */
	ck_assert_uint_eq(log_dropped(LOG_INFO) - info0, 0);
	log_hold_writer(0);
	piped_finish(&c);
	/* the premise: all of it fits the pipe, less what callers leave */
	ck_assert_msg(c.len + 24 * 1024 < (size_t)pipe_bytes, "%zu bytes of lines, pipe %d",
		      c.len, pipe_bytes);
	each_line(c.data, check_seq, &s);
	ck_assert_int_eq(s.lines, STARVED_LINES);
	ck_assert(s.in_order);
	free(c.data);
}
END_TEST

/* Many callers draining for a held writer: each takes the drain in turn
 * (a try-lock).  No line is cut into another or written twice, one
 * thread's lines keep their order, and a line not written was counted
 * as dropped.  How many are dropped depends on the machine's load: a
 * caller preempted while it holds the drain keeps the others from
 * draining (they never wait for it), and these callers do nothing but
 * log (with both cores busy elsewhere, 0-12,158 of 16,800). */
#define ROUND_LINES (6 * PER_THREAD)   /* per thread; 8 threads: over four queues */

static void *round_thread(void *arg)
{
	long t = (long)(intptr_t)arg;
	char fields[64];

	for (int k = 0; k < ROUND_LINES; k++) {
		snprintf(fields, sizeof(fields), ",\"t\":%ld,\"k\":%d", t, k);
		log_write(LOG_INFO, "many callers", fields);
	}
	return NULL;
}

typedef struct rounds_seen {
	int last[THREADS], lines;
	long long reported;
	bool in_order;
} rounds_seen;

static void check_rounds(const cJSON *j, void *ctx)
{
	rounds_seen *s = ctx;
	const cJSON *t = cJSON_GetObjectItem(j, "t"), *k = cJSON_GetObjectItem(j, "k");

	if (!t) {   /* the drops report */
		const cJSON *d = cJSON_GetObjectItem(j, "dropped");

		ck_assert_ptr_nonnull(d);
		s->reported += (long long)cJSON_GetObjectItem(d, "info")->valuedouble;
		return;
	}
	ck_assert(t->valueint >= 0 && t->valueint < THREADS);
	if (k->valueint <= s->last[t->valueint])
		s->in_order = false;
	s->last[t->valueint] = k->valueint;
	s->lines++;
}

START_TEST(test_log_starved_writer_many_callers_lose_nothing_silently)
{
	rounds_seen s = { .in_order = true };
	collected c = { 0 };
	pthread_t th[THREADS];
	uint64_t info0 = log_dropped(LOG_INFO), dropped;
	int p[2];

	for (int t = 0; t < THREADS; t++)
		s.last[t] = -1;
	piped_start(p);
	log_hold_writer(1);
	for (long t = 0; t < THREADS; t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, round_thread, (void *)(intptr_t)t), 0);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	dropped = log_dropped(LOG_INFO) - info0;
	log_hold_writer(0);
	piped_finish(&c);
	each_line(c.data, check_rounds, &s);
	ck_assert(s.in_order);
	ck_assert_int_eq((long long)s.lines + (long long)dropped, THREADS * ROUND_LINES);
	ck_assert_int_eq(s.reported, (long long)dropped);
	free(c.data);
}
END_TEST

/* Not a pipe (a file: its write may wait on the disk): callers never
 * write, and a starved writer's queue drops info lines past 3/4. */
START_TEST(test_log_starved_writer_file_drops_not_waits)
{
	uint64_t info0 = log_dropped(LOG_INFO);
	FILE *f = tmpfile();
	long size;

	ck_assert_ptr_nonnull(f);
	log_setup(LOG_INFO, fileno(f));
	ck_assert_int_eq(log_start_writer(5), 0);
	log_hold_writer(1);
	for (int i = 0; i < LOG_QUEUE_LINES; i++)
		log_write(LOG_INFO, "starved writer", NULL);
	ck_assert_int_eq(lseek(fileno(f), 0, SEEK_END), 0);   /* nothing written yet */
	ck_assert_uint_eq(log_dropped(LOG_INFO) - info0, LOG_QUEUE_LINES / 4);
	log_hold_writer(0);
	ck_assert_int_eq(log_stop(), 0);
	size = lseek(fileno(f), 0, SEEK_END);
	ck_assert_int_gt(size, 0);
	fclose(f);
}
END_TEST

/* The writer asks for LOG_PIPE_BYTES of pipe when stdout is a pipe (as on
 * ECS), so a reader late by ~100 ms costs no line; a file is left alone. */
START_TEST(test_log_writer_grows_a_pipe)
{
	long max = 0;
	FILE *f = fopen("/proc/sys/fs/pipe-max-size", "r");
	int p[2], before;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%ld", &max), 1);
	fclose(f);
	ck_assert_int_eq(pipe(p), 0);
	before = fcntl(p[1], F_GETPIPE_SZ);
	ck_assert_int_lt(before, LOG_PIPE_BYTES);
	log_setup(LOG_INFO, p[1]);
	ck_assert_int_eq(log_start_writer(5), 0);
	if (max >= LOG_PIPE_BYTES || getuid() == 0)
		ck_assert_int_eq(fcntl(p[1], F_GETPIPE_SZ), LOG_PIPE_BYTES);
	else
		ck_assert_int_eq(fcntl(p[1], F_GETPIPE_SZ), before);
	ck_assert_int_eq(log_stop(), 0);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(test_log_stop_gives_up_on_a_stalled_fd)
{
	int p[2];
	double t0;

	ck_assert_int_eq(pipe(p), 0);
	log_setup(LOG_INFO, p[1]);
	ck_assert_int_eq(log_start_writer(5), 0);
	/* fill the (grown) pipe first, so the writer's first write blocks */
	{
		static const char fill[4096];
		int fl = fcntl(p[1], F_GETFL);

		ck_assert_int_eq(fcntl(p[1], F_SETFL, fl | O_NONBLOCK), 0);
		while (write(p[1], fill, sizeof(fill)) > 0)
			;
		ck_assert_int_eq(errno, EAGAIN);
		ck_assert_int_eq(fcntl(p[1], F_SETFL, fl), 0);
	}
	for (int i = 0; i < 5000; i++)
		log_write(LOG_ERROR, "never read", ",\"pad\":\"................................................................\"");
	t0 = now_s();
	ck_assert_int_eq(log_stop(), 1);
	ck_assert_msg(now_s() - t0 < LOG_STOP_WAIT_MS / 1000.0 + 2.0, "log_stop not bounded");
	/* synchronous again: with the pipe full a write would block, so test
	 * the mode through another fd */
	log_setup(LOG_INFO, 2);
	/* the abandoned writer keeps its pipe: leak it on purpose (fork mode) */
}
END_TEST

/* --- request context ---------------------------------------------------- */

/* One synchronous line written to a pipe, parsed. */
static cJSON *one_line(log_level level, const char *msg, const char *fields)
{
	char line[4096];
	ssize_t n;
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	log_setup(LOG_DEBUG, p[1]);
	log_write(level, msg, fields);
	close(p[1]);
	n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	ck_assert_int_gt(n, 0);
	line[n] = '\0';
	ck_assert_int_eq(line[n - 1], '\n');
	ck_assert_ptr_eq(strchr(line, '\n'), line + n - 1);
	return cJSON_Parse(line);
}

START_TEST(test_log_lines_of_a_request_carry_its_ids)
{
	char trace[40] = "";
	cJSON *j;

	log_request_begin("req-1", trace);
	j = one_line(LOG_WARN, "in request", ",\"k\":1");
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "request_id")->valuestring, "req-1");
	ck_assert_ptr_null(cJSON_GetObjectItem(j, "trace_id"));   /* empty: left out */
	ck_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "warn");
	ck_assert_int_eq(cJSON_GetObjectItem(j, "k")->valueint, 1);
	cJSON_Delete(j);

	snprintf(trace, sizeof(trace), "1-5759e988-bd862e3fe1be46a994272793");
	j = one_line(LOG_DEBUG, "later", NULL);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "trace_id")->valuestring, trace);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "debug");
	cJSON_Delete(j);

	log_request_end();
	j = one_line(LOG_ERROR, "after", NULL);
	ck_assert_ptr_null(cJSON_GetObjectItem(j, "request_id"));
	ck_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "error");
	cJSON_Delete(j);
}
END_TEST

/* --- escaping ----------------------------------------------------------- */

static const char nasty[] =
	"The \"table\" C:\\path is\nmissing\r\t\x01\x1f end \xc3\xa9\xe2\x82\xac";

START_TEST(test_log_aws_json_str_escapes_everything)
{
	char out[256];
	cJSON *j;
	size_t n = cart_aws_json_str(out, sizeof(out), nasty, 0);

	ck_assert_uint_eq(n, strlen(out));
	j = cJSON_Parse(out);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(j->valuestring, nasty);
	cJSON_Delete(j);

	/* a cut never splits an escape or a UTF-8 sequence */
	for (size_t cap = 3; cap < sizeof(out); cap++) {
		for (size_t max = 0; max < 3; max++) {
			n = cart_aws_json_str(out, cap, nasty, max ? strlen(nasty) - max : 0);
			ck_assert_uint_lt(n, cap);
			j = cJSON_Parse(out);
			ck_assert_msg(j && cJSON_IsString(j), "cap %zu: %s", cap, out);
			ck_assert_int_eq(strncmp(j->valuestring, nasty, strlen(j->valuestring)), 0);
			cJSON_Delete(j);
		}
	}
	ck_assert_uint_eq(cart_aws_json_str(out, 2, nasty, 0), 0);
}
END_TEST

static void capture_line(void *ctx, int level, const char *msg, const char *fields)
{
	cJSON **out = ctx;

	*out = one_line((log_level)level, msg, fields);
}

START_TEST(test_log_aws_fields_make_valid_lines)
{
	cJSON *j = NULL;
	cart_aws_log log = { capture_line, &j };
	cart_aws_fields f;
	char huge[3000];

	memset(huge, '"', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	cart_aws_fields_init(&f);
	cart_aws_fields_str(&f, "detail", nasty, 0);
	cart_aws_fields_str(&f, "user_id", "u\"1\\", 0);
	cart_aws_fields_int(&f, "status", 400);
	cart_aws_fields_bool(&f, "permanent", true);
	cart_aws_fields_str(&f, "none", NULL, 0);
	cart_aws_fields_str(&f, "huge", huge, 0);       /* cut to the room left */
	cart_aws_fields_int(&f, "after", 1);            /* no room: left out */
	cart_aws_log_write(&log, CART_AWS_LOG_WARN, "dynamodb request failed", &f);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "detail")->valuestring, nasty);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "user_id")->valuestring, "u\"1\\");
	ck_assert_int_eq(cJSON_GetObjectItem(j, "status")->valueint, 400);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "permanent")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "none")));
	ck_assert(cJSON_IsString(cJSON_GetObjectItem(j, "huge")));
	ck_assert_ptr_null(cJSON_GetObjectItem(j, "after"));
	ck_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "warn");
	cJSON_Delete(j);
	cart_aws_log_write(NULL, CART_AWS_LOG_WARN, "nowhere", &f);   /* no logger: nothing */
}
END_TEST

/* --- numbers and times without printf (issue 10) -------------------------- */

/* cart_rfc3339 against gmtime_r + snprintf, the libc path it replaced. */
START_TEST(test_log_rfc3339_matches_libc)
{
	static const int64_t fixed[] = {
		0, 1, 999, 1000, 86399999, 86400000, 951782400000LL /* 2000-02-29 */,
		951868799999LL, 4107542400000LL /* 2100-03-01 */, 1795789651238LL,
		253402300799999LL /* 9999-12-31T23:59:59.999 */, 68256000000LL,
	};
	uint64_t x = 88172645463325252ULL;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + 20000; i++) {
		int64_t ms;
		char got[64], want[64];
		time_t sec;
		struct tm tm;

		if (i < sizeof(fixed) / sizeof(fixed[0])) {
			ms = fixed[i];
		} else {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			ms = (int64_t)(x % 253402300800000ULL);
		}
		cart_rfc3339(got, sizeof(got), ms);
		sec = (time_t)(ms / 1000);
		gmtime_r(&sec, &tm);
		snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
		ck_assert_str_eq(got, want);
	}
}
END_TEST

/* buf_json_time (which keeps the last day's date per thread) writes what
 * cart_rfc3339 writes, on a day change, within a day and past 9999. */
START_TEST(test_log_buf_json_time_matches_rfc3339)
{
	static const int64_t fixed[] = {
		1, 86399999, 86400000, 86400001, 86399999, 1795789651238LL,
		1795789651239LL, 1795795199999LL /* 23:59:59.999 */, 1795795200000LL,
		253402300799999LL, 253402300800000LL /* year 10000 */, 253402300799998LL,
		951782400000LL, 951782400000LL + 3600000, 951782400000LL - 1,
	};
	uint64_t x = 88172645463325252ULL;
	int64_t base = 1795789651238LL;
	char want[100], got[80];
	buf b;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + 20000; i++) {
		int64_t ms;

		if (i < sizeof(fixed) / sizeof(fixed[0])) {
			ms = fixed[i];
		} else {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* half within two days of base (the kept day hits), half anywhere */
			ms = (i & 1) ? base + (int64_t)(x % 172800000ULL)
				     : 1 + (int64_t)(x % 253402300800000ULL);
		}
		buf_init(&b, 128);
		buf_puts(&b, "t=");
		buf_json_time(&b, ms);
		cart_rfc3339(got, sizeof(got), ms);
		snprintf(want, sizeof(want), "t=\"%s\"", got);
		ck_assert_str_eq(b.data, want);
		ck_assert_uint_eq(b.len, strlen(want));
		buf_release(&b);
	}
	buf_init(&b, 16);
	buf_json_time(&b, 0);
	ck_assert_str_eq(b.data, "null");
	buf_release(&b);
	{
		char room[27];

		buf_init_on(&b, room, 26, 25);   /* 26 bytes and the NUL needed */
		buf_json_time(&b, base);
		ck_assert(b.failed);
		buf_init_on(&b, room, 27, 26);
		buf_json_time(&b, base);
		ck_assert(!b.failed);
		ck_assert_uint_eq(b.len, 26);
	}
}
END_TEST

START_TEST(test_log_numbers_without_printf)
{
	static const int64_t v[] = { 0, 7, -7, 10, 99, 100, 1234567890123LL,
				     INT64_MAX, INT64_MIN };
	char want[64];
	buf b;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		buf_init(&b, 64);
		buf_json_i64(&b, v[i]);
		snprintf(want, sizeof(want), "%lld", (long long)v[i]);
		ck_assert_str_eq(b.data, want);
		buf_release(&b);
	}
	buf_init(&b, 64);
	buf_put_u64(&b, UINT64_MAX);
	ck_assert_str_eq(b.data, "18446744073709551615");
	buf_release(&b);
	/* durations: ns -> ms with 3 decimals, rounded to the microsecond */
	static const struct { int64_t ns; const char *ms; } d[] = {
		{ 0, "0.000" }, { -5, "0.000" }, { 499, "0.000" }, { 500, "0.001" },
		{ 1000, "0.001" }, { 202345, "0.202" }, { 1234567, "1.235" },
		{ 12000000, "12.000" }, { 10000000000LL, "10000.000" },
	};
	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		buf_init(&b, 64);
		buf_put_ms3(&b, d[i].ns);
		ck_assert_str_eq(b.data, d[i].ms);
		buf_release(&b);
	}
}
END_TEST


/* The reference: one byte at a time, as RFC 8259 section 7 says. */
static void json_str_slow(char *out, const char *s)
{
	*out++ = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			out += sprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			out += sprintf(out, "\\u%04x", ch);
		else
			*out++ = (char)ch;
	}
	strcpy(out, "\"");
}

/* buf_json_str's one-copy path (nothing to escape) and its escaping path
 * give the reference's bytes, for every byte value at every position. */
START_TEST(test_log_buf_json_str_matches_reference)
{
	static const char *fixed[] = { "", "a", "GET", "/v1/cart/{userID}",
				       "q\"uote", "back\\slash", "tab\tnl\n",
				       "\x01\x1f\x7f\xc3\xa9", "\"\"\"", "end\\" };
	char in[8], want[64];
	buf b;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		buf_init(&b, 256);
		buf_puts(&b, "x");
		buf_json_str(&b, fixed[i]);
		json_str_slow(want, fixed[i]);
		ck_assert_str_eq(b.data + 1, want);
		ck_assert_uint_eq(b.len, 1 + strlen(want));
		buf_release(&b);
	}
	for (int ch = 1; ch < 256; ch++)
		for (int at = 0; at < 3; at++) {
			memcpy(in, "abc", 4);
			in[at] = (char)ch;
			buf_init(&b, 256);
			buf_json_str(&b, in);
			json_str_slow(want, in);
			ck_assert_str_eq(b.data, want);
			buf_release(&b);
		}
	/* a bounded buffer fails whole on either path, never overruns */
	{
		char room[8];
		buf_init_on(&b, room, sizeof(room), 7);
		buf_json_str(&b, "abcdef");       /* 8 bytes with the quotes */
		ck_assert(b.failed);
		buf_init_on(&b, room, sizeof(room), 7);
		buf_json_str(&b, "a\"b\"c");      /* 9 escaped */
		ck_assert(b.failed);
		buf_init_on(&b, room, sizeof(room), 7);
		buf_json_str(&b, "abcde");        /* 7: fits */
		ck_assert(!b.failed);
		ck_assert_str_eq(b.data, "\"abcde\"");
	}
	buf_init(&b, 16);
	buf_json_str(&b, NULL);
	ck_assert_str_eq(b.data, "null");
	buf_release(&b);
}
END_TEST

/* The per-request small strings (ETag, RateLimit, trace ids) against libc. */
START_TEST(test_log_fmt_matches_libc)
{
	char got[64], want[64];
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int64_t v = (int64_t)(x >> (i % 64));
		if (i & 1)
			v = -v;
		ck_assert_uint_eq(fmt_i64(got, v), (size_t)snprintf(want, sizeof(want), "%lld", (long long)v));
		ck_assert_str_eq(got, want);
		ck_assert_uint_eq(fmt_u64(got, x), (size_t)snprintf(want, sizeof(want), "%llu", (unsigned long long)x));
		ck_assert_str_eq(got, want);
		int w = 1 + i % 16;
		fmt_hex(got, x, w);
		snprintf(want, sizeof(want), "%016llx", (unsigned long long)x);
		ck_assert_str_eq(got, want + 16 - w);
	}
	ck_assert_uint_eq(fmt_i64(got, INT64_MIN), 20);
	ck_assert_str_eq(got, "-9223372036854775808");
	/* copies cut at the room, never past it */
	memset(got, 'x', sizeof(got));
	ck_assert_uint_eq(fmt_copy(got, 4, "abcdef", (size_t)-1), 3);
	ck_assert_str_eq(got, "abc");
	ck_assert_int_eq(got[4], 'x');
	ck_assert_uint_eq(fmt_copy(got, 10, "abc?q=1", 3), 3);
	ck_assert_str_eq(got, "abc");
	ck_assert_uint_eq(fmt_copy(got, 0, "abc", 3), 0);
	ck_assert_int_eq(got[0], 'a');
}
END_TEST

/* Trace headers and ids as snprintf wrote them, truncation included. */
START_TEST(test_log_trace_format_matches_libc)
{
	static const char root[] = "1-5759e988-bd862e3fe1be46a994272793";
	char got[128], want[128], id[APP_TRACE_ID_LEN + 1], r[APP_TRACE_ROOT_LEN + 1];

	for (size_t cap = 1; cap <= sizeof(got); cap++) {
		size_t n = app_trace_format(got, cap, root, "53995c3f42cd8ad8", true);
		int m = snprintf(want, cap, "Root=%s;Parent=%s;Sampled=%d", root, "53995c3f42cd8ad8", 1);
		ck_assert_uint_eq(n, (size_t)m);
		ck_assert_str_eq(got, want);
		n = app_trace_format(got, cap, root, "", false);
		m = snprintf(want, cap, "Root=%s;Sampled=%d", root, 0);
		ck_assert_uint_eq(n, (size_t)m);
		ck_assert_str_eq(got, want);
	}
	app_trace_new_root(r, 0x5759e988);
	ck_assert_uint_eq(strlen(r), APP_TRACE_ROOT_LEN);
	ck_assert(!strncmp(r, "1-5759e988-", 11));
	ck_assert_uint_eq(strspn(r + 11, "0123456789abcdef"), 24);
	app_trace_new_id(id);
	ck_assert_uint_eq(strlen(id), APP_TRACE_ID_LEN);
	ck_assert_uint_eq(strspn(id, "0123456789abcdef"), 16);
}
END_TEST

Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *q = tcase_create("queue");
	TCase *w = tcase_create("writer");
	TCase *e = tcase_create("escaping");

	tcase_add_test(q, test_log_queue_fifo_bounded_and_long_lines);
	tcase_add_test(q, test_log_queue_many_producers_one_consumer);
	tcase_add_test(q, test_log_queue_count_exact_after_a_drain);
	tcase_set_timeout(q, 30);
	suite_add_tcase(s, q);
	tcase_add_checked_fixture(w, setup, teardown);
	tcase_set_timeout(w, 30);
	tcase_add_test(w, test_log_concurrent_writers_lose_nothing_and_never_interleave);
	tcase_add_test(w, test_log_stalled_stdout_drops_info_first_and_reports);
	tcase_add_test(w, test_log_relay_blocks_queue_in_place);
	tcase_add_test(w, test_log_relay_blocks_wait_for_room);
	tcase_add_test(w, test_log_callers_never_block_on_a_pipe_full_of_partial_pages);
	tcase_add_test(w, test_log_lines_of_a_request_carry_its_ids);
	tcase_add_test(w, test_log_writer_grows_a_pipe);
	tcase_add_test(w, test_log_starved_writer_callers_drain_into_a_pipe);
	tcase_add_test(w, test_log_starved_writer_many_callers_lose_nothing_silently);
	tcase_add_test(w, test_log_starved_writer_file_drops_not_waits);
	suite_add_tcase(s, w);
	tcase_add_checked_fixture(e, setup, teardown);
	tcase_add_test(e, test_log_aws_json_str_escapes_everything);
	tcase_add_test(e, test_log_aws_fields_make_valid_lines);
	tcase_add_test(e, test_log_rfc3339_matches_libc);
	tcase_add_test(e, test_log_numbers_without_printf);
	tcase_add_test(e, test_log_buf_json_time_matches_rfc3339);
	tcase_add_test(e, test_log_buf_json_str_matches_reference);
	tcase_add_test(e, test_log_fmt_matches_libc);
	tcase_add_test(e, test_log_trace_format_matches_libc);
	suite_add_tcase(s, e);
	return s;
}

/* Abandons a writer on purpose: only where each test has its own process. */
Suite *log_stall_suite(void)
{
	Suite *s = suite_create("log_stall");
	TCase *tc = tcase_create("stop");
	const char *fork = getenv("CK_FORK");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);

	if (!fork || strcmp(fork, "no"))
		tcase_add_test(tc, test_log_stop_gives_up_on_a_stalled_fd);
	suite_add_tcase(s, tc);
	return s;
}
