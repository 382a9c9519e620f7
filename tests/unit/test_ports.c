/*
 * Port wrappers, idempotency records, and the adapters that need no
 * infrastructure (system clock and ids, log and no-op publishers); plus the
 * test fakes themselves, so a broken fake cannot hide a broken service.
 */
#include <check.h>
#include <pthread.h>
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cart/ports.h"
#include "cart/repo.h"
#include "codec/event_json.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_ids.h"
#include "fakes/fake_publisher.h"
#include "fakes/fault_repo.h"
#include "log/log_publisher.h"
#include "memory/memory_repo.h"
#include "system/system.h"
#include "unit/suites.h"

#define T0 1767225600000LL
#define UUID_1 "00000000-0000-4000-8000-000000000001"

static cart_event sample_event(void)
{
	cart_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = CART_EVENT_ITEM_ADDED;
	snprintf(ev.event_id, sizeof(ev.event_id), "00000000-0000-4000-8000-0000000000ee");
	ev.occurred_at = T0 + 123;
	snprintf(ev.user_id, sizeof(ev.user_id), "user-42");
	snprintf(ev.cart_id, sizeof(ev.cart_id), UUID_1);
	ev.cart_version = 7;
	snprintf(ev.item_id, sizeof(ev.item_id), "sku-9");
	ev.quantity_before = 1;
	ev.quantity_after = 3;
	ev.unit_price.amount = 1999;
	snprintf(ev.unit_price.currency, sizeof(ev.unit_price.currency), "EUR");
	return ev;
}

static bool uuid_v4_shape(const char *s)
{
	if (strlen(s) != CART_UUID_LEN)
		return false;
	for (int i = 0; i < CART_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
			return false;
		}
	}
	return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

/* --- wrappers ------------------------------------------------------------- */

START_TEST(test_ports_destroy_accepts_null_and_empty)
{
	cart_clock_destroy(NULL);
	cart_ids_destroy(NULL);
	cart_publisher_destroy(NULL);
	cart_repo_destroy(NULL);
	cart_clock clk = { 0 };
	cart_clock_destroy(&clk);
	cart_ids ids = { 0 };
	cart_ids_destroy(&ids);
	cart_publisher pub = { 0 };
	cart_publisher_destroy(&pub);
	cart_repo repo = { 0 };
	cart_repo_destroy(&repo);
}
END_TEST

START_TEST(test_ports_repo_destroy_twice_is_safe)
{
	cart_repo r;
	ck_assert_int_eq(cart_memory_repo_new(&r), CART_OK);
	cart_repo_destroy(&r);
	cart_repo_destroy(&r);
}
END_TEST

START_TEST(test_ports_wrappers_forward_to_adapter)
{
	cart_clock clk;
	fake_clock *fc;
	ck_assert_int_eq(fake_clock_new(&clk, &fc, T0), 0);
	ck_assert_int_eq(cart_clock_now(&clk), T0);
	cart_clock_sleep(&clk, 250);
	ck_assert_int_eq(cart_clock_now(&clk), T0 + 250);
	ck_assert_int_eq(fake_clock_total_slept(fc), 250);
	cart_clock_destroy(&clk);

	cart_ids ids;
	ck_assert_int_eq(fake_ids_new(&ids, NULL), 0);
	char u[CART_UUID_LEN + 1];
	ck_assert_int_eq(cart_ids_uuid(&ids, u), CART_OK);
	ck_assert_str_eq(u, UUID_1);
	ck_assert_uint_lt(cart_ids_random(&ids, 10), 10);
	cart_ids_destroy(&ids);

	cart_publisher pub;
	fake_publisher *fp;
	ck_assert_int_eq(fake_publisher_new(&pub, &fp), 0);
	cart_event ev = sample_event();
	ck_assert_int_eq(cart_publisher_publish(&pub, &ev, 1), CART_OK);
	ck_assert_uint_eq(fake_publisher_count(fp), 1);
	fake_publisher_fail(fp, 1, CART_EUNAVAILABLE);
	ck_assert_int_eq(cart_publisher_publish(&pub, &ev, 1), CART_EUNAVAILABLE);
	cart_publisher_destroy(&pub);
}
END_TEST

/* --- idempotency records ---------------------------------------------------- */

START_TEST(test_ports_idem_clone_is_deep)
{
	static const char body[] = "x\0y\0z";
	cart_idem src = {
		.key = "k-1", .fingerprint = "POST /x", .state = CART_IDEM_COMPLETE,
		.status = 201, .body = (char *)body, .body_len = sizeof(body) - 1,
		.expires_at = T0,
	};
	cart_idem *copy = NULL;
	ck_assert_int_eq(cart_idem_clone(&copy, &src), CART_OK);
	ck_assert_ptr_nonnull(copy);
	ck_assert_ptr_ne(copy->key, src.key);
	ck_assert_str_eq(copy->key, "k-1");
	ck_assert_str_eq(copy->fingerprint, "POST /x");
	ck_assert_int_eq(copy->state, CART_IDEM_COMPLETE);
	ck_assert_int_eq(copy->status, 201);
	ck_assert_uint_eq(copy->body_len, sizeof(body) - 1);
	ck_assert_ptr_ne(copy->body, src.body);
	ck_assert_mem_eq(copy->body, body, sizeof(body) - 1);
	ck_assert_int_eq(copy->expires_at, T0);
	cart_idem_free(copy);

	cart_idem pending = { .key = "k", .fingerprint = "f",
			      .state = CART_IDEM_PENDING, .expires_at = 5 };
	ck_assert_int_eq(cart_idem_clone(&copy, &pending), CART_OK);
	ck_assert_uint_eq(copy->body_len, 0);
	ck_assert_int_eq(copy->state, CART_IDEM_PENDING);
	cart_idem_free(copy);
	cart_idem_free(NULL);
}
END_TEST

/* --- system adapters ---------------------------------------------------------- */

START_TEST(test_system_clock_reads_wall_time)
{
	cart_clock clk;
	cart_system_clock_init(&clk);
	int64_t a = cart_clock_now(&clk);
	ck_assert_int_gt(a, 1700000000000LL);   /* after 2023 */
	ck_assert_int_lt(a, 4102444800000LL);   /* before 2100 */
	cart_clock_sleep(&clk, 2);
	int64_t b = cart_clock_now(&clk);
	ck_assert_int_ge(b, a + 1);
	cart_clock_destroy(&clk);
}
END_TEST

START_TEST(test_system_ids_make_v4_uuids)
{
	cart_ids ids;
	cart_system_ids_init(&ids);
	char a[CART_UUID_LEN + 1], b[CART_UUID_LEN + 1];
	ck_assert_int_eq(cart_ids_uuid(&ids, a), CART_OK);
	ck_assert_int_eq(cart_ids_uuid(&ids, b), CART_OK);
	ck_assert_msg(uuid_v4_shape(a), "bad uuid %s", a);
	ck_assert_msg(uuid_v4_shape(b), "bad uuid %s", b);
	ck_assert_str_ne(a, b);
	bool seen[10] = { false };
	for (int i = 0; i < 1000; i++) {
		uint64_t r = cart_ids_random(&ids, 10);
		ck_assert_uint_lt(r, 10);
		seen[r] = true;
	}
	for (int i = 0; i < 10; i++)
		ck_assert(seen[i]);
	ck_assert_uint_eq(cart_ids_random(&ids, 1), 0);
	cart_ids_destroy(&ids);
}
END_TEST

enum { UUID_THREADS = 4, UUID_EACH = 2000 };   /* ~125 stripe refills */
static char uuids[UUID_THREADS * UUID_EACH][CART_UUID_LEN + 1];
static cart_ids shared_ids;

static void *make_uuids(void *arg)
{
	size_t t = (size_t)arg;

	for (size_t i = 0; i < UUID_EACH; i++)
		if (cart_ids_uuid(&shared_ids, uuids[t * UUID_EACH + i]))
			uuids[t * UUID_EACH + i][0] = '\0';
	return NULL;
}

static int cmp_uuid(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The pool hands every byte out once: threads at once, across refills. */
START_TEST(test_system_ids_pool_never_repeats)
{
	pthread_t th[UUID_THREADS];

	cart_system_ids_init(&shared_ids);
	for (size_t t = 0; t < UUID_THREADS; t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, make_uuids, (void *)t), 0);
	for (size_t t = 0; t < UUID_THREADS; t++)
		pthread_join(th[t], NULL);
	cart_ids_destroy(&shared_ids);
	for (size_t i = 0; i < UUID_THREADS * UUID_EACH; i++)
		ck_assert_msg(uuid_v4_shape(uuids[i]), "bad uuid %s", uuids[i]);
	qsort(uuids, UUID_THREADS * UUID_EACH, sizeof(uuids[0]), cmp_uuid);
	for (size_t i = 1; i < UUID_THREADS * UUID_EACH; i++)
		ck_assert_str_ne(uuids[i - 1], uuids[i]);
}
END_TEST

/* --- publishers ------------------------------------------------------------------ */

START_TEST(test_log_publisher_writes_one_line_per_event)
{
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	cart_publisher pub;
	ck_assert_int_eq(cart_log_publisher_new(&pub, fds[1], true), CART_OK);
	cart_event ev[2] = { sample_event(), sample_event() };
	ev[1].type = CART_EVENT_CLEARED;
	ev[1].item_id[0] = '\0';
	snprintf(ev[0].trace_header, sizeof(ev[0].trace_header),
		 "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
	char want[2][2048], at[64], doc[1024];
	cart_rfc3339(at, sizeof(at), ev[0].occurred_at);
	cart_event_to_json(doc, sizeof(doc), &ev[0]);
	snprintf(want[0], sizeof(want[0]),
		 "{\"time\":\"%s\",\"level\":\"info\",\"msg\":\"event\",\"event\":%s,"
		 "\"trace_header\":\"%s\"}", at, doc, ev[0].trace_header);
	cart_rfc3339(at, sizeof(at), ev[1].occurred_at);
	cart_event_to_json(doc, sizeof(doc), &ev[1]);
	snprintf(want[1], sizeof(want[1]),
		 "{\"time\":\"%s\",\"level\":\"info\",\"msg\":\"event\",\"event\":%s}", at, doc);
	ck_assert_int_eq(cart_publisher_publish(&pub, ev, 2), CART_OK);
	cart_publisher_destroy(&pub);
	close(fds[1]);
	char buf[8192];
	size_t n = 0;
	ssize_t r;
	while ((r = read(fds[0], buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	close(fds[0]);
	buf[n] = '\0';
	char *nl = strchr(buf, '\n');
	ck_assert_ptr_nonnull(nl);
	*nl = '\0';
	char *second = nl + 1;
	ck_assert_msg(buf[0] == '{' && nl[-1] == '}', "line 1: %s", buf);
	ck_assert_str_eq(buf, want[0]);
	ck_assert_ptr_nonnull(strstr(buf, "CartItemAdded"));
	ck_assert_ptr_nonnull(strstr(buf, UUID_1));
	ck_assert_ptr_nonnull(strstr(buf, "sku-9"));
	ck_assert_ptr_nonnull(strstr(buf, "user-42"));
	nl = strchr(second, '\n');
	ck_assert_ptr_nonnull(nl);
	ck_assert_str_eq(nl + 1, "");
	*nl = '\0';
	ck_assert_msg(second[0] == '{' && nl[-1] == '}', "line 2: %s", second);
	ck_assert_str_eq(second, want[1]);
	ck_assert_ptr_null(strstr(second, "CartItemAdded"));
}
END_TEST

/* LOG_LEVEL above info: event lines are not printed, yet count as sent. */
START_TEST(test_log_publisher_disabled_writes_nothing)
{
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	cart_publisher pub;
	ck_assert_int_eq(cart_log_publisher_new(&pub, fds[1], false), CART_OK);
	cart_event ev = sample_event();
	ck_assert_int_eq(cart_publisher_publish(&pub, &ev, 1), CART_OK);
	cart_publisher_destroy(&pub);
	close(fds[1]);
	char buf[64];
	ck_assert_int_eq(read(fds[0], buf, sizeof(buf)), 0);
	close(fds[0]);
}
END_TEST

/* A SOCK_SEQPACKET socket keeps write boundaries: one recv, one write. */
START_TEST(test_log_publisher_writes_a_call_with_one_write)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	cart_publisher pub;
	ck_assert_int_eq(cart_log_publisher_new(&pub, sv[1], true), CART_OK);
	cart_event ev[10];
	bool ok[10] = { false };
	for (int i = 0; i < 10; i++) {
		ev[i] = sample_event();
		ev[i].cart_version = i + 1;
	}
	ck_assert_int_eq(cart_publisher_publish_each(&pub, ev, 10, ok), CART_OK);
	for (int i = 0; i < 10; i++)
		ck_assert(ok[i]);
	static char buf[16384];
	ssize_t n = recv(sv[0], buf, sizeof(buf) - 1, MSG_DONTWAIT);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	int lines = 0;
	for (char *p = buf; (p = strchr(p, '\n')); p++)
		lines++;
	ck_assert_int_eq(lines, 10);
	ck_assert_int_lt(recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT), 0);
	cart_publisher_destroy(&pub);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_log_publisher_failed_write_fails_every_entry)
{
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	close(fds[0]);
	close(fds[1]);
	cart_publisher pub;
	ck_assert_int_eq(cart_log_publisher_new(&pub, fds[1], true), CART_OK);
	cart_event ev[2] = { sample_event(), sample_event() };
	bool ok[2] = { true, true };
	ck_assert_int_eq(cart_publisher_publish_each(&pub, ev, 2, ok), CART_EBACKEND);
	ck_assert(!ok[0] && !ok[1]);
	cart_publisher_destroy(&pub);
}
END_TEST

/* A recording line sink: the blocks it got, and a failure on demand. */
typedef struct rec_sink {
	char data[16384];
	size_t len;
	int calls;
	int fail;
} rec_sink;

static int rec_sink_write(void *self, const char *lines, size_t len)
{
	rec_sink *r = self;

	r->calls++;
	if (r->fail)
		return -1;
	ck_assert_uint_le(r->len + len, sizeof(r->data));
	memcpy(r->data + r->len, lines, len);
	r->len += len;
	return 0;
}

static const cart_line_sink_ops rec_sink_ops = { .write = rec_sink_write };

/* The sink gets every line of a call as one block (it keeps them whole
 * against its other writers), byte for byte the lines the fd gets. */
START_TEST(test_log_publisher_sink_gets_a_call_as_one_block)
{
	static rec_sink rec;
	memset(&rec, 0, sizeof(rec));
	cart_line_sink sink = { &rec_sink_ops, &rec };
	cart_publisher pub, fdpub;
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(cart_log_publisher_new_sink(&pub, &sink, true), CART_OK);
	ck_assert_int_eq(cart_log_publisher_new(&fdpub, fds[1], true), CART_OK);
	cart_event ev[5];
	bool ok[5] = { false };
	for (int i = 0; i < 5; i++) {
		ev[i] = sample_event();
		ev[i].cart_version = i + 1;
	}
	ck_assert_int_eq(cart_publisher_publish_each(&pub, ev, 5, ok), CART_OK);
	for (int i = 0; i < 5; i++)
		ck_assert(ok[i]);
	ck_assert_int_eq(rec.calls, 1);
	ck_assert_int_eq(cart_publisher_publish_each(&fdpub, ev, 5, ok), CART_OK);
	close(fds[1]);
	static char want[16384];
	size_t n = 0;
	ssize_t r;
	while ((r = read(fds[0], want + n, sizeof(want) - n)) > 0)
		n += (size_t)r;
	close(fds[0]);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_eq(rec.len, n);
	ck_assert(memcmp(rec.data, want, n) == 0);

	/* a failing sink fails every entry (they are offered again) */
	rec.fail = 1;
	for (int i = 0; i < 5; i++)
		ok[i] = true;
	ck_assert_int_eq(cart_publisher_publish_each(&pub, ev, 5, ok), CART_EBACKEND);
	for (int i = 0; i < 5; i++)
		ck_assert(!ok[i]);
	ck_assert_int_eq(rec.calls, 2);
	cart_publisher_destroy(&pub);
	cart_publisher_destroy(&fdpub);
}
END_TEST

START_TEST(test_log_publisher_sink_refuses_no_sink_and_obeys_the_level)
{
	static rec_sink rec;
	memset(&rec, 0, sizeof(rec));
	cart_line_sink sink = { &rec_sink_ops, &rec }, bad = { NULL, &rec };
	cart_publisher pub;
	ck_assert_int_eq(cart_log_publisher_new_sink(&pub, NULL, true), CART_EINVALID);
	ck_assert_int_eq(cart_log_publisher_new_sink(&pub, &bad, true), CART_EINVALID);
	/* above info: nothing written, every event counts as published */
	ck_assert_int_eq(cart_log_publisher_new_sink(&pub, &sink, false), CART_OK);
	cart_event ev = sample_event();
	bool ok = false;
	ck_assert_int_eq(cart_publisher_publish_each(&pub, &ev, 1, &ok), CART_OK);
	ck_assert(ok);
	ck_assert_int_eq(rec.calls, 0);
	cart_publisher_destroy(&pub);
}
END_TEST

START_TEST(test_publisher_version1_publish_each_is_all_or_nothing)
{
	cart_publisher pub;
	fake_publisher *fp;
	ck_assert_int_eq(fake_publisher_new_v1(&pub, &fp), 0);
	ck_assert_int_eq(pub.ops->version, 1);
	cart_event ev[3] = { sample_event(), sample_event(), sample_event() };
	for (int i = 0; i < 3; i++)
		ev[i].cart_version = i + 1;
	bool ok[3] = { false };
	ck_assert_int_eq(cart_publisher_publish_each(&pub, ev, 3, ok), CART_OK);
	ck_assert(ok[0] && ok[1] && ok[2]);
	fake_publisher_fail_entry(fp, ev[1].user_id, 2);
	ck_assert_int_eq(cart_publisher_publish_each(&pub, ev, 3, ok), CART_EBACKEND);
	ck_assert(!ok[0] && !ok[1] && !ok[2]);
	ck_assert_uint_eq(fake_publisher_count(fp), 3);
	cart_publisher_destroy(&pub);
}
END_TEST

/* Version 3: refused for good vs failed for now; older adapters: for now. */
START_TEST(test_publisher_results_tell_refused_from_retry)
{
	cart_publisher pub;
	fake_publisher *fp;
	cart_publish_result res[3];
	cart_event ev[3] = { sample_event(), sample_event(), sample_event() };

	for (int i = 0; i < 3; i++)
		ev[i].cart_version = i + 1;
	ck_assert_int_eq(fake_publisher_new(&pub, &fp), 0);
	fake_publisher_refuse_entry(fp, ev[0].user_id, 1, "MalformedDetail");
	fake_publisher_fail_entry(fp, ev[0].user_id, 3);
	ck_assert_int_eq(cart_publisher_publish_results(&pub, ev, 3, res), CART_EBACKEND);
	ck_assert_int_eq(res[0].status, CART_PUBLISH_REFUSED);
	ck_assert_str_eq(res[0].code, "MalformedDetail");
	ck_assert_int_eq(res[1].status, CART_PUBLISH_ACCEPTED);
	ck_assert_int_eq(res[2].status, CART_PUBLISH_RETRY);
	cart_publisher_destroy(&pub);

	ck_assert_int_eq(fake_publisher_new_v1(&pub, &fp), 0);
	fake_publisher_refuse_entry(fp, ev[0].user_id, 1, "MalformedDetail");
	ck_assert_int_eq(cart_publisher_publish_results(&pub, ev, 3, res), CART_EBACKEND);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(res[i].status, CART_PUBLISH_RETRY);
		ck_assert_str_eq(res[i].code, "");
	}
	cart_publisher_destroy(&pub);
}
END_TEST

START_TEST(test_fake_publisher_reports_each_entry)
{
	cart_publisher pub;
	fake_publisher *fp;
	ck_assert_int_eq(fake_publisher_new(&pub, &fp), 0);
	ck_assert_int_eq(pub.ops->version, CART_PUBLISHER_OPS_VERSION);
	cart_event ev[3] = { sample_event(), sample_event(), sample_event() };
	for (int i = 0; i < 3; i++)
		ev[i].cart_version = i + 1;
	bool ok[3] = { false };
	fake_publisher_fail_entry(fp, ev[1].user_id, 2);
	ck_assert_int_eq(cart_publisher_publish_each(&pub, ev, 3, ok), CART_EBACKEND);
	ck_assert(ok[0] && !ok[1] && ok[2]);
	ck_assert_uint_eq(fake_publisher_count(fp), 2);
	ck_assert_uint_eq(fake_publisher_call_entries(fp, 0), 3);
	ck_assert_uint_eq(fake_publisher_call_users(fp, 0), 1);
	cart_publisher_destroy(&pub);
}
END_TEST

START_TEST(test_log_event_to_json_reports_needed_length)
{
	cart_event ev = sample_event();
	char full[2048];
	size_t need = cart_event_to_json(full, sizeof(full), &ev);
	ck_assert_uint_gt(need, 0);
	ck_assert_uint_lt(need, sizeof(full));
	ck_assert_uint_eq(strlen(full), need);
	ck_assert_ptr_nonnull(strstr(full, "1999"));
	ck_assert_ptr_nonnull(strstr(full, "EUR"));

	char small[16];
	memset(small, 'Z', sizeof(small));
	ck_assert_uint_eq(cart_event_to_json(small, sizeof(small), &ev), need);
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	ck_assert_int_eq(strncmp(small, full, sizeof(small) - 1), 0);
}
END_TEST

/* The printf version cart_event_to_json replaced: the reference. */
static size_t event_json_printf(char *buf, size_t cap, const cart_event *ev)
{
	char at[64];
	int n;

	cart_rfc3339(at, sizeof(at), ev->occurred_at);
	n = snprintf(buf, cap,
		     "{\"schemaVersion\":%d,\"eventId\":\"%s\",\"eventType\":\"%s\","
		     "\"occurredAt\":\"%s\",\"userId\":\"%s\",\"cartId\":\"%s\","
		     "\"cartVersion\":%" PRId64,
		     CART_EVENT_SCHEMA_VERSION, ev->event_id,
		     cart_event_type_name(ev->type), at, ev->user_id,
		     ev->cart_id, ev->cart_version);
	if (ev->type == CART_EVENT_CLEARED)
		n += snprintf((size_t)n < cap ? buf + n : NULL,
			      (size_t)n < cap ? cap - (size_t)n : 0,
			      ",\"itemCountBefore\":%" PRId64 "}", ev->item_count_before);
	else
		n += snprintf((size_t)n < cap ? buf + n : NULL,
			      (size_t)n < cap ? cap - (size_t)n : 0,
			      ",\"itemId\":\"%s\",\"quantityBefore\":%d,"
			      "\"quantityAfter\":%d,\"unitPrice\":{\"amount\":%" PRId64
			      ",\"currency\":\"%s\"}}",
			      ev->item_id, (int)ev->quantity_before,
			      (int)ev->quantity_after, ev->unit_price.amount,
			      ev->unit_price.currency);
	return (size_t)n;
}

/* The same bytes and length as printf gave, for every type, extreme
 * numbers, and every buffer size from 0 up (the cut and its NUL). */
START_TEST(test_event_to_json_matches_printf_at_every_cap)
{
	static const int64_t nums[] = { 0, 1, -1, 999, INT64_MAX, INT64_MIN, 1234567890123LL };
	cart_event ev = sample_event();

	for (int t = CART_EVENT_ITEM_ADDED; t <= CART_EVENT_CLEARED; t++)
		for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++) {
			char want[1024], got[1024];
			size_t need;

			ev.type = (cart_event_type)t;
			ev.cart_version = nums[k];
			ev.item_count_before = nums[(k + 1) % 7];
			ev.unit_price.amount = nums[(k + 2) % 7];
			ev.quantity_before = (int32_t)(k * 7919);
			ev.quantity_after = -(int32_t)k;
			need = event_json_printf(want, sizeof(want), &ev);
			ck_assert_uint_lt(need, sizeof(want));
			for (size_t cap = 0; cap <= need + 2; cap++) {
				char a[1024], b[1024];

				memset(a, 'Z', sizeof(a));
				memset(b, 'Z', sizeof(b));
				ck_assert_uint_eq(cart_event_to_json(a, cap, &ev), need);
				event_json_printf(b, cap, &ev);
				ck_assert_int_eq(memcmp(a, b, cap + 2), 0);
			}
			ck_assert_uint_eq(cart_event_to_json(got, sizeof(got), &ev), need);
			ck_assert_str_eq(got, want);
		}
}
END_TEST

START_TEST(test_noop_publisher_accepts_everything)
{
	cart_publisher pub;
	ck_assert_int_eq(cart_noop_publisher_new(&pub), CART_OK);
	cart_event ev = sample_event();
	ck_assert_int_eq(cart_publisher_publish(&pub, &ev, 1), CART_OK);
	ck_assert_int_eq(cart_publisher_publish(&pub, &ev, 0), CART_OK);
	bool ok = false;
	ck_assert_int_eq(cart_publisher_publish_each(&pub, &ev, 1, &ok), CART_OK);
	ck_assert(ok);
	cart_publisher_destroy(&pub);
}
END_TEST

/* --- the fakes --------------------------------------------------------------------- */

START_TEST(test_fake_clock_set_advance_sleep)
{
	cart_clock clk;
	fake_clock *fc;
	ck_assert_int_eq(fake_clock_new(&clk, &fc, 1000), 0);
	ck_assert_int_eq(clk.ops->now_ms(clk.self), 1000);
	fake_clock_advance(fc, 5);
	ck_assert_int_eq(fake_clock_now(fc), 1005);
	fake_clock_set(fc, 42);
	ck_assert_int_eq(clk.ops->now_ms(clk.self), 42);
	clk.ops->sleep_ms(clk.self, 8);
	clk.ops->sleep_ms(clk.self, 2);
	ck_assert_int_eq(fake_clock_now(fc), 52);
	ck_assert_int_eq(fake_clock_total_slept(fc), 10);
	ck_assert_int_eq(fake_clock_sleep_count(fc), 2);
	cart_clock_destroy(&clk);
}
END_TEST

START_TEST(test_fake_ids_count_up)
{
	cart_ids ids, again;
	fake_ids *fi;
	ck_assert_int_eq(fake_ids_new(&ids, &fi), 0);
	ck_assert_int_eq(fake_ids_new(&again, NULL), 0);
	char u[CART_UUID_LEN + 1];
	ck_assert_int_eq(ids.ops->uuid(ids.self, u), 0);
	ck_assert_str_eq(u, "00000000-0000-4000-8000-000000000001");
	ck_assert_int_eq(ids.ops->uuid(ids.self, u), 0);
	ck_assert_str_eq(u, "00000000-0000-4000-8000-000000000002");
	uint64_t n = 0;
	ck_assert(fake_ids_parse(u, &n));
	ck_assert_uint_eq(n, 2);
	ck_assert(uuid_v4_shape(u));
	ck_assert(!fake_ids_parse("ffffffff-ffff-4fff-bfff-ffffffffffff", NULL));
	ck_assert_uint_eq(fake_ids_issued(fi), 2);
	fake_ids_fail_next(fi, CART_EBACKEND);
	ck_assert_int_eq(ids.ops->uuid(ids.self, u), CART_EBACKEND);
	ck_assert_int_eq(ids.ops->uuid(ids.self, u), 0);
	ck_assert_str_eq(u, "00000000-0000-4000-8000-000000000003");
	for (int i = 0; i < 100; i++) {
		uint64_t a = ids.ops->random(ids.self, 1000);
		ck_assert_uint_lt(a, 1000);
		ck_assert_uint_eq(a, again.ops->random(again.self, 1000));
	}
	cart_ids_destroy(&ids);
	cart_ids_destroy(&again);
}
END_TEST

START_TEST(test_fake_publisher_records_and_fails)
{
	cart_publisher pub;
	fake_publisher *fp;
	ck_assert_int_eq(fake_publisher_new(&pub, &fp), 0);
	cart_event ev[3] = { sample_event(), sample_event(), sample_event() };
	ev[1].cart_version = 8;
	ev[2].cart_version = 9;
	ck_assert_int_eq(pub.ops->publish(pub.self, ev, 2), 0);
	fake_publisher_fail(fp, 1, CART_EBACKEND);
	ck_assert_int_eq(pub.ops->publish(pub.self, ev + 2, 1), CART_EBACKEND);
	ck_assert_int_eq(pub.ops->publish(pub.self, ev + 2, 1), 0);
	ck_assert_uint_eq(fake_publisher_count(fp), 3);
	ck_assert_uint_eq(fake_publisher_calls(fp), 3);
	ck_assert_int_eq(fake_publisher_event(fp, 2).cart_version, 9);
	ev[0].cart_version = 99;   /* the fake keeps copies */
	ck_assert_int_eq(fake_publisher_event(fp, 0).cart_version, 7);
	fake_publisher_reset(fp);
	ck_assert_uint_eq(fake_publisher_count(fp), 0);
	cart_publisher_destroy(&pub);
}
END_TEST

START_TEST(test_fault_repo_passes_through_and_injects)
{
	cart_repo mem, r;
	fault_repo *fr;
	ck_assert_int_eq(cart_memory_repo_new(&mem), CART_OK);
	ck_assert_int_eq(fault_repo_new(&r, &fr, &mem), 0);
	ck_assert_int_eq(cart_repo_ping(&r), CART_OK);
	fault_repo_fail(fr, FAULT_PING, 1, CART_EBACKEND);
	ck_assert_int_eq(cart_repo_ping(&r), CART_EBACKEND);
	ck_assert_int_eq(cart_repo_ping(&r), CART_OK);
	ck_assert_uint_eq(fault_repo_calls(fr, FAULT_PING), 3);

	cart *c = NULL;
	ck_assert_int_eq(cart_new(&c, "u1"), CART_OK);
	ck_assert_int_eq(cart_begin(c, UUID_1, T0), CART_OK);
	cart_touch(c, T0, 1000);
	cart_write w = { .user_id = "u1", .expected_version = 0, .cart = c };
	fault_repo_conflict(fr, 1, true);
	ck_assert_int_eq(cart_repo_save(&r, &w), CART_ECONFLICT);
	ck_assert_uint_eq(fault_repo_rival_writes(fr), 1);
	ck_assert_int_eq(cart_repo_save(&r, &w), CART_ECONFLICT);  /* real now */
	cart *got = NULL;
	ck_assert_int_eq(cart_repo_load(&r, NULL, "u1", &got), CART_OK);
	ck_assert_int_eq(cart_version(got), 1);
	ck_assert_int_eq(cart_item_quantity(cart_find_item(got, FAULT_RIVAL_ITEM)), 1);
	cart_free(got);
	cart_free(c);
	fault_repo_fail(fr, FAULT_LOAD, -1, CART_EUNAVAILABLE);
	ck_assert_int_eq(cart_repo_load(&r, NULL, "u1", &got), CART_EUNAVAILABLE);
	ck_assert_int_eq(cart_repo_load(&r, NULL, "u1", &got), CART_EUNAVAILABLE);
	fault_repo_fail(fr, FAULT_LOAD, 0, 0);
	ck_assert_int_eq(cart_repo_load(&r, NULL, "u1", &got), CART_OK);
	cart_free(got);
	cart_repo_destroy(&r);
	cart_repo_destroy(&mem);
}
END_TEST

/* --- repository versions ------------------------------------------------------ */

/*
 * A repository written against port version 2: load, no load_call.  Its
 * table also sets the version-3 slot, which a real version-2 table would
 * not even have: the wrapper must go by the version, not by the slot.
 */
static int v2_loads;

static int v2_load(void *self, const char *user_id, cart **out)
{
	v2_loads++;
	return cart_new(out, user_id);
}

static int v2_load_call(void *self, const cart_call_ctx *call,
			const char *user_id, cart **out)
{
	ck_abort_msg("load_call of a version-2 table was called");
	return CART_EBACKEND;
}

static const cart_repo_ops v2_repo_ops = {
	.version = 2,
	.load = v2_load,
	.load_call = v2_load_call,
};

START_TEST(test_ports_repo_version2_load_without_call)
{
	cart_repo r = { &v2_repo_ops, NULL };
	cart_call_ctx call = { "req-1", NULL, T0 + 100, NULL, NULL };
	cart *c = NULL;

	v2_loads = 0;
	ck_assert_int_eq(cart_repo_load(&r, &call, "u1", &c), CART_OK);
	ck_assert_str_eq(cart_user_id(c), "u1");
	cart_free(c);
	ck_assert_int_eq(cart_repo_load(&r, NULL, "u2", &c), CART_OK);
	cart_free(c);
	ck_assert_int_eq(v2_loads, 2);
}
END_TEST

/* Version 3: load_call gets the caller's call (or NULL) unchanged. */
START_TEST(test_ports_repo_version3_load_gets_the_call)
{
	cart_repo mem, r;
	fault_repo *fr;
	cart_call_ctx call = { "req-9", NULL, T0 + 300, NULL, NULL };
	cart *c = NULL;

	ck_assert_int_eq(cart_memory_repo_new(&mem), CART_OK);
	ck_assert_int_ge(mem.ops->version, 3);
	ck_assert_ptr_nonnull(mem.ops->load_call);
	ck_assert_int_eq(fault_repo_new(&r, &fr, &mem), 0);
	ck_assert_int_eq(cart_repo_load(&r, &call, "u1", &c), CART_ENOTFOUND);
	ck_assert_ptr_null(c);
	fault_repo_call seen = fault_repo_last_call(fr, FAULT_LOAD);
	ck_assert(seen.had_call);
	ck_assert_str_eq(seen.request_id, "req-9");
	ck_assert_int_eq(seen.deadline_ms, T0 + 300);
	ck_assert_int_eq(cart_repo_load(&r, NULL, "u1", &c), CART_ENOTFOUND);
	ck_assert(!fault_repo_last_call(fr, FAULT_LOAD).had_call);
	cart_repo_destroy(&r);
	cart_repo_destroy(&mem);
}
END_TEST

/*
 * Version 4: warm is a hint.  The wrapper calls it only for a table of
 * version 4 or later that has it; a version-3 table's slot is not read.
 */
static int warms;
static char warmed[64];

static void counting_warm(void *self, const char *user_id)
{
	warms++;
	snprintf(warmed, sizeof(warmed), "%s", user_id);
}

static void v3_warm(void *self, const char *user_id)
{
	ck_abort_msg("warm of a version-3 table was called");
}

static int warms_next;

static void counting_warm_next(void *self, const char *user_id)
{
	warms_next++;
	snprintf(warmed, sizeof(warmed), "next %s", user_id);
}

static const cart_repo_ops v3_repo_ops = { .version = 3, .load = v2_load, .warm = v3_warm };
static const cart_repo_ops v4_repo_ops = { .version = 4, .load = v2_load, .warm = counting_warm,
					   .warm_next = counting_warm_next };
static const cart_repo_ops v4_no_warm_ops = { .version = 4, .load = v2_load };
static const cart_repo_ops v5_repo_ops = { .version = 5, .load = v2_load, .warm = counting_warm,
					   .warm_next = counting_warm_next };
static const cart_repo_ops v5_no_warm_ops = { .version = 5, .load = v2_load };

START_TEST(test_ports_repo_version4_warm_is_a_hint)
{
	cart_repo v3 = { &v3_repo_ops, NULL }, v4 = { &v4_repo_ops, NULL };
	cart_repo none = { &v4_no_warm_ops, NULL };

	warms = 0;
	cart_repo_warm(&v3, "u1");
	cart_repo_warm(&none, "u1");
	cart_repo_warm(&v4, NULL);      /* no user: nothing to warm */
	ck_assert_int_eq(warms, 0);
	cart_repo_warm(&v4, "u-7");
	ck_assert_int_eq(warms, 1);
	ck_assert_str_eq(warmed, "u-7");
}
END_TEST

/* warm_next only from a version-5 table that has it. */
START_TEST(test_ports_repo_version5_warm_next_is_a_hint)
{
	cart_repo v4 = { &v4_repo_ops, NULL }, v5 = { &v5_repo_ops, NULL };
	cart_repo none = { &v5_no_warm_ops, NULL };

	warms = warms_next = 0;
	cart_repo_warm_next(&v4, "u1");    /* set, but the table says 4 */
	cart_repo_warm_next(&none, "u1");
	cart_repo_warm_next(&v5, NULL);
	ck_assert_int_eq(warms_next, 0);
	cart_repo_warm_next(&v5, "u-8");
	ck_assert_int_eq(warms_next, 1);
	ck_assert_int_eq(warms, 0);
	ck_assert_str_eq(warmed, "next u-8");
}
END_TEST

/*
 * The memory store's warm and warm_next read its bucket array without the
 * lock: on an empty store, across the array's growth (the old one is
 * kept) and for users it does not hold, they change nothing that load and
 * save see (valgrind runs this: nothing freed or unset is read).
 */
START_TEST(test_ports_memory_warm_changes_nothing)
{
	cart_repo mem;
	char id[32];
	cart *c = NULL;

	ck_assert_int_eq(cart_memory_repo_new(&mem), CART_OK);
	ck_assert_int_ge(mem.ops->version, 4);
	ck_assert_ptr_nonnull(mem.ops->warm);
	ck_assert_int_ge(mem.ops->version, 5);
	ck_assert_ptr_nonnull(mem.ops->warm_next);
	cart_repo_warm(&mem, "nobody");
	cart_repo_warm_next(&mem, "nobody");
	for (int i = 0; i < 3000; i++) {   /* past the first bucket arrays */
		cart *n = NULL;
		cart_write w = { 0 };

		snprintf(id, sizeof(id), "u-%d", i);
		cart_repo_warm(&mem, id);
		cart_repo_warm_next(&mem, id);
		ck_assert_int_eq(cart_new(&n, id), CART_OK);
		ck_assert_int_eq(cart_restore_meta(n, "10000000-0000-4000-8000-000000000001",
						   1, 1, 1, 2), CART_OK);
		w.user_id = id;
		w.expected_version = 0;
		w.cart = n;
		ck_assert_int_eq(cart_repo_save(&mem, &w), CART_OK);
		cart_free(n);
	}
	for (int i = 0; i < 3000; i += 7) {
		snprintf(id, sizeof(id), "u-%d", i);
		cart_repo_warm(&mem, id);
		cart_repo_warm_next(&mem, id);
		ck_assert_int_eq(cart_repo_load(&mem, NULL, id, &c), CART_OK);
		ck_assert_str_eq(cart_user_id(c), id);
		ck_assert_int_eq(cart_version(c), 1);
		cart_free(c);
	}
	cart_repo_warm(&mem, "u-3000");
	cart_repo_warm_next(&mem, "u-3000");
	ck_assert_int_eq(cart_repo_load(&mem, NULL, "u-3000", &c), CART_ENOTFOUND);
	cart_repo_destroy(&mem);
}
END_TEST

Suite *ports_suite(void)
{
	Suite *s = suite_create("ports");
	TCase *tc = tcase_create("wrappers");
	tcase_add_test(tc, test_ports_destroy_accepts_null_and_empty);
	tcase_add_test(tc, test_ports_repo_destroy_twice_is_safe);
	tcase_add_test(tc, test_ports_wrappers_forward_to_adapter);
	tcase_add_test(tc, test_ports_idem_clone_is_deep);
	tcase_add_test(tc, test_ports_repo_version2_load_without_call);
	tcase_add_test(tc, test_ports_repo_version4_warm_is_a_hint);
	tcase_add_test(tc, test_ports_repo_version5_warm_next_is_a_hint);
	tcase_add_test(tc, test_ports_memory_warm_changes_nothing);
	tcase_add_test(tc, test_ports_repo_version3_load_gets_the_call);
	suite_add_tcase(s, tc);

	tc = tcase_create("system");
	tcase_add_test(tc, test_system_clock_reads_wall_time);
	tcase_add_test(tc, test_system_ids_make_v4_uuids);
	tcase_add_test(tc, test_system_ids_pool_never_repeats);
	suite_add_tcase(s, tc);

	tc = tcase_create("publishers");
	tcase_add_test(tc, test_log_publisher_writes_one_line_per_event);
	tcase_add_test(tc, test_log_publisher_disabled_writes_nothing);
	tcase_add_test(tc, test_log_event_to_json_reports_needed_length);
	tcase_add_test(tc, test_event_to_json_matches_printf_at_every_cap);
	tcase_add_test(tc, test_log_publisher_writes_a_call_with_one_write);
	tcase_add_test(tc, test_log_publisher_failed_write_fails_every_entry);
	tcase_add_test(tc, test_log_publisher_sink_gets_a_call_as_one_block);
	tcase_add_test(tc, test_log_publisher_sink_refuses_no_sink_and_obeys_the_level);
	tcase_add_test(tc, test_publisher_version1_publish_each_is_all_or_nothing);
	tcase_add_test(tc, test_fake_publisher_reports_each_entry);
	tcase_add_test(tc, test_publisher_results_tell_refused_from_retry);
	tcase_add_test(tc, test_noop_publisher_accepts_everything);
	suite_add_tcase(s, tc);
	return s;
}

Suite *fakes_suite(void)
{
	Suite *s = suite_create("fakes");
	TCase *tc = tcase_create("fakes");
	tcase_add_test(tc, test_fake_clock_set_advance_sleep);
	tcase_add_test(tc, test_fake_ids_count_up);
	tcase_add_test(tc, test_fake_publisher_records_and_fails);
	tcase_add_test(tc, test_fault_repo_passes_through_and_injects);
	suite_add_tcase(s, tc);
	return s;
}
