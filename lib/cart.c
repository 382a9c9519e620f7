/*
 * The cart aggregate.  Invariants kept by every mutation:
 *  - all lines share the cart's currency;
 *  - every line total (quantity * unit amount), the subtotal and the
 *    quantity sum fit in int64, so the accessors cannot fail;
 *  - item ids are unique and lines keep insertion order.
 * A cart's lines keep their strings in the cart's arena, one region per
 * line (its attribute array, id, name, attribute strings), so a copy
 * (cart_clone, a writer's copy) is one allocation holding the header, the
 * lines and their bytes packed, and freeing it is one free.  A store's
 * random reads touch one block per cart, not one per line, and a copy
 * moves bytes instead of counting holders line by line.  A line removed
 * or replaced leaves its bytes until the arena is next repacked (a copy,
 * or a full arena).
 *
 * Sharing: a cart counts its holders (refs).  cart_share hands out another
 * reference without copying, so a store can give every reader the one
 * stored cart; a shared cart is never changed (every mutator asserts it is
 * held alone) and cart_unshare makes a private copy for a writer.
 */
#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cart/cart.h"

struct cart_item {
	const char *item_id;       /* these point into the cart's arena */
	const char *name;          /* NULL for none */
	const cart_attr *attrs;    /* NULL when attr_count is 0 */
	uint32_t attr_count;
	uint32_t size;             /* bytes of the arena the line uses */
	int32_t quantity;
	uint32_t id_hash;          /* id_hash(item_id): finds compare it first */
	cart_money unit_price;
	int64_t added_at;
	int64_t updated_at;
};

enum {
	CART_ITEMS_INLINE = 1,     /* items sit in the cart's own allocation */
	CART_ARENA_INLINE = 2,     /* so does the arena */
};

struct cart {
	atomic_uint refs;                /* holders; 1: private, may change */
	unsigned flags;                  /* CART_*_INLINE */
	char cart_id[CART_UUID_LEN + 1]; /* "" when none */
	int64_t version;
	int64_t created_at;
	int64_t updated_at;
	int64_t expires_at;
	cart_item *items;
	size_t n_items;
	size_t cap_items;
	char *arena;                     /* the lines' bytes */
	size_t arena_used;
	size_t arena_cap;
	char user_id[];
};

static const char *const rule_names[] = {
	[CART_RULE_NONE] = "none",
	[CART_RULE_ID] = "id",
	[CART_RULE_QUANTITY] = "quantity",
	[CART_RULE_CURRENCY] = "currency",
	[CART_RULE_CURRENCY_MISMATCH] = "currency_mismatch",
	[CART_RULE_AMOUNT] = "amount",
	[CART_RULE_NAME] = "name",
	[CART_RULE_ATTRIBUTES] = "attributes",
	[CART_RULE_TOO_MANY_LINES] = "too_many_lines",
	[CART_RULE_OVERFLOW] = "overflow",
	[CART_RULE_TOO_LARGE] = "too_large",
};

const char *cart_rule_name(cart_rule rule)
{
	if ((unsigned)rule < sizeof(rule_names) / sizeof(rule_names[0]) &&
	    rule_names[rule])
		return rule_names[rule];
	return "unknown";
}

void cart_limits_init(cart_limits *lim)
{
	lim->max_item_quantity = 999;
	lim->max_lines = 100;
	lim->ttl_ms = 30LL * 24 * 3600 * 1000;
}

static int fail(cart_rule *rule, cart_rule which)
{
	if (rule)
		*rule = which;
	return CART_EINVALID;
}

bool cart_id_valid(const char *s)
{
	size_t n = 0;

	if (!s)
		return false;
	for (; s[n]; n++) {
		unsigned char ch = (unsigned char)s[n];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
			  ch == ':' || ch == '@' || ch == '-';
		if (!ok || n >= CART_ID_MAX)
			return false;
	}
	return n > 0;
}

bool cart_currency_valid(const char *s)
{
	if (!s)
		return false;
	for (int i = 0; i < 3; i++)
		if (s[i] < 'A' || s[i] > 'Z')
			return false;
	return s[3] == '\0';
}

/* Shape of a line, independent of limits that can be configured. */
static int check_shape(const cart_item_spec *spec, cart_rule *rule)
{
	if (!cart_id_valid(spec->item_id))
		return fail(rule, CART_RULE_ID);
	if (!cart_currency_valid(spec->unit_price.currency))
		return fail(rule, CART_RULE_CURRENCY);
	if (spec->unit_price.amount < 0 ||
	    spec->unit_price.amount > CART_AMOUNT_MAX)
		return fail(rule, CART_RULE_AMOUNT);
	if (spec->name && strlen(spec->name) > CART_NAME_MAX)
		return fail(rule, CART_RULE_NAME);
	if (spec->attr_count > CART_ATTRS_MAX ||
	    (spec->attr_count && !spec->attrs))
		return fail(rule, CART_RULE_ATTRIBUTES);
	for (size_t i = 0; i < spec->attr_count; i++) {
		const cart_attr *a = &spec->attrs[i];
		size_t kl = a->key ? strlen(a->key) : 0;
		if (kl == 0 || kl > CART_ATTR_KEY_MAX || !a->value ||
		    strlen(a->value) > CART_ATTR_VALUE_MAX)
			return fail(rule, CART_RULE_ATTRIBUTES);
		for (size_t j = 0; j < i; j++)
			if (strcmp(spec->attrs[j].key, a->key) == 0)
				return fail(rule, CART_RULE_ATTRIBUTES);
	}
	return CART_OK;
}

int cart_item_spec_check(const cart_item_spec *spec, const cart_limits *lim,
			 cart_rule *rule)
{
	int err = check_shape(spec, rule);

	if (err)
		return err;
	if (spec->quantity < 1 || spec->quantity > lim->max_item_quantity)
		return fail(rule, CART_RULE_QUANTITY);
	return CART_OK;
}

/* --- lifetime ----------------------------------------------------------- */

int cart_new(cart **out, const char *user_id)
{
	size_t len;
	cart *c;

	*out = NULL;
	if (!cart_id_valid(user_id))
		return CART_EINVALID;
	len = strlen(user_id);
	c = calloc(1, sizeof(*c) + len + 1);
	if (!c)
		return CART_ENOMEM;
	atomic_init(&c->refs, 1);
	memcpy(c->user_id, user_id, len + 1);
	*out = c;
	return CART_OK;
}

/*
 * FNV-1a of an item id.  A find compares the lines' hashes, which sit in
 * the items array, before their strings: an add scans a cart's lines
 * about four times (room, the old quantity, the add, the new quantity).
 * Equal hashes still compare the strings.
 */
static uint32_t id_hash(const char *id)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* Bytes of the arena a line built from spec takes (spec checked). */
static size_t line_bytes(const cart_item_spec *spec)
{
	size_t need = spec->attr_count * sizeof(cart_attr);

	need += strlen(spec->item_id) + 1;
	if (spec->name)
		need += strlen(spec->name) + 1;
	for (size_t i = 0; i < spec->attr_count; i++)
		need += strlen(spec->attrs[i].key) + strlen(spec->attrs[i].value) + 2;
	return align8(need);
}

/* line_bytes for a spec not yet checked: 0 for one its shape rules out
 * (the add it is room for then fails its checks). */
static size_t room_bytes(const cart_item_spec *spec)
{
	return check_shape(spec, NULL) ? 0 : line_bytes(spec);
}

/* Where a line's bytes start: its attribute array, or its id. */
static char *line_start(const cart_item *it)
{
	return it->attr_count ? (char *)it->attrs : (char *)it->item_id;
}

/* Fills it (except times and quantity) from spec, its bytes at mem
 * (line_bytes(spec) of them, 8-aligned). */
static void line_fill(cart_item *it, char *mem, const cart_item_spec *spec)
{
	cart_attr *attrs = (cart_attr *)(void *)mem;
	char *p = mem + spec->attr_count * sizeof(cart_attr);
	size_t idl = strlen(spec->item_id) + 1;

	it->item_id = memcpy(p, spec->item_id, idl);
	it->id_hash = id_hash(spec->item_id);
	p += idl;
	it->name = NULL;
	if (spec->name) {
		size_t nl = strlen(spec->name) + 1;
		it->name = memcpy(p, spec->name, nl);
		p += nl;
	}
	for (size_t i = 0; i < spec->attr_count; i++) {
		size_t kl = strlen(spec->attrs[i].key) + 1;
		size_t vl = strlen(spec->attrs[i].value) + 1;
		attrs[i].key = memcpy(p, spec->attrs[i].key, kl);
		p += kl;
		attrs[i].value = memcpy(p, spec->attrs[i].value, vl);
		p += vl;
	}
	it->attrs = spec->attr_count ? attrs : NULL;
	it->attr_count = (uint32_t)spec->attr_count;
	it->size = (uint32_t)align8((size_t)(p - mem));
	it->unit_price = spec->unit_price;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* it already holds spec's name and attributes (its bytes can stay). */
static bool item_same_strings(const cart_item *it, const cart_item_spec *spec)
{
	if (!str_eq(it->name, spec->name) || it->attr_count != spec->attr_count)
		return false;
	for (size_t i = 0; i < spec->attr_count; i++)
		if (strcmp(it->attrs[i].key, spec->attrs[i].key) ||
		    strcmp(it->attrs[i].value, spec->attrs[i].value))
			return false;
	return true;
}

/* Copies line src and its bytes to *dst and mem (src->size bytes). */
static void line_move(cart_item *dst, const cart_item *src, char *mem)
{
	const char *from = line_start(src);

	memcpy(mem, from, src->size);
	*dst = *src;
	dst->item_id = mem + (src->item_id - from);
	if (src->name)
		dst->name = mem + (src->name - from);
	if (src->attr_count) {
		cart_attr *attrs = (cart_attr *)(void *)mem;
		for (size_t i = 0; i < src->attr_count; i++) {
			attrs[i].key = mem + (src->attrs[i].key - from);
			attrs[i].value = mem + (src->attrs[i].value - from);
		}
		dst->attrs = attrs;
	}
}

/* Bytes the cart's lines use (its arena less the bytes of removed lines). */
static size_t live_bytes(const cart *c)
{
	size_t n = 0;

	for (size_t i = 0; i < c->n_items; i++)
		n += c->items[i].size;
	return n;
}

/* Where a cart allocated in one block keeps its lines: after user_id. */
static size_t tail_offset(size_t user_len)
{
	return align8(offsetof(cart, user_id) + user_len + 1);
}

/*
 * Room for `lines` more lines in the items array (growing it by doubling,
 * as a restore adds lines one by one).
 */
static int reserve_lines(cart *c, size_t lines)
{
	size_t cap;
	cart_item *items;

	if (c->cap_items - c->n_items >= lines)
		return CART_OK;
	cap = c->cap_items ? c->cap_items * 2 : 4;
	if (cap < c->n_items + lines)
		cap = c->n_items + lines;
	if (c->flags & CART_ITEMS_INLINE) {
		items = malloc(cap * sizeof(*items));
		if (items && c->n_items)
			memcpy(items, c->items, c->n_items * sizeof(*items));
	} else {
		items = realloc(c->items, cap * sizeof(*items));
	}
	if (!items)
		return CART_ENOMEM;
	c->items = items;
	c->cap_items = cap;
	c->flags &= ~CART_ITEMS_INLINE;
	return CART_OK;
}

/*
 * `bytes` free at the end of the arena.  A full arena is replaced by one
 * twice the live bytes it needs, the lines moved into it (which drops the
 * bytes of removed and replaced lines).  The old arena is not freed but
 * handed back in *retired (NULL for none; the caller frees it), so a spec
 * whose strings point into this cart stays readable while its line is
 * built.
 */
static int reserve_bytes(cart *c, size_t bytes, char **retired)
{
	size_t live, cap;
	char *arena;

	*retired = NULL;
	if (c->arena_cap - c->arena_used >= bytes)
		return CART_OK;
	live = live_bytes(c);
	cap = 2 * (live + bytes);
	arena = malloc(cap);
	if (!arena)
		return CART_ENOMEM;
	c->arena_used = 0;
	for (size_t i = 0; i < c->n_items; i++) {
		cart_item moved;
		line_move(&moved, &c->items[i], arena + c->arena_used);
		c->items[i] = moved;
		c->arena_used += moved.size;
	}
	if (!(c->flags & CART_ARENA_INLINE))
		*retired = c->arena;
	c->arena = arena;
	c->arena_cap = cap;
	c->flags &= ~CART_ARENA_INLINE;
	return CART_OK;
}

/*
 * A private copy in one allocation: the header, then the items array with
 * room for `lines` more, then the lines' bytes packed, with `bytes` more.
 */
static int clone_with_room(cart **out, const cart *c, size_t lines, size_t bytes)
{
	size_t len = strlen(c->user_id), tail = tail_offset(len);
	size_t cap = c->n_items + lines, arena = live_bytes(c) + bytes;
	cart *d;

	*out = NULL;
	d = malloc(tail + cap * sizeof(cart_item) + arena);
	if (!d)
		return CART_ENOMEM;
	memcpy(d, c, offsetof(cart, user_id) + len + 1);
	atomic_init(&d->refs, 1);
	d->flags = CART_ITEMS_INLINE | CART_ARENA_INLINE;
	d->items = (cart_item *)(void *)((char *)d + tail);
	d->cap_items = cap;
	d->arena = (char *)(d->items + cap);
	d->arena_cap = arena;
	d->arena_used = 0;
	for (size_t i = 0; i < c->n_items; i++) {
		line_move(&d->items[i], &c->items[i], d->arena + d->arena_used);
		d->arena_used += c->items[i].size;
	}
	*out = d;
	return CART_OK;
}

int cart_clone(cart **out, const cart *c)
{
	return clone_with_room(out, c, 0, 0);
}

void cart_prefetch(const cart *c)
{
	const char *p = (const char *)c;

	for (size_t at = 0; at < CART_PREFETCH_BYTES; at += 64)
		__builtin_prefetch(p + at);
}

cart *cart_share(const cart *c)
{
	cart *m = (cart *)c;   /* the count is the one field a holder changes */

	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

bool cart_is_shared(const cart *c)
{
	return atomic_load_explicit(&((cart *)c)->refs, memory_order_acquire) > 1;
}

int cart_unshare(cart **c)
{
	return cart_unshare_adding(c, NULL);
}

int cart_unshare_adding(cart **c, const cart_item_spec *line)
{
	cart *copy;
	int err;

	if (!cart_is_shared(*c))
		return CART_OK;
	err = clone_with_room(&copy, *c, line ? 1 : 0, line ? room_bytes(line) : 0);
	if (err)
		return err;
	cart_free(*c);
	*c = copy;
	return CART_OK;
}

void cart_free(cart *c)
{
	if (!c)
		return;
	/* The last holder frees; its acquire sees every holder's reads done. */
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (!(c->flags & CART_ITEMS_INLINE))
		free(c->items);
	if (!(c->flags & CART_ARENA_INLINE))
		free(c->arena);
	free(c);
}

/* --- accessors ---------------------------------------------------------- */

const char *cart_user_id(const cart *c) { return c->user_id; }
const char *cart_id(const cart *c) { return c->cart_id[0] ? c->cart_id : NULL; }
int64_t cart_version(const cart *c) { return c->version; }
int64_t cart_created_at(const cart *c) { return c->created_at; }
int64_t cart_updated_at(const cart *c) { return c->updated_at; }
int64_t cart_expires_at(const cart *c) { return c->expires_at; }
size_t cart_line_count(const cart *c) { return c->n_items; }

const cart_item *cart_item_at(const cart *c, size_t i)
{
	return i < c->n_items ? &c->items[i] : NULL;
}

static ptrdiff_t find_index(const cart *c, const char *item_id)
{
	uint32_t h = id_hash(item_id);

	for (size_t i = 0; i < c->n_items; i++)
		if (c->items[i].id_hash == h && strcmp(c->items[i].item_id, item_id) == 0)
			return (ptrdiff_t)i;
	return -1;
}

const cart_item *cart_find_item(const cart *c, const char *item_id)
{
	ptrdiff_t i = find_index(c, item_id);
	return i < 0 ? NULL : &c->items[i];
}

int64_t cart_quantity_total(const cart *c)
{
	int64_t sum = 0;
	for (size_t i = 0; i < c->n_items; i++)
		sum += c->items[i].quantity;
	return sum;
}

cart_money cart_subtotal(const cart *c)
{
	cart_money m = { 0, "" };

	for (size_t i = 0; i < c->n_items; i++)
		m.amount += (int64_t)c->items[i].quantity * c->items[i].unit_price.amount;
	if (c->n_items)
		memcpy(m.currency, c->items[0].unit_price.currency, 4);
	return m;
}

bool cart_is_expired(const cart *c, int64_t now_ms)
{
	return c->cart_id[0] && c->expires_at > 0 && now_ms >= c->expires_at;
}

const char *cart_item_id(const cart_item *it) { return it->item_id; }
int32_t cart_item_quantity(const cart_item *it) { return it->quantity; }
cart_money cart_item_unit_price(const cart_item *it) { return it->unit_price; }
const char *cart_item_name(const cart_item *it) { return it->name; }
size_t cart_item_attr_count(const cart_item *it) { return it->attr_count; }
int64_t cart_item_added_at(const cart_item *it) { return it->added_at; }
int64_t cart_item_updated_at(const cart_item *it) { return it->updated_at; }

cart_money cart_item_line_total(const cart_item *it)
{
	cart_money m = it->unit_price;
	m.amount = (int64_t)it->quantity * it->unit_price.amount;
	return m;
}

cart_attr cart_item_attr_at(const cart_item *it, size_t i)
{
	assert(i < it->attr_count);
	return it->attrs[i];
}

/* --- rules -------------------------------------------------------------- */

/*
 * Would the cart's totals still fit if line `skip` (or none, -1) had
 * quantity q at amount a instead?  Checks line total, subtotal and the
 * quantity sum without ever overflowing.
 */
static bool totals_fit(const cart *c, ptrdiff_t skip, int64_t q, int64_t a)
{
	int64_t sub, qty = q;

	if (__builtin_mul_overflow(q, a, &sub))
		return false;
	for (size_t i = 0; i < c->n_items; i++) {
		int64_t line;
		if ((ptrdiff_t)i == skip)
			continue;
		line = (int64_t)c->items[i].quantity * c->items[i].unit_price.amount;
		if (__builtin_add_overflow(sub, line, &sub) ||
		    __builtin_add_overflow(qty, c->items[i].quantity, &qty))
			return false;
	}
	return true;
}

static const char *cart_currency(const cart *c)
{
	return c->n_items ? c->items[0].unit_price.currency : NULL;
}

/*
 * Builds a line from spec at the end of c's arena (growing it if full):
 * *it gets its strings, size and price; the caller sets the rest.
 */
static int line_build(cart *c, const cart_item_spec *spec, cart_item *it)
{
	char *retired;
	int err = reserve_bytes(c, line_bytes(spec), &retired);

	if (err)
		return err;
	line_fill(it, c->arena + c->arena_used, spec);
	c->arena_used += it->size;
	free(retired);   /* spec may have pointed into it */
	return CART_OK;
}

int cart_add_item(cart *c, const cart_item_spec *spec, const cart_limits *lim,
		  int64_t now_ms, bool *created, cart_rule *rule)
{
	const char *cur = cart_currency(c);
	ptrdiff_t at;
	int64_t q;
	cart_item it;
	int err;

	assert(!cart_is_shared(c));   /* see cart_unshare */
	if (rule)
		*rule = CART_RULE_NONE;
	err = cart_item_spec_check(spec, lim, rule);
	if (err)
		return err;
	at = find_index(c, spec->item_id);
	if (cur && strcmp(cur, spec->unit_price.currency) != 0)
		return fail(rule, CART_RULE_CURRENCY_MISMATCH);
	q = spec->quantity + (at >= 0 ? (int64_t)c->items[at].quantity : 0);
	if (q > lim->max_item_quantity)
		return fail(rule, CART_RULE_QUANTITY);
	if (at < 0 && c->n_items >= lim->max_lines)
		return fail(rule, CART_RULE_TOO_MANY_LINES);
	if (!totals_fit(c, at, q, spec->unit_price.amount))
		return fail(rule, CART_RULE_OVERFLOW);
	if (at < 0 && reserve_lines(c, 1))
		return CART_ENOMEM;
	if (at >= 0 && item_same_strings(&c->items[at], spec)) {
		/* a merge that keeps the line's strings keeps its bytes */
		c->items[at].quantity = (int32_t)q;
		c->items[at].unit_price = spec->unit_price;
		c->items[at].updated_at = now_ms;
		if (created)
			*created = false;
		return CART_OK;
	}
	if (line_build(c, spec, &it))
		return CART_ENOMEM;
	it.quantity = (int32_t)q;
	it.updated_at = now_ms;
	if (at >= 0) {
		it.added_at = c->items[at].added_at;
		c->items[at] = it;      /* the old bytes stay until a repack */
	} else {
		it.added_at = now_ms;
		c->items[c->n_items++] = it;
	}
	if (created)
		*created = at < 0;
	return CART_OK;
}

int cart_set_quantity(cart *c, const char *item_id, int32_t quantity,
		      const cart_limits *lim, int64_t now_ms, cart_rule *rule)
{
	ptrdiff_t at;

	assert(!cart_is_shared(c));   /* see cart_unshare */
	if (rule)
		*rule = CART_RULE_NONE;
	if (quantity < 0 || quantity > lim->max_item_quantity)
		return fail(rule, CART_RULE_QUANTITY);
	at = find_index(c, item_id);
	if (at < 0)
		return CART_ENOTFOUND;
	if (quantity == 0)
		return cart_remove_item(c, item_id);
	if (!totals_fit(c, at, quantity, c->items[at].unit_price.amount))
		return fail(rule, CART_RULE_OVERFLOW);
	c->items[at].quantity = quantity;
	c->items[at].updated_at = now_ms;
	return CART_OK;
}

int cart_remove_item(cart *c, const char *item_id)
{
	ptrdiff_t at = find_index(c, item_id);

	assert(!cart_is_shared(c));   /* see cart_unshare */
	if (at < 0)
		return CART_ENOTFOUND;
	memmove(&c->items[at], &c->items[at + 1],
		(c->n_items - (size_t)at - 1) * sizeof(*c->items));
	c->n_items--;
	return CART_OK;
}

void cart_clear(cart *c)
{
	assert(!cart_is_shared(c));   /* see cart_unshare */
	c->n_items = 0;
	c->arena_used = 0;
	c->cart_id[0] = '\0';
	c->created_at = c->updated_at = c->expires_at = 0;
}

/* --- restoring ---------------------------------------------------------- */

int cart_restore_meta(cart *c, const char *cart_id, int64_t version,
		      int64_t created_at, int64_t updated_at,
		      int64_t expires_at)
{
	assert(!cart_is_shared(c));   /* see cart_unshare */
	if (version < 0 || (cart_id && strlen(cart_id) != CART_UUID_LEN))
		return CART_EINVALID;
	if (cart_id)
		memcpy(c->cart_id, cart_id, CART_UUID_LEN + 1);
	else
		c->cart_id[0] = '\0';
	c->version = version;
	c->created_at = created_at;
	c->updated_at = updated_at;
	c->expires_at = expires_at;
	return CART_OK;
}

int cart_restore_item(cart *c, const cart_item_spec *spec, int64_t added_at,
		      int64_t updated_at)
{
	const char *cur = cart_currency(c);
	cart_item it;
	int err = check_shape(spec, NULL);

	assert(!cart_is_shared(c));   /* see cart_unshare */
	if (err)
		return err;
	if (spec->quantity < 1 || find_index(c, spec->item_id) >= 0 ||
	    (cur && strcmp(cur, spec->unit_price.currency) != 0) ||
	    !totals_fit(c, -1, spec->quantity, spec->unit_price.amount))
		return CART_EINVALID;
	if (reserve_lines(c, 1) || line_build(c, spec, &it))
		return CART_ENOMEM;
	it.quantity = spec->quantity;
	it.added_at = added_at;
	it.updated_at = updated_at;
	c->items[c->n_items++] = it;
	return CART_OK;
}

int cart_begin(cart *c, const char *cart_id, int64_t now_ms)
{
	assert(!cart_is_shared(c));   /* see cart_unshare */
	if (!cart_id || strlen(cart_id) != CART_UUID_LEN)
		return CART_EINVALID;
	memcpy(c->cart_id, cart_id, CART_UUID_LEN + 1);
	c->created_at = now_ms;
	return CART_OK;
}

void cart_touch(cart *c, int64_t now_ms, int64_t ttl_ms)
{
	assert(!cart_is_shared(c));   /* see cart_unshare */
	c->version++;
	/* A cleared cart has no times, like one never stored.  Expiry is kept
	 * in whole seconds, the resolution of store TTLs (DynamoDB's). */
	c->updated_at = c->cart_id[0] ? now_ms : 0;
	c->expires_at = c->cart_id[0] ? (now_ms + ttl_ms) / 1000 * 1000 : 0;
}
