"""What the service stores is plain DynamoDB JSON that the AWS CLI reads
(ADR 6 layout), and 50 parallel adds to one cart lose nothing."""

import calendar
import concurrent.futures
import http.client
import json
import os
import shutil
import subprocess
import threading
import time

from awsbase import AwsServiceTestCase, harness

AWS_CLI = "/usr/bin/aws"


def iso_ms(s):
    """RFC 3339 with milliseconds (UTC) -> epoch milliseconds."""
    base, frac = s.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac)


class StoredItemAndConcurrencyTests(AwsServiceTestCase):

    @classmethod
    def cli_env(cls):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        senv = cls.stack.env(base={})
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                  "AWS_REGION", "AWS_EC2_METADATA_DISABLED"):
            env[k] = senv[k]
        env.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                    "AWS_PAGER": "", "AWS_MAX_ATTEMPTS": "1"})
        return env

    def cli_get_item(self, user):
        key = json.dumps({"PK": {"S": "CART#%s" % user}, "SK": {"S": "CART"}})
        p = subprocess.run(
            [AWS_CLI, "dynamodb", "get-item", "--endpoint-url", self.stack.dynamodb_endpoint,
             "--table-name", "cart-e2e-aws", "--key", key, "--consistent-read",
             "--return-consumed-capacity", "TOTAL", "--output", "json"],
            env=self.cli_env(), capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_aws_cli_reads_what_the_service_wrote(self):
        if not shutil.which(AWS_CLI):
            self.skipTest("AWS CLI not installed (Debian package awscli)")
        u = self.user("cli")
        self.add_ok(u, "sku-mug", 2, 1250, "EUR", name="Blue mug",
                    attributes={"color": "blue", "size": "L"})
        api = self.add_ok(u, "sku-tee", 1, 1999, "EUR", name="T-shirt \u00e9t\u00e9",
                          attributes={"size": "M"})
        self.assertEqual(api["version"], 2, api)
        self.stack.reset()
        out = self.cli_get_item(u)
        st = self.stats()
        self.assertEqual(self.attempts("GetItem", st), 1, st)   # the CLI went through the proxy
        self.assertEqual(st["rejected"], {}, st)                 # and botocore's signature passed
        self.assertIn("Item", out, out)
        self.assertEqual(out["ConsumedCapacity"]["TableName"], "cart-e2e-aws", out)
        it = out["Item"]

        self.assertEqual(it["PK"], {"S": "CART#%s" % u})
        self.assertEqual(it["SK"], {"S": "CART"})
        self.assertEqual(it["version"], {"N": "2"})
        self.assertEqual(it["cartId"], {"S": api["cartId"]})
        self.assertEqual(it["currency"], {"S": "EUR"})
        # TTL attribute: epoch seconds
        self.assertEqual(set(it["expiresAt"]), {"N"}, it["expiresAt"])
        self.assertEqual(int(it["expiresAt"]["N"]), iso_ms(api["expiresAt"]) // 1000, it)
        self.assertEqual(iso_ms(api["expiresAt"]) % 1000, 0, api["expiresAt"])
        self.assertEqual(int(it["createdAt"]["N"]), iso_ms(api["createdAt"]), it)
        self.assertEqual(int(it["updatedAt"]["N"]), iso_ms(api["updatedAt"]), it)
        self.assertRegex(it["writeId"]["S"], r"^[0-9a-f-]{8,}$")
        # no opaque blobs: every attribute is a plain DynamoDB type
        for name, av in it.items():
            self.assertEqual(len(av), 1, (name, av))
            self.assertNotIn("B", av, name)

        lines = it["items"]["L"]
        self.assertEqual(len(lines), 2, it["items"])
        want = {l["itemId"]: l for l in api["items"]}
        for av, want_id in zip(lines, ["sku-mug", "sku-tee"]):     # order kept
            m = av["M"]
            w = want[want_id]
            self.assertEqual(m["id"], {"S": want_id})
            self.assertEqual(m["q"], {"N": str(w["quantity"])})
            self.assertEqual(m["p"], {"N": str(w["unitPrice"]["amount"])})
            self.assertEqual(m["n"], {"S": w["name"]})
            self.assertEqual(m["a"], {"M": {k: {"S": v} for k, v in w["attributes"].items()}})
            self.assertEqual(int(iso_ms(api["createdAt"]) + int(m["t"]["N"])),
                             iso_ms(w["addedAt"]), m)
        self.assertEqual(lines[0]["M"]["q"], {"N": "2"})
        self.assertEqual(lines[1]["M"]["n"], {"S": "T-shirt \u00e9t\u00e9"})

    def test_fifty_parallel_adds_to_one_cart(self):
        u = self.user("par")
        n = 50
        barrier = threading.Barrier(n)
        body = json.dumps({"itemId": "sku-p", "quantity": 1,
                           "unitPrice": {"amount": 100, "currency": "EUR"}})

        def one(_):
            conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
            try:
                conn.connect()
                barrier.wait(10)
                return harness.send(conn, "POST", "/v1/cart/%s/items" % u, body)
            finally:
                conn.close()

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            results = list(pool.map(one, range(n)))
        statuses = sorted(r.status for r in results)
        self.assertEqual([s for s in statuses if s not in (200, 201)], [],
                         [r for r in results if r.status not in (200, 201)])
        self.assertEqual(statuses.count(201), 1, statuses)       # exactly one created it
        versions = sorted(r.body["version"] for r in results)
        self.assertEqual(versions, list(range(1, n + 1)))         # each commit one version
        c = self.get_cart(u)
        self.assertEqual(c["version"], n, c)
        self.assertEqual(c["items"][0]["quantity"], n, c)
        self.assertEqual(c["subtotal"]["amount"], n * 100, c)
        st = self.stats()
        # conditional writes: every commit is one successful UpdateItem;
        # lost races were refused by DynamoDB, never overwritten
        self.assertGreaterEqual(self.forwarded("UpdateItem", st), n, st)
