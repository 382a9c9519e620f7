/*
 * AWS Signature Version 4 (docs.aws.amazon.com, "Create a signed AWS API
 * request"), for the requests aws_client.c makes.  The canonical request
 * and the string to sign are streamed into SHA-256; HMAC-SHA256 is
 * OpenSSL's EVP_MAC.  Checked against botocore's signer by every test
 * that goes through tests/aws/sigv4_proxy.py, and by fixed vectors that
 * botocore computed (tests/unit/test_sigv4.c).
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_sigv4.h"
#include "cart/error.h"

#define SHA256_LEN 32

struct cart_aws_signer {
	EVP_MD *sha256;
	EVP_MD_CTX *md;
	EVP_MAC *hmac;
	EVP_MAC_CTX *mac;            /* the key derivation's */
	EVP_MAC_CTX *sig;            /* keyed with key: reset, not re-keyed, per signature */
	/* Small writes gathered before they reach the digest (each
	 * EVP_DigestUpdate costs ~500 instructions however short). */
	char stage[1024];
	size_t staged;
	/* The derived key of key_date for key_secret, key_region, key_service. */
	char key_date[9];
	char key_secret[128];
	char key_region[32];
	char key_service[32];
	unsigned char key[SHA256_LEN];
	bool have_key;
};

int cart_aws_signer_new(cart_aws_signer **out)
{
	cart_aws_signer *s = calloc(1, sizeof(*s));
	OSSL_PARAM params[2];

	*out = NULL;
	if (!s)
		return CART_ENOMEM;
	s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	s->md = EVP_MD_CTX_new();
	s->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	s->mac = s->hmac ? EVP_MAC_CTX_new(s->hmac) : NULL;
	s->sig = s->hmac ? EVP_MAC_CTX_new(s->hmac) : NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!s->sha256 || !s->md || !s->mac || !s->sig ||
	    !EVP_MAC_CTX_set_params(s->mac, params) || !EVP_MAC_CTX_set_params(s->sig, params)) {
		cart_aws_signer_free(s);
		return CART_EBACKEND;
	}
	*out = s;
	return CART_OK;
}

void cart_aws_signer_free(cart_aws_signer *s)
{
	if (!s)
		return;
	EVP_MAC_CTX_free(s->sig);
	EVP_MAC_CTX_free(s->mac);
	EVP_MAC_free(s->hmac);
	EVP_MD_CTX_free(s->md);
	EVP_MD_free(s->sha256);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

/* --- hashing ------------------------------------------------------------ */

static const char hex_digits[] = "0123456789abcdef";

static void to_hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex_digits[d[i] >> 4];
		out[2 * i + 1] = hex_digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/* HMAC-SHA256 on ctx; key NULL: ctx's key again (OpenSSL resets to the
 * keyed state instead of hashing the key's pads anew). */
static bool hmac_on(EVP_MAC_CTX *ctx, const void *key, size_t key_len,
		    const char *data, size_t len, unsigned char out[SHA256_LEN])
{
	size_t n = 0;

	return EVP_MAC_init(ctx, key, key_len, NULL) &&
	       EVP_MAC_update(ctx, (const unsigned char *)data, len) &&
	       EVP_MAC_final(ctx, out, &n, SHA256_LEN) && n == SHA256_LEN;
}

static bool hmac(cart_aws_signer *s, const void *key, size_t key_len,
		 const char *data, size_t len, unsigned char out[SHA256_LEN])
{
	return hmac_on(s->mac, key, key_len, data, len, out);
}

static bool hash_begin(cart_aws_signer *s)
{
	s->staged = 0;
	return EVP_DigestInit_ex2(s->md, s->sha256, NULL) == 1;
}

static bool flush(cart_aws_signer *s)
{
	bool ok = !s->staged || EVP_DigestUpdate(s->md, s->stage, s->staged) == 1;

	s->staged = 0;
	return ok;
}

static bool put(cart_aws_signer *s, const char *p, size_t n)
{
	if (s->staged + n <= sizeof(s->stage)) {
		memcpy(s->stage + s->staged, p, n);
		s->staged += n;
		return true;
	}
	if (!flush(s))
		return false;
	if (n >= sizeof(s->stage))
		return EVP_DigestUpdate(s->md, p, n) == 1;
	memcpy(s->stage, p, n);
	s->staged = n;
	return true;
}

static bool hash_end(cart_aws_signer *s, unsigned char d[SHA256_LEN])
{
	unsigned int n = 0;

	return flush(s) && EVP_DigestFinal_ex(s->md, d, &n) && n == SHA256_LEN;
}

static bool puts_(cart_aws_signer *s, const char *p)
{
	return put(s, p, strlen(p));
}

/* hex(SHA-256(data)) into out (65 bytes). */
static bool sha256_hex(cart_aws_signer *s, const char *data, size_t len, char *out)
{
	unsigned char d[SHA256_LEN];

	if (!hash_begin(s) || !put(s, data, len) || !hash_end(s, d))
		return false;
	to_hex(d, SHA256_LEN, out);
	return true;
}

/* --- the canonical request ---------------------------------------------- */

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

/*
 * The canonical URI of every service but S3: the path as sent, encoded
 * once more (so "%2F" is signed as "%252F"), '/' kept.
 */
static bool put_path(cart_aws_signer *s, const char *p, size_t n)
{
	char esc[3] = { '%', 0, 0 };
	static const char upper[] = "0123456789ABCDEF";
	size_t run = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (unreserved(c) || c == '/') {
			run++;
			continue;
		}
		if ((run && !put(s, p + i - run, run)))
			return false;
		run = 0;
		esc[1] = upper[c >> 4];
		esc[2] = upper[c & 15];
		if (!put(s, esc, 3))
			return false;
	}
	return !run || put(s, p + n - run, run);
}

typedef struct qpair {
	const char *p;    /* "key" or "key=value" */
	size_t key_len, len;
} qpair;

/* a < b, by key, then by value (botocore's sorted((key, value))). */
static bool qpair_less(const qpair *a, const qpair *b)
{
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(a->p, b->p, n);
	const char *av, *bv;
	size_t al, bl;

	if (c || a->key_len != b->key_len)
		return c ? c < 0 : a->key_len < b->key_len;
	av = a->p + a->key_len + (a->len > a->key_len);
	bv = b->p + b->key_len + (b->len > b->key_len);
	al = a->len - (size_t)(av - a->p);
	bl = b->len - (size_t)(bv - b->p);
	n = al < bl ? al : bl;
	c = memcmp(av, bv, n);
	return c ? c < 0 : al < bl;
}

/* The query's pairs sorted, each as key=value ("key" alone: "key="). */
static bool put_query(cart_aws_signer *s, const char *q)
{
	qpair pairs[CART_AWS_QUERY_PAIRS_MAX];
	size_t n = 0;

	while (*q) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		qpair x = { q, eq ? (size_t)(eq - q) : len, len };
		size_t i = n;

		if (n == CART_AWS_QUERY_PAIRS_MAX)
			return false;
		while (i && qpair_less(&x, &pairs[i - 1])) {   /* insertion sort */
			pairs[i] = pairs[i - 1];
			i--;
		}
		pairs[i] = x;
		n++;
		q += len + (amp != NULL);
	}
	for (size_t i = 0; i < n; i++) {
		if ((i && !put(s, "&", 1)) || !put(s, pairs[i].p, pairs[i].key_len) ||
		    !put(s, "=", 1))
			return false;
		if (pairs[i].len > pairs[i].key_len &&
		    !put(s, pairs[i].p + pairs[i].key_len + 1,
			 pairs[i].len - pairs[i].key_len - 1))
			return false;
	}
	return true;
}

static bool put_header(cart_aws_signer *s, const char *name, const char *value)
{
	return puts_(s, name) && put(s, ":", 1) && puts_(s, value) && put(s, "\n", 1);
}

/* The list of signed headers, into out (at least 96 bytes). */
static void signed_headers(const cart_aws_sigv4_request *r, bool token, char *out)
{
	strcpy(out, r->content_type ? "content-type;host;x-amz-date" : "host;x-amz-date");
	if (token)
		strcat(out, ";x-amz-security-token");
	if (r->target)
		strcat(out, ";x-amz-target");
}

/* hex(SHA-256(canonical request)) into out (65 bytes). */
static bool canonical_hash(cart_aws_signer *s, const cart_aws_sigv4_request *r,
			   const char *amz_date, const char *signed_list, char *out)
{
	const char *q = strchr(r->path, '?');
	size_t path_len = q ? (size_t)(q - r->path) : strlen(r->path);
	bool token = r->session_token && *r->session_token;
	char body_hash[2 * SHA256_LEN + 1];
	unsigned char d[SHA256_LEN];

	if (!sha256_hex(s, r->body ? r->body : "", r->body ? r->body_len : 0, body_hash))
		return false;
	if (!hash_begin(s) ||
	    !puts_(s, r->method) || !put(s, "\n", 1) ||
	    !put_path(s, r->path, path_len) || !put(s, "\n", 1) ||
	    !put_query(s, q ? q + 1 : "") || !put(s, "\n", 1))
		return false;
	if ((r->content_type && !put_header(s, "content-type", r->content_type)) ||
	    !put_header(s, "host", r->host) || !put_header(s, "x-amz-date", amz_date) ||
	    (token && !put_header(s, "x-amz-security-token", r->session_token)) ||
	    (r->target && !put_header(s, "x-amz-target", r->target)))
		return false;
	if (!put(s, "\n", 1) || !puts_(s, signed_list) || !put(s, "\n", 1) ||
	    !put(s, body_hash, 2 * SHA256_LEN) || !hash_end(s, d))
		return false;
	to_hex(d, SHA256_LEN, out);
	return true;
}

/* --- the signing key ---------------------------------------------------- */

static bool fits(const char *v, size_t cap)
{
	return strlen(v) < cap;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
 * "aws4_request"), kept until the date, secret, region or service change. */
static bool signing_key(cart_aws_signer *s, const cart_aws_sigv4_request *r,
			const char *date)
{
	char k0[4 + sizeof(s->key_secret)];
	unsigned char k[SHA256_LEN];
	size_t sl = strlen(r->secret_access_key);
	bool ok;

	if (s->have_key && !strcmp(s->key_date, date) &&
	    !strcmp(s->key_secret, r->secret_access_key) &&
	    !strcmp(s->key_region, r->region) && !strcmp(s->key_service, r->service))
		return true;
	s->have_key = false;
	if (!fits(r->secret_access_key, sizeof(s->key_secret)) ||
	    !fits(r->region, sizeof(s->key_region)) || !fits(r->service, sizeof(s->key_service)))
		return false;
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, r->secret_access_key, sl);
	ok = hmac(s, k0, 4 + sl, date, 8, k) &&
	     hmac(s, k, SHA256_LEN, r->region, strlen(r->region), k) &&
	     hmac(s, k, SHA256_LEN, r->service, strlen(r->service), k) &&
	     hmac(s, k, SHA256_LEN, "aws4_request", 12, s->key) &&
	     EVP_MAC_init(s->sig, s->key, SHA256_LEN, NULL);
	OPENSSL_cleanse(k0, sizeof(k0));
	OPENSSL_cleanse(k, sizeof(k));
	if (!ok)
		return false;
	memcpy(s->key_date, date, 9);
	strcpy(s->key_secret, r->secret_access_key);
	strcpy(s->key_region, r->region);
	strcpy(s->key_service, r->service);
	s->have_key = true;
	return true;
}

/* --- the signature ------------------------------------------------------ */

/* "20261128T050000Z" without printf. */
static bool amz_date_of(time_t now, char out[CART_AWS_AMZ_DATE_LEN + 1])
{
	struct tm tm;
	int v[6];

	if (!gmtime_r(&now, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
		return false;
	v[0] = tm.tm_year + 1900;
	out[0] = (char)('0' + v[0] / 1000);
	out[1] = (char)('0' + v[0] / 100 % 10);
	out[2] = (char)('0' + v[0] / 10 % 10);
	out[3] = (char)('0' + v[0] % 10);
	v[1] = tm.tm_mon + 1, v[2] = tm.tm_mday, v[3] = tm.tm_hour;
	v[4] = tm.tm_min, v[5] = tm.tm_sec;
	for (int i = 1, o = 4; i < 6; i++, o += 2) {
		if (i == 3)
			out[o++] = 'T';
		out[o] = (char)('0' + v[i] / 10);
		out[o + 1] = (char)('0' + v[i] % 10);
	}
	out[15] = 'Z';
	out[16] = '\0';
	return true;
}

/* Appends src to out[*len], within cap (keeping the NUL). */
static bool append(char *out, size_t cap, size_t *len, const char *src)
{
	size_t n = strlen(src);

	if (*len + n >= cap)
		return false;
	memcpy(out + *len, src, n + 1);
	*len += n;
	return true;
}

int cart_aws_sigv4_sign(cart_aws_signer *s, const cart_aws_sigv4_request *r,
			char amz_date[CART_AWS_AMZ_DATE_LEN + 1],
			char *auth, size_t auth_cap)
{
	char date[9], list[96], creq_hash[2 * SHA256_LEN + 1];
	char sig_hex[2 * SHA256_LEN + 1], sts[256];
	unsigned char sig[SHA256_LEN];
	size_t sl = 0, al = 0;
	bool token = r->session_token && *r->session_token;

	if (*r->path != '/' || !amz_date_of(r->now, amz_date))
		return CART_EINVALID;
	memcpy(date, amz_date, 8);
	date[8] = '\0';
	signed_headers(r, token, list);
	if (!canonical_hash(s, r, amz_date, list, creq_hash))
		return CART_EINVALID;
	/* String to sign: algorithm, time, scope, hash of the canonical request. */
	if (!append(sts, sizeof(sts), &sl, "AWS4-HMAC-SHA256\n") ||
	    !append(sts, sizeof(sts), &sl, amz_date) || !append(sts, sizeof(sts), &sl, "\n") ||
	    !append(sts, sizeof(sts), &sl, date) || !append(sts, sizeof(sts), &sl, "/") ||
	    !append(sts, sizeof(sts), &sl, r->region) || !append(sts, sizeof(sts), &sl, "/") ||
	    !append(sts, sizeof(sts), &sl, r->service) ||
	    !append(sts, sizeof(sts), &sl, "/aws4_request\n") ||
	    !append(sts, sizeof(sts), &sl, creq_hash))
		return CART_EINVALID;
	if (!signing_key(s, r, date) || !hmac_on(s->sig, NULL, 0, sts, sl, sig))
		return CART_EINVALID;
	to_hex(sig, SHA256_LEN, sig_hex);
	auth[0] = '\0';
	if (!append(auth, auth_cap, &al, "AWS4-HMAC-SHA256 Credential=") ||
	    !append(auth, auth_cap, &al, r->access_key_id) ||
	    !append(auth, auth_cap, &al, "/") || !append(auth, auth_cap, &al, date) ||
	    !append(auth, auth_cap, &al, "/") || !append(auth, auth_cap, &al, r->region) ||
	    !append(auth, auth_cap, &al, "/") || !append(auth, auth_cap, &al, r->service) ||
	    !append(auth, auth_cap, &al, "/aws4_request, SignedHeaders=") ||
	    !append(auth, auth_cap, &al, list) ||
	    !append(auth, auth_cap, &al, ", Signature=") ||
	    !append(auth, auth_cap, &al, sig_hex))
		return CART_EINVALID;
	return CART_OK;
}
