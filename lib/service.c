/*
 * Cart use cases.  Every command is: load the user's record, check the
 * precondition, apply the domain rule, then one compare-and-set write of
 * the new state together with its events and idempotency record.  A lost
 * race is retried from the load (unless the client pinned a version with
 * If-Match), so concurrent commands never lose updates and the service
 * needs no lock of its own.
 */
#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cart/service.h"

struct cart_service {
	cart_service_config cfg;
	cart_repo repo;
	cart_clock clock;
	cart_ids ids;
	atomic_uint_fast64_t commits;
	atomic_uint_fast64_t conflicts;
};

void cart_service_config_init(cart_service_config *cfg)
{
	cart_limits_init(&cfg->limits);
	cfg->max_conflict_retries = 100;
	cfg->idem_ttl_ms = 24LL * 3600 * 1000;
	cfg->idem_lease_ms = 60LL * 1000;
}

int cart_service_new(cart_service **out, const cart_service_config *cfg,
		     const cart_repo *repo, const cart_clock *clock,
		     const cart_ids *ids)
{
	cart_service *svc;

	*out = NULL;
	if (!cfg || !repo || !repo->ops || repo->ops->version < 1 || !clock ||
	    !clock->ops || clock->ops->version < 1 || !ids || !ids->ops ||
	    ids->ops->version < 1 || cfg->limits.max_item_quantity < 1 ||
	    cfg->limits.max_lines < 1 || cfg->limits.ttl_ms < 1 ||
	    cfg->max_conflict_retries < 0)
		return CART_EINVALID;
	svc = calloc(1, sizeof(*svc));
	if (!svc)
		return CART_ENOMEM;
	svc->cfg = *cfg;
	svc->repo = *repo;
	svc->clock = *clock;
	svc->ids = *ids;
	*out = svc;
	return CART_OK;
}

void cart_service_free(cart_service *svc)
{
	free(svc);
}

void cart_service_stats_get(const cart_service *svc, cart_service_stats *out)
{
	out->commits = atomic_load(&svc->commits);
	out->conflicts = atomic_load(&svc->conflicts);
}

void cart_result_release(cart_result *res)
{
	if (!res)
		return;
	cart_free(res->cart);
	free(res->body);
	memset(res, 0, sizeof(*res));
}

/*
 * The user's current state: a stored cart, or an empty one.  An expired
 * cart reads like a cleared one but keeps its version, so versions never
 * go back.  *out may be shared with the store (read-only, see cart.h): a
 * read costs no copy, and a writer takes its own (cart_unshare).
 */
static int load_current(cart_service *svc, const cart_call_ctx *call,
			const char *user_id, int64_t now, cart **out)
{
	int err = cart_repo_load(&svc->repo, call, user_id, out);

	if (err == CART_ENOTFOUND)
		return cart_new(out, user_id);
	if (err)
		return err;
	if (cart_is_expired(*out, now)) {
		if ((err = cart_unshare(out))) {
			cart_free(*out);
			*out = NULL;
			return err;
		}
		cart_clear(*out);
	}
	return CART_OK;
}

bool cart_call_may_access(const cart_call_ctx *call, const char *user_id)
{
	const cart_principal *p = call ? call->principal : NULL;

	return !p || p->admin || (p->sub && user_id && !strcmp(p->sub, user_id));
}

void cart_service_warm(cart_service *svc, const char *user_id)
{
	cart_repo_warm(&svc->repo, user_id);
}

void cart_service_warm_next(cart_service *svc, const char *user_id)
{
	cart_repo_warm_next(&svc->repo, user_id);
}

int cart_service_get(cart_service *svc, const cart_call_ctx *call,
		     const char *user_id, cart **out)
{
	*out = NULL;
	if (!cart_id_valid(user_id))
		return CART_EINVALID;
	if (!cart_call_may_access(call, user_id))
		return CART_EACCESS;
	return load_current(svc, call, user_id, cart_clock_now(&svc->clock),
			    out);
}

/* --- applying one command ----------------------------------------------- */

typedef struct attempt {
	cart *cart;                 /* loaded, unshared, then mutated in place */
	int64_t base_version;
	bool write;                 /* false: the command changes nothing */
	cart_event event;
} attempt;

static int new_event(cart_service *svc, attempt *a, cart_event_type type,
		     const char *item_id, int64_t now)
{
	cart_event *ev = &a->event;

	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->occurred_at = now;
	strcpy(ev->user_id, cart_user_id(a->cart));
	if (item_id)
		strcpy(ev->item_id, item_id);
	return cart_ids_uuid(&svc->ids, ev->event_id);
}

/* The caused-by trace of the request, if any and if it fits. */
static void copy_trace(cart_event *ev, const cart_call_ctx *call)
{
	const char *h = call ? call->trace_header : NULL;

	if (h && strlen(h) < sizeof(ev->trace_header))
		strcpy(ev->trace_header, h);
}

static int apply_add(cart_service *svc, const cart_command *cmd, attempt *a,
		     int64_t now, cart_result *out)
{
	const cart_item *old = cart_find_item(a->cart, cmd->item->item_id);
	int32_t before = old ? cart_item_quantity(old) : 0;
	int err;

	err = cart_add_item(a->cart, cmd->item, &svc->cfg.limits, now,
			    &out->created, &out->rule);
	if (err)
		return err;
	if (!cart_id(a->cart)) {
		char id[CART_UUID_LEN + 1];
		err = cart_ids_uuid(&svc->ids, id);
		if (!err)
			err = cart_begin(a->cart, id, now);
		if (err)
			return err;
	}
	err = new_event(svc, a, CART_EVENT_ITEM_ADDED, cmd->item->item_id, now);
	a->event.quantity_before = before;
	a->event.quantity_after =
		cart_item_quantity(cart_find_item(a->cart, cmd->item->item_id));
	a->event.unit_price = cmd->item->unit_price;
	a->write = true;
	return err;
}

static int apply_change(cart_service *svc, const cart_command *cmd, attempt *a,
			int64_t now, cart_result *out)
{
	const cart_item *it = cart_find_item(a->cart, cmd->item_id);
	int32_t q = cmd->kind == CART_CMD_REMOVE_ITEM ? 0 : cmd->quantity;
	cart_money price;
	int32_t before;
	int err;

	if (!it)
		return CART_ENOTFOUND;
	before = cart_item_quantity(it);
	price = cart_item_unit_price(it);
	if (q == before && q <= svc->cfg.limits.max_item_quantity) {
		/* Nothing changes, so nothing is written: no version, no
		 * event (docs/events/README.md), like a clear of no cart. */
		return CART_OK;
	}
	if (cmd->kind == CART_CMD_REMOVE_ITEM)
		err = cart_remove_item(a->cart, cmd->item_id);
	else
		err = cart_set_quantity(a->cart, cmd->item_id, q,
					&svc->cfg.limits, now, &out->rule);
	if (err)
		return err;
	err = new_event(svc, a, q ? CART_EVENT_ITEM_QUANTITY_CHANGED
				  : CART_EVENT_ITEM_REMOVED,
			cmd->item_id, now);
	a->event.quantity_before = before;
	a->event.quantity_after = q;
	a->event.unit_price = price;
	a->write = true;
	return err;
}

static int apply_clear(cart_service *svc, attempt *a, int64_t now,
		       cart_result *out)
{
	char old_id[CART_UUID_LEN + 1];
	int64_t qty = cart_quantity_total(a->cart);
	int err;

	out->cleared = true;
	if (!cart_id(a->cart))
		return CART_OK;     /* nothing stored to clear: write nothing */
	strcpy(old_id, cart_id(a->cart));
	cart_clear(a->cart);
	err = new_event(svc, a, CART_EVENT_CLEARED, NULL, now);
	strcpy(a->event.cart_id, old_id);
	a->event.item_count_before = qty;
	a->write = true;
	return err;
}

static int apply(cart_service *svc, const cart_command *cmd, attempt *a,
		 int64_t now, cart_result *out)
{
	switch (cmd->kind) {
	case CART_CMD_ADD_ITEM:
		return apply_add(svc, cmd, a, now, out);
	case CART_CMD_SET_QUANTITY:
	case CART_CMD_REMOVE_ITEM:
		return apply_change(svc, cmd, a, now, out);
	case CART_CMD_CLEAR:
		return apply_clear(svc, a, now, out);
	}
	return CART_EINVALID;
}

/* Renders res into a COMPLETE idempotency record for cmd. */
static int render_record(cart_service *svc, const cart_command *cmd,
			 cart_result *res, int64_t now, cart_idem *rec)
{
	int err;

	memset(rec, 0, sizeof(*rec));
	rec->key = (char *)cmd->idem_key;
	rec->fingerprint = (char *)cmd->fingerprint;
	rec->state = CART_IDEM_COMPLETE;
	rec->expires_at = now + svc->cfg.idem_ttl_ms;
	free(res->body);
	res->body = NULL;
	err = cmd->render(cmd->render_ctx, res, &res->status, &res->body,
			  &res->body_len);
	rec->status = res->status;
	rec->body = res->body;
	rec->body_len = res->body_len;
	return err;
}

static void backoff(cart_service *svc, int attempt_no)
{
	int64_t cap;

	if (attempt_no < 2)
		return;             /* the first retry is immediate */
	cap = attempt_no > 7 ? 64 : (1 << (attempt_no - 1));
	cart_clock_sleep(&svc->clock, (int64_t)cart_ids_random(&svc->ids, (uint64_t)cap + 1));
}

/* One load-apply-save round.  CART_ECONFLICT means: go round again. */
static int attempt_once(cart_service *svc, const cart_command *cmd,
			cart_result *out, bool *wrote)
{
	int64_t now = cart_clock_now(&svc->clock);
	attempt a = { 0 };
	cart_idem rec;
	cart_write w;
	int err;

	err = load_current(svc, cmd->call, cmd->user_id, now, &a.cart);
	if (err)
		return err;
	a.base_version = cart_version(a.cart);
	if (cmd->if_match >= 0 && cmd->if_match != a.base_version) {
		out->current_version = a.base_version;
		cart_free(a.cart);
		return CART_EPRECONDITION;
	}
	/* The one copy a write makes: the store keeps the result as it is.
	 * An add of a new line gets its slot and bytes in the copy. */
	if ((err = cart_unshare_adding(&a.cart, cmd->kind == CART_CMD_ADD_ITEM &&
				       !cart_find_item(a.cart, cmd->item->item_id)
				       ? cmd->item : NULL))) {
		cart_free(a.cart);
		return err;
	}
	err = apply(svc, cmd, &a, now, out);
	if (err || !a.write) {
		if (!err)
			out->cart = a.cart;
		else
			cart_free(a.cart);
		return err;
	}
	cart_touch(a.cart, now, svc->cfg.limits.ttl_ms);
	if (!a.event.cart_id[0])
		strcpy(a.event.cart_id, cart_id(a.cart));
	a.event.cart_version = cart_version(a.cart);
	copy_trace(&a.event, cmd->call);
	out->cart = a.cart;
	memset(&w, 0, sizeof(w));
	w.user_id = cmd->user_id;
	w.expected_version = a.base_version;
	w.cart = a.cart;
	w.events = &a.event;
	w.event_count = 1;
	w.call = cmd->call;   /* the request's deadline bounds the store too */
	if (cmd->idem_key) {
		err = render_record(svc, cmd, out, now, &rec);
		if (err)
			return err;
		w.idem = &rec;
	}
	err = cart_repo_save(&svc->repo, &w);
	if (err == CART_EINVALID)
		out->rule = CART_RULE_TOO_LARGE;   /* the store refused its size */
	if (err == CART_OK) {
		*wrote = true;   /* its event is in the outbox now */
		atomic_fetch_add(&svc->commits, 1);
	}
	return err;
}

static int run_command(cart_service *svc, const cart_command *cmd,
		       cart_result *out, bool *wrote)
{
	int err = CART_ECONFLICT;

	for (int i = 0; i <= svc->cfg.max_conflict_retries; i++) {
		if (i) {
			atomic_fetch_add(&svc->conflicts, 1);
			backoff(svc, i);
		}
		cart_free(out->cart);
		out->cart = NULL;
		out->created = out->cleared = false;
		out->rule = CART_RULE_NONE;
		err = attempt_once(svc, cmd, out, wrote);
		if (err != CART_ECONFLICT)
			break;
		if (cmd->if_match >= 0) {
			/* The pinned version was current but lost the race. */
			cart *now_cart = NULL;
			err = load_current(svc, cmd->call, cmd->user_id,
					   cart_clock_now(&svc->clock), &now_cart);
			if (!err) {
				out->current_version = cart_version(now_cart);
				err = CART_EPRECONDITION;
			}
			cart_free(now_cart);
			break;
		}
	}
	if (err) {
		/* Drop a rendering of a success that did not commit. */
		cart_free(out->cart);
		out->cart = NULL;
		free(out->body);
		out->body = NULL;
		out->body_len = 0;
		out->status = 0;
	}
	return err;
}

/* --- idempotency -------------------------------------------------------- */

enum { IDEM_PROCEED = 1 };

/*
 * Looks the key up and claims it.  Returns IDEM_PROCEED once this request
 * holds the claim, CART_OK with out->replayed for a stored outcome, or an
 * error (mismatch, in flight, backend).
 */
static int idem_begin(cart_service *svc, const cart_command *cmd,
		      cart_result *out)
{
	for (int tries = 0; tries < 3; tries++) {
		int64_t now = cart_clock_now(&svc->clock);
		cart_idem *rec = NULL;
		cart_idem claim;
		int err = cart_repo_idem_get(&svc->repo, cmd->user_id,
					     cmd->idem_key, now, &rec);

		if (err == CART_OK) {
			bool same = strcmp(rec->fingerprint, cmd->fingerprint) == 0;
			bool pending = rec->state == CART_IDEM_PENDING;
			bool live = rec->expires_at > now;
			if (!same && (!pending || live))
				err = CART_EIDEM_MISMATCH;
			else if (!pending) {
				out->replayed = true;
				out->status = rec->status;
				out->body = rec->body;
				out->body_len = rec->body_len;
				rec->body = NULL;
			} else if (live)
				err = CART_EIDEM_INFLIGHT;
			else
				err = CART_ENOTFOUND;  /* abandoned claim */
			cart_idem_free(rec);
			if (err != CART_ENOTFOUND)
				return err;
		} else if (err != CART_ENOTFOUND) {
			return err;
		}
		memset(&claim, 0, sizeof(claim));
		claim.key = (char *)cmd->idem_key;
		claim.fingerprint = (char *)cmd->fingerprint;
		claim.state = CART_IDEM_PENDING;
		claim.expires_at = now + svc->cfg.idem_lease_ms;
		err = cart_repo_idem_claim(&svc->repo, cmd->user_id, &claim, now);
		if (err == CART_OK)
			return IDEM_PROCEED;
		if (err != CART_ECONFLICT)
			return err;
	}
	return CART_EIDEM_INFLIGHT;
}

/* Records or releases the claim once the command has an outcome. */
static void idem_finish(cart_service *svc, const cart_command *cmd,
			cart_result *out, bool written)
{
	int64_t now = cart_clock_now(&svc->clock);
	bool keep = out->err == CART_OK || out->err == CART_ENOTFOUND ||
		    out->err == CART_EINVALID;
	cart_idem rec;

	if (written)
		return;             /* stored atomically with the cart */
	if (keep && render_record(svc, cmd, out, now, &rec) == CART_OK &&
	    cart_repo_idem_complete(&svc->repo, cmd->user_id, &rec) == CART_OK)
		return;
	cart_repo_idem_release(&svc->repo, cmd->user_id, cmd->idem_key,
			       cmd->fingerprint);
}

static bool command_valid(const cart_command *cmd, cart_rule *rule)
{
	*rule = CART_RULE_ID;
	if (!cart_id_valid(cmd->user_id))
		return false;
	if ((cmd->kind == CART_CMD_SET_QUANTITY ||
	     cmd->kind == CART_CMD_REMOVE_ITEM) && !cart_id_valid(cmd->item_id))
		return false;
	*rule = CART_RULE_NONE;
	if (cmd->kind == CART_CMD_ADD_ITEM && !cmd->item)
		return false;
	if (cmd->idem_key && (!cmd->fingerprint || !cmd->render ||
			      !*cmd->idem_key ||
			      strlen(cmd->idem_key) > CART_IDEM_KEY_MAX))
		return false;
	return cmd->kind >= CART_CMD_ADD_ITEM && cmd->kind <= CART_CMD_CLEAR;
}

int cart_service_execute(cart_service *svc, const cart_command *cmd,
			 cart_result *out)
{
	bool wrote = false;
	int err;

	memset(out, 0, sizeof(*out));
	out->current_version = -1;
	if (!command_valid(cmd, &out->rule))
		return out->err = CART_EINVALID;
	if (!cart_call_may_access(cmd->call, cmd->user_id))
		return out->err = CART_EACCESS;
	if (cmd->idem_key) {
		err = idem_begin(svc, cmd, out);
		if (err != IDEM_PROCEED)
			return out->err = err;
	}
	out->err = run_command(svc, cmd, out, &wrote);
	if (cmd->idem_key)
		idem_finish(svc, cmd, out, wrote);
	return out->err;
}
