/*
 * The request's deadline bounds the AWS client and the DynamoDB adapter
 * (issue 7): against the signature-checking proxy, whose fault injection
 * (tests/aws/README.md, "Proxy control API") plays a DynamoDB that
 * throttles, fails with 503 or hangs on every request.
 *
 * Times are real (curl and the proxy run in real time) and the machine is
 * noisy, under valgrind too: the assertions compare with the same call
 * without a deadline and allow a generous slack, never a tight bound.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dynamo/dynamo_suites.h"

/* Long enough for a first answer under valgrind with the other lane of
 * make check running: at 300 ms the first attempt itself was once cut in
 * flight (status 0 where the last answer's 503 was expected); still well
 * inside the first backoffs (200 + 400 ms), so the cut is tested. */
#define DEADLINE_MS 600
/* What a deadline-bounded call may take beyond its deadline: one curl
 * set-up and the proxy's answer, on a slow machine under valgrind. */
#define SLACK_MS 1200
#define ATTEMPTS 5            /* without the deadline: backoffs of */
#define BACKOFF_TOTAL_MS 2400 /* 200 + 400 + 800 + 1000 (max jitter) */

static cart_aws_client *client;
static cart_repo repo;
static char table[64];

/* --- the proxy's control API ---------------------------------------------- */

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
	cJSON **out = arg;
	cJSON_Delete(*out);
	*out = cJSON_ParseWithLength(data, size * n);
	return size * n;
}

/* POST (body) or GET (NULL) /__control/<path>; the parsed answer or NULL. */
static cJSON *control(const char *path, const char *body)
{
	char url[512];
	cJSON *got = NULL;
	long status = 0;
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");

	ck_assert_msg(g_env.control && *g_env.control,
		      "CART_TEST_CONTROL is not set: run through tests/aws/stack.py");
	snprintf(url, sizeof(url), "%s/__control/%s", g_env.control, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	ck_assert_int_eq(status, 200);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return got;
}

/* Every request for op, from now until the reset, gets fault kind. */
static void fault_always(const char *kind, const char *op)
{
	char body[160];

	snprintf(body, sizeof(body),
		 "{\"kind\":\"%s\",\"count\":100000,\"target\":\"%s\",\"hang_seconds\":4}",
		 kind, op);
	cJSON_Delete(control("fault", body));
}

static void proxy_reset(void)
{
	cJSON_Delete(control("reset", "{}"));
}

/* Signature-valid requests for op that reached the proxy since the reset. */
static int proxy_count(const char *op)
{
	char key[64];
	cJSON *st = control("stats", NULL);
	const cJSON *n;
	int v;

	snprintf(key, sizeof(key), "DynamoDB_20120810.%s", op);
	n = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(st, "targets"), key);
	v = cJSON_IsNumber(n) ? n->valueint : 0;
	cJSON_Delete(st);
	return v;
}

/* --- a client whose backoff is always its bound --------------------------- */

static int ids_uuid(void *self, char out[CART_UUID_LEN + 1])
{
	return cart_ids_uuid(&g_env.ids, out);
}

static uint64_t ids_max_jitter(void *self, uint64_t bound)
{
	return bound - 1;
}

static const cart_ids_ops max_jitter_ops = {
	CART_IDS_OPS_VERSION, ids_uuid, ids_max_jitter, NULL
};
static const cart_ids max_jitter = { &max_jitter_ops, NULL };

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	return cart_clock_now(&g_env.clock);
}

typedef struct seen {
	int calls;
	bool deadline_cut;
	int rc, attempts;
} seen;

static seen last_seen;

static void note(void *self, const cart_aws_call_info *in)
{
	seen *s = self;

	s->calls++;
	s->deadline_cut = in->deadline_cut;
	s->rc = in->rc;
	s->attempts = in->attempts;
}

static const cart_aws_observer observer = { note, &last_seen };

static void setup(void)
{
	cart_aws_client_config cc;
	cart_dynamo_config dc = { .table = table, .ready_cache_ms = 1000 };

	cart_aws_client_config_init(&cc);
	cc.breaker.enabled = false;      /* every attempt goes: count them */
	cc.retry.max_attempts = ATTEMPTS;
	cc.retry.base_ms = 200;
	cc.retry.cap_ms = 1000;
	cc.observer = &observer;
	memset(&last_seen, 0, sizeof(last_seen));
	ck_assert_int_eq(dynamo_new_table(table, sizeof(table)), 0);
	ck_assert_int_eq(dynamo_env_client(&client, NULL, NULL, &max_jitter, &cc),
			 CART_OK);
	ck_assert_int_eq(cart_dynamo_repo_new(&repo, &dc, client, &g_env.clock,
					      &g_env.ids, NULL), CART_OK);
	proxy_reset();
}

static void teardown(void)
{
	proxy_reset();   /* no fault may outlive its test */
	cart_repo_destroy(&repo);
	cart_aws_client_free(client);
	client = NULL;
}

static int get_item(int64_t deadline_ms, cart_aws_response *r, int64_t *took)
{
	char body[256];
	int64_t t0 = mono_ms();
	int rc;

	snprintf(body, sizeof(body), "{\"TableName\":\"%s\",\"Key\":{\"PK\":{\"S\":"
		 "\"CART#d\"},\"SK\":{\"S\":\"CART\"}}}", table);
	rc = cart_aws_call_until(client, "DynamoDB_20120810.GetItem", body,
				 strlen(body), deadline_ms, r);
	*took = mono_ms() - t0;
	return rc;
}

/* --- the client ------------------------------------------------------------ */

/*
 * A server answering 503 (then throttling) to every attempt: without a
 * deadline the client makes all its attempts and backoffs; with one
 * DEADLINE_MS ahead it returns CART_EUNAVAILABLE shortly after it, with fewer
 * attempts, says so to the observer, and keeps the tokens of the retry
 * it did not make.
 */
START_TEST(test_aws_call_until_stops_retrying_at_the_deadline)
{
	static const char *const kinds[] = { "error503", "throttling" };
	cart_aws_response r;
	int64_t full, cut;
	int tokens;

	fault_always(kinds[_i], "GetItem");
	ck_assert_int_eq(get_item(0, &r, &full), CART_OK);  /* answers arrived */
	ck_assert_int_eq(r.attempts, ATTEMPTS);
	ck_assert(!r.deadline_cut);
	ck_assert_int_ge(full, BACKOFF_TOTAL_MS);
	ck_assert(!last_seen.deadline_cut);
	cart_aws_response_release(&r);
	ck_assert_int_eq(proxy_count("GetItem"), ATTEMPTS);

	tokens = cart_aws_client_retry_tokens(client);
	ck_assert_int_eq(get_item(wall_ms() + DEADLINE_MS, &r, &cut),
			 CART_EUNAVAILABLE);
	ck_assert(r.deadline_cut);
	ck_assert_int_ge(r.attempts, 1);
	ck_assert_int_lt(r.attempts, ATTEMPTS);
	ck_assert_int_eq(r.status, kinds[_i][0] == 'e' ? 503 : 400);  /* the last answer */
	ck_assert_int_eq(proxy_count("GetItem"), ATTEMPTS + r.attempts);
	/* only the retries made cost tokens (5 each) */
	ck_assert_int_eq(cart_aws_client_retry_tokens(client),
			 tokens - 5 * (r.attempts - 1));
	ck_assert_msg(cut < DEADLINE_MS + SLACK_MS && cut * 2 < full,
		      "%s: %lld ms with a %d ms deadline, %lld ms without",
		      kinds[_i], (long long)cut, DEADLINE_MS, (long long)full);
	ck_assert_int_eq(last_seen.calls, 2);
	ck_assert(last_seen.deadline_cut);
	ck_assert_int_eq(last_seen.rc, CART_EUNAVAILABLE);
	ck_assert_int_eq(last_seen.attempts, r.attempts);
	cart_aws_response_release(&r);
}
END_TEST

/*
 * A server that never answers: the attempt's timeout is the time left,
 * not the client's 3 s; a deadline already past sends nothing.
 */
START_TEST(test_aws_call_until_cuts_a_hanging_attempt)
{
	cart_aws_response r;
	int64_t took;

	fault_always("hang", "GetItem");
	ck_assert_int_eq(get_item(wall_ms() + DEADLINE_MS, &r, &took),
			 CART_EUNAVAILABLE);
	ck_assert(r.deadline_cut);
	ck_assert_int_eq(r.attempts, 1);
	ck_assert_int_eq(r.status, 0);          /* no answer */
	ck_assert(r.ambiguous);                 /* sent: it may have applied */
	ck_assert_msg(took < DEADLINE_MS + SLACK_MS,
		      "%lld ms with a %d ms deadline (timeout_ms 3000)",
		      (long long)took, DEADLINE_MS);
	cart_aws_response_release(&r);

	ck_assert_int_eq(get_item(wall_ms() - 1, &r, &took), CART_EUNAVAILABLE);
	ck_assert(r.deadline_cut);
	ck_assert_int_eq(r.attempts, 0);
	cart_aws_response_release(&r);
	ck_assert_int_eq(proxy_count("GetItem"), 1);
}
END_TEST

/* --- the repository -------------------------------------------------------- */

static cart *small_cart(const char *user)
{
	cart_limits lim;
	cart_item_spec s = { "sku-1", 1, { 500, "EUR" }, NULL, NULL, 0 };
	cart *c = NULL;

	cart_limits_init(&lim);
	ck_assert_int_eq(cart_new(&c, user), CART_OK);
	ck_assert_int_eq(cart_begin(c, "0b5cf45c-b68f-4374-89ed-f0e4dbd060c9",
				    wall_ms()), CART_OK);
	ck_assert_int_eq(cart_add_item(c, &s, &lim, wall_ms(), NULL, NULL), CART_OK);
	cart_touch(c, wall_ms(), lim.ttl_ms);
	return c;
}

/*
 * A throttling table: load_call and save with the request's call give up
 * with CART_EUNAVAILABLE soon after its deadline, where the same load
 * without a call retries for seconds; a far deadline changes nothing.
 */
START_TEST(test_dynamo_load_and_save_stop_at_the_deadline)
{
	cart_call_ctx call = { "req-deadline", NULL, 0, NULL, NULL };
	cart *c = small_cart("u-deadline"), *c2 = small_cart("u-deadline-2");
	cart *got = NULL;
	cart_write w = { .user_id = "u-deadline", .expected_version = 0,
			 .cart = c, .call = &call };
	int64_t t0, full, cut;
	int before;

	call.deadline_ms = wall_ms() + 60000;   /* far: no effect */
	ck_assert_int_eq(cart_repo_save(&repo, &w), CART_OK);
	ck_assert_int_eq(cart_repo_load(&repo, &call, "u-deadline", &got), CART_OK);
	ck_assert_int_eq(cart_version(got), 1);
	cart_free(got);
	got = NULL;

	fault_always("throttle", "GetItem");
	before = proxy_count("GetItem");
	t0 = mono_ms();
	ck_assert_int_eq(cart_repo_load(&repo, NULL, "u-deadline", &got),
			 CART_EUNAVAILABLE);
	full = mono_ms() - t0;
	ck_assert_int_eq(proxy_count("GetItem") - before, ATTEMPTS);
	before = proxy_count("GetItem");
	call.deadline_ms = wall_ms() + DEADLINE_MS;
	t0 = mono_ms();
	ck_assert_int_eq(cart_repo_load(&repo, &call, "u-deadline", &got),
			 CART_EUNAVAILABLE);
	cut = mono_ms() - t0;
	ck_assert_ptr_null(got);
	ck_assert_int_lt(proxy_count("GetItem") - before, ATTEMPTS);
	ck_assert_msg(cut < DEADLINE_MS + SLACK_MS && cut * 2 < full,
		      "load: %lld ms with a %d ms deadline, %lld ms without",
		      (long long)cut, DEADLINE_MS, (long long)full);
	ck_assert(last_seen.deadline_cut);

	fault_always("throttle", "UpdateItem");
	before = proxy_count("UpdateItem");
	w.user_id = "u-deadline-2";
	w.cart = c2;
	call.deadline_ms = wall_ms() + DEADLINE_MS;
	t0 = mono_ms();
	ck_assert_int_eq(cart_repo_save(&repo, &w), CART_EUNAVAILABLE);
	cut = mono_ms() - t0;
	ck_assert_int_ge(proxy_count("UpdateItem") - before, 1);
	ck_assert_int_lt(proxy_count("UpdateItem") - before, ATTEMPTS);
	ck_assert_msg(cut < DEADLINE_MS + SLACK_MS && cut * 2 < full,
		      "save: %lld ms with a %d ms deadline, %lld ms for a load without",
		      (long long)cut, DEADLINE_MS, (long long)full);
	ck_assert(last_seen.deadline_cut);
	cart_free(c);
	cart_free(c2);
}
END_TEST

Suite *dynamo_deadline_suite(void)
{
	Suite *s = suite_create("dynamodb_deadline");
	TCase *tc = tcase_create("deadline");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_aws_call_until_stops_retrying_at_the_deadline, 0, 2);
	tcase_add_test(tc, test_aws_call_until_cuts_a_hanging_attempt);
	tcase_add_test(tc, test_dynamo_load_and_save_stop_at_the_deadline);
	suite_add_tcase(s, tc);
	return s;
}
