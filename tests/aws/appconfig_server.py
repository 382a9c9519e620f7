#!/usr/bin/python3
"""Test-side AWS AppConfig data plane (appconfigdata) on loopback.

It speaks the real wire protocol (rest-json, as botocore's `appconfigdata`
model describes it) and checks each request before it answers. Signatures
are not checked here: run it behind sigv4_proxy.SigV4Proxy(service=
"appconfig") (AwsStack(appconfig=True) does that), so every call is
signature-checked with botocore, scope `.../appconfig/aws4_request`.

    StartConfigurationSession  POST /configurationsessions (application/json)
        {"ApplicationIdentifier", "EnvironmentIdentifier",
         "ConfigurationProfileIdentifier" (1-128 characters each),
         "RequiredMinimumPollIntervalInSeconds" (optional, 15-86400)}
        -> 201 {"InitialConfigurationToken"}
    GetLatestConfiguration     GET /configuration?configuration_token=T
        -> 200, headers Next-Poll-Configuration-Token,
           Next-Poll-Interval-In-Seconds, Content-Type, Version-Label; the
           body is the deployed configuration when this session has not
           seen that version yet, else empty ("no change").

Errors as AWS sends them: status, `x-amzn-ErrorType` header and a JSON body
{"Message", ...}: BadRequestException (400: a malformed body, identifiers out
of bounds, a poll interval outside 15-86400, a missing, unknown or already
used token: each token is good for one call), ResourceNotFoundException
(404: no configuration deployed for the application/environment/profile),
ThrottlingException (429, fault), InternalServerException (500, fault).

Tokens are random base64 (with '+', '/' and '='), so a client that does not
percent-encode them in the query string fails the signature check.

Stand-in simplification: NextPollIntervalInSeconds is the session's
RequiredMinimumPollIntervalInSeconds (60 when not given), as on AWS, unless
the control API sets an override (tests use 1 s so a change shows at once).

Control API (unsigned JSON):
    POST /__control/configuration {"application", "environment", "profile",
                                   "content" (string), "content_type"
                                   (default application/json)}
                                  deploys a new version (Version-Label "v<N>")
    POST /__control/poll_interval {"seconds": N | null}
    POST /__control/fault {"kind": "throttle"|"error500", "count": 1}
    GET  /__control/stats  -> {"sessions": [{"application", "environment",
                               "profile", "interval"}], "polls", "changed",
                               "unchanged", "rejected": {type: n},
                               "last_rejection"}
    POST /__control/reset  (stats and faults; deployed configurations stay)
    GET  /__control/health

CLI: /usr/bin/python3 tests/aws/appconfig_server.py [--port N]
"""

import argparse
import base64
import http.server
import json
import os
import sys
import threading
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from standin import BackgroundServer, TrackingServer  # noqa: E402

MIN_POLL, MAX_POLL, DEFAULT_POLL = 15, 86400, 60
# What AwsStack(appconfig=True) deploys ("{}": no flag set) and what
# docs/iam/runtime-policy.json grants: application/environment/profile.
DEFAULT_TARGET = ("cart-service", "prod", "feature-flags")
MAX_ID = 128


class RequestError(Exception):
    def __init__(self, status, aws_type, message):
        super().__init__(message)
        self.status, self.aws_type, self.message = status, aws_type, message


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.configs = {}         # (app, env, profile) -> {"content", "content_type", "version"}
        self.tokens = {}          # token -> session dict (each used once)
        self.interval_override = None
        self.faults = []
        self.reset()

    def reset(self):
        self.sessions = []
        self.polls = self.changed = self.unchanged = 0
        self.rejected = {}
        self.last_rejection = None
        self.faults = []


def _new_token():
    # base64 with the characters a query string must escape
    return base64.b64encode(os.urandom(48) + b"\xfb\xff").decode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "appconfigdata-standin"
    disable_nagle_algorithm = True
    sys_version = ""
    timeout = 60

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.owner.verbose:
            sys.stderr.write("appconfig_server: " + fmt % args + "\n")

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status, obj, headers=()):
        self._send(status, json.dumps(obj).encode(),
                   [("Content-Type", "application/json")] + list(headers))

    def _error(self, err):
        state = self.server.owner.state
        with state.lock:
            state.rejected[err.aws_type] = state.rejected.get(err.aws_type, 0) + 1
            state.last_rejection = {"type": err.aws_type, "message": err.message}
        self._json(err.status, {"Message": err.message},
                   [("x-amzn-ErrorType", err.aws_type)])

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _dispatch(self):
        body = self._read_body()
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/__control/"):
            return self._control(url.path[len("/__control/"):].strip("/"), body)
        try:
            fault = self._take_fault()
            if fault == "throttle":
                raise RequestError(429, "ThrottlingException", "Rate exceeded")
            if fault == "error500":
                raise RequestError(500, "InternalServerException", "stand-in fault")
            if self.command == "POST" and url.path == "/configurationsessions":
                return self._start_session(body)
            if self.command == "GET" and url.path == "/configuration":
                return self._latest(url.query)
            raise RequestError(404, "UnknownOperationException",
                               "no operation %s %s" % (self.command, url.path))
        except RequestError as err:
            return self._error(err)

    def _take_fault(self):
        state = self.server.owner.state
        with state.lock:
            if not state.faults:
                return None
            f = state.faults[0]
            if f["count"] > 0:
                f["count"] -= 1
                if f["count"] == 0:
                    state.faults.pop(0)
            return f["kind"]

    def _start_session(self, body):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            raise RequestError(400, "BadRequestException",
                               "Content-Type must be application/json, got %r" % ctype)
        try:
            req = json.loads(body)
        except ValueError:
            raise RequestError(400, "BadRequestException", "request body is not JSON")
        if not isinstance(req, dict):
            raise RequestError(400, "BadRequestException", "request body must be an object")
        known = {"ApplicationIdentifier", "EnvironmentIdentifier",
                 "ConfigurationProfileIdentifier", "RequiredMinimumPollIntervalInSeconds"}
        if set(req) - known:
            raise RequestError(400, "BadRequestException",
                               "unknown member(s) %s" % sorted(set(req) - known))
        ids = []
        for key in ("ApplicationIdentifier", "EnvironmentIdentifier",
                    "ConfigurationProfileIdentifier"):
            v = req.get(key)
            if not isinstance(v, str) or not 1 <= len(v) <= MAX_ID:
                raise RequestError(400, "BadRequestException",
                                   "%s must be a string of 1-%d characters" % (key, MAX_ID))
            ids.append(v)
        interval = req.get("RequiredMinimumPollIntervalInSeconds", DEFAULT_POLL)
        if isinstance(interval, bool) or not isinstance(interval, int) or \
                not MIN_POLL <= interval <= MAX_POLL:
            raise RequestError(400, "BadRequestException",
                               "RequiredMinimumPollIntervalInSeconds must be %d-%d"
                               % (MIN_POLL, MAX_POLL))
        state = self.server.owner.state
        key = tuple(ids)
        with state.lock:
            if key not in state.configs:
                raise RequestError(404, "ResourceNotFoundException",
                                   "no configuration deployed for %s/%s/%s" % key)
            session = {"key": key, "interval": interval, "seen": None}
            token = _new_token()
            state.tokens[token] = session
            state.sessions.append({"application": key[0], "environment": key[1],
                                   "profile": key[2], "interval": interval})
        self._json(201, {"InitialConfigurationToken": token})

    def _latest(self, query):
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        tokens = params.get("configuration_token") or []
        if len(tokens) != 1 or not tokens[0]:
            raise RequestError(400, "BadRequestException",
                               "configuration_token is required")
        state = self.server.owner.state
        with state.lock:
            session = state.tokens.pop(tokens[0], None)
            if session is None:
                raise RequestError(400, "BadRequestException",
                                   "Invalid or already used ConfigurationToken")
            cfg = state.configs.get(session["key"])
            if cfg is None:
                raise RequestError(404, "ResourceNotFoundException",
                                   "the configuration was removed")
            state.polls += 1
            if session["seen"] == cfg["version"]:
                body = b""
                state.unchanged += 1
            else:
                body = cfg["content"].encode()
                session["seen"] = cfg["version"]
                state.changed += 1
            nxt = _new_token()
            state.tokens[nxt] = session
            interval = state.interval_override or session["interval"]
        self._send(200, body, [("Content-Type", cfg["content_type"]),
                               ("Next-Poll-Configuration-Token", nxt),
                               ("Next-Poll-Interval-In-Seconds", str(interval)),
                               ("Version-Label", "v%d" % cfg["version"])])

    def _control(self, path, body):
        state = self.server.owner.state
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return self._json(400, {"error": "body is not JSON"})
        method = self.command
        if path == "health":
            return self._json(200, {"ok": True})
        if path == "configuration" and method == "POST":
            self.server.owner.deploy(data["application"], data["environment"],
                                     data["profile"], data["content"],
                                     data.get("content_type", "application/json"))
            return self._json(200, {"ok": True})
        if path == "poll_interval" and method == "POST":
            with state.lock:
                state.interval_override = data.get("seconds")
            return self._json(200, {"ok": True})
        if path == "fault" and method == "POST":
            if data.get("kind") not in ("throttle", "error500"):
                return self._json(400, {"error": "kind must be throttle or error500"})
            with state.lock:
                state.faults.append({"kind": data["kind"], "count": int(data.get("count", 1))})
            return self._json(200, {"ok": True})
        if path == "stats" and method == "GET":
            with state.lock:
                return self._json(200, {
                    "sessions": list(state.sessions), "polls": state.polls,
                    "changed": state.changed, "unchanged": state.unchanged,
                    "rejected": dict(state.rejected),
                    "last_rejection": state.last_rejection})
        if path == "reset" and method == "POST":
            with state.lock:
                state.reset()
            return self._json(200, {"ok": True})
        return self._json(404, {"error": "unknown control endpoint %s %s" % (method, path)})


class _Server(TrackingServer):
    def __init__(self, addr, owner):
        self.owner = owner
        super().__init__(addr, _Handler)


class AppConfigServer(BackgroundServer):
    """The stand-in; start() serves on a background thread."""

    thread_name = "appconfig-standin"

    def __init__(self, host="127.0.0.1", port=0, verbose=False):
        self.verbose = verbose
        self.state = _State()
        self.stop_event = threading.Event()
        self._server = _Server((host, port), self)
        self.host, self.port = self._server.server_address[:2]

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def deploy(self, application, environment, profile, content,
               content_type="application/json"):
        """A new version of the configuration (Version-Label v<N>)."""
        key = (application, environment, profile)
        with self.state.lock:
            old = self.state.configs.get(key)
            self.state.configs[key] = {"content": content, "content_type": content_type,
                                       "version": (old["version"] + 1) if old else 1}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    srv = AppConfigServer(port=args.port, verbose=args.verbose).start()
    print(srv.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
