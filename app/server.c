/*
 * civetweb glue.  Measured pitfalls this file avoids: each response goes
 * out in one mg_write of a fully built buffer, with TCP_NODELAY, because
 * headers and body in separate writes cost ~44 ms per request through
 * Nagle and delayed ACK; and no TLS (Debian's civetweb crashes on the
 * first TLS connection with OpenSSL 3), so TLS ends at the load balancer.
 */
#include <civetweb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "render.h"
#include "server.h"

struct server {
	struct mg_context *ctx;
	app_ctx *app;
	atomic_int in_flight;   /* requests inside on_request */
};

static const char *conn_header(void *ctx, const char *name)
{
	return mg_get_header(ctx, name);
}

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Reads at most HTTP_MAX_BODY bytes; more sets *too_large. */
static size_t read_body(struct mg_connection *conn,
			const struct mg_request_info *ri, char *body,
			bool *too_large)
{
	const char *te = mg_get_header(conn, "Transfer-Encoding");
	size_t len = 0;

	*too_large = false;
	if (ri->content_length > HTTP_MAX_BODY) {
		*too_large = true;
		return 0;
	}
	if (ri->content_length <= 0 && !te)
		return 0;
	while (len <= HTTP_MAX_BODY) {
		int n = mg_read(conn, body + len, HTTP_MAX_BODY + 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (len > HTTP_MAX_BODY) {
		*too_large = true;
		return 0;
	}
	return len;
}

static void send_response(struct mg_connection *conn, const http_response *res,
			  bool head)
{
	buf out;

	buf_init(&out, HTTP_MAX_RESPONSE + 8192);
	buf_printf(&out, "HTTP/1.1 %d %s\r\n", res->status, http_reason(res->status));
	if (res->content_type)
		buf_printf(&out, "Content-Type: %s\r\n", res->content_type);
	if (res->status != 204)
		buf_printf(&out, "Content-Length: %zu\r\n", res->body.len);
	buf_printf(&out, "X-Request-Id: %s\r\nCache-Control: no-store\r\n",
		   res->request_id);
	if (res->close)
		buf_puts(&out, "Connection: close\r\n");
	if (res->headers.len)
		buf_put(&out, res->headers.data, res->headers.len);
	buf_puts(&out, "\r\n");
	if (!head && res->status != 204 && res->body.len)
		buf_put(&out, res->body.data, res->body.len);
	if (!out.failed)
		mg_write(conn, out.data, out.len);
	buf_release(&out);
}

static void log_request(const http_request *req, const http_response *res,
			double ms, const char *remote)
{
	char fields[512];
	log_level lvl = res->status >= 500 ? LOG_ERROR : LOG_INFO;

	if (!log_enabled(lvl))
		return;
	snprintf(fields, sizeof(fields),
		 ",\"method\":\"%.16s\",\"route\":\"%s\",\"status\":%d,"
		 "\"duration_ms\":%.3f,\"request_id\":\"%s\",\"bytes\":%zu,"
		 "\"remote\":\"%.47s\"",
		 req->method, res->route, res->status, ms, res->request_id,
		 res->body.len, remote);
	log_write(lvl, "request", fields);
}

static int on_request(struct mg_connection *conn, void *cbdata)
{
	server *srv = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	double t0 = mono_ms();
	char body[HTTP_MAX_BODY + 1];
	http_request req = { 0 };
	http_response res;
	char method[17];

	/* Method names are tokens; anything odd is logged safely. */
	snprintf(method, sizeof(method), "%s", ri->request_method);
	for (char *m = method; *m; m++)
		if (*m < 'A' || *m > 'Z')
			*m = '?';
	req.method = method;
	req.target = ri->local_uri_raw ? ri->local_uri_raw : ri->request_uri;
	req.header = conn_header;
	req.header_ctx = conn;
	req.body = body;

	atomic_fetch_add(&srv->in_flight, 1);
	req.body_len = read_body(conn, ri, body, &req.body_too_large);
	http_response_init(&res);
	app_handle(srv->app, &req, &res);
	/* While draining, ask keep-alive clients to go elsewhere. */
	if (atomic_load(&srv->app->draining))
		res.close = true;
	send_response(conn, &res, !strcmp(method, "HEAD"));
	atomic_fetch_sub(&srv->in_flight, 1);
	log_request(&req, &res, mono_ms() - t0, ri->remote_addr);
	http_response_release(&res);
	return res.status;
}

/*
 * civetweb's own errors (malformed request line or headers, headers too
 * large, bad Content-Length...) as problems like ours.  A Content-Length
 * civetweb cannot parse (its 411) is malformed input: 400.
 */
static int on_http_error(struct mg_connection *conn, int status,
			 const char *msg)
{
	server *srv = mg_get_user_data(mg_get_context(conn));
	http_response res;
	problem p = { status == 411 ? 400 : status,
		      status == 413 || status == 431 ? "cart.payload_too_large"
		      : status >= 500 ? "cart.internal_error" : "cart.invalid_request",
		      msg && *msg ? msg : "the request could not be read", -1 };

	http_response_init(&res);
	if (cart_ids_uuid(srv->app->ids, res.request_id))
		snprintf(res.request_id, sizeof(res.request_id), "unknown");
	render_problem(&res, &p, NULL);
	res.close = true;
	send_response(conn, &res, false);
	http_response_release(&res);
	return 0;
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

int server_start(server **out, app_ctx *app, char *err, size_t err_len)
{
	const app_config *cfg = app->cfg;
	char ports[96], threads[16], keepalive[16];
	const char *options[] = {
		"listening_ports", ports,
		"num_threads", threads,
		"tcp_nodelay", "1",
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", keepalive,
		"request_timeout_ms", "30000",
		"decode_url", "no",
		"listen_backlog", "1024",
		NULL
	};
	struct mg_callbacks cb;
	server *s;

	*out = NULL;
	snprintf(ports, sizeof(ports), "%s:%d", cfg->listen_addr, cfg->port);
	snprintf(threads, sizeof(threads), "%d", cfg->http_threads);
	snprintf(keepalive, sizeof(keepalive), "%d", cfg->keep_alive_timeout_ms);
	memset(&cb, 0, sizeof(cb));
	cb.http_error = on_http_error;
	cb.log_message = on_log_message;
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	s->app = app;
	s->ctx = mg_start(&cb, s, options);
	if (!s->ctx) {
		snprintf(err, err_len, "cannot listen on %s (in use, or not allowed)", ports);
		free(s);
		return -1;
	}
	mg_set_request_handler(s->ctx, "/", on_request, s);
	*out = s;
	return 0;
}

void server_stop(server *s)
{
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
	mg_stop(s->ctx);
	free(s);
}
