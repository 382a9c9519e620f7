"""The PutEvents stand-in (eventbridge_server.py) behind the SigV4 proxy
(service "events"), driven by botocore's own `events` client.

    /usr/bin/python3 -m unittest tests/aws/test_eventbridge_server.py
"""

import http.client
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError  # noqa: E402

import eventbridge_server  # noqa: E402
from stack import AwsStack, TEST_AKID, TEST_SECRET, REGION  # noqa: E402

BUS = "cart-bus"


def entry(detail, source="cart-service", detail_type="CartItemAdded", bus=BUS, **kw):
    e = {"Source": source, "DetailType": detail_type, "EventBusName": bus,
         "Detail": detail if isinstance(detail, str) else json.dumps(detail)}
    e.update(kw)
    return e


def raw_post(url, body, target="AWSEvents.PutEvents",
             content_type="application/x-amz-json-1.1", service="events",
             secret=TEST_SECRET, sign=True):
    """A hand-made (optionally botocore-signed) POST; returns (status, json)."""
    headers = {"X-Amz-Target": target, "Content-Type": content_type}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = AWSRequest(method="POST", url=url + "/", data=data, headers=headers)
    if sign:
        SigV4Auth(Credentials(TEST_AKID, secret), service, REGION).add_auth(req)
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", "/", body=data, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


class EntrySizeTest(unittest.TestCase):
    def test_size_as_aws_documents_it(self):
        e = {"Source": "cart-service", "DetailType": "CartCleared", "Detail": '{"é":1}',
             "Resources": ["arn:a", "b"], "EventBusName": "ignored-for-size"}
        base = len("cart-service") + len("CartCleared") + len('{"é":1}'.encode()) + 6
        self.assertEqual(eventbridge_server.entry_size(e), base)
        self.assertEqual(eventbridge_server.entry_size(dict(e, Time=1700000000)), base + 14)


class DelayAndLatencyTest(unittest.TestCase):
    """--delay-ms answers late; /__control/latency times occurredAt -> receipt."""

    def test_delay_and_latency(self):
        srv = eventbridge_server.EventBridgeServer(delay_ms=150, keep=False).start()
        try:
            now = time.time()
            at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 2))
            detail = {"occurredAt": "%s.%03dZ" % (at, int(now * 1000) % 1000)}
            t0 = time.monotonic()
            status, body = raw_post(srv.url, {"Entries": [entry(detail)] * 3}, sign=False)
            self.assertEqual(status, 200, body)
            self.assertGreaterEqual(time.monotonic() - t0, 0.15)
            lat = srv.state.latency()
            self.assertEqual(lat["events"], 3)
            self.assertTrue(1900 <= lat["p50_ms"] <= 3000, lat)
            self.assertEqual(srv.events(), [])        # keep=False: counted only
            self.assertEqual(srv.stats()["entries_accepted"], 3)
        finally:
            srv.stop()


class EventBridgeServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = AwsStack(dynamodb=False, eventbridge=True,
                             event_buses=[BUS, "default"]).start()
        cls.client = cls.stack.events_client(timeout=5)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.stack.stop()

    def setUp(self):
        self.stack.events_reset()
        self.stack.control("POST", "reset", base=self.stack.events_endpoint)

    def put(self, entries, client=None):
        return (client or self.client).put_events(Entries=entries)

    def assertAwsError(self, ctx, code, status):
        err = ctx.exception.response
        self.assertEqual(err["Error"]["Code"], code, err)
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], status, err)
        return err["Error"].get("Message", "")

    # --- accepted -------------------------------------------------------
    def test_valid_batch_is_accepted_and_readable_in_order(self):
        entries = [entry({"cartVersion": v, "cartId": "c1"}) for v in (1, 2, 3)]
        entries[1]["Time"] = 1700000000   # botocore sends whole seconds
        entries[2]["Resources"] = ["arn:aws:cart:::cart/c1"]
        resp = self.put(entries)
        self.assertEqual(resp["FailedEntryCount"], 0, resp)
        self.assertEqual(len(resp["Entries"]), 3)
        ids = [e["EventId"] for e in resp["Entries"]]
        events = self.stack.events()
        self.assertEqual([e["detail"]["cartVersion"] for e in events], [1, 2, 3])
        self.assertEqual([e["eventId"] for e in events], ids)
        self.assertEqual({(e["bus"], e["source"], e["detailType"]) for e in events},
                         {(BUS, "cart-service", "CartItemAdded")})
        self.assertEqual(events[1]["time"], "2023-11-14T22:13:20.000Z")
        self.assertEqual(events[2]["resources"], ["arn:aws:cart:::cart/c1"])
        stats = self.stack.events_stats()
        self.assertEqual((stats["calls"], stats["entries_accepted"], stats["entries_failed"]),
                         (1, 3, 0), stats)
        self.assertEqual(stats["batch_sizes"], [3])
        proxy = self.stack.events_proxy_stats()
        self.assertEqual(proxy["targets"], {"AWSEvents.PutEvents": 1}, proxy)

    def test_trace_header_is_kept_and_its_length_checked(self):
        header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        resp = self.put([entry({"n": 1}, TraceHeader=header), entry({"n": 2})])
        self.assertEqual(resp["FailedEntryCount"], 0, resp)
        self.assertEqual([e["traceHeader"] for e in self.stack.events()], [header, None])
        for bad in ("", "x" * 501):   # botocore's model: 1-500 characters
            with self.subTest(length=len(bad)):
                status, body = raw_post(self.stack.events_endpoint,
                                        {"Entries": [entry({}, TraceHeader=bad)]})
                self.assertEqual((status, body["__type"]), (400, "ValidationException"), body)

    def test_ten_entries_is_the_limit(self):
        resp = self.put([entry({"n": i}) for i in range(10)])
        self.assertEqual(resp["FailedEntryCount"], 0)
        self.assertEqual(len(self.stack.events()), 10)

    # --- rejected calls ---------------------------------------------------
    def test_eleven_entries_are_rejected(self):
        with self.assertRaises(ClientError) as ctx:
            self.put([entry({"n": i}) for i in range(11)])
        msg = self.assertAwsError(ctx, "ValidationException", 400)
        self.assertIn("less than or equal to 10", msg)
        self.assertEqual(self.stack.events(), [])
        self.assertEqual(self.stack.events_stats()["rejected"], {"ValidationException": 1})

    def test_empty_entries_are_rejected(self):
        status, body = raw_post(self.stack.events_endpoint, {"Entries": []})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"), body)

    def test_total_size_limit_is_256_kb(self):
        limit = 256 * 1024
        fixed = len("cart-service") + len("CartItemAdded") + 14 + len('{"p":""}')
        ok = entry('{"p":"%s"}' % ("x" * (limit - fixed)), Time=1700000000)
        self.assertEqual(eventbridge_server.entry_size(ok), limit)
        self.assertEqual(self.put([ok])["FailedEntryCount"], 0)
        big = entry('{"p":"%s"}' % ("x" * (limit - fixed + 1)), Time=1700000000)
        with self.assertRaises(ClientError) as ctx:
            self.put([big])
        self.assertIn("over the limit", self.assertAwsError(ctx, "ValidationException", 400))
        # the limit is per request: two entries of 128 KB each are too many
        half = entry('{"p":"%s"}' % ("y" * (limit // 2)))
        self.assertLess(eventbridge_server.entry_size(half), limit)
        with self.assertRaises(ClientError) as ctx:
            self.put([half, half])
        self.assertAwsError(ctx, "ValidationException", 400)
        # UTF-8 bytes count, not characters
        multi = entry('{"p":"%s"}' % ("é" * ((limit - fixed) // 2 + 1)), Time=1700000000)
        with self.assertRaises(ClientError):
            self.put([multi])
        self.assertEqual(len(self.stack.events()), 1)

    def test_wire_protocol_is_checked(self):
        url = self.stack.events_endpoint
        good = {"Entries": [entry({"a": 1})]}
        for desc, kw, want in (
                ("other target", {"target": "AWSEvents.ListRules"}, "UnknownOperationException"),
                ("json 1.0", {"content_type": "application/x-amz-json-1.0"},
                 "UnknownOperationException"),
                ("plain json", {"content_type": "application/json"},
                 "UnknownOperationException")):
            with self.subTest(desc):
                status, body = raw_post(url, good, **kw)
                self.assertEqual((status, body["__type"]), (400, want), body)
        for desc, body_in, want in (
                ("not json", b"{nope", "SerializationException"),
                ("no Entries", {}, "ValidationException"),
                ("Entries not a list", {"Entries": {"a": 1}}, "SerializationException"),
                ("Detail not a string", {"Entries": [dict(entry({}), Detail={"a": 1})]},
                 "SerializationException"),
                ("unknown member", {"Entries": [dict(entry({}), Foo=1)]},
                 "SerializationException"),
                ("no EventBusName", {"Entries": [{"Source": "s", "DetailType": "d",
                                                  "Detail": "{}"}]},
                 "ValidationException")):
            with self.subTest(desc):
                status, body = raw_post(url, body_in)
                self.assertEqual((status, body["__type"]), (400, want), body)
        status, body = raw_post(url, good)
        self.assertEqual(status, 200, body)
        self.assertEqual(len(self.stack.events()), 1)

    # --- per-entry failures -------------------------------------------------
    def test_invalid_entries_fail_alone(self):
        resp = self.put([entry({"ok": 1}), entry("[1,2]"), entry("{not json"),
                         entry({"ok": 2}, source=""), entry({"ok": 3}, bus="no-such-bus"),
                         entry({"ok": 4})])
        self.assertEqual(resp["FailedEntryCount"], 4, resp)
        codes = [e.get("ErrorCode") for e in resp["Entries"]]
        self.assertEqual(codes, [None, "MalformedDetail", "MalformedDetail", "InvalidArgument",
                                 "ResourceNotFoundException", None])
        for e in resp["Entries"]:
            self.assertTrue(("EventId" in e) != ("ErrorCode" in e), e)
        self.assertEqual([e["detail"] for e in self.stack.events()], [{"ok": 1}, {"ok": 4}])

    def test_partial_failure_by_index_and_by_match(self):
        self.stack.events_fault("fail_entries", entries=[0])
        self.stack.events_fault("fail_entries", match={"detail.cartVersion": 3},
                                error_code="ThrottlingException", error_message="slow down")
        resp = self.put([entry({"cartVersion": v}) for v in (1, 2, 3, 4)])
        self.assertEqual(resp["FailedEntryCount"], 2, resp)
        self.assertEqual(resp["Entries"][0]["ErrorCode"], "InternalFailure")
        self.assertEqual(resp["Entries"][2], {"ErrorCode": "ThrottlingException",
                                              "ErrorMessage": "slow down"})
        self.assertIn("EventId", resp["Entries"][1])
        self.assertIn("EventId", resp["Entries"][3])
        # resending only the failed entries completes the set (faults were count=1)
        resp = self.put([entry({"cartVersion": 1}), entry({"cartVersion": 3})])
        self.assertEqual(resp["FailedEntryCount"], 0, resp)
        self.assertEqual([e["detail"]["cartVersion"] for e in self.stack.events()], [2, 4, 1, 3])
        stats = self.stack.events_stats()
        self.assertEqual((stats["calls"], stats["entries_accepted"], stats["entries_failed"]),
                         (2, 4, 2), stats)

    def test_match_fault_waits_for_a_matching_call(self):
        self.stack.events_fault("fail_entries", match={"detail.cartVersion": 7}, count=2)
        self.assertEqual(self.put([entry({"cartVersion": 6})])["FailedEntryCount"], 0)
        for _ in range(2):
            self.assertEqual(self.put([entry({"cartVersion": 7})])["FailedEntryCount"], 1)
        self.assertEqual(self.put([entry({"cartVersion": 7})])["FailedEntryCount"], 0)

    # --- whole-call faults --------------------------------------------------
    def test_fail_call_and_throttle(self):
        self.stack.events_fault("fail_call")
        self.stack.events_fault("throttle", count=2)
        with self.assertRaises(ClientError) as ctx:
            self.put([entry({"a": 1})])
        self.assertAwsError(ctx, "InternalException", 500)
        for _ in range(2):
            with self.assertRaises(ClientError) as ctx:
                self.put([entry({"a": 1})])
            self.assertAwsError(ctx, "ThrottlingException", 400)
        self.assertEqual(self.put([entry({"a": 2})])["FailedEntryCount"], 0)
        self.assertEqual([e["detail"] for e in self.stack.events()], [{"a": 2}])
        stats = self.stack.events_stats()
        self.assertEqual(stats["faults_served"], 3)
        self.assertEqual(stats["rejected"], {"InternalException": 1, "ThrottlingException": 2})

    def test_fail_call_with_a_status_and_type(self):
        self.stack.events_fault("fail_call", status=400, error_type="AccessDeniedException",
                                message="not authorized to perform: events:PutEvents")
        with self.assertRaises(ClientError) as ctx:
            self.put([entry({"a": 1})])
        self.assertAwsError(ctx, "AccessDeniedException", 400)
        self.assertEqual(self.put([entry({"a": 2})])["FailedEntryCount"], 0)

    def test_unlimited_fault_until_reset(self):
        self.stack.events_fault("fail_call", count=-1)
        for _ in range(3):
            with self.assertRaises(ClientError):
                self.put([entry({"a": 1})])
        self.stack.events_reset()
        self.assertEqual(self.put([entry({"a": 1})])["FailedEntryCount"], 0)

    def test_hang(self):
        fast = self.stack.events_client(timeout=0.3)
        try:
            self.assertEqual(self.put([entry({"h": 0})], client=fast)["FailedEntryCount"], 0)
            self.stack.events_reset()   # fast now has a kept-alive connection to the proxy
            self.stack.events_fault("drop")
            with self.assertRaises(ConnectionClosedError):
                self.put([entry({"h": 0})], client=fast)
            self.stack.events_fault("hang", seconds=0.6)             # close, nothing stored
            with self.assertRaises((ReadTimeoutError, ConnectionClosedError)):
                self.put([entry({"h": 1})], client=fast)
            time.sleep(0.4)
            self.assertEqual(self.stack.events(), [])
            self.assertEqual(self.stack.events_stats()["calls"], 2, "the proxy resent a call")
            self.stack.events_fault("hang", seconds=0.6, then="apply_close")  # stored, no answer
            with self.assertRaises((ReadTimeoutError, ConnectionClosedError)):
                self.put([entry({"h": 2})], client=fast)
            self.assertEqual([e["detail"] for e in self.stack.events()], [{"h": 2}])
            time.sleep(0.4)
        finally:
            fast.close()
        self.stack.events_fault("hang", seconds=0.2, then="respond")     # late answer
        t0 = time.monotonic()
        self.assertEqual(self.put([entry({"h": 3})])["FailedEntryCount"], 0)
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        self.assertEqual([e["detail"] for e in self.stack.events()], [{"h": 2}, {"h": 3}])
        self.assertEqual(self.stack.events_stats()["calls"], 4, "the proxy resent a call")

    def test_bad_fault_spec_is_refused(self):
        with self.assertRaises(RuntimeError):
            self.stack.events_fault("explode")
        with self.assertRaises(RuntimeError):
            self.stack.events_fault("fail_entries")

    # --- signatures -----------------------------------------------------------
    def test_wrong_signature_is_rejected_by_the_proxy(self):
        bad = self.stack.events_client(secret="not-the-secret")
        try:
            with self.assertRaises(ClientError) as ctx:
                self.put([entry({"a": 1})], client=bad)
            self.assertAwsError(ctx, "InvalidSignatureException", 400)
        finally:
            bad.close()
        unknown = self.stack.events_client(akid="AKIDUNKNOWN")
        try:
            with self.assertRaises(ClientError) as ctx:
                self.put([entry({"a": 1})], client=unknown)
            self.assertAwsError(ctx, "UnrecognizedClientException", 400)
        finally:
            unknown.close()
        url = self.stack.events_endpoint
        body = {"Entries": [entry({"a": 1})]}
        status, resp = raw_post(url, body, service="dynamodb")   # scope .../dynamodb/...
        self.assertEqual(status, 400, resp)
        self.assertIn("InvalidSignatureException", resp["__type"])
        status, resp = raw_post(url, body, sign=False)
        self.assertIn("MissingAuthenticationTokenException", resp["__type"])
        self.assertEqual(self.stack.events_stats()["calls"], 0, "a rejected call got through")
        self.assertEqual(self.stack.events(), [])
        rejected = self.stack.events_proxy_stats()["rejected"]
        self.assertEqual(rejected.get("InvalidSignatureException"), 2, rejected)


class StackCliTest(unittest.TestCase):
    def test_run_eventbridge_exports_endpoints(self):
        script = ("import json, os, sys; sys.path.insert(0, %r); from stack import botocore_client;"
                  "c = botocore_client(os.environ['EVENTBRIDGE_ENDPOINT'], service='events');"
                  "r = c.put_events(Entries=[{'Source': 'cart-service', 'DetailType': 'X',"
                  " 'Detail': '{}', 'EventBusName': os.environ['CART_TEST_EVENT_BUS']}]);"
                  "assert r['FailedEntryCount'] == 0, r;"
                  "import urllib.request as u;"
                  "ev = json.load(u.urlopen(os.environ['CART_TEST_EVENTS_CONTROL']"
                  " + '/__control/events'))['events'];"
                  "assert [e['bus'] for e in ev] == ['b-1'], ev" % HERE)
        res = subprocess.run([sys.executable, os.path.join(HERE, "stack.py"), "run",
                              "--eventbridge", "--bus", "b-1", "--", sys.executable, "-c",
                              script], capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)


if __name__ == "__main__":
    unittest.main()
