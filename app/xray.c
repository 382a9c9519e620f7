/*
 * X-Ray segments to the daemon over UDP (see xray.h).  Document fields:
 * the X-Ray developer guide, "AWS X-Ray segment documents".
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cart/error.h"
#include "xray.h"

struct app_xray {
	int fd;                          /* non-blocking UDP, connected */
	char name[200];
	char region[32];
	app_sampler sampler;
	_Atomic uint64_t segments_sent;
	_Atomic uint64_t subsegments_sent;   /* on their own */
	_Atomic uint64_t send_failed;
	_Atomic uint64_t subsegments_dropped;
	_Atomic uint64_t too_large;
	_Atomic uint64_t no_memory;
};

#define URL_MAX 1024
#define UA_MAX 256

static _Thread_local app_xray_segment *current;

double app_xray_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000) / 1e6;
}

static int parse_address(const char *addr, char *host, size_t host_cap,
			 char *port, size_t port_cap)
{
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	char *end;
	long p;

	if (!colon || colon == addr || (size_t)(colon - addr) >= host_cap ||
	    strlen(colon + 1) >= port_cap || !colon[1])
		return -1;
	p = strtol(colon + 1, &end, 10);
	if (*end || p < 1 || p > 65535)
		return -1;
	snprintf(host, host_cap, "%.*s", (int)(colon - addr), addr);
	snprintf(port, port_cap, "%s", colon + 1);
	return 0;
}

static int open_socket(const char *addr, char *err, size_t err_len)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	char host[256], port[8];
	int fd, rc;

	if (parse_address(addr, host, sizeof(host), port, sizeof(port))) {
		snprintf(err, err_len, "AWS_XRAY_DAEMON_ADDRESS must be host:port "
			 "(e.g. 127.0.0.1:2000), not \"%.64s\"", addr ? addr : "");
		return -1;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc || !res) {
		snprintf(err, err_len, "AWS_XRAY_DAEMON_ADDRESS: cannot resolve \"%.64s\": %s",
			 host, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen)) {
		snprintf(err, err_len, "AWS_XRAY_DAEMON_ADDRESS: cannot open a UDP "
			 "socket to %.64s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

int app_xray_new(app_xray **out, const char *daemon_address, const char *name,
		 const char *region, char *err, size_t err_len)
{
	app_xray *x = calloc(1, sizeof(*x));

	*out = NULL;
	if (!x) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	x->fd = open_socket(daemon_address, err, err_len);
	if (x->fd < 0) {
		free(x);
		return -1;
	}
	snprintf(x->name, sizeof(x->name), "%s", name);
	snprintf(x->region, sizeof(x->region), "%s", region);
	/* the SDKs' default rule: 1 request a second, then 5 % */
	app_sampler_init(&x->sampler, 1, 5);
	*out = x;
	return 0;
}

void app_xray_free(app_xray *x)
{
	if (!x)
		return;
	close(x->fd);
	free(x);
}

bool app_xray_sample(app_xray *x, int64_t now_ms)
{
	return app_sampler_sample(&x->sampler, now_ms, (uint32_t)app_trace_rand64());
}

void app_xray_set_current(app_xray_segment *seg)
{
	current = seg;
}

app_xray_segment *app_xray_current(void)
{
	return current;
}

app_xray_segment *app_xray_begin(app_xray *x, const char *trace_id,
				 const char *parent_id, double start)
{
	app_xray_segment *seg = malloc(sizeof(*seg));

	if (!seg) {
		atomic_fetch_add_explicit(&x->no_memory, 1, memory_order_relaxed);
		return NULL;
	}
	memset(seg, 0, offsetof(app_xray_segment, subs));
	seg->xray = x;
	app_trace_new_id(seg->id);
	snprintf(seg->trace_id, sizeof(seg->trace_id), "%s", trace_id);
	snprintf(seg->parent_id, sizeof(seg->parent_id), "%s",
		 parent_id ? parent_id : "");
	seg->start = start;
	return seg;
}

/* --- documents ------------------------------------------------------------ */

static void put_time(buf *b, const char *key, double t)
{
	buf_printf(b, ",\"%s\":%.6f", key, t);
}

/* A string cut to max bytes, never inside a UTF-8 sequence. */
static void put_str(buf *b, const char *key, const char *v, size_t max)
{
	char cut[URL_MAX + 1];
	size_t n = strlen(v);

	if (max > URL_MAX)
		max = URL_MAX;
	if (n > max) {
		n = max;
		while (n && ((unsigned char)v[n] & 0xC0) == 0x80)
			n--;   /* v[n] continues a sequence: cut before its lead */
	}
	memcpy(cut, v, n);
	cut[n] = '\0';
	buf_printf(b, ",\"%s\":", key);
	buf_json_str(b, cut);
}

static void put_flags(buf *b, bool error, bool throttle, bool fault)
{
	if (error)
		buf_puts(b, ",\"error\":true");
	if (throttle)
		buf_puts(b, ",\"throttle\":true");
	if (fault)
		buf_puts(b, ",\"fault\":true");
}

/* The members of a subsegment after its opening brace and id. */
static void sub_body(buf *b, const app_xray_sub *s, const char *region)
{
	buf_puts(b, ",\"name\":");
	buf_json_str(b, s->name);
	buf_puts(b, ",\"namespace\":\"aws\"");
	put_time(b, "start_time", s->start);
	put_time(b, "end_time", s->end);
	put_flags(b, s->error, s->throttle, s->fault);
	buf_puts(b, ",\"aws\":{\"operation\":");
	buf_json_str(b, s->operation);
	if (!strcmp(s->name, "DynamoDB")) {
		buf_puts(b, ",\"table_name\":");
		buf_json_str(b, s->resource);
	} else if (s->resource[0]) {
		buf_puts(b, ",\"event_bus_name\":");
		buf_json_str(b, s->resource);
	}
	buf_puts(b, ",\"region\":");
	buf_json_str(b, region);
	if (s->request_id[0]) {
		buf_puts(b, ",\"request_id\":");
		buf_json_str(b, s->request_id);
	}
	buf_printf(b, ",\"retries\":%d}", s->retries);
	if (s->status)
		buf_printf(b, ",\"http\":{\"response\":{\"status\":%ld}}", s->status);
}

static void sub_json(buf *b, const app_xray_sub *s, const char *region)
{
	buf_puts(b, "{\"id\":");
	buf_json_str(b, s->id);
	sub_body(b, s, region);
	buf_puts(b, "}");
}

void app_xray_subsegment_json(buf *b, const app_xray_segment *seg,
			      const app_xray_sub *sub, const char *region)
{
	buf_puts(b, "{\"id\":");
	buf_json_str(b, sub->id);
	buf_puts(b, ",\"type\":\"subsegment\",\"trace_id\":");
	buf_json_str(b, seg->trace_id);
	buf_puts(b, ",\"parent_id\":");
	buf_json_str(b, seg->id);
	sub_body(b, sub, region);
	buf_puts(b, "}");
}

static void http_json(buf *b, const app_xray_http *h)
{
	buf_puts(b, ",\"http\":{\"request\":{\"method\":");
	buf_json_str(b, h->method ? h->method : "");
	put_str(b, "url", h->url ? h->url : "", URL_MAX);
	put_str(b, "client_ip", h->client_ip ? h->client_ip : "", 64);
	if (h->user_agent)
		put_str(b, "user_agent", h->user_agent, UA_MAX);
	buf_printf(b, "},\"response\":{\"status\":%d,\"content_length\":%zu}}",
		   h->status, h->content_length);
}

void app_xray_segment_json(buf *b, const app_xray_segment *seg,
			   const char *name, const char *region)
{
	const app_xray_http *h = &seg->http;

	buf_puts(b, "{\"name\":");
	buf_json_str(b, name);
	buf_puts(b, ",\"id\":");
	buf_json_str(b, seg->id);
	buf_puts(b, ",\"trace_id\":");
	buf_json_str(b, seg->trace_id);
	if (seg->parent_id[0]) {
		buf_puts(b, ",\"parent_id\":");
		buf_json_str(b, seg->parent_id);
	}
	put_time(b, "start_time", seg->start);
	put_time(b, "end_time", seg->end);
	put_flags(b, h->status >= 400 && h->status < 500, h->status == 429,
		  h->status >= 500);
	http_json(b, h);
	buf_puts(b, ",\"annotations\":{\"route\":");
	buf_json_str(b, h->route ? h->route : "");
	buf_puts(b, "}");
	if (seg->dropped)
		buf_printf(b, ",\"metadata\":{\"default\":{\"subsegments_dropped\":%d}}",
			   seg->dropped);
	if (seg->nsubs) {
		buf_puts(b, ",\"subsegments\":[");
		for (int i = 0; i < seg->nsubs; i++) {
			if (i)
				buf_puts(b, ",");
			sub_json(b, &seg->subs[i], region);
		}
		buf_puts(b, "]");
	}
	buf_puts(b, "}");
}

/* --- calls ---------------------------------------------------------------- */

static bool throttled(const cart_aws_call_info *info)
{
	const char *t = info->error_type ? info->error_type : "";

	return info->status == 429 || strstr(t, "Throttl") ||
	       strstr(t, "ProvisionedThroughputExceeded") ||
	       strstr(t, "RequestLimitExceeded");
}

void app_xray_sub_from_call(app_xray_sub *s, const cart_aws_call_info *info,
			    double end)
{
	bool dynamo = info->service && !strcmp(info->service, "dynamodb");

	memset(s, 0, sizeof(*s));
	s->name = dynamo ? "DynamoDB" : !strcmp(info->service ? info->service : "",
						"events") ? "EventBridge" : "AWS";
	snprintf(s->operation, sizeof(s->operation), "%s",
		 info->operation ? info->operation : "");
	snprintf(s->resource, sizeof(s->resource), "%s",
		 info->resource ? info->resource : "");
	snprintf(s->request_id, sizeof(s->request_id), "%s",
		 info->request_id ? info->request_id : "");
	s->status = info->status;
	s->retries = info->attempts > 1 ? info->attempts - 1 : 0;
	/* no answer at all (transport, breaker) is our side's fault */
	s->fault = info->rc != CART_OK || info->status >= 500;
	s->error = !s->fault && info->status >= 400 && info->status < 500;
	s->throttle = s->error && throttled(info);
	s->end = end;
	s->start = end - (double)info->duration_ns / 1e9;
}

static void send_doc(app_xray *x, buf *b, _Atomic uint64_t *sent)
{
	if (b->failed) {
		atomic_fetch_add_explicit(&x->too_large, 1, memory_order_relaxed);
		return;
	}
	if (send(x->fd, b->data, b->len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)b->len)
		atomic_fetch_add_explicit(sent, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&x->send_failed, 1, memory_order_relaxed);
}

/* Over APP_XRAY_MAX_SUBS: the subsegment goes out on its own, now. */
static void stream_sub(app_xray_segment *seg, const app_xray_sub *sub)
{
	app_xray *x = (app_xray *)seg->xray;
	char storage[4096];
	buf b;

	buf_init_on(&b, storage, sizeof(storage), APP_XRAY_MAX_DATAGRAM);
	buf_puts(&b, APP_XRAY_HEADER);
	app_xray_subsegment_json(&b, seg, sub, x->region);
	send_doc(x, &b, &x->subsegments_sent);
	buf_release(&b);
	seg->streamed++;
}

void app_xray_aws_call(const cart_aws_call_info *info, double end)
{
	app_xray_segment *seg = current;
	app_xray_sub sub, *s;

	if (!seg)
		return;
	if (seg->nsubs < APP_XRAY_MAX_SUBS) {
		s = &seg->subs[seg->nsubs++];
		app_xray_sub_from_call(s, info, end);
		app_trace_new_id(s->id);
		return;
	}
	if (seg->streamed >= APP_XRAY_MAX_STREAMED) {
		seg->dropped++;
		atomic_fetch_add_explicit(&((app_xray *)seg->xray)->subsegments_dropped,
					  1, memory_order_relaxed);
		return;
	}
	app_xray_sub_from_call(&sub, info, end);
	app_trace_new_id(sub.id);
	stream_sub(seg, &sub);
}

void app_xray_end(app_xray_segment *seg, const app_xray_http *http, double end)
{
	app_xray *x;
	buf b;

	if (!seg)
		return;
	x = (app_xray *)seg->xray;
	seg->http = *http;
	seg->end = end > seg->start ? end : seg->start;
	buf_init(&b, APP_XRAY_MAX_DATAGRAM);
	buf_puts(&b, APP_XRAY_HEADER);
	app_xray_segment_json(&b, seg, x->name, x->region);
	send_doc(x, &b, &x->segments_sent);
	buf_release(&b);
	if (current == seg)
		current = NULL;
	free(seg);
}

void app_xray_stats(void *self, buf *out)
{
	app_xray *x = self;

	buf_printf(out, ",\"segments_sent\":%llu,\"subsegments_sent\":%llu,"
		   "\"send_failed\":%llu,\"subsegments_dropped\":%llu,"
		   "\"too_large\":%llu",
		   (unsigned long long)atomic_load(&x->segments_sent),
		   (unsigned long long)atomic_load(&x->subsegments_sent),
		   (unsigned long long)atomic_load(&x->send_failed),
		   (unsigned long long)atomic_load(&x->subsegments_dropped),
		   (unsigned long long)(atomic_load(&x->too_large) +
					atomic_load(&x->no_memory)));
}
