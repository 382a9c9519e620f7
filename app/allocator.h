#ifndef APP_ALLOCATOR_H
#define APP_ALLOCATOR_H

/*
 * Which allocator the executable runs on (jemalloc, ADR 17; glibc's
 * malloc when built with MALLOC_LIBS=), for the start line, and
 * jemalloc's per-thread caches, which the server turns on in the event
 * relay's thread, and in a worker only while it holds a connection with
 * the DynamoDB store (ADR 17).
 */

#include <stdbool.h>
#include <stddef.h>

/* "jemalloc" or "libc": which allocator this binary runs on. */
const char *app_allocator_name(void);

/* True when this is jemalloc with thread caches off by default
 * (malloc_conf's tcache:false, not overridden by MALLOC_CONF). */
bool app_allocator_caches_off(void);

/* Turns the calling thread's cache on, or flushes and drops it (off).
 * Nothing without jemalloc. */
void app_allocator_thread_cache(bool on);

/* jemalloc's own statistics (its stats.* names), in bytes. */
typedef struct app_heap_stats {
	size_t allocated;   /* in use by the program (not blocks held in
			       threads' caches, which jemalloc counts) */
	size_t active;      /* pages holding allocations */
	size_t metadata;    /* jemalloc's own bookkeeping */
	size_t resident;    /* pages jemalloc holds in RAM (maximum) */
	size_t mapped;      /* extents mapped for allocations */
	size_t retained;    /* address space kept for reuse, not in RAM */
} app_heap_stats;

/* Fills out; false without jemalloc (or if a statistic is missing). */
bool app_allocator_stats(app_heap_stats *out);

#endif
