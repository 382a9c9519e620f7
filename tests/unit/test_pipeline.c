/*
 * The request pipeline in-process: phase order and early answers, the
 * READ phase's framing rules, routing (HEAD, OPTIONS, "*", absolute
 * form), the call context reaching the core, and the one error table.
 */
#include <ctype.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "cart/relay.h"
#include "log.h"
#include "memory/memory_repo.h"
#include "ratelimit.h"
#include "render.h"
#include "system/system.h"
#include "unit/suites.h"

/* --- a request built by hand ---------------------------------------------- */

typedef struct fake_req {
	const char *names[80];
	const char *values[80];
	int n;
	const char *body;        /* what the peer sends */
	size_t body_len;
	size_t sent;
	int reads;               /* read calls */
	bool stall;              /* after the body: time out instead of EOF */
	int lines;               /* header lines the server kept; 0: n */
} fake_req;

static const char *fr_header(void *ctx, const char *name)
{
	fake_req *f = ctx;

	for (int i = 0; i < f->n; i++)
		if (!strcasecmp(f->names[i], name))
			return f->values[i];
	return NULL;
}

static int fr_count(void *ctx, const char *name)
{
	fake_req *f = ctx;
	int c = 0;

	for (int i = 0; i < f->n; i++)
		c += !strcasecmp(f->names[i], name);
	return c;
}

static int fr_read(void *ctx, char *dst, size_t len, bool *timed_out)
{
	fake_req *f = ctx;
	size_t n = f->body_len - f->sent;

	f->reads++;
	if (!n && f->stall) {
		*timed_out = true;
		return -1;
	}
	if (n > len)
		n = len;
	if (n > 5)
		n = 5;                  /* a slow peer: several reads */
	memcpy(dst, f->body + f->sent, n);
	f->sent += n;
	return (int)n;
}

static void hdr(fake_req *f, const char *name, const char *value)
{
	f->names[f->n] = name;
	f->values[f->n++] = value;
}

static app_config cfg;
static cart_repo repo;
static cart_clock clk;
static cart_ids ids;
static cart_service *svc;
static app_ctx app;
static http_response res;
static char trail[256];          /* stages record their names here */

static void setup(void)
{
	cart_service_config sc;

	log_setup(LOG_ERROR, 2);
	memset(&cfg, 0, sizeof(cfg));
	cfg.request_timeout_ms = 10000;
	cfg.breaker_open_seconds = 5;
	ck_assert_int_eq(cart_memory_repo_new(&repo), CART_OK);
	cart_system_clock_init(&clk);
	cart_system_ids_init(&ids);
	cart_service_config_init(&sc);
	ck_assert_int_eq(cart_service_new(&svc, &sc, &repo, &clk, &ids), CART_OK);
	memset(&app, 0, sizeof(app));
	app.cfg = &cfg;
	app.svc = svc;
	app.ids = &ids;
	ck_assert_int_eq(app_pipeline_init_default(&app.pipeline, &app), 0);
	http_response_init(&res);
	trail[0] = '\0';
}

static void teardown(void)
{
	http_response_release(&res);
	cart_service_free(svc);
	cart_repo_destroy(&repo);
	cart_ids_destroy(&ids);
	cart_clock_destroy(&clk);
}

/* Runs one request; res holds the answer. */
static void run(fake_req *f, const char *method, const char *target)
{
	http_request req = { method, target, "127.0.0.1", fr_header, fr_count, f,
			     f->lines ? f->lines : f->n, fr_read, f };

	http_response_release(&res);
	http_response_init(&res);
	app_handle(&app, &req, &res);
}

/* The problem's "code" member, or "" if none. */
static const char *code_of(void)
{
	static char code[64];
	const char *p = res.body.data ? strstr(res.body.data, "\"code\":\"") : NULL;

	code[0] = '\0';
	if (p)
		sscanf(p + 8, "%63[^\"]", code);
	return code;
}

static bool has_header(const char *line)
{
	return res.headers.data && strstr(res.headers.data, line);
}

/* --- phases --------------------------------------------------------------- */

static int mark(app_request *r, void *self)
{
	strcat(trail, self);
	return APP_NEXT;
}

static int answer_429(app_request *r, void *self)
{
	strcat(trail, self);
	return app_fail(r, 429, "cart.rate_limited", "slow down");
}

START_TEST(test_pipeline_phases_run_in_order_until_an_answer)
{
	fake_req f = { 0 };

	app_pipeline_add(&app.pipeline, APP_PHASE_ACCESS, "a", mark, "A");
	app_pipeline_add(&app.pipeline, APP_PHASE_PREACCESS, "p", mark, "P");
	app_pipeline_add(&app.pipeline, APP_PHASE_LOG, "l", mark, "L");
	app_pipeline_add(&app.pipeline, APP_PHASE_ROUTE, "r", mark, "R");
	run(&f, "GET", "/health");
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(trail, "RPAL");

	/* A pre-access answer skips access and content; log still runs. */
	trail[0] = '\0';
	app_pipeline_add(&app.pipeline, APP_PHASE_PREACCESS, "limit", answer_429, "X");
	run(&f, "GET", "/health");
	ck_assert_int_eq(res.status, 429);
	ck_assert_str_eq(code_of(), "cart.rate_limited");
	ck_assert_str_eq(trail, "RPXL");
}
END_TEST

START_TEST(test_pipeline_add_is_bounded)
{
	app_pipeline p;

	memset(&p, 0, sizeof(p));
	for (int i = 0; i < APP_MAX_STAGES; i++)
		ck_assert_int_eq(app_pipeline_add(&p, APP_PHASE_LOG, "x", mark, ""), 0);
	ck_assert_int_eq(app_pipeline_add(&p, APP_PHASE_LOG, "x", mark, ""), -1);
	ck_assert_int_eq(app_pipeline_add(&p, APP_PHASE_COUNT, "x", mark, ""), -1);
	ck_assert_int_eq(app_pipeline_add(&p, APP_PHASE_READ, "x", NULL, ""), -1);
}
END_TEST

START_TEST(test_pipeline_request_id_honoured_or_generated)
{
	fake_req f = { 0 };

	hdr(&f, "X-Request-Id", "abc-123");
	run(&f, "GET", "/nope");
	ck_assert_int_eq(res.status, 404);
	ck_assert_str_eq(res.request_id, "abc-123");
	ck_assert_ptr_nonnull(strstr(res.body.data, "\"requestId\":\"abc-123\""));
	ck_assert_ptr_nonnull(strstr(res.body.data, "\"instance\":\"/nope\""));
	f.values[0] = "bad id with spaces";
	run(&f, "GET", "/health");
	ck_assert_uint_eq(strlen(res.request_id), 36);
	/* generated: a version-4 UUID, a new one each time */
	{
		char first[CART_UUID_LEN + 1];
		snprintf(first, sizeof(first), "%s", res.request_id);
		ck_assert_int_eq(first[14], '4');
		ck_assert_ptr_nonnull(strchr("89ab", first[19]));
		for (int i = 0; i < 36; i++)
			ck_assert(i == 8 || i == 13 || i == 18 || i == 23 ?
				  first[i] == '-' : isxdigit((unsigned char)first[i]) &&
				  !isupper((unsigned char)first[i]));
		run(&f, "GET", "/health");
		ck_assert_str_ne(res.request_id, first);
	}
}
END_TEST

START_TEST(test_pipeline_trace_header_honoured_or_generated)
{
	fake_req f = { 0 };
	const char *line;

	hdr(&f, "X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;"
	    "Parent=53995c3f42cd8ad8;Sampled=1");
	run(&f, "GET", "/nope");
	ck_assert_int_eq(res.status, 404);
	ck_assert(has_header("X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;"
			     "Sampled=1\r\n"));
	/* X-Ray off and no decision from the caller: not sampled */
	f.values[0] = "Root=1-5759e988-bd862e3fe1be46a994272793";
	run(&f, "GET", "/health");
	ck_assert(has_header("X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;"
			     "Sampled=0\r\n"));
	/* a broken header is replaced by a new root, never refused */
	f.values[0] = "Root=1-5759e988-nothex;Sampled=1";
	run(&f, "GET", "/health");
	ck_assert_int_eq(res.status, 200);
	line = strstr(res.headers.data, "X-Amzn-Trace-Id: Root=1-");
	ck_assert_ptr_nonnull(line);
	ck_assert(strstr(line, ";Sampled=0\r\n") == line + 22 + 35);
	/* traceparent when there is no X-Amzn-Trace-Id */
	f.names[0] = "traceparent";
	f.values[0] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
	run(&f, "GET", "/health");
	ck_assert(has_header("X-Amzn-Trace-Id: Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;"
			     "Sampled=1\r\n"));
}
END_TEST

/* --- READ: framing ----------------------------------------------------------- */

static const char ADD[] =
	"{\"itemId\":\"sku\",\"quantity\":1,\"unitPrice\":{\"amount\":100,\"currency\":\"EUR\"}}";

static void post_add(fake_req *f, const char *user)
{
	char target[64];

	snprintf(target, sizeof(target), "/v1/cart/%s/items", user);
	run(f, "POST", target);
}

static int64_t version_of(const char *user)
{
	cart *c = NULL;
	int64_t v;

	ck_assert_int_eq(cart_service_get(svc, NULL, user, &c), CART_OK);
	v = cart_version(c);
	cart_free(c);
	return v;
}

START_TEST(test_pipeline_complete_body_is_read_in_pieces)
{
	fake_req f = { .body = ADD, .body_len = sizeof(ADD) - 1 };
	char len[16];

	snprintf(len, sizeof(len), "%zu", f.body_len);
	hdr(&f, "Content-Length", len);
	hdr(&f, "Content-Type", "application/json");
	post_add(&f, "u1");
	ck_assert_int_eq(res.status, 201);
	ck_assert_int_gt(f.reads, 10);
	ck_assert(!res.close);
	ck_assert_int_eq(version_of("u1"), 1);
}
END_TEST

START_TEST(test_pipeline_framing_refusals_close_and_store_nothing)
{
	static const struct {
		const char *cl1, *cl2, *te;
		int lines;
		int status;
		const char *code;
	} cases[] = {
		{ "74abc", NULL, NULL, 0, 400, "cart.invalid_framing" },
		{ "+74", NULL, NULL, 0, 400, "cart.invalid_framing" },
		{ "-1", NULL, NULL, 0, 400, "cart.invalid_framing" },
		{ "", NULL, NULL, 0, 400, "cart.invalid_framing" },
		{ " 74", NULL, NULL, 0, 400, "cart.invalid_framing" },
		{ "74", "74", NULL, 0, 400, "cart.invalid_framing" },
		{ "74", "75", NULL, 0, 400, "cart.invalid_framing" },
		{ "74", NULL, "chunked", 0, 400, "cart.invalid_framing" },
		{ NULL, NULL, "identity", 0, 400, "cart.invalid_framing" },
		{ "74", NULL, NULL, HTTP_MAX_HEADERS, 431, "cart.headers_too_large" },
		{ "16385", NULL, NULL, 0, 413, "cart.payload_too_large" },
		{ "99999999999999999999", NULL, NULL, 0, 400, "cart.invalid_framing" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake_req f = { .body = ADD, .body_len = sizeof(ADD) - 1 };

		hdr(&f, "Content-Type", "application/json");
		if (cases[i].cl1)
			hdr(&f, "Content-Length", cases[i].cl1);
		if (cases[i].cl2)
			hdr(&f, "Content-Length", cases[i].cl2);
		if (cases[i].te)
			hdr(&f, "Transfer-Encoding", cases[i].te);
		if (cases[i].lines)
			f.lines = cases[i].lines;   /* as many as civetweb keeps */
		post_add(&f, "u2");
		ck_assert_msg(res.status == cases[i].status, "case %zu: %d", i, res.status);
		ck_assert_str_eq(code_of(), cases[i].code);
		ck_assert_msg(res.close, "case %zu must close", i);
		ck_assert_int_eq(f.reads, 0);   /* refused before any body byte */
		ck_assert_ptr_nonnull(strstr(res.body.data, "\"instance\":\"/v1/cart/u2/items\""));
	}
	ck_assert_int_eq(version_of("u2"), 0);
}
END_TEST

START_TEST(test_pipeline_short_body_is_never_executed)
{
	fake_req f = { .body = ADD, .body_len = sizeof(ADD) - 1 };
	char len[16];

	/* The peer closes after all but the last byte. */
	snprintf(len, sizeof(len), "%zu", f.body_len + 1);
	hdr(&f, "Content-Length", len);
	hdr(&f, "Content-Type", "application/json");
	post_add(&f, "u3");
	ck_assert_int_eq(res.status, 400);
	ck_assert_str_eq(code_of(), "cart.incomplete_body");
	ck_assert(res.close);
	/* The peer stops sending: the deadline ends the read. */
	f.sent = 0;
	f.stall = true;
	post_add(&f, "u3");
	ck_assert_int_eq(res.status, 408);
	ck_assert_str_eq(code_of(), "cart.request_timeout");
	ck_assert(res.close);
	ck_assert_int_eq(version_of("u3"), 0);
}
END_TEST

START_TEST(test_pipeline_error_with_body_closes)
{
	fake_req f = { .body = "hello", .body_len = 5 };

	hdr(&f, "Content-Length", "5");
	hdr(&f, "Content-Type", "text/plain");
	post_add(&f, "u4");
	ck_assert_int_eq(res.status, 415);
	ck_assert(res.close);
	f.sent = 0;
	run(&f, "PUT", "/v1/cart/u4");
	ck_assert_int_eq(res.status, 405);
	ck_assert(res.close);
	/* Without a body, a 4xx keeps the connection. */
	fake_req g = { 0 };
	run(&g, "PUT", "/v1/cart/u4");
	ck_assert_int_eq(res.status, 405);
	ck_assert(!res.close);
}
END_TEST

/* --- ROUTE ------------------------------------------------------------------- */

START_TEST(test_pipeline_head_and_options)
{
	fake_req f = { 0 };

	run(&f, "HEAD", "/v1/cart/u5");
	ck_assert_int_eq(res.status, 200);
	ck_assert_ptr_nonnull(strstr(res.body.data, "\"version\":0"));
	ck_assert(has_header("ETag: \"0\"\r\n"));
	run(&f, "OPTIONS", "/v1/cart/u5/items/sku");
	ck_assert_int_eq(res.status, 204);
	ck_assert_uint_eq(res.body.len, 0);
	ck_assert(has_header("Allow: PATCH, DELETE, OPTIONS\r\n"));
	run(&f, "OPTIONS", "*");
	ck_assert_int_eq(res.status, 204);
	ck_assert(has_header("Allow: GET, HEAD, POST, PATCH, DELETE, OPTIONS\r\n"));
	run(&f, "GET", "*");
	ck_assert_int_eq(res.status, 400);
	ck_assert_str_eq(code_of(), "cart.invalid_request");
	run(&f, "PUT", "/health");
	ck_assert_int_eq(res.status, 405);
	ck_assert(has_header("Allow: GET, HEAD, OPTIONS\r\n"));
}
END_TEST

START_TEST(test_pipeline_absolute_form_and_long_paths)
{
	fake_req f = { 0 };
	char *target = malloc(HTTP_MAX_PATH + 32);

	run(&f, "GET", "http://cart.example:80/health?x=1");
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(res.route, "/health");
	run(&f, "GET", "HTTPS://h/v1/cart/u6");
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(res.route, "/v1/cart/{userID}");
	run(&f, "GET", "http://h");
	ck_assert_int_eq(res.status, 404);
	run(&f, "GET", "relative/path");
	ck_assert_int_eq(res.status, 400);
	/* An over-long user id is a bad id, not an unknown route. */
	strcpy(target, "/v1/cart/");
	memset(target + 9, 'a', 1100);
	target[1109] = '\0';
	run(&f, "GET", target);
	ck_assert_int_eq(res.status, 400);
	ck_assert_str_eq(code_of(), "cart.invalid_id");
	memset(target + 9, 'a', HTTP_MAX_PATH);
	target[HTTP_MAX_PATH + 9] = '\0';
	run(&f, "GET", target);
	ck_assert_int_eq(res.status, 414);
	ck_assert(res.close);
	free(target);
}
END_TEST

/* --- the call context reaches the core ---------------------------------------- */

static int as_alice(app_request *r, void *self)
{
	snprintf(r->sub, sizeof(r->sub), "alice");
	r->principal = (cart_principal){ r->sub, false };
	r->call.principal = &r->principal;
	return APP_NEXT;
}

START_TEST(test_pipeline_principal_sees_only_own_cart)
{
	fake_req f = { .body = ADD, .body_len = sizeof(ADD) - 1 };
	char len[16];

	app_pipeline_add(&app.pipeline, APP_PHASE_PREACCESS, "who", as_alice, NULL);
	snprintf(len, sizeof(len), "%zu", f.body_len);
	hdr(&f, "Content-Length", len);
	hdr(&f, "Content-Type", "application/json");
	post_add(&f, "bob");
	ck_assert_int_eq(res.status, 404);
	ck_assert_str_eq(code_of(), "cart.not_found");
	ck_assert_int_eq(version_of("bob"), 0);
	f.sent = 0;
	post_add(&f, "alice");
	ck_assert_int_eq(res.status, 201);
	fake_req g = { 0 };
	run(&g, "GET", "/v1/cart/bob");
	ck_assert_int_eq(res.status, 404);
	run(&g, "DELETE", "/v1/cart/bob");
	ck_assert_int_eq(res.status, 404);
	run(&g, "GET", "/v1/cart/alice");
	ck_assert_int_eq(res.status, 200);
}
END_TEST

/* --- the error table ------------------------------------------------------------ */

START_TEST(test_pipeline_error_table_is_complete)
{
	static const int all[] = {
#define X(name, value, str, msg, http, code, detail) CART_##name,
		CART_ERROR_MAP(X)
#undef X
	};
	size_t n = sizeof(all) / sizeof(all[0]);

	for (size_t i = 0; i < n; i++) {
		problem p = problem_for(all[i], CART_RULE_NONE);
		ck_assert_str_ne(cart_err_name(all[i]), "unknown");
		ck_assert_str_ne(cart_strerror(all[i]), "unknown error");
		ck_assert_int_ge(p.status, 200);
		ck_assert_int_le(p.status, 599);
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(cart_err_name(all[i]), cart_err_name(all[j]));
	}
	ck_assert_str_eq(cart_err_name(-999), "unknown");
	ck_assert_int_eq(problem_for(CART_EACCESS, CART_RULE_NONE).status, 404);
	ck_assert_str_eq(problem_for(CART_EACCESS, CART_RULE_NONE).code, "cart.not_found");
	ck_assert_int_eq(problem_for(CART_EINVALID, CART_RULE_ID).status, 400);
	ck_assert_int_eq(problem_for(CART_EPRECONDITION, CART_RULE_NONE).status, 412);
}
END_TEST

/* --- the rate limiter's view of the caller -------------------------------------- */

static app_ratelimit *new_limiter(const char *proxies, int rps, int burst)
{
	app_ratelimit *rl = NULL;
	char err[256];

	cfg.rate_limit_rps = rps;
	cfg.rate_limit_burst = burst;
	cfg.rate_limit_max_keys = 1000;
	strcpy(cfg.rate_limit_store, "memory");
	snprintf(cfg.trusted_proxies, sizeof(cfg.trusted_proxies), "%s", proxies);
	if (app_ratelimit_new(&rl, &cfg, &clk, err, sizeof(err)))
		return NULL;
	return rl;
}

START_TEST(test_pipeline_client_ip_trusts_only_listed_proxies)
{
	app_ratelimit *rl = new_limiter("10.0.0.0/8, 192.168.1.7", 10, 20);
	char ip[64];

	ck_assert_ptr_nonnull(rl);
	/* An untrusted peer's X-Forwarded-For is ignored. */
	app_ratelimit_client_ip(rl, "203.0.113.9", "1.1.1.1", ip, sizeof(ip));
	ck_assert_str_eq(ip, "203.0.113.9");
	/* From a trusted proxy: the rightmost address it did not add itself. */
	app_ratelimit_client_ip(rl, "10.1.2.3", "6.6.6.6, 198.51.100.4", ip, sizeof(ip));
	ck_assert_str_eq(ip, "198.51.100.4");
	app_ratelimit_client_ip(rl, "10.1.2.3", "6.6.6.6,198.51.100.4, 10.9.9.9 ,192.168.1.7",
				ip, sizeof(ip));
	ck_assert_str_eq(ip, "198.51.100.4");
	/* Only proxies in the chain: the leftmost is the best we know. */
	app_ratelimit_client_ip(rl, "10.1.2.3", "10.2.2.2, 10.3.3.3", ip, sizeof(ip));
	ck_assert_str_eq(ip, "10.2.2.2");
	/* No header from a proxy: the proxy itself. */
	app_ratelimit_client_ip(rl, "10.1.2.3", NULL, ip, sizeof(ip));
	ck_assert_str_eq(ip, "10.1.2.3");
	/* 192.168.1.7 is a /32: its neighbour is not trusted. */
	app_ratelimit_client_ip(rl, "192.168.1.8", "1.1.1.1", ip, sizeof(ip));
	ck_assert_str_eq(ip, "192.168.1.8");
	/* Garbage on the right stops the walk (it is then the key). */
	app_ratelimit_client_ip(rl, "10.1.2.3", "1.1.1.1, not-an-ip", ip, sizeof(ip));
	ck_assert_str_eq(ip, "not-an-ip");
	app_ratelimit_free(rl);
	ck_assert_ptr_null(new_limiter("10.0.0.0/33", 10, 20));
	ck_assert_ptr_null(new_limiter("10.0.0/8", 10, 20));
	ck_assert_ptr_null(new_limiter("10.0.0.0/", 10, 20));
	app_ratelimit_free(NULL);
}
END_TEST

START_TEST(test_pipeline_rate_limit_answers_429_with_fields)
{
	app_ratelimit *rl = new_limiter("", 1, 2);
	fake_req f = { 0 };

	ck_assert_ptr_nonnull(rl);
	app_pipeline_add(&app.pipeline, APP_PHASE_PREACCESS, "ratelimit",
			 app_stage_ratelimit, rl);
	run(&f, "GET", "/v1/cart/u7");
	ck_assert_int_eq(res.status, 200);
	ck_assert(has_header("RateLimit-Policy: \"default\";q=2;w=2\r\n"));
	ck_assert(has_header("RateLimit: \"default\";r=1;"));
	run(&f, "GET", "/v1/cart/u7");
	ck_assert_int_eq(res.status, 200);
	run(&f, "GET", "/v1/cart/u7");
	ck_assert_int_eq(res.status, 429);
	ck_assert_str_eq(code_of(), "cart.rate_limited");
	ck_assert(has_header("Retry-After: 1\r\n"));
	ck_assert(has_header("RateLimit: \"default\";r=0;"));
	/* Health checks are never limited. */
	run(&f, "GET", "/health");
	ck_assert_int_eq(res.status, 200);
	ck_assert(!has_header("RateLimit"));
	app_ratelimit_free(rl);
}
END_TEST

/* --- readiness and stats lists ---------------------------------------------------- */

static int ready_ok(void *self, buf *detail)
{
	buf_puts(detail, ",\"backend\":\"memory\"");
	return CART_OK;
}

static int ready_down(void *self, buf *detail)
{
	return CART_EUNAVAILABLE;
}

static int ready_strained(void *self, buf *detail)
{
	buf_puts(detail, ",\"backlog\":9");
	return APP_READY_DEGRADED;
}

static void stats_two(void *self, buf *out)
{
	buf_puts(out, ",\"a\":1,\"b\":2");
}

static void stats_none(void *self, buf *out)
{
}

START_TEST(test_pipeline_ready_and_stats_are_lists)
{
	fake_req f = { 0 };
	buf b;

	ck_assert_int_eq(app_ready_add(&app, "repository", ready_ok, NULL), 0);
	run(&f, "GET", "/ready");
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(res.body.data,
			 "{\"status\":\"ok\",\"checks\":[{\"name\":\"repository\",\"status\":\"ok\","
			 "\"backend\":\"memory\"},{\"name\":\"shutdown\",\"status\":\"ok\"}]}");
	ck_assert_int_eq(app_ready_add(&app, "events", ready_strained, NULL), 0);
	run(&f, "GET", "/ready");
	ck_assert_int_eq(res.status, 200);   /* degraded is still ready */
	ck_assert_ptr_nonnull(strstr(res.body.data,
		"{\"name\":\"events\",\"status\":\"degraded\",\"backlog\":9}"));
	ck_assert_int_eq(app_ready_add(&app, "redis", ready_down, NULL), 0);
	run(&f, "HEAD", "/ready");
	ck_assert_int_eq(res.status, 503);
	ck_assert_ptr_nonnull(strstr(res.body.data,
		"{\"name\":\"redis\",\"status\":\"fail\",\"error\":\"dependency unavailable\"}"));
	while (app.ready_count < APP_MAX_READY_CHECKS)
		app_ready_add(&app, "x", ready_ok, NULL);
	ck_assert_int_eq(app_ready_add(&app, "x", ready_ok, NULL), -1);

	ck_assert_int_eq(app_stats_add(&app, "svc", stats_two, NULL), 0);
	ck_assert_int_eq(app_stats_add(&app, "empty", stats_none, NULL), 0);
	buf_init(&b, 1024);
	app_stats_write(&app, &b);
	ck_assert_str_eq(b.data, ",\"svc\":{\"a\":1,\"b\":2},\"empty\":{}");
	buf_release(&b);
}
END_TEST

Suite *pipeline_suite(void)
{
	Suite *s = suite_create("pipeline");
	TCase *tc = tcase_create("pipeline");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_pipeline_phases_run_in_order_until_an_answer);
	tcase_add_test(tc, test_pipeline_add_is_bounded);
	tcase_add_test(tc, test_pipeline_request_id_honoured_or_generated);
	tcase_add_test(tc, test_pipeline_trace_header_honoured_or_generated);
	tcase_add_test(tc, test_pipeline_complete_body_is_read_in_pieces);
	tcase_add_test(tc, test_pipeline_framing_refusals_close_and_store_nothing);
	tcase_add_test(tc, test_pipeline_short_body_is_never_executed);
	tcase_add_test(tc, test_pipeline_error_with_body_closes);
	tcase_add_test(tc, test_pipeline_head_and_options);
	tcase_add_test(tc, test_pipeline_absolute_form_and_long_paths);
	tcase_add_test(tc, test_pipeline_principal_sees_only_own_cart);
	tcase_add_test(tc, test_pipeline_error_table_is_complete);
	tcase_add_test(tc, test_pipeline_client_ip_trusts_only_listed_proxies);
	tcase_add_test(tc, test_pipeline_rate_limit_answers_429_with_fields);
	tcase_add_test(tc, test_pipeline_ready_and_stats_are_lists);
	suite_add_tcase(s, tc);
	return s;
}
