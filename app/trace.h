#ifndef APP_TRACE_H
#define APP_TRACE_H

/*
 * Trace context of a request, as the X-Ray SDKs propagate it: the
 * X-Amzn-Trace-Id header (Root, Parent, Sampled) or W3C traceparent, the
 * ids we generate, the header we return, and the SDK's default sampling
 * rule.  Pure functions plus a per-thread PRNG; no I/O, no globals other
 * than the thread-local PRNG state.  Every function is thread-safe.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APP_TRACE_ROOT_LEN 35        /* "1-" 8 hex "-" 24 hex */
#define APP_TRACE_ID_LEN 16          /* segment / parent ids: 16 hex */
#define APP_TRACE_HEADER_MAX 512     /* longer incoming headers are ignored */

/* Sampling decision carried by a header: not said, or said. */
typedef enum app_trace_decision {
	APP_TRACE_UNDECIDED = -1,        /* absent or "?": we decide */
	APP_TRACE_NOT_SAMPLED = 0,
	APP_TRACE_SAMPLED = 1,
} app_trace_decision;

typedef struct app_trace_ctx {
	char root[APP_TRACE_ROOT_LEN + 1];      /* "" until parsed or generated */
	char parent[APP_TRACE_ID_LEN + 1];      /* caller's segment id, or "" */
	app_trace_decision decision;
} app_trace_ctx;

/*
 * Parses X-Amzn-Trace-Id ("Root=1-...;Parent=...;Sampled=0|1|?", keys in
 * any order, other keys ignored, spaces around ';' allowed).  0 when a
 * valid Root was found; -1 otherwise (too long, no Root, bad hex or
 * shape), and *out is cleared (decision UNDECIDED): the caller generates
 * a new root.  An invalid Parent or Sampled alone is dropped, not fatal.
 */
int app_trace_parse_amzn(app_trace_ctx *out, const char *header);

/*
 * Parses W3C traceparent "00-<32 hex>-<16 hex>-<2 hex flags>" (version
 * 00; later versions are read the same way, as the spec asks) into an
 * X-Ray root "1-<first 8>-<last 24>", parent and the sampled flag (bit
 * 0).  0 on success; -1 (and *out cleared) when malformed, all-zero ids
 * or version ff.
 */
int app_trace_parse_traceparent(app_trace_ctx *out, const char *header);

/* true if s is exactly a root "1-<8 hex>-<24 hex>" (lowercase or upper). */
bool app_trace_root_valid(const char *s);
/* true if s is exactly 16 hex digits, not all zero. */
bool app_trace_id_valid(const char *s);

/* --- ids -------------------------------------------------------------------- */

/*
 * 64 random bits from this thread's PRNG (xoshiro256**), seeded once per
 * thread from getrandom(2) (time and thread id if that fails).  Not for
 * secrets: ids only.
 */
uint64_t app_trace_rand64(void);

/* A new root for epoch_s: "1-<epoch_s as 8 hex>-<96 random bits as 24 hex>". */
void app_trace_new_root(char out[APP_TRACE_ROOT_LEN + 1], int64_t epoch_s);
/* A new segment/subsegment id: 16 hex, never all zero. */
void app_trace_new_id(char out[APP_TRACE_ID_LEN + 1]);

/*
 * "Root=<root>[;Parent=<parent>];Sampled=<0|1>" into out; parent may be
 * NULL or "".  Returns the length as snprintf does (>= cap: truncated).
 */
size_t app_trace_format(char *out, size_t cap, const char *root,
			const char *parent, bool sampled);

/* --- sampling ----------------------------------------------------------------- */

/*
 * The X-Ray SDKs' default rule: a reservoir of `per_second` requests in
 * each wall-clock second, then `rate_percent` % of the rest.  Lock-free
 * (one atomic word); shared by every worker.
 */
typedef struct app_sampler {
	int per_second;
	int rate_percent;
	_Atomic uint64_t slot;           /* (second << 20) | taken in that second */
} app_sampler;

void app_sampler_init(app_sampler *s, int per_second, int rate_percent);
/*
 * Decides one request seen at now_ms (wall clock); rand is a random
 * number (tests pass their own).  Thread-safe.
 */
bool app_sampler_sample(app_sampler *s, int64_t now_ms, uint32_t rand);

#endif
