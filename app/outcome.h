#ifndef APP_OUTCOME_H
#define APP_OUTCOME_H

/*
 * A use case's outcome as HTTP: the cart, 204, a problem, a replayed
 * idempotency record; ETag and Retry-After; the log line of a failure.
 */

#include "app.h"
#include "cart/service.h"

/* 200/201 with the cart document. */
void outcome_send_cart(app_request *r, int status, const cart *c);
void outcome_set_etag(http_response *res, int64_t version);

/*
 * Runs cmd through the core and renders the outcome (first answer or
 * replay), with ETag, Retry-After and the relay kick after a commit.
 */
void outcome_execute(app_request *r, cart_command *cmd);

/* A read's failure (CART_EACCESS, EUNAVAILABLE, EBACKEND...) as a problem. */
void outcome_read_failed(app_request *r, int err);

#endif
