#ifndef APP_RENDER_H
#define APP_RENDER_H

/* Responses: cart JSON, RFC 9457 problems, and the one error-to-HTTP table. */

#include "buf.h"
#include "cart/cart.h"
#include "cart/service.h"
#include "app.h"

/* Writes the cart document (the API's Cart schema). */
void render_cart(buf *b, const cart *c);

typedef struct problem {
	int status;
	const char *code;            /* "cart.item_not_found" */
	const char *detail;
	long long current_version;   /* < 0: omitted */
} problem;

/*
 * Sets res to an application/problem+json response.  instance is the
 * request path (may be NULL).
 */
void render_problem(http_response *res, const problem *p, const char *instance);

/* The problem for a cart_err outcome (and rule, for CART_EINVALID). */
problem problem_for(int err, cart_rule rule);

#endif
