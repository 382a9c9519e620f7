/*
 * The compact serialization's shape: three dot-separated segments, and
 * header and payload each exactly one JSON object.  Strict on purpose: a
 * token has one spelling and one meaning.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "jwt/jwt_internal.h"

#define JSON_MAX_DEPTH 16     /* real headers and claims nest 2 or 3 deep */
#define JSON_MAX_MEMBERS 64   /* top-level members of header or payload */

int jwt_split_compact(jws_parts *p, const char *token, size_t len)
{
	const char *dot1 = memchr(token, '.', len);
	const char *dot2, *rest;

	if (!dot1)
		return -1;
	rest = dot1 + 1;
	dot2 = memchr(rest, '.', len - (size_t)(rest - token));
	if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
		return -1;
	p->seg[0] = token;
	p->len[0] = (size_t)(dot1 - token);
	p->seg[1] = rest;
	p->len[1] = (size_t)(dot2 - rest);
	p->seg[2] = dot2 + 1;
	p->len[2] = len - (size_t)(dot2 + 1 - token);
	return 0;
}

/*
 * Nesting depth of JSON text outside strings.  Bounding it up front keeps
 * cJSON's recursion shallow whatever the token holds.
 */
static bool depth_ok(const char *s, size_t n, int max)
{
	bool in_str = false, esc = false;
	int depth = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				return false;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return true;
}

static bool unique_members(const cJSON *obj)
{
	int n = 0;

	for (const cJSON *a = obj->child; a; a = a->next) {
		if (++n > JSON_MAX_MEMBERS)
			return false;
		for (const cJSON *b = obj->child; b != a; b = b->next)
			if (!strcmp(a->string, b->string))
				return false;
	}
	return true;
}

cJSON *jwt_decode_object(const char *seg, size_t len, char *buf)
{
	const char *end = NULL;
	size_t n;
	cJSON *j;

	if (jwt_b64url_decode((uint8_t *)buf, &n, seg, len) || n == 0)
		return NULL;
	buf[n] = '\0';
	if (memchr(buf, '\0', n) || strstr(buf, "\\u0000") ||
	    !depth_ok(buf, n, JSON_MAX_DEPTH))
		return NULL;
	j = cJSON_ParseWithLengthOpts(buf, n, &end, 0);
	if (!j)
		return NULL;
	while (end && end < buf + n && strchr(" \t\r\n", *end))
		end++;
	if (end != buf + n || !cJSON_IsObject(j) || !unique_members(j)) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}
