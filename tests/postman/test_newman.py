"""docs/postman.json, run by newman against the real service.

newman is pinned in tests/postman/package-lock.json (tools/bootstrap.sh runs
`npm ci` here when it is missing).  Each run starts bin/cart-service on a
free loopback port (tests/e2e/harness.py), runs the whole collection with
`--env-var baseUrl=http://127.0.0.1:<port>` and `--bail`, and stops the
server by PID (it must exit 0):

  - auth off, rate limiter off (`rateLimited=false`);
  - auth on: a JWKS file with a key made now, a token whose sub is the
    run's userId, the rate limiter at its default (100/s);
  - a server that breaks the collection's expectations
    (MAX_ITEM_QUANTITY=2, so the merged add is refused): newman must exit
    non-zero and stop (--bail) at that request.

And without a server: every method of every path in docs/swagger.yaml has
a request, every URL starts with {{baseUrl}}, and every request asserts
something of its own (`pm.test`) besides the collection-wide checks.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import uuid

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(os.path.dirname(_HERE), "e2e"),
                os.path.join(os.path.dirname(_HERE), "edge")]
import harness  # noqa: E402
import jwt_util  # noqa: E402

COLLECTION = os.path.join(harness.REPO_ROOT, "docs", "postman.json")
SWAGGER = os.path.join(harness.REPO_ROOT, "docs", "swagger.yaml")
NEWMAN = os.path.join(_HERE, "node_modules", "newman", "bin", "newman.js")
NEWMAN_TIMEOUT = 90      # seconds for one whole run (it takes ~3 s)
COMMON = "[common]"      # names of the collection-level assertions


def load_collection():
    with open(COLLECTION) as f:
        return json.load(f)


def requests_of(node, trail=()):
    """(folder/name, item) of every request, in run order."""
    for it in node.get("item", []):
        name = trail + (it["name"],)
        if "request" in it:
            yield "/".join(name), it
        else:
            yield from requests_of(it, name)


def route_of(segments):
    """The docs/swagger.yaml path a request's URL segments address."""
    if segments[:2] == ["v1", "cart"] and 3 <= len(segments) <= 5:
        tmpl = ["v1", "cart", "{userID}", "items", "{itemID}"]
        return "/" + "/".join(tmpl[:len(segments)])
    return "/" + "/".join(segments)


def swagger_operations():
    """{(METHOD, path)} of docs/swagger.yaml's paths section."""
    with open(SWAGGER) as f:
        text = f.read()
    paths = text[text.index("\npaths:\n"):text.index("\ncomponents:\n")]
    ops, path = set(), None
    for line in paths.splitlines():
        m = re.match(r"^  (/\S*):$", line)
        if m:
            path = m.group(1)
        m = re.match(r"^    (get|head|post|put|patch|delete|options):$", line)
        if m and path:
            ops.add((m.group(1).upper(), path))
    return ops


class CollectionShape(unittest.TestCase):
    """The collection itself, without a server."""

    def test_covers_every_operation_of_the_spec(self):
        spec = swagger_operations()
        self.assertGreaterEqual(len(spec), 15, spec)   # the parse found them
        have = {(it["request"]["method"], route_of(it["request"]["url"]["path"]))
                for _, it in requests_of(load_collection())}
        self.assertEqual(spec - have, set(), "operations without a request")

    def test_base_url_variable_and_own_assertions(self):
        c = load_collection()
        self.assertEqual(c["info"]["schema"],
                         "https://schema.getpostman.com/json/collection/v2.1.0/collection.json")
        variables = {v["key"]: v["value"] for v in c["variable"]}
        self.assertEqual(variables.get("baseUrl"), "http://127.0.0.1:8080")
        for name, it in requests_of(c):
            self.assertTrue(it["request"]["url"]["raw"].startswith("{{baseUrl}}/"), name)
            tests = [line for ev in it.get("event", []) if ev["listen"] == "test"
                     for line in ev["script"]["exec"]]
            own = [line for line in tests if "pm.test(" in line and COMMON not in line]
            self.assertTrue(own, "%s has no pm.test of its own" % name)


class NewmanRuns(unittest.TestCase):
    """The collection against the started service."""

    @classmethod
    def setUpClass(cls):
        if not os.path.isfile(NEWMAN):
            raise AssertionError("%s is missing: run tools/bootstrap.sh "
                                 "(npm ci in tests/postman)" % NEWMAN)
        cls.items = [name for name, _ in requests_of(load_collection())]

    def start(self, env):
        server = harness.Server(env=env)
        server.start()
        self.addCleanup(server.cleanup)
        self.addCleanup(server.stop)
        return server

    def newman(self, server, **env_vars):
        """Runs the collection; (exit code, cli output, json report)."""
        fd, report = tempfile.mkstemp(prefix="newman-", suffix=".json")
        os.close(fd)
        self.addCleanup(os.unlink, report)
        cmd = ["node", NEWMAN, "run", COLLECTION,
               "--env-var", "baseUrl=http://127.0.0.1:%d" % server.port,
               "--bail", "--color", "off", "--disable-unicode",
               "--timeout-request", "5000",
               "--reporters", "cli,json", "--reporter-json-export", report]
        for k, v in env_vars.items():
            cmd += ["--env-var", "%s=%s" % (k, v)]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=NEWMAN_TIMEOUT, cwd=harness.REPO_ROOT)
        out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
        with open(report) as f:
            summary = json.load(f)["run"] if os.path.getsize(report) else None
        return p.returncode, out, summary

    @staticmethod
    def assertions(summary):
        """{request name: [assertion names]} of the run."""
        out = {}
        for ex in summary["executions"]:
            names = [a["assertion"] for a in ex.get("assertions", [])]
            out.setdefault(ex["item"]["name"], []).extend(names)
        return out

    def assertGreen(self, server, rc, out, summary):
        msg = "newman exit %s\n%s\n%s" % (rc, out[-8000:], server.logs())
        self.assertEqual(rc, 0, msg)
        self.assertEqual(summary["failures"], [], msg)
        self.assertEqual(summary["stats"]["assertions"]["failed"], 0, msg)
        got = self.assertions(summary)
        # Every request ran, each with assertions of its own.
        self.assertEqual(len(summary["executions"]), len(self.items), msg)
        for name in (n.split("/")[-1] for n in self.items):
            self.assertTrue([a for a in got.get(name, []) if not a.startswith(COMMON)],
                            "%s: no assertion of its own ran\n%s" % (name, msg))
        print("newman: %d requests, %d assertions, 0 failed"
              % (len(summary["executions"]), summary["stats"]["assertions"]["total"]),
              file=sys.stderr)
        return got

    def test_auth_off(self):
        server = self.start({"AUTH_ENABLED": "false", "RATE_LIMIT_RPS": "0"})
        got = self.assertGreen(server, *self.newman(server, rateLimited="false"))
        self.assertIn("200: authentication is off (no token variable)",
                      got["Read without a token"])

    def test_auth_on(self):
        key = jwt_util.RsaKey("pm-key")
        jwks = jwt_util.write_jwks_file(key)
        self.addCleanup(os.unlink, jwks)
        server = self.start({"AUTH_ENABLED": "true", "JWT_JWKS_FILE": jwks,
                             "JWT_ISSUER": jwt_util.ISSUER,
                             "JWT_AUDIENCE": jwt_util.AUDIENCE,
                             "RATE_LIMIT_RPS": "100"})
        user = harness.new_user("pm-auth")
        token = jwt_util.sign(jwt_util.claims(user), key)
        got = self.assertGreen(server, *self.newman(server, token=token, userId=user))
        self.assertIn("401 cart.unauthorized with a Bearer challenge",
                      got["Read without a token"])
        self.assertIn("404 cart.not_found: not the token's cart",
                      got["Read another user's cart"])
        # The run's writes landed in the token's user's cart.
        r = server.request("GET", "/v1/cart/" + user, headers=jwt_util.bearer(token))
        self.assertEqual(r.status, 200, r)
        self.assertEqual([i["itemId"] for i in r.body["items"]], ["sku-1"], r)

    def test_a_broken_expectation_fails_the_run(self):
        # The merged add (2 + 1) is over this server's limit: 422, not 200.
        server = self.start({"AUTH_ENABLED": "false", "MAX_ITEM_QUANTITY": "2"})
        rc, out, summary = self.newman(server, rateLimited="false",
                                       userId=harness.new_user("pm-bad"))
        self.assertNotEqual(rc, 0, out)
        failed = {f["source"]["name"] for f in summary["failures"]}
        self.assertEqual(failed, {"Add the same item again (merged) -> 200"}, out)
        # --bail: nothing ran after it.
        self.assertEqual(summary["executions"][-1]["item"]["name"],
                         "Add the same item again (merged) -> 200", out)
        self.assertLess(len(summary["executions"]), len(self.items))


if __name__ == "__main__":
    unittest.main()
