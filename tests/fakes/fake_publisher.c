#include "fakes/fake_publisher.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef char user_name[CART_ID_MAX + 1];

typedef struct call_rec {
	size_t entries, users;
} call_rec;

struct fake_publisher {
	pthread_mutex_t lock;   /* guards every field below */
	cart_event *events;
	size_t count, cap;
	size_t calls;
	int fail_n;             /* calls still to fail; < 0: all */
	int fail_err;
	int delay_ms;
	user_name fail_user;    /* fail_user[0] == 0: no entry fault */
	int64_t fail_version;
	user_name refuse_user;  /* refuse_user[0] == 0: no permanent refusal */
	int64_t refuse_version;
	char refuse_code[64];
	size_t refusals;
	call_rec *recs;         /* one per call */
	size_t n_recs, cap_recs;
	user_name *flying;      /* users of the calls in flight, n_flying */
	size_t n_flying, cap_flying;
	size_t in_flight, max_in_flight, overlaps;
};

static int grow(struct fake_publisher *fp, size_t need)
{
	if (need <= fp->cap)
		return 0;
	size_t cap = fp->cap ? fp->cap * 2 : 16;
	while (cap < need)
		cap *= 2;
	cart_event *ev = realloc(fp->events, cap * sizeof(*ev));
	if (!ev)
		return -1;
	fp->events = ev;
	fp->cap = cap;
	return 0;
}

/* Generic growth of an array of elements of size sz to hold need. */
static int grow_array(void **arr, size_t *cap, size_t need, size_t sz)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 16;
	while (c < need)
		c *= 2;
	void *p = realloc(*arr, c * sz);
	if (!p)
		return -1;
	*arr = p;
	*cap = c;
	return 0;
}

static bool seen_before(const cart_event *ev, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (!strcmp(ev[j].user_id, ev[i].user_id))
			return true;
	return false;
}

static size_t flying_find(const struct fake_publisher *fp, const char *user)
{
	for (size_t k = 0; k < fp->n_flying; k++)
		if (!strcmp(fp->flying[k], user))
			return k;
	return (size_t)-1;
}

/* Records the call and its users as in flight.  Caller holds the lock. */
static int call_begin(struct fake_publisher *fp, const cart_event *ev, size_t n)
{
	size_t users = 0;
	bool overlap = false;

	if (grow_array((void **)&fp->recs, &fp->cap_recs, fp->n_recs + 1,
		       sizeof(*fp->recs)) ||
	    grow_array((void **)&fp->flying, &fp->cap_flying, fp->n_flying + n,
		       sizeof(*fp->flying)))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (seen_before(ev, i))
			continue;
		users++;
		if (flying_find(fp, ev[i].user_id) != (size_t)-1)
			overlap = true;
		strcpy(fp->flying[fp->n_flying++], ev[i].user_id);
	}
	fp->recs[fp->n_recs++] = (call_rec){ .entries = n, .users = users };
	fp->calls++;
	fp->overlaps += overlap;
	if (++fp->in_flight > fp->max_in_flight)
		fp->max_in_flight = fp->in_flight;
	return 0;
}

static void call_end(struct fake_publisher *fp, const cart_event *ev, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t k;
		if (seen_before(ev, i) ||
		    (k = flying_find(fp, ev[i].user_id)) == (size_t)-1)
			continue;
		memcpy(fp->flying[k], fp->flying[--fp->n_flying], sizeof(user_name));
	}
	fp->in_flight--;
}

static bool entry_faulty(struct fake_publisher *fp, const cart_event *ev)
{
	return fp->fail_user[0] && !strcmp(fp->fail_user, ev->user_id) &&
	       fp->fail_version == ev->cart_version;
}

static bool entry_refused(struct fake_publisher *fp, const cart_event *ev)
{
	return fp->refuse_user[0] && !strcmp(fp->refuse_user, ev->user_id) &&
	       fp->refuse_version == ev->cart_version;
}

/*
 * Accepts ev[0..n) but the faulty and the refused entry; res NULL: all or
 * nothing.
 */
static int accept(struct fake_publisher *fp, const cart_event *ev, size_t n,
		  cart_publish_result *res)
{
	size_t bad = n, refused = n;

	for (size_t i = 0; i < n; i++) {
		if (bad == n && entry_faulty(fp, &ev[i]))
			bad = i;
		if (refused == n && entry_refused(fp, &ev[i]))
			refused = i;
	}
	if (bad < n)
		fp->fail_user[0] = 0;   /* once */
	if (refused < n)
		fp->refusals++;
	if ((bad < n || refused < n) && !res)
		return CART_EBACKEND;
	if (grow(fp, fp->count + n) != 0)
		return CART_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (res && i == refused) {
			res[i].status = CART_PUBLISH_REFUSED;
			snprintf(res[i].code, sizeof(res[i].code), "%s", fp->refuse_code);
		} else if (res) {
			res[i].status = i == bad ? CART_PUBLISH_RETRY : CART_PUBLISH_ACCEPTED;
			snprintf(res[i].code, sizeof(res[i].code), "%s",
				 i == bad ? "InternalFailure" : "");
		}
		if (i != bad && i != refused)
			fp->events[fp->count++] = ev[i];
	}
	return bad < n || refused < n ? CART_EBACKEND : CART_OK;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (ms > 0 && nanosleep(&ts, &ts))
		;
}

static int pub_publish_results(void *self, const cart_event *events, size_t n,
			       cart_publish_result *res)
{
	struct fake_publisher *fp = self;
	int rc, delay;

	pthread_mutex_lock(&fp->lock);
	rc = call_begin(fp, events, n) ? CART_ENOMEM : CART_OK;
	delay = fp->delay_ms;
	pthread_mutex_unlock(&fp->lock);
	if (rc)
		return rc;
	sleep_ms(delay);
	pthread_mutex_lock(&fp->lock);
	call_end(fp, events, n);
	if (fp->fail_n != 0) {
		if (fp->fail_n > 0)
			fp->fail_n--;
		rc = fp->fail_err;
		for (size_t i = 0; res && i < n; i++) {
			res[i].status = CART_PUBLISH_RETRY;
			res[i].code[0] = '\0';
		}
	} else {
		rc = accept(fp, events, n, res);
	}
	pthread_mutex_unlock(&fp->lock);
	return rc;
}

/* Version 2: the same answers, a refusal for good is just "not accepted". */
static int pub_publish_each(void *self, const cart_event *events, size_t n,
			    bool *ok)
{
	cart_publish_result *res = calloc(n ? n : 1, sizeof(*res));
	int rc;

	if (!res)
		return CART_ENOMEM;
	rc = pub_publish_results(self, events, n, res);
	for (size_t i = 0; i < n; i++)
		ok[i] = rc != CART_ENOMEM && res[i].status == CART_PUBLISH_ACCEPTED;
	free(res);
	return rc;
}

static int pub_publish(void *self, const cart_event *events, size_t n)
{
	return pub_publish_results(self, events, n, NULL);
}

static void pub_destroy(void *self)
{
	struct fake_publisher *fp = self;
	pthread_mutex_destroy(&fp->lock);
	free(fp->events);
	free(fp->recs);
	free(fp->flying);
	free(fp);
}

static const cart_publisher_ops fake_publisher_ops = {
	.version = CART_PUBLISHER_OPS_VERSION,
	.publish = pub_publish,
	.destroy = pub_destroy,
	.publish_each = pub_publish_each,
	.publish_results = pub_publish_results,
};

static const cart_publisher_ops fake_publisher_v1_ops = {
	.version = 1,
	.publish = pub_publish,
	.destroy = pub_destroy,
};

static int fake_new(cart_publisher *out, fake_publisher **ctl,
		    const cart_publisher_ops *ops)
{
	struct fake_publisher *fp = calloc(1, sizeof(*fp));
	if (!fp)
		return -1;
	pthread_mutex_init(&fp->lock, NULL);
	fp->fail_err = CART_EBACKEND;
	out->ops = ops;
	out->self = fp;
	if (ctl)
		*ctl = fp;
	return 0;
}

int fake_publisher_new(cart_publisher *out, fake_publisher **ctl)
{
	return fake_new(out, ctl, &fake_publisher_ops);
}

int fake_publisher_new_v1(cart_publisher *out, fake_publisher **ctl)
{
	return fake_new(out, ctl, &fake_publisher_v1_ops);
}

/* Reads one size_t field under the lock. */
#define LOCKED_READ(cfp, expr) do { \
	struct fake_publisher *fp = (struct fake_publisher *)(cfp); \
	size_t v; \
	pthread_mutex_lock(&fp->lock); \
	v = (expr); \
	pthread_mutex_unlock(&fp->lock); \
	return v; \
} while (0)

size_t fake_publisher_count(const fake_publisher *cfp)
{
	LOCKED_READ(cfp, fp->count);
}

cart_event fake_publisher_event(const fake_publisher *cfp, size_t i)
{
	struct fake_publisher *fp = (struct fake_publisher *)cfp;
	cart_event ev;
	memset(&ev, 0, sizeof(ev));
	pthread_mutex_lock(&fp->lock);
	if (i < fp->count)
		ev = fp->events[i];
	pthread_mutex_unlock(&fp->lock);
	return ev;
}

size_t fake_publisher_calls(const fake_publisher *cfp)
{
	LOCKED_READ(cfp, fp->calls);
}

size_t fake_publisher_call_entries(const fake_publisher *cfp, size_t i)
{
	LOCKED_READ(cfp, i < fp->n_recs ? fp->recs[i].entries : 0);
}

size_t fake_publisher_call_users(const fake_publisher *cfp, size_t i)
{
	LOCKED_READ(cfp, i < fp->n_recs ? fp->recs[i].users : 0);
}

size_t fake_publisher_max_in_flight(const fake_publisher *cfp)
{
	LOCKED_READ(cfp, fp->max_in_flight);
}

size_t fake_publisher_overlaps(const fake_publisher *cfp)
{
	LOCKED_READ(cfp, fp->overlaps);
}

void fake_publisher_fail(fake_publisher *fp, int n, int err)
{
	pthread_mutex_lock(&fp->lock);
	fp->fail_n = n;
	fp->fail_err = err;
	pthread_mutex_unlock(&fp->lock);
}

void fake_publisher_set_delay_ms(fake_publisher *fp, int ms)
{
	pthread_mutex_lock(&fp->lock);
	fp->delay_ms = ms;
	pthread_mutex_unlock(&fp->lock);
}

void fake_publisher_fail_entry(fake_publisher *fp, const char *user,
			       int64_t cart_version)
{
	pthread_mutex_lock(&fp->lock);
	snprintf(fp->fail_user, sizeof(fp->fail_user), "%s", user);
	fp->fail_version = cart_version;
	pthread_mutex_unlock(&fp->lock);
}

void fake_publisher_refuse_entry(fake_publisher *fp, const char *user,
				 int64_t cart_version, const char *code)
{
	pthread_mutex_lock(&fp->lock);
	snprintf(fp->refuse_user, sizeof(fp->refuse_user), "%s", user);
	fp->refuse_version = cart_version;
	snprintf(fp->refuse_code, sizeof(fp->refuse_code), "%s", code);
	pthread_mutex_unlock(&fp->lock);
}

size_t fake_publisher_refusals(const fake_publisher *cfp)
{
	LOCKED_READ(cfp, fp->refusals);
}

void fake_publisher_reset(fake_publisher *fp)
{
	pthread_mutex_lock(&fp->lock);
	fp->refuse_user[0] = 0;
	fp->refusals = 0;
	fp->count = 0;
	fp->calls = 0;
	fp->fail_n = 0;
	fp->fail_user[0] = 0;
	fp->n_recs = 0;
	fp->max_in_flight = 0;
	fp->overlaps = 0;
	pthread_mutex_unlock(&fp->lock);
}
