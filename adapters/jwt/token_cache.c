/*
 * The verified-token cache (see jwt_internal.h).
 *
 * Sets of 8 entries.  A token's set and its tag (the 8 bytes a set keeps
 * per entry in one cache line) come from a keyed hash of the token's last
 * bytes, its signature, so they are known before the SHA-256 of the whole
 * token: the caller warms the set's tag line while it hashes, and halfway
 * through, finds the way whose tag matches and warms that entry, so a hit
 * finds both in the cache.  The tag only picks a candidate: an entry
 * counts only when its full SHA-256 digest matches, under the lock.  A
 * new token takes an empty, expired or stale (older key set) entry of its
 * set, else the least recently used one (by second), which is counted as
 * an eviction.  Locks are per shard of sets; the counters live beside the
 * lock they are bumped under.
 */
/* SHA256_Init and friends: deprecated in OpenSSL 3.0, present in all 3.x;
 * jwt_token_digest falls back to EVP where they are compiled out. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cart/error.h"
#include "cart/sync.h"
#include "jwt/jwt_internal.h"

#define WAYS 8
#define SHARDS 64
/* The token's last bytes that place it: its signature's, for every JWS
 * algorithm at least this long in base64url. */
#define PLACE_BYTES 32

typedef struct entry {                /* 128 bytes: two cache lines */
	uint8_t digest[32];
	int64_t exp_ms;               /* the token's exp; 0: empty */
	uint32_t gen;                 /* the key set's generation, low 32 bits */
	uint32_t used_s;              /* second of the last put or hit */
	uint8_t admin;
	uint8_t sub_len;
	char sub[CART_JWT_CACHE_SUB_MAX];   /* not NUL-terminated */
} entry;

typedef struct set {
	/* each entry's place tag; written under the shard's lock, read
	 * without it only to choose what to prefetch */
	_Atomic uint64_t tag[WAYS];
	entry e[WAYS];
} set;

_Static_assert(sizeof(entry) == 128, "an entry is two cache lines");
_Static_assert(sizeof(set) == WAYS * CART_JWT_CACHE_ENTRY_BYTES,
	       "CART_JWT_CACHE_ENTRY_BYTES says what an entry costs");

typedef struct shard {
	alignas(64) pthread_mutex_t lock;
	uint64_t hits, misses, evictions;
} shard;

struct jwt_token_cache {
	shard shards[SHARDS];
	set *sets;
	size_t nsets;
	int64_t leeway_ms;
	uint64_t seed[2];             /* keys the place hash */
};

int jwt_token_cache_new(jwt_token_cache **out, size_t entries, int64_t leeway_ms)
{
	jwt_token_cache *c;

	*out = NULL;
	if (!entries || entries > (size_t)CART_JWT_MAX_CACHE_ENTRIES || leeway_ms < 0)
		return CART_EINVALID;
	c = aligned_alloc(64, sizeof(*c));
	if (!c)
		return CART_ENOMEM;
	memset(c, 0, sizeof(*c));
	c->nsets = (entries + WAYS - 1) / WAYS;
	c->sets = calloc(c->nsets, sizeof(*c->sets));
	if (!c->sets) {
		free(c);
		return CART_ENOMEM;
	}
	c->leeway_ms = leeway_ms;
	/* Not a secret that protects anything (the digest decides), but it
	 * keeps where tokens land from being chosen from outside. */
	if (getrandom(c->seed, sizeof(c->seed), GRND_NONBLOCK) != sizeof(c->seed))
		c->seed[0] = (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < SHARDS; i++)
		cart_mutex_init_short(&c->shards[i].lock);
	*out = c;
	return CART_OK;
}

void jwt_token_cache_free(jwt_token_cache *c)
{
	if (!c)
		return;
	for (int i = 0; i < SHARDS; i++)
		pthread_mutex_destroy(&c->shards[i].lock);
	free(c->sets);
	free(c);
}

bool jwt_token_digest(const EVP_MD *sha256, const char *token, size_t len,
		      uint8_t out[32], jwt_token_cache *c, jwt_cache_place pl)
{
#ifndef OPENSSL_NO_DEPRECATED_3_0
	SHA256_CTX ctx;
	size_t half = len / 2;

	(void)sha256;
	if (!SHA256_Init(&ctx) || !SHA256_Update(&ctx, token, half))
		return false;
	if (c)
		jwt_token_cache_warm_entry(c, pl);
	return SHA256_Update(&ctx, token + half, len - half) &&
	       SHA256_Final(out, &ctx);
#else
	if (c)
		jwt_token_cache_warm_entry(c, pl);
	return EVP_Digest(token, len, out, NULL, sha256, NULL) == 1;
#endif
}

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 32;
	x *= 0xd6e8feb86659fd93ULL;
	x ^= x >> 32;
	x *= 0xd6e8feb86659fd93ULL;
	return x ^ (x >> 32);
}

jwt_cache_place jwt_token_cache_place(const jwt_token_cache *c,
				      const char *token, size_t len)
{
	size_t tail = len < PLACE_BYTES ? len : PLACE_BYTES;
	uint8_t last[PLACE_BYTES] = { 0 };
	uint64_t h = c->seed[0] ^ len;
	jwt_cache_place pl;

	if (tail)
		memcpy(last, token + len - tail, tail);
	for (size_t i = 0; i < PLACE_BYTES; i += 8)
		h = mix(h ^ load64(last + i));
	pl.set = (size_t)(((unsigned __int128)h * c->nsets) >> 64);
	pl.tag = mix(h ^ c->seed[1]);
	return pl;
}

static uint32_t second_of(int64_t ms)
{
	return (uint32_t)(ms / 1000);
}

static shard *shard_of(jwt_token_cache *c, jwt_cache_place pl)
{
	return &c->shards[pl.set % SHARDS];
}

void jwt_token_cache_warm(jwt_token_cache *c, jwt_cache_place pl)
{
	__builtin_prefetch(c->sets[pl.set].tag);
	__builtin_prefetch(&shard_of(c, pl)->lock, 1);
}

void jwt_token_cache_warm_entry(jwt_token_cache *c, jwt_cache_place pl)
{
	const set *s = &c->sets[pl.set];

	for (int w = 0; w < WAYS; w++)
		if (atomic_load_explicit(&s->tag[w], memory_order_relaxed) == pl.tag) {
			__builtin_prefetch(&s->e[w]);
			__builtin_prefetch((const char *)&s->e[w] + 64);
			return;
		}
}

/* The way holding digest d (placed at pl) in s, or -1.  Under the lock. */
static int find(const set *s, jwt_cache_place pl, const uint8_t d[32])
{
	for (int w = 0; w < WAYS; w++)
		if (atomic_load_explicit(&s->tag[w], memory_order_relaxed) == pl.tag &&
		    s->e[w].exp_ms && !memcmp(s->e[w].digest, d, 32))
			return w;
	return -1;
}

bool jwt_token_cache_get(jwt_token_cache *c, jwt_cache_place pl,
			 const uint8_t digest[32], uint64_t gen, int64_t now_ms,
			 cart_jwt_principal *out)
{
	shard *sh = shard_of(c, pl);
	set *s = &c->sets[pl.set];
	bool hit = false;
	int w;

	pthread_mutex_lock(&sh->lock);
	w = find(s, pl, digest);
	if (w >= 0 && s->e[w].gen == (uint32_t)gen &&
	    now_ms < s->e[w].exp_ms + c->leeway_ms) {
		entry *e = &s->e[w];

		memcpy(out->sub, e->sub, e->sub_len);
		out->sub[e->sub_len] = '\0';
		out->admin = e->admin;
		out->exp_ms = e->exp_ms;
		if (e->used_s != second_of(now_ms))   /* no write per hit */
			e->used_s = second_of(now_ms);
		hit = true;
	}
	if (hit)
		sh->hits++;
	else
		sh->misses++;
	pthread_mutex_unlock(&sh->lock);
	return hit;
}

void jwt_token_cache_put(jwt_token_cache *c, jwt_cache_place pl,
			 const uint8_t digest[32], uint64_t gen, int64_t now_ms,
			 const cart_jwt_principal *p)
{
	size_t len = strnlen(p->sub, sizeof(p->sub));
	shard *sh = shard_of(c, pl);
	set *s = &c->sets[pl.set];
	int w, lru = 0;

	if (len > CART_JWT_CACHE_SUB_MAX || p->exp_ms <= 0)
		return;
	pthread_mutex_lock(&sh->lock);
	w = find(s, pl, digest);
	for (int i = 0; w < 0 && i < WAYS; i++) {
		const entry *e = &s->e[i];

		if (!e->exp_ms || e->gen != (uint32_t)gen ||
		    now_ms >= e->exp_ms + c->leeway_ms)
			w = i;                      /* free: nothing live lost */
		else if (e->used_s < s->e[lru].used_s)
			lru = i;
	}
	if (w < 0) {
		w = lru;
		sh->evictions++;
	}
	atomic_store_explicit(&s->tag[w], pl.tag, memory_order_relaxed);
	memcpy(s->e[w].digest, digest, 32);
	s->e[w].exp_ms = p->exp_ms;
	s->e[w].gen = (uint32_t)gen;
	s->e[w].used_s = second_of(now_ms);
	s->e[w].admin = p->admin;
	s->e[w].sub_len = (uint8_t)len;
	memcpy(s->e[w].sub, p->sub, len);
	pthread_mutex_unlock(&sh->lock);
}

void jwt_token_cache_stats(jwt_token_cache *c, uint64_t *capacity, uint64_t *hits,
			   uint64_t *misses, uint64_t *evictions)
{
	*capacity = (uint64_t)c->nsets * WAYS;
	*hits = *misses = *evictions = 0;
	for (int i = 0; i < SHARDS; i++) {
		pthread_mutex_lock(&c->shards[i].lock);
		*hits += c->shards[i].hits;
		*misses += c->shards[i].misses;
		*evictions += c->shards[i].evictions;
		pthread_mutex_unlock(&c->shards[i].lock);
	}
}
