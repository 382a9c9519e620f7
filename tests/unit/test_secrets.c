/*
 * Secrets: "id#key" references, JSON key selection, the store (files:
 * first read, refresh, a failed refresh keeping the value, the listener,
 * the background thread), and the configuration's sources and masking.
 * GetSecretValue itself is tested against the stand-in (tests/e2e_aws).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fakes/fake_clock.h"
#include "secrets.h"
#include "secrets/secrets.h"
#include "unit/suites.h"

/* --- references and keys -------------------------------------------------- */

START_TEST(test_secrets_ref_parse)
{
	cart_secret_ref r;
	char err[200], id[600];

	ck_assert_int_eq(cart_secret_ref_parse(&r, "cart-service/redis", err, sizeof(err)), 0);
	ck_assert_str_eq(r.id, "cart-service/redis");
	ck_assert_str_eq(r.key, "");
	ck_assert_int_eq(cart_secret_ref_parse(&r, "arn:aws:secretsmanager:eu-west-1:"
					       "123456789012:secret:cart/redis-AbC123#password",
					       err, sizeof(err)), 0);
	ck_assert_str_eq(r.id, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cart/redis-AbC123");
	ck_assert_str_eq(r.key, "password");
	ck_assert_int_eq(cart_secret_ref_parse(&r, "a_b+c=d.e@f-g#k_1.x-y", err, sizeof(err)), 0);

	const char *bad[] = { "", "#key", "name#", "a#b#c", "has space", "quo\"te",
			      "name#ke y", "name#k/ey", "back\\slash" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(cart_secret_ref_parse(&r, bad[i], err, sizeof(err)) == -1, "%s", bad[i]);
		ck_assert_msg(err[0], "a refusal says why");
	}
	memset(id, 'a', 512);
	id[512] = '\0';
	ck_assert_int_eq(cart_secret_ref_parse(&r, id, err, sizeof(err)), 0);
	strcpy(id + 512, "a");
	ck_assert_int_eq(cart_secret_ref_parse(&r, id, err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_secrets_select_key)
{
	const char *doc = "{\"username\":\"cart\",\"password\":\"p@ss \\\"w\\\"\",\"port\":6379}";
	char err[200], *v = NULL;
	size_t n = 0;

	ck_assert_int_eq(cart_secret_select(&v, &n, doc, strlen(doc), "password", err,
					    sizeof(err)), 0);
	ck_assert_str_eq(v, "p@ss \"w\"");
	ck_assert_uint_eq(n, 8);
	cart_secret_wipe_free(v, n);
	ck_assert_int_eq(cart_secret_select(&v, &n, doc, strlen(doc), "nope", err, sizeof(err)), -1);
	ck_assert_ptr_null(strstr(err, "p@ss"));
	ck_assert_int_eq(cart_secret_select(&v, &n, doc, strlen(doc), "port", err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a string"));
	ck_assert_int_eq(cart_secret_select(&v, &n, "hunter2", 7, "password", err, sizeof(err)), -1);
	ck_assert_ptr_null(strstr(err, "hunter2"));
	ck_assert_int_eq(cart_secret_select(&v, &n, "[\"a\"]", 5, "0", err, sizeof(err)), -1);
	ck_assert_ptr_null(v);
}
END_TEST

/* --- the store, with files ------------------------------------------------- */

static cart_clock clk;
static fake_clock *fclk;
static cart_secrets *store;
static char dir[64], path[128];
static int heard;
static char last[64];

static void store_setup(void)
{
	ck_assert_int_eq(fake_clock_new(&clk, &fclk, 1767225600000LL), 0);
	strcpy(dir, "/tmp/cart-secrets-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	ck_assert_int_eq(cart_secrets_new(&store, 1000, NULL, &clk, NULL), CART_OK);
	heard = 0;
	last[0] = '\0';
}

static void store_teardown(void)
{
	cart_secrets_free(store);
	unlink(path);
	rmdir(dir);
	cart_clock_destroy(&clk);
}

static void write_file(const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static void listener(void *ctx, const char *value, size_t len)
{
	(void)ctx;
	__atomic_add_fetch(&heard, 1, __ATOMIC_SEQ_CST);
	snprintf(last, sizeof(last), "%.*s", (int)len, value);
}

static void expect_value(int index, const char *want)
{
	char *v;
	size_t n;

	ck_assert_int_eq(cart_secrets_get(store, index, &v, &n), CART_OK);
	ck_assert_str_eq(v, want);
	ck_assert_uint_eq(n, strlen(want));
	cart_secret_wipe_free(v, n);
}

START_TEST(test_secrets_file_refresh_and_failure_keep_value)
{
	cart_secret_stats st;
	char err[256];
	int i = -1;

	write_file("pw-1\n");
	ck_assert_int_eq(cart_secrets_add(store, "REDIS_PASSWORD_FILE", CART_SECRET_FILE, path,
					  listener, NULL, &i, err, sizeof(err)), CART_OK);
	expect_value(i, "pw-1");   /* the trailing newline is not part of it */
	cart_secrets_refresh_all(store);
	ck_assert_int_eq(heard, 0);   /* the same value is no change */

	write_file("pw-2\r\n");
	cart_secrets_refresh_all(store);
	ck_assert_int_eq(heard, 1);
	ck_assert_str_eq(last, "pw-2");
	expect_value(i, "pw-2");

	unlink(path);   /* the source fails: the last good value stays */
	cart_secrets_refresh_all(store);
	cart_secrets_refresh_all(store);
	expect_value(i, "pw-2");
	ck_assert_int_eq(cart_secrets_stats(store, &st, 1), 1);
	ck_assert_str_eq(st.name, "REDIS_PASSWORD_FILE");
	ck_assert_uint_eq(st.fetches, 3);
	ck_assert_uint_eq(st.failures, 2);
	ck_assert_uint_eq(st.changes, 1);
	ck_assert(st.failing);
	ck_assert(!st.expired);
	fake_clock_advance(fclk, 1001);   /* past the TTL, still served */
	cart_secrets_stats(store, &st, 1);
	ck_assert(st.expired);
	expect_value(i, "pw-2");

	write_file("pw-3");
	cart_secrets_refresh_all(store);
	cart_secrets_stats(store, &st, 1);
	ck_assert(!st.failing);
	ck_assert(!st.expired);
	ck_assert_str_eq(last, "pw-3");
	ck_assert_int_eq(heard, 2);
}
END_TEST

START_TEST(test_secrets_add_refuses_missing_and_oversized)
{
	char err[256], big[CART_SECRET_MAX_BYTES + 16];
	int i;

	ck_assert_int_eq(cart_secrets_add(store, "X_FILE", CART_SECRET_FILE, path, NULL, NULL,
					  &i, err, sizeof(err)), CART_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(err, "X_FILE"));
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	write_file(big);
	ck_assert_int_eq(cart_secrets_add(store, "X_FILE", CART_SECRET_FILE, path, NULL, NULL,
					  &i, err, sizeof(err)), CART_EBACKEND);
	big[CART_SECRET_MAX_BYTES] = '\0';   /* exactly the bound */
	write_file(big);
	ck_assert_int_eq(cart_secrets_add(store, "X_FILE", CART_SECRET_FILE, path, NULL, NULL,
					  &i, err, sizeof(err)), CART_OK);
	ck_assert_int_eq(cart_secrets_add(store, "Y", CART_SECRET_AWS, "name", NULL, NULL,
					  &i, err, sizeof(err)), CART_EINVALID);   /* no client */
	ck_assert_int_eq(cart_secrets_new(&(cart_secrets *){ NULL }, 999, NULL, &clk, NULL),
			 CART_EINVALID);
}
END_TEST

/* The thread re-reads at 3/4 of the TTL (1 s here) without being asked. */
START_TEST(test_secrets_background_refresh)
{
	struct timespec ts = { 0, 20 * 1000000L };
	char err[256];
	int i;

	write_file("bus-1");
	ck_assert_int_eq(cart_secrets_add(store, "EVENTBRIDGE_BUS_NAME_FILE", CART_SECRET_FILE,
					  path, listener, NULL, &i, err, sizeof(err)), CART_OK);
	ck_assert_int_eq(cart_secrets_start(store), 0);
	write_file("bus-2");
	for (int n = 0; n < 150 && !__atomic_load_n(&heard, __ATOMIC_SEQ_CST); n++)
		nanosleep(&ts, NULL);
	ck_assert_int_eq(__atomic_load_n(&heard, __ATOMIC_SEQ_CST), 1);
	expect_value(i, "bus-2");
}
END_TEST

/* --- configuration: one source each, never a value in the start line ------- */

static const char *const *env_pairs;

static const char *fake_env(const char *name)
{
	for (const char *const *p = env_pairs; *p; p += 2)
		if (!strcmp(p[0], name))
			return p[1];
	return NULL;
}

static int load(const char *const *pairs, app_config *cfg, char *err, size_t n)
{
	char warn[256];

	env_pairs = pairs;
	return config_load(cfg, fake_env, err, n) ||
	       config_check_features(cfg, err, n, warn, sizeof(warn)) ? -1 : 0;
}

START_TEST(test_secrets_config_masks_values)
{
	static const char *const env[] = {
		"JWT_JWKS", "{\"keys\":[\"hunter2-jwks\"]}", "REDIS_PASSWORD", "hunter2-pw",
		"EVENTBRIDGE_BUS_NAME", "arn:aws:events:eu-west-1:123456789012:event-bus/hunter2-bus",
		NULL };
	static app_config cfg;
	char err[512], json[16384];

	ck_assert_msg(load(env, &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert(cfg.set_jwt_jwks);
	ck_assert(cfg.set_redis_password);
	config_to_json(&cfg, json, sizeof(json));
	ck_assert_ptr_null(strstr(json, "hunter2"));
	ck_assert_ptr_null(strstr(json, "123456789012"));
	ck_assert_ptr_nonnull(strstr(json, "\"JWT_JWKS\":\"***\""));
	ck_assert_ptr_nonnull(strstr(json, "\"REDIS_PASSWORD\":\"***\""));
	ck_assert_ptr_nonnull(strstr(json, "\"EVENTBRIDGE_BUS_NAME\":\"***\""));
	ck_assert_ptr_nonnull(strstr(json, "\"SECRETS_TTL_SECONDS\":300"));
}
END_TEST

START_TEST(test_secrets_config_one_source_each)
{
	static const char *const cases[][7] = {
		{ "JWT_JWKS", "{}", "JWT_JWKS_URL", "https://x/jwks", NULL, NULL, "JWT_JWKS_URL" },
		{ "JWT_JWKS_FILE", "/k", "JWT_JWKS_SECRET_ID", "k", NULL, NULL, "JWT_JWKS_SECRET_ID" },
		{ "REDIS_PASSWORD_FILE", "/p", "REDIS_URL", "redis://:pw@h:6379", NULL, NULL, "REDIS_URL" },
		{ "REDIS_PASSWORD", "a", "REDIS_PASSWORD_SECRET_ID", "r#password", NULL, NULL,
		  "REDIS_PASSWORD_FILE" },
		{ "EVENTBRIDGE_BUS_NAME", "b", "EVENTBRIDGE_BUS_NAME_FILE", "/b", NULL, NULL,
		  "EVENTBRIDGE_BUS_NAME_SECRET_ID" },
		{ "JWT_JWKS_SECRET_ID", "a#b#c", NULL, NULL, NULL, NULL, "JWT_JWKS_SECRET_ID" },
		{ "REDIS_PASSWORD_SECRET_ID", "with space", NULL, NULL, NULL, NULL,
		  "REDIS_PASSWORD_SECRET_ID" },
	};
	static app_config cfg;
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(load(cases[i], &cfg, err, sizeof(err)) == -1, "case %zu", i);
		ck_assert_msg(strstr(err, cases[i][6]), "case %zu: %s", i, err);
		ck_assert_msg(!strchr(err, '\n'), "one line");
	}
	/* A user without a password in the URL leaves room for REDIS_PASSWORD. */
	static const char *const ok[] = { "REDIS_URL", "redis://cart@h:6379",
					  "REDIS_PASSWORD_FILE", "/p", NULL };
	ck_assert_msg(load(ok, &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert(!app_secrets_use_aws(&cfg));
	static const char *const aws[] = { "EVENTBRIDGE_BUS_NAME_SECRET_ID", "cart/bus", NULL };
	ck_assert_msg(load(aws, &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert(app_secrets_use_aws(&cfg));
}
END_TEST

Suite *secrets_suite(void)
{
	Suite *s = suite_create("secrets");
	TCase *tc = tcase_create("references");
	TCase *st = tcase_create("store");
	TCase *cf = tcase_create("config");

	tcase_add_test(tc, test_secrets_ref_parse);
	tcase_add_test(tc, test_secrets_select_key);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(st, store_setup, store_teardown);
	tcase_add_test(st, test_secrets_file_refresh_and_failure_keep_value);
	tcase_add_test(st, test_secrets_add_refuses_missing_and_oversized);
	tcase_add_test(st, test_secrets_background_refresh);
	tcase_set_timeout(st, 30);
	suite_add_tcase(s, st);
	tcase_add_test(cf, test_secrets_config_masks_values);
	tcase_add_test(cf, test_secrets_config_one_source_each);
	suite_add_tcase(s, cf);
	return s;
}
