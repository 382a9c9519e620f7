#ifndef APP_THREAD_H
#define APP_THREAD_H

#include <stdbool.h>

/*
 * Lowers the calling thread's priority by `by` nice steps from where it is
 * (Linux: nice applies per thread; the kernel caps the result at 19).
 * Raising a nice value needs no privilege.  0 on success (and for by 0),
 * else an errno value; the thread then runs as it was.
 */
int app_thread_nicer(int by);

/*
 * Puts the calling thread under SCHED_BATCH (batch) or SCHED_OTHER,
 * keeping its nice value; threads it creates afterwards inherit the
 * policy.  A SCHED_BATCH thread gets the CPU share its nice value gives,
 * but when it wakes it does not preempt the running thread: it waits for
 * that one to block or for the scheduler tick.  Switching between the two
 * needs no privilege.  0 on success, else an errno value; the thread then
 * runs as it was.
 */
int app_thread_batch(bool batch);

#endif
