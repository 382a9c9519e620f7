"""The circuit breaker around DynamoDB: opens on failures, fails fast
without touching DynamoDB, reports itself in /ready, probes in half-open
and closes again."""

import time

from awsbase import AwsServiceTestCase, timed


class CircuitBreakerTests(AwsServiceTestCase):
    server_env = {
        "CIRCUIT_BREAKER_ENABLED": "true",
        "CIRCUIT_BREAKER_MIN_CALLS": "5",
        "CIRCUIT_BREAKER_FAILURE_RATE": "50",
        "CIRCUIT_BREAKER_OPEN_SECONDS": "1",
        "CIRCUIT_BREAKER_HALF_OPEN_PROBES": "3",
        "CIRCUIT_BREAKER_WINDOW_SECONDS": "10",
        "AWS_MAX_ATTEMPTS": "1",
    }

    def get(self, user):
        return self.request("GET", "/v1/cart/%s" % user)

    def breaker_field(self, ready_body):
        states = [c["circuitBreaker"] for c in ready_body.get("checks", [])
                  if "circuitBreaker" in c]
        self.assertEqual(len(states), 1, ready_body)
        return states[0]

    def test_opens_fails_fast_probes_and_closes(self):
        u = self.user("cb")
        self.stack.fault("error500", count=100000)     # every operation

        # 1. Closed: failures reach DynamoDB (one attempt each) until the
        #    window holds min_calls=5 outcomes at >= 50 % failures.
        for i in range(5):
            r = self.get(u)
            self.assertUnavailable(r)
            self.assertEqual(self.attempts("GetItem"), i + 1, self.dump())

        # 2. Open: 503 at once with Retry-After = open seconds, and nothing
        #    reaches the proxy, reads or writes.
        seen = self.attempts("GetItem")
        r, dt = timed(self.get, u)
        body = self.assertUnavailable(r)
        self.assertEqual(r.header("retry-after"), "1", r)
        self.assertLess(dt, 0.2, "an open breaker must fail fast")
        r = self.add(u, "sku-cb", 1)
        self.assertUnavailable(r)
        self.assertEqual(r.header("retry-after"), "1", r)
        st = self.stats()
        self.assertEqual(self.attempts("GetItem", st), seen, st)
        self.assertEqual(self.attempts("UpdateItem", st), 0, st)
        # logged once, by the adapter (the client's refusal is a debug line)
        self.assertIsNotNone(self.wait_log(
            lambda x: x.get("msg") == "dynamodb request failed"
            and x.get("detail") == "circuit open: not sent"
            and x.get("outcome") == "unavailable"), self.server.logs())
        self.assertEqual(body["code"], "cart.unavailable")

        # 3. /ready (its DynamoDB probe is not cached yet in this server)
        #    fails and names the open breaker; the probe itself is refused too.
        r = self.request("GET", "/ready")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(self.breaker_field(r.body), "open", r)
        self.assertEqual(self.attempts("GetItem"), seen, self.dump())

        # 4. Half-open after 1 s: a probe goes through; it fails, so the
        #    breaker opens again and the next call is refused without a request.
        time.sleep(1.15)
        self.assertUnavailable(self.get(u))
        self.assertEqual(self.attempts("GetItem"), seen + 1, self.dump())
        r, dt = timed(self.get, u)
        self.assertUnavailable(r)
        self.assertLess(dt, 0.2)
        self.assertEqual(self.attempts("GetItem"), seen + 1, self.dump())
        self.assertEqual(self.breaker_field(self.request("GET", "/ready").body), "open")

        # 5. DynamoDB recovers: after the open period 3 probes succeed and
        #    the breaker closes; reads and writes work again.
        self.stack.reset()
        time.sleep(1.15)
        for i in range(3):
            r = self.get(u)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.attempts("GetItem"), i + 1)
        self.assertEqual(self.breaker_field(self.request("GET", "/ready").body), "closed")
        r = self.add(u, "sku-cb", 2)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.body["version"], 1, r)
        self.assertEqual(self.get_cart(u)["items"][0]["quantity"], 2)

        # 6. /ready turns 200 once its 5 s cache of the failed probe ends.
        deadline = time.monotonic() + 7
        while True:
            r = self.request("GET", "/ready")
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.breaker_field(r.body), "closed", r)
