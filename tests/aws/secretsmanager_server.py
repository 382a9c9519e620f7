#!/usr/bin/python3
"""Test-side AWS Secrets Manager: GetSecretValue on loopback.

It speaks the real wire protocol (AWS JSON 1.1: POST /, X-Amz-Target
secretsmanager.GetSecretValue, Content-Type application/x-amz-json-1.1)
and answers with AWS's shapes: {"ARN", "Name", "VersionId",
"SecretString" | "SecretBinary" (base64), "VersionStages", "CreatedDate"},
errors as {"__type", "Message"}.  Signatures are not checked here: run it
behind sigv4_proxy.SigV4Proxy(service="secretsmanager") (AwsStack(
secretsmanager=True) does that), so every call is signature-checked.

Request checks (400, nothing read): wrong target -> UnknownOperationException;
another Content-Type -> UnknownOperationException; not JSON, unknown members
or wrong types -> SerializationException; SecretId missing or not 1..2048
characters -> ValidationException; VersionStage other than AWSCURRENT or a
VersionId that is not the current one -> ResourceNotFoundException.
Per secret: unknown -> ResourceNotFoundException ("Secrets Manager can't
find the specified secret."); "denied" -> AccessDeniedException (the
message IAM writes); "deleted" -> InvalidRequestException (marked for
deletion).  A secret is found by its name or its full ARN
(arn:aws:secretsmanager:us-east-1:123456789012:secret:NAME-XXXXXX).

Control API (unsigned JSON):
    POST /__control/secret  {"name", "string" | "binary" (base64), "denied",
                             "deleted"}: creates it, or puts a new version
                             (a rotation: new VersionId)  -> {"arn", "versionId"}
    POST /__control/fault   {"kind": "error"|"hang"|"drop", "count": 1 (-1:
                             until reset), "secret": name (default any),
                             "status": 500, "type": "InternalServiceError",
                             "message", "seconds"}
    GET  /__control/stats   -> {"calls", "reads": {arn: n} (answered with a
                             value), "rejected": {type: n}, "faults_served"}
    POST /__control/reset   (counters and faults; secrets stay)
"""

import argparse
import base64
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from standin import BackgroundServer  # noqa: E402
import eventbridge_server  # noqa: E402  (its request reading and answers)

TARGET = "secretsmanager.GetSecretValue"
CONTENT_TYPE = "application/x-amz-json-1.1"
ACCOUNT = "123456789012"
REGION = "us-east-1"
FAULT_KINDS = ("error", "hang", "drop")
_MEMBERS = {"SecretId": str, "VersionId": str, "VersionStage": str}


def arn_of(name):
    """The ARN AWS gives a secret: its name and a six-character suffix."""
    suffix = uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:6]
    return "arn:aws:secretsmanager:%s:%s:secret:%s-%s" % (REGION, ACCOUNT, name, suffix)


class Reject(Exception):
    def __init__(self, aws_type, message, status=400):
        super().__init__(message)
        self.aws_type, self.message, self.status = aws_type, message, status


class SecretsState:
    def __init__(self):
        self.lock = threading.Lock()
        self.secrets = {}   # name -> {"arn", "versions": [...], "denied", "deleted"}
        self.faults = []
        self._clear()

    def _clear(self):
        self.calls = 0
        self.reads = {}
        self.rejected = {}
        self.faults_served = 0

    def reset(self):
        with self.lock:
            self.faults = []
            self._clear()

    def put(self, spec):
        name = spec["name"]
        if ("string" in spec) == ("binary" in spec) and not ("denied" in spec or "deleted" in spec):
            raise ValueError("give exactly one of string and binary")
        with self.lock:
            s = self.secrets.setdefault(name, {"arn": arn_of(name), "versions": [],
                                               "denied": False, "deleted": False})
            for flag in ("denied", "deleted"):
                if flag in spec:
                    s[flag] = bool(spec[flag])
            if "string" in spec or "binary" in spec:
                s["versions"].append({"VersionId": str(uuid.uuid4()),
                                      "CreatedDate": time.time(),
                                      "SecretString": spec.get("string"),
                                      "SecretBinary": spec.get("binary")})
            current = s["versions"][-1]["VersionId"] if s["versions"] else None
            return {"arn": s["arn"], "versionId": current}

    def add_fault(self, spec):
        if spec.get("kind") not in FAULT_KINDS:
            raise ValueError("kind must be one of %s" % ", ".join(FAULT_KINDS))
        fault = dict(spec, count=int(spec.get("count", 1)))
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, name):
        with self.lock:
            for f in list(self.faults):
                if f.get("secret") in (None, name):
                    if f["count"] > 0:
                        f["count"] -= 1
                        if f["count"] == 0:
                            self.faults.remove(f)
                    self.faults_served += 1
                    return f
        return None

    def find(self, secret_id):
        for name, s in self.secrets.items():
            if secret_id in (name, s["arn"]):
                return name, s
        return None, None

    def stats(self):
        with self.lock:
            return {"calls": self.calls, "reads": dict(self.reads),
                    "rejected": dict(self.rejected), "faults_served": self.faults_served,
                    "faults_pending": len(self.faults)}


def parse_request(body):
    try:
        req = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Reject("SerializationException", "Unexpected character in the request body")
    if not isinstance(req, dict):
        raise Reject("SerializationException", "Start of list found where not expected")
    for key, value in req.items():
        if key not in _MEMBERS:
            raise Reject("SerializationException", "Unknown member %s" % key)
        if not isinstance(value, _MEMBERS[key]):
            raise Reject("SerializationException", "%s has the wrong JSON type" % key)
    sid = req.get("SecretId")
    if not sid or len(sid) > 2048:
        raise Reject("ValidationException", "1 validation error detected: Value at "
                     "'secretId' failed to satisfy constraint: Member must have length "
                     "between 1 and 2048")
    return req


def answer(state, req):
    """The GetSecretValue answer for req (under state.lock), or Reject."""
    name, s = state.find(req["SecretId"])
    if s is None or not s["versions"]:
        raise Reject("ResourceNotFoundException",
                     "Secrets Manager can't find the specified secret.")
    if s["denied"]:
        raise Reject("AccessDeniedException",
                     "User: arn:aws:iam::%s:user/cart-test is not authorized to perform: "
                     "secretsmanager:GetSecretValue on resource: %s because no "
                     "identity-based policy allows the secretsmanager:GetSecretValue "
                     "action" % (ACCOUNT, req["SecretId"]))
    if s["deleted"]:
        raise Reject("InvalidRequestException",
                     "You can't perform this operation on the secret because it was "
                     "marked for deletion.")
    v = s["versions"][-1]
    if req.get("VersionStage", "AWSCURRENT") != "AWSCURRENT" or \
            req.get("VersionId", v["VersionId"]) != v["VersionId"]:
        raise Reject("ResourceNotFoundException",
                     "Secrets Manager can't find the specified secret value for "
                     "staging label: %s" % req.get("VersionStage", "AWSCURRENT"))
    out = {"ARN": s["arn"], "Name": name, "VersionId": v["VersionId"],
           "VersionStages": ["AWSCURRENT"], "CreatedDate": v["CreatedDate"]}
    if v["SecretString"] is not None:
        out["SecretString"] = v["SecretString"]
    else:
        out["SecretBinary"] = v["SecretBinary"]
    state.reads[s["arn"]] = state.reads.get(s["arn"], 0) + 1
    return out


class _Handler(eventbridge_server._Handler):
    server_version = "secretsmanager-standin"

    def log_message(self, fmt, *args):
        if self.server.owner.verbose:
            sys.stderr.write("secretsmanager_server: " + (fmt % args) + "\n")

    def _error(self, status, aws_type, message):
        state = self.server.owner.state
        with state.lock:
            state.rejected[aws_type] = state.rejected.get(aws_type, 0) + 1
        self._send(status, {"__type": aws_type, "Message": message})

    def _dispatch(self):
        body = self._read_body()
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/__control/"):
            return self._control(path[len("/__control/"):].strip("/"), body)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if self.command != "POST" or path != "/" or \
                self.headers.get("X-Amz-Target") != TARGET or ctype != CONTENT_TYPE:
            return self._error(400, "UnknownOperationException",
                               "only POST / with X-Amz-Target %s and %s is served"
                               % (TARGET, CONTENT_TYPE))
        state = self.server.owner.state
        with state.lock:
            state.calls += 1
        try:
            req = parse_request(body)
            fault = state.take_fault(state.find(req["SecretId"])[0] or req["SecretId"])
            if fault and fault["kind"] == "drop":
                return self._drop()
            if fault and fault["kind"] == "hang":
                self.server.owner.stop_event.wait(float(fault.get("seconds", 10)))
                return self._drop()
            if fault:
                raise Reject(fault.get("type", "InternalServiceError"),
                             fault.get("message", "An error occurred on the server side."),
                             int(fault.get("status", 500)))
            with state.lock:
                out = answer(state, req)
        except Reject as err:
            return self._error(err.status, err.aws_type, err.message)
        self._send(200, out)

    def _control(self, path, body):
        state = self.server.owner.state
        try:
            data = json.loads(body) if body.strip() else {}
            if path == "secret" and self.command == "POST":
                return self._send(200, state.put(data), "application/json")
            if path == "fault" and self.command == "POST":
                state.add_fault(data)
                return self._send(200, {"queued": 1}, "application/json")
            if path == "stats" and self.command == "GET":
                return self._send(200, state.stats(), "application/json")
            if path == "reset" and self.command == "POST":
                state.reset()
                return self._send(200, {"ok": True}, "application/json")
            if path == "health":
                return self._send(200, {"ok": True}, "application/json")
        except (KeyError, ValueError, TypeError) as exc:
            return self._send(400, {"error": "%s: %s" % (type(exc).__name__, exc)},
                              "application/json")
        return self._send(404, {"error": "unknown control endpoint %s" % path},
                          "application/json")


class SecretsManagerServer(BackgroundServer):
    """The GetSecretValue stand-in; start() serves on a background thread."""

    thread_name = "secretsmanager-server"

    def __init__(self, host="127.0.0.1", port=0, secrets=None, verbose=False):
        self.verbose = verbose
        self.state = SecretsState()
        for name, value in (secrets or {}).items():
            self.state.put({"name": name, "string": value})
        self.stop_event = threading.Event()
        self._server = eventbridge_server._Server((host, port), self, _Handler)
        self.host, self.port = self._server.server_address[:2]

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def put(self, name, string=None, binary=None, **flags):
        spec = dict(flags, name=name)
        if string is not None:
            spec["string"] = string
        if binary is not None:
            spec["binary"] = base64.b64encode(binary).decode()
        return self.state.put(spec)

    def fault(self, kind, count=1, **kw):
        self.state.add_fault(dict(kw, kind=kind, count=count))

    def stats(self):
        return self.state.stats()

    def reset(self):
        self.state.reset()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--secret", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    srv = SecretsManagerServer(port=args.port, verbose=args.verbose,
                               secrets=dict(s.split("=", 1) for s in args.secret))
    srv.serve_until_interrupted("secretsmanager_server listening at %s (unsigned; put "
                                "sigv4_proxy.py --service secretsmanager in front)" % srv.url)


if __name__ == "__main__":
    main()
