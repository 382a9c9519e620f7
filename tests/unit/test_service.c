/*
 * The use cases through the ports: the memory repository wrapped in the
 * fault-injecting repo, a fake clock, fake ids and a recording publisher.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart/service.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_ids.h"
#include "cart/relay.h"
#include "fakes/fake_publisher.h"
#include "fakes/fault_repo.h"
#include "memory/memory_repo.h"
#include "unit/suites.h"

#define T0 1767225600000LL
#define DAY (24LL * 3600 * 1000)
#define TTL (30 * DAY)

static cart_repo mem;          /* the real store */
static cart_repo repo;         /* what the service sees: faults over mem */
static fault_repo *faults;
static cart_publisher pub;
static fake_publisher *fpub;
static cart_clock clk;
static fake_clock *fclk;
static cart_ids ids;
static fake_ids *fids;
static cart_service_config cfg;
static cart_service *svc;
static cart_relay *relay;      /* publishes what commits left in the outbox */

struct render_ctx {
	int calls;
};
static struct render_ctx rctx;

static void start_service(void)
{
	cart_service_free(svc);
	svc = NULL;
	ck_assert_int_eq(cart_service_new(&svc, &cfg, &repo, &clk, &ids), CART_OK);
	ck_assert_ptr_nonnull(svc);
}

static void setup(void)
{
	ck_assert_int_eq(cart_memory_repo_new(&mem), CART_OK);
	ck_assert_int_eq(fault_repo_new(&repo, &faults, &mem), 0);
	ck_assert_int_eq(fake_publisher_new(&pub, &fpub), 0);
	ck_assert_int_eq(fake_clock_new(&clk, &fclk, T0), 0);
	ck_assert_int_eq(fake_ids_new(&ids, &fids), 0);
	cart_service_config_init(&cfg);
	memset(&rctx, 0, sizeof(rctx));
	svc = NULL;
	start_service();
	ck_assert_int_eq(cart_relay_new(&relay, &mem, &pub, &clk, 1000), CART_OK);
}

static void teardown(void)
{
	cart_relay_free(relay);
	relay = NULL;
	cart_service_free(svc);
	svc = NULL;
	cart_repo_destroy(&repo);
	cart_repo_destroy(&mem);
	cart_publisher_destroy(&pub);
	cart_clock_destroy(&clk);
	cart_ids_destroy(&ids);
}

/* --- commands ---------------------------------------------------------------- */

/* Renders outcomes like the HTTP app would, numbering each rendering. */
static int render(void *ctx, const cart_result *res, int *status, char **body,
		  size_t *body_len)
{
	struct render_ctx *rc = ctx;
	rc->calls++;
	switch (res->err) {
	case CART_OK:
		*status = res->cleared ? 204 : res->created ? 201 : 200;
		break;
	case CART_ENOTFOUND:
		*status = 404;
		break;
	case CART_EINVALID:
		*status = 422;
		break;
	default:
		*status = 599;
		break;
	}
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "err=%d rule=%d version=%lld render#%d",
			 res->err, (int)res->rule,
			 res->cart ? (long long)cart_version(res->cart) : -1LL,
			 rc->calls);
	*body = malloc((size_t)n + 1);
	if (!*body)
		return CART_ENOMEM;
	memcpy(*body, buf, (size_t)n + 1);
	*body_len = (size_t)n;
	return CART_OK;
}

typedef struct opts {
	int64_t if_match;       /* -1: none */
	const char *key;        /* NULL: none */
	const char *fp;
} opts;

static const opts NONE = { -1, NULL, NULL };

static int run(cart_command *cmd, const opts *o, cart_result *res)
{
	cmd->if_match = o->if_match;
	cmd->idem_key = o->key;
	cmd->fingerprint = o->fp;
	if (o->key) {
		cmd->render = render;
		cmd->render_ctx = &rctx;
	}
	memset(res, 0xa5, sizeof(*res));  /* execute must fill in everything */
	int rc = cart_service_execute(svc, cmd, res);
	ck_assert_int_eq(rc, res->err);
	return rc;
}

static int add_o(cart_result *res, const char *user, const char *item,
		 int32_t qty, int64_t amount, const char *cur, const opts *o)
{
	cart_item_spec spec;
	memset(&spec, 0, sizeof(spec));
	spec.item_id = item;
	spec.quantity = qty;
	spec.unit_price.amount = amount;
	snprintf(spec.unit_price.currency, sizeof(spec.unit_price.currency), "%s",
		 cur);
	cart_command cmd;
	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = CART_CMD_ADD_ITEM;
	cmd.user_id = user;
	cmd.item = &spec;
	return run(&cmd, o, res);
}

static int set_o(cart_result *res, const char *user, const char *item,
		 int32_t qty, const opts *o)
{
	cart_command cmd;
	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = CART_CMD_SET_QUANTITY;
	cmd.user_id = user;
	cmd.item_id = item;
	cmd.quantity = qty;
	return run(&cmd, o, res);
}

static int remove_o(cart_result *res, const char *user, const char *item,
		    const opts *o)
{
	cart_command cmd;
	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = CART_CMD_REMOVE_ITEM;
	cmd.user_id = user;
	cmd.item_id = item;
	return run(&cmd, o, res);
}

static int clear_o(cart_result *res, const char *user, const opts *o)
{
	cart_command cmd;
	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = CART_CMD_CLEAR;
	cmd.user_id = user;
	return run(&cmd, o, res);
}

/* Plain commands, result released; returns the outcome. */
static int add(const char *user, const char *item, int32_t qty, int64_t amount)
{
	cart_result res;
	int rc = add_o(&res, user, item, qty, amount, "EUR", &NONE);
	cart_result_release(&res);
	return rc;
}

static int set_qty(const char *user, const char *item, int32_t qty)
{
	cart_result res;
	int rc = set_o(&res, user, item, qty, &NONE);
	cart_result_release(&res);
	return rc;
}

static int remove_item(const char *user, const char *item)
{
	cart_result res;
	int rc = remove_o(&res, user, item, &NONE);
	cart_result_release(&res);
	return rc;
}

static int clear(const char *user)
{
	cart_result res;
	int rc = clear_o(&res, user, &NONE);
	cart_result_release(&res);
	return rc;
}

/* --- reading back ----------------------------------------------------------- */

static cart *get(const char *user)
{
	cart *c = NULL;
	ck_assert_int_eq(cart_service_get(svc, NULL, user, &c), CART_OK);
	ck_assert_ptr_nonnull(c);
	return c;
}

static int64_t version_of(const char *user)
{
	cart *c = get(user);
	int64_t v = cart_version(c);
	cart_free(c);
	return v;
}

/* The version in the store itself, or -1 if nothing is stored. */
static int64_t stored_version(const char *user)
{
	cart *c = NULL;
	int rc = cart_repo_load(&mem, NULL, user, &c);
	if (rc == CART_ENOTFOUND)
		return -1;
	ck_assert_int_eq(rc, CART_OK);
	int64_t v = cart_version(c);
	cart_free(c);
	return v;
}

static int32_t qty_of(const cart *c, const char *item)
{
	const cart_item *it = cart_find_item(c, item);
	return it ? cart_item_quantity(it) : 0;
}

/* Events published so far, after the relay has drained the outbox. */
static size_t events(void)
{
	while (cart_relay_run_once(relay) > 0)
		;
	return fake_publisher_count(fpub);
}

static cart_event last_event(void)
{
	size_t n = events();
	ck_assert_uint_gt(n, 0);
	return fake_publisher_event(fpub, n - 1);
}

/* --- config and lifetime ------------------------------------------------------ */

START_TEST(test_service_config_init_defaults)
{
	cart_service_config c;
	memset(&c, 0xff, sizeof(c));
	cart_service_config_init(&c);
	ck_assert_int_eq(c.limits.max_item_quantity, 999);
	ck_assert_uint_eq(c.limits.max_lines, 100);
	ck_assert_int_eq(c.limits.ttl_ms, TTL);
	ck_assert_int_eq(c.max_conflict_retries, 100);
	ck_assert_int_eq(c.idem_ttl_ms, DAY);
	ck_assert_int_eq(c.idem_lease_ms, 60000);
}
END_TEST

START_TEST(test_service_free_and_release_accept_null)
{
	cart_service_free(NULL);
	cart_result_release(NULL);
}
END_TEST

/* --- get -------------------------------------------------------------------- */

START_TEST(test_service_get_unknown_user_is_empty_version_0)
{
	cart *c = get("new-user");
	ck_assert_str_eq(cart_user_id(c), "new-user");
	ck_assert_ptr_null(cart_id(c));
	ck_assert_int_eq(cart_version(c), 0);
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(cart_created_at(c), 0);
	ck_assert_int_eq(cart_expires_at(c), 0);
	ck_assert_str_eq(cart_subtotal(c).currency, "");
	cart_free(c);
	ck_assert_int_eq(stored_version("new-user"), -1);
	ck_assert_uint_eq(fault_repo_calls(faults, FAULT_SAVE), 0);
	ck_assert_uint_eq(events(), 0);
}
END_TEST

START_TEST(test_service_get_rejects_bad_user_id)
{
	cart *c = NULL;
	ck_assert_int_eq(cart_service_get(svc, NULL, "bad user", &c), CART_EINVALID);
	ck_assert_int_eq(cart_service_get(svc, NULL, "", &c), CART_EINVALID);
	cart_result res;
	ck_assert_int_eq(add_o(&res, "a/b", "sku", 1, 10, "EUR", &NONE),
			 CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_ID);
	cart_result_release(&res);
	ck_assert_uint_eq(fault_repo_calls(faults, FAULT_SAVE), 0);
}
END_TEST

START_TEST(test_service_rejects_bad_item_id)
{
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	cart_result res;
	ck_assert_int_eq(set_o(&res, "u1", "a b", 1, &NONE), CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_ID);
	cart_result_release(&res);
	ck_assert_int_eq(remove_o(&res, "u1", "", &NONE), CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_ID);
	cart_result_release(&res);
	ck_assert_int_eq(add_o(&res, "u1", "x/y", 1, 10, "EUR", &NONE), CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_ID);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), 1);
	ck_assert_uint_eq(events(), 1);
}
END_TEST

/* --- add ---------------------------------------------------------------------- */

START_TEST(test_service_add_creates_cart)
{
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "sku-1", 2, 1999, "EUR", &NONE), CART_OK);
	ck_assert(res.created);
	ck_assert(!res.cleared);
	ck_assert(!res.replayed);
	ck_assert_ptr_nonnull(res.cart);
	const cart *c = res.cart;
	ck_assert_ptr_nonnull(cart_id(c));
	ck_assert_msg(fake_ids_parse(cart_id(c), NULL), "cart id %s", cart_id(c));
	ck_assert_int_eq(cart_version(c), 1);
	ck_assert_int_eq(cart_created_at(c), T0);
	ck_assert_int_eq(cart_updated_at(c), T0);
	ck_assert_int_eq(cart_expires_at(c), T0 + TTL);
	ck_assert_int_eq(qty_of(c, "sku-1"), 2);
	ck_assert_int_eq(cart_subtotal(c).amount, 3998);
	char id[CART_UUID_LEN + 1];
	snprintf(id, sizeof(id), "%s", cart_id(c));
	cart_result_release(&res);

	ck_assert_int_eq(stored_version("u1"), 1);
	cart *g = get("u1");
	ck_assert_str_eq(cart_id(g), id);
	ck_assert_int_eq(cart_version(g), 1);
	ck_assert_int_eq(qty_of(g, "sku-1"), 2);
	cart_free(g);
}
END_TEST

START_TEST(test_service_add_merges_same_item)
{
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "sku-1", 2, 1000, "EUR", &NONE), CART_OK);
	char id[CART_UUID_LEN + 1];
	snprintf(id, sizeof(id), "%s", cart_id(res.cart));
	cart_result_release(&res);

	fake_clock_advance(fclk, 1000);
	ck_assert_int_eq(add_o(&res, "u1", "sku-1", 3, 1200, "EUR", &NONE), CART_OK);
	ck_assert(!res.created);
	const cart *c = res.cart;
	ck_assert_str_eq(cart_id(c), id);
	ck_assert_int_eq(cart_version(c), 2);
	ck_assert_uint_eq(cart_line_count(c), 1);
	ck_assert_int_eq(qty_of(c, "sku-1"), 5);
	ck_assert_int_eq(cart_item_unit_price(cart_item_at(c, 0)).amount, 1200);
	ck_assert_int_eq(cart_created_at(c), T0);
	ck_assert_int_eq(cart_updated_at(c), T0 + 1000);
	ck_assert_int_eq(cart_expires_at(c), T0 + 1000 + TTL);
	cart_result_release(&res);
}
END_TEST

START_TEST(test_service_versions_increment)
{
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	ck_assert_int_eq(version_of("u1"), 1);
	ck_assert_int_eq(add("u1", "b", 1, 10), CART_OK);
	ck_assert_int_eq(version_of("u1"), 2);
	ck_assert_int_eq(set_qty("u1", "a", 5), CART_OK);
	ck_assert_int_eq(version_of("u1"), 3);
	ck_assert_int_eq(remove_item("u1", "b"), CART_OK);
	ck_assert_int_eq(version_of("u1"), 4);
	ck_assert_int_eq(set_qty("u1", "a", 0), CART_OK);
	ck_assert_int_eq(version_of("u1"), 5);
	ck_assert_int_eq(stored_version("u1"), 5);
	cart *c = get("u1");
	ck_assert_uint_eq(cart_line_count(c), 0);
	cart_free(c);
	cart_service_stats st;
	cart_service_stats_get(svc, &st);
	ck_assert_uint_eq(st.commits, 5);
	ck_assert_uint_eq(st.conflicts, 0);
}
END_TEST

START_TEST(test_service_add_rejected_changes_nothing)
{
	cfg.limits.max_lines = 2;
	start_service();
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	ck_assert_int_eq(add("u1", "b", 1, 10), CART_OK);
	size_t saves = fault_repo_calls(faults, FAULT_SAVE);
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "c", 1, 10, "USD", &NONE), CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_CURRENCY_MISMATCH);
	cart_result_release(&res);
	ck_assert_int_eq(add_o(&res, "u1", "c", 1, 10, "EUR", &NONE), CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_TOO_MANY_LINES);
	cart_result_release(&res);
	ck_assert_int_eq(add_o(&res, "u1", "a", 0, 10, "EUR", &NONE), CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_QUANTITY);
	cart_result_release(&res);
	ck_assert_int_eq(add_o(&res, "u1", "a", 999, 10, "EUR", &NONE), CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_QUANTITY);
	cart_result_release(&res);
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, -1, "EUR", &NONE), CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_AMOUNT);
	cart_result_release(&res);
	ck_assert_uint_eq(fault_repo_calls(faults, FAULT_SAVE), saves);
	ck_assert_int_eq(stored_version("u1"), 2);
	ck_assert_uint_eq(events(), 2);
}
END_TEST

START_TEST(test_service_add_rejected_for_new_user_stores_nothing)
{
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "eur", &NONE), CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_CURRENCY);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), -1);
	ck_assert_uint_eq(events(), 0);
}
END_TEST

START_TEST(test_service_set_and_remove_unknown_item_not_found)
{
	ck_assert_int_eq(set_qty("u1", "a", 3), CART_ENOTFOUND);
	ck_assert_int_eq(remove_item("u1", "a"), CART_ENOTFOUND);
	ck_assert_int_eq(stored_version("u1"), -1);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	ck_assert_int_eq(set_qty("u1", "zzz", 3), CART_ENOTFOUND);
	ck_assert_int_eq(set_qty("u1", "zzz", 0), CART_ENOTFOUND);
	ck_assert_int_eq(remove_item("u1", "zzz"), CART_ENOTFOUND);
	ck_assert_int_eq(stored_version("u1"), 1);
	ck_assert_uint_eq(events(), 1);
}
END_TEST

START_TEST(test_service_set_quantity_updates_and_zero_removes)
{
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	ck_assert_int_eq(add("u1", "b", 1, 10), CART_OK);
	cart_result res;
	ck_assert_int_eq(set_o(&res, "u1", "a", 7, &NONE), CART_OK);
	ck_assert_int_eq(qty_of(res.cart, "a"), 7);
	ck_assert_int_eq(cart_version(res.cart), 3);
	cart_result_release(&res);
	ck_assert_int_eq(set_o(&res, "u1", "a", 1000, &NONE), CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_QUANTITY);
	cart_result_release(&res);
	ck_assert_int_eq(set_o(&res, "u1", "a", 0, &NONE), CART_OK);
	ck_assert_ptr_null(cart_find_item(res.cart, "a"));
	ck_assert_uint_eq(cart_line_count(res.cart), 1);
	ck_assert_int_eq(cart_version(res.cart), 4);
	cart_result_release(&res);
	ck_assert_int_eq(remove_o(&res, "u1", "b", &NONE), CART_OK);
	ck_assert_uint_eq(cart_line_count(res.cart), 0);
	ck_assert_int_eq(cart_version(res.cart), 5);
	cart_result_release(&res);
}
END_TEST

static void assert_record(const char *user, const char *key, int status,
			  const char *body, size_t len);

/* Docs/events: a PATCH to the quantity the line already has is a no-op. */
START_TEST(test_service_set_same_quantity_writes_nothing)
{
	ck_assert_int_eq(add("u1", "a", 3, 10), CART_OK);
	size_t ev = events();
	size_t saves = fault_repo_calls(faults, FAULT_SAVE);
	cart *before = get("u1");
	fake_clock_advance(fclk, 1000);
	cart_result res;
	ck_assert_int_eq(set_o(&res, "u1", "a", 3, &NONE), CART_OK);
	ck_assert_ptr_nonnull(res.cart);
	ck_assert(!res.created && !res.cleared);
	ck_assert_int_eq(qty_of(res.cart, "a"), 3);
	ck_assert_int_eq(cart_version(res.cart), 1);
	ck_assert_int_eq(cart_updated_at(res.cart), cart_updated_at(before));
	ck_assert_int_eq(cart_expires_at(res.cart), cart_expires_at(before));
	cart_result_release(&res);
	cart_free(before);
	ck_assert_uint_eq(fault_repo_calls(faults, FAULT_SAVE), saves);
	ck_assert_int_eq(stored_version("u1"), 1);
	ck_assert_uint_eq(events(), ev);

	/* With a key the outcome is recorded and replayed, like a 404 is. */
	opts o = { -1, "key-same", "PATCH /v1/cart/u1/items/a {3}" };
	ck_assert_int_eq(set_o(&res, "u1", "a", 3, &o), CART_OK);
	ck_assert(!res.replayed);
	ck_assert_int_eq(res.status, 200);
	char body[128];
	size_t len = res.body_len;
	ck_assert_uint_lt(len, sizeof(body));
	memcpy(body, res.body, len);
	cart_result_release(&res);
	assert_record("u1", "key-same", 200, body, len);
	ck_assert_int_eq(set_o(&res, "u1", "a", 3, &o), CART_OK);
	ck_assert(res.replayed);
	ck_assert_uint_eq(res.body_len, len);
	ck_assert_mem_eq(res.body, body, len);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), 1);
	ck_assert_uint_eq(events(), ev);

	/* A stale If-Match is still refused, even when nothing would change. */
	opts stale = { 0, NULL, NULL };
	ck_assert_int_eq(set_o(&res, "u1", "a", 3, &stale), CART_EPRECONDITION);
	cart_result_release(&res);
}
END_TEST

/* --- If-Match ------------------------------------------------------------------ */

START_TEST(test_service_if_match_stale_is_precondition)
{
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	size_t ev = events();
	opts stale = { 1, NULL, NULL };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &stale),
			 CART_EPRECONDITION);
	ck_assert_int_eq(res.current_version, 2);
	cart_result_release(&res);
	ck_assert_int_eq(set_o(&res, "u1", "a", 5, &stale), CART_EPRECONDITION);
	ck_assert_int_eq(res.current_version, 2);
	cart_result_release(&res);
	ck_assert_int_eq(remove_o(&res, "u1", "a", &stale), CART_EPRECONDITION);
	ck_assert_int_eq(res.current_version, 2);
	cart_result_release(&res);
	ck_assert_int_eq(clear_o(&res, "u1", &stale), CART_EPRECONDITION);
	ck_assert_int_eq(res.current_version, 2);
	cart_result_release(&res);
	opts future = { 7, NULL, NULL };
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &future),
			 CART_EPRECONDITION);
	ck_assert_int_eq(res.current_version, 2);
	cart_result_release(&res);

	ck_assert_int_eq(stored_version("u1"), 2);
	cart *c = get("u1");
	ck_assert_int_eq(qty_of(c, "a"), 2);
	cart_free(c);
	ck_assert_uint_eq(events(), ev);
}
END_TEST

START_TEST(test_service_if_match_current_applies)
{
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	opts cur = { 2, NULL, NULL };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &cur), CART_OK);
	ck_assert_int_eq(cart_version(res.cart), 3);
	cart_result_release(&res);
	cur.if_match = 3;
	ck_assert_int_eq(set_o(&res, "u1", "a", 9, &cur), CART_OK);
	ck_assert_int_eq(cart_version(res.cart), 4);
	cart_result_release(&res);
	cur.if_match = 4;
	ck_assert_int_eq(clear_o(&res, "u1", &cur), CART_OK);
	cart_result_release(&res);
	ck_assert_int_eq(version_of("u1"), 5);
}
END_TEST

START_TEST(test_service_if_match_on_user_without_cart)
{
	opts o = { 5, NULL, NULL };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_EPRECONDITION);
	ck_assert_int_eq(res.current_version, 0);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), -1);
}
END_TEST

/* --- clear and expiry --------------------------------------------------------- */

START_TEST(test_service_clear_bumps_version_next_add_new_cart)
{
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 2, 10, "EUR", &NONE), CART_OK);
	char id1[CART_UUID_LEN + 1];
	snprintf(id1, sizeof(id1), "%s", cart_id(res.cart));
	cart_result_release(&res);

	fake_clock_advance(fclk, 500);
	ck_assert_int_eq(clear_o(&res, "u1", &NONE), CART_OK);
	ck_assert(res.cleared);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), 2);
	cart *c = get("u1");
	ck_assert_ptr_null(cart_id(c));
	ck_assert_int_eq(cart_version(c), 2);
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(cart_created_at(c), 0);
	cart_free(c);

	fake_clock_advance(fclk, 500);
	ck_assert_int_eq(add_o(&res, "u1", "b", 1, 10, "USD", &NONE), CART_OK);
	ck_assert(res.created);
	ck_assert_ptr_nonnull(cart_id(res.cart));
	ck_assert_str_ne(cart_id(res.cart), id1);
	ck_assert(fake_ids_parse(cart_id(res.cart), NULL));
	ck_assert_int_eq(cart_version(res.cart), 3);
	ck_assert_int_eq(cart_created_at(res.cart), T0 + 1000);
	ck_assert_uint_eq(cart_line_count(res.cart), 1);
	ck_assert_int_eq(qty_of(res.cart, "a"), 0);
	cart_result_release(&res);
}
END_TEST

START_TEST(test_service_clear_without_cart_writes_nothing)
{
	cart_result res;
	ck_assert_int_eq(clear_o(&res, "u1", &NONE), CART_OK);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), -1);
	ck_assert_uint_eq(fault_repo_calls(faults, FAULT_SAVE), 0);
	ck_assert_uint_eq(events(), 0);
	ck_assert_int_eq(version_of("u1"), 0);
}
END_TEST

START_TEST(test_service_expired_cart_reads_empty)
{
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 2, 10, "EUR", &NONE), CART_OK);
	char id1[CART_UUID_LEN + 1];
	snprintf(id1, sizeof(id1), "%s", cart_id(res.cart));
	cart_result_release(&res);

	fake_clock_advance(fclk, TTL - 1);
	cart *c = get("u1");
	ck_assert_str_eq(cart_id(c), id1);
	cart_free(c);

	fake_clock_advance(fclk, 2);
	c = get("u1");
	ck_assert_ptr_null(cart_id(c));
	ck_assert_uint_eq(cart_line_count(c), 0);
	ck_assert_int_eq(cart_version(c), 1);
	cart_free(c);

	ck_assert_int_eq(set_qty("u1", "a", 3), CART_ENOTFOUND);
	ck_assert_int_eq(remove_item("u1", "a"), CART_ENOTFOUND);

	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &NONE), CART_OK);
	ck_assert(res.created);
	ck_assert_str_ne(cart_id(res.cart), id1);
	ck_assert_int_eq(cart_version(res.cart), 2);
	ck_assert_int_eq(qty_of(res.cart, "a"), 1);  /* old lines are gone */
	ck_assert_int_eq(cart_created_at(res.cart), T0 + TTL + 1);
	cart_result_release(&res);
}
END_TEST

/* --- lost races ----------------------------------------------------------------- */

START_TEST(test_service_retries_lost_race)
{
	cfg.max_conflict_retries = 5;
	start_service();
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	fault_repo_conflict(faults, 3, true);
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 2, 10, "EUR", &NONE), CART_OK);
	ck_assert_uint_eq(fault_repo_rival_writes(faults), 3);
	ck_assert_int_eq(cart_version(res.cart), 5);
	ck_assert_int_eq(qty_of(res.cart, "a"), 3);
	ck_assert_int_eq(qty_of(res.cart, FAULT_RIVAL_ITEM), 3);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), 5);
	cart_service_stats st;
	cart_service_stats_get(svc, &st);
	ck_assert_uint_eq(st.conflicts, 3);
	ck_assert_uint_eq(st.commits, 2);
	/* only committed writes publish, and this one names version 5 */
	ck_assert_uint_eq(events(), 2);
	cart_event ev = last_event();
	ck_assert_int_eq(ev.cart_version, 5);
	ck_assert_int_eq(ev.quantity_before, 1);
	ck_assert_int_eq(ev.quantity_after, 3);
}
END_TEST

START_TEST(test_service_retries_lost_create_race)
{
	fault_repo_conflict(faults, 1, true);
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 2, 10, "EUR", &NONE), CART_OK);
	ck_assert(res.created);
	ck_assert_int_eq(cart_version(res.cart), 2);
	ck_assert_int_eq(qty_of(res.cart, "a"), 2);
	ck_assert_int_eq(qty_of(res.cart, FAULT_RIVAL_ITEM), 1);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), 2);
}
END_TEST

START_TEST(test_service_retry_limit_is_exact)
{
	cfg.max_conflict_retries = 3;
	start_service();
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	/* three lost races: the fourth attempt (third retry) wins */
	fault_repo_conflict(faults, 3, true);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	ck_assert_int_eq(stored_version("u1"), 5);
	ck_assert_uint_eq(events(), 2);
}
END_TEST

START_TEST(test_service_too_many_conflicts_is_conflict)
{
	cfg.max_conflict_retries = 3;
	start_service();
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	fault_repo_conflict(faults, 4, true);
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &NONE), CART_ECONFLICT);
	cart_result_release(&res);
	ck_assert_uint_eq(fault_repo_conflicts(faults), 4);
	/* only the rival's writes landed; ours published nothing */
	ck_assert_int_eq(stored_version("u1"), 5);
	cart *c = get("u1");
	ck_assert_int_eq(qty_of(c, "a"), 1);
	cart_free(c);
	ck_assert_uint_eq(events(), 1);

	/* without a rival the store never moves: still bounded */
	fault_repo_conflict(faults, 1000, false);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_ECONFLICT);
	ck_assert_uint_eq(fault_repo_conflicts(faults), 4 + 4);
	fault_repo_conflict(faults, 0, false);
}
END_TEST

START_TEST(test_service_lost_race_with_if_match_is_precondition)
{
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	fault_repo_conflict(faults, 1, true);
	opts o = { 1, NULL, NULL };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_EPRECONDITION);
	ck_assert_int_eq(res.current_version, 2);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), 2);
	ck_assert_uint_eq(events(), 1);
}
END_TEST

#define SVC_THREADS 4
#define SVC_ADDS 25

static void *svc_worker(void *p)
{
	int *errors = p;
	for (int i = 0; i < SVC_ADDS; i++) {
		cart_item_spec spec = { .item_id = "sku", .quantity = 1,
					.unit_price = { 5, "EUR" } };
		cart_command cmd = { .kind = CART_CMD_ADD_ITEM, .user_id = "hot",
				     .item = &spec, .if_match = -1 };
		cart_result res;
		if (cart_service_execute(svc, &cmd, &res) != CART_OK)
			(*errors)++;
		cart_result_release(&res);
	}
	return NULL;
}

START_TEST(test_service_concurrent_adds_lose_nothing)
{
	pthread_t th[SVC_THREADS];
	int errors[SVC_THREADS] = { 0 };
	for (int t = 0; t < SVC_THREADS; t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, svc_worker, &errors[t]), 0);
	for (int t = 0; t < SVC_THREADS; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < SVC_THREADS; t++)
		ck_assert_int_eq(errors[t], 0);
	cart *c = get("hot");
	ck_assert_int_eq(qty_of(c, "sku"), SVC_THREADS * SVC_ADDS);
	ck_assert_int_eq(cart_version(c), SVC_THREADS * SVC_ADDS);
	cart_free(c);
	/* one event per version, each version exactly once */
	ck_assert_uint_eq(events(), SVC_THREADS * SVC_ADDS);
	char seen[SVC_THREADS * SVC_ADDS + 1] = { 0 };
	for (size_t i = 0; i < events(); i++) {
		cart_event ev = fake_publisher_event(fpub, i);
		ck_assert_int_ge(ev.cart_version, 1);
		ck_assert_int_le(ev.cart_version, SVC_THREADS * SVC_ADDS);
		ck_assert_int_eq(seen[ev.cart_version], 0);
		seen[ev.cart_version] = 1;
		ck_assert_int_eq(ev.quantity_after, (int32_t)ev.cart_version);
	}
}
END_TEST

/* --- events ----------------------------------------------------------------------- */

static void assert_event(const cart_event *ev, cart_event_type type,
			 const char *cart_id_, int64_t version, const char *item,
			 int32_t before, int32_t after)
{
	ck_assert_int_eq(ev->type, type);
	ck_assert_str_eq(ev->user_id, "u1");
	ck_assert_str_eq(ev->cart_id, cart_id_);
	ck_assert_int_eq(ev->cart_version, version);
	ck_assert_str_eq(ev->item_id, item);
	ck_assert_int_eq(ev->quantity_before, before);
	ck_assert_int_eq(ev->quantity_after, after);
	ck_assert_uint_eq(strlen(ev->event_id), CART_UUID_LEN);
	ck_assert_int_eq(ev->occurred_at, fake_clock_now(fclk));
}

START_TEST(test_service_events_one_per_commit)
{
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 2, 150, "EUR", &NONE), CART_OK);
	char id[CART_UUID_LEN + 1];
	snprintf(id, sizeof(id), "%s", cart_id(res.cart));
	cart_result_release(&res);
	ck_assert_uint_eq(events(), 1);
	cart_event ev = last_event();
	assert_event(&ev, CART_EVENT_ITEM_ADDED, id, 1, "a", 0, 2);
	ck_assert_int_eq(ev.unit_price.amount, 150);
	ck_assert_str_eq(ev.unit_price.currency, "EUR");

	fake_clock_advance(fclk, 10);
	ck_assert_int_eq(add("u1", "a", 3, 175), CART_OK);
	ck_assert_uint_eq(events(), 2);
	ev = last_event();
	assert_event(&ev, CART_EVENT_ITEM_ADDED, id, 2, "a", 2, 5);
	ck_assert_int_eq(ev.unit_price.amount, 175);

	fake_clock_advance(fclk, 10);
	ck_assert_int_eq(set_qty("u1", "a", 7), CART_OK);
	ck_assert_uint_eq(events(), 3);
	ev = last_event();
	assert_event(&ev, CART_EVENT_ITEM_QUANTITY_CHANGED, id, 3, "a", 5, 7);

	ck_assert_int_eq(add("u1", "b", 1, 10), CART_OK);
	ck_assert_int_eq(remove_item("u1", "b"), CART_OK);
	ck_assert_uint_eq(events(), 5);
	ev = last_event();
	assert_event(&ev, CART_EVENT_ITEM_REMOVED, id, 5, "b", 1, 0);

	ck_assert_int_eq(add("u1", "c", 4, 10), CART_OK);
	ck_assert_int_eq(clear("u1"), CART_OK);
	ck_assert_uint_eq(events(), 7);
	ev = last_event();
	ck_assert_int_eq(ev.type, CART_EVENT_CLEARED);
	ck_assert_str_eq(ev.cart_id, id);
	ck_assert_int_eq(ev.cart_version, 7);
	ck_assert_str_eq(ev.item_id, "");
	ck_assert_int_eq(ev.item_count_before, 11);

	/* every event has its own id */
	for (size_t i = 0; i < events(); i++)
		for (size_t j = i + 1; j < events(); j++) {
			cart_event x = fake_publisher_event(fpub, i);
			cart_event y = fake_publisher_event(fpub, j);
			ck_assert_str_ne(x.event_id, y.event_id);
		}
}
END_TEST

START_TEST(test_service_event_set_quantity_zero_is_removal)
{
	ck_assert_int_eq(add("u1", "a", 3, 10), CART_OK);
	ck_assert_int_eq(set_qty("u1", "a", 0), CART_OK);
	ck_assert_uint_eq(events(), 2);
	cart_event ev = last_event();
	ck_assert_msg(ev.type == CART_EVENT_ITEM_REMOVED ||
		      ev.type == CART_EVENT_ITEM_QUANTITY_CHANGED, "type %d", ev.type);
	ck_assert_int_eq(ev.quantity_before, 3);
	ck_assert_int_eq(ev.quantity_after, 0);
	ck_assert_int_eq(ev.cart_version, 2);
}
END_TEST

START_TEST(test_service_events_none_on_rejected)
{
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	size_t n = events();
	ck_assert_int_eq(add("u1", "a", 0, 10), CART_EINVALID);
	ck_assert_int_eq(set_qty("u1", "nope", 1), CART_ENOTFOUND);
	ck_assert_int_eq(remove_item("u1", "nope"), CART_ENOTFOUND);
	ck_assert_int_eq(clear("nobody"), CART_OK);
	cart_result res;
	opts stale = { 9, NULL, NULL };
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &stale),
			 CART_EPRECONDITION);
	cart_result_release(&res);
	fault_repo_fail(faults, FAULT_SAVE, 1, CART_EBACKEND);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_EBACKEND);
	ck_assert_uint_eq(events(), n);
}
END_TEST

START_TEST(test_service_publish_failure_keeps_commit)
{
	fake_publisher_fail(fpub, -1, CART_EBACKEND);
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &NONE), CART_OK);
	ck_assert_int_eq(cart_version(res.cart), 1);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), 1);
	/* the publisher is down: the event waits in the outbox */
	ck_assert_int_eq(cart_relay_run_once(relay), 0);
	ck_assert_uint_ge(fake_publisher_calls(fpub), 1);
	cart_relay_stats rst;
	cart_relay_stats_get(relay, &rst);
	ck_assert_uint_ge(rst.publish_failures, 1);
	ck_assert_uint_eq(rst.backlog, 1);
	cart_service_stats st;
	cart_service_stats_get(svc, &st);
	ck_assert_uint_eq(st.commits, 1);
	/* back up: both events go out, in version order, once */
	fake_publisher_fail(fpub, 0, 0);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	ck_assert_uint_eq(events(), 2);
	ck_assert_int_eq(fake_publisher_event(fpub, 0).cart_version, 1);
	ck_assert_int_eq(last_event().cart_version, 2);
	cart_relay_stats_get(relay, &rst);
	ck_assert_uint_eq(rst.backlog, 0);
}
END_TEST

/* --- idempotency --------------------------------------------------------------------- */

static void assert_record(const char *user, const char *key, int status,
			  const char *body, size_t len)
{
	cart_idem *rec = NULL;
	ck_assert_int_eq(cart_repo_idem_get(&mem, user, key, fake_clock_now(fclk),
					    &rec), CART_OK);
	ck_assert_int_eq(rec->state, CART_IDEM_COMPLETE);
	ck_assert_int_eq(rec->status, status);
	ck_assert_uint_eq(rec->body_len, len);
	ck_assert_mem_eq(rec->body, body, len);
	cart_idem_free(rec);
}

static void assert_no_record(const char *user, const char *key)
{
	cart_idem *rec = NULL;
	int rc = cart_repo_idem_get(&mem, user, key, fake_clock_now(fclk), &rec);
	if (rc == CART_OK)
		cart_idem_free(rec);   /* no leak when the assertion fails */
	ck_assert_int_eq(rc, CART_ENOTFOUND);
}

START_TEST(test_service_idem_replays_same_request)
{
	opts o = { -1, "key-1", "POST /v1/cart/u1/items {a,2}" };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 2, 10, "EUR", &o), CART_OK);
	ck_assert(!res.replayed);
	ck_assert_int_eq(res.status, 201);
	ck_assert_ptr_nonnull(res.body);
	char body[128];
	size_t len = res.body_len;
	ck_assert_uint_lt(len, sizeof(body));
	memcpy(body, res.body, len);
	ck_assert_int_eq(rctx.calls, 1);
	cart_result_release(&res);
	assert_record("u1", "key-1", 201, body, len);

	fake_clock_advance(fclk, 1000);
	ck_assert_int_eq(add_o(&res, "u1", "a", 2, 10, "EUR", &o), CART_OK);
	ck_assert(res.replayed);
	ck_assert_int_eq(res.status, 201);
	ck_assert_uint_eq(res.body_len, len);
	ck_assert_mem_eq(res.body, body, len);
	cart_result_release(&res);
	ck_assert_int_eq(rctx.calls, 1);
	ck_assert_int_eq(version_of("u1"), 1);
	ck_assert_uint_eq(events(), 1);
	cart *c = get("u1");
	ck_assert_int_eq(qty_of(c, "a"), 2);
	cart_free(c);
}
END_TEST

START_TEST(test_service_idem_record_stored_with_expiry)
{
	opts o = { -1, "k", "fp" };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 2, 10, "EUR", &o), CART_OK);
	cart_result_release(&res);
	cart_idem *rec = NULL;
	ck_assert_int_eq(cart_repo_idem_get(&mem, "u1", "k", T0, &rec), CART_OK);
	ck_assert_str_eq(rec->key, "k");
	ck_assert_str_eq(rec->fingerprint, "fp");
	ck_assert_int_eq(rec->state, CART_IDEM_COMPLETE);
	ck_assert_int_eq(rec->expires_at, T0 + DAY);
	cart_idem_free(rec);
}
END_TEST

START_TEST(test_service_idem_fingerprint_mismatch)
{
	opts o = { -1, "key-1", "fp-A" };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 2, 10, "EUR", &o), CART_OK);
	cart_result_release(&res);
	opts other = { -1, "key-1", "fp-B" };
	ck_assert_int_eq(add_o(&res, "u1", "b", 1, 10, "EUR", &other),
			 CART_EIDEM_MISMATCH);
	cart_result_release(&res);
	ck_assert_int_eq(remove_o(&res, "u1", "a", &other), CART_EIDEM_MISMATCH);
	cart_result_release(&res);
	ck_assert_int_eq(version_of("u1"), 1);
	ck_assert_uint_eq(events(), 1);
	cart *c = get("u1");
	ck_assert_uint_eq(cart_line_count(c), 1);
	cart_free(c);
}
END_TEST

START_TEST(test_service_idem_inflight)
{
	cart_idem claim;
	memset(&claim, 0, sizeof(claim));
	claim.key = "key-1";
	claim.fingerprint = "fp";
	claim.state = CART_IDEM_PENDING;
	claim.expires_at = T0 + 60000;
	ck_assert_int_eq(cart_repo_idem_claim(&mem, "u1", &claim, T0), CART_OK);

	opts o = { -1, "key-1", "fp" };
	cart_result res;
	fake_clock_advance(fclk, 30000);
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o),
			 CART_EIDEM_INFLIGHT);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), -1);
	ck_assert_uint_eq(events(), 0);
	ck_assert_int_eq(rctx.calls, 0);
	/* the claim is left alone */
	cart_idem *rec = NULL;
	ck_assert_int_eq(cart_repo_idem_get(&mem, "u1", "key-1", fake_clock_now(fclk),
					    &rec), CART_OK);
	ck_assert_int_eq(rec->state, CART_IDEM_PENDING);
	cart_idem_free(rec);
}
END_TEST

START_TEST(test_service_idem_expired_lease_taken_over)
{
	cart_idem claim;
	memset(&claim, 0, sizeof(claim));
	claim.key = "key-1";
	claim.fingerprint = "fp";
	claim.state = CART_IDEM_PENDING;
	claim.expires_at = T0 + 1000;
	ck_assert_int_eq(cart_repo_idem_claim(&mem, "u1", &claim, T0), CART_OK);

	fake_clock_advance(fclk, 1001);
	opts o = { -1, "key-1", "fp" };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_OK);
	ck_assert(!res.replayed);
	ck_assert_int_eq(res.status, 201);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), 1);
	cart_idem *rec = NULL;
	ck_assert_int_eq(cart_repo_idem_get(&mem, "u1", "key-1", fake_clock_now(fclk),
					    &rec), CART_OK);
	ck_assert_int_eq(rec->state, CART_IDEM_COMPLETE);
	ck_assert_int_eq(rec->status, 201);
	cart_idem_free(rec);
}
END_TEST

START_TEST(test_service_idem_not_found_outcome_stored_and_replayed)
{
	opts o = { -1, "key-404", "DELETE /v1/cart/u1/items/a" };
	cart_result res;
	ck_assert_int_eq(remove_o(&res, "u1", "a", &o), CART_ENOTFOUND);
	ck_assert(!res.replayed);
	ck_assert_int_eq(res.status, 404);
	char body[128];
	size_t len = res.body_len;
	memcpy(body, res.body, len);
	cart_result_release(&res);
	assert_record("u1", "key-404", 404, body, len);
	ck_assert_int_eq(stored_version("u1"), -1);

	/* now the item exists, but the key still answers as the first time */
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	remove_o(&res, "u1", "a", &o);
	ck_assert(res.replayed);
	ck_assert_int_eq(res.status, 404);
	ck_assert_uint_eq(res.body_len, len);
	ck_assert_mem_eq(res.body, body, len);
	cart_result_release(&res);
	cart *c = get("u1");
	ck_assert_int_eq(qty_of(c, "a"), 1);
	ck_assert_int_eq(cart_version(c), 1);
	cart_free(c);
	ck_assert_int_eq(rctx.calls, 1);
}
END_TEST

START_TEST(test_service_idem_invalid_outcome_stored_and_replayed)
{
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	opts o = { -1, "key-422", "POST usd" };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "b", 1, 10, "USD", &o), CART_EINVALID);
	ck_assert_int_eq(res.rule, CART_RULE_CURRENCY_MISMATCH);
	ck_assert_int_eq(res.status, 422);
	char body[128];
	size_t len = res.body_len;
	memcpy(body, res.body, len);
	cart_result_release(&res);
	assert_record("u1", "key-422", 422, body, len);

	ck_assert_int_eq(remove_item("u1", "a"), CART_OK);  /* USD would fit now */
	add_o(&res, "u1", "b", 1, 10, "USD", &o);
	ck_assert(res.replayed);
	ck_assert_int_eq(res.status, 422);
	ck_assert_mem_eq(res.body, body, len);
	cart_result_release(&res);
	ck_assert_int_eq(version_of("u1"), 2);
	cart *c = get("u1");
	ck_assert_ptr_null(cart_find_item(c, "b"));
	cart_free(c);
}
END_TEST

START_TEST(test_service_idem_precondition_not_stored)
{
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	opts o = { 5, "key-412", "PATCH a 3" };
	cart_result res;
	ck_assert_int_eq(set_o(&res, "u1", "a", 3, &o), CART_EPRECONDITION);
	ck_assert_int_eq(res.current_version, 1);
	cart_result_release(&res);
	assert_no_record("u1", "key-412");
	ck_assert_int_eq(rctx.calls, 0);

	/* the client fixes If-Match and retries with the same key */
	o.if_match = 1;
	ck_assert_int_eq(set_o(&res, "u1", "a", 3, &o), CART_OK);
	ck_assert(!res.replayed);
	ck_assert_int_eq(res.status, 200);
	cart_result_release(&res);
	ck_assert_int_eq(version_of("u1"), 2);
	ck_assert_int_eq(rctx.calls, 1);
}
END_TEST

START_TEST(test_service_idem_conflict_exhaustion_not_stored)
{
	cfg.max_conflict_retries = 2;
	start_service();
	fault_repo_conflict(faults, 3, false);
	opts o = { -1, "key-409", "fp" };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_ECONFLICT);
	cart_result_release(&res);
	assert_no_record("u1", "key-409");
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_OK);
	ck_assert(!res.replayed);
	cart_result_release(&res);
	ck_assert_int_eq(version_of("u1"), 1);
}
END_TEST

START_TEST(test_service_idem_backend_failure_not_stored)
{
	fault_repo_fail(faults, FAULT_SAVE, 1, CART_EBACKEND);
	opts o = { -1, "key-5xx", "fp" };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_EBACKEND);
	cart_result_release(&res);
	assert_no_record("u1", "key-5xx");
	ck_assert_int_eq(stored_version("u1"), -1);
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_OK);
	ck_assert(!res.replayed);
	cart_result_release(&res);
	ck_assert_int_eq(version_of("u1"), 1);
}
END_TEST

START_TEST(test_service_idem_record_expires)
{
	cfg.idem_ttl_ms = 10000;
	start_service();
	opts o = { -1, "key-1", "fp" };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_OK);
	cart_result_release(&res);

	fake_clock_advance(fclk, 9999);
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_OK);
	ck_assert(res.replayed);
	cart_result_release(&res);
	ck_assert_int_eq(version_of("u1"), 1);

	fake_clock_advance(fclk, 2);
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_OK);
	ck_assert(!res.replayed);
	ck_assert_int_eq(res.status, 200);
	cart_result_release(&res);
	ck_assert_int_eq(version_of("u1"), 2);
	cart *c = get("u1");
	ck_assert_int_eq(qty_of(c, "a"), 2);
	cart_free(c);
}
END_TEST

START_TEST(test_service_idem_clear_replayed)
{
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	opts o = { -1, "key-del", "DELETE /v1/cart/u1" };
	cart_result res;
	ck_assert_int_eq(clear_o(&res, "u1", &o), CART_OK);
	ck_assert_int_eq(res.status, 204);
	cart_result_release(&res);
	ck_assert_int_eq(add("u1", "b", 1, 10), CART_OK);
	ck_assert_int_eq(clear_o(&res, "u1", &o), CART_OK);
	ck_assert(res.replayed);
	ck_assert_int_eq(res.status, 204);
	cart_result_release(&res);
	cart *c = get("u1");
	ck_assert_int_eq(qty_of(c, "b"), 1);
	ck_assert_int_eq(cart_version(c), 3);
	cart_free(c);
}
END_TEST

START_TEST(test_service_idem_key_scoped_per_user)
{
	opts o = { -1, "shared-key", "fp" };
	cart_result res;
	ck_assert_int_eq(add_o(&res, "alice", "a", 1, 10, "EUR", &o), CART_OK);
	ck_assert(!res.replayed);
	cart_result_release(&res);
	ck_assert_int_eq(add_o(&res, "bob", "a", 1, 10, "EUR", &o), CART_OK);
	ck_assert(!res.replayed);
	cart_result_release(&res);
	ck_assert_int_eq(version_of("alice"), 1);
	ck_assert_int_eq(version_of("bob"), 1);
}
END_TEST

/* --- backend failures ---------------------------------------------------------------- */

START_TEST(test_service_backend_failure_propagates)
{
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
	cart *c = NULL;
	fault_repo_fail(faults, FAULT_LOAD, 1, CART_EBACKEND);
	ck_assert_int_eq(cart_service_get(svc, NULL, "u1", &c), CART_EBACKEND);
	fault_repo_fail(faults, FAULT_LOAD, 1, CART_EBACKEND);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_EBACKEND);
	fault_repo_fail(faults, FAULT_LOAD, 1, CART_EBACKEND);
	ck_assert_int_eq(clear("u1"), CART_EBACKEND);
	fault_repo_fail(faults, FAULT_SAVE, 1, CART_EBACKEND);
	ck_assert_int_eq(set_qty("u1", "a", 4), CART_EBACKEND);
	fault_repo_fail(faults, FAULT_SAVE, 1, CART_EBACKEND);
	ck_assert_int_eq(remove_item("u1", "a"), CART_EBACKEND);
	ck_assert_int_eq(stored_version("u1"), 1);
	ck_assert_uint_eq(events(), 1);

	cart_result res;
	opts o = { -1, "k", "fp" };
	fault_repo_fail(faults, FAULT_IDEM_GET, 1, CART_EBACKEND);
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_EBACKEND);
	cart_result_release(&res);
	fault_repo_fail(faults, FAULT_IDEM_CLAIM, 1, CART_EBACKEND);
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_EBACKEND);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), 1);
	ck_assert_int_eq(add_o(&res, "u1", "a", 1, 10, "EUR", &o), CART_OK);
	cart_result_release(&res);
	ck_assert_int_eq(stored_version("u1"), 2);
}
END_TEST

START_TEST(test_service_unavailable_passes_through)
{
	cart *c = NULL;
	fault_repo_fail(faults, FAULT_LOAD, 1, CART_EUNAVAILABLE);
	ck_assert_int_eq(cart_service_get(svc, NULL, "u1", &c), CART_EUNAVAILABLE);
	fault_repo_fail(faults, FAULT_LOAD, 1, CART_EUNAVAILABLE);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_EUNAVAILABLE);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
}
END_TEST

START_TEST(test_service_uuid_failure_propagates)
{
	fake_ids_fail_next(fids, CART_EBACKEND);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_EBACKEND);
	ck_assert_int_eq(stored_version("u1"), -1);
	ck_assert_int_eq(add("u1", "a", 1, 10), CART_OK);
}
END_TEST

/* --- trace ---------------------------------------------------------------------- */

START_TEST(test_service_event_carries_the_call_trace_header)
{
	const char *h = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
	cart_call_ctx call = { "req-1", "1-5759e988-bd862e3fe1be46a994272793", 0, NULL, h };
	cart_item_spec spec = { "sku", 1, { 100, "EUR" }, NULL, NULL, 0 };
	cart_command cmd = { .kind = CART_CMD_ADD_ITEM, .call = &call,
			     .user_id = "alice", .item = &spec };
	opts o = { -1, NULL, NULL };
	cart_result res;

	ck_assert_int_eq(run(&cmd, &o, &res), CART_OK);
	cart_result_release(&res);
	ck_assert_str_eq(last_event().trace_header, h);
	/* no trace, or one too long to be whole: none recorded */
	cmd.call = NULL;
	ck_assert_int_eq(run(&cmd, &o, &res), CART_OK);
	cart_result_release(&res);
	ck_assert_str_eq(last_event().trace_header, "");
	call.trace_header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
			    "Sampled=1;Lineage=a87bd80c:1|68fd508a:5";
	cmd.call = &call;
	ck_assert_int_eq(run(&cmd, &o, &res), CART_OK);
	cart_result_release(&res);
	ck_assert_str_eq(last_event().trace_header, "");
}
END_TEST

/* --- the request's context reaches the repository (issue 7) --------------- */

/*
 * Every load and save a command makes carries the command's call, so an
 * adapter can bound its retries by the request's deadline; a get's load
 * too; and no call stays no call.
 */
START_TEST(test_service_passes_the_call_to_load_and_save)
{
	cart_call_ctx call = { "req-77", NULL, T0 + 2500, NULL, NULL };
	cart_item_spec spec = { "sku", 1, { 100, "EUR" }, NULL, NULL, 0 };
	cart_command cmd = { .kind = CART_CMD_ADD_ITEM, .call = &call,
			     .user_id = "alice", .item = &spec };
	cart_result res;
	fault_repo_call seen;
	cart *c = NULL;

	ck_assert_int_eq(run(&cmd, &NONE, &res), CART_OK);
	cart_result_release(&res);
	for (fault_op op = FAULT_LOAD; op <= FAULT_SAVE; op++) {
		seen = fault_repo_last_call(faults, op);
		ck_assert_msg(seen.had_call, "op %d got no call", (int)op);
		ck_assert_str_eq(seen.request_id, "req-77");
		ck_assert_int_eq(seen.deadline_ms, T0 + 2500);
	}
	/* after a lost race: the reload and the second save too */
	fault_repo_conflict(faults, 1, true);
	call.request_id = "req-78";
	ck_assert_int_eq(run(&cmd, &NONE, &res), CART_OK);
	cart_result_release(&res);
	ck_assert_uint_eq(fault_repo_conflicts(faults), 1);
	ck_assert_str_eq(fault_repo_last_call(faults, FAULT_LOAD).request_id, "req-78");
	ck_assert_str_eq(fault_repo_last_call(faults, FAULT_SAVE).request_id, "req-78");
	/* a get */
	call.request_id = "req-79";
	ck_assert_int_eq(cart_service_get(svc, &call, "alice", &c), CART_OK);
	cart_free(c);
	ck_assert_str_eq(fault_repo_last_call(faults, FAULT_LOAD).request_id, "req-79");
	/* no call */
	cmd.call = NULL;
	ck_assert_int_eq(run(&cmd, &NONE, &res), CART_OK);
	cart_result_release(&res);
	ck_assert(!fault_repo_last_call(faults, FAULT_LOAD).had_call);
	ck_assert(!fault_repo_last_call(faults, FAULT_SAVE).had_call);
}
END_TEST

/* --- authorization ------------------------------------------------------------ */

static const cart_principal ALICE = { "alice", false };
static const cart_principal ADMIN = { "ops-bot", true };

/* An add as principal p; cart_result released. */
static int add_as(const cart_principal *p, const char *user, const char *key)
{
	cart_call_ctx call = { "req-1", NULL, 0, p, NULL };
	cart_item_spec spec = { "sku", 1, { 100, "EUR" }, NULL, NULL, 0 };
	cart_command cmd = { .kind = CART_CMD_ADD_ITEM, .call = &call,
			     .user_id = user, .item = &spec };
	opts o = { -1, key, key ? "fp" : NULL };
	cart_result res;
	int rc = run(&cmd, &o, &res);

	cart_result_release(&res);
	return rc;
}

START_TEST(test_service_principal_acts_on_own_cart_only)
{
	cart_call_ctx call = { NULL, NULL, 0, &ALICE, NULL };
	cart *c = NULL;

	ck_assert_int_eq(add_as(&ALICE, "alice", NULL), CART_OK);
	ck_assert_int_eq(add("bob", "a", 1, 10), CART_OK);
	ck_assert_int_eq(add_as(&ALICE, "bob", NULL), CART_EACCESS);
	ck_assert_int_eq(cart_service_get(svc, &call, "bob", &c), CART_EACCESS);
	ck_assert_ptr_null(c);
	/* Bob's cart is untouched: one line of quantity 1, version 1. */
	c = get("bob");
	ck_assert_int_eq(cart_version(c), 1);
	ck_assert_int_eq(qty_of(c, "a"), 1);
	cart_free(c);
	ck_assert_int_eq(cart_service_get(svc, &call, "alice", &c), CART_OK);
	ck_assert_int_eq(cart_version(c), 1);
	cart_free(c);
}
END_TEST

START_TEST(test_service_principal_denied_before_anything_is_stored)
{
	cart_idem *rec = NULL;

	/* An unknown user's cart, with an idempotency key: nothing at all. */
	ck_assert_int_eq(add_as(&ALICE, "carol", "k1"), CART_EACCESS);
	ck_assert_int_eq(stored_version("carol"), -1);
	ck_assert_int_eq(cart_repo_idem_get(&mem, "carol", "k1",
					    fake_clock_now(fclk), &rec),
			 CART_ENOTFOUND);
	ck_assert_uint_eq(events(), 0);
	/* The same key on her own cart is a first request, not a replay. */
	ck_assert_int_eq(add_as(&ALICE, "alice", "k1"), CART_OK);
	ck_assert_int_eq(version_of("alice"), 1);
}
END_TEST

START_TEST(test_service_admin_acts_on_any_cart)
{
	cart_call_ctx call = { NULL, NULL, 0, &ADMIN, NULL };
	cart *c = NULL;

	ck_assert_int_eq(add_as(&ADMIN, "bob", NULL), CART_OK);
	ck_assert_int_eq(cart_service_get(svc, &call, "bob", &c), CART_OK);
	ck_assert_int_eq(cart_version(c), 1);
	cart_free(c);
}
END_TEST

START_TEST(test_service_no_principal_is_trusted)
{
	cart_call_ctx call = { "r", NULL, 0, NULL, NULL };
	cart *c = NULL;

	ck_assert(cart_call_may_access(NULL, "x"));
	ck_assert(cart_call_may_access(&call, "x"));
	ck_assert_int_eq(add_as(NULL, "dave", NULL), CART_OK);
	ck_assert_int_eq(cart_service_get(svc, &call, "dave", &c), CART_OK);
	cart_free(c);
	/* A principal without a subject may act on nobody's cart. */
	cart_principal anon = { NULL, false };
	call.principal = &anon;
	ck_assert(!cart_call_may_access(&call, "dave"));
	/* Subjects compare exactly: no prefix, no case folding. */
	ck_assert(!cart_call_may_access(&(cart_call_ctx){ .principal = &ALICE }, "alice2"));
	ck_assert(!cart_call_may_access(&(cart_call_ctx){ .principal = &ALICE }, "Alice"));
	ck_assert(!cart_call_may_access(&(cart_call_ctx){ .principal = &ALICE }, "alic"));
}
END_TEST

Suite *service_suite(void)
{
	Suite *s = suite_create("service");
	TCase *tc;

	tc = tcase_create("basics");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_service_config_init_defaults);
	tcase_add_test(tc, test_service_free_and_release_accept_null);
	tcase_add_test(tc, test_service_get_unknown_user_is_empty_version_0);
	tcase_add_test(tc, test_service_get_rejects_bad_user_id);
	tcase_add_test(tc, test_service_rejects_bad_item_id);
	tcase_add_test(tc, test_service_add_creates_cart);
	tcase_add_test(tc, test_service_add_merges_same_item);
	tcase_add_test(tc, test_service_versions_increment);
	tcase_add_test(tc, test_service_add_rejected_changes_nothing);
	tcase_add_test(tc, test_service_add_rejected_for_new_user_stores_nothing);
	tcase_add_test(tc, test_service_set_and_remove_unknown_item_not_found);
	tcase_add_test(tc, test_service_set_quantity_updates_and_zero_removes);
	tcase_add_test(tc, test_service_set_same_quantity_writes_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("if_match");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_service_if_match_stale_is_precondition);
	tcase_add_test(tc, test_service_if_match_current_applies);
	tcase_add_test(tc, test_service_if_match_on_user_without_cart);
	suite_add_tcase(s, tc);

	tc = tcase_create("clear_and_expiry");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_service_clear_bumps_version_next_add_new_cart);
	tcase_add_test(tc, test_service_clear_without_cart_writes_nothing);
	tcase_add_test(tc, test_service_expired_cart_reads_empty);
	suite_add_tcase(s, tc);

	tc = tcase_create("races");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_service_retries_lost_race);
	tcase_add_test(tc, test_service_retries_lost_create_race);
	tcase_add_test(tc, test_service_retry_limit_is_exact);
	tcase_add_test(tc, test_service_too_many_conflicts_is_conflict);
	tcase_add_test(tc, test_service_lost_race_with_if_match_is_precondition);
	tcase_add_test(tc, test_service_concurrent_adds_lose_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("events");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_service_events_one_per_commit);
	tcase_add_test(tc, test_service_event_carries_the_call_trace_header);
	tcase_add_test(tc, test_service_passes_the_call_to_load_and_save);
	tcase_add_test(tc, test_service_event_set_quantity_zero_is_removal);
	tcase_add_test(tc, test_service_events_none_on_rejected);
	tcase_add_test(tc, test_service_publish_failure_keeps_commit);
	suite_add_tcase(s, tc);

	tc = tcase_create("idempotency");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_service_idem_replays_same_request);
	tcase_add_test(tc, test_service_idem_record_stored_with_expiry);
	tcase_add_test(tc, test_service_idem_fingerprint_mismatch);
	tcase_add_test(tc, test_service_idem_inflight);
	tcase_add_test(tc, test_service_idem_expired_lease_taken_over);
	tcase_add_test(tc, test_service_idem_not_found_outcome_stored_and_replayed);
	tcase_add_test(tc, test_service_idem_invalid_outcome_stored_and_replayed);
	tcase_add_test(tc, test_service_idem_precondition_not_stored);
	tcase_add_test(tc, test_service_idem_conflict_exhaustion_not_stored);
	tcase_add_test(tc, test_service_idem_backend_failure_not_stored);
	tcase_add_test(tc, test_service_idem_record_expires);
	tcase_add_test(tc, test_service_idem_clear_replayed);
	tcase_add_test(tc, test_service_idem_key_scoped_per_user);
	suite_add_tcase(s, tc);

	tc = tcase_create("authorization");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_service_principal_acts_on_own_cart_only);
	tcase_add_test(tc, test_service_principal_denied_before_anything_is_stored);
	tcase_add_test(tc, test_service_admin_acts_on_any_cart);
	tcase_add_test(tc, test_service_no_principal_is_trusted);
	suite_add_tcase(s, tc);

	tc = tcase_create("failures");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_service_backend_failure_propagates);
	tcase_add_test(tc, test_service_unavailable_passes_through);
	tcase_add_test(tc, test_service_uuid_failure_propagates);
	suite_add_tcase(s, tc);
	return s;
}
