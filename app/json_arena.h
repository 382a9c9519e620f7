#ifndef APP_JSON_ARENA_H
#define APP_JSON_ARENA_H

/*
 * A request body's cJSON tree from caller-owned memory.
 *
 * cJSON allocates every node and every string separately: an add body
 * costs ~15 mallocs and frees, and with 64 workers sharing glibc's 16
 * arenas those were the commonest lock waits of the write path (issue 10:
 * 213 arena-lock sleeps in 3 s of adds, each a stall of up to a time
 * slice when the holder was preempted).  json_arena_parse builds the tree
 * in the arena instead (a bump allocator; the heap when it is full), and
 * freeing arena memory costs nothing.
 *
 * The arena is this thread's from json_arena_parse until
 * json_arena_release: delete the tree (cJSON_Delete) on this thread
 * before releasing the arena, and release it before its memory goes
 * away.  One arena per thread at a time; a second parse meanwhile uses
 * the heap.  Other cJSON users (adapters, other threads) are unaffected:
 * their memory is the heap's as before.
 */

#include <stdalign.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* Fits the tree of a typical add body (~1 KiB) with room to spare. */
#define JSON_ARENA_BYTES 2048

typedef struct json_arena {
	size_t used;
	alignas(16) unsigned char mem[JSON_ARENA_BYTES];
} json_arena;

/*
 * Routes cJSON's allocations through the arena hooks.  Call once, before
 * any other thread uses cJSON (main does; tests may).  Without it,
 * json_arena_parse is plain cJSON_ParseWithLength.
 */
void json_arena_install(void);

/* cJSON_ParseWithLength with a's memory (a->used is reset). */
cJSON *json_arena_parse(json_arena *a, const char *text, size_t len);

/* Ends a's use by this thread.  Accepts NULL and a never parsed with. */
void json_arena_release(json_arena *a);

/* Bytes of a in use (tests). */
size_t json_arena_used(const json_arena *a);

#endif
