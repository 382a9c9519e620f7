/*
 * X-Ray segments to the daemon over UDP (see xray.h): the socket, the
 * segment of the request on this thread, sending.  The documents
 * themselves are built in xray_doc.c.
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

/* --- sending ---------------------------------------------------------------- */

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

void app_xray_counters_get(const app_xray *x, app_xray_counters *out)
{
	app_xray *m = (app_xray *)x;

	out->segments_sent = atomic_load(&m->segments_sent);
	out->subsegments_sent = atomic_load(&m->subsegments_sent);
	out->send_failed = atomic_load(&m->send_failed);
	out->subsegments_dropped = atomic_load(&m->subsegments_dropped);
	out->too_large = atomic_load(&m->too_large) + atomic_load(&m->no_memory);
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
