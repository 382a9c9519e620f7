"""End-to-end harness: starts the real bin/cart-service on a free loopback
port and speaks HTTP to it with the standard library only.

    class MyTest(harness.ServerTestCase):
        server_env = {"MAX_CART_LINES": "3"}     # per-class overrides
        def test_x(self):
            r = self.request("GET", "/health")

The binary is CART_SERVICE_BIN (default bin/cart-service, relative to the
repository root, which is found from this file's location).  Each TestCase
class gets one server (setUpClass/tearDownClass); it is stopped with SIGTERM
by PID and must exit 0 (a coverage build only writes its counters on a clean
exit).  SIGKILL is used only as a fallback, and then the test fails.
"""

import collections
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))

START_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 5

UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# RFC 3339, UTC, with milliseconds (decisions: "2026-11-25T12:00:00.123Z").
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

DEFAULT_CT = object()   # sentinel: "application/json" when a body is sent

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer",
                     "UndefinedBehaviorSanitizer", "runtime error:",
                     "Segmentation fault", "double free", "stack smashing")


def binary_path():
    p = os.environ.get("CART_SERVICE_BIN", "bin/cart-service")
    if not os.path.isabs(p):
        p = os.path.join(REPO_ROOT, p)
    return p


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def new_user(prefix="u"):
    return "%s-%s" % (prefix, uuid.uuid4().hex)


def _no_dup_pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key %r in server JSON" % k)
        d[k] = v
    return d


def parse_json(raw):
    return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_dup_pairs)


class Response(collections.namedtuple("Response", "status headers body")):
    """(status, headers lower-cased, parsed JSON body or raw bytes).

    Also has .raw (bytes) and .json_error (why a JSON body did not parse)."""

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)


def _encode_body(body):
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


def read_response(resp):
    raw = resp.read()
    headers = {}
    for k, v in resp.getheaders():
        k = k.lower()
        headers[k] = headers[k] + ", " + v if k in headers else v
    body = raw
    json_error = None
    ct = headers.get("content-type", "")
    if raw and ("json" in ct):
        try:
            body = parse_json(raw)
        except ValueError as e:   # keep raw; tests asserting JSON will fail
            json_error = str(e)
    r = Response(resp.status, headers, body)
    r.raw = raw
    r.json_error = json_error
    return r


def send(conn, method, path, body=None, headers=None, content_type=DEFAULT_CT):
    """One request on an existing http.client connection."""
    data = _encode_body(body)
    hdrs = {}
    if data is not None and content_type is DEFAULT_CT:
        hdrs["Content-Type"] = "application/json"
    elif content_type not in (None, DEFAULT_CT):
        hdrs["Content-Type"] = content_type
    if headers:
        hdrs.update(headers)
    conn.request(method, path, body=data, headers=hdrs)
    return read_response(conn.getresponse())


def request(port, method, path, body=None, headers=None,
            content_type=DEFAULT_CT, timeout=10.0):
    """A request on a fresh connection (closed afterwards)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return send(conn, method, path, body, headers, content_type)
    finally:
        conn.close()


class Server:
    """One bin/cart-service process with logs captured to files."""

    def __init__(self, env=None, args=None, preexec_fn=None):
        self.env_overrides = dict(env or {})
        self.args = list(args or [])
        self.preexec_fn = preexec_fn     # run in the child before exec
        self.proc = None
        self.port = None
        self.logdir = tempfile.mkdtemp(prefix="cart-e2e-")
        self.stdout_path = os.path.join(self.logdir, "stdout.log")
        self.stderr_path = os.path.join(self.logdir, "stderr.log")
        self.returncode = None

    # -- lifecycle --------------------------------------------------------

    def _env(self):
        backend = backend_env()
        env = dict(os.environ)
        for k in list(env):   # do not inherit a developer's service config
            if k in ALL_VARS:
                del env[k]
        env.update({
            "LISTEN_ADDR": "127.0.0.1",
            "APP_PORT": str(self.port),
            "SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT_SECONDS),
            # Functional suites send bursts from one address; the rate
            # limiter has its own suites (test_ratelimit.py).
            "RATE_LIMIT_RPS": "0",
        })
        env.update(backend)
        env.update(self.env_overrides)
        return env

    def start(self):
        binp = binary_path()
        if not os.access(binp, os.X_OK):
            raise AssertionError("server binary %s is missing (build it with "
                                 "`make bin/cart-service`)" % binp)
        for attempt in range(3):
            self.port = int(self.env_overrides.get("APP_PORT", free_port()))
            with open(self.stdout_path, "wb") as out, \
                    open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen([binp] + self.args, env=self._env(),
                                             stdout=out, stderr=err,
                                             stdin=subprocess.DEVNULL,
                                             cwd=REPO_ROOT,
                                             preexec_fn=self.preexec_fn)
            if self._wait_healthy():
                return self
            if self.proc.poll() is not None and attempt < 2 and \
                    re.search(r"in use|bind", self.logs(), re.I) and \
                    "APP_PORT" not in self.env_overrides:
                continue   # lost the race for the port; try another one
            break
        logs = self.logs()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        raise AssertionError("cart-service did not answer /health within %ss "
                             "(exit code %s)\n%s" % (START_TIMEOUT,
                                                     self.proc.returncode, logs))

    def _wait_healthy(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = request(self.port, "GET", "/health", timeout=1.0)
                if r.status == 200:
                    return True
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.03)
        return False

    def send_signal(self, sig=signal.SIGTERM):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout):
        """Exit code, or None if the process is still running after timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM by PID; must exit 0 within the shutdown timeout."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.send_signal(sig)
        rc = self.wait_exit(SHUTDOWN_TIMEOUT_SECONDS + 5)
        if rc is None:
            self.proc.kill()       # fallback only; this is a failure
            self.proc.wait()
            raise AssertionError("cart-service ignored SIGTERM; killed -9\n"
                                 + self.logs())
        bad = [m for m in SANITIZER_MARKERS if m in self.logs()]
        if rc != 0 or bad:
            raise AssertionError("cart-service exited with %s after SIGTERM "
                                 "(want 0)%s\n%s" % (rc, " markers %s" % bad
                                                     if bad else "",
                                                     self.logs()))

    def cleanup(self):
        """Removes the captured logs (kept when E2E_KEEP_LOGS is set)."""
        if not os.environ.get("E2E_KEEP_LOGS"):
            shutil.rmtree(self.logdir, ignore_errors=True)

    # -- logs ------------------------------------------------------------

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def logs(self):
        return ("--- stdout (%s) ---\n%s\n--- stderr (%s) ---\n%s" %
                (self.stdout_path, self.stdout()[-6000:],
                 self.stderr_path, self.stderr()[-6000:]))

    def log_lines(self):
        """stdout lines parsed as JSON (a non-JSON line is returned as str).

        Only complete lines: the log writer thread writes many lines per
        write(2), and a read that races it may see the last one cut; that
        line is still being written, so it is left for the next read."""
        out = []
        text = self.stdout()
        if text and not text.endswith("\n"):
            text = text[:text.rfind("\n") + 1]
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append(line)
        return out

    def wait_log(self, pred, timeout=3.0):
        """First JSON log line on stdout matching pred, polling up to timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for rec in self.log_lines():
                if isinstance(rec, dict) and pred(rec):
                    return rec
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    # -- http ------------------------------------------------------------

    def request(self, method, path, body=None, headers=None,
                content_type=DEFAULT_CT, timeout=10.0):
        return request(self.port, method, path, body, headers, content_type,
                       timeout)

    def connection(self, timeout=10.0):
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)


def backend_env():
    """The storage backend every server of this run uses.

    E2E_BACKEND=dynamodb runs the whole suite against DynamoDB: the caller
    (make dynamo, through tests/aws/stack.py) provides DYNAMODB_ENDPOINT and
    credentials, and E2E_DYNAMODB_TABLE names a migrated table.
    """
    backend = os.environ.get("E2E_BACKEND", "memory")
    if backend == "memory":
        return {}
    if backend != "dynamodb":
        raise AssertionError("E2E_BACKEND must be memory or dynamodb")
    endpoint = os.environ.get("DYNAMODB_ENDPOINT")
    if not endpoint:
        raise AssertionError("E2E_BACKEND=dynamodb needs DYNAMODB_ENDPOINT "
                             "(run through tests/aws/stack.py)")
    env = {"STORAGE_BACKEND": "dynamodb", "DYNAMODB_ENDPOINT": endpoint,
           "DYNAMODB_TABLE": os.environ.get("E2E_DYNAMODB_TABLE", "cart-e2e")}
    # E2E_EVENTS=eventbridge: events go to the EventBridge stand-in
    # (stack.py --eventbridge sets EVENTBRIDGE_ENDPOINT).
    if os.environ.get("E2E_EVENTS") == "eventbridge":
        if not os.environ.get("EVENTBRIDGE_ENDPOINT"):
            raise AssertionError("E2E_EVENTS=eventbridge needs EVENTBRIDGE_ENDPOINT")
        env.update({"EVENTS_PUBLISHER": "eventbridge",
                    "EVENTBRIDGE_ENDPOINT": os.environ["EVENTBRIDGE_ENDPOINT"]})
    # E2E_APPCONFIG=1: feature flags from the AppConfig stand-in
    # (stack.py --appconfig), at the configuration the runtime policy names.
    if os.environ.get("E2E_APPCONFIG") == "1":
        if not os.environ.get("FEATURE_FLAGS_APPCONFIG_ENDPOINT"):
            raise AssertionError("E2E_APPCONFIG=1 needs FEATURE_FLAGS_APPCONFIG_ENDPOINT")
        env.update({"FEATURE_FLAGS_APPCONFIG_ENDPOINT":
                    os.environ["FEATURE_FLAGS_APPCONFIG_ENDPOINT"],
                    "FEATURE_FLAGS_APPCONFIG_APPLICATION": "cart-service",
                    "FEATURE_FLAGS_APPCONFIG_ENVIRONMENT": "prod",
                    "FEATURE_FLAGS_APPCONFIG_PROFILE": "feature-flags"})
    return env


# Every environment variable the issue names (plus LISTEN_ADDR from the
# decisions, and the two edge timeouts issue 7 sets: an idle keep-alive
# connection is closed after KEEP_ALIVE_TIMEOUT_MS, a request whose head or
# body is not in within REQUEST_TIMEOUT_MS gets 408), with the documented
# default ('' = none).
ENV_DEFAULTS = collections.OrderedDict([
    ("APP_PORT", "8080"),
    ("ENV_NAME", "dev"),
    ("LOG_LEVEL", "info"),
    ("AWS_REGION", "us-east-1"),
    ("DYNAMODB_TABLE", "cart-service-carts"),
    ("DYNAMODB_ENDPOINT", ""),
    ("AWS_XRAY_ENABLED", "false"),
    ("RATE_LIMIT_RPS", "100"),
    ("CIRCUIT_BREAKER_ENABLED", "true"),
    ("EVENTBRIDGE_ENABLED", "true"),
    ("EVENTBRIDGE_BUS_NAME", "default"),
    ("STORAGE_BACKEND", ""),
    ("EVENTS_PUBLISHER", ""),
    ("MAX_ITEM_QUANTITY", "999"),
    ("MAX_CART_LINES", "100"),
    ("CART_TTL_DAYS", "30"),
    ("SHUTDOWN_TIMEOUT_SECONDS", "25"),
    ("HTTP_THREADS", ""),
    ("LISTEN_ADDR", "0.0.0.0"),
    ("KEEP_ALIVE_TIMEOUT_MS", "5000"),
    ("REQUEST_TIMEOUT_MS", "10000"),
    ("FEATURE_FLAGS_FILE", ""),
    ("FEATURE_FLAGS_RELOAD_SECONDS", "30"),
    ("FEATURE_FLAGS_APPCONFIG_MIN_POLL_SECONDS", "15"),
    ("SECRETS_TTL_SECONDS", "300"),
])
# Every variable the service reads: cleared from the inherited environment
# so a developer's service config does not leak into a test server.
ALL_VARS = set(ENV_DEFAULTS) | {
    "SHUTDOWN_DRAIN_SECONDS", "DYNAMODB_TIMEOUT_MS",
    "DYNAMODB_CONNECT_TIMEOUT_MS", "AWS_MAX_ATTEMPTS", "EVENTS_RELAY_ENABLED",
    "EVENTS_RELAY_CONCURRENCY", "EVENTS_BACKLOG_MAX_MB", "EVENTS_MAX_ATTEMPTS", "EVENTS_ACK_DELAY_MS",
    "IDEMPOTENCY_MAX_RECORDS",
    "EVENTBRIDGE_ENDPOINT", "EVENTBRIDGE_SOURCE", "CIRCUIT_BREAKER_FAILURE_RATE",
    "CIRCUIT_BREAKER_MIN_CALLS", "CIRCUIT_BREAKER_WINDOW_SECONDS",
    "CIRCUIT_BREAKER_OPEN_SECONDS", "CIRCUIT_BREAKER_HALF_OPEN_PROBES",
    "RATE_LIMIT_BURST", "RATE_LIMIT_STORE", "RATE_LIMIT_MAX_KEYS",
    "RATE_LIMIT_ON_STORE_FAILURE", "REDIS_URL", "REDIS_TIMEOUT_MS",
    "TRUSTED_PROXIES", "AUTH_ENABLED", "JWT_JWKS_FILE", "JWT_JWKS_URL",
    "JWT_ISSUER", "JWT_AUDIENCE", "JWT_CLIENT_ID", "JWT_ALGORITHMS",
    "JWT_LEEWAY_SECONDS", "JWT_JWKS_MIN_REFRESH_SECONDS",
    "JWT_JWKS_MAX_AGE_SECONDS", "JWT_JWKS_TIMEOUT_MS", "JWT_ADMIN_SCOPE",
    "JWT_CACHE_ENTRIES",
    "METRICS_ENABLED", "METRICS_EMF", "METRICS_EMF_INTERVAL_SECONDS",
    "AWS_XRAY_DAEMON_ADDRESS", "AWS_XRAY_TRACING_NAME",
    # feature flags (app/flags.h)
    "FEATURE_REQUIRE_IF_MATCH", "FEATURE_IDEMPOTENCY_REQUIRED", "FEATURE_EVENTS",
    "FEATURE_AUTH_ENFORCE", "FEATURE_FLAGS_FILE", "FEATURE_FLAGS_RELOAD_SECONDS",
    "FEATURE_FLAGS_APPCONFIG_APPLICATION", "FEATURE_FLAGS_APPCONFIG_ENVIRONMENT",
    "FEATURE_FLAGS_APPCONFIG_PROFILE", "FEATURE_FLAGS_APPCONFIG_ENDPOINT",
    "FEATURE_FLAGS_APPCONFIG_MIN_POLL_SECONDS",
    # secrets (README "Secrets"): X, X_FILE, X_SECRET_ID
    "JWT_JWKS", "JWT_JWKS_SECRET_ID", "REDIS_PASSWORD", "REDIS_PASSWORD_FILE",
    "REDIS_PASSWORD_SECRET_ID", "EVENTBRIDGE_BUS_NAME_FILE",
    "EVENTBRIDGE_BUS_NAME_SECRET_ID", "SECRETSMANAGER_ENDPOINT",
    # the SDKs' endpoint names, read by the AWS clients and checked at start
    # (the credential variables are not here: a DynamoDB run inherits them
    # from tests/aws/stack.py; see AWS_CREDENTIAL_VARS)
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_EVENTBRIDGE"}
# The credential chain's variables (adapters/aws/aws_creds.c).
AWS_CREDENTIAL_VARS = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"}


# -- raw HTTP/1.1 over a socket ---------------------------------------------
#
# For framing tests http.client is too forgiving (and too helpful): these
# helpers send exact bytes and parse every response the server writes back.

class RawResult:
    """What one raw exchange produced.

    responses: Response tuples (.raw is the body bytes) in arrival order;
    closed: the server ended the connection (EOF or reset) before the
    deadline; reset: it was a reset; trailing: bytes after the last complete
    response that do not parse as the start of another (e.g. a body after a
    HEAD response); error: why parsing stopped, if it did; elapsed: seconds
    from the first send to the end of reading (EOF time when closed)."""

    def __init__(self):
        self.responses = []
        self.closed = False
        self.reset = False
        self.trailing = b""
        self.error = None
        self.elapsed = None
        self.data = b""

    def __repr__(self):
        return ("RawResult(%d responses %s, closed=%s, reset=%s, "
                "trailing=%r, error=%s, elapsed=%s)"
                % (len(self.responses),
                   [(r.status, r.headers, r.raw[:300]) for r in self.responses],
                   self.closed, self.reset, self.trailing[:200], self.error,
                   None if self.elapsed is None else "%.2fs" % self.elapsed))


_BODYLESS = (204, 304)


def parse_raw_responses(data, methods=(), eof=False):
    """Parses HTTP/1.1 responses from data.

    methods[i] is the method of the i-th request (a HEAD response has no
    body); missing entries count as GET.  Returns (responses, rest, error):
    rest is what follows the last complete response; error is a string when
    rest can never become a valid response (garbage), else None."""
    out = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            start = data[pos:pos + 9]
            if not (b"HTTP/1.1 ".startswith(start) or
                    b"HTTP/1.0 ".startswith(start) or
                    re.match(rb"HTTP/1\.[01] ", start)):
                return out, data[pos:], "not a status line"
            return out, data[pos:], ("truncated head" if eof else None)
        head = data[pos:end].decode("latin-1")
        lines = head.split("\r\n")
        m = re.match(r"^HTTP/1\.([01]) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            return out, data[pos:], "bad status line %r" % lines[0][:80]
        status = int(m.group(2))
        headers = {}
        for line in lines[1:]:
            if ":" not in line:
                return out, data[pos:], "bad header line %r" % line[:80]
            k, v = line.split(":", 1)
            k = k.strip().lower()
            v = v.strip()
            headers[k] = headers[k] + ", " + v if k in headers else v
        i = len(out)
        method = methods[i] if i < len(methods) else "GET"
        bstart = end + 4
        if method == "HEAD" or status in _BODYLESS or 100 <= status < 200:
            body = b""
            nxt = bstart
        elif "transfer-encoding" in headers:
            # chunked (our server never sends it; civetweb might)
            body = b""
            p = bstart
            while True:
                le = data.find(b"\r\n", p)
                if le < 0:
                    return out, data[pos:], ("truncated chunked body"
                                             if eof else None)
                try:
                    size = int(data[p:le].split(b";")[0], 16)
                except ValueError:
                    return out, data[pos:], "bad chunk size"
                if size == 0:
                    te = data.find(b"\r\n\r\n", le)
                    if data[le:le + 4] == b"\r\n\r\n":
                        te = le
                    if te < 0:
                        return out, data[pos:], None
                    nxt = te + 4
                    break
                if len(data) < le + 2 + size + 2:
                    return out, data[pos:], ("truncated chunk" if eof else None)
                body += data[le + 2:le + 2 + size]
                p = le + 2 + size + 2
        elif "content-length" in headers:
            try:
                n = int(headers["content-length"])
            except ValueError:
                return out, data[pos:], "bad Content-Length %r" % \
                    headers["content-length"]
            if len(data) - bstart < n:
                return out, data[pos:], ("truncated body" if eof else None)
            body = data[bstart:bstart + n]
            nxt = bstart + n
        else:
            # delimited by the close
            if not eof:
                return out, data[pos:], None
            body = data[bstart:]
            nxt = len(data)
        parsed = body
        json_error = None
        if body and "json" in headers.get("content-type", ""):
            try:
                parsed = parse_json(body)
            except ValueError as e:
                json_error = str(e)
        r = Response(status, headers, parsed)
        r.raw = body
        r.json_error = json_error
        out.append(r)
        pos = nxt
    return out, b"", None


def raw_exchange(port, data, methods=(), timeout=3.0, expect=None, grace=0.3,
                 half_close=False, segments=None, sock=None):
    """Sends raw bytes and reads every response until EOF or timeout.

    data: bytes, sent at once (or segments: a list of bytes and float
    pauses, sent in order).  half_close: shutdown(SHUT_WR) after sending.
    Reading stops at EOF/reset, at timeout seconds after the last send, or
    grace seconds after `expect` complete responses have arrived (so a
    keep-alive exchange does not wait the whole timeout; bytes arriving
    within the grace still count).  sock: an already connected socket to
    use (it is NOT closed); otherwise a fresh connection is made and closed.
    """
    own = sock is None
    if own:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    res = RawResult()
    buf = b""
    t0 = time.monotonic()
    try:
        try:
            for part in (segments if segments is not None else [data]):
                if isinstance(part, (int, float)):
                    time.sleep(part)
                    continue
                sock.sendall(part)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError) as e:
            res.error = "send failed: %r" % e
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            resp, rest, err = parse_raw_responses(buf, methods)
            if err:
                break
            if expect is not None and len(resp) >= expect:
                deadline = min(deadline, now + grace)
                expect = None
            if now >= deadline:
                break
            sock.settimeout(max(0.01, deadline - now))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                res.closed = res.reset = True
                break
            if not chunk:
                res.closed = True
                break
            buf += chunk
        res.elapsed = time.monotonic() - t0
    finally:
        if own:
            sock.close()
    res.data = buf
    res.responses, res.trailing, err = parse_raw_responses(buf, methods,
                                                           eof=res.closed)
    res.error = res.error or err
    return res


class ServerTestCase(unittest.TestCase):
    """Base class: one server per TestCase class."""

    server_env = {}
    server = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = Server(env=cls.server_env).start()

    @classmethod
    def tearDownClass(cls):
        srv, cls.server = cls.server, None
        try:
            if srv is not None:
                srv.stop()          # raises (logs kept) unless exit 0
                srv.cleanup()
        finally:
            super().tearDownClass()

    # -- helpers ---------------------------------------------------------

    def request(self, method, path, body=None, headers=None,
                content_type=DEFAULT_CT, timeout=10.0):
        return self.server.request(method, path, body, headers, content_type,
                                   timeout)

    def get_cart(self, user):
        r = self.request("GET", "/v1/cart/%s" % user)
        self.assertEqual(r.status, 200, r)
        self.assertIsInstance(r.body, dict, r)
        return r.body

    def add(self, user, item="sku-1", quantity=1, amount=1999,
            currency="EUR", headers=None, **extra):
        body = {"itemId": item, "quantity": quantity,
                "unitPrice": {"amount": amount, "currency": currency}}
        body.update(extra)
        return self.request("POST", "/v1/cart/%s/items" % user, body,
                            headers=headers)

    def add_ok(self, user, item="sku-1", quantity=1, amount=1999,
               currency="EUR", **extra):
        r = self.add(user, item, quantity, amount, currency, **extra)
        self.assertIn(r.status, (200, 201), r)
        return r.body

    def assertProblem(self, r, status, code=None):
        """r is an RFC 9457 problem with this status (and code)."""
        self.assertEqual(r.status, status, "want %s%s, got %r" %
                         (status, " " + code if code else "", r))
        ct = r.header("content-type", "")
        self.assertEqual(ct.split(";")[0].strip().lower(),
                         "application/problem+json", r)
        self.assertIsInstance(r.body, dict, "problem body is not JSON: %r" % (r,))
        for k in ("type", "title", "status", "detail", "code"):
            self.assertIn(k, r.body, r)
        self.assertEqual(r.body["status"], status, r)
        self.assertIsInstance(r.body["status"], int, r)
        for k in ("type", "title", "detail", "code"):
            self.assertIsInstance(r.body[k], str, r)
            self.assertTrue(r.body[k], "empty %s in %r" % (k, r.body))
        if code is not None:
            self.assertEqual(r.body["code"], code, r)
        return r.body

    def assertHealthy(self):
        r = self.request("GET", "/health")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, {"status": "ok"})
