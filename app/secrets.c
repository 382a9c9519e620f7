/*
 * Which variables name a secret, which source each uses, and the store
 * that keeps the file and Secrets Manager values current (secrets.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "buf.h"
#include "eventbridge/eventbridge_publisher.h"
#include "log.h"
#include "ratelimit.h"
#include "secrets.h"
#include "secrets/secrets.h"

/* One secret-capable variable and the app_config fields of its sources. */
typedef struct secret_spec {
	const char *name;            /* X */
	const char *file_var;        /* X_FILE */
	const char *id_var;          /* X_SECRET_ID */
	size_t given;                /* bool: X set (inline) */
	size_t file;                 /* char[]: X_FILE, or 0: the consumer's own */
	size_t id;                   /* char[]: X_SECRET_ID */
	const char *other;           /* a further source, for the error line */
} secret_spec;

#define OFF(field) offsetof(app_config, field)

static const secret_spec specs[APP_SECRET_COUNT] = {
	[APP_SECRET_JWKS] = { "JWT_JWKS", "JWT_JWKS_FILE", "JWT_JWKS_SECRET_ID",
			      OFF(set_jwt_jwks), 0, OFF(jwt_jwks_secret_id), "JWT_JWKS_URL" },
	[APP_SECRET_REDIS_PASSWORD] = { "REDIS_PASSWORD", "REDIS_PASSWORD_FILE",
					"REDIS_PASSWORD_SECRET_ID", OFF(set_redis_password),
					OFF(redis_password_file), OFF(redis_password_secret_id),
					"a password in REDIS_URL" },
	[APP_SECRET_BUS_NAME] = { "EVENTBRIDGE_BUS_NAME", "EVENTBRIDGE_BUS_NAME_FILE",
				  "EVENTBRIDGE_BUS_NAME_SECRET_ID", OFF(set_bus_name),
				  OFF(eventbridge_bus_name_file),
				  OFF(eventbridge_bus_name_secret_id), NULL },
};

static bool given(const app_config *cfg, const secret_spec *sp)
{
	return *(const bool *)((const char *)cfg + sp->given);
}

static const char *field(const app_config *cfg, size_t off)
{
	return off ? (const char *)cfg + off : "";
}

/* The sources besides X, X_FILE and X_SECRET_ID that are set. */
static bool other_set(const app_config *cfg, app_secret_id id)
{
	const char *at;

	switch (id) {
	case APP_SECRET_JWKS:
		return cfg->jwt_jwks_url[0];
	case APP_SECRET_REDIS_PASSWORD:   /* redis://[user]:password@host */
		at = strrchr(cfg->redis_url, '@');
		return at && at > cfg->redis_url + 8 &&
		       memchr(cfg->redis_url + 8, ':', (size_t)(at - cfg->redis_url - 8));
	default:
		return false;
	}
}

static int check_one(const app_config *cfg, app_secret_id id, char *err, size_t err_len)
{
	const secret_spec *sp = &specs[id];
	const char *file = id == APP_SECRET_JWKS ? cfg->jwt_jwks_file : field(cfg, sp->file);
	const char *ref = field(cfg, sp->id);
	int n = given(cfg, sp) + !!file[0] + !!ref[0] + other_set(cfg, id);
	cart_secret_ref parsed;
	char why[200];

	if (n > 1) {
		snprintf(err, err_len, "set only one of %s, %s, %s%s%s", sp->name,
			 sp->file_var, sp->id_var, sp->other ? " or " : "",
			 sp->other ? sp->other : "");
		return -1;
	}
	if (ref[0] && cart_secret_ref_parse(&parsed, ref, why, sizeof(why))) {
		snprintf(err, err_len, "invalid %s: %s", sp->id_var, why);
		return -1;
	}
	return 0;
}

int app_secrets_check(const app_config *cfg, char *err, size_t err_len)
{
	for (int i = 0; i < APP_SECRET_COUNT; i++)
		if (check_one(cfg, (app_secret_id)i, err, err_len))
			return -1;
	return 0;
}

bool app_secrets_use_aws(const app_config *cfg)
{
	for (int i = 0; i < APP_SECRET_COUNT; i++)
		if (field(cfg, specs[i].id)[0])
			return true;
	return false;
}

/* --- the values ------------------------------------------------------------ */

typedef struct slot {
	const char *source;          /* "env", "file", "secretsmanager"; NULL: none */
	char *inline_value;          /* env: a copy, wiped at free */
	size_t inline_len;
	int index;                   /* file, secretsmanager: in the store */
	app_secret_fn fn;
	void *ctx;
} slot;

struct app_secrets {
	cart_secrets *store;
	const cart_clock *clock;
	int ttl_s;
	slot slots[APP_SECRET_COUNT];
};

static void changed(void *ctx, const char *value, size_t len)
{
	slot *sl = ctx;

	if (sl->fn)
		sl->fn(sl->ctx, value, len);
}

static int add_stored(app_secrets *s, const app_config *cfg, app_secret_id id,
		      int *exit_code, char *err, size_t err_len)
{
	const secret_spec *sp = &specs[id];
	slot *sl = &s->slots[id];
	const char *file = field(cfg, sp->file), *ref = field(cfg, sp->id);
	bool aws = ref[0];
	int rc;

	if (!file[0] && !aws)
		return 0;
	rc = cart_secrets_add(s->store, aws ? sp->id_var : sp->file_var,
			      aws ? CART_SECRET_AWS : CART_SECRET_FILE, aws ? ref : file,
			      changed, sl, &sl->index, err, err_len);
	if (rc) {
		*exit_code = rc == CART_ENOTFOUND || rc == CART_EINVALID ? 2 : 1;
		return -1;
	}
	sl->source = aws ? "secretsmanager" : "file";
	return 0;
}

static int add_inline(app_secrets *s, const app_config *cfg, config_getenv_fn env,
		      app_secret_id id)
{
	const secret_spec *sp = &specs[id];
	const char *v = given(cfg, sp) ? env(sp->name) : NULL;
	slot *sl = &s->slots[id];

	if (!v || !*v || id == APP_SECRET_BUS_NAME)   /* the bus: cfg holds it */
		return 0;
	sl->inline_len = strlen(v);
	sl->inline_value = strdup(v);
	sl->source = "env";
	return sl->inline_value ? 0 : -1;
}

int app_secrets_new(app_secrets **out, const app_config *cfg, config_getenv_fn env,
		    cart_aws_client *sm, const cart_clock *clock,
		    const cart_aws_log *log, int *exit_code, char *err, size_t err_len)
{
	app_secrets *s = calloc(1, sizeof(*s));

	*out = NULL;
	*exit_code = 1;
	if (!s || cart_secrets_new(&s->store, (int64_t)cfg->secrets_ttl_seconds * 1000,
				   sm, clock, log)) {
		snprintf(err, err_len, "cannot set up the secrets (SECRETS_TTL_SECONDS)");
		app_secrets_free(s);
		return -1;
	}
	s->clock = clock;
	s->ttl_s = cfg->secrets_ttl_seconds;
	for (int i = 0; i < APP_SECRET_COUNT; i++) {
		if (add_inline(s, cfg, env, (app_secret_id)i)) {
			snprintf(err, err_len, "out of memory reading %s", specs[i].name);
			app_secrets_free(s);
			return -1;
		}
		if (add_stored(s, cfg, (app_secret_id)i, exit_code, err, err_len)) {
			app_secrets_free(s);
			return -1;
		}
	}
	*out = s;
	return 0;
}

void app_secrets_free(app_secrets *s)
{
	if (!s)
		return;
	cart_secrets_free(s->store);   /* first: no listener runs after this */
	for (int i = 0; i < APP_SECRET_COUNT; i++)
		cart_secret_wipe_free(s->slots[i].inline_value, s->slots[i].inline_len);
	free(s);
}

int app_secrets_get(app_secrets *s, app_secret_id id, char **out, size_t *len)
{
	slot *sl = &s->slots[id];

	*out = NULL;
	if (!sl->source)
		return 1;
	if (sl->inline_value) {
		*out = strdup(sl->inline_value);
		*len = sl->inline_len;
		return *out ? 0 : -1;
	}
	return cart_secrets_get(s->store, sl->index, out, len) ? -1 : 0;
}

const char *app_secrets_source(const app_secrets *s, app_secret_id id)
{
	return s ? s->slots[id].source : NULL;
}

void app_secrets_on_change(app_secrets *s, app_secret_id id, app_secret_fn fn,
			   void *ctx)
{
	s->slots[id].fn = fn;
	s->slots[id].ctx = ctx;
}

int app_secrets_start(app_secrets *s)
{
	return cart_secrets_start(s->store);
}

/* --- consumers: a new value goes where the old one went --------------------- */

static void jwks_changed(void *ctx, const char *value, size_t len)
{
	app_auth_set_jwks(ctx, value, len);
}

static void redis_password_changed(void *ctx, const char *value, size_t len)
{
	if (strlen(value) != len || app_ratelimit_set_redis_password(ctx, value))
		log_write(LOG_WARN, "new Redis password refused (longer than 255 bytes, "
			  "or a NUL byte): keeping the old one", NULL);
}

bool app_secrets_bus_valid(const char *bus, size_t len)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789-_./:";

	return len >= 1 && len < 256 && strlen(bus) == len && strspn(bus, ok) == len;
}

static void bus_changed(void *ctx, const char *value, size_t len)
{
	if (!app_secrets_bus_valid(value, len) ||
	    cart_eventbridge_publisher_set_bus(ctx, value))
		log_write(LOG_WARN, "new EventBridge bus name refused (1..255 of "
			  "A-Z a-z 0-9 -_./:): keeping the old one", NULL);
}

void app_secrets_bind(app_secrets *s, app_auth *auth, app_ratelimit *rl,
		      cart_publisher *eventbridge)
{
	if (auth)
		app_secrets_on_change(s, APP_SECRET_JWKS, jwks_changed, auth);
	if (rl)
		app_secrets_on_change(s, APP_SECRET_REDIS_PASSWORD, redis_password_changed, rl);
	if (eventbridge)
		app_secrets_on_change(s, APP_SECRET_BUS_NAME, bus_changed, eventbridge);
}

/* --- views ----------------------------------------------------------------------- */

static int stats_of(const app_secrets *s, cart_secret_stats *st)
{
	int n = cart_secrets_stats(s->store, st, CART_SECRETS_MAX);

	return n < CART_SECRETS_MAX ? n : CART_SECRETS_MAX;
}

static void family(buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void app_secrets_metrics(const app_secrets *s, buf *out)
{
	cart_secret_stats st[CART_SECRETS_MAX];
	int64_t now;
	int n = s ? stats_of(s, st) : 0;

	if (!n)
		return;
	now = cart_clock_now(s->clock);
	family(out, "cart_secret_reads_total", "counter",
	       "Reads of a secret from its file or Secrets Manager, by outcome.");
	for (int i = 0; i < n; i++)
		buf_printf(out, "cart_secret_reads_total{secret=\"%s\",outcome=\"ok\"} %llu\n"
			   "cart_secret_reads_total{secret=\"%s\",outcome=\"failed\"} %llu\n",
			   st[i].name, (unsigned long long)st[i].fetches, st[i].name,
			   (unsigned long long)st[i].failures);
	family(out, "cart_secret_changes_total", "counter",
	       "New values of a secret picked up while running (rotations).");
	for (int i = 0; i < n; i++)
		buf_printf(out, "cart_secret_changes_total{secret=\"%s\"} %llu\n",
			   st[i].name, (unsigned long long)st[i].changes);
	family(out, "cart_secret_age_seconds", "gauge",
	       "Seconds since the value in use was read (above SECRETS_TTL_SECONDS: refreshes fail).");
	for (int i = 0; i < n; i++)
		buf_printf(out, "cart_secret_age_seconds{secret=\"%s\"} %.3f\n", st[i].name,
			   (double)(now - st[i].fetched_ms) / 1000.0);
}

void app_secrets_stats(void *self, buf *out)
{
	cart_secret_stats st[CART_SECRETS_MAX];
	int n = stats_of(self, st);

	for (int i = 0; i < n; i++)
		buf_printf(out, ",\"%s\":{\"reads\":%llu,\"failures\":%llu,\"changes\":%llu,"
			   "\"failing\":%s,\"expired\":%s}", st[i].name,
			   (unsigned long long)st[i].fetches, (unsigned long long)st[i].failures,
			   (unsigned long long)st[i].changes, st[i].failing ? "true" : "false",
			   st[i].expired ? "true" : "false");
}
