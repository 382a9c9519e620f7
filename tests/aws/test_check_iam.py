"""check_iam.py must fail for a missing grant and for an unused grant."""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack import AwsStack  # noqa: E402


def policy(*actions, statements=None):
    """A policy of actions on "*", or of statements [(actions, resource)]."""
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(a), "Resource": r}
        for a, r in (statements or [(actions, "*")])]}, f)
    f.close()
    return f.name


def run_check(st, path, mode):
    env = dict(os.environ, CART_TEST_CONTROL=st.dynamodb_endpoint)
    return subprocess.run(
        [sys.executable, os.path.join(HERE, "check_iam.py"),
         "--policy", path, mode], env=env,
        capture_output=True).returncode


TABLE = "arn:aws:dynamodb:*:*:table/cart-service-carts"
INDEX = TABLE + "/index/outbox"


class CheckIamTest(unittest.TestCase):
    def test_exact_and_subset(self):
        with AwsStack(table="iam-check") as st:
            st.client().get_item(TableName="iam-check",
                                 Key={"PK": {"S": "a"}, "SK": {"S": "b"}})

            def run(path, mode):
                return run_check(st, path, mode)

            exact = policy("dynamodb:GetItem")
            extra = policy("dynamodb:GetItem", "dynamodb:PutItem")
            missing = policy("dynamodb:PutItem")
            try:
                self.assertEqual(run(exact, "--exact"), 0)
                self.assertEqual(run(extra, "--exact"), 1)    # unused grant
                self.assertEqual(run(extra, "--subset"), 0)
                self.assertEqual(run(missing, "--subset"), 1)  # not granted
            finally:
                for p in (exact, extra, missing):
                    os.unlink(p)

    def test_query_and_scan_of_an_index_need_the_index_resource(self):
        """The relay's Query and Scan name IndexName: IAM wants the action
        on .../index/outbox, the table's grant does not cover them (and a
        grant on the table alone is unused)."""
        with AwsStack() as st:
            c = st.client()
            self.addCleanup(c.close)
            c.create_table(
                TableName="iam-index",
                AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                                      for n in ("PK", "SK", "obPending")],
                KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                           {"AttributeName": "SK", "KeyType": "RANGE"}],
                BillingMode="PAY_PER_REQUEST",
                GlobalSecondaryIndexes=[{
                    "IndexName": "outbox",
                    "KeySchema": [{"AttributeName": "obPending", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"}}])
            deadline = time.monotonic() + 15
            while (c.describe_table(TableName="iam-index")["Table"]["TableStatus"]
                   != "ACTIVE" and time.monotonic() < deadline):
                time.sleep(0.05)
            st.control("POST", "reset", {})   # only the service's actions
            c.scan(TableName="iam-index", IndexName="outbox", Limit=10)
            c.query(TableName="iam-index", IndexName="outbox",
                    KeyConditionExpression="obPending = :o",
                    ExpressionAttributeValues={":o": {"S": "t-a"}})
            c.get_item(TableName="iam-index", Key={"PK": {"S": "a"}, "SK": {"S": "b"}})
            exact = policy(statements=[(["dynamodb:GetItem"], TABLE),
                                       (["dynamodb:Query", "dynamodb:Scan"], INDEX)])
            scan_on_table = policy(statements=[
                (["dynamodb:GetItem", "dynamodb:Scan"], TABLE),
                (["dynamodb:Query"], INDEX)])
            no_scan = policy(statements=[(["dynamodb:GetItem"], TABLE),
                                         (["dynamodb:Query"], INDEX)])
            extra_table_scan = policy(statements=[
                (["dynamodb:GetItem", "dynamodb:Scan"], TABLE),
                (["dynamodb:Query", "dynamodb:Scan"], INDEX)])
            anywhere = policy("dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan")
            try:
                self.assertEqual(run_check(st, exact, "--exact"), 0)
                self.assertEqual(run_check(st, scan_on_table, "--subset"), 1)
                self.assertEqual(run_check(st, no_scan, "--subset"), 1)
                self.assertEqual(run_check(st, extra_table_scan, "--subset"), 0)
                self.assertEqual(run_check(st, extra_table_scan, "--exact"), 1)
                self.assertEqual(run_check(st, anywhere, "--exact"), 0)
            finally:
                for p in (exact, scan_on_table, no_scan, extra_table_scan, anywhere):
                    os.unlink(p)

    def test_runtime_policy_grants_scan_on_the_index_only(self):
        path = os.path.join(HERE, "..", "..", "docs", "iam", "runtime-policy.json")
        with open(path) as f:
            statements = json.load(f)["Statement"]
        scans = [s["Resource"] for s in statements if "dynamodb:Scan" in s["Action"]]
        self.assertEqual(scans, ["arn:aws:dynamodb:*:*:table/cart-service-carts/index/outbox"])

    def test_secrets_are_checked_by_the_secret_read(self):
        """GetSecretValue is granted on secret ARNs with IAM wildcards: the
        secrets the stand-in answered must be covered (the named ones,
        and no more under --exact)."""
        def run(*paths, mode="--exact"):
            env = dict(os.environ, CART_TEST_SECRETS_CONTROL=st.secrets_server.url)
            env.pop("CART_TEST_CONTROL", None)
            cmd = [sys.executable, os.path.join(HERE, "check_iam.py"), mode]
            for p in paths:
                cmd += ["--policy", p]
            return subprocess.run(cmd, env=env, capture_output=True).returncode

        sm = "arn:aws:secretsmanager:*:*:secret:"
        with AwsStack(dynamodb=False, secretsmanager=True,
                      secrets={"cart-service/jwks": "{}", "cart-service/redis": "pw",
                               "cart-service/event-bus": "bus"}) as st:
            c = st.secrets_client()
            self.addCleanup(c.close)
            for name in ("cart-service/jwks", "cart-service/redis"):
                c.get_secret_value(SecretId=name)
            two = policy(statements=[(["secretsmanager:GetSecretValue"],
                                      [sm + "cart-service/jwks-??????",
                                       sm + "cart-service/redis-??????"])])
            one = policy(statements=[(["secretsmanager:GetSecretValue"],
                                      sm + "cart-service/jwks-??????")])
            shipped = os.path.join(HERE, "..", "..", "docs", "iam", "secrets-policy.json")
            try:
                self.assertEqual(run(two), 0)
                self.assertEqual(run(one, mode="--subset"), 1)   # redis not granted
                self.assertEqual(run(shipped, mode="--subset"), 0)
                self.assertEqual(run(shipped), 1)               # event-bus never read
                c.get_secret_value(SecretId="cart-service/event-bus")
                self.assertEqual(run(shipped), 0)
                self.assertEqual(run(two, one), 1)              # event-bus not granted
            finally:
                for p in (two, one):
                    os.unlink(p)


if __name__ == "__main__":
    unittest.main()
