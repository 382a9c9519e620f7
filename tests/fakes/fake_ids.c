#include "fakes/fake_ids.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fake_ids {
	_Atomic uint64_t next;      /* number of the next UUID */
	_Atomic uint64_t rnd_state;
	_Atomic int fail_next;
};

void fake_ids_format(char out[CART_UUID_LEN + 1], uint64_t n)
{
	snprintf(out, CART_UUID_LEN + 1, "00000000-0000-4000-8000-%012llx",
		 (unsigned long long)(n & 0xffffffffffffULL));
}

bool fake_ids_parse(const char *s, uint64_t *n)
{
	static const char prefix[] = "00000000-0000-4000-8000-";
	if (!s || strlen(s) != CART_UUID_LEN ||
	    strncmp(s, prefix, sizeof(prefix) - 1) != 0)
		return false;
	uint64_t v = 0;
	for (const char *p = s + sizeof(prefix) - 1; *p; p++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			return false;
		v = v * 16 + (uint64_t)d;
	}
	if (n)
		*n = v;
	return true;
}

static int ids_uuid(void *self, char out[CART_UUID_LEN + 1])
{
	struct fake_ids *fi = self;
	int err = atomic_exchange(&fi->fail_next, 0);
	if (err)
		return err;
	fake_ids_format(out, atomic_fetch_add(&fi->next, 1));
	return 0;
}

/* xorshift64: deterministic, cheap, never reaches 0 from a nonzero seed. */
static uint64_t ids_random(void *self, uint64_t bound)
{
	struct fake_ids *fi = self;
	uint64_t old = atomic_load(&fi->rnd_state), x;
	do {
		x = old;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	} while (!atomic_compare_exchange_weak(&fi->rnd_state, &old, x));
	return bound ? x % bound : 0;
}

static void ids_destroy(void *self)
{
	free(self);
}

static const cart_ids_ops fake_ids_ops = {
	.version = CART_IDS_OPS_VERSION,
	.uuid = ids_uuid,
	.random = ids_random,
	.destroy = ids_destroy,
};

int fake_ids_new(cart_ids *out, fake_ids **ctl)
{
	struct fake_ids *fi = calloc(1, sizeof(*fi));
	if (!fi)
		return -1;
	atomic_init(&fi->next, 1);
	atomic_init(&fi->rnd_state, 0x9e3779b97f4a7c15ULL);
	atomic_init(&fi->fail_next, 0);
	out->ops = &fake_ids_ops;
	out->self = fi;
	if (ctl)
		*ctl = fi;
	return 0;
}

uint64_t fake_ids_issued(const fake_ids *fi)
{
	return atomic_load(&((struct fake_ids *)fi)->next) - 1;
}

void fake_ids_fail_next(fake_ids *fi, int err)
{
	atomic_store(&fi->fail_next, err);
}
