"""Feature flags end to end (docs/adr/0015-feature-flags.md): each flag on
and off through the running service, the sources (FEATURE_<NAME> pins, the
FEATURE_FLAGS_FILE re-read on SIGHUP and on its timer, a bad file kept out),
and what /metrics and /ready say.  AppConfig: tests/e2e_aws/test_flags_appconfig.py."""

import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

import harness
from harness import new_user
from test_metrics import MetricsMixin, lbl, select, value

sys.path.insert(0, os.path.join(harness.REPO_ROOT, "tests", "edge"))
import jwt_util  # noqa: E402

ITEM = {"itemId": "sku-1", "quantity": 1, "unitPrice": {"amount": 1999, "currency": "EUR"}}


def flag(samples, name):
    """(value, source) of cart_feature_flag{name=...}."""
    series = [(dict(k[1]), v) for k, v in samples.items()
              if k[0] == "cart_feature_flag" and dict(k[1]).get("name") == name]
    assert len(series) == 1, series
    (labels, v), = series
    return v, labels["source"]


class RequiredHeadersTest(MetricsMixin, harness.ServerTestCase):
    """require_if_match and idempotency_required pinned on (off, the
    default, is what every other suite runs with: test_metrics checks the
    defaults)."""
    server_env = {"FEATURE_REQUIRE_IF_MATCH": "on", "FEATURE_IDEMPOTENCY_REQUIRED": "on"}

    def changes(self, user):
        return (("POST", "/v1/cart/%s/items" % user, ITEM),
                ("PATCH", "/v1/cart/%s/items/sku-1" % user, {"quantity": 3}),
                ("DELETE", "/v1/cart/%s/items/sku-1" % user, None),
                ("DELETE", "/v1/cart/%s" % user, None))

    def test_changes_without_if_match_get_428(self):
        user = new_user()
        for i, (method, path, body) in enumerate(self.changes(user)):
            with self.subTest(method=method, path=path):
                r = self.request(method, path, body, headers={"Idempotency-Key": "a%d" % i})
                p = self.assertProblem(r, 428, "cart.if_match_required")
                self.assertEqual(p["title"], "Precondition Required")
                self.assertEqual(p["instance"], path)
        self.assertEqual(self.get_cart(user)["version"], 0)   # nothing stored
        self.assertEqual(self.request("GET", "/v1/cart/%s" % user).status, 200)  # reads: free

    def test_changes_without_idempotency_key_get_428(self):
        user = new_user()
        for method, path, body in self.changes(user):
            with self.subTest(method=method):
                self.assertProblem(self.request(method, path, body, headers={"If-Match": "*"}),
                                   428, "cart.idempotency_key_required")
        self.assertEqual(self.get_cart(user)["version"], 0)

    def test_with_both_headers_changes_go_through(self):
        user = new_user()
        h = {"Idempotency-Key": "k-" + user, "If-Match": "*"}
        r1 = self.request("POST", "/v1/cart/%s/items" % user, ITEM, headers=h)
        r2 = self.request("POST", "/v1/cart/%s/items" % user, ITEM, headers=h)
        self.assertEqual((r1.status, r2.status), (201, 201))
        self.assertEqual(r2.header("idempotent-replayed"), "true")
        r = self.request("PATCH", "/v1/cart/%s/items/sku-1" % user, {"quantity": 3},
                         headers={"If-Match": '"1"', "Idempotency-Key": "p1"})
        self.assertEqual(r.status, 200, r)
        r = self.request("PATCH", "/v1/cart/%s/items/sku-1" % user, {"quantity": 4},
                         headers={"If-Match": '"1"', "Idempotency-Key": "p2"})
        self.assertProblem(r, 412, "cart.version_mismatch")   # still checked
        s = self.metrics()
        self.assertEqual(flag(s, "require_if_match"), (1, "env"))
        self.assertEqual(flag(s, "idempotency_required"), (1, "env"))


@unittest.skipIf(os.environ.get("E2E_BACKEND") == "dynamodb",
                 "the memory run covers it: on a shared DynamoDB table the relays of "
                 "other test processes would publish what this one holds")
class FlagsFileTest(MetricsMixin, harness.ServerTestCase):
    """events off from the file: the outbox records, the relay holds; on
    again (SIGHUP) every held event goes out, in order.  A bad file on
    reload keeps the last good flags, one warn line, counted."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="cart-flags-")
        cls.path = os.path.join(cls.dir, "flags.json")
        cls.write('{"events": false, "require_if_match": "off"}')
        # the timer is long: SIGHUP is what reloads in these tests
        cls.server_env = {"FEATURE_FLAGS_FILE": cls.path,
                          "FEATURE_FLAGS_RELOAD_SECONDS": "3600",
                          "FEATURE_REQUIRE_IF_MATCH": "off"}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def write(cls, text):
        tmp = cls.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, cls.path)

    def events_of(self, user):
        return [d["event"] for d in self.server.log_lines()
                if isinstance(d, dict) and d.get("msg") == "event"
                and d["event"]["userId"] == user]

    def reload(self, text):
        before = value(self.metrics(), "cart_feature_flags_reloads_total")
        self.write(text)
        self.server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while value(self.metrics(), "cart_feature_flags_reloads_total") == before:
            self.assertLess(time.monotonic(), deadline, "SIGHUP did not reload")
            time.sleep(0.02)

    def test_events_held_while_off_then_delivered_in_order(self):
        s = self.metrics()
        self.assertEqual(flag(s, "events"), (0, "file"))
        self.assertEqual(flag(s, "require_if_match"), (0, "env"))
        user = new_user()
        for q in (1, 2, 3):
            self.assertIn(self.add(user, quantity=q).status, (200, 201))
        r = self.request("GET", "/ready")
        events = [c for c in r.body["checks"] if c["name"] == "events"][0]
        self.assertEqual(events.get("publishing"), "held", r.body)
        cpu = value(self.metrics(), "process_cpu_seconds_total")
        time.sleep(1.2)   # more than a held relay's wait: still nothing out
        self.assertEqual(self.events_of(user), [])
        # the held relay and the flags reloader sleep (a spinning wait once
        # cost most of a core)
        self.assertLess(value(self.metrics(), "process_cpu_seconds_total") - cpu, 0.3)

        self.reload('{"events": "on"}')
        deadline = time.monotonic() + 5
        while len(self.events_of(user)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        got = self.events_of(user)
        self.assertEqual([e["cartVersion"] for e in got], [1, 2, 3], got)
        self.assertEqual([e["quantityAfter"] for e in got], [1, 3, 6])
        s = self.metrics()
        self.assertEqual(flag(s, "events"), (1, "file"))
        self.assertGreaterEqual(value(s, "cart_feature_flags_generation"), 1)

        # a bad file: refused, the flags stay, one warn, counted
        self.reload('{"events": "of"}')
        s = self.metrics()
        self.assertEqual(flag(s, "events"), (1, "file"))
        self.assertEqual(select(s, "cart_feature_flags_reloads_total", source="file",
                                outcome="invalid"),
                         {lbl(source="file", outcome="invalid"): 1.0})
        warn = self.server.wait_log(lambda d: d.get("level") == "warn" and
                                    d.get("variable") == "FEATURE_FLAGS_FILE")
        self.assertIsNotNone(warn, self.server.logs())
        self.assertIn('"events"', warn["reason"])
        user2 = new_user()
        self.assertEqual(self.add(user2).status, 201)
        deadline = time.monotonic() + 5
        while not self.events_of(user2) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(len(self.events_of(user2)), 1)   # still publishing


class AuthEnforceTest(MetricsMixin, harness.ServerTestCase):
    """auth_enforce off (a log-only rollout of authentication), then on,
    from the flags file picked up by its timer (no SIGHUP)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="cart-flags-")
        cls.path = os.path.join(cls.dir, "flags.json")
        with open(cls.path, "w") as f:
            f.write('{"auth_enforce": false}')
        cls.key = jwt_util.RsaKey("flags-rsa")
        cls.jwks = jwt_util.write_jwks_file(cls.key)
        cls.server_env = {"AUTH_ENABLED": "true", "JWT_JWKS_FILE": cls.jwks,
                          "JWT_ISSUER": jwt_util.ISSUER, "JWT_AUDIENCE": jwt_util.AUDIENCE,
                          "FEATURE_FLAGS_FILE": cls.path,
                          "FEATURE_FLAGS_RELOAD_SECONDS": "1"}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        os.unlink(cls.jwks)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_off_logs_and_counts_then_on_refuses(self):
        user = new_user()
        before = self.metrics()
        self.assertEqual(flag(before, "auth_enforce"), (0, "file"))
        r = self.request("POST", "/v1/cart/%s/items" % user, ITEM,
                         headers={"X-Request-Id": "flags-missing"})
        self.assertEqual(r.status, 201, r)
        expired = jwt_util.sign(jwt_util.claims(user, ttl=-120), self.key)
        r = self.request("GET", "/v1/cart/%s" % user,
                         headers=dict(jwt_util.bearer(expired), **{"X-Request-Id": "flags-exp"}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["items"][0]["itemId"], "sku-1")
        # a valid token is still a principal: another user's cart stays private
        other = jwt_util.sign(jwt_util.claims(new_user()), self.key)
        r = self.request("GET", "/v1/cart/%s" % user, headers=jwt_util.bearer(other))
        self.assertProblem(r, 404, "cart.not_found")
        for rid, reason in (("flags-missing", "missing"), ("flags-exp", "expired")):
            rec = self.server.wait_log(lambda d: d.get("request_id") == rid and
                                       d.get("msg") == "request")
            self.assertIsNotNone(rec, self.server.logs())
            self.assertEqual((rec["level"], rec["auth_failure"], rec["auth_enforced"]),
                             ("warn", reason, False), rec)
        after = self.metrics()
        self.assertEqual(value(after, "cart_auth_unenforced_total") -
                         value(before, "cart_auth_unenforced_total"), 2)
        self.assertEqual(value(after, "cart_auth_failures_total", reason="expired") -
                         value(before, "cart_auth_failures_total", reason="expired"), 1)

        # on: the timer sees the new file; refused as always
        with open(self.path + ".tmp", "w") as f:
            f.write('{"auth_enforce": "on"}')
        os.replace(self.path + ".tmp", self.path)
        deadline = time.monotonic() + 5
        while flag(self.metrics(), "auth_enforce") != (1, "file"):
            self.assertLess(time.monotonic(), deadline, self.server.logs())
            time.sleep(0.1)
        self.assertProblem(self.request("POST", "/v1/cart/%s/items" % user, ITEM), 401,
                           "cart.unauthorized")
        r = self.request("GET", "/v1/cart/%s" % user, headers=jwt_util.bearer(expired))
        self.assertProblem(r, 401, "cart.invalid_token")
        tok = jwt_util.sign(jwt_util.claims(user), self.key)
        r = self.request("POST", "/v1/cart/%s/items" % user, ITEM, headers=jwt_util.bearer(tok))
        self.assertEqual(r.status, 200, r)
        last = self.metrics()
        self.assertEqual(value(last, "cart_auth_unenforced_total"),
                         value(after, "cart_auth_unenforced_total"))


if __name__ == "__main__":
    unittest.main()
