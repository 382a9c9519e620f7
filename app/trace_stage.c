/*
 * The trace context of a request, as the X-Ray SDKs handle it: the
 * incoming X-Amzn-Trace-Id (else W3C traceparent) is honoured, a broken
 * or missing one replaced by a new root (never refused); the decision
 * is the header's, else the sampler's (X-Ray on) or "not sampled" (off).
 * Every response carries X-Amzn-Trace-Id: Root=...;Sampled=0|1.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "xray.h"

/* The incoming context, or a fresh root. */
static void incoming(app_request *r, app_trace_ctx *t, double now)
{
	if (!app_trace_parse_amzn(t, app_header(r, "X-Amzn-Trace-Id")) ||
	    !app_trace_parse_traceparent(t, app_header(r, "traceparent")))
		return;
	app_trace_new_root(t->root, (int64_t)now);
}

static bool decide(app_xray *x, const app_trace_ctx *t, double now)
{
	if (t->decision != APP_TRACE_UNDECIDED)
		return t->decision == APP_TRACE_SAMPLED;
	return x && app_xray_sample(x, (int64_t)(now * 1000));
}

int app_stage_trace(app_request *r, void *self)
{
	app_ctx *app = self;
	app_trace_ctx t;
	double now = (double)r->start_wall_us / 1e6;   /* the request's start */
	char header[CART_TRACE_HEADER_MAX + 1];
	const char *parent, *answer;

	if (r->trace_id[0])
		return APP_NEXT;   /* already done (civetweb's error path) */
	incoming(r, &t, now);
	r->sampled = decide(app->xray, &t, now);
	fmt_copy(r->trace_id, sizeof(r->trace_id), t.root, (size_t)-1);
	r->call.trace_id = r->trace_id;
	if (r->sampled && app->xray) {
		r->segment = app_xray_begin(app->xray, t.root, t.parent, now);
		app_xray_set_current(r->segment);
	}
	/* downstream, our segment is the parent; unrecorded, the caller's */
	parent = r->segment ? r->segment->id : t.parent;
	app_trace_format(r->trace_header, sizeof(r->trace_header), t.root,
			 parent, r->sampled);
	r->call.trace_header = r->trace_header;
	/* The answer's header has no Parent: without one the two are equal
	 * (X-Ray off and no caller's parent: most requests). */
	answer = r->trace_header;
	if (*parent) {
		app_trace_format(header, sizeof(header), t.root, NULL, r->sampled);
		answer = header;
	}
	http_response_header(r->res, "X-Amzn-Trace-Id", answer);
	return APP_NEXT;
}

int app_stage_trace_end(app_request *r, void *self)
{
	app_xray_http h;

	(void)self;
	if (!r->segment)
		return APP_NEXT;
	h = (app_xray_http){
		.method = r->http->method,
		.url = r->path[0] ? r->path : (r->http->target ? r->http->target : ""),
		.client_ip = r->http->remote_addr,
		.user_agent = app_header(r, "User-Agent"),
		.status = r->res->status,
		.content_length = r->head || r->res->status == 204 ? 0 : r->res->body.len,
		.route = r->res->route,
	};
	app_xray_end(r->segment, &h, app_xray_now());
	r->segment = NULL;
	app_xray_set_current(NULL);
	return APP_NEXT;
}
