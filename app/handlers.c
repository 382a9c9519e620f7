/*
 * The CONTENT phase: one handler per route and method.  Handlers only
 * translate: HTTP in, a cart_command (or a read) to the core with the
 * request's call context, the outcome back out through outcome.c.
 */
#include <string.h>

#include "app.h"
#include "json_in.h"
#include "metrics.h"
#include "outcome.h"
#include "preconditions.h"
#include "render.h"

static void handle_health(app_request *r)
{
	r->res->status = 200;
	r->res->content_type = "application/json";
	buf_puts(&r->res->body, "{\"status\":\"ok\"}");
}

/* Every registered check, then shutdown; 503 if any fails. */
static void handle_ready(app_request *r)
{
	const app_ctx *app = r->app;
	bool draining = atomic_load(&r->app->draining);
	bool ok = !draining;
	char detail[APP_MAX_READY_CHECKS][256];
	int err[APP_MAX_READY_CHECKS];
	buf *b = &r->res->body;

	for (size_t i = 0; i < app->ready_count; i++) {
		buf d;

		buf_init_on(&d, detail[i], sizeof(detail[i]), sizeof(detail[i]) - 1);
		err[i] = app->ready[i].check(app->ready[i].self, &d);
		if (d.failed)
			detail[i][0] = '\0';
		ok = ok && (err[i] == CART_OK || err[i] == APP_READY_DEGRADED);
	}
	r->res->status = ok ? 200 : 503;
	r->res->content_type = "application/json";
	buf_puts(b, ok ? "{\"status\":\"ok\",\"checks\":[" :
			 "{\"status\":\"unavailable\",\"checks\":[");
	for (size_t i = 0; i < app->ready_count; i++) {
		buf_puts(b, "{\"name\":");
		buf_json_str(b, app->ready[i].name);
		buf_puts(b, err[i] == CART_OK ? ",\"status\":\"ok\"" :
			    err[i] == APP_READY_DEGRADED ? ",\"status\":\"degraded\"" :
							   ",\"status\":\"fail\"");
		buf_puts(b, detail[i]);
		if (err[i] < 0) {
			buf_puts(b, ",\"error\":");
			buf_json_str(b, cart_strerror(err[i]));
		}
		buf_puts(b, "},");
	}
	buf_puts(b, "{\"name\":\"shutdown\",\"status\":");
	buf_puts(b, draining ? "\"fail\",\"detail\":\"shutting down\"}]}" : "\"ok\"}]}");
}

static void handle_get_cart(app_request *r)
{
	cart *c = NULL;
	int err = cart_service_get(r->app->svc, &r->call, r->user_id, &c);

	if (err) {
		outcome_read_failed(r, err);
		return;
	}
	outcome_send_cart(r, 200, c);
	outcome_set_etag(r->res, cart_version(c));
	cart_free(c);
}

static void handle_add_item(app_request *r)
{
	cart_command cmd = { .kind = CART_CMD_ADD_ITEM, .user_id = r->user_id };
	add_item_req in;
	input_error e;

	if (!pre_body_ok(r))
		return;
	if (json_parse_add_item(&in, r->body, r->body_len, &e)) {
		app_fail(r, 400, e.code, e.detail);
		return;
	}
	cmd.item = &in.spec;
	outcome_execute(r, &cmd);
	add_item_req_release(&in);
}

static void handle_set_quantity(app_request *r)
{
	cart_command cmd = { .kind = CART_CMD_SET_QUANTITY,
			     .user_id = r->user_id, .item_id = r->item_id };
	input_error e;

	if (!pre_body_ok(r))
		return;
	if (json_parse_set_quantity(&cmd.quantity, r->body, r->body_len, &e)) {
		app_fail(r, 400, e.code, e.detail);
		return;
	}
	outcome_execute(r, &cmd);
}

static void handle_remove_item(app_request *r)
{
	cart_command cmd = { .kind = CART_CMD_REMOVE_ITEM,
			     .user_id = r->user_id, .item_id = r->item_id };

	outcome_execute(r, &cmd);
}

static void handle_clear(app_request *r)
{
	cart_command cmd = { .kind = CART_CMD_CLEAR, .user_id = r->user_id };

	outcome_execute(r, &cmd);
}

int app_stage_content(app_request *r, void *self)
{
	const char *method = r->http->method;
	bool read = !strcmp(method, "GET") || r->head;

	(void)self;
	switch (r->route) {
	case ROUTE_HEALTH: handle_health(r); break;
	case ROUTE_READY: handle_ready(r); break;
	case ROUTE_METRICS: app_metrics_respond(r); break;
	case ROUTE_CART:
		if (read)
			handle_get_cart(r);
		else
			handle_clear(r);
		break;
	case ROUTE_ITEMS: handle_add_item(r); break;
	case ROUTE_ITEM:
		if (!strcmp(method, "PATCH"))
			handle_set_quantity(r);
		else
			handle_remove_item(r);
		break;
	default:
		return APP_NEXT;
	}
	return APP_DONE;
}
