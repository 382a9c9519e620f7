/*
 * The credential chain.  Static keys from the environment never change;
 * container credentials are fetched from the ECS endpoint and cached,
 * and refreshed under a lock by whichever thread first finds them due.
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/aws.h"
#include "aws/aws_buf.h"

#define ECS_HOST "http://169.254.170.2"
#define REFRESH_MARGIN_MS (10LL * 60 * 1000)

struct cart_aws_creds {
	pthread_mutex_t lock;           /* guards cur and fetched_at */
	cart_aws_credentials cur;
	int64_t fetched_at;
	bool container;
	char url[1024];
	char auth_token[1024];          /* "" if none */
	char auth_token_file[1024];
	const cart_clock *clock;
	const cart_aws_log *log;
	atomic_uint_fast64_t fetches;
	atomic_uint_fast64_t refresh_failures;
};

static int copy_env(char *dst, size_t cap, const char *v)
{
	if (!v || strlen(v) >= cap)
		return -1;
	strcpy(dst, v);
	return 0;
}

/* "2026-11-25T13:30:00Z" (fractions allowed) to ms; -1 if malformed. */
static int64_t parse_iso8601(const char *s)
{
	struct tm tm;
	char *rest;

	memset(&tm, 0, sizeof(tm));
	rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		return -1;
	return (int64_t)timegm(&tm) * 1000;
}


/* The token for FULL_URI: the variable, or re-read from its file. */
static int auth_header(cart_aws_creds *c, char *out, size_t cap)
{
	FILE *f;
	size_t n;
	char tok[1024];

	out[0] = '\0';
	if (c->auth_token[0]) {
		snprintf(out, cap, "Authorization: %s", c->auth_token);
		return 0;
	}
	if (!c->auth_token_file[0])
		return 0;
	f = fopen(c->auth_token_file, "r");
	if (!f)
		return -1;
	n = fread(tok, 1, sizeof(tok) - 1, f);
	fclose(f);
	tok[n] = '\0';
	tok[strcspn(tok, "\r\n")] = '\0';
	snprintf(out, cap, "Authorization: %s", tok);
	return 0;
}

static int parse_container_doc(const char *doc, cart_aws_credentials *out)
{
	cJSON *j = cJSON_Parse(doc);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "AccessKeyId");
	const cJSON *sec = cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "Token");
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "Expiration");
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (cJSON_IsString(id) && cJSON_IsString(sec) && cJSON_IsString(exp) &&
	    !copy_env(out->access_key_id, sizeof(out->access_key_id), id->valuestring) &&
	    !copy_env(out->secret_access_key, sizeof(out->secret_access_key), sec->valuestring) &&
	    (!tok || (cJSON_IsString(tok) &&
		      !copy_env(out->session_token, sizeof(out->session_token), tok->valuestring))) &&
	    (out->expires_at_ms = parse_iso8601(exp->valuestring)) > 0)
		rc = 0;
	cJSON_Delete(j);
	return rc;
}

/* Fetches container credentials into *out.  Caller holds no lock. */
static int fetch_container(cart_aws_creds *c, cart_aws_credentials *out,
			   char *err, size_t err_len)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char auth[1100];
	aws_membuf m = { NULL, 0, 64 * 1024 };
	long status = 0;
	CURLcode rc;

	if (!h || auth_header(c, auth, sizeof(auth))) {
		snprintf(err, err_len, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
		curl_easy_cleanup(h);
		return -1;
	}
	if (auth[0])
		hdrs = curl_slist_append(hdrs, auth);
	curl_easy_setopt(h, CURLOPT_URL, c->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, aws_membuf_collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	atomic_fetch_add(&c->fetches, 1);
	if (rc != CURLE_OK || status != 200 || !m.p || parse_container_doc(m.p, out)) {
		snprintf(err, err_len,
			 "container credentials from %s failed (curl %d, HTTP %ld)",
			 c->url, (int)rc, status);
		free(m.p);
		return -1;
	}
	free(m.p);
	return 0;
}

static bool refresh_due(const cart_aws_creds *c, int64_t now)
{
	int64_t life, margin;

	if (!c->container)
		return false;
	life = c->cur.expires_at_ms - c->fetched_at;
	margin = life / 2 < REFRESH_MARGIN_MS ? life / 2 : REFRESH_MARGIN_MS;
	return now >= c->cur.expires_at_ms - margin;
}

int cart_aws_creds_get(cart_aws_creds *c, cart_aws_credentials *out)
{
	int64_t now = cart_clock_now(c->clock);
	int rc = CART_OK;

	pthread_mutex_lock(&c->lock);
	if (refresh_due(c, now)) {
		cart_aws_credentials fresh;
		char err[256];
		if (fetch_container(c, &fresh, err, sizeof(err)) == 0) {
			c->cur = fresh;
			c->fetched_at = now;
			cart_aws_log_write(c->log, CART_AWS_LOG_DEBUG,
					   "aws credentials refreshed", NULL);
		} else {
			cart_aws_fields f;

			cart_aws_fields_init(&f);
			cart_aws_fields_str(&f, "detail", err, 0);
			atomic_fetch_add(&c->refresh_failures, 1);
			cart_aws_log_write(c->log, CART_AWS_LOG_ERROR,
					   "aws credentials refresh failed", &f);
			if (now >= c->cur.expires_at_ms)
				rc = CART_EBACKEND;   /* nothing valid left */
		}
	}
	if (rc == CART_OK)
		*out = c->cur;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cart_aws_creds_new(cart_aws_creds **out, cart_aws_getenv_fn env,
		       const cart_clock *clock, const cart_aws_log *log,
		       char *err, size_t err_len)
{
	cart_aws_creds *c = calloc(1, sizeof(*c));
	const char *akid = env("AWS_ACCESS_KEY_ID");
	const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");

	*out = NULL;
	if (!c) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->clock = clock;
	c->log = log;
	if (akid && *akid) {
		const char *tok = env("AWS_SESSION_TOKEN");
		if (copy_env(c->cur.access_key_id, sizeof(c->cur.access_key_id), akid) ||
		    copy_env(c->cur.secret_access_key, sizeof(c->cur.secret_access_key),
			     env("AWS_SECRET_ACCESS_KEY")) ||
		    (tok && copy_env(c->cur.session_token, sizeof(c->cur.session_token), tok))) {
			snprintf(err, err_len,
				 "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is missing or too long");
			cart_aws_creds_free(c);
			return -1;
		}
		*out = c;
		return 0;
	}
	if ((rel && *rel) || (full && *full)) {
		c->container = true;
		if (rel && *rel)
			snprintf(c->url, sizeof(c->url), "%s%s", ECS_HOST, rel);
		else
			snprintf(c->url, sizeof(c->url), "%s", full);
		if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
			snprintf(c->auth_token, sizeof(c->auth_token), "%s",
				 env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
		if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"))
			snprintf(c->auth_token_file, sizeof(c->auth_token_file), "%s",
				 env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
		if (fetch_container(c, &c->cur, err, err_len)) {
			cart_aws_creds_free(c);
			return -1;
		}
		c->fetched_at = cart_clock_now(clock);
		*out = c;
		return 0;
	}
	snprintf(err, err_len,
		 "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or run "
		 "with an ECS task role (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)");
	cart_aws_creds_free(c);
	return -1;
}

void cart_aws_creds_free(cart_aws_creds *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	memset(&c->cur, 0, sizeof(c->cur));   /* no secrets left in freed memory */
	free(c);
}

const char *cart_aws_creds_source(const cart_aws_creds *c)
{
	return c->container ? "container" : "environment";
}

uint64_t cart_aws_creds_fetches(const cart_aws_creds *c)
{
	return atomic_load(&((cart_aws_creds *)c)->fetches);
}

uint64_t cart_aws_creds_refresh_failures(const cart_aws_creds *c)
{
	return atomic_load(&((cart_aws_creds *)c)->refresh_failures);
}

int64_t cart_aws_creds_expires_at_ms(cart_aws_creds *c)
{
	int64_t at;

	pthread_mutex_lock(&c->lock);
	at = c->container ? c->cur.expires_at_ms : 0;
	pthread_mutex_unlock(&c->lock);
	return at;
}

/* --- endpoints ---------------------------------------------------------- */

void cart_aws_endpoint(char *out, size_t cap, cart_aws_getenv_fn env,
		       const char *explicit_var, const char *sdk_service_id,
		       const char *prefix, const char *region)
{
	char var[96];
	const char *v = explicit_var ? env(explicit_var) : NULL;

	if (!v || !*v) {
		snprintf(var, sizeof(var), "AWS_ENDPOINT_URL_%s", sdk_service_id);
		v = env(var);
	}
	if (!v || !*v)
		v = env("AWS_ENDPOINT_URL");
	if (v && *v)
		snprintf(out, cap, "%s", v);
	else
		snprintf(out, cap, "https://%s.%s.amazonaws.com", prefix, region);
}
