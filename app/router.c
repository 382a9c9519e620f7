/*
 * The ROUTE phase: which resource, which method, which ids.  Answers
 * OPTIONS itself (before authentication, so CORS preflights and load
 * balancer probes need no token) and refuses unknown paths (404), methods
 * (405 with Allow) and ids (400).  HEAD is GET without a body (RFC 9110).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "app.h"

static const struct route {
	app_route id;
	const char *pattern;         /* for logs and metrics labels */
	const char *allow;           /* the Allow header */
} routes[ROUTE_COUNT] = {
	{ ROUTE_NONE, "unmatched", "" },
	{ ROUTE_HEALTH, "/health", "GET, HEAD, OPTIONS" },
	{ ROUTE_READY, "/ready", "GET, HEAD, OPTIONS" },
	{ ROUTE_METRICS, "/metrics", "GET, HEAD, OPTIONS" },
	{ ROUTE_CART, "/v1/cart/{userID}", "GET, HEAD, DELETE, OPTIONS" },
	{ ROUTE_ITEMS, "/v1/cart/{userID}/items", "POST, OPTIONS" },
	{ ROUTE_ITEM, "/v1/cart/{userID}/items/{itemID}", "PATCH, DELETE, OPTIONS" },
	{ ROUTE_ASTERISK, "*", "GET, HEAD, POST, PATCH, DELETE, OPTIONS" },
};

const char *app_route_pattern(app_route route)
{
	return route < ROUTE_COUNT ? routes[route].pattern : routes[ROUTE_NONE].pattern;
}

#define MAX_SEGMENTS 6

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

/*
 * The path of an origin-form or absolute-form target (RFC 9112 3.2: a
 * server must accept "http://host/path"; the authority is not ours to
 * check, the load balancer routed it here).  NULL for anything else.
 */
static const char *target_path(const char *t)
{
	if (!strncasecmp(t, "http://", 7) || !strncasecmp(t, "https://", 8)) {
		const char *p = strchr(t, ':') + 3;
		p += strcspn(p, "/?#");
		return *p == '/' ? p : "/";
	}
	return t[0] == '/' ? t : NULL;
}

/* Splits the raw path into segments and picks the route. */
static void route_match(app_request *r, const char *path, size_t plen)
{
	const char *seg[MAX_SEGMENTS];
	size_t len[MAX_SEGMENTS];
	size_t n = 0;
	const char *p;

	memcpy(r->path, path, plen);
	r->path[plen] = '\0';
	for (p = r->path + 1;; ) {
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
		r->route = ROUTE_HEALTH;
	else if (n == 1 && SEG(0, "ready"))
		r->route = ROUTE_READY;
	else if (n == 1 && SEG(0, "metrics") && r->app->metrics)
		r->route = ROUTE_METRICS;
	else if (n >= 3 && n <= 5 && SEG(0, "v1") && SEG(1, "cart") &&
		 (n == 3 || SEG(3, "items")))
		r->route = n == 3 ? ROUTE_CART : n == 4 ? ROUTE_ITEMS : ROUTE_ITEM;
#undef SEG
	if (r->route >= ROUTE_CART && r->route <= ROUTE_ITEM)
		r->ids_valid = decode_id(r->user_id, seg[2], len[2]) &&
			       (n < 5 || decode_id(r->item_id, seg[4], len[4]));
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

/* 204 with Allow: what the resource (or, for "*", the server) supports. */
static int answer_options(app_request *r, const char *allow)
{
	buf_reset(&r->res->body);
	r->res->status = 204;
	r->res->content_type = NULL;
	http_response_header(r->res, "Allow", allow);
	return APP_DONE;
}

int app_stage_route(app_request *r, void *self)
{
	const char *method = r->http->method ? r->http->method : "";
	const char *target = r->http->target ? r->http->target : "";
	const char *path = target_path(target);
	const struct route *rt;
	size_t plen;

	(void)self;
	if (!strcmp(target, "*")) {
		r->res->route = routes[ROUTE_ASTERISK].pattern;
		r->route = ROUTE_ASTERISK;
		strcpy(r->path, "*");
		if (!strcmp(method, "OPTIONS"))
			return answer_options(r, routes[ROUTE_ASTERISK].allow);
		return app_fail(r, 400, "cart.invalid_request",
				"the * target is only meaningful for OPTIONS");
	}
	if (!path) {
		snprintf(r->path, sizeof(r->path), "%s", target);
		return app_fail(r, 400, "cart.invalid_request",
				"the request target must be a path");
	}
	plen = strcspn(path, "?#");
	if (plen >= sizeof(r->path)) {
		r->res->close = true;
		return app_fail(r, 414, "cart.uri_too_long",
				"the request path is longer than 8191 bytes");
	}
	route_match(r, path, plen);
	rt = &routes[r->route];
	r->res->route = rt->pattern;
	if (r->route == ROUTE_NONE)
		return app_fail(r, 404, "cart.not_found", "no such resource");
	r->head = !strcmp(method, "HEAD");
	if (!method_allowed(rt->allow, method)) {
		http_response_header(r->res, "Allow", rt->allow);
		return app_fail(r, 405, "cart.method_not_allowed",
				"this resource does not support the method");
	}
	if (!strcmp(method, "OPTIONS"))
		return answer_options(r, rt->allow);
	if (r->route >= ROUTE_CART && !r->ids_valid)
		return app_fail(r, 400, "cart.invalid_id",
				"userID and itemID are 1-128 characters of A-Z a-z 0-9 . _ : @ - (percent-decoded)");
	/* The store's first misses overlap authentication (cart_repo_warm). */
	if (r->route >= ROUTE_CART && r->app->svc)
		cart_service_warm(r->app->svc, r->user_id);
	return APP_NEXT;
}

int app_stage_warm_next(app_request *r, void *self)
{
	app_ctx *app = self;

	if (r->route >= ROUTE_CART && r->ids_valid && app->svc)
		cart_service_warm_next(app->svc, r->user_id);
	return APP_NEXT;
}
