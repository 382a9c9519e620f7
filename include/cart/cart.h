#ifndef CART_CART_H
#define CART_CART_H

/*
 * The cart aggregate: a user's lines of items in one currency.
 *
 * Money is integer minor units (cents) with an ISO 4217 code, so totals
 * never round; every sum is checked for int64 overflow when a line changes,
 * so the accessors below cannot fail.
 *
 * A cart held alone is not thread-safe.  A shared cart (cart_share) is
 * read-only: any number of threads may read it at once, and each holder
 * drops its reference with cart_free.  Change only a cart you hold alone
 * (cart_unshare first); the mutators assert it.
 * Times are milliseconds since the Unix epoch, UTC; 0 means "none".
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cart/error.h"

#define CART_ID_MAX 128            /* user and item ids: 1..128 bytes */
#define CART_UUID_LEN 36           /* textual UUID, without the NUL */
#define CART_NAME_MAX 256          /* item display name, bytes */
#define CART_ATTRS_MAX 20          /* attributes per item */
#define CART_ATTR_KEY_MAX 64       /* bytes */
#define CART_ATTR_VALUE_MAX 256    /* bytes */
#define CART_AMOUNT_MAX 1000000000000LL /* 10^12 minor units per unit price */

typedef struct cart cart;
typedef struct cart_item cart_item;

typedef struct cart_money {
	int64_t amount;      /* minor units */
	char currency[4];    /* three upper-case letters, or "" for none */
} cart_money;

typedef struct cart_attr {
	const char *key;
	const char *value;
} cart_attr;

/* Which rule a CART_EINVALID broke; lets callers say precisely what. */
typedef enum cart_rule {
	CART_RULE_NONE = 0,
	CART_RULE_ID,                /* user/item id empty, too long, bad char */
	CART_RULE_QUANTITY,          /* outside 1..max_item_quantity */
	CART_RULE_CURRENCY,          /* not three upper-case letters */
	CART_RULE_CURRENCY_MISMATCH, /* differs from the cart's currency */
	CART_RULE_AMOUNT,            /* outside 0..CART_AMOUNT_MAX */
	CART_RULE_NAME,              /* longer than CART_NAME_MAX */
	CART_RULE_ATTRIBUTES,        /* too many, key/value too long, dup key */
	CART_RULE_TOO_MANY_LINES,    /* more than max_lines distinct items */
	CART_RULE_OVERFLOW,          /* a total would overflow int64 */
	CART_RULE_TOO_LARGE,         /* the store refuses a cart this big */
} cart_rule;

/* Static, stable text for a rule ("quantity", "currency_mismatch"...). */
const char *cart_rule_name(cart_rule rule);

typedef struct cart_limits {
	int32_t max_item_quantity;   /* per line; default 999 */
	size_t max_lines;            /* distinct items; default 100 */
	int64_t ttl_ms;              /* expiresAt = updatedAt + ttl_ms */
} cart_limits;

/* Fills in the documented defaults (999, 100, 30 days). */
void cart_limits_init(cart_limits *lim);

/* Input for adding a line. Everything is borrowed for the call only. */
typedef struct cart_item_spec {
	const char *item_id;
	int32_t quantity;
	cart_money unit_price;
	const char *name;            /* NULL for none */
	const cart_attr *attrs;      /* attr_count entries, or NULL */
	size_t attr_count;
} cart_item_spec;

/* true if s is 1..CART_ID_MAX bytes of [A-Za-z0-9._:@-]. */
bool cart_id_valid(const char *s);
/* true if s is three upper-case ASCII letters. */
bool cart_currency_valid(const char *s);
/*
 * Checks everything about spec that does not depend on a cart: id,
 * quantity range, currency, amount, name and attributes.  On CART_EINVALID
 * *rule says which rule (rule may be NULL).
 */
int cart_item_spec_check(const cart_item_spec *spec, const cart_limits *lim,
			 cart_rule *rule);

/* --- lifetime ---------------------------------------------------------- */

/*
 * A new empty cart for user_id, with no cart id, version 0 and no times.
 * Returns CART_EINVALID for a bad user id, CART_ENOMEM. Caller owns *out.
 */
int cart_new(cart **out, const char *user_id);
/*
 * A private copy: changing either cart never changes the other.  One
 * allocation, whatever the lines: the copy packs the lines and their
 * strings after its header.  Thread-safe against readers of c.  Caller
 * owns *out.
 */
int cart_clone(cart **out, const cart *c);
/*
 * Another reference to c, without copying: c becomes read-only until all
 * but one holder have called cart_free.  Thread-safe.
 */
cart *cart_share(const cart *c);
/*
 * A hint, no effect on behaviour: starts loading c's first
 * CART_PREFETCH_BYTES into the CPU's cache, so reading the cart (its
 * header, lines and strings sit in one allocation) waits for memory once
 * instead of once per cache line.  For a store about to hand out a cart
 * it has not touched for a while.  Thread-safe; reads nothing.
 */
#define CART_PREFETCH_BYTES 512
void cart_prefetch(const cart *c);
/* true while c has more than one holder. */
bool cart_is_shared(const cart *c);
/*
 * Makes *c a cart the caller holds alone: a shared one is replaced by a
 * deep copy (and the reference dropped).  CART_ENOMEM leaves *c as it was.
 */
int cart_unshare(cart **c);
/*
 * cart_unshare for a writer about to add `line` as a new line (NULL: no
 * new line): a copy it makes has room for exactly that line and its
 * strings, so adding it does not allocate (nor leave the doubled capacity
 * a growth would in the stored cart).
 */
int cart_unshare_adding(cart **c, const cart_item_spec *line);
/* Drops the caller's reference; the last one frees.  Accepts NULL. */
void cart_free(cart *c);

/* --- accessors (cannot fail; pointers borrowed until c changes) -------- */

const char *cart_user_id(const cart *c);
/* NULL while the cart was never stored, or after a clear/expiry. */
const char *cart_id(const cart *c);
int64_t cart_version(const cart *c);
int64_t cart_created_at(const cart *c);
int64_t cart_updated_at(const cart *c);
int64_t cart_expires_at(const cart *c);
size_t cart_line_count(const cart *c);
const cart_item *cart_item_at(const cart *c, size_t i);
const cart_item *cart_find_item(const cart *c, const char *item_id);
/* Sum of quantities over all lines. */
int64_t cart_quantity_total(const cart *c);
/* Subtotal; currency "" when the cart has no lines. */
cart_money cart_subtotal(const cart *c);
/* true if the cart has an id and is past its expiresAt at now_ms. */
bool cart_is_expired(const cart *c, int64_t now_ms);

const char *cart_item_id(const cart_item *it);
int32_t cart_item_quantity(const cart_item *it);
cart_money cart_item_unit_price(const cart_item *it);
cart_money cart_item_line_total(const cart_item *it);
const char *cart_item_name(const cart_item *it);   /* NULL for none */
size_t cart_item_attr_count(const cart_item *it);
cart_attr cart_item_attr_at(const cart_item *it, size_t i);
int64_t cart_item_added_at(const cart_item *it);
int64_t cart_item_updated_at(const cart_item *it);

/* --- domain rules ------------------------------------------------------- */

/*
 * Adds spec as a new line, or, when a line with that item id exists, adds
 * the quantities and takes the new unit price, name and attributes (the
 * latest price wins).  A price in another currency than the cart's is
 * CART_RULE_CURRENCY_MISMATCH, also for the line being replaced.  *created says which.  Checks every rule in lim and
 * overflow of all totals; on any error c is unchanged and *rule (may be
 * NULL) names the rule.  Does not touch version or cart times.
 */
int cart_add_item(cart *c, const cart_item_spec *spec, const cart_limits *lim,
		  int64_t now_ms, bool *created, cart_rule *rule);

/*
 * Sets a line's quantity; 0 removes the line.  CART_ENOTFOUND if no such
 * line, CART_EINVALID (QUANTITY, OVERFLOW) on a broken rule; c unchanged
 * on error.
 */
int cart_set_quantity(cart *c, const char *item_id, int32_t quantity,
		      const cart_limits *lim, int64_t now_ms, cart_rule *rule);

/* Removes a line. CART_ENOTFOUND if absent. */
int cart_remove_item(cart *c, const char *item_id);

/* Drops every line and the cart's identity (id and times); keeps version. */
void cart_clear(cart *c);

/* --- restoring from storage (for adapters) ------------------------------ */

/*
 * Sets identity and bookkeeping as a store read them.  cart_id may be NULL
 * (a cleared cart).  CART_EINVALID if cart_id is not CART_UUID_LEN bytes.
 */
int cart_restore_meta(cart *c, const char *cart_id, int64_t version,
		      int64_t created_at, int64_t updated_at,
		      int64_t expires_at);
/*
 * Appends a stored line as is: checks the spec shape (ids, currency, name,
 * attributes, quantity >= 1), duplicates, currency agreement and
 * overflow, but not the configurable limits, which may have changed since
 * it was written.  CART_EINVALID on data no valid cart can hold.
 */
int cart_restore_item(cart *c, const cart_item_spec *spec, int64_t added_at,
		      int64_t updated_at);

/* Sets a new identity after a first add (or the first add after a clear). */
int cart_begin(cart *c, const char *cart_id, int64_t now_ms);
/* Bookkeeping after a successful mutation: version+1, updatedAt and
 * expiresAt (both 0 for a cleared cart, which has no identity).  expiresAt
 * is rounded down to whole seconds, the resolution stores keep. */
void cart_touch(cart *c, int64_t now_ms, int64_t ttl_ms);

#endif
