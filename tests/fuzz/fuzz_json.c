/*
 * libFuzzer target for the request-body parsers: the validating scan and
 * both schema walks must never crash, leak or read out of bounds, and
 * whatever they accept must be valid input for the core.  The trees are
 * built in the arena, as in the server, and overflow it to the heap.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_in.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* As the server does: trees in the request's arena (json_arena.h). */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	json_arena_install();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exact-size copy, so ASan sees any read past the end. */
	char *body = malloc(size ? size : 1);
	add_item_req req;
	input_error err;
	int32_t q;

	if (!body)
		return 0;
	memcpy(body, data, size);
	if (json_parse_add_item(&req, body, size, &err) == 0) {
		assert(cart_id_valid(req.spec.item_id));
		assert(req.spec.attr_count <= CART_ATTRS_MAX || !req.spec.attrs);
		add_item_req_release(&req);
	} else {
		assert(err.code && err.detail[0]);
	}
	if (json_parse_set_quantity(&q, body, size, &err) != 0)
		assert(err.code);
	free(body);
	return 0;
}
