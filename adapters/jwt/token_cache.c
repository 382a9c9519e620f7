/* The verified-token cache (see jwt_internal.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cart/sync.h"
#include "jwt/jwt_internal.h"

#define SHARDS 16

typedef struct entry {
	uint8_t digest[32];
	uint64_t gen;                /* 0: empty (key set generations start at 1) */
	int64_t valid_until_ms;
	cart_jwt_principal principal;
} entry;

struct jwt_token_cache {
	pthread_mutex_t locks[SHARDS];
	size_t mask;                 /* entries - 1 */
	entry *slots;
};

int jwt_token_cache_new(jwt_token_cache **out, size_t entries)
{
	jwt_token_cache *c;

	*out = NULL;
	if (entries < SHARDS || (entries & (entries - 1)))
		return CART_EINVALID;
	c = calloc(1, sizeof(*c));
	if (!c)
		return CART_ENOMEM;
	c->slots = calloc(entries, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return CART_ENOMEM;
	}
	c->mask = entries - 1;
	for (int i = 0; i < SHARDS; i++)
		cart_mutex_init_short(&c->locks[i]);
	*out = c;
	return CART_OK;
}

void jwt_token_cache_free(jwt_token_cache *c)
{
	if (!c)
		return;
	for (int i = 0; i < SHARDS; i++)
		pthread_mutex_destroy(&c->locks[i]);
	free(c->slots);
	free(c);
}

/* The digest is uniform, so its first bytes pick the slot. */
static size_t slot_of(const jwt_token_cache *c, const uint8_t d[32])
{
	uint64_t h;

	memcpy(&h, d, sizeof(h));
	return (size_t)h & c->mask;
}

bool jwt_token_cache_get(jwt_token_cache *c, const uint8_t digest[32],
			 uint64_t gen, int64_t now_ms, cart_jwt_principal *out)
{
	size_t i = slot_of(c, digest);
	pthread_mutex_t *lock = &c->locks[i % SHARDS];
	const entry *e = &c->slots[i];
	bool hit;

	pthread_mutex_lock(lock);
	hit = e->gen == gen && gen && now_ms < e->valid_until_ms &&
	      !memcmp(e->digest, digest, 32);
	if (hit)
		*out = e->principal;
	pthread_mutex_unlock(lock);
	return hit;
}

void jwt_token_cache_put(jwt_token_cache *c, const uint8_t digest[32],
			 uint64_t gen, int64_t valid_until_ms,
			 const cart_jwt_principal *p)
{
	size_t i = slot_of(c, digest);
	pthread_mutex_t *lock = &c->locks[i % SHARDS];
	entry *e = &c->slots[i];

	pthread_mutex_lock(lock);
	memcpy(e->digest, digest, 32);
	e->gen = gen;
	e->valid_until_ms = valid_until_ms;
	e->principal = *p;
	pthread_mutex_unlock(lock);
}
