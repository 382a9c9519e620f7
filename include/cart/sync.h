#ifndef CART_SYNC_H
#define CART_SYNC_H

/*
 * For adapters and the core: a mutex for short critical sections that
 * spins briefly before sleeping (glibc's adaptive mutex, where available).
 *
 * With many more runnable workers than cores, a plain mutex found held
 * sends the caller to sleep at once, and a sleeping worker waits for a
 * whole round of the run queue before it runs again: at 64 connections
 * on 2 cores each such wait cost milliseconds, for a lock held for a
 * fraction of a microsecond by a thread on the other core (issue 10).
 * Spinning a little first (glibc: at most ~100 tries, then the same
 * sleep) waits out such holders.  Only for locks held briefly and never
 * across I/O.
 */

#include <pthread.h>

/* pthread_mutex_init with the adaptive type; 0 or an errno value. */
static inline int cart_mutex_init_short(pthread_mutex_t *m)
{
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
	pthread_mutexattr_t a;
	int rc;

	if ((rc = pthread_mutexattr_init(&a)))
		return rc;
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
	rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return rc;
#else
	return pthread_mutex_init(m, NULL);
#endif
}

#endif
