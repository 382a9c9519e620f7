#!/usr/bin/python3
"""ECS container credentials endpoint stand-in (test side).

Serves GET <path> (default /v2/credentials/test) like the ECS agent:
  {"AccessKeyId", "SecretAccessKey", "Token", "Expiration": "...Z", "RoleArn"}
In full-URI mode (auth_token set) the request must carry
'Authorization: <auth_token>' (401 otherwise), as with
AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN.

Every key set it hands out is registered with the SigV4 proxy (callback or
the proxy's /__control/credentials), with its expiry, so the proxy accepts
exactly the issued, still-valid keys and answers ExpiredTokenException after.
With rotate=True every response is a fresh key set (AKID suffix counter);
with rotate=False the current set is re-served until it expires.

Control API (unsigned JSON, same port):
  GET  /__control/stats   {"requests", "served", "unauthorized", "failed", "issued": [...], "current"}
  POST /__control/config  {"lifetime_seconds", "rotate", "fail_next", "fail_status", "hang_seconds"}
  POST /__control/reset   clear counters (issued keys stay registered)
"""

import argparse
import http.server
import os
import json
import secrets
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sigv4_proxy import _iso8601  # noqa: E402
from standin import BackgroundServer, TrackingServer  # noqa: E402


class EcsCredentialsServer(BackgroundServer):
    thread_name = "ecs-creds"

    def __init__(self, host="127.0.0.1", port=0, path="/v2/credentials/test",
                 auth_token=None, lifetime_seconds=1200, rotate=True,
                 akid_prefix="ASIACARTECS", role_arn="arn:aws:iam::123456789012:role/cart-service-test",
                 register=None, proxy_control=None, verbose=False, clock=time.time):
        """register(akid, secret, token, expires_at) is called for each new
        key set; or give proxy_control (proxy base URL) to register over HTTP."""
        self.path = path
        self.auth_token = auth_token
        self.lifetime_seconds = float(lifetime_seconds)
        self.rotate = rotate
        self.akid_prefix = akid_prefix
        self.role_arn = role_arn
        self.verbose = verbose
        self.clock = clock
        if register is None and proxy_control is not None:
            register = _http_register(proxy_control)
        self.register = register
        self.lock = threading.Lock()
        self.counter = 0
        self.current = None
        self.issued = []
        self.fail_next = 0
        self.fail_status = 500
        self.hang_seconds = 0.0
        self.stop_event = threading.Event()
        self._reset_counters()
        self._server = TrackingServer((host, port), _EcsHandler)
        self._server.ecs = self
        self.host, self.port = self._server.server_address[:2]
        self._thread = None

    def _reset_counters(self):
        self.requests = 0
        self.served = 0
        self.unauthorized = 0
        self.failed = 0

    @property
    def base_url(self):
        return "http://%s:%d" % (self.host, self.port)

    @property
    def full_uri(self):
        return self.base_url + self.path

    @property
    def relative_uri(self):
        return self.path

    def env(self):
        """Environment for a client using this endpoint (full-URI mode)."""
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.full_uri}
        if self.auth_token:
            env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = self.auth_token
        return env

    def issue(self):
        """Return the credentials to hand out now (a new set when rotating)."""
        with self.lock:
            now = self.clock()
            cur = self.current
            if self.rotate or cur is None or now >= cur["expires_at"]:
                self.counter += 1
                cur = {
                    "akid": "%s%04d" % (self.akid_prefix, self.counter),
                    "secret": secrets.token_urlsafe(30),
                    "token": "ecs-session-" + secrets.token_urlsafe(48),
                    "expires_at": int(now + self.lifetime_seconds),
                }
                if self.register is not None:
                    self.register(cur["akid"], cur["secret"], cur["token"], cur["expires_at"])
                self.current = cur
                self.issued.append(cur["akid"])
            return dict(cur)

    def stats(self):
        with self.lock:
            return {
                "requests": self.requests,
                "served": self.served,
                "unauthorized": self.unauthorized,
                "failed": self.failed,
                "issued": list(self.issued),
                "current": self.current["akid"] if self.current else None,
                "current_expiration": _iso8601(self.current["expires_at"]) if self.current else None,
            }

    def configure(self, data):
        with self.lock:
            if "lifetime_seconds" in data:
                self.lifetime_seconds = float(data["lifetime_seconds"])
            if "rotate" in data:
                self.rotate = bool(data["rotate"])
            if "fail_next" in data:
                self.fail_next = int(data["fail_next"])
            if "fail_status" in data:
                self.fail_status = int(data["fail_status"])
            if "hang_seconds" in data:
                self.hang_seconds = float(data["hang_seconds"])



def _http_register(proxy_base):
    def register(akid, secret, token, expires_at):
        body = json.dumps({"akid": akid, "secret": secret, "token": token,
                           "expires_at": expires_at}).encode()
        req = urllib.request.Request(proxy_base.rstrip("/") + "/__control/credentials",
                                     data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()
    return register


class _EcsHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ecs-creds-standin"
    sys_version = ""
    timeout = 60

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.ecs.verbose:
            sys.stderr.write("ecs_creds_server: " + (fmt % args) + "\n")

    def _send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self._dispatch()

    def do_GET(self):
        self._dispatch()

    def _dispatch(self):
        ecs = self.server.ecs
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path.startswith("/__control/"):
            name = path[len("/__control/"):].strip("/")
            try:
                data = json.loads(body) if body.strip() else {}
            except ValueError:
                return self._send_json(400, {"error": "body is not JSON"})
            if name == "stats":
                return self._send_json(200, ecs.stats())
            if name == "config" and self.command == "POST":
                ecs.configure(data)
                return self._send_json(200, {"ok": True})
            if name == "reset" and self.command == "POST":
                with ecs.lock:
                    ecs._reset_counters()
                    ecs.fail_next = 0
                    ecs.hang_seconds = 0.0
                return self._send_json(200, {"ok": True})
            return self._send_json(404, {"error": "unknown control endpoint"})

        with ecs.lock:
            ecs.requests += 1
        if self.command != "GET" or path != ecs.path:
            return self._send_json(404, {"code": "NotFound", "message": "Not Found"})
        if ecs.auth_token is not None and self.headers.get("Authorization") != ecs.auth_token:
            with ecs.lock:
                ecs.unauthorized += 1
            return self._send_json(401, {"code": "AccessDenied",
                                         "message": "Invalid authorization token"})
        with ecs.lock:
            hang = ecs.hang_seconds
            fail = ecs.fail_next > 0
            if fail:
                ecs.fail_next -= 1
                ecs.failed += 1
        if hang:
            ecs.stop_event.wait(hang)
        if fail:
            return self._send_json(ecs.fail_status, {"code": "InternalError",
                                                     "message": "injected failure"})
        cred = ecs.issue()
        with ecs.lock:
            ecs.served += 1
        return self._send_json(200, {
            "AccessKeyId": cred["akid"],
            "SecretAccessKey": cred["secret"],
            "Token": cred["token"],
            "Expiration": _iso8601(cred["expires_at"]),
            "RoleArn": ecs.role_arn,
        })


def main(argv=None):
    ap = argparse.ArgumentParser(description="ECS container credentials stand-in")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--path", default="/v2/credentials/test")
    ap.add_argument("--auth-token")
    ap.add_argument("--lifetime", type=float, default=1200)
    ap.add_argument("--no-rotate", action="store_true")
    ap.add_argument("--proxy-control", help="SigV4 proxy base URL to register keys with")
    args = ap.parse_args(argv)
    srv = EcsCredentialsServer(args.host, args.port, args.path, args.auth_token,
                               args.lifetime, not args.no_rotate,
                               proxy_control=args.proxy_control, verbose=True)
    print("ecs_creds_server listening at %s" % srv.full_uri, flush=True)
    try:
        srv._server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
