/*
 * jemalloc's control interface, looked up weakly: the symbol is there
 * when the executable links jemalloc, NULL otherwise (glibc's malloc, the
 * test binaries).  Only its presence is used.
 */
#include <stddef.h>

#include "allocator.h"

extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp,
		   size_t newlen) __attribute__((weak));

const char *app_allocator_name(void)
{
	return mallctl ? "jemalloc" : "libc";
}
