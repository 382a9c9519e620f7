"""The event backlog's bounds and how they show (issue 8, failure 4).

Before, a full outbox answered 503 `cart.unavailable` with the circuit
breaker's Retry-After, /ready stayed plainly 200 and only a log line told
an operator why; across carts nothing bounded the backlog at all. Now:
503 `cart.events_backlog`, a Retry-After from the relay's drain rate (60 s
when nothing drains), /ready's `events` check `degraded` past 80 % of the
process bound (memory store: EVENTS_BACKLOG_MAX_MB), and nothing stored.
"""

import http.client
import json
import os
import subprocess
import threading
import time

import harness
from harness import new_user


def add_body(item, quantity=1):
    return json.dumps({"itemId": item, "quantity": quantity,
                       "unitPrice": {"amount": 100, "currency": "EUR"}}).encode()


class CartBacklogTest(harness.ServerTestCase):
    """One cart: at 100 unpublished events its writes are refused.  Runs
    on both stores; this process does not relay, so nothing drains."""
    server_env = {"EVENTS_RELAY_ENABLED": "false"}

    def test_cart_at_100_pending_events_gets_events_backlog(self):
        u = new_user("bl")
        conn = self.server.connection()
        try:
            for i in range(100):
                r = harness.send(conn, "POST", "/v1/cart/%s/items" % u,
                                 add_body("sku-%d" % (i % 50)))
                self.assertIn(r.status, (200, 201), "write %d: %r" % (i, r))
        finally:
            conn.close()
        r = self.add(u, "one-more")
        body = self.assertProblem(r, 503, "cart.events_backlog")
        self.assertEqual(body.get("instance"), "/v1/cart/%s/items" % u)
        # Nothing drains here (no relay in this process): the longest wait.
        self.assertEqual(r.header("Retry-After"), "60", r)
        cart = self.get_cart(u)
        self.assertEqual(cart["version"], 100)
        self.assertNotIn("one-more", [it["itemId"] for it in cart["items"]])
        # Another cart is not affected by this one's backlog.
        self.assertEqual(self.add(new_user("bl"), "x").status, 201)


class ProcessBacklogTest(harness.ServerTestCase):
    """All carts together, on the memory store: EVENTS_BACKLOG_MAX_MB=1 is
    2184 events of 480 bytes (sizeof(cart_event)).  The relay runs but every publish fails (an
    EventBridge endpoint nobody listens on), so the backlog only grows."""
    server_env = {
        "STORAGE_BACKEND": "memory",
        "EVENTS_PUBLISHER": "eventbridge",
        "EVENTBRIDGE_ENDPOINT": "http://127.0.0.1:%d" % harness.free_port(),
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_MAX_ATTEMPTS": "1",
        "EVENTS_BACKLOG_MAX_MB": "1",
    }
    BOUND = 1024 * 1024 // 480

    def events_check(self):
        r = self.request("GET", "/ready")
        self.assertEqual(r.status, 200, r)
        checks = {c["name"]: c for c in r.body["checks"]}
        self.assertIn("events", checks, r.body)
        return checks["events"]

    def test_process_bound_and_ready_degraded(self):
        first = self.events_check()
        self.assertEqual(first["status"], "ok", first)
        self.assertEqual(first["bound"], self.BOUND, first)
        conn = self.server.connection()
        refused = None
        written = 0
        try:
            # Up to 60 events per cart, so the cart bound (100) never hits.
            for i in range(self.BOUND + 10):
                u = "pb-%d" % (i // 60)
                r = harness.send(conn, "POST", "/v1/cart/%s/items" % u,
                                 add_body("sku-%d" % i))
                if r.status == 503:
                    refused = (i, u, r)
                    break
                self.assertIn(r.status, (200, 201), r)
                written += 1
                if written == self.BOUND * 9 // 10:
                    ev = self.events_check()
                    self.assertEqual(ev["status"], "degraded", ev)
                    self.assertGreaterEqual(ev["backlog"], self.BOUND * 8 // 10, ev)
        finally:
            conn.close()
        self.assertIsNotNone(refused, "no write was refused after %d" % written)
        i, u, r = refused
        self.assertEqual(written, self.BOUND,
                         "refused at write %d, the bound is %d" % (i, self.BOUND))
        self.assertProblem(r, 503, "cart.events_backlog")
        self.assertEqual(r.header("Retry-After"), "60", r)
        # Nothing of the refused write was kept.
        cart = self.get_cart(u)
        self.assertNotIn("sku-%d" % i, [it["itemId"] for it in cart["items"]])
        # Reads still work, and /ready still says ready (degraded).
        self.assertEqual(self.events_check()["status"], "degraded")


class PacedBacklogTest(harness.ServerTestCase):
    """A relay that works but cannot keep up (issue 10: on one core the 64
    workers out-ran the relay's one thread and ~1 add in 9 got 503
    cart.events_backlog).  Here the bus answers each PutEvents call in
    50 ms and the relay makes one call at a time (EVENTS_RELAY_CONCURRENCY
    =1: at most ~200 events/s), while 8 connections add as fast as they
    can, each add to a new cart (the per-cart bound never hits).  Past a
    quarter of the process bound (EVENTS_BACKLOG_MAX_MB=4: 8738 events)
    a write waits for the relay instead of being refused, so every write
    succeeds, the backlog stays near a quarter of the bound and everything
    is delivered."""
    BOUND = 4 * 1024 * 1024 // 480
    SECONDS = 6.0
    WRITERS = 8

    @classmethod
    def setUpClass(cls):
        cls.bus_port = harness.free_port()
        cls.bus = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(harness.REPO_ROOT, "tests", "aws",
                                              "eventbridge_server.py"),
             "--port", str(cls.bus_port), "--bus", "cart-bus", "--delay-ms", "50"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", cls.bus_port, timeout=1)
                    c.request("GET", "/__control/health")
                    if c.getresponse().status == 200:
                        c.close()
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the PutEvents stand-in did not start")
                time.sleep(0.05)
            cls.server_env = {
                "STORAGE_BACKEND": "memory",
                "EVENTS_PUBLISHER": "eventbridge",
                "EVENTBRIDGE_ENDPOINT": "http://127.0.0.1:%d" % cls.bus_port,
                "EVENTBRIDGE_BUS_NAME": "cart-bus",
                "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
                "AWS_SECRET_ACCESS_KEY": "secret",
                "EVENTS_RELAY_CONCURRENCY": "1",
                "EVENTS_BACKLOG_MAX_MB": "4",
                "RATE_LIMIT_RPS": "0",
            }
            super().setUpClass()
        except BaseException:
            cls.bus.kill()
            cls.bus.wait()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.bus.terminate()
            cls.bus.wait(timeout=10)

    def bus_stats(self):
        c = http.client.HTTPConnection("127.0.0.1", self.bus_port, timeout=5)
        try:
            c.request("GET", "/__control/stats")
            return json.loads(c.getresponse().read())
        finally:
            c.close()

    def delivered(self, users):
        """The bus's events of these users: (distinct (user, version)
        pairs, all entries, duplicates included)."""
        c = http.client.HTTPConnection("127.0.0.1", self.bus_port, timeout=30)
        try:
            c.request("GET", "/__control/events")
            events = json.loads(c.getresponse().read())["events"]
        finally:
            c.close()
        ours = [(e["detail"].get("userId"), e["detail"].get("cartVersion"))
                for e in events if e["detail"].get("userId") in users]
        return set(ours), len(ours)

    def warm_up(self, prefix):
        """One add, delivered before the load (the relay works); returns
        the bus's count before it (the bus may hold other tests' events)."""
        before = self.bus_stats()["entries_accepted"]
        self.assertEqual(self.add(new_user(prefix), "w").status, 201)
        deadline = time.monotonic() + 10
        while self.bus_stats()["entries_accepted"] < before + 1:
            self.assertLess(time.monotonic(), deadline, "the relay delivered nothing")
            time.sleep(0.05)
        return before

    def test_a_busy_cart_waits_for_the_relay_instead_of_503(self):
        """One writer per cart, each as fast as it can: the process backlog
        stays small (8 carts) but each cart's own outbox (CART_OUTBOX_MAX,
        100) filled within a second and its writes got 503
        cart.events_backlog (make bench-events, 2026-11-28).  Past half of
        a cart's bound its writes wait for the relay too."""
        # The bus may hold the other test's events: count from here, once
        # a first event of this test was delivered (the relay works).
        self.warm_up("pace-cart-warm")
        base = self.bus_stats()["entries_accepted"]
        statuses, codes, slowest = {}, {}, [0.0]
        lock = threading.Lock()
        stop = time.monotonic() + 4.0
        carts = [new_user("pace-cart") for _ in range(self.WRITERS)]

        def writer(user):
            conn = self.server.connection()
            i = 0
            try:
                while time.monotonic() < stop:
                    t0 = time.monotonic()
                    r = harness.send(conn, "POST", "/v1/cart/%s/items" % user,
                                     add_body("sku-%d" % (i % 5)))
                    with lock:
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                        slowest[0] = max(slowest[0], time.monotonic() - t0)
                        if r.status >= 400:
                            c = r.body.get("code") if isinstance(r.body, dict) else None
                            codes[c] = codes.get(c, 0) + 1
                    if r.status >= 400:
                        conn.close()
                        conn = self.server.connection()
                    i += 1
            finally:
                conn.close()

        threads = [threading.Thread(target=writer, args=(u,)) for u in carts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        written = statuses.get(201, 0) + statuses.get(200, 0)
        self.assertEqual(written, sum(statuses.values()),
                         "writes refused: %r %r" % (statuses, codes))
        self.assertGreater(written, 200, statuses)      # not stuck: ~200 events/s drain
        self.assertLess(slowest[0], 2.0, "a write took %.2f s" % slowest[0])
        # Every acknowledged write's event reaches the bus: each cart's
        # versions 1..n exactly.  Delivery is at least once (a relay call
        # answered late is sent again), so an event may come twice; one
        # run in many saw 1139 entries for 1138 writes.
        want = set()
        for u in carts:
            n = self.get_cart(u)["version"]
            want |= {(u, v) for v in range(1, n + 1)}
        self.assertEqual(len(want), written)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.bus_stats()["entries_accepted"] >= base + written:
                got, entries = self.delivered(set(carts))
                if got >= want:
                    break
            time.sleep(0.2)
        got, entries = self.delivered(set(carts))
        self.assertEqual(got, want, "missing %d, unexpected %d (%d entries for %d writes)"
                         % (len(want - got), len(got - want), entries, written))

    def test_writes_wait_for_a_slow_relay_instead_of_503(self):
        # A relay that works: the first event is delivered before the load.
        # (The bus may hold the other test's events: counted from here.)
        before = self.warm_up("pace-warm")
        statuses = {}
        slowest = [0.0]
        backlog_max = [0]
        lock = threading.Lock()
        stop = time.monotonic() + self.SECONDS

        def writer(t):
            conn = self.server.connection()
            i = 0
            try:
                while time.monotonic() < stop:
                    t0 = time.monotonic()
                    r = harness.send(conn, "POST", "/v1/cart/pace-%d-%d/items" % (t, i),
                                     add_body("sku-1"))
                    took = time.monotonic() - t0
                    with lock:
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                        slowest[0] = max(slowest[0], took)
                    if r.status == 503:
                        with lock:
                            codes = statuses.setdefault("codes", {})
                            c = (r.body or {}).get("code") if isinstance(r.body, dict) else None
                            codes[c] = codes.get(c, 0) + 1
                        conn.close()    # the answer may have asked to close
                        conn = self.server.connection()
                    i += 1
            finally:
                conn.close()

        def watcher():
            while time.monotonic() < stop:
                r = self.request("GET", "/ready")
                ev = {c["name"]: c for c in r.body["checks"]}["events"]
                with lock:
                    backlog_max[0] = max(backlog_max[0], ev["backlog"])
                time.sleep(0.1)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(self.WRITERS)]
        threads.append(threading.Thread(target=watcher))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = statuses.pop("codes", {})
        written = statuses.get(201, 0) + statuses.get(200, 0)
        self.assertEqual(statuses.get(503, 0), 0,
                         "writes refused while the relay was draining: %r %r (backlog max %d)"
                         % (statuses, codes, backlog_max[0]))
        self.assertEqual(written, sum(statuses.values()), statuses)
        # The relay delivered at least its rate over the run, so the
        # writers went on at its pace (not stuck), and no request waited
        # much longer than the pacing's own limit (500 ms).
        self.assertGreater(written, 200 * self.SECONDS * 0.5, statuses)
        self.assertLess(slowest[0], 2.0, "a write took %.2f s" % slowest[0])
        # Near a quarter of the bound (2184), with the writers in flight.
        self.assertLessEqual(backlog_max[0], self.BOUND // 4 + 4 * self.WRITERS, backlog_max)
        # The waits show in /metrics.
        r = self.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        text = r.body.decode()
        paced = [l for l in text.splitlines() if l.startswith("cart_outbox_paced_writes_total ")]
        self.assertEqual(len(paced), 1, text[:2000])
        self.assertGreater(int(paced[0].split()[1]), 0, paced)
        # Everything written is delivered once the writers stop.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.bus_stats()["entries_accepted"] >= before + written + 1:
                break
            time.sleep(0.2)
        self.assertEqual(self.bus_stats()["entries_accepted"], before + written + 1)
