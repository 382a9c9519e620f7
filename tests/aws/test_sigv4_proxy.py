#!/usr/bin/python3
"""Tests of the test-side AWS stand-ins.

Run: /usr/bin/python3 -m unittest discover -s tests/aws -p 'test_*.py'
  or /usr/bin/python3 tests/aws/test_sigv4_proxy.py

Requests are signed by botocore's own signer (positive cases) and then
tampered with (negative cases), so a verifier that accepts everything fails.
The same proxy is also checked against libcurl's signer (curl --aws-sigv4) and
the AWS CLI, the two clients the service and its tests actually use.
"""

import calendar
import datetime
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import urllib.request
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import botocore.auth  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError  # noqa: E402

import ddb_transact  # noqa: E402
import sigv4_proxy  # noqa: E402
from sigv4_proxy import AuthError, CredentialStore, SigV4Verifier  # noqa: E402
import stack as aws_stack  # noqa: E402
from stack import (AwsStack, TEST_AKID, TEST_SECRET, TEST_SESSION_AKID,  # noqa: E402
                   TEST_SESSION_SECRET, TEST_SESSION_TOKEN, botocore_client, create_table)

WHEN = datetime.datetime(2026, 1, 2, 3, 4, 5)
WHEN_EPOCH = calendar.timegm(WHEN.timetuple())
URL = "http://127.0.0.1:8000/"
TARGET = "DynamoDB_20120810.GetItem"
BODY = json.dumps({"TableName": "carts", "Key": {"PK": {"S": "CART#u1"},
                                                 "SK": {"S": "CART"}}}).encode()
CURL = "/usr/bin/curl"
AWS_CLI = "/usr/bin/aws"
STACK_PY = os.path.join(HERE, "stack.py")
# mock.patch swaps a module attribute: two threads patching at once can
# restore each other's mock, so the clock is patched by one signer at a time.
_SIGN_LOCK = threading.Lock()


def botocore_sign(url=URL, body=BODY, headers=None, akid=TEST_AKID, secret=TEST_SECRET,
                  token=None, region="us-east-1", service="dynamodb", when=WHEN,
                  method="POST"):
    """Sign with botocore's SigV4Auth.add_auth at `when`; return what the
    server receives: (method, raw path, header pairs, body)."""
    if headers is None:
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET}
    req = AWSRequest(method=method, url=url, data=body, headers=headers)
    auth = SigV4Auth(Credentials(akid, secret, token), service, region)
    with _SIGN_LOCK, mock.patch("botocore.auth.datetime") as dt:
        dt.datetime.utcnow.return_value = when
        dt.datetime.strptime = datetime.datetime.strptime
        auth.add_auth(req)
    parts = urllib.parse.urlsplit(url)
    pairs = [("Host", parts.netloc)] + list(req.headers.items())
    path = parts.path + ("?" + parts.query if parts.query else "")
    return method, path, pairs, body


def replace_header(pairs, name, value):
    out = [(k, v) for k, v in pairs if k.lower() != name.lower()]
    if value is not None:
        out.append((name, value))
    return out


def get_header(pairs, name):
    return [v for k, v in pairs if k.lower() == name.lower()][0]


class VerifierTest(unittest.TestCase):
    """SigV4Verifier alone, with a fixed clock."""

    def setUp(self):
        self.store = CredentialStore({
            TEST_AKID: (TEST_SECRET, None),
            TEST_SESSION_AKID: (TEST_SESSION_SECRET, TEST_SESSION_TOKEN),
        })
        self.verifier = SigV4Verifier(self.store, "us-east-1", "dynamodb",
                                      clock=lambda: WHEN_EPOCH)

    def assertRejected(self, req, error_type, message_part=None):
        with self.assertRaises(AuthError) as ctx:
            self.verifier.verify(*req)
        self.assertEqual(ctx.exception.error_type, error_type,
                         "%s: %s" % (ctx.exception.message, ctx.exception.detail))
        if message_part:
            self.assertIn(message_part, ctx.exception.message)
        return ctx.exception

    # -- accepted ---------------------------------------------------------
    def test_botocore_signed_request_is_accepted(self):
        v = self.verifier.verify(*botocore_sign())
        self.assertEqual(v.akid, TEST_AKID)
        self.assertEqual(v.signed_headers, ["content-type", "host", "x-amz-date", "x-amz-target"])

    def test_signing_from_many_threads_at_once(self):
        # StackTest.test_parallel_clients signs from 50 threads; an unguarded
        # mock.patch of botocore's clock failed there in CI and could leave
        # the mock in place for every later test.
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            reqs = list(pool.map(lambda _: botocore_sign(), range(250)))
        for req in reqs:
            self.assertEqual(self.verifier.verify(*req).akid, TEST_AKID)
        self.assertIs(botocore.auth.datetime, datetime)

    def test_session_credentials_with_token_are_accepted(self):
        req = botocore_sign(akid=TEST_SESSION_AKID, secret=TEST_SESSION_SECRET,
                            token=TEST_SESSION_TOKEN)
        self.assertIn("x-amz-security-token", self.verifier.verify(*req).signed_headers)

    def test_query_string_empty_body_and_get(self):
        self.verifier.verify(*botocore_sign(url="http://127.0.0.1:8000/a/b?z=1&a=2",
                                            body=b"", method="GET"))

    def test_header_whitespace_is_canonicalised(self):
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET,
                   "X-Custom": "  a   b  "}
        self.verifier.verify(*botocore_sign(headers=headers))

    def test_unsigned_extra_header_is_ignored(self):
        m, p, pairs, b = botocore_sign()
        self.verifier.verify(m, p, pairs + [("User-Agent", "x"), ("X-Forwarded-For", "y")], b)

    def test_clock_skew_within_five_minutes_is_accepted(self):
        self.verifier.verify(*botocore_sign(when=WHEN - datetime.timedelta(seconds=290)))
        self.verifier.verify(*botocore_sign(when=WHEN + datetime.timedelta(seconds=290)))

    # -- rejected ---------------------------------------------------------
    def test_tampered_body(self):
        m, p, pairs, b = botocore_sign()
        e = self.assertRejected((m, p, pairs, b.replace(b"u1", b"u2")),
                                "InvalidSignatureException",
                                "does not match the signature you provided")
        self.assertIn("The Canonical String for this request should have been", e.message)

    def test_tampered_signed_header(self):
        m, p, pairs, b = botocore_sign()
        pairs = replace_header(pairs, "X-Amz-Target", "DynamoDB_20120810.DeleteItem")
        self.assertRejected((m, p, pairs, b), "InvalidSignatureException")

    def test_tampered_path_and_method(self):
        m, p, pairs, b = botocore_sign()
        self.assertRejected((m, "/other", pairs, b), "InvalidSignatureException")
        self.assertRejected(("PUT", p, pairs, b), "InvalidSignatureException")

    def test_tampered_host(self):
        m, p, pairs, b = botocore_sign()
        self.assertRejected((m, p, replace_header(pairs, "Host", "127.0.0.1:8001"), b),
                            "InvalidSignatureException")

    def test_wrong_secret(self):
        self.assertRejected(botocore_sign(secret="not-the-secret"), "InvalidSignatureException",
                            "does not match the signature you provided")

    def test_flipped_signature_digit(self):
        m, p, pairs, b = botocore_sign()
        auth = get_header(pairs, "Authorization")
        last = auth[-1]
        auth = auth[:-1] + ("0" if last != "0" else "1")
        self.assertRejected((m, p, replace_header(pairs, "Authorization", auth), b),
                            "InvalidSignatureException")

    def test_unknown_access_key(self):
        e = self.assertRejected(botocore_sign(akid="AKIDUNKNOWN"), "UnrecognizedClientException",
                                "The security token included in the request is invalid.")
        self.assertEqual(e.aws_type, "com.amazon.coral.service#UnrecognizedClientException")

    def test_missing_authorization(self):
        m, p, pairs, b = botocore_sign()
        self.assertRejected((m, p, replace_header(pairs, "Authorization", None), b),
                            "MissingAuthenticationTokenException")

    def test_malformed_authorization(self):
        m, p, pairs, b = botocore_sign()
        for bad in ("AWS4-HMAC-SHA256 Credential=AKIDCARTTEST/20260102/us-east-1/dynamodb/"
                    "aws4_request, SignedHeaders=host;x-amz-date",
                    "AWS4-HMAC-SHA256 Credential=AKIDCARTTEST/20260102/us-east-1/aws4_request,"
                    " SignedHeaders=host;x-amz-date, Signature=00",
                    "AWS AKIDCARTTEST:abc"):
            self.assertRejected((m, p, replace_header(pairs, "Authorization", bad), b),
                                "IncompleteSignatureException")

    def test_missing_amz_date(self):
        m, p, pairs, b = botocore_sign()
        self.assertRejected((m, p, replace_header(pairs, "X-Amz-Date", None), b),
                            "IncompleteSignatureException")

    def test_stale_request(self):
        self.assertRejected(botocore_sign(when=WHEN - datetime.timedelta(seconds=301)),
                            "InvalidSignatureException", "Signature expired: 20260102T025904Z")

    def test_request_from_the_future(self):
        self.assertRejected(botocore_sign(when=WHEN + datetime.timedelta(seconds=301)),
                            "InvalidSignatureException", "Signature not yet current")

    def test_amz_date_changed_after_signing(self):
        m, p, pairs, b = botocore_sign()
        self.assertRejected((m, p, replace_header(pairs, "X-Amz-Date", "20260102T030406Z"), b),
                            "InvalidSignatureException")

    def test_scope_date_differs_from_amz_date(self):
        m, p, pairs, b = botocore_sign(when=WHEN + datetime.timedelta(days=1))
        pairs = replace_header(pairs, "X-Amz-Date", "20260102T030405Z")
        self.assertRejected((m, p, pairs, b), "InvalidSignatureException",
                            "Date in Credential scope does not match")

    def test_wrong_region(self):
        self.assertRejected(botocore_sign(region="eu-west-1"), "InvalidSignatureException",
                            "Credential should be scoped to a valid region, not 'eu-west-1'")

    def test_wrong_service(self):
        self.assertRejected(botocore_sign(service="events"), "InvalidSignatureException",
                            "Credential should be scoped to correct service: 'dynamodb'")

    def test_session_credentials_without_token(self):
        self.assertRejected(botocore_sign(akid=TEST_SESSION_AKID, secret=TEST_SESSION_SECRET),
                            "UnrecognizedClientException")

    def test_session_token_wrong(self):
        self.assertRejected(botocore_sign(akid=TEST_SESSION_AKID, secret=TEST_SESSION_SECRET,
                                          token="some-other-token"),
                            "UnrecognizedClientException")

    def test_session_token_not_signed(self):
        m, p, pairs, b = botocore_sign(akid=TEST_SESSION_AKID, secret=TEST_SESSION_SECRET)
        pairs = pairs + [("X-Amz-Security-Token", TEST_SESSION_TOKEN)]
        e = self.assertRejected((m, p, pairs, b), "UnrecognizedClientException")
        self.assertIn("SignedHeaders", e.detail)

    def test_session_token_with_long_term_key(self):
        self.assertRejected(botocore_sign(token="unexpected"), "UnrecognizedClientException")

    def test_expired_credentials(self):
        self.store.put("ASIAEXPIRED", "s", "t", expires_at=WHEN_EPOCH - 1)
        self.assertRejected(botocore_sign(akid="ASIAEXPIRED", secret="s", token="t"),
                            "ExpiredTokenException")
        self.store.put("ASIAVALID", "s", "t", expires_at=WHEN_EPOCH + 60)
        self.verifier.verify(*botocore_sign(akid="ASIAVALID", secret="s", token="t"))

    def test_signed_header_not_sent(self):
        # What libcurl 7.88 does with an empty 'Expect:' entry: listed, not sent.
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET,
                   "X-Gone": "v"}
        m, p, pairs, b = botocore_sign(headers=headers)
        e = self.assertRejected((m, p, replace_header(pairs, "X-Gone", None), b),
                                "InvalidSignatureException")
        self.assertIn("x-gone", e.detail)

    def test_host_must_be_signed(self):
        m, p, pairs, b = botocore_sign()
        auth = get_header(pairs, "Authorization").replace(
            "SignedHeaders=content-type;host;", "SignedHeaders=content-type;")
        self.assertRejected((m, p, replace_header(pairs, "Authorization", auth), b),
                            "InvalidSignatureException", "'Host' must be a 'SignedHeader'")

    def test_wrong_content_sha256(self):
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET,
                   "X-Amz-Content-SHA256": hashlib.sha256(b"other").hexdigest()}
        self.assertRejected(botocore_sign(headers=headers), "InvalidSignatureException")


def _curl(args, timeout=10):
    proc = subprocess.run([CURL, "-sS", "-o", "-", "-w", "\n%{http_code}"] + args,
                          capture_output=True, timeout=timeout)
    out = proc.stdout.decode()
    body, _, code = out.rpartition("\n")
    return int(code or 0), body, proc.stderr.decode()


def _port_open(url):
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=0.5):
            return True
    except OSError:
        return False


class StackTest(unittest.TestCase):
    """The proxy in front of a real dynalite, via AwsStack."""

    stack = None

    @classmethod
    def setUpClass(cls):
        cls.stack = AwsStack(table="carts", ecs=True).start()

    @classmethod
    def tearDownClass(cls):
        if cls.stack is not None:
            cls.stack.stop()

    def setUp(self):
        self.stack.reset()

    def client(self, **kw):
        c = self.stack.client(**kw)
        self.addCleanup(c.close)
        return c

    def put(self, client, user, n=1):
        client.put_item(TableName="carts", Item={"PK": {"S": "CART#" + user},
                                                  "SK": {"S": "CART"}, "n": {"N": str(n)}})

    def get(self, client, user):
        return client.get_item(TableName="carts", Key={"PK": {"S": "CART#" + user},
                                                        "SK": {"S": "CART"}}).get("Item")

    def assertClientError(self, fn, code):
        with self.assertRaises(ClientError) as ctx:
            fn()
        self.assertEqual(ctx.exception.response["Error"]["Code"], code)
        return ctx.exception

    # -- botocore through the proxy ----------------------------------------
    def test_botocore_roundtrip_and_counters(self):
        c = self.client()
        self.put(c, "u1", 3)
        self.assertEqual(self.get(c, "u1")["n"], {"N": "3"})
        st = self.stack.stats()
        self.assertEqual(st["targets"], {"DynamoDB_20120810.PutItem": 1,
                                         "DynamoDB_20120810.GetItem": 1})
        self.assertEqual(st["forwarded"], st["targets"])
        self.assertEqual(st["akids"], {TEST_AKID: 2})
        self.assertEqual(st["requests"], 2)

    def test_wrong_secret_is_rejected_and_not_forwarded(self):
        c = self.client(secret="wrong")
        self.assertClientError(lambda: self.get(c, "u1"), "InvalidSignatureException")
        st = self.stack.stats()
        self.assertEqual(st["forwarded"], {})
        self.assertEqual(st["targets"], {})
        self.assertEqual(st["rejected"], {"InvalidSignatureException": 1})

    def test_unknown_key_and_session_rules(self):
        self.assertClientError(lambda: self.get(self.client(akid="AKIDOTHER"), "u"),
                               "UnrecognizedClientException")
        ok = self.client(akid=TEST_SESSION_AKID, secret=TEST_SESSION_SECRET,
                         token=TEST_SESSION_TOKEN)
        self.get(ok, "u")
        no_token = self.client(akid=TEST_SESSION_AKID, secret=TEST_SESSION_SECRET)
        self.assertClientError(lambda: self.get(no_token, "u"), "UnrecognizedClientException")

    def test_direct_dynalite_endpoint(self):
        c = botocore_client(self.stack.dynalite_endpoint, secret="anything")
        self.addCleanup(c.close)
        self.assertIn("carts", c.list_tables()["TableNames"])
        self.assertEqual(create_table(self.stack.dynalite_endpoint, "carts"), "carts")  # idempotent
        self.assertEqual(self.stack.stats()["requests"], 0)

    def test_keep_alive_and_content_length(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.proxy.port, timeout=5)
        try:
            socks = []
            for _ in range(3):
                m, p, pairs, b = botocore_sign(
                    url=self.stack.dynamodb_endpoint + "/", body=b"{}",
                    headers={"Content-Type": "application/x-amz-json-1.0",
                             "X-Amz-Target": "DynamoDB_20120810.ListTables"},
                    when=datetime.datetime.utcnow())
                conn.putrequest(m, p, skip_host=True, skip_accept_encoding=True)
                for k, v in pairs:
                    conn.putheader(k, v)
                conn.putheader("Content-Length", str(len(b)))
                conn.endheaders(b)
                resp = conn.getresponse()
                body = resp.read()
                self.assertEqual(resp.status, 200, body)
                self.assertEqual(int(resp.getheader("Content-Length")), len(body))
                socks.append(conn.sock)
            self.assertIs(socks[0], socks[2])
        finally:
            conn.close()

    def test_parallel_clients(self):
        def worker(i):
            m, p, pairs, b = botocore_sign(
                url=self.stack.dynamodb_endpoint + "/",
                body=json.dumps({"TableName": "carts", "Item": {
                    "PK": {"S": "CART#par%d" % i}, "SK": {"S": "CART"}}}).encode(),
                headers={"Content-Type": "application/x-amz-json-1.0",
                         "X-Amz-Target": "DynamoDB_20120810.PutItem"},
                when=datetime.datetime.utcnow())
            conn = http.client.HTTPConnection("127.0.0.1", self.stack.proxy.port, timeout=10)
            try:
                conn.putrequest(m, p, skip_host=True, skip_accept_encoding=True)
                for k, v in pairs:
                    conn.putheader(k, v)
                conn.putheader("Content-Length", str(len(b)))
                conn.endheaders(b)
                resp = conn.getresponse()
                resp.read()
                return resp.status
            finally:
                conn.close()
        import concurrent.futures
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            statuses = list(pool.map(worker, range(50)))
        self.assertEqual(statuses, [200] * 50)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(self.stack.stats()["forwarded"], {"DynamoDB_20120810.PutItem": 50})

    # -- faults --------------------------------------------------------------
    def test_throttle_with_target_filter(self):
        c = self.client()
        self.stack.fault("throttle", count=2, target="PutItem")
        self.get(c, "u")  # not matched
        for _ in range(2):
            self.assertClientError(lambda: self.put(c, "t"),
                                   "ProvisionedThroughputExceededException")
        self.put(c, "t")
        st = self.stack.stats()
        self.assertEqual(st["faults_served"], 2)
        self.assertEqual(st["targets"]["DynamoDB_20120810.PutItem"], 3)
        self.assertEqual(st["forwarded"]["DynamoDB_20120810.PutItem"], 1)

    def test_error_statuses(self):
        c = self.client()
        self.stack.fault("error500")
        e = self.assertClientError(lambda: self.get(c, "u"), "InternalServerError")
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        self.stack.fault("error503")
        e = self.assertClientError(lambda: self.get(c, "u"), "ServiceUnavailableException")
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 503)
        self.stack.fault("throttling")
        self.assertClientError(lambda: self.get(c, "u"), "ThrottlingException")

    def test_retrying_client_sees_faults_then_success(self):
        c = self.client(max_attempts=3)
        self.stack.fault("error500", count=2, target="GetItem")
        self.get(c, "u")
        self.assertEqual(self.stack.stats()["targets"]["DynamoDB_20120810.GetItem"], 3)

    def test_drop(self):
        c = self.client()
        self.stack.fault("drop")
        with self.assertRaises(ConnectionClosedError):
            self.get(c, "u")
        self.get(c, "u")

    def test_hang(self):
        c = self.client(timeout=0.3)
        self.stack.fault("hang", hang_seconds=1.0)
        with self.assertRaises(ReadTimeoutError):
            self.put(c, "hang")
        time.sleep(0.8)
        self.assertIsNone(self.get(self.client(), "hang"), "hang must not forward")

    def test_timeout_after_forward_applies_the_write(self):
        c = self.client(timeout=0.3)
        self.stack.fault("timeout_after_forward", target="PutItem", hang_seconds=1.0)
        with self.assertRaises(ReadTimeoutError):
            self.put(c, "unknown-outcome", 7)
        direct = botocore_client(self.stack.dynalite_endpoint)
        self.addCleanup(direct.close)
        self.assertEqual(self.get(direct, "unknown-outcome")["n"], {"N": "7"})
        self.assertEqual(self.stack.stats()["forwarded"], {"DynamoDB_20120810.PutItem": 1})

    # -- control API ---------------------------------------------------------
    def test_control_credentials_and_errors(self):
        self.stack.control("POST", "credentials", {"akid": "AKIDNEW", "secret": "s2"})
        self.get(self.client(akid="AKIDNEW", secret="s2"), "u")
        akids = [c["akid"] for c in self.stack.control("GET", "credentials")["credentials"]]
        self.assertIn("AKIDNEW", akids)
        self.stack.control("POST", "credentials/revoke", {"akid": "AKIDNEW"})
        self.assertClientError(lambda: self.get(self.client(akid="AKIDNEW", secret="s2"), "u"),
                               "UnrecognizedClientException")
        with self.assertRaises(RuntimeError):
            self.stack.fault("nonsense")
        with self.assertRaises(RuntimeError):
            self.stack.control("GET", "nope")

    # -- libcurl's signer ----------------------------------------------------
    def curl_sigv4(self, *extra, user="%s:%s" % (TEST_AKID, TEST_SECRET),
                   target="DynamoDB_20120810.ListTables", data="{}"):
        args = ["--aws-sigv4", "aws:amz:us-east-1:dynamodb", "--user", user,
                "-H", "Content-Type: application/x-amz-json-1.0",
                "-H", "X-Amz-Target: " + target] + list(extra)
        if data is not None:
            args += ["-d", data]
        return _curl(args + [self.stack.dynamodb_endpoint + "/"])

    def test_curl_sigv4_is_accepted(self):
        code, body, err = self.curl_sigv4()
        self.assertEqual(code, 200, body + err)
        self.assertIn("carts", json.loads(body)["TableNames"])
        self.assertEqual(self.stack.stats()["targets"], {"DynamoDB_20120810.ListTables": 1})

    def test_curl_sigv4_put_get_with_session_token(self):
        item = {"TableName": "carts", "Item": {"PK": {"S": "CART#curl"}, "SK": {"S": "CART"},
                                               "note": {"S": "a  b\u00e9"}}}
        code, body, err = self.curl_sigv4(
            "-H", "X-Amz-Security-Token: " + TEST_SESSION_TOKEN,
            user="%s:%s" % (TEST_SESSION_AKID, TEST_SESSION_SECRET),
            target="DynamoDB_20120810.PutItem", data=json.dumps(item))
        self.assertEqual(code, 200, body + err)
        got = self.get(self.client(), "curl")
        self.assertEqual(got["note"], {"S": "a  b\u00e9"})

    def test_curl_sigv4_rejections(self):
        code, body, _ = self.curl_sigv4(user=TEST_AKID + ":wrong")
        self.assertEqual((code, json.loads(body)["__type"]),
                         (400, "com.amazon.coral.service#InvalidSignatureException"))
        code, body, _ = self.curl_sigv4(user="%s:%s" % (TEST_SESSION_AKID, TEST_SESSION_SECRET))
        self.assertEqual((code, json.loads(body)["__type"]),
                         (400, "com.amazon.coral.service#UnrecognizedClientException"))
        code, body, _ = _curl(["-H", "X-Amz-Target: DynamoDB_20120810.ListTables",
                               "-d", "{}", self.stack.dynamodb_endpoint + "/"])
        self.assertEqual((code, json.loads(body)["__type"]),
                         (400, "com.amazon.coral.service#MissingAuthenticationTokenException"))

    def test_libcurl_quirk_empty_header_entry_is_signed_but_not_sent(self):
        # libcurl (7.88) puts an empty 'Expect:' (a "remove this header" entry)
        # into SignedHeaders without sending it: AWS, and this proxy, reject it.
        code, body, err = self.curl_sigv4("-H", "Expect:", "-v")
        signed = re.search(r"SignedHeaders=([^,]*)", err).group(1).split(";")
        if "expect" not in signed:
            self.skipTest("this libcurl no longer signs removed headers")
        self.assertEqual(code, 400)
        self.assertEqual(json.loads(body)["__type"],
                         "com.amazon.coral.service#InvalidSignatureException")
        self.assertIn("'expect' is listed in SignedHeaders but not present",
                      self.stack.stats()["last_rejection"]["detail"])

    def test_libcurl_quirk_read_callback_body_is_not_hashed(self):
        # With the body from a read callback (curl -T, CURLOPT_READFUNCTION)
        # libcurl 7.88 signs the hash of an *empty* payload: use POSTFIELDS.
        proc = subprocess.run(
            [CURL, "-sS", "--aws-sigv4", "aws:amz:us-east-1:dynamodb",
             "--user", "%s:%s" % (TEST_AKID, TEST_SECRET),
             "-H", "Content-Type: application/x-amz-json-1.0",
             "-H", "X-Amz-Target: DynamoDB_20120810.ListTables",
             "-X", "POST", "-T", "-", self.stack.dynamodb_endpoint + "/"],
            input=b"{}", capture_output=True, timeout=10)
        body = json.loads(proc.stdout)
        if "TableNames" in body:
            self.skipTest("this libcurl hashes read-callback bodies")
        self.assertEqual(body["__type"], "com.amazon.coral.service#InvalidSignatureException")

    # -- the AWS CLI (botocore's own client) ----------------------------------
    def test_aws_cli_through_proxy(self):
        env = self.stack.env()
        base = [AWS_CLI, "dynamodb", "list-tables", "--endpoint-url", env["DYNAMODB_ENDPOINT"]]
        ok = subprocess.run(base, env=env, capture_output=True, timeout=20)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn("carts", json.loads(ok.stdout)["TableNames"])
        env["AWS_SECRET_ACCESS_KEY"] = "wrong"
        bad = subprocess.run(base, env=env, capture_output=True, timeout=20)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn(b"InvalidSignatureException", bad.stderr)

    # -- ECS credentials endpoint ----------------------------------------------
    def fetch_ecs(self, token=aws_stack.ECS_AUTH_TOKEN):
        req = urllib.request.Request(self.stack.ecs.full_uri)
        if token is not None:
            req.add_header("Authorization", token)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def test_ecs_requires_authorization(self):
        for token in (None, "wrong"):
            with self.assertRaises(urllib.error.HTTPError) as ctx:
                self.fetch_ecs(token)
            self.assertEqual(ctx.exception.code, 401)

    def test_ecs_rotation_registration_and_expiry(self):
        ecs = self.stack.ecs
        before = ecs.stats()["served"]
        a = self.fetch_ecs()
        b = self.fetch_ecs()
        self.assertNotEqual(a["AccessKeyId"], b["AccessKeyId"])
        self.assertTrue(a["AccessKeyId"].startswith("ASIACARTECS"))
        self.assertRegex(a["Expiration"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        left = sigv4_proxy.parse_iso8601(a["Expiration"]) - time.time()
        self.assertTrue(1100 < left <= 1201, left)
        self.assertEqual(set(a), {"AccessKeyId", "SecretAccessKey", "Token", "Expiration",
                                  "RoleArn"})
        for cred in (a, b):  # both issued and unexpired: both accepted
            self.get(self.client(akid=cred["AccessKeyId"], secret=cred["SecretAccessKey"],
                                 token=cred["Token"]), "u")
        self.assertClientError(  # token is required
            lambda: self.get(self.client(akid=a["AccessKeyId"],
                                         secret=a["SecretAccessKey"]), "u"),
            "UnrecognizedClientException")
        self.assertEqual(ecs.stats()["served"], before + 2)
        # short-lived keys expire at the proxy too
        self.stack.control("POST", "config", {"lifetime_seconds": 1}, base=ecs.base_url)
        try:
            c = self.fetch_ecs()
        finally:
            self.stack.control("POST", "config", {"lifetime_seconds": 1200}, base=ecs.base_url)
        client = self.client(akid=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["Token"])
        time.sleep(max(0.0, sigv4_proxy.parse_iso8601(c["Expiration"]) - time.time()) + 0.05)
        self.assertClientError(lambda: self.get(client, "u"), "ExpiredTokenException")

    def test_ecs_injected_failure_and_stats(self):
        base = self.stack.ecs.base_url
        self.stack.control("POST", "config", {"fail_next": 1}, base=base)
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            self.fetch_ecs()
        self.assertEqual(ctx.exception.code, 500)
        self.fetch_ecs()
        st = self.stack.control("GET", "stats", base=base)
        self.assertGreaterEqual(st["failed"], 1)
        self.assertGreaterEqual(st["requests"], 2)

    def test_ecs_without_rotation_reissues_current_keys(self):
        base = self.stack.ecs.base_url
        self.stack.control("POST", "config", {"rotate": False}, base=base)
        try:
            a, b = self.fetch_ecs(), self.fetch_ecs()
        finally:
            self.stack.control("POST", "config", {"rotate": True}, base=base)
        self.assertEqual(a["AccessKeyId"], b["AccessKeyId"])


class CliTest(unittest.TestCase):
    """stack.py as a command: env, exit status, no surviving children."""

    def test_run_passes_env_and_exit_code_and_stops_servers(self):
        script = ('echo "$DYNAMODB_ENDPOINT $CART_TEST_DYNALITE $CART_TEST_CONTROL '
                  '$AWS_ACCESS_KEY_ID $AWS_SECRET_ACCESS_KEY $AWS_REGION '
                  '$AWS_EC2_METADATA_DISABLED $KEEP_ME ${AWS_SESSION_TOKEN-unset}"; '
                  '%s -s -o /dev/null -w "%%{http_code}\\n" --aws-sigv4 '
                  'aws:amz:us-east-1:dynamodb --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" '
                  '-H "X-Amz-Target: DynamoDB_20120810.DescribeTable" '
                  '-H "Content-Type: application/x-amz-json-1.0" '
                  '-d \'{"TableName":"cli_table"}\' "$DYNAMODB_ENDPOINT/"; exit 7' % CURL)
        env = dict(os.environ, KEEP_ME="kept", AWS_SESSION_TOKEN="ambient")
        proc = subprocess.run([sys.executable, STACK_PY, "run", "--table", "cli_table", "--",
                               "sh", "-c", script], env=env, capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 7, proc.stderr)
        line, code = proc.stdout.decode().strip().splitlines()
        proxy, dynalite, control, akid, secret, region, imds, keep, token = line.split()
        self.assertEqual(code, "200", proc.stderr)  # the table exists, via the proxy
        self.assertEqual(proxy, control)
        self.assertNotEqual(proxy, dynalite)
        self.assertEqual((akid, secret, region, imds, keep, token),
                         (TEST_AKID, TEST_SECRET, "us-east-1", "true", "kept", "unset"))
        self.assertFalse(_port_open(dynalite), "dynalite outlived stack.py run")
        self.assertFalse(_port_open(proxy), "proxy outlived stack.py run")

    def test_rejects_invalid_table_name(self):
        proc = subprocess.run([sys.executable, STACK_PY, "run", "--table", "t1", "--", "true"],
                              capture_output=True, timeout=10)
        self.assertEqual(proc.returncode, 2)
        self.assertIn(b"3-255", proc.stderr)

    def test_dynalite_dies_with_a_killed_parent(self):
        proc = subprocess.Popen([sys.executable, STACK_PY, "serve"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        try:
            dynalite = None
            for line in proc.stdout:
                line = line.decode()
                if line.startswith("export CART_TEST_DYNALITE="):
                    dynalite = line.strip().split("=", 1)[1]
                if line.startswith("# stack is up"):
                    break
            self.assertTrue(dynalite and _port_open(dynalite))
            os.kill(proc.pid, signal.SIGKILL)  # no atexit, no finally
            proc.wait(5)
            deadline = time.monotonic() + 5
            while _port_open(dynalite) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertFalse(_port_open(dynalite), "dynalite outlived a kill -9 of its parent")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


class EventsServiceScopeTest(unittest.TestCase):
    """The proxy is service-agnostic: scoped to 'events' it accepts only that."""

    def test_events_scope(self):
        store = CredentialStore({TEST_AKID: (TEST_SECRET, None)})
        v = SigV4Verifier(store, "us-east-1", "events", clock=lambda: WHEN_EPOCH)
        headers = {"Content-Type": "application/x-amz-json-1.1",
                   "X-Amz-Target": "AWSEvents.PutEvents"}
        v.verify(*botocore_sign(headers=headers, service="events"))
        with self.assertRaises(AuthError):
            v.verify(*botocore_sign(headers=headers, service="dynamodb"))


if __name__ == "__main__":
    unittest.main()


class TransactWriteItemsTest(unittest.TestCase):
    """TransactWriteItems (dynalite has none): tests/aws/ddb_transact.py."""

    stack = None
    setUpClass = classmethod(StackTest.setUpClass.__func__)
    tearDownClass = classmethod(StackTest.tearDownClass.__func__)
    setUp = StackTest.setUp
    client = StackTest.client
    put = StackTest.put
    assertClientError = StackTest.assertClientError

    def key(self, user, sk="CART"):
        return {"PK": {"S": "CART#" + user}, "SK": {"S": sk}}

    def item(self, c, user, sk="CART"):
        return c.get_item(TableName="carts", Key=self.key(user, sk),
                          ConsistentRead=True).get("Item")

    def txn(self, c, items, **kw):
        return c.transact_write_items(TransactItems=items, **kw)

    def update(self, user, cond=None, sk="CART"):
        u = {"TableName": "carts", "Key": self.key(user, sk),
             "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}
        if cond:
            u["ConditionExpression"] = cond
        return {"Update": u}

    def test_all_items_commit_together_and_capacity_is_doubled(self):
        c = self.client()
        out = self.txn(c, [self.update("t1"),
                           {"Put": {"TableName": "carts",
                                    "Item": dict(self.key("t1", "IDEM#k"), b={"B": b"\x00\x01"}),
                                    "ConditionExpression": "attribute_not_exists(PK)"}}],
                       ReturnConsumedCapacity="TOTAL")
        self.assertEqual(self.item(c, "t1")["n"], {"N": "1"})
        self.assertEqual(self.item(c, "t1", "IDEM#k")["b"], {"B": b"\x00\x01"})
        self.assertEqual(out["ConsumedCapacity"][0]["CapacityUnits"], 4.0, out)
        st = self.stack.stats()
        self.assertEqual(st["targets"].get("DynamoDB_20120810.TransactWriteItems"), 1, st)
        self.assertEqual(st["transactions"]["committed"], 1, st)

    def test_a_failed_condition_cancels_every_item_and_restores_old_images(self):
        c = self.client()
        self.put(c, "t2", 7)
        self.put(c, "t2b", 1)
        err = self.assertClientError(
            lambda: self.txn(c, [self.update("t2"),
                                 {"Delete": {"TableName": "carts", "Key": self.key("t2b")}},
                                 self.update("t3", cond="attribute_exists(PK)")]),
            "TransactionCanceledException")
        reasons = [r["Code"] for r in err.response["CancellationReasons"]]
        self.assertEqual(reasons, ["None", "None", "ConditionalCheckFailed"])
        self.assertEqual(self.item(c, "t2")["n"], {"N": "7"})        # update undone
        self.assertEqual(self.item(c, "t2b")["n"], {"N": "1"})       # delete undone
        self.assertIsNone(self.item(c, "t3"))                         # never created
        self.assertEqual(self.stack.stats()["transactions"]["canceled"], 1)

    def test_client_request_token_makes_a_retry_idempotent(self):
        c = self.client()
        items = [self.update("t4")]
        self.txn(c, items, ClientRequestToken="tok-1")
        self.txn(c, items, ClientRequestToken="tok-1")
        self.assertEqual(self.item(c, "t4")["n"], {"N": "1"})
        self.assertClientError(lambda: self.txn(c, [self.update("t5")],
                                                ClientRequestToken="tok-1"),
                               "IdempotentParameterMismatchException")
        self.assertIsNone(self.item(c, "t5"))

    def test_refuses_two_operations_on_one_item_and_malformed_requests(self):
        c = self.client()
        self.assertClientError(lambda: self.txn(c, [self.update("t6"), self.update("t6")]),
                               "ValidationException")
        self.assertIsNone(self.item(c, "t6"))
        with self.assertRaises(ddb_transact.TransactError) as ctx:
            ddb_transact.validate({"TransactItems": [{"Put": {"Item": {}}}]})
        self.assertIn("TableName", ctx.exception.message)
        with self.assertRaises(ddb_transact.TransactError):
            ddb_transact.validate({"TransactItems": [
                {"Put": {"TableName": "carts", "Item": {"PK": {"B": "not base64!"}}}}]})
