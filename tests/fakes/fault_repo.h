#ifndef CART_TEST_FAULT_REPO_H
#define CART_TEST_FAULT_REPO_H

/*
 * A cart_repo that wraps another one and injects faults:
 *  - CART_ECONFLICT on the next N saves, optionally after performing a
 *    real competing write through the inner repo (a rival request that won
 *    the race: it adds one unit of FAULT_RIVAL_ITEM to the user's cart and
 *    bumps the version), so the core must reload to succeed;
 *  - any error (CART_EBACKEND, CART_EUNAVAILABLE...) on chosen operations.
 * Everything not injected goes to the inner repo unchanged, loads and
 * saves with the request's call (port version 3), and the wrapper
 * remembers the last call each received.  Safe from many threads.
 */

#include <stdbool.h>
#include <stddef.h>

#include "cart/repo.h"

#define FAULT_RIVAL_ITEM "rival-item"
#define FAULT_RIVAL_AMOUNT 100

typedef enum fault_op {
	FAULT_LOAD = 0,
	FAULT_SAVE,
	FAULT_IDEM_GET,
	FAULT_IDEM_CLAIM,
	FAULT_IDEM_COMPLETE,
	FAULT_IDEM_RELEASE,
	FAULT_PING,
	FAULT_OP_COUNT
} fault_op;

typedef struct fault_repo fault_repo;

/*
 * Fills *out with a wrapper around *inner (copied by value and borrowed:
 * destroying the wrapper does not destroy inner).  *ctl (may be NULL) is
 * owned by the wrapper.  Returns 0 or -1.
 */
int fault_repo_new(cart_repo *out, fault_repo **ctl, const cart_repo *inner);

/* The next n calls of op fail with err (n < 0: every call; 0: stop). */
void fault_repo_fail(fault_repo *fr, fault_op op, int n, int err);
/*
 * The next n saves return CART_ECONFLICT without writing w; with compete,
 * each first performs the rival write described above.
 */
void fault_repo_conflict(fault_repo *fr, int n, bool compete);

/* What the last load or save got as its request (cart/call.h). */
typedef struct fault_repo_call {
	bool had_call;            /* false: NULL, or no load/save yet */
	char request_id[64];      /* a copy; "" if none */
	int64_t deadline_ms;
} fault_repo_call;

/* op: FAULT_LOAD or FAULT_SAVE. */
fault_repo_call fault_repo_last_call(const fault_repo *fr, fault_op op);

/* Calls of op that reached the wrapper (injected or not). */
size_t fault_repo_calls(const fault_repo *fr, fault_op op);
/* Conflicts injected so far, and rival writes that committed. */
size_t fault_repo_conflicts(const fault_repo *fr);
size_t fault_repo_rival_writes(const fault_repo *fr);

#endif
