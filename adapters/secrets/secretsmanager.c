/*
 * AWS Secrets Manager's GetSecretValue (AWS JSON 1.1, target
 * secretsmanager.GetSecretValue) and what a value reference means:
 * "id" or "id#key", the key a member of a JSON object secret.
 */
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/secrets.h"

#define TARGET "secretsmanager.GetSecretValue"
#define ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+=.@-:"
#define KEY_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-."

void cart_secret_wipe_free(char *p, size_t len)
{
	if (!p)
		return;
	explicit_bzero(p, len);
	free(p);
}

int cart_secret_ref_parse(cart_secret_ref *out, const char *spec, char *err,
			  size_t err_len)
{
	const char *hash = strchr(spec, '#');
	size_t idn = hash ? (size_t)(hash - spec) : strlen(spec);

	memset(out, 0, sizeof(*out));
	if (idn == 0 || idn > CART_SECRET_ID_MAX || strspn(spec, ID_CHARS) != idn) {
		snprintf(err, err_len, "a secret id is 1..%d characters of A-Z a-z 0-9 "
			 "/_+=.@-: (a name or an ARN), optionally followed by #key",
			 CART_SECRET_ID_MAX);
		return -1;
	}
	if (hash && (!hash[1] || strlen(hash + 1) > CART_SECRET_KEY_MAX ||
		     strspn(hash + 1, KEY_CHARS) != strlen(hash + 1))) {
		snprintf(err, err_len, "the key after '#' is 1..%d characters of "
			 "A-Z a-z 0-9 _-.", CART_SECRET_KEY_MAX);
		return -1;
	}
	memcpy(out->id, spec, idn);
	if (hash)
		strcpy(out->key, hash + 1);
	return 0;
}

static char *dup_bytes(const char *p, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

int cart_secret_select(char **out, size_t *out_len, const char *secret,
		       size_t len, const char *key, char *err, size_t err_len)
{
	cJSON *j = cJSON_ParseWithLength(secret, len);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	int rc = -1;

	*out = NULL;
	if (!cJSON_IsObject(j))
		snprintf(err, err_len, "the secret is not a JSON object, so it has no key %s", key);
	else if (!v)
		snprintf(err, err_len, "the secret has no key %s", key);
	else if (!cJSON_IsString(v))
		snprintf(err, err_len, "the secret's %s is not a string", key);
	else if (!(*out = dup_bytes(v->valuestring, strlen(v->valuestring))))
		snprintf(err, err_len, "out of memory");
	else {
		*out_len = strlen(v->valuestring);
		rc = 0;
	}
	/* cJSON_Delete frees without wiping: clear the parsed strings first. */
	for (cJSON *c = j ? j->child : NULL; c; c = c->next)
		if (cJSON_IsString(c))
			explicit_bzero(c->valuestring, strlen(c->valuestring));
	cJSON_Delete(j);
	return rc;
}

/* SecretBinary: standard base64, as the JSON protocol carries blobs. */
static int decode_b64(char **out, size_t *out_len, const char *b64)
{
	size_t in = strlen(b64), pad;
	int n;

	*out = NULL;
	if (in % 4 || in / 4 * 3 > CART_SECRET_MAX_BYTES + 2)
		return -1;
	*out = malloc(in / 4 * 3 + 1);
	if (!*out)
		return -1;
	n = in ? EVP_DecodeBlock((unsigned char *)*out, (const unsigned char *)b64, (int)in) : 0;
	if (n < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	pad = in ? (b64[in - 1] == '=') + (b64[in - 2] == '=') : 0;
	*out_len = (size_t)n - pad;
	(*out)[*out_len] = '\0';
	return 0;
}

/* The value of a 200 answer: SecretString or SecretBinary, and VersionId. */
static int parse_value(char **out, size_t *out_len, char version[65],
		       const cart_aws_response *r, char *err, size_t err_len)
{
	cJSON *j = r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "SecretString");
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "SecretBinary");
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "VersionId");
	int rc = -1;

	*out = NULL;
	snprintf(version, 65, "%s", cJSON_IsString(ver) ? ver->valuestring : "");
	if (cJSON_IsString(s)) {
		*out_len = strlen(s->valuestring);
		*out = dup_bytes(s->valuestring, *out_len);
		rc = *out ? 0 : -1;
	} else if (cJSON_IsString(b)) {
		rc = decode_b64(out, out_len, b->valuestring);
	}
	if (rc)
		snprintf(err, err_len, "GetSecretValue answered without a usable "
			 "SecretString or SecretBinary");
	if (s && cJSON_IsString(s))
		explicit_bzero(s->valuestring, strlen(s->valuestring));
	if (b && cJSON_IsString(b))
		explicit_bzero(b->valuestring, strlen(b->valuestring));
	cJSON_Delete(j);
	return rc;
}

static int call(cart_aws_client *client, const char *id, cart_aws_response *r)
{
	cJSON *req = cJSON_CreateObject();
	char *body;
	int rc;

	if (!req || !cJSON_AddStringToObject(req, "SecretId", id) ||
	    !(body = cJSON_PrintUnformatted(req))) {
		cJSON_Delete(req);
		memset(r, 0, sizeof(*r));
		return CART_ENOMEM;
	}
	cJSON_Delete(req);
	rc = cart_aws_call(client, TARGET, body, strlen(body), r);
	cJSON_free(body);
	return rc;
}

int cart_secretsmanager_get(char **out, size_t *out_len, char version[65],
			    cart_aws_client *client, const cart_secret_ref *ref,
			    char *err, size_t err_len)
{
	cart_aws_response r;
	char *raw = NULL;
	size_t raw_len = 0;
	int rc = call(client, ref->id, &r);

	*out = NULL;
	version[0] = '\0';
	if (rc == CART_OK && r.status != 200) {
		snprintf(err, err_len, "GetSecretValue %s: HTTP %ld %s: %s", ref->id,
			 r.status, r.error_type[0] ? r.error_type : "error", r.message);
		rc = strcmp(r.error_type, "ResourceNotFoundException") ? CART_EBACKEND
								       : CART_ENOTFOUND;
	} else if (rc != CART_OK) {
		snprintf(err, err_len, "GetSecretValue %s: %s%s%s", ref->id,
			 rc == CART_EUNAVAILABLE ? "circuit breaker open" : "no answer",
			 r.message[0] ? ": " : "", r.message);
		rc = CART_EBACKEND;
	} else if (parse_value(&raw, &raw_len, version, &r, err, err_len)) {
		rc = CART_EBACKEND;
	} else if (raw_len > CART_SECRET_MAX_BYTES) {
		snprintf(err, err_len, "GetSecretValue %s: the value is larger than %d bytes",
			 ref->id, CART_SECRET_MAX_BYTES);
		rc = CART_EBACKEND;
	} else if (ref->key[0]) {
		char why[160];

		if (cart_secret_select(out, out_len, raw, raw_len, ref->key, why, sizeof(why))) {
			snprintf(err, err_len, "secret %s: %s", ref->id, why);
			rc = CART_EINVALID;   /* the reference is wrong, not the service */
		}
	} else {
		*out = raw;
		*out_len = raw_len;
		raw = NULL;
	}
	cart_secret_wipe_free(raw, raw_len);
	if (r.body)
		explicit_bzero(r.body, r.body_len);
	cart_aws_response_release(&r);
	return rc;
}
