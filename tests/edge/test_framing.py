"""HTTP framing at the edge, spoken over raw sockets.

Every request the server cannot frame with certainty (too many header
lines, duplicate or malformed Content-Length, any Transfer-Encoding, an
incomplete or unread body, an unparsable request line) gets ONE
problem+json answer with `Connection: close`, and the server then closes:
bytes after the bad request are never answered as a second request (no
request smuggling), and nothing is stored.  Also HEAD, OPTIONS, the
asterisk and absolute request-target forms, long paths and the request
timeout.

The exchanges of one table run concurrently, so a server that wrongly
keeps connections open costs one read timeout per table, not per case.
"""

import concurrent.futures
import json
import os
import socket
import sys
import uuid

# runnable as `python3 -m unittest tests/e2e/test_framing.py` from the root
# The edge suites share the end-to-end harness (tests/e2e/harness.py).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(os.path.dirname(_HERE), "e2e")]
import harness  # noqa: E402
from harness import new_user  # noqa: E402

RID = "abc-123"                       # a valid X-Request-Id to be echoed
EOF_TIMEOUT = 3.0                     # seconds to wait for the server's close
GOOD = {"itemId": "sku-1", "quantity": 2,
        "unitPrice": {"amount": 1999, "currency": "EUR"}}
GOOD_BYTES = json.dumps(GOOD, separators=(",", ":")).encode()
# The would-be smuggled request that follows a bad one.
HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PROBLEM_KEYS = ("type", "title", "status", "detail", "code", "instance",
                "requestId")
_MISSING = object()


def raw_request(method, target, headers=(), body=b"", host=True):
    """Request bytes.  headers: (name, value) pairs or raw str lines."""
    lines = ["%s %s HTTP/1.1" % (method, target)]
    if host:
        lines.append("Host: 127.0.0.1")
    for h in headers:
        lines.append(h if isinstance(h, str) else "%s: %s" % h)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(data, size=16):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\n\r\n"


def allow_set(value):
    return {m.strip() for m in (value or "").split(",") if m.strip()}


class FramingMixin:

    def raw(self, data, **kw):
        kw.setdefault("timeout", EOF_TIMEOUT)
        return harness.raw_exchange(self.server.port, data, **kw)

    def raw_many(self, cases, **kw):
        """{name: bytes} -> {name: RawResult}, exchanged concurrently."""
        kw.setdefault("timeout", EOF_TIMEOUT)
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
            futs = {name: ex.submit(harness.raw_exchange, self.server.port,
                                    data, **kw)
                    for name, data in cases.items()}
            return {name: f.result() for name, f in futs.items()}

    # -- checks that collect every deviation into one failure message -----

    def problem_errors(self, r, status, code=None, instance=_MISSING,
                       rid=None):
        """What is wrong with r as the problem+json `status` (a tuple
        accepts any of them) with `code`, `instance` (_MISSING: only
        present), and an X-Request-Id echo of `rid` (None: only present)."""
        errs = []
        statuses = status if isinstance(status, tuple) else (status,)
        if r.status not in statuses:
            errs.append("status %s, want %s" % (r.status, "/".join(
                map(str, statuses))))
        ct = r.header("content-type", "").split(";")[0].strip().lower()
        if ct != "application/problem+json":
            errs.append("Content-Type %r, want application/problem+json"
                        % r.header("content-type"))
        hdr_rid = r.header("x-request-id")
        if not hdr_rid:
            errs.append("no X-Request-Id header")
        if rid is not None and hdr_rid != rid:
            errs.append("X-Request-Id %r, want the request's %r"
                        % (hdr_rid, rid))
        b = r.body
        if not isinstance(b, dict):
            errs.append("body is not a JSON object (%s): %r"
                        % (r.json_error, r.raw[:200]))
            return errs
        missing = [k for k in PROBLEM_KEYS if k not in b]
        if missing:
            errs.append("body lacks %s" % ", ".join(missing))
        if "status" in b and b["status"] != r.status:
            errs.append("body status %r != %s" % (b["status"], r.status))
        if code is not None and b.get("code") != code:
            errs.append("code %r, want %r" % (b.get("code"), code))
        if code is None and not str(b.get("code", "")).startswith("cart."):
            errs.append("code %r is not a cart.* code" % b.get("code"))
        if "instance" in b and not isinstance(b["instance"], str):
            errs.append("instance %r is not a string" % b["instance"])
        if instance is not _MISSING and b.get("instance") != instance:
            errs.append("instance %r, want %r" % (
                str(b.get("instance"))[:80], instance[:80]))
        if "requestId" in b and b["requestId"] != hdr_rid:
            errs.append("requestId %r != X-Request-Id %r"
                        % (b["requestId"], hdr_rid))
        return errs

    def closing_errors(self, res, closed=True):
        """Exactly one response and nothing after it; with closed, also
        `Connection: close` on it and the server's EOF within the read
        timeout."""
        errs = []
        n = len(res.responses)
        if n != 1:
            errs.append("%d responses, want exactly 1%s" % (
                n, " (bytes after the bad request were answered)"
                if n > 1 else " (no answer)"))
        if res.trailing:
            errs.append("unparsable bytes after the response: %r"
                        % res.trailing[:120])
        if n and closed and "close" not in res.responses[0].header(
                "connection", "").lower():
            errs.append("no `Connection: close` on the response")
        if closed and not res.closed:
            errs.append("server did not close the connection within %.1f s"
                        % EOF_TIMEOUT)
        return errs

    def assertRejectedAndClosed(self, res, status, code=None,
                                instance=_MISSING, rid=None, closed=True):
        errs = self.closing_errors(res, closed)
        if res.responses:
            errs += self.problem_errors(res.responses[0], status, code,
                                        instance, rid)
        self.assertFalse(errs, "; ".join(errs) + "\n" + repr(res))

    def assertNothingStored(self, user):
        c = self.get_cart(user)
        self.assertEqual((c.get("version"), c.get("items")), (0, []),
                         "a rejected request changed the cart of %s: %r"
                         % (user, c))

    def assertLogged(self, rid, status):
        """Exactly one "msg":"request" line for rid, with this status."""
        def mine(d):
            return d.get("msg") == "request" and d.get("request_id") == rid
        rec = self.server.wait_log(mine)
        self.assertIsNotNone(rec, "no request log line for %s\n%s"
                             % (rid, self.server.stdout()[-3000:]))
        lines = [d for d in self.server.log_lines()
                 if isinstance(d, dict) and mine(d)]
        self.assertEqual(len(lines), 1, "want one request line for %s: %r"
                         % (rid, lines))
        self.assertEqual(lines[0].get("status"), status, lines[0])


def add_request(user, headers, body, extra=b"", ct=True):
    """POST /v1/cart/{user}/items with exactly these framing headers."""
    hdrs = [("X-Request-Id", RID)]
    if ct:
        hdrs.append(("Content-Type", "application/json"))
    return raw_request("POST", "/v1/cart/%s/items" % user,
                       hdrs + list(headers), body) + extra


class FramingTest(FramingMixin, harness.ServerTestCase):

    # -- 1. header count ---------------------------------------------------

    def test_too_many_header_lines_431(self):
        cases, users = {}, {}
        for name, total in (("70 fillers + 5", 75), ("exactly 64 lines", 64)):
            u = new_user()
            users[name] = u
            # Host, X-Request-Id, Content-Type + fillers + CL, Idempotency-Key
            hdrs = [("X-Request-Id", RID), ("Content-Type", "application/json")]
            hdrs += [("X-Filler-%d" % i, "x") for i in range(total - 5)]
            hdrs += [("Content-Length", str(len(GOOD_BYTES))),
                     ("Idempotency-Key", str(uuid.uuid4()))]
            data = raw_request("POST", "/v1/cart/%s/items" % u, hdrs,
                               GOOD_BYTES)
            self.assertEqual(data.split(b"\r\n\r\n")[0].count(b"\r\n"), total)
            cases[name] = data + HEALTH
        results = self.raw_many(cases)
        for name, res in results.items():
            with self.subTest(name):
                # the headers were refused, so the id need not be echoed
                self.assertRejectedAndClosed(res, 431, "cart.headers_too_large")
                self.assertNothingStored(users[name])
        self.assertHealthy()

    def test_up_to_63_header_lines_work(self):
        for total in (60, 63):
            with self.subTest(header_lines=total):
                u = new_user()
                hdrs = [("Content-Length", str(len(GOOD_BYTES))),
                        ("Idempotency-Key", str(uuid.uuid4()))]
                hdrs += [("X-Filler-%d" % i, "x") for i in range(total - 5)]
                data = add_request(u, hdrs, GOOD_BYTES)
                self.assertEqual(
                    data.split(b"\r\n\r\n")[0].count(b"\r\n"), total)
                res = self.raw(data, expect=1, grace=0.2)
                self.assertEqual([r.status for r in res.responses], [201], res)
                self.assertEqual(res.responses[0].header("x-request-id"), RID)
                c = self.get_cart(u)
                self.assertEqual([i["itemId"] for i in c["items"]], ["sku-1"])

    # -- 2. Content-Length and Transfer-Encoding ----------------------------

    def _framing_table(self, variants, allow_413=()):
        """variants: {name: (framing headers, body bytes)}; each is an add
        for a fresh user followed by a smuggled GET /health."""
        cases, users = {}, {}
        for name, (hdrs, body) in variants.items():
            users[name] = new_user()
            cases[name] = add_request(users[name], hdrs, body, HEALTH)
        results = self.raw_many(cases)
        for name, res in results.items():
            with self.subTest(name):
                status = (400, 413) if name in allow_413 else 400
                code = None if name in allow_413 else "cart.invalid_framing"
                self.assertRejectedAndClosed(
                    res, status, code, "/v1/cart/%s/items" % users[name], RID)
                if res.responses and res.responses[0].status == 413:
                    self.assertEqual(res.responses[0].body.get("code"),
                                     "cart.payload_too_large")
                elif name in allow_413:
                    self.assertEqual(res.responses[0].body.get("code"),
                                     "cart.invalid_framing")
                self.assertNothingStored(users[name])
        self.assertHealthy()

    def test_duplicate_content_length_400(self):
        n = len(GOOD_BYTES)
        self._framing_table({
            "same value twice": ([("Content-Length", str(n)),
                                  ("Content-Length", str(n))], GOOD_BYTES),
            "different values": ([("Content-Length", str(n)),
                                  ("Content-Length", str(n + 10))],
                                 GOOD_BYTES + b" " * 10),
            "different values, shorter second": (
                [("Content-Length", str(n + 10)),
                 ("Content-Length", str(n))], GOOD_BYTES + b" " * 10),
            "comma list": ([("Content-Length", "%d, %d" % (n, n))],
                           GOOD_BYTES),
        })

    def test_malformed_content_length_400(self):
        n = len(GOOD_BYTES)
        self._framing_table({
            "digits then letters": ([("Content-Length", "%dabc" % n)],
                                    GOOD_BYTES),
            "plus sign": ([("Content-Length", "+%d" % n)], GOOD_BYTES),
            "negative": ([("Content-Length", "-1")], GOOD_BYTES),
            "empty": (["Content-Length: "], GOOD_BYTES),
            "huge digits": ([("Content-Length", "9" * 20)], GOOD_BYTES),
        }, allow_413=("huge digits",))

    def test_content_length_with_transfer_encoding_400(self):
        self._framing_table({
            "CL + TE chunked": ([("Content-Length", str(len(GOOD_BYTES))),
                                 ("Transfer-Encoding", "chunked")],
                                chunked(GOOD_BYTES)),
            "TE chunked + CL": ([("Transfer-Encoding", "chunked"),
                                 ("Content-Length", str(len(GOOD_BYTES)))],
                                chunked(GOOD_BYTES)),
        })

    def test_any_transfer_encoding_400(self):
        self._framing_table({
            "chunked": ([("Transfer-Encoding", "chunked")],
                        chunked(GOOD_BYTES)),
            "lower-case name, Chunked": (["transfer-encoding: Chunked"],
                                         chunked(GOOD_BYTES)),
            "gzip, chunked": ([("Transfer-Encoding", "gzip, chunked")],
                              chunked(GOOD_BYTES)),
            "gzip": ([("Transfer-Encoding", "gzip")], GOOD_BYTES),
            "identity": ([("Transfer-Encoding", "identity")], GOOD_BYTES),
        })

    # -- 3. incomplete bodies ------------------------------------------------

    def test_incomplete_body_then_half_close(self):
        padded = GOOD_BYTES + b" " * 50          # a complete JSON document
        variants = {
            "50 of 200 bytes": GOOD_BYTES[:50],
            "complete JSON + spaces, %d of 200 bytes" % len(padded): padded,
        }
        users, cases = {}, {}
        for name, part in variants.items():
            users[name] = new_user()
            cases[name] = add_request(users[name], [("Content-Length", "200")],
                                      part)
        results = self.raw_many(cases, half_close=True)
        for name, res in results.items():
            with self.subTest(name):
                errs = []
                if not res.closed:
                    errs.append("server did not close within %.1f s after "
                                "the client's half-close" % EOF_TIMEOUT)
                if len(res.responses) > 1 or res.trailing:
                    errs.append("%d responses (+%r)" % (len(res.responses),
                                                        res.trailing[:80]))
                if res.responses:   # an answer is optional; if sent, this one
                    errs += self.problem_errors(
                        res.responses[0], 400, "cart.incomplete_body",
                        "/v1/cart/%s/items" % users[name], RID)
                    if "close" not in res.responses[0].header(
                            "connection", "").lower():
                        errs.append("no `Connection: close` on the response")
                self.assertFalse(errs, "; ".join(errs) + "\n" + repr(res))
                self.assertNothingStored(users[name])
        self.assertHealthy()

    def test_body_in_two_segments_300ms_apart_succeeds(self):
        u = new_user()
        data = add_request(u, [("Content-Length", str(len(GOOD_BYTES)))],
                           GOOD_BYTES)
        cut = len(data) - len(GOOD_BYTES) + 20
        res = self.raw(None, segments=[data[:cut], 0.3, data[cut:]],
                       expect=1, grace=0.2)
        self.assertEqual([r.status for r in res.responses], [201], res)
        self.assertFalse(res.trailing, res)
        self.assertEqual(self.get_cart(u)["items"][0]["quantity"], 2)

    # -- 4. unread bytes after a 4xx -----------------------------------------

    def test_unread_body_after_4xx_is_never_a_request(self):
        big = b'{"itemId":"' + b"x" * 20000 + b'"}'
        big_with_get = HEALTH + b" " * (20000 - len(HEALTH))
        u = new_user()
        items = "/v1/cart/%s/items" % u
        cart = "/v1/cart/%s" % u

        def req(method, path, ct, body, after=b""):
            return raw_request(method, path, [
                ("X-Request-Id", RID), ("Content-Type", ct),
                ("Content-Length", str(len(body)))], body) + after

        # name: (bytes, status, code, path, close required)
        table = {
            "413, GET after the body": (
                req("POST", items, "application/json", big, HEALTH),
                413, "cart.payload_too_large", items, True),
            "413, GET inside the body": (
                req("POST", items, "application/json", big_with_get),
                413, "cart.payload_too_large", items, True),
            "415, GET after the body": (
                req("POST", items, "text/plain", GOOD_BYTES, HEALTH),
                415, "cart.unsupported_media_type", items, True),
            "415, GET inside the body": (
                req("POST", items, "text/plain", HEALTH),
                415, "cart.unsupported_media_type", items, False),
            "405, GET after the body": (
                req("PUT", cart, "application/json", GOOD_BYTES, HEALTH),
                405, "cart.method_not_allowed", cart, True),
            "405, GET inside the body": (
                req("PUT", cart, "application/json", HEALTH),
                405, "cart.method_not_allowed", cart, False),
        }
        # a server that keeps the connection open for the "inside" cases is
        # allowed; 1.5 s is ample for a wrongly answered second request
        results = self.raw_many({k: v[0] for k, v in table.items()},
                                expect=1, grace=1.5)
        for name, res in results.items():
            _, status, code, path, close = table[name]
            with self.subTest(name):
                self.assertRejectedAndClosed(res, status, code, path, RID,
                                             closed=close)
        self.assertNothingStored(u)
        self.assertHealthy()

    # -- 5. HEAD -------------------------------------------------------------

    def test_head_like_get_without_body(self):
        u = new_user()
        self.add_ok(u)
        for path in ("/health", "/ready", "/v1/cart/" + u):
            with self.subTest(path=path):
                get = self.raw(raw_request("GET", path), expect=1, grace=0.1)
                self.assertEqual(len(get.responses), 1, get)
                g = get.responses[0]
                with socket.create_connection(
                        ("127.0.0.1", self.server.port), timeout=5) as s:
                    head = self.raw(raw_request("HEAD", path), sock=s,
                                    methods=("HEAD",), expect=1, grace=0.3)
                    # bytes of a body after the HEAD response would be read
                    # here as the start of the next response
                    nxt = self.raw(HEALTH, sock=s, expect=1, grace=0.1)
                self.assertEqual(len(head.responses), 1, head)
                self.assertFalse(head.trailing,
                                 "bytes after the HEAD response: %r" % head)
                h = head.responses[0]
                self.assertEqual(h.status, g.status, "HEAD %r vs GET %r" % (
                    (h.status, h.headers), (g.status, g.headers)))
                for name in ("content-type", "content-length") + (
                        ("etag",) if path.startswith("/v1/") else ()):
                    self.assertIsNotNone(g.header(name), g)
                    self.assertEqual(h.header(name), g.header(name),
                                     "%s differs: HEAD %r GET %r"
                                     % (name, h.headers, g.headers))
                self.assertTrue(h.header("x-request-id"), h)
                self.assertEqual([r.status for r in nxt.responses], [200],
                                 "keep-alive GET after HEAD: %r" % nxt)
                self.assertEqual(nxt.responses[0].body, {"status": "ok"}, nxt)
                self.assertFalse(nxt.trailing, nxt)

    # -- 6. OPTIONS, asterisk-form, absolute-form ---------------------------

    ALLOW = (
        ("/v1/cart/u", {"GET", "HEAD", "DELETE", "OPTIONS"}),
        ("/v1/cart/u/items", {"POST", "OPTIONS"}),
        ("/v1/cart/u/items/i", {"PATCH", "DELETE", "OPTIONS"}),
        ("/health", {"GET", "HEAD", "OPTIONS"}),
        ("/ready", {"GET", "HEAD", "OPTIONS"}),
        ("*", {"GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"}),
    )

    def test_options_204_with_allow(self):
        for target, want in self.ALLOW:
            with self.subTest(target=target):
                rid = "opt-" + uuid.uuid4().hex
                res = self.raw(raw_request("OPTIONS", target,
                                           [("X-Request-Id", rid)]),
                               expect=1, grace=0.2)
                self.assertEqual(len(res.responses), 1, "want one response "
                                 "to OPTIONS %s: %r" % (target, res))
                self.assertFalse(res.trailing, res)
                r = res.responses[0]
                self.assertEqual(r.status, 204, res)
                self.assertEqual(allow_set(r.header("allow")), want,
                                 "OPTIONS %s: Allow %r, want %s" % (
                                     target, r.header("allow"), sorted(want)))
                self.assertEqual(r.header("x-request-id"), rid, r.headers)
                self.assertIn(r.header("content-length", "0"), ("0",), r)
                self.assertLogged(rid, 204)

    def test_405_allow_matches_options(self):
        for target, want in self.ALLOW[:-1]:
            with self.subTest(target=target):
                rid = "put-" + uuid.uuid4().hex
                res = self.raw(raw_request("PUT", target, [
                    ("X-Request-Id", rid), ("Content-Length", "0")]),
                    expect=1, grace=0.2)
                self.assertEqual(len(res.responses), 1, res)
                r = res.responses[0]
                errs = self.problem_errors(r, 405, "cart.method_not_allowed",
                                           target, rid)
                self.assertFalse(errs, "; ".join(errs) + "\n" + repr(res))
                self.assertEqual(allow_set(r.header("allow")), want,
                                 "405 for PUT %s: Allow %r, want the OPTIONS "
                                 "set %s" % (target, r.header("allow"),
                                             sorted(want)))
                self.assertLogged(rid, 405)

    def test_asterisk_form_only_for_options(self):
        rid = "star-" + uuid.uuid4().hex
        res = self.raw(raw_request("GET", "*", [("X-Request-Id", rid)]),
                       expect=1, grace=0.2)
        self.assertEqual(len(res.responses), 1,
                         "want one response to GET *: %r" % res)
        errs = self.problem_errors(res.responses[0], 400,
                                   "cart.invalid_request", rid=rid)
        self.assertFalse(errs, "; ".join(errs) + "\n" + repr(res))
        self.assertLogged(rid, 400)

    def test_absolute_form_targets(self):
        base = "http://127.0.0.1:%d" % self.server.port
        u = new_user()

        def exchange(method, path, body=b"", authority=base, full=False):
            rid = "abs-" + uuid.uuid4().hex
            hdrs = [("X-Request-Id", rid)]
            if body:
                hdrs += [("Content-Type", "application/json"),
                         ("Content-Length", str(len(body)))]
            res = self.raw(raw_request(method, authority + path, hdrs, body),
                           expect=1, grace=0.2)
            self.assertEqual(len(res.responses), 1, "want one response to "
                             "absolute-form %s %s%s: %r"
                             % (method, authority, path, res))
            return (rid, res.responses[0]) + ((res,) if full else ())

        rid, r = exchange("GET", "/health")
        self.assertEqual((r.status, r.body), (200, {"status": "ok"}), r)
        self.assertLogged(rid, 200)
        rid, r = exchange("POST", "/v1/cart/%s/items" % u, GOOD_BYTES)
        self.assertEqual(r.status, 201, r)
        self.assertLogged(rid, 201)
        rid, r = exchange("GET", "/v1/cart/%s?x=1" % u)
        self.assertEqual(r.status, 200, r)
        self.assertLogged(rid, 200)
        self.assertEqual(r.body, self.get_cart(u))
        self.assertEqual([i["itemId"] for i in r.body["items"]], ["sku-1"])
        # Another host and port: the authority is not ours to check (the
        # load balancer routed the request here), so it is routed by its
        # path like any other.  civetweb takes it for a proxy request and
        # closes the connection; the answer comes first and says so.
        for authority in ("http://example.com:9999", "https://example.com:9999"):
            with self.subTest(authority=authority):
                rid, r, res = exchange("GET", "/health", authority=authority,
                                       full=True)
                self.assertEqual((r.status, r.body), (200, {"status": "ok"}),
                                 res)
                self.assertEqual(r.header("x-request-id"), rid, res)
                self.assertIn("close", r.header("connection", "").lower(),
                              "the server closes without saying so: %r"
                              % res)
                self.assertTrue(res.closed and not res.reset, res)
                self.assertLogged(rid, 200)
                rid, r, res = exchange("GET", "/v1/cart/%s" % u,
                                       authority=authority, full=True)
                self.assertEqual(r.status, 200, res)
                self.assertEqual(r.body, self.get_cart(u))
                self.assertIn("close", r.header("connection", "").lower(), res)
                self.assertTrue(res.closed and not res.reset, res)
                self.assertLogged(rid, 200)

    # -- 7. long paths -------------------------------------------------------

    def test_long_paths(self):
        bad_id = "/v1/cart/" + "a" * 1100
        unknown = "/" + "n" * 1999
        huge = "/v1/cart/" + "a" * (9000 - len("/v1/cart/"))
        self.assertEqual((len(unknown), len(huge)), (2000, 9000))
        hdr = [("X-Request-Id", RID)]
        results = self.raw_many({
            "id of 1100 bytes": raw_request("GET", bad_id, hdr),
            "unknown path of 2000 bytes": raw_request("GET", unknown, hdr),
            "path of 9000 bytes": raw_request("GET", huge, hdr),
        }, expect=1, grace=0.2)
        want = {
            "id of 1100 bytes": (400, "cart.invalid_id", bad_id, RID),
            "unknown path of 2000 bytes": (404, "cart.not_found", unknown,
                                           RID),
            "path of 9000 bytes": ((414, 431), None, _MISSING, None),
        }
        for name, res in results.items():
            with self.subTest(name):
                errs = []
                if len(res.responses) != 1:
                    errs.append("%d responses, want 1" % len(res.responses))
                else:
                    errs += self.problem_errors(res.responses[0], *want[name])
                self.assertFalse(errs, "; ".join(errs) + "\n" + repr(res))
        self.assertHealthy()

    # -- 8. errors of the HTTP layer -----------------------------------------

    def test_http_layer_errors_are_problems_and_close(self):
        table = {
            "garbage request line": (b"BLAH\r\n\r\n", 400, None, None),
            "HTTP/2.0": (b"GET /health HTTP/2.0\r\nHost: 127.0.0.1\r\n"
                         b"X-Request-Id: " + RID.encode() + b"\r\n\r\n",
                         505, "cart.http_version_not_supported", RID),
            "header line without colon": (
                b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: "
                + RID.encode() + b"\r\nNoColonHere\r\n\r\n", 400, None, None),
        }
        results = self.raw_many({k: v[0] + HEALTH for k, v in table.items()})
        for name, res in results.items():
            _, status, code, rid = table[name]
            with self.subTest(name):
                self.assertRejectedAndClosed(res, status, code, rid=rid)
        self.assertHealthy()


class RequestTimeoutTest(FramingMixin, harness.ServerTestCase):
    server_env = {"REQUEST_TIMEOUT_MS": "1500"}

    def test_stalled_body_gets_408_or_close(self):
        u = new_user()
        data = add_request(u, [("Content-Length", "200")], GOOD_BYTES[:50])
        with socket.create_connection(
                ("127.0.0.1", self.server.port), timeout=5) as s:
            # the client stays connected and sends nothing more
            res = self.raw(data, sock=s, timeout=3.0, expect=1, grace=1.0)
        errs = []
        if not res.closed:
            errs.append("no close within 3 s of a 1.5 s request timeout "
                        "(or 1 s after the 408)")
        if res.responses:
            errs += self.closing_errors(res, closed=False)
            errs += self.problem_errors(res.responses[0], 408,
                                        "cart.request_timeout",
                                        "/v1/cart/%s/items" % u, RID)
        if res.elapsed < 1.0:
            errs.append("gave up after %.2f s, before the 1.5 s timeout"
                        % res.elapsed)
        self.assertFalse(errs, "; ".join(errs) + "\n" + repr(res))
        self.assertNothingStored(u)
        self.assertHealthy()


if __name__ == "__main__":
    import unittest
    unittest.main()
