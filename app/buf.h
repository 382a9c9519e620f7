#ifndef APP_BUF_H
#define APP_BUF_H

/*
 * A growing byte buffer with a hard maximum, and the JSON writing helpers
 * the response path uses.  Writes past the maximum or a failed allocation
 * set b->failed and are otherwise ignored, so callers check once at the
 * end instead of after every write.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct buf {
	char *data;       /* NUL-terminated when not failed */
	size_t len;
	size_t cap;
	size_t max;       /* never grows beyond this many bytes */
	bool failed;
	bool borrowed;    /* data is caller storage: copy out, never free */
} buf;

void buf_init(buf *b, size_t max);
/* Starts in caller storage (e.g. a stack array), moving to the heap only
 * if it outgrows it; buf_release frees only what it allocated. */
void buf_init_on(buf *b, char *storage, size_t cap, size_t max);
void buf_release(buf *b);              /* accepts NULL */
/* Hands the bytes to the caller (free()); b is empty afterwards.
 * Returns NULL if the buffer failed or lives in borrowed storage. */
char *buf_take(buf *b, size_t *len);
void buf_reset(buf *b);
/* buf_reset, and gives the heap storage back if it grew beyond keep bytes:
 * a buffer reused per request keeps a typical response's room, not the
 * largest one's. */
void buf_reset_keep(buf *b, size_t keep);

/* Appends n bytes.  Inline when they fit (most writes of a response:
 * the strlen of a literal then folds to a constant); else buf_put_slow
 * grows the storage. */
void buf_put_slow(buf *b, const void *p, size_t n);

static inline void buf_put(buf *b, const void *p, size_t n)
{
	if (!b->failed && b->len + n < b->cap) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
		b->data[b->len] = '\0';
		return;
	}
	buf_put_slow(b, p, n);
}

static inline void buf_puts(buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}
void buf_printf(buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* JSON: a quoted, escaped string (NULL writes null), and numbers. */
void buf_json_str(buf *b, const char *s);
/* strlen(s) if no byte of s needs escaping in a JSON string (printable
 * ASCII but '"' and '\\', and bytes >= 0x80), else SIZE_MAX. */
size_t json_plain_len(const char *s);
void buf_json_i64(buf *b, int64_t v);
/* Numbers without printf (the per-request path): decimal digits, and a
 * duration in ns as milliseconds with 3 decimals ("12.345"; < 0 is 0). */
void buf_put_u64(buf *b, uint64_t v);
void buf_put_ms3(buf *b, int64_t ns);
/* RFC 3339 UTC with milliseconds, quoted; 0 writes null. */
void buf_json_time(buf *b, int64_t ms);

/*
 * Raw writing, for a run of writes whose total has a known bound (the cart
 * renderer): buf_room gives room for n more bytes, or NULL when the buffer
 * has failed or would pass its maximum (then b->failed is set); write at
 * most n bytes from there and hand the end to buf_commit.  put_* write at
 * d and return the end, without a NUL.
 */
char *buf_room(buf *b, size_t n);

static inline void buf_commit(buf *b, char *end)
{
	b->len = (size_t)(end - b->data);
	*end = '\0';
}

#define PUT_LIT(d, lit) (memcpy((d), (lit), sizeof(lit) - 1), (d) + sizeof(lit) - 1)
char *put_u64(char *d, uint64_t v);            /* at most 20 bytes */
char *put_i64(char *d, int64_t v);             /* at most 20 bytes */
/* buf_json_time's bytes for 0 < ms < BUF_TIME_MAX (26) or ms <= 0 (null). */
#define BUF_TIME_MAX 253402300800000LL         /* 10000-01-01T00:00:00Z */
char *put_json_time(char *d, int64_t ms);

/*
 * The same without a buffer, into caller storage, NUL-terminated (the
 * per-request path's small strings: ETags, rate-limit fields, trace ids).
 * fmt_u64/fmt_i64: dst has room for 21 bytes; returns the length.
 * fmt_hex: exactly width (1..16) lower-case digits of v's low bits.
 * fmt_copy: at most cap - 1 bytes of src[0..n) (n: strlen if (size_t)-1);
 * returns the length copied.
 */
size_t fmt_u64(char *dst, uint64_t v);
size_t fmt_i64(char *dst, int64_t v);
void fmt_hex(char *dst, uint64_t v, int width);
size_t fmt_copy(char *dst, size_t cap, const char *src, size_t n);

#endif
