"""Credentials DynamoDB rejects: a clear 5xx problem and a log line, never a
crash, never retried, /ready fails."""

from awsbase import AwsServiceTestCase


class WrongSecretTests(AwsServiceTestCase):
    server_env = {"AWS_SECRET_ACCESS_KEY": "not-the-secret-of-AKIDCARTTEST"}

    def test_requests_fail_cleanly(self):
        u = self.user("badsig")
        r = self.request("GET", "/v1/cart/%s" % u)
        self.assertIn(r.status, (500, 503), r)
        body = self.assertProblem(r, r.status)
        self.assertEqual(body["code"], "cart.unavailable" if r.status == 503
                         else "cart.internal_error", body)
        self.assertNotIn("not-the-secret", r.raw.decode())
        st = self.stats()
        self.assertEqual(st["rejected"], {"InvalidSignatureException": 1}, st)   # not retried
        self.assertEqual(st["forwarded"], {}, st)
        rid = r.header("x-request-id")
        rec = self.wait_log(lambda x: x.get("msg") == "dynamodb request failed"
                            and x.get("request_id") == rid)
        self.assertIsNotNone(rec, self.server.logs())
        self.assertEqual(rec.get("error"), "InvalidSignatureException", rec)
        self.assertIn(rec.get("outcome"), ("backend", "unavailable"), rec)
        # logged once: the adapter's line, then the access line naming the error
        acc = self.wait_log(lambda x: x.get("msg") == "request" and x.get("request_id") == rid)
        self.assertIsNotNone(acc, self.server.logs())
        self.assertIn(acc.get("error"), ("backend", "unavailable"), acc)
        self.assertEqual([x["msg"] for x in self.server.log_lines()
                          if isinstance(x, dict) and x.get("request_id") == rid],
                         ["dynamodb request failed", "request"], self.server.logs())

        # a write fails the same way and stores nothing
        r = self.add(u, "sku-x", 1)
        self.assertIn(r.status, (500, 503), r)
        self.assertProblem(r, r.status)
        client = self.stack.client()
        try:
            got = client.get_item(TableName="cart-e2e-aws",
                                  Key={"PK": {"S": "CART#%s" % u}, "SK": {"S": "CART"}},
                                  ConsistentRead=True)
        finally:
            client.close()
        self.assertNotIn("Item", got)

        # the secret never reaches the logs
        self.assertNotIn("not-the-secret", self.server.stdout() + self.server.stderr())
        self.assertHealthy()

    def test_ready_fails(self):
        r = self.request("GET", "/ready")
        self.assertEqual(r.status, 503, r)
        repo = [c for c in r.body["checks"] if c["name"] == "repository"]
        self.assertEqual(len(repo), 1, r.body)
        self.assertEqual(repo[0]["status"], "fail", r.body)
        self.assertEqual(repo[0]["backend"], "dynamodb", r.body)
        self.assertHealthy()


class UnknownKeyTests(AwsServiceTestCase):
    server_env = {"AWS_ACCESS_KEY_ID": "AKIDNOTREGISTERED", "AWS_SECRET_ACCESS_KEY": "x" * 40}

    def test_unrecognized_client(self):
        u = self.user("badkey")
        r = self.request("GET", "/v1/cart/%s" % u)
        self.assertIn(r.status, (500, 503), r)
        self.assertProblem(r, r.status)
        st = self.stats()
        self.assertEqual(st["rejected"], {"UnrecognizedClientException": 1}, st)
        self.assertIsNotNone(self.wait_log(
            lambda x: x.get("msg") == "dynamodb request failed"
            and x.get("error") == "UnrecognizedClientException"), self.server.logs())
        self.assertEqual(self.request("GET", "/ready").status, 503)
        self.assertHealthy()
