#ifndef CART_ERROR_H
#define CART_ERROR_H

/*
 * Error codes returned by every fallible libcart function.  Only failures a
 * caller can act on have a name; everything else an adapter hits is
 * CART_EBACKEND, with the details in the adapter's log.
 */
typedef enum cart_err {
	CART_OK = 0,
	CART_EINVALID = -1,       /* input broke a domain rule; see cart_rule */
	CART_ENOTFOUND = -2,      /* the named item (or record) does not exist */
	CART_ECONFLICT = -3,      /* stored version moved on: reload and retry */
	CART_ENOMEM = -4,
	CART_EBACKEND = -5,       /* an adapter's dependency failed */
	CART_EPRECONDITION = -6,  /* If-Match named a version that is not current */
	CART_EIDEM_MISMATCH = -7, /* idempotency key reused for another request */
	CART_EIDEM_INFLIGHT = -8, /* idempotency key's first request still runs */
	CART_EUNAVAILABLE = -9,   /* dependency refused fast (e.g. open breaker) */
} cart_err;

/* Static text for an error code; never NULL, never freed. Thread-safe. */
const char *cart_strerror(int err);

#endif
