/* The repository contract, run against the in-memory adapter. */
#include <check.h>

#include "memory/memory_repo.h"
#include "unit/repo_contract.h"
#include "unit/suites.h"

static int memory_factory(cart_repo *out, void *arg)
{
	(void)arg;
	return cart_memory_repo_new(out);
}

Suite *memory_repo_contract_suite(void)
{
	return repo_contract_suite("repo_contract_memory", memory_factory, NULL);
}
