#ifndef CART_TEST_JWT_SIGN_H
#define CART_TEST_JWT_SIGN_H

/*
 * Test-only JOSE tooling: keys made with OpenSSL at test time, their JWKs,
 * and a compact-JWS signer that will sign anything (including what the
 * verifier must refuse: alg none, HS256 with a public key as secret, a
 * header that lies about the algorithm).
 */

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

/* Base64url without padding; out needs 4 * ceil(n / 3) + 1 bytes. */
void ts_b64url(char *out, const uint8_t *in, size_t n);

/* The shared test keys, made on first use and freed at exit. */
EVP_PKEY *ts_rsa2048(void);
EVP_PKEY *ts_rsa1024(void);
EVP_PKEY *ts_p256(void);
EVP_PKEY *ts_p256_b(void);
EVP_PKEY *ts_p384(void);

/* A public JWK for key: kid NULL for none; extra ("" or ",\"use\":\"sig\""
 * and so on) is appended inside the object.  crv names the EC curve. */
void ts_jwk(char *out, size_t cap, EVP_PKEY *key, const char *kid,
	    const char *extra);
/* {"keys":[jwks...]} from n JWK texts. */
void ts_jwks(char *out, size_t cap, int n, const char *const *jwks);

typedef enum ts_how {
	TS_RS256,      /* RSASSA-PKCS1-v1_5 SHA-256 with key */
	TS_ES256,      /* ECDSA P-256 SHA-256 with key, raw r||s */
	TS_ES256_DER,  /* the same, but the DER signature (wrong for JWS) */
	TS_HS256,      /* HMAC-SHA-256 with secret */
	TS_NONE,       /* empty signature */
} ts_how;

/*
 * Writes the compact JWS of header_json and payload_json (both sent as
 * given, base64url-encoded) signed as how says.  Returns its length.
 */
size_t ts_sign(char *out, size_t cap, const char *header_json,
	       const char *payload_json, ts_how how, EVP_PKEY *key,
	       const uint8_t *secret, size_t secret_len);

/* The key's SubjectPublicKeyInfo as PEM text or DER bytes (malloc'd). */
uint8_t *ts_public_pem(EVP_PKEY *key, size_t *len);
uint8_t *ts_public_der(EVP_PKEY *key, size_t *len);

#endif
