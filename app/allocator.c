/*
 * jemalloc's control interface, looked up weakly: the symbol is there
 * when the executable links jemalloc, NULL otherwise (glibc's malloc, the
 * test binaries).
 */
#include <stdbool.h>
#include <stddef.h>

#include "allocator.h"

extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp,
		   size_t newlen) __attribute__((weak));

const char *app_allocator_name(void)
{
	return mallctl ? "jemalloc" : "libc";
}

bool app_allocator_caches_off(void)
{
	bool on = true;
	size_t len = sizeof(on);

	return mallctl && !mallctl("opt.tcache", &on, &len, NULL, 0) && !on;
}

void app_allocator_thread_cache(bool on)
{
	if (mallctl)
		(void)mallctl("thread.tcache.enabled", NULL, NULL, &on, sizeof(on));
}
