/*
 * Key sets: a JWKS document turned into ready EVP_PKEYs, once per load,
 * and the signature check that uses them.  An EVP_PKEY is only read while
 * verifying (each call has its own EVP_MD_CTX), so one set serves every
 * thread that holds a reference to it.
 */
#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt/jwt_internal.h"

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192     /* bigger keys only make verification slow */
#define RSA_MAX_E_BYTES 4
#define P256_COORD 32

int jwt_alg_from_name(const char *name, size_t len)
{
	if (len == 5 && !memcmp(name, "RS256", 5))
		return JWT_ALG_RS256;
	if (len == 5 && !memcmp(name, "ES256", 5))
		return JWT_ALG_ES256;
	return 0;
}

jwt_keyset *jwt_keyset_ref(jwt_keyset *ks)
{
	atomic_fetch_add(&ks->refs, 1);
	return ks;
}

void jwt_keyset_unref(jwt_keyset *ks)
{
	if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
		return;
	for (int i = 0; i < ks->n; i++)
		EVP_PKEY_free(ks->keys[i].pkey);
	free(ks);
}

/* --- importing one JWK --------------------------------------------------- */

/* Decodes the base64url string member name of jwk into a malloc'd buffer
 * of at most max bytes.  NULL if absent, not a string or not strict. */
static uint8_t *member_bytes(const cJSON *jwk, const char *name, size_t max,
			     size_t *len)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(jwk, name);
	size_t n, cap;
	uint8_t *buf;

	if (!cJSON_IsString(m))
		return NULL;
	n = strlen(m->valuestring);
	cap = jwt_b64url_decoded_len(n);
	if (n == 0 || cap == (size_t)-1 || cap > max)
		return NULL;
	buf = malloc(cap);
	if (buf && jwt_b64url_decode(buf, len, m->valuestring, n) == 0)
		return buf;
	free(buf);
	return NULL;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
	EVP_PKEY_CTX *check = NULL;
	EVP_PKEY *pk = NULL;

	if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) == 1) {
		/* EC: the point is on the curve; RSA: n odd, e sane. */
		check = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
		if (!check || EVP_PKEY_public_check(check) != 1) {
			EVP_PKEY_free(pk);
			pk = NULL;
		}
	}
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pk;
}

static EVP_PKEY *import_rsa(const cJSON *jwk, char *why, size_t why_len)
{
	size_t nl = 0, el = 0;
	uint8_t *n = member_bytes(jwk, "n", RSA_MAX_BITS / 8 + 1, &nl);
	uint8_t *e = member_bytes(jwk, "e", RSA_MAX_E_BYTES, &el);
	BIGNUM *bn_n = n ? BN_bin2bn(n, (int)nl, NULL) : NULL;
	BIGNUM *bn_e = e ? BN_bin2bn(e, (int)el, NULL) : NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pk = NULL;

	if (!bn_n || !bn_e) {
		snprintf(why, why_len, "RSA key without usable n and e");
	} else if (BN_num_bits(bn_n) < RSA_MIN_BITS || BN_num_bits(bn_n) > RSA_MAX_BITS) {
		snprintf(why, why_len, "RSA key of %d bits (need %d..%d)",
			 BN_num_bits(bn_n), RSA_MIN_BITS, RSA_MAX_BITS);
	} else if ((bld = OSSL_PARAM_BLD_new()) &&
		   OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
		   OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e)) {
		pk = pkey_fromdata("RSA", bld);
		if (!pk)
			snprintf(why, why_len, "RSA key rejected by OpenSSL");
	} else {
		snprintf(why, why_len, "out of memory");
	}
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	free(n);
	free(e);
	return pk;
}

static EVP_PKEY *import_p256(const cJSON *jwk, char *why, size_t why_len)
{
	const cJSON *crv = cJSON_GetObjectItemCaseSensitive(jwk, "crv");
	size_t xl = 0, yl = 0;
	uint8_t *x, *y;
	uint8_t point[1 + 2 * P256_COORD];
	OSSL_PARAM_BLD *bld;
	EVP_PKEY *pk = NULL;

	if (!cJSON_IsString(crv) || strcmp(crv->valuestring, "P-256")) {
		snprintf(why, why_len, "EC key not on P-256");
		return NULL;
	}
	x = member_bytes(jwk, "x", P256_COORD, &xl);
	y = member_bytes(jwk, "y", P256_COORD, &yl);
	if (!x || !y || xl != P256_COORD || yl != P256_COORD) {
		snprintf(why, why_len, "EC key without 32-byte x and y");
		free(x);
		free(y);
		return NULL;
	}
	point[0] = 0x04;   /* uncompressed */
	memcpy(point + 1, x, P256_COORD);
	memcpy(point + 1 + P256_COORD, y, P256_COORD);
	free(x);
	free(y);
	bld = OSSL_PARAM_BLD_new();
	if (bld &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
		pk = pkey_fromdata("EC", bld);
	if (!pk)
		snprintf(why, why_len, "EC key is not a point on P-256");
	OSSL_PARAM_BLD_free(bld);
	return pk;
}

static bool ops_allow_verify(const cJSON *ops)
{
	const cJSON *op;

	if (!cJSON_IsArray(ops))
		return false;
	cJSON_ArrayForEach(op, ops)
		if (cJSON_IsString(op) && !strcmp(op->valuestring, "verify"))
			return true;
	return false;
}

/*
 * Which algorithm jwk can serve, from kty (and crv), checked against its
 * own "alg", "use" and "key_ops" and the allowlist.  0 with a reason.
 */
static int jwk_alg(const cJSON *jwk, int allowed, char *why, size_t why_len)
{
	const cJSON *kty = cJSON_GetObjectItemCaseSensitive(jwk, "kty");
	const cJSON *use = cJSON_GetObjectItemCaseSensitive(jwk, "use");
	const cJSON *ops = cJSON_GetObjectItemCaseSensitive(jwk, "key_ops");
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(jwk, "alg");
	int a = 0;

	if (cJSON_IsString(kty) && !strcmp(kty->valuestring, "RSA"))
		a = JWT_ALG_RS256;
	else if (cJSON_IsString(kty) && !strcmp(kty->valuestring, "EC"))
		a = JWT_ALG_ES256;
	if (!a) {
		snprintf(why, why_len, "unsupported kty");
		return 0;
	}
	if (use && (!cJSON_IsString(use) || strcmp(use->valuestring, "sig"))) {
		snprintf(why, why_len, "key \"use\" is not \"sig\"");
		return 0;
	}
	if (ops && !ops_allow_verify(ops)) {
		snprintf(why, why_len, "key_ops without \"verify\"");
		return 0;
	}
	if (alg && (!cJSON_IsString(alg) ||
		    jwt_alg_from_name(alg->valuestring, strlen(alg->valuestring)) != a)) {
		snprintf(why, why_len, "key alg does not fit its kty");
		return 0;
	}
	if (!(a & allowed)) {
		snprintf(why, why_len, "key type not in JWT_ALGORITHMS");
		return 0;
	}
	return a;
}

/* Fills key from jwk; -1 (with why) to skip it. */
static int import_jwk(jwt_key *key, const cJSON *jwk, int allowed,
		      char *why, size_t why_len)
{
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(jwk, "kid");

	memset(key, 0, sizeof(*key));
	if (!cJSON_IsObject(jwk)) {
		snprintf(why, why_len, "entry is not an object");
		return -1;
	}
	if (kid && (!cJSON_IsString(kid) || !kid->valuestring[0] ||
		    strlen(kid->valuestring) >= sizeof(key->kid))) {
		snprintf(why, why_len, "kid is not a string of 1..255 bytes");
		return -1;
	}
	key->alg = jwk_alg(jwk, allowed, why, why_len);
	if (!key->alg)
		return -1;
	key->pkey = key->alg == JWT_ALG_RS256 ? import_rsa(jwk, why, why_len)
					      : import_p256(jwk, why, why_len);
	if (!key->pkey)
		return -1;
	if (kid) {
		key->has_kid = true;
		strcpy(key->kid, kid->valuestring);
	}
	return 0;
}

/* --- a whole document ---------------------------------------------------- */

static int import_all(jwt_keyset *ks, const cJSON *keys, int allowed,
		      char *err, size_t err_len)
{
	char first_skip[96] = "";
	const cJSON *jwk;

	cJSON_ArrayForEach(jwk, keys) {
		char why[96];

		if (import_jwk(&ks->keys[ks->n], jwk, allowed, why, sizeof(why)) == 0)
			ks->n++;
		else if (!first_skip[0])
			snprintf(first_skip, sizeof(first_skip), "%s", why);
	}
	if (ks->n == 0) {
		snprintf(err, err_len, "JWKS has no usable key%s%s",
			 first_skip[0] ? ": " : "", first_skip);
		return -1;
	}
	return 0;
}

int jwt_keyset_parse(jwt_keyset **out, const char *doc, size_t len,
		     int allowed, char *err, size_t err_len)
{
	cJSON *root = NULL;
	const cJSON *keys;
	jwt_keyset *ks = NULL;
	int rc = -1;

	*out = NULL;
	if (len > CART_JWT_MAX_JWKS) {
		snprintf(err, err_len, "JWKS larger than %d bytes", CART_JWT_MAX_JWKS);
		return -1;
	}
	root = len ? cJSON_ParseWithLength(doc, len) : NULL;
	keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
	if (!cJSON_IsObject(root) || !cJSON_IsArray(keys)) {
		snprintf(err, err_len, "JWKS is not a JSON object with a \"keys\" array");
	} else if (cJSON_GetArraySize(keys) > CART_JWT_MAX_KEYS) {
		snprintf(err, err_len, "JWKS has more than %d keys", CART_JWT_MAX_KEYS);
	} else if (!(ks = calloc(1, sizeof(*ks)))) {
		snprintf(err, err_len, "out of memory");
	} else {
		atomic_init(&ks->refs, 1);
		rc = import_all(ks, keys, allowed, err, err_len);
	}
	cJSON_Delete(root);
	if (rc == 0)
		*out = ks;
	else
		jwt_keyset_unref(ks);
	return rc;
}

/* --- the signature layer ------------------------------------------------- */

/* JWS carries ECDSA as raw r||s (RFC 7518 3.4); OpenSSL wants DER. */
static int es256_to_der(uint8_t *der, size_t cap, size_t *der_len,
			const uint8_t sig[2 * P256_COORD])
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, P256_COORD, NULL);
	BIGNUM *ss = BN_bin2bn(sig + P256_COORD, P256_COORD, NULL);
	unsigned char *p = der;
	int n = -1;

	if (s && r && ss && ECDSA_SIG_set0(s, r, ss) == 1) {
		r = ss = NULL;   /* now owned by s */
		n = i2d_ECDSA_SIG(s, NULL);
		if (n > 0 && (size_t)n <= cap)
			n = i2d_ECDSA_SIG(s, &p);
		else
			n = -1;
	}
	BN_free(r);
	BN_free(ss);
	ECDSA_SIG_free(s);
	if (n <= 0)
		return -1;
	*der_len = (size_t)n;
	return 0;
}

static int digest_verify(EVP_PKEY *pkey, int alg, const uint8_t *input,
			 size_t input_len, const uint8_t *sig, size_t sig_len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int rc = CART_JWT_BAD_SIGNATURE;

	if (!md)
		return CART_JWT_NOMEM;
	if (EVP_DigestVerifyInit_ex(md, &pctx, "SHA256", NULL, NULL, pkey, NULL) == 1 &&
	    (alg != JWT_ALG_RS256 ||
	     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1) &&
	    EVP_DigestVerify(md, sig, sig_len, input, input_len) == 1)
		rc = CART_JWT_OK;
	EVP_MD_CTX_free(md);
	/* A failed verify leaves entries in this thread's OpenSSL error
	 * queue; do not let them surface in some later, unrelated call. */
	ERR_clear_error();
	return rc;
}

int jwt_verify_signature(const jwt_key *key, int alg, const uint8_t *input,
			 size_t input_len, const uint8_t *sig, size_t sig_len)
{
	uint8_t der[80];
	size_t der_len;

	if (!key || !key->pkey || alg != key->alg)
		return CART_JWT_ALG_REFUSED;
	if (alg == JWT_ALG_ES256) {
		if (sig_len != 2 * P256_COORD ||
		    es256_to_der(der, sizeof(der), &der_len, sig))
			return CART_JWT_BAD_SIGNATURE;
		return digest_verify(key->pkey, alg, input, input_len, der, der_len);
	}
	if (sig_len != (size_t)EVP_PKEY_get_size(key->pkey))
		return CART_JWT_BAD_SIGNATURE;
	return digest_verify(key->pkey, alg, input, input_len, sig, sig_len);
}
