#ifndef CART_ERROR_H
#define CART_ERROR_H

/*
 * Error codes returned by every fallible libcart function.  Only failures a
 * caller can act on have a name; everything else an adapter hits is
 * CART_EBACKEND, with the details in the adapter's log.
 *
 * CART_ERROR_MAP is the one table of errors (libuv's UV_ERRNO_MAP): it
 * expands into the enum, cart_strerror, cart_err_name and, in app/, the
 * HTTP problem for each code, so adding an error is one line.  Columns:
 *
 *   X(NAME, value, "log name", "message", http status, "problem code",
 *     "problem detail")
 *
 * The core reads only the first four; the last three are the HTTP view
 * that app/ renders (kept here so the table stays one table; nothing in
 * lib/ looks at them).  CART_EINVALID's problem is refined per rule.
 */
#define CART_ERROR_MAP(X)                                                     \
	X(OK, 0, "ok", "success", 200, "cart.ok", "")                          \
	X(EINVALID, -1, "invalid", "invalid input", 422, "cart.invalid",       \
	  "the request breaks a cart rule")                                    \
	X(ENOTFOUND, -2, "not_found", "not found", 404, "cart.item_not_found", \
	  "the cart has no item with this id")                                 \
	X(ECONFLICT, -3, "conflict", "version conflict", 409,                  \
	  "cart.concurrent_modification",                                      \
	  "the cart kept changing concurrently; retry the request")            \
	X(ENOMEM, -4, "no_memory", "out of memory", 500, "cart.internal_error", \
	  "an internal error occurred")                                        \
	X(EBACKEND, -5, "backend", "backend failure", 503, "cart.unavailable", \
	  "the cart store failed; retry later")                                \
	X(EPRECONDITION, -6, "precondition", "precondition failed", 412,       \
	  "cart.version_mismatch",                                             \
	  "If-Match does not name the cart's current version")                 \
	X(EIDEM_MISMATCH, -7, "idempotency_mismatch", "idempotency key reused",\
	  422, "cart.idempotency_key_reused",                                  \
	  "this Idempotency-Key was used for a different request")             \
	X(EIDEM_INFLIGHT, -8, "idempotency_in_flight",                         \
	  "idempotent request in flight", 409, "cart.idempotency_in_flight",   \
	  "a request with this Idempotency-Key is still being processed")      \
	X(EUNAVAILABLE, -9, "unavailable", "dependency unavailable", 503,      \
	  "cart.unavailable", "a dependency is unavailable; retry later")      \
	X(EACCESS, -10, "access_denied", "not this principal's cart", 404,     \
	  "cart.not_found", "no such cart")                                    \
	X(EBACKLOG, -11, "events_backlog", "too many events waiting", 503,     \
	  "cart.events_backlog",                                               \
	  "too many of this cart's (or this server's) events are waiting to "  \
	  "be published; retry after Retry-After")

typedef enum cart_err {
#define CART_ERR_ENUM(name, value, str, msg, http, code, detail) \
	CART_##name = value,
	CART_ERROR_MAP(CART_ERR_ENUM)
#undef CART_ERR_ENUM
} cart_err;

/* Static text for an error code; never NULL, never freed. Thread-safe. */
const char *cart_strerror(int err);

/* Stable snake_case name for logs and metrics labels ("not_found"). */
const char *cart_err_name(int err);

#endif
