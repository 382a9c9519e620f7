#include "unit/jwt_sign.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Like MUST(), but kept under NDEBUG: these calls do the work. */
#define MUST(x) do { \
	if (!(x)) { \
		fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #x); \
		abort(); \
	} \
} while (0)

static const char b64u_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void ts_b64url(char *out, const uint8_t *in, size_t n)
{
	size_t o = 0, i = 0;

	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64u_alphabet[v >> 18];
		out[o++] = b64u_alphabet[(v >> 12) & 63];
		out[o++] = b64u_alphabet[(v >> 6) & 63];
		out[o++] = b64u_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64u_alphabet[v >> 18];
		out[o++] = b64u_alphabet[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64u_alphabet[v >> 18];
		out[o++] = b64u_alphabet[(v >> 12) & 63];
		out[o++] = b64u_alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
}

/* --- keys ---------------------------------------------------------------- */

enum { K_RSA2048, K_RSA1024, K_P256, K_P256_B, K_P384, K_COUNT };

static EVP_PKEY *keys[K_COUNT];
static pthread_once_t free_once = PTHREAD_ONCE_INIT;

static void free_keys(void)
{
	for (int i = 0; i < K_COUNT; i++) {
		EVP_PKEY_free(keys[i]);
		keys[i] = NULL;
	}
}

static void register_free(void)
{
	atexit(free_keys);
}

static EVP_PKEY *key(int which)
{
	pthread_once(&free_once, register_free);
	if (!keys[which]) {
		switch (which) {
		case K_RSA2048: keys[which] = EVP_RSA_gen(2048); break;
		case K_RSA1024: keys[which] = EVP_RSA_gen(1024); break;
		case K_P256:
		case K_P256_B: keys[which] = EVP_EC_gen("P-256"); break;
		case K_P384: keys[which] = EVP_EC_gen("P-384"); break;
		}
	}
	MUST(keys[which]);
	return keys[which];
}

EVP_PKEY *ts_rsa2048(void) { return key(K_RSA2048); }
EVP_PKEY *ts_rsa1024(void) { return key(K_RSA1024); }
EVP_PKEY *ts_p256(void) { return key(K_P256); }
EVP_PKEY *ts_p256_b(void) { return key(K_P256_B); }
EVP_PKEY *ts_p384(void) { return key(K_P384); }

/* --- JWKs ---------------------------------------------------------------- */

/* base64url of the big-endian bytes of a BIGNUM parameter, padded to pad
 * bytes (0: minimal). */
static void bn_param_b64(char *out, EVP_PKEY *k, const char *name, int pad)
{
	BIGNUM *bn = NULL;
	uint8_t buf[1024];
	int n;

	MUST(EVP_PKEY_get_bn_param(k, name, &bn) == 1);
	n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	MUST(n > 0);
	ts_b64url(out, buf, (size_t)n);
	BN_free(bn);
}

void ts_jwk(char *out, size_t cap, EVP_PKEY *k, const char *kid, const char *extra)
{
	char a[1400], b[1400], kidm[300] = "";
	int n;

	if (kid)
		snprintf(kidm, sizeof(kidm), "\"kid\":\"%s\",", kid);
	if (EVP_PKEY_is_a(k, "RSA")) {
		bn_param_b64(a, k, OSSL_PKEY_PARAM_RSA_N, 0);
		bn_param_b64(b, k, OSSL_PKEY_PARAM_RSA_E, 0);
		n = snprintf(out, cap, "{%s\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s}",
			     kidm, a, b, extra);
	} else {
		int bits = EVP_PKEY_get_bits(k);
		int coord = (bits + 7) / 8;
		bn_param_b64(a, k, OSSL_PKEY_PARAM_EC_PUB_X, coord);
		bn_param_b64(b, k, OSSL_PKEY_PARAM_EC_PUB_Y, coord);
		n = snprintf(out, cap, "{%s\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}",
			     kidm, bits == 256 ? "P-256" : "P-384", a, b, extra);
	}
	MUST(n > 0 && (size_t)n < cap);
}

void ts_jwks(char *out, size_t cap, int n, const char *const *jwks)
{
	size_t o = (size_t)snprintf(out, cap, "{\"keys\":[");

	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "," : "", jwks[i]);
	o += (size_t)snprintf(out + o, cap - o, "]}");
	MUST(o < cap);
}

/* --- signing ------------------------------------------------------------- */

static size_t digest_sign(uint8_t *sig, size_t cap, EVP_PKEY *k,
			  const char *input, size_t len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t sl = cap;

	MUST(md);
	MUST(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1);
	MUST(EVP_DigestSign(md, sig, &sl, (const uint8_t *)input, len) == 1);
	EVP_MD_CTX_free(md);
	return sl;
}

static size_t der_to_raw(uint8_t *raw, const uint8_t *der, size_t len)
{
	const uint8_t *p = der;
	ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);

	MUST(s);
	MUST(BN_bn2binpad(ECDSA_SIG_get0_r(s), raw, 32) == 32);
	MUST(BN_bn2binpad(ECDSA_SIG_get0_s(s), raw + 32, 32) == 32);
	ECDSA_SIG_free(s);
	return 64;
}

size_t ts_sign(char *out, size_t cap, const char *header_json,
	       const char *payload_json, ts_how how, EVP_PKEY *k,
	       const uint8_t *secret, size_t secret_len)
{
	size_t hl = strlen(header_json), pl = strlen(payload_json), o, sl = 0;
	uint8_t sig[1024], raw[64];
	unsigned int ml = 0;

	MUST(4 * ((hl + pl) / 3 + 2) + 2 + 4 * (sizeof(sig) / 3 + 1) < cap);
	ts_b64url(out, (const uint8_t *)header_json, hl);
	o = strlen(out);
	out[o++] = '.';
	ts_b64url(out + o, (const uint8_t *)payload_json, pl);
	o += strlen(out + o);
	switch (how) {
	case TS_RS256:
	case TS_ES256_DER:
		sl = digest_sign(sig, sizeof(sig), k, out, o);
		break;
	case TS_ES256:
		sl = digest_sign(sig, sizeof(sig), k, out, o);
		sl = der_to_raw(raw, sig, sl);
		memcpy(sig, raw, sl);
		break;
	case TS_HS256:
		MUST(HMAC(EVP_sha256(), secret, (int)secret_len,
			    (const uint8_t *)out, o, sig, &ml));
		sl = ml;
		break;
	case TS_NONE:
		break;
	}
	out[o++] = '.';
	ts_b64url(out + o, sig, sl);
	return o + strlen(out + o);
}

uint8_t *ts_public_pem(EVP_PKEY *k, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	uint8_t *copy;
	long n;

	MUST(b && PEM_write_bio_PUBKEY(b, k) == 1);
	n = BIO_get_mem_data(b, &data);
	copy = malloc((size_t)n);
	MUST(copy);
	memcpy(copy, data, (size_t)n);
	*len = (size_t)n;
	BIO_free(b);
	return copy;
}

uint8_t *ts_public_der(EVP_PKEY *k, size_t *len)
{
	uint8_t *der = NULL, *copy;
	int n = i2d_PUBKEY(k, &der);

	MUST(n > 0);
	copy = malloc((size_t)n);
	MUST(copy);
	memcpy(copy, der, (size_t)n);
	OPENSSL_free(der);
	*len = (size_t)n;
	return copy;
}
