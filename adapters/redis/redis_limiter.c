/*
 * The Redis rate limiter: a GCRA Lua script run with EVALSHA over a small
 * pool of blocking hiredis connections.  See redis_limiter.h for the
 * contract; the times here are real (CLOCK_MONOTONIC): they bound I/O.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cart/error.h"
#include "redis/redis_limiter.h"

/*
 * KEYS[1]: the key.  ARGV[1]: T in us, ARGV[2]: burst.  Returns {allowed,
 * remaining, reset_us, retry_after_us}.  TIME is allowed before a write
 * since Redis replicates scripts by their effects (the default from 5,
 * the only mode from 7).  TAT (~1.8e15 us) is an exact integer in Lua's
 * doubles; '%.0f' writes it without an exponent.
 */
static const char gcra_script[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local T = tonumber(ARGV[1])\n"
	"local burst = tonumber(ARGV[2])\n"
	"local tat = now\n"
	"local v = redis.call('GET', KEYS[1])\n"
	"if v then\n"
	"  tat = tonumber(v)\n"
	"  if tat < now then tat = now end\n"
	"end\n"
	"local allow_at = tat + T - burst * T\n"
	"if now < allow_at then\n"
	"  return {0, 0, tat - now, allow_at - now}\n"
	"end\n"
	"local new_tat = tat + T\n"
	"redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',\n"
	"           math.ceil((new_tat - now) / 1000))\n"
	"return {1, math.floor((now - (new_tat - burst * T)) / T), new_tat - now, 0}\n";

#define HOST_MAX 255
#define CRED_MAX 255
#define SHA_LEN 40
#define WHY_MAX 160

struct conn {
	redisContext *ctx;       /* non-blocking; NULL: not connected */
	bool busy;               /* lent to a take */
	uint64_t gen;            /* the password generation it logged in with */
};

struct redis_limiter {
	/* immutable after _new */
	cart_limit_policy policy;
	bool fail_allow;
	char host[HOST_MAX + 1];
	int port;
	int db;
	char user[CRED_MAX + 1];     /* "" : AUTH with the password only */
	char prefix[CART_REDIS_PREFIX_MAX + 1];
	size_t prefix_len;
	int64_t connect_us, command_us, reconnect_us;
	char t_us[24];               /* ARGV[1] */
	char burst[24];              /* ARGV[2] */
	void (*log)(void *ctx, int level, const char *msg, const char *fields);
	void *log_ctx;

	pthread_mutex_t lock;        /* guards the fields below and slots[] */
	pthread_cond_t freed;        /* a slot was given back (monotonic) */
	char sha[SHA_LEN + 1];       /* "" until SCRIPT LOAD answered */
	char pass[CRED_MAX + 1];     /* "" : no AUTH; replaced on rotation */
	uint64_t pass_gen;           /* bumped by each new password */
	int64_t next_connect_us;     /* 0: connect at will; else not before */
	bool down;                   /* the last take failed (for the log) */
	int nslots;
	struct conn *slots;

	_Atomic uint64_t allowed, limited, store_errors;
};

/* Why a step failed; server_said: Redis answered with an error reply. */
struct failure {
	char why[WHY_MAX];
	bool server_said;
	bool keep_conn;          /* the connection is still usable */
};

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static void fail_with(struct failure *f, bool server_said, const char *what,
		      const char *detail)
{
	snprintf(f->why, sizeof(f->why), "%s: %s", what, detail);
	f->server_said = server_said;
	f->keep_conn = false;
}

/* --- SIGPIPE (hiredis writes with write(2), not send(MSG_NOSIGNAL)) ---- */

/* As libpq does: block SIGPIPE in this thread, and later swallow one that
 * our own write raised, leaving one that was already pending alone. */
struct sigpipe_guard {
	sigset_t old;
	bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
	sigset_t pipe_set, pending;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
	g->was_pending = false;
	if (sigismember(&g->old, SIGPIPE) && sigpending(&pending) == 0)
		g->was_pending = sigismember(&pending, SIGPIPE);
}

static void sigpipe_restore(struct sigpipe_guard *g, bool failed)
{
	sigset_t pipe_set, pending;
	static const struct timespec zero = { 0, 0 };

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	if (failed && !g->was_pending && sigpending(&pending) == 0 &&
	    sigismember(&pending, SIGPIPE))
		sigtimedwait(&pipe_set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* --- one connection ----------------------------------------------------- */

/*
 * Connections are non-blocking and every wait is a ppoll up to a deadline,
 * so a timeout is as exact as the clock (SO_RCVTIMEO, what hiredis's
 * blocking mode uses, rounds up to scheduler ticks: 5 ms became 12).
 * hiredis still does the protocol: redisAppendCommandArgv formats,
 * redisBufferWrite/redisBufferRead move bytes, redisGetReplyFromReader
 * parses -- the calls its own async adapters are built on.
 */

static void conn_close(struct conn *c)
{
	if (c->ctx)
		redisFree(c->ctx);
	c->ctx = NULL;
}

/* Waits until fd is ready for events or the deadline passes (false). */
static bool wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - mono_us();
		if (left <= 0)
			return false;
		struct timespec ts = { left / 1000000, (left % 1000000) * 1000 };
		int n = ppoll(&pfd, 1, &ts, NULL);
		if (n > 0)
			return true;   /* ready, or an error the next call reports */
		if (n < 0 && errno != EINTR)
			return false;
	}
}

static int64_t step_deadline(int64_t deadline, int64_t step_us)
{
	return min64(deadline, mono_us() + step_us);
}

/*
 * One command within min(deadline, now + command_us).  NULL with f filled
 * on I/O failure or timeout; the caller closes the connection then.  An
 * error reply is returned like any other reply.
 */
static redisReply *command(const struct redis_limiter *r, struct conn *c,
			   int64_t deadline, int argc, const char **argv,
			   const size_t *lens, struct failure *f)
{
	redisContext *ctx = c->ctx;
	int64_t until = step_deadline(deadline, r->command_us);
	void *reply = NULL;
	int done = 0;

	if (redisAppendCommandArgv(ctx, argc, argv, lens) != REDIS_OK) {
		fail_with(f, false, argv[0], ctx->errstr);
		return NULL;
	}
	while (!done) {
		if (redisBufferWrite(ctx, &done) != REDIS_OK) {
			fail_with(f, false, argv[0], ctx->errstr);
			return NULL;
		}
		if (!done && !wait_fd(ctx->fd, POLLOUT, until)) {
			fail_with(f, false, argv[0], "timed out");
			return NULL;
		}
	}
	for (;;) {
		if (redisGetReplyFromReader(ctx, &reply) != REDIS_OK) {
			fail_with(f, false, argv[0], ctx->errstr);
			return NULL;
		}
		if (reply)
			return reply;
		if (!wait_fd(ctx->fd, POLLIN, until)) {
			fail_with(f, false, argv[0], "timed out");
			return NULL;
		}
		if (redisBufferRead(ctx) != REDIS_OK) {
			fail_with(f, false, argv[0], ctx->errstr);
			return NULL;
		}
	}
}

/* A command whose only good answer is +OK (AUTH, SELECT). */
static bool command_ok(const struct redis_limiter *r, struct conn *c,
		       int64_t deadline, int argc, const char **argv,
		       struct failure *f)
{
	size_t lens[3];
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	redisReply *rep = command(r, c, deadline, argc, argv, lens, f);
	if (!rep)
		return false;
	bool ok = rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") == 0;
	if (!ok)
		fail_with(f, true, argv[0],
			  rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
	freeReplyObject(rep);
	return ok;
}

static bool conn_login(const struct redis_limiter *r, struct conn *c,
		       const char *pass, int64_t deadline, struct failure *f)
{
	c->ctx = redisConnectNonBlock(r->host, r->port);
	if (!c->ctx || c->ctx->err) {
		fail_with(f, false, "connect", c->ctx ? c->ctx->errstr : "out of memory");
		conn_close(c);
		return false;
	}
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (!wait_fd(c->ctx->fd, POLLOUT, step_deadline(deadline, r->connect_us))) {
		fail_with(f, false, "connect", "timed out");
		conn_close(c);
		return false;
	}
	if (getsockopt(c->ctx->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr) {
		fail_with(f, false, "connect", strerror(soerr ? soerr : errno));
		conn_close(c);
		return false;
	}
	char db[16];
	const char *select[2] = { "SELECT", db };
	const char *auth[3] = { "AUTH", pass, NULL };
	int nauth = 2;
	if (r->user[0]) {   /* Redis 6 ACL user */
		auth[1] = r->user;
		auth[2] = pass;
		nauth = 3;
	}
	snprintf(db, sizeof(db), "%d", r->db);
	if ((pass[0] && !command_ok(r, c, deadline, nauth, auth, f)) ||
	    (r->db != 0 && !command_ok(r, c, deadline, 2, select, f))) {
		conn_close(c);
		return false;
	}
	return true;
}

static bool conn_open(struct redis_limiter *r, struct conn *c,
		      int64_t deadline, struct failure *f)
{
	char pass[CRED_MAX + 1];
	bool ok;

	pthread_mutex_lock(&r->lock);
	memcpy(pass, r->pass, sizeof(pass));
	c->gen = r->pass_gen;
	pthread_mutex_unlock(&r->lock);
	ok = conn_login(r, c, pass, deadline, f);
	explicit_bzero(pass, sizeof(pass));
	return ok;
}


/* SCRIPT LOAD; the SHA-1 goes to sha (41 bytes). */
static bool script_load(const struct redis_limiter *r, struct conn *c,
			int64_t deadline, char *sha, struct failure *f)
{
	const char *argv[3] = { "SCRIPT", "LOAD", gcra_script };
	size_t lens[3] = { 6, 4, sizeof(gcra_script) - 1 };
	redisReply *rep = command(r, c, deadline, 3, argv, lens, f);

	if (!rep)
		return false;
	bool ok = rep->type == REDIS_REPLY_STRING && rep->len == SHA_LEN;
	if (ok)
		memcpy(sha, rep->str, SHA_LEN + 1);
	else
		fail_with(f, true, "SCRIPT LOAD",
			  rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
	freeReplyObject(rep);
	return ok;
}

/* The script's answer into a decision; false if it is not one. */
static bool read_decision(const struct redis_limiter *r, const redisReply *rep,
			  cart_limit_decision *out)
{
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4)
		return false;
	for (size_t i = 0; i < 4; i++)
		if (rep->element[i]->type != REDIS_REPLY_INTEGER ||
		    rep->element[i]->integer < 0)
			return false;
	out->allowed = rep->element[0]->integer == 1;
	out->limit = r->policy.burst;
	out->remaining = rep->element[1]->integer;
	out->reset_ms = (rep->element[2]->integer + 999) / 1000;
	out->retry_after_ms = (rep->element[3]->integer + 999) / 1000;
	out->degraded = false;
	return true;
}

/*
 * EVALSHA on a connected c; reloads the script once after NOSCRIPT.  false
 * with f filled if Redis failed or answered something else.
 */
static bool run_script(const struct redis_limiter *r, struct conn *c,
		       int64_t deadline, char *sha, const char *key,
		       size_t key_len, cart_limit_decision *out,
		       struct failure *f)
{
	char full[CART_REDIS_PREFIX_MAX + CART_LIMITER_KEY_MAX];
	memcpy(full, r->prefix, r->prefix_len);
	if (key_len)
		memcpy(full + r->prefix_len, key, key_len);
	/* argv[1] is sha itself, so a reload below updates it in place. */
	const char *argv[6] = { "EVALSHA", sha, "1", full, r->t_us, r->burst };
	const size_t lens[6] = { 7, SHA_LEN, 1, r->prefix_len + key_len,
				 strlen(r->t_us), strlen(r->burst) };

	for (int attempt = 0; attempt < 2; attempt++) {
		if (!sha[0] && !script_load(r, c, deadline, sha, f))
			return false;
		redisReply *rep = command(r, c, deadline, 6, argv, lens, f);
		if (!rep)
			return false;
		if (rep->type == REDIS_REPLY_ERROR &&
		    strncmp(rep->str, "NOSCRIPT", 8) == 0 && attempt == 0) {
			freeReplyObject(rep);
			sha[0] = '\0';
			continue;
		}
		bool ok = read_decision(r, rep, out);
		if (!ok)
			fail_with(f, true, "EVALSHA",
				  rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
		/* WRONGTYPE: something else wrote this key.  The connection is
		 * in step and the store is fine, so it stays open.  Any other
		 * error (READONLY after a failover, LOADING, OOM...) reconnects.
		 * Redis 6 wraps it in "ERR Error running script", 7 does not. */
		f->keep_conn = !ok && rep->type == REDIS_REPLY_ERROR &&
			       strstr(rep->str, "WRONGTYPE") != NULL;
		freeReplyObject(rep);
		return ok;
	}
	fail_with(f, true, "EVALSHA", "NOSCRIPT after SCRIPT LOAD");
	return false;
}

/* --- the pool ----------------------------------------------------------- */

/*
 * Lends a free slot, connected ones first, waiting at most command_us
 * (and never past deadline).  -1 with f filled if none came free, or if
 * the slot is not connected and the reconnect gate is shut.  *sha gets
 * the script's SHA-1 as known now.
 */
static int slot_acquire(struct redis_limiter *r, int64_t deadline,
			char sha[SHA_LEN + 1], struct failure *f)
{
	int64_t wait_until = min64(mono_us() + r->command_us, deadline);
	struct timespec ts = { wait_until / 1000000, (wait_until % 1000000) * 1000 };
	int found = -1;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		for (int i = 0; i < r->nslots; i++) {
			if (r->slots[i].busy)
				continue;
			if (r->slots[i].ctx) {
				found = i;
				break;
			}
			if (found < 0)
				found = i;
		}
		if (found >= 0 || pthread_cond_timedwait(&r->freed, &r->lock, &ts) == ETIMEDOUT)
			break;
	}
	if (found < 0) {
		pthread_mutex_unlock(&r->lock);
		fail_with(f, false, "pool", "no free connection in time");
		return -1;
	}
	if (!r->slots[found].ctx && r->next_connect_us != 0) {
		int64_t now = mono_us();
		if (now < r->next_connect_us) {
			pthread_mutex_unlock(&r->lock);
			fail_with(f, false, "connect", "waiting to reconnect");
			return -1;
		}
		/* This take tries; the others wait for its outcome. */
		r->next_connect_us = now + r->reconnect_us;
	}
	/* Logged in with a password that has since rotated: log in again. */
	if (r->slots[found].ctx && r->slots[found].gen != r->pass_gen)
		conn_close(&r->slots[found]);
	r->slots[found].busy = true;
	memcpy(sha, r->sha, SHA_LEN + 1);
	pthread_mutex_unlock(&r->lock);
	return found;
}

static void json_escape(char *out, size_t cap, const char *s)
{
	size_t n = 0;
	for (; *s && n + 7 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			n += (size_t)snprintf(out + n, cap - n, "\\%c", ch);
		else if (ch < 0x20)
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
		else
			out[n++] = (char)ch;
	}
	out[n] = '\0';
}

static void log_change(const struct redis_limiter *r, bool down,
		       const struct failure *f)
{
	char fields[7 * HOST_MAX + 2 * WHY_MAX + 96], why[2 * WHY_MAX], host[7 * HOST_MAX];

	if (!r->log)
		return;
	json_escape(host, sizeof(host), r->host);
	if (!down) {
		snprintf(fields, sizeof(fields), ",\"host\":\"%s\",\"port\":%d",
			 host, r->port);
		r->log(r->log_ctx, 1, "rate limiter store available", fields);
		return;
	}
	json_escape(why, sizeof(why), f->why);
	snprintf(fields, sizeof(fields),
		 ",\"host\":\"%s\",\"port\":%d,\"error\":\"%s\",\"failurePolicy\":\"%s\"",
		 host, r->port, why, r->fail_allow ? "allow" : "deny");
	r->log(r->log_ctx, 2, "rate limiter store unavailable", fields);
}

/*
 * Gives the slot back.  Success opens the reconnect gate; a failure that
 * closed the connection shuts it for reconnect_us.
 */
static void slot_release(struct redis_limiter *r, int i, bool ok,
			 const char *sha, const struct failure *f)
{
	bool changed;

	pthread_mutex_lock(&r->lock);
	r->slots[i].busy = false;
	if (sha[0])
		memcpy(r->sha, sha, SHA_LEN + 1);
	/* A script error on one key (keep_conn) says nothing of the store. */
	changed = false;
	if (ok) {
		r->next_connect_us = 0;
	} else if (!f->keep_conn) {
		int64_t gate = mono_us() + r->reconnect_us;
		if (gate > r->next_connect_us)
			r->next_connect_us = gate;
	}
	if (ok || !f->keep_conn) {
		changed = r->down == ok;
		r->down = !ok;
	}
	pthread_cond_signal(&r->freed);
	pthread_mutex_unlock(&r->lock);
	if (changed)
		log_change(r, !ok, f);
}

static void mark_failed(struct redis_limiter *r, const struct failure *f)
{
	bool changed;

	pthread_mutex_lock(&r->lock);
	changed = !r->down;
	r->down = true;
	pthread_mutex_unlock(&r->lock);
	if (changed)
		log_change(r, true, f);
}

/* --- the port ----------------------------------------------------------- */

static bool take_on_slot(struct redis_limiter *r, int i, int64_t deadline,
			 char *sha, const char *key, size_t key_len,
			 cart_limit_decision *out, struct failure *f)
{
	struct conn *c = &r->slots[i];   /* ours alone while busy */
	struct sigpipe_guard g;
	bool ok;

	sigpipe_block(&g);
	ok = (c->ctx || conn_open(r, c, deadline, f)) &&
	     run_script(r, c, deadline, sha, key, key_len, out, f);
	if (!ok && !f->keep_conn)
		conn_close(c);
	sigpipe_restore(&g, !ok);
	return ok;
}

static int redis_limiter_take(void *self, const char *key, size_t key_len,
			      cart_limit_decision *out)
{
	struct redis_limiter *r = self;
	int64_t deadline = mono_us() + r->connect_us + r->command_us;
	struct failure f = { "", false, false };
	char sha[SHA_LEN + 1];
	bool ok = false;

	memset(out, 0, sizeof(*out));
	if (key_len > CART_LIMITER_KEY_MAX)
		return CART_EINVALID;
	int i = slot_acquire(r, deadline, sha, &f);
	if (i >= 0) {
		ok = take_on_slot(r, i, deadline, sha, key, key_len, out, &f);
		slot_release(r, i, ok, sha, &f);
	} else {
		mark_failed(r, &f);
	}
	if (!ok) {
		atomic_fetch_add_explicit(&r->store_errors, 1, memory_order_relaxed);
		cart_limit_decision_fail(out, &r->policy, r->fail_allow);
	}
	atomic_fetch_add_explicit(out->allowed ? &r->allowed : &r->limited, 1,
				  memory_order_relaxed);
	return ok ? CART_OK : CART_EBACKEND;
}

static void redis_limiter_stats(void *self, cart_limiter_stats *out)
{
	struct redis_limiter *r = self;

	memset(out, 0, sizeof(*out));
	out->allowed = atomic_load_explicit(&r->allowed, memory_order_relaxed);
	out->limited = atomic_load_explicit(&r->limited, memory_order_relaxed);
	out->store_errors = atomic_load_explicit(&r->store_errors, memory_order_relaxed);
}

static void redis_limiter_destroy(void *self)
{
	struct redis_limiter *r = self;

	if (!r)
		return;
	for (int i = 0; i < r->nslots; i++)
		conn_close(&r->slots[i]);
	free(r->slots);
	pthread_cond_destroy(&r->freed);
	pthread_mutex_destroy(&r->lock);
	/* The password should not outlive the limiter in freed memory. */
	memset(r->pass, 0, sizeof(r->pass));
	free(r);
}

static const cart_limiter_ops redis_limiter_ops;

int cart_redis_limiter_set_password(cart_limiter *l, const char *password)
{
	struct redis_limiter *r = l->self;

	if (l->ops != &redis_limiter_ops || !password || strlen(password) > CRED_MAX)
		return CART_EINVALID;
	pthread_mutex_lock(&r->lock);
	if (strcmp(r->pass, password)) {
		explicit_bzero(r->pass, sizeof(r->pass));
		strcpy(r->pass, password);
		r->pass_gen++;
		r->next_connect_us = 0;   /* a new password is worth a try now */
	}
	pthread_mutex_unlock(&r->lock);
	return CART_OK;
}

static const cart_limiter_ops redis_limiter_ops = {
	.version = CART_LIMITER_OPS_VERSION,
	.take = redis_limiter_take,
	.destroy = redis_limiter_destroy,
	.stats = redis_limiter_stats,
};

/* --- configuration ------------------------------------------------------ */

void cart_redis_limiter_config_init(cart_redis_limiter_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->key_prefix = "cart:rl:";
	cfg->connect_timeout_ms = 50;
	cfg->command_timeout_ms = 5;
	cfg->pool_size = 8;
	cfg->reconnect_ms = 100;
	cfg->on_failure = CART_LIMIT_FAIL_ALLOW;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes with the NUL). */
static bool decode(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '%') {
			if (i + 2 >= n)
				return false;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return false;
			ch = (char)(hi * 16 + lo);
			i += 2;
		}
		if (o + 1 >= cap)
			return false;
		out[o++] = ch;
	}
	out[o] = '\0';
	return true;
}

/* Digits only, value in 0..max. */
static bool parse_uint(const char *s, size_t n, long max, long *out)
{
	long v = 0;
	if (n == 0 || n > 9)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static int url_error(char *err, size_t err_len, const char *reason)
{
	snprintf(err, err_len,
		 "redis url: %s (expected redis://[[user]:password@]host[:port][/db])",
		 reason);
	return CART_EINVALID;
}

/* The userinfo before '@': "user:password" or ":password". */
static int parse_userinfo(struct redis_limiter *r, const char *s, size_t n,
			  char *err, size_t err_len)
{
	const char *colon = memchr(s, ':', n);
	if (!colon)
		return url_error(err, err_len, "the password must follow a ':' before '@'");
	if (!decode(r->user, sizeof(r->user), s, (size_t)(colon - s)) ||
	    !decode(r->pass, sizeof(r->pass), colon + 1, n - (size_t)(colon - s) - 1))
		return url_error(err, err_len, "bad %-escape, or user or password too long");
	if (!r->pass[0])
		return url_error(err, err_len, "empty password");
	return CART_OK;
}

/* host[:port] or [v6]:port */
static int parse_hostport(struct redis_limiter *r, const char *s, size_t n,
			  char *err, size_t err_len)
{
	const char *h = s, *end = s + n, *port = NULL;
	size_t hlen;

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return url_error(err, err_len, "missing ']' after an IPv6 address");
		h = s + 1;
		hlen = (size_t)(close - h);
		if (close + 1 < end && close[1] != ':')
			return url_error(err, err_len, "junk after ']'");
		if (close + 1 < end)
			port = close + 2;
		for (size_t i = 0; i < hlen; i++)
			if (hexval(h[i]) < 0 && h[i] != ':' && h[i] != '.')
				return url_error(err, err_len, "bad IPv6 address");
	} else {
		const char *colon = memchr(s, ':', n);
		hlen = colon ? (size_t)(colon - s) : n;
		if (colon)
			port = colon + 1;
		for (size_t i = 0; i < hlen; i++)
			if (!host_char(s[i]))
				return url_error(err, err_len, "bad character in the host");
	}
	if (hlen == 0 || hlen > HOST_MAX)
		return url_error(err, err_len, "missing or too long host");
	memcpy(r->host, h, hlen);
	r->host[hlen] = '\0';
	r->port = 6379;
	if (port) {
		long v;
		if (!parse_uint(port, (size_t)(end - port), 65535, &v) || v == 0)
			return url_error(err, err_len, "port must be 1..65535");
		r->port = (int)v;
	}
	return CART_OK;
}

static int parse_url(struct redis_limiter *r, const char *url, char *err,
		     size_t err_len)
{
	static const char scheme[] = "redis://";

	if (!url || !*url)
		return url_error(err, err_len, "empty");
	if (strncmp(url, "rediss://", 9) == 0)
		return url_error(err, err_len, "TLS (rediss://) is not supported");
	if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
		return url_error(err, err_len, "must start with redis://");
	const char *auth = url + sizeof(scheme) - 1;
	const char *path = strchr(auth, '/');
	size_t alen = path ? (size_t)(path - auth) : strlen(auth);
	const char *at = NULL;
	for (size_t i = 0; i < alen; i++)
		if (auth[i] == '@')
			at = auth + i;
	int rc;
	if (at && (rc = parse_userinfo(r, auth, (size_t)(at - auth), err, err_len)))
		return rc;
	const char *hp = at ? at + 1 : auth;
	if ((rc = parse_hostport(r, hp, (size_t)(auth + alen - hp), err, err_len)))
		return rc;
	r->db = 0;
	if (path && path[1]) {
		long v;
		if (!parse_uint(path + 1, strlen(path + 1), INT_MAX, &v))
			return url_error(err, err_len, "the path must be a database number");
		r->db = (int)v;
	}
	return CART_OK;
}

static int check_settings(const cart_redis_limiter_config *cfg, char *err,
			  size_t err_len)
{
	const char *bad = NULL;

	if (!cart_limit_policy_valid(&cfg->policy))
		bad = "rate must be 1..1000000 per second and burst 1..1000000000";
	else if (!cfg->key_prefix || strlen(cfg->key_prefix) > CART_REDIS_PREFIX_MAX)
		bad = "key prefix missing or longer than 64 bytes";
	else if (cfg->connect_timeout_ms < 1 || cfg->connect_timeout_ms > 10000 ||
		 cfg->command_timeout_ms < 1 || cfg->command_timeout_ms > 10000)
		bad = "timeouts must be 1..10000 ms";
	else if (cfg->pool_size < 1 || cfg->pool_size > CART_REDIS_POOL_MAX)
		bad = "pool size must be 1..64";
	else if (cfg->reconnect_ms < 1 || cfg->reconnect_ms > 60000)
		bad = "reconnect interval must be 1..60000 ms";
	else if (cfg->on_failure != CART_LIMIT_FAIL_ALLOW &&
		 cfg->on_failure != CART_LIMIT_FAIL_DENY)
		bad = "unknown failure policy";
	if (!bad)
		return CART_OK;
	snprintf(err, err_len, "redis limiter: %s", bad);
	return CART_EINVALID;
}

static void apply_settings(struct redis_limiter *r,
			   const cart_redis_limiter_config *cfg)
{
	int64_t rate = cfg->policy.rate_per_sec;

	r->policy = cfg->policy;
	r->fail_allow = cfg->on_failure == CART_LIMIT_FAIL_ALLOW;
	r->prefix_len = strlen(cfg->key_prefix);
	memcpy(r->prefix, cfg->key_prefix, r->prefix_len + 1);
	r->connect_us = (int64_t)cfg->connect_timeout_ms * 1000;
	r->command_us = (int64_t)cfg->command_timeout_ms * 1000;
	r->reconnect_us = (int64_t)cfg->reconnect_ms * 1000;
	/* 1e6 / rate rounded to the nearest us; >= 1 for rate <= 1e6. */
	snprintf(r->t_us, sizeof(r->t_us), "%lld",
		 (long long)((2000000 + rate) / (2 * rate)));
	snprintf(r->burst, sizeof(r->burst), "%lld", (long long)cfg->policy.burst);
	r->log = cfg->log;
	r->log_ctx = cfg->log_ctx;
}

static int init_sync(struct redis_limiter *r, int nslots)
{
	pthread_condattr_t ca;

	r->slots = calloc((size_t)nslots, sizeof(*r->slots));
	if (!r->slots)
		return CART_ENOMEM;
	r->nslots = nslots;
	if (pthread_condattr_init(&ca) != 0)
		return CART_ENOMEM;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&r->freed, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0)
		return CART_ENOMEM;
	if (pthread_mutex_init(&r->lock, NULL) != 0) {
		pthread_cond_destroy(&r->freed);
		return CART_ENOMEM;
	}
	return CART_OK;
}

/*
 * Opens the first connection and loads the script.  A Redis that cannot
 * be reached is tolerated (logged); one that answers with an error is a
 * configuration error.
 */
static int first_contact(struct redis_limiter *r, char *err, size_t err_len)
{
	struct conn *c = &r->slots[0];
	struct failure f = { "", false, false };
	struct sigpipe_guard g;
	int64_t deadline = mono_us() + r->connect_us + 4 * r->command_us;
	bool ok;

	sigpipe_block(&g);
	ok = conn_open(r, c, deadline, &f) && script_load(r, c, deadline, r->sha, &f);
	if (!ok)
		conn_close(c);
	sigpipe_restore(&g, !ok);
	if (ok)
		return CART_OK;
	if (f.server_said) {
		snprintf(err, err_len, "redis %s:%d: %s", r->host, r->port, f.why);
		return CART_EBACKEND;
	}
	r->down = true;
	r->next_connect_us = mono_us() + r->reconnect_us;
	log_change(r, true, &f);
	return CART_OK;
}

int cart_redis_limiter_new(cart_limiter *out,
			   const cart_redis_limiter_config *cfg, char *err,
			   size_t err_len)
{
	out->ops = NULL;
	out->self = NULL;
	int rc = check_settings(cfg, err, err_len);
	if (rc)
		return rc;
	struct redis_limiter *r = calloc(1, sizeof(*r));
	if (!r)
		return CART_ENOMEM;
	apply_settings(r, cfg);
	if (!(rc = parse_url(r, cfg->url, err, err_len)) && cfg->password &&
	    (strlen(cfg->password) > CRED_MAX || r->pass[0])) {
		rc = url_error(err, err_len, r->pass[0] ? "a password in the url and another one"
						       : "password longer than 255 bytes");
	} else if (!rc && cfg->password) {
		strcpy(r->pass, cfg->password);
	}
	if (rc) {
		memset(r->pass, 0, sizeof(r->pass));
		free(r);
		return rc;
	}
	if ((rc = init_sync(r, cfg->pool_size))) {
		free(r->slots);
		free(r);
		snprintf(err, err_len, "redis limiter: out of memory");
		return rc;
	}
	if ((rc = first_contact(r, err, err_len))) {
		redis_limiter_destroy(r);
		return rc;
	}
	out->ops = &redis_limiter_ops;
	out->self = r;
	return CART_OK;
}
