/*
 * PutEvents.  The size of an entry is counted as EventBridge counts it:
 * the UTF-8 bytes of Source, DetailType and Detail (no Time, no
 * Resources); a call carries at most 10 entries and 256 KB.
 */
#include <cjson/cJSON.h>
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
static bool add_entry(const eb_publisher *p, cJSON *entries, const cart_event *ev)
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
	cJSON_AddStringToObject(e, "EventBusName", p->bus);
	cJSON_AddItemToArray(entries, e);
	return true;
}

/*
 * Sends events[idx[0..n)] in one call; indexes of entries that failed are
 * written back into failed (count in *n_failed).  CART_OK when the call
 * got an answer, else the error that ended it.
 */
static int put_events(eb_publisher *p, const cart_event *events,
		      const size_t *idx, size_t n, size_t *failed, size_t *n_failed)
{
	cJSON *req = cJSON_CreateObject(), *entries = cJSON_AddArrayToObject(req, "Entries");
	cJSON *resp = NULL;
	const cJSON *list, *e;
	cart_aws_response r;
	char *body;
	size_t i = 0;
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
	if (rc == CART_OK && r.status != 200) {
		cart_aws_logf(p->log, 3, "eventbridge PutEvents failed",
			      ",\"status\":%ld,\"error\":\"%s\"", r.status, r.error_type);
		rc = r.status >= 500 || strstr(r.error_type, "Throttl")
			     ? CART_EUNAVAILABLE : CART_EBACKEND;
	}
	if (rc == CART_OK && !(resp = cJSON_ParseWithLength(r.body, r.body_len)))
		rc = CART_EBACKEND;
	cart_aws_response_release(&r);
	if (rc)
		return rc;
	list = cJSON_GetObjectItemCaseSensitive(resp, "Entries");
	cJSON_ArrayForEach(e, list) {
		if (i < n && cJSON_GetObjectItemCaseSensitive(e, "ErrorCode"))
			failed[(*n_failed)++] = idx[i];
		i++;
	}
	if (i != n) {   /* the answer must match the request entry for entry */
		for (*n_failed = 0; *n_failed < n; (*n_failed)++)
			failed[*n_failed] = idx[*n_failed];
	}
	cJSON_Delete(resp);
	return CART_OK;
}

/* Marks the entries of a answered call: accepted unless listed failed. */
static void mark_ok(bool *ok, const size_t *idx, size_t n,
		    const size_t *failed, size_t n_failed)
{
	for (size_t k = 0; k < n; k++)
		ok[idx[k]] = true;
	for (size_t k = 0; k < n_failed; k++)
		ok[failed[k]] = false;
}

/*
 * One round over pending[0..*n): what fails stays in pending, what is
 * accepted is marked in ok.  still has room for *n indexes.
 */
static int send_round(eb_publisher *p, const cart_event *events,
		      size_t *pending, size_t *n, size_t *still, bool *ok)
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
		rc = put_events(p, events, pending + at, batch, still + n_still,
				&n_failed);
		if (rc)
			return rc;
		mark_ok(ok, pending + at, batch, still + n_still, n_failed);
		n_still += n_failed;
		at += batch;
	}
	memcpy(pending, still, n_still * sizeof(*still));
	*n = n_still;
	return CART_OK;
}

/*
 * ok[i]: events[i] was accepted, in whichever round.  A whole-call failure
 * ends the publish; entries of earlier calls keep their ok.
 */
static int eb_publish_each(void *self, const cart_event *events, size_t n,
			   bool *ok)
{
	eb_publisher *p = self;
	size_t *pending = malloc(2 * (n ? n : 1) * sizeof(*pending));
	int rc = CART_OK;

	for (size_t i = 0; i < n; i++)
		ok[i] = false;
	if (!pending)
		return CART_ENOMEM;
	for (size_t i = 0; i < n; i++)
		pending[i] = i;
	for (int round = 0; n && round < p->max_attempts && !rc; round++) {
		rc = send_round(p, events, pending, &n, pending + n, ok);
		if (!rc && n)
			cart_aws_logf(p->log, 2, "eventbridge entries failed, resending them",
				      ",\"failed\":%zu,\"round\":%d", n, round + 1);
	}
	free(pending);
	return rc ? rc : n ? CART_EBACKEND : CART_OK;
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
	free(self);
}

static const cart_publisher_ops eb_publisher_ops = {
	.version = CART_PUBLISHER_OPS_VERSION,
	.publish = eb_publish,
	.destroy = eb_destroy,
	.publish_each = eb_publish_each,
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
	strcpy(p->bus, cfg->bus);
	strcpy(p->source, cfg->source);
	p->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 3;
	p->client = client;
	p->log = log;
	out->ops = &eb_publisher_ops;
	out->self = p;
	return CART_OK;
}
