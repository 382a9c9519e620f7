/*
 * civetweb glue: turns a civetweb connection into an http_request, runs
 * the pipeline (app.h), writes the response, runs the log phase.
 *
 * Measured pitfalls this file avoids: each response goes out in one
 * mg_write of a fully built buffer, with TCP_NODELAY, because headers and
 * body in separate writes cost ~44 ms per request through Nagle and
 * delayed ACK; and no TLS (Debian's civetweb crashes on the first TLS
 * connection with OpenSSL 3), so TLS ends at the load balancer.
 *
 * Slow clients.  civetweb holds one worker thread per connection, so the
 * pool is large (HTTP_THREADS, default 1024, civetweb's 100 KiB stacks)
 * and every wait is bounded: civetweb closes a connection whose headers
 * take longer than REQUEST_TIMEOUT_MS, or that stays idle between
 * requests longer than KEEP_ALIVE_TIMEOUT_MS.  civetweb has no deadline
 * for the body (mg_read waits as long as bytes trickle in), so a watchdog
 * thread interrupts a worker whose body read outlives its deadline with a
 * signal; the worker unblocks that signal only while it reads a body.
 */
#include <civetweb.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "allocator.h"
#include "app.h"
#include "log.h"
#include "render.h"
#include "server.h"
#include "thread.h"

#define KICK_SIGNAL SIGUSR2
#define WATCHDOG_PERIOD_MS 50

enum { READ_IDLE, READ_BUSY, READ_KICKED };

/* One per civetweb worker thread (its thread pointer). */
typedef struct worker {
	pthread_t tid;
	pthread_mutex_t lock;
	atomic_int state;            /* READ_*; changed under lock */
	int64_t deadline_ns;         /* guarded by lock */
	bool errored;                /* owner thread only: civetweb's error was answered */
	bool discarding;             /* owner thread only: kicks cut civetweb's discard */
	int64_t wait_start_ns;       /* owner thread only: began waiting for headers */
	bool served;                 /* owner thread only: the connection had a request */
	/*
	 * Owner thread only: the response and the bytes sent, reused request
	 * after request (http_response_reset), so serving a GET allocates
	 * nothing.  Each keeps at most HTTP_KEEP_BYTES between requests:
	 * 3 x 8 KiB per worker thread that has served, at most.
	 */
	http_response res;
	buf out;
} worker;

struct server {
	struct mg_context *ctx;
	app_ctx *app;
	atomic_int in_flight;        /* requests inside on_request */
	worker *workers;
	int nworkers;
	atomic_int next_worker;
	pthread_t watchdog;
	atomic_int stop;
	bool watchdog_started;
	bool conn_caches;            /* allocator caches per connection (ADR 17) */
};

/* --- the body-read watchdog ---------------------------------------------- */

static void on_kick(int sig)
{
	(void)sig;   /* only here to make poll() in mg_read return EINTR */
}

static void *watchdog_loop(void *arg)
{
	server *s = arg;
	struct timespec period = { 0, WATCHDOG_PERIOD_MS * 1000000L };

	(void)pthread_setname_np(pthread_self(), "cart-watchdog");

	while (!atomic_load(&s->stop)) {
		int64_t now = app_mono_ns();

		for (int i = 0; i < s->nworkers; i++) {
			worker *w = &s->workers[i];

			if (atomic_load(&w->state) == READ_IDLE)
				continue;
			pthread_mutex_lock(&w->lock);
			/* Re-kick until the worker leaves its read: a signal that
			 * lands between two polls would otherwise be lost. */
			if (atomic_load(&w->state) == READ_KICKED ||
			    (atomic_load(&w->state) == READ_BUSY && now >= w->deadline_ns)) {
				atomic_store(&w->state, READ_KICKED);
				pthread_kill(w->tid, KICK_SIGNAL);
			}
			pthread_mutex_unlock(&w->lock);
		}
		nanosleep(&period, NULL);
	}
	return NULL;
}

/*
 * The kick signal is unblocked in worker threads for good (on_init_thread):
 * toggling the mask around each read was two rt_sigprocmask calls per
 * body read (~1.6 % of an add's CPU).  The watchdog kicks only under
 * w->lock while the state is READ_BUSY or READ_KICKED, so outside a read
 * a kick can only be one sent just before read_end took the lock; read_end
 * consumes it then, so it cannot cut a later poll short.
 */
static void kick_mask(int how)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(how, &set, NULL);
}

static void read_begin(worker *w, int64_t deadline_ns)
{
	pthread_mutex_lock(&w->lock);
	w->deadline_ns = deadline_ns;
	atomic_store(&w->state, READ_BUSY);
	pthread_mutex_unlock(&w->lock);
}

/* true if the watchdog interrupted the read. */
static bool read_end(worker *w)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t set;
	bool kicked;

	pthread_mutex_lock(&w->lock);
	kicked = atomic_load(&w->state) == READ_KICKED;
	atomic_store(&w->state, READ_IDLE);
	pthread_mutex_unlock(&w->lock);
	if (kicked) {
		/* No kick can be sent from here on; one still pending is taken
		 * now (blocked, so it is not delivered meanwhile). */
		sigemptyset(&set);
		sigaddset(&set, KICK_SIGNAL);
		kick_mask(SIG_BLOCK);
		while (sigtimedwait(&set, NULL, &zero) == KICK_SIGNAL)
			;
		kick_mask(SIG_UNBLOCK);
	}
	return kicked;
}

/*
 * Lowers this worker thread's priority by HTTP_WORKER_NICE (Linux: nice
 * is per thread).  Every write hands the event relay and the log writer
 * work to do; on a saturated CPU, with up to HTTP_THREADS runnable
 * workers and one relay at equal weight, the relay got ~1/65 of the CPU
 * it needed ~1/10 of: events lagged by up to a second and writes waited
 * for it (pacing, ADR 8).  Raising a thread's nice value needs no
 * privilege; a failure is logged once and the worker runs as it is.
 */
static void worker_nice(int nice)
{
	static atomic_int warned;
	char fields[160];
	buf b;
	int err = app_thread_nicer(nice);

	if (!err || atomic_exchange(&warned, 1))
		return;
	buf_init_on(&b, fields, sizeof(fields), sizeof(fields) - 1);
	buf_puts(&b, ",\"error\":");
	buf_json_str(&b, strerror(err));
	log_write(LOG_WARN, "cannot lower the worker threads' priority (HTTP_WORKER_NICE)",
		  b.failed ? NULL : fields);
}

/*
 * A worker leaves the process's SCHED_BATCH (BACKGROUND_SCHED_BATCH,
 * app/main.c) for SCHED_OTHER: a request that arrives wakes its worker at
 * once, ahead of background work.  Then it lowers its priority.
 */
static void worker_sched(const app_config *cfg)
{
	static atomic_int warned;
	int err = cfg->background_batch ? app_thread_batch(false) : 0;

	if (err && !atomic_exchange(&warned, 1))
		log_write(LOG_WARN, "cannot move the worker threads out of SCHED_BATCH", NULL);
	worker_nice(cfg->http_worker_nice);
}

static void *on_init_thread(const struct mg_context *ctx, int thread_type)
{
	server *s = mg_get_user_data(ctx);
	int i;

	if (thread_type != 1)
		return NULL;
	i = atomic_fetch_add(&s->next_worker, 1);
	if (i >= s->nworkers)
		return NULL;   /* not expected: civetweb starts num_threads workers */
	s->workers[i].tid = pthread_self();
	kick_mask(SIG_UNBLOCK);   /* see read_begin */
	worker_sched(s->app->cfg);
	return &s->workers[i];
}

/* --- the request as the pipeline sees it --------------------------------- */

typedef struct conn_io {
	struct mg_connection *conn;
	worker *w;
	int64_t deadline_ns;
} conn_io;

/* Case-insensitive name match, first letter and length before the
 * whole compare: a request looks up ~9 names among its headers, and
 * mg_get_header's strcasecmp of every pair was ~2k instructions of a
 * GET's ~17k. */
static bool same_name(const char *h, const char *name, size_t len)
{
	return (h[0] | 0x20) == (name[0] | 0x20) && strlen(h) == len &&
	       !strcasecmp(h, name);
}

static const char *conn_header(void *ctx, const char *name)
{
	const struct mg_request_info *ri = mg_get_request_info(((conn_io *)ctx)->conn);
	size_t len = strlen(name);

	for (int i = 0; i < ri->num_headers; i++)
		if (same_name(ri->http_headers[i].name, name, len))
			return ri->http_headers[i].value;
	return NULL;
}

static int conn_header_count(void *ctx, const char *name)
{
	const struct mg_request_info *ri = mg_get_request_info(((conn_io *)ctx)->conn);
	size_t len = strlen(name);
	int n = 0;

	for (int i = 0; i < ri->num_headers; i++)
		n += same_name(ri->http_headers[i].name, name, len);
	return n;
}

static int conn_read(void *ctx, char *dst, size_t len, bool *timed_out)
{
	conn_io *io = ctx;
	int n;

	if (app_mono_ns() >= io->deadline_ns) {
		*timed_out = true;
		return -1;
	}
	if (!io->w)
		return mg_read(io->conn, dst, len);
	read_begin(io->w, io->deadline_ns);
	n = mg_read(io->conn, dst, len);
	if (read_end(io->w) || app_mono_ns() >= io->deadline_ns)
		*timed_out = true;
	return n;
}

/*
 * Sends res as one mg_write: status line, headers and body together, so a
 * response is one send(2) and one TCP segment when it fits (TCP_NODELAY).
 * out: the worker's buffer to build it in, or NULL for a one-off.
 */
static void send_response(struct mg_connection *conn, const http_response *res,
			  bool head, buf *reuse)
{
	buf local, *o = reuse ? reuse : &local;

	if (reuse)
		buf_reset_keep(o, HTTP_KEEP_BYTES);
	else
		buf_init(o, HTTP_MAX_RESPONSE + 8192);
	/* No printf on the per-response path (issue 10). */
	buf_puts(o, "HTTP/1.1 ");
	buf_json_i64(o, res->status);
	buf_puts(o, " ");
	buf_puts(o, http_reason(res->status));
	buf_puts(o, "\r\n");
	if (res->content_type) {
		buf_puts(o, "Content-Type: ");
		buf_puts(o, res->content_type);
		buf_puts(o, "\r\n");
	}
	if (res->status != 204) {
		buf_puts(o, "Content-Length: ");
		buf_put_u64(o, res->body.len);
		buf_puts(o, "\r\n");
	}
	buf_puts(o, "X-Request-Id: ");
	buf_puts(o, res->request_id);
	buf_puts(o, "\r\nCache-Control: no-store\r\n");
	if (res->close)
		buf_puts(o, "Connection: close\r\n");
	if (res->headers.len)
		buf_put(o, res->headers.data, res->headers.len);
	buf_puts(o, "\r\n");
	if (!head && res->status != 204 && res->body.len)
		buf_put(o, res->body.data, res->body.len);
	if (!o->failed)
		mg_write(conn, o->data, o->len);
	if (!reuse)
		buf_release(o);
}

/*
 * Makes civetweb close the connection after this response.  civetweb 1.15
 * has no call for that: it keeps a connection alive unless the request's
 * own Connection header says otherwise, so we set that header in its
 * parsed request (a public struct) to "close".  If the table is full (the
 * request was refused for its 64 header lines), the last entry gives way.
 */
static void force_close(struct mg_connection *conn)
{
	struct mg_request_info *ri = (struct mg_request_info *)mg_get_request_info(conn);
	int i;

	for (i = 0; i < ri->num_headers; i++)
		if (!strcasecmp(ri->http_headers[i].name, "Connection"))
			break;
	if (i == ri->num_headers) {
		if (i == HTTP_MAX_HEADERS)
			i--;
		else
			ri->num_headers++;
	}
	ri->http_headers[i].name = "Connection";
	ri->http_headers[i].value = "close";
}

/* Method names are tokens; anything odd is logged as '?'. */
static void copy_method(char out[17], const char *m)
{
	fmt_copy(out, 17, m ? m : "", (size_t)-1);
	for (char *p = out; *p; p++)
		if (*p < 'A' || *p > 'Z')
			*p = '?';
}

static void fill_request(http_request *req, conn_io *io, char method[17],
			 const struct mg_request_info *ri, const char *target)
{
	copy_method(method, ri->request_method);
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->target = target;
	req->remote_addr = ri->remote_addr;
	req->header = conn_header;
	req->header_count = conn_header_count;
	req->header_ctx = io;
	req->header_lines = ri->num_headers;
	req->read = conn_read;
	req->read_ctx = io;
}

/*
 * Runs the pipeline for one request and answers it.  closing: called while
 * civetweb closes the connection (see on_connection_close): no body is
 * read and nothing is left to discard.
 */
static void serve(server *srv, struct mg_connection *conn, const char *target,
		  bool closing)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	worker *w = mg_get_thread_pointer(conn);
	conn_io io = { conn, w, 0 };
	http_request req;
	http_response local, *res = w ? &w->res : &local;
	char method[17];
	app_request request, *r = &request;

	fill_request(&req, &io, method, ri, target);
	if (closing)
		req.read = NULL;
	if (w)
		http_response_reset(res);
	else
		http_response_init(res);
	app_request_init(r, srv->app, &req, res);
	io.deadline_ns = r->start_ns + (int64_t)srv->app->cfg->request_timeout_ms * 1000000LL;
	app_pipeline_run(&srv->app->pipeline, r);
	/* While draining, ask keep-alive clients to go elsewhere; and say so
	 * when civetweb closes the connection after this answer anyway. */
	if (closing || atomic_load(&srv->app->draining))
		res->close = true;
	send_response(conn, res, r->head, w ? &w->out : NULL);
	if (w) {
		w->wait_start_ns = app_request_end_ns(r);
		w->served = true;
	}
	if (res->close)
		force_close(conn);
	app_pipeline_log(&srv->app->pipeline, r);
	/*
	 * civetweb reads and discards the rest of a body we did not read
	 * (mg_read, as long as bytes come); a connection we close anyway
	 * must not hold the worker for that, so the watchdog cuts it short
	 * at once (read_end runs in on_connection_close).  Last, so the
	 * signal is unblocked only for that discard.
	 */
	if (!closing && res->close && w && (ri->content_length > (long long)r->body_len ||
			       mg_get_header(conn, "Transfer-Encoding"))) {
		read_begin(w, 0);
		w->discarding = true;
	}
	if (!w)
		http_response_release(res);
}

static int on_request(struct mg_connection *conn, void *cbdata)
{
	server *srv = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);

	atomic_fetch_add(&srv->in_flight, 1);
	serve(srv, conn, ri->local_uri_raw ? ri->local_uri_raw : ri->request_uri,
	      false);
	atomic_fetch_sub(&srv->in_flight, 1);
	/* 1: we answered; a non-zero close keeps civetweb from answering again */
	return 1;
}

/*
 * Every request comes in through civetweb's "handle everything" hook,
 * which runs before its handler table lookup (under a mutex of the whole
 * server, every request: a sleep for 1 request in 100 at 64 connections
 * on 2 cores) and its mapping of the URI to a file (a stat of
 * /.htpasswd per request).  Neither applies to this server.
 */
static int on_begin_request(struct mg_connection *conn)
{
	return on_request(conn, mg_get_user_data(mg_get_context(conn)));
}

/*
 * civetweb says "Malformed message" both for bytes that are not a request
 * head and for a head that did not end in time; only the clock tells them
 * apart (its limit is KEEP_ALIVE_TIMEOUT_MS after a request on the same
 * connection, REQUEST_TIMEOUT_MS before).
 */
static bool headers_timed_out(const server *srv, const worker *w)
{
	const app_config *cfg = srv->app->cfg;
	int64_t limit_ms;

	if (!w || !w->wait_start_ns)
		return false;
	limit_ms = w->served ? cfg->keep_alive_timeout_ms : cfg->request_timeout_ms;
	return app_mono_ns() - w->wait_start_ns >= (limit_ms * 9 / 10) * 1000000LL;
}

/*
 * With the DynamoDB store, a worker holding a connection gets a jemalloc
 * thread cache: without one, every malloc and free takes an arena lock,
 * and a DynamoDB GET makes ~400 of them (the libcurl transfer, the item's
 * cJSON tree): callgrind, 414k instructions per GET without, 243k with.
 * The cache is dropped when the connection closes (worker_idle), so
 * memory is cached only by workers that hold a connection, not by all
 * HTTP_THREADS (ADR 17).
 */
static int on_init_connection(const struct mg_connection *conn, void **data)
{
	server *srv = mg_get_user_data(mg_get_context(conn));
	worker *w = mg_get_thread_pointer(conn);

	(void)data;
	if (srv && srv->conn_caches)
		app_allocator_thread_cache(true);
	if (w) {
		w->wait_start_ns = app_mono_ns();
		w->served = false;
	}
	return 0;
}

/*
 * civetweb's own errors (malformed request line or headers, head too
 * large, bad Content-Length or Transfer-Encoding, HTTP/2 request line)
 * as problems like ours, with a log line, and the connection closed.
 */
static int on_http_error(struct mg_connection *conn, int status,
			 const char *msg)
{
	server *srv = mg_get_user_data(mg_get_context(conn));
	const struct mg_request_info *ri = mg_get_request_info(conn);
	worker *w = mg_get_thread_pointer(conn);
	conn_io io = { conn, NULL, 0 };
	app_request r;
	http_request req;
	http_response res;
	char method[17];
	const char *code = "cart.invalid_request";
	const char *detail = msg && *msg ? msg : "the request could not be read";

	fill_request(&req, &io, method, ri, ri->request_uri);
	req.read = NULL;
	http_response_init(&res);
	app_request_init(&r, srv->app, &req, &res);
	app_stage_trace(&r, srv->app);   /* READ does not run: the trace header */
	if (ri->request_uri)
		snprintf(r.path, sizeof(r.path), "%.*s", (int)strcspn(ri->request_uri, "?#"),
			 ri->request_uri);
	else
		snprintf(r.path, sizeof(r.path), "urn:uuid:%s", res.request_id);
	if (status == 411 || (status == 400 && mg_get_header(conn, "Transfer-Encoding"))) {
		status = 400;
		code = "cart.invalid_framing";
		detail = "Content-Length must be one decimal number of bytes, and "
			 "Transfer-Encoding is not accepted";
	} else if (status == 400 && msg && !strcmp(msg, "Malformed message") &&
		   headers_timed_out(srv, w)) {
		/* civetweb's words for "headers incomplete when the time ran out" */
		status = 408;
		code = "cart.request_timeout";
		detail = "the request headers did not arrive within the request timeout";
	} else if (status == 413) {
		status = 431;
		code = "cart.headers_too_large";
		detail = "the request line and headers exceed 16384 bytes";
	} else if (status == 505) {
		code = "cart.http_version_not_supported";
		detail = "only HTTP/1.0 and HTTP/1.1 are served";
	} else if (status >= 500) {
		code = "cart.internal_error";
	}
	app_fail(&r, status, code, detail);
	res.close = true;
	send_response(conn, &res, false, NULL);
	if (w)
		w->errored = true;   /* the close that follows must not answer again */
	app_pipeline_log(&srv->app->pipeline, &r);
	http_response_release(&res);
	return 0;
}

/*
 * A worker between connections gives back what its requests grew: its
 * reused buffers, and the stack pages below the current frame (madvise:
 * the kernel frees them, the next connection faults them in again).
 * civetweb hands a new connection to the longest idle of its HTTP_THREADS
 * workers, so over time every worker serves, and whatever a worker keeps
 * after its first connection grows RSS until all 1024 have served.  One
 * madvise per connection, not per request.  Every page below the one that
 * holds the live frames goes: keeping one more (as before 2026-11-28)
 * grew the workers' stacks by 1.5 MiB per 60 s soak run (384 new
 * connections x 4 KiB); now they stay at what an idle worker holds (its
 * TLS and top frames, ~12 KiB: 12.3 MiB for 1025 threads, the same after
 * seeding and after each run).
 */
/* An address in a frame below the caller's: below its stack pointer and
 * the return address its next call pushes. */
static __attribute__((noinline)) uintptr_t stack_below_caller(void)
{
	volatile char c = 0;

	return (uintptr_t)&c;
}

static void worker_idle(server *srv, worker *w)
{
	pthread_attr_t a;
	void *lo;
	size_t size, page = (size_t)sysconf(_SC_PAGESIZE);

	buf_reset_keep(&w->res.body, 0);
	buf_reset_keep(&w->res.headers, 0);
	buf_reset_keep(&w->out, 0);
	if (srv && srv->conn_caches)
		app_allocator_thread_cache(false);
	if (pthread_getattr_np(pthread_self(), &a))
		return;
	if (!pthread_attr_getstack(&a, &lo, &size)) {
		uintptr_t start = ((uintptr_t)lo + page - 1) & ~(uintptr_t)(page - 1);
		/* Below this: nothing live while madvise runs (its return
		 * address is above), and nothing after it returns. */
		uintptr_t end = stack_below_caller() & ~(uintptr_t)(page - 1);

		if (end > start && end - start <= size)
			(void)madvise((void *)start, end - start, MADV_DONTNEED);
	}
	pthread_attr_destroy(&a);
}

/*
 * civetweb closes a connection without any answer when the target is "*"
 * or an absolute URL naming another port (its "proxy" case).  Answer
 * those here, through the same pipeline, before the socket closes.
 */
static void on_connection_close(const struct mg_connection *cconn)
{
	struct mg_connection *conn = (struct mg_connection *)cconn;
	server *srv = mg_get_user_data(mg_get_context(conn));
	const struct mg_request_info *ri = mg_get_request_info(conn);
	worker *w = mg_get_thread_pointer(conn);
	bool errored = !w || w->errored;

	if (w && w->discarding) {
		read_end(w);
		w->discarding = false;
	}
	if (w)
		w->errored = false;
	/* A request we served has local_uri set; one civetweb refused, errored. */
	if (!errored && srv && ri->request_uri && !ri->local_uri &&
	    ri->request_method && ri->http_version)
		serve(srv, conn, ri->request_uri, true);
	if (w)
		worker_idle(srv, w);
}

static int on_log_message(const struct mg_connection *conn, const char *msg)
{
	char fields[600];
	buf b;

	buf_init_on(&b, fields, sizeof(fields), sizeof(fields) - 1);
	buf_puts(&b, ",\"detail\":");
	buf_json_str(&b, msg);
	log_write(LOG_WARN, "civetweb", b.failed ? NULL : fields);
	return 1;
}

static int install_kick_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_kick;
	sa.sa_flags = SA_RESTART;    /* restart read/write; poll still EINTRs */
	sigemptyset(&sa.sa_mask);
	return sigaction(KICK_SIGNAL, &sa, NULL);
}

int server_start(server **out, app_ctx *app, char *err, size_t err_len)
{
	const app_config *cfg = app->cfg;
	char ports[96], threads[16], keepalive[16], reqtimeout[16];
	const char *options[] = {
		"listening_ports", ports,
		"num_threads", threads,
		"tcp_nodelay", "1",
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", keepalive,
		"request_timeout_ms", reqtimeout,
		"decode_url", "no",
		"listen_backlog", "1024",
		"connection_queue", "256",
		"enable_auth_domain_check", "no",
		NULL
	};
	struct mg_callbacks cb;
	server *s;

	*out = NULL;
	snprintf(ports, sizeof(ports), "%s:%d", cfg->listen_addr, cfg->port);
	snprintf(threads, sizeof(threads), "%d", cfg->http_threads);
	snprintf(keepalive, sizeof(keepalive), "%d", cfg->keep_alive_timeout_ms);
	snprintf(reqtimeout, sizeof(reqtimeout), "%d", cfg->request_timeout_ms);
	memset(&cb, 0, sizeof(cb));
	cb.begin_request = on_begin_request;
	cb.http_error = on_http_error;
	cb.log_message = on_log_message;
	cb.init_thread = on_init_thread;
	cb.connection_close = on_connection_close;
	cb.init_connection = on_init_connection;
	s = calloc(1, sizeof(*s));
	if (s)
		s->workers = calloc((size_t)cfg->http_threads, sizeof(*s->workers));
	if (!s || !s->workers || install_kick_handler()) {
		snprintf(err, err_len, "out of memory");
		if (s)
			free(s->workers);
		free(s);
		return -1;
	}
	s->nworkers = cfg->http_threads;
	for (int i = 0; i < s->nworkers; i++) {
		pthread_mutex_init(&s->workers[i].lock, NULL);
		http_response_init(&s->workers[i].res);      /* allocates nothing yet */
		buf_init(&s->workers[i].out, HTTP_MAX_RESPONSE + 8192);
	}
	s->app = app;
	/* Not with the memory store: there the carts live in the heap, and
	 * caches filled by one worker's writes and emptied on close leave it
	 * fragmented (make bench-soak: +14 MiB after 60 s of mixed); a memory
	 * GET makes ~2 allocations, a DynamoDB one ~400. */
	s->conn_caches = app_allocator_caches_off() && strcmp(cfg->storage_backend, "memory");
	s->ctx = mg_start(&cb, s, options);
	if (!s->ctx) {
		snprintf(err, err_len, "cannot listen on LISTEN_ADDR:APP_PORT %s (in use, or not allowed)", ports);
		free(s->workers);
		free(s);
		return -1;
	}
	s->watchdog_started = pthread_create(&s->watchdog, NULL, watchdog_loop, s) == 0;
	if (!s->watchdog_started)
		log_write(LOG_ERROR, "cannot start the request-body watchdog", NULL);
	*out = s;
	return 0;
}

/*
 * civetweb's listening thread waits in poll() for up to 2 s before it sees
 * mg_stop's flag, so every stop took 2 s however idle the server.  While
 * mg_stop waits for it, this thread connects to the listening socket every
 * 20 ms: poll returns, the thread sees the flag and exits.  The connection
 * carries no request and civetweb closes it.
 */
typedef struct waker {
	struct sockaddr_in addr;
	atomic_int done;
} waker;

static void *wake_listener(void *arg)
{
	waker *w = arg;
	struct timespec pause = { 0, 20 * 1000 * 1000 };

	for (int i = 0; i < 250 && !atomic_load(&w->done); i++) {   /* <= ~5 s */
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0) {
			(void)connect(fd, (struct sockaddr *)&w->addr, sizeof(w->addr));
			close(fd);
		}
		nanosleep(&pause, NULL);
	}
	return NULL;
}

static bool waker_start(server *s, waker *w, pthread_t *t)
{
	struct mg_server_port port;
	const char *addr = s->app->cfg->listen_addr;

	memset(w, 0, sizeof(*w));
	if (mg_get_server_ports(s->ctx, 1, &port) != 1)
		return false;
	w->addr.sin_family = AF_INET;
	w->addr.sin_port = htons((uint16_t)port.port);
	/* the wildcard address is reached on loopback */
	if (strcmp(addr, "0.0.0.0") == 0 || inet_pton(AF_INET, addr, &w->addr.sin_addr) != 1)
		w->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return pthread_create(t, NULL, wake_listener, w) == 0;
}

void server_stop(server *s)
{
	pthread_t wake_thread;
	waker wake;
	bool waking;

	if (!s)
		return;
	/*
	 * mg_stop aborts requests whose body is still arriving, so first let
	 * every request that has started finish; the caller bounds the wait.
	 */
	while (atomic_load(&s->in_flight) > 0) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	/* The watchdog signals worker threads by id: stop it before
	 * mg_stop joins them (no request reads a body any more). */
	atomic_store(&s->stop, 1);
	if (s->watchdog_started)
		pthread_join(s->watchdog, NULL);
	waking = waker_start(s, &wake, &wake_thread);
	mg_stop(s->ctx);
	if (waking) {
		atomic_store(&wake.done, 1);
		pthread_join(wake_thread, NULL);
	}
	for (int i = 0; i < s->nworkers; i++) {
		pthread_mutex_destroy(&s->workers[i].lock);
		http_response_release(&s->workers[i].res);
		buf_release(&s->workers[i].out);
	}
	free(s->workers);
	free(s);
}
