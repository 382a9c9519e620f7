"""The GetSecretValue stand-in (secretsmanager_server.py) behind the SigV4
proxy (service "secretsmanager"), driven by botocore's own client: the
shapes it answers are the ones botocore's model parses.

    /usr/bin/python3 -m unittest tests/aws/test_secretsmanager_server.py
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from botocore.exceptions import ClientError  # noqa: E402

from stack import AwsStack, TEST_AKID, botocore_client  # noqa: E402


class SecretsManagerStandInTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.stack = AwsStack(dynamodb=False, secretsmanager=True,
                             secrets={"cart-service/plain": "hello"}).start()
        cls.sm = cls.stack.secrets_server
        cls.client = cls.stack.secrets_client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.stack.stop()

    def setUp(self):
        self.sm.reset()

    def code(self, **kw):
        with self.assertRaises(ClientError) as cm:
            self.client.get_secret_value(**kw)
        return cm.exception.response["Error"]["Code"]

    def test_string_by_name_and_by_arn(self):
        r = self.client.get_secret_value(SecretId="cart-service/plain")
        self.assertEqual(r["SecretString"], "hello")
        self.assertEqual(r["Name"], "cart-service/plain")
        self.assertRegex(r["ARN"], r"^arn:aws:secretsmanager:us-east-1:\d{12}:"
                         r"secret:cart-service/plain-[0-9a-f]{6}$")
        self.assertEqual(r["VersionStages"], ["AWSCURRENT"])
        again = self.client.get_secret_value(SecretId=r["ARN"])
        self.assertEqual(again["VersionId"], r["VersionId"])
        self.assertEqual(self.sm.stats()["reads"], {r["ARN"]: 2})

    def test_rotation_is_a_new_version(self):
        before = self.client.get_secret_value(SecretId="cart-service/plain")
        self.sm.put("cart-service/plain", string="hello-2")
        after = self.client.get_secret_value(SecretId="cart-service/plain")
        self.assertEqual(after["SecretString"], "hello-2")
        self.assertNotEqual(after["VersionId"], before["VersionId"])
        self.assertEqual(self.code(SecretId="cart-service/plain",
                                   VersionId=before["VersionId"]),
                         "ResourceNotFoundException")
        self.sm.put("cart-service/plain", string="hello")

    def test_binary_is_base64_on_the_wire(self):
        self.sm.put("cart-service/bin", binary=b"\x00\x01secret")
        r = self.client.get_secret_value(SecretId="cart-service/bin")
        self.assertEqual(r["SecretBinary"], b"\x00\x01secret")   # botocore decoded it
        self.assertNotIn("SecretString", r)

    def test_errors_have_aws_shapes(self):
        self.assertEqual(self.code(SecretId="nope"), "ResourceNotFoundException")
        self.sm.put("cart-service/denied", string="x", denied=True)
        self.assertEqual(self.code(SecretId="cart-service/denied"), "AccessDeniedException")
        self.sm.put("cart-service/gone", string="x", deleted=True)
        self.assertEqual(self.code(SecretId="cart-service/gone"), "InvalidRequestException")
        self.assertEqual(self.code(SecretId="cart-service/plain", VersionStage="AWSPENDING"),
                         "ResourceNotFoundException")
        self.sm.fault("error", secret="cart-service/plain")
        self.assertEqual(self.code(SecretId="cart-service/plain"), "InternalServiceError")
        self.assertEqual(self.sm.stats()["reads"], {})

    def test_bad_signatures_never_reach_the_stand_in(self):
        """A wrong secret key and a scope for another region: the proxy
        refuses both, the stand-in sees nothing."""
        for kw in ({"akid": TEST_AKID, "secret": "wrong"}, {"region": "eu-west-1"}):
            bad = botocore_client(self.stack.secrets_endpoint, service="secretsmanager", **kw)
            try:
                with self.assertRaises(ClientError) as cm:
                    bad.get_secret_value(SecretId="cart-service/plain")
            finally:
                bad.close()
            self.assertEqual(cm.exception.response["Error"]["Code"],
                             "InvalidSignatureException", kw)
        self.assertEqual(self.sm.stats()["calls"], 0)

if __name__ == "__main__":
    unittest.main()
