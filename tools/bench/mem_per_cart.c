/*
 * Bytes per stored cart in the memory repository: stores N carts of three
 * lines each through the service and divides by N the growth of the heap
 * in use (mallinfo2) and of the resident set (/proc/self/statm, what
 * Fargate bills and the OOM killer counts: malloc headers, fragmentation
 * and arenas included).  Counts everything the store keeps per cart: the
 * record, the cart, its lines and their strings, the hash table.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cart/relay.h"
#include "cart/service.h"
#include "log/log_publisher.h"
#include "memory/memory_repo.h"
#include "system/system.h"

static size_t rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100000;
	static const char *const skus[] = { "sku-10001", "sku-20002", "sku-30003" };
	cart_repo repo;
	cart_publisher pub;
	cart_clock clock;
	cart_ids ids;
	cart_service_config cfg;
	cart_service *svc;
	cart_relay *relay;
	size_t before, after, rss_before, rss_after;

	cart_memory_repo_new(&repo);
	cart_noop_publisher_new(&pub);
	cart_system_clock_init(&clock);
	cart_system_ids_init(&ids);
	cart_service_config_init(&cfg);
	cart_service_new(&svc, &cfg, &repo, &clock, &ids);
	cart_relay_new(&relay, &repo, &pub, &clock, 1000);
	malloc_trim(0);
	before = mallinfo2().uordblks;
	rss_before = rss_bytes();
	for (int u = 0; u < n; u++) {
		char user[32];
		snprintf(user, sizeof(user), "user-%08d", u);
		for (int i = 0; i < 3; i++) {
			cart_item_spec spec = { .item_id = skus[i], .quantity = 2,
						.unit_price = { 1999, "EUR" }, .name = "Mug" };
			cart_command cmd = { .kind = CART_CMD_ADD_ITEM, .user_id = user,
					     .item = &spec, .if_match = -1 };
			cart_result r;
			if (cart_service_execute(svc, &cmd, &r)) {
				fprintf(stderr, "add failed: %s\n", cart_strerror(r.err));
				return 1;
			}
			cart_result_release(&r);
		}
		/* The relay drains as a running service's does, so the events'
		 * memory is reused rather than counted as the carts'. */
		if (u % 1000 == 999)
			while (cart_relay_run_once(relay) > 0)
				;
	}
	/* Delivered events leave the outbox: what stays is the carts. */
	while (cart_relay_run_once(relay) > 0)
		;
	malloc_trim(0);
	after = mallinfo2().uordblks;
	rss_after = rss_bytes();
	printf("carts=%d lines_per_cart=3 heap_bytes_per_cart=%.0f rss_bytes_per_cart=%.0f\n",
	       n, (double)(after - before) / n,
	       ((double)rss_after - (double)rss_before) / n);
	cart_relay_free(relay);
	cart_service_free(svc);
	cart_repo_destroy(&repo);
	cart_ids_destroy(&ids);
	return 0;
}
