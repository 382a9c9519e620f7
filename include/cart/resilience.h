#ifndef CART_RESILIENCE_H
#define CART_RESILIENCE_H

/*
 * Retries and a circuit breaker for calls to remote dependencies, kept
 * apart from any one adapter so every AWS adapter shares the same rules.
 * Pure logic over the clock and ids ports: no I/O, no sleeping here.
 *
 * Retry follows the AWS SDKs' "standard" mode: at most max_attempts
 * attempts, full-jitter exponential backoff
 * (random(0, min(cap, base * 2^(attempt-1)))), and a token bucket shared
 * by all calls (quota): a retry costs retry_cost tokens (timeout_cost
 * after a timeout), a success returns success_refund; with too few tokens
 * the call is not retried.
 *
 * The breaker is closed, open or half-open.  Closed: outcomes are counted
 * in a sliding window of window_ms; when at least min_calls were seen and
 * the failure rate reaches failure_rate_pct, it opens.  Open: every call
 * is refused for open_ms, then it turns half-open.  Half-open: up to
 * half_open_probes calls go through; if all succeed it closes, the first
 * failure opens it again.
 *
 * Both objects are thread-safe.
 */

#include <stdbool.h>
#include <stdint.h>

#include "cart/ports.h"

typedef struct cart_retry_config {
	int max_attempts;          /* default 3 */
	int64_t base_ms;           /* default 100 */
	int64_t cap_ms;            /* default 20000 */
	int quota;                 /* default 500 */
	int retry_cost;            /* default 5 */
	int timeout_cost;          /* default 10 */
	int success_refund;        /* default 1 */
} cart_retry_config;

void cart_retry_config_init(cart_retry_config *cfg);

typedef struct cart_retry cart_retry;

/* ids is borrowed (jitter); caller owns *out. */
int cart_retry_new(cart_retry **out, const cart_retry_config *cfg,
		   const cart_ids *ids);
void cart_retry_free(cart_retry *r);   /* accepts NULL */

/*
 * After failed attempt number `attempt` (1-based) of a retryable error:
 * true if another attempt may go, with *delay_ms to wait first; takes the
 * tokens.  false when attempts or quota are exhausted.
 */
bool cart_retry_next(cart_retry *r, int attempt, bool timeout,
		     int64_t *delay_ms);
/* A call succeeded: refunds success_refund tokens (up to the quota). */
void cart_retry_success(cart_retry *r);
/*
 * The retry cart_retry_next just allowed (with the same timeout) is not
 * made after all, say because its backoff would end past the caller's
 * deadline: gives back the tokens it took (up to the quota), since an
 * attempt never sent puts no load on the service.
 */
void cart_retry_cancel(cart_retry *r, bool timeout);
int cart_retry_tokens(const cart_retry *r);

typedef enum cart_breaker_state {
	CART_BREAKER_CLOSED = 0,
	CART_BREAKER_OPEN,
	CART_BREAKER_HALF_OPEN,
} cart_breaker_state;

const char *cart_breaker_state_name(cart_breaker_state s);

typedef struct cart_breaker_config {
	bool enabled;              /* false: allow always, count nothing */
	int failure_rate_pct;      /* default 50 */
	int min_calls;             /* default 20 */
	int64_t window_ms;         /* default 10000 */
	int64_t open_ms;           /* default 5000 */
	int half_open_probes;      /* default 3 */
} cart_breaker_config;

void cart_breaker_config_init(cart_breaker_config *cfg);

typedef struct cart_breaker cart_breaker;

/* clock is borrowed; caller owns *out. */
int cart_breaker_new(cart_breaker **out, const cart_breaker_config *cfg,
		     const cart_clock *clock);
void cart_breaker_free(cart_breaker *b);   /* accepts NULL */

/*
 * May a call go now?  CART_OK, or CART_EUNAVAILABLE with *retry_after_ms
 * (may be NULL) until the breaker will let a probe through.
 */
int cart_breaker_allow(cart_breaker *b, int64_t *retry_after_ms);
/* The outcome of a call that allow() let through. */
void cart_breaker_record(cart_breaker *b, bool success);
cart_breaker_state cart_breaker_get_state(cart_breaker *b);

#endif
