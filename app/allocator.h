#ifndef APP_ALLOCATOR_H
#define APP_ALLOCATOR_H

/*
 * Which allocator the executable runs on (jemalloc, ADR 17; glibc's
 * malloc when built with MALLOC_LIBS=), for the start line.
 */

/* "jemalloc" or "libc": which allocator this binary runs on. */
const char *app_allocator_name(void);

#endif
