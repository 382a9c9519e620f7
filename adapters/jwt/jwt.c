/*
 * The verifier: configuration, the current key set and its refresh, and
 * the token pipeline (shape, header, key, signature, claims).
 *
 * The current set is an immutable jwt_keyset behind v->lock; a verify
 * takes a reference under the lock and works without it.  A refresh is
 * claimed under the lock (v->fetching), runs without it, and swaps the
 * new set in under it, so at most one thread reads the key source at a
 * time and nobody with a cached key waits for it.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart/error.h"
#include "jwt/jwt_internal.h"

#define KID_MAX 255

enum key_source { SOURCE_STATIC, SOURCE_FILE, SOURCE_URL };

struct cart_jwt_verifier {
	int allowed;                 /* jwt_alg mask from cfg->algorithms */
	enum key_source source;
	char *location;              /* path or URL; NULL for SOURCE_STATIC */
	int64_t min_refresh_ms;
	int64_t max_age_ms;          /* 0: no refresh for age */
	long fetch_timeout_ms;
	jwt_claim_rules rules;       /* strings owned by the verifier */
	const cart_clock *clock;     /* borrowed */

	pthread_mutex_t lock;        /* guards every field below */
	pthread_cond_t fetched;      /* broadcast when a refresh ends */
	jwt_keyset *keys;            /* current set; this pointer holds a ref */
	int64_t loaded_ms;           /* keys loaded, or the file seen unchanged */
	int64_t last_attempt_ms;     /* start of the last load or refresh */
	bool fetching;               /* a thread is reading the key source */
	uint64_t fetch_gen;          /* counts finished refreshes */
	jwt_file_stamp stamp;        /* SOURCE_FILE: the file keys came from */
	uint64_t refreshes;
	uint64_t refresh_failures;
	char last_error[160];

	/* The verified-token cache, keyed to the current set's generation. */
	jwt_token_cache *cache;
	EVP_MD *sha256;              /* fetched once: no name lookup per token */
	_Atomic uint64_t keys_gen;   /* bumped whenever a set is installed */
	_Atomic int64_t fresh_until_ms;  /* past it, verify fully (max-age refresh) */
};

static const char *const status_names[] = {
	[CART_JWT_OK] = "ok",
	[CART_JWT_MALFORMED] = "malformed",
	[CART_JWT_TOO_LARGE] = "too_large",
	[CART_JWT_ALG_REFUSED] = "alg_refused",
	[CART_JWT_UNKNOWN_KID] = "unknown_kid",
	[CART_JWT_BAD_SIGNATURE] = "bad_signature",
	[CART_JWT_EXPIRED] = "expired",
	[CART_JWT_NOT_YET_VALID] = "not_yet_valid",
	[CART_JWT_BAD_ISSUER] = "bad_issuer",
	[CART_JWT_BAD_AUDIENCE] = "bad_audience",
	[CART_JWT_NO_SUBJECT] = "no_subject",
	[CART_JWT_KEYS_UNAVAILABLE] = "keys_unavailable",
	[CART_JWT_NOMEM] = "nomem",
};

const char *cart_jwt_status_name(int st)
{
	if (st < 0 || (size_t)st >= sizeof(status_names) / sizeof(status_names[0]))
		return "unknown";
	return status_names[st];
}

/* --- configuration ------------------------------------------------------- */

static int parse_algorithms(const char *list, int *mask, char *err, size_t err_len)
{
	const char *p = list;

	*mask = 0;
	if (!list || !list[0]) {
		snprintf(err, err_len, "JWT_ALGORITHMS is empty (use RS256 and/or ES256)");
		return -1;
	}
	for (;;) {
		size_t n;
		int a;

		p += strspn(p, " ");
		n = strcspn(p, ", ");
		a = jwt_alg_from_name(p, n);
		if (!a) {
			snprintf(err, err_len,
				 "JWT_ALGORITHMS: \"%.*s\" is not allowed (only RS256, ES256)",
				 (int)(n > 32 ? 32 : n), p);
			return -1;
		}
		*mask |= a;
		p += n;
		p += strspn(p, " ");
		if (!*p)
			return 0;
		if (*p++ != ',') {
			snprintf(err, err_len, "JWT_ALGORITHMS: expected a comma-separated list");
			return -1;
		}
	}
}

static bool empty(const char *s)
{
	return !s || !s[0];
}

static int check_config(const cart_jwt_config *cfg, bool need_source,
			char *err, size_t err_len)
{
	if (need_source && !empty(cfg->jwks_file) + !empty(cfg->jwks_url) +
			   !!cfg->jwks_doc != 1)
		snprintf(err, err_len, "set exactly one of the JWKS file, URL and document");
	else if (need_source && !empty(cfg->jwks_url) && jwt_url_allowed(cfg->jwks_url))
		snprintf(err, err_len, "the JWKS URL must be https:// (http:// only to a loopback host)");
	else if (cfg->min_refresh_seconds < 1 || cfg->min_refresh_seconds > 86400)
		snprintf(err, err_len, "JWT_JWKS_MIN_REFRESH_SECONDS must be 1..86400");
	else if (cfg->max_age_seconds < 0 || cfg->max_age_seconds > 30 * 86400)
		snprintf(err, err_len, "the JWKS max age must be 0..2592000 seconds");
	else if (cfg->fetch_timeout_ms < 1 || cfg->fetch_timeout_ms > 60000)
		snprintf(err, err_len, "the JWKS fetch timeout must be 1..60000 ms");
	else if (cfg->leeway_seconds < 0 || cfg->leeway_seconds > 60)
		snprintf(err, err_len, "the JWT leeway must be 0..60 seconds");
	else if (empty(cfg->issuer))
		snprintf(err, err_len, "the JWT issuer is required");
	else if (empty(cfg->audience) && empty(cfg->client_id))
		snprintf(err, err_len, "set the JWT audience, the client id, or both");
	else if (cfg->admin_scope && !cfg->admin_scope[0])
		snprintf(err, err_len, "the admin scope must not be empty");
	else if (cfg->cache_entries < CART_JWT_CACHE_OFF ||
		 cfg->cache_entries > CART_JWT_MAX_CACHE_ENTRIES)
		snprintf(err, err_len, "JWT_CACHE_ENTRIES must be 0 (off) .. %ld",
			 CART_JWT_MAX_CACHE_ENTRIES);
	else
		return 0;
	return -1;
}

static char *dup_or_null(const char *s, bool *failed)
{
	char *d;

	if (empty(s))
		return NULL;
	d = strdup(s);
	if (!d)
		*failed = true;
	return d;
}

/* Everything but the keys.  NULL with err on failure. */
static cart_jwt_verifier *verifier_alloc(const cart_jwt_config *cfg,
					 const cart_clock *clock, bool need_source,
					 int *rc, char *err, size_t err_len)
{
	cart_jwt_verifier *v;
	bool oom = false;
	int mask;

	if (check_config(cfg, need_source, err, err_len) ||
	    parse_algorithms(cfg->algorithms, &mask, err, err_len)) {
		*rc = CART_EINVALID;
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		*rc = CART_ENOMEM;
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->fetched, NULL);
	v->allowed = mask;
	v->clock = clock;
	v->min_refresh_ms = (int64_t)cfg->min_refresh_seconds * 1000;
	v->max_age_ms = (int64_t)cfg->max_age_seconds * 1000;
	v->fetch_timeout_ms = cfg->fetch_timeout_ms;
	v->rules.leeway_ms = (int64_t)cfg->leeway_seconds * 1000;
	v->rules.issuer = dup_or_null(cfg->issuer, &oom);
	v->rules.audience = dup_or_null(cfg->audience, &oom);
	v->rules.client_id = dup_or_null(cfg->client_id, &oom);
	v->rules.admin_scope = dup_or_null(cfg->admin_scope ? cfg->admin_scope
					   : CART_JWT_DEFAULT_ADMIN_SCOPE, &oom);
	if (need_source && !cfg->jwks_doc) {
		v->source = empty(cfg->jwks_url) ? SOURCE_FILE : SOURCE_URL;
		v->location = dup_or_null(v->source == SOURCE_URL ? cfg->jwks_url
					  : cfg->jwks_file, &oom);
	}
	if (!oom && cfg->cache_entries != CART_JWT_CACHE_OFF &&
	    (jwt_token_cache_new(&v->cache, cfg->cache_entries ? (size_t)cfg->cache_entries
				 : (size_t)CART_JWT_DEFAULT_CACHE_ENTRIES,
				 v->rules.leeway_ms) ||
	     !(v->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL))))
		oom = true;
	if (oom) {
		cart_jwt_verifier_free(v);
		*rc = CART_ENOMEM;
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	return v;
}

void cart_jwt_verifier_free(cart_jwt_verifier *v)
{
	if (!v)
		return;
	jwt_keyset_unref(v->keys);
	jwt_token_cache_free(v->cache);
	EVP_MD_free(v->sha256);
	free(v->location);
	free((char *)v->rules.issuer);
	free((char *)v->rules.audience);
	free((char *)v->rules.client_id);
	free((char *)v->rules.admin_scope);
	pthread_cond_destroy(&v->fetched);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/* --- loading and refreshing keys ----------------------------------------- */

/* Under v->lock, after keys were (re)loaded: how long cached tokens count. */
static void note_loaded(cart_jwt_verifier *v, bool new_set)
{
	if (new_set)
		atomic_fetch_add(&v->keys_gen, 1);
	atomic_store(&v->fresh_until_ms, v->max_age_ms > 0 ?
		     v->loaded_ms + v->max_age_ms : INT64_MAX);
}

/*
 * Reads the key source without any lock.  0 with a new set in *out, 1 if
 * the file is unchanged since *last (may be NULL), -1 with err.
 */
static int load_keys(const cart_jwt_verifier *v, const jwt_file_stamp *last,
		     jwt_file_stamp *stamp, jwt_keyset **out,
		     char *err, size_t err_len)
{
	char *doc = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (v->source == SOURCE_FILE)
		rc = jwt_file_read(&doc, &len, stamp, v->location, last, err, err_len);
	else
		rc = jwt_url_fetch(&doc, &len, v->location, v->fetch_timeout_ms,
				   err, err_len);
	if (rc == 0)
		rc = jwt_keyset_parse(out, doc, len, v->allowed, err, err_len);
	free(doc);
	return rc;
}

/*
 * Under v->lock: may this thread refresh now?  If so it is marked as the
 * fetcher and must call run_refresh().  A wall clock that stepped back
 * restarts the window instead of stopping refreshes until it catches up.
 */
static bool claim_refresh(cart_jwt_verifier *v, int64_t now)
{
	if (v->source == SOURCE_STATIC || v->fetching ||
	    (now >= v->last_attempt_ms && now - v->last_attempt_ms < v->min_refresh_ms))
		return false;
	v->fetching = true;
	v->last_attempt_ms = now;
	return true;
}

/* Called without the lock by the thread that won claim_refresh(). */
static void run_refresh(cart_jwt_verifier *v)
{
	jwt_file_stamp last, stamp = { 0 };
	jwt_keyset *fresh = NULL, *old = NULL;
	char err[sizeof(v->last_error)] = "";
	int rc;

	pthread_mutex_lock(&v->lock);
	last = v->stamp;
	pthread_mutex_unlock(&v->lock);

	rc = load_keys(v, &last, &stamp, &fresh, err, sizeof(err));

	pthread_mutex_lock(&v->lock);
	v->refreshes++;
	if (rc == 0) {
		old = v->keys;
		v->keys = fresh;
		v->stamp = stamp;
	}
	if (rc >= 0) {
		v->loaded_ms = cart_clock_now(v->clock);
		note_loaded(v, rc == 0);
	} else {
		v->refresh_failures++;
		snprintf(v->last_error, sizeof(v->last_error), "%s", err);
	}
	v->fetching = false;
	v->fetch_gen++;
	pthread_cond_broadcast(&v->fetched);
	pthread_mutex_unlock(&v->lock);
	jwt_keyset_unref(old);
}

/* A reference to the current set, after refreshing it first if it is
 * older than max_age and this thread may do so. */
static jwt_keyset *current_keys(cart_jwt_verifier *v)
{
	int64_t now = cart_clock_now(v->clock);
	jwt_keyset *ks;
	bool refresh;

	pthread_mutex_lock(&v->lock);
	refresh = v->max_age_ms > 0 &&
		  (now - v->loaded_ms >= v->max_age_ms || now < v->loaded_ms) &&
		  claim_refresh(v, now);
	pthread_mutex_unlock(&v->lock);
	if (refresh)
		run_refresh(v);
	pthread_mutex_lock(&v->lock);
	ks = jwt_keyset_ref(v->keys);
	pthread_mutex_unlock(&v->lock);
	return ks;
}

/*
 * The token names a key that seen lacks.  Returns a reference to a newer
 * set (one another thread installed, one a running fetch produced, or one
 * this thread fetched), or NULL when there is none and the rate limit
 * forbids fetching.
 */
static jwt_keyset *keys_after_refresh(cart_jwt_verifier *v, const jwt_keyset *seen)
{
	int64_t now = cart_clock_now(v->clock);
	jwt_keyset *ks = NULL;
	bool refresh = false;

	pthread_mutex_lock(&v->lock);
	if (v->keys == seen && v->fetching) {
		uint64_t gen = v->fetch_gen;

		while (v->fetching && v->fetch_gen == gen)
			pthread_cond_wait(&v->fetched, &v->lock);
	} else if (v->keys == seen) {
		refresh = claim_refresh(v, now);
	}
	if (v->keys != seen)
		ks = jwt_keyset_ref(v->keys);
	pthread_mutex_unlock(&v->lock);
	if (!refresh)
		return ks;
	run_refresh(v);
	pthread_mutex_lock(&v->lock);
	if (v->keys != seen)
		ks = jwt_keyset_ref(v->keys);
	pthread_mutex_unlock(&v->lock);
	return ks;
}

static int install_first(cart_jwt_verifier *v, jwt_keyset *ks)
{
	v->keys = ks;
	v->loaded_ms = cart_clock_now(v->clock);
	v->last_attempt_ms = v->loaded_ms;
	note_loaded(v, true);
	return CART_OK;
}

int cart_jwt_verifier_new(cart_jwt_verifier **out, const cart_jwt_config *cfg,
			  const cart_clock *clock, char *err, size_t err_len)
{
	char scratch[1];
	cart_jwt_verifier *v;
	jwt_keyset *ks;
	int rc = CART_OK;

	if (!err_len) {
		err = scratch;
		err_len = sizeof(scratch);
	}
	err[0] = '\0';
	*out = NULL;
	if (cfg->jwks_doc && (!empty(cfg->jwks_file) || !empty(cfg->jwks_url))) {
		snprintf(err, err_len, "set exactly one of the JWKS file, URL and document");
		return CART_EINVALID;
	}
	if (cfg->jwks_doc)
		return jwt_verifier_new_static(out, cfg, clock, cfg->jwks_doc,
					       cfg->jwks_doc_len, err, err_len);
	v = verifier_alloc(cfg, clock, true, &rc, err, err_len);
	if (!v)
		return rc;
	if (load_keys(v, NULL, &v->stamp, &ks, err, err_len) != 0) {
		cart_jwt_verifier_free(v);
		return CART_EBACKEND;
	}
	*out = v;
	return install_first(v, ks);
}

int jwt_verifier_new_static(cart_jwt_verifier **out, const cart_jwt_config *cfg,
			    const cart_clock *clock, const char *jwks,
			    size_t len, char *err, size_t err_len)
{
	cart_jwt_verifier *v;
	jwt_keyset *ks;
	int rc = CART_OK;

	*out = NULL;
	v = verifier_alloc(cfg, clock, false, &rc, err, err_len);
	if (!v)
		return rc;
	v->source = SOURCE_STATIC;
	if (jwt_keyset_parse(&ks, jwks, len, v->allowed, err, err_len) != 0) {
		cart_jwt_verifier_free(v);
		return CART_EBACKEND;
	}
	*out = v;
	return install_first(v, ks);
}

int cart_jwt_verifier_set_jwks(cart_jwt_verifier *v, const char *jwks, size_t len,
			       char *err, size_t err_len)
{
	jwt_keyset *ks, *old;

	if (jwt_keyset_parse(&ks, jwks, len, v->allowed, err, err_len) != 0) {
		pthread_mutex_lock(&v->lock);
		v->refreshes++;
		v->refresh_failures++;
		snprintf(v->last_error, sizeof(v->last_error), "%s", err);
		pthread_mutex_unlock(&v->lock);
		return CART_EBACKEND;
	}
	pthread_mutex_lock(&v->lock);
	old = v->keys;
	v->keys = ks;
	v->refreshes++;
	v->loaded_ms = cart_clock_now(v->clock);
	note_loaded(v, true);
	pthread_mutex_unlock(&v->lock);
	jwt_keyset_unref(old);
	return CART_OK;
}

void cart_jwt_verifier_stats(cart_jwt_verifier *v, cart_jwt_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&v->lock);
	out->refreshes = v->refreshes;
	out->refresh_failures = v->refresh_failures;
	out->keys = v->keys ? v->keys->n : 0;
	out->loaded_ms = v->loaded_ms;
	snprintf(out->last_error, sizeof(out->last_error), "%s", v->last_error);
	pthread_mutex_unlock(&v->lock);
	if (v->cache)
		jwt_token_cache_stats(v->cache, &out->cache_capacity, &out->cache_hits,
				      &out->cache_misses, &out->cache_evictions);
}

/* --- header and key ------------------------------------------------------ */

typedef struct jws_header {
	int alg;
	bool has_kid;
	char kid[KID_MAX + 1];
} jws_header;

static int read_header(jws_header *h, const cJSON *hdr, int allowed)
{
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(hdr, "kid");

	if (!cJSON_IsString(alg))
		return CART_JWT_MALFORMED;
	h->alg = jwt_alg_from_name(alg->valuestring, strlen(alg->valuestring));
	if (!(h->alg & allowed))
		return CART_JWT_ALG_REFUSED;
	/* RFC 7515 4.1.11: we understand no extension, so none may be
	 * critical.  jku, x5u, x5c and jwk are never read at all. */
	if (cJSON_GetObjectItemCaseSensitive(hdr, "crit"))
		return CART_JWT_MALFORMED;
	h->has_kid = kid != NULL;
	if (kid) {
		if (!cJSON_IsString(kid) || !kid->valuestring[0] ||
		    strlen(kid->valuestring) > KID_MAX)
			return CART_JWT_MALFORMED;
		strcpy(h->kid, kid->valuestring);
	}
	return CART_JWT_OK;
}

enum key_match { KEY_FOUND, KEY_UNKNOWN, KEY_AMBIGUOUS, KEY_WRONG_TYPE };

static int select_key(const jwt_keyset *ks, const jws_header *h, const jwt_key **out)
{
	const jwt_key *found = NULL;
	int fits = 0;
	bool kid_seen = false;

	for (int i = 0; i < ks->n; i++) {
		const jwt_key *k = &ks->keys[i];

		if (h->has_kid && (!k->has_kid || strcmp(k->kid, h->kid)))
			continue;
		kid_seen = true;
		if (k->alg != h->alg)
			continue;
		if (!found)
			found = k;
		fits++;
	}
	*out = found;
	if (h->has_kid)
		return found ? KEY_FOUND : kid_seen ? KEY_WRONG_TYPE : KEY_UNKNOWN;
	return fits == 1 ? KEY_FOUND : fits ? KEY_AMBIGUOUS : KEY_UNKNOWN;
}

static int match_status(int m)
{
	return m == KEY_WRONG_TYPE ? CART_JWT_ALG_REFUSED : CART_JWT_UNKNOWN_KID;
}

/* Finds the key (refreshing once if permitted) and checks the signature. */
static int check_signature(cart_jwt_verifier *v, const jws_header *h,
			   const jws_parts *p, uint8_t *sigbuf)
{
	jwt_keyset *ks = current_keys(v);
	const jwt_key *key;
	size_t sig_len;
	int m, rc;

	m = select_key(ks, h, &key);
	if (m == KEY_UNKNOWN) {
		jwt_keyset *newer = keys_after_refresh(v, ks);

		if (newer) {
			jwt_keyset_unref(ks);
			ks = newer;
			m = select_key(ks, h, &key);
		}
	}
	if (m != KEY_FOUND)
		rc = match_status(m);
	else if (jwt_b64url_decode(sigbuf, &sig_len, p->seg[2], p->len[2]))
		rc = CART_JWT_MALFORMED;
	else
		rc = jwt_verify_signature(key, h->alg, (const uint8_t *)p->seg[0],
					  p->len[0] + 1 + p->len[1], sigbuf, sig_len);
	jwt_keyset_unref(ks);
	return rc;
}

/* --- verify -------------------------------------------------------------- */

/* Header, key and signature; the payload is parsed only after them. */
static int verify_parts(cart_jwt_verifier *v, const jws_parts *p,
			cart_jwt_principal *out)
{
	char buf[CART_JWT_MAX_TOKEN];   /* one decoded segment at a time */
	jws_header h = { 0 };
	cJSON *j;
	int rc;

	j = jwt_decode_object(p->seg[0], p->len[0], buf);
	if (!j)
		return CART_JWT_MALFORMED;
	rc = read_header(&h, j, v->allowed);
	cJSON_Delete(j);
	if (rc == CART_JWT_OK)
		rc = check_signature(v, &h, p, (uint8_t *)buf);
	if (rc != CART_JWT_OK)
		return rc;
	j = jwt_decode_object(p->seg[1], p->len[1], buf);
	if (!j)
		return CART_JWT_MALFORMED;
	rc = jwt_check_claims(j, &v->rules, cart_clock_now(v->clock), out);
	cJSON_Delete(j);
	return rc;
}

int cart_jwt_verify(cart_jwt_verifier *v, const char *token, size_t len,
		    cart_jwt_principal *out)
{
	uint8_t digest[32];
	jwt_cache_place pl = { 0, 0 };
	bool hashed;
	uint64_t gen;
	int64_t now;
	jws_parts p;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > CART_JWT_MAX_TOKEN)
		return CART_JWT_TOO_LARGE;
	if (!token)
		return CART_JWT_MALFORMED;
	/* The same bytes verified against the current keys: done. */
	gen = atomic_load(&v->keys_gen);
	now = cart_clock_now(v->clock);
	if (v->cache) {
		/* the set's misses overlap the hash (jwt_cache_place) */
		pl = jwt_token_cache_place(v->cache, token, len);
		jwt_token_cache_warm(v->cache, pl);
	}
	hashed = v->cache && jwt_token_digest(v->sha256, token, len, digest,
					      v->cache, pl);
	if (hashed && now < atomic_load(&v->fresh_until_ms) &&
	    jwt_token_cache_get(v->cache, pl, digest, gen, now, out))
		return CART_JWT_OK;
	if (jwt_split_compact(&p, token, len))
		return CART_JWT_MALFORMED;
	/* All three spelled right before any key is looked up (or fetched). */
	for (int i = 0; i < 3; i++)
		if (jwt_b64url_decode(NULL, NULL, p.seg[i], p.len[i]))
			return CART_JWT_MALFORMED;
	rc = verify_parts(v, &p, out);
	if (rc != CART_JWT_OK)
		memset(out, 0, sizeof(*out));
	else if (hashed)
		jwt_token_cache_put(v->cache, pl, digest, gen, now, out);
	return rc;
}
