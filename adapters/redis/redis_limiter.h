#ifndef CART_REDIS_LIMITER_H
#define CART_REDIS_LIMITER_H

/*
 * A rate limiter (cart/limiter.h) whose state lives in Redis, so every
 * process of the service shares one limit per key.
 *
 * One round trip per take: EVALSHA of a Lua GCRA script that reads the
 * clock with redis.call('TIME') (one clock for all processes), keeps the
 * key's TAT in microseconds under prefix + key, and sets it to expire when
 * the key's bucket is full again, so idle keys vanish.  The script is
 * loaded with SCRIPT LOAD; after NOSCRIPT (Redis restarted or the script
 * cache was flushed) it is loaded again and the call retried once.
 * T = 1 s / rate is rounded to a whole microsecond: an error below 0.5 us
 * per request (1.5 ppm at 3/s, 0.05% at 1000/s).
 *
 * Connections: a fixed pool of pool_size hiredis connections, each used by
 * one take at a time.  A take waits at most command_timeout_ms for a free
 * one, and a whole take never blocks longer than connect_timeout_ms +
 * command_timeout_ms (plus scheduling): each step gets what is left of
 * that budget.  A connection that failed or timed out is closed (a late
 * reply would desynchronise it) and opened again by a later take.  After a
 * failure new connections are attempted at most once per reconnect_ms for
 * the whole pool, so a Redis that is down costs a request no I/O most of
 * the time; the first success opens the gate again.  Name resolution
 * (getaddrinfo) is not covered by the timeouts: use an address, or a name
 * the local resolver answers at once.
 *
 * When Redis fails (refused, timed out, an error reply) take returns
 * CART_EBACKEND with the failure policy's decision (degraded = true),
 * counted in stats.store_errors: CART_LIMIT_FAIL_ALLOW (the default) lets
 * the request through so the cart stays up without Redis,
 * CART_LIMIT_FAIL_DENY refuses it.  See cart_limit_decision_fail.
 *
 * Thread-safe.  SIGPIPE is blocked in the calling thread around socket
 * writes (the process's signal disposition is left alone).  Standalone
 * Redis (or a primary endpoint) >= 5; no cluster mode, no TLS.
 */

#include <stddef.h>

#include "cart/limiter.h"

typedef enum cart_limit_on_failure {
	CART_LIMIT_FAIL_ALLOW = 0,   /* fail open (default) */
	CART_LIMIT_FAIL_DENY = 1,    /* fail closed */
} cart_limit_on_failure;

#define CART_REDIS_PREFIX_MAX 64
#define CART_REDIS_POOL_MAX 64

typedef struct cart_redis_limiter_config {
	/* redis://[[user]:password@]host[:port][/db]; port 6379, db 0 by
	 * default; user and password may be %-encoded; host may be [IPv6]. */
	const char *url;
	/* NULL: the url's password, if any.  Else the password (<= 255
	 * bytes; the url must then hold none), e.g. from a secret. */
	const char *password;
	cart_limit_policy policy;
	const char *key_prefix;        /* default "cart:rl:"; <= 64 bytes */
	int connect_timeout_ms;        /* default 50; 1..10000 */
	int command_timeout_ms;        /* default 5; 1..10000 */
	int pool_size;                 /* default 8; 1..CART_REDIS_POOL_MAX */
	int reconnect_ms;              /* default 100; 1..60000 */
	cart_limit_on_failure on_failure;
	/* Optional: where the store going down and coming back is logged
	 * (once per change).  level 1 info, 2 warn; fields: JSON members,
	 * each starting with a comma.  The app's logger fits. */
	void (*log)(void *ctx, int level, const char *msg, const char *fields);
	void *log_ctx;
} cart_redis_limiter_config;

/* The defaults above; url NULL, policy zero (must be set). */
void cart_redis_limiter_config_init(cart_redis_limiter_config *cfg);

/*
 * Fills *out with a Redis limiter and opens one connection to load the
 * script.  If Redis cannot be reached the limiter is made anyway (it is
 * degraded until Redis answers; logged); if Redis answers with an error
 * (a wrong password, a database that does not exist) that is a
 * configuration error.
 *
 * CART_EINVALID (a bad url or setting) or CART_EBACKEND (Redis refused
 * the setup), each with a one-line reason in err that never contains the
 * password; CART_ENOMEM.  cfg's strings are copied.  Release with
 * cart_limiter_destroy(out).
 */
int cart_redis_limiter_new(cart_limiter *out,
			   const cart_redis_limiter_config *cfg, char *err,
			   size_t err_len);

/*
 * A new password (its secret rotated): connections that logged in with
 * the old one are closed when next lent to a take and log in again with
 * this one; the reconnect gate opens.  CART_EINVALID if l is not a Redis
 * limiter or the password is longer than 255 bytes.  Thread-safe.
 */
int cart_redis_limiter_set_password(cart_limiter *l, const char *password);

#endif
