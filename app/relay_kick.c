/* Waking the event relay after a commit (see relay_kick in http.h). */
#include <time.h>

#include "app.h"

void relay_kick_signal(relay_kick *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	k->pending = 1;
	pthread_cond_signal(&k->cond);
	cart_relay_kick(k->relay);   /* lock order: kick, then relay */
	pthread_mutex_unlock(&k->lock);
}

bool relay_kick_wait(relay_kick *k, int64_t ms)
{
	struct timespec until;
	bool kicked;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&k->lock);
	while (!k->pending &&
	       pthread_cond_timedwait(&k->cond, &k->lock, &until) == 0)
		;
	kicked = k->pending;
	k->pending = 0;
	pthread_mutex_unlock(&k->lock);
	return kicked;
}
