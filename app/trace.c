/*
 * Trace headers, ids and the default sampling rule (see trace.h).
 * Header formats: the X-Ray developer guide's "Tracing header" and W3C
 * Trace Context level 1 (traceparent).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "buf.h"
#include "trace.h"

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* n hex digits at s (no NUL check needed: a NUL is not hex). */
static bool hex_run(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_hex(s[i]))
			return false;
	return true;
}

static bool all_zero(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != '0')
			return false;
	return true;
}

bool app_trace_root_valid(const char *s)
{
	return s && strlen(s) == APP_TRACE_ROOT_LEN && s[0] == '1' &&
	       s[1] == '-' && hex_run(s + 2, 8) && s[10] == '-' &&
	       hex_run(s + 11, 24);
}

bool app_trace_id_valid(const char *s)
{
	return s && strlen(s) == APP_TRACE_ID_LEN &&
	       hex_run(s, APP_TRACE_ID_LEN) && !all_zero(s, APP_TRACE_ID_LEN);
}

static void lower_copy(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'F') ? (char)(src[i] + 32) : src[i];
	dst[n] = '\0';
}

/* One "key=value" of the header (value len vlen); unknown keys ignored. */
static void amzn_field(app_trace_ctx *t, const char *k, size_t klen,
		       const char *v, size_t vlen, bool *have_root)
{
	char val[APP_TRACE_ROOT_LEN + 1];

	if (vlen > APP_TRACE_ROOT_LEN)
		return;
	memcpy(val, v, vlen);
	val[vlen] = '\0';
	if (klen == 4 && !strncasecmp(k, "Root", 4) && app_trace_root_valid(val)) {
		lower_copy(t->root, val, APP_TRACE_ROOT_LEN);
		*have_root = true;
	} else if (klen == 6 && !strncasecmp(k, "Parent", 6) &&
		   app_trace_id_valid(val)) {
		lower_copy(t->parent, val, APP_TRACE_ID_LEN);
	} else if (klen == 7 && !strncasecmp(k, "Sampled", 7) && vlen == 1) {
		if (val[0] == '0')
			t->decision = APP_TRACE_NOT_SAMPLED;
		else if (val[0] == '1')
			t->decision = APP_TRACE_SAMPLED;
	}
}

static void clear(app_trace_ctx *t)
{
	memset(t, 0, sizeof(*t));
	t->decision = APP_TRACE_UNDECIDED;
}

int app_trace_parse_amzn(app_trace_ctx *out, const char *h)
{
	bool have_root = false;

	clear(out);
	if (!h || strlen(h) > APP_TRACE_HEADER_MAX)
		return -1;
	while (*h) {
		size_t len = strcspn(h, ";"), klen, vlen;
		const char *eq, *end = h + len;

		while (h < end && (*h == ' ' || *h == '\t'))
			h++;
		eq = memchr(h, '=', (size_t)(end - h));
		if (eq) {
			const char *v = eq + 1, *ve = end;
			klen = (size_t)(eq - h);
			while (klen && (h[klen - 1] == ' ' || h[klen - 1] == '\t'))
				klen--;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			vlen = (size_t)(ve - v);
			amzn_field(out, h, klen, v, vlen, &have_root);
		}
		h = *end ? end + 1 : end;
	}
	if (!have_root) {
		clear(out);
		return -1;
	}
	return 0;
}

int app_trace_parse_traceparent(app_trace_ctx *out, const char *h)
{
	unsigned flags;

	clear(out);
	/* 00-<32>-<16>-<2>: 55 bytes; later versions may append "-..." */
	if (!h || strlen(h) < 55 || strlen(h) > APP_TRACE_HEADER_MAX ||
	    !hex_run(h, 2) || h[2] != '-' || !hex_run(h + 3, 32) || h[35] != '-' ||
	    !hex_run(h + 36, 16) || h[52] != '-' || !hex_run(h + 53, 2) ||
	    (h[55] && (h[0] == '0' && h[1] == '0')) || (h[55] && h[55] != '-') ||
	    !strncasecmp(h, "ff", 2) || all_zero(h + 3, 32) || all_zero(h + 36, 16))
		return -1;
	out->root[0] = '1';
	out->root[1] = '-';
	lower_copy(out->root + 2, h + 3, 8);
	out->root[10] = '-';
	lower_copy(out->root + 11, h + 11, 24);
	lower_copy(out->parent, h + 36, 16);
	sscanf(h + 53, "%2x", &flags);
	out->decision = (flags & 1) ? APP_TRACE_SAMPLED : APP_TRACE_NOT_SAMPLED;
	return 0;
}

/* --- ids ------------------------------------------------------------------ */

static _Thread_local uint64_t rng[4];
static _Thread_local bool rng_seeded;

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void seed(void)
{
	uint64_t s;
	struct timespec ts;

	if (getrandom(rng, sizeof(rng), GRND_NONBLOCK) != (ssize_t)sizeof(rng)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
		    (uint64_t)pthread_self();
		for (int i = 0; i < 4; i++)
			rng[i] = splitmix64(&s);
	}
	if (!(rng[0] | rng[1] | rng[2] | rng[3]))
		rng[0] = 1;   /* xoshiro's one forbidden state */
	rng_seeded = true;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t app_trace_rand64(void)
{
	uint64_t r, t;

	if (!rng_seeded)
		seed();
	r = rotl(rng[1] * 5, 7) * 9;
	t = rng[1] << 17;
	rng[2] ^= rng[0];
	rng[3] ^= rng[1];
	rng[1] ^= rng[2];
	rng[0] ^= rng[3];
	rng[2] ^= t;
	rng[3] = rotl(rng[3], 45);
	return r;
}

void app_trace_new_root(char out[APP_TRACE_ROOT_LEN + 1], int64_t epoch_s)
{
	uint64_t a = app_trace_rand64(), b = app_trace_rand64();

	/* "1-%08x-%08x%016llx", without printf (every request makes one) */
	out[0] = '1';
	out[1] = '-';
	fmt_hex(out + 2, (uint64_t)(uint32_t)epoch_s, 8);
	out[10] = '-';
	fmt_hex(out + 11, a, 8);
	fmt_hex(out + 19, b, 16);
}

void app_trace_new_id(char out[APP_TRACE_ID_LEN + 1])
{
	uint64_t v;

	do
		v = app_trace_rand64();
	while (!v);
	fmt_hex(out, v, 16);
}

size_t app_trace_format(char *out, size_t cap, const char *root,
			const char *parent, bool sampled)
{
	/* "Root=%s;Parent=%s;Sampled=%d" without printf (on every response);
	 * fmt_copy cuts at cap, and the result is what snprintf returns */
	size_t n = 0, need = 5 + strlen(root) + 10 +
			     (parent && *parent ? 8 + strlen(parent) : 0);

	if (!cap)
		return need;
	n += fmt_copy(out + n, cap - n, "Root=", 5);
	n += fmt_copy(out + n, cap - n, root, (size_t)-1);
	if (parent && *parent) {
		n += fmt_copy(out + n, cap - n, ";Parent=", 8);
		n += fmt_copy(out + n, cap - n, parent, (size_t)-1);
	}
	fmt_copy(out + n, cap - n, sampled ? ";Sampled=1" : ";Sampled=0", 10);
	return need;
}

/* --- sampling -------------------------------------------------------------- */

#define SLOT_BITS 20
#define SLOT_MASK ((UINT64_C(1) << SLOT_BITS) - 1)

void app_sampler_init(app_sampler *s, int per_second, int rate_percent)
{
	s->per_second = per_second;
	s->rate_percent = rate_percent;
	atomic_init(&s->slot, 0);
}

/* Takes one from this second's reservoir; false when it is spent. */
static bool reservoir_take(app_sampler *s, uint64_t second)
{
	uint64_t cur = atomic_load_explicit(&s->slot, memory_order_relaxed), next;

	for (;;) {
		uint64_t taken = (cur >> SLOT_BITS) == second ? (cur & SLOT_MASK) : 0;

		if ((cur >> SLOT_BITS) > second || taken >= (uint64_t)s->per_second)
			return false;   /* spent, or another thread is in a later second */
		next = (second << SLOT_BITS) | (taken + 1);
		if (atomic_compare_exchange_weak_explicit(&s->slot, &cur, next,
							  memory_order_relaxed,
							  memory_order_relaxed))
			return true;
	}
}

bool app_sampler_sample(app_sampler *s, int64_t now_ms, uint32_t rand)
{
	if (now_ms >= 0 && s->per_second > 0 &&
	    reservoir_take(s, (uint64_t)(now_ms / 1000)))
		return true;
	return rand % 100 < (uint32_t)s->rate_percent;
}
