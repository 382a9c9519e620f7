#ifndef APP_THREAD_H
#define APP_THREAD_H

/*
 * Lowers the calling thread's priority by `by` nice steps from where it is
 * (Linux: nice applies per thread; the kernel caps the result at 19).
 * Raising a nice value needs no privilege.  0 on success (and for by 0),
 * else an errno value; the thread then runs as it was.
 */
int app_thread_nicer(int by);

#endif
