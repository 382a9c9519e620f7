#ifndef APP_ALLOCATOR_H
#define APP_ALLOCATOR_H

/*
 * Which allocator the executable runs on (jemalloc, ADR 17; glibc's
 * malloc when built with MALLOC_LIBS=), for the start line, and
 * jemalloc's per-thread caches, which the server turns on in a worker
 * only while it holds a connection (ADR 17).
 */

#include <stdbool.h>

/* "jemalloc" or "libc": which allocator this binary runs on. */
const char *app_allocator_name(void);

/* True when this is jemalloc with thread caches off by default
 * (malloc_conf's tcache:false, not overridden by MALLOC_CONF). */
bool app_allocator_caches_off(void);

/* Turns the calling thread's cache on, or flushes and drops it (off).
 * Nothing without jemalloc. */
void app_allocator_thread_cache(bool on);

#endif
