/*
 * The Redis limiter against real redis-server processes.  tests/redis/run.sh
 * starts the shared one and passes CART_REDIS_URL; the cases that stop and
 * restart Redis run a private redis-server of their own (fork/exec, killed
 * by PID, and by the kernel if this process dies: PR_SET_PDEATHSIG).
 * Without CART_REDIS_URL the binary fails loudly: a skipped backend test is
 * a hidden failure.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cart/error.h"
#include "cart/limiter.h"
#include "fakes/fake_clock.h"
#include "redis/redis_limiter.h"

static const char *g_url;
static const char *g_server;      /* redis-server binary */
static char g_host[64];
static int g_port;
static int g_case;                /* makes each test's prefix unique */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* --- talking to Redis directly ------------------------------------------ */

static redisContext *admin_at(int port)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout(g_host, port, tv);
	ck_assert_msg(c && !c->err, "admin connect: %s", c ? c->errstr : "oom");
	redisSetTimeout(c, tv);
	return c;
}

static redisContext *admin(void)
{
	return admin_at(g_port);
}

static redisReply *cmd(redisContext *c, int argc, const char **argv)
{
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	ck_assert_msg(r != NULL, "%s: %s", argv[0], c->errstr);
	return r;
}

static void cmd_ok(redisContext *c, int argc, const char **argv)
{
	redisReply *r = cmd(c, argc, argv);
	ck_assert_msg(r->type != REDIS_REPLY_ERROR, "%s: %s", argv[0], r->str);
	freeReplyObject(r);
}

/* "calls=N" of one command in INFO commandstats; 0 if never called. */
static long command_calls(const char *name)
{
	redisContext *c = admin();
	const char *argv[] = { "INFO", "commandstats" };
	redisReply *r = cmd(c, 2, argv);
	char pat[64];
	long calls = 0;

	snprintf(pat, sizeof(pat), "cmdstat_%s:calls=", name);
	const char *p = strstr(r->str, pat);
	if (p)
		calls = strtol(p + strlen(pat), NULL, 10);
	freeReplyObject(r);
	redisFree(c);
	return calls;
}

/* --- private servers ---------------------------------------------------- */

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static bool pings(int port)
{
	struct timeval tv = { 0, 200000 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	bool ok = false;

	if (c && !c->err) {
		redisReply *r = redisCommand(c, "PING");
		ok = r && r->type == REDIS_REPLY_STATUS;
		if (r)
			freeReplyObject(r);
	}
	if (c)
		redisFree(c);
	return ok;
}

/* Starts redis-server on port and waits (<= 5 s) until it answers. */
static pid_t start_redis(int port)
{
	char portbuf[16];
	pid_t pid;

	snprintf(portbuf, sizeof(portbuf), "%d", port);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execlp(g_server, g_server, "--port", portbuf, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--daemonize", "no",
		       "--dir", "/tmp", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 250 && !pings(port); i++)
		sleep_ms(20);
	ck_assert_msg(pings(port), "redis-server on port %d did not start", port);
	return pid;
}

static void stop_redis(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* --- limiters ----------------------------------------------------------- */

static char g_prefix[64];

static void next_prefix(void)
{
	snprintf(g_prefix, sizeof(g_prefix), "test:%d:%d:", (int)getpid(), ++g_case);
}

static cart_redis_limiter_config config(const char *url, int64_t rate,
					int64_t burst)
{
	cart_redis_limiter_config cfg;
	cart_redis_limiter_config_init(&cfg);
	cfg.url = url;
	cfg.policy = (cart_limit_policy){ rate, burst };
	cfg.key_prefix = g_prefix;
	/* Room for valgrind's first pass over the code; the fault cases
	 * set the default 5 ms again. */
	cfg.command_timeout_ms = 250;
	return cfg;
}

/* Takes until one is answered by Redis (<= 2 s); false if none was. */
static bool take_until_ok(cart_limiter *l, cart_limit_decision *d)
{
	int64_t t0 = now_us();
	int rc;
	do {
		rc = cart_limiter_take(l, "k", 1, d);
		if (rc != CART_OK)
			sleep_ms(5);
	} while (rc != CART_OK && now_us() - t0 < 2000000);
	return rc == CART_OK;
}

static void make(cart_limiter *l, const cart_redis_limiter_config *cfg)
{
	char err[256] = "";
	int rc = cart_redis_limiter_new(l, cfg, err, sizeof(err));
	ck_assert_msg(rc == CART_OK, "new: %d %s", rc, err);
}

static cart_limit_decision take_ok(cart_limiter *l, const char *key)
{
	cart_limit_decision d;
	int rc = cart_limiter_take(l, key, strlen(key), &d);
	ck_assert_msg(rc == CART_OK, "take: %d", rc);
	ck_assert(!d.degraded);
	return d;
}

/* A take that must fail fast; returns its duration in us. */
static int64_t take_degraded(cart_limiter *l, bool allowed)
{
	cart_limit_decision d;
	int64_t t0 = now_us();
	int rc = cart_limiter_take(l, "k", 1, &d);
	int64_t took = now_us() - t0;

	ck_assert_int_eq(rc, CART_EBACKEND);
	ck_assert(d.degraded);
	ck_assert(d.allowed == allowed);
	ck_assert_int_lt(took, 100000);
	return took;
}

/* --- GCRA over Redis ---------------------------------------------------- */

/* The numbers match the memory limiter's for the same requests. */
START_TEST(test_redis_gcra_matches_memory)
{
	cart_limiter l, mem;
	cart_clock clk;
	cart_limit_policy p = { 1, 5 };

	next_prefix();
	cart_redis_limiter_config cfg = config(g_url, 1, 5);
	make(&l, &cfg);
	ck_assert_int_eq(fake_clock_new(&clk, NULL, 1767225600000LL), 0);
	ck_assert_int_eq(cart_memory_limiter_new(&mem, &p, 10, &clk), CART_OK);
	for (int i = 0; i < 7; i++) {
		cart_limit_decision d = take_ok(&l, "k"), m;
		ck_assert_int_eq(cart_limiter_take(&mem, "k", 1, &m), CART_OK);
		ck_assert(d.allowed == m.allowed);
		ck_assert_int_eq(d.limit, 5);
		ck_assert_int_eq(d.remaining, m.remaining);
		/* Redis's clock moved a little since the first take. */
		ck_assert_int_le(d.reset_ms, m.reset_ms);
		ck_assert_int_gt(d.reset_ms, m.reset_ms - 100);
		ck_assert_int_le(d.retry_after_ms, m.retry_after_ms);
		ck_assert_int_gt(d.retry_after_ms, m.retry_after_ms - 100);
		ck_assert(d.allowed == (i < 5));
		ck_assert_int_eq(d.remaining, i < 5 ? 4 - i : 0);
	}
	cart_limiter_stats s;
	cart_limiter_get_stats(&l, &s);
	ck_assert_uint_eq(s.allowed, 5);
	ck_assert_uint_eq(s.limited, 2);
	ck_assert_uint_eq(s.store_errors, 0);
	cart_limiter_destroy(&mem);
	cart_clock_destroy(&clk);
	cart_limiter_destroy(&l);
}
END_TEST

START_TEST(test_redis_one_more_after_t)
{
	cart_limiter l;

	next_prefix();
	cart_redis_limiter_config cfg = config(g_url, 4, 2);   /* T = 250 ms */
	make(&l, &cfg);
	ck_assert(take_ok(&l, "k").allowed);
	ck_assert(take_ok(&l, "k").allowed);
	cart_limit_decision d = take_ok(&l, "k");
	ck_assert(!d.allowed);
	ck_assert_int_gt(d.retry_after_ms, 0);
	sleep_ms((int)d.retry_after_ms + 2);
	ck_assert(take_ok(&l, "k").allowed);
	ck_assert(!take_ok(&l, "k").allowed);
	cart_limiter_destroy(&l);
}
END_TEST

/* Two limiters stand for two processes of the service: one limit. */
START_TEST(test_redis_instances_share_the_limit)
{
	cart_limiter a, b;
	int allowed = 0;

	next_prefix();
	cart_redis_limiter_config cfg = config(g_url, 1, 5);
	make(&a, &cfg);
	make(&b, &cfg);
	for (int i = 0; i < 10; i++)
		allowed += take_ok(i % 2 ? &a : &b, "user-1").allowed;
	ck_assert_int_eq(allowed, 5);
	ck_assert(take_ok(&a, "user-2").allowed);   /* other keys untouched */
	cart_limiter_destroy(&a);
	cart_limiter_destroy(&b);
}
END_TEST

START_TEST(test_redis_keys_expire_and_are_binary)
{
	cart_limiter l;
	char key[128];
	cart_limit_decision d;

	next_prefix();
	cart_redis_limiter_config cfg = config(g_url, 2, 3);   /* T = 500 ms */
	make(&l, &cfg);
	ck_assert_int_eq(cart_limiter_take(&l, "a\0b", 3, &d), CART_OK);
	ck_assert_int_eq(cart_limiter_take(&l, "a\0b", 3, &d), CART_OK);
	ck_assert(d.allowed && d.remaining == 1);
	ck_assert_int_eq(cart_limiter_take(&l, "a\0c", 3, &d), CART_OK);
	ck_assert(d.allowed && d.remaining == 2);

	redisContext *c = admin();
	size_t n = (size_t)snprintf(key, sizeof(key), "%s", g_prefix);
	memcpy(key + n, "a\0b", 3);
	redisReply *r = redisCommand(c, "PTTL %b", key, n + 3);
	ck_assert(r && r->type == REDIS_REPLY_INTEGER);
	/* TAT is 2 T ahead: the key lives until the bucket is full again. */
	ck_assert_int_gt(r->integer, 900);
	ck_assert_int_le(r->integer, 1000);
	freeReplyObject(r);
	redisFree(c);
	cart_limiter_destroy(&l);
}
END_TEST

START_TEST(test_redis_max_key_length)
{
	cart_limiter l;
	char key[CART_LIMITER_KEY_MAX + 1];
	cart_limit_decision d;

	next_prefix();
	cart_redis_limiter_config cfg = config(g_url, 1, 1);
	make(&l, &cfg);
	memset(key, 0xff, sizeof(key));
	ck_assert_int_eq(cart_limiter_take(&l, key, CART_LIMITER_KEY_MAX, &d), CART_OK);
	ck_assert(d.allowed);
	ck_assert_int_eq(cart_limiter_take(&l, key, CART_LIMITER_KEY_MAX, &d), CART_OK);
	ck_assert(!d.allowed);
	ck_assert_int_eq(cart_limiter_take(&l, key, sizeof(key), &d), CART_EINVALID);
	cart_limiter_destroy(&l);
}
END_TEST

/* --- the script --------------------------------------------------------- */

/* One EVALSHA per take, no EVAL, no SCRIPT LOAD once loaded. */
START_TEST(test_redis_one_evalsha_per_take)
{
	cart_limiter l;

	next_prefix();
	cart_redis_limiter_config cfg = config(g_url, 100, 100);
	make(&l, &cfg);
	take_ok(&l, "warm");
	long evalsha = command_calls("evalsha"), eval = command_calls("eval");
	long load = command_calls("script|load") + command_calls("script");
	for (int i = 0; i < 25; i++)
		take_ok(&l, "k");
	ck_assert_int_eq(command_calls("evalsha") - evalsha, 25);
	ck_assert_int_eq(command_calls("eval"), eval);
	ck_assert_int_eq(command_calls("script|load") + command_calls("script"), load);
	cart_limiter_destroy(&l);
}
END_TEST

START_TEST(test_redis_noscript_recovers)
{
	cart_limiter l;
	cart_limiter_stats s;

	next_prefix();
	cart_redis_limiter_config cfg = config(g_url, 1, 3);
	make(&l, &cfg);
	ck_assert_int_eq(take_ok(&l, "k").remaining, 2);
	redisContext *c = admin();
	cmd_ok(c, 2, (const char *[]){ "SCRIPT", "FLUSH" });
	ck_assert_int_eq(take_ok(&l, "k").remaining, 1);   /* state kept */
	ck_assert_int_eq(take_ok(&l, "k").remaining, 0);
	cart_limiter_get_stats(&l, &s);
	ck_assert_uint_eq(s.store_errors, 0);
	redisFree(c);
	cart_limiter_destroy(&l);
}
END_TEST

/* A key someone else wrote with another type: that key fails, others don't. */
START_TEST(test_redis_wrong_type_key)
{
	cart_limiter l;
	cart_limit_decision d;
	char key[128];

	next_prefix();
	cart_redis_limiter_config cfg = config(g_url, 1, 3);
	cfg.pool_size = 1;
	make(&l, &cfg);
	snprintf(key, sizeof(key), "%sbad", g_prefix);
	redisContext *c = admin();
	cmd_ok(c, 3, (const char *[]){ "LPUSH", key, "x" });
	ck_assert_int_eq(cart_limiter_take(&l, "bad", 3, &d), CART_EBACKEND);
	ck_assert(d.degraded && d.allowed);
	ck_assert(take_ok(&l, "good").allowed);   /* the connection stayed */
	redisFree(c);
	cart_limiter_destroy(&l);
}
END_TEST

/* --- configuration ------------------------------------------------------ */

START_TEST(test_redis_bad_urls_refused)
{
	static const char *bad[] = {
		NULL, "", "http://127.0.0.1:6379", "rediss://127.0.0.1:6379",
		"redis://", "redis://:6379", "redis://127.0.0.1:", "redis://127.0.0.1:0",
		"redis://127.0.0.1:65536", "redis://127.0.0.1:63x9", "redis://127.0.0.1:6379/x",
		"redis://127.0.0.1:6379/1/2", "redis://127.0.0.1:6379?db=1",
		"redis://host name:6379", "redis://secret@127.0.0.1:6379",
		"redis://:@127.0.0.1:6379", "redis://:sec%zzret@127.0.0.1:6379",
		"redis://[::1:6379", "redis://[::1]x:6379", "redis://127.0.0.1:6379#f",
	};
	cart_limiter l;
	char err[256];

	next_prefix();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cart_redis_limiter_config cfg = config(bad[i], 1, 1);
		err[0] = '\0';
		ck_assert_int_eq(cart_redis_limiter_new(&l, &cfg, err, sizeof(err)),
				 CART_EINVALID);
		ck_assert_ptr_null(l.ops);
		ck_assert_msg(strncmp(err, "redis url: ", 11) == 0, "%s: %s",
			      bad[i] ? bad[i] : "(null)", err);
		ck_assert_msg(!strstr(err, "secret") && !strstr(err, "sec%"), "%s", err);
		ck_assert_ptr_null(strchr(err, '\n'));
	}
}
END_TEST

START_TEST(test_redis_bad_settings_refused)
{
	cart_limiter l;
	char err[256];
	cart_redis_limiter_config cfg;

	next_prefix();
	cfg = config(g_url, 0, 1);
	ck_assert_int_eq(cart_redis_limiter_new(&l, &cfg, err, sizeof(err)), CART_EINVALID);
	ck_assert_ptr_nonnull(strstr(err, "rate"));
	cfg = config(g_url, 1, 1);
	cfg.pool_size = 0;
	ck_assert_int_eq(cart_redis_limiter_new(&l, &cfg, err, sizeof(err)), CART_EINVALID);
	cfg = config(g_url, 1, 1);
	cfg.command_timeout_ms = 0;
	ck_assert_int_eq(cart_redis_limiter_new(&l, &cfg, err, sizeof(err)), CART_EINVALID);
	cfg = config(g_url, 1, 1);
	cfg.key_prefix = "0123456789012345678901234567890123456789012345678901234567890123456789";
	ck_assert_int_eq(cart_redis_limiter_new(&l, &cfg, err, sizeof(err)), CART_EINVALID);
	ck_assert_ptr_null(l.ops);
}
END_TEST

/* Redis answers the setup with an error: a configuration error at start. */
START_TEST(test_redis_setup_errors_refused)
{
	cart_limiter l;
	char err[256], url[128];

	next_prefix();
	snprintf(url, sizeof(url), "redis://:secret@%s:%d", g_host, g_port);
	cart_redis_limiter_config cfg = config(url, 1, 1);
	ck_assert_int_eq(cart_redis_limiter_new(&l, &cfg, err, sizeof(err)), CART_EBACKEND);
	ck_assert_ptr_nonnull(strstr(err, "AUTH"));
	ck_assert_ptr_null(strstr(err, "secret"));
	snprintf(url, sizeof(url), "redis://%s:%d/99999", g_host, g_port);
	cfg = config(url, 1, 1);
	ck_assert_int_eq(cart_redis_limiter_new(&l, &cfg, err, sizeof(err)), CART_EBACKEND);
	ck_assert_ptr_nonnull(strstr(err, "SELECT"));
	ck_assert_ptr_null(l.ops);

	snprintf(url, sizeof(url), "redis://%s:%d/3", g_host, g_port);
	cfg = config(url, 1, 1);
	make(&l, &cfg);
	take_ok(&l, "in-db-3");
	cart_limiter_destroy(&l);
}
END_TEST

START_TEST(test_redis_password_and_acl_user)
{
	cart_limiter l;
	char url[160];
	int port = free_port();
	pid_t pid = start_redis(port);
	redisContext *c = admin_at(port);

	next_prefix();
	cmd_ok(c, 4, (const char *[]){ "CONFIG", "SET", "requirepass", "p@ss:w/rd" });
	cmd_ok(c, 2, (const char *[]){ "AUTH", "p@ss:w/rd" });
	cmd_ok(c, 7, (const char *[]){ "ACL", "SETUSER", "svc", "on", ">s3cret", "~*", "+@all" });
	snprintf(url, sizeof(url), "redis://:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d", port);
	cart_redis_limiter_config cfg = config(url, 1, 2);
	make(&l, &cfg);
	ck_assert(take_ok(&l, "k").allowed);
	cart_limiter_destroy(&l);
	snprintf(url, sizeof(url), "redis://svc:s3cret@127.0.0.1:%d/0", port);
	cfg = config(url, 1, 2);
	make(&l, &cfg);
	ck_assert_int_eq(take_ok(&l, "k").remaining, 0);
	cart_limiter_destroy(&l);
	redisFree(c);
	stop_redis(pid);
}
END_TEST

/*
 * The password from a secret (cfg.password), then rotated while running:
 * Redis takes the new one and drops the clients, the limiter is told
 * (cart_redis_limiter_set_password) and logs in again with it.
 */
START_TEST(test_redis_password_rotation)
{
	cart_limiter l;
	char url[160], err[256];
	int port = free_port();
	pid_t pid = start_redis(port);
	redisContext *c = admin_at(port);

	next_prefix();
	cmd_ok(c, 4, (const char *[]){ "CONFIG", "SET", "requirepass", "old-pw" });
	cmd_ok(c, 2, (const char *[]){ "AUTH", "old-pw" });
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	cart_redis_limiter_config cfg = config(url, 1000, 1000);
	cfg.password = "old-pw";
	make(&l, &cfg);
	take_ok(&l, "k");

	snprintf(url, sizeof(url), "redis://:other@127.0.0.1:%d", port);
	cfg.url = url;   /* one password only: the url's or the secret's */
	ck_assert_int_eq(cart_redis_limiter_new(&(cart_limiter){ 0 }, &cfg, err, sizeof(err)),
			 CART_EINVALID);
	ck_assert_ptr_null(strstr(err, "old-pw"));

	cmd_ok(c, 4, (const char *[]){ "CONFIG", "SET", "requirepass", "new-pw" });
	cmd_ok(c, 4, (const char *[]){ "CLIENT", "KILL", "TYPE", "normal" });
	redisFree(c);
	c = admin_at(port);
	cmd_ok(c, 2, (const char *[]){ "AUTH", "new-pw" });
	take_degraded(&l, true);   /* its connection was dropped */
	sleep_ms(150);             /* past reconnect_ms */
	take_degraded(&l, true);   /* logs in with the old one: refused */
	ck_assert_int_eq(cart_redis_limiter_set_password(&l, "new-pw"), CART_OK);
	take_ok(&l, "k");
	ck_assert_int_eq(cart_redis_limiter_set_password(&l, NULL), CART_EINVALID);
	cart_limiter_destroy(&l);
	redisFree(c);
	stop_redis(pid);
}
END_TEST

struct log_record {
	int warn, info;
	char last[512];
};

static void record_log(void *ctx, int level, const char *msg, const char *fields)
{
	struct log_record *rec = ctx;
	if (level == 2)
		rec->warn++;
	else if (level == 1)
		rec->info++;
	snprintf(rec->last, sizeof(rec->last), "%s%s", msg, fields ? fields : "");
}

/*
 * Nobody listens: the limiter is made anyway, degraded until Redis is up;
 * the log says so once when it goes down and once when it is back.
 */
START_TEST(test_redis_unreachable_at_start)
{
	cart_limiter l;
	char url[64];
	int port = free_port();
	struct log_record rec = { 0, 0, "" };

	next_prefix();
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	cart_redis_limiter_config cfg = config(url, 1, 2);
	cfg.reconnect_ms = 20;
	cfg.log = record_log;
	cfg.log_ctx = &rec;
	make(&l, &cfg);
	for (int i = 0; i < 5; i++)
		take_degraded(&l, true);
	ck_assert_int_eq(rec.warn, 1);
	ck_assert_msg(strstr(rec.last, "\"error\":\"connect: Connection refused\"") &&
		      strstr(rec.last, "\"failurePolicy\":\"allow\""), "%s", rec.last);
	pid_t pid = start_redis(port);
	sleep_ms(25);
	ck_assert(take_ok(&l, "k").allowed);
	ck_assert(take_ok(&l, "k").allowed);
	ck_assert_int_eq(rec.warn, 1);
	ck_assert_int_eq(rec.info, 1);
	cart_limiter_destroy(&l);
	stop_redis(pid);
}
END_TEST

/* --- Redis down, slow, back --------------------------------------------- */

static void down_and_back(cart_limit_on_failure policy)
{
	cart_limiter l;
	char url[64];
	int port = free_port();
	pid_t pid = start_redis(port);
	int64_t worst = 0, total = 0;
	enum { TAKES = 50 };

	next_prefix();
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	cart_redis_limiter_config cfg = config(url, 1000, 1000);
	cfg.on_failure = policy;
	cfg.pool_size = 4;
	make(&l, &cfg);
	for (int i = 0; i < 8; i++)
		take_ok(&l, "k");
	stop_redis(pid);
	for (int i = 0; i < TAKES; i++) {
		int64_t took = take_degraded(&l, policy == CART_LIMIT_FAIL_ALLOW);
		worst = took > worst ? took : worst;
		total += took;
		sleep_ms(2);   /* spread over > 100 ms: reconnect attempts too */
	}
	cart_limiter_stats s;
	cart_limiter_get_stats(&l, &s);
	ck_assert_uint_eq(s.store_errors, TAKES);
	fprintf(stderr, "redis down (%s): %d takes, worst %.3f ms, mean %.3f ms\n",
		policy == CART_LIMIT_FAIL_ALLOW ? "allow" : "deny", TAKES,
		worst / 1000.0, total / 1000.0 / TAKES);

	pid = start_redis(port);
	int64_t t0 = now_us();
	cart_limit_decision d;
	ck_assert(take_until_ok(&l, &d));
	ck_assert(!d.degraded && d.allowed);
	fprintf(stderr, "redis back: recovered %.1f ms after the restart\n",
		(now_us() - t0) / 1000.0);
	cart_limiter_destroy(&l);
	stop_redis(pid);
}

START_TEST(test_redis_down_allows)
{
	down_and_back(CART_LIMIT_FAIL_ALLOW);
}
END_TEST

START_TEST(test_redis_down_denies)
{
	down_and_back(CART_LIMIT_FAIL_DENY);
}
END_TEST

/* CLIENT PAUSE holds every command: takes give up after the command timeout. */
START_TEST(test_redis_slow_times_out)
{
	cart_limiter l;
	int64_t worst = 0;

	next_prefix();
	cart_redis_limiter_config cfg = config(g_url, 1000, 1000);
	cart_limit_decision d;
	cfg.command_timeout_ms = 5;
	make(&l, &cfg);
	ck_assert(take_until_ok(&l, &d));
	redisContext *c = admin();
	cmd_ok(c, 3, (const char *[]){ "CLIENT", "PAUSE", "400" });
	for (int i = 0; i < 20; i++) {
		int64_t took = take_degraded(&l, true);
		worst = took > worst ? took : worst;
		ck_assert_int_lt(took, (cfg.command_timeout_ms + 30) * 1000);
	}
	fprintf(stderr, "redis paused: worst take %.3f ms (command timeout %d ms)\n",
		worst / 1000.0, cfg.command_timeout_ms);
	sleep_ms(450);
	ck_assert(take_until_ok(&l, &d));
	redisFree(c);
	cart_limiter_destroy(&l);
}
END_TEST

/*
 * A server that accepts connections and never answers.  Every take ends
 * within connect + command timeout, and new connections are tried at
 * most once per reconnect_ms, not once per request.
 */
START_TEST(test_redis_black_hole_reconnects_rarely)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), accepted = 0, takes = 0;
	cart_limiter l;
	char url[64];
	int64_t worst = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 128), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	next_prefix();
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", ntohs(a.sin_port));
	cart_redis_limiter_config cfg = config(url, 1, 1);
	cfg.command_timeout_ms = 5;
	make(&l, &cfg);   /* connects, SCRIPT LOAD times out: made, degraded */
	int64_t t0 = now_us();
	while (now_us() - t0 < 500000) {
		int64_t s = now_us();
		take_degraded(&l, true);
		int64_t took = now_us() - s;
		worst = took > worst ? took : worst;
		ck_assert_int_lt(took, (cfg.connect_timeout_ms + cfg.command_timeout_ms + 30) * 1000);
		takes++;
		sleep_ms(1);
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (int c; (c = accept(fd, NULL, NULL)) >= 0; accepted++)
		close(c);
	fprintf(stderr, "black hole: %d takes in 500 ms, %d connections, worst %.3f ms\n",
		takes, accepted, worst / 1000.0);
	ck_assert_int_gt(takes, 50);
	/* One at _new, then at most one per 100 ms. */
	ck_assert_int_le(accepted, 1 + 500 / cfg.reconnect_ms + 1);
	cart_limiter_destroy(&l);
	close(fd);
}
END_TEST

/* --- threads and the pool ----------------------------------------------- */

enum { THREADS = 16, TAKES = 40 };

static void *hammer(void *arg)
{
	cart_limiter *l = arg;
	long allowed = 0;
	for (int i = 0; i < TAKES; i++) {
		cart_limit_decision d;
		if (cart_limiter_take(l, "shared", 6, &d) != CART_OK)
			return (void *)-1L;
		allowed += d.allowed;
	}
	return (void *)allowed;
}

static long connected_clients(void)
{
	redisContext *c = admin();
	redisReply *r = cmd(c, 2, (const char *[]){ "INFO", "clients" });
	const char *p = strstr(r->str, "connected_clients:");
	long n = p ? strtol(p + 18, NULL, 10) : -1;
	freeReplyObject(r);
	redisFree(c);
	return n - 1;   /* not counting this one */
}

START_TEST(test_redis_threads_share_a_bounded_pool)
{
	cart_limiter l;
	pthread_t t[THREADS];
	long total = 0, before = connected_clients();
	int64_t t0 = now_us();

	next_prefix();
	cart_redis_limiter_config cfg = config(g_url, 1, 100);
	cfg.pool_size = 4;
	cfg.command_timeout_ms = 2000;  /* valgrind runs threads one at a time */
	make(&l, &cfg);
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, &l), 0);
	/* Every thread joined before any assertion: a failed one leaves the
	 * test (CK_FORK=no) while the others still use l on this stack. */
	long failed = 0;
	for (int i = 0; i < THREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		if ((long)r < 0)
			failed++;
		else
			total += (long)r;
	}
	ck_assert_int_eq(failed, 0);
	/* Exactly the burst, plus what 1/s refilled meanwhile (valgrind). */
	int64_t refill = (now_us() - t0) / 1000000 + 1;
	ck_assert_int_ge(total, 100);
	ck_assert_int_le(total, 100 + refill);
	ck_assert_int_le(connected_clients() - before, 4);
	cart_limiter_destroy(&l);
}
END_TEST

static Suite *redis_suite(void)
{
	Suite *s = suite_create("redis_limiter");
	TCase *gcra = tcase_create("gcra");
	TCase *script = tcase_create("script");
	TCase *conf = tcase_create("config");
	TCase *faults = tcase_create("faults");
	TCase *pool = tcase_create("pool");

	tcase_add_test(gcra, test_redis_gcra_matches_memory);
	tcase_add_test(gcra, test_redis_one_more_after_t);
	tcase_add_test(gcra, test_redis_instances_share_the_limit);
	tcase_add_test(gcra, test_redis_keys_expire_and_are_binary);
	tcase_add_test(gcra, test_redis_max_key_length);
	suite_add_tcase(s, gcra);

	tcase_add_test(script, test_redis_one_evalsha_per_take);
	tcase_add_test(script, test_redis_noscript_recovers);
	tcase_add_test(script, test_redis_wrong_type_key);
	suite_add_tcase(s, script);

	tcase_set_timeout(conf, 20);
	tcase_add_test(conf, test_redis_bad_urls_refused);
	tcase_add_test(conf, test_redis_bad_settings_refused);
	tcase_add_test(conf, test_redis_setup_errors_refused);
	tcase_add_test(conf, test_redis_password_and_acl_user);
	tcase_add_test(conf, test_redis_password_rotation);
	tcase_add_test(conf, test_redis_unreachable_at_start);
	suite_add_tcase(s, conf);

	tcase_set_timeout(faults, 30);
	tcase_add_test(faults, test_redis_down_allows);
	tcase_add_test(faults, test_redis_down_denies);
	tcase_add_test(faults, test_redis_slow_times_out);
	tcase_add_test(faults, test_redis_black_hole_reconnects_rarely);
	suite_add_tcase(s, faults);

	tcase_set_timeout(pool, 30);
	tcase_add_test(pool, test_redis_threads_share_a_bounded_pool);
	suite_add_tcase(s, pool);
	return s;
}

/* Host and port of the shared server, for admin connections. */
static void parse_env_url(void)
{
	g_url = getenv("CART_REDIS_URL");
	g_server = getenv("CART_REDIS_SERVER") ? getenv("CART_REDIS_SERVER")
					       : "redis-server";
	if (!g_url || sscanf(g_url, "redis://%63[^:]:%d", g_host, &g_port) != 2) {
		fprintf(stderr, "check_redis: CART_REDIS_URL=redis://host:port is not "
				"set; run it through tests/redis/run.sh (make redis does)\n");
		exit(2);
	}
}

int main(void)
{
	SRunner *sr;
	int failed;

	parse_env_url();
	sr = srunner_create(redis_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
