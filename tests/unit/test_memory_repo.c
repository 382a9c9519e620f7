/* The repository contract, run against the in-memory adapter. */
#include <check.h>
#include <stdio.h>

#include "memory/memory_repo.h"
#include "unit/repo_contract.h"
#include "unit/suites.h"

static int memory_factory(cart_repo *out, void *arg)
{
	(void)arg;
	return cart_memory_repo_new(out);
}

/* Sequential ids (user-1, user-2, ...) spread evenly over all 64 shards. */
START_TEST(test_memory_repo_shards_spread_sequential_ids)
{
	size_t count[64] = { 0 };
	char id[32];

	for (int i = 1; i <= 10000; i++) {
		snprintf(id, sizeof(id), "user-%d", i);
		size_t s = cart_memory_repo_shard_of(id);
		ck_assert_uint_lt(s, 64);
		count[s]++;
	}
	/* 10000/64 = 156 per shard; 100..220 is over 4 standard deviations. */
	for (size_t s = 0; s < 64; s++)
		ck_assert_msg(count[s] >= 100 && count[s] <= 220,
			      "shard %zu holds %zu of 10000 users", s, count[s]);
}
END_TEST

Suite *memory_repo_contract_suite(void)
{
	Suite *s = repo_contract_suite("repo_contract_memory", memory_factory,
				       NULL);
	TCase *tc = tcase_create("shards");

	tcase_add_test(tc, test_memory_repo_shards_spread_sequential_ids);
	suite_add_tcase(s, tc);
	return s;
}
