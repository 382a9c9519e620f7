/*
 * Using libcart from another C program: the in-memory repository, the
 * system clock and id source wired into a cart_service, and a relay that
 * publishes the events the commits left in the outbox (here to stdout
 * with the log publisher).  Adds two items, prints the cart and the events.
 *
 * Build and run:   make example        (or: make build/example && ./build/example)
 * By hand:         cc -std=c11 -Iinclude -Iadapters docs/example/example.c \
 *                     build/libcart-adapters.a build/libcart.a -lpthread
 *
 * Everything allocated here is freed again; the program is valgrind-clean.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cart/cart.h"
#include "cart/relay.h"
#include "cart/service.h"
#include "log/log_publisher.h"
#include "memory/memory_repo.h"
#include "system/system.h"

static int add_item(cart_service *svc, const char *user, const char *item_id,
		    int32_t quantity, int64_t amount, const char *name)
{
	cart_item_spec spec = {
		.item_id = item_id,
		.quantity = quantity,
		.unit_price = { .amount = amount, .currency = "EUR" },
		.name = name,
	};
	cart_command cmd = {
		.kind = CART_CMD_ADD_ITEM,
		.user_id = user,
		.item = &spec,
		.if_match = -1,         /* no precondition: retried on lost races */
	};
	cart_result res;
	int err = cart_service_execute(svc, &cmd, &res);

	if (err == CART_OK)
		printf("added %s x%" PRId32 " (%s line), version %" PRId64 "\n",
		       item_id, quantity, res.created ? "new" : "merged",
		       cart_version(res.cart));
	else
		fprintf(stderr, "add %s: %s (rule %s)\n", item_id,
			cart_strerror(err), cart_rule_name(res.rule));
	cart_result_release(&res);
	return err;
}

static void print_cart(const cart *c)
{
	cart_money sub = cart_subtotal(c);

	printf("cart %s of %s, version %" PRId64 "\n",
	       cart_id(c) ? cart_id(c) : "(none)", cart_user_id(c),
	       cart_version(c));
	for (size_t i = 0; i < cart_line_count(c); i++) {
		const cart_item *it = cart_item_at(c, i);
		cart_money total = cart_item_line_total(it);

		printf("  %-8s x%-3" PRId32 " %" PRId64 " %s\n", cart_item_id(it),
		       cart_item_quantity(it), total.amount, total.currency);
	}
	/* Minor units: 1999 EUR cents print as 19.99 EUR. */
	printf("itemCount %" PRId64 "\n", cart_quantity_total(c));
	printf("subtotal %" PRId64 " %s (%" PRId64 ".%02" PRId64 ")\n", sub.amount,
	       sub.currency[0] ? sub.currency : "-", sub.amount / 100,
	       sub.amount % 100);
}

int main(void)
{
	cart_repo repo = { 0 };
	cart_publisher pub = { 0 };
	cart_clock clock;
	cart_ids ids;
	cart_service_config cfg;
	cart_service *svc = NULL;
	cart_relay *relay = NULL;
	cart *c = NULL;
	int status = EXIT_FAILURE;
	int err;

	/* Stateless and infallible; set up first so cleanup is always valid. */
	cart_system_clock_init(&clock);
	cart_system_ids_init(&ids);
	cart_service_config_init(&cfg);

	if (cart_memory_repo_new(&repo) != CART_OK) {
		fprintf(stderr, "memory repo: out of memory\n");
		goto out;
	}
	if (cart_log_publisher_new(&pub, 1, true) != CART_OK) {
		fprintf(stderr, "log publisher failed\n");
		goto out;
	}
	/* The service borrows the ports: they outlive it (freed below). */
	if (cart_service_new(&svc, &cfg, &repo, &clock, &ids) != CART_OK) {
		fprintf(stderr, "cart_service_new failed\n");
		goto out;
	}

	if (add_item(svc, "alice", "sku-1", 2, 1999, "Coffee beans") != CART_OK ||
	    add_item(svc, "alice", "sku-2", 1, 450, NULL) != CART_OK)
		goto out;

	err = cart_service_get(svc, NULL, "alice", &c);
	if (err != CART_OK) {
		fprintf(stderr, "get: %s\n", cart_strerror(err));
		goto out;
	}
	print_cart(c);
	fflush(stdout);   /* the log publisher writes to fd 1 directly */
	/* A service runs this in a background thread; once is enough here. */
	if (cart_relay_new(&relay, &repo, &pub, &clock, 100) != CART_OK ||
	    cart_relay_run_once(relay) != 2) {
		fprintf(stderr, "relay: expected two events\n");
		goto out;
	}
	status = EXIT_SUCCESS;

out:
	cart_free(c);
	cart_relay_free(relay);
	cart_service_free(svc);
	cart_publisher_destroy(&pub);
	cart_ids_destroy(&ids);
	cart_clock_destroy(&clock);
	cart_repo_destroy(&repo);
	return status;
}
