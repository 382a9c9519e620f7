#ifndef APP_METRICS_REGISTRY_H
#define APP_METRICS_REGISTRY_H

/*
 * The counters behind app_metrics (metrics.h), for the files that record
 * and render them (metrics.c, metrics_render.c, metrics_emf.c) only.
 */

#include <stdatomic.h>

#include "metrics.h"

#define METRICS_STATUS_MIN 100
#define METRICS_STATUSES 500    /* 100..599 */

typedef atomic_uint_fast64_t counter;

typedef struct metrics_histogram {
	counter slot[METRICS_SLOTS];   /* per bucket, not cumulative */
	counter sum_ns;
} metrics_histogram;

typedef struct metrics_aws {
	counter calls[METRICS_AWS_OPS][METRICS_OUTCOME_COUNT];
	metrics_histogram duration[METRICS_AWS_OPS];
	counter retries[METRICS_AWS_OPS];
	counter throttles[METRICS_AWS_OPS];
} metrics_aws;

struct app_metrics {
	counter requests[METRICS_METHOD_COUNT][ROUTE_COUNT][METRICS_STATUSES];
	metrics_histogram duration[METRICS_METHOD_COUNT][ROUTE_COUNT];
	atomic_int in_flight;
	counter precondition_failed;   /* 412 answered (not replayed) */
	counter conflicts;             /* 409 answered (not replayed) */
	counter replays;               /* idempotent replays */
	counter auth_failures[METRICS_AUTH_REASONS];
	counter auth_unenforced;       /* of those, let through (auth_enforce off) */
	metrics_aws aws[METRICS_AWS_COUNT];
	app_metrics_sources src;       /* set at wiring time */
};

/* Total of a histogram's slots (its _count). */
uint64_t metrics_histogram_count(const metrics_histogram *h);

#endif
