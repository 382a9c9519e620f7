/*
 * Feature flags: the document parser (every accepted and refused form),
 * the precedence of sources in the snapshot word, the registry's file
 * source (start, reload, a bad file keeping the last good flags), the
 * AppConfig document path, the metrics, and readers that never see half
 * an update while a writer flips every flag.
 */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "flags.h"
#include "log.h"
#include "unit/suites.h"

#define PARSE(s, v, why) app_flags_parse(s, strlen(s), v, why, sizeof(why))

START_TEST(test_flags_parse_accepted_forms)
{
	app_flag_values v;
	char why[256];

	ck_assert_int_eq(PARSE("{}", &v, why), 0);
	ck_assert_uint_eq(v.set, 0);
	ck_assert_int_eq(PARSE("{\"events\": false, \"require_if_match\": true,"
			       "\"idempotency_required\": \"on\","
			       "\"auth_enforce\": {\"enabled\": false, \"note\": [1]}}", &v, why), 0);
	ck_assert_uint_eq(v.set, 15);
	ck_assert(!(v.on >> APP_FLAG_EVENTS & 1));
	ck_assert(v.on >> APP_FLAG_REQUIRE_IF_MATCH & 1);
	ck_assert(v.on >> APP_FLAG_IDEMPOTENCY_REQUIRED & 1);
	ck_assert(!(v.on >> APP_FLAG_AUTH_ENFORCE & 1));
	ck_assert_int_eq(PARSE("{\"events\":\"off\"}", &v, why), 0);
	ck_assert_uint_eq(v.set, 1u << APP_FLAG_EVENTS);
	ck_assert_uint_eq(v.on, 0);
}
END_TEST

START_TEST(test_flags_parse_refused_documents)
{
	static const char *const bad[] = {
		"", "[]", "true", "{", "{\"events\": 1}", "{\"events\": \"yes\"}",
		"{\"events\": null}", "{\"events\": {}}", "{\"events\": {\"enabled\": \"on\"}}",
		"{\"evnets\": true}", "{\"events\": true, \"events\": false}",
		"{\"EVENTS\": true}", "{\"events\": true} x",
	};
	app_flag_values v = { 7, 7 };
	char why[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		ck_assert_msg(PARSE(bad[i], &v, why) == -1, "accepted %s", bad[i]);
		ck_assert_msg(why[0], "no reason for %s", bad[i]);
		ck_assert_uint_eq(v.set, 7);   /* untouched */
	}
	ck_assert_int_eq(PARSE("{\"evnets\": true}", &v, why), -1);
	ck_assert_ptr_nonnull(strstr(why, "unknown flag \"evnets\""));
}
END_TEST

START_TEST(test_flags_parse_size_bound)
{
	size_t n = APP_FLAGS_DOC_MAX + 1;
	char *doc = malloc(n), why[128];
	app_flag_values v;

	memset(doc, ' ', n);
	doc[0] = '{';
	doc[n - 1] = '}';
	ck_assert_int_eq(app_flags_parse(doc, n, &v, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "bound"));
	ck_assert_int_eq(app_flags_parse(doc + 1, n - 1, &v, why, sizeof(why)), -1);
	doc[1] = '{';   /* exactly the bound: parsed */
	ck_assert_int_eq(app_flags_parse(doc + 1, n - 1, &v, why, sizeof(why)), 0);
	free(doc);
}
END_TEST

START_TEST(test_flags_precedence)
{
	app_flag_values file = { 1u << APP_FLAG_EVENTS | 1u << APP_FLAG_REQUIRE_IF_MATCH,
				 1u << APP_FLAG_REQUIRE_IF_MATCH };
	app_flag_values ac = { 1u << APP_FLAG_REQUIRE_IF_MATCH | 1u << APP_FLAG_AUTH_ENFORCE, 0 };
	app_flag_values env = { 1u << APP_FLAG_AUTH_ENFORCE, 1u << APP_FLAG_AUTH_ENFORCE };
	app_flags_snapshot s = app_flags_combine(NULL, NULL, NULL, 3);

	for (int f = 0; f < APP_FLAG_COUNT; f++) {
		ck_assert_int_eq(app_flags_on(s, f), app_flag_default(f));
		ck_assert_int_eq(app_flags_source(s, f), APP_FLAG_SRC_DEFAULT);
	}
	ck_assert_uint_eq(app_flags_generation(s), 3);
	ck_assert(!app_flags_on(s, APP_FLAG_REQUIRE_IF_MATCH));   /* unchanged by default */
	ck_assert(!app_flags_on(s, APP_FLAG_IDEMPOTENCY_REQUIRED));
	ck_assert(app_flags_on(s, APP_FLAG_EVENTS));
	ck_assert(app_flags_on(s, APP_FLAG_AUTH_ENFORCE));

	s = app_flags_combine(&file, &ac, &env, 0);
	ck_assert(!app_flags_on(s, APP_FLAG_EVENTS));
	ck_assert_int_eq(app_flags_source(s, APP_FLAG_EVENTS), APP_FLAG_SRC_FILE);
	ck_assert(!app_flags_on(s, APP_FLAG_REQUIRE_IF_MATCH));   /* appconfig over file */
	ck_assert_int_eq(app_flags_source(s, APP_FLAG_REQUIRE_IF_MATCH), APP_FLAG_SRC_APPCONFIG);
	ck_assert(app_flags_on(s, APP_FLAG_AUTH_ENFORCE));        /* env over appconfig */
	ck_assert_int_eq(app_flags_source(s, APP_FLAG_AUTH_ENFORCE), APP_FLAG_SRC_ENV);
	ck_assert_int_eq(app_flags_source(s, APP_FLAG_IDEMPOTENCY_REQUIRED), APP_FLAG_SRC_DEFAULT);
	ck_assert_str_eq(app_flag_source_name(APP_FLAG_SRC_APPCONFIG), "appconfig");
	ck_assert_str_eq(app_flag_name(APP_FLAG_IDEMPOTENCY_REQUIRED), "idempotency_required");
	ck_assert_ptr_null(app_flag_name(APP_FLAG_COUNT));
}
END_TEST

/* --- the registry ------------------------------------------------------------ */

static char tmp_path[64];
static const char *fake_env[2][2];

static const char *fake_getenv(const char *name)
{
	for (int i = 0; i < 2; i++)
		if (fake_env[i][0] && !strcmp(fake_env[i][0], name))
			return fake_env[i][1];
	return NULL;
}

static void write_file(const char *text)
{
	char tmp[80];
	FILE *f;

	/* a new inode each time, as an editor or a ConfigMap swap does */
	snprintf(tmp, sizeof(tmp), "%s.new", tmp_path);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(rename(tmp, tmp_path), 0);
}

static void make_cfg(app_config *cfg, const char *pin_name, const char *pin_value,
		     bool with_file)
{
	char err[256];

	fake_env[0][0] = pin_name;
	fake_env[0][1] = pin_value;
	fake_env[1][0] = with_file ? "FEATURE_FLAGS_FILE" : NULL;
	fake_env[1][1] = tmp_path;
	ck_assert_int_eq(config_load(cfg, fake_getenv, err, sizeof(err)), 0);
}

static void setup_tmp(void)
{
	snprintf(tmp_path, sizeof(tmp_path), "/tmp/cart-flags-%d.json", (int)getpid());
	log_setup(LOG_ERROR, 2);
}

static void teardown_tmp(void)
{
	unlink(tmp_path);
}

START_TEST(test_flags_registry_file_and_pins)
{
	app_config cfg;
	app_flags *f;
	char err[256];
	app_flags_snapshot s;

	write_file("{\"events\": false, \"auth_enforce\": false}");
	make_cfg(&cfg, "FEATURE_AUTH_ENFORCE", "on", true);
	ck_assert_int_eq(app_flags_new(&f, &cfg, err, sizeof(err)), 0);
	s = app_flags_get(f);
	ck_assert(!app_flags_on(s, APP_FLAG_EVENTS));
	ck_assert_int_eq(app_flags_source(s, APP_FLAG_EVENTS), APP_FLAG_SRC_FILE);
	ck_assert(app_flags_on(s, APP_FLAG_AUTH_ENFORCE));   /* the pin wins */
	ck_assert_int_eq(app_flags_source(s, APP_FLAG_AUTH_ENFORCE), APP_FLAG_SRC_ENV);

	/* unchanged file: not read again */
	ck_assert_int_eq(app_flags_reload_file(f, false), 0);
	ck_assert_uint_eq(app_flags_get(f), s);
	/* a change: events back on (left out: the default) */
	write_file("{\"require_if_match\": \"on\"}");
	ck_assert_int_eq(app_flags_reload_file(f, false), 0);
	s = app_flags_get(f);
	ck_assert(app_flags_on(s, APP_FLAG_EVENTS));
	ck_assert_int_eq(app_flags_source(s, APP_FLAG_EVENTS), APP_FLAG_SRC_DEFAULT);
	ck_assert(app_flags_on(s, APP_FLAG_REQUIRE_IF_MATCH));
	ck_assert_uint_eq(app_flags_generation(s), 1);
	/* a bad version: refused, the last good flags stay */
	write_file("{\"require_if_match\": maybe}");
	ck_assert_int_eq(app_flags_reload_file(f, false), -1);
	ck_assert_uint_eq(app_flags_get(f), s);
	ck_assert_int_eq(app_flags_reload_file(f, false), 0);   /* warned once */
	ck_assert_int_eq(app_flags_reload_file(f, true), -1);   /* SIGHUP reads it */
	unlink(tmp_path);
	ck_assert_int_eq(app_flags_reload_file(f, true), -1);
	ck_assert_uint_eq(app_flags_get(f), s);
	app_flags_free(f);
}
END_TEST

START_TEST(test_flags_registry_bad_file_at_start)
{
	app_config cfg;
	app_flags *f = (app_flags *)1;
	char err[256];

	write_file("{\"events\": 0}");
	make_cfg(&cfg, NULL, NULL, true);
	ck_assert_int_eq(app_flags_new(&f, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_null(f);
	ck_assert_ptr_nonnull(strstr(err, "FEATURE_FLAGS_FILE"));
	ck_assert_ptr_null(strchr(err, '\n'));
	unlink(tmp_path);
	ck_assert_int_eq(app_flags_new(&f, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot read"));
}
END_TEST

typedef struct change_log {
	int calls;
	app_flags_snapshot before, after;
} change_log;

static void on_change(void *self, app_flags_snapshot before, app_flags_snapshot after)
{
	change_log *c = self;

	c->calls++;
	c->before = before;
	c->after = after;
}

START_TEST(test_flags_appconfig_documents_and_metrics)
{
	app_config cfg;
	app_flags *f;
	change_log cl = { 0 };
	const char *doc = "{\"events\":{\"enabled\":false},\"idempotency_required\":true}";
	char err[256];
	buf b;

	make_cfg(&cfg, "FEATURE_IDEMPOTENCY_REQUIRED", "off", false);
	ck_assert_int_eq(app_flags_new(&f, &cfg, err, sizeof(err)), 0);
	app_flags_on_change(f, on_change, &cl);
	ck_assert_int_eq(app_flags_apply_appconfig(f, doc, strlen(doc)), 0);
	ck_assert_int_eq(cl.calls, 1);
	ck_assert(app_flags_on(cl.before, APP_FLAG_EVENTS));
	ck_assert(!app_flags_on(cl.after, APP_FLAG_EVENTS));
	ck_assert(!app_flags_on(app_flags_get(f), APP_FLAG_IDEMPOTENCY_REQUIRED));  /* pinned */
	/* the same document again: no change, no call */
	ck_assert_int_eq(app_flags_apply_appconfig(f, "{\"events\":false}", 16), 0);
	ck_assert_int_eq(cl.calls, 1);
	ck_assert_int_eq(app_flags_apply_appconfig(f, "{\"events\":", 10), -1);
	ck_assert(!app_flags_on(app_flags_get(f), APP_FLAG_EVENTS));

	buf_init(&b, 8192);
	app_flags_metrics(f, &b);
	ck_assert(!b.failed);
	ck_assert_ptr_nonnull(strstr(b.data, "cart_feature_flag{name=\"events\",source=\"appconfig\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "cart_feature_flag{name=\"idempotency_required\",source=\"env\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "cart_feature_flag{name=\"auth_enforce\",source=\"default\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "cart_feature_flags_reloads_total{source=\"appconfig\",outcome=\"applied\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "cart_feature_flags_reloads_total{source=\"appconfig\",outcome=\"invalid\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "# TYPE cart_feature_flag gauge\n"));
	buf_release(&b);
	app_flags_free(f);

	/* NULL: the defaults, for an app without flags */
	ck_assert_uint_eq(app_flags_get(NULL), app_flags_combine(NULL, NULL, NULL, 0));
}
END_TEST

/* Readers see whole snapshots: the writer flips every flag at once. */
typedef struct race {
	app_flags *f;
	atomic_int stop;
	atomic_long torn, reads;   /* both readers count here */
} race;

static void *reader(void *arg)
{
	race *r = arg;

	while (!atomic_load(&r->stop)) {
		/* Yield now and then: under valgrind, whose threads take turns
		 * on one lock, two spinning readers made the writer's 2,000
		 * updates take ten minutes. */
		if ((atomic_load(&r->reads) & 15) == 15)
			sched_yield();
		app_flags_snapshot s = app_flags_get(r->f);
		bool first = app_flags_on(s, APP_FLAG_EVENTS);

		for (int i = 0; i < APP_FLAG_COUNT; i++)
			if (app_flags_on(s, i) != first ||
			    app_flags_source(s, i) != APP_FLAG_SRC_APPCONFIG)
				atomic_fetch_add(&r->torn, 1);
		atomic_fetch_add(&r->reads, 1);
	}
	return NULL;
}

START_TEST(test_flags_readers_never_see_half_an_update)
{
	static const char *const docs[2] = {
		"{\"events\":true,\"require_if_match\":true,\"idempotency_required\":true,"
		"\"auth_enforce\":true}",
		"{\"events\":false,\"require_if_match\":false,\"idempotency_required\":false,"
		"\"auth_enforce\":false}",
	};
	app_config cfg;
	race r = { 0 };
	pthread_t t[2];
	char err[256];

	make_cfg(&cfg, NULL, NULL, false);
	ck_assert_int_eq(app_flags_new(&r.f, &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(app_flags_apply_appconfig(r.f, docs[0], strlen(docs[0])), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, reader, &r), 0);
	/* At least 2,000 updates, and on until the readers have read 200
	 * times between them while updates ran: on a busy machine the 2,000
	 * could finish before either reader was scheduled (CI, 2026-11-28:
	 * reads == 0).  Bounded: 30 s. */
	for (int i = 0, start = (int)time(NULL);
	     i < 2000 || (atomic_load(&r.reads) < 200 && (int)time(NULL) - start < 30); i++)
		ck_assert_int_eq(app_flags_apply_appconfig(r.f, docs[i & 1],
							   strlen(docs[i & 1])), 0);
	atomic_store(&r.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&r.torn), 0);
	ck_assert_int_ge(atomic_load(&r.reads), 200);
	app_flags_free(r.f);
}
END_TEST

Suite *flags_suite(void)
{
	Suite *s = suite_create("flags");
	TCase *parse = tcase_create("parse");
	TCase *reg = tcase_create("registry");

	tcase_add_test(parse, test_flags_parse_accepted_forms);
	tcase_add_test(parse, test_flags_parse_refused_documents);
	tcase_add_test(parse, test_flags_parse_size_bound);
	tcase_add_test(parse, test_flags_precedence);
	suite_add_tcase(s, parse);
	tcase_add_checked_fixture(reg, setup_tmp, teardown_tmp);
	tcase_add_test(reg, test_flags_registry_file_and_pins);
	tcase_add_test(reg, test_flags_registry_bad_file_at_start);
	tcase_add_test(reg, test_flags_appconfig_documents_and_metrics);
	tcase_add_test(reg, test_flags_readers_never_see_half_an_update);
	tcase_set_timeout(reg, 30);
	suite_add_tcase(s, reg);
	return s;
}
