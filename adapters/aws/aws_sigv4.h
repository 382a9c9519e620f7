#ifndef CART_AWS_SIGV4_H
#define CART_AWS_SIGV4_H

/*
 * Private to adapters/aws: AWS Signature Version 4 for the requests
 * aws_client.c sends (JSON-protocol POSTs to a path, rest-json GETs and
 * POSTs).  Replaces libcurl's CURLOPT_AWS_SIGV4, which cost about a fifth
 * of the service's CPU per DynamoDB GetItem (docs/performance.md):
 * curl derives the signing key on every request and builds every string
 * with its own printf.  Here the signing key is derived once per day and
 * secret, the canonical request is streamed into the hash, and nothing
 * is allocated per request.
 *
 * Signed headers, in this order: content-type (when given), host,
 * x-amz-date, x-amz-security-token (when a token is given), x-amz-target
 * (when given).  The caller must send exactly these values.
 *
 * A signer keeps the hashing contexts and the derived key: one thread
 * at a time (the client keeps one per pooled connection).
 */

#include <stddef.h>
#include <time.h>

typedef struct cart_aws_signer cart_aws_signer;

/* CART_OK, or CART_ENOMEM / CART_EBACKEND (OpenSSL has no SHA-256). */
int cart_aws_signer_new(cart_aws_signer **out);
void cart_aws_signer_free(cart_aws_signer *s);   /* accepts NULL; wipes the key */

typedef struct cart_aws_sigv4_request {
	const char *method;          /* "POST", "GET" */
	const char *path;            /* "/" or "/a/b?k=v&k2=v2", percent-encoded as sent */
	const char *host;            /* the Host header's value */
	const char *content_type;    /* NULL: no Content-Type */
	const char *target;          /* X-Amz-Target, or NULL */
	const char *body;            /* NULL: empty */
	size_t body_len;
	const char *region, *service;
	const char *access_key_id, *secret_access_key;
	const char *session_token;   /* NULL or "": none */
	time_t now;                  /* the signing time (UTC seconds) */
} cart_aws_sigv4_request;

#define CART_AWS_AMZ_DATE_LEN 16          /* "20261128T050000Z" */
#define CART_AWS_QUERY_PAIRS_MAX 32

/*
 * Writes X-Amz-Date's value into amz_date and Authorization's into auth
 * (both NUL-terminated).  CART_EINVALID when a value does not fit, the
 * query has more than CART_AWS_QUERY_PAIRS_MAX pairs, or the path does not
 * start with '/'.
 */
int cart_aws_sigv4_sign(cart_aws_signer *s, const cart_aws_sigv4_request *r,
			char amz_date[CART_AWS_AMZ_DATE_LEN + 1],
			char *auth, size_t auth_cap);

#endif
