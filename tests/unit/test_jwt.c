/*
 * The JWT verifier: the RFC 7515 vectors, then tokens signed here with
 * keys made at test time, against a JWKS file or a loopback JWKS server
 * that counts its requests.  Time is the fake clock's.
 */
#include <check.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cart/error.h"
#include "fakes/fake_clock.h"
#include "fakes/jwks_server.h"
#include "jwt/jwt.h"
#include "jwt/jwt_internal.h"
#include "unit/jwt_sign.h"
#include "unit/suites.h"

#define T0 1767225600000LL          /* 2026-01-01T00:00:00Z */
#define NOW_S (T0 / 1000)
#define ISS "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Test"
#define AUD "cart-api"
#define CLIENT "client-123"

static cart_clock clk;
static fake_clock *fclk;
static cart_jwt_verifier *ver;
static jwks_server *srv;
static char dir[64];
static char jwks_path[128];
static char tok[CART_JWT_MAX_TOKEN + 4096];
static cart_jwt_principal who;

/* --- fixtures ------------------------------------------------------------ */

static void setup(void)
{
	ck_assert_int_eq(fake_clock_new(&clk, &fclk, T0), 0);
	strcpy(dir, "/tmp/cart-jwt-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", dir);
	ver = NULL;
	srv = NULL;
}

static void teardown(void)
{
	char tmp[160];

	cart_jwt_verifier_free(ver);
	ver = NULL;
	jwks_server_stop(srv);
	srv = NULL;
	snprintf(tmp, sizeof(tmp), "%s.tmp", jwks_path);
	unlink(tmp);
	unlink(jwks_path);
	rmdir(dir);
	cart_clock_destroy(&clk);
}

static cart_jwt_config base_config(void)
{
	cart_jwt_config c = {
		.algorithms = "RS256,ES256",
		.min_refresh_seconds = 60,
		.max_age_seconds = 3600,
		.fetch_timeout_ms = 5000,
		.leeway_seconds = 0,
		.issuer = ISS,
		.audience = AUD,
		.client_id = CLIENT,
	};
	return c;
}

/* Replaces the JWKS file atomically (a new inode, so the change shows). */
static void write_jwks_file(const char *doc)
{
	char tmp[160];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", jwks_path);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(doc, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, jwks_path), 0);
}

/* The usual set: RSA "rsa-1" and P-256 "ec-1". */
static void usual_jwks(char *out, size_t cap)
{
	char a[2048], b[1024];
	const char *keys[] = { a, b };

	ts_jwk(a, sizeof(a), ts_rsa2048(), "rsa-1", ",\"use\":\"sig\",\"alg\":\"RS256\"");
	ts_jwk(b, sizeof(b), ts_p256(), "ec-1", "");
	ts_jwks(out, cap, 2, keys);
}

static int new_file_verifier(const cart_jwt_config *cfg, const char *doc)
{
	char err[256];
	cart_jwt_config c = *cfg;
	int rc;

	write_jwks_file(doc);
	c.jwks_file = jwks_path;
	cart_jwt_verifier_free(ver);
	ver = NULL;
	rc = cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err));
	if (rc != CART_OK)
		ck_assert_msg(err[0], "a failed _new must say why");
	return rc;
}

static void usual_verifier(void)
{
	char doc[4096];
	cart_jwt_config c = base_config();

	usual_jwks(doc, sizeof(doc));
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_OK);
}

static void url_verifier(const char *doc)
{
	char err[256] = "";
	cart_jwt_config c = base_config();

	srv = jwks_server_start();
	ck_assert_ptr_nonnull(srv);
	jwks_server_set(srv, 200, doc);
	c.jwks_url = jwks_server_url(srv);
	ck_assert_msg(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)) == CART_OK,
		      "%s", err);
	ck_assert_int_eq(jwks_server_requests(srv), 1);
}

static long long now_s(void)
{
	return fake_clock_now(fclk) / 1000;
}

/* Standard claims, valid now, plus extra members. */
static const char *claims(const char *extra)
{
	static char p[CART_JWT_MAX_TOKEN];

	snprintf(p, sizeof(p),
		 "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"user-1\","
		 "\"iat\":%lld,\"exp\":%lld%s}", now_s() - 10, now_s() + 600, extra);
	return p;
}

static int verify(void)
{
	return cart_jwt_verify(ver, tok, strlen(tok), &who);
}

static int rs256(const char *payload)
{
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", payload,
		TS_RS256, ts_rsa2048(), NULL, 0);
	return verify();
}

static int es256(const char *payload)
{
	ts_sign(tok, sizeof(tok), "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", payload,
		TS_ES256, ts_p256(), NULL, 0);
	return verify();
}

/* Verifies tok[0..len) as given (not NUL-terminated). */
static int verify_text(const char *text)
{
	return cart_jwt_verify(ver, text, strlen(text), &who);
}

/* --- RFC 7515 appendix A ------------------------------------------------- */

/* A.2: RS256.  The key from A.2.1 (public part only), as a JWKS. */
static const char rfc_a2_jwks[] =
	"{\"keys\":[{\"kty\":\"RSA\","
	"\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx"
	"HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"
	"D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH"
	"SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV"
	"MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8"
	"NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\","
	"\"e\":\"AQAB\"}]}";

static const char rfc_a2_jws[] =
	"eyJhbGciOiJSUzI1NiJ9"
	"."
	"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
	"cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
	"."
	"cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7"
	"AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4"
	"BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
	"0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv"
	"hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB"
	"p0igcN_IoypGlUPQGe77Rw";

/* A.3: ES256.  The key from A.3.1 (public part only). */
static const char rfc_a3_jwks[] =
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
	"\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	"\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

static const char rfc_a3_jws[] =
	"eyJhbGciOiJFUzI1NiJ9"
	"."
	"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
	"cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
	"."
	"DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSA"
	"pmWQxfKTUJqPP3-Kg6NU1Q";

/* The signature layer alone: jwt_verify_signature over the vector. */
static void check_vector_signature(const char *jwks, const char *jws, int alg)
{
	char err[256];
	jwt_keyset *ks = NULL;
	const char *dot2 = strrchr(jws, '.');
	uint8_t sig[512], bad[512];
	size_t sl;

	ck_assert_msg(jwt_keyset_parse(&ks, jwks, strlen(jwks), JWT_ALG_ALL, err,
				       sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(ks->n, 1);
	ck_assert_int_eq(ks->keys[0].alg, alg);
	ck_assert_int_eq(jwt_b64url_decode(sig, &sl, dot2 + 1, strlen(dot2 + 1)), 0);
	ck_assert_uint_eq(sl, alg == JWT_ALG_ES256 ? 64 : 256);
	ck_assert_int_eq(jwt_verify_signature(&ks->keys[0], alg, (const uint8_t *)jws,
					      (size_t)(dot2 - jws), sig, sl), CART_JWT_OK);
	/* One flipped bit anywhere breaks it. */
	memcpy(bad, sig, sl);
	bad[sl / 2] ^= 0x01;
	ck_assert_int_eq(jwt_verify_signature(&ks->keys[0], alg, (const uint8_t *)jws,
					      (size_t)(dot2 - jws), bad, sl),
			 CART_JWT_BAD_SIGNATURE);
	ck_assert_int_eq(jwt_verify_signature(&ks->keys[0], alg, (const uint8_t *)jws,
					      (size_t)(dot2 - jws) - 1, sig, sl),
			 CART_JWT_BAD_SIGNATURE);
	/* The other algorithm never applies to this key. */
	ck_assert_int_eq(jwt_verify_signature(&ks->keys[0], JWT_ALG_ALL & ~alg,
					      (const uint8_t *)jws, (size_t)(dot2 - jws),
					      sig, sl), CART_JWT_ALG_REFUSED);
	jwt_keyset_unref(ks);
}

/*
 * The whole pipeline over the vector: its payload is {"iss":"joe",
 * "exp":1300819380, ...} with no aud and no sub, so with issuer "joe" and
 * the clock before exp it gets as far as the audience check; after exp it
 * is EXPIRED; with a tampered signature BAD_SIGNATURE.
 */
static void check_vector_pipeline(const char *jwks, const char *jws)
{
	cart_jwt_config c = base_config();
	char err[256], bad[1024];
	size_t n = strlen(jws);

	c.issuer = "joe";
	fake_clock_set(fclk, 1300819380000LL - 60000);
	ck_assert_msg(jwt_verifier_new_static(&ver, &c, &clk, jwks, strlen(jwks), err,
					      sizeof(err)) == CART_OK, "%s", err);
	ck_assert_int_eq(cart_jwt_verify(ver, jws, n, &who), CART_JWT_BAD_AUDIENCE);
	memcpy(bad, jws, n + 1);
	bad[n - 3] = bad[n - 3] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(cart_jwt_verify(ver, bad, n, &who), CART_JWT_BAD_SIGNATURE);
	fake_clock_set(fclk, 1300819380000LL);
	ck_assert_int_eq(cart_jwt_verify(ver, jws, n, &who), CART_JWT_EXPIRED);
	ck_assert_str_eq(who.sub, "");
}

START_TEST(test_jwt_rfc7515_a2_rs256_vector)
{
	check_vector_signature(rfc_a2_jwks, rfc_a2_jws, JWT_ALG_RS256);
	check_vector_pipeline(rfc_a2_jwks, rfc_a2_jws);
}
END_TEST

START_TEST(test_jwt_rfc7515_a3_es256_vector)
{
	check_vector_signature(rfc_a3_jwks, rfc_a3_jws, JWT_ALG_ES256);
	check_vector_pipeline(rfc_a3_jwks, rfc_a3_jws);
}
END_TEST

START_TEST(test_jwt_b64url_is_strict)
{
	uint8_t out[16];
	size_t n;

	ck_assert_int_eq(jwt_b64url_decode(out, &n, "aGk", 3), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(memcmp(out, "hi", 2), 0);
	ck_assert_int_eq(jwt_b64url_decode(out, &n, "-_8", 3), 0);
	ck_assert_int_eq(jwt_b64url_decode(out, &n, "aGk=", 4), -1);   /* padding */
	ck_assert_int_eq(jwt_b64url_decode(out, &n, "+_8", 3), -1);
	ck_assert_int_eq(jwt_b64url_decode(out, &n, "-/8", 3), -1);
	ck_assert_int_eq(jwt_b64url_decode(out, &n, "aG k", 4), -1);
	ck_assert_int_eq(jwt_b64url_decode(out, &n, "aGk\n", 4), -1);
	ck_assert_int_eq(jwt_b64url_decode(out, &n, "aGkAa", 5), -1);  /* n % 4 == 1 */
	ck_assert_int_eq(jwt_b64url_decode(out, &n, "QQ", 2), 0);      /* "A" */
	ck_assert_int_eq(jwt_b64url_decode(out, &n, "QR", 2), -1);     /* same, non-canonical */
	ck_assert_int_eq(jwt_b64url_decode(out, &n, "aGl", 3), -1);    /* "hi" + stray bits */
}
END_TEST

/* --- accepted tokens and claims ------------------------------------------ */

START_TEST(test_jwt_valid_rs256)
{
	usual_verifier();
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	ck_assert_str_eq(who.sub, "user-1");
	ck_assert(!who.admin);
	ck_assert_int_eq(who.exp_ms, (NOW_S + 600) * 1000);
	ck_assert_str_eq(cart_jwt_status_name(CART_JWT_OK), "ok");
}
END_TEST

START_TEST(test_jwt_valid_es256)
{
	usual_verifier();
	ck_assert_int_eq(es256(claims("")), CART_JWT_OK);
	ck_assert_str_eq(who.sub, "user-1");
}
END_TEST

START_TEST(test_jwt_admin_from_scope_or_groups)
{
	usual_verifier();
	ck_assert_int_eq(rs256(claims(",\"scope\":\"openid cart:admin email\"")), CART_JWT_OK);
	ck_assert(who.admin);
	ck_assert_int_eq(rs256(claims(",\"cognito:groups\":[\"staff\",\"cart:admin\"]")),
			 CART_JWT_OK);
	ck_assert(who.admin);
	ck_assert_int_eq(rs256(claims(",\"scope\":\"cart:admins xcart:admin cart:admi\"")),
			 CART_JWT_OK);
	ck_assert(!who.admin);
	ck_assert_int_eq(rs256(claims(",\"cognito:groups\":\"cart:admin\"")), CART_JWT_OK);
	ck_assert(!who.admin);   /* groups must be an array */
}
END_TEST

START_TEST(test_jwt_expired)
{
	char p[512];

	usual_verifier();
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":%lld}", NOW_S - 1);
	ck_assert_int_eq(rs256(p), CART_JWT_EXPIRED);
	ck_assert_str_eq(cart_jwt_status_name(CART_JWT_EXPIRED), "expired");
	ck_assert_str_eq(who.sub, "");
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":%lld}", NOW_S);   /* exp is the first invalid instant */
	ck_assert_int_eq(rs256(p), CART_JWT_EXPIRED);
}
END_TEST

START_TEST(test_jwt_expired_within_leeway)
{
	cart_jwt_config c = base_config();
	char doc[4096], p[512];

	usual_jwks(doc, sizeof(doc));
	c.leeway_seconds = 30;
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_OK);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":%lld}", NOW_S - 20);
	ck_assert_int_eq(rs256(p), CART_JWT_OK);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":%lld}", NOW_S - 31);
	ck_assert_int_eq(rs256(p), CART_JWT_EXPIRED);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":%lld,\"nbf\":%lld}", NOW_S + 600, NOW_S + 25);
	ck_assert_int_eq(rs256(p), CART_JWT_OK);
}
END_TEST

START_TEST(test_jwt_nbf_or_iat_in_future)
{
	char e[64];

	usual_verifier();
	snprintf(e, sizeof(e), ",\"nbf\":%lld", NOW_S + 5);
	ck_assert_int_eq(rs256(claims(e)), CART_JWT_NOT_YET_VALID);
	snprintf(e, sizeof(e), ",\"nbf\":%lld", NOW_S);
	ck_assert_int_eq(rs256(claims(e)), CART_JWT_OK);
	/* claims() already has an iat; a second one would be a duplicate. */
	snprintf(tok, sizeof(tok), "%s", "");
	{
		char p[512];
		snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
			 "\"iat\":%lld,\"exp\":%lld}", NOW_S + 5, NOW_S + 600);
		ck_assert_int_eq(rs256(p), CART_JWT_NOT_YET_VALID);
	}
}
END_TEST

START_TEST(test_jwt_wrong_issuer)
{
	char p[512];

	usual_verifier();
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "/\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":%lld}", NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_BAD_ISSUER);
	snprintf(p, sizeof(p), "{\"aud\":\"" AUD "\",\"sub\":\"u\",\"exp\":%lld}", NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_BAD_ISSUER);
}
END_TEST

/* Claims without aud, with the members given. */
static const char *claims_no_aud(const char *extra)
{
	static char p[1024];

	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"exp\":%lld%s}",
		 now_s() + 60, extra);
	return p;
}

START_TEST(test_jwt_audience)
{
	usual_verifier();
	ck_assert_int_eq(rs256(claims_no_aud(",\"aud\":\"other-api\"")), CART_JWT_BAD_AUDIENCE);
	ck_assert_int_eq(rs256(claims_no_aud(",\"aud\":[\"x\",\"" AUD "\"]")), CART_JWT_OK);
	ck_assert_int_eq(rs256(claims_no_aud(",\"aud\":[\"x\",\"y\"]")), CART_JWT_BAD_AUDIENCE);
	ck_assert_int_eq(rs256(claims_no_aud(",\"aud\":[]")), CART_JWT_BAD_AUDIENCE);
	ck_assert_int_eq(rs256(claims_no_aud(",\"aud\":[\"" AUD "\",1]")), CART_JWT_MALFORMED);
	ck_assert_int_eq(rs256(claims_no_aud(",\"aud\":7")), CART_JWT_MALFORMED);
	ck_assert_int_eq(rs256(claims_no_aud("")), CART_JWT_BAD_AUDIENCE);
}
END_TEST

START_TEST(test_jwt_cognito_access_token_by_client_id)
{
	usual_verifier();
	ck_assert_int_eq(rs256(claims_no_aud(",\"token_use\":\"access\",\"client_id\":\""
					     CLIENT "\",\"scope\":\"cart:admin\"")),
			 CART_JWT_OK);
	ck_assert(who.admin);
	ck_assert_int_eq(rs256(claims_no_aud(",\"client_id\":\"" CLIENT "\"")), CART_JWT_OK);
	ck_assert_int_eq(rs256(claims_no_aud(",\"token_use\":\"access\",\"client_id\":\"other\"")),
			 CART_JWT_BAD_AUDIENCE);
	/* An ID token's client is its aud; client_id in it does not count. */
	ck_assert_int_eq(rs256(claims_no_aud(",\"token_use\":\"id\",\"client_id\":\"" CLIENT "\"")),
			 CART_JWT_BAD_AUDIENCE);
	/* With an aud, the aud decides. */
	ck_assert_int_eq(rs256(claims_no_aud(",\"aud\":\"other\",\"client_id\":\"" CLIENT "\"")),
			 CART_JWT_BAD_AUDIENCE);
}
END_TEST

START_TEST(test_jwt_client_id_only_config)
{
	cart_jwt_config c = base_config();
	char doc[4096];

	usual_jwks(doc, sizeof(doc));
	c.audience = NULL;
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_OK);
	ck_assert_int_eq(rs256(claims_no_aud(",\"token_use\":\"access\",\"client_id\":\""
					     CLIENT "\"")), CART_JWT_OK);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_BAD_AUDIENCE);
}
END_TEST

START_TEST(test_jwt_subject_rules)
{
	char p[1024], longsub[300];

	usual_verifier();
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld}", NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_NO_SUBJECT);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"\",\"exp\":%lld}",
		 NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_NO_SUBJECT);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\\nb\",\"exp\":%lld}",
		 NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_NO_SUBJECT);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":42,\"exp\":%lld}",
		 NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_NO_SUBJECT);
	memset(longsub, 'a', 256);
	longsub[256] = '\0';
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"%s\",\"exp\":%lld}",
		 longsub, NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_NO_SUBJECT);
	longsub[255] = '\0';
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"%s\",\"exp\":%lld}",
		 longsub, NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_OK);
	ck_assert_str_eq(who.sub, longsub);
}
END_TEST

START_TEST(test_jwt_numeric_claims_must_be_numbers)
{
	char p[512];

	usual_verifier();
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":\"%lld\"}", NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_MALFORMED);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":%lld,\"nbf\":\"0\"}", NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_MALFORMED);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":%lld,\"iat\":null}", NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_MALFORMED);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\"}");
	ck_assert_int_eq(rs256(p), CART_JWT_MALFORMED);   /* exp is required */
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":1e400}");
	ck_assert_int_eq(rs256(p), CART_JWT_MALFORMED);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":%lld.5}", NOW_S);
	ck_assert_int_eq(rs256(p), CART_JWT_OK);          /* fractions are fine */
	ck_assert_int_eq(who.exp_ms, NOW_S * 1000 + 500);
}
END_TEST

/* --- refused tokens ------------------------------------------------------ */

START_TEST(test_jwt_alg_none_refused)
{
	usual_verifier();
	ts_sign(tok, sizeof(tok), "{\"alg\":\"none\"}", claims(""), TS_NONE, NULL, NULL, 0);
	ck_assert_int_eq(tok[strlen(tok) - 1], '.');
	ck_assert_int_eq(verify(), CART_JWT_ALG_REFUSED);
	tok[strlen(tok) - 1] = '\0';   /* and with no signature part at all */
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"none\",\"kid\":\"rsa-1\"}", claims(""),
		TS_NONE, NULL, NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_ALG_REFUSED);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"NONE\"}", claims(""), TS_NONE, NULL, NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_ALG_REFUSED);
	ts_sign(tok, sizeof(tok), "{\"kid\":\"rsa-1\"}", claims(""), TS_RS256, ts_rsa2048(),
		NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);   /* no alg */
}
END_TEST

/* The classic confusion: HS256 keyed with the RSA public key's bytes. */
START_TEST(test_jwt_hs256_with_public_key_as_secret)
{
	size_t pl, dl;
	uint8_t *pem = ts_public_pem(ts_rsa2048(), &pl);
	uint8_t *der = ts_public_der(ts_rsa2048(), &dl);

	usual_verifier();
	ts_sign(tok, sizeof(tok), "{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", claims(""),
		TS_HS256, NULL, pem, pl);
	ck_assert_int_eq(verify(), CART_JWT_ALG_REFUSED);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"HS256\"}", claims(""), TS_HS256, NULL, pem, pl);
	ck_assert_int_eq(verify(), CART_JWT_ALG_REFUSED);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", claims(""),
		TS_HS256, NULL, der, dl);
	ck_assert_int_eq(verify(), CART_JWT_ALG_REFUSED);
	/* Relabelled as RS256 the HMAC is just a wrong-length signature. */
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", claims(""),
		TS_HS256, NULL, der, dl);
	ck_assert_int_eq(verify(), CART_JWT_BAD_SIGNATURE);
	free(pem);
	free(der);
}
END_TEST

START_TEST(test_jwt_other_algs_refused)
{
	static const char *const algs[] = { "HS384", "HS512", "PS256", "RS384", "RS512",
					    "ES384", "ES512", "EdDSA", "rs256", "RS256 ", "" };
	char h[128];

	usual_verifier();
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"kid\":\"rsa-1\"}", algs[i]);
		ts_sign(tok, sizeof(tok), h, claims(""), TS_RS256, ts_rsa2048(), NULL, 0);
		ck_assert_msg(verify() == CART_JWT_ALG_REFUSED, "alg %s", algs[i]);
	}
	ts_sign(tok, sizeof(tok), "{\"alg\":7,\"kid\":\"rsa-1\"}", claims(""), TS_RS256,
		ts_rsa2048(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
}
END_TEST

START_TEST(test_jwt_alg_not_in_configured_list)
{
	cart_jwt_config c = base_config();
	char doc[4096];

	usual_jwks(doc, sizeof(doc));
	c.algorithms = "ES256";
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_OK);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_ALG_REFUSED);
	ck_assert_int_eq(es256(claims("")), CART_JWT_OK);
}
END_TEST

START_TEST(test_jwt_key_type_mismatch)
{
	usual_verifier();
	/* RS256 header naming the EC key. */
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", claims(""),
		TS_ES256, ts_p256(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_ALG_REFUSED);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", claims(""),
		TS_RS256, ts_rsa2048(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_ALG_REFUSED);
	/* ES256 header naming the RSA key. */
	ts_sign(tok, sizeof(tok), "{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", claims(""),
		TS_ES256, ts_p256(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_ALG_REFUSED);
}
END_TEST

START_TEST(test_jwt_tampered_payload_or_signature)
{
	char *dot, *p;
	size_t n;

	usual_verifier();
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	/* Swap in another payload under the same header and signature. */
	{
		char other[CART_JWT_MAX_TOKEN];
		ts_sign(other, sizeof(other), "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
			claims(",\"scope\":\"cart:admin\""), TS_NONE, NULL, NULL, 0);
		dot = strchr(tok, '.');
		p = strchr(other, '.');
		n = strlen(p) - 1;   /* ".payload." without the last dot */
		memmove(dot + n, strrchr(tok, '.'), strlen(strrchr(tok, '.')) + 1);
		memcpy(dot, p, n);
		ck_assert_int_eq(verify(), CART_JWT_BAD_SIGNATURE);
	}
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	p = strchr(tok, '.') + 5;
	*p = *p == 'A' ? 'B' : 'A';
	ck_assert_int_eq(verify(), CART_JWT_BAD_SIGNATURE);
	ck_assert_int_eq(es256(claims("")), CART_JWT_OK);
	p = strrchr(tok, '.') + 10;
	*p = *p == 'A' ? 'B' : 'A';
	ck_assert_int_eq(verify(), CART_JWT_BAD_SIGNATURE);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	p = strrchr(tok, '.') + 100;
	*p = *p == 'A' ? 'B' : 'A';
	ck_assert_int_eq(verify(), CART_JWT_BAD_SIGNATURE);
}
END_TEST

START_TEST(test_jwt_signature_length)
{
	char sig[200], *dot;
	uint8_t raw[70] = { 0 };

	usual_verifier();
	ts_sign(tok, sizeof(tok), "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", claims(""),
		TS_ES256_DER, ts_p256(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_BAD_SIGNATURE);   /* DER, not r||s */
	for (size_t len = 62; len <= 66; len++) {
		if (len == 64)
			continue;
		ck_assert_int_eq(es256(claims("")), CART_JWT_OK);
		dot = strrchr(tok, '.');
		ts_b64url(sig, raw, len);
		strcpy(dot + 1, sig);
		ck_assert_msg(verify() == CART_JWT_BAD_SIGNATURE, "length %zu", len);
	}
	/* r = s = 0, the right length. */
	ck_assert_int_eq(es256(claims("")), CART_JWT_OK);
	ts_b64url(sig, raw, 64);
	strcpy(strrchr(tok, '.') + 1, sig);
	ck_assert_int_eq(verify(), CART_JWT_BAD_SIGNATURE);
	/* RSA: one byte short, and an empty signature. */
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	dot = strrchr(tok, '.');
	dot[strlen(dot) - 2] = '\0';   /* 342 -> 340 chars: 255 bytes */
	ck_assert_int_eq(verify(), CART_JWT_BAD_SIGNATURE);
	dot[1] = '\0';
	ck_assert_int_eq(verify(), CART_JWT_BAD_SIGNATURE);
}
END_TEST

START_TEST(test_jwt_malformed_base64)
{
	char good[CART_JWT_MAX_TOKEN], *p;

	usual_verifier();
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	strcpy(good, tok);
	/* Padding on the header ("eyJ...ifQ" + "=="). */
	p = strchr(good, '.');
	snprintf(tok, sizeof(tok), "%.*s==%s", (int)(p - good), good, p);
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
	/* '+' or '/' in the payload, a '*' in the signature, a space. */
	strcpy(tok, good);
	strchr(tok, '.')[3] = '+';
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
	strcpy(tok, good);
	strchr(tok, '.')[3] = '/';
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
	strcpy(tok, good);
	strrchr(tok, '.')[7] = '*';
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
	strcpy(tok, good);
	strrchr(tok, '.')[7] = ' ';
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
	/* A trailing newline. */
	snprintf(tok, sizeof(tok), "%s\n", good);
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
	/* The last signature character with non-zero unused bits: 2048-bit
	 * RS256 signatures end in one character carrying 2 bits. */
	strcpy(tok, good);
	p = tok + strlen(tok) - 1;
	*p = *p == 'A' ? 'B' : *p == 'Q' ? 'R' : *p == 'g' ? 'h' : *p == 'w' ? 'x' : '!';
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
	ck_assert_int_eq(cart_jwt_verify(ver, good, strlen(good), &who), CART_JWT_OK);
}
END_TEST

START_TEST(test_jwt_wrong_number_of_parts)
{
	char good[CART_JWT_MAX_TOKEN];

	usual_verifier();
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	strcpy(good, tok);
	*strrchr(tok, '.') = '\0';
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);               /* 2 parts */
	snprintf(tok, sizeof(tok), "%s.", good);
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);               /* 4 parts */
	snprintf(tok, sizeof(tok), "%s.AAAA", good);
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
	ck_assert_int_eq(verify_text(""), CART_JWT_MALFORMED);
	ck_assert_int_eq(verify_text(".."), CART_JWT_MALFORMED);
	ck_assert_int_eq(verify_text("abc"), CART_JWT_MALFORMED);
	ck_assert_int_eq(cart_jwt_verify(ver, NULL, 0, &who), CART_JWT_MALFORMED);
	/* Only the given length counts: a prefix of a good token is not it. */
	ck_assert_int_eq(cart_jwt_verify(ver, good, strlen(good) - 1, &who),
			 CART_JWT_MALFORMED);
}
END_TEST

START_TEST(test_jwt_header_and_payload_must_be_objects)
{
	static const char *const headers[] = {
		"[\"RS256\"]", "\"RS256\"", "null", "7", "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"} x",
		"{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}{}", "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"",
		"{\"alg\":\"RS256\",\"alg\":\"none\",\"kid\":\"rsa-1\"}",
		"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"kid\":\"ec-1\"}",
		"{\"alg\":\"RS256\",\"kid\":7}", "{\"alg\":\"RS256\",\"kid\":\"\"}",
		"{\"alg\":\"RS256\",\"kid\":\"rsa-1\\u0000x\"}",
		"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
		"",
	};
	char p[512];

	usual_verifier();
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		ts_sign(tok, sizeof(tok), headers[i], claims(""), TS_RS256, ts_rsa2048(),
			NULL, 0);
		ck_assert_msg(verify() == CART_JWT_MALFORMED, "header %s", headers[i]);
	}
	/* Whitespace around the object is fine. */
	ts_sign(tok, sizeof(tok), " {\"alg\":\"RS256\",\"kid\":\"rsa-1\"}\r\n", claims(""),
		TS_RS256, ts_rsa2048(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_OK);
	ck_assert_int_eq(rs256("[1]"), CART_JWT_MALFORMED);
	ck_assert_int_eq(rs256("\"x\""), CART_JWT_MALFORMED);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"sub\":\"admin\",\"exp\":%lld}", NOW_S + 60);
	ck_assert_int_eq(rs256(p), CART_JWT_MALFORMED);
}
END_TEST

START_TEST(test_jwt_huge_token)
{
	char *big = malloc(CART_JWT_MAX_TOKEN + 1);

	ck_assert_ptr_nonnull(big);
	usual_verifier();
	memset(big, 'A', CART_JWT_MAX_TOKEN + 1);
	big[10] = '.';
	big[20] = '.';
	ck_assert_int_eq(cart_jwt_verify(ver, big, CART_JWT_MAX_TOKEN + 1, &who),
			 CART_JWT_TOO_LARGE);
	ck_assert_str_eq(cart_jwt_status_name(CART_JWT_TOO_LARGE), "too_large");
	/* At the limit it is parsed (and found wanting for other reasons). */
	ck_assert_int_eq(cart_jwt_verify(ver, big, CART_JWT_MAX_TOKEN, &who),
			 CART_JWT_MALFORMED);
	free(big);
}
END_TEST

START_TEST(test_jwt_large_valid_token_under_limit)
{
	char pad[6500], extra[6600];

	usual_verifier();
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	snprintf(extra, sizeof(extra), ",\"pad\":\"%s\"", pad);
	ck_assert_int_eq(rs256(claims(extra)), CART_JWT_TOO_LARGE);
	pad[5000] = '\0';
	snprintf(extra, sizeof(extra), ",\"pad\":\"%s\"", pad);
	ck_assert_int_eq(rs256(claims(extra)), CART_JWT_OK);
}
END_TEST

START_TEST(test_jwt_crit_refused)
{
	usual_verifier();
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"crit\":[\"exp\"],"
		"\"exp\":1}", claims(""), TS_RS256, ts_rsa2048(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"crit\":[\"b64\"],"
		"\"b64\":false}", claims(""), TS_RS256, ts_rsa2048(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_MALFORMED);
}
END_TEST

START_TEST(test_jwt_unknown_kid)
{
	usual_verifier();
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"rsa-9\"}", claims(""),
		TS_RS256, ts_rsa2048(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ck_assert_str_eq(cart_jwt_status_name(CART_JWT_UNKNOWN_KID), "unknown_kid");
}
END_TEST

START_TEST(test_jwt_no_kid_needs_exactly_one_key)
{
	cart_jwt_config c = base_config();
	char a[2048], b[2048], doc[4096];
	const char *one[] = { a }, *two[] = { a, b };

	ts_jwk(a, sizeof(a), ts_rsa2048(), NULL, "");
	ts_jwk(b, sizeof(b), ts_p256(), "ec-1", "");
	ts_jwks(doc, sizeof(doc), 1, one);
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_OK);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\"}", claims(""), TS_RS256, ts_rsa2048(),
		NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_OK);
	/* A kid the set does not name does not match the kid-less key. */
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"x\"}", claims(""), TS_RS256,
		ts_rsa2048(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	/* One RSA key and one EC key: still exactly one per alg. */
	ts_jwks(doc, sizeof(doc), 2, two);
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_OK);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\"}", claims(""), TS_RS256, ts_rsa2048(),
		NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_OK);
	/* Two RSA keys: ambiguous. */
	ts_jwk(b, sizeof(b), ts_rsa2048(), "rsa-2", "");
	ts_jwks(doc, sizeof(doc), 2, two);
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_OK);
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
}
END_TEST

/* --- the key set ------------------------------------------------------- */

START_TEST(test_jwt_small_rsa_key_skipped)
{
	cart_jwt_config c = base_config();
	char a[2048], b[1024], doc[4096];
	const char *keys[] = { a, b };
	cart_jwt_stats st;

	ts_jwk(a, sizeof(a), ts_rsa1024(), "rsa-small", "");
	ts_jwk(b, sizeof(b), ts_p256(), "ec-1", "");
	ts_jwks(doc, sizeof(doc), 2, keys);
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_OK);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_int_eq(st.keys, 1);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"rsa-small\"}", claims(""),
		TS_RS256, ts_rsa1024(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ck_assert_int_eq(es256(claims("")), CART_JWT_OK);
}
END_TEST

START_TEST(test_jwt_unusable_keys_skipped)
{
	cart_jwt_config c = base_config();
	char k[6][2048], doc[12288];
	const char *keys[] = { k[0], k[1], k[2], k[3], k[4], k[5] };
	cart_jwt_stats st;

	ts_jwk(k[0], sizeof(k[0]), ts_rsa2048(), "enc", ",\"use\":\"enc\"");
	ts_jwk(k[1], sizeof(k[1]), ts_rsa2048(), "es", ",\"alg\":\"ES256\"");
	ts_jwk(k[2], sizeof(k[2]), ts_p384(), "p384", "");
	ts_jwk(k[3], sizeof(k[3]), ts_rsa2048(), "ops", ",\"key_ops\":[\"encrypt\"]");
	snprintf(k[4], sizeof(k[4]), "{\"kty\":\"oct\",\"kid\":\"hmac\",\"k\":\"c2VjcmV0\"}");
	ts_jwk(k[5], sizeof(k[5]), ts_rsa2048(), "rsa-1", ",\"key_ops\":[\"verify\"]");
	ts_jwks(doc, sizeof(doc), 6, keys);
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_OK);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_int_eq(st.keys, 1);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"enc\"}", claims(""),
		TS_RS256, ts_rsa2048(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"HS256\",\"kid\":\"hmac\"}", claims(""),
		TS_HS256, NULL, (const uint8_t *)"secret", 6);
	ck_assert_int_eq(verify(), CART_JWT_ALG_REFUSED);
}
END_TEST

START_TEST(test_jwt_no_usable_keys_fails_new)
{
	cart_jwt_config c = base_config();
	char a[2048], b[1024], doc[4096], err[256];
	const char *keys[] = { a, b };

	ts_jwk(a, sizeof(a), ts_rsa1024(), "rsa-small", "");
	ts_jwk(b, sizeof(b), ts_p384(), "p384", "");
	ts_jwks(doc, sizeof(doc), 2, keys);
	write_jwks_file(doc);
	c.jwks_file = jwks_path;
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EBACKEND);
	ck_assert_ptr_null(ver);
	ck_assert_msg(strstr(err, "no usable key") && strstr(err, "1024"), "%s", err);
	/* Not JSON, no keys, too many keys, a missing file. */
	ck_assert_int_eq(new_file_verifier(&c, "{\"keys\":"), CART_EBACKEND);
	ck_assert_int_eq(new_file_verifier(&c, "{\"keys\":[]}"), CART_EBACKEND);
	ck_assert_int_eq(new_file_verifier(&c, "[]"), CART_EBACKEND);
	{
		char many[4096] = "{\"keys\":[";
		for (int i = 0; i < 33; i++)
			strcat(many, i ? ",{}" : "{}");
		strcat(many, "]}");
		ck_assert_int_eq(new_file_verifier(&c, many), CART_EBACKEND);
	}
	c.jwks_file = "/nonexistent/jwks.json";
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EBACKEND);
	ck_assert_msg(strstr(err, "/nonexistent/jwks.json"), "%s", err);
}
END_TEST

START_TEST(test_jwt_invalid_config_refused)
{
	cart_jwt_config c;
	char err[256];
	static const char *const bad_algs[] = { "RS256,HS256", "none", "", "HS256", "RS256,",
						"PS256", "RS256;ES256", "RS256 ES256" };

	for (size_t i = 0; i < sizeof(bad_algs) / sizeof(bad_algs[0]); i++) {
		c = base_config();
		c.jwks_file = "/dev/null";
		c.algorithms = bad_algs[i];
		ck_assert_msg(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)) == CART_EINVALID,
			      "algorithms %s", bad_algs[i]);
		ck_assert_ptr_null(ver);
		ck_assert(strstr(err, "JWT_ALGORITHMS"));
	}
	c = base_config();
	c.algorithms = NULL;
	c.jwks_file = "/dev/null";
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EINVALID);
	c = base_config();   /* neither source */
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EINVALID);
	c.jwks_file = "/dev/null";
	c.jwks_url = "https://example.com/jwks.json";   /* both */
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EINVALID);
	c.jwks_file = NULL;
	{
		static const char *const bad_urls[] = {
			"http://example.com/jwks.json", "ftp://127.0.0.1/jwks.json",
			"file:///etc/passwd", "http://127.0.0.1@evil.example/jwks.json",
			"http://localhost:80@evil.example/", "http://127.0.0.1.evil.example/",
			"https://", "jwks.json",
		};
		for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
			c.jwks_url = bad_urls[i];
			ck_assert_msg(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)) ==
				      CART_EINVALID, "url %s", bad_urls[i]);
		}
	}
	c = base_config();
	c.jwks_file = "/dev/null";
	c.leeway_seconds = 61;
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EINVALID);
	c = base_config();
	c.jwks_file = "/dev/null";
	c.issuer = "";
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EINVALID);
	c = base_config();
	c.jwks_file = "/dev/null";
	c.audience = c.client_id = NULL;
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EINVALID);
	c = base_config();
	c.jwks_file = "/dev/null";
	c.min_refresh_seconds = 0;
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EINVALID);
	c = base_config();
	c.jwks_file = "/dev/null";
	c.fetch_timeout_ms = 0;
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EINVALID);
	/* " RS256 , ES256 " is a fine list; /dev/null is no JWKS. */
	c = base_config();
	c.jwks_file = "/dev/null";
	c.algorithms = " RS256 , ES256 ";
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EBACKEND);
	cart_jwt_verifier_free(NULL);
	ck_assert_str_eq(cart_jwt_status_name(99), "unknown");
	ck_assert_str_eq(cart_jwt_status_name(-1), "unknown");
}
END_TEST

/* --- the JWKS URL and refresh -------------------------------------------- */

START_TEST(test_jwt_url_fetch_failure_fails_new)
{
	cart_jwt_config c = base_config();
	char err[256];

	srv = jwks_server_start();
	ck_assert_ptr_nonnull(srv);
	jwks_server_set(srv, 500, "oops");
	c.jwks_url = jwks_server_url(srv);
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EBACKEND);
	ck_assert_msg(strstr(err, "HTTP 500"), "%s", err);
	jwks_server_set(srv, 200, "not json");
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EBACKEND);
	ck_assert_msg(strstr(err, "JWKS"), "%s", err);
	c.jwks_url = "http://127.0.0.1:1/jwks.json";   /* nobody listens */
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EBACKEND);
	ck_assert_msg(strstr(err, "127.0.0.1:1"), "%s", err);
}
END_TEST

START_TEST(test_jwt_url_document_size_limit)
{
	cart_jwt_config c = base_config();
	char err[256], *big = malloc(CART_JWT_MAX_JWKS + 100);

	ck_assert_ptr_nonnull(big);
	memset(big, ' ', CART_JWT_MAX_JWKS + 99);
	big[CART_JWT_MAX_JWKS + 99] = '\0';
	srv = jwks_server_start();
	ck_assert_ptr_nonnull(srv);
	jwks_server_set(srv, 200, big);
	c.jwks_url = jwks_server_url(srv);
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EBACKEND);
	ck_assert_msg(strstr(err, "larger than"), "%s", err);
	free(big);
}
END_TEST

START_TEST(test_jwt_unknown_kid_refetch_is_rate_limited)
{
	char doc[4096];
	cart_jwt_stats st;

	usual_jwks(doc, sizeof(doc));
	url_verifier(doc);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"rsa-9\"}", claims(""),
		TS_RS256, ts_rsa2048(), NULL, 0);
	/* The load at start counts: no refetch inside the first window. */
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ck_assert_int_eq(jwks_server_requests(srv), 1);
	fake_clock_advance(fclk, 59999);
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ck_assert_int_eq(jwks_server_requests(srv), 1);
	fake_clock_advance(fclk, 1);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ck_assert_int_eq(jwks_server_requests(srv), 2);
	fake_clock_advance(fclk, 60000);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ck_assert_int_eq(jwks_server_requests(srv), 3);
	/* Known kids never fetch. */
	fake_clock_advance(fclk, 60000);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	ck_assert_int_eq(jwks_server_requests(srv), 3);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.refreshes, 2);
	ck_assert_uint_eq(st.refresh_failures, 0);
}
END_TEST

START_TEST(test_jwt_clock_stepping_back_does_not_stop_refreshes)
{
	char doc[4096];

	usual_jwks(doc, sizeof(doc));
	url_verifier(doc);
	fake_clock_set(fclk, T0 - 3600 * 1000);
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"rsa-9\"}", claims(""),
		TS_RS256, ts_rsa2048(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ck_assert_int_eq(jwks_server_requests(srv), 2);
	/* The window restarts from the new time. */
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ck_assert_int_eq(jwks_server_requests(srv), 2);
	fake_clock_advance(fclk, 60000);
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ck_assert_int_eq(jwks_server_requests(srv), 3);
}
END_TEST

/* The set the server hands out after rotation: only "ec-2". */
static void rotated_jwks(char *out, size_t cap)
{
	char a[1024];
	const char *keys[] = { a };

	ts_jwk(a, sizeof(a), ts_p256_b(), "ec-2", ",\"alg\":\"ES256\",\"use\":\"sig\"");
	ts_jwks(out, cap, 1, keys);
}

static void sign_ec2(void)
{
	ts_sign(tok, sizeof(tok), "{\"alg\":\"ES256\",\"kid\":\"ec-2\"}", claims(""),
		TS_ES256, ts_p256_b(), NULL, 0);
}

START_TEST(test_jwt_rotation_by_url)
{
	char doc[4096];

	usual_jwks(doc, sizeof(doc));
	url_verifier(doc);
	rotated_jwks(doc, sizeof(doc));
	jwks_server_set(srv, 200, doc);
	sign_ec2();
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);   /* inside the window */
	fake_clock_advance(fclk, 60000);
	sign_ec2();
	ck_assert_int_eq(verify(), CART_JWT_OK);
	ck_assert_int_eq(jwks_server_requests(srv), 2);
	/* The old key is gone with the old set. */
	ck_assert_int_eq(rs256(claims("")), CART_JWT_UNKNOWN_KID);
	sign_ec2();
	ck_assert_int_eq(verify(), CART_JWT_OK);
}
END_TEST

/* A JWKS from a secret: no source to re-read, its owner pushes new keys. */
START_TEST(test_jwt_rotation_by_document)
{
	char doc[4096], ec[1024], err[256] = "";
	const char *keys[] = { ec };
	cart_jwt_config c = base_config();

	usual_jwks(doc, sizeof(doc));
	c.jwks_doc = doc;
	c.jwks_doc_len = strlen(doc);
	c.jwks_file = jwks_path;
	ck_assert_int_eq(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)), CART_EINVALID);
	c.jwks_file = NULL;
	ck_assert_msg(cart_jwt_verifier_new(&ver, &c, &clk, err, sizeof(err)) == CART_OK, "%s", err);
	doc[0] = 'x';   /* the verifier kept its own copy of the keys */
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);   /* now from the cache */

	ts_jwk(ec, sizeof(ec), ts_p256(), "ec-1", "");
	ts_jwks(doc, sizeof(doc), 1, keys);
	ck_assert_int_eq(cart_jwt_verifier_set_jwks(ver, doc, strlen(doc), err, sizeof(err)),
			 CART_OK);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_UNKNOWN_KID);   /* not cached */
	ck_assert_int_eq(es256(claims("")), CART_JWT_OK);

	ck_assert_int_eq(cart_jwt_verifier_set_jwks(ver, "{\"keys\":[]}", 11, err, sizeof(err)),
			 CART_EBACKEND);
	ck_assert_int_eq(es256(claims("")), CART_JWT_OK);   /* the old keys stay */
	cart_jwt_stats st;
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.refresh_failures, 1);
	ck_assert_int_eq(st.keys, 1);
}
END_TEST

START_TEST(test_jwt_rotation_by_file)
{
	char doc[4096];
	cart_jwt_stats st;

	usual_verifier();
	rotated_jwks(doc, sizeof(doc));
	write_jwks_file(doc);
	sign_ec2();
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	fake_clock_advance(fclk, 60000);
	sign_ec2();
	ck_assert_int_eq(verify(), CART_JWT_OK);
	/* An unchanged file is not parsed again, and still rate-limited. */
	fake_clock_advance(fclk, 60000);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_UNKNOWN_KID);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.refreshes, 2);
	ck_assert_int_eq(st.keys, 1);
	/* A broken file keeps the last good set. */
	fake_clock_advance(fclk, 60000);
	write_jwks_file("{\"keys\":[]}");
	ck_assert_int_eq(rs256(claims("")), CART_JWT_UNKNOWN_KID);
	sign_ec2();
	ck_assert_int_eq(verify(), CART_JWT_OK);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.refresh_failures, 1);
	ck_assert_msg(strstr(st.last_error, "no usable key"), "%s", st.last_error);
}
END_TEST

START_TEST(test_jwt_max_age_refresh_keeps_stale_keys_on_failure)
{
	char doc[4096];
	cart_jwt_stats st;

	usual_jwks(doc, sizeof(doc));
	url_verifier(doc);
	fake_clock_advance(fclk, 3599 * 1000);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	ck_assert_int_eq(jwks_server_requests(srv), 1);
	fake_clock_advance(fclk, 1000);   /* an hour old: refetched first */
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	ck_assert_int_eq(jwks_server_requests(srv), 2);
	/* The source fails: the stale keys keep working, and the next try
	 * waits a refresh window. */
	jwks_server_set(srv, 500, "down");
	fake_clock_advance(fclk, 3600 * 1000);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	ck_assert_int_eq(jwks_server_requests(srv), 3);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.refreshes, 2);
	ck_assert_uint_eq(st.refresh_failures, 1);
	ck_assert_msg(strstr(st.last_error, "HTTP 500"), "%s", st.last_error);
	fake_clock_advance(fclk, 59 * 1000);
	ck_assert_int_eq(es256(claims("")), CART_JWT_OK);
	ck_assert_int_eq(jwks_server_requests(srv), 3);
	fake_clock_advance(fclk, 1000);
	ck_assert_int_eq(es256(claims("")), CART_JWT_OK);
	ck_assert_int_eq(jwks_server_requests(srv), 4);
	jwks_server_set(srv, 200, doc);
	fake_clock_advance(fclk, 60 * 1000);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	ck_assert_int_eq(jwks_server_requests(srv), 5);
	/* Fresh again: no fetch for another hour. */
	fake_clock_advance(fclk, 60 * 1000);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	ck_assert_int_eq(jwks_server_requests(srv), 5);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.refresh_failures, 2);
	ck_assert_int_eq(st.loaded_ms, fake_clock_now(fclk) - 60 * 1000);
}
END_TEST

/* --- header members that name keys --------------------------------------- */

START_TEST(test_jwt_jku_x5u_jwk_never_fetched_or_used)
{
	char doc[4096], h[2048], evil[1024], path[256];

	usual_jwks(doc, sizeof(doc));
	url_verifier(doc);
	/* The same server would serve a key set on any path. */
	snprintf(h, sizeof(h), "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"jku\":\"%s?jku\","
		 "\"x5u\":\"%s?x5u\"}", jwks_server_url(srv), jwks_server_url(srv));
	ts_sign(tok, sizeof(tok), h, claims(""), TS_RS256, ts_rsa2048(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_OK);
	/* An attacker's key in jwk / jku with a kid we do not know. */
	ts_jwk(evil, sizeof(evil), ts_p256_b(), "evil", "");
	snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"evil\",\"jwk\":%s,"
		 "\"jku\":\"%s?jku\",\"x5c\":[\"AAAA\"]}", evil, jwks_server_url(srv));
	ts_sign(tok, sizeof(tok), h, claims(""), TS_ES256, ts_p256_b(), NULL, 0);
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ck_assert_int_eq(jwks_server_requests(srv), 1);
	/* Once the window allows a refetch it is of the configured URL. */
	fake_clock_advance(fclk, 60000);
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	ck_assert_int_eq(jwks_server_requests(srv), 2);
	jwks_server_last_path(srv, path, sizeof(path));
	ck_assert_str_eq(path, "/.well-known/jwks.json");
}
END_TEST

/* --- threads ------------------------------------------------------------- */

typedef struct worker {
	char token[CART_JWT_MAX_TOKEN];
	int ok;
	int rounds;
} worker;

/* --- the verified-token cache ------------------------------------------ */

START_TEST(test_jwt_cache_keeps_expiry)
{
	char p[512];

	usual_verifier();
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\","
		 "\"exp\":%lld,\"scope\":\"cart:admin\"}", NOW_S + 5);
	ck_assert_int_eq(rs256(p), CART_JWT_OK);
	ck_assert_int_eq(verify(), CART_JWT_OK);          /* the same bytes again */
	ck_assert_str_eq(who.sub, "u");
	ck_assert(who.admin);
	ck_assert_int_eq(who.exp_ms, (NOW_S + 5) * 1000);
	fake_clock_advance(fclk, 4999);
	ck_assert_int_eq(verify(), CART_JWT_OK);
	fake_clock_advance(fclk, 1);
	ck_assert_int_eq(verify(), CART_JWT_EXPIRED);     /* exp is the first invalid instant */
	ck_assert_str_eq(who.sub, "");
}
END_TEST

START_TEST(test_jwt_cache_forgets_tokens_of_rotated_keys)
{
	char doc[4096], old[CART_JWT_MAX_TOKEN + 4096];

	usual_jwks(doc, sizeof(doc));
	url_verifier(doc);
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	ck_assert_int_eq(verify(), CART_JWT_OK);
	snprintf(old, sizeof(old), "%s", tok);
	/* The RSA key is withdrawn; the next unknown kid installs the new set. */
	rotated_jwks(doc, sizeof(doc));
	jwks_server_set(srv, 200, doc);
	fake_clock_advance(fclk, 60000);
	sign_ec2();
	ck_assert_int_eq(verify(), CART_JWT_OK);
	snprintf(tok, sizeof(tok), "%s", old);
	ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
}
END_TEST

START_TEST(test_jwt_cache_is_per_token_bytes)
{
	size_t n;

	usual_verifier();
	ck_assert_int_eq(rs256(claims("")), CART_JWT_OK);
	n = strlen(tok);
	/* One byte of the signature changed: verified afresh, and refused. */
	tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(verify(), CART_JWT_BAD_SIGNATURE);
	/* A prefix of a cached token is not that token. */
	ck_assert_int_eq(cart_jwt_verify(ver, tok, n - 1, &who), CART_JWT_MALFORMED);
}
END_TEST

/* A verifier on the usual keys whose cache holds `entries`. */
static void cache_verifier(long entries)
{
	char doc[4096];
	cart_jwt_config c = base_config();

	c.cache_entries = entries;
	usual_jwks(doc, sizeof(doc));
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_OK);
}

enum { SLOT = 2048 };   /* bytes per token in mint_many's array */

/* n ES256 tokens (fast to sign), subject "user-<i>" padded with 'x' to
 * at least sub_len bytes. */
static char *mint_many(int n, int sub_len)
{
	char *t = malloc((size_t)n * SLOT), sub[160], p[512];

	ck_assert_ptr_nonnull(t);
	for (int i = 0; i < n; i++) {
		int k = snprintf(sub, sizeof(sub), "user-%d", i);

		if (k < 0)      /* never; -O3's bounds warning cannot know */
			k = 0;
		while (k < sub_len && k < (int)sizeof(sub) - 1)
			sub[k++] = 'x';
		sub[k] = '\0';
		snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\","
			 "\"sub\":\"%s\",\"exp\":%lld}", sub, now_s() + 600);
		ck_assert_uint_lt(ts_sign(t + (size_t)i * SLOT, SLOT,
					  "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", p,
					  TS_ES256, ts_p256(), NULL, 0), SLOT);
	}
	return t;
}

/* Verifies the n tokens; each must pass with its own subject. */
static void verify_many(const char *t, int n)
{
	for (int i = 0; i < n; i++) {
		char want[16];

		ck_assert_int_eq(verify_text(t + (size_t)i * SLOT), CART_JWT_OK);
		snprintf(want, sizeof(want), "user-%d", i);
		ck_assert_int_eq(strncmp(who.sub, want, strlen(want)), 0);
		ck_assert(who.sub[strlen(want)] == '\0' || who.sub[strlen(want)] == 'x');
	}
}

START_TEST(test_jwt_cache_holds_the_tokens_in_use)
{
	enum { ENTRIES = 4096, USERS = 2048 };
	cart_jwt_stats st;
	char *t = mint_many(USERS, 0);

	cache_verifier(ENTRIES);
	verify_many(t, USERS);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.cache_capacity, ENTRIES);
	ck_assert_uint_eq(st.cache_hits, 0);
	ck_assert_uint_eq(st.cache_misses, USERS);
	verify_many(t, USERS);                      /* every user again */
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.cache_hits + st.cache_misses, 2 * USERS);
	/* Half full in sets of 8, ~1 % of tokens find their set full (a
	 * direct-mapped table of the same size loses ~21 %). */
	ck_assert_msg(st.cache_hits >= USERS * 97 / 100, "hits %llu of %d",
		      (unsigned long long)st.cache_hits, USERS);
	/* Every second-round miss pushed a live token out of a full set. */
	ck_assert_uint_ge(st.cache_evictions, USERS - st.cache_hits);
	free(t);
}
END_TEST

START_TEST(test_jwt_cache_smaller_than_the_tokens_in_use)
{
	enum { USERS = 512 };
	cart_jwt_stats st;
	char *t = mint_many(USERS, 0);

	cache_verifier(60);                         /* rounded up: 64 */
	verify_many(t, USERS);
	verify_many(t, USERS);                      /* evicted ones verify again */
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.cache_capacity, 64);
	ck_assert_uint_le(st.cache_hits, 64);
	ck_assert_uint_ge(st.cache_evictions, 2 * USERS - 64 - st.cache_hits);
	free(t);
}
END_TEST

START_TEST(test_jwt_cache_off_and_default)
{
	cart_jwt_stats st;

	cache_verifier(CART_JWT_CACHE_OFF);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(es256(claims("")), CART_JWT_OK);
	ck_assert_int_eq(verify(), CART_JWT_OK);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.cache_capacity, 0);
	ck_assert_uint_eq(st.cache_hits + st.cache_misses, 0);
	fake_clock_advance(fclk, 600 * 1000);
	ck_assert_int_eq(verify(), CART_JWT_EXPIRED);

	cache_verifier(0);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.cache_capacity, CART_JWT_DEFAULT_CACHE_ENTRIES);
}
END_TEST

START_TEST(test_jwt_cache_entries_bounds)
{
	char doc[4096];
	cart_jwt_config c = base_config();

	usual_jwks(doc, sizeof(doc));
	c.cache_entries = CART_JWT_MAX_CACHE_ENTRIES + 1;
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_EINVALID);
	c.cache_entries = -2;
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_EINVALID);
	c.cache_entries = 1;
	ck_assert_int_eq(new_file_verifier(&c, doc), CART_OK);
}
END_TEST

START_TEST(test_jwt_cache_subject_length)
{
	cart_jwt_stats st;
	char *t;

	cache_verifier(0);
	/* The longest subject an entry holds: the second verify is a hit and
	 * gives the whole subject back. */
	t = mint_many(1, CART_JWT_CACHE_SUB_MAX);
	verify_many(t, 1);
	verify_many(t, 1);
	ck_assert_uint_eq(strlen(who.sub), CART_JWT_CACHE_SUB_MAX);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.cache_hits, 1);
	free(t);
	/* One byte longer: verified every time, never cut short. */
	t = mint_many(1, CART_JWT_CACHE_SUB_MAX + 1);
	verify_many(t, 1);
	verify_many(t, 1);
	ck_assert_uint_eq(strlen(who.sub), CART_JWT_CACHE_SUB_MAX + 1);
	cart_jwt_verifier_stats(ver, &st);
	ck_assert_uint_eq(st.cache_hits, 1);
	ck_assert_uint_eq(st.cache_misses, 3);
	free(t);
}
END_TEST

static const jwt_cache_place no_place = { 0, 0 };

/* The cache key is SHA-256 of the bytes: FIPS 180-2's "abc", and EVP's
 * answer for lengths around the block size and up to the token limit. */
START_TEST(test_jwt_token_digest_is_sha256)
{
	static const uint8_t abc[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde,
		0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
		0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad };
	static const size_t lens[] = { 0, 1, 55, 56, 63, 64, 65, 760, CART_JWT_MAX_TOKEN };
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	static char text[CART_JWT_MAX_TOKEN];
	uint8_t got[32], want[32];
	jwt_token_cache *c;

	ck_assert_ptr_nonnull(md);
	ck_assert(jwt_token_digest(md, "abc", 3, got, NULL, no_place));
	ck_assert_mem_eq(got, abc, 32);
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (char)('A' + i * 7 % 58);
	ck_assert_int_eq(jwt_token_cache_new(&c, 64, 0), CART_OK);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		ck_assert(jwt_token_digest(md, text, lens[i], got, NULL, no_place));
		ck_assert_int_eq(EVP_Digest(text, lens[i], want, NULL, md, NULL), 1);
		ck_assert_mem_eq(got, want, 32);
		/* hashed in two halves, warming the entry between them */
		memset(got, 0, sizeof(got));
		ck_assert(jwt_token_digest(md, text, lens[i], got, c,
						jwt_token_cache_place(c, text, lens[i])));
		ck_assert_mem_eq(got, want, 32);
	}
	jwt_token_cache_free(c);
	EVP_MD_free(md);
}
END_TEST

/* The table itself: one set, so every token shares it. */
START_TEST(test_jwt_cache_set_keeps_recently_used)
{
	jwt_token_cache *c;
	cart_jwt_principal p = { .sub = "s", .exp_ms = T0 + 3600 * 1000 }, got;
	cart_jwt_principal brief = { .sub = "b", .exp_ms = T0 + 20 * 1000 };
	uint8_t d[11][32];
	jwt_cache_place pl[11];
	uint64_t cap, hits, misses, ev;

	ck_assert_int_eq(jwt_token_cache_new(&c, 8, 0), CART_OK);   /* one set */
	for (int i = 0; i < 11; i++) {
		memset(d[i], i + 1, 32);
		pl[i] = jwt_token_cache_place(c, (const char *)d[i], 32);
		ck_assert_uint_eq(pl[i].set, 0);
	}
	for (int i = 0; i < 8; i++)        /* full; d[i] last used at second i */
		jwt_token_cache_put(c, pl[i], d[i], 1, T0 + i * 1000, i == 5 ? &brief : &p);
	ck_assert(jwt_token_cache_get(c, pl[0], d[0], 1, T0 + 9000, &got));   /* d[0] used */
	ck_assert_str_eq(got.sub, "s");
	jwt_token_cache_put(c, pl[8], d[8], 1, T0 + 10000, &p);   /* out: d[1], the oldest */
	ck_assert(!jwt_token_cache_get(c, pl[1], d[1], 1, T0 + 10000, &got));
	ck_assert(jwt_token_cache_get(c, pl[0], d[0], 1, T0 + 10000, &got));
	ck_assert(jwt_token_cache_get(c, pl[8], d[8], 1, T0 + 10000, &got));
	/* d[5] expired at 20 s: its entry goes before d[2], the oldest live. */
	jwt_token_cache_put(c, pl[9], d[9], 1, T0 + 21000, &p);
	ck_assert(jwt_token_cache_get(c, pl[2], d[2], 1, T0 + 21000, &got));
	ck_assert(!jwt_token_cache_get(c, pl[5], d[5], 1, T0 + 21000, &got));
	/* A newer key set: every entry is free, nothing live is evicted. */
	jwt_token_cache_put(c, pl[10], d[10], 2, T0 + 22000, &p);
	ck_assert(jwt_token_cache_get(c, pl[10], d[10], 2, T0 + 22000, &got));
	ck_assert(!jwt_token_cache_get(c, pl[0], d[0], 2, T0 + 22000, &got));
	jwt_token_cache_stats(c, &cap, &hits, &misses, &ev);
	ck_assert_uint_eq(cap, 8);
	ck_assert_uint_eq(ev, 1);
	ck_assert_uint_eq(hits, 5);
	ck_assert_uint_eq(misses, 3);
	jwt_token_cache_free(c);
}
END_TEST

/*
 * The place only picks the way: a token whose last bytes (so its place
 * and tag) are a cached token's, with other bytes before them, is not
 * that token.  The warm hints change nothing.
 */
START_TEST(test_jwt_cache_place_is_not_the_key)
{
	jwt_token_cache *c;
	cart_jwt_principal p = { .sub = "owner", .exp_ms = T0 + 3600 * 1000 }, got;
	char a[96], b[96];
	uint8_t da[32], db[32];
	jwt_cache_place pa, pb;
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA2-256", NULL);

	ck_assert_ptr_nonnull(md);
	ck_assert_int_eq(jwt_token_cache_new(&c, 4096, 0), CART_OK);
	memset(a, 'a', sizeof(a));
	memcpy(b, a, sizeof(b));
	b[0] = 'b';                               /* same last 32 bytes */
	pa = jwt_token_cache_place(c, a, sizeof(a));
	pb = jwt_token_cache_place(c, b, sizeof(b));
	ck_assert_uint_eq(pa.set, pb.set);
	ck_assert(pa.tag == pb.tag);
	ck_assert(jwt_token_digest(md, a, sizeof(a), da, NULL, no_place));
	ck_assert(jwt_token_digest(md, b, sizeof(b), db, c, pb));
	ck_assert_mem_ne(da, db, 32);
	jwt_token_cache_put(c, pa, da, 1, T0, &p);
	jwt_token_cache_warm(c, pb);
	jwt_token_cache_warm_entry(c, pb);
	memset(&got, 0, sizeof(got));
	ck_assert(!jwt_token_cache_get(c, pb, db, 1, T0, &got));
	ck_assert_str_eq(got.sub, "");            /* nothing of a's given out */
	ck_assert(jwt_token_cache_get(c, pa, da, 1, T0, &got));
	ck_assert_str_eq(got.sub, "owner");
	/* Another tail: another place (2^-64 to share the tag). */
	b[sizeof(b) - 1] = 'b';
	pb = jwt_token_cache_place(c, b, sizeof(b));
	ck_assert(pa.tag != pb.tag);
	/* Shorter than the tail hashed: still placed, from what there is. */
	pb = jwt_token_cache_place(c, "x", 1);
	ck_assert_uint_lt(pb.set, 4096 / 8);
	pb = jwt_token_cache_place(c, "", 0);
	ck_assert_uint_lt(pb.set, 4096 / 8);
	jwt_token_cache_free(c);
	EVP_MD_free(md);
}
END_TEST

static void *verify_loop(void *arg)
{
	worker *w = arg;
	cart_jwt_principal p;

	for (int i = 0; i < w->rounds; i++)
		if (cart_jwt_verify(ver, w->token, strlen(w->token), &p) == CART_JWT_OK &&
		    !strcmp(p.sub, "user-1"))
			w->ok++;
	return NULL;
}

START_TEST(test_jwt_threads_verify_while_keys_refresh)
{
	enum { THREADS = 4, ROUNDS = 40 };
	static worker w[THREADS];
	pthread_t th[THREADS];
	char doc[4096];

	usual_jwks(doc, sizeof(doc));
	url_verifier(doc);
	for (int i = 0; i < THREADS; i++) {
		w[i].ok = 0;
		w[i].rounds = ROUNDS;
		ts_sign(w[i].token, sizeof(w[i].token),
			i % 2 ? "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}"
			      : "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
			claims(""), i % 2 ? TS_ES256 : TS_RS256,
			i % 2 ? ts_p256() : ts_rsa2048(), NULL, 0);
		ck_assert_int_eq(pthread_create(&th[i], NULL, verify_loop, &w[i]), 0);
	}
	ts_sign(tok, sizeof(tok), "{\"alg\":\"RS256\",\"kid\":\"rsa-9\"}", claims(""),
		TS_RS256, ts_rsa2048(), NULL, 0);
	for (int i = 0; i < 5; i++) {
		fake_clock_advance(fclk, 60000);
		ck_assert_int_eq(verify(), CART_JWT_UNKNOWN_KID);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(w[i].ok, ROUNDS);
	}
	ck_assert_int_eq(jwks_server_requests(srv), 6);
}
END_TEST

/* --- the suite ----------------------------------------------------------- */

static void global_cleanup(void)
{
	curl_global_cleanup();
}

static TCase *tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);   /* key generation under valgrind */
	return tc;
}

Suite *jwt_suite(void)
{
	Suite *s = suite_create("jwt");
	TCase *tc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	atexit(global_cleanup);

	tc = tcase("vectors");
	tcase_add_test(tc, test_jwt_rfc7515_a2_rs256_vector);
	tcase_add_test(tc, test_jwt_rfc7515_a3_es256_vector);
	tcase_add_test(tc, test_jwt_b64url_is_strict);
	suite_add_tcase(s, tc);

	tc = tcase("claims");
	tcase_add_test(tc, test_jwt_valid_rs256);
	tcase_add_test(tc, test_jwt_valid_es256);
	tcase_add_test(tc, test_jwt_admin_from_scope_or_groups);
	tcase_add_test(tc, test_jwt_expired);
	tcase_add_test(tc, test_jwt_expired_within_leeway);
	tcase_add_test(tc, test_jwt_nbf_or_iat_in_future);
	tcase_add_test(tc, test_jwt_wrong_issuer);
	tcase_add_test(tc, test_jwt_audience);
	tcase_add_test(tc, test_jwt_cognito_access_token_by_client_id);
	tcase_add_test(tc, test_jwt_client_id_only_config);
	tcase_add_test(tc, test_jwt_subject_rules);
	tcase_add_test(tc, test_jwt_numeric_claims_must_be_numbers);
	suite_add_tcase(s, tc);

	tc = tcase("refused");
	tcase_add_test(tc, test_jwt_alg_none_refused);
	tcase_add_test(tc, test_jwt_hs256_with_public_key_as_secret);
	tcase_add_test(tc, test_jwt_other_algs_refused);
	tcase_add_test(tc, test_jwt_alg_not_in_configured_list);
	tcase_add_test(tc, test_jwt_key_type_mismatch);
	tcase_add_test(tc, test_jwt_tampered_payload_or_signature);
	tcase_add_test(tc, test_jwt_signature_length);
	tcase_add_test(tc, test_jwt_malformed_base64);
	tcase_add_test(tc, test_jwt_wrong_number_of_parts);
	tcase_add_test(tc, test_jwt_header_and_payload_must_be_objects);
	tcase_add_test(tc, test_jwt_huge_token);
	tcase_add_test(tc, test_jwt_large_valid_token_under_limit);
	tcase_add_test(tc, test_jwt_crit_refused);
	tcase_add_test(tc, test_jwt_unknown_kid);
	tcase_add_test(tc, test_jwt_no_kid_needs_exactly_one_key);
	suite_add_tcase(s, tc);

	tc = tcase("keyset");
	tcase_add_test(tc, test_jwt_small_rsa_key_skipped);
	tcase_add_test(tc, test_jwt_unusable_keys_skipped);
	tcase_add_test(tc, test_jwt_no_usable_keys_fails_new);
	tcase_add_test(tc, test_jwt_invalid_config_refused);
	suite_add_tcase(s, tc);

	tc = tcase("refresh");
	tcase_add_test(tc, test_jwt_url_fetch_failure_fails_new);
	tcase_add_test(tc, test_jwt_url_document_size_limit);
	tcase_add_test(tc, test_jwt_unknown_kid_refetch_is_rate_limited);
	tcase_add_test(tc, test_jwt_clock_stepping_back_does_not_stop_refreshes);
	tcase_add_test(tc, test_jwt_rotation_by_url);
	tcase_add_test(tc, test_jwt_rotation_by_file);
	tcase_add_test(tc, test_jwt_rotation_by_document);
	tcase_add_test(tc, test_jwt_max_age_refresh_keeps_stale_keys_on_failure);
	tcase_add_test(tc, test_jwt_jku_x5u_jwk_never_fetched_or_used);
	tcase_add_test(tc, test_jwt_threads_verify_while_keys_refresh);
	suite_add_tcase(s, tc);

	tc = tcase("cache");
	tcase_add_test(tc, test_jwt_cache_keeps_expiry);
	tcase_add_test(tc, test_jwt_cache_forgets_tokens_of_rotated_keys);
	tcase_add_test(tc, test_jwt_cache_is_per_token_bytes);
	tcase_add_test(tc, test_jwt_cache_holds_the_tokens_in_use);
	tcase_add_test(tc, test_jwt_cache_smaller_than_the_tokens_in_use);
	tcase_add_test(tc, test_jwt_cache_off_and_default);
	tcase_add_test(tc, test_jwt_cache_entries_bounds);
	tcase_add_test(tc, test_jwt_cache_subject_length);
	tcase_add_test(tc, test_jwt_cache_set_keeps_recently_used);
	tcase_add_test(tc, test_jwt_token_digest_is_sha256);
	tcase_add_test(tc, test_jwt_cache_place_is_not_the_key);
	suite_add_tcase(s, tc);
	return s;
}
