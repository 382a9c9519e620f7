#ifndef APP_PRECONDITIONS_H
#define APP_PRECONDITIONS_H

/*
 * Checks of a request before it reaches the core: the body's media type,
 * If-Match, Idempotency-Key, and the request fingerprint that says what
 * "the same request" means for idempotency.
 */

#include <stdbool.h>
#include <stdint.h>

#include "app.h"

/* 415 / 400 for the body of a POST or PATCH (answers r); true if usable. */
bool pre_body_ok(app_request *r);

/* If-Match: "5", 5, W/"5" or *; *out = -1 for none or *.  false if malformed. */
bool pre_parse_if_match(const char *v, int64_t *out);

/* 1-255 printable ASCII characters. */
bool pre_idem_key_valid(const char *k);

/* SHA-256 of method, path and body, as hex.  false on failure. */
bool pre_fingerprint(const app_request *r, char out[65]);

#endif
