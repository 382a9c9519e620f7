"""Shared base for the DynamoDB end-to-end tests (tests/e2e_aws).

Each TestCase class gets its own AwsStack (dynalite behind the SigV4
verifying proxy, optionally the ECS credentials endpoint), a table made by
the service's own `bin/cart-service migrate`, and one bin/cart-service with
STORAGE_BACKEND=dynamodb pointed at the proxy.  Tests count what reached
the proxy through its /__control/stats.

Run from the repository root:
    /usr/bin/python3 -m unittest discover -s tests/e2e_aws -p 'test_*.py'
"""

import json
import os
import subprocess
import sys
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
for _p in (os.path.join(REPO_ROOT, "tests", "aws"), os.path.join(REPO_ROOT, "tests", "e2e")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import harness  # noqa: E402
from stack import AwsStack  # noqa: E402

DDB = "DynamoDB_20120810."
TABLE = "cart-e2e-aws"

# Credential / endpoint variables the service must not inherit from the
# developer's shell: only what a test passes counts.
_AWS_VARS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
    "DYNAMODB_TIMEOUT_MS", "DYNAMODB_CONNECT_TIMEOUT_MS", "CIRCUIT_BREAKER_FAILURE_RATE",
    "CIRCUIT_BREAKER_MIN_CALLS", "CIRCUIT_BREAKER_WINDOW_SECONDS",
    "CIRCUIT_BREAKER_OPEN_SECONDS", "CIRCUIT_BREAKER_HALF_OPEN_PROBES",
    "SHUTDOWN_DRAIN_SECONDS", "E2E_BACKEND", "E2E_DYNAMODB_TABLE",
)

# What the service gets from the stack's environment.
_STACK_KEYS = ("DYNAMODB_ENDPOINT", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
               "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_EC2_METADATA_DISABLED")


def slow_tests_skipped():
    """E2E_AWS_QUICK=1 skips the tests tagged slow (ECS refresh, quota)."""
    return bool(os.environ.get("E2E_AWS_QUICK"))


def slow(reason):
    return unittest.skipIf(slow_tests_skipped(), "slow (%s); unset E2E_AWS_QUICK" % reason)


class Server(harness.Server):
    """harness.Server whose environment is exactly: the inherited one minus
    every service/AWS variable, plus the overrides (so ECS mode really runs
    without static keys, and E2E_BACKEND does not interfere)."""

    def _env(self):
        env = dict(os.environ)
        for k in list(env):
            if k in harness.ALL_VARS or k in _AWS_VARS:
                del env[k]
        env.update({
            "LISTEN_ADDR": "127.0.0.1",
            "APP_PORT": str(self.port),
            "SHUTDOWN_TIMEOUT_SECONDS": str(harness.SHUTDOWN_TIMEOUT_SECONDS),
        })
        env.update(self.env_overrides)
        return env


def service_env(stack, creds="env", **extra):
    """Variables for bin/cart-service on this stack (DynamoDB backend)."""
    senv = stack.env(creds=creds, base={})
    env = {k: senv[k] for k in _STACK_KEYS if k in senv}
    # The event relay's background Query/UpdateItem traffic would blur the
    # exact request counts these tests assert; events have their own tests.
    env.update({"EVENTS_RELAY_ENABLED": "false"})
    env.update({"STORAGE_BACKEND": "dynamodb", "DYNAMODB_TABLE": TABLE,
                "LOG_LEVEL": "info"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_migrate(stack, timeout=30):
    """`bin/cart-service migrate` with the stack's (admin) credentials."""
    env = dict(os.environ)
    for k in list(env):
        if k in harness.ALL_VARS or k in _AWS_VARS:
            del env[k]
    env.update(service_env(stack))
    p = subprocess.run([harness.binary_path(), "migrate"], env=env, cwd=REPO_ROOT,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("cart-service migrate failed (%s)\n%s\n%s"
                             % (p.returncode, p.stdout, p.stderr))
    return p


def quiet_client_disconnects(stack):
    """The proxy prints a traceback when it answers a request the service has
    already given up on (a held request past DYNAMODB_TIMEOUT_MS): that is
    what the fault tests want, so keep it out of the test output."""
    srv = getattr(stack.proxy, "_server", None)
    if srv is None:
        return
    orig = srv.handle_error

    def handle_error(request, client_address):
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        orig(request, client_address)
    srv.handle_error = handle_error


class AwsServiceTestCase(harness.ServerTestCase):
    """One AwsStack + migrated table + one cart-service per class."""

    server_env = {}        # extra service variables
    creds = "env"          # env | session | ecs
    stack_kwargs = {}      # e.g. {"ecs": True, "ecs_lifetime_seconds": 12}
    start_server = True
    stack = None

    @classmethod
    def setUpClass(cls):
        unittest.TestCase.setUpClass()
        cls.stack = AwsStack(**cls.stack_kwargs).start()
        try:
            quiet_client_disconnects(cls.stack)
            run_migrate(cls.stack)
            cls.stack.reset()
            if cls.start_server:
                cls.server = cls.start_service()
        except BaseException:
            cls.stack.stop()
            cls.stack = None
            raise

    @classmethod
    def start_service(cls, creds=None, **extra):
        env = service_env(cls.stack, creds=creds or cls.creds)
        env.update(cls.server_env)
        env.update({k: str(v) for k, v in extra.items()})
        return Server(env=env).start()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            if cls.stack is not None:
                cls.stack.stop()
                cls.stack = None

    def setUp(self):
        self.stack.reset()      # counters and pending faults

    # -- proxy counters ----------------------------------------------------

    def stats(self):
        return self.stack.stats()

    def attempts(self, op, stats=None):
        """Signature-valid requests of this operation that reached the proxy
        (faulted or not) since the last reset."""
        return (stats or self.stats())["targets"].get(DDB + op, 0)

    def forwarded(self, op, stats=None):
        """Requests of this operation that reached dynalite."""
        return (stats or self.stats())["forwarded"].get(DDB + op, 0)

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def user(prefix="aws"):
        return "%s-%s" % (prefix, uuid.uuid4().hex[:20])

    def assertUnavailable(self, r, code="cart.unavailable"):
        body = self.assertProblem(r, 503, code)
        ra = r.header("retry-after")
        self.assertIsNotNone(ra, "503 without Retry-After: %r" % (r,))
        self.assertRegex(ra, r"^[1-9][0-9]*$", r)
        return body

    def assertEmptyCart(self, user):
        c = self.get_cart(user)
        self.assertEqual(c["version"], 0, c)
        self.assertEqual(c["items"], [], c)
        return c

    def log_records(self, msg):
        return [rec for rec in self.server.log_lines()
                if isinstance(rec, dict) and rec.get("msg") == msg]

    def wait_log(self, pred, timeout=3.0):
        return self.server.wait_log(pred, timeout)

    def dump(self):
        """Debug text for failure messages."""
        return "proxy stats: %s\n%s" % (json.dumps(self.stats()), self.server.logs())


def timed(fn, *a, **kw):
    t0 = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t0
