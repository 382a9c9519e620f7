"""docs/runbook.md names only what exists: every Prometheus metric (and
the label names its selectors use), every EMF metric, every log message
and log field of its queries, checked against a live service.

The service runs with every source of metrics switched on: the DynamoDB
store and the EventBridge publisher (pointed at a closed loopback port,
so their calls fail and their series appear), ECS container credentials
(a loopback endpoint from tests/aws), the rate limiter, and EMF lines
every second."""

import glob
import json
import os
import re
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "aws"))
sys.path.insert(0, os.path.join(ROOT, "tests", "edge"))

import harness  # noqa: E402
from ecs_creds_server import EcsCredentialsServer  # noqa: E402
import jwt_util  # noqa: E402

RUNBOOK = os.path.join(ROOT, "docs", "runbook.md")
METRIC_RE = re.compile(
    r"\b((?:http|dynamodb|eventbridge|circuit|cart|aws|log|process|xray)_[a-z0-9_]+)"
    r"(\{[^}]*\})?")
# Backticked CamelCase words of the runbook that are not our EMF names:
# AWS's own CloudWatch metrics, AWS error codes, an HTTP header.
NOT_EMF = {"ThrottledRequests", "SuccessfulRequestLatency", "MalformedDetail",
           "AccessDeniedException", "ResourceNotFoundException", "ETag"}
# Logs Insights words, functions and the runbook queries' aliases.
INSIGHTS_WORDS = {"fields", "filter", "stats", "sort", "by", "as", "asc", "desc",
                  "and", "or", "not", "limit", "count", "pct", "ispresent"}


def read_runbook():
    with open(RUNBOOK, encoding="utf-8") as f:
        return f.read()


def source_log_keys():
    """JSON members our C code writes into log lines."""
    keys = set()
    for path in glob.glob(os.path.join(ROOT, "app", "*.c")) + \
            glob.glob(os.path.join(ROOT, "adapters", "*", "*.c")):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        keys.update(re.findall(r'\\"([A-Za-z_]+)\\":', text))
        keys.update(re.findall(r'cart_aws_fields_\w+\(&?\w+, "([A-Za-z_]+)"', text))
    return keys


def source_strings():
    text = ""
    for path in glob.glob(os.path.join(ROOT, "app", "*.c")) + \
            glob.glob(os.path.join(ROOT, "adapters", "*", "*.c")):
        with open(path, encoding="utf-8") as f:
            text += f.read()
    return text


def parse_metrics(text):
    """{family: (type, set of label names seen on its samples)}."""
    families = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            families.setdefault(m.group(1), (m.group(2), set()))
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?", line)
        name = m.group(1)
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[:-len(suffix)] in families:
                fam = name[:-len(suffix)]
        if fam in families and m.group(3):
            families[fam][1].update(re.findall(r'(\w+)="', m.group(3)))
    return families


class Server(harness.Server):
    """harness.Server without inherited AWS credentials."""

    def _env(self):
        env = super()._env()
        for k in harness.AWS_CREDENTIAL_VARS:
            if k not in self.env_overrides:
                env.pop(k, None)
        return env


class RunbookTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.ecs = EcsCredentialsServer(auth_token="runbook-token").start()
        closed = "http://127.0.0.1:%d" % harness.free_port()   # nothing listens
        env = {"STORAGE_BACKEND": "dynamodb", "DYNAMODB_ENDPOINT": closed,
               "EVENTS_PUBLISHER": "eventbridge", "EVENTBRIDGE_ENDPOINT": closed,
               "AWS_MAX_ATTEMPTS": "1", "DYNAMODB_CONNECT_TIMEOUT_MS": "200",
               "RATE_LIMIT_RPS": "1000", "METRICS_EMF": "true",
               "METRICS_EMF_INTERVAL_SECONDS": "1"}
        env.update(cls.ecs.env())
        cls.server = Server(env=env).start()
        try:
            for path in ("/v1/cart/runbook-user", "/nope"):
                cls.server.request("GET", path)       # 503 (DynamoDB down), 404
            time.sleep(1.5)                          # one EMF interval
            cls.metrics = cls.server.request("GET", "/metrics").raw.decode()
            cls.server.stop()
            cls.logs = [d for d in cls.server.log_lines() if isinstance(d, dict)]
        finally:
            cls.server.cleanup()
            cls.ecs.stop()
        # The memory store's own series (the relay's pacing), and with
        # authentication on, the verified-token cache's.
        jwks = jwt_util.write_jwks_file(jwt_util.RsaKey("kid-runbook"))
        memory = Server(env={"AUTH_ENABLED": "true", "JWT_JWKS_FILE": jwks,
                             "JWT_ISSUER": jwt_util.ISSUER,
                             "JWT_AUDIENCE": jwt_util.AUDIENCE}).start()
        try:
            cls.metrics += memory.request("GET", "/metrics").raw.decode()
        finally:
            memory.stop()
            memory.cleanup()
            os.unlink(jwks)

    def test_every_metric_exists_with_its_labels(self):
        families = parse_metrics(self.metrics)
        text = read_runbook()
        named = METRIC_RE.findall(text)
        self.assertGreater(len({n for n, _ in named}), 25, "runbook names few metrics?")
        for name, selector in named:
            with self.subTest(metric=name):
                fam = name
                for suffix in ("_bucket", "_sum", "_count"):
                    if name.endswith(suffix) and name[:-len(suffix)] in families:
                        fam = name[:-len(suffix)]
                        self.assertEqual(families[fam][0], "histogram", name)
                self.assertIn(fam, families, "%s is not in a live /metrics:\n%s"
                              % (name, self.metrics))
                used = set(re.findall(r"(\w+)\s*(?:=~|!=|=)", selector or ""))
                if fam == name and name.endswith("_bucket"):
                    used.discard("le")
                seen = families[fam][1] | {"le"}
                self.assertLessEqual(used, seen, "%s%s: labels %s not on its samples"
                                     % (name, selector, used - seen))

    def test_every_emf_metric_exists(self):
        emf = set()
        for d in self.logs:
            aws = d.get("_aws")
            if not aws:
                continue
            for directive in aws["CloudWatchMetrics"]:
                self.assertEqual(directive["Namespace"], "CartService")
                emf.update(m["Name"] for m in directive["Metrics"])
                for dims in directive["Dimensions"]:
                    emf.update(dims)
                    emf.update(d[k] for k in dims)   # values: DynamoDB, ...
                emf.add(directive["Namespace"])
        self.assertIn("ServerErrors", emf, "no EMF lines in the run")
        text = read_runbook()
        names = set(re.findall(r'MetricName="(\w+)"', text))
        names.update(re.findall(r"`([A-Z][a-z]+[A-Za-z]*)`", text))
        names.update(re.findall(r"`Dependency=(\w+)`", text))
        names -= NOT_EMF
        self.assertGreater(len(names), 10, names)
        for name in sorted(names):
            with self.subTest(emf=name):
                self.assertIn(name, emf, "%s is not an EMF metric or dimension" % name)

    def test_log_queries_use_real_messages_and_fields(self):
        text = read_runbook()
        queries = text[text.index("## Log queries"):]
        blocks = re.findall(r"```\n(.*?)```", queries, re.S)
        self.assertGreaterEqual(len(blocks), 8)
        src = source_strings()
        keys = source_log_keys() | {"time", "level", "msg", "request_id", "trace_id"}
        for block in blocks:
            with self.subTest(query=block.splitlines()[0]):
                for msg in re.findall(r'msg = "([^"]+)"', block):
                    self.assertIn('"%s"' % msg, src, "no log line says %r" % msg)
                aliases = set(re.findall(r"\bas (\w+)", block))
                words = re.sub(r'"[^"]*"', " ", block)
                words = re.sub(r"@\w+", " ", words)
                for word in re.findall(r"\b([A-Za-z_][A-Za-z_.]*)\b", words):
                    if word in INSIGHTS_WORDS or word in aliases:
                        continue
                    base, _, sub = word.partition(".")
                    self.assertIn(base, keys, "log field %r is not written" % word)
                    if sub:   # dropped.<level>
                        self.assertIn(sub, ("debug", "info", "warn", "error"), word)

    def test_live_request_line_has_the_queried_fields(self):
        req = [d for d in self.logs if d.get("msg") == "request"]
        self.assertTrue(req, "no request line")
        for field in ("request_id", "trace_id", "route", "status", "duration_ms",
                      "method", "remote"):
            self.assertIn(field, req[0])
        failed = [d for d in self.logs if d.get("msg") == "dynamodb request failed"]
        self.assertTrue(failed, "no DynamoDB failure line")
        for field in ("op", "outcome", "error"):
            self.assertIn(field, failed[0])


if __name__ == "__main__":
    unittest.main()
