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
