/*
 * The real clock (stateless) and random source: getrandom(2) bytes, taken
 * 4 KiB at a time into a pool under a mutex, so an id costs a copy rather
 * than a system call (every write makes one or two).  Thread-safe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

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

/* Kernel randomness handed out in small pieces; each byte is used once. */
typedef struct random_pool {
	pthread_mutex_t lock;
	size_t used;                  /* bytes[used..] are still unread */
	unsigned char bytes[4096];
} random_pool;

/* len bytes from the pool (self), or straight from the kernel without one. */
static int take_random(void *self, void *dst, size_t len)
{
	random_pool *p = self;
	int err = CART_OK;

	if (!p || len > sizeof(p->bytes))
		return fill_random(dst, len);
	pthread_mutex_lock(&p->lock);
	if (p->used + len > sizeof(p->bytes)) {
		err = fill_random(p->bytes, sizeof(p->bytes));
		p->used = err ? sizeof(p->bytes) : 0;
	}
	if (!err) {
		memcpy(dst, p->bytes + p->used, len);
		p->used += len;
	}
	pthread_mutex_unlock(&p->lock);
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
	pthread_mutex_destroy(&p->lock);
	explicit_bzero(p->bytes, sizeof(p->bytes));
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
	random_pool *p = malloc(sizeof(*p));

	/* Without memory, each id reads the kernel itself: slower, not wrong. */
	if (p) {
		pthread_mutex_init(&p->lock, NULL);
		p->used = sizeof(p->bytes);
	}
	out->ops = &system_ids_ops;
	out->self = p;
}
