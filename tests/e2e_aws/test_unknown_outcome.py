"""Writes whose outcome is unknown (timeout after the request was sent),
hung and dropped connections: retried, and never applied twice."""

import time

from awsbase import AwsServiceTestCase, timed


class UnknownOutcomeTests(AwsServiceTestCase):
    # attempts are logged at debug only (README, "a failure is logged once")
    server_env = {"DYNAMODB_TIMEOUT_MS": "500", "AWS_MAX_ATTEMPTS": "3", "LOG_LEVEL": "debug"}

    def cart_line(self, user, item):
        c = self.get_cart(user)
        lines = [it for it in c["items"] if it["itemId"] == item]
        self.assertEqual(len(lines), 1, c)
        return c, lines[0]

    def wait_forwarded(self, op, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.forwarded(op) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.forwarded(op)

    # -- timeout after the write was applied -------------------------------

    def test_first_write_applied_but_unanswered_counts_once(self):
        u = self.user("uo")
        self.stack.fault("timeout_after_forward", count=1, target="UpdateItem",
                         hang_seconds=1.5)
        r = self.add(u, "sku-u", 1, 500)
        self.assertEqual(r.status, 201, "%r\n%s" % (r, self.dump()))
        self.assertEqual((r.body["version"], r.body["items"][0]["quantity"]), (1, 1), r)
        st = self.stats()
        # attempt 1 applied (and timed out), attempt 2 failed its condition
        self.assertEqual(self.attempts("UpdateItem", st), 2, st)
        self.assertEqual(self.forwarded("UpdateItem", st), 2, st)
        # load + the writeId read-back
        self.assertEqual(self.attempts("GetItem", st), 2, st)
        c, line = self.cart_line(u, "sku-u")
        self.assertEqual((c["version"], line["quantity"]), (1, 1), c)
        self.assertIsNotNone(self.wait_log(
            lambda x: x.get("msg") == "aws call attempt failed"
            and x.get("target", "").endswith("UpdateItem") and x.get("status") == 0),
            self.server.logs())

    def test_update_of_existing_cart_applied_but_unanswered_counts_once(self):
        u = self.user("uo")
        self.add_ok(u, "sku-u", 1, 500)
        self.stack.reset()
        self.stack.fault("timeout_after_forward", count=1, target="UpdateItem",
                         hang_seconds=1.5)
        r = self.add(u, "sku-u", 1, 500)
        self.assertEqual(r.status, 200, "%r\n%s" % (r, self.dump()))
        self.assertEqual((r.body["version"], r.body["items"][0]["quantity"]), (2, 2), r)
        self.assertEqual(self.forwarded("UpdateItem"), 2)
        c, line = self.cart_line(u, "sku-u")
        self.assertEqual((c["version"], line["quantity"]), (2, 2), c)

    def test_idempotency_key_after_unknown_outcome_of_the_save(self):
        u = self.user("uo")
        key = "uo-save-" + u
        # PutItem is the idempotency claim, TransactWriteItems the cart save
        # with its record: fault the save.  The retry carries the same
        # ClientRequestToken, so it is answered without applying twice.
        self.stack.fault("timeout_after_forward", count=1, target="TransactWriteItems",
                         hang_seconds=1.5)
        r1 = self.add(u, "sku-k", 1, 700, headers={"Idempotency-Key": key})
        self.assertEqual(r1.status, 201, "%r\n%s" % (r1, self.dump()))
        self.assertEqual(self.stats()["faults_served"], 1, self.dump())
        c, line = self.cart_line(u, "sku-k")
        self.assertEqual((c["version"], line["quantity"]), (1, 1), c)
        # the client repeats (it never trusts a single answer): a replay
        self.stack.reset()
        r2 = self.add(u, "sku-k", 1, 700, headers={"Idempotency-Key": key})
        self.assertEqual(r2.status, 201, r2)
        self.assertEqual(r2.header("idempotent-replayed"), "true", r2)
        self.assertEqual(r2.body, r1.body)
        self.assertEqual(self.attempts("UpdateItem"), 0, self.dump())
        self.assertEqual(self.attempts("TransactWriteItems"), 0, self.dump())
        self.assertEqual(self.attempts("PutItem"), 0, self.dump())
        c, line = self.cart_line(u, "sku-k")
        self.assertEqual((c["version"], line["quantity"]), (1, 1), c)

    def test_idempotency_key_after_unknown_outcome_of_the_claim(self):
        # The claim of the key (a PutItem) is applied but not
        # answered.  The retried claim fails its own condition ("record
        # absent"); the request must still complete once, and a repeat with
        # the same key must be a replay -- not "in flight" for the 60 s lease.
        u = self.user("uo")
        key = "uo-claim-" + u
        self.stack.fault("timeout_after_forward", count=1, target="PutItem",
                         hang_seconds=1.5)
        r1 = self.add(u, "sku-c", 1, 700, headers={"Idempotency-Key": key})
        self.assertEqual(r1.status, 201,
                         "a claim whose first attempt landed but went unanswered must "
                         "be recognised as our own (like the cart save's writeId), not "
                         "reported as another request in flight: %r\n%s" % (r1, self.dump()))
        c, line = self.cart_line(u, "sku-c")
        self.assertEqual((c["version"], line["quantity"]), (1, 1), c)
        r2 = self.add(u, "sku-c", 1, 700, headers={"Idempotency-Key": key})
        self.assertEqual(r2.status, 201, r2)
        self.assertEqual(r2.header("idempotent-replayed"), "true", r2)
        c, line = self.cart_line(u, "sku-c")
        self.assertEqual((c["version"], line["quantity"]), (1, 1), c)

    def test_late_delivered_duplicate_does_not_apply(self):
        # The proxy holds attempt 1 for 1 s, then delivers it anyway: by then
        # the retry has committed, so the late copy fails its version
        # condition.  The cart holds one unit.
        u = self.user("uo")
        self.stack.fault("hang", count=1, target="UpdateItem", hang_seconds=1.0,
                         then="forward")
        r = self.add(u, "sku-l", 1, 300)
        self.assertEqual(r.status, 201, "%r\n%s" % (r, self.dump()))
        self.assertEqual(self.wait_forwarded("UpdateItem", 2), 2, self.dump())
        c, line = self.cart_line(u, "sku-l")
        self.assertEqual((c["version"], line["quantity"]), (1, 1), c)

    # -- hang / drop ---------------------------------------------------------

    def test_dropped_connection_is_retried(self):
        u = self.user("drop")
        self.stack.fault("drop", count=1, target="UpdateItem")
        r = self.add(u, "sku-d", 1)
        self.assertEqual(r.status, 201, "%r\n%s" % (r, self.dump()))
        st = self.stats()
        self.assertEqual(self.attempts("UpdateItem", st), 2, st)
        self.assertEqual(self.forwarded("UpdateItem", st), 1, st)
        self.stack.reset()
        self.stack.fault("drop", count=1, target="GetItem")
        c, line = self.cart_line(u, "sku-d")
        self.assertEqual((c["version"], line["quantity"]), (1, 1), c)
        self.assertEqual(self.attempts("GetItem"), 2)

    def test_hung_request_times_out_and_is_retried(self):
        u = self.user("hang")
        self.add_ok(u, "sku-h", 1)
        self.stack.reset()
        self.stack.fault("hang", count=1, target="GetItem", hang_seconds=3)
        r, dt = timed(self.request, "GET", "/v1/cart/%s" % u)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["version"], 1, r)
        self.assertEqual(self.attempts("GetItem"), 2)
        # DYNAMODB_TIMEOUT_MS=500 ends the hung attempt, not the 3 s hang
        self.assertGreaterEqual(dt, 0.45)
        self.assertLess(dt, 2.0)
        self.stack.reset()
        self.stack.fault("hang", count=1, target="UpdateItem", hang_seconds=3)
        r, dt = timed(self.add, u, "sku-h", 1)
        self.assertEqual(r.status, 200, "%r\n%s" % (r, self.dump()))
        self.assertLess(dt, 2.0)
        self.assertEqual(self.attempts("UpdateItem"), 2)
        self.assertEqual(self.forwarded("UpdateItem"), 1)
        c, line = self.cart_line(u, "sku-h")
        self.assertEqual((c["version"], line["quantity"]), (2, 2), c)
