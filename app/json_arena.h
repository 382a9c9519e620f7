#ifndef APP_JSON_ARENA_H
#define APP_JSON_ARENA_H

/*
 * A request body's decoded strings in caller-owned memory: a bump
 * allocator over an inline block, spilling to the heap when it is full.
 *
 * With cJSON an add body cost ~15 mallocs and frees (27 for an add and a
 * PATCH), and with 64 workers sharing the allocator's arenas those were
 * the commonest lock waits of the write path (issue 10).  The typed
 * parser (json_in.c) decodes only the strings it keeps, here; a typical
 * add body fits in the inline block, so it allocates nothing.
 */

#include <stdalign.h>
#include <stddef.h>

/* Fits a typical add body's strings (~100 bytes) many times over. */
#define JSON_ARENA_BYTES 1024

typedef struct json_arena_spill json_arena_spill;

typedef struct json_arena {
	size_t used;
	json_arena_spill *spill;         /* heap blocks, owned */
	alignas(16) unsigned char mem[JSON_ARENA_BYTES];
} json_arena;

/* Makes a empty (mem is not touched). */
void json_arena_init(json_arena *a);

/* n bytes, 8-aligned, valid until json_arena_release; NULL if out of memory. */
void *json_arena_alloc(json_arena *a, size_t n);

/* Frees what spilled and empties a.  Accepts NULL. */
void json_arena_release(json_arena *a);

/* Bytes of the inline block in use (tests). */
size_t json_arena_used(const json_arena *a);

#endif
