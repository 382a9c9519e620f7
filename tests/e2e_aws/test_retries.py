"""Retries in AWS "standard" mode, seen from the wire: attempt counts per
X-Amz-Target at the SigV4 proxy, backoff bounds, and the retry quota."""

import concurrent.futures
import statistics

from awsbase import AwsServiceTestCase, slow, timed

DDB_TYPE = "com.amazonaws.dynamodb.v20120810#"


class RetryTests(AwsServiceTestCase):
    # The breaker has its own tests (test_breaker.py); here it would open on
    # the many injected failures and hide the retries.
    server_env = {"AWS_MAX_ATTEMPTS": "3", "CIRCUIT_BREAKER_ENABLED": "false"}

    def add_and_count(self, user, kind, count, **fault):
        self.stack.reset()
        self.stack.fault(kind, count=count, target="UpdateItem", **fault)
        r = self.add(user, "sku-r", 1, 250, "EUR")
        return r, self.stats()

    def test_throttle_twice_then_success(self):
        u = self.user()
        r, st = self.add_and_count(u, "throttle", 2)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.attempts("UpdateItem", st), 3, st)   # 2 throttled + 1
        self.assertEqual(self.forwarded("UpdateItem", st), 1, st)
        self.assertEqual(st["faults_served"], 2, st)
        c = self.get_cart(u)
        self.assertEqual((c["version"], c["items"][0]["quantity"]), (1, 1), c)

    def test_error500_twice_then_success(self):
        u = self.user()
        r, st = self.add_and_count(u, "error500", 2)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.attempts("UpdateItem", st), 3, st)
        self.assertEqual(self.forwarded("UpdateItem", st), 1, st)
        c = self.get_cart(u)
        self.assertEqual((c["version"], c["items"][0]["quantity"]), (1, 1), c)

    def test_other_retryable_errors(self):
        # ThrottlingException, RequestLimitExceeded, 503: retried like the above.
        for kind in ("throttling", "request_limit", "error503"):
            with self.subTest(kind=kind):
                u = self.user()
                r, st = self.add_and_count(u, kind, 2)
                self.assertEqual(r.status, 201, (r, st))
                self.assertEqual(self.attempts("UpdateItem", st), 3, st)
                self.assertEqual(self.forwarded("UpdateItem", st), 1, st)

    def test_throttled_beyond_max_attempts_is_503_and_stores_nothing(self):
        u = self.user()
        r, st = self.add_and_count(u, "throttle", 5)
        self.assertUnavailable(r)
        self.assertEqual(self.attempts("UpdateItem", st), 3, st)   # AWS_MAX_ATTEMPTS
        self.assertEqual(self.forwarded("UpdateItem", st), 0, st)
        self.assertEqual(st["faults_served"], 3, st)
        self.stack.reset()           # clear the 2 faults left
        self.assertEmptyCart(u)
        # the service is fine afterwards
        r = self.add(u, "sku-r", 1, 250, "EUR")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.body["version"], 1, r)

    def test_5xx_beyond_max_attempts_is_503(self):
        u = self.user()
        r, st = self.add_and_count(u, "error500", 5)
        self.assertUnavailable(r)
        self.assertEqual(self.attempts("UpdateItem", st), 3, st)
        self.stack.reset()
        self.assertEmptyCart(u)

    def test_validation_error_is_never_retried(self):
        for typ, msg in (("ValidationException",
                          "One or more parameter values were invalid: injected"),
                         ("AccessDeniedException",
                          "User is not authorized to perform: dynamodb:UpdateItem"),
                         ("ResourceNotFoundException", "Requested resource not found")):
            with self.subTest(type=typ):
                u = self.user()
                r, st = self.add_and_count(u, "status", 1, status=400,
                                           type=DDB_TYPE + typ, message=msg)
                self.assertEqual(self.attempts("UpdateItem", st), 1, st)   # never retried
                self.assertEqual(self.forwarded("UpdateItem", st), 0, st)
                self.assertGreaterEqual(r.status, 500, r)
                self.assertProblem(r, r.status)
                # logged with the AWS error type
                rec = self.wait_log(lambda x, t=typ: x.get("msg") == "dynamodb request failed"
                                    and x.get("error") == t)
                self.assertIsNotNone(rec, self.server.logs())
                self.assertEmptyCart(u)

    def test_get_retried_on_throttle(self):
        u = self.user()
        self.add_ok(u, "sku-g", 2)
        self.stack.reset()
        self.stack.fault("throttle", count=2, target="GetItem")
        c = self.get_cart(u)
        self.assertEqual(c["items"][0]["quantity"], 2, c)
        self.assertEqual(self.attempts("GetItem"), 3)

    def test_backoff_bounds(self):
        # Full jitter: each retry waits random(0, min(cap, base*2^(n-1))), base
        # 100 ms, so two retries wait at most 100 + 200 = 300 ms in total.
        # The distribution itself is unit-tested (tests/unit/test_resilience.c);
        # here: the waits are really taken, vary, and never exceed the bound.
        u = self.user()
        self.add_ok(u, "sku-b", 1)
        base = []
        for _ in range(5):
            r, dt = timed(self.add, u, "sku-b", 1)
            self.assertEqual(r.status, 200, r)
            base.append(dt)
        floor = statistics.median(base)
        extra = []
        trials = 12
        for _ in range(trials):
            self.stack.reset()
            self.stack.fault("throttle", count=2, target="UpdateItem")
            r, dt = timed(self.add, u, "sku-b", 1)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.attempts("UpdateItem"), 3)
            extra.append(dt - floor)
        slack = 0.25 + 3 * floor
        self.assertLess(max(extra), 0.300 + slack, extra)      # cap formula
        self.assertGreater(min(extra) + slack, 0, extra)         # never negative
        # the backoff is real and jittered: expected mean 150 ms
        self.assertGreater(statistics.mean(extra), 0.030, extra)
        self.assertGreater(max(extra) - min(extra), 0.020, extra)


@slow("a few seconds of throttled requests")
class RetryQuotaTests(AwsServiceTestCase):
    """The 500-token bucket: a retry costs 5, a success gives 1 back.  With
    every call throttled the service retries exactly 100 times, then not at
    all: no retry storm against a struggling table."""

    server_env = {"AWS_MAX_ATTEMPTS": "3", "CIRCUIT_BREAKER_ENABLED": "false"}

    def get_throttled(self, user):
        r = self.request("GET", "/v1/cart/%s" % user)
        self.assertUnavailable(r)

    def test_quota_exhaustion_stops_retries(self):
        u = self.user("quota")
        self.stack.fault("throttle", count=100000, target="GetItem")
        # 1. a full bucket: the first throttled request gets all 3 attempts
        self.get_throttled(u)
        self.assertEqual(self.attempts("GetItem"), 3)
        # 2. 99 more throttled requests, 8 at a time (the bucket is shared
        #    and atomic, so the total is exact whatever the interleaving):
        #    together 100 requests may retry 500 / 5 = 100 times, no more.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(self.get_throttled, [u] * 99))
        self.assertEqual(self.attempts("GetItem"), 100 + 100, self.stats())
        # 3. the bucket is empty: every further request gets exactly one
        #    attempt (no retries at all), one after the other
        per_request = []
        prev = self.attempts("GetItem")
        for _ in range(20):
            self.get_throttled(u)
            now = self.attempts("GetItem")
            per_request.append(now - prev)
            prev = now
        self.assertEqual(per_request, [1] * 20)
        # 4. successes refill the bucket one token each: 5 successes pay for
        #    exactly one retry (5 tokens), then it is empty again.
        self.stack.reset()
        for _ in range(5):
            self.assertEqual(self.request("GET", "/v1/cart/%s" % u).status, 200)
        self.stack.reset()
        self.stack.fault("throttle", count=10, target="GetItem")
        self.get_throttled(u)
        self.assertEqual(self.attempts("GetItem"), 2, self.stats())
        self.get_throttled(u)
        self.assertEqual(self.attempts("GetItem"), 3, self.stats())
