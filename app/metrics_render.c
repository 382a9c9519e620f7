/*
 * GET /metrics: every counter of metrics.h, the figures the sources keep
 * (service, relay, breakers, limiter), build info and process figures
 * from /proc/self, in the Prometheus text format 0.0.4.  Sums the atomic
 * arrays at scrape time; prints only series that have been seen, so a
 * scrape stays small.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "allocator.h"
#include "cart/relay.h"
#include "flags.h"
#include "log.h"
#include "memory/memory_repo.h"
#include "metrics_registry.h"
#include "ratelimit.h"
#include "auth.h"
#include "secrets.h"
#include "xray.h"

#ifndef CART_VERSION
#define CART_VERSION "unknown"
#endif
#ifndef CART_COMMIT
#define CART_COMMIT "unknown"
#endif

#define LOAD(c) atomic_load_explicit(&(c), memory_order_relaxed)

static void family(buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(buf *out, const char *name, const char *labels,
		      const metrics_histogram *h)
{
	uint64_t cum = 0;

	for (int i = 0; i < METRICS_SLOTS; i++) {
		cum += LOAD(h->slot[i]);
		buf_printf(out, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels,
			   metrics_bucket_le(i), (unsigned long long)cum);
	}
	/* _count is the +Inf bucket, read once, so the two always agree. */
	buf_printf(out, "%s_sum{%s} %.9f\n%s_count{%s} %llu\n", name, labels,
		   (double)LOAD(h->sum_ns) / 1e9, name, labels, (unsigned long long)cum);
}

static void render_http(const app_metrics *m, buf *out, bool scrape)
{
	char labels[128];
	int in_flight = atomic_load_explicit(&m->in_flight, memory_order_acquire);

	family(out, "http_requests_total", "counter",
	       "HTTP requests answered, by method, route pattern and status.");
	for (int me = 0; me < METRICS_METHOD_COUNT; me++)
		for (int ro = 0; ro < ROUTE_COUNT; ro++)
			for (int st = 0; st < METRICS_STATUSES; st++) {
				uint64_t n = LOAD(m->requests[me][ro][st]);
				if (n)
					buf_printf(out, "http_requests_total{method=\"%s\",route=\"%s\","
						   "status=\"%d\"} %llu\n", metrics_method_name(me),
						   app_route_pattern((app_route)ro),
						   st + METRICS_STATUS_MIN, (unsigned long long)n);
			}
	family(out, "http_request_duration_seconds", "histogram",
	       "Time from the request head to the response sent, by method and route pattern.");
	for (int me = 0; me < METRICS_METHOD_COUNT; me++)
		for (int ro = 0; ro < ROUTE_COUNT; ro++) {
			if (!metrics_histogram_count(&m->duration[me][ro]))
				continue;
			snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\"",
				 metrics_method_name(me), app_route_pattern((app_route)ro));
			histogram(out, "http_request_duration_seconds", labels,
				  &m->duration[me][ro]);
		}
	family(out, "http_requests_in_flight", "gauge",
	       "Requests being served, not counting this scrape.");
	/* The scrape is in flight while it renders. */
	if (scrape && in_flight > 0)
		in_flight--;
	buf_printf(out, "http_requests_in_flight %d\n", in_flight);
}

static void render_aws_one(const metrics_aws *a, const char *prefix, buf *out)
{
	char name[96], labels[96];

	snprintf(name, sizeof(name), "%s_requests_total", prefix);
	family(out, name, "counter", "Calls (all attempts together), by operation and outcome.");
	for (int op = 0; op < METRICS_AWS_OPS; op++)
		for (int o = 0; o < METRICS_OUTCOME_COUNT; o++)
			if (LOAD(a->calls[op][o]))
				buf_printf(out, "%s{operation=\"%s\",outcome=\"%s\"} %llu\n", name,
					   metrics_aws_operation_name(op),
					   metrics_aws_outcome_name((metrics_aws_outcome)o),
					   (unsigned long long)LOAD(a->calls[op][o]));
	snprintf(name, sizeof(name), "%s_request_duration_seconds", prefix);
	family(out, name, "histogram", "Call duration, retries and backoff included, by operation.");
	for (int op = 0; op < METRICS_AWS_OPS; op++) {
		if (!metrics_histogram_count(&a->duration[op]))
			continue;
		snprintf(labels, sizeof(labels), "operation=\"%s\"", metrics_aws_operation_name(op));
		histogram(out, name, labels, &a->duration[op]);
	}
	snprintf(name, sizeof(name), "%s_retries_total", prefix);
	family(out, name, "counter", "Attempts after the first, by operation.");
	for (int op = 0; op < METRICS_AWS_OPS; op++)
		if (LOAD(a->retries[op]))
			buf_printf(out, "%s{operation=\"%s\"} %llu\n", name,
				   metrics_aws_operation_name(op),
				   (unsigned long long)LOAD(a->retries[op]));
	snprintf(name, sizeof(name), "%s_throttles_total", prefix);
	family(out, name, "counter", "Attempts answered with throttling, by operation.");
	for (int op = 0; op < METRICS_AWS_OPS; op++)
		if (LOAD(a->throttles[op]))
			buf_printf(out, "%s{operation=\"%s\"} %llu\n", name,
				   metrics_aws_operation_name(op),
				   (unsigned long long)LOAD(a->throttles[op]));
}

static void counter_line(buf *out, const char *name, const char *help, uint64_t v);
static void gauge_line(buf *out, const char *name, const char *help, double v);

/* The credential chain: refreshes of short-lived (ECS task role) keys. */
static void render_creds(const app_metrics *m, buf *out)
{
	int64_t expires;

	if (!m->src.creds)
		return;
	counter_line(out, "aws_credential_fetches_total",
		     "Container (ECS task role) credential fetches, the one at start included.",
		     cart_aws_creds_fetches(m->src.creds));
	counter_line(out, "aws_credential_refresh_failures_total",
		     "Credential refreshes that failed (the old keys serve until they expire).",
		     cart_aws_creds_refresh_failures(m->src.creds));
	expires = cart_aws_creds_expires_at_ms(m->src.creds);
	if (expires > 0)
		gauge_line(out, "aws_credentials_expiry_timestamp_seconds",
			   "When the credentials in use expire, seconds since the Unix epoch.",
			   (double)expires / 1000.0);
}

static void render_aws(const app_metrics *m, buf *out)
{
	render_aws_one(&m->aws[METRICS_AWS_DYNAMODB], "dynamodb", out);
	render_aws_one(&m->aws[METRICS_AWS_EVENTS], "eventbridge", out);
	family(out, "circuit_breaker_state", "gauge",
	       "Circuit breaker of a dependency: 0 closed, 1 half-open, 2 open.");
	if (m->src.dynamo)
		buf_printf(out, "circuit_breaker_state{dependency=\"dynamodb\"} %d\n",
			   metrics_breaker_value(cart_aws_client_breaker_state(m->src.dynamo)));
	if (m->src.events)
		buf_printf(out, "circuit_breaker_state{dependency=\"eventbridge\"} %d\n",
			   metrics_breaker_value(cart_aws_client_breaker_state(m->src.events)));
}

static void counter_line(buf *out, const char *name, const char *help, uint64_t v)
{
	family(out, name, "counter", help);
	buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void render_use_cases(const app_metrics *m, buf *out)
{
	if (m->src.svc) {
		cart_service_stats st;

		cart_service_stats_get(m->src.svc, &st);
		counter_line(out, "cart_version_conflict_retries_total",
			     "Writes that lost a version race and were retried by the service.",
			     st.conflicts);
		counter_line(out, "cart_commits_total", "Cart writes committed.", st.commits);
	}
	counter_line(out, "cart_precondition_failures_total",
		     "Requests answered 412 (stale If-Match), replays excepted.",
		     LOAD(m->precondition_failed));
	counter_line(out, "cart_conflicts_total",
		     "Requests answered 409 (conflict, idempotent request in flight), replays excepted.",
		     LOAD(m->conflicts));
	counter_line(out, "cart_idempotent_replays_total",
		     "Requests answered by replaying a stored Idempotency-Key outcome.",
		     LOAD(m->replays));
	if (m->src.ratelimit) {
		cart_limiter_stats ls;

		app_ratelimit_stats(m->src.ratelimit, &ls);
		counter_line(out, "cart_rate_limit_rejections_total",
			     "Requests refused by the rate limiter (429).", ls.limited);
		/* the memory store's bound (RATE_LIMIT_MAX_KEYS) at work */
		gauge_line(out, "cart_rate_limit_keys",
			   "Callers the in-memory rate limiter tracks now (0 with Redis).",
			   (double)ls.keys);
		counter_line(out, "cart_rate_limit_evictions_total",
			     "Callers still limited that the in-memory rate limiter "
			     "dropped to stay within RATE_LIMIT_MAX_KEYS.", ls.evictions);
	}
	counter_line(out, "cart_auth_unenforced_total",
		     "Requests with no or a refused token let through because the "
		     "auth_enforce feature flag is off (also in cart_auth_failures_total).",
		     LOAD(m->auth_unenforced));
	family(out, "cart_auth_failures_total", "counter",
	       "Requests answered 401, or let through with auth_enforce off, by reason "
	       "(missing token or why it was refused).");
	for (int i = 0; i < METRICS_AUTH_REASONS; i++)
		if (LOAD(m->auth_failures[i]))
			buf_printf(out, "cart_auth_failures_total{reason=\"%s\"} %llu\n",
				   metrics_auth_reason_name(i),
				   (unsigned long long)LOAD(m->auth_failures[i]));
}

static void gauge_line(buf *out, const char *name, const char *help, double v)
{
	family(out, name, "gauge", help);
	buf_printf(out, "%s %.17g\n", name, v);
}

static void render_outbox(const app_metrics *m, buf *out)
{
	cart_relay_stats st;

	if (!m->src.relay)
		return;
	cart_relay_stats_get(m->src.relay, &st);
	gauge_line(out, "cart_outbox_backlog_events",
		   "Events waiting in the outbox at the relay's last fetch.", (double)st.backlog);
	gauge_line(out, "cart_outbox_oldest_event_age_seconds",
		   "Age of the oldest waiting event (0 when none).",
		   (double)st.oldest_age_ms / 1000.0);
	counter_line(out, "cart_outbox_events_published_total",
		     "Events the publisher accepted.", st.published);
	counter_line(out, "cart_outbox_publish_failures_total",
		     "Publisher calls that failed.", st.publish_failures);
	counter_line(out, "cart_outbox_events_parked_total",
		     "Events the bus refused for good, moved to the dead-letter list.", st.parked);
	gauge_line(out, "cart_outbox_acks_waiting",
		   "Published events whose removal from the outbox still waits.",
		   (double)st.acks_waiting);
	if (m->src.memory_repo) {
		uint64_t paced, paced_ms;

		cart_memory_repo_pace_stats(m->src.memory_repo, &paced, &paced_ms);
		counter_line(out, "cart_outbox_paced_writes_total",
			     "Writes that waited for the relay (memory store, backlog "
			     "past a quarter of EVENTS_BACKLOG_MAX_MB).", paced);
		family(out, "cart_outbox_paced_seconds_total", "counter",
		       "Time those writes waited.");
		buf_printf(out, "cart_outbox_paced_seconds_total %.3f\n",
			   (double)paced_ms / 1000.0);
	}
}

/* X-Ray's UDP sends (AWS_XRAY_ENABLED): segments that went, and did not. */
static void render_xray(const app_metrics *m, buf *out)
{
	app_xray_counters c;

	if (!m->src.xray)
		return;
	app_xray_counters_get(m->src.xray, &c);
	counter_line(out, "xray_segments_sent_total",
		     "Segments sent to the X-Ray daemon.", c.segments_sent);
	counter_line(out, "xray_subsegments_sent_total",
		     "Subsegments sent as documents of their own.", c.subsegments_sent);
	counter_line(out, "xray_send_failures_total",
		     "Datagrams the socket refused (not retried).", c.send_failed);
	counter_line(out, "xray_subsegments_dropped_total",
		     "Subsegments dropped past a segment's bound.", c.subsegments_dropped);
	counter_line(out, "xray_segments_too_large_total",
		     "Documents not sent: too large, or out of memory.", c.too_large);
}

/* --- the process ------------------------------------------------------------ */

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;   /* the directory being read */
}

/* utime + stime (ticks), start time (ticks after boot), rss (pages). */
static bool proc_stat(unsigned long long *cpu, unsigned long long *start, long *rss)
{
	char line[1024];
	unsigned long long ut, st;
	const char *p;
	FILE *f = fopen("/proc/self/stat", "r");
	bool ok;

	if (!f)
		return false;
	ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	p = ok ? strrchr(line, ')') : NULL;   /* comm may hold spaces */
	/* after ")": state(3) ... utime(14) stime(15) ... starttime(22) vsize(23) rss(24) */
	ok = p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
			 "%*d %*d %*d %*d %*d %*d %llu %*u %ld", &ut, &st, start, rss) == 4;
	if (ok)
		*cpu = ut + st;
	return ok;
}

static long long boot_time(void)
{
	char line[256];
	long long bt = -1;
	FILE *f = fopen("/proc/stat", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %lld", &bt) == 1)
			break;
	if (f)
		fclose(f);
	return bt;
}

/*
 * The heap as jemalloc sees it (ADR 17): how much of the RSS is the
 * program's data (allocated), kept by the allocator (resident - active),
 * or not the heap at all (thread stacks, libraries).  Absent on a glibc
 * malloc build.
 */
static void render_heap(buf *out)
{
	app_heap_stats h;

	if (!app_allocator_stats(&h))
		return;
	const struct { const char *state; size_t v; } rows[] = {
		{ "allocated", h.allocated }, { "active", h.active },
		{ "metadata", h.metadata }, { "resident", h.resident },
		{ "mapped", h.mapped }, { "retained", h.retained },
	};

	family(out, "cart_service_heap_bytes", "gauge",
	       "jemalloc's statistics (stats.<state>): allocated by the program, active "
	       "pages, metadata, resident, mapped, retained address space.");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		buf_printf(out, "cart_service_heap_bytes{state=\"%s\"} %zu\n",
			   rows[i].state, rows[i].v);
}

static void render_process(buf *out)
{
	unsigned long long cpu, start;
	long rss, tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	long long bt = boot_time();
	int fds = open_fds();

	family(out, "cart_service_build_info", "gauge",
	       "Always 1; the labels say which build runs.");
	buf_printf(out, "cart_service_build_info{version=\"%s\",commit=\"%s\"} 1\n",
		   CART_VERSION, CART_COMMIT);
	if (proc_stat(&cpu, &start, &rss) && tick > 0) {
		gauge_line(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
			   (double)rss * (double)page);
		family(out, "process_cpu_seconds_total", "counter",
		       "User and system CPU time spent in seconds.");
		buf_printf(out, "process_cpu_seconds_total %.2f\n", (double)cpu / (double)tick);
		if (bt > 0)
			gauge_line(out, "process_start_time_seconds",
				   "Start time of the process since the Unix epoch in seconds.",
				   (double)bt + (double)start / (double)tick);
	}
	if (fds >= 0)
		gauge_line(out, "process_open_fds", "Number of open file descriptors.", fds);
	render_heap(out);
}

/* Lines the log queue dropped because stdout did not keep up (app/log.h). */
static void render_logs(buf *out)
{
	static const log_level levels[] = { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

	family(out, "log_lines_dropped_total", "counter",
	       "Log lines dropped because stdout did not keep up, by level.");
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		buf_printf(out, "log_lines_dropped_total{level=\"%s\"} %llu\n",
			   log_level_name(levels[i]),
			   (unsigned long long)log_dropped(levels[i]));
}

void app_metrics_render(app_metrics *m, buf *out, bool scrape)
{
	render_http(m, out, scrape);
	render_aws(m, out);
	render_creds(m, out);
	render_use_cases(m, out);
	render_outbox(m, out);
	render_xray(m, out);
	app_flags_metrics(m->src.flags, out);
	app_secrets_metrics(m->src.secrets, out);
	app_auth_metrics(m->src.auth, out);
	render_logs(out);
	render_process(out);
}

void app_metrics_respond(app_request *r)
{
	http_response *res = r->res;

	buf_reset(&res->body);
	app_metrics_render(r->app->metrics, &res->body, r->metrics_in_flight);
	res->status = 200;
	res->content_type = METRICS_CONTENT_TYPE;
}
