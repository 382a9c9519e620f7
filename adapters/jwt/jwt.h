#ifndef CART_JWT_H
#define CART_JWT_H

/*
 * Bearer-token verification: compact JWS (RFC 7515) carrying JWT claims
 * (RFC 7519), signed with RS256 or ES256 by a key from a JWKS (RFC 7517)
 * read from a file or fetched over HTTPS (e.g. an Amazon Cognito user
 * pool's https://cognito-idp.<region>.amazonaws.com/<pool>/.well-known/jwks.json).
 *
 * Not a port: app/ calls it once per request and maps the status to 401.
 * The adapter never logs; it returns a status (cart_jwt_status_name() is
 * the log field and metrics label) and keeps counters for the app to read
 * (cart_jwt_verifier_stats()).
 *
 * What is refused, whatever the token says:
 *   - every alg outside the configured allowlist (a subset of RS256,ES256):
 *     "none", HS*, PS*, ES384, ...; an alg that does not fit the selected
 *     key (RS256 needs kty RSA, ES256 needs kty EC on P-256, and the JWK's
 *     own "alg", if any, must be the same);
 *   - a "crit" header parameter (we implement no extension);
 *   - keys named by the token: "jku", "x5u", "x5c" and "jwk" are ignored,
 *     never fetched and never used;
 *   - anything but strict base64url (no padding, no '+', '/', whitespace,
 *     non-zero trailing bits), anything but exactly three segments, a
 *     header or payload that is not one JSON object (duplicate member names
 *     included).
 *
 * Threads: cart_jwt_verify() and cart_jwt_verifier_stats() are safe from
 * any number of threads at once.  Verification works on a reference to the
 * current key set, taken under a short mutex; a JWKS fetch happens in at
 * most one thread at a time and without that mutex held, so tokens whose
 * key is cached never wait for the network.
 *
 * Call curl_global_init() before cart_jwt_verifier_new() when jwks_url is
 * used (app/main.c does).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cart/ports.h"

#define CART_JWT_MAX_TOKEN 8192          /* bytes of the compact JWS */
#define CART_JWT_MAX_JWKS (64 * 1024)    /* bytes of a JWKS document */
#define CART_JWT_MAX_KEYS 32             /* entries in a JWKS "keys" array */
#define CART_JWT_DEFAULT_ADMIN_SCOPE "cart:admin"

typedef struct cart_jwt_config {
	/*
	 * Comma-separated, from JWT_ALGORITHMS: "RS256", "ES256" or both
	 * (spaces around names are allowed).  Any other name (none, HS256,
	 * PS256, ...) and an empty list fail cart_jwt_verifier_new().
	 */
	const char *algorithms;
	/* Exactly one of the three.  The URL must be https://, or http:// to
	 * a loopback host (127.0.0.1, [::1], localhost) for tests.  A
	 * document (jwks_doc[0..jwks_doc_len), e.g. from a secret) is never
	 * re-read: its owner replaces it with cart_jwt_verifier_set_jwks(). */
	const char *jwks_file;
	const char *jwks_url;
	const char *jwks_doc;
	size_t jwks_doc_len;
	/*
	 * JWT_JWKS_MIN_REFRESH_SECONDS, >= 1: the key source is consulted
	 * again (URL: fetched; file: re-read if its mtime, size or inode
	 * changed) at most once per this many seconds, across all threads,
	 * whether the reason is an unknown kid or age.
	 */
	int min_refresh_seconds;
	/*
	 * >= 0; 0 disables.  A key set older than this is refreshed by the
	 * next cart_jwt_verify() (in that thread, before it verifies; other
	 * threads keep using the old set meanwhile).  If the refresh fails
	 * the old keys stay in use and the next try waits min_refresh_seconds.
	 */
	int max_age_seconds;
	int fetch_timeout_ms;        /* 1..60000: libcurl's whole-transfer limit */
	int leeway_seconds;          /* 0..60, for exp, nbf and iat */
	const char *issuer;          /* required: "iss" must equal it exactly */
	const char *audience;        /* may be NULL if client_id is set */
	const char *client_id;       /* may be NULL if audience is set */
	const char *admin_scope;     /* NULL: CART_JWT_DEFAULT_ADMIN_SCOPE */
	/*
	 * JWT_CACHE_ENTRIES: how many verified tokens are remembered, by the
	 * SHA-256 of their bytes, so that a token sent again costs a hash
	 * and a lookup instead of a signature check and two JSON parses
	 * (~20-55 us).  0: CART_JWT_DEFAULT_CACHE_ENTRIES; CART_JWT_CACHE_OFF:
	 * none, every token is verified; else at most
	 * CART_JWT_MAX_CACHE_ENTRIES, rounded up to a multiple of 8.  The
	 * table (CART_JWT_CACHE_ENTRY_BYTES per entry) is allocated by
	 * cart_jwt_verifier_new; its pages become resident as tokens fill
	 * them.  Size it to the distinct tokens a task sees within their
	 * lifetime; cache_evictions (stats) counts live tokens pushed out.
	 */
	long cache_entries;
} cart_jwt_config;

#define CART_JWT_DEFAULT_CACHE_ENTRIES 32768L
#define CART_JWT_MAX_CACHE_ENTRIES (1L << 20)
#define CART_JWT_CACHE_OFF (-1L)
#define CART_JWT_CACHE_ENTRY_BYTES 136   /* 128 per entry, 64 per set of 8 */
/* A token whose sub is longer than this is verified every time. */
#define CART_JWT_CACHE_SUB_MAX 78

typedef struct cart_jwt_verifier cart_jwt_verifier;

/*
 * Validates cfg and loads the keys once: a file is read now, a URL is
 * fetched now, and either must yield at least one usable key or this
 * fails.  Keys that cannot be used (unknown kty, RSA below 2048 bits, a
 * curve other than P-256, "use" other than "sig", an "alg" or kty outside
 * the allowlist, "key_ops" without "verify") are skipped.
 *
 * Returns CART_OK, CART_EINVALID (bad configuration), CART_EBACKEND (keys
 * unavailable or unusable) or CART_ENOMEM; on failure err (if err_len > 0)
 * gets one line saying why, and *out is NULL.  cfg's strings are copied;
 * clock is borrowed and must outlive the verifier.  Not thread-safe with
 * respect to the verifier it creates (nobody else has it yet).
 */
int cart_jwt_verifier_new(cart_jwt_verifier **out, const cart_jwt_config *cfg,
			  const cart_clock *clock, char *err, size_t err_len);

/*
 * Replaces the key set with the keys of jwks[0..len) (a verifier made
 * from jwks_doc: its secret rotated).  Tokens verified against the old
 * set are verified again.  On failure (CART_EBACKEND, CART_ENOMEM, with
 * err) the old keys stay.  Thread-safe, also while tokens are verified.
 */
int cart_jwt_verifier_set_jwks(cart_jwt_verifier *v, const char *jwks, size_t len,
			       char *err, size_t err_len);

/* Accepts NULL.  No verify may be running. */
void cart_jwt_verifier_free(cart_jwt_verifier *v);

typedef enum cart_jwt_status {
	CART_JWT_OK = 0,
	CART_JWT_MALFORMED,        /* not a compact JWS with JSON-object parts,
				    * a required claim missing or of the wrong
				    * type, or a "crit" header */
	CART_JWT_TOO_LARGE,        /* longer than CART_JWT_MAX_TOKEN */
	CART_JWT_ALG_REFUSED,      /* alg not allowed, or not the key's */
	CART_JWT_UNKNOWN_KID,      /* no key for kid (after a permitted refresh),
				    * or no kid and not exactly one key for alg */
	CART_JWT_BAD_SIGNATURE,
	CART_JWT_EXPIRED,
	CART_JWT_NOT_YET_VALID,    /* nbf or iat in the future */
	CART_JWT_BAD_ISSUER,
	CART_JWT_BAD_AUDIENCE,
	CART_JWT_NO_SUBJECT,       /* sub missing, empty, > 255 bytes or has
				    * control characters */
	CART_JWT_KEYS_UNAVAILABLE, /* no key set at all (not returned today:
				    * a verifier always holds one) */
	CART_JWT_NOMEM,
} cart_jwt_status;

/* "ok", "malformed", "too_large", "alg_refused", "unknown_kid",
 * "bad_signature", "expired", "not_yet_valid", "bad_issuer",
 * "bad_audience", "no_subject", "keys_unavailable", "nomem"; "unknown" for
 * anything else.  Static text, never NULL. */
const char *cart_jwt_status_name(int st);

typedef struct cart_jwt_principal {
	char sub[256];   /* the token's sub, NUL-terminated */
	bool admin;      /* admin_scope is a word of "scope" or an element of
			  * "cognito:groups" */
	int64_t exp_ms;  /* exp, in ms since the epoch */
} cart_jwt_principal;

/*
 * Verifies token[0..len) (the text after "Bearer "; it need not be
 * NUL-terminated) and fills *out on CART_JWT_OK (out is zeroed otherwise).
 * Checks, in this order:
 *
 *   1. size, shape, base64url and JSON (TOO_LARGE, MALFORMED);
 *   2. header: alg allowlisted (ALG_REFUSED), no crit (MALFORMED), kid a
 *      string if present;
 *   3. key: the key whose "kid" equals the header's kid and fits alg; an
 *      unknown kid refreshes the key set (rate-limited, see
 *      min_refresh_seconds) and looks once more (UNKNOWN_KID); a kid whose
 *      keys do not fit alg is ALG_REFUSED.  Without kid the set must hold
 *      exactly one key that fits alg (UNKNOWN_KID);
 *   4. signature (BAD_SIGNATURE; ES256 wants exactly 64 raw bytes r||s);
 *   5. claims, now = the clock, L = leeway_seconds:
 *      exp: required number; EXPIRED when now >= exp + L (RFC 7519 4.1.4);
 *      nbf, iat: optional numbers; NOT_YET_VALID when > now + L;
 *      (a date that is not a finite number is MALFORMED)
 *      iss: must equal issuer (BAD_ISSUER);
 *      audience (BAD_AUDIENCE), accepted when either
 *        a. audience is set and "aud" is that string, or an array of
 *           strings containing it; or
 *        b. client_id is set, the token has no "aud", its "client_id"
 *           claim equals client_id, and "token_use", if present, is
 *           "access" (an Amazon Cognito access token);
 *      sub: a string of 1..255 bytes without control characters
 *           (NO_SUBJECT).
 *
 * Thread-safe.  May block for up to fetch_timeout_ms when this call is the
 * one that refreshes the key set; never blocks behind another thread's
 * fetch when the token's key is cached (a token with an unknown kid waits
 * for a fetch already under way instead of starting its own).
 */
int cart_jwt_verify(cart_jwt_verifier *v, const char *token, size_t len,
		    cart_jwt_principal *out);

typedef struct cart_jwt_stats {
	uint64_t refreshes;         /* key-source reads after the first */
	uint64_t refresh_failures;  /* of those, how many kept the old set */
	int keys;                   /* usable keys in the current set */
	int64_t loaded_ms;          /* when the current set was loaded */
	char last_error[160];       /* why the last refresh failed, or "" */
	/* The verified-token cache (all 0 with it off). */
	uint64_t cache_capacity;    /* entries */
	uint64_t cache_hits;        /* tokens answered from the cache */
	uint64_t cache_misses;      /* tokens looked up and not found usable */
	uint64_t cache_evictions;   /* live entries replaced by other tokens:
				     * the cache is smaller than the tokens
				     * in use */
} cart_jwt_stats;

/* A snapshot for logs and metrics.  Thread-safe. */
void cart_jwt_verifier_stats(cart_jwt_verifier *v, cart_jwt_stats *out);

#endif
