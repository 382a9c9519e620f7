#include <errno.h>
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
