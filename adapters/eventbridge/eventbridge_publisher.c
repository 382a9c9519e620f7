/*
 * PutEvents.  The size of an entry is counted as EventBridge counts it:
 * the UTF-8 bytes of Source, DetailType and Detail (no Time, no
 * Resources); a call carries at most 10 entries and 256 KB.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/event_json.h"
#include "eventbridge/eventbridge_publisher.h"

#define MAX_ENTRIES 10
#define MAX_CALL_BYTES (256 * 1024)
#define TARGET "AWSEvents.PutEvents"

typedef struct eb_publisher {
	pthread_mutex_t bus_lock;    /* guards bus: it may rotate (set_bus) */
	char bus[256];
	char source[128];
	int max_attempts;
	cart_aws_client *client;
	const cart_aws_log *log;
} eb_publisher;

static size_t entry_size(const eb_publisher *p, const cart_event *ev)
{
	char detail[1024];

	return strlen(p->source) + strlen(cart_event_type_name(ev->type)) +
	       cart_event_to_json(detail, sizeof(detail), ev);
}

/* Appends the entry for ev; false if it could not be built. */
static bool add_entry(eb_publisher *p, cJSON *entries, const cart_event *ev)
{
	char detail[1024];
	size_t n = cart_event_to_json(detail, sizeof(detail), ev);
	cJSON *e;

	if (n >= sizeof(detail))
		return false;
	e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "Source", p->source);
	cJSON_AddStringToObject(e, "DetailType", cart_event_type_name(ev->type));
	cJSON_AddStringToObject(e, "Detail", detail);
	pthread_mutex_lock(&p->bus_lock);
	cJSON_AddStringToObject(e, "EventBusName", p->bus);
	pthread_mutex_unlock(&p->bus_lock);
	/* The X-Ray header of the request that caused the change: an
	 * envelope member, not part of the event document. */
	if (ev->trace_header[0])
		cJSON_AddStringToObject(e, "TraceHeader", ev->trace_header);
	cJSON_AddItemToArray(entries, e);
	return true;
}

/*
 * May the same entry be accepted later?  Throttling, internal and
 * service failures, and credentials problems (fixed by a refresh, and
 * never the entry's fault) are failures for now.  Everything else the bus
 * names for an entry (MalformedDetail, InvalidArgument, ...) refuses the
 * entry as it is: sending it again gets the same answer.  For a whole
 * call see configuration_error.
 */
static bool transient_code(const char *code)
{
	static const char *const now[] = {
		"InternalFailure", "InternalException", "ServiceUnavailable",
		"Throttl", "LimitExceeded", "TooManyRequests", "Timeout",
		"Signature", "ExpiredToken", "UnrecognizedClient",
		"InvalidClientTokenId", "MissingAuthenticationToken",
		"RequestExpired",
	};

	if (!*code)
		return true;   /* nothing named: do not give up on it */
	for (size_t i = 0; i < sizeof(now) / sizeof(now[0]); i++)
		if (strstr(code, now[i]))
			return true;
	return false;
}

static void set_result(cart_publish_result *res, cart_publish_status st,
		       const char *code)
{
	size_t n = strnlen(code, sizeof(res->code) - 1);

	res->status = st;
	memcpy(res->code, code, n);   /* codes are short; a long one is cut */
	res->code[n] = '\0';
}

/*
 * A whole call refused because of where it goes, not what it carries: a
 * bus that does not exist or a role that may not put to it.  Every entry
 * of every call gets the same answer until an operator fixes the
 * configuration, so parking them would move the whole stream into the
 * dead-letter list; they wait in the outbox instead (the backlog grows,
 * /ready reports it, and this is logged as an error).
 */
static bool configuration_error(const char *code)
{
	return strstr(code, "ResourceNotFound") || strstr(code, "AccessDenied") ||
	       strstr(code, "NotAuthorized") || strstr(code, "UnauthorizedOperation");
}

/* A whole call refused: each of its entries gets the call's answer. */
static int call_refused(eb_publisher *p, const cart_aws_response *r,
			const size_t *idx, size_t n, cart_publish_result *res)
{
	bool now = r->status >= 500 || transient_code(r->error_type) ||
		   configuration_error(r->error_type);
	cart_aws_fields f;

	cart_aws_fields_init(&f);
	cart_aws_fields_int(&f, "status", r->status);
	cart_aws_fields_str(&f, "error", r->error_type, 0);
	cart_aws_fields_str(&f, "detail", r->message, 160);
	cart_aws_fields_bool(&f, "permanent", !now);
	cart_aws_log_write(p->log, CART_AWS_LOG_ERROR, "eventbridge PutEvents failed", &f);
	for (size_t k = 0; k < n; k++)
		set_result(&res[idx[k]], now ? CART_PUBLISH_RETRY : CART_PUBLISH_REFUSED,
			   r->error_type);
	return r->status >= 500 || strstr(r->error_type, "Throttl")
		       ? CART_EUNAVAILABLE : CART_EBACKEND;
}

static void log_refused_entry(eb_publisher *p, const cart_event *ev, const char *code)
{
	cart_aws_fields f;

	cart_aws_fields_init(&f);
	cart_aws_fields_str(&f, "userId", ev->user_id, 0);
	cart_aws_fields_str(&f, "eventId", ev->event_id, 0);
	cart_aws_fields_int(&f, "cartVersion", (long long)ev->cart_version);
	cart_aws_fields_str(&f, "errorCode", code, 60);
	cart_aws_log_write(p->log, CART_AWS_LOG_WARN, "eventbridge refused an entry", &f);
}

/*
 * The answer of an accepted call, entry by entry: indexes of entries that
 * failed for now go to failed (count in *n_failed), to be sent again.
 */
static void read_entries(eb_publisher *p, const cart_event *events,
			 const cJSON *resp, const size_t *idx, size_t n,
			 cart_publish_result *res, size_t *failed, size_t *n_failed)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(resp, "Entries"), *e;
	size_t i = 0;

	if ((size_t)cJSON_GetArraySize(list) != n) {
		/* the answer must match the request entry for entry */
		for (*n_failed = 0; *n_failed < n; (*n_failed)++) {
			failed[*n_failed] = idx[*n_failed];
			set_result(&res[idx[*n_failed]], CART_PUBLISH_RETRY, "");
		}
		return;
	}
	cJSON_ArrayForEach(e, list) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "ErrorCode");
		const char *c = cJSON_IsString(code) ? code->valuestring : code ? "?" : NULL;
		const cart_event *ev = &events[idx[i]];

		if (!c) {
			set_result(&res[idx[i]], CART_PUBLISH_ACCEPTED, "");
		} else if (transient_code(c)) {
			set_result(&res[idx[i]], CART_PUBLISH_RETRY, c);
			failed[(*n_failed)++] = idx[i];
		} else {
			set_result(&res[idx[i]], CART_PUBLISH_REFUSED, c);
			log_refused_entry(p, ev, c);
		}
		i++;
	}
}

/*
 * Sends events[idx[0..n)] in one call and fills their res; indexes of
 * entries that failed for now are written into failed (count in
 * *n_failed).  CART_OK when the call got an answer, else the error that
 * ended it.
 */
static int put_events(eb_publisher *p, const cart_event *events,
		      const size_t *idx, size_t n, cart_publish_result *res,
		      size_t *failed, size_t *n_failed)
{
	cJSON *req = cJSON_CreateObject(), *entries = cJSON_AddArrayToObject(req, "Entries");
	cJSON *resp = NULL;
	cart_aws_response r;
	char *body;
	int rc;

	*n_failed = 0;
	for (size_t k = 0; k < n; k++)
		if (!add_entry(p, entries, &events[idx[k]])) {
			cJSON_Delete(req);
			return CART_EINVALID;
		}
	body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!body)
		return CART_ENOMEM;
	rc = cart_aws_call(p->client, TARGET, body, strlen(body), &r);
	cJSON_free(body);
	if (rc == CART_OK && r.status != 200)
		rc = call_refused(p, &r, idx, n, res);
	if (rc == CART_OK && !(resp = cJSON_ParseWithLength(r.body, r.body_len)))
		rc = CART_EBACKEND;
	cart_aws_response_release(&r);
	if (rc)
		return rc;
	read_entries(p, events, resp, idx, n, res, failed, n_failed);
	cJSON_Delete(resp);
	return CART_OK;
}

/*
 * Entries whose Detail cannot be built (over the 1 KB an event's document
 * takes) are refused here, for good; the rest stay in pending.
 */
static void refuse_unbuildable(const cart_event *events, size_t *pending,
			       size_t *n, cart_publish_result *res)
{
	char detail[1024];
	size_t kept = 0;

	for (size_t k = 0; k < *n; k++) {
		if (cart_event_to_json(detail, sizeof(detail), &events[pending[k]]) >=
		    sizeof(detail))
			set_result(&res[pending[k]], CART_PUBLISH_REFUSED, "EntryTooLarge");
		else
			pending[kept++] = pending[k];
	}
	*n = kept;
}

/*
 * One round over pending[0..*n): what fails for now stays in pending,
 * every entry sent gets its res.  still has room for *n indexes.
 */
static int send_round(eb_publisher *p, const cart_event *events,
		      size_t *pending, size_t *n, size_t *still,
		      cart_publish_result *res)
{
	size_t n_still = 0, at = 0;

	while (at < *n) {
		size_t batch = 0, bytes = 0, n_failed;
		int rc;

		while (at + batch < *n && batch < MAX_ENTRIES) {
			size_t sz = entry_size(p, &events[pending[at + batch]]);
			if (batch && bytes + sz > MAX_CALL_BYTES)
				break;
			bytes += sz;
			batch++;
		}
		rc = put_events(p, events, pending + at, batch, res, still + n_still,
				&n_failed);
		if (rc)
			return rc;
		n_still += n_failed;
		at += batch;
	}
	memcpy(pending, still, n_still * sizeof(*still));
	*n = n_still;
	return CART_OK;
}

/*
 * res[i]: what became of events[i], in whichever round.  Entries failed
 * for now are resent alone, up to max_attempts rounds; entries refused
 * for good are not (the same answer would come back).  A whole-call
 * failure ends the publish; entries of earlier calls keep their result.
 */
static int eb_publish_results(void *self, const cart_event *events, size_t n,
			      cart_publish_result *res)
{
	eb_publisher *p = self;
	size_t *pending = malloc(2 * (n ? n : 1) * sizeof(*pending));
	size_t left = n;
	int rc = CART_OK;

	for (size_t i = 0; i < n; i++)
		set_result(&res[i], CART_PUBLISH_RETRY, "");
	if (!pending)
		return CART_ENOMEM;
	for (size_t i = 0; i < n; i++)
		pending[i] = i;
	refuse_unbuildable(events, pending, &left, res);
	for (int round = 0; left && round < p->max_attempts && !rc; round++) {
		rc = send_round(p, events, pending, &left, pending + n, res);
		if (!rc && left) {
			cart_aws_fields f;

			cart_aws_fields_init(&f);
			cart_aws_fields_int(&f, "failed", (long long)left);
			cart_aws_fields_int(&f, "round", round + 1);
			cart_aws_log_write(p->log, CART_AWS_LOG_WARN,
					   "eventbridge entries failed, resending them", &f);
		}
	}
	free(pending);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (res[i].status != CART_PUBLISH_ACCEPTED)
			return CART_EBACKEND;
	return CART_OK;
}

static int eb_publish_each(void *self, const cart_event *events, size_t n,
			   bool *ok)
{
	cart_publish_result *res = malloc((n ? n : 1) * sizeof(*res));
	int rc;

	for (size_t i = 0; i < n; i++)
		ok[i] = false;
	if (!res)
		return CART_ENOMEM;
	rc = eb_publish_results(self, events, n, res);
	for (size_t i = 0; i < n; i++)
		ok[i] = res[i].status == CART_PUBLISH_ACCEPTED;
	free(res);
	return rc;
}

static int eb_publish(void *self, const cart_event *events, size_t n)
{
	bool *ok = malloc((n ? n : 1) * sizeof(*ok));
	int rc;

	if (!ok)
		return CART_ENOMEM;
	rc = eb_publish_each(self, events, n, ok);
	free(ok);
	return rc;
}

static void eb_destroy(void *self)
{
	eb_publisher *p = self;

	if (p)
		pthread_mutex_destroy(&p->bus_lock);
	free(self);
}

static const cart_publisher_ops eb_publisher_ops = {
	.version = CART_PUBLISHER_OPS_VERSION,
	.publish = eb_publish,
	.destroy = eb_destroy,
	.publish_each = eb_publish_each,
	.publish_results = eb_publish_results,
};

int cart_eventbridge_publisher_new(cart_publisher *out,
				   const cart_eventbridge_config *cfg,
				   cart_aws_client *client,
				   const cart_aws_log *log)
{
	eb_publisher *p;

	out->ops = NULL;
	out->self = NULL;
	if (!client || !cfg->bus || !*cfg->bus || strlen(cfg->bus) >= 256 ||
	    !cfg->source || !*cfg->source || strlen(cfg->source) >= 128)
		return CART_EINVALID;
	p = calloc(1, sizeof(*p));
	if (!p)
		return CART_ENOMEM;
	pthread_mutex_init(&p->bus_lock, NULL);
	strcpy(p->bus, cfg->bus);
	strcpy(p->source, cfg->source);
	p->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 3;
	p->client = client;
	p->log = log;
	out->ops = &eb_publisher_ops;
	out->self = p;
	return CART_OK;
}

int cart_eventbridge_publisher_set_bus(cart_publisher *pub, const char *bus)
{
	eb_publisher *p = pub->self;

	if (pub->ops != &eb_publisher_ops || !bus || !*bus || strlen(bus) >= sizeof(p->bus))
		return CART_EINVALID;
	pthread_mutex_lock(&p->bus_lock);
	strcpy(p->bus, bus);
	pthread_mutex_unlock(&p->bus_lock);
	return CART_OK;
}
