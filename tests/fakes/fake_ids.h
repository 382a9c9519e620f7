#ifndef CART_TEST_FAKE_IDS_H
#define CART_TEST_FAKE_IDS_H

/*
 * A deterministic cart_ids: UUIDs count up from
 * "00000000-0000-4000-8000-000000000001" (the last 12 hex digits hold the
 * counter), and random() walks a fixed xorshift sequence from a seed.
 * Safe from many threads (atomics).
 */

#include <stdbool.h>
#include <stdint.h>

#include "cart/ports.h"

typedef struct fake_ids fake_ids;

/* *ctl (may be NULL) is owned by the port; cart_ids_destroy frees it. */
int fake_ids_new(cart_ids *out, fake_ids **ctl);

/* How many UUIDs were handed out so far. */
uint64_t fake_ids_issued(const fake_ids *fi);
/* Next uuid() call fails with this error once (0: never). */
void fake_ids_fail_next(fake_ids *fi, int err);
/* Writes the n-th UUID this fake hands out (n >= 1). */
void fake_ids_format(char out[CART_UUID_LEN + 1], uint64_t n);
/* true if s looks like one of ours; *n (may be NULL) gets its number. */
bool fake_ids_parse(const char *s, uint64_t *n);

#endif
