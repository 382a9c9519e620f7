/*
 * The READ phase: refuse what cannot be framed safely, then read the body
 * completely or not at all.  civetweb 1.15 is lenient (it keeps the first
 * 64 header lines and drops the rest, takes the first of two
 * Content-Length headers, and parses "74abc" as 74), and each of those is
 * a request-smuggling vector behind a load balancer that reads the same
 * bytes differently.  Every refusal here closes the connection, because
 * the bytes that follow cannot be trusted to start a request.
 */
#include <string.h>
#include <strings.h>

#include "app.h"

static int refuse(app_request *r, int status, const char *code,
		  const char *detail)
{
	r->res->close = true;
	return app_fail(r, status, code, detail);
}

static int header_count(const app_request *r, const char *name)
{
	const http_request *h = r->http;

	if (h->header_count)
		return h->header_count(h->header_ctx, name);
	return app_header(r, name) ? 1 : 0;
}

/* Content-Length is 1*DIGIT (RFC 9110 8.6): no sign, no spaces, no suffix. */
static bool parse_length(const char *v, int64_t *out)
{
	int64_t n = 0;
	size_t i = 0;

	for (; v[i]; i++) {
		if (v[i] < '0' || v[i] > '9' || i >= 18)
			return false;
		n = n * 10 + (v[i] - '0');
	}
	*out = n;
	return i > 0;
}

int app_stage_framing(app_request *r, void *self)
{
	const char *cl = app_header(r, "Content-Length");

	(void)self;
	if (r->http->header_lines >= HTTP_MAX_HEADERS)
		return refuse(r, 431, "cart.headers_too_large",
			      "the request has 64 or more header lines");
	if (app_header(r, "Transfer-Encoding"))
		return refuse(r, 400, "cart.invalid_framing",
			      "Transfer-Encoding is not accepted; send Content-Length");
	if (cl && header_count(r, "Content-Length") > 1)
		return refuse(r, 400, "cart.invalid_framing",
			      "more than one Content-Length header");
	if (cl && !parse_length(cl, &r->content_length))
		return refuse(r, 400, "cart.invalid_framing",
			      "Content-Length must be a decimal number of bytes");
	if (r->content_length > HTTP_MAX_BODY)
		return refuse(r, 413, "cart.payload_too_large",
			      "request body is larger than 16384 bytes");
	return APP_NEXT;
}

int app_stage_read_body(app_request *r, void *self)
{
	const http_request *h = r->http;
	size_t want = r->content_length > 0 ? (size_t)r->content_length : 0;
	size_t got = 0;
	bool timed_out = false;

	(void)self;
	r->body = r->body_buf;
	while (got < want && h->read) {
		int n = h->read(h->read_ctx, r->body_buf + got, want - got, &timed_out);
		if (n <= 0 || timed_out)
			break;
		got += (size_t)n;
	}
	r->body_len = got;
	if (got == want && !timed_out)
		return APP_NEXT;
	/* Never execute a request whose body did not arrive whole. */
	if (timed_out)
		return refuse(r, 408, "cart.request_timeout",
			      "the request body did not arrive within the request timeout");
	return refuse(r, 400, "cart.incomplete_body",
		      "the connection ended before Content-Length bytes of body arrived");
}
