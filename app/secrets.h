#ifndef APP_SECRETS_H
#define APP_SECRETS_H

/*
 * The service's secrets and where each comes from (README, "Secrets").
 * A secret-capable variable X is read from exactly one of
 *
 *   X             the value itself, in the environment
 *   X_FILE        a file holding it (one trailing newline is dropped)
 *   X_SECRET_ID   an AWS Secrets Manager secret: its name or ARN, and
 *                 "#key" to take one member of a JSON secret
 *
 * Setting two is a configuration error (one line naming them, exit 2).
 * Files and Secrets Manager secrets are cached for SECRETS_TTL_SECONDS
 * and re-read in the background before then (adapters/secrets); a new
 * value is pushed to its consumer while the service runs:
 *
 *   JWT_JWKS              the verifier's keys are replaced
 *                         (JWT_JWKS_FILE and JWT_JWKS_URL keep the
 *                         verifier's own refresh; JWT_JWKS is fixed)
 *   REDIS_PASSWORD        the limiter logs in again with it
 *                         (also: a password inside REDIS_URL, fixed)
 *   EVENTBRIDGE_BUS_NAME  the next PutEvents names the new bus
 *
 * No value is logged: the start line shows "***" for an inline value,
 * and the path or secret id, never the content, for the others.
 *
 * Threads: built at wiring time; the refresher thread calls the
 * consumers' setters (each thread-safe).
 */

#include <stdbool.h>
#include <stddef.h>

#include "aws/aws.h"
#include "config.h"

/* Longest inline value (JWT_JWKS, REDIS_PASSWORD): 64 KiB. */
#define APP_SECRET_MAX_INLINE 65536

typedef enum app_secret_id {
	APP_SECRET_JWKS,
	APP_SECRET_REDIS_PASSWORD,
	APP_SECRET_BUS_NAME,
	APP_SECRET_COUNT
} app_secret_id;

/* Exactly one source per secret, and well-formed secret ids (config.c). */
int app_secrets_check(const app_config *cfg, char *err, size_t err_len);

/* Does cfg read any secret from Secrets Manager (a client is needed)? */
bool app_secrets_use_aws(const app_config *cfg);

typedef struct app_secrets app_secrets;

/*
 * Reads every configured secret now: inline values through env, files,
 * and Secrets Manager secrets through sm (NULL when app_secrets_use_aws
 * is false).  -1 with one line naming the variable in err; *exit_code
 * is 2 for a secret or file that does not exist or a bad reference, 1
 * for one that could not be read (Secrets Manager unavailable, denied).
 */
int app_secrets_new(app_secrets **out, const app_config *cfg, config_getenv_fn env,
		    cart_aws_client *sm, const cart_clock *clock,
		    const cart_aws_log *log, int *exit_code, char *err, size_t err_len);
void app_secrets_free(app_secrets *s);   /* accepts NULL; stops the refresher */

/*
 * The current value of id: 0 and a copy in *out (free with
 * cart_secret_wipe_free(*out, *len)), or 1 when id is not configured
 * through this module (the consumer uses its own setting).
 */
int app_secrets_get(app_secrets *s, app_secret_id id, char **out, size_t *len);

/* Where id's value comes from: "env", "file", "secretsmanager", or NULL. */
const char *app_secrets_source(const app_secrets *s, app_secret_id id);

/* Who hears of a new value of id (before app_secrets_start). */
typedef void (*app_secret_fn)(void *ctx, const char *value, size_t len);
void app_secrets_on_change(app_secrets *s, app_secret_id id, app_secret_fn fn,
			   void *ctx);

/* A bus name or ARN from a secret: 1..255 of A-Z a-z 0-9 -_./: */
bool app_secrets_bus_valid(const char *bus, size_t len);

/*
 * Hands new values to their consumers (each may be NULL: not wired):
 * the verifier's keys, the Redis limiter's password, the EventBridge
 * publisher's bus.  A value a consumer refuses is logged at WARN (never
 * quoted) and the old one stays.  Before app_secrets_start.
 */
struct app_auth;
struct app_ratelimit;
void app_secrets_bind(app_secrets *s, struct app_auth *auth,
		      struct app_ratelimit *rl, cart_publisher *eventbridge);

/* Starts the background refresh (nothing to do without files or
 * Secrets Manager secrets).  -1 if the thread could not start. */
int app_secrets_start(app_secrets *s);

/* Prometheus lines: reads, failures, changes, age, per secret. */
struct buf;
void app_secrets_metrics(const app_secrets *s, struct buf *out);

/* app_stats_fn: the same for the stats line. */
void app_secrets_stats(void *self, struct buf *out);

#endif
