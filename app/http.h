#ifndef APP_HTTP_H
#define APP_HTTP_H

/*
 * The service's view of one HTTP exchange, independent of civetweb, so
 * the whole request pipeline can be unit-tested and fuzzed in-process.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#include "aws/aws.h"
#include "buf.h"
#include "cart/ports.h"
#include "cart/repo.h"
#include "cart/service.h"
#include "config.h"

#define HTTP_MAX_BODY 16384          /* larger request bodies get 413 */
#define HTTP_MAX_RESPONSE (1 << 20)

typedef const char *(*http_header_fn)(void *ctx, const char *name);

typedef struct http_request {
	const char *method;
	const char *target;          /* raw request target: path[?query] */
	http_header_fn header;       /* case-insensitive lookup, NULL if absent */
	void *header_ctx;
	const char *body;            /* body_len bytes (not NUL-terminated) */
	size_t body_len;
	bool body_too_large;         /* more than HTTP_MAX_BODY was sent */
} http_request;

typedef struct http_response {
	int status;
	const char *content_type;    /* NULL: no body */
	buf body;
	buf headers;                 /* extra "Name: value\r\n" lines */
	const char *route;           /* route pattern, for logs and metrics */
	char request_id[CART_ID_MAX + 1];
	bool close;                  /* send Connection: close */
} http_response;

void http_response_init(http_response *res);
void http_response_release(http_response *res);
/* Appends "name: value\r\n" to the extra headers. */
void http_response_header(http_response *res, const char *name,
			  const char *value);

/*
 * Wakes the event relay after a commit, so events leave at once instead of
 * at the next poll.  Signalling is cheap and never blocks a request.
 */
typedef struct relay_kick {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending;                 /* guarded by lock */
} relay_kick;

void relay_kick_signal(relay_kick *k);            /* accepts NULL */
/* Sleeps up to ms, less if kicked; clears the kick. */
void relay_kick_wait(relay_kick *k, int64_t ms);

/* Everything a request needs; shared read-only by all worker threads. */
typedef struct app_ctx {
	const app_config *cfg;
	cart_service *svc;
	const cart_repo *repo;
	const cart_ids *ids;
	cart_aws_client *dynamo;     /* NULL unless STORAGE_BACKEND=dynamodb */
	relay_kick *kick;            /* NULL when this process does not relay */
	atomic_int draining;         /* set once shutdown begins */
} app_ctx;

/*
 * Runs the request pipeline: request id, routing, (the seam for auth,
 * rate limits, metrics and tracing), the handler.  Always fills res.
 * Thread-safe.
 */
void app_handle(app_ctx *app, const http_request *req, http_response *res);

/* Standard reason phrase for a status code. */
const char *http_reason(int status);

#endif
