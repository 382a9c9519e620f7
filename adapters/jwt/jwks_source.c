/*
 * Where a JWKS document comes from: a file (re-read only when it changed)
 * or an HTTPS URL (one fresh curl easy handle per fetch; fetches are rare
 * and never concurrent, so there is nothing to pool).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jwt/jwt_internal.h"

/* --- file ---------------------------------------------------------------- */

static void stamp_of(jwt_file_stamp *s, const struct stat *st)
{
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = st->st_size;
	s->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static bool stamp_eq(const jwt_file_stamp *a, const jwt_file_stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns;
}

/* Reads all of fd (at most max bytes) into a NUL-terminated buffer. */
static int read_all(int fd, char **out, size_t *out_len, size_t max)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap + 1);

	if (!buf)
		return -1;
	for (;;) {
		ssize_t r;

		if (len == cap) {
			char *p;

			if (cap > max)
				break;
			cap *= 2;
			p = realloc(buf, cap + 1);
			if (!p)
				break;
			buf = p;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (r == 0) {
			if (len > max)
				break;
			buf[len] = '\0';
			*out = buf;
			*out_len = len;
			return 0;
		}
		len += (size_t)r;
	}
	free(buf);
	return -1;
}

int jwt_file_read(char **out, size_t *out_len, jwt_file_stamp *stamp,
		  const char *path, const jwt_file_stamp *last,
		  char *err, size_t err_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int rc = -1;

	*out = NULL;
	if (fd < 0) {
		snprintf(err, err_len, "cannot open JWKS file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, err_len, "JWKS file %s is not a regular file", path);
	} else if (st.st_size > CART_JWT_MAX_JWKS) {
		snprintf(err, err_len, "JWKS file %s is larger than %d bytes",
			 path, CART_JWT_MAX_JWKS);
	} else {
		stamp_of(stamp, &st);
		if (last && stamp_eq(stamp, last))
			rc = 1;
		else if (read_all(fd, out, out_len, CART_JWT_MAX_JWKS) == 0)
			rc = 0;
		else
			snprintf(err, err_len, "cannot read JWKS file %s", path);
	}
	close(fd);
	return rc;
}

/* --- URL ----------------------------------------------------------------- */

static bool loopback_host(const char *h, size_t n)
{
	return (n == 9 && !strncasecmp(h, "localhost", 9)) ||
	       (n == 9 && !memcmp(h, "127.0.0.1", 9)) ||
	       (n == 5 && !memcmp(h, "[::1]", 5));
}

int jwt_url_allowed(const char *url)
{
	const char *host, *end;

	if (!strncasecmp(url, "https://", 8))
		return url[8] ? 0 : -1;
	if (strncasecmp(url, "http://", 7))
		return -1;
	/* Plain HTTP lets anyone on the path choose our keys: tests only.
	 * No user info ("http://localhost:1@evil/" is evil's URL). */
	host = url + 7;
	if (strpbrk(host, "@\\"))
		return -1;
	end = host[0] == '[' ? strchr(host, ']') : host + strcspn(host, ":/");
	if (!end)
		return -1;
	if (host[0] == '[')
		end++;
	if (*end != '\0' && *end != ':' && *end != '/')
		return -1;
	return loopback_host(host, (size_t)(end - host)) ? 0 : -1;
}

typedef struct fetch_buf {
	char *p;
	size_t len;
	bool too_big;
} fetch_buf;

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
	fetch_buf *b = arg;
	size_t add = size * n;
	char *p;

	if (b->len + add > CART_JWT_MAX_JWKS) {
		b->too_big = true;
		return 0;   /* aborts the transfer */
	}
	p = realloc(b->p, b->len + add + 1);
	if (!p)
		return 0;
	memcpy(p + b->len, data, add);
	b->p = p;
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

static void set_options(CURL *h, const char *url, long timeout_ms, fetch_buf *b)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CART_JWT_MAX_JWKS);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "cart-service-jwks/1");
}

int jwt_url_fetch(char **out, size_t *out_len, const char *url,
		  long timeout_ms, char *err, size_t err_len)
{
	CURL *h = curl_easy_init();
	fetch_buf b = { NULL, 0, false };
	long status = 0;
	CURLcode rc;

	*out = NULL;
	if (!h) {
		snprintf(err, err_len, "JWKS fetch: out of memory");
		return -1;
	}
	set_options(h, url, timeout_ms, &b);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK || status != 200 || !b.p) {
		if (b.too_big || rc == CURLE_FILESIZE_EXCEEDED)
			snprintf(err, err_len, "JWKS from %s is larger than %d bytes",
				 url, CART_JWT_MAX_JWKS);
		else if (rc != CURLE_OK)
			snprintf(err, err_len, "JWKS fetch from %s failed: %s",
				 url, curl_easy_strerror(rc));
		else
			snprintf(err, err_len, "JWKS fetch from %s: HTTP %ld%s",
				 url, status, b.p ? "" : " with an empty body");
		free(b.p);
		return -1;
	}
	*out = b.p;
	*out_len = b.len;
	return 0;
}
