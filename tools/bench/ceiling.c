/*
 * The ceiling for `make bench`: bare civetweb started with the service's
 * options (app/server.c: server_start, and main.c's default thread
 * attributes), answering every path the way the service answers the bench's
 * requests, with fixed bytes:
 *
 *   GET                          200, the user's cart
 *   POST .../items               201, the cart with the line (the body is read first)
 *   PATCH .../items/{id}         200, the cart  (the body is read first)
 *   DELETE .../items/{id}        200, the cart without the line (as the service)
 *   DELETE /v1/cart/{id}         204, no body
 *
 * "The cart" has as many lines as the service's would in the bench's
 * scenarios, so both sides send bodies of the same size: the 3 seeded
 * lines, plus one per scenario SKU (an itemId of a letter, '-' and a
 * digit: add's a-0..a-9, mixed's m-0..m-9) added to that user (u-N) and
 * not deleted since; a POST of any other item (add_delete's unique ones)
 * answers one line more without keeping it.  Until 2026-11-28 every
 * answer was the 3-line cart, 964 bytes, where the service's answer to an
 * add grows to 13 lines, 3,306 bytes.  A fresh ceiling serves each run, as
 * a freshly seeded service does.
 *
 * The head carries the service's header set (request id, trace id, rate
 * limit, ETag) with fixed values, so both sides put the same bytes on the
 * wire; like the service, it echoes the caller's X-Request-Id.  Nothing
 * the service does per request (routing, JSON, the core, auth, rate
 * limiting, logs, metrics) happens here, so service/ceiling is the cost
 * of our own code.
 *
 *     ceiling PORT [HTTP_THREADS [KEEP_ALIVE_TIMEOUT_MS [REQUEST_TIMEOUT_MS]]]
 *
 * The defaults are the service's (README, Configuration).  Its workers
 * also run HTTP_WORKER_NICE (environment, default 5, as the service)
 * nicer than the process, as the service's do: on cores shared with wrk
 * that changes who waits, so both sides must have it.
 */
#include <civetweb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* The cart's JSON around its lines, and a line: the service's bytes for
 * the bench's carts, fixed values of the same widths. */
static const char cart_open[] =
	"{\"cartId\":\"4006c9b7-da58-4033-95ba-b7ba8a7a4b1f\",\"userId\":\"u-1234\",\"items\":[";
static const char cart_close[] =
	"],\"itemCount\":%d,\"subtotal\":{\"amount\":%d,\"currency\":\"EUR\"},\"version\":%d,"
	"\"createdAt\":\"2026-11-27T17:25:02.531Z\",\"updatedAt\":\"2026-11-27T17:25:02.585Z\","
	"\"expiresAt\":\"2026-12-27T17:25:02.000Z\"}";
static const char cart_line[] =
	"{\"itemId\":\"%c-%d\",\"quantity\":%d,\"unitPrice\":{\"amount\":1999,\"currency\":\"EUR\"},"
	"\"lineTotal\":{\"amount\":%d,\"currency\":\"EUR\"},\"name\":\"%s item %d\",\"attributes\":{},"
	"\"addedAt\":\"2026-11-27T17:25:02.531Z\",\"updatedAt\":\"2026-11-27T17:25:02.560Z\"}";

#define SEEDED_LINES 3
#define SKUS 10                          /* a letter, '-', a digit */
#define LINES_MAX (SEEDED_LINES + SKUS + 1)
#define USERS_MAX (1 << 20)

/* Per user u-N: bit K set while the cart holds a line ?-K (see the top). */
static _Atomic uint16_t skus_of[USERS_MAX];

/* After X-Request-Id: the rest of the service's head, fixed values. */
static const char common_head[] =
	"Cache-Control: no-store\r\n"
	"X-Amzn-Trace-Id: Root=1-6b09bcee-f52c11e871e7cefa620616ad;Sampled=0\r\n"
	"RateLimit-Policy: \"default\";q=2000000;w=2\r\n"
	"RateLimit: \"default\";r=1999999;t=1\r\n";

/* An answer: pre, the request id, post.  The request id is the caller's
 * X-Request-Id when it sends one (the service echoes it too, and
 * tests/load/add_delete.lua relies on it), else a fixed UUID. */
struct answer {
	char pre[256], *post;
	size_t pre_len, post_len;
};
/* By the number of lines of the cart answered. */
static struct answer ok200[LINES_MAX + 1], created201[LINES_MAX + 1];
static struct answer nocontent204;

static int with_cart(struct answer *a, const char *status, int lines)
{
	char body[8192];
	size_t n = 0;
	int count = 0;

	n += (size_t)snprintf(body, sizeof(body), "%s", cart_open);
	for (int i = 0; i < lines; i++) {
		bool seeded = i < SEEDED_LINES;
		int q = seeded ? 2 : 1;

		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s", i ? "," : "");
		n += (size_t)snprintf(body + n, sizeof(body) - n, cart_line,
				      seeded ? 's' : 'a', seeded ? i : i - SEEDED_LINES,
				      q, 1999 * q, seeded ? "Bench" : "Added",
				      seeded ? i : i - SEEDED_LINES);
		count += q;
	}
	n += (size_t)snprintf(body + n, sizeof(body) - n, cart_close, count,
			      1999 * count, SEEDED_LINES + lines);
	if (n >= sizeof(body))
		return -1;
	a->pre_len = (size_t)snprintf(a->pre, sizeof(a->pre),
		"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		"X-Request-Id: ", status, n);
	a->post_len = strlen(common_head) + n + 64;
	if (!(a->post = malloc(a->post_len)))
		return -1;
	a->post_len = (size_t)snprintf(a->post, a->post_len, "\r\n%sETag: \"%d\"\r\n\r\n%s",
				       common_head, SEEDED_LINES + lines, body);
	return 0;
}

static void answer(struct mg_connection *conn, const struct answer *a)
{
	const char *id = mg_get_header(conn, "X-Request-Id");
	char out[8192];
	size_t id_len, n = 0;

	if (!id || (id_len = strlen(id)) > 128) {
		id = "8d833c32-f490-43ef-a408-df04a0bc57d0";
		id_len = strlen(id);
	}
	memcpy(out, a->pre, a->pre_len);
	n += a->pre_len;
	memcpy(out + n, id, id_len);
	n += id_len;
	memcpy(out + n, a->post, a->post_len);
	n += a->post_len;
	mg_write(conn, out, n);
}

/* The N of a path /v1/cart/u-N..., or -1. */
static long user_of(const char *uri)
{
	static const char prefix[] = "/v1/cart/u-";
	char *end;
	long n;

	if (strncmp(uri, prefix, sizeof(prefix) - 1))
		return -1;
	n = strtol(uri + sizeof(prefix) - 1, &end, 10);
	return n >= 0 && n < USERS_MAX && (*end == '/' || !*end) ? n : -1;
}

/* The K of a scenario SKU ("x-K" exactly, x a letter) of n bytes; else -1. */
static int sku_of(const char *id, size_t n)
{
	return n == 3 && id[0] >= 'a' && id[0] <= 'z' && id[0] != 's' &&
	       id[1] == '-' && id[2] >= '0' && id[2] <= '9' ? id[2] - '0' : -1;
}

static int lines_of(long user)
{
	return SEEDED_LINES + (user < 0 ? 0 : __builtin_popcount(skus_of[user]));
}

/*
 * Reads the request body, as the service reads every byte of it; keeps
 * the first `cap` bytes in buf (NUL-terminated) and returns their length.
 */
static size_t read_body(struct mg_connection *conn, char *buf, size_t cap)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	long long left = ri->content_length > 0 ? ri->content_length : 0;
	char drop[4096];
	size_t kept = 0;

	while (left > 0) {
		char *to = kept + 1 < cap ? buf + kept : drop;
		size_t room = kept + 1 < cap ? cap - 1 - kept : sizeof(drop);
		int n = mg_read(conn, to, left < (long long)room ? (size_t)left : room);

		if (n <= 0)
			break;
		if (to == buf + kept)
			kept += (size_t)n;
		left -= n;
	}
	buf[kept] = '\0';
	return kept;
}

/* The itemId of a body such as the bench's (no spaces), or NULL. */
static const char *item_id_of(const char *body, size_t *len)
{
	static const char key[] = "\"itemId\":\"";
	const char *p = strstr(body, key), *end;

	if (!p)
		return NULL;
	p += sizeof(key) - 1;
	if (!(end = strchr(p, '"')))
		return NULL;
	*len = (size_t)(end - p);
	return p;
}

static int worker_nice = 5;

/* As app/server.c's worker_nice. */
static void *on_init_thread(const struct mg_context *ctx, int thread_type)
{
	(void)ctx;
	if (thread_type == 1 && worker_nice) {
		id_t self = (id_t)gettid();

		if (setpriority(PRIO_PROCESS, self, getpriority(PRIO_PROCESS, self) + worker_nice))
			perror("ceiling: setpriority");
	}
	return NULL;
}

/*
 * CEILING_SPIN_NS (environment, default 0): CPU each request burns before
 * it is answered, to give the bare server the service's CPU per request
 * and see what a saturated core does to civetweb's tail on its own
 * (docs/performance.md, thirteenth session).  Not used by make bench.
 */
static long spin_ns;

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * CEILING_LOG_LINE (environment, 0 or 1): also write a 400-byte JSON line
 * to stdout per request, as the service's access line (one write(2) each;
 * the service queues its lines for a writer thread).  Not used by make
 * bench.
 */
static int log_line;
static char line[400];   /* set up by main when log_line */

static void line_init(void)
{
	static const char head[] = "{\"level\":\"info\",\"msg\":\"request\"}";

	memset(line, ' ', sizeof(line) - 1);
	memcpy(line, head, sizeof(head) - 1);
	line[sizeof(line) - 1] = '\n';
}

static void write_line(void)
{
	if (log_line && write(STDOUT_FILENO, line, sizeof(line)) < 0)
		log_line = 0;
}

static void spin(void)
{
	int64_t until;

	if (spin_ns <= 0)
		return;
	for (until = mono_ns() + spin_ns; mono_ns() < until;)
		;
}

static int on_begin_request(struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *m = ri->request_method;
	const char *uri = ri->local_uri ? ri->local_uri : "";
	const char *items = strstr(uri, "/items/");
	long user = user_of(uri);
	char body[1024];

	spin();
	write_line();
	if (!strcmp(m, "POST")) {
		const char *id;
		size_t len;
		int k, extra = 0;

		read_body(conn, body, sizeof(body));
		id = item_id_of(body, &len);
		k = id ? sku_of(id, len) : -1;
		if (k >= 0 && user >= 0)
			atomic_fetch_or_explicit(&skus_of[user], (uint16_t)(1u << k),
						 memory_order_relaxed);
		else
			extra = 1;
		answer(conn, &created201[lines_of(user) + extra]);
		return 201;
	}
	if (!strcmp(m, "PATCH")) {
		read_body(conn, body, sizeof(body));
		answer(conn, &ok200[lines_of(user)]);
		return 200;
	}
	if (!strcmp(m, "DELETE") && !items) {
		answer(conn, &nocontent204);
		return 204;
	}
	if (!strcmp(m, "DELETE")) {
		int k = sku_of(items + 7, strlen(items + 7));

		if (k >= 0 && user >= 0)
			atomic_fetch_and_explicit(&skus_of[user], (uint16_t)~(1u << k),
						  memory_order_relaxed);
	}
	answer(conn, &ok200[lines_of(user)]);   /* GET, DELETE of a line */
	return 200;
}

int main(int argc, char **argv)
{
	char ports[32];
	const char *threads = argc > 2 ? argv[2] : "1024";
	const char *keepalive = argc > 3 ? argv[3] : "5000";
	const char *reqtimeout = argc > 4 ? argv[4] : "10000";
	/* The same array as app/server.c's server_start. */
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
	struct mg_context *ctx;
	pthread_attr_t attr;
	sigset_t set;
	int sig;

	if (getenv("CEILING_LOG_LINE"))
		log_line = atoi(getenv("CEILING_LOG_LINE"));
	if (log_line)
		line_init();
	if (getenv("CEILING_SPIN_NS"))
		spin_ns = atol(getenv("CEILING_SPIN_NS"));
	if (getenv("HTTP_WORKER_NICE"))
		worker_nice = atoi(getenv("HTTP_WORKER_NICE"));
	snprintf(ports, sizeof(ports), "127.0.0.1:%s", argc > 1 ? argv[1] : "18090");
	for (int i = 0; i <= LINES_MAX; i++)
		if (with_cart(&ok200[i], "200 OK", i) ||
		    with_cart(&created201[i], "201 Created", i))
			return 1;
	nocontent204.pre_len = (size_t)snprintf(nocontent204.pre, sizeof(nocontent204.pre),
		"HTTP/1.1 204 No Content\r\nX-Request-Id: ");
	if (asprintf(&nocontent204.post, "\r\n%s\r\n", common_head) < 0)
		return 1;
	nocontent204.post_len = strlen(nocontent204.post);
	/* As app/main.c's set_thread_stacks (civetweb's workers keep its 100 KiB). */
	if (!pthread_attr_init(&attr)) {
		if (!pthread_attr_setstacksize(&attr, 256 * 1024))
			pthread_setattr_default_np(&attr);
		pthread_attr_destroy(&attr);
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	/* As app/server.c: civetweb's begin_request hook, ahead of its
	 * handler lookup and URI-to-file mapping. */
	memset(&cb, 0, sizeof(cb));
	cb.begin_request = on_begin_request;
	cb.init_thread = on_init_thread;
	ctx = mg_start(&cb, NULL, options);
	if (!ctx)
		return 1;
	sigwait(&set, &sig);
	mg_stop(ctx);
	return 0;
}
