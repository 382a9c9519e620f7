#ifndef APP_XRAY_H
#define APP_XRAY_H

/*
 * X-Ray segments over UDP to the X-Ray daemon (AWS_XRAY_ENABLED=true).
 *
 * One segment per sampled request, begun in the READ phase (trace
 * stage) and sent in the LOG phase; one subsegment per AWS call made
 * while it runs (aws_observe.c -> app_xray_aws_call, through this
 * thread's "current segment": a request runs on one worker thread).
 *
 * Size: a segment embeds at most APP_XRAY_MAX_SUBS subsegments, and
 * its strings are cut (url 1024, user agent 256 bytes), so a document
 * stays well under the daemon's 64 KB.  Later subsegments of the same
 * request are sent at once as documents of their own ("type":
 * "subsegment" with parent_id and trace_id, as the daemon protocol
 * allows), up to APP_XRAY_MAX_STREAMED; beyond that they are dropped and
 * counted.  Calls outside a request (the event relay's PutEvents) have no
 * current segment and are not traced: each event carries the request's
 * trace header instead, which links the consumer to the request.
 *
 * Sending never blocks: one non-blocking UDP socket, connected at start,
 * send(MSG_DONTWAIT); a failed send is counted, never retried.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aws/aws.h"
#include "buf.h"
#include "trace.h"

#define APP_XRAY_MAX_SUBS 32
#define APP_XRAY_MAX_STREAMED 256
#define APP_XRAY_MAX_DATAGRAM 65000   /* header line + document */
#define APP_XRAY_HEADER "{\"format\": \"json\", \"version\": 1}\n"

typedef struct app_xray app_xray;

/* One AWS call, as recorded while the request runs. */
typedef struct app_xray_sub {
	char id[APP_TRACE_ID_LEN + 1];
	const char *name;                /* "DynamoDB", "EventBridge", static */
	char operation[48];
	char resource[256];              /* table or bus */
	char request_id[80];
	long status;                     /* 0: no answer */
	int retries;                     /* attempts - 1 */
	bool error, throttle, fault;
	double start, end;               /* epoch seconds */
} app_xray_sub;

/* What the LOG phase knows of the exchange. */
typedef struct app_xray_http {
	const char *method;
	const char *url;                 /* path (no query) */
	const char *client_ip;
	const char *user_agent;          /* may be NULL */
	int status;
	size_t content_length;
	const char *route;               /* route pattern (annotation) */
} app_xray_http;

/* One request's segment (heap, owned by the request until app_xray_end). */
typedef struct app_xray_segment {
	const app_xray *xray;            /* borrowed */
	char id[APP_TRACE_ID_LEN + 1];
	char trace_id[APP_TRACE_ROOT_LEN + 1];
	char parent_id[APP_TRACE_ID_LEN + 1];   /* "" if the caller sent none */
	double start, end;
	app_xray_http http;              /* filled at the end */
	int nsubs;
	int streamed;                    /* subsegments sent on their own */
	int dropped;                     /* beyond APP_XRAY_MAX_STREAMED */
	/* last: begin clears everything before it, these are filled in use */
	app_xray_sub subs[APP_XRAY_MAX_SUBS];
} app_xray_segment;

/*
 * Validates AWS_XRAY_DAEMON_ADDRESS ("host:port"; host an IPv4 address
 * or a name resolved now, once) and opens the socket.  -1 with a line in
 * err.  name and region are copied.
 */
int app_xray_new(app_xray **out, const char *daemon_address, const char *name,
		 const char *region, char *err, size_t err_len);
void app_xray_free(app_xray *x);               /* accepts NULL */

/* The SDK's default rule for a request without a decision.  Thread-safe. */
bool app_xray_sample(app_xray *x, int64_t now_ms);

/*
 * A segment for trace_id (parent_id may be NULL or ""), started at start
 * (epoch seconds).  NULL when out of memory (counted).  Thread-safe.
 */
app_xray_segment *app_xray_begin(app_xray *x, const char *trace_id,
				 const char *parent_id, double start);
/* Fills in http and end, sends the segment, frees it.  Accepts NULL. */
void app_xray_end(app_xray_segment *seg, const app_xray_http *http, double end);

/* This thread's current segment (the request it runs), or NULL. */
void app_xray_set_current(app_xray_segment *seg);
app_xray_segment *app_xray_current(void);

/*
 * Records one AWS call in this thread's current segment, if there is one
 * (aws_observe.c).  end is the wall time the call returned (epoch s).
 */
void app_xray_aws_call(const cart_aws_call_info *info, double end);

/* --- documents (xray_doc.c; pure, tested) ------------------------------ */

/* Converts one call into a subsegment (no id: the caller's). */
void app_xray_sub_from_call(app_xray_sub *out, const cart_aws_call_info *info,
			    double end);
/* The segment document (no header line); name/region as the tracer's. */
void app_xray_segment_json(buf *out, const app_xray_segment *seg,
			   const char *name, const char *region);
/* A subsegment sent on its own ("type": "subsegment"). */
void app_xray_subsegment_json(buf *out, const app_xray_segment *seg,
			      const app_xray_sub *sub, const char *region);

/* Wall clock as epoch seconds with microseconds. */
double app_xray_now(void);

typedef struct app_xray_counters {
	uint64_t segments_sent, subsegments_sent, send_failed;
	uint64_t subsegments_dropped, too_large;   /* too_large: also out of memory */
} app_xray_counters;

/* The counters below, for /metrics.  Safe from any thread. */
void app_xray_counters_get(const app_xray *x, app_xray_counters *out);

/* Counters as JSON members (",\"sent\":3"): an app_stats_fn. */
void app_xray_stats(void *self, buf *out);

#endif
