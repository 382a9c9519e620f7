#ifndef APP_RATELIMIT_H
#define APP_RATELIMIT_H

/*
 * Rate limiting at the edge (PREACCESS, after authentication): one GCRA
 * budget per caller on the /v1 routes -- the token's sub, or without one
 * the client address (X-Forwarded-For only from TRUSTED_PROXIES).  The
 * limiter is per process (memory) or shared by every task (Redis).
 *
 * Every limited response carries the IETF RateLimit and RateLimit-Policy
 * fields; a refusal is 429 with Retry-After.  With Redis unreachable the
 * decision follows RATE_LIMIT_ON_STORE_FAILURE: allow (counted) or deny
 * (503, since the caller is not over its limit).
 */

#include "app.h"
#include "cart/limiter.h"

typedef struct app_ratelimit app_ratelimit;

int app_ratelimit_new(app_ratelimit **out, const app_config *cfg,
		      const cart_clock *clock, char *err, size_t err_len);
/* The same, with the Redis password from a secret (NULL: REDIS_URL's). */
int app_ratelimit_new_auth(app_ratelimit **out, const app_config *cfg,
			   const cart_clock *clock, const char *redis_password,
			   char *err, size_t err_len);
/* The Redis password rotated: connections log in again with it.  -1 if
 * the store is not Redis.  Thread-safe. */
int app_ratelimit_set_redis_password(app_ratelimit *rl, const char *password);
void app_ratelimit_free(app_ratelimit *rl);   /* accepts NULL */

/* The limiter's counters (for logs and metrics). */
void app_ratelimit_stats(const app_ratelimit *rl, cart_limiter_stats *out);
/* app_stats_fn over the same counters. */
void app_ratelimit_stats_json(void *self, buf *out);

/*
 * The address to limit: the peer, or -- when the peer is a trusted proxy
 * -- the rightmost X-Forwarded-For entry that is not a trusted proxy.
 * out is at least 48 bytes.  Exposed for tests.
 */
void app_ratelimit_client_ip(const app_ratelimit *rl, const char *peer,
			     const char *xff, char *out, size_t out_len);

int app_stage_ratelimit(app_request *r, void *self);   /* self: app_ratelimit */
/*
 * A ROUTE stage where callers are authenticated: warms the limiter for
 * the routed cart's owner, the likely caller (cart_limiter_warm), so
 * that key's misses overlap authentication.  A hint only.
 */
int app_stage_ratelimit_warm(app_request *r, void *self);   /* self: app_ratelimit */

#endif
