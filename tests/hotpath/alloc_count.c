/*
 * Counting the heap allocations and socket sends of a stretch of code, in
 * a test binary of its own (glibc 2.34 removed __malloc_hook, so the test
 * interposes the functions themselves).  Every allocation function of the
 * process, civetweb's included (it is a shared library, so its calls bind
 * to these), goes through here and on to glibc's; while counting is on,
 * each call is counted, whichever thread makes it, as civetweb's when it
 * returns into libcivetweb and as ours otherwise.
 *
 * Not linked into the other test binaries: under valgrind the counts would
 * mean nothing, and nothing else needs them.
 */
#include <link.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc_count.h"

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

static atomic_bool counting;
static atomic_long allocs, civetweb_allocs;
static atomic_long sends;
static uintptr_t civetweb_lo, civetweb_hi;   /* its loaded segments */

static int find_civetweb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	if (!info->dlpi_name || !strstr(info->dlpi_name, "libcivetweb"))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;

		if (ph->p_type != PT_LOAD)
			continue;
		if (!civetweb_lo || lo < civetweb_lo)
			civetweb_lo = lo;
		if (hi > civetweb_hi)
			civetweb_hi = hi;
	}
	return 1;
}

void alloc_count_start(void)
{
	if (!civetweb_lo)
		dl_iterate_phdr(find_civetweb, NULL);
	atomic_store(&allocs, 0);
	atomic_store(&civetweb_allocs, 0);
	atomic_store(&sends, 0);
	atomic_store(&counting, true);
}

void alloc_count_stop(long *n_allocs, long *n_civetweb, long *n_sends)
{
	atomic_store(&counting, false);
	*n_allocs = atomic_load(&allocs);
	*n_civetweb = atomic_load(&civetweb_allocs);
	*n_sends = atomic_load(&sends);
}

static void count(atomic_long *c)
{
	if (atomic_load_explicit(&counting, memory_order_relaxed))
		atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* caller: the return address of the allocation function. */
static void count_alloc(void *caller)
{
	uintptr_t a = (uintptr_t)caller;

	count(a >= civetweb_lo && a < civetweb_hi ? &civetweb_allocs : &allocs);
}

void *malloc(size_t n)
{
	count_alloc(__builtin_return_address(0));
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	count_alloc(__builtin_return_address(0));
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
	count_alloc(__builtin_return_address(0));
	return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
	count_alloc(__builtin_return_address(0));
	return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
	count_alloc(__builtin_return_address(0));
	return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	count_alloc(__builtin_return_address(0));
	p = __libc_memalign(align, n);
	if (!p)
		return 12;   /* ENOMEM */
	*out = p;
	return 0;
}

void free(void *p)
{
	__libc_free(p);
}

/* civetweb sends on plain sockets with send(2); the test client writes
 * with write(2), so only the server's sends are counted. */
ssize_t send(int fd, const void *b, size_t n, int flags)
{
	count(&sends);
	return (ssize_t)syscall(SYS_sendto, fd, b, n, flags, NULL, 0);
}
