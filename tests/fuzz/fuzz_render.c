/*
 * libFuzzer target for the cart document (app/render.c): a cart built from
 * the input (any bytes in names and attributes, any times, amounts and
 * quantities the core stores) is rendered from small caller storage, must
 * be JSON, and must read back to the cart's every field
 * (tests/fakes/render_check.h).  A buffer maximum of the document's size
 * must hold it; one below must fail the buffer, never cut it or write past
 * it.
 *
 * Input: per line, 1 control byte (bit 0: a name, bits 1-3: attributes),
 * 8 bytes amount, 2 quantity, 8 + 8 times, then NUL-terminated strings:
 * the name and each attribute's key and value.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../fakes/render_check.h"
#include "buf.h"
#include "render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct in {
	const uint8_t *p, *end;
} in;

static uint64_t take(in *s, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n && s->p < s->end; i++)
		v = v << 8 | *s->p++;
	return v;
}

/* The next string: up to a NUL or the end, cut at max bytes. */
static const char *text(in *s, char *out, size_t max)
{
	size_t n = 0;

	while (s->p < s->end && *s->p && n < max)
		out[n++] = (char)*s->p++;
	if (s->p < s->end)
		s->p++;
	out[n] = '\0';
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char names[8][CART_NAME_MAX + 1], kv[8][8][2][CART_ATTR_VALUE_MAX + 1];
	in s = { data, data + size };
	cart *c = NULL;
	char small[32];
	buf b;

	if (cart_new(&c, "u-fuzz") != CART_OK)
		return 0;
	cart_restore_meta(c, "0b5cf45c-b68f-4374-89ed-f0e4dbd060c9", (int64_t)take(&s, 2),
			  (int64_t)take(&s, 8), (int64_t)take(&s, 8), (int64_t)take(&s, 8));
	for (int i = 0; i < 8 && s.p < s.end; i++) {
		unsigned ctl = (unsigned)take(&s, 1);
		char id[8] = { 's', '-', (char)('0' + i), 0 };
		cart_attr a[8];
		cart_item_spec spec = { id, 0, { 0, "EUR" }, NULL, a, (ctl >> 1) & 7 };
		int64_t added, updated;

		spec.unit_price.amount = (int64_t)(take(&s, 8) % 1000000000001ULL);
		spec.quantity = 1 + (int32_t)(take(&s, 2) % 999);
		added = (int64_t)take(&s, 8);
		updated = (int64_t)take(&s, 8);
		if (ctl & 1)
			spec.name = text(&s, names[i], CART_NAME_MAX);
		for (size_t k = 0; k < spec.attr_count; k++)
			a[k] = (cart_attr){ text(&s, kv[i][k][0], CART_ATTR_KEY_MAX),
					    text(&s, kv[i][k][1], CART_ATTR_VALUE_MAX) };
		cart_restore_item(c, &spec, added, updated);   /* refused lines: not in the cart */
	}

	buf_init_on(&b, small, sizeof(small), 1 << 20);
	render_cart(&b, c);
	assert(!b.failed);
	assert(strlen(b.data) == b.len);
	assert(render_check(b.data, b.len, c) == NULL);
	if (b.len > 1) {
		size_t full = b.len;
		char *want = strdup(b.data);

		buf_release(&b);
		buf_init(&b, full);   /* exactly enough */
		render_cart(&b, c);
		assert(!b.failed && want && !strcmp(b.data, want));
		free(want);
		buf_release(&b);
		buf_init(&b, full - 1 - (size % (full - 1)));
		render_cart(&b, c);
		assert(b.failed);
	}
	buf_release(&b);
	cart_free(c);
	return 0;
}
