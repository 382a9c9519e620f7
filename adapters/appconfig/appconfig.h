#ifndef CART_APPCONFIG_H
#define CART_APPCONFIG_H

/*
 * AWS AppConfig's data plane (appconfigdata, rest-json, signed as
 * "appconfig"): a configuration session and its polls, over the shared
 * signed client (aws/aws.h).  Knows nothing of what the configuration
 * means: it hands back the bytes (the app parses them).
 *
 *   StartConfigurationSession  POST /configurationsessions
 *        {"ApplicationIdentifier", "EnvironmentIdentifier",
 *         "ConfigurationProfileIdentifier",
 *         "RequiredMinimumPollIntervalInSeconds"}
 *        -> 201 {"InitialConfigurationToken"}
 *   GetLatestConfiguration     GET /configuration?configuration_token=T
 *        -> 200, the configuration as the body (empty: no change since the
 *           last poll of this session), Next-Poll-Configuration-Token
 *           (the token for the next poll: each token is used once),
 *           Next-Poll-Interval-In-Seconds, Content-Type, Version-Label.
 *
 * A session is started on the first poll; any failure drops it (the next
 * poll starts a new one, whose first answer is the whole configuration
 * again), so an expired or refused token (BadRequestException) costs one
 * extra call.  One thread polls at a time (not thread-safe).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aws/aws.h"

/* AppConfig's own bounds of RequiredMinimumPollIntervalInSeconds. */
#define CART_APPCONFIG_MIN_POLL_SECONDS 15
#define CART_APPCONFIG_MAX_POLL_SECONDS 86400
/* The longest token kept (AppConfig's are a few hundred bytes). */
#define CART_APPCONFIG_TOKEN_MAX 8192

typedef struct cart_appconfig_config {
	const char *application;     /* name or id */
	const char *environment;
	const char *profile;         /* configuration profile name or id */
	int min_poll_seconds;        /* RequiredMinimumPollIntervalInSeconds,
				      * clamped to 15..86400 */
	size_t max_bytes;            /* a larger configuration is refused */
} cart_appconfig_config;

typedef struct cart_appconfig cart_appconfig;

/* client (signing name "appconfig") and log are borrowed.  CART_EINVALID
 * for a missing identifier or max_bytes 0. */
int cart_appconfig_new(cart_appconfig **out, const cart_appconfig_config *cfg,
		       cart_aws_client *client, const cart_aws_log *log);
void cart_appconfig_free(cart_appconfig *a);   /* accepts NULL */

typedef struct cart_appconfig_result {
	bool changed;                /* a configuration came: data, len */
	char *data;                  /* owned by the caller (free), NUL-terminated */
	size_t len;
	char version_label[128];     /* "" if none */
	int next_poll_seconds;       /* NextPollIntervalInSeconds; 0: not given */
	bool new_session;            /* this poll started a session */
} cart_appconfig_result;

/*
 * One poll (starting a session first if there is none), bounded by
 * deadline_ms (wall clock, 0: the client's timeouts only).  CART_OK with
 * out->changed false for "no change"; CART_EBACKEND (refused, malformed
 * answer, too large) or CART_EUNAVAILABLE (breaker, deadline, transport)
 * with a one-line reason in why.  out is zeroed first.
 */
int cart_appconfig_poll(cart_appconfig *a, int64_t deadline_ms,
			cart_appconfig_result *out, char *why, size_t why_len);

/* Sessions started and polls answered, for stats. */
uint64_t cart_appconfig_sessions(const cart_appconfig *a);

#endif
