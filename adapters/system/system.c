/*
 * The real clock (stateless) and random source: getrandom(2) bytes, taken
 * 1 KiB at a time into one of 16 pool stripes, each under its own mutex,
 * so an id costs a copy rather than a system call (every write makes one
 * or two) and rarely a wait.  Thread-safe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cart/sync.h"
#include "system/system.h"

static int64_t system_now_ms(void *self)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void system_sleep_ms(void *self, int64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static const cart_clock_ops system_clock_ops = {
	.version = CART_CLOCK_OPS_VERSION,
	.now_ms = system_now_ms,
	.sleep_ms = system_sleep_ms,
};

void cart_system_clock_init(cart_clock *out)
{
	out->ops = &system_clock_ops;
	out->self = NULL;
}

static int fill_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return CART_EBACKEND;
		}
		p += n;
		len -= (size_t)n;
	}
	return CART_OK;
}

/*
 * Kernel randomness handed out in small pieces; each byte is used once.
 * The pool is cut into stripes, each under its own mutex: a caller takes
 * the first stripe it can lock without waiting, starting from one picked
 * by its stack address (so each thread tends to its own), and waits only
 * when every stripe is held.  With one mutex, every write of a busy
 * server queued there, and a holder preempted while 63 other workers
 * wanted an id stalled them all (issue 10: 159 waits in 3 s of adds).
 */
#define POOL_STRIPES 16

typedef struct random_stripe {
	alignas(64) pthread_mutex_t lock;
	size_t used;                  /* bytes[used..] are still unread */
	unsigned char bytes[1024];
} random_stripe;

typedef struct random_pool {
	random_stripe stripes[POOL_STRIPES];
} random_pool;

static random_stripe *lock_stripe(random_pool *p)
{
	unsigned char here;
	size_t first = ((uintptr_t)&here >> 12) % POOL_STRIPES;

	for (size_t i = 0; i < POOL_STRIPES; i++) {
		random_stripe *s = &p->stripes[(first + i) % POOL_STRIPES];

		if (pthread_mutex_trylock(&s->lock) == 0)
			return s;
	}
	pthread_mutex_lock(&p->stripes[first].lock);
	return &p->stripes[first];
}

/* len bytes from the pool (self), or straight from the kernel without one. */
static int take_random(void *self, void *dst, size_t len)
{
	random_pool *p = self;
	random_stripe *s;
	int err = CART_OK;

	if (!p || len > sizeof(p->stripes[0].bytes))
		return fill_random(dst, len);
	s = lock_stripe(p);
	if (s->used + len > sizeof(s->bytes)) {
		err = fill_random(s->bytes, sizeof(s->bytes));
		s->used = err ? sizeof(s->bytes) : 0;
	}
	if (!err) {
		memcpy(dst, s->bytes + s->used, len);
		s->used += len;
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* RFC 9562 version 4 (random) UUID, without printf. */
static int system_uuid(void *self, char out[CART_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t o = 0;

	if (take_random(self, b, sizeof(b)))
		return CART_EBACKEND;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
	return CART_OK;
}

static uint64_t system_random(void *self, uint64_t bound)
{
	uint64_t x = 0;

	if (take_random(self, &x, sizeof(x)))
		x = (uint64_t)system_now_ms(NULL);
	return x % bound;
}

static void system_ids_destroy(void *self)
{
	random_pool *p = self;

	if (!p)
		return;
	for (size_t i = 0; i < POOL_STRIPES; i++)
		pthread_mutex_destroy(&p->stripes[i].lock);
	explicit_bzero(p, sizeof(*p));
	free(p);
}

static const cart_ids_ops system_ids_ops = {
	.version = CART_IDS_OPS_VERSION,
	.uuid = system_uuid,
	.random = system_random,
	.destroy = system_ids_destroy,
};

void cart_system_ids_init(cart_ids *out)
{
	random_pool *p = aligned_alloc(64, sizeof(random_pool));

	/* Without memory, each id reads the kernel itself: slower, not wrong. */
	if (p) {
		for (size_t i = 0; i < POOL_STRIPES; i++) {
			cart_mutex_init_short(&p->stripes[i].lock);
			p->stripes[i].used = sizeof(p->stripes[i].bytes);
		}
	}
	out->ops = &system_ids_ops;
	out->self = p;
}
