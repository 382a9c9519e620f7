/*
 * Signed AWS JSON calls.  One call = up to max_attempts attempts, each
 * gated by the circuit breaker and spaced by the retry policy's backoff.
 * Connections are pooled: a curl easy handle (which keeps its connection
 * alive) with its SigV4 signer (aws_sigv4.c, which keeps its derived
 * key), used by one thread at a time.
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aws/aws.h"
#include "aws/aws_buf.h"
#include "aws/aws_sigv4.h"

#define POOL_MAX 64
#define MAX_RESPONSE (8 * 1024 * 1024)

struct cart_aws_client {
	char service[32];
	char region[32];
	char url[512];
	char content_type[64];
	char host[256];              /* the endpoint's host[:port], as signed and sent */
	size_t path_at;              /* where url's path starts */
	long connect_timeout_ms;
	long timeout_ms;
	cart_aws_creds *creds;
	const cart_clock *clock;
	const cart_aws_log *log;
	cart_retry *retry;
	cart_breaker *breaker;
	char resource[256];
	const cart_aws_observer *observer;
	pthread_mutex_t pool_lock;   /* guards pool and n_pool */
	struct aws_conn *pool[POOL_MAX];
	int n_pool;
};

/* One pooled connection: its handle and its signer. */
typedef struct aws_conn {
	CURL *h;
	cart_aws_signer *signer;
} aws_conn;

void cart_aws_client_config_init(cart_aws_client_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->content_type = "application/x-amz-json-1.0";
	cfg->connect_timeout_ms = 1000;
	cfg->timeout_ms = 3000;
	cart_retry_config_init(&cfg->retry);
	cart_breaker_config_init(&cfg->breaker);
}

void cart_aws_response_release(cart_aws_response *r)
{
	if (!r)
		return;
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

long cart_aws_response_header(const cart_aws_response *r, const char *name,
			      char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = r->headers, *end = p ? p + r->headers_len : NULL;

	for (; p && p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);

		if (ll > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
			const char *v = p + nl + 1;
			size_t vl = ll - nl - 1;
			while (vl && (*v == ' ' || *v == '\t'))
				v++, vl--;
			while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
				vl--;
			if (vl >= cap)
				return -1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return (long)vl;
		}
		p = eol ? eol + 1 : end;
	}
	return -1;
}

static int set_str(char *dst, size_t cap, const char *src)
{
	if (!src || strlen(src) >= cap)
		return -1;
	strcpy(dst, src);
	return 0;
}

/* "https://host:port/x/" -> "host:port": what curl sends as Host. */
static int set_host(char *dst, size_t cap, const char *url)
{
	const char *p = strstr(url, "://"), *end;
	size_t n;

	if (!p)
		return -1;
	p += 3;
	end = p + strcspn(p, "/?#");
	n = (size_t)(end - p);
	if (!n || n >= cap || memchr(p, '@', n))
		return -1;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

int cart_aws_client_new(cart_aws_client **out, const cart_aws_client_config *cfg,
			cart_aws_creds *creds, const cart_clock *clock,
			const cart_ids *ids, const cart_aws_log *log)
{
	cart_aws_client *c = calloc(1, sizeof(*c));
	size_t ul;

	*out = NULL;
	if (!c)
		return CART_ENOMEM;
	pthread_mutex_init(&c->pool_lock, NULL);
	if (set_str(c->service, sizeof(c->service), cfg->service) ||
	    set_str(c->region, sizeof(c->region), cfg->region) ||
	    set_str(c->content_type, sizeof(c->content_type), cfg->content_type) ||
	    set_str(c->url, sizeof(c->url) - 1, cfg->endpoint) ||
	    set_host(c->host, sizeof(c->host), c->url) || !creds) {
		cart_aws_client_free(c);
		return CART_EINVALID;
	}
	ul = strlen(c->url);
	if (!ul || c->url[ul - 1] != '/')
		strcat(c->url, "/");
	c->path_at = (size_t)(strstr(c->url, "://") + 3 + strlen(c->host) - c->url);
	if (c->url[c->path_at] != '/') {   /* a query or fragment in the endpoint */
		cart_aws_client_free(c);
		return CART_EINVALID;
	}
	snprintf(c->resource, sizeof(c->resource), "%s", cfg->resource ? cfg->resource : "");
	c->observer = cfg->observer;
	c->connect_timeout_ms = cfg->connect_timeout_ms;
	c->timeout_ms = cfg->timeout_ms;
	c->creds = creds;
	c->clock = clock;
	c->log = log;
	if (cart_retry_new(&c->retry, &cfg->retry, ids) ||
	    cart_breaker_new(&c->breaker, &cfg->breaker, clock)) {
		cart_aws_client_free(c);
		return CART_EINVALID;
	}
	*out = c;
	return CART_OK;
}

static void conn_free(aws_conn *k)
{
	if (!k)
		return;
	if (k->h)
		curl_easy_cleanup(k->h);
	cart_aws_signer_free(k->signer);
	free(k);
}

void cart_aws_client_free(cart_aws_client *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_pool; i++)
		conn_free(c->pool[i]);
	cart_retry_free(c->retry);
	cart_breaker_free(c->breaker);
	pthread_mutex_destroy(&c->pool_lock);
	free(c);
}

cart_breaker_state cart_aws_client_breaker_state(cart_aws_client *c)
{
	return cart_breaker_get_state(c->breaker);
}

int cart_aws_client_retry_tokens(cart_aws_client *c)
{
	return cart_retry_tokens(c->retry);
}

/* --- the handle pool ---------------------------------------------------- */

static aws_conn *pool_take(cart_aws_client *c)
{
	aws_conn *k = NULL;

	pthread_mutex_lock(&c->pool_lock);
	if (c->n_pool)
		k = c->pool[--c->n_pool];
	pthread_mutex_unlock(&c->pool_lock);
	if (k)
		return k;
	if (!(k = calloc(1, sizeof(*k))))
		return NULL;
	if (!(k->h = curl_easy_init()) || cart_aws_signer_new(&k->signer)) {
		conn_free(k);
		return NULL;
	}
	return k;
}

static void pool_give(cart_aws_client *c, aws_conn *k)
{
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_pool < POOL_MAX) {
		c->pool[c->n_pool++] = k;
		k = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	conn_free(k);   /* pool full: let this one go */
}

/* --- one attempt -------------------------------------------------------- */

size_t aws_membuf_collect(char *data, size_t size, size_t n, void *arg)
{
	aws_membuf *m = arg;
	size_t add = size * n;
	char *p;

	if (m->len + add > m->max)
		return 0;
	p = realloc(m->p, m->len + add + 1);
	if (!p)
		return 0;
	memcpy(p + m->len, data, add);
	m->p = p;
	m->len += add;
	m->p[m->len] = '\0';
	return add;
}


/* What one attempt sends: a JSON-protocol target, or a REST method and path. */
typedef struct aws_req {
	const char *target;          /* X-Amz-Target, or NULL (REST) */
	const char *method;          /* REST: "GET" or "POST" */
	const char *path;            /* REST: "/path?query", percent-encoded */
	const char *body;
	size_t len;
} aws_req;

/* REST answers carry their results in headers: kept up to this. */
#define MAX_HEADERS 16384

/* Keeps x-amzn-RequestId (the id AWS support and X-Ray ask for), and
 * for REST calls every header line (out->headers, bounded). */
static size_t header_line(char *data, size_t size, size_t n, void *arg)
{
	cart_aws_response *out = arg;
	size_t len = size * n, k = sizeof("x-amzn-RequestId:") - 1;

	if (out->headers && !strncmp(data, "HTTP/", 5))
		out->headers_len = 0;   /* a new response (after a 100) */
	if (out->headers && out->headers_len + len < MAX_HEADERS) {
		memcpy(out->headers + out->headers_len, data, len);
		out->headers_len += len;
		out->headers[out->headers_len] = '\0';
	}

	if (len > k && !strncasecmp(data, "x-amzn-RequestId:", k)) {
		const char *v = data + k;
		size_t vl = len - k;
		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl >= sizeof(out->request_id))
			vl = sizeof(out->request_id) - 1;
		memcpy(out->request_id, v, vl);
		out->request_id[vl] = '\0';
	}
	return len;
}

/* "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException". */
static void parse_error(cart_aws_response *out)
{
	cJSON *j = out->body ? cJSON_ParseWithLength(out->body, out->body_len) : NULL;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "__type");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	const char *hash;

	if (!m)
		m = cJSON_GetObjectItemCaseSensitive(j, "Message");
	if (cJSON_IsString(t)) {
		hash = strrchr(t->valuestring, '#');
		snprintf(out->error_type, sizeof(out->error_type), "%s",
			 hash ? hash + 1 : t->valuestring);
	}
	if (cJSON_IsString(m))
		snprintf(out->message, sizeof(out->message), "%s", m->valuestring);
	cJSON_Delete(j);
	/* rest-json: "x-amzn-ErrorType: BadRequestException:http://..." */
	if (!out->error_type[0] &&
	    cart_aws_response_header(out, "x-amzn-ErrorType", out->error_type,
				     sizeof(out->error_type)) > 0)
		out->error_type[strcspn(out->error_type, ":")] = '\0';
}

static bool throttled(const char *type)
{
	static const char *const kinds[] = {
		"ProvisionedThroughputExceededException", "ThrottlingException",
		"RequestLimitExceeded", "Throttling", "ThrottledException",
		"RequestThrottledException", "TooManyRequestsException",
		"LimitExceededException", "TransactionInProgressException", NULL
	};
	for (int i = 0; kinds[i]; i++)
		if (!strcmp(type, kinds[i]))
			return true;
	return false;
}

typedef enum outcome {
	OUT_DONE,        /* a response that is final (success or not) */
	OUT_RETRY,       /* throttled or 5xx: a response, worth another try */
	OUT_TRANSPORT,   /* no response */
	OUT_FATAL,       /* cannot even try (no credentials) */
} outcome;

/* Appends "name: value" ("name:" for NULL: curl then sends none). */
static bool add_header(struct curl_slist **list, char *line, size_t cap,
		       const char *name, const char *value)
{
	struct curl_slist *l;

	if (snprintf(line, cap, "%s:%s%s", name, value ? " " : "",
		     value ? value : "") >= (int)cap)
		return false;
	if (!(l = curl_slist_append(*list, line)))
		return false;
	*list = l;
	return true;
}

/* timeout_ms: this attempt's whole-request limit (0: none, curl's rule). */
static outcome attempt(cart_aws_client *c, const aws_req *rq, long timeout_ms,
		       cart_aws_response *out, bool *timeout, bool *maybe_sent)
{
	char *url;
	cart_aws_credentials cr;
	struct curl_slist *hdrs = NULL;
	char line[CART_AWS_TOKEN_MAX + 64];
	char amz_date[CART_AWS_AMZ_DATE_LEN + 1], auth[640];
	aws_membuf m = { NULL, 0, MAX_RESPONSE };
	cart_aws_sigv4_request sr;
	CURLcode rc;
	aws_conn *k;
	CURL *h;

	*timeout = *maybe_sent = false;
	if (cart_aws_creds_get(c->creds, &cr))
		return OUT_FATAL;
	free(out->headers);
	out->headers = NULL;
	out->headers_len = 0;
	if (!rq->target && !(out->headers = malloc(MAX_HEADERS)))
		return OUT_FATAL;
	if (out->headers)
		out->headers[0] = '\0';
	url = malloc(strlen(c->url) + (rq->target ? 0 : strlen(rq->path)) + 1);
	if (!url)
		return OUT_FATAL;
	strcpy(url, c->url);
	if (!rq->target)
		strcat(url, rq->path + (*rq->path == '/'));
	k = pool_take(c);
	if (!k) {
		free(url);
		return OUT_FATAL;
	}
	h = k->h;
	sr = (cart_aws_sigv4_request){
		.method = rq->body ? "POST" : "GET", .path = url + c->path_at,
		.host = c->host, .content_type = rq->body ? c->content_type : NULL,
		.target = rq->target, .body = rq->body, .body_len = rq->len,
		.region = c->region, .service = c->service,
		.access_key_id = cr.access_key_id,
		.secret_access_key = cr.secret_access_key,
		.session_token = cr.session_token, .now = time(NULL),
	};
	if (cart_aws_sigv4_sign(k->signer, &sr, amz_date, auth, sizeof(auth))) {
		memset(&cr, 0, sizeof(cr));
		pool_give(c, k);
		free(url);
		return OUT_FATAL;
	}
	/* Exactly the signed values (aws_sigv4.h); no Expect: 100-continue. */
	if (!add_header(&hdrs, line, sizeof(line), "Host", c->host) ||
	    !add_header(&hdrs, line, sizeof(line), "X-Amz-Date", amz_date) ||
	    !add_header(&hdrs, line, sizeof(line), "Authorization", auth) ||
	    !add_header(&hdrs, line, sizeof(line), "Expect", NULL) ||
	    (rq->body && !add_header(&hdrs, line, sizeof(line), "Content-Type",
				     c->content_type)) ||
	    (rq->target && !add_header(&hdrs, line, sizeof(line), "X-Amz-Target",
				       rq->target)) ||
	    (cr.session_token[0] && !add_header(&hdrs, line, sizeof(line),
						"X-Amz-Security-Token", cr.session_token))) {
		curl_slist_free_all(hdrs);
		memset(&cr, 0, sizeof(cr));
		pool_give(c, k);
		free(url);
		return OUT_FATAL;
	}
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (rq->body) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)rq->len);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, aws_membuf_collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
	out->request_id[0] = '\0';
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_line);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	rc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	free(url);
	memset(&cr, 0, sizeof(cr));
	free(out->body);
	out->body = m.p;
	out->body_len = m.len;
	out->error_type[0] = out->message[0] = '\0';
	if (rc != CURLE_OK) {
		*timeout = rc == CURLE_OPERATION_TIMEDOUT;
		*maybe_sent = rc != CURLE_COULDNT_CONNECT &&
			      rc != CURLE_COULDNT_RESOLVE_HOST &&
			      rc != CURLE_COULDNT_RESOLVE_PROXY;
		snprintf(out->message, sizeof(out->message), "%s", curl_easy_strerror(rc));
		conn_free(k);   /* its connection is in an unknown state */
		out->status = 0;
		return OUT_TRANSPORT;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
	pool_give(c, k);
	if (out->status >= 400)
		parse_error(out);
	if (throttled(out->error_type))
		out->throttles++;
	if (out->status >= 500 || throttled(out->error_type))
		return OUT_RETRY;
	return OUT_DONE;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Attempts and refusals are DEBUG: the adapter that gets the final answer
 * logs the failure once (aws.h, "a failure is logged once").
 */
static void log_refused(cart_aws_client *c, const char *target, int64_t retry_after_ms)
{
	cart_aws_fields f;

	cart_aws_fields_init(&f);
	cart_aws_fields_str(&f, "target", target, 0);
	cart_aws_fields_int(&f, "retry_after_ms", (long long)retry_after_ms);
	cart_aws_log_write(c->log, CART_AWS_LOG_DEBUG, "aws call refused: circuit open", &f);
}

static void log_attempt(cart_aws_client *c, const char *target, int n,
			const cart_aws_response *out, bool transport)
{
	cart_aws_fields f;

	cart_aws_fields_init(&f);
	cart_aws_fields_str(&f, "target", target, 0);
	cart_aws_fields_int(&f, "attempt", n);
	cart_aws_fields_int(&f, "status", out->status);
	cart_aws_fields_str(&f, "error", out->error_type, 0);
	cart_aws_fields_str(&f, "detail", transport ? out->message : "", 120);
	cart_aws_log_write(c->log, CART_AWS_LOG_DEBUG, "aws call attempt failed", &f);
}

static void log_deadline(cart_aws_client *c, const char *target, int n)
{
	cart_aws_fields f;

	cart_aws_fields_init(&f);
	cart_aws_fields_str(&f, "target", target, 0);
	cart_aws_fields_int(&f, "attempts", n);
	cart_aws_log_write(c->log, CART_AWS_LOG_DEBUG, "aws call stopped: deadline", &f);
}

static int call_attempts(cart_aws_client *c, const aws_req *rq, const char *target,
			 int64_t deadline_ms, cart_aws_response *out, bool *refused);

int cart_aws_call(cart_aws_client *c, const char *target, const char *body,
		  size_t body_len, cart_aws_response *out)
{
	return cart_aws_call_until(c, target, body, body_len, 0, out);
}

/* target: what logs name the call by; operation: what observers do. */
static int call_observed(cart_aws_client *c, const aws_req *rq, const char *target,
			 const char *operation, int64_t deadline_ms,
			 cart_aws_response *out)
{
	cart_aws_call_info info;
	int64_t t0, start_ms;
	bool refused = false;
	int rc;

	if (!c->observer || !c->observer->call_done)
		return call_attempts(c, rq, target, deadline_ms, out, &refused);
	start_ms = cart_clock_now(c->clock);
	t0 = mono_ns();
	rc = call_attempts(c, rq, target, deadline_ms, out, &refused);
	info = (cart_aws_call_info){
		.service = c->service, .operation = operation,
		.resource = c->resource, .rc = rc, .status = out->status,
		.error_type = out->error_type, .request_id = out->request_id,
		.attempts = out->attempts, .throttles = out->throttles,
		.breaker_refused = refused, .start_ms = start_ms,
		.end_ms = cart_clock_now(c->clock), .duration_ns = mono_ns() - t0,
		.deadline_cut = out->deadline_cut,
	};
	c->observer->call_done(c->observer->self, &info);
	return rc;
}

int cart_aws_call_until(cart_aws_client *c, const char *target, const char *body,
			size_t body_len, int64_t deadline_ms,
			cart_aws_response *out)
{
	aws_req rq = { target, "POST", "/", body, body_len };
	const char *dot = strrchr(target, '.');

	return call_observed(c, &rq, target, dot ? dot + 1 : target, deadline_ms, out);
}

int cart_aws_call_rest(cart_aws_client *c, const cart_aws_rest_request *req,
		       cart_aws_response *out)
{
	aws_req rq = { NULL, req->method, req->path, req->body, req->body_len };

	if (strcmp(req->method, req->body ? "POST" : "GET") || *req->path != '/') {
		memset(out, 0, sizeof(*out));
		return CART_EINVALID;
	}
	return call_observed(c, &rq, req->operation, req->operation,
			     req->deadline_ms, out);
}

/*
 * Time left before deadline_ms (0: none) as a curl timeout: the client's
 * timeout_ms or less.  0 once the deadline has come: start nothing.
 */
static long attempt_timeout(cart_aws_client *c, int64_t deadline_ms)
{
	int64_t left;

	if (!deadline_ms)
		return c->timeout_ms;
	left = deadline_ms - cart_clock_now(c->clock);
	if (left <= 0)
		return 0;
	return c->timeout_ms > 0 && c->timeout_ms < left ? c->timeout_ms : (long)left;
}

/* The deadline stops the call: out keeps the last answer, for the logs. */
static int cut(cart_aws_client *c, const char *target, int n,
	       cart_aws_response *out)
{
	out->deadline_cut = true;
	log_deadline(c, target, n);
	return CART_EUNAVAILABLE;
}

static int call_attempts(cart_aws_client *c, const aws_req *rq, const char *target,
			 int64_t deadline_ms, cart_aws_response *out, bool *refused)
{
	memset(out, 0, sizeof(*out));
	for (int n = 1;; n++) {
		bool timeout, maybe_sent;
		long limit = attempt_timeout(c, deadline_ms);
		int64_t delay;
		outcome o;

		if (limit <= 0 && deadline_ms)
			return cut(c, target, n - 1, out);
		if (cart_breaker_allow(c->breaker, &out->retry_after_ms)) {
			*refused = true;
			log_refused(c, target, out->retry_after_ms);
			return CART_EUNAVAILABLE;
		}
		out->attempts = n;
		o = attempt(c, rq, limit, out, &timeout, &maybe_sent);
		if (o == OUT_FATAL)
			return CART_EBACKEND;
		cart_breaker_record(c->breaker, o == OUT_DONE);
		if (o == OUT_DONE) {
			cart_retry_success(c->retry);
			return CART_OK;
		}
		if (maybe_sent)
			out->ambiguous = true;
		log_attempt(c, target, n, out, o == OUT_TRANSPORT);
		if (deadline_ms && cart_clock_now(c->clock) >= deadline_ms)
			return cut(c, target, n, out);
		if (!cart_retry_next(c->retry, n, timeout, &delay))
			return o == OUT_RETRY ? CART_OK : CART_EBACKEND;
		if (deadline_ms && cart_clock_now(c->clock) + delay >= deadline_ms) {
			cart_retry_cancel(c->retry, timeout);
			return cut(c, target, n, out);
		}
		cart_clock_sleep(c->clock, delay);
	}
}
