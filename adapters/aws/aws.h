#ifndef CART_AWS_H
#define CART_AWS_H

/*
 * What every AWS adapter shares: the credential chain and a signed JSON
 * call over libcurl with retries and a circuit breaker.  Not an adapter
 * itself (it implements no port); the DynamoDB and EventBridge adapters
 * build on it.
 *
 * Credentials come, in order, from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
 * (/AWS_SESSION_TOKEN), or the ECS container endpoint
 * (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on 169.254.170.2, or
 * AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN
 * or AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE).  Container credentials are
 * refreshed before they expire: at the latest 10 minutes before, sooner
 * for short-lived ones (half their lifetime).
 *
 * Requests are signed by aws_sigv4.c (ADR 19).  Curl handles are pooled,
 * each with its signer, so connections are kept alive across calls.
 *
 * Everything here is thread-safe.  Call curl_global_init() before use.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cart/ports.h"
#include "cart/resilience.h"

/* Where adapters send their diagnostics (the app's logger). */
typedef struct cart_aws_log {
	/* level: a cart_aws_log_level; fields: JSON members, each starting
	 * with a comma, or NULL. */
	void (*write)(void *ctx, int level, const char *msg, const char *fields);
	void *ctx;
} cart_aws_log;

/*
 * Levels, and the rule (README, "Logs"): a failure is logged once, by the
 * layer that knows what it means.  The client logs each failed attempt
 * and each breaker refusal at DEBUG only; the adapter that turns the
 * final answer into a cart error logs it once at WARN with the AWS
 * details; the app adds the cart error's name to the request's access
 * line instead of another line.
 */
enum cart_aws_log_level {
	CART_AWS_LOG_DEBUG = 0,
	CART_AWS_LOG_INFO = 1,
	CART_AWS_LOG_WARN = 2,
	CART_AWS_LOG_ERROR = 3,
};

/*
 * The members of one log line, each value escaped as it is added, so no
 * AWS message, user id or table name can break the JSON.  A string value
 * is cut to the room left; any other member that does not fit is left
 * out whole.  Lives on the caller's stack.
 */
#define CART_AWS_FIELDS_MAX 1024
typedef struct cart_aws_fields {
	char data[CART_AWS_FIELDS_MAX];   /* ",\"k\":\"v\"...", NUL-terminated */
	size_t len;
} cart_aws_fields;

void cart_aws_fields_init(cart_aws_fields *f);
/* ,"key":"value", the value cut to its first max bytes (0: no cut; a cut
 * never splits a UTF-8 sequence).  NULL value: null.  key is a literal. */
void cart_aws_fields_str(cart_aws_fields *f, const char *key, const char *value,
			 size_t max);
void cart_aws_fields_int(cart_aws_fields *f, const char *key, long long value);
void cart_aws_fields_bool(cart_aws_fields *f, const char *key, bool value);

/*
 * Writes s as a quoted JSON string into out (cap bytes, NUL-terminated):
 * '"' and '\\' escaped, control characters as \\u00XX, cut to its first
 * max bytes (0: no cut) and further to fit cap.  Returns the length
 * written, or 0 if cap < 3.
 */
size_t cart_aws_json_str(char *out, size_t cap, const char *s, size_t max);

/* Sends one line to log (NULL: nothing); f may be NULL. */
void cart_aws_log_write(const cart_aws_log *log, int level, const char *msg,
			const cart_aws_fields *f);

typedef const char *(*cart_aws_getenv_fn)(const char *name);

/* --- credentials -------------------------------------------------------- */

#define CART_AWS_KEY_MAX 128
#define CART_AWS_TOKEN_MAX 4096

typedef struct cart_aws_credentials {
	char access_key_id[CART_AWS_KEY_MAX];
	char secret_access_key[CART_AWS_KEY_MAX];
	char session_token[CART_AWS_TOKEN_MAX];   /* "" if none */
	int64_t expires_at_ms;                    /* 0: does not expire */
} cart_aws_credentials;

typedef struct cart_aws_creds cart_aws_creds;

/*
 * Picks the first source in the chain that is configured.  Container
 * credentials are fetched at once, so a broken setup fails the start.
 * -1 with a one-line reason in err.  clock and log are borrowed.
 */
int cart_aws_creds_new(cart_aws_creds **out, cart_aws_getenv_fn env,
		       const cart_clock *clock, const cart_aws_log *log,
		       char *err, size_t err_len);
void cart_aws_creds_free(cart_aws_creds *c);      /* accepts NULL */
/* Current credentials (refreshed first if due).  CART_EBACKEND if none. */
int cart_aws_creds_get(cart_aws_creds *c, cart_aws_credentials *out);
/* "environment" or "container". */
const char *cart_aws_creds_source(const cart_aws_creds *c);
/* How many times container credentials were fetched. */
uint64_t cart_aws_creds_fetches(const cart_aws_creds *c);
/* Refreshes that failed (the old credentials stay in use until they
 * expire; then every call fails).  Safe from any thread. */
uint64_t cart_aws_creds_refresh_failures(const cart_aws_creds *c);
/* When the current credentials expire (epoch ms); 0: they do not
 * (environment keys).  Safe from any thread. */
int64_t cart_aws_creds_expires_at_ms(cart_aws_creds *c);

/* --- endpoints ---------------------------------------------------------- */

/*
 * The endpoint URL for a service, as the AWS SDKs resolve it: the
 * service's own variable (explicit, e.g. DYNAMODB_ENDPOINT), then
 * AWS_ENDPOINT_URL_<SERVICE>, then AWS_ENDPOINT_URL, then
 * https://<prefix>.<region>.amazonaws.com.  Writes into out.
 */
void cart_aws_endpoint(char *out, size_t cap, cart_aws_getenv_fn env,
		       const char *explicit_var, const char *sdk_service_id,
		       const char *prefix, const char *region);

/* --- signed calls ------------------------------------------------------- */

/*
 * What one cart_aws_call(_until) did, all attempts together: for metrics and
 * traces (the app's).  Strings are borrowed for the callback's duration.
 */
typedef struct cart_aws_call_info {
	const char *service;         /* signing name: "dynamodb", "events" */
	const char *operation;       /* "GetItem": the target after its '.' */
	const char *resource;        /* the config's resource, or "" */
	int rc;                      /* cart_aws_call's result */
	long status;                 /* HTTP status of the last answer, 0: none */
	const char *error_type;      /* AWS error type of the last answer, or "" */
	const char *request_id;      /* x-amzn-RequestId of the last answer, or "" */
	int attempts;                /* 0: the breaker refused the first */
	int throttles;               /* attempts answered with throttling */
	bool breaker_refused;        /* the breaker refused an attempt */
	int64_t start_ms, end_ms;    /* wall clock (the clock port) */
	int64_t duration_ns;         /* monotonic */
	bool deadline_cut;           /* the caller's deadline stopped it */
} cart_aws_call_info;

/*
 * Called once per cart_aws_call(_until), on the calling thread, after the last
 * attempt; must be thread-safe and must not block.
 */
typedef struct cart_aws_observer {
	void (*call_done)(void *self, const cart_aws_call_info *info);
	void *self;
} cart_aws_observer;

typedef struct cart_aws_client_config {
	const char *service;         /* signing name: "dynamodb", "events" */
	const char *region;
	const char *endpoint;        /* base URL */
	const char *content_type;    /* "application/x-amz-json-1.0" */
	long connect_timeout_ms;     /* default 1000 */
	long timeout_ms;             /* whole request; default 3000 */
	cart_retry_config retry;
	cart_breaker_config breaker;
	const char *resource;        /* table or bus name for observers; may be NULL */
	const cart_aws_observer *observer;   /* borrowed; NULL: none */
} cart_aws_client_config;

void cart_aws_client_config_init(cart_aws_client_config *cfg);

typedef struct cart_aws_client cart_aws_client;

/* creds, clock, ids and log are borrowed and must outlive the client. */
int cart_aws_client_new(cart_aws_client **out, const cart_aws_client_config *cfg,
			cart_aws_creds *creds, const cart_clock *clock,
			const cart_ids *ids, const cart_aws_log *log);
void cart_aws_client_free(cart_aws_client *c);    /* accepts NULL */

typedef struct cart_aws_response {
	long status;               /* HTTP status of the last attempt */
	char *body;                /* owned, NUL-terminated; may be NULL */
	size_t body_len;
	char error_type[128];      /* AWS "__type" after the '#', or "" */
	char message[256];         /* AWS "message", or "" */
	char request_id[64];       /* x-amzn-RequestId of the last answer, or "" */
	int attempts;
	int throttles;             /* attempts answered with throttling */
	/* An earlier attempt may have reached the service (it timed out or
	 * lost its connection after sending): a write may have applied. */
	bool ambiguous;
	int64_t retry_after_ms;    /* with CART_EUNAVAILABLE */
	/* cart_aws_call_until's deadline stopped the attempts (then the
	 * result is CART_EUNAVAILABLE; the fields above describe the last
	 * attempt, if one was made). */
	bool deadline_cut;
	/* cart_aws_call_rest only: the last answer's header lines as
	 * received (owned, NUL-terminated, at most 16 KiB kept); else NULL. */
	char *headers;
	size_t headers_len;
} cart_aws_response;

void cart_aws_response_release(cart_aws_response *r);   /* accepts NULL */

/*
 * POSTs body with X-Amz-Target: target, retrying throttling, 5xx and
 * transport failures as the retry policy allows.  CART_OK when a response
 * arrived (whatever its status: check out->status and error_type),
 * CART_EUNAVAILABLE when the breaker refused, CART_EBACKEND when no
 * response arrived.  out must be released.
 */
int cart_aws_call(cart_aws_client *c, const char *target, const char *body,
		  size_t body_len, cart_aws_response *out);

/*
 * cart_aws_call bounded by deadline_ms, a wall-clock time read from the
 * client's clock port (0: none, exactly cart_aws_call):
 *  - no attempt starts at or after the deadline;
 *  - each attempt's timeout is min(timeout_ms, time left);
 *  - a retry whose backoff would end at or after the deadline is not
 *    made (and its retry tokens are given back: cart_retry_cancel).
 * When the deadline stops the call, whatever the last attempt brought,
 * the result is CART_EUNAVAILABLE with out->deadline_cut set (and the
 * observer's info.deadline_cut): the request's time is up, and a
 * throttling or 5xx answer that would have been retried is not final.
 * out still describes the last attempt (status, error_type, ambiguous:
 * a write may have applied) for the caller's log; attempts is 0 if the
 * deadline had passed before the first.  An attempt cut short by the
 * deadline's timeout counts as a failure for the breaker, like any
 * timeout.  A final answer (success, or a non-retryable error) that
 * arrives before the deadline is returned as by cart_aws_call.
 */
int cart_aws_call_until(cart_aws_client *c, const char *target, const char *body,
			size_t body_len, int64_t deadline_ms,
			cart_aws_response *out);

/*
 * A call to a rest-json service (e.g. AppConfig's data plane): the same
 * signing, retries, breaker, deadline and observer as cart_aws_call_until,
 * but the operation is in the method and path instead of X-Amz-Target, and
 * the answer's headers are kept (cart_aws_response_header).  GET without
 * a body, or POST with one (sent with the client's content_type).
 * CART_EINVALID for any other combination or a path without a leading '/'.
 */
typedef struct cart_aws_rest_request {
	const char *method;          /* "GET" or "POST" */
	const char *path;            /* "/configuration?configuration_token=...",
				      * already percent-encoded (RFC 3986
				      * unreserved characters as they are,
				      * the rest %XX): SigV4 signs it as sent */
	const char *operation;       /* observers and logs: "GetLatestConfiguration" */
	const char *body;            /* NULL: none */
	size_t body_len;
	int64_t deadline_ms;         /* wall clock, 0: none (cart_aws_call_until) */
} cart_aws_rest_request;

int cart_aws_call_rest(cart_aws_client *c, const cart_aws_rest_request *req,
		       cart_aws_response *out);

/*
 * The value of header `name` (case-insensitive) in a REST answer, without
 * surrounding blanks, copied into out: its length, or -1 when absent (or
 * not a REST answer) or longer than cap - 1.
 */
long cart_aws_response_header(const cart_aws_response *r, const char *name,
			      char *out, size_t cap);

cart_breaker_state cart_aws_client_breaker_state(cart_aws_client *c);
int cart_aws_client_retry_tokens(cart_aws_client *c);

#endif
