/*
 * libFuzzer target for the trace headers: any bytes as X-Amzn-Trace-Id
 * and as traceparent.  Invariants: a parse that succeeds yields a valid
 * X-Ray root (lowercase), a parent that is "" or 16 hex, a known
 * decision, and a header we format from it that parses back the same; a
 * parse that fails leaves nothing behind.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int rc, const app_trace_ctx *t)
{
	char h[128];
	app_trace_ctx back;

	if (rc) {
		assert(!t->root[0] && !t->parent[0] && t->decision == APP_TRACE_UNDECIDED);
		return;
	}
	assert(app_trace_root_valid(t->root));
	for (const char *p = t->root; *p; p++)
		assert(!(*p >= 'A' && *p <= 'F'));
	assert(!t->parent[0] || app_trace_id_valid(t->parent));
	assert(t->decision >= APP_TRACE_UNDECIDED && t->decision <= APP_TRACE_SAMPLED);
	assert(app_trace_format(h, sizeof(h), t->root, t->parent,
				t->decision == APP_TRACE_SAMPLED) < sizeof(h));
	assert(app_trace_parse_amzn(&back, h) == 0);
	assert(!strcmp(back.root, t->root) && !strcmp(back.parent, t->parent));
	assert(back.decision == (t->decision == APP_TRACE_SAMPLED ? APP_TRACE_SAMPLED
								  : APP_TRACE_NOT_SAMPLED));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	app_trace_ctx t;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check(app_trace_parse_amzn(&t, s), &t);
	check(app_trace_parse_traceparent(&t, s), &t);
	free(s);
	return 0;
}
