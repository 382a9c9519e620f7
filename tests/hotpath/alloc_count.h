#ifndef TESTS_ALLOC_COUNT_H
#define TESTS_ALLOC_COUNT_H

/*
 * Counts heap allocations (malloc, calloc, realloc, aligned) and send(2)
 * calls made by any thread between start and stop: *n_allocs those of
 * our code, *n_civetweb those civetweb makes itself.  alloc_count.c.
 */
void alloc_count_start(void);
void alloc_count_stop(long *n_allocs, long *n_civetweb, long *n_sends);

#endif
