/*
 * libFuzzer target for the JWT verifier: whatever the bytes, verification
 * must not crash, leak or read out of bounds, and must return a named
 * status.  The same bytes also go to the claim checks (as a JSON payload)
 * and to the JWKS parser, since a signature the fuzzer cannot forge would
 * otherwise keep both out of reach.  The keys are RFC 7515's A.2 (RSA)
 * and A.3 (P-256), and the clock stands before the vectors' exp, so the
 * seeds' RFC tokens pass the signature and reach the claims.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwt/jwt.h"
#include "jwt/jwt_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char jwks[] =
	"{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\","
	"\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx"
	"HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"
	"D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH"
	"SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV"
	"MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8"
	"NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\","
	"\"e\":\"AQAB\"},"
	"{\"kty\":\"EC\",\"crv\":\"P-256\","
	"\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	"\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

#define FUZZ_NOW_MS 1300819000000LL   /* before the RFC vectors' exp */

static int64_t fixed_now(void *self)
{
	(void)self;
	return FUZZ_NOW_MS;
}

static void no_sleep(void *self, int64_t ms)
{
	(void)self;
	(void)ms;
}

static const cart_clock_ops fixed_ops = { .now_ms = fixed_now, .sleep_ms = no_sleep };
static const cart_clock fixed_clock = { .ops = &fixed_ops, .self = NULL };

static cart_jwt_verifier *verifier(void)
{
	static cart_jwt_verifier *v;
	cart_jwt_config c = {
		.algorithms = "RS256,ES256",
		.min_refresh_seconds = 60,
		.max_age_seconds = 0,
		.fetch_timeout_ms = 1000,
		.leeway_seconds = 30,
		.issuer = "joe",
		.audience = "cart-api",
		.client_id = "client-123",
	};
	char err[256];

	if (!v && jwt_verifier_new_static(&v, &c, &fixed_clock, jwks, strlen(jwks),
					  err, sizeof(err)) != 0)
		abort();
	return v;
}

static void check_principal(int st, const cart_jwt_principal *p)
{
	size_t n = strnlen(p->sub, sizeof(p->sub));

	if (!strcmp(cart_jwt_status_name(st), "unknown") || n == sizeof(p->sub))
		abort();
	if (st != CART_JWT_OK) {
		if (n || p->admin || p->exp_ms)
			abort();
		return;
	}
	if (n == 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p->sub[i] < 0x20 || p->sub[i] == 0x7f)
			abort();
}

static void fuzz_claims(const char *text, size_t size)
{
	jwt_claim_rules r = {
		.leeway_ms = 30000, .issuer = "joe", .audience = "cart-api",
		.client_id = "client-123", .admin_scope = "cart:admin",
	};
	cart_jwt_principal p;
	cJSON *j = cJSON_ParseWithLength(text, size);

	if (cJSON_IsObject(j)) {
		memset(&p, 0, sizeof(p));
		int st = jwt_check_claims(j, &r, FUZZ_NOW_MS, &p);
		if (st == CART_JWT_OK)
			check_principal(st, &p);
	}
	cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exact-size copy, so ASan sees any read past the end. */
	char *text = malloc(size ? size : 1);
	cart_jwt_principal p;
	jwt_keyset *ks = NULL;
	char err[256];
	int st;

	if (!text)
		return 0;
	memcpy(text, data, size);
	st = cart_jwt_verify(verifier(), text, size, &p);
	check_principal(st, &p);
	fuzz_claims(text, size);
	if (jwt_keyset_parse(&ks, text, size, JWT_ALG_ALL, err, sizeof(err)) == 0) {
		if (ks->n < 1 || ks->n > CART_JWT_MAX_KEYS)
			abort();
	} else if (!err[0]) {
		abort();
	}
	jwt_keyset_unref(ks);
	free(text);
	return 0;
}
