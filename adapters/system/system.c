/* The real clock and random source.  Stateless, so thread-safe. */
#include <errno.h>
#include <stdio.h>
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

/* RFC 9562 version 4 (random) UUID. */
static int system_uuid(void *self, char out[CART_UUID_LEN + 1])
{
	unsigned char b[16];

	if (fill_random(b, sizeof(b)))
		return CART_EBACKEND;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, CART_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
	return CART_OK;
}

static uint64_t system_random(void *self, uint64_t bound)
{
	uint64_t x = 0;

	if (fill_random(&x, sizeof(x)))
		x = (uint64_t)system_now_ms(NULL);
	return x % bound;
}

static const cart_ids_ops system_ids_ops = {
	.version = CART_IDS_OPS_VERSION,
	.uuid = system_uuid,
	.random = system_random,
};

void cart_system_ids_init(cart_ids *out)
{
	out->ops = &system_ids_ops;
	out->self = NULL;
}
