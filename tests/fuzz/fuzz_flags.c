/*
 * libFuzzer target for the feature-flags document parser (the bytes of
 * FEATURE_FLAGS_FILE or of an AppConfig configuration).  Invariants: a
 * refusal says why and leaves the output alone; an acceptance names only
 * known flags, sets only what it names, and the document written back
 * from it parses to the same values.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "flags.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	app_flag_values v = { 0xdead, 0xbeef }, back;
	char why[256] = "", doc[512];
	size_t n = 0;

	if (app_flags_parse((const char *)data, size, &v, why, sizeof(why))) {
		assert(why[0]);
		assert(v.set == 0xdead && v.on == 0xbeef);
		return 0;
	}
	assert(!(v.set >> APP_FLAG_COUNT));
	assert(!(v.on & ~v.set));
	n += (size_t)snprintf(doc + n, sizeof(doc) - n, "{");
	for (int f = 0; f < APP_FLAG_COUNT; f++)
		if (v.set >> f & 1)
			n += (size_t)snprintf(doc + n, sizeof(doc) - n, "%s\"%s\":%s",
					      n > 1 ? "," : "", app_flag_name(f),
					      v.on >> f & 1 ? "true" : "false");
	n += (size_t)snprintf(doc + n, sizeof(doc) - n, "}");
	assert(n < sizeof(doc));
	assert(app_flags_parse(doc, n, &back, why, sizeof(why)) == 0);
	assert(back.set == v.set && back.on == v.on);
	return 0;
}
