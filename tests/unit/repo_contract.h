#ifndef CART_TEST_REPO_CONTRACT_H
#define CART_TEST_REPO_CONTRACT_H

/*
 * The repository contract: the same cases for every cart_repo adapter.
 * The factory fills *out with a fresh, empty repository (the suite
 * destroys it with cart_repo_destroy) and returns CART_OK.  arg is passed
 * through unchanged and must outlive the suite run.
 */

#include <check.h>

#include "cart/repo.h"

typedef int (*repo_factory)(cart_repo *out, void *arg);

/* Up to REPO_CONTRACT_MAX suites per process. */
#define REPO_CONTRACT_MAX 8

Suite *repo_contract_suite(const char *name, repo_factory f, void *arg);

#endif
