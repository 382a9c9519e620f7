#ifndef CART_SYSTEM_H
#define CART_SYSTEM_H

/*
 * The real clock (CLOCK_REALTIME, nanosleep) and a random source backed by
 * getrandom(2).  Both are stateless (self is NULL) and thread-safe.
 */

#include "cart/ports.h"

void cart_system_clock_init(cart_clock *out);
void cart_system_ids_init(cart_ids *out);

#endif
