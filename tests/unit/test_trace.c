/*
 * Trace context: X-Amzn-Trace-Id and traceparent parsing (good and bad
 * headers), the header we return, generated ids, the default sampling
 * rule on a fake clock, and the X-Ray documents (parsed back with cJSON).
 */
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cart/error.h"
#include "trace.h"
#include "unit/suites.h"
#include "xray.h"

#define ROOT "1-5759e988-bd862e3fe1be46a994272793"

/* --- X-Amzn-Trace-Id ---------------------------------------------------- */

START_TEST(test_trace_amzn_full_header)
{
	app_trace_ctx t;

	ck_assert_int_eq(app_trace_parse_amzn(&t, "Root=" ROOT
					      ";Parent=53995c3f42cd8ad8;Sampled=1"), 0);
	ck_assert_str_eq(t.root, ROOT);
	ck_assert_str_eq(t.parent, "53995c3f42cd8ad8");
	ck_assert_int_eq(t.decision, APP_TRACE_SAMPLED);
}
END_TEST

START_TEST(test_trace_amzn_any_order_spaces_other_keys)
{
	app_trace_ctx t;

	ck_assert_int_eq(app_trace_parse_amzn(&t, "Self=1-67891234-12456789abcdef012345678; "
					      "Sampled=0 ; Lineage=a87bd80c:1|68fd508a:5 ;"
					      " Root = 1-5759E988-BD862E3FE1BE46A994272793"), 0);
	ck_assert_str_eq(t.root, ROOT);   /* lowercased */
	ck_assert_str_eq(t.parent, "");
	ck_assert_int_eq(t.decision, APP_TRACE_NOT_SAMPLED);
}
END_TEST

START_TEST(test_trace_amzn_sampled_unknown_or_bad_is_undecided)
{
	app_trace_ctx t;

	ck_assert_int_eq(app_trace_parse_amzn(&t, "Root=" ROOT ";Sampled=?"), 0);
	ck_assert_int_eq(t.decision, APP_TRACE_UNDECIDED);
	ck_assert_int_eq(app_trace_parse_amzn(&t, "Root=" ROOT ";Sampled=yes"), 0);
	ck_assert_int_eq(t.decision, APP_TRACE_UNDECIDED);
	ck_assert_int_eq(app_trace_parse_amzn(&t, "Root=" ROOT), 0);
	ck_assert_int_eq(t.decision, APP_TRACE_UNDECIDED);
}
END_TEST

START_TEST(test_trace_amzn_bad_parent_dropped)
{
	app_trace_ctx t;

	ck_assert_int_eq(app_trace_parse_amzn(&t, "Root=" ROOT ";Parent=53995c3f42cd8ad"), 0);
	ck_assert_str_eq(t.parent, "");
	ck_assert_int_eq(app_trace_parse_amzn(&t, "Root=" ROOT ";Parent=53995c3f42cd8adx"), 0);
	ck_assert_str_eq(t.parent, "");
	ck_assert_int_eq(app_trace_parse_amzn(&t, "Root=" ROOT ";Parent=0000000000000000"), 0);
	ck_assert_str_eq(t.parent, "");
}
END_TEST

START_TEST(test_trace_amzn_refuses_bad_roots)
{
	static const char *bad[] = {
		"",
		"Parent=53995c3f42cd8ad8;Sampled=1",                 /* no Root */
		"Root=;Sampled=1",
		"Root=2-5759e988-bd862e3fe1be46a994272793",          /* version */
		"Root=1-5759e98-bd862e3fe1be46a994272793",           /* 7 hex */
		"Root=1-5759e988-bd862e3fe1be46a99427279",           /* 23 hex */
		"Root=1-5759e988-bd862e3fe1be46a9942727934",         /* 25 hex */
		"Root=1-5759g988-bd862e3fe1be46a994272793",          /* not hex */
		"Root=1_5759e988_bd862e3fe1be46a994272793",
		"Root=1-5759e988-bd862e3fe1be46a994272793x",
		"Roots=1-5759e988-bd862e3fe1be46a994272793",
		"1-5759e988-bd862e3fe1be46a994272793",
	};
	app_trace_ctx t;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(app_trace_parse_amzn(&t, bad[i]) == -1, "%s", bad[i]);
		ck_assert_str_eq(t.root, "");
		ck_assert_int_eq(t.decision, APP_TRACE_UNDECIDED);
	}
	ck_assert_int_eq(app_trace_parse_amzn(&t, NULL), -1);
}
END_TEST

START_TEST(test_trace_amzn_refuses_too_long)
{
	char h[APP_TRACE_HEADER_MAX + 64];
	app_trace_ctx t;

	snprintf(h, sizeof(h), "Root=%s;Pad=", ROOT);
	memset(h + strlen(h), 'a', sizeof(h) - strlen(h) - 1);
	h[sizeof(h) - 1] = '\0';
	ck_assert_int_eq(app_trace_parse_amzn(&t, h), -1);
	ck_assert_str_eq(t.root, "");
}
END_TEST

/* --- traceparent -------------------------------------------------------- */

START_TEST(test_trace_traceparent_converts_to_xray_root)
{
	app_trace_ctx t;

	ck_assert_int_eq(app_trace_parse_traceparent(&t,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), 0);
	ck_assert_str_eq(t.root, "1-4bf92f35-77b34da6a3ce929d0e0e4736");
	ck_assert_str_eq(t.parent, "00f067aa0ba902b7");
	ck_assert_int_eq(t.decision, APP_TRACE_SAMPLED);
	ck_assert_int_eq(app_trace_parse_traceparent(&t,
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00"), 0);
	ck_assert_str_eq(t.root, "1-4bf92f35-77b34da6a3ce929d0e0e4736");
	ck_assert_int_eq(t.decision, APP_TRACE_NOT_SAMPLED);
	/* a later version may append fields */
	ck_assert_int_eq(app_trace_parse_traceparent(&t,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-extra"), 0);
	ck_assert_int_eq(t.decision, APP_TRACE_SAMPLED);
}
END_TEST

START_TEST(test_trace_traceparent_refuses_malformed)
{
	static const char *bad[] = {
		"",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",       /* no flags */
		"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",     /* 31 hex */
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",     /* 15 hex */
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",    /* zero trace */
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    /* zero parent */
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    /* version ff */
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  /* 00 + extra */
		"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
		"00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
	};
	app_trace_ctx t;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(app_trace_parse_traceparent(&t, bad[i]) == -1, "%s", bad[i]);
		ck_assert_str_eq(t.root, "");
	}
}
END_TEST

/* --- ids and the returned header ---------------------------------------- */

START_TEST(test_trace_new_root_and_ids_have_the_xray_shape)
{
	char root[APP_TRACE_ROOT_LEN + 1], other[APP_TRACE_ROOT_LEN + 1];
	char id[APP_TRACE_ID_LEN + 1];

	app_trace_new_root(root, 0x5759e988);
	ck_assert(app_trace_root_valid(root));
	ck_assert(!strncmp(root, "1-5759e988-", 11));
	app_trace_new_root(other, 0x5759e988);
	ck_assert_str_ne(root, other);
	app_trace_new_id(id);
	ck_assert(app_trace_id_valid(id));
}
END_TEST

START_TEST(test_trace_format_header)
{
	char h[128];

	ck_assert_uint_eq(app_trace_format(h, sizeof(h), ROOT, NULL, true), strlen(h));
	ck_assert_str_eq(h, "Root=" ROOT ";Sampled=1");
	app_trace_format(h, sizeof(h), ROOT, "53995c3f42cd8ad8", false);
	ck_assert_str_eq(h, "Root=" ROOT ";Parent=53995c3f42cd8ad8;Sampled=0");
	/* the longest header fits an event's field */
	ck_assert_uint_le(strlen(h), 79);
	ck_assert_uint_ge(app_trace_format(h, 10, ROOT, NULL, true), 10);
}
END_TEST

/* --- sampling ----------------------------------------------------------- */

START_TEST(test_trace_sampler_reservoir_one_per_second)
{
	app_sampler s;

	app_sampler_init(&s, 1, 0);   /* no fixed rate: the reservoir only */
	ck_assert(app_sampler_sample(&s, 1000000, 0));
	ck_assert(!app_sampler_sample(&s, 1000500, 0));
	ck_assert(!app_sampler_sample(&s, 1000999, 0));
	ck_assert(app_sampler_sample(&s, 1001000, 0));
	ck_assert(!app_sampler_sample(&s, 1001001, 0));
	/* a clock that steps back does not refill a spent second */
	ck_assert(!app_sampler_sample(&s, 1000000, 0));
	ck_assert(app_sampler_sample(&s, 1005000, 0));
}
END_TEST

START_TEST(test_trace_sampler_rate_after_reservoir)
{
	app_sampler s;
	int taken = 0;

	app_sampler_init(&s, 1, 5);
	ck_assert(app_sampler_sample(&s, 7000, 99));   /* reservoir */
	/* then rand % 100 < 5 */
	ck_assert(app_sampler_sample(&s, 7001, 4));
	ck_assert(!app_sampler_sample(&s, 7002, 5));
	ck_assert(app_sampler_sample(&s, 7003, 100));
	for (uint32_t r = 0; r < 1000; r++)
		taken += app_sampler_sample(&s, 7004, r);
	ck_assert_int_eq(taken, 50);
}
END_TEST

/* --- documents ---------------------------------------------------------- */

static cJSON *parse_doc(buf *b)
{
	ck_assert(!b->failed);
	return cJSON_ParseWithLength(b->data, b->len);
}

static app_xray_segment *segment(void)
{
	static app_xray_segment seg;

	memset(&seg, 0, sizeof(seg));
	strcpy(seg.id, "0123456789abcdef");
	strcpy(seg.trace_id, ROOT);
	strcpy(seg.parent_id, "53995c3f42cd8ad8");
	seg.start = 1700000000.5;
	seg.end = 1700000000.75;
	seg.http = (app_xray_http){ "POST", "/v1/cart/alice/items", "10.0.0.1",
				    "curl/8 \"quoted\"", 429, 120, "/v1/cart/{userID}/items" };
	return &seg;
}

static cJSON *get(const cJSON *o, const char *path)
{
	char key[64];
	const char *dot;

	while ((dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = cJSON_GetObjectItemCaseSensitive(o, key);
		path = dot + 1;
	}
	return cJSON_GetObjectItemCaseSensitive(o, path);
}

START_TEST(test_xray_segment_document_fields)
{
	app_xray_segment *seg = segment();
	buf b;
	cJSON *d;

	buf_init(&b, APP_XRAY_MAX_DATAGRAM);
	app_xray_segment_json(&b, seg, "cart-service", "eu-west-1");
	d = parse_doc(&b);
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(get(d, "name")->valuestring, "cart-service");
	ck_assert_str_eq(get(d, "id")->valuestring, "0123456789abcdef");
	ck_assert_str_eq(get(d, "trace_id")->valuestring, ROOT);
	ck_assert_str_eq(get(d, "parent_id")->valuestring, "53995c3f42cd8ad8");
	ck_assert_double_eq_tol(get(d, "start_time")->valuedouble, 1700000000.5, 1e-6);
	ck_assert_double_eq_tol(get(d, "end_time")->valuedouble, 1700000000.75, 1e-6);
	ck_assert(cJSON_IsTrue(get(d, "error")));
	ck_assert(cJSON_IsTrue(get(d, "throttle")));
	ck_assert_ptr_null(get(d, "fault"));
	ck_assert_str_eq(get(d, "http.request.method")->valuestring, "POST");
	ck_assert_str_eq(get(d, "http.request.url")->valuestring, "/v1/cart/alice/items");
	ck_assert_str_eq(get(d, "http.request.client_ip")->valuestring, "10.0.0.1");
	ck_assert_str_eq(get(d, "http.request.user_agent")->valuestring, "curl/8 \"quoted\"");
	ck_assert_int_eq(get(d, "http.response.status")->valueint, 429);
	ck_assert_int_eq(get(d, "http.response.content_length")->valueint, 120);
	ck_assert_str_eq(get(d, "annotations.route")->valuestring, "/v1/cart/{userID}/items");
	ck_assert_ptr_null(get(d, "subsegments"));
	cJSON_Delete(d);
	buf_release(&b);
}
END_TEST

static cart_aws_call_info call(const char *op, long status, const char *type)
{
	return (cart_aws_call_info){
		.service = "dynamodb", .operation = op, .resource = "carts",
		.rc = CART_OK, .status = status, .error_type = type,
		.request_id = "REQ123", .attempts = 3, .throttles = 2,
		.duration_ns = 50000000,
	};
}

START_TEST(test_xray_subsegments_from_calls)
{
	app_xray_segment *seg = segment();
	cart_aws_call_info c = call("UpdateItem", 400, "ProvisionedThroughputExceededException");
	cJSON *d, *subs, *s;
	buf b;

	app_xray_sub_from_call(&seg->subs[0], &c, 1700000000.7);
	strcpy(seg->subs[0].id, "aaaaaaaaaaaaaaaa");
	c = call("GetItem", 200, "");
	c.attempts = 1;
	app_xray_sub_from_call(&seg->subs[1], &c, 1700000000.6);
	strcpy(seg->subs[1].id, "bbbbbbbbbbbbbbbb");
	c.rc = CART_EBACKEND;
	c.status = 0;
	app_xray_sub_from_call(&seg->subs[2], &c, 1700000000.6);
	strcpy(seg->subs[2].id, "cccccccccccccccc");
	seg->nsubs = 3;
	seg->http.status = 503;
	buf_init(&b, APP_XRAY_MAX_DATAGRAM);
	app_xray_segment_json(&b, seg, "cart-service", "eu-west-1");
	d = parse_doc(&b);
	ck_assert(cJSON_IsTrue(get(d, "fault")));
	ck_assert_ptr_null(get(d, "error"));
	subs = get(d, "subsegments");
	ck_assert_int_eq(cJSON_GetArraySize(subs), 3);
	s = cJSON_GetArrayItem(subs, 0);
	ck_assert_str_eq(get(s, "id")->valuestring, "aaaaaaaaaaaaaaaa");
	ck_assert_str_eq(get(s, "name")->valuestring, "DynamoDB");
	ck_assert_str_eq(get(s, "namespace")->valuestring, "aws");
	ck_assert_str_eq(get(s, "aws.operation")->valuestring, "UpdateItem");
	ck_assert_str_eq(get(s, "aws.table_name")->valuestring, "carts");
	ck_assert_str_eq(get(s, "aws.region")->valuestring, "eu-west-1");
	ck_assert_str_eq(get(s, "aws.request_id")->valuestring, "REQ123");
	ck_assert_int_eq(get(s, "aws.retries")->valueint, 2);
	ck_assert_int_eq(get(s, "http.response.status")->valueint, 400);
	ck_assert(cJSON_IsTrue(get(s, "error")));
	ck_assert(cJSON_IsTrue(get(s, "throttle")));
	ck_assert_double_eq_tol(get(s, "start_time")->valuedouble, 1700000000.65, 1e-6);
	ck_assert_double_eq_tol(get(s, "end_time")->valuedouble, 1700000000.7, 1e-6);
	s = cJSON_GetArrayItem(subs, 1);
	ck_assert_ptr_null(get(s, "error"));
	ck_assert_int_eq(get(s, "aws.retries")->valueint, 0);
	s = cJSON_GetArrayItem(subs, 2);   /* no answer: a fault, no http */
	ck_assert(cJSON_IsTrue(get(s, "fault")));
	ck_assert_ptr_null(get(s, "http"));
	cJSON_Delete(d);
	buf_release(&b);
}
END_TEST

START_TEST(test_xray_subsegment_on_its_own)
{
	app_xray_segment *seg = segment();
	cart_aws_call_info c = call("PutEvents", 200, "");
	app_xray_sub sub;
	cJSON *d;
	buf b;

	c.service = "events";
	c.resource = "orders-bus";
	app_xray_sub_from_call(&sub, &c, 1700000000.7);
	strcpy(sub.id, "dddddddddddddddd");
	buf_init(&b, APP_XRAY_MAX_DATAGRAM);
	app_xray_subsegment_json(&b, seg, &sub, "eu-west-1");
	d = parse_doc(&b);
	ck_assert_str_eq(get(d, "type")->valuestring, "subsegment");
	ck_assert_str_eq(get(d, "trace_id")->valuestring, ROOT);
	ck_assert_str_eq(get(d, "parent_id")->valuestring, "0123456789abcdef");
	ck_assert_str_eq(get(d, "name")->valuestring, "EventBridge");
	ck_assert_ptr_null(get(d, "aws.table_name"));
	ck_assert_str_eq(get(d, "aws.operation")->valuestring, "PutEvents");
	cJSON_Delete(d);
	buf_release(&b);
}
END_TEST

START_TEST(test_xray_long_strings_are_cut_and_the_document_bounded)
{
	app_xray_segment *seg = segment();
	static char url[8192], ua[4096];
	cart_aws_call_info c = call("GetItem", 200, "");
	cJSON *d;
	buf b;

	memset(url, 'u', sizeof(url) - 1);
	memcpy(url + 1023, "\xc3\xa9", 2);   /* a UTF-8 sequence across the cut */
	memset(ua, 'a', sizeof(ua) - 1);
	seg->http.url = url;
	seg->http.user_agent = ua;
	for (int i = 0; i < APP_XRAY_MAX_SUBS; i++) {
		app_xray_sub_from_call(&seg->subs[i], &c, 1700000000.7);
		memset(seg->subs[i].resource, 't', sizeof(seg->subs[i].resource) - 1);
		memset(seg->subs[i].request_id, 'r', sizeof(seg->subs[i].request_id) - 1);
		strcpy(seg->subs[i].id, "eeeeeeeeeeeeeeee");
	}
	seg->nsubs = APP_XRAY_MAX_SUBS;
	buf_init(&b, APP_XRAY_MAX_DATAGRAM);
	app_xray_segment_json(&b, seg, "cart-service", "eu-west-1");
	ck_assert(!b.failed);
	ck_assert_uint_lt(b.len, APP_XRAY_MAX_DATAGRAM - 64);
	d = parse_doc(&b);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(strlen(get(d, "http.request.url")->valuestring), 1023);
	ck_assert_uint_eq(strlen(get(d, "http.request.user_agent")->valuestring), 256);
	cJSON_Delete(d);
	buf_release(&b);
}
END_TEST

/* A UDP socket on 127.0.0.1 (port picked by the kernel) as the daemon. */
static int daemon_socket(char *addr, size_t cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(addr, cap, "127.0.0.1:%d", ntohs(sa.sin_port));
	return fd;
}

/* The next datagram's document (header line checked), or NULL. */
static cJSON *receive(int fd)
{
	static char data[70000];
	ssize_t n = recv(fd, data, sizeof(data) - 1, MSG_DONTWAIT);
	size_t head = strlen(APP_XRAY_HEADER);

	if (n <= 0)
		return NULL;
	data[n] = '\0';
	ck_assert(!strncmp(data, APP_XRAY_HEADER, head));
	return cJSON_Parse(data + head);
}

START_TEST(test_xray_extra_subsegments_sent_on_their_own_then_dropped)
{
	char addr[64], err[256];
	int fd = daemon_socket(addr, sizeof(addr)), n_own = 0;
	cart_aws_call_info c = call("GetItem", 200, "");
	app_xray_segment *seg;
	app_xray_http h = { "GET", "/v1/cart/a", "127.0.0.1", NULL, 200, 2, "/v1/cart/{userID}" };
	app_xray *x;
	cJSON *d;
	buf stats;

	ck_assert_int_eq(app_xray_new(&x, addr, "cart-unit", "eu-west-1", err, sizeof(err)), 0);
	seg = app_xray_begin(x, ROOT, NULL, app_xray_now() - 1);
	ck_assert_ptr_nonnull(seg);
	/* outside a request: nothing recorded */
	app_xray_aws_call(&c, app_xray_now());
	app_xray_set_current(seg);
	for (int i = 0; i < APP_XRAY_MAX_SUBS + 40; i++)
		app_xray_aws_call(&c, app_xray_now());
	ck_assert_int_eq(seg->nsubs, APP_XRAY_MAX_SUBS);
	ck_assert_int_eq(seg->streamed, 40);
	/* a small socket buffer could not take all of these: count both */
	while ((d = receive(fd))) {
		ck_assert_str_eq(cJSON_GetObjectItem(d, "type")->valuestring, "subsegment");
		ck_assert_str_eq(cJSON_GetObjectItem(d, "parent_id")->valuestring, seg->id);
		ck_assert_str_eq(cJSON_GetObjectItem(d, "trace_id")->valuestring, ROOT);
		n_own++;
		cJSON_Delete(d);
	}
	ck_assert_int_eq(n_own, 40);
	for (int i = 0; i < APP_XRAY_MAX_STREAMED; i++)
		app_xray_aws_call(&c, app_xray_now());
	ck_assert_int_eq(seg->dropped, 40);
	while ((d = receive(fd)))
		cJSON_Delete(d);
	app_xray_end(seg, &h, app_xray_now());
	ck_assert_ptr_null(app_xray_current());
	d = receive(fd);
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(cJSON_GetObjectItem(d, "name")->valuestring, "cart-unit");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(d, "subsegments")),
			 APP_XRAY_MAX_SUBS);
	ck_assert_int_eq(get(d, "metadata.default.subsegments_dropped")->valueint, 40);
	cJSON_Delete(d);
	buf_init(&stats, 4096);
	app_xray_stats(x, &stats);
	ck_assert_ptr_nonnull(strstr(stats.data, "\"segments_sent\":1,"));
	ck_assert_ptr_nonnull(strstr(stats.data, "\"subsegments_dropped\":40,"));
	buf_release(&stats);
	app_xray_free(x);
	close(fd);
}
END_TEST

START_TEST(test_xray_refuses_bad_daemon_addresses)
{
	static const char *bad[] = { "", "127.0.0.1", ":2000", "127.0.0.1:",
				     "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:20x",
				     "no-such-host.invalid:2000" };
	char err[256];
	app_xray *x;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(app_xray_new(&x, bad[i], "n", "r", err, sizeof(err)) == -1,
			      "%s", bad[i]);
		ck_assert_ptr_null(x);
		ck_assert_ptr_nonnull(strstr(err, "AWS_XRAY_DAEMON_ADDRESS"));
	}
	ck_assert_int_eq(app_xray_new(&x, "localhost:2000", "n", "r", err, sizeof(err)), 0);
	app_xray_free(x);
	app_xray_free(NULL);
}
END_TEST

Suite *trace_suite(void)
{
	Suite *s = suite_create("trace");
	TCase *amzn = tcase_create("amzn_header");
	TCase *tp = tcase_create("traceparent");
	TCase *ids = tcase_create("ids");
	TCase *smp = tcase_create("sampler");
	TCase *doc = tcase_create("xray_documents");

	tcase_add_test(amzn, test_trace_amzn_full_header);
	tcase_add_test(amzn, test_trace_amzn_any_order_spaces_other_keys);
	tcase_add_test(amzn, test_trace_amzn_sampled_unknown_or_bad_is_undecided);
	tcase_add_test(amzn, test_trace_amzn_bad_parent_dropped);
	tcase_add_test(amzn, test_trace_amzn_refuses_bad_roots);
	tcase_add_test(amzn, test_trace_amzn_refuses_too_long);
	tcase_add_test(tp, test_trace_traceparent_converts_to_xray_root);
	tcase_add_test(tp, test_trace_traceparent_refuses_malformed);
	tcase_add_test(ids, test_trace_new_root_and_ids_have_the_xray_shape);
	tcase_add_test(ids, test_trace_format_header);
	tcase_add_test(smp, test_trace_sampler_reservoir_one_per_second);
	tcase_add_test(smp, test_trace_sampler_rate_after_reservoir);
	tcase_add_test(doc, test_xray_segment_document_fields);
	tcase_add_test(doc, test_xray_subsegments_from_calls);
	tcase_add_test(doc, test_xray_subsegment_on_its_own);
	tcase_add_test(doc, test_xray_long_strings_are_cut_and_the_document_bounded);
	tcase_add_test(doc, test_xray_extra_subsegments_sent_on_their_own_then_dropped);
	tcase_add_test(doc, test_xray_refuses_bad_daemon_addresses);
	suite_add_tcase(s, amzn);
	suite_add_tcase(s, tp);
	suite_add_tcase(s, ids);
	suite_add_tcase(s, smp);
	suite_add_tcase(s, doc);
	return s;
}
