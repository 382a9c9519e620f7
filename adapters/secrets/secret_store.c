/*
 * The secret store: sources, their cached values, and the one thread that
 * refreshes them before they expire (see secrets.h for the rules).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "secrets/secrets.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 60000

typedef struct source {
	const char *name;            /* borrowed literal */
	cart_secret_kind kind;
	char path[4096];             /* CART_SECRET_FILE */
	cart_secret_ref ref;         /* CART_SECRET_AWS */
	cart_secret_listener listener;
	void *ctx;
	/* guarded by the store's lock */
	char *value;                 /* owned, wiped when replaced */
	size_t len;
	int64_t fetched_ms;          /* wall clock of the last good read */
	int64_t due_ms;              /* next refresh (monotonic) */
	int fail_run;                /* failures in a row */
	uint64_t fetches, failures, changes;
} source;

struct cart_secrets {
	int64_t ttl_ms;
	cart_aws_client *client;     /* borrowed; NULL: no AWS sources */
	const cart_clock *clock;
	const cart_aws_log *log;
	pthread_mutex_t lock;        /* guards the sources' values and times */
	pthread_cond_t wake;         /* stop (monotonic clock) */
	pthread_t thread;
	bool started, stop;
	int n;
	source src[CART_SECRETS_MAX];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cart_secrets_new(cart_secrets **out, int64_t ttl_ms, cart_aws_client *client,
		     const cart_clock *clock, const cart_aws_log *log)
{
	cart_secrets *s;
	pthread_condattr_t ca;

	*out = NULL;
	if (ttl_ms < 1000 || ttl_ms > 86400000LL)
		return CART_EINVALID;
	s = calloc(1, sizeof(*s));
	if (!s)
		return CART_ENOMEM;
	s->ttl_ms = ttl_ms;
	s->client = client;
	s->clock = clock;
	s->log = log;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	*out = s;
	return CART_OK;
}

void cart_secrets_free(cart_secrets *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
	}
	for (int i = 0; i < s->n; i++)
		cart_secret_wipe_free(s->src[i].value, s->src[i].len);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* --- reading one source ---------------------------------------------------- */

static int read_file(char **out, size_t *out_len, const char *path, char *err,
		     size_t err_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	ssize_t r = 0;
	size_t n = 0;
	char *buf;

	*out = NULL;
	if (fd < 0) {
		snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
		return errno == ENOENT ? CART_ENOTFOUND : CART_EBACKEND;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > CART_SECRET_MAX_BYTES + 2) {
		snprintf(err, err_len, "%s is not a regular file of at most %d bytes",
			 path, CART_SECRET_MAX_BYTES);
		close(fd);
		return CART_EBACKEND;
	}
	buf = malloc(CART_SECRET_MAX_BYTES + 3);
	while (buf && n < CART_SECRET_MAX_BYTES + 3 &&
	       ((r = read(fd, buf + n, CART_SECRET_MAX_BYTES + 3 - n)) > 0 ||
		(r < 0 && errno == EINTR)))
		n += r > 0 ? (size_t)r : 0;
	close(fd);
	/* A file written by hand or by echo ends with a newline: not part of
	 * a password or a bus name. */
	if (n && buf && buf[n - 1] == '\n')
		n -= 1 + (n > 1 && buf[n - 2] == '\r');
	if (!buf || r < 0 || n > CART_SECRET_MAX_BYTES) {
		snprintf(err, err_len, "cannot read %s (at most %d bytes)", path,
			 CART_SECRET_MAX_BYTES);
		cart_secret_wipe_free(buf, buf ? CART_SECRET_MAX_BYTES + 3 : 0);
		return CART_EBACKEND;
	}
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return CART_OK;
}

/* Reads src without the lock (only the refresher or wiring does). */
static int fetch(cart_secrets *s, const source *src, char **out, size_t *len,
		 char *err, size_t err_len)
{
	char version[65];

	if (src->kind == CART_SECRET_FILE)
		return read_file(out, len, src->path, err, err_len);
	return cart_secretsmanager_get(out, len, version, s->client, &src->ref, err, err_len);
}

/* --- scheduling ------------------------------------------------------------ */

static int64_t jitter(int64_t span)
{
	uint32_t r = 0;

	if (span <= 0 || getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		return 0;
	return (int64_t)(r % (uint64_t)span);
}

/* After a good read: at 3/4 of the TTL, less up to 10 % of it. */
static int64_t next_refresh(const cart_secrets *s)
{
	return mono_ms() + s->ttl_ms * 3 / 4 - jitter(s->ttl_ms / 10);
}

/* After the n-th failure in a row: 1 s, 2 s, 4 s ... 60 s, at most the TTL. */
static int64_t next_retry(const cart_secrets *s, int n)
{
	int64_t d = BACKOFF_FIRST_MS << (n > 7 ? 6 : n - 1);

	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	if (d > s->ttl_ms)
		d = s->ttl_ms;
	return mono_ms() + d;
}

/* --- logging (names and reasons only, never a value) -------------------------- */

static void log_line(const cart_secrets *s, int level, const char *msg,
		     const source *src, const char *why, long long count)
{
	cart_aws_fields f;

	cart_aws_fields_init(&f);
	cart_aws_fields_str(&f, "secret", src->name, 0);
	cart_aws_fields_str(&f, "source", src->kind == CART_SECRET_FILE ? src->path
								  : src->ref.id, 200);
	if (why)
		cart_aws_fields_str(&f, "error", why, 300);
	if (count >= 0)
		cart_aws_fields_int(&f, "failures", count);
	cart_aws_log_write(s->log, level, msg, &f);
}

/* --- refreshing ------------------------------------------------------------- */

/* One refresh of src[i]; the listener hears of a changed value. */
static void refresh_one(cart_secrets *s, int i)
{
	source *src = &s->src[i];
	char err[512] = "", *v = NULL, *old = NULL;
	size_t len = 0, old_len = 0;
	bool changed = false;
	int run = 0, rc = fetch(s, src, &v, &len, err, sizeof(err));

	pthread_mutex_lock(&s->lock);
	if (rc == CART_OK) {
		run = src->fail_run;
		src->fail_run = 0;
		src->fetches++;
		src->fetched_ms = cart_clock_now(s->clock);
		src->due_ms = next_refresh(s);
		changed = len != src->len || memcmp(v, src->value, len);
		if (changed) {
			old = src->value;
			old_len = src->len;
			src->value = v;
			src->len = len;
			src->changes++;
			v = NULL;
		}
	} else {
		run = ++src->fail_run;
		src->failures++;
		src->due_ms = next_retry(s, run);
	}
	pthread_mutex_unlock(&s->lock);
	if (rc != CART_OK && run == 1)
		log_line(s, CART_AWS_LOG_WARN, "secret refresh failed: keeping the last "
			 "good value, retrying with backoff", src, err, -1);
	if (rc == CART_OK && run > 0)
		log_line(s, CART_AWS_LOG_INFO, "secret refresh recovered", src, NULL, run);
	if (changed) {
		/* old stays valid until the listener returns: value is new */
		if (src->listener)
			src->listener(src->ctx, src->value, src->len);
		log_line(s, CART_AWS_LOG_INFO, "secret changed: new value in use", src, NULL, -1);
	}
	cart_secret_wipe_free(old, old_len);
	cart_secret_wipe_free(v, len);
}

void cart_secrets_refresh_all(cart_secrets *s)
{
	for (int i = 0; i < s->n; i++)
		refresh_one(s, i);
}

/* The source due first, and when (monotonic ms). */
static int due_first(const cart_secrets *s, int64_t *when)
{
	int best = -1;

	for (int i = 0; i < s->n; i++)
		if (best < 0 || s->src[i].due_ms < s->src[best].due_ms)
			best = i;
	*when = best >= 0 ? s->src[best].due_ms : INT64_MAX;
	return best;
}

static void *refresher(void *arg)
{
	cart_secrets *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		int64_t when;
		int i = due_first(s, &when);

		if (mono_ms() >= when) {
			pthread_mutex_unlock(&s->lock);
			refresh_one(s, i);
			pthread_mutex_lock(&s->lock);
			continue;
		}
		struct timespec ts = { when / 1000, (when % 1000) * 1000000L };
		pthread_cond_timedwait(&s->wake, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int cart_secrets_start(cart_secrets *s)
{
	if (!s->n || s->started)
		return 0;
	if (pthread_create(&s->thread, NULL, refresher, s))
		return -1;
	s->started = true;
	return 0;
}

/* --- wiring ------------------------------------------------------------------ */

int cart_secrets_add(cart_secrets *s, const char *name, cart_secret_kind kind,
		     const char *where, cart_secret_listener listener, void *ctx,
		     int *index, char *err, size_t err_len)
{
	source *src = &s->src[s->n];
	char why[512];
	int rc;

	if (s->n >= CART_SECRETS_MAX || s->started) {
		snprintf(err, err_len, "%s: too many secrets", name);
		return CART_EINVALID;
	}
	memset(src, 0, sizeof(*src));
	src->name = name;
	src->kind = kind;
	src->listener = listener;
	src->ctx = ctx;
	if (kind == CART_SECRET_AWS && (!s->client ||
					cart_secret_ref_parse(&src->ref, where, why, sizeof(why)))) {
		snprintf(err, err_len, "invalid %s: %s", name, s->client ? why : "no client");
		return CART_EINVALID;
	}
	if (kind == CART_SECRET_FILE &&
	    (!*where || snprintf(src->path, sizeof(src->path), "%s", where) >= (int)sizeof(src->path))) {
		snprintf(err, err_len, "invalid %s: a path is 1..4095 bytes", name);
		return CART_EINVALID;
	}
	rc = fetch(s, src, &src->value, &src->len, why, sizeof(why));
	if (rc != CART_OK) {
		snprintf(err, err_len, "%s: %s", name, why);
		return rc;
	}
	src->fetches = 1;
	src->fetched_ms = cart_clock_now(s->clock);
	src->due_ms = next_refresh(s);
	*index = s->n++;
	return CART_OK;
}

int cart_secrets_get(cart_secrets *s, int index, char **out, size_t *len)
{
	int rc = CART_OK;

	*out = NULL;
	pthread_mutex_lock(&s->lock);
	if (index < 0 || index >= s->n)
		rc = CART_EINVALID;
	else if (!(*out = malloc(s->src[index].len + 1)))
		rc = CART_ENOMEM;
	else {
		memcpy(*out, s->src[index].value, s->src[index].len + 1);
		*len = s->src[index].len;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int cart_secrets_stats(cart_secrets *s, cart_secret_stats *out, int max)
{
	int64_t now = cart_clock_now(s->clock);

	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->n && i < max; i++) {
		const source *src = &s->src[i];

		out[i] = (cart_secret_stats){
			.name = src->name, .kind = src->kind, .fetches = src->fetches,
			.failures = src->failures, .changes = src->changes,
			.fetched_ms = src->fetched_ms, .failing = src->fail_run > 0,
			.expired = now - src->fetched_ms > s->ttl_ms,
		};
	}
	pthread_mutex_unlock(&s->lock);
	return s->n;
}
