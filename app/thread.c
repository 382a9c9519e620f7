#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include "thread.h"

int app_thread_nicer(int by)
{
	id_t self = (id_t)gettid();
	int base;

	if (!by)
		return 0;
	errno = 0;
	base = getpriority(PRIO_PROCESS, self);   /* -1 is a valid value */
	if (base == -1 && errno)
		return errno;
	return setpriority(PRIO_PROCESS, self, base + by) ? errno : 0;
}

int app_thread_batch(bool batch)
{
	struct sched_param param = { 0 };

	return pthread_setschedparam(pthread_self(), batch ? SCHED_BATCH : SCHED_OTHER,
				     &param);
}
