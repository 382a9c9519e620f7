#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec/event_json.h"   /* cart_rfc3339: one time format everywhere */

void buf_init(buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void buf_init_on(buf *b, char *storage, size_t cap, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->data = storage;
	b->cap = cap;
	b->max = max;
	b->borrowed = true;
	if (cap)
		storage[0] = '\0';
}

void buf_release(buf *b)
{
	if (!b)
		return;
	if (!b->borrowed)
		free(b->data);
	memset(b, 0, sizeof(*b));
}

void buf_reset(buf *b)
{
	b->len = 0;
	b->failed = false;
	if (b->data)
		b->data[0] = '\0';
}

void buf_reset_keep(buf *b, size_t keep)
{
	if (!b->borrowed && b->cap > keep) {
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
	buf_reset(b);
}

char *buf_take(buf *b, size_t *len)
{
	char *p = b->data;

	if (b->failed || b->borrowed) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

static bool reserve(buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->failed)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	need = b->len + extra + 1;
	if (need > b->max + 1) {
		b->failed = true;
		return false;
	}
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	p = b->borrowed ? malloc(cap) : realloc(b->data, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	if (b->borrowed) {
		memcpy(p, b->data, b->len + 1);
		b->borrowed = false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void buf_put_slow(buf *b, const void *p, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

char *buf_room(buf *b, size_t n)
{
	return reserve(b, n) ? b->data + b->len : NULL;
}

void buf_printf(buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		buf_put(b, small, (size_t)n);
		return;
	}
	if (!reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* 0 for the bytes a JSON string must escape, and for NUL. */
static const unsigned char plain_byte[256] = {
	[0x20] = 1, [0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0xff] = 1,
};

size_t json_plain_len(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (plain_byte[*p])
		p++;
	return *p ? SIZE_MAX : (size_t)(p - (const unsigned char *)s);
}

void buf_json_str(buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;
	const char *run;
	size_t n;

	if (!s) {
		buf_put(b, "null", 4);
		return;
	}
	if ((n = json_plain_len(s)) != SIZE_MAX) {
		/* Nothing to escape (ids, routes, names): one copy. */
		char *d = buf_room(b, n + 2);

		if (!d)
			return;
		d[0] = '"';
		memcpy(d + 1, s, n);
		d[n + 1] = '"';
		buf_commit(b, d + n + 2);
		return;
	}
	buf_put(b, "\"", 1);
	for (run = s, p = (const unsigned char *)s; *p; p++) {
		unsigned char ch = *p;

		if (plain_byte[ch])
			continue;
		buf_put(b, run, (size_t)((const char *)p - run));
		run = (const char *)p + 1;
		if (ch == '"' || ch == '\\') {
			char esc[2] = { '\\', (char)ch };
			buf_put(b, esc, 2);
		} else {
			char esc[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
			buf_put(b, esc, 6);
		}
	}
	buf_put(b, run, (size_t)((const char *)p - run));
	buf_put(b, "\"", 1);
}

static const char digit_pairs[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

/* v's digits, two at a time from the end; the usual values (lengths,
 * quantities, prices, versions) fit 32 bits, where dividing is cheaper. */
static char *put_u32(char *d, uint32_t v)
{
	unsigned n = v < 10 ? 1 : v < 100 ? 2 : v < 1000 ? 3 : v < 10000 ? 4 :
		     v < 100000 ? 5 : v < 1000000 ? 6 : v < 10000000 ? 7 :
		     v < 100000000 ? 8 : v < 1000000000 ? 9 : 10;
	char *p = d + n;

	while (v >= 100) {
		uint32_t r = v % 100;

		v /= 100;
		p -= 2;
		memcpy(p, digit_pairs + 2 * r, 2);
	}
	if (v >= 10)
		memcpy(p - 2, digit_pairs + 2 * v, 2);
	else
		p[-1] = (char)('0' + v);
	return d + n;
}

/* Exactly 8 digits of v (< 10^8), leading zeros included. */
static void put_8(char *p, uint32_t v)
{
	for (int i = 6; i >= 0; i -= 2, v /= 100)
		memcpy(p + i, digit_pairs + 2 * (v % 100), 2);
}

/* Past 32 bits: the digits above the last 8, then those 8 (at most two
 * levels: 2^64 / 10^16 < 2^32). */
char *put_u64(char *d, uint64_t v)
{
	if (v <= UINT32_MAX)
		return put_u32(d, (uint32_t)v);
	d = put_u64(d, v / 100000000);
	put_8(d, (uint32_t)(v % 100000000));
	return d + 8;
}

char *put_i64(char *d, int64_t v)
{
	if (v >= 0)
		return put_u64(d, (uint64_t)v);
	*d = '-';
	return put_u64(d + 1, (uint64_t)0 - (uint64_t)v);   /* INT64_MIN too */
}

size_t fmt_u64(char *dst, uint64_t v)
{
	char *end = put_u64(dst, v);

	*end = '\0';
	return (size_t)(end - dst);
}

size_t fmt_i64(char *dst, int64_t v)
{
	if (v >= 0)
		return fmt_u64(dst, (uint64_t)v);
	dst[0] = '-';
	return 1 + fmt_u64(dst + 1, (uint64_t)0 - (uint64_t)v);   /* INT64_MIN too */
}

void fmt_hex(char *dst, uint64_t v, int width)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = width - 1; i >= 0; i--, v >>= 4)
		dst[i] = hex[v & 15];
	dst[width] = '\0';
}

size_t fmt_copy(char *dst, size_t cap, const char *src, size_t n)
{
	if (!cap)
		return 0;
	if (n == (size_t)-1)
		n = strlen(src);
	if (n > cap - 1)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}

/* Numbers go straight into the storage when 20 bytes fit without growing
 * it, else through a copy, so a buffer at its maximum still takes them. */
void buf_put_u64(buf *b, uint64_t v)
{
	char tmp[20];

	if (!b->failed && b->len + 20 < b->cap) {
		buf_commit(b, put_u64(b->data + b->len, v));
		return;
	}
	buf_put(b, tmp, (size_t)(put_u64(tmp, v) - tmp));
}

void buf_json_i64(buf *b, int64_t v)
{
	char tmp[20];

	if (!b->failed && b->len + 20 < b->cap) {
		buf_commit(b, put_i64(b->data + b->len, v));
		return;
	}
	buf_put(b, tmp, (size_t)(put_i64(tmp, v) - tmp));
}

void buf_put_ms3(buf *b, int64_t ns)
{
	int64_t us = ns > 0 ? (ns + 500) / 1000 : 0;
	char frac[4] = { '.', 0, 0, 0 };

	buf_put_u64(b, (uint64_t)(us / 1000));
	frac[1] = (char)('0' + us / 100 % 10);
	frac[2] = (char)('0' + us / 10 % 10);
	frac[3] = (char)('0' + us % 10);
	buf_put(b, frac, 4);
}

/*
 * Most times written are today's (a log line's time, a cart's updatedAt)
 * or one other day's (a cart's expiresAt, TTL days ahead): each thread
 * keeps the last two days' "YYYY-MM-DD" and formats only the time of day;
 * any other day takes cart_rfc3339 and replaces the older one.
 */
static _Thread_local int64_t t_day[2] = { -1, -1 };
static _Thread_local char t_date[2][10];

static const char *date_of(int64_t day, int64_t ms)
{
	char tmp[64];

	if (day == t_day[0])
		return t_date[0];
	if (day == t_day[1])
		return t_date[1];
	cart_rfc3339(tmp, sizeof(tmp), ms);   /* 24 bytes below BUF_TIME_MAX */
	t_day[1] = t_day[0];
	memcpy(t_date[1], t_date[0], 10);
	t_day[0] = day;
	memcpy(t_date[0], tmp, 10);
	return t_date[0];
}

static void put_2(char *p, unsigned v)
{
	memcpy(p, digit_pairs + 2 * v, 2);
}

char *put_json_time(char *d, int64_t ms)
{
	const char *date;
	int64_t day;
	uint32_t in_day, sod, msec, mins;

	if (ms <= 0)
		return PUT_LIT(d, "null");
	day = ms / 86400000;
	date = date_of(day, ms);
	/* one 64-bit division; the rest in 32 bits */
	in_day = (uint32_t)(ms - day * 86400000);
	sod = in_day / 1000;
	msec = in_day - sod * 1000;
	mins = sod / 60;
	d[0] = '"';
	memcpy(d + 1, date, 10);
	d[11] = 'T';
	put_2(d + 12, mins / 60);
	d[14] = ':';
	put_2(d + 15, mins % 60);
	d[17] = ':';
	put_2(d + 18, sod - mins * 60);
	d[20] = '.';
	d[21] = (char)('0' + msec / 100);
	put_2(d + 22, msec % 100);
	d[24] = 'Z';
	d[25] = '"';
	return d + 26;
}

void buf_json_time(buf *b, int64_t ms)
{
	char *d;

	if (ms <= 0) {
		buf_put(b, "null", 4);
		return;
	}
	if (ms >= BUF_TIME_MAX) {   /* a year past 9999: as cart_rfc3339 writes it */
		char tmp[64];

		cart_rfc3339(tmp, sizeof(tmp), ms);
		buf_put(b, "\"", 1);
		buf_puts(b, tmp);
		buf_put(b, "\"", 1);
		return;
	}
	if ((d = buf_room(b, 26)))
		buf_commit(b, put_json_time(d, ms));
}
