/*
 * The arena hooks: cJSON's allocations come from this thread's arena
 * while json_arena_parse runs, from the heap otherwise; a free of arena
 * memory is a no-op, anything else goes to free(3).  Which arena is this
 * thread's is a thread-local pointer (app/ may keep such state).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "json_arena.h"

static bool installed;                         /* set once, before threads */
static _Thread_local json_arena *t_arena;      /* registered by parse */
static _Thread_local bool t_parsing;           /* allocate from t_arena */

static bool in_arena(const json_arena *a, const void *p)
{
	uintptr_t x = (uintptr_t)p, lo = (uintptr_t)a->mem;

	return x >= lo && x < lo + sizeof(a->mem);
}

static void *arena_malloc(size_t n)
{
	json_arena *a = t_arena;

	if (a && t_parsing) {
		size_t at = (a->used + 15) & ~(size_t)15;

		if (n <= sizeof(a->mem) && at <= sizeof(a->mem) - n) {
			a->used = at + n;
			return a->mem + at;
		}
	}
	return malloc(n);
}

static void arena_free(void *p)
{
	json_arena *a = t_arena;

	if (a && in_arena(a, p))
		return;              /* the arena's memory goes with the arena */
	free(p);
}

void json_arena_install(void)
{
	cJSON_Hooks hooks = { .malloc_fn = arena_malloc, .free_fn = arena_free };

	cJSON_InitHooks(&hooks);
	installed = true;
}

cJSON *json_arena_parse(json_arena *a, const char *text, size_t len)
{
	cJSON *root;

	if (!installed || t_arena)
		return cJSON_ParseWithLength(text, len);
	a->used = 0;
	t_arena = a;
	t_parsing = true;
	root = cJSON_ParseWithLength(text, len);
	t_parsing = false;
	return root;
}

void json_arena_release(json_arena *a)
{
	if (a && t_arena == a)
		t_arena = NULL;
}

size_t json_arena_used(const json_arena *a)
{
	return a->used;
}
