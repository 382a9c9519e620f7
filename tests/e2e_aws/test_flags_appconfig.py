"""Feature flags from AWS AppConfig: the service against the AppConfig data
stand-in (tests/aws/appconfig_server.py) behind the SigV4-checking proxy.
Flags at start, a change picked up while running, "no change" answers on
one session's chained tokens, a refused document, AppConfig down at start,
and an env pin over AppConfig.  (The memory store: what is tested here is
the flags' source, not the cart store.)"""

import json
import time
import unittest

from awsbase import Server
import harness
from harness import new_user
from test_metrics import MetricsMixin, value
from test_flags import ITEM, flag
from stack import AwsStack
from appconfig_server import DEFAULT_TARGET

APP, ENV, PROFILE = DEFAULT_TARGET


class AppConfigFlagsBase(MetricsMixin, harness.ServerTestCase):
    server_env = {}
    initial = "{}"
    faults = ()

    @classmethod
    def setUpClass(cls):
        unittest.TestCase.setUpClass()
        cls.stack = AwsStack(dynamodb=False, appconfig=True).start()
        try:
            cls.deploy(cls.initial)
            cls.control("POST", "poll_interval", {"seconds": 1})
            for kind, count in cls.faults:
                cls.control("POST", "fault", {"kind": kind, "count": count})
            senv = cls.stack.env(base={})
            env = {k: senv[k] for k in ("AWS_REGION", "AWS_ACCESS_KEY_ID",
                                        "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED",
                                        "FEATURE_FLAGS_APPCONFIG_ENDPOINT")}
            env.update({"FEATURE_FLAGS_APPCONFIG_APPLICATION": APP,
                        "FEATURE_FLAGS_APPCONFIG_ENVIRONMENT": ENV,
                        "FEATURE_FLAGS_APPCONFIG_PROFILE": PROFILE,
                        "FEATURE_FLAGS_APPCONFIG_MIN_POLL_SECONDS": "1",
                        "AWS_MAX_ATTEMPTS": "1", "RATE_LIMIT_RPS": "0"})
            env.update(cls.server_env)
            cls.server = Server(env=env).start()
        except BaseException:
            cls.stack.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.stack.stop()

    @classmethod
    def control(cls, method, path, body=None):
        return cls.stack.control(method, path, body, base=cls.stack.appconfig_control)

    @classmethod
    def deploy(cls, content):
        cls.control("POST", "configuration", {"application": APP, "environment": ENV,
                                              "profile": PROFILE, "content": content})

    def wait_flag(self, name, want, timeout=6):
        deadline = time.monotonic() + timeout
        while True:
            got = flag(self.metrics(), name)
            if got == want:
                return
            self.assertLess(time.monotonic(), deadline, "%s: %r, want %r\n%s"
                            % (name, got, want, self.server.logs()))
            time.sleep(0.1)


class AppConfigFlagsTest(AppConfigFlagsBase):
    initial = json.dumps({"require_if_match": True,
                          "idempotency_required": {"enabled": False, "note": "x"}})

    def test_flags_at_start_then_a_change_while_running(self):
        user = new_user()
        # the first poll ran before the first request was served
        self.assertProblem(self.add(user), 428, "cart.if_match_required")
        s = self.metrics()
        self.assertEqual(flag(s, "require_if_match"), (1, "appconfig"))
        self.assertEqual(flag(s, "idempotency_required"), (0, "appconfig"))
        self.assertEqual(flag(s, "events"), (1, "default"))
        # polls every second: "no change" answers meanwhile
        deadline = time.monotonic() + 5
        while self.control("GET", "stats")["unchanged"] < 2:
            self.assertLess(time.monotonic(), deadline, self.server.logs())
            time.sleep(0.1)
        self.deploy('{"require_if_match": false}')
        self.wait_flag("require_if_match", (0, "appconfig"))
        self.assertEqual(self.add(user).status, 201)
        st = self.control("GET", "stats")
        self.assertEqual(len(st["sessions"]), 1, st)          # one session, chained tokens
        self.assertEqual(st["sessions"][0]["interval"], 15)   # AppConfig's minimum
        self.assertEqual(st["changed"], 2, st)
        self.assertEqual(st["rejected"], {}, st)
        s = self.metrics()
        self.assertEqual(value(s, "cart_feature_flags_reloads_total", source="appconfig",
                               outcome="applied"), 2)
        self.assertGreaterEqual(value(s, "cart_feature_flags_reloads_total",
                                      source="appconfig", outcome="no_change"), 2)
        # every call signature-checked on the way in
        proxy = self.stack.control("GET", "stats", base=self.stack.appconfig_endpoint)
        self.assertEqual(proxy["rejected"], {}, proxy)

        # a refused document: the last good flags stay, one warn, counted
        self.deploy('{"require_if_match": true, "unknown_flag": true}')
        deadline = time.monotonic() + 5
        while value(self.metrics(), "cart_feature_flags_reloads_total", source="appconfig",
                    outcome="invalid") < 1:
            self.assertLess(time.monotonic(), deadline, self.server.logs())
            time.sleep(0.1)
        self.assertEqual(flag(self.metrics(), "require_if_match"), (0, "appconfig"))
        warn = self.server.wait_log(lambda d: d.get("level") == "warn" and
                                    "AppConfig" in d.get("msg", ""))
        self.assertIn("unknown_flag", warn["reason"])


class AppConfigDownAtStartTest(AppConfigFlagsBase):
    """AppConfig fails the first polls: the service starts on the other
    sources, warns once, counts each failure, and takes AppConfig's flags
    when it answers; an env pin stays over AppConfig throughout."""
    initial = '{"events": false, "require_if_match": true}'
    faults = (("error500", 2),)
    server_env = {"FEATURE_REQUIRE_IF_MATCH": "off"}

    def test_started_without_appconfig_then_took_its_flags(self):
        self.wait_flag("events", (0, "appconfig"))
        s = self.metrics()
        self.assertGreaterEqual(value(s, "cart_feature_flags_reloads_total",
                                      source="appconfig", outcome="error"), 2)
        self.assertEqual(flag(s, "require_if_match"), (0, "env"))
        self.assertEqual(self.add(new_user()).status, 201)    # the pin: no If-Match needed
        warns = [d for d in self.server.log_lines() if isinstance(d, dict) and
                 d.get("msg", "").startswith("feature flags: AppConfig poll failed")]
        self.assertEqual(len(warns), 1, warns)
        self.assertIn("InternalServerException", warns[0]["reason"])
        r = self.request("GET", "/ready")
        events = [c for c in r.body["checks"] if c["name"] == "events"][0]
        self.assertEqual(events.get("publishing"), "held", r.body)


if __name__ == "__main__":
    unittest.main()
