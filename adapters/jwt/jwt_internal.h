#ifndef CART_JWT_INTERNAL_H
#define CART_JWT_INTERNAL_H

/*
 * Private to adapters/jwt (and its tests and fuzz target): base64url,
 * key sets built from a JWKS, the signature layer and the key sources.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "jwt/jwt.h"

/* --- base64url (b64url.c) ------------------------------------------------ */

/* Decoded size of n base64url characters, or (size_t)-1 if n % 4 == 1. */
size_t jwt_b64url_decoded_len(size_t n);

/*
 * Strict RFC 7515 base64url: alphabet A-Z a-z 0-9 - _, no padding, no
 * whitespace, and the unused low bits of the last character must be zero
 * (one encoding per byte string).  out needs jwt_b64url_decoded_len(n)
 * bytes.  Returns 0 and the length in *out_len, or -1.  With out and
 * out_len NULL it only checks the syntax.
 */
int jwt_b64url_decode(uint8_t *out, size_t *out_len, const char *in, size_t n);

/* --- the compact serialization (jws.c) ---------------------------------- */

typedef struct jws_parts {
	const char *seg[3];     /* header, payload, signature: base64url */
	size_t len[3];
} jws_parts;

/* Splits token[0..len) at its dots; -1 unless there are exactly two. */
int jwt_split_compact(jws_parts *p, const char *token, size_t len);

struct cJSON;

/*
 * Decodes one base64url segment into buf (at least
 * jwt_b64url_decoded_len(len) + 1 bytes; left NUL-terminated) and parses
 * it as exactly one JSON object (surrounding whitespace allowed) with
 * unique member names, nesting at most 16 deep and no NUL (raw or
 * \u0000: cJSON would cut a string there).  NULL if not; the caller frees
 * the result with cJSON_Delete().
 */
struct cJSON *jwt_decode_object(const char *seg, size_t len, char *buf);

/* --- algorithms and keys (jwks.c) ---------------------------------------- */

typedef enum jwt_alg {
	JWT_ALG_RS256 = 1 << 0,
	JWT_ALG_ES256 = 1 << 1,
} jwt_alg;

#define JWT_ALG_ALL (JWT_ALG_RS256 | JWT_ALG_ES256)

/* JWT_ALG_RS256 for "RS256", ... ; 0 for every other name. */
int jwt_alg_from_name(const char *name, size_t len);

typedef struct jwt_key {
	char kid[256];          /* "" when the JWK has none */
	bool has_kid;
	int alg;                /* the one jwt_alg this key verifies */
	EVP_PKEY *pkey;         /* owned; shared read-only by verifying threads */
} jwt_key;

/*
 * An immutable key set, shared by reference: whoever holds a reference may
 * read it without a lock.  The verifier holds one for the current set.
 */
typedef struct jwt_keyset {
	atomic_int refs;
	int n;
	jwt_key keys[CART_JWT_MAX_KEYS];
} jwt_keyset;

/*
 * Parses a JWKS document (doc[0..len), not necessarily NUL-terminated) and
 * imports the keys usable for one of the algorithms in allowed (a jwt_alg
 * mask).  Unusable entries are skipped.  *out gets a set with one
 * reference.  Returns 0, or -1 with a one-line reason in err (document
 * too large or not JSON, no "keys" array, more than CART_JWT_MAX_KEYS
 * entries, no usable key, out of memory).
 */
int jwt_keyset_parse(jwt_keyset **out, const char *doc, size_t len,
		     int allowed, char *err, size_t err_len);
jwt_keyset *jwt_keyset_ref(jwt_keyset *ks);
void jwt_keyset_unref(jwt_keyset *ks);   /* accepts NULL */

/*
 * The signature layer alone: verifies sig[0..sig_len) over
 * input[0..input_len) with key for alg.  Returns CART_JWT_OK,
 * CART_JWT_ALG_REFUSED (alg is not the key's), CART_JWT_BAD_SIGNATURE or
 * CART_JWT_NOMEM.  Thread-safe (the key is only read).
 */
int jwt_verify_signature(const jwt_key *key, int alg, const uint8_t *input,
			 size_t input_len, const uint8_t *sig, size_t sig_len);

/* --- key sources (jwks_source.c) ----------------------------------------- */

/* What a file source saw last time, to skip re-reading an unchanged file. */
typedef struct jwt_file_stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns;
} jwt_file_stamp;

/*
 * Reads a JWKS file of at most CART_JWT_MAX_JWKS bytes into *out (malloc'd,
 * NUL-terminated, caller frees) and records its stamp.  If last is not
 * NULL and the file's stamp equals *last, returns 1 without reading.
 * Returns 0, 1, or -1 with a reason in err.
 */
int jwt_file_read(char **out, size_t *out_len, jwt_file_stamp *stamp,
		  const char *path, const jwt_file_stamp *last,
		  char *err, size_t err_len);

/*
 * GETs url with a fresh curl easy handle: https (or http) only, redirects
 * only to https, at most CART_JWT_MAX_JWKS bytes, timeout_ms in all, HTTP
 * 200 required.  *out as for jwt_file_read.  Returns 0 or -1 with err.
 */
int jwt_url_fetch(char **out, size_t *out_len, const char *url,
		  long timeout_ms, char *err, size_t err_len);

/* 0 if url is https://..., or http:// to a loopback host; else -1. */
int jwt_url_allowed(const char *url);

/* --- claims (claims.c) -------------------------------------------------- */

typedef struct jwt_claim_rules {
	int64_t leeway_ms;
	const char *issuer;        /* required */
	const char *audience;      /* may be NULL */
	const char *client_id;     /* may be NULL */
	const char *admin_scope;   /* never NULL */
} jwt_claim_rules;

/*
 * Checks a verified payload object against the rules at now_ms, exactly
 * as cart_jwt_verify() documents step 5, and fills out on CART_JWT_OK.
 */
int jwt_check_claims(const struct cJSON *payload, const jwt_claim_rules *r,
		     int64_t now_ms, cart_jwt_principal *out);

/* --- a verifier over a fixed JWKS (jwt.c) -------------------------------- */

/*
 * Like cart_jwt_verifier_new(), but the keys come from jwks[0..len) and
 * never change (cfg->jwks_file and cfg->jwks_url are ignored).  For the
 * fuzz target and tests.
 */
int jwt_verifier_new_static(cart_jwt_verifier **out, const cart_jwt_config *cfg,
			    const cart_clock *clock, const char *jwks,
			    size_t len, char *err, size_t err_len);

/* --- verified-token cache (token_cache.c) ------------------------------- */

/*
 * Remembers tokens that verified, by the SHA-256 of their bytes, so a
 * client sending the same token again costs a hash and a lookup instead
 * of a signature check (RS256 verify is ~20 us, ES256 ~55 us, plus two
 * JSON parses).  An entry is used only while the key set it was verified
 * against is current (gen) and before exp + leeway, so rotation and
 * expiry behave exactly as without it.  Fixed size: sets of 8 entries
 * (CART_JWT_CACHE_ENTRY_BYTES each), least recently used out; a subject
 * longer than CART_JWT_CACHE_SUB_MAX is never cached.  Thread-safe.
 */
typedef struct jwt_token_cache jwt_token_cache;

/*
 * Where a token's entry is: its set, and the tag that picks the way.
 * From a keyed hash of the token's last bytes (its signature), so it is
 * known, and the set can be warmed, before the digest; only the digest
 * decides whether an entry is the token's.
 */
typedef struct jwt_cache_place {
	size_t set;
	uint64_t tag;
} jwt_cache_place;

/*
 * The key: SHA-256 of the token's bytes.  Hashed with a context on the
 * stack (OpenSSL's SHA256_*): EVP_Digest allocates a digest context and a
 * provider context per call, ~950 ns for a 760-byte token against ~505
 * with jemalloc's thread caches off as in the service.  sha256 (fetched
 * once) is used only where the deprecated functions are compiled out.
 * With c (may be NULL), halfway through it warms the entry of the token
 * placed at pl (jwt_token_cache_warm_entry).
 */
bool jwt_token_digest(const EVP_MD *sha256, const char *token, size_t len,
		      uint8_t out[32], jwt_token_cache *c, jwt_cache_place pl);

/* entries: 1..CART_JWT_MAX_CACHE_ENTRIES, rounded up to a whole set. */
int jwt_token_cache_new(jwt_token_cache **out, size_t entries, int64_t leeway_ms);
void jwt_token_cache_free(jwt_token_cache *c);   /* accepts NULL */
jwt_cache_place jwt_token_cache_place(const jwt_token_cache *c,
				      const char *token, size_t len);
/*
 * Hints, no effect on what the cache answers: warm brings the place's
 * set of tags and shard lock into the CPU's cache; warm_entry, once the
 * tags are there, the entry whose tag matches, if one does.
 */
void jwt_token_cache_warm(jwt_token_cache *c, jwt_cache_place pl);
void jwt_token_cache_warm_entry(jwt_token_cache *c, jwt_cache_place pl);
/* true and out's sub, admin and exp_ms filled on a hit. */
bool jwt_token_cache_get(jwt_token_cache *c, jwt_cache_place pl,
			 const uint8_t digest[32], uint64_t gen, int64_t now_ms,
			 cart_jwt_principal *out);
/* now_ms: when it was verified (the LRU order). */
void jwt_token_cache_put(jwt_token_cache *c, jwt_cache_place pl,
			 const uint8_t digest[32], uint64_t gen, int64_t now_ms,
			 const cart_jwt_principal *p);
void jwt_token_cache_stats(jwt_token_cache *c, uint64_t *capacity, uint64_t *hits,
			   uint64_t *misses, uint64_t *evictions);

#endif
