/* Bearer-token authentication stages (see auth.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "flags.h"
#include "jwt/jwt.h"
#include "log.h"

struct app_auth {
	cart_jwt_verifier *verifier;
};

int app_auth_new(app_auth **out, const app_config *cfg, const cart_clock *clock,
		 const char *jwks_doc, size_t jwks_len, char *err, size_t err_len)
{
	cart_jwt_config jc = {
		.algorithms = cfg->jwt_algorithms,
		.jwks_file = cfg->jwt_jwks_file[0] ? cfg->jwt_jwks_file : NULL,
		.jwks_url = cfg->jwt_jwks_url[0] ? cfg->jwt_jwks_url : NULL,
		.jwks_doc = jwks_doc,
		.jwks_doc_len = jwks_len,
		.min_refresh_seconds = cfg->jwt_jwks_min_refresh_seconds,
		.max_age_seconds = cfg->jwt_jwks_max_age_seconds,
		.fetch_timeout_ms = cfg->jwt_jwks_timeout_ms,
		.leeway_seconds = cfg->jwt_leeway_seconds,
		.issuer = cfg->jwt_issuer,
		.audience = cfg->jwt_audience[0] ? cfg->jwt_audience : NULL,
		.client_id = cfg->jwt_client_id[0] ? cfg->jwt_client_id : NULL,
		.admin_scope = cfg->jwt_admin_scope,
		.cache_entries = cfg->jwt_cache_entries ? cfg->jwt_cache_entries
			       : CART_JWT_CACHE_OFF,
	};
	app_auth *a = calloc(1, sizeof(*a));
	char why[256] = "";

	*out = NULL;
	if (!a) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	if (cart_jwt_verifier_new(&a->verifier, &jc, clock, why, sizeof(why))) {
		/* The adapter does not know our variable names; say which. */
		snprintf(err, err_len, "authentication settings (%s, JWT_ISSUER, "
			 "JWT_ALGORITHMS, JWT_JWKS_*): %s",
			 jc.jwks_url ? "JWT_JWKS_URL" : jc.jwks_file ? "JWT_JWKS_FILE" :
			 cfg->set_jwt_jwks ? "JWT_JWKS" : "JWT_JWKS_SECRET_ID", why);
		free(a);
		return -1;
	}
	*out = a;
	return 0;
}

void app_auth_free(app_auth *a)
{
	if (!a)
		return;
	cart_jwt_verifier_free(a->verifier);
	free(a);
}

int app_stage_authenticate(app_request *r, void *self)
{
	app_auth *a = self;
	const char *h = app_header(r, "Authorization");
	cart_jwt_principal p;
	size_t len;
	int st;

	if (!app_route_is_cart(r->route))
		return APP_NEXT;
	if (!h || strncasecmp(h, "Bearer ", 7)) {
		r->auth_failure = "missing";
		return APP_NEXT;
	}
	h += 7;
	while (*h == ' ')
		h++;
	len = strlen(h);
	st = cart_jwt_verify(a->verifier, h, len, &p);
	if (st != CART_JWT_OK) {
		r->auth_failure = cart_jwt_status_name(st);
		return APP_NEXT;
	}
	fmt_copy(r->sub, sizeof(r->sub), p.sub, (size_t)-1);
	r->principal = (cart_principal){ r->sub, p.admin };
	r->call.principal = &r->principal;
	r->authenticated = true;
	return APP_NEXT;
}

int app_stage_require_auth(app_request *r, void *self)
{
	char challenge[160];

	(void)self;
	if (!app_route_is_cart(r->route) || r->authenticated)
		return APP_NEXT;
	if (!r->auth_failure)
		r->auth_failure = "missing";
	/* Log-only rollout (auth_enforce off): the request goes on without a
	 * principal, as with AUTH_ENABLED=false; the access line (at warn)
	 * and cart_auth_failures_total say what would have been refused. */
	if (!app_flags_on(app_flags_get(r->app->flags), APP_FLAG_AUTH_ENFORCE)) {
		r->auth_log_only = true;
		return APP_NEXT;
	}
	if (!strcmp(r->auth_failure, "missing")) {
		r->auth_failure = "missing";
		http_response_header(r->res, "WWW-Authenticate", "Bearer realm=\"cart-service\"");
		return app_fail(r, 401, "cart.unauthorized",
				"this resource needs an Authorization: Bearer token");
	}
	/* The reason is a fixed snake_case name, safe inside the quotes. */
	snprintf(challenge, sizeof(challenge),
		 "Bearer realm=\"cart-service\", error=\"invalid_token\", "
		 "error_description=\"%s\"", r->auth_failure);
	http_response_header(r->res, "WWW-Authenticate", challenge);
	return app_fail(r, 401, "cart.invalid_token",
			"the bearer token is not valid (see WWW-Authenticate)");
}

void app_auth_stats(void *self, buf *out)
{
	app_auth *a = self;
	cart_jwt_stats st;

	cart_jwt_verifier_stats(a->verifier, &st);
	buf_printf(out, ",\"jwks_keys\":%d,\"jwks_refreshes\":%llu,"
		   "\"jwks_refresh_failures\":%llu,\"token_cache_hits\":%llu,"
		   "\"token_cache_misses\":%llu,\"token_cache_evictions\":%llu", st.keys,
		   (unsigned long long)st.refreshes,
		   (unsigned long long)st.refresh_failures,
		   (unsigned long long)st.cache_hits, (unsigned long long)st.cache_misses,
		   (unsigned long long)st.cache_evictions);
	if (st.last_error[0]) {
		buf_puts(out, ",\"jwks_last_error\":");
		buf_json_str(out, st.last_error);
	}
}

void app_auth_metrics(app_auth *a, buf *out)
{
	cart_jwt_stats st;

	if (!a)
		return;
	cart_jwt_verifier_stats(a->verifier, &st);
	buf_printf(out,
		   "# HELP cart_auth_token_cache_lookups_total Bearer tokens looked up in the "
		   "verified-token cache: a hit skips the signature check.\n"
		   "# TYPE cart_auth_token_cache_lookups_total counter\n"
		   "cart_auth_token_cache_lookups_total{result=\"hit\"} %llu\n"
		   "cart_auth_token_cache_lookups_total{result=\"miss\"} %llu\n"
		   "# HELP cart_auth_token_cache_evictions_total Verified tokens still valid that "
		   "the cache dropped for others: raise JWT_CACHE_ENTRIES if this keeps growing.\n"
		   "# TYPE cart_auth_token_cache_evictions_total counter\n"
		   "cart_auth_token_cache_evictions_total %llu\n"
		   "# HELP cart_auth_token_cache_capacity Tokens the verified-token cache holds "
		   "(JWT_CACHE_ENTRIES, rounded up to a multiple of 8).\n"
		   "# TYPE cart_auth_token_cache_capacity gauge\n"
		   "cart_auth_token_cache_capacity %llu\n",
		   (unsigned long long)st.cache_hits, (unsigned long long)st.cache_misses,
		   (unsigned long long)st.cache_evictions,
		   (unsigned long long)st.cache_capacity);
}

int app_auth_set_jwks(app_auth *a, const char *doc, size_t len)
{
	char why[160];

	if (!cart_jwt_verifier_set_jwks(a->verifier, doc, len, why, sizeof(why)))
		return 0;
	log_write(LOG_WARN, "new JWKS refused: keeping the old keys", NULL);
	return -1;
}
