#ifndef CART_SECRETS_H
#define CART_SECRETS_H

/*
 * Secret values kept current: a store of named sources, each a file or
 * an AWS Secrets Manager secret (GetSecretValue over the shared signed
 * client, adapters/aws), fetched once when added and then refreshed by
 * one background thread.
 *
 * Cache: a value is fresh for ttl_ms after it was fetched.  The thread
 * fetches it again at 3/4 of that (minus up to 10 % jitter, so tasks
 * started together spread out), before it expires.  A refresh that fails
 * keeps the last good value (a stale secret beats none: the service keeps
 * working while Secrets Manager or the file is unavailable), logs once at
 * WARN per run of failures (and once at INFO when it recovers), counts in
 * the stats, and is retried after 1 s, 2 s, 4 s ... up to 60 s (never
 * later than the TTL).  A value that changed (other bytes) is handed to
 * the source's listener on the refresher thread, then logged at INFO
 * without the value.
 *
 * Bounds: at most CART_SECRETS_MAX sources, each value at most
 * CART_SECRET_MAX_BYTES (Secrets Manager's own limit for SecretString and
 * SecretBinary); one fetch at a time; values are wiped from memory when
 * replaced or freed.  No value is ever logged, nor put in an error text.
 *
 * Thread-safe: cart_secrets_get and cart_secrets_stats from any thread;
 * cart_secrets_add and cart_secrets_start at wiring time only (before
 * the thread runs).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aws/aws.h"
#include "cart/ports.h"

#define CART_SECRET_MAX_BYTES 65536
#define CART_SECRETS_MAX 8
#define CART_SECRET_ID_MAX 512       /* a name or an ARN */
#define CART_SECRET_KEY_MAX 128      /* a member of a JSON secret */

/* --- "id#key": which secret, and which member of it ---------------------- */

typedef struct cart_secret_ref {
	char id[CART_SECRET_ID_MAX + 1];   /* SecretId: name or ARN */
	char key[CART_SECRET_KEY_MAX + 1]; /* "" : the whole SecretString */
} cart_secret_ref;

/*
 * Parses "name-or-arn" or "name-or-arn#key".  The id is 1..512 of
 * A-Z a-z 0-9 / _ + = . @ - and ':' (an ARN); the key 1..128 of A-Z a-z
 * 0-9 _ - . (a member name of a JSON secret).  -1 with a reason in err.
 */
int cart_secret_ref_parse(cart_secret_ref *out, const char *spec, char *err,
			  size_t err_len);

/*
 * The member key of a JSON object secret[0..len): its value must be a
 * string.  *out is malloc'd and NUL-terminated (free with
 * cart_secret_wipe_free).  -1 with a reason in err that never quotes the
 * secret.
 */
int cart_secret_select(char **out, size_t *out_len, const char *secret,
		       size_t len, const char *key, char *err, size_t err_len);

/* Zeroes len bytes of p, then frees it.  Accepts NULL. */
void cart_secret_wipe_free(char *p, size_t len);

/* --- GetSecretValue -------------------------------------------------------- */

/*
 * One GetSecretValue of ref->id (the AWSCURRENT version) on client
 * (service "secretsmanager", application/x-amz-json-1.1): SecretString,
 * or SecretBinary decoded from base64, then ref->key selected when set.
 * *out is malloc'd, NUL-terminated, at most CART_SECRET_MAX_BYTES;
 * version (65 bytes) gets VersionId.  Returns CART_OK, CART_ENOTFOUND
 * (ResourceNotFoundException), CART_EINVALID (ref->key is not a string
 * member of a JSON object secret) or CART_EBACKEND (any other failure:
 * AccessDeniedException, DecryptionFailure, InvalidRequestException,
 * throttling after the client's retries, no answer, a value too large),
 * each with a one-line reason in err.
 */
int cart_secretsmanager_get(char **out, size_t *out_len, char version[65],
			    cart_aws_client *client, const cart_secret_ref *ref,
			    char *err, size_t err_len);

/* --- the store ------------------------------------------------------------- */

typedef struct cart_secrets cart_secrets;

/* Called on the refresher thread with the new value (borrowed for the
 * call; copy what you keep).  Must not call back into the store. */
typedef void (*cart_secret_listener)(void *ctx, const char *value, size_t len);

/*
 * ttl_ms: 1000..86400000.  client may be NULL when no source is a
 * Secrets Manager secret.  client, clock and log are borrowed.
 */
int cart_secrets_new(cart_secrets **out, int64_t ttl_ms, cart_aws_client *client,
		     const cart_clock *clock, const cart_aws_log *log);
/* Stops the thread (waiting for a fetch under way), wipes every value. */
void cart_secrets_free(cart_secrets *s);   /* accepts NULL */

typedef enum cart_secret_kind {
	CART_SECRET_FILE = 1,        /* where: a path; one trailing newline dropped */
	CART_SECRET_AWS = 2,         /* where: "id" or "id#key" */
} cart_secret_kind;

/*
 * Adds a source named name (a literal, e.g. the variable that chose it:
 * logs and stats use it) and fetches it now.  *index gets its number.
 * CART_EINVALID (bad where, too many sources), CART_ENOTFOUND (no such
 * file or secret), CART_EBACKEND (could not be read), each with a
 * one-line reason in err naming name.  listener may be NULL.
 */
int cart_secrets_add(cart_secrets *s, const char *name, cart_secret_kind kind,
		     const char *where, cart_secret_listener listener, void *ctx,
		     int *index, char *err, size_t err_len);

/* A copy of the current value (free with cart_secret_wipe_free). */
int cart_secrets_get(cart_secrets *s, int index, char **out, size_t *len);

/* Starts the refresher thread (no-op without sources).  -1 if it could
 * not be started. */
int cart_secrets_start(cart_secrets *s);

/* Fetches every source now, on the calling thread (tests). */
void cart_secrets_refresh_all(cart_secrets *s);

typedef struct cart_secret_stats {
	const char *name;            /* as given to cart_secrets_add */
	cart_secret_kind kind;
	uint64_t fetches;            /* successful reads, the first included */
	uint64_t failures;           /* failed refreshes */
	uint64_t changes;            /* new values handed to the listener */
	int64_t fetched_ms;          /* wall clock of the last good read */
	bool failing;                /* the last refresh failed */
	bool expired;                /* older than the TTL (refreshes failing) */
} cart_secret_stats;

/* Number of sources; fills out[0..n) (up to max). */
int cart_secrets_stats(cart_secrets *s, cart_secret_stats *out, int max);

#endif
