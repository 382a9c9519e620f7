"""Operations: request ids, request logs, LOG_LEVEL, --help, configuration
errors, the start-up configuration line, graceful shutdown, keep-alive."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import UUID_RE, new_user

LOG_TIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def run_binary(args, env_overrides, timeout=5):
    env = dict(os.environ)
    for k in harness.ALL_VARS | harness.AWS_CREDENTIAL_VARS:
        env.pop(k, None)
    env.update({"LISTEN_ADDR": "127.0.0.1", "APP_PORT": str(harness.free_port())})
    env.update(env_overrides)
    return subprocess.run([harness.binary_path()] + args, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, cwd=harness.REPO_ROOT)


class RequestIdAndLogTest(harness.ServerTestCase):

    def test_request_id_honoured_and_echoed(self):
        for rid in ("abc-123", "req.1:2_3", "R" * 128):
            with self.subTest(rid=rid):
                r = self.request("GET", "/v1/cart/" + new_user(),
                                 headers={"X-Request-Id": rid})
                self.assertEqual(r.header("x-request-id"), rid)
        # also on problems, and in the problem body
        r = self.request("GET", "/nope", headers={"X-Request-Id": "err-42"})
        self.assertEqual(r.header("x-request-id"), "err-42")
        self.assertEqual(r.body.get("requestId"), "err-42", r)
        r = self.request("POST", "/v1/cart/%s/items" % new_user(), b"{",
                         headers={"X-Request-Id": "err-43"})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.header("x-request-id"), "err-43")

    def test_request_id_generated_when_absent_or_invalid(self):
        seen = set()
        for hdrs in ({}, {}, {"X-Request-Id": "R" * 129},
                     {"X-Request-Id": "has space"}, {"X-Request-Id": "a/b"},
                     {"X-Request-Id": "quote\"x"}, {"X-Request-Id": ""}):
            with self.subTest(hdrs=hdrs):
                r = self.request("GET", "/health", headers=hdrs)
                rid = r.header("x-request-id")
                self.assertTrue(rid, r.headers)
                self.assertNotEqual(rid, hdrs.get("X-Request-Id"))
                self.assertRegex(rid, UUID_RE)
                seen.add(rid)
        self.assertEqual(len(seen), 7, "generated ids repeat")

    def test_protocol_errors_are_problems_with_request_id(self):
        # Requests civetweb refuses before routing still get the contract:
        # problem+json, a sensible status and title, a generated X-Request-Id.
        cases = (
            (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n", 400),
            (b"BLAH\r\n\r\n", 400),
            (b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
             400),
            (b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
             None),   # 400 or 431
        )
        for raw, status in cases:
            with self.subTest(raw=raw[:50]):
                c = socket.create_connection(("127.0.0.1", self.server.port),
                                             timeout=5)
                try:
                    c.sendall(raw)
                    resp = http.client.HTTPResponse(c)
                    resp.begin()
                    r = harness.read_response(resp)
                finally:
                    c.close()
                if status is None:
                    self.assertIn(r.status, (400, 431), r)
                else:
                    self.assertEqual(r.status, status, r)
                self.assertProblem(r, r.status)
                self.assertNotEqual(r.body["title"], "Internal Server Error", r)
                self.assertRegex(r.header("x-request-id", ""), UUID_RE)
                self.assertEqual(r.body.get("requestId"),
                                 r.header("x-request-id"))
        self.assertHealthy()

    def _log_for(self, rid):
        rec = self.server.wait_log(lambda d: d.get("request_id") == rid)
        self.assertIsNotNone(rec, "no log line with request_id %s\n%s"
                             % (rid, self.server.logs()))
        return rec

    def test_one_json_log_line_per_request(self):
        u = new_user()
        cases = (
            ("POST", "/v1/cart/%s/items" % u,
             {"itemId": "a", "quantity": 1,
              "unitPrice": {"amount": 1, "currency": "EUR"}}, 201,
             "/v1/cart/{userID}/items"),
            ("GET", "/v1/cart/" + u, None, 200, "/v1/cart/{userID}"),
            ("PATCH", "/v1/cart/%s/items/a" % u, {"quantity": 2}, 200,
             "/v1/cart/{userID}/items/{itemID}"),
            ("DELETE", "/v1/cart/%s/items/zz" % u, None, 404,
             "/v1/cart/{userID}/items/{itemID}"),
            ("DELETE", "/v1/cart/" + u, None, 204, "/v1/cart/{userID}"),
            ("GET", "/health", None, 200, "/health"),
            ("GET", "/ready", None, 200, "/ready"),
        )
        for method, path, body, status, route in cases:
            rid = "log-" + new_user("")[2:]
            r = self.request(method, path, body, headers={"X-Request-Id": rid})
            self.assertEqual(r.status, status, r)
            rec = self._log_for(rid)
            with self.subTest(method=method, path=path):
                self.assertEqual(rec.get("method"), method, rec)
                self.assertEqual(rec.get("route"), route, rec)
                self.assertEqual(rec.get("status"), status, rec)
                self.assertIsInstance(rec.get("duration_ms"), (int, float), rec)
                self.assertGreaterEqual(rec["duration_ms"], 0)
                self.assertLess(rec["duration_ms"], 10000)
                self.assertIn(rec.get("level"), ("info", "warn"), rec)
                self.assertRegex(rec.get("time", ""), LOG_TIME_RE)
                n = sum(1 for d in self.server.log_lines()
                        if isinstance(d, dict) and d.get("request_id") == rid)
                self.assertEqual(n, 1, "want exactly one line for %s" % rid)
        # the log names the pattern, not the user's id
        self.assertNotIn(u, "".join(
            json.dumps(d.get("route")) for d in self.server.log_lines()
            if isinstance(d, dict)))

    def test_generated_request_id_is_logged(self):
        r = self.request("GET", "/v1/cart/" + new_user())
        self._log_for(r.header("x-request-id"))

    def test_stdout_is_json_lines_only(self):
        self.request("GET", "/health")
        lines = self.server.log_lines()
        self.assertTrue(lines)
        for rec in lines:
            self.assertIsInstance(rec, dict, "non-JSON stdout line: %r" % rec)
            self.assertIn("time", rec)
            self.assertIn("level", rec)

    def test_start_line_shows_effective_configuration(self):
        recs = [d for d in self.server.log_lines() if isinstance(d, dict)]
        text = [json.dumps(d) for d in recs]
        hits = [t for t in text if str(self.server.port) in t and
                ("MAX_ITEM_QUANTITY" in t or "max_item_quantity" in t)]
        self.assertEqual(len(hits), 1, "want one start line with the "
                         "effective configuration\n" + self.server.stdout())
        line = hits[0]
        for var in ("APP_PORT", "ENV_NAME", "LOG_LEVEL", "STORAGE_BACKEND",
                    "EVENTS_PUBLISHER", "MAX_ITEM_QUANTITY", "MAX_CART_LINES",
                    "CART_TTL_DAYS", "SHUTDOWN_TIMEOUT_SECONDS", "HTTP_THREADS"):
            self.assertTrue(var in line or var.lower() in line,
                            "%s missing from %s" % (var, line))
        # dev -> memory store, unless the run selects DynamoDB
        backend = harness.backend_env().get("STORAGE_BACKEND", "memory")
        self.assertIn('"STORAGE_BACKEND": "%s"' % backend, line)
        self.assertIn('"dev"', line)
        self.assertIn('"allocator": "jemalloc"', line)   # ADR 17

    def test_keep_alive_three_requests_on_one_connection(self):
        conn = self.server.connection()
        try:
            u = new_user()
            r1 = harness.send(conn, "GET", "/health")
            sock = conn.sock
            self.assertIsNotNone(sock)
            r2 = harness.send(conn, "POST", "/v1/cart/%s/items" % u,
                              {"itemId": "a", "quantity": 1,
                               "unitPrice": {"amount": 1, "currency": "EUR"}})
            self.assertIs(conn.sock, sock, "server closed the connection")
            r3 = harness.send(conn, "GET", "/v1/cart/" + u)
            self.assertIs(conn.sock, sock, "server closed the connection")
            self.assertEqual([r1.status, r2.status, r3.status], [200, 201, 200])
            self.assertEqual(r3.body["items"][0]["itemId"], "a")
            # an error response keeps the connection usable too
            r4 = harness.send(conn, "GET", "/nope")
            self.assertEqual(r4.status, 404)
            r5 = harness.send(conn, "GET", "/health")
            self.assertEqual(r5.status, 200)
        finally:
            conn.close()

    def test_idle_keep_alive_connections_do_not_starve_the_pool(self):
        conns = []
        try:
            for _ in range(24):
                c = self.server.connection()
                self.assertEqual(harness.send(c, "GET", "/health").status, 200)
                conns.append(c)
            t0 = time.monotonic()
            r = self.server.request("GET", "/health", timeout=5)
            self.assertEqual(r.status, 200)
            self.assertLess(time.monotonic() - t0, 1.0)
        finally:
            for c in conns:
                c.close()

    def test_requests_are_fast(self):
        # tcp_nodelay and one write per response: no ~40 ms Nagle stalls
        conn = self.server.connection()
        try:
            harness.send(conn, "GET", "/health")
            t0 = time.monotonic()
            for _ in range(20):
                self.assertEqual(harness.send(conn, "GET", "/health").status,
                                 200)
            per = (time.monotonic() - t0) / 20
        finally:
            conn.close()
        self.assertLess(per, 0.02, "%.1f ms per keep-alive request" %
                        (per * 1000))


SCHED_OTHER, SCHED_BATCH = 0, 3     # Linux's policy numbers (sched.h)


def thread_sched(pid, field=16):
    """{comm: set of values} over the process's threads: by default the
    nice value (stat field 19); field=38 gives the policy (field 41)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
        except FileNotFoundError:
            continue        # a thread that just ended
        comm = st[st.index("(") + 1:st.rindex(")")]
        value = int(st[st.rindex(")") + 2:].split()[field])
        out.setdefault(comm, set()).add(value)
    return out


class WorkerPriorityTest(unittest.TestCase):
    """HTTP_WORKER_NICE: the request workers run nicer than the relay and
    the log writer, so a saturated CPU still drains the outbox (README,
    Configuration; docs/adr/0008)."""

    def nices_with(self, env, preexec=None, field=16):
        srv = harness.Server(env=env, preexec_fn=preexec).start()
        try:
            # Our threads name themselves on their first line, and the
            # relay starts around the first request: wait for them (bounded).
            names = {"cart-relay", "cart-log", "cart-watchdog"}
            deadline = time.monotonic() + 5
            nices = thread_sched(srv.proc.pid, field)
            while not names <= set(nices) and time.monotonic() < deadline:
                time.sleep(0.02)
                nices = thread_sched(srv.proc.pid, field)
            return nices, os.getpriority(os.PRIO_PROCESS, srv.proc.pid)
        finally:
            srv.stop()
            srv.cleanup()

    def check(self, nices, base, workers):
        self.assertEqual(nices.pop("civetweb-worker"), {workers}, nices)
        # the relay, the log writer (below the workers it starved on one
        # core: app/log.c, writer_main), the watchdog, main and civetweb's
        # master: the process's
        for comm in ("cart-relay", "cart-log", "cart-watchdog", "cart-service"):
            self.assertIn(comm, nices)
        for comm, values in nices.items():
            self.assertEqual(values, {base}, (comm, nices))

    def test_workers_run_five_nicer_by_default(self):
        nices, base = self.nices_with({})
        self.check(nices, base, base + 5)

    def test_zero_leaves_the_workers_alone(self):
        nices, base = self.nices_with({"HTTP_WORKER_NICE": "0"})
        self.check(nices, base, base)

    def test_added_to_the_process_nice_and_capped_at_19(self):
        nices, base = self.nices_with({"HTTP_WORKER_NICE": "9"},
                                      preexec=lambda: os.nice(12))
        self.assertEqual(base, 12)
        self.check(nices, 12, 19)

    def test_background_threads_run_batch_workers_normal(self):
        """BACKGROUND_SCHED_BATCH (default true): every thread but the
        request workers is SCHED_BATCH, so none preempts a worker that
        holds a lock (app/main.c); the workers switch back to SCHED_OTHER
        and keep their nice value."""
        policies, _ = self.nices_with({}, field=38)
        self.check(policies, SCHED_BATCH, SCHED_OTHER)
        nices, base = self.nices_with({})
        self.check(nices, base, base + 5)

    def test_background_batch_off_leaves_every_thread_normal(self):
        policies, _ = self.nices_with({"BACKGROUND_SCHED_BATCH": "false"}, field=38)
        self.check(policies, SCHED_OTHER, SCHED_OTHER)


class LogLevelErrorTest(harness.ServerTestCase):
    server_env = {"LOG_LEVEL": "error"}

    def test_info_request_lines_suppressed(self):
        rids = []
        for path in ("/health", "/v1/cart/" + new_user(), "/nope"):
            rid = "quiet-" + new_user("")[2:]
            rids.append(rid)
            self.request("GET", path, headers={"X-Request-Id": rid})
        time.sleep(0.3)
        out = self.server.stdout()
        for rid in rids:
            self.assertNotIn(rid, out)
        for rec in self.server.log_lines():
            if isinstance(rec, dict):
                self.assertEqual(rec.get("level"), "error", rec)

    def test_event_lines_suppressed(self):
        # The log publisher's event lines are info lines: below the
        # level they are not printed (README, "Logs"; docs/events).
        u = new_user()
        for item in ("a", "b", "a"):
            r = self.add(u, item)
            self.assertIn(r.status, (200, 201), r)
        r = self.request("PATCH", "/v1/cart/%s/items/a" % u, {"quantity": 5})
        self.assertEqual(r.status, 200, r)
        time.sleep(0.5)     # the relay publishes shortly after the response
        out = self.server.stdout()
        self.assertNotIn(u, out)
        self.assertNotIn('"level":"info"', out)
        for rec in self.server.log_lines():
            self.assertIsInstance(rec, dict, rec)
            self.assertEqual(rec.get("level"), "error", rec)


class LogLevelWarnTest(harness.ServerTestCase):
    server_env = {"LOG_LEVEL": "warn"}

    def test_warn_keeps_no_info_lines(self):
        rid = "warn-" + new_user("")[2:]
        self.request("GET", "/health", headers={"X-Request-Id": rid})
        time.sleep(0.2)
        self.assertNotIn(rid, self.server.stdout())
        for rec in self.server.log_lines():
            if isinstance(rec, dict):
                self.assertIn(rec.get("level"), ("warn", "error"), rec)


class CommandLineTest(unittest.TestCase):

    def test_help_lists_every_variable_with_default(self):
        p = run_binary(["--help"], {})
        self.assertEqual(p.returncode, 0, p)
        text = (p.stdout + p.stderr).decode()
        lines = text.splitlines()
        for var, default in harness.ENV_DEFAULTS.items():
            with self.subTest(var=var):
                idx = [i for i, l in enumerate(lines)
                       if re.search(r"\b%s\b" % var, l)]
                self.assertTrue(idx, "%s not in --help:\n%s" % (var, text))
                if default:
                    near = " ".join(lines[idx[0]:idx[0] + 2])
                    self.assertIn(default, near, "%s default %s not shown"
                                  % (var, default))

    def test_allocator_is_jemalloc_with_the_service_settings(self):
        # ADR 17: the executable links jemalloc and sets malloc_conf;
        # jemalloc prints its effective options at exit when asked to.
        p = run_binary(["--help"], {"MALLOC_CONF": "stats_print:true"})
        self.assertEqual(p.returncode, 0)
        err = p.stderr.decode("utf-8", "replace")
        self.assertIn("jemalloc statistics", err)
        self.assertIn("opt.tcache: false", err)
        self.assertIn("opt.dirty_decay_ms: 1000", err)
        self.assertIn("opt.muzzy_decay_ms: 0", err)

    def test_help_does_not_start_the_server(self):
        port = harness.free_port()
        p = run_binary(["--help"], {"APP_PORT": str(port)})
        self.assertEqual(p.returncode, 0)
        s = socket.socket()
        try:
            self.assertNotEqual(s.connect_ex(("127.0.0.1", port)), 0)
        finally:
            s.close()

    def test_invalid_environment_stops_the_start(self):
        cases = (
            ("APP_PORT", "abc"), ("APP_PORT", "70000"), ("APP_PORT", "0"),
            ("APP_PORT", "8443s"), ("APP_PORT", "80 80"),
            ("MAX_ITEM_QUANTITY", "0"), ("MAX_ITEM_QUANTITY", "-5"),
            ("MAX_ITEM_QUANTITY", "9x"), ("MAX_CART_LINES", "0"),
            ("CART_TTL_DAYS", "0"), ("CART_TTL_DAYS", "soon"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "-1"),
            ("LOG_LEVEL", "loud"), ("ENV_NAME", "weird"),
            ("HTTP_THREADS", "-1"), ("HTTP_THREADS", "many"),
            ("HTTP_WORKER_NICE", "-1"), ("HTTP_WORKER_NICE", "20"),
            ("HTTP_WORKER_NICE", "low"), ("BACKGROUND_SCHED_BATCH", "sometimes"),
            ("AWS_XRAY_ENABLED", "maybe"), ("EVENTBRIDGE_ENABLED", "yes please"),
            ("RATE_LIMIT_RPS", "-3"), ("STORAGE_BACKEND", "postgres"),
            ("EVENTS_PUBLISHER", "kafka"),
            # added with the AWS adapters and the outbox
            ("DYNAMODB_ENDPOINT", "ftp://x"), ("DYNAMODB_ENDPOINT", 'http://a"b'),
            ("EVENTBRIDGE_ENDPOINT", "localhost:4010"),
            ("DYNAMODB_TIMEOUT_MS", "0"), ("DYNAMODB_CONNECT_TIMEOUT_MS", "fast"),
            ("AWS_MAX_ATTEMPTS", "0"), ("AWS_MAX_ATTEMPTS", "11"),
            ("CIRCUIT_BREAKER_FAILURE_RATE", "101"),
            ("CIRCUIT_BREAKER_MIN_CALLS", "0"),
            ("CIRCUIT_BREAKER_WINDOW_SECONDS", "-1"),
            ("CIRCUIT_BREAKER_OPEN_SECONDS", "x"),
            ("CIRCUIT_BREAKER_HALF_OPEN_PROBES", "0"),
            ("EVENTS_RELAY_ENABLED", "sometimes"),
            ("EVENTS_RELAY_CONCURRENCY", "0"), ("EVENTS_RELAY_CONCURRENCY", "257"),
            ("EVENTS_MAX_ATTEMPTS", "0"), ("EVENTS_MAX_ATTEMPTS", "101"),
            ("EVENTS_ACK_DELAY_MS", "-1"), ("EVENTS_ACK_DELAY_MS", "10001"),
            ("EVENTS_ACK_DELAY_MS", "1s"),
            ("IDEMPOTENCY_MAX_RECORDS", "7"), ("IDEMPOTENCY_MAX_RECORDS", "1e3"),
            ("EVENTBRIDGE_SOURCE", "has space"), ("DYNAMODB_TABLE", "t"),
            # added with the edge: timeouts, rate limits, authentication
            ("REQUEST_TIMEOUT_MS", "50"), ("REQUEST_TIMEOUT_MS", "10s"),
            ("RATE_LIMIT_BURST", "-1"), ("RATE_LIMIT_STORE", "memcached"),
            ("RATE_LIMIT_MAX_KEYS", "10"), ("RATE_LIMIT_ON_STORE_FAILURE", "maybe"),
            ("REDIS_URL", 'redis://a"b'), ("REDIS_TIMEOUT_MS", "0"),
            ("TRUSTED_PROXIES", "10.0.0.0/8;rm"), ("AUTH_ENABLED", "perhaps"),
            ("JWT_JWKS_FILE", "/tmp/a b.json"), ("JWT_JWKS_URL", "http://x/\"y"),
            ("JWT_ALGORITHMS", "HS256"), ("JWT_LEEWAY_SECONDS", "61"),
            ("JWT_JWKS_MIN_REFRESH_SECONDS", "0"), ("JWT_JWKS_TIMEOUT_MS", "0"),
            ("JWT_ADMIN_SCOPE", ""),
            ("EVENTS_BACKLOG_MAX_MB", "0"), ("EVENTS_BACKLOG_MAX_MB", "lots"),
            # added with tracing
            ("AWS_XRAY_DAEMON_ADDRESS", "host:2000;rm"), ("AWS_XRAY_TRACING_NAME", ""),
            # added with feature flags
            ("FEATURE_EVENTS", "maybe"), ("FEATURE_REQUIRE_IF_MATCH", "1"),
            ("FEATURE_IDEMPOTENCY_REQUIRED", "ON"), ("FEATURE_AUTH_ENFORCE", ""),
            ("FEATURE_FLAGS_FILE", "/no/such/flags.json"), ("FEATURE_FLAGS_FILE", "/tmp/a b"),
            ("FEATURE_FLAGS_RELOAD_SECONDS", "0"), ("FEATURE_FLAGS_RELOAD_SECONDS", "3601"),
            ("FEATURE_FLAGS_APPCONFIG_MIN_POLL_SECONDS", "0"),
            ("FEATURE_FLAGS_APPCONFIG_ENDPOINT", "ftp://x"),
            ("FEATURE_FLAGS_APPCONFIG_APPLICATION", "a b"),
            ("FEATURE_FLAGS_APPCONFIG_PROFILE", "flags"),   # without the other two
            ("FEATURE_EVENT", "off"),   # a typo of FEATURE_EVENTS
            # added with secrets (X, X_FILE, X_SECRET_ID)
            ("SECRETS_TTL_SECONDS", "0"), ("SECRETS_TTL_SECONDS", "86401"),
            ("SECRETS_TTL_SECONDS", "5m"), ("SECRETSMANAGER_ENDPOINT", "ftp://x"),
            ("JWT_JWKS_SECRET_ID", "a b"), ("JWT_JWKS_SECRET_ID", "name#"),
            ("JWT_JWKS_SECRET_ID", "#key"), ("REDIS_PASSWORD_SECRET_ID", "x#y#z"),
            ("EVENTBRIDGE_BUS_NAME_SECRET_ID", "bus#k/ey"),
            ("REDIS_PASSWORD_FILE", "/tmp/a b"), ("EVENTBRIDGE_BUS_NAME_FILE", '/tmp/"x'),
            ("REDIS_PASSWORD_FILE", "/nonexistent/cart-redis-password"),
            ("EVENTBRIDGE_BUS_NAME_FILE", "/nonexistent/cart-bus"),
            ("JWT_JWKS", "x" * 65537), ("REDIS_PASSWORD", "y" * 65537),
        )
        for var, val in cases:
            with self.subTest(var=var, val=val):
                p = run_binary([], {var: val})
                out = (p.stdout + p.stderr).decode("utf-8", "replace")
                self.assertEqual(p.returncode, 2, "%s=%r: exit %s\n%s"
                                 % (var, val, p.returncode, out))
                named = [l for l in out.splitlines() if var in l]
                self.assertTrue(named, "no line names %s:\n%s" % (var, out))

    def test_configuration_truth(self):
        """Issue 11: each bad value stops the start with exactly one line
        on stderr that names the variable (and what it expects), exit 2,
        nothing on stdout. LISTEN_ADDR is an IPv4 literal (inet_pton):
        999.999.999.999 once bound 231.231.231.231 and 1.2.3 failed in
        civetweb without naming the variable."""
        aws = {"STORAGE_BACKEND": "dynamodb", "AWS_ACCESS_KEY_ID": "AKIDX",
               "AWS_SECRET_ACCESS_KEY": "s"}
        cases = (
            ({"LISTEN_ADDR": "999.999.999.999"}, "LISTEN_ADDR", "IPv4"),
            ({"LISTEN_ADDR": "1.2.3"}, "LISTEN_ADDR", "IPv4"),
            ({"LISTEN_ADDR": "1.2.3.4.5"}, "LISTEN_ADDR", "IPv4"),
            ({"LISTEN_ADDR": "010.0.0.1"}, "LISTEN_ADDR", "IPv4"),
            ({"LISTEN_ADDR": "localhost"}, "LISTEN_ADDR", "no host names"),
            ({"LISTEN_ADDR": "::1"}, "LISTEN_ADDR", "no IPv6"),
            ({"LISTEN_ADDR": ""}, "LISTEN_ADDR", "IPv4"),
            ({"APP_PORT": " 8080"}, "APP_PORT", "from 1 to 65535"),
            ({"APP_PORT": "+8080"}, "APP_PORT", "from 1 to 65535"),
            ({"HTTP_THREADS": "0x10"}, "HTTP_THREADS", "integer"),
            ({"ENV_NAME": "production"}, "ENV_NAME",
             "one of dev, test, staging, prod"),
            ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL",
             "one of debug, info, warn, error"),
            ({"STORAGE_BACKEND": "s3"}, "STORAGE_BACKEND", "memory, dynamodb"),
            ({"AUTH_ENABLED": "yes"}, "AUTH_ENABLED", "true or false"),
            ({"DYNAMODB_TABLE": "t" * 300}, "DYNAMODB_TABLE", "at most 255"),
            ({"RATE_LIMIT_STORE": "redis", "REDIS_URL": "redis://:@h"},
             "REDIS_URL", "password"),
            ({"RATE_LIMIT_STORE": "redis", "REDIS_URL": "redis://h:99999"},
             "REDIS_URL", "port"),
            (dict(aws, AWS_ENDPOINT_URL="ftp://x"), "AWS_ENDPOINT_URL", "http"),
            (dict(aws, AWS_ENDPOINT_URL_DYNAMODB="http://a b"),
             "AWS_ENDPOINT_URL_DYNAMODB", "http"),
            ({"EVENTS_PUBLISHER": "eventbridge", "AWS_ACCESS_KEY_ID": "a",
              "AWS_SECRET_ACCESS_KEY": "b", "AWS_ENDPOINT_URL_EVENTBRIDGE": "x"},
             "AWS_ENDPOINT_URL_EVENTBRIDGE", "http"),
            ({"STORAGE_BACKEND": "dynamodb", "AWS_ACCESS_KEY_ID": "AKIDX"},
             "AWS_SECRET_ACCESS_KEY", "missing"),
            ({"STORAGE_BACKEND": "dynamodb",
              "AWS_CONTAINER_CREDENTIALS_FULL_URI": "ftp://x"},
             "AWS_CONTAINER_CREDENTIALS_FULL_URI", "http"),
            ({"EVENTS_PUBLISHER": "eventbridge"}, "AWS_ACCESS_KEY_ID",
             "no AWS credentials"),
            ({"EVENTS_PUBLISHER": "eventbridge", "AWS_ACCESS_KEY_ID": "a",
              "AWS_SECRET_ACCESS_KEY": "b", "EVENTBRIDGE_SOURCE": "aws.cart"},
             "EVENTBRIDGE_SOURCE", "reserved"),
        )
        for env, var, text in cases:
            with self.subTest(env=env):
                p = run_binary([], env)
                err = p.stderr.decode("utf-8", "replace")
                lines = [l for l in err.splitlines() if l.strip()]
                self.assertEqual(p.returncode, 2, "%s: exit %s\n%s%s" % (
                    env, p.returncode, p.stdout.decode(errors="replace"), err))
                self.assertEqual(len(lines), 1, err)
                self.assertIn(var, lines[0])
                self.assertIn(text, lines[0])
                self.assertEqual(p.stdout, b"", p.stdout)

    def test_listen_addr_binds_exactly_that_address(self):
        """A valid address is bound as given: 127.0.0.1 answers, and with
        127.0.0.2 (also loopback) 127.0.0.1 does not."""
        port = harness.free_port()
        p = subprocess.Popen([harness.binary_path()], env=dict(
            {k: v for k, v in os.environ.items() if k not in harness.ALL_VARS},
            LISTEN_ADDR="127.0.0.2", APP_PORT=str(port), RATE_LIMIT_RPS="0"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd=harness.REPO_ROOT)
        try:
            deadline = time.monotonic() + 5
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.2", port, timeout=1)
                    c.request("GET", "/health")
                    self.assertEqual(c.getresponse().status, 200)
                    c.close()
                    break
                except OSError:
                    self.assertIsNone(p.poll(), "exited before answering")
                    self.assertLess(time.monotonic(), deadline, "no answer on 127.0.0.2")
                    time.sleep(0.05)
            s = socket.socket()
            try:
                self.assertNotEqual(s.connect_ex(("127.0.0.1", port)), 0,
                                    "127.0.0.1 answers though 127.0.0.2 was bound")
            finally:
                s.close()
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def test_healthcheck_command(self):
        """`cart-service healthcheck` (the image's HEALTHCHECK, the ECS
        container health check): 0 while /health answers 200 on
        APP_PORT, 1 when nothing answers."""
        srv = harness.Server().start()
        self.addCleanup(srv.cleanup)
        try:
            p = run_binary(["healthcheck"], {"APP_PORT": str(srv.port)})
            self.assertEqual(p.returncode, 0, p)
            self.assertEqual(p.stdout + p.stderr, b"")
        finally:
            srv.stop()
        p = run_binary(["healthcheck"], {"APP_PORT": str(srv.port)})
        self.assertEqual(p.returncode, 1, p)
        self.assertIn(b"/health", p.stderr)

    def test_settings_that_do_not_fit_together_stop_the_start(self):
        """Valid one by one, unusable together: exit 2 with one line naming
        the variable (the rate limiter is on by default here)."""
        for env, var in (({"RATE_LIMIT_STORE": "redis"}, "REDIS_URL"),
                         ({"TRUSTED_PROXIES": "10.0.0.0/33"}, "TRUSTED_PROXIES"),
                         ({"TRUSTED_PROXIES": "10.0.0/8"}, "TRUSTED_PROXIES"),
                         # one source per secret
                         ({"JWT_JWKS": "{}", "JWT_JWKS_FILE": "/k"}, "JWT_JWKS_FILE"),
                         ({"JWT_JWKS_URL": "https://x/j", "JWT_JWKS_SECRET_ID": "k"},
                          "JWT_JWKS_SECRET_ID"),
                         ({"REDIS_PASSWORD": "a", "REDIS_URL": "redis://:b@h:1"},
                          "REDIS_PASSWORD"),
                         ({"REDIS_PASSWORD_FILE": "/p", "REDIS_PASSWORD_SECRET_ID": "r"},
                          "REDIS_PASSWORD_SECRET_ID"),
                         ({"EVENTBRIDGE_BUS_NAME": "b", "EVENTBRIDGE_BUS_NAME_FILE": "/b"},
                          "EVENTBRIDGE_BUS_NAME_FILE")):
            with self.subTest(env=env):
                p = run_binary([], env)
                out = (p.stdout + p.stderr).decode("utf-8", "replace")
                self.assertEqual(p.returncode, 2, "%s: exit %s\n%s"
                                 % (env, p.returncode, out))
                self.assertIn(var, out)

    def test_a_bad_flags_file_stops_the_start(self):
        """FEATURE_FLAGS_FILE that is not a valid flags document: exit 2
        with one line naming the variable and why."""
        for text, why in (('{"events": fals', "not valid JSON"),
                          ('{"evnets": false}', "unknown flag"),
                          ('{"events": "yes"}', "expected true, false")):
            with self.subTest(text=text), \
                    tempfile.NamedTemporaryFile("w", suffix=".json") as f:
                f.write(text)
                f.flush()
                p = run_binary([], {"FEATURE_FLAGS_FILE": f.name})
                err = p.stderr.decode("utf-8", "replace").strip().splitlines()
                self.assertEqual(p.returncode, 2, (p.stdout, p.stderr))
                self.assertEqual(len(err), 1, err)
                self.assertIn("FEATURE_FLAGS_FILE", err[0])
                self.assertIn(why, err[0])

    def test_xray_daemon_address_is_checked_at_start(self):
        """AWS_XRAY_ENABLED=true is provided now (tests/e2e/test_tracing.py);
        a daemon address that is not host:port, or does not resolve, stops
        the start with a line naming it."""
        for env in ({"AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1"},
                    {"AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:0"},
                    {"AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000x"},
                    {"AWS_XRAY_ENABLED": "true",
                     "AWS_XRAY_DAEMON_ADDRESS": "no-such-host.invalid:2000"}):
            with self.subTest(env=env):
                p = run_binary([], env)
                out = (p.stdout + p.stderr).decode("utf-8", "replace")
                self.assertEqual(p.returncode, 2, "%s: exit %s\n%s"
                                 % (env, p.returncode, out))
                self.assertIn("AWS_XRAY_DAEMON_ADDRESS", out)

    def test_secrets_in_environment_are_not_logged(self):
        secret = "S3cr3t-" + new_user("")[2:]
        srv = harness.Server(env={"AWS_SECRET_ACCESS_KEY": secret,
                                  "AWS_SESSION_TOKEN": secret}).start()
        self.addCleanup(srv.cleanup)
        try:
            srv.request("GET", "/health")
        finally:
            srv.stop()
        self.assertNotIn(secret, srv.stdout() + srv.stderr())


    def test_secret_values_never_in_the_output(self):
        """Every secret-capable variable, inline or from a file, at
        LOG_LEVEL=debug: the start line shows *** or the path, never the
        value, and no line anywhere has it (README, "Secrets")."""
        tag = new_user("")[2:]
        pw_file = os.path.join(self.tmpdir(), "redis-password")
        with open(pw_file, "w") as f:
            f.write("file-pw-%s\n" % tag)
        common = {"LOG_LEVEL": "debug", "EVENTBRIDGE_BUS_NAME": "bus-%s" % tag,
                  "JWT_JWKS": '{"keys":[{"kty":"oct","k":"jwks-%s"}]}' % tag}
        for env in (dict(common, REDIS_URL="redis://cart:url-pw-%s@127.0.0.1:1" % tag),
                    dict(common, REDIS_URL="redis://127.0.0.1:1",
                         REDIS_PASSWORD_FILE=pw_file)):
            srv = harness.Server(env=env).start()
            self.addCleanup(srv.cleanup)
            try:
                srv.request("GET", "/health")
            finally:
                srv.stop()
            out = srv.stdout() + srv.stderr()
            self.assertNotIn(tag, out.replace(pw_file, ""))
            start = [d for d in srv.log_lines() if isinstance(d, dict) and "config" in d]
            self.assertEqual(start[0]["config"]["JWT_JWKS"], "***")
            self.assertEqual(start[0]["config"]["EVENTBRIDGE_BUS_NAME"], "***")
        self.assertEqual(start[0]["config"]["REDIS_PASSWORD_FILE"], pw_file)

    def tmpdir(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="cart-secrets-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        return d


class ShutdownTest(unittest.TestCase):

    def _post_headers(self, port, path, body):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (path, len(body))).encode()
        s.sendall(head)
        return s

    def _read_response(self, s):
        s.settimeout(10)
        resp = http.client.HTTPResponse(s)
        resp.begin()
        return harness.read_response(resp)

    def test_sigterm_idle_exits_0_quickly(self):
        srv = harness.Server().start()
        self.addCleanup(srv.cleanup)
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        rc = srv.wait_exit(harness.SHUTDOWN_TIMEOUT_SECONDS + 5)
        if rc is None:
            srv.proc.kill()
            srv.proc.wait()
        self.assertEqual(rc, 0, srv.logs())
        # Idle, nothing waits: civetweb's listener used to sleep out its
        # 2 s poll (every stop took 2.1 s); server_stop now wakes it.
        self.assertLess(time.monotonic() - t0, 1.0, srv.logs())

    def test_sigint_exits_0(self):
        srv = harness.Server().start()
        self.addCleanup(srv.cleanup)
        srv.stop(signal.SIGINT)

    def test_idle_keep_alive_connection_does_not_hold_shutdown(self):
        srv = harness.Server().start()
        self.addCleanup(srv.cleanup)
        conn = srv.connection()
        try:
            self.assertEqual(harness.send(conn, "GET", "/health").status, 200)
            t0 = time.monotonic()
            srv.stop()
            self.assertLess(time.monotonic() - t0,
                            harness.SHUTDOWN_TIMEOUT_SECONDS)
        finally:
            conn.close()

    def test_in_flight_request_finishes_and_ready_turns_503(self):
        srv = harness.Server().start()
        self.addCleanup(srv.cleanup)
        try:
            u = new_user()
            body = json.dumps({"itemId": "late", "quantity": 3,
                               "unitPrice": {"amount": 7, "currency": "EUR"}}
                              ).encode()
            s = self._post_headers(srv.port, "/v1/cart/%s/items" % u, body)
            s.sendall(body[:10])          # the request is now in flight
            time.sleep(0.3)
            t0 = time.monotonic()
            srv.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            self.assertIsNone(srv.proc.poll(), "exited with a request in "
                              "flight\n" + srv.logs())
            try:
                ready = srv.request("GET", "/ready", timeout=3)
            except OSError as e:
                ready = e
            try:
                s.sendall(body[10:])
                r = self._read_response(s)
            except (OSError, http.client.HTTPException) as e:
                self.fail("in-flight request was cut by SIGTERM (%r); /ready "
                          "during shutdown: %r\n%s" % (e, ready, srv.logs()))
            finally:
                s.close()
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.body["items"][0]["quantity"], 3)
            rc = srv.wait_exit(harness.SHUTDOWN_TIMEOUT_SECONDS + 3)
            self.assertEqual(rc, 0, srv.logs())
            self.assertLess(time.monotonic() - t0,
                            harness.SHUTDOWN_TIMEOUT_SECONDS + 1)
            self.assertNotIsInstance(ready, OSError,
                                     "/ready unreachable during shutdown")
            self.assertEqual(ready.status, 503, ready)
            checks = {c.get("name"): c.get("status")
                      for c in ready.body.get("checks", [])}
            self.assertEqual(checks.get("shutdown"), "fail", ready.body)
            self.assertNotEqual(ready.body.get("status"), "ok")
        finally:
            if srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()

    def test_ready_503_during_drain(self):
        # SHUTDOWN_DRAIN_SECONDS is this server's knob (not in the issue) for
        # keeping the listener open while /ready fails.
        srv = harness.Server(env={"SHUTDOWN_DRAIN_SECONDS": "1"}).start()
        self.addCleanup(srv.cleanup)
        try:
            t0 = time.monotonic()
            srv.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            ready = srv.request("GET", "/ready", timeout=3)
            self.assertEqual(ready.status, 503, ready)
            self.assertEqual(ready.header("content-type", "").split(";")[0],
                             "application/json", ready)
            checks = {c.get("name"): c.get("status")
                      for c in ready.body.get("checks", [])}
            self.assertEqual(checks.get("shutdown"), "fail", ready.body)
            self.assertEqual(checks.get("repository"), "ok", ready.body)
            self.assertEqual(ready.body.get("status"), "unavailable")
            # liveness is unaffected, and real requests are still served
            self.assertEqual(srv.request("GET", "/health").status, 200)
            u = new_user()
            r = srv.request("POST", "/v1/cart/%s/items" % u,
                            {"itemId": "a", "quantity": 1,
                             "unitPrice": {"amount": 1, "currency": "EUR"}})
            self.assertEqual(r.status, 201, r)
            rc = srv.wait_exit(1 + harness.SHUTDOWN_TIMEOUT_SECONDS + 2)
            self.assertEqual(rc, 0, srv.logs())
            self.assertLess(time.monotonic() - t0,
                            1 + harness.SHUTDOWN_TIMEOUT_SECONDS + 1)
        finally:
            if srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()

    def test_stalled_request_cannot_hold_shutdown_past_timeout(self):
        srv = harness.Server(env={"SHUTDOWN_TIMEOUT_SECONDS": "2"}).start()
        self.addCleanup(srv.cleanup)
        try:
            s = self._post_headers(srv.port, "/v1/cart/%s/items" % new_user(),
                                   b"{" + b" " * 99)
            s.sendall(b"{")
            time.sleep(0.2)
            t0 = time.monotonic()
            srv.send_signal(signal.SIGTERM)
            rc = srv.wait_exit(10)
            elapsed = time.monotonic() - t0
            s.close()
            self.assertIsNotNone(rc, "still running 10 s after SIGTERM")
            self.assertLess(elapsed, 2 + 1.5, "took %.1f s" % elapsed)
            self.assertEqual(rc, 0, srv.logs())
        finally:
            if srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()


if __name__ == "__main__":
    unittest.main()
