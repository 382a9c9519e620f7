/* AWS AppConfig data plane: sessions and polls (see appconfig.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appconfig/appconfig.h"

struct cart_appconfig {
	char application[129];
	char environment[129];
	char profile[129];
	int min_poll_seconds;
	size_t max_bytes;
	cart_aws_client *client;
	const cart_aws_log *log;
	char *token;                 /* the next poll's token; NULL: no session */
	uint64_t sessions;
};

static int copy_id(char *dst, size_t cap, const char *src)
{
	if (!src || !*src || strlen(src) >= cap)
		return -1;
	strcpy(dst, src);
	return 0;
}

int cart_appconfig_new(cart_appconfig **out, const cart_appconfig_config *cfg,
		       cart_aws_client *client, const cart_aws_log *log)
{
	cart_appconfig *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return CART_ENOMEM;
	if (!client || !cfg->max_bytes ||
	    copy_id(a->application, sizeof(a->application), cfg->application) ||
	    copy_id(a->environment, sizeof(a->environment), cfg->environment) ||
	    copy_id(a->profile, sizeof(a->profile), cfg->profile)) {
		free(a);
		return CART_EINVALID;
	}
	a->min_poll_seconds = cfg->min_poll_seconds < CART_APPCONFIG_MIN_POLL_SECONDS ?
			      CART_APPCONFIG_MIN_POLL_SECONDS :
			      cfg->min_poll_seconds > CART_APPCONFIG_MAX_POLL_SECONDS ?
			      CART_APPCONFIG_MAX_POLL_SECONDS : cfg->min_poll_seconds;
	a->max_bytes = cfg->max_bytes;
	a->client = client;
	a->log = log;
	*out = a;
	return CART_OK;
}

void cart_appconfig_free(cart_appconfig *a)
{
	if (!a)
		return;
	free(a->token);
	free(a);
}

uint64_t cart_appconfig_sessions(const cart_appconfig *a)
{
	return a->sessions;
}

static void drop_session(cart_appconfig *a)
{
	free(a->token);
	a->token = NULL;
}

/* A failed call as a cart error and one line. */
static int failed(const char *op, int rc, const cart_aws_response *res,
		  char *why, size_t why_len)
{
	if (rc != CART_OK)
		snprintf(why, why_len, "%s: %s%s%.120s", op,
			 res->deadline_cut ? "deadline" :
			 rc == CART_EUNAVAILABLE ? "circuit open" : "no answer",
			 res->message[0] ? ": " : "", res->message);
	else
		snprintf(why, why_len, "%s: HTTP %ld %s%s%.120s", op, res->status,
			 res->error_type, res->message[0] ? ": " : "", res->message);
	return rc == CART_OK ? CART_EBACKEND : rc;
}

static int start_session(cart_appconfig *a, int64_t deadline_ms, char *why,
			 size_t why_len)
{
	char body[1024], app[300], env[300], prof[300];
	cart_aws_rest_request rq = { "POST", "/configurationsessions",
				     "StartConfigurationSession", body, 0, deadline_ms };
	cart_aws_response res;
	cJSON *doc;
	const cJSON *tok;
	int rc, n;

	cart_aws_json_str(app, sizeof(app), a->application, 0);
	cart_aws_json_str(env, sizeof(env), a->environment, 0);
	cart_aws_json_str(prof, sizeof(prof), a->profile, 0);
	n = snprintf(body, sizeof(body),
		     "{\"ApplicationIdentifier\":%s,\"EnvironmentIdentifier\":%s,"
		     "\"ConfigurationProfileIdentifier\":%s,"
		     "\"RequiredMinimumPollIntervalInSeconds\":%d}",
		     app, env, prof, a->min_poll_seconds);
	rq.body_len = (size_t)n;
	rc = cart_aws_call_rest(a->client, &rq, &res);
	if (rc != CART_OK || (res.status != 201 && res.status != 200)) {
		rc = failed("StartConfigurationSession", rc, &res, why, why_len);
		cart_aws_response_release(&res);
		return rc;
	}
	doc = cJSON_ParseWithLength(res.body ? res.body : "", res.body_len);
	tok = cJSON_GetObjectItemCaseSensitive(doc, "InitialConfigurationToken");
	if (!cJSON_IsString(tok) || !*tok->valuestring ||
	    strlen(tok->valuestring) >= CART_APPCONFIG_TOKEN_MAX) {
		snprintf(why, why_len, "StartConfigurationSession: no usable "
			 "InitialConfigurationToken in the answer");
		rc = CART_EBACKEND;
	} else if (!(a->token = strdup(tok->valuestring))) {
		rc = CART_ENOMEM;
	} else {
		a->sessions++;
	}
	cJSON_Delete(doc);
	cart_aws_response_release(&res);
	return rc;
}

/* RFC 3986 unreserved characters kept, the rest %XX (SigV4's form). */
static char *token_path(const char *token)
{
	static const char prefix[] = "/configuration?configuration_token=";
	static const char hex[] = "0123456789ABCDEF";
	char *p = malloc(sizeof(prefix) + 3 * strlen(token)), *w;

	if (!p)
		return NULL;
	w = p + sprintf(p, "%s", prefix);
	for (const unsigned char *t = (const unsigned char *)token; *t; t++) {
		if ((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') ||
		    (*t >= '0' && *t <= '9') || strchr("-._~", *t)) {
			*w++ = (char)*t;
		} else {
			*w++ = '%';
			*w++ = hex[*t >> 4];
			*w++ = hex[*t & 15];
		}
	}
	*w = '\0';
	return p;
}

/* The answer of a poll: the next token, the interval, the configuration. */
static int take_answer(cart_appconfig *a, cart_aws_response *res,
		       cart_appconfig_result *out, char *why, size_t why_len)
{
	char *next = malloc(CART_APPCONFIG_TOKEN_MAX), num[16];

	if (!next)
		return CART_ENOMEM;
	if (cart_aws_response_header(res, "Next-Poll-Configuration-Token", next,
				     CART_APPCONFIG_TOKEN_MAX) <= 0) {
		free(next);
		snprintf(why, why_len, "GetLatestConfiguration: no "
			 "Next-Poll-Configuration-Token in the answer");
		return CART_EBACKEND;
	}
	if (res->body_len > a->max_bytes) {
		free(next);
		snprintf(why, why_len, "GetLatestConfiguration: configuration of %zu "
			 "bytes, over the %zu bound", res->body_len, a->max_bytes);
		return CART_EBACKEND;
	}
	free(a->token);
	a->token = next;
	if (cart_aws_response_header(res, "Next-Poll-Interval-In-Seconds", num,
				     sizeof(num)) > 0)
		out->next_poll_seconds = atoi(num);
	if (out->next_poll_seconds < 0)
		out->next_poll_seconds = 0;
	cart_aws_response_header(res, "Version-Label", out->version_label,
				 sizeof(out->version_label));
	if (!res->body_len)
		return CART_OK;   /* no change since this session's last poll */
	out->changed = true;
	out->data = res->body;   /* NUL-terminated by the client */
	out->len = res->body_len;
	res->body = NULL;
	return CART_OK;
}

int cart_appconfig_poll(cart_appconfig *a, int64_t deadline_ms,
			cart_appconfig_result *out, char *why, size_t why_len)
{
	cart_aws_rest_request rq = { "GET", NULL, "GetLatestConfiguration", NULL, 0,
				     deadline_ms };
	cart_aws_response res;
	char *path;
	int rc;

	memset(out, 0, sizeof(*out));
	*why = '\0';
	if (!a->token) {
		if ((rc = start_session(a, deadline_ms, why, why_len)))
			return rc;
		out->new_session = true;
	}
	if (!(path = token_path(a->token)))
		return CART_ENOMEM;
	rq.path = path;
	rc = cart_aws_call_rest(a->client, &rq, &res);
	free(path);
	if (rc != CART_OK || res.status != 200)
		rc = failed("GetLatestConfiguration", rc, &res, why, why_len);
	else
		rc = take_answer(a, &res, out, why, why_len);
	cart_aws_response_release(&res);
	if (rc != CART_OK)
		drop_session(a);   /* the token's state is unknown: start again */
	return rc;
}
