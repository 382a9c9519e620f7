#ifndef CART_CALL_H
#define CART_CALL_H

/*
 * Who is calling, and for which request: the small context that travels
 * from the edge into the use cases, so the core can decide authorization
 * and copy the trace header into events (curl's per-transfer `data`).
 * Through the use cases it reaches the repository's cart reads and
 * writes (cart_repo_load and cart_write.call, cart/repo.h, port version
 * 3), so an adapter can log, trace and time a call for the request that
 * caused it and stop retrying at its deadline (the DynamoDB adapter
 * does).  The repository's idempotency and outbox methods, the clock,
 * ids and publisher ports get no call.
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
	/* wall clock (the clock port's ms); 0: none.  The app sets the
	 * request's start + REQUEST_TIMEOUT_MS. */
	int64_t deadline_ms;
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
