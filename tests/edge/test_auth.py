"""JWT bearer authentication and per-user authorization, end to end.

Keys are generated at test time (jwt_util); the JWKS comes from a file
(JWT_JWKS_FILE) or from a loopback HTTP server laid out like Amazon
Cognito's (JWT_JWKS_URL) that counts the fetches.

What the contract says and these tests check:
  - AUTH_ENABLED and the JWT_* variables: defaults, exit 2 on bad ones;
  - every /v1 route needs `Authorization: Bearer <JWT>`; /health, /ready
    and OPTIONS do not;
  - a missing token: 401 cart.unauthorized, `WWW-Authenticate: Bearer
    realm="cart-service"`; a bad one: 401 cart.invalid_token with
    error="invalid_token" and the reason as "auth_failure" in the request's
    log line; nothing is stored either way;
  - sub must equal {userID} (otherwise 404 cart.not_found and nothing
    changes) unless the token carries the admin scope or group;
  - keys the token names (jku, x5u, x5c, jwk) are never fetched or used;
  - key rotation through the JWKS URL, refetches rate-limited;
  - Cognito access tokens (client_id instead of aud).
"""

import concurrent.futures
import json
import os
import subprocess
import sys
import time
import unittest
import uuid

# The edge suites share the end-to-end harness (tests/e2e/harness.py).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(os.path.dirname(_HERE), "e2e")]
import harness  # noqa: E402
import jwt_util  # noqa: E402
from harness import new_user  # noqa: E402
from jwt_util import AUDIENCE, CLIENT_ID, ISSUER, bearer, claims, sign  # noqa: E402

REALM = 'Bearer realm="cart-service"'
INVALID = 'Bearer realm="cart-service", error="invalid_token"'
# Variables of the auth and rate-limit features: never inherited.
FEATURE_VARS = ("AUTH_ENABLED", "JWT_JWKS_FILE", "JWT_JWKS_URL", "JWT_ISSUER",
                "JWT_AUDIENCE", "JWT_CLIENT_ID", "JWT_ALGORITHMS",
                "JWT_LEEWAY_SECONDS", "JWT_JWKS_MIN_REFRESH_SECONDS",
                "JWT_ADMIN_SCOPE", "JWT_CACHE_ENTRIES", "RATE_LIMIT_RPS", "RATE_LIMIT_BURST",
                "RATE_LIMIT_STORE", "REDIS_URL", "RATE_LIMIT_ON_STORE_FAILURE",
                "TRUSTED_PROXIES")
ITEM = {"itemId": "sku-1", "quantity": 1,
        "unitPrice": {"amount": 1999, "currency": "EUR"}}


def item(iid="sku-1", q=1, amount=1999):
    return {"itemId": iid, "quantity": q,
            "unitPrice": {"amount": amount, "currency": "EUR"}}


def run_binary(env_overrides, timeout=5):
    """Runs the binary to completion (for start-up failures)."""
    env = dict(os.environ)
    for k in set(harness.ALL_VARS) | set(FEATURE_VARS):
        env.pop(k, None)
    env.update({"LISTEN_ADDR": "127.0.0.1",
                "APP_PORT": str(harness.free_port())})
    env.update(env_overrides)
    try:
        return subprocess.run([harness.binary_path()], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, cwd=harness.REPO_ROOT)
    except subprocess.TimeoutExpired as e:   # it started: that is a failure
        raise AssertionError("cart-service kept running with %r\n%s" %
                             (env_overrides, (e.stdout or b"")[-2000:]))


def auth_env(jwks_file=None, jwks_url=None, **extra):
    env = {"AUTH_ENABLED": "true", "JWT_ISSUER": ISSUER,
           "JWT_AUDIENCE": AUDIENCE, "RATE_LIMIT_RPS": "0"}
    if jwks_file:
        env["JWT_JWKS_FILE"] = jwks_file
    if jwks_url:
        env["JWT_JWKS_URL"] = jwks_url
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


class AuthAssertions:
    """Mixed into ServerTestCase subclasses."""

    def req(self, method, path, token=None, body=None, headers=None, rid=None):
        h = dict(headers or {})
        if token is not None:
            h.update(bearer(token))
        if rid is not None:
            h["X-Request-Id"] = rid
        return self.request(method, path, body, headers=h)

    def log_for(self, rid):
        rec = self.server.wait_log(lambda d: d.get("request_id") == rid and
                                   d.get("msg") == "request")
        self.assertIsNotNone(rec, "no request log line with request_id %s\n%s"
                             % (rid, self.server.logs()))
        return rec

    def assertUnauthorized(self, r, rid=None):
        self.assertProblem(r, 401, "cart.unauthorized")
        self.assertEqual(r.header("www-authenticate"), REALM, r.headers)

    def assertInvalidToken(self, r, reasons=None, rid=None):
        self.assertProblem(r, 401, "cart.invalid_token")
        www = r.header("www-authenticate", "")
        self.assertTrue(www == INVALID or www.startswith(INVALID + ", "),
                        "WWW-Authenticate %r, want %r[, error_description=...]"
                        % (www, INVALID))
        if rid is not None and reasons is not None:
            rec = self.log_for(rid)
            self.assertIn(rec.get("auth_failure"), reasons,
                          "log line %r: auth_failure want one of %s"
                          % (rec, sorted(reasons)))
            self.assertEqual(rec.get("status"), 401, rec)

    def admin_cart(self, user):
        r = self.req("GET", "/v1/cart/" + user, self.admin_token())
        self.assertEqual(r.status, 200, r)
        return r.body

    def assertNothingStored(self, user):
        c = self.admin_cart(user)
        self.assertEqual((c["version"], c["items"]), (0, []), c)


# -- configuration -------------------------------------------------------

class AuthConfigTest(unittest.TestCase):
    """AUTH_ENABLED defaults per ENV_NAME, and bad JWT_* values stop the
    start with exit 2 and one line on stderr naming the variable."""

    @classmethod
    def setUpClass(cls):
        cls.key = jwt_util.RsaKey("cfg-rsa")
        cls.jwks = jwt_util.write_jwks_file(cls.key)

    @classmethod
    def tearDownClass(cls):
        os.unlink(cls.jwks)

    def assertExit2Naming(self, env, names):
        p = run_binary(env)
        err = p.stderr.decode("utf-8", "replace")
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 2, "%r: exit %s\nstderr:\n%s\nstdout:\n%s"
                         % (env, p.returncode, err, out[-2000:]))
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "%r: want one line on stderr:\n%s"
                         % (env, err))
        for n in names:
            self.assertIn(n, lines[0], "%r: the line does not name %s" %
                          (env, n))

    def test_prod_and_staging_without_jwks_refuse_to_start(self):
        for env_name in ("prod", "staging"):
            with self.subTest(env_name=env_name):
                self.assertExit2Naming(
                    {"ENV_NAME": env_name, "STORAGE_BACKEND": "memory",
                     "EVENTS_PUBLISHER": "log", "RATE_LIMIT_RPS": "0"},
                    ("AUTH_ENABLED", "JWT_JWKS"))

    def test_prod_with_auth_disabled_starts_and_warns(self):
        srv = harness.Server(env={"ENV_NAME": "prod", "STORAGE_BACKEND": "memory",
                                  "EVENTS_PUBLISHER": "log",
                                  "AUTH_ENABLED": "false",
                                  "RATE_LIMIT_RPS": "0"})
        self.addCleanup(srv.cleanup)
        srv.start()
        try:
            r = srv.request("GET", "/v1/cart/" + new_user())
            self.assertEqual(r.status, 200, r)
            warn = srv.wait_log(lambda d: d.get("level") in ("warn", "warning")
                                and "auth" in json.dumps(d).lower())
        finally:
            srv.stop()
        self.assertIsNotNone(warn, "no warn line about auth being off:\n%s"
                             % srv.logs())

    def test_dev_and_test_default_to_auth_off(self):
        for env_name in ("dev", "test"):
            with self.subTest(env_name=env_name):
                srv = harness.Server(env={"ENV_NAME": env_name,
                                          "RATE_LIMIT_RPS": "0"})
                self.addCleanup(srv.cleanup)
                srv.start()
                try:
                    r = srv.request("GET", "/v1/cart/" + new_user())
                finally:
                    srv.stop()
                self.assertEqual(r.status, 200, r)

    def test_prod_with_jwks_starts_with_auth_on(self):
        env = auth_env(self.jwks, ENV_NAME="prod", STORAGE_BACKEND="memory",
                       EVENTS_PUBLISHER="log")
        del env["AUTH_ENABLED"]     # on by default in prod
        srv = harness.Server(env=env)
        self.addCleanup(srv.cleanup)
        srv.start()
        try:
            u = new_user()
            r1 = srv.request("GET", "/v1/cart/" + u)
            r2 = srv.request("GET", "/v1/cart/" + u,
                             headers=bearer(sign(claims(u), self.key)))
        finally:
            srv.stop()
        self.assertEqual(r1.status, 401, r1)
        self.assertEqual(r2.status, 200, r2)

    def test_invalid_combinations_exit_2_naming_the_variable(self):
        base = auth_env(self.jwks)
        url = "http://127.0.0.1:9/x/.well-known/jwks.json"
        cases = (
            ({"JWT_JWKS_URL": url}, ("JWT_JWKS",)),              # both
            ({"JWT_JWKS_FILE": None}, ("JWT_JWKS",)),            # neither
            ({"JWT_ISSUER": None}, ("JWT_ISSUER",)),
            ({"JWT_AUDIENCE": None}, ()),                        # named below
            ({"JWT_ALGORITHMS": "HS256"}, ("JWT_ALGORITHMS",)),
            ({"JWT_ALGORITHMS": "none"}, ("JWT_ALGORITHMS",)),
            ({"JWT_ALGORITHMS": "RS256,none"}, ("JWT_ALGORITHMS",)),
            ({"JWT_ALGORITHMS": "PS256"}, ("JWT_ALGORITHMS",)),
            ({"JWT_LEEWAY_SECONDS": "61"}, ("JWT_LEEWAY_SECONDS",)),
            ({"JWT_LEEWAY_SECONDS": "-1"}, ("JWT_LEEWAY_SECONDS",)),
            ({"JWT_LEEWAY_SECONDS": "abc"}, ("JWT_LEEWAY_SECONDS",)),
            ({"JWT_CACHE_ENTRIES": "-1"}, ("JWT_CACHE_ENTRIES",)),
            ({"JWT_CACHE_ENTRIES": "1048577"}, ("JWT_CACHE_ENTRIES",)),
            ({"JWT_CACHE_ENTRIES": "many"}, ("JWT_CACHE_ENTRIES",)),
            ({"JWT_JWKS_MIN_REFRESH_SECONDS": "-1"},
             ("JWT_JWKS_MIN_REFRESH_SECONDS",)),
            ({"JWT_JWKS_MIN_REFRESH_SECONDS": "soon"},
             ("JWT_JWKS_MIN_REFRESH_SECONDS",)),
            ({"AUTH_ENABLED": "maybe"}, ("AUTH_ENABLED",)),
        )
        for delta, names in cases:
            env = dict(base)
            for k, v in delta.items():
                if v is None:
                    env.pop(k, None)
                else:
                    env[k] = v
            with self.subTest(delta=delta):
                if names:
                    self.assertExit2Naming(env, names)
                else:   # no audience and no client id: either name will do
                    p = run_binary(env)
                    err = p.stderr.decode("utf-8", "replace")
                    lines = [l for l in err.splitlines() if l.strip()]
                    self.assertEqual(p.returncode, 2, err)
                    self.assertEqual(len(lines), 1, err)
                    self.assertTrue("JWT_AUDIENCE" in lines[0] or
                                    "JWT_CLIENT_ID" in lines[0], err)

    def test_jwks_url_must_be_https_or_loopback(self):
        # plain http to a host that is not loopback is refused at start
        # (192.0.2.1 is TEST-NET-1: a fetch would hang, not succeed)
        for url in ("http://192.0.2.1/pool/.well-known/jwks.json",
                    "ftp://127.0.0.1/jwks.json"):
            with self.subTest(url=url):
                self.assertExit2Naming(auth_env(jwks_url=url),
                                       ("JWT_JWKS_URL",))

    def test_unusable_jwks_file_stops_the_start(self):
        # Not in the contract's exit-2 list (the file exists as a setting
        # but its content fails at load): any non-zero exit, nothing served.
        missing = self.jwks + ".missing"
        bad = self.jwks + ".bad"
        with open(bad, "w") as f:
            f.write('{"keys": []}')
        self.addCleanup(os.unlink, bad)
        for path in (missing, bad):
            with self.subTest(path=path):
                p = run_binary(auth_env(path))
                self.assertNotEqual(p.returncode, 0, p)


# -- the file-backed verifier: every refusal ---------------------------------

class AuthTest(AuthAssertions, harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.rsa = jwt_util.RsaKey("rsa-a")
        cls.ec = jwt_util.EcKey("ec-1")
        cls.rogue = jwt_util.RsaKey("rsa-rogue")        # not in the JWKS
        cls.jwks = jwt_util.write_jwks_file(cls.rsa, cls.ec)
        # the server a jku/x5u header points at: must never be contacted
        cls.attacker = jwt_util.JwksServer(cls.rogue, path="/jwks.json").start()
        cls.server_env = auth_env(cls.jwks)
        try:
            super().setUpClass()
        except BaseException:
            cls.attacker.stop()
            os.unlink(cls.jwks)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.attacker.stop()
            os.unlink(cls.jwks)

    def token(self, sub, key=None, **extra):
        return sign(claims(sub, **extra), key or self.rsa)

    def admin_token(self):
        return self.token("admin-" + uuid.uuid4().hex[:8],
                          scope="openid cart:admin")

    def rid(self):
        return "auth-" + uuid.uuid4().hex

    # -- what stays open ----------------------------------------------------

    def test_health_ready_options_need_no_token(self):
        for path in ("/health", "/ready"):
            r = self.request("GET", path)
            self.assertEqual(r.status, 200, r)
        for path in ("/v1/cart/u", "/v1/cart/u/items", "/v1/cart/u/items/i"):
            with self.subTest(path=path):
                r = self.request("OPTIONS", path)
                self.assertEqual(r.status, 204, r)
                self.assertIsNone(r.header("www-authenticate"), r.headers)

    # -- no token -------------------------------------------------------------

    def test_every_v1_route_needs_a_token(self):
        u = new_user()
        routes = (("GET", "/v1/cart/%s" % u, None),
                  ("HEAD", "/v1/cart/%s" % u, None),
                  ("DELETE", "/v1/cart/%s" % u, None),
                  ("POST", "/v1/cart/%s/items" % u, ITEM),
                  ("PATCH", "/v1/cart/%s/items/sku-1" % u, {"quantity": 3}),
                  ("DELETE", "/v1/cart/%s/items/sku-1" % u, None))
        # give the user a cart first, so a missing check would show
        r = self.req("POST", "/v1/cart/%s/items" % u, self.token(u), ITEM)
        self.assertEqual(r.status, 201, r)
        for method, path, body in routes:
            with self.subTest(method=method, path=path):
                rid = self.rid()
                r = self.req(method, path, None, body, rid=rid)
                self.assertEqual(r.status, 401, r)
                self.assertEqual(r.header("www-authenticate"), REALM, r.headers)
                if method != "HEAD":
                    self.assertUnauthorized(r)
                self.assertEqual(self.log_for(rid).get("status"), 401)
        c = self.admin_cart(u)
        self.assertEqual(c["version"], 1, c)
        self.assertEqual(c["items"][0]["quantity"], 1, c)

    def test_other_schemes_are_a_missing_token(self):
        u = new_user()
        tok = self.token(u)
        for value in ("Basic dXNlcjpwYXNz", "Token " + tok, "Digest x=1",
                      tok):   # a bare token, no scheme
            with self.subTest(value=value[:20]):
                r = self.request("POST", "/v1/cart/%s/items" % u, ITEM,
                                 headers={"Authorization": value})
                self.assertUnauthorized(r)
        self.assertNothingStored(u)

    # -- valid tokens ----------------------------------------------------------

    def test_rs256_and_es256_tokens_are_accepted(self):
        u = new_user()
        rid = self.rid()
        r = self.req("POST", "/v1/cart/%s/items" % u, self.token(u), ITEM,
                     rid=rid)
        self.assertEqual(r.status, 201, r)
        self.assertIsNone(self.log_for(rid).get("auth_failure"))
        r = self.req("GET", "/v1/cart/" + u, self.token(u, key=self.ec))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["items"][0]["itemId"], "sku-1", r)
        r = self.req("PATCH", "/v1/cart/%s/items/sku-1" % u,
                     self.token(u, key=self.ec), {"quantity": 4})
        self.assertEqual(r.status, 200, r)
        r = self.req("DELETE", "/v1/cart/%s/items/sku-1" % u, self.token(u))
        self.assertEqual(r.status, 200, r)
        r = self.req("DELETE", "/v1/cart/" + u, self.token(u))
        self.assertEqual(r.status, 204, r)

    def test_aud_array_containing_ours_is_accepted(self):
        u = new_user()
        r = self.req("GET", "/v1/cart/" + u,
                     self.token(u, aud=["other-api", AUDIENCE]))
        self.assertEqual(r.status, 200, r)

    def test_leeway_applies_to_exp_and_nbf(self):
        now = int(time.time())
        u = new_user()
        # default JWT_LEEWAY_SECONDS=30
        r = self.req("POST", "/v1/cart/%s/items" % u,
                     self.token(u, exp=now - 10, iat=now - 300), ITEM)
        self.assertEqual(r.status, 201, "expired 10 s ago, within leeway: %r"
                         % (r,))
        r = self.req("GET", "/v1/cart/" + u, self.token(u, nbf=now + 10))
        self.assertEqual(r.status, 200, "nbf 10 s ahead, within leeway: %r"
                         % (r,))

    def test_a_token_accepted_once_still_expires(self):
        # The verifier may cache verified tokens; the cache must not outlive
        # exp + leeway (default 30 s).
        now = int(time.time())
        u = new_user()
        tok = self.token(u, exp=now - 27, iat=now - 600)
        r = self.req("GET", "/v1/cart/" + u, tok)
        self.assertEqual(r.status, 200, r)
        r = self.req("GET", "/v1/cart/" + u, tok)
        self.assertEqual(r.status, 200, r)
        time.sleep(max(0.0, now + 3.2 - time.time()))
        rid = self.rid()
        r = self.req("POST", "/v1/cart/%s/items" % u, tok, ITEM, rid=rid)
        self.assertInvalidToken(r, {"expired"}, rid)
        self.assertNothingStored(u)

    # -- invalid tokens --------------------------------------------------------

    def invalid_cases(self):
        """(name, make(user) -> token, reasons) for every refusal."""
        now = int(time.time())
        m = jwt_util.malicious
        tok = self.token
        rsa, ec, rogue = self.rsa, self.ec, self.rogue

        def without(u, claim):
            c = claims(u)
            del c[claim]
            return sign(c, rsa)

        return (
            ("expired beyond leeway",
             lambda u: tok(u, exp=now - 120, iat=now - 600), {"expired"}),
            ("expired 45 s ago",
             lambda u: tok(u, exp=now - 45, iat=now - 600), {"expired"}),
            ("nbf in future", lambda u: tok(u, nbf=now + 300),
             {"not_yet_valid"}),
            ("iat in future", lambda u: tok(u, iat=now + 300, exp=now + 900),
             {"not_yet_valid"}),
            ("wrong iss", lambda u: tok(u, iss=ISSUER + "x"), {"bad_issuer"}),
            ("wrong aud", lambda u: tok(u, aud="other-api"), {"bad_audience"}),
            ("aud array without ours", lambda u: tok(u, aud=["a", "b"]),
             {"bad_audience"}),
            ("no aud", lambda u: without(u, "aud"), {"bad_audience"}),
            ("no sub", lambda u: without(u, "sub"), {"no_subject"}),
            ("empty sub", lambda u: sign(claims(""), rsa), {"no_subject"}),
            ("no exp", lambda u: without(u, "exp"), {"malformed"}),
            ("exp as string", lambda u: tok(u, exp=str(now + 300)),
             {"malformed"}),
            ("alg none", lambda u: m("alg_none", claims(u), rsa),
             {"alg_refused"}),
            ("alg none with signature",
             lambda u: m("alg_none_sig", claims(u), rsa), {"alg_refused"}),
            ("HS256 keyed with the RSA public key PEM",
             lambda u: m("hs256_pubkey", claims(u), rsa), {"alg_refused"}),
            ("tampered payload", lambda u: m("tampered", claims(u), rsa),
             {"bad_signature"}),
            ("rogue key using our kid",
             lambda u: sign(claims(u), rogue, kid="rsa-a"), {"bad_signature"}),
            ("rogue EC key using our EC kid",
             lambda u: sign(claims(u), jwt_util.EcKey("ec-1")),
             {"bad_signature"}),
            ("unknown kid", lambda u: sign(claims(u), rogue),
             {"unknown_kid"}),
            ("RS256 naming the EC key's kid",
             lambda u: m("rs256_ec_kid", claims(u), rsa, ec), {"alg_refused"}),
            ("ES256 naming the RSA key's kid",
             lambda u: m("es256_rsa_kid", claims(u), rsa, ec),
             {"alg_refused"}),
            ("base64 with std alphabet/padding",
             lambda u: m("bad_b64", claims(u), rsa), {"malformed"}),
            ("base64 with bad chars",
             lambda u: m("bad_b64_chars", claims(u), rsa), {"malformed"}),
            ("two segments", lambda u: m("two_segments", claims(u), rsa),
             {"malformed"}),
            ("four segments", lambda u: m("four_segments", claims(u), rsa),
             {"malformed"}),
            ("payload not JSON", lambda u: m("not_json", claims(u), rsa),
             {"malformed"}),
            ("crit header", lambda u: m("crit", claims(u), rsa),
             {"malformed"}),
            ("garbage", lambda u: "not-a-jwt", {"malformed"}),
        )

    def test_invalid_tokens_are_refused_and_store_nothing(self):
        for name, make, reasons in self.invalid_cases():
            with self.subTest(case=name):
                u = new_user()
                tok = make(u)
                rid = self.rid()
                r = self.req("POST", "/v1/cart/%s/items" % u, tok, ITEM,
                             rid=rid)
                self.assertInvalidToken(r, reasons, rid)
                self.assertNothingStored(u)
                # a GET with it is refused the same way
                r = self.req("GET", "/v1/cart/" + u, tok)
                self.assertInvalidToken(r)

    def test_token_over_8192_bytes(self):
        u = new_user()
        tok = jwt_util.malicious("too_large", claims(u), self.rsa)
        self.assertGreater(len(tok), 8192)
        rid = self.rid()
        r = self.req("POST", "/v1/cart/%s/items" % u, tok, ITEM, rid=rid)
        self.assertIn(r.status, (401, 431), r)
        if r.status == 401:
            self.assertInvalidToken(r, {"too_large"}, rid)
        else:
            self.assertProblem(r, 431)
        self.assertNothingStored(u)

    def test_token_naming_its_own_keys_is_never_fetched(self):
        u = new_user()
        c = claims(u)
        url = "http://127.0.0.1:%d/jwks.json" % self.attacker.port
        rogue_jwk = self.rogue.jwk()
        # a certificate chain of the rogue key, whose AIA names our URL
        rogue_x5c = self.rogue.x5c(ca_issuers_url=url)
        cases = (
            ("jku, unknown kid", sign(c, self.rogue,
                                      header_extra={"jku": url}),
             {"unknown_kid"}),
            ("jku, our kid", sign(c, self.rogue, kid="rsa-a",
                                  header_extra={"jku": url}),
             {"bad_signature"}),
            ("x5u", sign(c, self.rogue, header_extra={"x5u": url}),
             {"unknown_kid"}),
            ("embedded jwk", sign(c, self.rogue,
                                  header_extra={"jwk": rogue_jwk}),
             {"unknown_kid"}),
            ("embedded jwk, no kid", sign(c, self.rogue, kid=False,
                                          header_extra={"jwk": rogue_jwk}),
             {"unknown_kid", "bad_signature"}),
            ("x5c", sign(c, self.rogue, header_extra={"x5c": rogue_x5c}),
             {"unknown_kid"}),
            ("x5c, our kid", sign(c, self.rogue, kid="rsa-a",
                                  header_extra={"x5c": rogue_x5c}),
             {"bad_signature"}),
            ("x5c, no kid", sign(c, self.rogue, kid=False,
                                 header_extra={"x5c": rogue_x5c}),
             {"unknown_kid", "bad_signature"}),
        )
        for name, tok, reasons in cases:
            with self.subTest(case=name):
                rid = self.rid()
                r = self.req("POST", "/v1/cart/%s/items" % u, tok, ITEM,
                             rid=rid)
                self.assertInvalidToken(r, reasons, rid)
        time.sleep(0.3)
        self.assertEqual(self.attacker.count(path_only=False), 0,
                         "the server contacted the URL a token named")
        self.assertNothingStored(u)

    def test_tokens_are_not_logged(self):
        u = new_user()
        good = self.token(u)
        bad = self.token(u, iss="https://evil")
        self.req("GET", "/v1/cart/" + u, good)
        self.req("GET", "/v1/cart/" + u, bad)
        time.sleep(0.1)
        text = self.server.stdout() + self.server.stderr()
        for tok in (good, bad):
            self.assertNotIn(tok.split(".")[2], text)
            self.assertNotIn(tok.split(".")[1], text)

    # -- authorization ---------------------------------------------------------

    def seed(self, user):
        for iid, q in (("a", 1), ("b", 2)):
            r = self.req("POST", "/v1/cart/%s/items" % user, self.token(user),
                         item(iid, q))
            self.assertIn(r.status, (200, 201), r)
        return self.admin_cart(user)

    def assertActsOnOthers(self, bob, tok, allowed):
        """Every route on bob's cart with tok: allowed, or 404 not_found."""
        before = self.admin_cart(bob)
        steps = (("GET", "/v1/cart/%s" % bob, None, 200),
                 ("POST", "/v1/cart/%s/items" % bob, item("c", 1), 201),
                 ("PATCH", "/v1/cart/%s/items/a" % bob, {"quantity": 7}, 200),
                 ("DELETE", "/v1/cart/%s/items/b" % bob, None, 200),
                 ("DELETE", "/v1/cart/%s" % bob, None, 204))
        for method, path, body, ok in steps:
            with self.subTest(method=method, path=path, allowed=allowed):
                r = self.req(method, path, tok, body)
                if allowed:
                    self.assertIn(r.status, (ok, 200), r)
                else:
                    self.assertProblem(r, 404, "cart.not_found")
        after = self.admin_cart(bob)
        if not allowed:
            self.assertEqual(after, before, "another user's requests changed "
                             "the cart")
        else:
            self.assertEqual(after["items"], [], after)
            self.assertGreater(after["version"], before["version"])

    def test_other_users_cart_is_not_found_and_unchanged(self):
        bob = new_user("bob")
        self.seed(bob)
        alice = new_user("alice")
        self.assertActsOnOthers(bob, self.token(alice), allowed=False)
        # bob still sees his own cart
        r = self.req("GET", "/v1/cart/" + bob, self.token(bob))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body["items"]), 2, r)

    def test_near_miss_admin_claims_are_not_admin(self):
        bob = new_user("bob")
        self.seed(bob)
        for extra in ({"scope": "cart:admin2 xcart:admin cart:read"},
                      {"scope": "cart:administrator"},
                      {"cognito:groups": ["cart:admins", "admin"]},
                      {"cognito:groups": "cart:admin"},   # not an array
                      {"scp": ["cart:admin"]}):
            with self.subTest(extra=extra):
                c = claims(new_user("eve"))
                c.update(extra)
                r = self.req("GET", "/v1/cart/" + bob, sign(c, self.rsa))
                self.assertIn(r.status, (401, 404), r)
                if r.status == 404:
                    self.assertProblem(r, 404, "cart.not_found")
                r = self.req("DELETE", "/v1/cart/" + bob, sign(c, self.rsa))
                self.assertIn(r.status, (401, 404), r)
        self.assertEqual(len(self.admin_cart(bob)["items"]), 2)

    def test_admin_scope_acts_on_any_cart(self):
        bob = new_user("bob")
        self.seed(bob)
        self.assertActsOnOthers(
            bob, self.token("ops-1", scope="openid cart:admin profile"),
            allowed=True)

    def test_admin_group_acts_on_any_cart(self):
        bob = new_user("bob")
        self.seed(bob)
        self.assertActsOnOthers(
            bob, self.token("ops-2", **{"cognito:groups": ["staff",
                                                           "cart:admin"]}),
            allowed=True)

    def test_idempotency_keys_are_per_user(self):
        alice, bob = new_user("alice"), new_user("bob")
        key = "k-" + uuid.uuid4().hex
        h = {"Idempotency-Key": key}
        ta, tadmin = self.token(alice), self.admin_token()
        r1 = self.req("POST", "/v1/cart/%s/items" % alice, ta, item("x", 1),
                      headers=h)
        self.assertEqual(r1.status, 201, r1)
        r2 = self.req("POST", "/v1/cart/%s/items" % bob, tadmin, item("x", 1),
                      headers=h)
        self.assertEqual(r2.status, 201, r2)
        self.assertNotEqual(r2.header("idempotent-replayed"), "true",
                            r2.headers)
        self.assertEqual(r2.body["userId"], bob, r2)
        # and each replays its own
        again = self.req("POST", "/v1/cart/%s/items" % alice, ta,
                         item("x", 1), headers=h)
        self.assertEqual(again.status, 201, again)
        self.assertEqual(again.header("idempotent-replayed"), "true",
                         again.headers)
        self.assertEqual(again.body, r1.body)
        c = self.admin_cart(bob)
        self.assertEqual((c["version"], len(c["items"])), (1, 1), c)
        c = self.admin_cart(alice)
        self.assertEqual((c["version"], c["items"][0]["quantity"]), (1, 1), c)


class CustomSettingsTest(AuthAssertions, harness.ServerTestCase):
    """JWT_ALGORITHMS=ES256, JWT_ADMIN_SCOPE and JWT_LEEWAY_SECONDS=0."""

    @classmethod
    def setUpClass(cls):
        cls.rsa = jwt_util.RsaKey("cs-rsa")
        cls.ec = jwt_util.EcKey("cs-ec")
        # the RSA key is published too, but RS256 is not allowed
        cls.jwks = jwt_util.write_jwks_file(cls.rsa, cls.ec)
        cls.server_env = auth_env(cls.jwks, JWT_ALGORITHMS="ES256",
                                  JWT_ADMIN_SCOPE="shop-admins",
                                  JWT_LEEWAY_SECONDS="0")
        try:
            super().setUpClass()
        except BaseException:
            os.unlink(cls.jwks)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            os.unlink(cls.jwks)

    def admin_token(self):
        return sign(claims("ops", **{"cognito:groups": ["shop-admins"]}),
                    self.ec)

    def test_only_the_configured_algorithm(self):
        u = new_user()
        r = self.req("GET", "/v1/cart/" + u, sign(claims(u), self.ec))
        self.assertEqual(r.status, 200, r)
        rid = "cs-" + uuid.uuid4().hex
        r = self.req("POST", "/v1/cart/%s/items" % u, sign(claims(u), self.rsa),
                     ITEM, rid=rid)
        self.assertInvalidToken(r, {"alg_refused", "unknown_kid"}, rid)
        self.assertNothingStored(u)

    def test_zero_leeway(self):
        u = new_user()
        now = int(time.time())
        rid = "cs-" + uuid.uuid4().hex
        r = self.req("GET", "/v1/cart/" + u,
                     sign(claims(u, exp=now - 5, iat=now - 60), self.ec),
                     rid=rid)
        self.assertInvalidToken(r, {"expired"}, rid)
        rid = "cs-" + uuid.uuid4().hex
        r = self.req("GET", "/v1/cart/" + u,
                     sign(claims(u, nbf=now + 5), self.ec), rid=rid)
        self.assertInvalidToken(r, {"not_yet_valid"}, rid)

    def test_configured_admin_scope(self):
        bob = new_user("bob")
        r = self.req("POST", "/v1/cart/%s/items" % bob,
                     sign(claims(bob), self.ec), ITEM)
        self.assertEqual(r.status, 201, r)
        for extra in ({"scope": "shop-admins"},
                      {"cognito:groups": ["shop-admins"]}):
            with self.subTest(extra=extra):
                r = self.req("GET", "/v1/cart/" + bob,
                             sign(claims("ops", **extra), self.ec))
                self.assertEqual(r.status, 200, r)
                self.assertEqual(len(r.body["items"]), 1, r)
        # the default name means nothing once another is configured
        for extra in ({"scope": "cart:admin"},
                      {"cognito:groups": ["cart:admin"]}):
            with self.subTest(extra=extra):
                r = self.req("GET", "/v1/cart/" + bob,
                             sign(claims("ops", **extra), self.ec))
                self.assertProblem(r, 404, "cart.not_found")


# -- JWKS from a URL: rotation and refetch rate ------------------------------

class JwksServerCase(AuthAssertions, harness.ServerTestCase):
    """A service whose JWT_JWKS_URL is this class's own JwksServer, which
    lives exactly as long as the class's service."""

    @classmethod
    def jwks_setup(cls):
        """(the key the server publishes first, extra auth_env settings)"""
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        key, settings = cls.jwks_setup()
        cls.jwks = jwt_util.JwksServer(key).start()
        cls.server_env = auth_env(jwks_url=cls.jwks.url, **settings)
        try:
            super().setUpClass()
        except BaseException:
            cls.jwks.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.jwks.stop()


class JwksRotationTest(JwksServerCase):
    """JWT_JWKS_URL with JWT_JWKS_MIN_REFRESH_SECONDS=1."""

    @classmethod
    def jwks_setup(cls):
        cls.key_a = jwt_util.RsaKey("rot-a")
        cls.key_b = jwt_util.EcKey("rot-b")
        cls.key_c = jwt_util.RsaKey("rot-c")      # never published
        return cls.key_a, {"JWT_JWKS_MIN_REFRESH_SECONDS": "1"}

    def admin_token(self):
        return sign(claims("admin", scope="cart:admin"), self.key_a)

    def test_rotation_without_restart_and_refetch_rate(self):
        c0 = self.jwks.count()
        self.assertGreaterEqual(c0, 1, "the JWKS was not fetched at start")
        self.assertLessEqual(c0, 2)
        u = new_user()
        r = self.req("GET", "/v1/cart/" + u, sign(claims(u), self.key_a))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.jwks.count(), c0, "a cached kid caused a fetch")

        # rotate: the provider publishes B (and still A)
        self.jwks.set_keys(self.key_a, self.key_b)
        time.sleep(1.2)
        rid = "rot-" + uuid.uuid4().hex
        r = self.req("POST", "/v1/cart/%s/items" % u,
                     sign(claims(u), self.key_b), ITEM, rid=rid)
        self.assertEqual(r.status, 201, "B's token after the refresh window: "
                         "%r\n%s" % (r, self.server.logs()))
        c1 = self.jwks.count()
        self.assertEqual(c1, c0 + 1, "want exactly one refetch for kid B")

        # a burst of unknown kids: at most one fetch per window
        time.sleep(1.2)
        t0 = time.monotonic()
        tok = sign(claims(u), self.key_c)
        rids = ["unk-%d-%s" % (i, uuid.uuid4().hex) for i in range(20)]

        def one(rid):
            return self.req("GET", "/v1/cart/" + u, tok, rid=rid)

        with concurrent.futures.ThreadPoolExecutor(max_workers=5) as ex:
            results = list(ex.map(one, rids))
        elapsed = time.monotonic() - t0
        for r in results:
            self.assertInvalidToken(r)
        self.assertEqual(self.log_for(rids[-1]).get("auth_failure"),
                         "unknown_kid")
        extra = self.jwks.count() - c1
        allowed = 1 if elapsed < 0.9 else 1 + int(elapsed)
        self.assertGreaterEqual(extra, 1, "an unknown kid after the window "
                                "did not refetch")
        self.assertLessEqual(extra, allowed, "%d fetches for 20 unknown-kid "
                             "requests in %.2fs" % (extra, elapsed))

        # A and B both still work, with no further fetch
        c2 = self.jwks.count()
        for k in (self.key_a, self.key_b):
            r = self.req("GET", "/v1/cart/" + u, sign(claims(u), k))
            self.assertEqual(r.status, 200, r)
            self.assertEqual(len(r.body["items"]), 1, r)
        self.assertEqual(self.jwks.count(), c2)


# -- Amazon Cognito access tokens ---------------------------------------------

class CognitoTest(JwksServerCase):
    """JWT_CLIENT_ID set, JWT_AUDIENCE unset, JWKS at the Cognito path."""

    @classmethod
    def jwks_setup(cls):
        cls.key = jwt_util.RsaKey("cognito-rsa-1")
        return cls.key, {"JWT_AUDIENCE": None, "JWT_CLIENT_ID": CLIENT_ID}

    def access(self, sub, **kw):
        return sign(jwt_util.cognito_access_claims(sub, **kw), self.key)

    def admin_token(self):
        return self.access("ops", groups=["cart:admin"])

    def test_jwks_fetched_from_the_pool_path(self):
        self.assertGreaterEqual(self.jwks.count(), 1)
        self.assertTrue(self.jwks.url.endswith(
            "/us-east-1_Test/.well-known/jwks.json"))

    def test_access_token_accepted(self):
        u = new_user()
        r = self.req("POST", "/v1/cart/%s/items" % u, self.access(u), ITEM)
        self.assertEqual(r.status, 201, r)
        r = self.req("GET", "/v1/cart/" + u, self.access(u))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body["items"]), 1)

    def test_wrong_client_id_and_id_tokens_refused(self):
        u = new_user()
        now = int(time.time())
        id_token = {"sub": u, "iss": ISSUER, "aud": CLIENT_ID,
                    "token_use": "id", "iat": now, "exp": now + 300,
                    "email": "u@example.com"}
        cases = (
            ("other client_id", self.access(u, client_id="someoneelse"),
             {"bad_audience"}),
            ("token_use id", self.access(u, token_use="id"), {"bad_audience"}),
            ("no client_id", self.access(u, client_id=None), {"bad_audience"}),
            ("ID token (aud = client id)", sign(id_token, self.key),
             {"bad_audience"}),
            ("other issuer", self.access(u, iss=ISSUER + "2"), {"bad_issuer"}),
        )
        for name, tok, reasons in cases:
            with self.subTest(case=name):
                rid = "cog-" + uuid.uuid4().hex
                r = self.req("POST", "/v1/cart/%s/items" % u, tok, ITEM,
                             rid=rid)
                self.assertInvalidToken(r, reasons, rid)
        self.assertNothingStored(u)

    def test_groups_and_scope_make_admin(self):
        alice = new_user("alice")
        r = self.req("POST", "/v1/cart/%s/items" % alice, self.access(alice),
                     ITEM)
        self.assertEqual(r.status, 201, r)
        for tok in (self.access("ops-g", groups=["cart:admin"]),
                    self.access("ops-s", scope="openid cart:admin")):
            r = self.req("GET", "/v1/cart/" + alice, tok)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body["userId"], alice)
            self.assertEqual(len(r.body["items"]), 1, r)
        r = self.req("GET", "/v1/cart/" + alice,
                     self.access("eve", groups=["shoppers"]))
        self.assertProblem(r, 404, "cart.not_found")


if __name__ == "__main__":
    unittest.main()
