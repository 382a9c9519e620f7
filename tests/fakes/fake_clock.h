#ifndef CART_TEST_FAKE_CLOCK_H
#define CART_TEST_FAKE_CLOCK_H

/*
 * A cart_clock for tests: time stands still until the test moves it, and
 * sleep_ms advances time instead of blocking (and adds to total_slept), so
 * backoff never slows a test down.  Safe from many threads (atomics).
 */

#include <stdint.h>

#include "cart/ports.h"

typedef struct fake_clock fake_clock;

/*
 * Fills *out with a clock reading start_ms.  *ctl (may be NULL) is the
 * handle to steer it; it is owned by the clock and freed by
 * cart_clock_destroy(out).  Returns 0, or -1 on allocation failure.
 */
int fake_clock_new(cart_clock *out, fake_clock **ctl, int64_t start_ms);

int64_t fake_clock_now(const fake_clock *fc);
void fake_clock_set(fake_clock *fc, int64_t now_ms);
void fake_clock_advance(fake_clock *fc, int64_t ms);
/* Sum of every sleep_ms request, and how many there were. */
int64_t fake_clock_total_slept(const fake_clock *fc);
int64_t fake_clock_sleep_count(const fake_clock *fc);

#endif
