/* Request preconditions: media type, If-Match, Idempotency-Key, fingerprint. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "preconditions.h"

static bool is_json_type(const char *ct)
{
	size_t n;

	while (*ct == ' ')
		ct++;
	n = strcspn(ct, "; \t");
	if (n == 16 && !strncasecmp(ct, "application/json", 16))
		return true;
	/* application/<something>+json, e.g. application/merge-patch+json */
	return n > 17 && !strncasecmp(ct, "application/", 12) &&
	       !strncasecmp(ct + n - 5, "+json", 5);
}

bool pre_body_ok(app_request *r)
{
	const char *ct = app_header(r, "Content-Type");

	if ((r->body_len || ct) && (!ct || !is_json_type(ct))) {
		app_fail(r, 415, "cart.unsupported_media_type",
			 "request body must be application/json");
		return false;
	}
	if (!r->body_len) {
		app_fail(r, 400, "cart.invalid_json", "request body is required");
		return false;
	}
	return true;
}

bool pre_parse_if_match(const char *v, int64_t *out)
{
	bool weak = false, quoted = false;
	char *end;
	long long n;

	*out = -1;
	if (!v)
		return true;
	while (*v == ' ')
		v++;
	if (!strcmp(v, "*"))
		return true;
	if (!strncmp(v, "W/", 2)) {
		weak = true;
		v += 2;
	}
	if (*v == '"') {
		quoted = true;
		v++;
	}
	if ((weak && !quoted) || *v < '0' || *v > '9')
		return false;   /* a weak tag is always quoted */
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || n < 0 || (quoted && *end++ != '"'))
		return false;
	while (*end == ' ')
		end++;
	if (*end)
		return false;
	*out = n;
	return true;
}

bool pre_idem_key_valid(const char *k)
{
	size_t n = 0;

	for (; k[n]; n++)
		if ((unsigned char)k[n] < 0x21 || (unsigned char)k[n] > 0x7e)
			return false;
	return n >= 1 && n <= CART_IDEM_KEY_MAX;
}

bool pre_fingerprint(const app_request *r, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	const char *method = r->http->method ? r->http->method : "";
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
		  EVP_DigestUpdate(ctx, method, strlen(method) + 1) &&
		  EVP_DigestUpdate(ctx, r->path, strlen(r->path) + 1) &&
		  EVP_DigestUpdate(ctx, r->body ? r->body : "", r->body_len) &&
		  EVP_DigestFinal_ex(ctx, md, &mdlen);

	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; ok && i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	if (ok)
		out[64] = '\0';
	return ok;
}
