#ifndef APP_AUTH_H
#define APP_AUTH_H

/*
 * Authentication at the edge: a bearer JWT (adapters/jwt) becomes the
 * request's principal, which the core uses to decide authorization (a
 * user acts on their own cart; an admin on any).  Two stages:
 *
 *   PREACCESS  app_stage_authenticate: verifies the token if there is one
 *              and records the principal or the reason it was refused, but
 *              does not answer, so the rate limiter still counts callers
 *              with bad tokens (by address).
 *   ACCESS     app_stage_require_auth: 401 for /v1 routes without a valid
 *              token (RFC 6750 WWW-Authenticate).
 *
 * /health, /ready and OPTIONS never need a token.
 */

#include "app.h"
#include "cart/ports.h"

typedef struct app_auth app_auth;

/* From AUTH_ENABLED's JWT_* settings; loads the keys now.  err: one line.
 * jwks_doc (NULL: JWT_JWKS_FILE or JWT_JWKS_URL) is the JWKS document
 * read from a secret (app/secrets.h), copied. */
int app_auth_new(app_auth **out, const app_config *cfg, const cart_clock *clock,
		 const char *jwks_doc, size_t jwks_len, char *err, size_t err_len);
/* The JWKS secret rotated: its keys replace the old ones (on an unusable
 * document the old keys stay, logged, counted in the jwks stats).
 * Thread-safe. */
int app_auth_set_jwks(app_auth *a, const char *doc, size_t len);
void app_auth_free(app_auth *a);   /* accepts NULL */

/* app_stats_fn: key refreshes, failures, keys held, last refresh error,
 * the verified-token cache's counters. */
void app_auth_stats(void *self, buf *out);
/* The verified-token cache in the Prometheus text format (JWT_CACHE_ENTRIES
 * 0: capacity 0, no lookups).  a NULL (auth off): nothing. */
void app_auth_metrics(app_auth *a, buf *out);

int app_stage_authenticate(app_request *r, void *self);   /* self: app_auth */
int app_stage_require_auth(app_request *r, void *self);   /* self: app_auth */

#endif
