/*
 * One user's idempotency records in the in-memory repository (issue 8):
 * found by key through a small chained hash, kept in write order so the
 * oldest COMPLETE record is the one evicted at a bound, and stored with
 * the body deflated.  Compression happens in memory_idem_entry_new and
 * inflation in memory_idem_entry_unpack, both outside the shard lock.
 */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "memory/memory_repo.h"
#include "memory/memory_repo_internal.h"

#define MIN_BUCKETS 8

/*
 * FNV-1a of the key.  The table's own hash, so the shard hash can change
 * without touching it.  A user picks their keys and could make them
 * collide, but only within their own table of at most
 * CART_MEMORY_IDEM_MAX records: the worst case is a bounded walk that
 * slows that user alone.
 */
static uint64_t key_hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	return h;
}

/* --- entries (no lock needed) --------------------------------------------- */

/* Sets e->data to body deflated, or to a plain copy if that is no smaller. */
static int pack_body(struct idem_entry *e, const char *body, size_t len)
{
	uLongf zlen = compressBound(len);
	unsigned char *z, *fit;

	if (!len)
		return CART_OK;
	z = malloc(zlen);
	if (!z)
		return CART_ENOMEM;
	if (compress2(z, &zlen, (const Bytef *)body, len, Z_BEST_SPEED) != Z_OK) {
		free(z);
		return CART_EBACKEND;
	}
	if (zlen < len) {
		fit = realloc(z, zlen);    /* give the unused bound back */
		e->data = fit ? fit : z;
		e->data_len = zlen;
		e->deflated = true;
		return CART_OK;
	}
	free(z);
	e->data = malloc(len);
	if (!e->data)
		return CART_ENOMEM;
	memcpy(e->data, body, len);
	e->data_len = len;
	return CART_OK;
}

static size_t cost_of(const struct idem_entry *e)
{
	return sizeof(*e) + strlen(e->key) + 1 + strlen(e->fingerprint) + 1 +
	       e->data_len;
}

int memory_idem_entry_new(struct idem_entry **out, const cart_idem *rec)
{
	struct idem_entry *e = calloc(1, sizeof(*e));
	int err;

	*out = NULL;
	if (!e)
		return CART_ENOMEM;
	e->key = strdup(rec->key);
	e->fingerprint = strdup(rec->fingerprint);
	if (!e->key || !e->fingerprint) {
		memory_idem_entry_free(e);
		return CART_ENOMEM;
	}
	err = pack_body(e, rec->body, rec->body_len);
	if (err) {
		memory_idem_entry_free(e);
		return err;
	}
	e->hash = key_hash(rec->key);
	e->state = rec->state;
	e->status = rec->status;
	e->expires_at = rec->expires_at;
	e->body_len = rec->body_len;
	e->cost = cost_of(e);
	*out = e;
	return CART_OK;
}

int memory_idem_entry_copy(struct idem_entry **out, const struct idem_entry *e)
{
	struct idem_entry *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return CART_ENOMEM;
	*c = *e;
	c->next = c->older = c->newer = NULL;
	c->key = strdup(e->key);
	c->fingerprint = strdup(e->fingerprint);
	c->data = e->data_len ? malloc(e->data_len) : NULL;
	if (!c->key || !c->fingerprint || (e->data_len && !c->data)) {
		memory_idem_entry_free(c);
		return CART_ENOMEM;
	}
	if (e->data_len)
		memcpy(c->data, e->data, e->data_len);
	*out = c;
	return CART_OK;
}

/* Fills rec->body with e's original body_len bytes. */
static int unpack_body(cart_idem *rec, const struct idem_entry *e)
{
	uLongf len = e->body_len;

	if (!e->body_len)
		return CART_OK;
	rec->body = malloc(e->body_len);
	if (!rec->body)
		return CART_ENOMEM;
	if (!e->deflated) {
		memcpy(rec->body, e->data, e->body_len);
	} else if (uncompress((Bytef *)rec->body, &len, e->data, e->data_len)
		   != Z_OK || len != e->body_len) {
		return CART_EBACKEND;   /* our own deflate output: cannot happen */
	}
	rec->body_len = e->body_len;
	return CART_OK;
}

int memory_idem_entry_unpack(cart_idem **out, const struct idem_entry *e)
{
	cart_idem *rec = calloc(1, sizeof(*rec));
	int err = CART_ENOMEM;

	*out = NULL;
	if (!rec)
		return CART_ENOMEM;
	rec->key = strdup(e->key);
	rec->fingerprint = strdup(e->fingerprint);
	if (rec->key && rec->fingerprint)
		err = unpack_body(rec, e);
	if (err) {
		cart_idem_free(rec);
		return err;
	}
	rec->state = e->state;
	rec->status = e->status;
	rec->expires_at = e->expires_at;
	*out = rec;
	return CART_OK;
}

void memory_idem_entry_free(struct idem_entry *e)
{
	if (!e)
		return;
	free(e->key);
	free(e->fingerprint);
	free(e->data);
	free(e);
}

/* --- the table (caller holds the shard lock) ------------------------------ */

static struct idem_entry **bucket_of(struct idem_table *t, uint64_t h)
{
	return &t->buckets[h & (t->n_buckets - 1)];
}

/*
 * Makes the first buckets, and doubles them once they are as many as the
 * entries (up to one per record at the bound); failure to grow is harmless.
 */
static void maybe_grow(struct idem_table *t)
{
	size_t n = t->n_buckets ? t->n_buckets * 2 : MIN_BUCKETS;
	struct idem_entry **b;

	if (t->buckets && (t->n < t->n_buckets ||
			   t->n_buckets >= CART_MEMORY_IDEM_MAX))
		return;
	b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (struct idem_entry *e = t->oldest; e; e = e->newer) {
		e->next = b[e->hash & (n - 1)];
		b[e->hash & (n - 1)] = e;
	}
	free(t->buckets);
	t->buckets = b;
	t->n_buckets = n;
}

struct idem_entry *memory_idem_find(struct idem_table *t, const char *key,
				    size_t *steps)
{
	uint64_t h = key_hash(key);
	struct idem_entry *e;

	if (!t->buckets)
		return NULL;
	for (e = *bucket_of(t, h); e; e = e->next) {
		++*steps;
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

static void account(struct idem_table *t, const struct idem_entry *e, int sign)
{
	t->n += (size_t)sign;
	t->bytes += (size_t)sign * e->cost;
	if (e->state == CART_IDEM_COMPLETE) {
		t->n_complete += (size_t)sign;
		t->complete_bytes += (size_t)sign * e->cost;
	}
}

void memory_idem_drop(struct idem_table *t, struct idem_entry *e, size_t *steps)
{
	struct idem_entry **pp = bucket_of(t, e->hash);

	for (; *pp != e; pp = &(*pp)->next)
		++*steps;
	*pp = e->next;
	if (e->older)
		e->older->newer = e->newer;
	else
		t->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		t->newest = e->older;
	account(t, e, -1);
	memory_idem_entry_free(e);
}

/* Links e as the newest entry; the buckets exist. */
static void link_newest(struct idem_table *t, struct idem_entry *e)
{
	struct idem_entry **b = bucket_of(t, e->hash);

	e->next = *b;
	*b = e;
	e->older = t->newest;
	e->newer = NULL;
	if (t->newest)
		t->newest->newer = e;
	else
		t->oldest = e;
	t->newest = e;
	account(t, e, +1);
}

static bool fits(size_t n, size_t bytes)
{
	return n <= CART_MEMORY_IDEM_MAX && bytes <= CART_MEMORY_IDEM_BYTES;
}

/* Evicts the oldest COMPLETE entries until one more of cost fits. */
static void evict_for(struct idem_table *t, size_t cost, size_t *steps)
{
	struct idem_entry *e = t->oldest, *newer;

	for (; e && !fits(t->n + 1, t->bytes + cost); e = newer) {
		++*steps;
		newer = e->newer;
		if (e->state == CART_IDEM_COMPLETE)
			memory_idem_drop(t, e, steps);
	}
}

int memory_idem_put(struct idem_table *t, struct idem_entry *e, size_t *steps)
{
	struct idem_entry *old = memory_idem_find(t, e->key, steps);
	size_t n = t->n + 1, bytes = t->bytes + e->cost;
	size_t n_free = t->n_complete, bytes_free = t->complete_bytes;

	if (old) {
		n--;
		bytes -= old->cost;
		if (old->state == CART_IDEM_COMPLETE) {
			n_free--;
			bytes_free -= old->cost;
		}
	}
	if (!fits(n - n_free, bytes - bytes_free))
		return CART_EUNAVAILABLE;   /* PENDING claims alone fill the bound */
	maybe_grow(t);
	if (!t->buckets)
		return CART_ENOMEM;
	if (old)
		memory_idem_drop(t, old, steps);
	evict_for(t, e->cost, steps);
	link_newest(t, e);
	return CART_OK;
}

void memory_idem_prune(struct idem_table *t, int64_t now, bool everywhere,
		       size_t *steps)
{
	struct idem_entry *e = t->oldest, *newer;

	for (; e; e = newer) {
		++*steps;
		newer = e->newer;
		if (e->expires_at <= now)
			memory_idem_drop(t, e, steps);
		else if (!everywhere)
			break;
	}
}

void memory_idem_clear(struct idem_table *t)
{
	struct idem_entry *e = t->oldest, *newer;

	for (; e; e = newer) {
		newer = e->newer;
		memory_idem_entry_free(e);
	}
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}
