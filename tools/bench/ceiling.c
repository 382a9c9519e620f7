/*
 * The ceiling for `make bench`: bare civetweb started with the service's
 * options (app/server.c: server_start, and main.c's default thread
 * attributes), answering every path the way the service answers the bench's
 * requests, with fixed bytes:
 *
 *   GET                          200, a 3-line cart (the seeded shape)
 *   POST .../items               201, the cart  (the body is read first)
 *   PATCH .../items/{id}         200, the cart  (the body is read first)
 *   DELETE .../items/{id}        200, the cart  (as the service)
 *   DELETE /v1/cart/{id}         204, no body
 *
 * The head carries the service's header set (request id, trace id, rate
 * limit, ETag) with fixed values, so both sides put the same bytes on the
 * wire; like the service, it echoes the caller's X-Request-Id.  Nothing the service does per request (routing, JSON, the core,
 * auth, rate limiting, logs, metrics) happens here, so service/ceiling is
 * the cost of our own code.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char cart_body[] =
	"{\"cartId\":\"4006c9b7-da58-4033-95ba-b7ba8a7a4b1f\",\"userId\":\"u-1234\",\"items\":["
	"{\"itemId\":\"s-0\",\"quantity\":2,\"unitPrice\":{\"amount\":1999,\"currency\":\"EUR\"},"
	"\"lineTotal\":{\"amount\":3998,\"currency\":\"EUR\"},\"name\":\"Bench item 0\",\"attributes\":{},"
	"\"addedAt\":\"2026-11-27T17:25:02.531Z\",\"updatedAt\":\"2026-11-27T17:25:02.531Z\"},"
	"{\"itemId\":\"s-1\",\"quantity\":2,\"unitPrice\":{\"amount\":1999,\"currency\":\"EUR\"},"
	"\"lineTotal\":{\"amount\":3998,\"currency\":\"EUR\"},\"name\":\"Bench item 1\",\"attributes\":{},"
	"\"addedAt\":\"2026-11-27T17:25:02.560Z\",\"updatedAt\":\"2026-11-27T17:25:02.560Z\"},"
	"{\"itemId\":\"s-2\",\"quantity\":2,\"unitPrice\":{\"amount\":1999,\"currency\":\"EUR\"},"
	"\"lineTotal\":{\"amount\":3998,\"currency\":\"EUR\"},\"name\":\"Bench item 2\",\"attributes\":{},"
	"\"addedAt\":\"2026-11-27T17:25:02.585Z\",\"updatedAt\":\"2026-11-27T17:25:02.585Z\"}],"
	"\"itemCount\":6,\"subtotal\":{\"amount\":11994,\"currency\":\"EUR\"},\"version\":3,"
	"\"createdAt\":\"2026-11-27T17:25:02.531Z\",\"updatedAt\":\"2026-11-27T17:25:02.585Z\","
	"\"expiresAt\":\"2026-12-27T17:25:02.000Z\"}";

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
	char pre[256], post[2048];
	size_t pre_len, post_len;
};
static struct answer ok200, created201, nocontent204;

static void with_cart(struct answer *a, const char *status)
{
	a->pre_len = (size_t)snprintf(a->pre, sizeof(a->pre),
		"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		"X-Request-Id: ", status, strlen(cart_body));
	a->post_len = (size_t)snprintf(a->post, sizeof(a->post), "\r\n%sETag: \"3\"\r\n\r\n%s",
				       common_head, cart_body);
}

static void answer(struct mg_connection *conn, const struct answer *a)
{
	const char *id = mg_get_header(conn, "X-Request-Id");
	char out[4096];
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

/* Reads and drops the request body, as the service reads every byte of it. */
static void drain_body(struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	long long left = ri->content_length > 0 ? ri->content_length : 0;
	char buf[4096];

	while (left > 0) {
		int n = mg_read(conn, buf, left < (long long)sizeof(buf) ? (size_t)left : sizeof(buf));
		if (n <= 0)
			break;
		left -= n;
	}
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

static int on_begin_request(struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *m = ri->request_method;
	const char *uri = ri->local_uri ? ri->local_uri : "";

	if (!strcmp(m, "POST")) {
		drain_body(conn);
		answer(conn, &created201);
		return 201;
	}
	if (!strcmp(m, "PATCH")) {
		drain_body(conn);
		answer(conn, &ok200);
		return 200;
	}
	if (!strcmp(m, "DELETE") && !strstr(uri, "/items/")) {
		answer(conn, &nocontent204);
		return 204;
	}
	answer(conn, &ok200);   /* GET, DELETE of a line */
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

	if (getenv("HTTP_WORKER_NICE"))
		worker_nice = atoi(getenv("HTTP_WORKER_NICE"));
	snprintf(ports, sizeof(ports), "127.0.0.1:%s", argc > 1 ? argv[1] : "18090");
	with_cart(&ok200, "200 OK");
	with_cart(&created201, "201 Created");
	nocontent204.pre_len = (size_t)snprintf(nocontent204.pre, sizeof(nocontent204.pre),
		"HTTP/1.1 204 No Content\r\nX-Request-Id: ");
	nocontent204.post_len = (size_t)snprintf(nocontent204.post, sizeof(nocontent204.post),
		"\r\n%s\r\n", common_head);
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
