"""The AppConfig data stand-in (appconfig_server.py) behind the SigV4 proxy
(service "appconfig"), driven by botocore's own `appconfigdata` client.

    /usr/bin/python3 -m unittest tests/aws/test_appconfig_server.py
"""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from botocore.exceptions import ClientError  # noqa: E402

from appconfig_server import DEFAULT_TARGET  # noqa: E402
from stack import AwsStack, REGION, TEST_AKID, TEST_SECRET, botocore_client  # noqa: E402

APP, ENV, PROFILE = DEFAULT_TARGET


class AppConfigStandInTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.stack = AwsStack(dynamodb=False, appconfig=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def setUp(self):
        self.stack.control("POST", "reset", base=self.stack.appconfig_control)
        self.stack.control("POST", "reset", base=self.stack.appconfig_endpoint)
        self.stack.control("POST", "poll_interval", {"seconds": None},
                           base=self.stack.appconfig_control)

    def client(self, **kw):
        c = botocore_client(self.stack.appconfig_endpoint, service="appconfigdata",
                            region=REGION, **kw)
        self.addCleanup(c.close)
        return c

    def deploy(self, content):
        self.stack.control("POST", "configuration",
                           {"application": APP, "environment": ENV, "profile": PROFILE,
                            "content": content}, base=self.stack.appconfig_control)

    def session(self, c, interval=15):
        return c.start_configuration_session(
            ApplicationIdentifier=APP, EnvironmentIdentifier=ENV,
            ConfigurationProfileIdentifier=PROFILE,
            RequiredMinimumPollIntervalInSeconds=interval)["InitialConfigurationToken"]

    def test_session_then_change_then_no_change(self):
        c = self.client()
        self.deploy('{"events": false}')
        tok = self.session(c, 30)
        r = c.get_latest_configuration(ConfigurationToken=tok)
        self.assertEqual(json.loads(r["Configuration"].read()), {"events": False})
        self.assertEqual(r["NextPollIntervalInSeconds"], 30)
        self.assertEqual(r["ContentType"], "application/json")
        r2 = c.get_latest_configuration(ConfigurationToken=r["NextPollConfigurationToken"])
        self.assertEqual(r2["Configuration"].read(), b"")     # no change
        self.deploy('{"events": true}')
        r3 = c.get_latest_configuration(ConfigurationToken=r2["NextPollConfigurationToken"])
        self.assertEqual(json.loads(r3["Configuration"].read()), {"events": True})
        st = self.stack.control("GET", "stats", base=self.stack.appconfig_control)
        self.assertEqual((st["polls"], st["changed"], st["unchanged"]), (3, 2, 1))
        self.assertEqual(st["sessions"], [{"application": APP, "environment": ENV,
                                           "profile": PROFILE, "interval": 30}])
        # the proxy saw (and verified) both operations
        targets = self.stack.control("GET", "stats", base=self.stack.appconfig_endpoint)["targets"]
        self.assertEqual(targets, {"POST /configurationsessions": 1, "GET /configuration": 3})

    def test_a_token_is_good_for_one_call(self):
        c = self.client()
        tok = self.session(c)
        c.get_latest_configuration(ConfigurationToken=tok)
        with self.assertRaises(ClientError) as cm:
            c.get_latest_configuration(ConfigurationToken=tok)
        self.assertEqual(cm.exception.response["Error"]["Code"], "BadRequestException")

    def test_refusals(self):
        import botocore.session
        from botocore.config import Config
        # botocore itself refuses 14 and 86401: a client that does not check
        c = botocore.session.get_session().create_client(
            "appconfigdata", region_name=REGION, endpoint_url=self.stack.appconfig_endpoint,
            aws_access_key_id=TEST_AKID, aws_secret_access_key=TEST_SECRET,
            config=Config(parameter_validation=False, retries={"total_max_attempts": 1}))
        self.addCleanup(c.close)
        for interval in (14, 86401):
            with self.assertRaises(ClientError) as cm:
                self.session(c, interval)
            self.assertEqual(cm.exception.response["Error"]["Code"], "BadRequestException")
        with self.assertRaises(ClientError) as cm:
            c.start_configuration_session(ApplicationIdentifier="nope",
                                          EnvironmentIdentifier=ENV,
                                          ConfigurationProfileIdentifier=PROFILE)
        self.assertEqual(cm.exception.response["Error"]["Code"], "ResourceNotFoundException")
        c = self.client()
        self.stack.control("POST", "fault", {"kind": "throttle"},
                           base=self.stack.appconfig_control)
        with self.assertRaises(ClientError) as cm:
            self.session(c)
        self.assertEqual(cm.exception.response["Error"]["Code"], "ThrottlingException")

    def test_signatures_are_checked_by_the_proxy(self):
        c = self.client(secret="wrong-secret")
        with self.assertRaises(ClientError) as cm:
            self.session(c)
        self.assertEqual(cm.exception.response["Error"]["Code"], "InvalidSignatureException")
        # an events-scoped signature is refused too
        ev = botocore_client(self.stack.appconfig_endpoint, service="events", region=REGION)
        self.addCleanup(ev.close)
        with self.assertRaises(ClientError):
            ev.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])
        st = self.stack.control("GET", "stats", base=self.stack.appconfig_control)
        self.assertEqual(st["sessions"], [])   # nothing reached the stand-in


if __name__ == "__main__":
    unittest.main()
