/*
 * The request pipeline: nginx's phases as arrays of stages filled at
 * wiring time.  READ, ROUTE, PREACCESS, ACCESS and CONTENT run in order
 * until a stage answers; LOG always runs, after the response went out.
 * Adding a cross-cutting step is one app_pipeline_add call in main.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "app.h"
#include "log.h"
#include "render.h"
#include "trace.h"

int app_pipeline_add(app_pipeline *p, app_phase phase, const char *name,
		     app_stage_fn fn, void *self)
{
	if (phase >= APP_PHASE_COUNT || !fn || p->count[phase] >= APP_MAX_STAGES)
		return -1;
	p->stages[phase][p->count[phase]++] = (app_stage){ name, fn, self };
	return 0;
}

int app_pipeline_add_front(app_pipeline *p, app_phase phase, const char *name,
			   app_stage_fn fn, void *self)
{
	app_stage *st;

	if (phase >= APP_PHASE_COUNT || !fn || p->count[phase] >= APP_MAX_STAGES)
		return -1;
	st = p->stages[phase];
	memmove(st + 1, st, p->count[phase]++ * sizeof(*st));
	st[0] = (app_stage){ name, fn, self };
	return 0;
}

int app_pipeline_init_default(app_pipeline *p, app_ctx *app)
{
	memset(p, 0, sizeof(*p));
	return app_pipeline_add(p, APP_PHASE_READ, "trace", app_stage_trace, app) |
	       app_pipeline_add(p, APP_PHASE_READ, "framing", app_stage_framing, app) |
	       app_pipeline_add(p, APP_PHASE_READ, "body", app_stage_read_body, app) |
	       app_pipeline_add(p, APP_PHASE_ROUTE, "route", app_stage_route, app) |
	       app_pipeline_add(p, APP_PHASE_CONTENT, "content", app_stage_content, app) |
	       app_pipeline_add(p, APP_PHASE_LOG, "relay_kick", app_stage_relay_kick, app) |
	       app_pipeline_add(p, APP_PHASE_LOG, "trace_end", app_stage_trace_end, app) |
	       app_pipeline_add(p, APP_PHASE_LOG, "access_log", app_stage_access_log, app);
}

int64_t app_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int64_t app_request_end_ns(app_request *r)
{
	if (!r->end_ns)
		r->end_ns = app_mono_ns();
	return r->end_ns;
}

/*
 * A random UUID (version 4 layout) from this thread's generator, seeded
 * once from getrandom (app_trace_rand64): no system call per request.
 * Request ids need to be unique, not secret.
 */
static void new_request_id(char out[CART_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = app_trace_rand64(), b = app_trace_rand64();
	unsigned char u[16];
	size_t o = 0;

	for (int i = 0; i < 8; i++) {
		u[i] = (unsigned char)(a >> (8 * i));
		u[8 + i] = (unsigned char)(b >> (8 * i));
	}
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);   /* version 4 */
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[u[i] >> 4];
		out[o++] = hex[u[i] & 15];
	}
	out[o] = '\0';
}

static bool request_id_valid(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && !strchr("._:-", s[n]))
			return false;
	return n >= 1 && n <= CART_ID_MAX;
}

const char *app_header(const app_request *r, const char *name)
{
	const http_request *h = r->http;

	return h->header ? h->header(h->header_ctx, name) : NULL;
}

void app_request_init(app_request *r, app_ctx *app, const http_request *http,
		      http_response *res)
{
	const char *given;

	/* The big buffers are filled before use; clear only the small state. */
	memset(r, 0, offsetof(app_request, path));
	r->path[0] = '\0';
	r->user_id[0] = r->item_id[0] = '\0';
	r->ids_valid = r->authenticated = r->auth_log_only = false;
	r->sub[0] = r->rate_key[0] = r->trace_id[0] = r->trace_header[0] = '\0';
	r->sampled = false;
	r->segment = NULL;
	r->auth_failure = r->error = NULL;
	r->replayed = r->metrics_in_flight = r->kick_relay = false;
	r->principal = (cart_principal){ NULL, false };
	r->app = app;
	r->http = http;
	r->res = res;
	r->start_ns = app_mono_ns();
	r->start_wall_us = wall_us();
	r->end_ns = 0;
	r->content_length = -1;
	r->deadline_ms = r->start_wall_us / 1000 + (app->cfg ? app->cfg->request_timeout_ms : 10000);
	given = app_header(r, "X-Request-Id");
	if (given && request_id_valid(given))
		fmt_copy(res->request_id, sizeof(res->request_id), given, (size_t)-1);
	else
		new_request_id(res->request_id);
	r->call = (cart_call_ctx){ res->request_id, NULL, r->deadline_ms, NULL, NULL };
	/* Every line this thread logs until the LOG phase ends is the request's. */
	log_request_begin(res->request_id, r->trace_id);
}

int app_fail(app_request *r, int status, const char *code, const char *detail)
{
	problem p = { status, code, detail, -1 };
	const char *t = r->http->target;

	/* Refused before routing: the instance is still the request's path. */
	if (!r->path[0] && t && *t)
		fmt_copy(r->path, sizeof(r->path), t, strcspn(t, "?#"));
	render_problem(r->res, &p, r->path[0] ? r->path : NULL);
	return APP_DONE;
}

/* Runs one phase; APP_DONE as soon as a stage answered. */
static int run_phase(const app_pipeline *p, app_phase ph, app_request *r)
{
	for (size_t i = 0; i < p->count[ph]; i++)
		if (p->stages[ph][i].fn(r, p->stages[ph][i].self) == APP_DONE)
			return APP_DONE;
	return APP_NEXT;
}

void app_pipeline_run(const app_pipeline *p, app_request *r)
{
	int done = APP_NEXT;

	for (int ph = APP_PHASE_READ; ph < APP_PHASE_LOG && done == APP_NEXT; ph++)
		done = run_phase(p, (app_phase)ph, r);
	if (done == APP_NEXT)
		app_fail(r, 404, "cart.not_found", "no such resource");
	if (r->res->body.failed) {
		buf_release(&r->res->body);
		buf_init(&r->res->body, HTTP_MAX_RESPONSE);
		app_fail(r, 500, "cart.internal_error", "response could not be built");
	}
	/* Framing and body errors leave bytes we will not parse: close. */
	if (r->res->status >= 400 && r->content_length > 0)
		r->res->close = true;
}

void app_pipeline_log(const app_pipeline *p, app_request *r)
{
	run_phase(p, APP_PHASE_LOG, r);
	log_request_end();
}

void app_handle(app_ctx *app, const http_request *http, http_response *res)
{
	app_request *r = malloc(sizeof(*r));

	if (!r) {
		problem pr = { 503, "cart.unavailable", "out of memory", -1 };
		render_problem(res, &pr, NULL);
		return;
	}
	app_request_init(r, app, http, res);
	app_pipeline_run(&app->pipeline, r);
	app_pipeline_log(&app->pipeline, r);
	free(r);
}

int app_ready_add(app_ctx *app, const char *name, app_ready_fn check, void *self)
{
	if (!check || app->ready_count >= APP_MAX_READY_CHECKS)
		return -1;
	app->ready[app->ready_count++] = (app_ready_check){ name, check, self };
	return 0;
}

int app_stats_add(app_ctx *app, const char *name, app_stats_fn fn, void *self)
{
	if (!fn || app->stats_count >= APP_MAX_STATS)
		return -1;
	app->stats[app->stats_count++] = (app_stats_source){ name, fn, self };
	return 0;
}

void app_stats_write(const app_ctx *app, buf *out)
{
	for (size_t i = 0; i < app->stats_count; i++) {
		size_t at;

		buf_puts(out, ",");
		buf_json_str(out, app->stats[i].name);
		buf_puts(out, ":{");
		at = out->len;
		app->stats[i].fn(app->stats[i].self, out);
		/* members start with a comma; the object's first must not */
		if (out->len > at && !out->failed && out->data[at] == ',')
			memmove(out->data + at, out->data + at + 1, out->len - at), out->len--;
		buf_puts(out, "}");
	}
}

/* --- responses ------------------------------------------------------------ */

void http_response_init(http_response *res)
{
	memset(res, 0, sizeof(*res));
	buf_init(&res->body, HTTP_MAX_RESPONSE);
	buf_init(&res->headers, 4096);
	res->route = "unmatched";
}

void http_response_reset(http_response *res)
{
	buf body = res->body, headers = res->headers;

	buf_reset_keep(&body, HTTP_KEEP_BYTES);
	buf_reset_keep(&headers, HTTP_KEEP_BYTES);
	memset(res, 0, sizeof(*res));
	res->body = body;
	res->headers = headers;
	res->route = "unmatched";
}

void http_response_release(http_response *res)
{
	if (!res)
		return;
	buf_release(&res->body);
	buf_release(&res->headers);
}

void http_response_header(http_response *res, const char *name,
			  const char *value)
{
	buf_puts(&res->headers, name);
	buf_puts(&res->headers, ": ");
	buf_puts(&res->headers, value);
	buf_puts(&res->headers, "\r\n");
}
