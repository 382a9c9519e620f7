"""make run-aws (tools/run-aws.sh), as a developer uses it: one command
brings up dynalite, the EventBridge stand-in and Redis behind the
service; a cart written over HTTP lands in DynamoDB and its event reaches
the bus; Ctrl-C (SIGINT to the whole process group, as a terminal sends
it) stops everything, leaving no process behind."""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import harness  # noqa: E402

SCRIPT = os.path.join(ROOT, "tools", "run-aws.sh")


def request(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, json.dumps(body) if body is not None else None, headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


class RunAwsTest(unittest.TestCase):

    def test_stack_serves_and_ctrl_c_stops_everything(self):
        port = harness.free_port()
        env = {k: v for k, v in os.environ.items()
               if k not in harness.ALL_VARS and k not in harness.AWS_CREDENTIAL_VARS}
        env.update({"APP_PORT": str(port), "LISTEN_ADDR": "127.0.0.1",
                    "RUN_AWS_REDIS": "1", "LOG_LEVEL": "info"})
        out = tempfile.TemporaryFile()
        err = tempfile.TemporaryFile()
        p = subprocess.Popen([SCRIPT], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err, start_new_session=True)
        pgid = p.pid
        try:
            t0 = time.monotonic()
            self._exercise(p, port, err)
            t1 = time.monotonic()
            os.killpg(pgid, signal.SIGINT)                 # Ctrl-C
            rc = p.wait(20)
            deadline = time.monotonic() + 5
            while group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertFalse(group_alive(pgid), "processes left after Ctrl-C")
            sys.stderr.write("run-aws: up and used in %.1f s, stopped in %.1f s\n"
                             % (t1 - t0, time.monotonic() - t1))
            self.assertIn(rc, (0, 130), self._logs(out, err))
            out.seek(0)
            lines = [json.loads(l) for l in out.read().decode().splitlines()
                     if l.startswith("{")]
            start = [d for d in lines if d.get("msg") == "starting cart-service"][0]
            cfg = start["config"]
            self.assertEqual(cfg["STORAGE_BACKEND"], "dynamodb")
            self.assertEqual(cfg["EVENTS_PUBLISHER"], "eventbridge")
            self.assertEqual(cfg["RATE_LIMIT_STORE"], "redis")
            self.assertEqual([d for d in lines if d.get("msg") == "stopped"][-1]["level"],
                             "info", self._logs(out, err))
        finally:
            if group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
                p.wait(5)

    def _exercise(self, p, port, err):
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            self.assertIsNone(p.poll(), "run-aws exited: %s" % self._logs(None, err))
            self.assertLess(time.monotonic(), deadline, "no /health within 30 s")
            time.sleep(0.1)
        status, body = request(port, "POST", "/v1/cart/run-aws-user/items",
                               {"itemId": "sku-1", "quantity": 2,
                                "unitPrice": {"amount": 150, "currency": "EUR"}})
        self.assertEqual(status, 201, body)
        status, body = request(port, "GET", "/v1/cart/run-aws-user")
        self.assertEqual(json.loads(body)["items"][0]["quantity"], 2)
        status, body = request(port, "GET", "/ready")
        ready = json.loads(body)
        repo = [c for c in ready["checks"] if c["name"] == "repository"][0]
        self.assertEqual(repo.get("backend"), "dynamodb", ready)
        # the event went through the SigV4 proxy to the PutEvents stand-in
        deadline = time.monotonic() + 10
        while True:
            metrics = request(port, "GET", "/metrics")[1].decode()
            m = re.search(r'eventbridge_requests_total\{operation="PutEvents",'
                          r'outcome="success"\} (\d+)', metrics)
            if m and int(m.group(1)) >= 1:
                break
            self.assertLess(time.monotonic(), deadline, metrics)
            time.sleep(0.1)

    @staticmethod
    def _logs(out, err):
        text = ""
        for f in (out, err):
            if f is not None:
                f.seek(0)
                text += f.read().decode(errors="replace")[-3000:]
        return text


if __name__ == "__main__":
    unittest.main()
