/* Waking the event relay after a commit (relay_kick in app.h). */
#include <time.h>

#include "app.h"

/* How long a kicked relay waits for more commits before its pass. */
#define RELAY_LINGER_MS 2

/*
 * Called after every commit.  A kick already pending covers this commit
 * too: the relay fetches everything pending when it next looks (at once
 * after a pass that is running), so under load most commits cost one
 * atomic exchange instead of two locks and a wake-up.
 */
void relay_kick_signal(relay_kick *k)
{
	if (!k || atomic_exchange(&k->pending, 1))
		return;
	pthread_mutex_lock(&k->lock);
	cart_relay_kick(k->relay);   /* lock order: kick, then relay */
	pthread_mutex_unlock(&k->lock);
	/*
	 * Signalled after unlocking, so the woken relay does not run straight
	 * into the lock its waker holds (on a busy CPU it did, and waited for
	 * the waker's next turn).  No wake-up is lost: the waiter tests
	 * pending and starts waiting under the lock, and pending was set
	 * before this thread took the lock.
	 */
	pthread_cond_signal(&k->cond);
}

int app_stage_relay_kick(app_request *r, void *self)
{
	app_ctx *app = self;

	if (r->kick_relay)
		relay_kick_signal(app->kick);
	return APP_NEXT;
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
	while (!atomic_load(&k->pending) &&
	       pthread_cond_timedwait(&k->cond, &k->lock, &until) == 0)
		;
	kicked = atomic_load(&k->pending);
	pthread_mutex_unlock(&k->lock);
	if (kicked) {
		/*
		 * Let the commits of the next moment join this pass: under load
		 * a pass per commit cost every write a wake-up of this thread
		 * and a sweep of the store.  The kick stays pending meanwhile,
		 * so those commits do not signal at all.
		 */
		static const struct timespec linger = { 0, RELAY_LINGER_MS * 1000000L };

		nanosleep(&linger, NULL);
		atomic_store(&k->pending, 0);
	}
	return kicked;
}
