"""Secrets from AWS Secrets Manager, end to end (README, "Secrets").

The service reads its three secrets from the GetSecretValue stand-in
(behind the SigV4-checking proxy): the JWKS (JWT_JWKS_SECRET_ID), the
Redis password (REDIS_PASSWORD_SECRET_ID=...#password, a member of a JSON
secret) and the EventBridge bus (EVENTBRIDGE_BUS_NAME_SECRET_ID), with
SECRETS_TTL_SECONDS=1.  Then, while it runs:

  - rotation: each secret gets a new value (a new key, a new Redis
    password that Redis itself now demands, another bus); each is picked
    up without a restart;
  - a refresh that fails keeps the last good value past the TTL, is
    logged once, counted, retried with backoff, and recovers;
  - no secret value is ever written to stdout or stderr (LOG_LEVEL=debug);
  - the IAM check: exactly secretsmanager:GetSecretValue on the three
    named secrets of docs/iam/secrets-policy.json.

And at start: a missing secret, a denied one and a missing JSON key each
stop the start with one line naming the variable.
"""

import json
import os
import socket
import subprocess
import sys
import time
import unittest
import uuid

import awsbase
from awsbase import REPO_ROOT, Server
from stack import AwsStack

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "edge"))
import jwt_util  # noqa: E402
from test_ratelimit import RedisProc  # noqa: E402
import harness  # noqa: E402

JWKS, REDIS, BUS = "cart-service/jwks", "cart-service/redis", "cart-service/event-bus"
TAG = uuid.uuid4().hex[:10]
BUS1, BUS2 = "cart-bus-one-" + TAG, "cart-bus-two-" + TAG
PW1, PW2 = "redis-pw-one-" + TAG, "redis-pw-two-" + TAG


def redis_cmd(port, *args, password=None):
    """One RESP command (after AUTH) on a fresh connection; the reply line."""
    def enc(parts):
        out = b"*%d\r\n" % len(parts)
        for p in parts:
            p = p.encode() if isinstance(p, str) else p
            out += b"$%d\r\n%s\r\n" % (len(p), p)
        return out
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        f = s.makefile("rb")
        if password:
            s.sendall(enc(["AUTH", password]))
            f.readline()
        s.sendall(enc(list(args)))
        return f.readline().decode().strip()


def metric(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    line = "%s{%s} " % (name, want) if labels else name + " "
    for ln in text.splitlines():
        if ln.startswith(line):
            return float(ln.split()[-1])
    return None


class SecretsBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.key_a = jwt_util.RsaKey("kid-a-" + TAG)
        cls.key_b = jwt_util.RsaKey("kid-b-" + TAG)
        cls.key_c = jwt_util.RsaKey("kid-c-" + TAG)
        cls.stack = AwsStack(dynamodb=False, eventbridge=True, event_buses=[BUS1, BUS2],
                             secretsmanager=True).start()
        cls.sm = cls.stack.secrets_server
        cls.sm.put(JWKS, string=json.dumps(jwt_util.make_jwks(cls.key_a)))
        cls.sm.put(REDIS, string=json.dumps({"username": "default", "password": PW1}))
        cls.sm.put(BUS, string=BUS1)
        cls.redis_port = harness.free_port()   # RedisProc only where it is used

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    @classmethod
    def env(cls, **extra):
        senv = cls.stack.env(base={})
        env = {k: senv[k] for k in ("AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                    "AWS_EC2_METADATA_DISABLED", "EVENTBRIDGE_ENDPOINT",
                                    "SECRETSMANAGER_ENDPOINT")}
        env.update({
            "LOG_LEVEL": "debug",
            "AUTH_ENABLED": "true", "JWT_JWKS_SECRET_ID": JWKS,
            "JWT_ISSUER": jwt_util.ISSUER, "JWT_AUDIENCE": jwt_util.AUDIENCE,
            "RATE_LIMIT_RPS": "1000", "RATE_LIMIT_STORE": "redis",
            "RATE_LIMIT_ON_STORE_FAILURE": "deny", "REDIS_TIMEOUT_MS": "1000",
            "REDIS_URL": "redis://127.0.0.1:%d" % cls.redis_port,
            "REDIS_PASSWORD_SECRET_ID": REDIS + "#password",
            "EVENTS_PUBLISHER": "eventbridge", "EVENTBRIDGE_BUS_NAME_SECRET_ID": BUS,
            # AccessDeniedException is not retried: one fault, one failed read
            "SECRETS_TTL_SECONDS": "1",
        })
        env.update(extra)
        return env


class SecretsRotationTest(SecretsBase):
    """One service for the class; the tests run in their numbered order."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = cls.server = None
        try:
            cls.redis = RedisProc(cls.redis_port).start(timeout=20)
            redis_cmd(cls.redis.port, "CONFIG", "SET", "requirepass", PW1)
            cls.server = Server(env=cls.env()).start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server and cls.server.proc and cls.server.proc.poll() is None:
                cls.server.stop()
        finally:
            if cls.server:
                cls.server.cleanup()
            if cls.redis:
                cls.redis.cleanup()
            super().tearDownClass()

    def call(self, key, user=None, method="POST"):
        user = user or "u-" + uuid.uuid4().hex[:12]
        tok = jwt_util.sign(jwt_util.claims(user), key)
        if method == "GET":
            return self.server.request("GET", "/v1/cart/" + user, headers=jwt_util.bearer(tok))
        return self.server.request(
            "POST", "/v1/cart/%s/items" % user, headers=jwt_util.bearer(tok),
            body={"itemId": "sku-1", "quantity": 1,
                  "unitPrice": {"amount": 100, "currency": "EUR"}, "name": "Mug"})

    def metrics(self):
        r = self.server.request("GET", "/metrics")
        self.assertEqual(r.status, 200)
        return r.raw.decode()

    def wait_for(self, what, pred, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = pred()
            if got:
                return got
            time.sleep(0.1)
        self.fail("not within %ss: %s\n%s" % (timeout, what, self.server.logs()[-3000:]))

    def buses(self):
        return [e["bus"] for e in self.stack.events()]

    def test_1_secrets_in_use_from_the_start(self):
        r = self.call(self.key_a)
        self.assertEqual(r.status, 201, r)
        self.assertIn("ratelimit", r.headers)   # Redis answered (deny on failure)
        self.wait_for("an event on " + BUS1, lambda: BUS1 in self.buses())
        self.assertEqual(self.call(self.key_b).status, 401)
        m = self.metrics()
        for var in ("JWT_JWKS_SECRET_ID", "REDIS_PASSWORD_SECRET_ID",
                    "EVENTBRIDGE_BUS_NAME_SECRET_ID"):
            self.assertGreaterEqual(metric(m, "cart_secret_reads_total", secret=var,
                                           outcome="ok"), 1, var)
        start = [d for d in self.server.log_lines()
                 if isinstance(d, dict) and "config" in d][0]["config"]
        self.assertEqual(start["JWT_JWKS_SECRET_ID"], JWKS)
        self.assertEqual(start["REDIS_PASSWORD_SECRET_ID"], REDIS + "#password")
        self.assertEqual(start["EVENTBRIDGE_BUS_NAME"], "default")   # not given: unused

    def test_2_rotation_is_picked_up_while_running(self):
        before = self.metrics()
        # Redis demands the new password from now on, and drops every client.
        redis_cmd(self.redis.port, "CONFIG", "SET", "requirepass", PW2, password=PW1)
        redis_cmd(self.redis.port, "CLIENT", "KILL", "TYPE", "normal", password=PW2)
        self.wait_for("503 while the limiter holds the old password",
                      lambda: self.call(self.key_a).status == 503)
        self.sm.put(JWKS, string=json.dumps(jwt_util.make_jwks(self.key_b)))
        self.sm.put(REDIS, string=json.dumps({"username": "default", "password": PW2}))
        self.sm.put(BUS, string=BUS2)
        names = ("JWT_JWKS_SECRET_ID", "REDIS_PASSWORD_SECRET_ID",
                 "EVENTBRIDGE_BUS_NAME_SECRET_ID")
        self.wait_for("three new values", lambda: all(
            metric(self.metrics(), "cart_secret_changes_total", secret=var) ==
            metric(before, "cart_secret_changes_total", secret=var) + 1 for var in names))
        self.assertEqual(self.call(self.key_b).status, 201)   # new key, new password
        self.assertEqual(self.call(self.key_a).status, 401)   # the old key is gone
        self.wait_for("an event on " + BUS2, lambda: BUS2 in self.buses())
        self.assertTrue(self.server.wait_log(
            lambda d: d.get("msg") == "secret changed: new value in use" and
            d.get("secret") == "REDIS_PASSWORD_SECRET_ID"), "no rotation line")

    def test_3_failed_refresh_keeps_the_last_good_value(self):
        base = metric(self.metrics(), "cart_secret_reads_total",
                      secret="JWT_JWKS_SECRET_ID", outcome="failed") or 0
        self.sm.fault("error", count=3, secret=JWKS, status=400,
                      type="AccessDeniedException", message="not now")
        self.sm.put(JWKS, string=json.dumps(jwt_util.make_jwks(self.key_c)))
        self.wait_for("two failed reads", lambda: metric(
            self.metrics(), "cart_secret_reads_total", secret="JWT_JWKS_SECRET_ID",
            outcome="failed") >= base + 2)
        # Past the 1 s TTL on failing reads: the old key still works.
        self.assertEqual(self.call(self.key_b).status, 201)
        self.assertEqual(self.call(self.key_c).status, 401)
        age = metric(self.metrics(), "cart_secret_age_seconds", secret="JWT_JWKS_SECRET_ID")
        self.assertGreater(age, 1.0)
        # The third failure, then 4 s of backoff, then the new key.
        self.wait_for("the new key after the failures",
                      lambda: self.call(self.key_c).status == 201)
        self.assertEqual(metric(self.metrics(), "cart_secret_reads_total",
                                secret="JWT_JWKS_SECRET_ID", outcome="failed"), base + 3,
                         self.server.logs()[-4000:])
        lines = [d for d in self.server.log_lines() if isinstance(d, dict) and
                 d.get("secret") == "JWT_JWKS_SECRET_ID"]
        failed = [d for d in lines if d.get("msg", "").startswith("secret refresh failed")]
        self.assertEqual(len(failed), 1, failed)   # logged once for the run of three
        self.assertEqual(failed[0]["level"], "warn")
        self.assertIn("AccessDeniedException", failed[0]["error"])
        recovered = [d for d in lines if d.get("msg") == "secret refresh recovered"]
        self.assertEqual([d["failures"] for d in recovered], [3])

    def test_8_iam_exactly_get_secret_value_on_the_named_secrets(self):
        env = dict(os.environ, CART_TEST_SECRETS_CONTROL=self.sm.url)
        env.pop("CART_TEST_CONTROL", None)
        policy = os.path.join(REPO_ROOT, "docs", "iam", "secrets-policy.json")
        p = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tests", "aws",
                                                         "check_iam.py"),
                            "--policy", policy, "--exact"], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("secretsmanager:GetSecretValue", p.stdout)

    def test_9_no_secret_value_in_any_output(self):
        self.server.stop()
        out = self.server.stdout() + self.server.stderr()
        self.assertIn('"LOG_LEVEL":"debug"', out)   # every line was written
        values = [PW1, PW2, BUS1, BUS2]
        for key in (self.key_a, self.key_b, self.key_c):
            values.append(key.jwk()["n"][:40])
        for v in values:
            self.assertNotIn(v, out)


class SecretsAtStartTest(SecretsBase):
    """A secret that cannot be read stops the start: one line, its variable."""

    def start_fails(self, code, var, why, **extra):
        srv = Server(env=self.env(**extra))
        srv.port = harness.free_port()
        env = srv._env()
        p = subprocess.run([harness.binary_path()], env=env, cwd=REPO_ROOT,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=20)
        srv.cleanup()
        self.assertEqual(p.returncode, code, p.stdout + p.stderr)
        line = [l for l in p.stderr.splitlines() if var in l]
        self.assertEqual(len(line), 1, p.stderr)
        self.assertIn(why, line[0])
        self.assertNotIn(PW1, p.stdout + p.stderr)

    def test_missing_secret(self):
        self.start_fails(2, "JWT_JWKS_SECRET_ID", "ResourceNotFoundException",
                         JWT_JWKS_SECRET_ID="cart-service/no-such-secret")

    def test_missing_json_key(self):
        self.start_fails(2, "REDIS_PASSWORD_SECRET_ID", "has no key pass",
                         REDIS_PASSWORD_SECRET_ID=REDIS + "#pass")

    def test_denied_secret(self):
        self.sm.put("cart-service/denied", string="x", denied=True)
        self.start_fails(1, "EVENTBRIDGE_BUS_NAME_SECRET_ID", "AccessDeniedException",
                         EVENTBRIDGE_BUS_NAME_SECRET_ID="cart-service/denied")

    def test_bus_name_from_a_secret_is_checked(self):
        self.sm.put("cart-service/bad-bus", string="bus with spaces")
        self.start_fails(2, "EVENTBRIDGE_BUS_NAME", "secretsmanager",
                         EVENTBRIDGE_BUS_NAME_SECRET_ID="cart-service/bad-bus")

    def test_binary_secret_and_the_size_bound(self):
        """SecretBinary (base64 on the wire) is decoded; a value over
        64 KiB (Secrets Manager's own limit) is refused."""
        self.sm.put("cart-service/bus-binary", binary=BUS1.encode())
        srv = Server(env=self.env(EVENTBRIDGE_BUS_NAME_SECRET_ID="cart-service/bus-binary",
                                  AUTH_ENABLED="false", RATE_LIMIT_RPS="0",
                                  REDIS_PASSWORD_SECRET_ID="", REDIS_URL=""))
        self.addCleanup(srv.cleanup)
        srv.start()
        user = "bin-" + TAG
        r = srv.request("POST", "/v1/cart/%s/items" % user, body={
            "itemId": "sku-1", "quantity": 1, "unitPrice": {"amount": 1, "currency": "EUR"},
            "name": "Mug"})
        self.assertEqual(r.status, 201, r)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
                e["detail"].get("userId") == user for e in self.stack.events()):
            time.sleep(0.1)
        srv.stop()
        self.assertEqual([e["bus"] for e in self.stack.events()
                          if e["detail"].get("userId") == user], [BUS1])   # decoded
        self.assertNotIn(BUS1, srv.stdout() + srv.stderr())
        self.sm.put("cart-service/too-big", string="x" * 65537)
        self.start_fails(1, "JWT_JWKS_SECRET_ID", "larger than 65536 bytes",
                         JWT_JWKS_SECRET_ID="cart-service/too-big")


if __name__ == "__main__":
    unittest.main()
