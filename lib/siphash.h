/*
 * SipHash-2-4 with a 128-bit output, for keyed hashing inside libcart (the
 * memory limiter holds a key as its hash).  Not part of the public API.
 */
#ifndef CART_LIB_SIPHASH_H
#define CART_LIB_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* lo: the reference's output bytes 0..7 read little-endian; hi: 8..15. */
typedef struct cart_siphash128 {
	uint64_t lo, hi;
} cart_siphash128;

/* The hash of len bytes at data under the key k[0] (key bytes 0..7,
 * little-endian) and k[1] (8..15).  data may be NULL when len is 0. */
cart_siphash128 cart_siphash128_of(const uint64_t k[2], const char *data, size_t len);

#endif
