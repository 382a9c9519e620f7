/*
 * libFuzzer target for request framing and the edge stages: arbitrary
 * header lines (names, repeats, Content-Length and Transfer-Encoding
 * spellings, X-Forwarded-For chains, up to 80 lines) and a body the peer
 * may cut short, through the whole pipeline with the rate limiter on.
 *
 * Input: "METHOD TARGET\n", then header lines "Name: value\n" up to an
 * empty line, then the body bytes the peer sends (it then closes).
 *
 * Invariants: every answer is a status with a problem for errors; a write
 * that succeeded had exactly one all-digit Content-Length equal to the
 * bytes that arrived and no Transfer-Encoding; every framing refusal
 * closes the connection.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "log.h"
#include "memory/memory_repo.h"
#include "ratelimit.h"
#include "system/system.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINES 80

typedef struct input {
	char *names[MAX_LINES], *values[MAX_LINES];
	int n;
	const char *body;
	size_t body_len, sent;
} input;

static const char *in_header(void *ctx, const char *name)
{
	input *in = ctx;

	for (int i = 0; i < in->n && i < HTTP_MAX_HEADERS; i++)
		if (!strcasecmp(in->names[i], name))
			return in->values[i];
	return NULL;
}

static int in_count(void *ctx, const char *name)
{
	input *in = ctx;
	int c = 0;

	for (int i = 0; i < in->n && i < HTTP_MAX_HEADERS; i++)
		c += !strcasecmp(in->names[i], name);
	return c;
}

static int in_read(void *ctx, char *dst, size_t len, bool *timed_out)
{
	input *in = ctx;
	size_t n = in->body_len - in->sent;

	(void)timed_out;
	if (n > len)
		n = len;
	memcpy(dst, in->body + in->sent, n);
	in->sent += n;
	return (int)n;
}

static app_ctx *setup(void)
{
	static app_config cfg;
	static cart_repo repo;
	static cart_clock clock;
	static cart_ids ids;
	static app_ctx app;
	static app_ratelimit *rl;
	cart_service_config sc;
	cart_service *svc;
	char err[256];

	if (app.svc)
		return &app;
	log_setup(LOG_ERROR, 2);
	cfg.request_timeout_ms = 10000;
	cfg.breaker_open_seconds = 5;
	cfg.rate_limit_rps = 1000000;
	cfg.rate_limit_burst = 1000000;
	cfg.rate_limit_max_keys = 1000;
	strcpy(cfg.rate_limit_store, "memory");
	strcpy(cfg.trusted_proxies, "127.0.0.0/8, 10.0.0.0/8");
	cart_memory_repo_new(&repo);
	cart_system_clock_init(&clock);
	cart_system_ids_init(&ids);
	cart_service_config_init(&sc);
	sc.limits.max_lines = 5;
	cart_service_new(&svc, &sc, &repo, &clock, &ids);
	app.cfg = &cfg;
	app.svc = svc;
	app.ids = &ids;
	app_pipeline_init_default(&app.pipeline, &app);
	if (app_ratelimit_new(&rl, &cfg, &clock, err, sizeof(err)))
		abort();
	app_pipeline_add(&app.pipeline, APP_PHASE_PREACCESS, "ratelimit",
			 app_stage_ratelimit, rl);
	return &app;
}

static char *next_line(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
	char *line = strndup(*p, n);

	*p += n + (nl ? 1 : 0);
	return line;
}

static bool all_digits(const char *v)
{
	if (!*v)
		return false;
	for (; *v; v++)
		if (*v < '0' || *v > '9')
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	app_ctx *app = setup();
	const char *p = (const char *)data, *end = p + size;
	char *first = next_line(&p, end), *sp = strchr(first, ' ');
	http_request req = { 0 };
	http_response res;
	input in = { .n = 0 };
	const char *cl;

	if (sp)
		*sp++ = '\0';
	while (p < end && in.n < MAX_LINES) {
		char *line = next_line(&p, end), *colon;
		if (!*line) {
			free(line);
			break;
		}
		colon = strchr(line, ':');
		in.names[in.n] = line;
		in.values[in.n] = colon ? colon + 1 : line + strlen(line);
		if (colon)
			*colon = '\0';
		while (*in.values[in.n] == ' ')
			in.values[in.n]++;
		in.n++;
	}
	in.body = p;
	in.body_len = (size_t)(end - p);
	req.method = first;
	req.target = sp ? sp : "/";
	req.remote_addr = "127.0.0.1";
	req.header = in_header;
	req.header_count = in_count;
	req.header_ctx = &in;
	req.header_lines = in.n < HTTP_MAX_HEADERS ? in.n : HTTP_MAX_HEADERS;
	req.read = in_read;
	req.read_ctx = &in;

	http_response_init(&res);
	app_handle(app, &req, &res);
	assert(res.status >= 200 && res.status <= 599);
	assert(!res.body.failed && res.request_id[0]);
	if (res.status >= 400)
		assert(res.content_type &&
		       !strcmp(res.content_type, "application/problem+json"));
	cl = in_header(&in, "Content-Length");
	if (res.status < 300 && strcmp(first, "GET") && strcmp(first, "HEAD") &&
	    strcmp(first, "OPTIONS")) {
		/* something was executed: its framing was sound */
		assert(req.header_lines < HTTP_MAX_HEADERS);
		assert(!in_header(&in, "Transfer-Encoding"));
		assert(in_count(&in, "Content-Length") <= 1);
		assert(!cl || (all_digits(cl) && (size_t)strtoull(cl, NULL, 10) == in.sent));
	}
	if (req.header_lines >= HTTP_MAX_HEADERS || in_header(&in, "Transfer-Encoding") ||
	    in_count(&in, "Content-Length") > 1 || (cl && !all_digits(cl)))
		assert(res.status >= 400 && res.close);
	http_response_release(&res);
	for (int i = 0; i < in.n; i++)
		free(in.names[i]);
	free(first);
	return 0;
}
