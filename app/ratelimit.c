/* The rate-limit stage (see ratelimit.h). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ratelimit.h"
#include "redis/redis_limiter.h"

#define MAX_PROXIES 32

typedef struct cidr {
	uint32_t net, mask;      /* host byte order */
} cidr;

struct app_ratelimit {
	cart_limiter limiter;
	cart_limit_policy policy;
	int window_s;            /* RateLimit-Policy w: burst / rate, rounded up */
	char policy_header[64];  /* RateLimit-Policy: the same on every answer */
	cidr proxies[MAX_PROXIES];
	int nproxies;
};

static bool parse_ipv4(const char *s, size_t n, uint32_t *out)
{
	char tmp[16];
	struct in_addr a;

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (inet_pton(AF_INET, tmp, &a) != 1)
		return false;
	*out = ntohl(a.s_addr);
	return true;
}

/* "10.0.0.0/8, 192.168.1.7" into rl->proxies; -1 on a bad entry. */
static int parse_proxies(app_ratelimit *rl, const char *list)
{
	const char *p = list;

	while (*p) {
		size_t n, addr_len;
		const char *slash;
		uint32_t ip;
		long bits = 32;

		p += strspn(p, " ,");
		n = strcspn(p, ",");
		while (n && p[n - 1] == ' ')
			n--;
		if (!n)
			break;
		slash = memchr(p, '/', n);
		addr_len = slash ? (size_t)(slash - p) : n;
		if (slash) {
			char *end;
			bits = strtol(slash + 1, &end, 10);
			if (end != p + n || bits < 0 || bits > 32 || end == slash + 1)
				return -1;
		}
		if (!parse_ipv4(p, addr_len, &ip) || rl->nproxies == MAX_PROXIES)
			return -1;
		rl->proxies[rl->nproxies].mask = bits ? 0xffffffffu << (32 - bits) : 0;
		rl->proxies[rl->nproxies].net = ip & rl->proxies[rl->nproxies].mask;
		rl->nproxies++;
		p += n;
	}
	return 0;
}

static bool trusted(const app_ratelimit *rl, const char *s, size_t n)
{
	uint32_t ip;

	if (!rl->nproxies || !parse_ipv4(s, n, &ip))
		return false;
	for (int i = 0; i < rl->nproxies; i++)
		if ((ip & rl->proxies[i].mask) == rl->proxies[i].net)
			return true;
	return false;
}

void app_ratelimit_client_ip(const app_ratelimit *rl, const char *peer,
			     const char *xff, char *out, size_t out_len)
{
	const char *end;

	fmt_copy(out, out_len, peer ? peer : "", (size_t)-1);
	if (!xff || !peer || !trusted(rl, peer, strlen(peer)))
		return;
	/* Right to left: each hop appended the address it saw. */
	end = xff + strlen(xff);
	for (;;) {
		const char *seg = end, *s;
		size_t n;

		while (seg > xff && seg[-1] != ',')
			seg--;
		s = seg;
		n = (size_t)(end - seg);
		while (n && *s == ' ')
			s++, n--;
		while (n && s[n - 1] == ' ')
			n--;
		if (n)
			fmt_copy(out, out_len, s, n);
		/* the first address no proxy of ours vouches for, or the leftmost */
		if (!n || !trusted(rl, s, n) || seg == xff)
			return;
		end = seg - 1;   /* the comma */
	}
}

static void redis_log(void *ctx, int level, const char *msg, const char *fields)
{
	(void)ctx;
	log_write(level >= 2 ? LOG_WARN : LOG_INFO, msg, fields);
}

/* The adapter's reason, prefixed with the variable that holds the value. */
static void name_variable(char *err, size_t err_len, const char *name)
{
	char why[256];

	snprintf(why, sizeof(why), "%s", err);
	snprintf(err, err_len, "invalid %s: %s", name, why);
}

int app_ratelimit_new(app_ratelimit **out, const app_config *cfg,
		      const cart_clock *clock, char *err, size_t err_len)
{
	return app_ratelimit_new_auth(out, cfg, clock, NULL, err, err_len);
}

int app_ratelimit_new_auth(app_ratelimit **out, const app_config *cfg,
			   const cart_clock *clock, const char *redis_password,
			   char *err, size_t err_len)
{
	app_ratelimit *rl = calloc(1, sizeof(*rl));
	int rc;

	*out = NULL;
	if (!rl) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	rl->policy.rate_per_sec = cfg->rate_limit_rps;
	rl->policy.burst = cfg->rate_limit_burst;
	rl->window_s = (int)((rl->policy.burst + rl->policy.rate_per_sec - 1) /
			     rl->policy.rate_per_sec);
	snprintf(rl->policy_header, sizeof(rl->policy_header), "\"default\";q=%lld;w=%d",
		 (long long)rl->policy.burst, rl->window_s);
	if (parse_proxies(rl, cfg->trusted_proxies)) {
		snprintf(err, err_len, "invalid TRUSTED_PROXIES=\"%.100s\": expected "
			 "comma-separated IPv4 addresses or CIDRs (at most %d)",
			 cfg->trusted_proxies, MAX_PROXIES);
		free(rl);
		return -1;
	}
	if (!strcmp(cfg->rate_limit_store, "redis")) {
		cart_redis_limiter_config rc_cfg;

		cart_redis_limiter_config_init(&rc_cfg);
		rc_cfg.url = cfg->redis_url;
		rc_cfg.password = redis_password;
		rc_cfg.policy = rl->policy;
		rc_cfg.command_timeout_ms = cfg->redis_timeout_ms;
		rc_cfg.connect_timeout_ms = cfg->redis_timeout_ms * 10 > 50 ?
					    cfg->redis_timeout_ms * 10 : 50;
		rc_cfg.on_failure = strcmp(cfg->rate_limit_on_failure, "deny") ?
				    CART_LIMIT_FAIL_ALLOW : CART_LIMIT_FAIL_DENY;
		rc_cfg.log = redis_log;
		rc = cart_redis_limiter_new(&rl->limiter, &rc_cfg, err, err_len);
		if (rc == CART_EINVALID)
			name_variable(err, err_len, "REDIS_URL");
	} else {
		rc = cart_memory_limiter_new(&rl->limiter, &rl->policy,
					     (size_t)cfg->rate_limit_max_keys, clock);
		if (rc)
			snprintf(err, err_len, "invalid RATE_LIMIT_RPS/RATE_LIMIT_BURST "
				 "(%d/%d)", cfg->rate_limit_rps, cfg->rate_limit_burst);
	}
	if (rc) {
		free(rl);
		return -1;
	}
	*out = rl;
	return 0;
}

void app_ratelimit_free(app_ratelimit *rl)
{
	if (!rl)
		return;
	cart_limiter_destroy(&rl->limiter);
	free(rl);
}

void app_ratelimit_stats(const app_ratelimit *rl, cart_limiter_stats *out)
{
	cart_limiter_get_stats(&rl->limiter, out);
}

void app_ratelimit_stats_json(void *self, buf *out)
{
	cart_limiter_stats st;

	app_ratelimit_stats(self, &st);
	buf_printf(out, ",\"allowed\":%llu,\"limited\":%llu,\"store_errors\":%llu,"
		   "\"evictions\":%llu,\"keys\":%llu",
		   (unsigned long long)st.allowed, (unsigned long long)st.limited,
		   (unsigned long long)st.store_errors,
		   (unsigned long long)st.evictions, (unsigned long long)st.keys);
}

static int64_t ceil_s(int64_t ms)
{
	return (ms + 999) / 1000;
}

/* "sub:<sub>" in key (cap: sizeof(app_request.rate_key)); its length. */
static size_t sub_key(char *key, size_t cap, const char *sub)
{
	memcpy(key, "sub:", 4);
	return 4 + fmt_copy(key + 4, cap - 4, sub, (size_t)-1);
}

int app_stage_ratelimit_warm(app_request *r, void *self)
{
	app_ratelimit *rl = self;
	char key[sizeof(r->rate_key)];

	if (app_route_is_cart(r->route) && r->ids_valid)
		cart_limiter_warm(&rl->limiter, key, sub_key(key, sizeof(key), r->user_id));
	return APP_NEXT;
}

int app_stage_ratelimit(app_request *r, void *self)
{
	app_ratelimit *rl = self;
	cart_limit_decision d;
	char ip[64], hv[96];
	size_t n;

	if (!app_route_is_cart(r->route))
		return APP_NEXT;
	/* No printf here: this runs on every request (issue 10). */
	if (r->authenticated) {
		n = sub_key(r->rate_key, sizeof(r->rate_key), r->sub);
	} else {
		app_ratelimit_client_ip(rl, r->http->remote_addr,
					app_header(r, "X-Forwarded-For"), ip, sizeof(ip));
		memcpy(r->rate_key, "ip:", 3);
		n = 3 + fmt_copy(r->rate_key + 3, sizeof(r->rate_key) - 3, ip, (size_t)-1);
	}
	cart_limiter_take(&rl->limiter, r->rate_key, n, &d);
	http_response_header(r->res, "RateLimit-Policy", rl->policy_header);
	/* "default";r=<remaining>;t=<seconds>: at most 14 + 2 x 20 bytes */
	n = fmt_copy(hv, sizeof(hv), "\"default\";r=", (size_t)-1);
	n += fmt_i64(hv + n, d.remaining);
	memcpy(hv + n, ";t=", 3);
	n += 3;
	fmt_i64(hv + n, ceil_s(d.reset_ms));
	http_response_header(r->res, "RateLimit", hv);
	if (d.allowed)
		return APP_NEXT;
	fmt_i64(hv, ceil_s(d.retry_after_ms) > 0 ? ceil_s(d.retry_after_ms) : 1);
	http_response_header(r->res, "Retry-After", hv);
	if (d.degraded)
		return app_fail(r, 503, "cart.unavailable",
				"the rate limiter's store is unavailable; retry later");
	return app_fail(r, 429, "cart.rate_limited",
			"too many requests from this caller; retry after Retry-After seconds");
}

int app_ratelimit_set_redis_password(app_ratelimit *rl, const char *password)
{
	return cart_redis_limiter_set_password(&rl->limiter, password) ? -1 : 0;
}
