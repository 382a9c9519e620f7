/*
 * Rendering of outcomes.  The same bytes go to the client and into the
 * idempotency record that will replay them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart/relay.h"
#include "cjson/cJSON.h"
#include "flags.h"
#include "outcome.h"
#include "preconditions.h"
#include "render.h"

void outcome_set_etag(http_response *res, int64_t version)
{
	char tag[32];
	size_t n;

	tag[0] = '"';
	n = 1 + fmt_i64(tag + 1, version);
	tag[n] = '"';
	tag[n + 1] = '\0';
	http_response_header(res, "ETag", tag);
}

void outcome_send_cart(app_request *r, int status, const cart *c)
{
	buf_reset(&r->res->body);
	r->res->status = status;
	r->res->content_type = "application/json";
	render_cart(&r->res->body, c);
}

static void render_outcome(app_request *r, const cart_result *res,
			   cart_cmd_kind kind)
{
	if (res->err == CART_OK && kind == CART_CMD_CLEAR) {
		buf_reset(&r->res->body);
		r->res->status = 204;
		r->res->content_type = NULL;
	} else if (res->err == CART_OK) {
		outcome_send_cart(r, res->created ? 201 : 200, res->cart);
	} else {
		problem p = problem_for(res->err, res->rule);
		p.current_version = res->err == CART_EPRECONDITION ?
				    res->current_version : -1;
		render_problem(r->res, &p, r->path);
	}
}

typedef struct render_ctx {
	app_request *r;
	cart_cmd_kind kind;
} render_ctx;

/* cart_render_fn: the core asks for the bytes of a stored outcome. */
static int render_for_record(void *ctx, const cart_result *res, int *status,
			     char **body, size_t *body_len)
{
	render_ctx *rc = ctx;
	http_response *out = rc->r->res;

	render_outcome(rc->r, res, rc->kind);
	*status = out->status;
	if (out->body.failed)
		return CART_ENOMEM;
	*body = NULL;
	*body_len = out->body.len;
	if (*body_len && !(*body = malloc(*body_len)))
		return CART_ENOMEM;
	if (*body_len)
		memcpy(*body, out->body.data, *body_len);
	return CART_OK;
}

/*
 * A stored problem names the request that produced it.  Its replay is
 * another request with its own X-Request-Id, the id this response's
 * header and log line carry, so the replayed problem's requestId is the
 * replay's (an RFC 9457 extension member describes this occurrence);
 * every other member is sent as stored.  Falls back to the stored bytes
 * if they cannot be rewritten (out of memory).
 */
static void put_replayed_problem(http_response *out, const char *body, size_t len)
{
	cJSON *doc = cJSON_ParseWithLength(body, len);
	cJSON *id = doc ? cJSON_CreateString(out->request_id) : NULL;
	char *text = NULL;

	if (id && cJSON_IsObject(doc) &&
	    cJSON_GetObjectItemCaseSensitive(doc, "requestId") &&
	    cJSON_ReplaceItemInObjectCaseSensitive(doc, "requestId", id)) {
		id = NULL;   /* owned by doc now */
		text = cJSON_PrintUnformatted(doc);
	}
	if (text)
		buf_puts(&out->body, text);
	else
		buf_put(&out->body, body, len);
	cJSON_free(text);
	cJSON_Delete(id);
	cJSON_Delete(doc);
}

/* A stored outcome, sent again as it was, with the version as ETag. */
static void send_replay(app_request *r, const cart_result *res)
{
	http_response *out = r->res;

	buf_reset(&out->body);
	if (res->status >= 400 && res->body_len && out->request_id[0])
		put_replayed_problem(out, res->body, res->body_len);
	else
		buf_put(&out->body, res->body ? res->body : "", res->body_len);
	out->status = res->status;
	out->content_type = res->status == 204 ? NULL
			    : res->status < 300 ? "application/json"
						: "application/problem+json";
	http_response_header(out, "Idempotent-Replayed", "true");
	if (res->status < 300 && res->body_len) {
		cJSON *doc = cJSON_ParseWithLength(res->body, res->body_len);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "version");
		if (cJSON_IsNumber(v))
			outcome_set_etag(out, (int64_t)v->valuedouble);
		cJSON_Delete(doc);
	}
}

/* 503 from a refusing dependency: come back when the breaker may let a
 * probe through. */
static void set_retry_after(app_request *r)
{
	char secs[16];

	snprintf(secs, sizeof(secs), "%d", r->app->cfg->breaker_open_seconds);
	http_response_header(r->res, "Retry-After", secs);
}

/*
 * 503 cart.events_backlog: come back when the relay has had time to drain
 * what is pending at its measured rate (1..60 s; 60 when nothing drains,
 * e.g. the bus is down or this process does not relay).
 */
static void set_backlog_retry_after(app_request *r)
{
	cart_relay_stats st = { 0 };
	int64_t secs = 60;
	char v[16];

	if (r->app->relay) {
		cart_relay_stats_get(r->app->relay, &st);
		if (st.delivered_per_s)
			secs = (int64_t)((st.backlog + st.delivered_per_s - 1) /
					 st.delivered_per_s);
	}
	secs = secs < 1 ? 1 : secs > 60 ? 60 : secs;
	snprintf(v, sizeof(v), "%lld", (long long)secs);
	http_response_header(r->res, "Retry-After", v);
}

/*
 * A failure of ours or of a dependency: the client sees 5xx and the access
 * line names the error ("a failure is logged once": the adapter that saw
 * the dependency fail logged its details, the app adds no line of its own).
 */
static void note_backend_error(app_request *r, int err)
{
	if (err == CART_EBACKEND || err == CART_ENOMEM || err == CART_EUNAVAILABLE)
		r->error = cart_err_name(err);
}

void outcome_read_failed(app_request *r, int err)
{
	problem p = problem_for(err, CART_RULE_NONE);

	render_problem(r->res, &p, r->path);
	if (err == CART_EUNAVAILABLE)
		set_retry_after(r);
	note_backend_error(r, err);
}

void outcome_execute(app_request *r, cart_command *cmd)
{
	const char *key = app_header(r, "Idempotency-Key");
	const char *im = app_header(r, "If-Match");
	render_ctx rctx = { r, cmd->kind };
	app_flags_snapshot flags = app_flags_get(r->app->flags);
	char fp[65];
	cart_result res;

	/* RFC 6585 428: the feature flags that make these headers required. */
	if (!im && app_flags_on(flags, APP_FLAG_REQUIRE_IF_MATCH)) {
		app_fail(r, 428, "cart.if_match_required",
			 "changes need If-Match with the cart's ETag (or *)");
		return;
	}
	if (!key && app_flags_on(flags, APP_FLAG_IDEMPOTENCY_REQUIRED)) {
		app_fail(r, 428, "cart.idempotency_key_required",
			 "changes need an Idempotency-Key header");
		return;
	}
	if (!pre_parse_if_match(im, &cmd->if_match)) {
		app_fail(r, 400, "cart.invalid_if_match",
			 "If-Match must be a quoted version such as \"3\", or *");
		return;
	}
	if (key && !pre_idem_key_valid(key)) {
		app_fail(r, 400, "cart.invalid_idempotency_key",
			 "Idempotency-Key must be 1-255 printable ASCII characters");
		return;
	}
	if (key) {
		if (!pre_fingerprint(r, fp)) {
			app_fail(r, 500, "cart.internal_error", "could not hash the request");
			return;
		}
		cmd->idem_key = key;
		cmd->fingerprint = fp;
		cmd->render = render_for_record;
		cmd->render_ctx = &rctx;
	}
	cmd->call = &r->call;
	cart_service_execute(r->app->svc, cmd, &res);
	r->replayed = res.replayed;
	if (res.replayed)
		send_replay(r, &res);
	else if (res.body && res.err == CART_OK)
		r->res->status = res.status;   /* already rendered into res */
	else
		render_outcome(r, &res, cmd->kind);
	if (!res.replayed && res.err == CART_OK && res.cart &&
	    cmd->kind != CART_CMD_CLEAR)
		outcome_set_etag(r->res, cart_version(res.cart));
	if (res.err == CART_OK && !res.replayed)
		r->kick_relay = true;   /* its event is in the outbox */
	if (res.err == CART_EUNAVAILABLE)
		set_retry_after(r);
	if (res.err == CART_EBACKLOG)
		set_backlog_retry_after(r);
	note_backend_error(r, res.err);
	cart_result_release(&res);
}
