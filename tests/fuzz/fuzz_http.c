/*
 * libFuzzer target for the whole request pipeline, in-process, against
 * the memory repository: routing, percent-decoding, header parsing
 * (If-Match, Idempotency-Key, X-Request-Id, Content-Type), body parsing
 * and the use cases.  Every answer must be a well-formed status with a
 * body that fits, and the process must survive anything.
 *
 * Input layout: lines "METHOD\nTARGET\nIf-Match\nIdempotency-Key\n
 * Content-Type\nX-Request-Id\n" then the body.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>

#include "cart/relay.h"
#include "app.h"
#include "log.h"
#include "log/log_publisher.h"
#include "memory/memory_repo.h"
#include "system/system.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { F_METHOD, F_TARGET, F_IF_MATCH, F_IDEM, F_CTYPE, F_REQID, N_FIELDS };

static char g_length[32];

typedef struct fields {
	char *v[N_FIELDS];
} fields;

static const char *fuzz_header(void *ctx, const char *name)
{
	fields *f = ctx;
	const char *v = NULL;

	if (!strcasecmp(name, "If-Match")) v = f->v[F_IF_MATCH];
	else if (!strcasecmp(name, "Idempotency-Key")) v = f->v[F_IDEM];
	else if (!strcasecmp(name, "Content-Type")) v = f->v[F_CTYPE];
	else if (!strcasecmp(name, "X-Request-Id")) v = f->v[F_REQID];
	else if (!strcasecmp(name, "Content-Length")) v = g_length;
	return v && *v ? v : NULL;
}

static cart_relay *g_relay;

typedef struct body_src {
	const char *p;
	size_t len, off;
} body_src;

/* Hands out the body in pieces of at most 7 bytes, like a slow peer. */
static int fuzz_read(void *ctx, char *buf, size_t len, bool *timed_out)
{
	body_src *b = ctx;
	size_t n = b->len - b->off;

	(void)timed_out;
	if (n > len)
		n = len;
	if (n > 7)
		n = 7;
	memcpy(buf, b->p + b->off, n);
	b->off += n;
	return (int)n;
}


static app_ctx *setup(void)
{
	static app_config cfg;
	static cart_repo repo;
	static cart_publisher pub;
	static cart_clock clock;
	static cart_ids ids;
	static app_ctx app;
	cart_service_config sc;
	cart_service *svc;

	if (app.svc)
		return &app;
	log_setup(LOG_ERROR, 2);
	strcpy(cfg.storage_backend, "memory");
	cart_memory_repo_new(&repo);
	cart_noop_publisher_new(&pub);
	cart_system_clock_init(&clock);
	cart_system_ids_init(&ids);
	cart_service_config_init(&sc);
	sc.limits.max_lines = 5;
	cart_service_new(&svc, &sc, &repo, &clock, &ids);
	cart_relay_new(&g_relay, &repo, &pub, &clock, 1000);
	cfg.request_timeout_ms = 10000;
	app.cfg = &cfg;
	app.svc = svc;
	app.ids = &ids;
	app_pipeline_init_default(&app.pipeline, &app);
	return &app;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	app_ctx *app = setup();
	const char *p = (const char *)data, *end = p + size;
	http_request req = { 0 };
	http_response res;
	fields f = { { 0 } };
	char *body;

	for (int i = 0; i < N_FIELDS; i++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		f.v[i] = strndup(p, n);   /* stops at an embedded NUL, as HTTP would */
		p += n + (nl ? 1 : 0);
	}
	body = malloc((size_t)(end - p) + 1);
	memcpy(body, p, (size_t)(end - p));
	req.method = f.v[F_METHOD];
	req.target = f.v[F_TARGET];
	req.header = fuzz_header;
	req.header_ctx = &f;
	body_src src = { body, (size_t)(end - p), 0 };
	snprintf(g_length, sizeof(g_length), "%zu", src.len);
	req.read = fuzz_read;
	req.read_ctx = &src;

	http_response_init(&res);
	app_handle(app, &req, &res);
	assert(res.status >= 200 && res.status <= 599);
	assert(!res.body.failed);
	assert(res.request_id[0]);
	if (res.status >= 400)
		assert(res.content_type &&
		       !strcmp(res.content_type, "application/problem+json"));
	http_response_release(&res);
	/* Every committed event is relayed, so outboxes never fill up. */
	assert(cart_relay_run_once(g_relay) >= 0);
	for (int i = 0; i < N_FIELDS; i++)
		free(f.v[i]);
	free(body);
	return 0;
}
