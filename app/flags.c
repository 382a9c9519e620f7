/* Feature flags: sources, the snapshot, the reloader (see flags.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "appconfig/appconfig.h"
#include "flags.h"
#include "log.h"

_Static_assert(APP_FLAG_COUNT <= APP_FLAGS_MAX, "the snapshot word holds 16 flags");

typedef struct flag_def {
	const char *name;
	bool def;
	size_t pin;                  /* offset of the FEATURE_<NAME> field */
} flag_def;

static const flag_def defs[APP_FLAG_COUNT] = {
	[APP_FLAG_REQUIRE_IF_MATCH] = { "require_if_match", false,
					offsetof(app_config, feature_require_if_match) },
	[APP_FLAG_IDEMPOTENCY_REQUIRED] = { "idempotency_required", false,
					    offsetof(app_config, feature_idempotency_required) },
	[APP_FLAG_EVENTS] = { "events", true, offsetof(app_config, feature_events) },
	[APP_FLAG_AUTH_ENFORCE] = { "auth_enforce", true,
				    offsetof(app_config, feature_auth_enforce) },
};

static const char *const source_names[APP_FLAG_SRC_COUNT] = {
	"default", "file", "appconfig", "env"
};

/* Outcomes of reading a source (file or AppConfig). */
enum { OUT_APPLIED, OUT_NO_CHANGE, OUT_INVALID, OUT_ERROR, OUT_COUNT };
static const char *const outcome_names[OUT_COUNT] = {
	"applied", "no_change", "invalid", "error"
};
enum { RS_FILE, RS_APPCONFIG, RS_COUNT };

const char *app_flag_name(app_flag f)
{
	return (unsigned)f < APP_FLAG_COUNT ? defs[f].name : NULL;
}

bool app_flag_default(app_flag f)
{
	return (unsigned)f < APP_FLAG_COUNT && defs[f].def;
}

const char *app_flag_source_name(app_flag_source s)
{
	return (unsigned)s < APP_FLAG_SRC_COUNT ? source_names[s] : "default";
}

/* --- documents ------------------------------------------------------------ */

static int flag_by_name(const char *name)
{
	for (int i = 0; i < APP_FLAG_COUNT; i++)
		if (!strcmp(defs[i].name, name))
			return i;
	return -1;
}

/* true/false, "on"/"off", {"enabled": bool, ...}; -1 otherwise. */
static int member_value(const cJSON *v)
{
	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v);
	if (cJSON_IsString(v))
		return !strcmp(v->valuestring, "on") ? 1 :
		       !strcmp(v->valuestring, "off") ? 0 : -1;
	if (cJSON_IsObject(v)) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(v, "enabled");
		return cJSON_IsBool(e) ? cJSON_IsTrue(e) : -1;
	}
	return -1;
}

int app_flags_parse(const char *data, size_t len, app_flag_values *out,
		    char *why, size_t why_len)
{
	app_flag_values got = { 0, 0 };
	const char *end = NULL;
	cJSON *doc;
	const cJSON *m;
	int rc = 0;

	if (len > APP_FLAGS_DOC_MAX) {
		snprintf(why, why_len, "%zu bytes, over the %d-byte bound", len,
			 APP_FLAGS_DOC_MAX);
		return -1;
	}
	doc = cJSON_ParseWithLengthOpts(data, len, &end, 0);
	while (doc && end < data + len && strchr(" \t\r\n", *end) && *end)
		end++;
	if (doc && end < data + len) {   /* one document, then only blanks */
		snprintf(why, why_len, "not valid JSON (bytes after the document)");
		cJSON_Delete(doc);
		return -1;
	}
	if (!cJSON_IsObject(doc)) {
		snprintf(why, why_len, doc ? "not a JSON object" : "not valid JSON");
		cJSON_Delete(doc);
		return -1;
	}
	cJSON_ArrayForEach(m, doc) {
		int f = flag_by_name(m->string), v = member_value(m);

		if (f < 0) {
			snprintf(why, why_len, "unknown flag \"%.40s\" (known: "
				 "require_if_match, idempotency_required, events, "
				 "auth_enforce)", m->string);
			rc = -1;
		} else if (got.set & (1u << f)) {
			snprintf(why, why_len, "flag \"%s\" given twice", defs[f].name);
			rc = -1;
		} else if (v < 0) {
			snprintf(why, why_len, "flag \"%s\": expected true, false, \"on\", "
				 "\"off\" or {\"enabled\": true|false}", defs[f].name);
			rc = -1;
		}
		if (rc)
			break;
		got.set |= 1u << f;
		got.on |= (uint32_t)v << f;
	}
	cJSON_Delete(doc);
	if (!rc)
		*out = got;
	return rc;
}

/* --- the snapshot ----------------------------------------------------------- */

app_flags_snapshot app_flags_combine(const app_flag_values *file,
				     const app_flag_values *appconfig,
				     const app_flag_values *env, unsigned generation)
{
	const app_flag_values *layer[APP_FLAG_SRC_COUNT] = { NULL, file, appconfig, env };
	app_flags_snapshot s = (app_flags_snapshot)(generation & 0xffff) << 48;

	for (int f = 0; f < APP_FLAG_COUNT; f++) {
		uint64_t on = defs[f].def, src = APP_FLAG_SRC_DEFAULT;

		for (int l = APP_FLAG_SRC_FILE; l < APP_FLAG_SRC_COUNT; l++)
			if (layer[l] && (layer[l]->set >> f) & 1) {
				on = (layer[l]->on >> f) & 1;
				src = (uint64_t)l;
			}
		s |= on << f | src << (16 + 2 * f);
	}
	return s;
}

struct app_flags {
	_Atomic app_flags_snapshot now;   /* the hot path reads only this */

	/* Below: the reloader's, under lock. */
	pthread_mutex_t lock;
	app_flag_values env, file, appconfig;
	bool has_file, has_appconfig_values;
	char path[256];
	struct stat seen;            /* the file as last read */
	int reload_seconds;
	struct cart_appconfig *ac;
	int floor_seconds;
	bool ac_failing;             /* log the first failure of a run only */
	int64_t next_ac_wait_ms;     /* after the poll at start */
	unsigned generation;
	app_flags_change_fn on_change;
	void *change_self;

	/* The thread. */
	pthread_mutex_t wake_lock;
	pthread_cond_t wake;
	bool kick, stop, started;
	pthread_t thread;

	atomic_ullong reloads[RS_COUNT][OUT_COUNT];
};

app_flags_snapshot app_flags_get(const app_flags *f)
{
	if (!f)
		return app_flags_combine(NULL, NULL, NULL, 0);
	return atomic_load_explicit(&((app_flags *)f)->now, memory_order_acquire);
}

void app_flags_json(app_flags_snapshot s, buf *out)
{
	buf_puts(out, ",\"flags\":{");
	for (int f = 0; f < APP_FLAG_COUNT; f++) {
		buf_printf(out, "%s\"%s\":{\"on\":%s,\"source\":\"%s\"}", f ? "," : "",
			   defs[f].name, app_flags_on(s, (app_flag)f) ? "true" : "false",
			   source_names[app_flags_source(s, (app_flag)f)]);
	}
	buf_puts(out, "}");
}

static void log_flags(log_level lvl, const char *msg, app_flags_snapshot s)
{
	buf b;

	buf_init(&b, 1024);
	app_flags_json(s, &b);
	log_write(lvl, msg, b.failed ? NULL : b.data);
	buf_release(&b);
}

/* Under lock: a new snapshot from the sources, published if it differs. */
static void publish(app_flags *f)
{
	app_flags_snapshot before = atomic_load_explicit(&f->now, memory_order_relaxed);
	app_flags_snapshot next = app_flags_combine(f->has_file ? &f->file : NULL,
						    f->has_appconfig_values ? &f->appconfig : NULL,
						    &f->env, f->generation);
	const uint64_t payload = ((uint64_t)1 << 48) - 1;

	if ((next & payload) == (before & payload))
		return;
	f->generation++;
	next = (next & payload) | (uint64_t)(f->generation & 0xffff) << 48;
	atomic_store_explicit(&f->now, next, memory_order_release);
	if (f->started)   /* app_flags_start logs the flags it starts with */
		log_flags(LOG_INFO, "feature flags changed", next);
	if (f->on_change)
		f->on_change(f->change_self, before, next);
}

static void warn_source(const char *msg, const char *var, const char *why)
{
	char fields[512];
	buf b;

	buf_init_on(&b, fields, sizeof(fields), sizeof(fields) - 1);
	buf_puts(&b, ",\"variable\":");
	buf_json_str(&b, var);
	buf_puts(&b, ",\"reason\":");
	buf_json_str(&b, why);
	log_write(LOG_WARN, msg, b.failed ? NULL : fields);
}

static void count(app_flags *f, int source, int outcome)
{
	atomic_fetch_add_explicit(&f->reloads[source][outcome], 1, memory_order_relaxed);
}

/* --- the file -------------------------------------------------------------- */

/* The file's bytes (at most APP_FLAGS_DOC_MAX + 1, to tell "too large"). */
static int read_file(const char *path, char **data, size_t *len, struct stat *st,
		     char *why, size_t why_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = APP_FLAGS_DOC_MAX + 1, n = 0;
	char *p;

	if (fd < 0 || fstat(fd, st)) {
		snprintf(why, why_len, "cannot read it: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode) || !(p = malloc(cap))) {
		snprintf(why, why_len, S_ISREG(st->st_mode) ? "out of memory"
							     : "not a regular file");
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t r = read(fd, p + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == cap)
			break;
	}
	close(fd);
	*data = p;
	*len = n;
	return 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Under lock.  why set on failure. */
static int load_file(app_flags *f, bool force, char *why, size_t why_len)
{
	struct stat st;
	app_flag_values v;
	char *data;
	size_t len;
	int rc;

	if (!force && f->has_file && !stat(f->path, &st) && same_file(&st, &f->seen))
		return 0;
	if (read_file(f->path, &data, &len, &st, why, why_len)) {
		count(f, RS_FILE, OUT_ERROR);
		return -1;
	}
	rc = app_flags_parse(data, len, &v, why, why_len);
	free(data);
	if (rc) {
		f->seen = st;   /* warn once per version of the file */
		count(f, RS_FILE, OUT_INVALID);
		return -1;
	}
	f->seen = st;
	f->file = v;
	f->has_file = true;
	count(f, RS_FILE, OUT_APPLIED);
	return 0;
}

int app_flags_reload_file(app_flags *f, bool force)
{
	char why[256];
	struct stat st;
	int rc;

	if (!f->path[0])
		return 0;
	pthread_mutex_lock(&f->lock);
	/* An invalid version already warned about is not read again. */
	if (!force && !stat(f->path, &st) && same_file(&st, &f->seen)) {
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	rc = load_file(f, true, why, sizeof(why));
	if (rc)
		warn_source("feature flags file not applied: keeping the last good flags",
			    "FEATURE_FLAGS_FILE", why);
	else
		publish(f);
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* --- AppConfig ------------------------------------------------------------- */

int app_flags_apply_appconfig(app_flags *f, const char *data, size_t len)
{
	app_flag_values v;
	char why[256];
	int rc;

	pthread_mutex_lock(&f->lock);
	rc = app_flags_parse(data, len, &v, why, sizeof(why));
	if (rc) {
		count(f, RS_APPCONFIG, OUT_INVALID);
		warn_source("feature flags from AppConfig not applied: keeping the last good flags",
			    "FEATURE_FLAGS_APPCONFIG_PROFILE", why);
	} else {
		count(f, RS_APPCONFIG, OUT_APPLIED);
		f->appconfig = v;
		f->has_appconfig_values = true;
		publish(f);
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* A poll, retries included, takes at most this long: the first holds the
 * start, any other the shutdown (app_flags_free joins the reloader). */
#define POLL_MAX_MS 5000

/* One poll; returns the seconds until the next. */
static int poll_appconfig(app_flags *f)
{
	cart_appconfig_result res;
	struct timespec now;
	char why[512];
	int rc;

	clock_gettime(CLOCK_REALTIME, &now);   /* the AWS client's clock */
	rc = cart_appconfig_poll(f->ac, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 +
					POLL_MAX_MS, &res, why, sizeof(why));
	int wait = res.next_poll_seconds > f->floor_seconds ? res.next_poll_seconds
							    : f->floor_seconds;

	if (rc) {
		count(f, RS_APPCONFIG, OUT_ERROR);
		if (!f->ac_failing)
			warn_source("feature flags: AppConfig poll failed: keeping the "
				    "last good flags", "FEATURE_FLAGS_APPCONFIG_APPLICATION", why);
		f->ac_failing = true;
		return f->floor_seconds;
	}
	if (f->ac_failing)
		log_write(LOG_INFO, "feature flags: AppConfig answers again", NULL);
	f->ac_failing = false;
	if (!res.changed) {
		count(f, RS_APPCONFIG, OUT_NO_CHANGE);
		return wait;
	}
	app_flags_apply_appconfig(f, res.data, res.len);
	free(res.data);
	return wait;
}

/* --- the registry ----------------------------------------------------------- */

/* The reloader's waits are deadlines on the monotonic clock. */
static int init_wake(pthread_cond_t *c)
{
	pthread_condattr_t a;
	int rc = pthread_condattr_init(&a);

	if (rc)
		return rc;
	rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) || pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return rc;
}

int app_flags_new(app_flags **out, const app_config *cfg, char *err, size_t err_len)
{
	app_flags *f = calloc(1, sizeof(*f));
	char why[256];

	*out = NULL;
	if (!f) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->wake_lock, NULL);
	if (init_wake(&f->wake)) {
		snprintf(err, err_len, "cannot create the feature flags' condition variable");
		pthread_mutex_destroy(&f->wake_lock);
		pthread_mutex_destroy(&f->lock);
		free(f);
		return -1;
	}
	for (int i = 0; i < APP_FLAG_COUNT; i++) {
		const char *pin = (const char *)cfg + defs[i].pin;
		if (*pin) {
			f->env.set |= 1u << i;
			f->env.on |= (uint32_t)!strcmp(pin, "on") << i;
		}
	}
	snprintf(f->path, sizeof(f->path), "%s", cfg->feature_flags_file);
	f->reload_seconds = cfg->feature_flags_reload_seconds > 0 ?
			    cfg->feature_flags_reload_seconds : 30;
	atomic_store(&f->now, app_flags_combine(NULL, NULL, &f->env, 0));
	if (f->path[0] && load_file(f, true, why, sizeof(why))) {
		snprintf(err, err_len, "invalid FEATURE_FLAGS_FILE=\"%.64s\": %s",
			 f->path, why);
		app_flags_free(f);
		return -1;
	}
	atomic_store(&f->now, app_flags_combine(f->has_file ? &f->file : NULL, NULL,
						&f->env, 0));
	*out = f;
	return 0;
}

void app_flags_set_appconfig(app_flags *f, struct cart_appconfig *ac,
			     int floor_seconds)
{
	f->ac = ac;
	f->floor_seconds = floor_seconds > 0 ? floor_seconds : 1;
}

void app_flags_on_change(app_flags *f, app_flags_change_fn fn, void *self)
{
	f->on_change = fn;
	f->change_self = self;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until `until` (monotonic ms) or a kick; true when kicked. */
static bool wait_until(app_flags *f, int64_t until)
{
	struct timespec ts = { (time_t)(until / 1000), (long)(until % 1000) * 1000000L };
	bool kicked;

	pthread_mutex_lock(&f->wake_lock);
	while (!f->kick && !f->stop && until != INT64_MAX &&
	       pthread_cond_timedwait(&f->wake, &f->wake_lock, &ts) == 0)
		;
	while (until == INT64_MAX && !f->kick && !f->stop)
		pthread_cond_wait(&f->wake, &f->wake_lock);
	kicked = f->kick;
	f->kick = false;
	pthread_mutex_unlock(&f->wake_lock);
	return kicked;
}

static bool stopping(app_flags *f)
{
	bool s;

	pthread_mutex_lock(&f->wake_lock);
	s = f->stop;
	pthread_mutex_unlock(&f->wake_lock);
	return s;
}

/*
 * The reloader: the file every reload_seconds (read again only when it
 * changed) and at once on a kick (SIGHUP); AppConfig when its interval
 * is up.  The AppConfig lock is not held across the HTTP call: only this
 * thread touches f->ac.
 */
static void *reloader(void *arg)
{
	app_flags *f = arg;
	int64_t now = mono_ms();

	(void)pthread_setname_np(pthread_self(), "cart-flags");
	int64_t next_file = f->path[0] ? now + f->reload_seconds * 1000LL : INT64_MAX;
	int64_t next_ac = f->ac ? now + f->next_ac_wait_ms : INT64_MAX;

	while (!stopping(f)) {
		bool kicked = wait_until(f, next_file < next_ac ? next_file : next_ac);

		if (stopping(f))
			break;
		now = mono_ms();
		if (f->path[0] && (kicked || now >= next_file)) {
			app_flags_reload_file(f, kicked);
			next_file = now + f->reload_seconds * 1000LL;
		}
		if (f->ac && now >= next_ac)
			next_ac = mono_ms() + poll_appconfig(f) * 1000LL;
	}
	return NULL;
}

int app_flags_start(app_flags *f)
{
	if (f->ac)
		f->next_ac_wait_ms = poll_appconfig(f) * 1000LL;
	log_flags(LOG_INFO, "feature flags", app_flags_get(f));
	if (!f->path[0] && !f->ac)
		return 0;   /* pins and defaults only: nothing to reload */
	f->started = true;   /* before the thread reads it */
	if (pthread_create(&f->thread, NULL, reloader, f)) {
		f->started = false;
		return -1;
	}
	return 0;
}

void app_flags_reload(app_flags *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->wake_lock);
	f->kick = true;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->wake_lock);
}

void app_flags_free(app_flags *f)
{
	if (!f)
		return;
	if (f->started) {
		pthread_mutex_lock(&f->wake_lock);
		f->stop = true;
		pthread_cond_signal(&f->wake);
		pthread_mutex_unlock(&f->wake_lock);
		pthread_join(f->thread, NULL);
	}
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->wake_lock);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* --- views ----------------------------------------------------------------- */

static const char *const reload_sources[RS_COUNT] = { "file", "appconfig" };

static unsigned long long reloads(const app_flags *f, int source, int outcome)
{
	return f ? (unsigned long long)atomic_load_explicit(
			   &((app_flags *)f)->reloads[source][outcome], memory_order_relaxed)
		 : 0ULL;
}

void app_flags_metrics(const app_flags *f, buf *out)
{
	app_flags_snapshot s = app_flags_get(f);

	buf_puts(out, "# HELP cart_feature_flag Effective feature flags (1 on, 0 off), "
		 "labelled with the source that decided each: default, file, appconfig or env.\n"
		 "# TYPE cart_feature_flag gauge\n");
	for (int i = 0; i < APP_FLAG_COUNT; i++)
		buf_printf(out, "cart_feature_flag{name=\"%s\",source=\"%s\"} %d\n",
			   defs[i].name, source_names[app_flags_source(s, (app_flag)i)],
			   app_flags_on(s, (app_flag)i));
	buf_puts(out, "# HELP cart_feature_flags_reloads_total Reads of a feature-flag "
		 "source by outcome: applied, no_change (AppConfig had nothing new), "
		 "invalid (document refused, the last good flags kept), error "
		 "(unreadable or no answer).\n"
		 "# TYPE cart_feature_flags_reloads_total counter\n");
	for (int r = 0; r < RS_COUNT; r++)
		for (int o = 0; o < OUT_COUNT; o++) {
			if (r == RS_FILE && o == OUT_NO_CHANGE)
				continue;   /* AppConfig's only */
			buf_printf(out, "cart_feature_flags_reloads_total{source=\"%s\","
				   "outcome=\"%s\"} %llu\n", reload_sources[r],
				   outcome_names[o], reloads(f, r, o));
		}
	buf_puts(out, "# HELP cart_feature_flags_generation Changes of the effective "
		 "feature flags since the start (modulo 65536).\n"
		 "# TYPE cart_feature_flags_generation gauge\n");
	buf_printf(out, "cart_feature_flags_generation %u\n", app_flags_generation(s));
}

void app_flags_stats(void *self, buf *out)
{
	const app_flags *f = self;

	app_flags_json(app_flags_get(f), out);
	for (int r = 0; r < RS_COUNT; r++)
		for (int o = 0; o < OUT_COUNT; o++)
			if (r != RS_FILE || o != OUT_NO_CHANGE)
				buf_printf(out, ",\"%s_%s\":%llu", reload_sources[r],
					   outcome_names[o], reloads(f, r, o));
}
