"""The contract test: live traffic against docs/swagger.yaml.

Starts the real bin/cart-service (tests/e2e/harness.py) three times:

  main   authentication on (a JWKS file), the rate limiter on with a high
         limit (its headers on every /v1 answer), MAX_ITEM_QUANTITY at its
         largest (1000000: amounts above 2^53 - 1 and int64 overflow),
         MAX_CART_LINES 10, the event relay off (so one cart's 100 pending
         events give 503 cart.events_backlog);
  small  a limit of 1 request per second (429), REQUEST_TIMEOUT_MS 1000
         (408 on every operation, in parallel), /metrics off (404), and a
         drain on SIGTERM (/ready 503 while shutting down);
  down   the DynamoDB store on a port nobody listens on, no circuit
         breaker (503 cart.unavailable on every cart operation, /ready 503).

It sends every route every way the spec says it can answer, with the
documented headers (ETag/If-Match, Idempotency-Key and replays,
X-Request-Id, X-Amzn-Trace-Id and traceparent, RateLimit and Retry-After,
Allow, WWW-Authenticate, Connection), framing refusals over raw sockets,
and answers no path can describe (unknown paths, methods a path does not
serve, OPTIONS *, 414, 505). Every exchange is recorded and checked by
tests/contract/validate.js with Prism's validator (@stoplight/prism-http,
pinned in tests/contract/package-lock.json; docs/adr/0018): status,
headers, media type (application/problem+json exactly) and body; requests
the server accepted or refused only for a rule (422) must be valid against
the request schemas, and bodies it refused as malformed (400) invalid.

The test fails on any undocumented answer, on any documented
(operation, status) pair that no exchange covered (apart from NOT_PROVOKED,
each with its reason), and if deliberately broken copies of real exchanges
are not refused (the validator is really looking).
"""

import concurrent.futures
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "e2e"))
sys.path.insert(0, os.path.join(TESTS, "edge"))

import harness  # noqa: E402
import jwt_util  # noqa: E402

SPEC = os.path.join(harness.REPO_ROOT, "docs", "swagger.yaml")
VALIDATOR = os.path.join(HERE, "validate.js")

# Documented answers this test cannot provoke from outside, with why.
NOT_PROVOKED = {
    "409": "cart.idempotency_in_flight and cart.concurrent_modification "
           "need two requests to race inside one store call (microseconds "
           "on the memory store); tests/e2e/test_concurrency.py and "
           "test_idempotency.py cover them without a validator",
    "500": "cart.internal_error is an allocation failure or a bug; nothing "
           "a client sends provokes it",
}

OPS = {   # operationId: (method, path template, needs a token)
    "getHealth": ("GET", "/health", False),
    "headHealth": ("HEAD", "/health", False),
    "optionsHealth": ("OPTIONS", "/health", False),
    "getReady": ("GET", "/ready", False),
    "headReady": ("HEAD", "/ready", False),
    "optionsReady": ("OPTIONS", "/ready", False),
    "getMetrics": ("GET", "/metrics", False),
    "headMetrics": ("HEAD", "/metrics", False),
    "optionsMetrics": ("OPTIONS", "/metrics", False),
    "getCart": ("GET", "/v1/cart/{u}", True),
    "headCart": ("HEAD", "/v1/cart/{u}", True),
    "optionsCart": ("OPTIONS", "/v1/cart/{u}", False),
    "clearCart": ("DELETE", "/v1/cart/{u}", True),
    "optionsItems": ("OPTIONS", "/v1/cart/{u}/items", False),
    "addItem": ("POST", "/v1/cart/{u}/items", True),
    "optionsItem": ("OPTIONS", "/v1/cart/{u}/items/{i}", False),
    "setItemQuantity": ("PATCH", "/v1/cart/{u}/items/{i}", True),
    "removeItem": ("DELETE", "/v1/cart/{u}/items/{i}", True),
}
# The operations behind a token (authentication, the limiter, the store).
GUARDED = [(m, tpl) for m, tpl, needs in OPS.values() if needs]
SERVED = {}
for _m, _p, _ in OPS.values():
    SERVED.setdefault(_p, set()).add(_m)
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def sample_body(method, quantity=1):
    """A valid body for the operation of this method (None: it takes none)."""
    return item() if method == "POST" else \
        {"quantity": quantity} if method == "PATCH" else None


def item(iid="sku-1", q=1, amount=1999, cur="EUR", **extra):
    d = {"itemId": iid, "quantity": q,
         "unitPrice": {"amount": amount, "currency": cur}}
    d.update(extra)
    return d


class Recorder:
    """Sends requests and keeps every exchange for the validator."""

    def __init__(self):
        self.exchanges = []
        self.lock = threading.Lock()

    def _keep(self, method, path, req_headers, req_body, resp, check, component):
        body = resp.body
        if isinstance(body, (bytes, bytearray)):
            body = body.decode("utf-8", "replace") if body else None
        with self.lock:
            ex = {"id": "x%d" % len(self.exchanges), "method": method,
                  "path": path,
                  "requestHeaders": {k.lower(): v for k, v in req_headers.items()},
                  "requestBody": req_body, "status": resp.status,
                  "headers": dict(resp.headers), "body": body,
                  "checkRequest": check, "component": component}
            if getattr(resp, "json_error", None):
                ex["jsonError"] = resp.json_error
            self.exchanges.append(ex)
        return resp

    def send(self, port, method, path, body=None, headers=None, token=None,
             content_type=None, check=None, component=None, rid=None):
        """One request on a fresh connection.  body: a dict (sent as JSON),
        str or bytes (sent as is)."""
        h = {"X-Amzn-Trace-Id": TRACE}
        if rid:
            h["X-Request-Id"] = rid
        if token:
            h["Authorization"] = "Bearer " + token
        data = None
        req_body = None
        if body is not None:
            data = body if isinstance(body, bytes) else \
                body.encode("utf-8") if isinstance(body, str) else \
                json.dumps(body).encode("utf-8")
            h["Content-Type"] = content_type or "application/json"
            h["Content-Length"] = str(len(data))
            try:
                req_body = json.loads(data)
            except ValueError:
                req_body = data.decode("utf-8", "replace")
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(method, path, body=data, headers=h)
            resp = harness.read_response(conn.getresponse())
        finally:
            conn.close()
        return self._keep(method, path, h, req_body, resp, check, component)

    def raw(self, port, method, path, head_lines, body=b"", component=None,
            segments=None, timeout=3.0, version="HTTP/1.1"):
        """Exact bytes (framing cases); the first response is kept."""
        req = ("%s %s %s\r\nHost: 127.0.0.1\r\n%s\r\n" %
               (method, path, version,
                "".join(l + "\r\n" for l in head_lines))).encode("latin-1")
        res = harness.raw_exchange(port, req + body, methods=[method],
                                   timeout=timeout, expect=1,
                                   segments=segments and [req] + segments)
        if not res.responses:
            raise AssertionError("no answer to %s %s: %r" % (method, path, res))
        headers = dict(l.split(":", 1) for l in head_lines)
        return self._keep(method, path, {k.strip(): v.strip() for k, v in headers.items()},
                          None, res.responses[0], None, component)


def run_validator(exchanges):
    p = subprocess.run(["node", VALIDATOR, SPEC], cwd=HERE,
                       input="".join(json.dumps(e) + "\n" for e in exchanges),
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("validate.js failed (%d): %s" % (p.returncode, p.stderr))
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return {v["id"]: v for v in lines[:-1]}, lines[-1]["documented"]


class ContractTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.key = jwt_util.RsaKey("contract-key")
        cls.jwks = jwt_util.write_jwks_file(cls.key)
        cls.rec = Recorder()
        cls.servers = []
        cls.main = cls._start({
            "AUTH_ENABLED": "true", "JWT_JWKS_FILE": cls.jwks,
            "JWT_ISSUER": jwt_util.ISSUER, "JWT_AUDIENCE": jwt_util.AUDIENCE,
            "RATE_LIMIT_RPS": "100000", "MAX_ITEM_QUANTITY": "1000000",
            "MAX_CART_LINES": "10", "EVENTS_RELAY_ENABLED": "false"})
        cls.small = cls._start({
            "RATE_LIMIT_RPS": "1", "RATE_LIMIT_BURST": "1",
            "REQUEST_TIMEOUT_MS": "1000", "METRICS_ENABLED": "false",
            "SHUTDOWN_DRAIN_SECONDS": "2"})
        cls.down = cls._start({
            "STORAGE_BACKEND": "dynamodb", "EVENTS_PUBLISHER": "none",
            "DYNAMODB_ENDPOINT": "http://127.0.0.1:%d" % harness.free_port(),
            "AWS_ACCESS_KEY_ID": "AKIDCONTRACTTEST", "AWS_SECRET_ACCESS_KEY": "x",
            "REQUEST_TIMEOUT_MS": "2000", "RATE_LIMIT_RPS": "0",
            # every call reaches the dead store: 503 without Retry-After (an
            # open breaker's 503 has one, like the backlog's below)
            "CIRCUIT_BREAKER_ENABLED": "false"})

    @classmethod
    def _start(cls, env):
        srv = harness.Server(env=env)
        cls.servers.append(srv)
        srv.start()
        return srv

    @classmethod
    def tearDownClass(cls):
        for srv in cls.servers:
            if srv.proc is not None and srv.returncode is None:
                srv.stop()
            srv.cleanup()
        os.unlink(cls.jwks)

    def token(self, sub):
        return jwt_util.sign(jwt_util.claims(sub), self.key)

    def path(self, template, u="alice", i="sku-1"):
        return template.replace("{u}", u).replace("{i}", i)

    # -- the traffic ----------------------------------------------------

    def operations_traffic(self):
        s, p = self.rec.send, self.main.port
        for path in ("/health", "/ready", "/metrics"):
            s(p, "GET", path, check=True, rid="probe-" + path[1:])
            s(p, "HEAD", path, check=True, headers={"traceparent": TRACEPARENT})
            s(p, "OPTIONS", path, check=True)
        for template in ("/v1/cart/{u}", "/v1/cart/{u}/items", "/v1/cart/{u}/items/{i}"):
            s(p, "OPTIONS", self.path(template, "bad%20id"), check=True)
        s(p, "OPTIONS", "*", component="Options")

    def cart_traffic(self):
        s, p = self.rec.send, self.main.port
        u, t = harness.new_user("contract"), None
        t = self.token(u)
        base = "/v1/cart/" + u
        s(p, "GET", base, token=t, check=True)                      # empty cart
        s(p, "HEAD", base, token=t, check=True)
        r = s(p, "POST", base + "/items", item(name="Mug", attributes={"color": "red"}),
              token=t, check=True, rid="contract-add-1")
        self.assertEqual(r.status, 201, r)
        s(p, "POST", base + "/items", item(q=2, name=None, attributes=None),
          token=t, check=True, headers={"If-Match": r.header("etag")})   # 200 merge
        s(p, "POST", base + "/items", item("sku-2", 2000, amount=10**12),
          token=t, check=True, content_type="application/merge-patch+json; charset=utf-8")
        s(p, "GET", base, token=t, check=True)
        s(p, "PATCH", base + "/items/sku-1", {"quantity": 3}, token=t, check=True,
          headers={"If-Match": "*"})
        s(p, "PATCH", base + "/items/sku-1", {"quantity": 3}, token=t, check=True)  # unchanged
        s(p, "DELETE", base + "/items/sku-2", token=t, check=True)
        s(p, "PATCH", base + "/items/sku-1", {"quantity": 0}, token=t, check=True)  # removes
        s(p, "DELETE", base, token=t, check=True, headers={"If-Match": 'W/"6"'})
        s(p, "DELETE", base, token=t, check=True)                    # nothing to clear
        # Names and attributes count bytes: 256 bytes pass, 129 two-byte
        # characters (258 bytes, fewer than 256 characters) are a rule (422).
        s(p, "POST", base + "/items", item("n", name="a" * 256), token=t, check=True)
        s(p, "POST", base + "/items", item("n", name="\u00e9" * 129), token=t, check=True)
        s(p, "POST", base + "/items", item("n", attributes={"k": "\u00e9" * 129}),
          token=t, check=True)
        # Above MAX_ITEM_QUANTITY's default (999): this server allows 10^6,
        # and the line total (10^18) is beyond 2^53 - 1.
        r = s(p, "POST", base + "/items", item("big", 1000000, amount=10**12),
              token=t, check=True)
        self.assertEqual(r.status, 201, r)
        self.assertGreater(r.body["subtotal"]["amount"], 2**53 - 1)
        self.assertEqual(r.body["subtotal"]["amount"], 10**18 + 1999)   # + line "n"

    def rule_traffic(self):
        """422: well-formed bodies (valid against the request schema) that
        break a rule."""
        s, p = self.rec.send, self.main.port
        u = harness.new_user("rules")
        t, base = self.token(u), "/v1/cart/" + u
        for body in (item(q=0), item(q=1000001), item(q=2**63), item(amount=10**12 + 1),
                     item(amount=-1), item(cur="eur"), item(name="x" * 257),
                     item(attributes={"k%d" % n: "v" for n in range(21)}),
                     item(attributes={"": "v"}), item(attributes={"k" * 65: "v"})):
            r = s(p, "POST", base + "/items", body, token=t, check=True)
            self.assertEqual(r.status, 422, r)
        s(p, "POST", base + "/items", item(), token=t, check=True)
        r = s(p, "POST", base + "/items", item("usd", cur="USD"), token=t, check=True)
        self.assertEqual(r.body["code"], "cart.currency_mismatch", r)
        r = s(p, "PATCH", base + "/items/sku-1", {"quantity": -1}, token=t, check=True)
        self.assertEqual(r.status, 422, r)
        # 9 lines of 10^18, then a 10th: the subtotal leaves int64.
        ou = harness.new_user("overflow")
        ot = self.token(ou)
        for n in range(9):
            s(p, "POST", "/v1/cart/%s/items" % ou, item("o%d" % n, 1000000, amount=10**12),
              token=ot, check=True)
        r = s(p, "POST", "/v1/cart/%s/items" % ou, item("o9", 1000000, amount=10**12),
              token=ot, check=True)
        self.assertEqual(r.body["code"], "cart.total_overflow", r)
        r = s(p, "POST", "/v1/cart/%s/items" % ou, item("o9"), token=ot, check=True)
        self.assertEqual(r.status, 201, r)                          # the 10th line
        r = s(p, "POST", "/v1/cart/%s/items" % ou, item("o10"), token=ot, check=True)
        self.assertEqual(r.body["code"], "cart.too_many_lines", r)

    def malformed_traffic(self):
        """400: bodies, ids and headers the server refuses as malformed."""
        s, p = self.rec.send, self.main.port
        u = harness.new_user("bad")
        t, base = self.token(u), "/v1/cart/" + u
        for body in ({"itemId": "a", "quantity": 1.5, "unitPrice": {"amount": 1, "currency": "EUR"}},
                     {"itemId": "a", "quantity": "1", "unitPrice": {"amount": 1, "currency": "EUR"}},
                     {"itemId": "a", "quantity": 1},
                     dict(item(), version=7),
                     item(attributes={"k": 1}), item(name=5), item(iid="bad id"),
                     item(iid="x" * 129), "[1]", "{not json"):
            r = s(p, "POST", base + "/items", body, token=t, check=False)
            self.assertEqual(r.status, 400, r)
        deep = '{"itemId":"a","quantity":1,"unitPrice":{"amount":1,"currency":"EUR"},' \
               '"attributes":' + '{"a":' * 9 + '1' + '}' * 9 + '}'
        s(p, "POST", base + "/items", deep, token=t)                 # cart.invalid_json
        s(p, "POST", base + "/items", '{"itemId":"a","itemId":"b","quantity":1,'
          '"unitPrice":{"amount":1,"currency":"EUR"}}', token=t)    # duplicate key
        s(p, "PATCH", base + "/items/sku-1", {"quantity": 1, "x": 1}, token=t, check=False)
        s(p, "GET", "/v1/cart/bad%20id", token=t, check=False)
        s(p, "HEAD", "/v1/cart/bad%20id", token=t, check=False)
        s(p, "DELETE", "/v1/cart/%s/items/%s" % (u, "x" * 129), token=t, check=False)
        for op in ("clearCart", "addItem", "setItemQuantity", "removeItem"):
            m, tpl, _ = OPS[op]
            body = sample_body(m)
            s(p, m, self.path(tpl, u), body, token=t, check=False, headers={"If-Match": "v1"})
            s(p, m, self.path(tpl, u), body, token=t, check=False,
              headers={"Idempotency-Key": "has space"})
        s(p, "POST", base + "/items", "<x/>", token=t, content_type="application/xml")
        s(p, "PATCH", base + "/items/sku-1", "quantity=1", token=t, content_type="text/plain")
        s(p, "POST", base + "/items", None, token=t)                 # no body: invalid_json

    def auth_traffic(self):
        """401 (no token, a bad token) and 404 (another user's cart) on every
        operation that needs a token."""
        s, p = self.rec.send, self.main.port
        alice = self.token("alice")
        expired = jwt_util.sign(jwt_util.claims("alice", ttl=-120), self.key)
        for m, tpl in GUARDED:
            body = sample_body(m)
            s(p, m, self.path(tpl, "alice"), body)
            s(p, m, self.path(tpl, "alice"), body, token=expired)
            s(p, m, self.path(tpl, "bob"), body, token=alice)

    def precondition_and_idempotency_traffic(self):
        s, p = self.rec.send, self.main.port
        u = harness.new_user("idem")
        t, base = self.token(u), "/v1/cart/" + u
        s(p, "POST", base + "/items", item(), token=t, check=True)
        for op in ("clearCart", "addItem", "setItemQuantity", "removeItem"):
            m, tpl, _ = OPS[op]
            body = sample_body(m, quantity=2)
            r = s(p, m, self.path(tpl, u), body, token=t, check=True,
                  headers={"If-Match": '"99"'})
            self.assertEqual(r.body["currentVersion"], 1, r)
        # Stored outcomes replayed (201, 404, 422, 204), and a key reused.
        for m, path, body, key in (
                ("POST", base + "/items", item("k1"), "key-add"),
                ("PATCH", base + "/items/none", {"quantity": 1}, "key-404"),
                ("POST", base + "/items", item("k2", q=0), "key-422"),
                ("DELETE", base + "/items/none", None, "key-del-404")):
            first = s(p, m, path, body, token=t, check=True,
                      headers={"Idempotency-Key": key}, rid="first-" + key)
            again = s(p, m, path, body, token=t, check=True,
                      headers={"Idempotency-Key": key}, rid="again-" + key)
            self.assertEqual(again.header("idempotent-replayed"), "true", again)
            if first.status >= 400:
                self.assertEqual(again.body["requestId"], "again-" + key, again)
        r = s(p, "POST", base + "/items", item("other"), token=t, check=True,
              headers={"Idempotency-Key": "key-add"})
        self.assertEqual(r.body["code"], "cart.idempotency_key_reused", r)
        s(p, "DELETE", base, token=t, check=True, headers={"Idempotency-Key": "key-clear"})
        r = s(p, "DELETE", base, token=t, check=True, headers={"Idempotency-Key": "key-clear"})
        self.assertEqual(r.header("idempotent-replayed"), "true", r)
        s(p, "DELETE", base, token=t, check=True, headers={"Idempotency-Key": "key-404"})
        s(p, "DELETE", base + "/items/x", token=t, check=True,
          headers={"Idempotency-Key": "key-404"})

    def backlog_traffic(self):
        """The relay is off: a cart's 101st pending event is refused."""
        s, p = self.rec.send, self.main.port
        u = harness.new_user("backlog")
        t = self.token(u)
        conn = http.client.HTTPConnection("127.0.0.1", p, timeout=10)
        try:
            for n in range(100):
                r = harness.send(conn, "PATCH" if n else "POST",
                                 "/v1/cart/%s/items%s" % (u, "/b" if n else ""),
                                 {"quantity": n % 2 + 1} if n else item("b"),
                                 headers={"Authorization": "Bearer " + t})
                self.assertLess(r.status, 300, r)
        finally:
            conn.close()
        r = s(p, "POST", "/v1/cart/%s/items" % u, item("c"), token=t, check=True)
        self.assertEqual((r.status, r.body["code"]), (503, "cart.events_backlog"), r)

    def route_less_traffic(self):
        s, p = self.rec.send, self.main.port
        t = self.token("alice")
        s(p, "GET", "/v2/cart/alice", component="RouteNotFound")
        s(p, "GET", "/v1/cart/alice/items/sku-1/extra", token=t, component="RouteNotFound")
        for template, served in SERVED.items():
            for m in ALL_METHODS:
                if m not in served:
                    r = s(p, m, self.path(template), component="MethodNotAllowed")
                    self.assertEqual(r.status, 405, r)
        # civetweb refuses TRACE itself, before any route is looked at.
        s(p, "TRACE", "/health", component="InvalidRequest")
        s(p, "GET", "/" + "a" * 9000, component="UriTooLong")
        self.rec.raw(p, "GET", "*", [], component="InvalidRequest")
        self.rec.raw(p, "GET", "health", [], component="InvalidRequest")
        self.rec.raw(p, "GET", "/health", [], version="HTTP/2.0",
                     component="HttpVersionNotSupported")

    def framing_traffic(self, port, ops, cases):
        """Framing refusals on every operation (raw sockets)."""
        for op in ops:
            m, tpl, _ = OPS[op]
            for lines, body in cases:
                self.rec.raw(port, m, self.path(tpl), lines, body)

    def framing(self):
        p = self.main.port
        many = ["X-Filler-%d: 1" % n for n in range(64)]
        self.framing_traffic(p, OPS, [
            (many, b""),                                              # 431
            (["Transfer-Encoding: chunked"], b"0\r\n\r\n"),           # 400
            (["Content-Length: 20000"], b""),                         # 413
        ])

    def timeouts(self):
        """408 on every operation at once (REQUEST_TIMEOUT_MS=1000)."""
        p = self.small.port
        with concurrent.futures.ThreadPoolExecutor(len(OPS)) as pool:
            futs = [pool.submit(self.rec.raw, p, m, self.path(tpl),
                                ["Content-Length: 5", "Content-Type: application/json"],
                                segments=[b"{"], timeout=4.0)
                    for m, tpl, _ in OPS.values()]
            for f in futs:
                self.assertEqual(f.result().status, 408, f.result())

    def small_traffic(self):
        s, p = self.rec.send, self.small.port
        for path in ("/metrics",):
            for m in ("GET", "HEAD", "OPTIONS"):
                s(p, m, path)                                         # 404: metrics off
        # The budget is one request a second: each operation is sent until
        # it is refused (at once, unless a token came back meanwhile).
        for m, tpl in GUARDED:
            for _ in range(3):
                r = s(p, m, self.path(tpl), sample_body(m), check=True)
                if r.status == 429:
                    break
            self.assertEqual(r.status, 429, r)

    def down_traffic(self):
        s, p = self.rec.send, self.down.port
        s(p, "GET", "/ready")
        s(p, "HEAD", "/ready")
        for m, tpl in GUARDED:
            r = s(p, m, self.path(tpl), sample_body(m), check=True)
            self.assertEqual(r.status, 503, r)

    def shutdown_traffic(self):
        """/ready turns 503 while the small server drains after SIGTERM."""
        self.small.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 1.5
        while True:
            r = self.rec.send(self.small.port, "GET", "/ready")
            if r.status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(r.status, 503, r)
        self.rec.send(self.small.port, "HEAD", "/ready")   # within the 2 s drain

    # -- the checks -----------------------------------------------------

    def mutants(self, exchanges):
        """Broken copies of real exchanges, each of which must be refused."""
        def first(pred):
            return next(e for e in exchanges if pred(e))
        prob = first(lambda e: e["status"] == 404 and e["component"] is None
                     and e["method"] != "HEAD")
        cart = first(lambda e: e["status"] == 200 and e["method"] == "GET"
                     and e["path"].startswith("/v1/"))
        out = []
        for name, base, change in (
                ("undocumented-status", cart, {"status": 418}),
                ("json-for-problem", prob, {"headers": dict(prob["headers"], **{"content-type": "application/json"})}),
                ("no-request-id", prob, {"headers": {k: v for k, v in prob["headers"].items() if k != "x-request-id"}}),
                ("bad-etag", cart, {"headers": dict(cart["headers"], etag="W/1")}),
                ("extra-field", cart, {"body": dict(cart["body"], secret=1)}),
                ("amount-float", cart, {"body": dict(cart["body"], subtotal={"amount": 1.5, "currency": None})}),
                ("unknown-code", prob, {"body": dict(prob["body"], code="cart.nope")})):
            m = dict(base, id="mutant-" + name, **change)
            out.append(m)
        return out

    def test_live_traffic_matches_the_contract(self):
        self.operations_traffic()
        self.cart_traffic()
        self.rule_traffic()
        self.malformed_traffic()
        self.auth_traffic()
        self.precondition_and_idempotency_traffic()
        self.backlog_traffic()
        self.route_less_traffic()
        self.framing()
        self.timeouts()
        self.small_traffic()
        self.down_traffic()
        self.shutdown_traffic()

        exchanges = self.rec.exchanges
        if os.environ.get("CONTRACT_DUMP"):   # to read or replay by hand
            with open(os.environ["CONTRACT_DUMP"], "w") as f:
                f.writelines(json.dumps(e) + "\n" for e in exchanges)
        mutants = self.mutants(exchanges)
        verdicts, documented = run_validator(exchanges + mutants)

        failures = []
        for e in exchanges:
            v = verdicts[e["id"]]
            problems = list(v["problems"])
            if e.get("jsonError"):
                problems.append("body is not JSON: " + e["jsonError"])
            if problems:
                failures.append("%s %s -> %d (%s)\n    %s" % (
                    e["method"], e["path"][:80], e["status"],
                    (e["body"] or {}).get("code") if isinstance(e["body"], dict) else "",
                    "\n    ".join(problems)))
        for m in mutants:
            if not verdicts[m["id"]]["problems"]:
                failures.append("%s: the validator accepted a broken exchange" % m["id"])

        seen = {(verdicts[e["id"]]["operation"], str(e["status"])) for e in exchanges}
        missing = sorted("%s %s" % (op, st) for op, sts in documented.items()
                         for st in sts if (op, st) not in seen and st not in NOT_PROVOKED)
        if missing:
            failures.append("documented but never provoked: " + ", ".join(missing))
        if failures:
            self.fail("%d findings in %d exchanges:\n%s" % (
                len(failures), len(exchanges), "\n".join(failures)))
        print("contract: %d live exchanges valid against docs/swagger.yaml, "
              "%d broken copies refused, %d documented (operation, status) "
              "pairs covered" % (len(exchanges), len(mutants),
                                 sum(len(s) for s in documented.values())
                                 - sum(1 for sts in documented.values()
                                       for st in sts if st in NOT_PROVOKED)),
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
