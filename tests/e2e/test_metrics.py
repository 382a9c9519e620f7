"""GET /metrics (Prometheus text format 0.0.4) end to end.

  - the live output passes `promtool check metrics` (Debian's prometheus
    package), lint included: every family has HELP and TYPE, counters end
    in _total, units are base units;
  - counters move by exactly the requests sent, by method, route pattern
    and status (404, 405, 412, 429, 401 included); each histogram's _count
    equals its counters; nothing is in flight when idle;
  - labels are bounded: requests for many user ids add no series;
  - /metrics needs no token and is not rate limited; METRICS_ENABLED=false
    turns it off; HEAD and OPTIONS behave as on /health;
  - METRICS_EMF=true writes CloudWatch EMF lines (interval forced to 1 s).
"""

import os
import re
import shutil
import subprocess
import sys
import time
import unittest

import harness
from harness import new_user

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "edge"))
import jwt_util  # noqa: E402

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
PROMTOOL = shutil.which("promtool")


def parse(text):
    """{(name, frozenset(labels)): float} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        labels = frozenset(LABEL_RE.findall(m.group(3) or ""))
        key = (m.group(1), labels)
        if key in out:
            raise AssertionError("duplicate series %r" % (key,))
        out[key] = float(m.group(4))
    return out


def select(samples, name, **labels):
    """{labels dict as sorted tuple: value} of name's series matching labels."""
    want = set(labels.items())
    return {tuple(sorted(k[1])): v for k, v in samples.items()
            if k[0] == name and want <= set(k[1])}


def value(samples, name, **labels):
    return sum(select(samples, name, **labels).values())


def deltas(before, after, name):
    """{labels: after - before} of name's series that moved."""
    a, b = select(after, name), select(before, name)
    return {k: v - b.get(k, 0.0) for k, v in a.items() if v != b.get(k, 0.0)}


def lbl(**kw):
    return tuple(sorted(kw.items()))


class Samples(dict):
    """parse() output, with .index: how many scrapes this test class made
    before this one (the /metrics series count every earlier scrape)."""


class MetricsMixin:
    nscrapes = 0

    def scrape(self, headers=None):
        type(self).nscrapes += 1
        r = self.server.request("GET", "/metrics", headers=headers)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("content-type"), CONTENT_TYPE)
        return r.raw.decode("utf-8")

    def metrics(self, headers=None):
        """A settled scrape: nothing in flight, so every request answered
        before it is counted (a request counts in its LOG phase, just
        after its response went out)."""
        deadline = time.monotonic() + 3
        while True:
            index = type(self).nscrapes
            s = Samples(parse(self.scrape(headers)))
            s.index = index
            if value(s, "http_requests_in_flight") == 0 or \
                    time.monotonic() > deadline:
                return s
            time.sleep(0.01)


class MetricsTest(MetricsMixin, harness.ServerTestCase):

    def test_promtool_accepts_the_output(self):
        # No parser is a failure, not a skip: it would hide a broken format.
        self.assertIsNotNone(PROMTOOL, "promtool missing: tools/bootstrap.sh "
                             "installs Debian's prometheus package")
        user = new_user()
        self.server.request("GET", "/v1/cart/%s" % user)
        self.server.request("GET", "/nope")
        text = self.scrape()
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        # Lint findings too: our own output has no excuse for any.
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, b"", b""),
                         text)

    def test_feature_flags_default_without_sources(self):
        """No flag source: every flag from its default (existing behaviour),
        nothing reloaded (tests/e2e/test_flags.py: each flag on and off)."""
        s = self.metrics()
        for name, on in (("require_if_match", 0), ("idempotency_required", 0),
                         ("events", 1), ("auth_enforce", 1)):
            self.assertEqual(select(s, "cart_feature_flag", source="default"
                                    ).get(lbl(name=name, source="default")), on, name)
        # (make dynamo runs this with AppConfig serving "{}": no flag set)
        self.assertEqual(value(s, "cart_feature_flags_reloads_total", source="file"), 0)

    def test_counters_move_by_exactly_the_requests_sent(self):
        user = new_user()
        before = self.metrics()
        self.assertEqual(self.add(user).status, 201)                  # POST 201
        self.assertEqual(self.add(user).status, 200)                  # POST 200
        r = self.request("GET", "/v1/cart/%s" % user)                 # GET 200
        self.assertEqual(r.status, 200)
        self.assertEqual(self.request("HEAD", "/v1/cart/%s" % user).status, 200)
        self.assertEqual(self.request("GET", "/no/such/%s" % user).status, 404)
        self.assertEqual(self.request("PUT", "/v1/cart/%s" % user).status, 405)
        r = self.request("PATCH", "/v1/cart/%s/items/sku-1" % user,
                         {"quantity": 3}, headers={"If-Match": '"1"'})
        self.assertProblem(r, 412, "cart.version_mismatch")
        self.assertEqual(self.request("OPTIONS", "/v1/cart/%s" % user).status, 204)
        key = {"Idempotency-Key": "k-" + user}
        self.assertEqual(self.request("DELETE", "/v1/cart/%s/items/sku-1" % user,
                                      headers=key).status, 200)
        r = self.request("DELETE", "/v1/cart/%s/items/sku-1" % user, headers=key)
        self.assertEqual((r.status, r.header("Idempotent-Replayed")), (200, "true"))
        after = self.metrics()

        cart, items = "/v1/cart/{userID}", "/v1/cart/{userID}/items"
        item = "/v1/cart/{userID}/items/{itemID}"
        self.assertEqual(deltas(before, after, "http_requests_total"), {
            lbl(method="GET", route="/metrics", status="200"):
                after.index - before.index,
            lbl(method="POST", route=items, status="201"): 1,
            lbl(method="POST", route=items, status="200"): 1,
            lbl(method="GET", route=cart, status="200"): 1,
            lbl(method="HEAD", route=cart, status="200"): 1,
            lbl(method="GET", route="unmatched", status="404"): 1,
            lbl(method="PUT", route=cart, status="405"): 1,
            lbl(method="PATCH", route=item, status="412"): 1,
            lbl(method="OPTIONS", route=cart, status="204"): 1,
            lbl(method="DELETE", route=item, status="200"): 2,
        })
        for name, n in (("cart_precondition_failures_total", 1),
                        ("cart_idempotent_replays_total", 1),
                        ("cart_conflicts_total", 0)):
            self.assertEqual(value(after, name) - value(before, name), n, name)
        self.assertEqual(value(after, "cart_commits_total") -
                         value(before, "cart_commits_total"), 3)

    def test_histogram_count_equals_the_counters(self):
        user = new_user()
        for _ in range(3):
            self.request("GET", "/v1/cart/%s" % user)
        s = self.metrics()
        counts = select(s, "http_request_duration_seconds_count")
        self.assertTrue(counts)
        for labels, n in counts.items():
            d = dict(labels)
            total = value(s, "http_requests_total", **d)
            self.assertEqual(n, total, labels)
            inf = value(s, "http_request_duration_seconds_bucket", le="+Inf", **d)
            self.assertEqual(inf, n, labels)
            buckets = sorted(((float(dict(k)["le"]), v) for k, v in select(
                s, "http_request_duration_seconds_bucket", **d).items()))
            self.assertEqual([b[0] for b in buckets][:2], [0.0005, 0.001])
            self.assertEqual(buckets[-2][0], 10.0)
            vals = [b[1] for b in buckets]
            self.assertEqual(vals, sorted(vals), "buckets are cumulative")
            self.assertGreaterEqual(value(s, "http_request_duration_seconds_sum", **d), 0)

    def test_in_flight_is_zero_when_idle(self):
        self.request("GET", "/health")
        self.assertEqual(value(self.metrics(), "http_requests_in_flight"), 0)

    def test_labels_never_hold_user_ids(self):
        # One of each kind first (scrapes too), so every series exists.
        self.add_ok(new_user())
        self.request("GET", "/v1/cart/%s" % new_user())
        self.metrics()
        before = set(self.metrics())
        users = [new_user("many") for _ in range(40)]
        for u in users:
            self.request("GET", "/v1/cart/%s" % u)
            self.add_ok(u, item="sku-%s" % u[-6:])
        after = set(self.metrics())
        text = self.scrape()
        # The HTTP and use-case series (AWS series may appear as the relay
        # and health checks work in the background on the DynamoDB backend).
        grew = {k for k in after - before if k[0].startswith(("http_", "cart_"))}
        self.assertEqual(grew, set(), "new series for new users")
        for u in users:
            self.assertNotIn(u, text)

    def test_build_and_process_metrics(self):
        s = self.metrics()
        info = select(s, "cart_service_build_info")
        self.assertEqual(len(info), 1, info)
        labels, v = next(iter(info.items()))
        self.assertEqual(v, 1)
        d = dict(labels)
        with open(os.path.join(harness.REPO_ROOT, "VERSION")) as f:
            self.assertEqual(d["version"], f.read().strip())
        self.assertRegex(d["commit"], r"^([0-9a-f]{7,40}|unknown)$")
        self.assertGreater(value(s, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(value(s, "process_open_fds"), 2)
        self.assertGreaterEqual(value(s, "process_cpu_seconds_total"), 0)
        start = value(s, "process_start_time_seconds")
        self.assertLess(abs(start - time.time()), 3600, start)

    def test_heap_metrics(self):
        """jemalloc's live statistics: ordered as jemalloc defines them,
        and allocated follows what the store holds (a fresh epoch per
        scrape, not a value frozen at start)."""
        s = self.metrics()
        heap = {dict(k)["state"]: v for k, v in select(s, "cart_service_heap_bytes").items()}
        self.assertEqual(set(heap), {"allocated", "active", "metadata", "resident",
                                     "mapped", "retained"}, heap)
        self.assertGreater(heap["allocated"], 0)
        self.assertLessEqual(heap["allocated"], heap["active"])
        self.assertLessEqual(heap["active"], heap["resident"])
        self.assertLessEqual(heap["active"], heap["mapped"])
        # The baseline is the least of three scrapes: once (DynamoDB lane,
        # 2026-11-29) the first scrape caught ~150 KB of something
        # transient, and 200 adds then showed +1,720 bytes where they
        # show +150-180 KB.
        base = [heap["allocated"]]
        for _ in range(2):
            time.sleep(0.1)
            base.append(value(self.metrics(), "cart_service_heap_bytes", state="allocated"))
        for n in range(200):
            self.add_ok(new_user(), item="sku-%d" % n, name="n" * 200)
        grown = value(self.metrics(), "cart_service_heap_bytes", state="allocated")
        self.assertGreater(grown - min(base), 200 * 200, (base, grown))

    def test_head_options_and_methods(self):
        r = self.request("HEAD", "/metrics")
        self.assertEqual((r.status, r.header("content-type")), (200, CONTENT_TYPE))
        self.assertFalse(r.body)
        r = self.request("OPTIONS", "/metrics")
        self.assertEqual((r.status, r.header("Allow")), (204, "GET, HEAD, OPTIONS"))
        r = self.request("POST", "/metrics", {})
        self.assertProblem(r, 405, "cart.method_not_allowed")
        self.assertEqual(r.header("Allow"), "GET, HEAD, OPTIONS")


class MetricsDisabledTest(harness.ServerTestCase):
    server_env = {"METRICS_ENABLED": "false"}

    def test_no_metrics_route(self):
        self.assertProblem(self.request("GET", "/metrics"), 404, "cart.not_found")


class RateLimitedMetricsTest(MetricsMixin, harness.ServerTestCase):
    server_env = {"RATE_LIMIT_RPS": "1", "RATE_LIMIT_BURST": "2"}

    def test_429_counted_and_metrics_not_limited(self):
        user = new_user()
        before = self.metrics()
        got = [self.request("GET", "/v1/cart/%s" % user).status for _ in range(6)]
        n429 = got.count(429)
        self.assertGreaterEqual(n429, 3, got)
        for _ in range(10):      # never limited, never counted by the limiter
            self.scrape()
        after = self.metrics()
        d = deltas(before, after, "http_requests_total")
        self.assertEqual(d.get(lbl(method="GET", route="/v1/cart/{userID}",
                                   status="429"), 0), n429, d)
        self.assertEqual(d.get(lbl(method="GET", route="/v1/cart/{userID}",
                                   status="200"), 0), 6 - n429, d)
        self.assertEqual(d[lbl(method="GET", route="/metrics", status="200")],
                         after.index - before.index)
        self.assertEqual(value(after, "cart_rate_limit_rejections_total") -
                         value(before, "cart_rate_limit_rejections_total"), n429)


class AuthMetricsTest(MetricsMixin, harness.ServerTestCase):
    extra_env = {}

    @classmethod
    def setUpClass(cls):
        cls.key = jwt_util.RsaKey("kid-m")
        cls.other = jwt_util.RsaKey("kid-m")      # same kid, wrong key
        cls.jwks = jwt_util.write_jwks_file(cls.key)
        cls.server_env = dict({"AUTH_ENABLED": "true", "JWT_JWKS_FILE": cls.jwks,
                               "JWT_ISSUER": jwt_util.ISSUER,
                               "JWT_AUDIENCE": jwt_util.AUDIENCE}, **cls.extra_env)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            os.unlink(cls.jwks)

    def test_401_by_reason_and_metrics_need_no_token(self):
        user = new_user()
        path = "/v1/cart/%s" % user
        good = jwt_util.bearer(jwt_util.sign(jwt_util.claims(user), self.key))
        forged = jwt_util.bearer(jwt_util.sign(jwt_util.claims(user), self.other))
        expired = jwt_util.bearer(jwt_util.sign(
            jwt_util.claims(user, ttl=-3600), self.key))
        before = self.metrics()
        self.assertEqual(self.request("GET", path).status, 401)
        self.assertEqual(self.request("GET", path).status, 401)
        self.assertEqual(self.request("GET", path, headers=forged).status, 401)
        self.assertEqual(self.request("GET", path, headers=expired).status, 401)
        self.assertEqual(self.request("GET", path, headers=good).status, 200)
        after = self.metrics()
        self.assertEqual(deltas(before, after, "cart_auth_failures_total"), {
            lbl(reason="missing"): 2, lbl(reason="bad_signature"): 1,
            lbl(reason="expired"): 1})
        d = deltas(before, after, "http_requests_total")
        self.assertEqual(d[lbl(method="GET", route="/v1/cart/{userID}",
                               status="401")], 4)

    def test_token_cache_counts_hits_and_misses(self):
        user = new_user()
        path = "/v1/cart/%s" % user
        good = jwt_util.bearer(jwt_util.sign(jwt_util.claims(user), self.key))
        forged = jwt_util.bearer(jwt_util.sign(jwt_util.claims(user), self.other))
        before = self.metrics()
        self.assertEqual(self.request("GET", path, headers=good).status, 200)
        self.assertEqual(self.request("GET", path, headers=good).status, 200)
        self.assertEqual(self.request("GET", path, headers=good).status, 200)
        # A refused token is never remembered: looked up and missed each time.
        self.assertEqual(self.request("GET", path, headers=forged).status, 401)
        self.assertEqual(self.request("GET", path, headers=forged).status, 401)
        after = self.metrics()
        self.assertEqual(deltas(before, after, "cart_auth_token_cache_lookups_total"), {
            lbl(result="hit"): 2, lbl(result="miss"): 3})
        self.assertEqual(value(after, "cart_auth_token_cache_capacity"), 32768)
        self.assertEqual(value(after, "cart_auth_token_cache_evictions_total"), 0)


class AuthCacheOffMetricsTest(AuthMetricsTest):
    """JWT_CACHE_ENTRIES=0: every token verified, the 401 reasons as before."""
    extra_env = {"JWT_CACHE_ENTRIES": "0"}

    def test_token_cache_counts_hits_and_misses(self):
        user = new_user()
        good = jwt_util.bearer(jwt_util.sign(jwt_util.claims(user), self.key))
        before = self.metrics()
        for _ in range(3):
            self.assertEqual(self.request("GET", "/v1/cart/%s" % user,
                                          headers=good).status, 200)
        after = self.metrics()
        self.assertEqual(deltas(before, after, "cart_auth_token_cache_lookups_total"), {})
        self.assertEqual(value(after, "cart_auth_token_cache_capacity"), 0)


class EmfTest(harness.ServerTestCase):
    server_env = {"METRICS_EMF": "true", "METRICS_EMF_INTERVAL_SECONDS": "1"}

    def emf_lines(self):
        return [r for r in self.server.log_lines()
                if isinstance(r, dict) and "_aws" in r]

    def test_emf_lines_parse_and_carry_the_figures(self):
        user = new_user()
        for _ in range(3):
            self.request("GET", "/v1/cart/%s" % user)

        def route_line(rec):
            return "_aws" in rec and rec.get("Route") == "/v1/cart/{userID}" \
                and rec.get("Method") == "GET"

        # The 3 requests may straddle two emissions: wait for all of them.
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            lines = self.emf_lines()
            if sum(r["Requests"] for r in lines if route_line(r)) >= 3:
                break
            time.sleep(0.1)
        self.assertTrue(any("RequestsInFlight" in r for r in lines), lines[:3])
        for r in lines:
            aws = r["_aws"]
            self.assertIsInstance(aws["Timestamp"], int)
            self.assertLess(abs(aws["Timestamp"] / 1000 - time.time()), 300)
            (cwm,) = aws["CloudWatchMetrics"]
            self.assertEqual(cwm["Namespace"], "CartService")
            for dims in cwm["Dimensions"]:
                for d in dims:
                    self.assertIsInstance(r[d], str, (d, r))
            for m in cwm["Metrics"]:
                self.assertIsInstance(r[m["Name"]], (int, float), (m, r))
                self.assertIn(m["Unit"], ("Count", "Milliseconds", "Seconds", "None"))
        total = sum(r["Requests"] for r in lines if route_line(r))
        self.assertEqual(total, 3, lines)


if __name__ == "__main__":
    unittest.main()
