"""check_iam.py must fail for a missing grant and for an unused grant."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack import AwsStack  # noqa: E402


def policy(*actions):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}, f)
    f.close()
    return f.name


class CheckIamTest(unittest.TestCase):
    def test_exact_and_subset(self):
        with AwsStack(table="iam-check") as st:
            st.client().get_item(TableName="iam-check",
                                 Key={"PK": {"S": "a"}, "SK": {"S": "b"}})

            def run(path, mode):
                env = dict(os.environ, CART_TEST_CONTROL=st.dynamodb_endpoint)
                return subprocess.run(
                    [sys.executable, os.path.join(HERE, "check_iam.py"),
                     "--policy", path, mode], env=env,
                    capture_output=True).returncode

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


if __name__ == "__main__":
    unittest.main()
