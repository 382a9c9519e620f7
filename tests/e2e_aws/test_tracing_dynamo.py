"""X-Ray on the DynamoDB backend (issue 9): each sampled request's segment
holds one subsegment per DynamoDB call it made (name DynamoDB, namespace
aws, aws.operation, aws.table_name, aws.request_id, aws.retries), nested in
the request's time, with throttling and retries as the SDKs report them.
The segments go to a UDP listener owned by the test (tests/e2e/xray_daemon.py)
and are validated against the segment document's documented fields.
"""
import os
import time

from awsbase import TABLE, AwsServiceTestCase, service_env
from xray_daemon import DaemonPerClass, validate_segment, ID_RE


def new_root():
    return "1-%08x-%s" % (int(time.time()), os.urandom(12).hex())


class DynamoTracingTests(DaemonPerClass, AwsServiceTestCase):

    def traced(self, method, path, body=None):
        root = new_root()
        r = self.request(method, path, body, headers={
            "X-Amzn-Trace-Id": "Root=%s;Parent=53995c3f42cd8ad8;Sampled=1" % root})
        self.assertEqual(r.header("X-Amzn-Trace-Id"), "Root=%s;Sampled=1" % root)
        seg = self.daemon.for_trace(root)
        self.assertIsNotNone(seg, "no segment for %s\n%s" % (root, self.server.logs()))
        validate_segment(seg)
        return r, seg

    def assertDynamoSub(self, seg, s, operation):
        self.assertEqual((s["name"], s["namespace"]), ("DynamoDB", "aws"), s)
        self.assertTrue(ID_RE.match(s["id"]), s)
        self.assertNotEqual(s["id"], seg["id"])
        self.assertEqual(s["aws"]["operation"], operation, s)
        self.assertEqual(s["aws"]["table_name"], TABLE, s)
        self.assertEqual(s["aws"]["region"],
                         service_env(self.stack).get("AWS_REGION", "us-east-1"), s)
        self.assertTrue(s["aws"].get("request_id"), s)
        self.assertTrue(seg["start_time"] <= s["start_time"] <= s["end_time"]
                        <= seg["end_time"], (seg, s))

    def test_read_has_its_getitem(self):
        u = self.user("trace-get")
        r, seg = self.traced("GET", "/v1/cart/%s" % u)
        self.assertEqual(r.status, 200, r)
        subs = seg["subsegments"]
        self.assertEqual([s["aws"]["operation"] for s in subs], ["GetItem"], seg)
        self.assertEqual(len(subs), self.attempts("GetItem"))
        self.assertDynamoSub(seg, subs[0], "GetItem")
        self.assertEqual(subs[0]["http"]["response"]["status"], 200)
        self.assertEqual(subs[0]["aws"]["retries"], 0)
        for flag in ("error", "throttle", "fault"):
            self.assertNotIn(flag, subs[0])

    def test_write_has_its_calls_in_order(self):
        u = self.user("trace-add")
        r, seg = self.traced("POST", "/v1/cart/%s/items" % u,
                             {"itemId": "sku-1", "quantity": 1,
                              "unitPrice": {"amount": 100, "currency": "EUR"}})
        self.assertEqual(r.status, 201, r)
        subs = seg["subsegments"]
        ops = [s["aws"]["operation"] for s in subs]
        self.assertEqual(ops, ["GetItem", "UpdateItem"], seg)
        for s, op in zip(subs, ops):
            self.assertDynamoSub(seg, s, op)
        self.assertLessEqual(subs[0]["end_time"], subs[1]["start_time"] + 1e-6)
        self.assertEqual(len({s["aws"]["request_id"] for s in subs}), 2)

    def test_throttled_call_counts_retries(self):
        u = self.user("trace-throttle")
        self.stack.fault("throttle", count=2, target="GetItem")
        r, seg = self.traced("GET", "/v1/cart/%s" % u)
        self.assertEqual(r.status, 200, r)
        s = seg["subsegments"][0]
        self.assertDynamoSub(seg, s, "GetItem")
        self.assertEqual(s["aws"]["retries"], 2)
        self.assertEqual(self.attempts("GetItem"), 3)
        self.assertNotIn("throttle", s)   # the last answer was a success

    def test_throttled_to_the_end_is_a_throttle(self):
        u = self.user("trace-throttle-end")
        self.stack.fault("throttle", count=3, target="GetItem")
        r, seg = self.traced("GET", "/v1/cart/%s" % u)
        self.assertEqual(r.status, 503, r)
        self.assertIs(seg["fault"], True)
        s = seg["subsegments"][0]
        self.assertDynamoSub(seg, s, "GetItem")
        self.assertEqual(s["aws"]["retries"], 2)
        self.assertIs(s["error"], True)
        self.assertIs(s["throttle"], True)
        self.assertEqual(s["http"]["response"]["status"], 400)

    def test_unsampled_requests_send_nothing(self):
        root = new_root()
        r = self.request("GET", "/v1/cart/%s" % self.user("trace-off"), headers={
            "X-Amzn-Trace-Id": "Root=%s;Sampled=0" % root})
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(self.daemon.for_trace(root, timeout=0.5))
