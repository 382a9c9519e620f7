#ifndef CART_MEMORY_REPO_H
#define CART_MEMORY_REPO_H

/*
 * In-memory cart repository: the embedded default for development and for
 * programs that link libcart.  Thread-safe; records are spread over
 * lock-striped shards so requests for different users rarely contend.
 * Nothing survives the process.
 */

#include <stddef.h>

#include "cart/repo.h"

/*
 * Fills *out with a new, empty repository.  Release it with
 * cart_repo_destroy(out).  CART_ENOMEM.
 */
int cart_memory_repo_new(cart_repo *out);

/*
 * For tests: the shard (0..63) that holds user_id's records.  Pure, so
 * safe from any thread.
 */
size_t cart_memory_repo_shard_of(const char *user_id);

#endif
