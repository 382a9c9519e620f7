"""Credentials from the ECS container endpoint (full-URI mode): short-lived
keys refreshed before they expire, under load, and a clear refusal to start
with a wrong authorization token."""

import calendar
import os
import subprocess
import time

from awsbase import AwsServiceTestCase, harness, service_env, slow

LIFETIME = 12    # seconds; refresh due at half of it (min(10 min, life/2))


def metric_values(text):
    """Unlabelled samples of a Prometheus text page: {name: value}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
            out[parts[0]] = float(parts[1])
    return out


def iso_to_epoch(s):
    return calendar.timegm(time.strptime(s.rstrip("Z").split(".")[0], "%Y-%m-%dT%H:%M:%S"))


@slow("about 14 s: outlives one credential lifetime")
class EcsCredentialsTests(AwsServiceTestCase):
    stack_kwargs = {"ecs": True, "ecs_lifetime_seconds": LIFETIME, "ecs_rotate": True}
    creds = "ecs"
    start_server = False     # each test starts what it needs

    def test_short_lived_credentials_are_refreshed_before_expiry(self):
        ecs = self.stack.ecs
        before = ecs.stats()
        srv = self.start_service()
        try:
            self._run_refresh(srv, before)
        finally:
            srv.stop()
            srv.cleanup()

    def _run_refresh(self, srv, before):
        ecs = self.stack.ecs
        env = service_env(self.stack, creds="ecs")
        self.assertNotIn("AWS_ACCESS_KEY_ID", srv._env())
        self.assertIn("AWS_CONTAINER_CREDENTIALS_FULL_URI", env)
        st0 = ecs.stats()
        self.assertEqual(st0["served"] - before["served"], 1, st0)   # fetched at start
        t_fetch = [time.time()]
        first_akid = st0["current"]
        first_expiry = iso_to_epoch(st0["current_expiration"])

        # The first refresh attempt fails (the endpoint answers 500 once):
        # the old key keeps serving, the next call refreshes, and /metrics
        # counts the failure (docs/runbook.md, credential refresh failures).
        ecs.configure({"fail_next": 1, "fail_status": 500})
        u = self.user("ecs")
        adds = 0
        statuses = []
        served = st0["served"]
        # Requests every ~0.2 s for longer than one key lifetime: the first
        # key expires during the run, so its use after that would be refused
        # by the proxy (ExpiredTokenException).
        deadline = time.time() + LIFETIME + 2
        while time.time() < deadline:
            r = srv.request("POST", "/v1/cart/%s/items" % u,
                            {"itemId": "sku-e", "quantity": 1,
                             "unitPrice": {"amount": 10, "currency": "EUR"}})
            statuses.append(r.status)
            if r.status in (200, 201):
                adds += 1
            r = srv.request("GET", "/v1/cart/%s" % u)
            statuses.append(r.status)
            now_served = ecs.stats()["served"]
            if now_served != served:
                t_fetch.extend([time.time()] * (now_served - served))
                served = now_served
            time.sleep(0.2)
        last_request = time.time()

        bad = [s for s in statuses if s not in (200, 201)]
        self.assertEqual(bad, [], "requests failed while credentials rotated\n%s"
                         % srv.logs())
        st = self.stats()
        self.assertEqual(st["rejected"], {}, st)                    # no expired/unknown key
        fetches = ecs.stats()["served"] - before["served"]
        self.assertGreaterEqual(fetches, 2, ecs.stats())          # at least one refresh
        # refreshed ahead of expiry, at about half the lifetime: not on every
        # call, and not at the last moment
        first_refresh = t_fetch[1] - t_fetch[0]
        self.assertGreater(first_refresh, LIFETIME * 0.25, t_fetch)
        self.assertLess(first_refresh, LIFETIME * 0.75, t_fetch)
        self.assertLessEqual(fetches, 4, ecs.stats())             # ~every 6 s
        # the first key really expired while we kept going, and newer keys
        # carried the traffic
        self.assertGreater(last_request, first_expiry + 0.5)
        ecs_akids = [a for a in st["akids"] if a.startswith("ASIACARTECS")]
        self.assertGreaterEqual(len(ecs_akids), 2, st["akids"])
        self.assertIn(first_akid, st["akids"])
        self.assertNotIn("AKIDCARTTEST", st["akids"])
        self.assertEqual(ecs.stats()["failed"] - before.get("failed", 0), 1, ecs.stats())
        m = metric_values(srv.request("GET", "/metrics").raw.decode())
        self.assertEqual(m.get("aws_credential_refresh_failures_total"), 1, m)
        self.assertEqual(m.get("aws_credential_fetches_total"), fetches + 1, m)
        self.assertGreater(m.get("aws_credentials_expiry_timestamp_seconds", 0), time.time(), m)
        c = srv.request("GET", "/v1/cart/%s" % u).body
        self.assertEqual(c["items"][0]["quantity"], adds, c)
        self.assertEqual(c["version"], adds, c)

    def test_wrong_authorization_token_refuses_to_start(self):
        ecs = self.stack.ecs
        before = ecs.stats()["unauthorized"]
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("AWS_") or k in harness.ALL_VARS:
                del env[k]
        env.update(service_env(self.stack, creds="ecs"))
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "not-the-token"
        env.update({"LISTEN_ADDR": "127.0.0.1", "APP_PORT": str(harness.free_port())})
        p = subprocess.run([harness.binary_path()], env=env, cwd=harness.REPO_ROOT,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=15)
        self.assertNotEqual(p.returncode, 0, p)
        out = p.stdout + p.stderr
        self.assertRegex(out, r"container credentials", out)
        self.assertIn("401", out)
        self.assertNotIn("not-the-token", out)           # the token is a secret
        self.assertEqual(ecs.stats()["unauthorized"] - before, 1, ecs.stats())
        # the proxy never saw a request from it
        self.assertEqual(self.stats()["requests"], 0, self.stats())
