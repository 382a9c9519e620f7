/*
 * The JWT claims of a payload whose signature already checked out: times,
 * issuer, audience (or the Cognito access-token client_id), subject, and
 * whether the caller is an admin.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "jwt/jwt_internal.h"

/* Later than any real token (year 5138), early enough for int64 ms. */
#define DATE_MAX_SECONDS 1e11

/* 0 absent, 1 present (ms in *ms), -1 not a usable NumericDate. */
static int numeric_date(const cJSON *payload, const char *name, int64_t *ms)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(payload, name);

	if (!c)
		return 0;
	if (!cJSON_IsNumber(c) || !isfinite(c->valuedouble) ||
	    c->valuedouble < 0 || c->valuedouble > DATE_MAX_SECONDS)
		return -1;
	*ms = (int64_t)floor(c->valuedouble * 1000.0);
	return 1;
}

static int check_times(const cJSON *payload, const jwt_claim_rules *r,
		       int64_t now, int64_t *exp_ms)
{
	int64_t nbf, iat;
	int has_nbf, has_iat;

	if (numeric_date(payload, "exp", exp_ms) != 1)
		return CART_JWT_MALFORMED;   /* exp is required */
	has_nbf = numeric_date(payload, "nbf", &nbf);
	has_iat = numeric_date(payload, "iat", &iat);
	if (has_nbf < 0 || has_iat < 0)
		return CART_JWT_MALFORMED;
	if (now >= *exp_ms + r->leeway_ms)
		return CART_JWT_EXPIRED;
	if ((has_nbf && nbf > now + r->leeway_ms) ||
	    (has_iat && iat > now + r->leeway_ms))
		return CART_JWT_NOT_YET_VALID;
	return CART_JWT_OK;
}

static bool is_string(const cJSON *c, const char *want)
{
	return cJSON_IsString(c) && !strcmp(c->valuestring, want);
}

/* 1 if aud (a string or an array of strings) names want, 0 if not, -1 if
 * aud has another shape. */
static int aud_names(const cJSON *aud, const char *want)
{
	const cJSON *a;
	int found = 0;

	if (cJSON_IsString(aud))
		return want && !strcmp(aud->valuestring, want);
	if (!cJSON_IsArray(aud))
		return -1;
	cJSON_ArrayForEach(a, aud) {
		if (!cJSON_IsString(a))
			return -1;
		if (want && !strcmp(a->valuestring, want))
			found = 1;
	}
	return found;
}

static int check_audience(const cJSON *payload, const jwt_claim_rules *r)
{
	const cJSON *aud = cJSON_GetObjectItemCaseSensitive(payload, "aud");
	const cJSON *cid = cJSON_GetObjectItemCaseSensitive(payload, "client_id");
	const cJSON *use = cJSON_GetObjectItemCaseSensitive(payload, "token_use");

	if (aud) {
		int m = aud_names(aud, r->audience);

		if (m < 0)
			return CART_JWT_MALFORMED;
		return m ? CART_JWT_OK : CART_JWT_BAD_AUDIENCE;
	}
	/* Amazon Cognito access tokens name their app client this way. */
	if (r->client_id && is_string(cid, r->client_id) &&
	    (!use || is_string(use, "access")))
		return CART_JWT_OK;
	return CART_JWT_BAD_AUDIENCE;
}

static int copy_subject(const cJSON *payload, char *out, size_t cap)
{
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(payload, "sub");
	size_t n;

	if (!cJSON_IsString(sub))
		return CART_JWT_NO_SUBJECT;
	n = strlen(sub->valuestring);
	if (n == 0 || n >= cap)
		return CART_JWT_NO_SUBJECT;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)sub->valuestring[i];

		if (c < 0x20 || c == 0x7f)
			return CART_JWT_NO_SUBJECT;
	}
	memcpy(out, sub->valuestring, n + 1);
	return CART_JWT_OK;
}

/* want is one space-separated word of scope (RFC 8693 4.2). */
static bool scope_has(const char *scope, const char *want)
{
	size_t wl = strlen(want);

	for (const char *p = scope; *p;) {
		size_t n = strcspn(p, " ");

		if (n == wl && !memcmp(p, want, n))
			return true;
		p += n;
		p += strspn(p, " ");
	}
	return false;
}

static bool is_admin(const cJSON *payload, const char *admin_scope)
{
	const cJSON *scope = cJSON_GetObjectItemCaseSensitive(payload, "scope");
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(payload, "cognito:groups");
	const cJSON *g;

	if (cJSON_IsString(scope) && scope_has(scope->valuestring, admin_scope))
		return true;
	if (!cJSON_IsArray(groups))
		return false;
	cJSON_ArrayForEach(g, groups)
		if (is_string(g, admin_scope))
			return true;
	return false;
}

int jwt_check_claims(const cJSON *payload, const jwt_claim_rules *r,
		     int64_t now_ms, cart_jwt_principal *out)
{
	const cJSON *iss = cJSON_GetObjectItemCaseSensitive(payload, "iss");
	int64_t exp_ms = 0;
	int rc;

	rc = check_times(payload, r, now_ms, &exp_ms);
	if (rc != CART_JWT_OK)
		return rc;
	if (!is_string(iss, r->issuer))
		return CART_JWT_BAD_ISSUER;
	rc = check_audience(payload, r);
	if (rc != CART_JWT_OK)
		return rc;
	rc = copy_subject(payload, out->sub, sizeof(out->sub));
	if (rc != CART_JWT_OK)
		return rc;
	out->admin = is_admin(payload, r->admin_scope);
	out->exp_ms = exp_ms;
	return CART_JWT_OK;
}
