#ifndef CART_SERVICE_H
#define CART_SERVICE_H

/*
 * The cart use cases: read a cart, and apply one command (add, set
 * quantity, remove, clear) as one atomic compare-and-set on the stored
 * version, with optimistic-lock preconditions and idempotency.
 *
 * A cart_service is safe to use from many threads at once; it holds no lock
 * of its own (the repository's version check settles races).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cart/call.h"
#include "cart/cart.h"
#include "cart/ports.h"
#include "cart/repo.h"

typedef struct cart_service cart_service;

typedef struct cart_service_config {
	cart_limits limits;
	int max_conflict_retries;   /* attempts after a lost race; default 100 */
	int64_t idem_ttl_ms;        /* completed records kept; default 24 h */
	int64_t idem_lease_ms;      /* a claim counts as in flight; default 60 s */
} cart_service_config;

void cart_service_config_init(cart_service_config *cfg);

/*
 * The ports are copied by value and borrowed: they must outlive the
 * service, and the caller destroys them after cart_service_free.
 * Caller owns *out.  Events are not published here: each commit records
 * them in the repository's outbox, and a cart_relay (cart/relay.h)
 * publishes them.
 */
int cart_service_new(cart_service **out, const cart_service_config *cfg,
		     const cart_repo *repo, const cart_clock *clock,
		     const cart_ids *ids);
void cart_service_free(cart_service *svc);  /* accepts NULL */

/*
 * The user's current cart.  A user with no cart, or whose cart was cleared
 * or has expired, gets an empty cart with no id (its version is that of the
 * last write, 0 if none).  Caller owns *out.  call may be NULL (trusted).
 * CART_EINVALID (bad user id), CART_EACCESS (call's principal may not
 * read this user's cart; nothing is read), CART_EBACKEND, CART_ENOMEM.
 */
int cart_service_get(cart_service *svc, const cart_call_ctx *call,
		     const char *user_id, cart **out);
/*
 * A hint, no effect on behaviour: a request for user_id's cart is on its
 * way (cart_repo_warm).  For the caller to make as early as it knows the
 * user, before work that does not touch the store.  Thread-safe.
 */
void cart_service_warm(cart_service *svc, const char *user_id);
/* The second half of that hint (cart_repo_warm_next), for the caller to
 * make after some other work since cart_service_warm.  Thread-safe. */
void cart_service_warm_next(cart_service *svc, const char *user_id);

typedef enum cart_cmd_kind {
	CART_CMD_ADD_ITEM = 1,
	CART_CMD_SET_QUANTITY,
	CART_CMD_REMOVE_ITEM,
	CART_CMD_CLEAR,
} cart_cmd_kind;

typedef struct cart_result cart_result;

/*
 * Turns an outcome into the bytes an idempotency record keeps (for HTTP:
 * status and body).  Called by the core only for outcomes that are stored
 * (CART_OK, CART_ENOTFOUND, CART_EINVALID) when the command has an
 * idempotency key.  *body is malloc'd; the core takes ownership.
 */
typedef int (*cart_render_fn)(void *ctx, const cart_result *res,
			      int *status, char **body, size_t *body_len);

typedef struct cart_command {
	cart_cmd_kind kind;
	const cart_call_ctx *call;      /* NULL: trusted caller */
	const char *user_id;
	const char *item_id;            /* SET_QUANTITY, REMOVE_ITEM */
	int32_t quantity;               /* SET_QUANTITY; 0 removes */
	const cart_item_spec *item;     /* ADD_ITEM */
	int64_t if_match;               /* expected version, or -1 for none */
	const char *idem_key;           /* NULL: no idempotency */
	const char *fingerprint;        /* required with idem_key */
	cart_render_fn render;          /* required with idem_key */
	void *render_ctx;
} cart_command;

struct cart_result {
	int err;                  /* cart_err of the outcome */
	cart_rule rule;           /* with CART_EINVALID */
	cart *cart;               /* state after the command (owned), or NULL */
	bool created;             /* ADD_ITEM made a new line */
	bool cleared;             /* CLEAR */
	int64_t current_version;  /* with CART_EPRECONDITION */
	/* Set when the outcome was rendered (idempotent commands): */
	bool replayed;            /* a stored outcome, nothing was changed */
	int status;
	char *body;               /* owned */
	size_t body_len;
};

/*
 * Applies cmd.  Returns the outcome code, also in out->err; out is always
 * filled in and must be released with cart_result_release.
 *
 * Without if_match the command is retried on lost races up to
 * max_conflict_retries times, then CART_ECONFLICT.  With if_match, a
 * version that is not current gives CART_EPRECONDITION and
 * out->current_version.  With idem_key: a stored outcome is replayed
 * (out->replayed), a different fingerprint gives CART_EIDEM_MISMATCH, a
 * first request still running gives CART_EIDEM_INFLIGHT.  A principal
 * (cmd->call) that may not act on the user's cart gets CART_EACCESS
 * before anything is read or written, idempotency records included.
 */
int cart_service_execute(cart_service *svc, const cart_command *cmd,
			 cart_result *out);
void cart_result_release(cart_result *res);   /* accepts NULL */

/* Counters since start; safe to read at any time. */
typedef struct cart_service_stats {
	uint64_t commits;
	uint64_t conflicts;          /* lost races that were retried */
} cart_service_stats;

void cart_service_stats_get(const cart_service *svc, cart_service_stats *out);

#endif
