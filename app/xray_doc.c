/*
 * X-Ray documents (see xray.h): segments, subsegments, and a subsegment
 * from one AWS call.  Pure: no I/O, no state.  Fields: the X-Ray developer
 * guide, "AWS X-Ray segment documents".
 */
#include <stdio.h>
#include <string.h>

#include "cart/error.h"
#include "xray.h"

#define URL_MAX 1024
#define UA_MAX 256

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

/* --- one AWS call ----------------------------------------------------------- */

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
