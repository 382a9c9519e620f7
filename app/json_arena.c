/* The request body's bump allocator (json_arena.h). */
#include <stdlib.h>

#include "json_arena.h"

struct json_arena_spill {
	json_arena_spill *next;
	alignas(16) unsigned char data[];
};

void json_arena_init(json_arena *a)
{
	a->used = 0;
	a->spill = NULL;
}

void *json_arena_alloc(json_arena *a, size_t n)
{
	size_t at = (a->used + 7) & ~(size_t)7;
	json_arena_spill *s;

	if (n <= sizeof(a->mem) && at <= sizeof(a->mem) - n) {
		a->used = at + n;
		return a->mem + at;
	}
	if (!(s = malloc(sizeof(*s) + n)))
		return NULL;
	s->next = a->spill;
	a->spill = s;
	return s->data;
}

void json_arena_release(json_arena *a)
{
	if (!a)
		return;
	while (a->spill) {
		json_arena_spill *s = a->spill;

		a->spill = s->next;
		free(s);
	}
	a->used = 0;
}

size_t json_arena_used(const json_arena *a)
{
	return a->used;
}
