#ifndef APP_FLAGS_H
#define APP_FLAGS_H

/*
 * Feature flags (docs/adr/0015-feature-flags.md).
 *
 * Sources, lowest precedence first; each flag takes its value from the
 * highest source that names it:
 *
 *   default    compiled in (existing behaviour: see app_flag_default)
 *   file       FEATURE_FLAGS_FILE, a JSON document, re-read on SIGHUP and
 *              when it changes (checked every FEATURE_FLAGS_RELOAD_SECONDS)
 *   appconfig  AWS AppConfig (FEATURE_FLAGS_APPCONFIG_*), polled at the
 *              interval AppConfig asks for, never more often than
 *              FEATURE_FLAGS_APPCONFIG_MIN_POLL_SECONDS
 *   env        FEATURE_<NAME>=on|off: pins, fixed for the process's life
 *
 * The hot path reads one snapshot: a 64-bit word (each flag's value and
 * the source that decided it, plus a generation) published with one
 * atomic store by the reloader and read with one atomic load.  The word is
 * the whole snapshot, copied by value, so there is nothing to reclaim and
 * no reader can see half an update: RCU's grace period is not needed when
 * the snapshot fits the pointer.  At most APP_FLAGS_MAX flags.
 *
 * A document (file or AppConfig) is an object whose members are flag
 * names; a value is true/false, "on"/"off", or an object with a boolean
 * "enabled" (AppConfig's feature-flag profile format; other members are
 * ignored).  An unknown name, a duplicate, another value, a document over
 * APP_FLAGS_DOC_MAX bytes or not JSON refuses the whole document: the
 * source keeps its last good values (at start, a bad file stops the
 * service).  A member left out leaves the flag to the sources below.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"

typedef enum app_flag {
	APP_FLAG_REQUIRE_IF_MATCH,      /* changes without If-Match: 428 */
	APP_FLAG_IDEMPOTENCY_REQUIRED,  /* changes without Idempotency-Key: 428 */
	APP_FLAG_EVENTS,                /* the relay publishes (off: holds) */
	APP_FLAG_AUTH_ENFORCE,          /* off: token failures logged, not refused */
	APP_FLAG_COUNT
} app_flag;

#define APP_FLAGS_MAX 16
#define APP_FLAGS_DOC_MAX (64 * 1024)

typedef enum app_flag_source {
	APP_FLAG_SRC_DEFAULT, APP_FLAG_SRC_FILE, APP_FLAG_SRC_APPCONFIG,
	APP_FLAG_SRC_ENV, APP_FLAG_SRC_COUNT
} app_flag_source;

/* "require_if_match", ...; NULL out of range. */
const char *app_flag_name(app_flag f);
bool app_flag_default(app_flag f);
const char *app_flag_source_name(app_flag_source s);

/* The values one source gives: bit i of `set` says it names flag i. */
typedef struct app_flag_values {
	uint32_t set;
	uint32_t on;
} app_flag_values;

/*
 * Parses a flags document (len bytes, need not be NUL-terminated).  0 and
 * *out on success; -1 with a one-line reason in why (out untouched).
 */
int app_flags_parse(const char *data, size_t len, app_flag_values *out,
		    char *why, size_t why_len);

/* --- the snapshot ----------------------------------------------------------- */

/* bits 0..15: values; 16..47: 2-bit source per flag; 48..63: generation. */
typedef uint64_t app_flags_snapshot;

static inline bool app_flags_on(app_flags_snapshot s, app_flag f)
{
	return (s >> f) & 1;
}

static inline app_flag_source app_flags_source(app_flags_snapshot s, app_flag f)
{
	return (app_flag_source)((s >> (16 + 2 * f)) & 3);
}

static inline unsigned app_flags_generation(app_flags_snapshot s)
{
	return (unsigned)(s >> 48);
}

/* The snapshot of these sources, lowest first (NULL: none). */
app_flags_snapshot app_flags_combine(const app_flag_values *file,
				     const app_flag_values *appconfig,
				     const app_flag_values *env, unsigned generation);

typedef struct app_flags app_flags;

/* The current snapshot: one atomic load.  NULL f: the defaults. */
app_flags_snapshot app_flags_get(const app_flags *f);

/* --- the registry ----------------------------------------------------------- */

struct cart_appconfig;

/*
 * From cfg: the FEATURE_<NAME> pins and the file (read now).  -1 with one
 * line naming the variable in err (exit 2): a file that cannot be read or
 * is not a valid document.  The AppConfig source is added by
 * app_flags_set_appconfig.  Not started: no thread until app_flags_start.
 */
int app_flags_new(app_flags **out, const app_config *cfg, char *err, size_t err_len);
void app_flags_free(app_flags *f);   /* stops the thread; accepts NULL */

/*
 * The AppConfig source (borrowed; polled by the reloader thread only).
 * floor_seconds: the shortest wait between polls.  Before app_flags_start.
 */
void app_flags_set_appconfig(app_flags *f, struct cart_appconfig *ac,
			     int floor_seconds);

/*
 * Called on the reloader thread after each change of the snapshot, with
 * the old and the new one (e.g. to wake the relay when events turns on).
 * Before app_flags_start.
 */
typedef void (*app_flags_change_fn)(void *self, app_flags_snapshot before,
				    app_flags_snapshot after);
void app_flags_on_change(app_flags *f, app_flags_change_fn fn, void *self);

/*
 * Polls AppConfig once now (if set; bounded by the client's timeouts),
 * logs the effective flags, then starts the reloader thread (only if
 * there is a file or AppConfig).  -1 if the thread cannot start.
 */
int app_flags_start(app_flags *f);

/* SIGHUP: re-read the file now (on the reloader thread).  Async-safe
 * enough for a signal-handling thread; accepts NULL. */
void app_flags_reload(app_flags *f);

/*
 * One reload of each source, synchronously (the reloader's steps; tests).
 * file: force re-reads even if the file looks unchanged.  0: applied or
 * unchanged; -1: refused (the last good values kept, one warn line).
 */
int app_flags_reload_file(app_flags *f, bool force);
int app_flags_apply_appconfig(app_flags *f, const char *data, size_t len);

/* --- views ----------------------------------------------------------------- */

/* Prometheus families: cart_feature_flag{name,source} and
 * cart_feature_flags_reloads_total{source,outcome}.  NULL f: defaults. */
void app_flags_metrics(const app_flags *f, buf *out);
/* app_stats_fn: the flags and reload counters as JSON members. */
void app_flags_stats(void *self, buf *out);
/* ",\"flags\":{\"events\":{\"on\":true,\"source\":\"env\"},...}" */
void app_flags_json(app_flags_snapshot s, buf *out);

#endif
