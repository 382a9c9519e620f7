#include "fakes/fake_clock.h"

#include <stdatomic.h>
#include <stdlib.h>

struct fake_clock {
	_Atomic int64_t now_ms;
	_Atomic int64_t slept_ms;
	_Atomic int64_t sleeps;
};

static int64_t clock_now(void *self)
{
	struct fake_clock *fc = self;
	return atomic_load(&fc->now_ms);
}

static void clock_sleep(void *self, int64_t ms)
{
	struct fake_clock *fc = self;
	if (ms < 0)
		ms = 0;
	atomic_fetch_add(&fc->now_ms, ms);
	atomic_fetch_add(&fc->slept_ms, ms);
	atomic_fetch_add(&fc->sleeps, 1);
}

static void clock_destroy(void *self)
{
	free(self);
}

static const cart_clock_ops fake_clock_ops = {
	.version = CART_CLOCK_OPS_VERSION,
	.now_ms = clock_now,
	.sleep_ms = clock_sleep,
	.destroy = clock_destroy,
};

int fake_clock_new(cart_clock *out, fake_clock **ctl, int64_t start_ms)
{
	struct fake_clock *fc = calloc(1, sizeof(*fc));
	if (!fc)
		return -1;
	atomic_init(&fc->now_ms, start_ms);
	atomic_init(&fc->slept_ms, 0);
	atomic_init(&fc->sleeps, 0);
	out->ops = &fake_clock_ops;
	out->self = fc;
	if (ctl)
		*ctl = fc;
	return 0;
}

int64_t fake_clock_now(const fake_clock *fc)
{
	return atomic_load(&((struct fake_clock *)fc)->now_ms);
}

void fake_clock_set(fake_clock *fc, int64_t now_ms)
{
	atomic_store(&fc->now_ms, now_ms);
}

void fake_clock_advance(fake_clock *fc, int64_t ms)
{
	atomic_fetch_add(&fc->now_ms, ms);
}

int64_t fake_clock_total_slept(const fake_clock *fc)
{
	return atomic_load(&((struct fake_clock *)fc)->slept_ms);
}

int64_t fake_clock_sleep_count(const fake_clock *fc)
{
	return atomic_load(&((struct fake_clock *)fc)->sleeps);
}
