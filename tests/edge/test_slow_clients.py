"""Slow and idle clients must not starve the server.

Hundreds of connections that send nothing, send a body one byte at a time,
or sit idle after a keep-alive response leave health checks on fresh
connections fast; a slowloris client is cut off after REQUEST_TIMEOUT_MS;
an idle keep-alive connection is closed after KEEP_ALIVE_TIMEOUT_MS.
"""

import collections
import os
import resource
import select
import socket
import sys
import threading
import time

# runnable as `python3 -m unittest tests/e2e/test_slow_clients.py`
# The edge suites share the end-to-end harness (tests/e2e/harness.py).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(os.path.dirname(_HERE), "e2e")]
import harness  # noqa: E402
from harness import new_user  # noqa: E402

HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = (b'{"itemId":"sku-1","quantity":1,'
        b'"unitPrice":{"amount":100,"currency":"EUR"}}').ljust(200)


def raise_nofile_limit():
    """Soft RLIMIT_NOFILE up to the hard limit (the server inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connect(port, timeout=2.0):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def timed_health(port, timeout=1.5):
    """(seconds from connect to the full response, status or error)."""
    dt, status, _ = timed_request(port, HEALTH, timeout)
    return dt, status


def timed_request(port, raw, timeout=1.5):
    """(seconds from connect to the full response, status or error,
    response headers or None) for one raw request on a fresh connection."""
    t0 = time.monotonic()
    try:
        s = connect(port, timeout)
    except OSError as e:
        return time.monotonic() - t0, "connect: %r" % e, None
    try:
        res = harness.raw_exchange(port, raw, sock=s, timeout=timeout,
                                   expect=1, grace=0)
    except OSError as e:
        return time.monotonic() - t0, "%r" % e, None
    finally:
        s.close()
    dt = time.monotonic() - t0
    if len(res.responses) != 1:
        return dt, "no response%s" % (" (closed)" if res.closed else ""), None
    return dt, res.responses[0].status, res.responses[0].headers


def peek_state(s):
    """'open' (nothing to read, not closed), 'closed' (EOF), 'reset', or
    'data: ...' (the server wrote something, e.g. a 408), without
    blocking and without consuming anything."""
    s.setblocking(False)
    try:
        got = s.recv(512, socket.MSG_PEEK)
    except BlockingIOError:
        return "open"
    except ConnectionResetError:
        return "reset"
    except OSError as e:
        return "error: %r" % e
    return "data: %r" % got[:80] if got else "closed"


class ManyConnectionsTest(harness.ServerTestCase):
    """Default settings: 300 idle + 300 slow-body (+ 100 idle keep-alive)
    connections held open while new clients are served within 1 s.

    The harness turns the rate limiter off for the functional suites
    (RATE_LIMIT_RPS=0); this test sets it back to its default, 100/s with
    a burst of 200, so every setting is the default (the harness's own
    LISTEN_ADDR, APP_PORT and SHUTDOWN_TIMEOUT_SECONDS aside).

    Rate-limit budget: every /v1 request here comes from 127.0.0.1, one
    key.  The slow POSTs never finish their bodies, so they never reach
    the limiter (it runs after the body is read).  /health probes are
    never limited; the /v1 probes (every other one, under 10) and the 300
    reads at the end are: the reads go 150 at once and then at 80/s,
    below the refill of 100/s, so the bucket (200) never runs dry and
    every answer must be 200.
    """

    IDLE, SLOW, KEEPALIVE = 300, 300, 100
    # Idle and slow connections are cut at REQUEST_TIMEOUT_MS (10 s by
    # default, from accept resp. from the end of the headers): they are
    # held, and checked to be still open, up to HOLD s after the first of
    # them was opened.  The keep-alive ones are closed after
    # KEEP_ALIVE_TIMEOUT_MS (5 s), as they must be.
    HOLD = 8.5
    PROBE_EVERY = 0.5
    PROBE_LIMIT = 1.0      # connect -> full response
    MIN_PROBES = 6         # fewer than 6 (2.5 s of probing) proves little
    READ_BURST, READ_GAP = 150, 1 / 80.0
    server_env = {"RATE_LIMIT_RPS": "100"}   # the default, see above

    @classmethod
    def setUpClass(cls):
        need = cls.IDLE + cls.SLOW + cls.KEEPALIVE + 200
        got = raise_nofile_limit()
        if got < need:
            raise AssertionError("RLIMIT_NOFILE %d is below the %d this test "
                                 "needs" % (got, need))
        super().setUpClass()

    def test_idle_and_slow_connections_do_not_starve_new_clients(self):
        port = self.server.port
        keepalive, idle = [], []
        slow = []               # [socket, user, bytes of the body sent]
        stop = threading.Event()
        sender_errors = []

        def trickle():
            # 1 body byte every 2 s on every slow connection
            while not stop.wait(2.0):
                for entry in slow:
                    s, _, sent = entry
                    if s is None or sent >= len(BODY) - 1:
                        continue
                    try:
                        s.send(BODY[sent:sent + 1])
                        entry[2] += 1
                    except OSError as e:   # the server cut it off
                        entry[0] = None
                        sender_errors.append(repr(e))

        sender = threading.Thread(target=trickle, daemon=True)
        probes = []
        t_start = time.monotonic()
        try:
            for i in range(self.KEEPALIVE):
                s = connect(port)
                keepalive.append(s)
                res = harness.raw_exchange(port, HEALTH, sock=s, timeout=2.0,
                                           expect=1, grace=0)
                self.assertEqual([r.status for r in res.responses], [200],
                                 "keep-alive connection %d: %r" % (i, res))
            t_first = time.monotonic()   # the first idle/slow connection
            for _ in range(self.IDLE):
                idle.append(connect(port))
            for i in range(self.SLOW):
                user = new_user("s%d" % i)
                s = connect(port)
                s.sendall(("POST /v1/cart/%s/items HTTP/1.1\r\n"
                           "Host: 127.0.0.1\r\nContent-Type: application/json"
                           "\r\nContent-Length: %d\r\n\r\n"
                           % (user, len(BODY))).encode())
                slow.append([s, user, 0])
            slow_socks = [e[0] for e in slow]
            sender.start()
            t0 = time.monotonic()
            setup = t0 - t_start
            check_at = t_first + self.HOLD
            nprobes = int((check_at - self.PROBE_LIMIT - t0)
                          / self.PROBE_EVERY) + 1
            self.assertGreaterEqual(
                nprobes, self.MIN_PROBES, "setup took %.1f s: too little of "
                "the %.1f s window left" % (setup, self.HOLD))
            results = [None] * nprobes
            reqs = [HEALTH if k % 2 == 0 else
                    ("GET /v1/cart/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     % new_user("probe")).encode() for k in range(nprobes)]

            def probe(k):
                results[k] = timed_request(port, reqs[k],
                                           timeout=self.PROBE_LIMIT + 0.5)

            for k in range(nprobes):
                delay = t0 + k * self.PROBE_EVERY - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                t = threading.Thread(target=probe, args=(k,), daemon=True)
                t.start()
                probes.append(t)
            # right before the end of the window: all still held?
            delay = check_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t_check = time.monotonic() - t_first
            idle_state = [peek_state(s) for s in idle]
            slow_state = [peek_state(s) for s in slow_socks]
            keepalive_state = [peek_state(s) for s in keepalive]
            t_checked = time.monotonic() - t_first
            for t in probes:
                t.join(timeout=5)
            running = self.server.proc.poll() is None
        finally:
            stop.set()
            if sender.is_alive():
                sender.join(timeout=5)
            for s in keepalive + idle + [e[0] for e in slow if e[0]]:
                s.close()

        self.assertTrue(running, "the server died under the load\n"
                        + self.server.logs())
        self.assertEqual(sender_errors, [], "slow-body connections failed "
                         "while the body was trickling in")
        self.assertLess(t_checked, 10.0, "the check came after "
                        "REQUEST_TIMEOUT_MS; it proves nothing")

        def not_open(states):
            return collections.Counter(x for x in states if x != "open")
        self.assertEqual(not_open(idle_state), {},
                         "idle connections not open %.1f-%.1f s after the "
                         "first was opened" % (t_check, t_checked))
        self.assertEqual(not_open(slow_state), {},
                         "slow-body connections not open %.1f-%.1f s after "
                         "the first was opened" % (t_check, t_checked))
        # KEEP_ALIVE_TIMEOUT_MS (5 s) has passed since their response
        self.assertEqual(collections.Counter(keepalive_state),
                         {"closed": self.KEEPALIVE}, "idle keep-alive "
                         "connections after %.1f s" % (t_check,))

        bad = [(k, r) for k, r in enumerate(results)
               if r is None or r[1] != 200 or r[0] > self.PROBE_LIMIT]
        summary = ", ".join("#%d %s" % (k, "unfinished" if r is None else
                                        "%.2fs %s" % r[:2]) for k, r in bad)
        if bad:
            self.fail("%d of %d probes (one every %.1f s, setup took "
                      "%.1f s) were not answered 200 within %.1f s: %s"
                      % (len(bad), len(results), self.PROBE_EVERY, setup,
                         self.PROBE_LIMIT, summary))
        # the limiter was on: the /v1 probes carry its fields
        for k in range(1, nprobes, 2):
            self.assertIn("ratelimit", results[k][2],
                          "/v1 probe %d without RateLimit: the limiter is "
                          "off" % k)
        # not one slow body was taken as complete
        conn = self.server.connection(timeout=5)
        try:
            for i, (_, user, sent) in enumerate(slow):
                if i >= self.READ_BURST:
                    time.sleep(self.READ_GAP)
                self.assertLess(sent, len(BODY))
                r = harness.send(conn, "GET", "/v1/cart/" + user)
                self.assertEqual((r.status, r.body.get("version"),
                                  r.body.get("items")), (200, 0, []),
                                 "slow-body cart %s was stored: %r"
                                 % (user, r))
        finally:
            conn.close()
        self.assertHealthy()
        self.assertLess(time.monotonic() - t_start, 30)


class SlowlorisTest(harness.ServerTestCase):
    server_env = {"REQUEST_TIMEOUT_MS": "2000"}
    TIMEOUT = 2.0
    SLACK = 1.0

    def test_slow_headers_are_cut_off_after_request_timeout(self):
        head = (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"X-Request-Id: slowloris-1\r\nX-Slow: " + b"a" * 200 +
                b"\r\n\r\n")
        got = b""
        closed_at = None
        other = None
        s = connect(self.server.port, timeout=5)
        t0 = time.monotonic()
        try:
            for i in range(len(head)):
                now = time.monotonic()
                if now - t0 > self.TIMEOUT + self.SLACK + 2:
                    break             # bounded: give up well after the limit
                try:
                    s.send(head[i:i + 1])
                except OSError:       # EPIPE / reset: the server closed
                    closed_at = time.monotonic()
                    break
                readable, _, _ = select.select([s], [], [], 0.2)
                if readable:
                    try:
                        chunk = s.recv(65536)
                    except ConnectionResetError:
                        chunk = b""
                    if not chunk:
                        closed_at = time.monotonic()
                        break
                    got += chunk
                if other is None and time.monotonic() - t0 > 1.0:
                    # meanwhile other requests work
                    other = timed_health(self.server.port, timeout=2.0)
        finally:
            s.close()
        self.assertIsNotNone(other)
        self.assertEqual(other[1], 200, "health during slowloris: %r"
                         % (other,))
        self.assertLess(other[0], 1.0, "health during slowloris: %r"
                        % (other,))
        self.assertIsNotNone(
            closed_at, "a client sending headers at 5 bytes/s was still "
            "connected after %.1f s with REQUEST_TIMEOUT_MS=2000 (got %r)"
            % (time.monotonic() - t0, got[:300]))
        elapsed = closed_at - t0
        self.assertLessEqual(elapsed, self.TIMEOUT + self.SLACK,
                             "closed only after %.2f s" % elapsed)
        self.assertGreaterEqual(elapsed, self.TIMEOUT * 0.75,
                                "closed after %.2f s, before the 2 s "
                                "request timeout" % elapsed)
        if got:   # an answer is optional; if sent, it is a 408 problem
            resp, rest, err = harness.parse_raw_responses(got, eof=True)
            self.assertEqual(len(resp), 1, got)
            self.assertFalse(rest, got)
            r = resp[0]
            self.assertEqual(r.status, 408, got)
            self.assertEqual(r.header("content-type", "").split(";")[0],
                             "application/problem+json", got)
            self.assertIsInstance(r.body, dict, got)
            self.assertEqual(r.body.get("code"), "cart.request_timeout", got)
            self.assertEqual(r.body.get("requestId"),
                             r.header("x-request-id"), got)
            self.assertIn("close", r.header("connection", "").lower(), got)
        self.assertIsNone(self.server.proc.poll())
        self.assertHealthy()


class IdleKeepAliveTest(harness.ServerTestCase):
    server_env = {"KEEP_ALIVE_TIMEOUT_MS": "1000"}

    def test_idle_keep_alive_connection_closed_after_timeout(self):
        with connect(self.server.port, timeout=5) as s:
            res = harness.raw_exchange(self.server.port, HEALTH, sock=s,
                                       timeout=2.0, expect=1, grace=0)
            self.assertEqual([r.status for r in res.responses], [200], res)
            self.assertNotIn("close", res.responses[0].header(
                "connection", "").lower(), "keep-alive was refused: %r" % res)
            t1 = time.monotonic()
            idle = harness.raw_exchange(self.server.port, b"", sock=s,
                                        timeout=3.0)
            dt = time.monotonic() - t1
        self.assertEqual(idle.responses, [], idle)
        self.assertTrue(idle.closed, "idle keep-alive connection still open "
                        "after %.1f s with KEEP_ALIVE_TIMEOUT_MS=1000" % dt)
        self.assertLessEqual(dt, 2.0, "closed only after %.2f s" % dt)
        self.assertGreaterEqual(dt, 0.5, "closed after %.2f s, before the "
                                "1 s keep-alive timeout" % dt)
        self.assertHealthy()


if __name__ == "__main__":
    import unittest
    unittest.main()
