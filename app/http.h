#ifndef APP_HTTP_H
#define APP_HTTP_H

/*
 * The service's view of one HTTP exchange, independent of civetweb, so
 * the whole request pipeline can be unit-tested and fuzzed in-process.
 * server.c fills an http_request from civetweb; tests fill it by hand.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cart/cart.h"

#define HTTP_MAX_BODY 16384          /* larger request bodies get 413 */
#define HTTP_MAX_RESPONSE (1 << 20)
#define HTTP_MAX_HEADERS 64          /* civetweb keeps this many lines */
#define HTTP_MAX_PATH 8192           /* longer request targets get 414 */

/* Case-insensitive lookup of the first header called name, NULL if absent. */
typedef const char *(*http_header_fn)(void *ctx, const char *name);
/* How many header lines are called name (case-insensitive). */
typedef int (*http_header_count_fn)(void *ctx, const char *name);

/*
 * Reads up to len body bytes, like mg_read: > 0 bytes read, 0 the peer
 * closed, < 0 an error.  *timed_out is set when the request's read
 * deadline (REQUEST_TIMEOUT_MS) cut the read short.
 */
typedef int (*http_read_fn)(void *ctx, char *buf, size_t len, bool *timed_out);

typedef struct http_request {
	const char *method;
	const char *target;          /* raw request target: path[?query], "*", or absolute */
	const char *remote_addr;     /* peer address, for logs and rate limits */
	http_header_fn header;
	http_header_count_fn header_count;   /* NULL: every name counts once */
	void *header_ctx;
	int header_lines;            /* header lines the server kept */
	http_read_fn read;           /* NULL: no body can be read */
	void *read_ctx;
} http_request;

typedef struct http_response {
	int status;
	const char *content_type;    /* NULL: no body */
	buf body;
	buf headers;                 /* extra "Name: value\r\n" lines */
	const char *route;           /* route pattern, for logs and metrics */
	char request_id[CART_ID_MAX + 1];
	bool close;                  /* send Connection: close, then close */
} http_response;

void http_response_init(http_response *res);
void http_response_release(http_response *res);   /* accepts NULL */
/*
 * Empties res for the next request on the same thread, keeping the
 * buffers' storage up to HTTP_KEEP_BYTES each (so a GET allocates
 * nothing once its thread has served one like it; the server frees them
 * when the worker's connection closes).
 */
void http_response_reset(http_response *res);
#define HTTP_KEEP_BYTES 8192
/* Appends "name: value\r\n" to the extra headers. */
void http_response_header(http_response *res, const char *name,
			  const char *value);

/* Standard reason phrase for a status code; never NULL. */
const char *http_reason(int status);

#endif
