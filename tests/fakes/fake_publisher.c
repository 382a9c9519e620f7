#include "fakes/fake_publisher.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct fake_publisher {
	pthread_mutex_t lock;   /* guards every field below */
	cart_event *events;
	size_t count, cap;
	size_t calls;
	int fail_n;             /* calls still to fail; < 0: all */
	int fail_err;
};

static int grow(struct fake_publisher *fp, size_t need)
{
	if (need <= fp->cap)
		return 0;
	size_t cap = fp->cap ? fp->cap * 2 : 16;
	while (cap < need)
		cap *= 2;
	cart_event *ev = realloc(fp->events, cap * sizeof(*ev));
	if (!ev)
		return -1;
	fp->events = ev;
	fp->cap = cap;
	return 0;
}

static int pub_publish(void *self, const cart_event *events, size_t n)
{
	struct fake_publisher *fp = self;
	int rc = 0;
	pthread_mutex_lock(&fp->lock);
	fp->calls++;
	if (fp->fail_n != 0) {
		if (fp->fail_n > 0)
			fp->fail_n--;
		rc = fp->fail_err;
	} else if (grow(fp, fp->count + n) != 0) {
		rc = CART_ENOMEM;
	} else {
		if (n)
			memcpy(fp->events + fp->count, events, n * sizeof(*events));
		fp->count += n;
	}
	pthread_mutex_unlock(&fp->lock);
	return rc;
}

static void pub_destroy(void *self)
{
	struct fake_publisher *fp = self;
	pthread_mutex_destroy(&fp->lock);
	free(fp->events);
	free(fp);
}

static const cart_publisher_ops fake_publisher_ops = {
	.version = CART_PUBLISHER_OPS_VERSION,
	.publish = pub_publish,
	.destroy = pub_destroy,
};

int fake_publisher_new(cart_publisher *out, fake_publisher **ctl)
{
	struct fake_publisher *fp = calloc(1, sizeof(*fp));
	if (!fp)
		return -1;
	pthread_mutex_init(&fp->lock, NULL);
	fp->fail_err = CART_EBACKEND;
	out->ops = &fake_publisher_ops;
	out->self = fp;
	if (ctl)
		*ctl = fp;
	return 0;
}

size_t fake_publisher_count(const fake_publisher *cfp)
{
	struct fake_publisher *fp = (struct fake_publisher *)cfp;
	pthread_mutex_lock(&fp->lock);
	size_t n = fp->count;
	pthread_mutex_unlock(&fp->lock);
	return n;
}

cart_event fake_publisher_event(const fake_publisher *cfp, size_t i)
{
	struct fake_publisher *fp = (struct fake_publisher *)cfp;
	cart_event ev;
	memset(&ev, 0, sizeof(ev));
	pthread_mutex_lock(&fp->lock);
	if (i < fp->count)
		ev = fp->events[i];
	pthread_mutex_unlock(&fp->lock);
	return ev;
}

size_t fake_publisher_calls(const fake_publisher *cfp)
{
	struct fake_publisher *fp = (struct fake_publisher *)cfp;
	pthread_mutex_lock(&fp->lock);
	size_t n = fp->calls;
	pthread_mutex_unlock(&fp->lock);
	return n;
}

void fake_publisher_fail(fake_publisher *fp, int n, int err)
{
	pthread_mutex_lock(&fp->lock);
	fp->fail_n = n;
	fp->fail_err = err;
	pthread_mutex_unlock(&fp->lock);
}

void fake_publisher_reset(fake_publisher *fp)
{
	pthread_mutex_lock(&fp->lock);
	fp->count = 0;
	fp->calls = 0;
	fp->fail_n = 0;
	pthread_mutex_unlock(&fp->lock);
}
