/*
 * Log lines from the AWS adapters: members built with escaping, so a
 * caller cannot paste a raw string into the JSON.
 */
#include <stdio.h>
#include <string.h>

#include "aws/aws.h"

/* Bytes of s to take when cutting at max: never half a UTF-8 sequence. */
static size_t cut_len(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (!max || n <= max)
		return n;
	while (max && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	return max;
}

size_t cart_aws_json_str(char *out, size_t cap, const char *s, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0, len;

	if (cap < 3)
		return 0;
	if (!s)
		s = "";
	len = cut_len(s, max);
	out[n++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
		size_t w = ch == '"' || ch == '\\' ? 2 : ch < 0x20 ? 6 : 1;

		if (ch == '"' || ch == '\\')
			esc[1] = (char)ch;
		/* room for this, the closing quote and the NUL */
		if (n + w + 2 > cap)
			break;
		/* a cut for room must not split a UTF-8 sequence either */
		if (ch >= 0xC0) {
			size_t k = 1;
			while (i + k < len && ((unsigned char)s[i + k] & 0xC0) == 0x80)
				k++;
			if (n + k + 2 > cap)
				break;
			memcpy(out + n, s + i, k);
			n += k;
			i += k - 1;
			continue;
		}
		if (w == 1)
			out[n++] = (char)ch;
		else
			memcpy(out + n, esc, w), n += w;
	}
	out[n++] = '"';
	out[n] = '\0';
	return n;
}

void cart_aws_fields_init(cart_aws_fields *f)
{
	f->len = 0;
	f->data[0] = '\0';
}

/* Appends ,"key": and returns 1, or 0 (nothing added) if it does not fit. */
static int put_key(cart_aws_fields *f, const char *key)
{
	int n = snprintf(f->data + f->len, sizeof(f->data) - f->len, ",\"%s\":", key);

	if (n < 0 || (size_t)n >= sizeof(f->data) - f->len) {
		f->data[f->len] = '\0';
		return 0;
	}
	f->len += (size_t)n;
	return 1;
}

/* Appends a raw JSON value after put_key, or takes the key back. */
static void put_value(cart_aws_fields *f, size_t at, const char *v)
{
	size_t n = strlen(v);

	if (n >= sizeof(f->data) - f->len) {
		f->len = at;
	} else {
		memcpy(f->data + f->len, v, n);
		f->len += n;
	}
	f->data[f->len] = '\0';
}

void cart_aws_fields_str(cart_aws_fields *f, const char *key, const char *value,
			 size_t max)
{
	size_t at = f->len, room, n;

	if (!put_key(f, key))
		return;
	if (!value) {
		put_value(f, at, "null");
		return;
	}
	room = sizeof(f->data) - f->len;
	n = cart_aws_json_str(f->data + f->len, room, value, max);
	if (!n) {
		f->len = at;   /* not even "" fits: leave the member out */
		f->data[at] = '\0';
		return;
	}
	f->len += n;
}

void cart_aws_fields_int(cart_aws_fields *f, const char *key, long long value)
{
	size_t at = f->len;
	char v[24];

	if (!put_key(f, key))
		return;
	snprintf(v, sizeof(v), "%lld", value);
	put_value(f, at, v);
}

void cart_aws_fields_bool(cart_aws_fields *f, const char *key, bool value)
{
	size_t at = f->len;

	if (put_key(f, key))
		put_value(f, at, value ? "true" : "false");
}

void cart_aws_log_write(const cart_aws_log *log, int level, const char *msg,
			const cart_aws_fields *f)
{
	if (!log || !log->write)
		return;
	log->write(log->ctx, level, msg, f && f->len ? f->data : NULL);
}
