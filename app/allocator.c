/*
 * jemalloc's control interface, looked up weakly: the symbol is there
 * when the executable links jemalloc, NULL otherwise (glibc's malloc, the
 * test binaries).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

bool app_allocator_stats(app_heap_stats *out)
{
	uint64_t epoch = 1;
	size_t len = sizeof(epoch);
	struct { const char *name; size_t *v; } f[] = {
		{ "stats.allocated", &out->allocated }, { "stats.active", &out->active },
		{ "stats.metadata", &out->metadata }, { "stats.resident", &out->resident },
		{ "stats.mapped", &out->mapped }, { "stats.retained", &out->retained },
	};

	size_t cached = 0;

	/* The statistics are a snapshot taken when the epoch advances. */
	if (!mallctl || mallctl("epoch", &epoch, &len, &epoch, sizeof(epoch)))
		return false;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		len = sizeof(size_t);
		if (mallctl(f[i].name, f[i].v, &len, NULL, 0))
			return false;
	}
	/*
	 * jemalloc counts a block freed into a thread cache as allocated
	 * until the cache gives it back; those bytes are the allocator's, not
	 * the program's (the relay's cache held ~180 KB at times).  4096 is
	 * MALLCTL_ARENAS_ALL: the sum over every arena.
	 */
	len = sizeof(cached);
	if (!mallctl("stats.arenas.4096.tcache_bytes", &cached, &len, NULL, 0) &&
	    cached <= out->allocated)
		out->allocated -= cached;
	return true;
}
