/*
 * The request pipeline and the route handlers.  app_handle is the one
 * place where cross-cutting steps run, in this order: request id, routing,
 * (authentication, rate limiting, metrics and tracing plug in here), the
 * handler.  Handlers only translate: HTTP in, a cart_command to the core,
 * the outcome back out through render.c.
 */
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cjson/cJSON.h"
#include "http.h"
#include "json_in.h"
#include "log.h"
#include "render.h"

void http_response_init(http_response *res)
{
	memset(res, 0, sizeof(*res));
	buf_init(&res->body, HTTP_MAX_RESPONSE);
	buf_init(&res->headers, 4096);
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

/* --- routing ------------------------------------------------------------ */

typedef enum route_id {
	ROUTE_NONE,
	ROUTE_HEALTH,
	ROUTE_READY,
	ROUTE_CART,
	ROUTE_ITEMS,
	ROUTE_ITEM,
} route_id;

static const struct route {
	route_id id;
	const char *pattern;
	const char *allow;
} routes[] = {
	{ ROUTE_NONE, "unmatched", "" },
	{ ROUTE_HEALTH, "/health", "GET" },
	{ ROUTE_READY, "/ready", "GET" },
	{ ROUTE_CART, "/v1/cart/{userID}", "GET, DELETE" },
	{ ROUTE_ITEMS, "/v1/cart/{userID}/items", "POST" },
	{ ROUTE_ITEM, "/v1/cart/{userID}/items/{itemID}", "PATCH, DELETE" },
};

#define MAX_SEGMENTS 6
#define SEGMENT_MAX 512   /* raw bytes; decoded ids are at most 128 */

typedef struct match {
	route_id route;
	char path[1024];                 /* raw path without query */
	char user_id[CART_ID_MAX + 1];   /* decoded; "" if not valid */
	char item_id[CART_ID_MAX + 1];
	bool ids_valid;
} match;

static int hexval(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Percent-decodes raw[0..len) into a valid id, or returns false. */
static bool decode_id(char out[CART_ID_MAX + 1], const char *raw, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)raw[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= len)
				return false;
			h = hexval(raw[i + 1]);
			l = hexval(raw[i + 2]);
			if (h < 0 || l < 0)
				return false;
			c = h * 16 + l;
			i += 2;
		}
		if (n >= CART_ID_MAX || c == 0)
			return false;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return cart_id_valid(out);
}

/* Splits the raw path into segments and picks the route. */
static void route_match(const char *target, match *m)
{
	const char *seg[MAX_SEGMENTS];
	size_t len[MAX_SEGMENTS];
	size_t n = 0, plen = strcspn(target, "?#");
	const char *p;

	memset(m, 0, sizeof(*m));
	if (plen >= sizeof(m->path) || target[0] != '/')
		return;
	memcpy(m->path, target, plen);
	for (p = m->path + 1;; ) {
		size_t l = strcspn(p, "/");
		if (n == MAX_SEGMENTS)
			return;
		seg[n] = p;
		len[n++] = l;
		if (!p[l])
			break;
		p += l + 1;
	}
#define SEG(i, s) (len[i] == strlen(s) && !memcmp(seg[i], s, len[i]))
	if (n == 1 && SEG(0, "health"))
		m->route = ROUTE_HEALTH;
	else if (n == 1 && SEG(0, "ready"))
		m->route = ROUTE_READY;
	else if (n >= 3 && n <= 5 && SEG(0, "v1") && SEG(1, "cart") &&
		 (n == 3 || SEG(3, "items")))
		m->route = n == 3 ? ROUTE_CART : n == 4 ? ROUTE_ITEMS : ROUTE_ITEM;
#undef SEG
	if (m->route >= ROUTE_CART) {
		m->ids_valid = decode_id(m->user_id, seg[2], len[2]) &&
			       (n < 5 || decode_id(m->item_id, seg[4], len[4]));
	}
}

static bool method_allowed(const char *allow, const char *method)
{
	size_t n = strlen(method);
	const char *p = allow;

	if (n == 0)
		return false;
	while ((p = strstr(p, method))) {
		if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
			return true;
		p += n;
	}
	return false;
}

/* --- request helpers ---------------------------------------------------- */

typedef struct req_ctx {
	app_ctx *app;
	const http_request *req;
	http_response *res;
	match m;
} req_ctx;

static const char *header(const req_ctx *rc, const char *name)
{
	return rc->req->header ? rc->req->header(rc->req->header_ctx, name) : NULL;
}

static void fail(req_ctx *rc, int status, const char *code, const char *detail)
{
	problem p = { status, code, detail, -1 };
	render_problem(rc->res, &p, rc->m.path[0] ? rc->m.path : NULL);
}

static bool is_json_type(const char *ct)
{
	size_t n;

	while (*ct == ' ')
		ct++;
	n = strcspn(ct, "; \t");
	if (n == 16 && !strncasecmp(ct, "application/json", 16))
		return true;
	/* application/<something>+json, e.g. application/merge-patch+json */
	return n > 17 && !strncasecmp(ct, "application/", 12) &&
	       !strncasecmp(ct + n - 5, "+json", 5);
}

/* 413 / 415 / 400 for the body of a POST or PATCH; true if usable. */
static bool body_ok(req_ctx *rc)
{
	const char *ct = header(rc, "Content-Type");

	if (rc->req->body_too_large) {
		rc->res->close = true;
		fail(rc, 413, "cart.payload_too_large",
		     "request body is larger than 16384 bytes");
		return false;
	}
	if ((rc->req->body_len || ct) && (!ct || !is_json_type(ct))) {
		fail(rc, 415, "cart.unsupported_media_type",
		     "request body must be application/json");
		return false;
	}
	if (!rc->req->body_len) {
		fail(rc, 400, "cart.invalid_json", "request body is required");
		return false;
	}
	return true;
}

/* If-Match: "5", 5, W/"5" or *; -1 for none. false if malformed. */
static bool parse_if_match(const char *v, int64_t *out)
{
	bool weak = false, quoted = false;
	char *end;
	long long n;

	*out = -1;
	if (!v)
		return true;
	while (*v == ' ')
		v++;
	if (!strcmp(v, "*"))
		return true;
	if (!strncmp(v, "W/", 2)) {
		weak = true;
		v += 2;
	}
	if (*v == '"') {
		quoted = true;
		v++;
	}
	if ((weak && !quoted) || *v < '0' || *v > '9')
		return false;   /* a weak tag is always quoted */
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || n < 0 || (quoted && *end++ != '"'))
		return false;
	while (*end == ' ')
		end++;
	if (*end)
		return false;
	*out = n;
	return true;
}

static bool idem_key_valid(const char *k)
{
	size_t n = 0;

	for (; k[n]; n++)
		if ((unsigned char)k[n] < 0x21 || (unsigned char)k[n] > 0x7e)
			return false;
	return n >= 1 && n <= CART_IDEM_KEY_MAX;
}

/* SHA-256 of method, path and body, as hex: what "the same request" means. */
static bool fingerprint(const req_ctx *rc, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
		  EVP_DigestUpdate(ctx, rc->req->method, strlen(rc->req->method) + 1) &&
		  EVP_DigestUpdate(ctx, rc->m.path, strlen(rc->m.path) + 1) &&
		  EVP_DigestUpdate(ctx, rc->req->body ? rc->req->body : "",
				   rc->req->body_len) &&
		  EVP_DigestFinal_ex(ctx, md, &mdlen);

	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; ok && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return ok;
}

/* --- outcomes ----------------------------------------------------------- */

static void set_etag(http_response *res, int64_t version)
{
	char tag[32];
	snprintf(tag, sizeof(tag), "\"%lld\"", (long long)version);
	http_response_header(res, "ETag", tag);
}

static void send_cart(req_ctx *rc, int status, const cart *c)
{
	buf_reset(&rc->res->body);
	rc->res->status = status;
	rc->res->content_type = "application/json";
	render_cart(&rc->res->body, c);
}

/* The HTTP form of an outcome: the same bytes for a first answer and for
 * the idempotency record that will replay it. */
static void render_outcome(req_ctx *rc, const cart_result *r,
			   cart_cmd_kind kind)
{
	if (r->err == CART_OK && kind == CART_CMD_CLEAR) {
		buf_reset(&rc->res->body);
		rc->res->status = 204;
		rc->res->content_type = NULL;
	} else if (r->err == CART_OK) {
		send_cart(rc, r->created ? 201 : 200, r->cart);
	} else {
		problem p = problem_for(r->err, r->rule);
		p.current_version = r->err == CART_EPRECONDITION ? r->current_version : -1;
		render_problem(rc->res, &p, rc->m.path);
	}
}

typedef struct render_ctx {
	req_ctx *rc;
	cart_cmd_kind kind;
} render_ctx;

/* cart_render_fn: the core asks for the bytes of a stored outcome. */
static int render_for_record(void *ctx, const cart_result *res, int *status,
			     char **body, size_t *body_len)
{
	render_ctx *r = ctx;

	render_outcome(r->rc, res, r->kind);
	*status = r->rc->res->status;
	if (r->rc->res->body.failed)
		return CART_ENOMEM;
	*body = NULL;
	*body_len = r->rc->res->body.len;
	if (*body_len && !(*body = malloc(*body_len)))
		return CART_ENOMEM;
	if (*body_len)
		memcpy(*body, r->rc->res->body.data, *body_len);
	return CART_OK;
}

/* A stored outcome, sent again as it was, with the version as ETag. */
static void send_replay(req_ctx *rc, const cart_result *r)
{
	http_response *res = rc->res;

	buf_reset(&res->body);
	buf_put(&res->body, r->body ? r->body : "", r->body_len);
	res->status = r->status;
	res->content_type = r->status == 204 ? NULL
			    : r->status < 300 ? "application/json"
					      : "application/problem+json";
	http_response_header(res, "Idempotent-Replayed", "true");
	if (r->status < 300 && r->body_len) {
		cJSON *doc = cJSON_ParseWithLength(r->body, r->body_len);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "version");
		if (cJSON_IsNumber(v))
			set_etag(res, (int64_t)v->valuedouble);
		cJSON_Delete(doc);
	}
}

/* 503 from a refusing dependency: come back when the breaker may let a
 * probe through. */
static void set_retry_after(req_ctx *rc)
{
	char secs[16];

	snprintf(secs, sizeof(secs), "%d", rc->app->cfg->breaker_open_seconds);
	http_response_header(rc->res, "Retry-After", secs);
}

/* A failure of ours or of a dependency: the client sees 5xx, we log why. */
static void log_backend_error(const req_ctx *rc, const cart_result *r)
{
	char fields[256];

	snprintf(fields, sizeof(fields), ",\"request_id\":\"%s\",\"error\":\"%s\"",
		 rc->res->request_id, cart_strerror(r->err));
	log_write(LOG_ERROR, "cart command failed", fields);
}

/* Runs cmd and turns the outcome into the response. */
static void execute(req_ctx *rc, cart_command *cmd)
{
	const char *key = header(rc, "Idempotency-Key");
	const char *im = header(rc, "If-Match");
	render_ctx rctx = { rc, cmd->kind };
	char fp[65];
	cart_result r;

	if (!parse_if_match(im, &cmd->if_match)) {
		fail(rc, 400, "cart.invalid_if_match",
		     "If-Match must be a quoted version such as \"3\", or *");
		return;
	}
	if (key && !idem_key_valid(key)) {
		fail(rc, 400, "cart.invalid_idempotency_key",
		     "Idempotency-Key must be 1-255 printable ASCII characters");
		return;
	}
	if (key) {
		if (!fingerprint(rc, fp)) {
			fail(rc, 500, "cart.internal_error", "could not hash the request");
			return;
		}
		cmd->idem_key = key;
		cmd->fingerprint = fp;
		cmd->render = render_for_record;
		cmd->render_ctx = &rctx;
	}
	cart_service_execute(rc->app->svc, cmd, &r);
	if (r.replayed)
		send_replay(rc, &r);
	else if (r.body && r.err == CART_OK)
		rc->res->status = r.status;   /* already rendered into res */
	else
		render_outcome(rc, &r, cmd->kind);
	if (!r.replayed && r.err == CART_OK && r.cart && cmd->kind != CART_CMD_CLEAR)
		set_etag(rc->res, cart_version(r.cart));
	if (r.err == CART_OK && !r.replayed)
		relay_kick_signal(rc->app->kick);   /* its event is in the outbox */
	if (r.err == CART_EUNAVAILABLE)
		set_retry_after(rc);
	if (r.err == CART_EBACKEND || r.err == CART_ENOMEM)
		log_backend_error(rc, &r);
	cart_result_release(&r);
}

/* --- handlers ----------------------------------------------------------- */

static void handle_health(req_ctx *rc)
{
	rc->res->status = 200;
	rc->res->content_type = "application/json";
	buf_puts(&rc->res->body, "{\"status\":\"ok\"}");
}

static void handle_ready(req_ctx *rc)
{
	bool draining = atomic_load(&rc->app->draining);
	int repo = cart_repo_ping(rc->app->repo);
	bool ok = !draining && repo == CART_OK;
	buf *b = &rc->res->body;

	rc->res->status = ok ? 200 : 503;
	rc->res->content_type = "application/json";
	buf_puts(b, ok ? "{\"status\":\"ok\"" : "{\"status\":\"unavailable\"");
	buf_puts(b, ",\"checks\":[{\"name\":\"repository\",\"backend\":");
	buf_json_str(b, rc->app->cfg->storage_backend);
	buf_puts(b, ",\"status\":");
	buf_puts(b, repo == CART_OK ? "\"ok\"" : "\"fail\"");
	if (repo != CART_OK) {
		buf_puts(b, ",\"error\":");
		buf_json_str(b, cart_strerror(repo));
	}
	if (rc->app->dynamo) {
		buf_puts(b, ",\"circuitBreaker\":");
		buf_json_str(b, cart_breaker_state_name(
					cart_aws_client_breaker_state(rc->app->dynamo)));
	}
	buf_puts(b, "},{\"name\":\"shutdown\",\"status\":");
	buf_puts(b, draining ? "\"fail\",\"detail\":\"shutting down\"}]}" : "\"ok\"}]}");
}

static void handle_get_cart(req_ctx *rc)
{
	cart *c = NULL;
	int err = cart_service_get(rc->app->svc, rc->m.user_id, &c);

	if (err) {
		problem p = problem_for(err, CART_RULE_NONE);
		cart_result r = { .err = err };
		render_problem(rc->res, &p, rc->m.path);
		if (err == CART_EUNAVAILABLE)
			set_retry_after(rc);
		else
			log_backend_error(rc, &r);
		return;
	}
	send_cart(rc, 200, c);
	set_etag(rc->res, cart_version(c));
	cart_free(c);
}

static void handle_add_item(req_ctx *rc)
{
	cart_command cmd = { .kind = CART_CMD_ADD_ITEM, .user_id = rc->m.user_id };
	add_item_req in;
	input_error e;

	if (!body_ok(rc))
		return;
	if (json_parse_add_item(&in, rc->req->body, rc->req->body_len, &e)) {
		fail(rc, 400, e.code, e.detail);
		return;
	}
	cmd.item = &in.spec;
	execute(rc, &cmd);
	add_item_req_release(&in);
}

static void handle_set_quantity(req_ctx *rc)
{
	cart_command cmd = { .kind = CART_CMD_SET_QUANTITY,
			     .user_id = rc->m.user_id, .item_id = rc->m.item_id };
	input_error e;

	if (!body_ok(rc))
		return;
	if (json_parse_set_quantity(&cmd.quantity, rc->req->body,
				    rc->req->body_len, &e)) {
		fail(rc, 400, e.code, e.detail);
		return;
	}
	execute(rc, &cmd);
}

static void handle_remove_item(req_ctx *rc)
{
	cart_command cmd = { .kind = CART_CMD_REMOVE_ITEM,
			     .user_id = rc->m.user_id, .item_id = rc->m.item_id };
	execute(rc, &cmd);
}

static void handle_clear(req_ctx *rc)
{
	cart_command cmd = { .kind = CART_CMD_CLEAR, .user_id = rc->m.user_id };
	execute(rc, &cmd);
}

static void dispatch(req_ctx *rc)
{
	const char *method = rc->req->method;

	switch (rc->m.route) {
	case ROUTE_HEALTH: handle_health(rc); break;
	case ROUTE_READY: handle_ready(rc); break;
	case ROUTE_CART:
		if (!strcmp(method, "GET"))
			handle_get_cart(rc);
		else
			handle_clear(rc);
		break;
	case ROUTE_ITEMS: handle_add_item(rc); break;
	case ROUTE_ITEM:
		if (!strcmp(method, "PATCH"))
			handle_set_quantity(rc);
		else
			handle_remove_item(rc);
		break;
	case ROUTE_NONE: break;
	}
}

/* --- the pipeline ------------------------------------------------------- */

static bool request_id_valid(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && !strchr("._:-", s[n]))
			return false;
	return n >= 1 && n <= CART_ID_MAX;
}

static void assign_request_id(req_ctx *rc)
{
	const char *given = header(rc, "X-Request-Id");

	if (given && request_id_valid(given))
		snprintf(rc->res->request_id, sizeof(rc->res->request_id), "%s", given);
	else if (cart_ids_uuid(rc->app->ids, rc->res->request_id))
		snprintf(rc->res->request_id, sizeof(rc->res->request_id), "unknown");
}

void app_handle(app_ctx *app, const http_request *req, http_response *res)
{
	req_ctx rc = { app, req, res, { 0 } };
	const struct route *rt;

	assign_request_id(&rc);
	route_match(req->target ? req->target : "", &rc.m);
	rt = &routes[rc.m.route];
	res->route = rt->pattern;
	if (rc.m.route == ROUTE_NONE) {
		fail(&rc, 404, "cart.not_found", "no such resource");
		return;
	}
	if (!method_allowed(rt->allow, req->method)) {
		http_response_header(res, "Allow", rt->allow);
		fail(&rc, 405, "cart.method_not_allowed",
		     "this resource does not support the method");
		return;
	}
	if (rc.m.route >= ROUTE_CART && !rc.m.ids_valid) {
		fail(&rc, 400, "cart.invalid_id",
		     "userID and itemID are 1-128 characters of A-Z a-z 0-9 . _ : @ - (percent-decoded)");
		return;
	}
	/* Cross-cutting steps (auth, rate limits, tracing) belong here. */
	dispatch(&rc);
	if (res->body.failed) {
		buf_release(&res->body);
		buf_init(&res->body, HTTP_MAX_RESPONSE);
		fail(&rc, 500, "cart.internal_error", "response could not be built");
	}
}
