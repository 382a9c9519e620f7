/*
 * The verified-token cache (see jwt_internal.h).
 *
 * Sets of 8 entries, a set chosen by the token's digest.  Each set keeps
 * the first 8 bytes of its entries' digests in one cache line, so a
 * lookup reads that line and, on a match, the entry; the full digest is
 * compared before an entry counts.  A new token takes an empty, expired
 * or stale (older key set) entry of its set, else the least recently used
 * one (by second), which is counted as an eviction.  Locks are per shard
 * of sets; the counters live beside the lock they are bumped under.
 */
/* SHA256_Init and friends: deprecated in OpenSSL 3.0, present in all 3.x;
 * jwt_token_digest falls back to EVP where they are compiled out. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "cart/error.h"
#include "cart/sync.h"
#include "jwt/jwt_internal.h"

#define WAYS 8
#define SHARDS 64

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
	uint64_t tag[WAYS];           /* digest bytes 0..7 of each entry */
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
		      uint8_t out[32])
{
#ifndef OPENSSL_NO_DEPRECATED_3_0
	SHA256_CTX ctx;

	(void)sha256;
	return SHA256_Init(&ctx) && SHA256_Update(&ctx, token, len) &&
	       SHA256_Final(out, &ctx);
#else
	return EVP_Digest(token, len, out, NULL, sha256, NULL) == 1;
#endif
}

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* The digest is uniform: bytes 8..15 pick the set (any count of sets). */
static size_t set_of(const jwt_token_cache *c, const uint8_t d[32])
{
	return (size_t)(((unsigned __int128)load64(d + 8) * c->nsets) >> 64);
}

static uint32_t second_of(int64_t ms)
{
	return (uint32_t)(ms / 1000);
}

/* The way holding digest d in s, or -1. */
static int find(const set *s, const uint8_t d[32])
{
	uint64_t tag = load64(d);

	for (int w = 0; w < WAYS; w++)
		if (s->tag[w] == tag && s->e[w].exp_ms &&
		    !memcmp(s->e[w].digest, d, 32))
			return w;
	return -1;
}

bool jwt_token_cache_get(jwt_token_cache *c, const uint8_t digest[32],
			 uint64_t gen, int64_t now_ms, cart_jwt_principal *out)
{
	size_t si = set_of(c, digest);
	shard *sh = &c->shards[si % SHARDS];
	set *s = &c->sets[si];
	bool hit = false;
	int w;

	__builtin_prefetch(s->tag);   /* a miss, overlapped with the lock's */
	pthread_mutex_lock(&sh->lock);
	w = find(s, digest);
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

void jwt_token_cache_put(jwt_token_cache *c, const uint8_t digest[32],
			 uint64_t gen, int64_t now_ms,
			 const cart_jwt_principal *p)
{
	size_t si = set_of(c, digest), len = strnlen(p->sub, sizeof(p->sub));
	shard *sh = &c->shards[si % SHARDS];
	set *s = &c->sets[si];
	int w, lru = 0;

	if (len > CART_JWT_CACHE_SUB_MAX || p->exp_ms <= 0)
		return;
	pthread_mutex_lock(&sh->lock);
	w = find(s, digest);
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
	s->tag[w] = load64(digest);
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
