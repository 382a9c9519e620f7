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

void buf_put(buf *b, const void *p, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_puts(buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
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

void buf_json_str(buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run;

	if (!s) {
		buf_put(b, "null", 4);
		return;
	}
	buf_put(b, "\"", 1);
	for (run = s; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char esc[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		buf_put(b, run, (size_t)(s - run));
		run = s + 1;
		if (ch == '"' || ch == '\\') {
			esc[1] = (char)ch;
			buf_put(b, esc, 2);
		} else {
			buf_put(b, esc, 6);
		}
	}
	buf_put(b, run, (size_t)(s - run));
	buf_put(b, "\"", 1);
}

size_t fmt_u64(char *dst, uint64_t v)
{
	char tmp[20];
	size_t n = sizeof(tmp);

	do {
		tmp[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	memcpy(dst, tmp + n, sizeof(tmp) - n);
	dst[sizeof(tmp) - n] = '\0';
	return sizeof(tmp) - n;
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

void buf_put_u64(buf *b, uint64_t v)
{
	char tmp[21];

	buf_put(b, tmp, fmt_u64(tmp, v));
}

void buf_json_i64(buf *b, int64_t v)
{
	if (v < 0) {
		buf_put(b, "-", 1);
		buf_put_u64(b, (uint64_t)0 - (uint64_t)v);   /* INT64_MIN too */
	} else {
		buf_put_u64(b, (uint64_t)v);
	}
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

void buf_json_time(buf *b, int64_t ms)
{
	char tmp[64];

	if (ms <= 0) {
		buf_put(b, "null", 4);
		return;
	}
	cart_rfc3339(tmp, sizeof(tmp), ms);
	buf_put(b, "\"", 1);
	buf_puts(b, tmp);
	buf_put(b, "\"", 1);
}
