#ifndef CART_CALL_H
#define CART_CALL_H

/*
 * Who is calling, and for which request: the small context that travels
 * from the edge into the use cases (and, through them, to the ports), so
 * the core can decide authorization and adapters can log, trace and time
 * a call for the request that caused it (curl's per-transfer `data`).
 *
 * Everything is borrowed for the duration of the call.
 */

#include <stdbool.h>
#include <stdint.h>

/* The authenticated caller. */
typedef struct cart_principal {
	const char *sub;       /* subject; may act on the cart of this user id */
	bool admin;            /* may act on every user's cart */
} cart_principal;

typedef struct cart_call_ctx {
	const char *request_id;            /* for logs; may be NULL */
	const char *trace_id;              /* trace root ("1-5f..."); may be NULL */
	int64_t deadline_ms;               /* wall clock; 0: none */
	/*
	 * NULL: the caller is trusted (authentication is off, or a C program
	 * using the library directly).  Otherwise the use cases act only on
	 * the cart of principal->sub, unless principal->admin.
	 */
	const cart_principal *principal;
	/*
	 * The X-Ray trace header to hand on ("Root=...;Parent=...;Sampled=1"):
	 * the events this call records carry it.  NULL or "": none; a header
	 * longer than CART_TRACE_HEADER_MAX (cart/event.h) is not recorded.
	 */
	const char *trace_header;
} cart_call_ctx;

/*
 * true if call may act on user_id's cart.  A NULL call or principal is
 * trusted.  Pure and thread-safe.
 */
bool cart_call_may_access(const cart_call_ctx *call, const char *user_id);

#endif
