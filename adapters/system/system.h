#ifndef CART_SYSTEM_H
#define CART_SYSTEM_H

/*
 * The real clock (CLOCK_REALTIME, nanosleep; stateless) and a random
 * source backed by getrandom(2), read 1 KiB at a time into 16 striped
 * pools.  Both thread-safe.
 * The ids own a small pool: release them with cart_ids_destroy.
 */

#include "cart/ports.h"

void cart_system_clock_init(cart_clock *out);
void cart_system_ids_init(cart_ids *out);

#endif
