#!/usr/bin/python3
"""Test-side AWS stack: dynalite + SigV4-verifying proxy (+ ECS credentials).

Library:
    sys.path.insert(0, "tests/aws"); from stack import AwsStack, create_table
    with AwsStack(table="carts", ecs=True) as st:
        st.dynamodb_endpoint   # proxy URL: give this to the service
        st.dynalite_endpoint   # direct, unsigned-OK (admin / inspection only)
        st.fault("throttle", count=2, target="PutItem")
        st.stats()["targets"]  # {"DynamoDB_20120810.PutItem": 3, ...}
        st.env()               # env for a child process (see below)
    with AwsStack(eventbridge=True) as st:   # + PutEvents stand-in behind a
        st.events_endpoint     # SigV4 proxy for service "events"; st.events()

CLI:
    /usr/bin/python3 tests/aws/stack.py run [--table NAME] [--creds env|session|ecs]
        [--eventbridge [--bus NAME]...] [--env K=V]... -- CMD ARGS...
    /usr/bin/python3 tests/aws/stack.py serve [--table NAME]   # until Ctrl-C

`run` starts the stack, creates the table (directly on dynalite, so it does
not show in the proxy's counters) and runs CMD with DYNAMODB_ENDPOINT,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_DEFAULT_REGION,
AWS_EC2_METADATA_DISABLED=true, CART_TEST_DYNALITE, CART_TEST_CONTROL
(+ CART_TEST_TABLE, CART_TEST_ECS*; with --eventbridge EVENTBRIDGE_ENDPOINT,
CART_TEST_EVENTS_CONTROL, CART_TEST_EVENT_BUS) on top of the current environment, then
stops every server and exits with CMD's exit status.
"""

import argparse
import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import sigv4_proxy  # noqa: E402
from sigv4_proxy import (SigV4Proxy, TEST_AKID, TEST_SECRET,  # noqa: E402,F401
                         TEST_SESSION_AKID, TEST_SESSION_SECRET, TEST_SESSION_TOKEN)
from ecs_creds_server import EcsCredentialsServer  # noqa: E402
from eventbridge_server import EventBridgeServer  # noqa: E402
from secretsmanager_server import SecretsManagerServer  # noqa: E402

DYNALITE_CLI = os.path.join(HERE, "node_modules", "dynalite", "cli.js")
REGION = "us-east-1"
ECS_AUTH_TOKEN = "cart-test-ecs-authorization-token"

# Variables that would make an AWS client pick other credentials than ours.
_AMBIENT_AWS_VARS = (
    "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
)

_LIVE = set()
_LIVE_LOCK = threading.Lock()


def _stop_all():
    with _LIVE_LOCK:
        stacks = list(_LIVE)
    for st in stacks:
        try:
            st.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all)


def _die_with_parent():
    """preexec_fn: SIGTERM the child if the process that started it dies
    (covers kill -9 of the test process, where atexit cannot run)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_dynalite():
    """Install the pinned dynalite into tests/aws/node_modules if missing."""
    if os.path.exists(DYNALITE_CLI):
        return
    npm = shutil.which("npm")
    if npm is None or os.environ.get("CART_TEST_NO_NPM_INSTALL"):
        raise RuntimeError("dynalite is not installed: run `npm ci` in %s" % HERE)
    sys.stderr.write("stack: installing dynalite (npm ci in %s)\n" % HERE)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True,
                   stdout=sys.stderr)


def botocore_client(endpoint, service="dynamodb", akid=TEST_AKID, secret=TEST_SECRET,
                    token=None, region=REGION, max_attempts=1, timeout=10):
    """A botocore client (the independent, well-kept AWS client)."""
    import botocore.session
    from botocore.config import Config
    session = botocore.session.get_session()
    return session.create_client(
        service, region_name=region, endpoint_url=endpoint,
        aws_access_key_id=akid, aws_secret_access_key=secret, aws_session_token=token,
        config=Config(retries={"total_max_attempts": max_attempts, "mode": "standard"},
                      connect_timeout=timeout, read_timeout=timeout))


def create_table(endpoint, table, region=REGION, akid=TEST_AKID, secret=TEST_SECRET,
                 wait=True, timeout=15):
    """CreateTable PK/SK (string keys), PAY_PER_REQUEST; wait until ACTIVE.
    Idempotent: an existing table is left alone."""
    client = botocore_client(endpoint, akid=akid, secret=secret, region=region)
    try:
        _create_table(client, table, wait, timeout)
    finally:
        client.close()
    return table


def _create_table(client, table, wait, timeout):
    try:
        client.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                  {"AttributeName": "SK", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                       {"AttributeName": "SK", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST")
    except client.exceptions.ResourceInUseException:
        pass
    if wait:
        deadline = time.monotonic() + timeout
        while True:
            status = client.describe_table(TableName=table)["Table"]["TableStatus"]
            if status == "ACTIVE":
                break
            if time.monotonic() > deadline:
                raise TimeoutError("table %s still %s" % (table, status))
            time.sleep(0.05)


class AwsStack:
    """dynalite + SigV4 proxy (+ ECS credentials endpoint), all on loopback.

    Servers are stopped on __exit__/stop(), at interpreter exit (atexit), and
    dynalite also dies with the process that started it (PR_SET_PDEATHSIG)."""

    def __init__(self, table=None, ecs=False, ecs_lifetime_seconds=1200, ecs_rotate=True,
                 ecs_auth_token=ECS_AUTH_TOKEN, region=REGION, service="dynamodb",
                 create_table_ms=200, verbose=None, extra_credentials=None,
                 eventbridge=False, event_buses=None, dynamodb=True,
                 secretsmanager=False, secrets=None):
        """eventbridge=True also starts the PutEvents stand-in behind a second
        SigV4 proxy (service "events"); event_buses limits the bus names it
        accepts. dynamodb=False skips dynalite and its proxy (EventBridge only).
        secretsmanager=True starts the GetSecretValue stand-in behind a third
        SigV4 proxy (service "secretsmanager"), holding secrets {name: value}."""
        self.want_secretsmanager = secretsmanager
        self.initial_secrets = dict(secrets or {})
        self.secrets_server = None  # SecretsManagerServer
        self.secrets_proxy = None   # SigV4Proxy(service="secretsmanager")
        if table and not dynamodb:
            raise ValueError("table needs dynamodb=True")
        self.table = table
        self.want_dynamodb = dynamodb
        self.want_eventbridge = eventbridge
        self.event_buses = list(event_buses) if event_buses else None
        self.events_server = None   # EventBridgeServer
        self.events_proxy = None    # SigV4Proxy(service="events") in front of it
        self.region = region
        self.service = service
        self.want_ecs = ecs
        self.ecs_lifetime_seconds = ecs_lifetime_seconds
        self.ecs_rotate = ecs_rotate
        self.ecs_auth_token = ecs_auth_token
        self.create_table_ms = create_table_ms
        if verbose is None:
            verbose = bool(os.environ.get("CART_TEST_AWS_VERBOSE"))
        self.verbose = verbose
        self.extra_credentials = extra_credentials or {}
        self.proxy = None
        self.ecs = None
        self.dynalite = None      # subprocess.Popen
        self.dynalite_port = None
        self._tmpdir = None
        self._log = None

    # --- lifecycle --------------------------------------------------------
    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            creds = sigv4_proxy.default_credentials()
            creds.update(self.extra_credentials)
            if self.want_dynamodb:
                self._start_dynalite()
                self.proxy = SigV4Proxy(self.dynalite_endpoint, region=self.region,
                                        service=self.service, credentials=creds,
                                        verbose=self.verbose).start()
            if self.want_eventbridge:
                self.events_server = EventBridgeServer(buses=self.event_buses,
                                                       verbose=self.verbose).start()
                self.events_proxy = SigV4Proxy(self.events_server.url, region=self.region,
                                               service="events", credentials=creds,
                                               verbose=self.verbose,
                                               upstream_keepalive=False,
                                               mirror_upstream_close=True).start()
            if self.want_secretsmanager:
                self.secrets_server = SecretsManagerServer(
                    secrets=self.initial_secrets, verbose=self.verbose).start()
                self.secrets_proxy = SigV4Proxy(self.secrets_server.url, region=self.region,
                                                service="secretsmanager", credentials=creds,
                                                verbose=self.verbose,
                                                upstream_keepalive=False,
                                                mirror_upstream_close=True).start()
            if self.want_ecs:
                self.ecs = EcsCredentialsServer(
                    auth_token=self.ecs_auth_token, lifetime_seconds=self.ecs_lifetime_seconds,
                    rotate=self.ecs_rotate, register=self.add_credentials,
                    verbose=self.verbose).start()
            if self.table:
                create_table(self.dynalite_endpoint, self.table, region=self.region)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_dynalite(self):
        ensure_dynalite()
        node = os.environ.get("NODE") or shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed")
        self._tmpdir = tempfile.mkdtemp(prefix="cart-aws-stack-")
        last_error = None
        for _ in range(3):  # the free port may be taken between probe and bind
            port = free_port()
            log_path = os.path.join(self._tmpdir, "dynalite-%d.log" % port)
            self._log = open(log_path, "wb")
            ms = str(self.create_table_ms)
            self.dynalite = subprocess.Popen(
                [node, DYNALITE_CLI, "--port", str(port), "--host", "127.0.0.1",
                 "--createTableMs", ms, "--deleteTableMs", ms, "--updateTableMs", ms],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent, close_fds=True)
            self.dynalite_port = port
            try:
                self._wait_dynalite(timeout=20)
                return
            except RuntimeError as exc:
                last_error = exc
                self._stop_dynalite()
        raise last_error

    def _wait_dynalite(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.dynalite.poll() is not None:
                raise RuntimeError("dynalite exited with %s: %s"
                                   % (self.dynalite.returncode, self._log_tail()))
            req = urllib.request.Request(
                self.dynalite_endpoint + "/", data=b"{}", method="POST",
                headers={"X-Amz-Target": "DynamoDB_20120810.ListTables",
                         "Content-Type": "application/x-amz-json-1.0"})
            try:
                with urllib.request.urlopen(req, timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answers (unsigned requests get MissingAuthenticationToken)
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError("dynalite did not answer within %ss: %s" % (timeout, self._log_tail()))

    def _log_tail(self):
        try:
            with open(self._log.name, "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def _stop_dynalite(self):
        proc, self.dynalite = self.dynalite, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def add_credentials(self, akid, secret, token=None, expires_at=None):
        """Accept a key set on every proxy of the stack."""
        for proxy in (self.proxy, self.events_proxy, self.secrets_proxy):
            if proxy is not None:
                proxy.add_credentials(akid, secret, token, expires_at)

    def stop(self):
        try:
            if self.ecs is not None:
                self.ecs.stop()
            if self.proxy is not None:
                self.proxy.stop()
            if self.events_proxy is not None:
                self.events_proxy.stop()
            if self.events_server is not None:
                self.events_server.stop()
            if self.secrets_proxy is not None:
                self.secrets_proxy.stop()
            if self.secrets_server is not None:
                self.secrets_server.stop()
        finally:
            self._stop_dynalite()
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None
            with _LIVE_LOCK:
                _LIVE.discard(self)

    # --- endpoints ----------------------------------------------------------
    @property
    def dynamodb_endpoint(self):
        return self.proxy.url

    @property
    def control_endpoint(self):
        return self.proxy.url

    @property
    def dynalite_endpoint(self):
        return "http://127.0.0.1:%d" % self.dynalite_port

    @property
    def events_endpoint(self):
        """The events SigV4 proxy: give this to the service (EVENTBRIDGE_ENDPOINT)."""
        return self.events_proxy.url if self.events_proxy else None

    @property
    def events_control(self):
        """Base URL of the PutEvents stand-in's /__control/ API (unsigned)."""
        return self.events_server.url if self.events_server else None

    # --- EventBridge stand-in -------------------------------------------------
    def events(self):
        """Accepted entries, in order: [{bus, source, detailType, detail, time, ...}]."""
        return self.control("GET", "events", base=self.events_control)["events"]

    def events_stats(self):
        return self.control("GET", "stats", base=self.events_control)

    def events_fault(self, kind, count=1, **kw):
        return self.control("POST", "fault", dict(kw, kind=kind, count=count),
                            base=self.events_control)

    def events_reset(self):
        return self.control("POST", "reset", base=self.events_control)

    def events_proxy_stats(self):
        """The events proxy's own stats (signature rejections, targets)."""
        return self.control("GET", "stats", base=self.events_endpoint)

    def events_client(self, **kw):
        """botocore EventBridge client through the events proxy."""
        kw.setdefault("region", self.region)
        return botocore_client(self.events_endpoint, service="events", **kw)

    # --- Secrets Manager stand-in ---------------------------------------------
    @property
    def secrets_endpoint(self):
        """The secretsmanager SigV4 proxy: give this to the service."""
        return self.secrets_proxy.url if self.secrets_proxy else None

    def secrets_client(self, **kw):
        """botocore Secrets Manager client through the secretsmanager proxy."""
        kw.setdefault("region", self.region)
        return botocore_client(self.secrets_endpoint, service="secretsmanager", **kw)

    # --- control API --------------------------------------------------------
    def control(self, method, path, body=None, base=None):
        """Call the proxy's (or base's) control API; path 'stats' or '/__control/stats'."""
        if not path.startswith("/"):
            path = "/__control/" + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request((base or self.proxy.url) + path, data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            raise RuntimeError("control %s %s -> %s %s"
                               % (method, path, err.code, err.read().decode(errors="replace")))

    def stats(self):
        return self.control("GET", "stats")

    def reset(self):
        return self.control("POST", "reset")

    def fault(self, kind, count=1, target=None, **kw):
        spec = dict(kw, kind=kind, count=count)
        if target:
            spec["target"] = target
        return self.control("POST", "fault", spec)

    def ecs_stats(self):
        return self.ecs.stats() if self.ecs else None

    def client(self, **kw):
        """botocore DynamoDB client through the proxy (test credentials)."""
        kw.setdefault("region", self.region)
        return botocore_client(self.dynamodb_endpoint, **kw)

    def env(self, creds="env", base=None):
        """Environment for a child process: base (default os.environ) plus ours.
        creds: 'env' (AKIDCARTTEST), 'session' (ASIACARTTEST + token) or 'ecs'."""
        env = dict(os.environ if base is None else base)
        for name in _AMBIENT_AWS_VARS:
            env.pop(name, None)
        env.update({
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        if self.proxy is not None:
            env.update({
                "DYNAMODB_ENDPOINT": self.dynamodb_endpoint,
                "CART_TEST_DYNALITE": self.dynalite_endpoint,
                "CART_TEST_CONTROL": self.control_endpoint,
            })
        if self.events_proxy is not None:
            for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EVENTBRIDGE"):
                env.pop(name, None)   # EVENTBRIDGE_ENDPOINT is ours
            env.update({
                "EVENTBRIDGE_ENDPOINT": self.events_endpoint,
                "CART_TEST_EVENTS_CONTROL": self.events_control,
            })
            if self.event_buses:
                env["CART_TEST_EVENT_BUS"] = self.event_buses[0]
        if self.secrets_proxy is not None:
            for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
                env.pop(name, None)   # SECRETSMANAGER_ENDPOINT is ours
            env.update({
                "SECRETSMANAGER_ENDPOINT": self.secrets_proxy.url,
                "CART_TEST_SECRETS_CONTROL": self.secrets_server.url,
            })
        if self.table:
            env["CART_TEST_TABLE"] = self.table
        if creds == "env":
            env["AWS_ACCESS_KEY_ID"] = TEST_AKID
            env["AWS_SECRET_ACCESS_KEY"] = TEST_SECRET
        elif creds == "session":
            env["AWS_ACCESS_KEY_ID"] = TEST_SESSION_AKID
            env["AWS_SECRET_ACCESS_KEY"] = TEST_SESSION_SECRET
            env["AWS_SESSION_TOKEN"] = TEST_SESSION_TOKEN
        elif creds == "ecs":
            if self.ecs is None:
                raise ValueError("creds='ecs' needs AwsStack(ecs=True)")
            env.pop("AWS_ACCESS_KEY_ID", None)
            env.pop("AWS_SECRET_ACCESS_KEY", None)
        else:
            raise ValueError("creds must be env, session or ecs")
        if self.ecs is not None:
            env["CART_TEST_ECS_CONTROL"] = self.ecs.base_url
            if creds == "ecs":
                env.update(self.ecs.env())
        return env


# --- CLI ----------------------------------------------------------------------
def _cli_run(args):
    cmd = args.cmd
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        sys.stderr.write("stack.py run: no command given (… run [--table T] -- CMD ARGS)\n")
        return 2
    child = None
    received = []

    def on_signal(signum, frame):
        received.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)
        else:
            raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    stack = AwsStack(table=args.table, ecs=args.creds == "ecs" or args.ecs,
                     eventbridge=args.eventbridge, event_buses=args.bus)
    try:
        stack.start()
        env = stack.env(creds=args.creds)
        for item in args.env:
            key, _, value = item.partition("=")
            env[key] = value
        if args.verbose:
            for key in sorted(env):
                if key.startswith(("AWS_", "DYNAMODB_", "EVENTBRIDGE_", "CART_TEST_")):
                    sys.stderr.write("stack: %s=%s\n" % (key, env[key]))
        try:
            child = subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent)
        except OSError as exc:
            sys.stderr.write("stack.py run: cannot start %s: %s\n" % (cmd[0], exc))
            return 127
        while True:
            try:
                rc = child.wait()
                break
            except InterruptedError:
                continue
        if args.stats:
            if stack.proxy is not None:
                sys.stderr.write("stack: proxy stats %s\n" % json.dumps(stack.stats()))
            if stack.events_proxy is not None:
                sys.stderr.write("stack: events proxy stats %s\n"
                                 % json.dumps(stack.events_proxy_stats()))
                sys.stderr.write("stack: eventbridge stats %s\n"
                                 % json.dumps(stack.events_stats()))
        return rc if rc >= 0 else 128 - rc
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        stack.stop()


def _cli_serve(args):
    stack = AwsStack(table=args.table, ecs=args.ecs or args.creds == "ecs",
                     eventbridge=args.eventbridge, event_buses=args.bus)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    with stack:
        env = stack.env(creds=args.creds, base={})
        for key in sorted(env):
            print("export %s=%s" % (key, env[key]), flush=True)
        print("# stack is up; Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="stack.py", description="test-side AWS stack")
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("run", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--table", help="create this table (PK/SK, PAY_PER_REQUEST)")
        p.add_argument("--creds", choices=("env", "session", "ecs"), default="env",
                       help="credentials the child gets (default: env)")
        p.add_argument("--ecs", action="store_true", help="also start the ECS endpoint")
        p.add_argument("--eventbridge", action="store_true",
                       help="also start the PutEvents stand-in behind a SigV4 proxy for "
                            "service events (exports EVENTBRIDGE_ENDPOINT, "
                            "CART_TEST_EVENTS_CONTROL)")
        p.add_argument("--bus", action="append", default=None, metavar="NAME",
                       help="with --eventbridge: accept only this bus name (repeatable; "
                            "the first is exported as CART_TEST_EVENT_BUS)")
        p.add_argument("--verbose", action="store_true")
        if name == "run":
            p.add_argument("--env", action="append", default=[], metavar="K=V",
                           help="set/override a variable for CMD")
            p.add_argument("--stats", action="store_true",
                           help="print the proxy's stats to stderr at the end")
            p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.table is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", args.table):
        ap.error("--table %r: DynamoDB table names are 3-255 characters of "
                 "[A-Za-z0-9_.-]" % args.table)
    if args.bus and not args.eventbridge:
        ap.error("--bus needs --eventbridge")
    if args.verbose:
        os.environ["CART_TEST_AWS_VERBOSE"] = "1"
    if args.command == "run":
        return _cli_run(args)
    return _cli_serve(args)


if __name__ == "__main__":
    sys.exit(main())
