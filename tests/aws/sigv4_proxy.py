#!/usr/bin/python3
"""SigV4-verifying reverse proxy with fault injection (test-side AWS stand-in).

Sits between the service under test and an AWS-protocol server (dynalite, or
any JSON-protocol stand-in) and, for every request, recomputes the AWS
Signature Version 4 with botocore -- an implementation independent of the
service's own signer (adapters/aws/aws_sigv4.c) -- and rejects what real AWS would reject,
with the error shapes real AWS returns.

Only the choice of *which* headers are canonicalised is ours: exactly the ones
the client lists in SignedHeaders, as AWS does (botocore's own signer would
skip expect/user-agent/x-amzn-trace-id). Canonical request, string to sign,
key derivation and HMAC are botocore's.

Control API (unsigned JSON, same port, path prefix /__control/):
  GET  /__control/stats        counters (see ProxyState.stats)
  GET  /__control/faults       pending faults
  POST /__control/fault        {"kind": ..., "count": N, "target": ..., ...}
  POST /__control/reset        clear counters and faults (credentials stay)
  GET  /__control/credentials  accepted AKIDs (no secrets)
  POST /__control/credentials  {"akid","secret","token"?,"expiration"?|"expires_at"?}
  POST /__control/credentials/revoke {"akid"}

Standalone:
  /usr/bin/python3 tests/aws/sigv4_proxy.py --upstream http://127.0.0.1:4567 \
      --port 8000 [--region us-east-1] [--service dynamodb] \
      [--cred AKID:SECRET[:TOKEN]]...
"""

import argparse
import calendar
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
import uuid

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from standin import BackgroundServer, TrackingServer  # noqa: E402
import ddb_transact  # noqa: E402

SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_SECONDS = 300

CORAL = "com.amazon.coral.service#"
DDB = "com.amazonaws.dynamodb.v20120810#"

MSG_INVALID_TOKEN = "The security token included in the request is invalid."
MSG_EXPIRED_TOKEN = "The security token included in the request is expired"
MSG_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method. Consult "
    "the service documentation for details."
)

# Default test credentials (see stack.py).
TEST_AKID = "AKIDCARTTEST"
TEST_SECRET = "cart-test-secret"
TEST_SESSION_AKID = "ASIACARTTEST"
TEST_SESSION_SECRET = "cart-test-session-secret"
TEST_SESSION_TOKEN = "cart-test-session-token"

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding",
    "upgrade", "content-length",
}


def _iso8601(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def parse_iso8601(text):
    """Parse '2026-01-01T00:00:00Z' (or with offset / fraction) to epoch."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


class AuthError(Exception):
    """A request AWS would refuse; carries the AWS error shape."""

    def __init__(self, error_type, message, status=400, detail=None):
        super().__init__(message)
        self.error_type = error_type      # short name, e.g. InvalidSignatureException
        self.message = message
        self.status = status
        self.detail = detail              # extra diagnostics (not sent)

    @property
    def aws_type(self):
        return CORAL + self.error_type


class Credential:
    __slots__ = ("akid", "secret", "token", "expires_at")

    def __init__(self, akid, secret, token=None, expires_at=None):
        self.akid = akid
        self.secret = secret
        self.token = token or None
        self.expires_at = expires_at

    def public(self):
        return {
            "akid": self.akid,
            "has_token": self.token is not None,
            "expiration": _iso8601(self.expires_at) if self.expires_at else None,
        }


class CredentialStore:
    """Thread-safe akid -> Credential map."""

    def __init__(self, creds=None):
        self._lock = threading.Lock()
        self._creds = {}
        for akid, value in (creds or {}).items():
            if isinstance(value, (tuple, list)):
                self.put(akid, *value)
            else:
                self.put(akid, value)

    def put(self, akid, secret, token=None, expires_at=None):
        with self._lock:
            self._creds[akid] = Credential(akid, secret, token, expires_at)

    def revoke(self, akid):
        with self._lock:
            return self._creds.pop(akid, None) is not None

    def get(self, akid):
        with self._lock:
            return self._creds.get(akid)

    def list(self):
        with self._lock:
            return [c.public() for c in self._creds.values()]


class _ClaimedHeadersSigV4(SigV4Auth):
    """botocore's SigV4 over exactly the headers the client claims to sign."""

    def __init__(self, credentials, service, region, signed_names, header_pairs):
        super().__init__(credentials, service, region)
        self._signed_names = signed_names
        self._pairs = header_pairs

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name in self._signed_names:
            for hname, value in self._pairs:
                if hname.lower() == name:
                    header_map[name] = value  # Message.__setitem__ appends
        return header_map


def _header_values(pairs, name):
    name = name.lower()
    return [v for k, v in pairs if k.lower() == name]


def _parse_authorization(value):
    if not value.startswith(ALGORITHM + " "):
        algo = value.split(" ", 1)[0]
        raise AuthError("IncompleteSignatureException",
                        "Unsupported AWS 'algorithm': '%s'" % algo)
    params = {}
    for part in value[len(ALGORITHM) + 1:].split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        if not sep:
            raise AuthError(
                "IncompleteSignatureException",
                "'%s' not a valid key=value pair (missing equal-sign) in "
                "Authorization header: '%s'." % (part, value))
        params[key.strip()] = val.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature")
               if not params.get(k)]
    if missing:
        raise AuthError(
            "IncompleteSignatureException",
            " ".join("Authorization header requires '%s' parameter." % k
                     for k in missing)
            + " Authorization=" + value)
    return params


class VerifiedRequest:
    __slots__ = ("akid", "signed_headers", "timestamp")

    def __init__(self, akid, signed_headers, timestamp):
        self.akid = akid
        self.signed_headers = signed_headers
        self.timestamp = timestamp


class SigV4Verifier:
    """Verify AWS SigV4 header-signed requests the way the service endpoint does."""

    def __init__(self, store, region="us-east-1", service="dynamodb",
                 max_skew=MAX_SKEW_SECONDS, clock=time.time):
        self.store = store
        self.region = region
        self.service = service
        self.max_skew = max_skew
        self.clock = clock

    def verify(self, method, raw_path, header_pairs, body):
        """header_pairs: list of (name, value) as received; raise AuthError."""
        auth_values = _header_values(header_pairs, "authorization")
        if not auth_values:
            raise AuthError("MissingAuthenticationTokenException",
                            "Request is missing Authentication Token")
        if len(auth_values) > 1:
            raise AuthError("IncompleteSignatureException",
                            "Multiple Authorization headers")
        params = _parse_authorization(auth_values[0])

        scope = params["Credential"].split("/")
        if len(scope) != 5:
            raise AuthError(
                "IncompleteSignatureException",
                "Credential must have exactly 5 slash-delimited elements, "
                "e.g. keyid/date/region/service/term, got '%s'"
                % params["Credential"])
        akid, scope_date, scope_region, scope_service, term = scope

        dates = _header_values(header_pairs, "x-amz-date")
        if not dates:
            raise AuthError(
                "IncompleteSignatureException",
                "Authorization header requires existence of either a "
                "'X-Amz-Date' or a 'Date' header. Authorization="
                + auth_values[0])
        amz_date = dates[0].strip()
        try:
            req_time = calendar.timegm(time.strptime(amz_date, SIGV4_TIMESTAMP))
        except ValueError:
            raise AuthError(
                "IncompleteSignatureException",
                "Date must be in ISO-8601 'basic format'. Got '%s'. See "
                "http://en.wikipedia.org/wiki/ISO_8601" % amz_date)

        cred = self.store.get(akid)
        if cred is None:
            raise AuthError("UnrecognizedClientException", MSG_INVALID_TOKEN,
                            detail="unknown access key id %r" % akid)
        now = self.clock()
        if cred.expires_at is not None and now >= cred.expires_at:
            raise AuthError("ExpiredTokenException", MSG_EXPIRED_TOKEN,
                            detail="credential %s expired at %s"
                            % (akid, _iso8601(cred.expires_at)))

        signed_names = params["SignedHeaders"].split(";")
        if any(n != n.lower().strip() or not n for n in signed_names):
            # e.g. libcurl 7.88 with a 'Name;' (empty-valued) header entry
            # emits 'SignedHeaders=...;name;' -- an empty element.
            raise AuthError("InvalidSignatureException", MSG_SIGNATURE_MISMATCH,
                            detail="malformed SignedHeaders (empty or upper-case "
                            "element): %r" % params["SignedHeaders"])

        tokens = _header_values(header_pairs, "x-amz-security-token")
        if cred.token is not None:
            if not tokens:
                raise AuthError("UnrecognizedClientException", MSG_INVALID_TOKEN,
                                detail="session credentials %s used without "
                                "X-Amz-Security-Token" % akid)
            if "x-amz-security-token" not in signed_names:
                raise AuthError("UnrecognizedClientException", MSG_INVALID_TOKEN,
                                detail="X-Amz-Security-Token is not in "
                                "SignedHeaders")
            if len(tokens) != 1 or not hmac.compare_digest(
                    tokens[0].strip().encode(), cred.token.encode()):
                raise AuthError("UnrecognizedClientException", MSG_INVALID_TOKEN,
                                detail="X-Amz-Security-Token does not belong "
                                "to %s" % akid)
        elif tokens:
            raise AuthError("UnrecognizedClientException", MSG_INVALID_TOKEN,
                            detail="X-Amz-Security-Token sent with long-term "
                            "credentials %s" % akid)

        if term != "aws4_request":
            raise AuthError(
                "InvalidSignatureException",
                "Credential should be scoped with a valid terminator: "
                "'aws4_request', not '%s'." % term)
        if scope_region != self.region:
            raise AuthError(
                "InvalidSignatureException",
                "Credential should be scoped to a valid region, not '%s'. "
                % scope_region)
        if scope_service != self.service:
            raise AuthError(
                "InvalidSignatureException",
                "Credential should be scoped to correct service: '%s'. "
                % self.service)
        if scope_date != amz_date[:8]:
            raise AuthError(
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from "
                "ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'."
                % (scope_date, amz_date[:8], amz_date))

        fmt = lambda t: time.strftime(SIGV4_TIMESTAMP, time.gmtime(t))
        if req_time < now - self.max_skew:
            raise AuthError(
                "InvalidSignatureException",
                "Signature expired: %s is now earlier than %s (%s - 5 min.)"
                % (amz_date, fmt(now - self.max_skew), fmt(now)))
        if req_time > now + self.max_skew:
            raise AuthError(
                "InvalidSignatureException",
                "Signature not yet current: %s is still later than %s "
                "(%s + 5 min.)" % (amz_date, fmt(now + self.max_skew), fmt(now)))

        for required in ("host", "x-amz-date"):
            if required not in signed_names:
                raise AuthError(
                    "InvalidSignatureException",
                    "'%s' must be a 'SignedHeader' in the AWS Authorization."
                    % ("Host" if required == "host" else "X-Amz-Date"))
        for name in signed_names:
            if not _header_values(header_pairs, name):
                # AWS canonicalises the headers it received; a header that is
                # listed but not sent (libcurl's empty 'Name:' entries) cannot
                # produce the client's signature.
                raise AuthError(
                    "InvalidSignatureException", MSG_SIGNATURE_MISMATCH,
                    detail="header %r is listed in SignedHeaders but not "
                    "present in the request (libcurl lists empty 'Name:' "
                    "header entries such as 'Expect:' without sending them)"
                    % name)

        content_sha = _header_values(header_pairs, "x-amz-content-sha256")
        if content_sha and content_sha[0].strip() != hashlib.sha256(body).hexdigest():
            raise AuthError(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match "
                "what was computed.")

        host = _header_values(header_pairs, "host")[0].strip()
        request_headers = HTTPHeaders()
        for name, value in header_pairs:
            if name.lower() in signed_names or name.lower() == "x-amz-content-sha256":
                request_headers[name] = value
        request = AWSRequest(method=method, url="http://" + host + raw_path,
                             data=body)
        request.headers = request_headers
        request.context["timestamp"] = amz_date
        signer = _ClaimedHeadersSigV4(
            Credentials(akid, cred.secret, cred.token), scope_service,
            scope_region, signed_names, header_pairs)
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        expected = signer.signature(string_to_sign, request)
        computed_names = signer.signed_headers(signer.headers_to_sign(request))
        if computed_names != params["SignedHeaders"] or not hmac.compare_digest(
                expected.encode(), params["Signature"].encode()):
            raise AuthError(
                "InvalidSignatureException",
                MSG_SIGNATURE_MISMATCH
                + "\n\nThe Canonical String for this request should have been\n'"
                + canonical + "'\n\nThe String-to-Sign should have been\n'"
                + string_to_sign + "'\n",
                detail="signature mismatch for %s" % akid)
        return VerifiedRequest(akid, signed_names, amz_date)


FAULT_KINDS = {
    "throttle", "throttling", "request_limit", "error500", "error503",
    "hang", "drop", "timeout_after_forward", "status",
}


def _fault_error_body(kind, fault):
    if kind == "throttle":
        return 400, DDB + "ProvisionedThroughputExceededException", (
            "The level of configured provisioned throughput for the table was "
            "exceeded. Consider increasing your provisioning level with the "
            "UpdateTable API.")
    if kind == "throttling":
        return 400, "com.amazon.coral.availability#ThrottlingException", (
            "Rate of requests exceeds the allowed throughput.")
    if kind == "request_limit":
        return 400, DDB + "RequestLimitExceeded", (
            "Throughput exceeds the current throughput limit for your account. "
            "Please contact AWS Support at https://aws.amazon.com/support "
            "request a limit increase")
    if kind == "error500":
        return 500, DDB + "InternalServerError", "Internal server error"
    if kind == "error503":
        return 503, "com.amazon.coral.availability#ServiceUnavailableException", (
            "Service Unavailable")
    if kind == "status":
        return (int(fault.get("status", 500)), fault.get("type", DDB + "InternalServerError"),
                fault.get("message", "injected fault"))
    raise ValueError(kind)


def _index_name(body):
    """The IndexName of a JSON request body (Query, Scan), or None."""
    if b"IndexName" not in body:
        return None
    try:
        name = json.loads(body).get("IndexName")
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


class ProxyState:
    """Counters, faults and credentials shared by all handler threads."""

    def __init__(self, verifier):
        self.verifier = verifier
        self.lock = threading.Lock()
        self.faults = []
        self._clear()

    def _clear(self):
        self.targets = {}
        self.indexes = {}
        self.forwarded = {}
        self.rejected = {}
        self.akids = {}
        self.requests = 0
        self.faults_served = 0
        self.fault_log = []
        self.last_rejection = None

    def reset(self):
        with self.lock:
            self.faults = []
            self._clear()

    def add_fault(self, spec):
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError("unknown fault kind %r (one of %s)"
                             % (kind, ", ".join(sorted(FAULT_KINDS))))
        fault = dict(spec)
        fault["count"] = int(spec.get("count", 1))
        fault["skip"] = int(spec.get("skip", 0))
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, target):
        """Return the first pending fault matching target (consuming it)."""
        with self.lock:
            for fault in self.faults:
                want = fault.get("target")
                if want and not (target == want or (target or "").endswith("." + want)):
                    continue
                if fault["skip"] > 0:
                    fault["skip"] -= 1
                    return None
                fault["count"] -= 1
                if fault["count"] <= 0:
                    self.faults.remove(fault)
                self.faults_served += 1
                self.fault_log.append({"kind": fault["kind"], "target": target})
                return fault
        return None

    def stats(self):
        with self.lock:
            return {
                "targets": dict(self.targets),
                # of targets, those that named an IndexName (Query, Scan):
                # {target: {index: count}}, so IAM checks see the resource
                "indexes": {t: dict(c) for t, c in self.indexes.items()},
                "forwarded": dict(self.forwarded),
                "rejected": dict(self.rejected),
                "akids": dict(self.akids),
                "faults_served": self.faults_served,
                "fault_log": list(self.fault_log[-200:]),
                "faults_pending": len(self.faults),
                "requests": self.requests,
                "last_rejection": self.last_rejection,
            }


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sigv4-proxy"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.proxy.verbose:
            sys.stderr.write("sigv4_proxy: " + (fmt % args) + "\n")

    # --- plumbing -------------------------------------------------------
    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status, body, headers=()):
        self.send_response(status)
        sent = set()
        for name, value in headers:
            if name.lower() in HOP_BY_HOP or name.lower() in ("date", "server"):
                continue
            self.send_header(name, value)
            sent.add(name.lower())
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status, obj):
        body = json.dumps(obj, indent=None).encode()
        self._send(status, body, [("Content-Type", "application/json")])

    def _send_aws_error(self, status, aws_type, message):
        ctype = self.headers.get("Content-Type") or ""
        if not ctype.startswith("application/x-amz-json"):
            ctype = "application/x-amz-json-1.0"
        body = json.dumps({"__type": aws_type, "message": message}).encode()
        self._send(status, body, [("x-amzn-RequestId", uuid.uuid4().hex.upper()),
                                  ("Content-Type", ctype)])

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- dispatch -------------------------------------------------------
    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _dispatch(self):
        proxy = self.server.proxy
        body = self._read_body()
        if self.path.startswith("/__control/"):
            return self._control(body)
        state = proxy.state
        target = self.headers.get("X-Amz-Target")
        with state.lock:
            state.requests += 1
        pairs = list(self.headers.items())
        try:
            verified = state.verifier.verify(self.command, self.path, pairs, body)
        except AuthError as err:
            with state.lock:
                state.rejected[err.error_type] = state.rejected.get(err.error_type, 0) + 1
                state.last_rejection = {"type": err.error_type, "message": err.message,
                                        "detail": err.detail, "target": target}
            if proxy.verbose:
                sys.stderr.write("sigv4_proxy: REJECT %s %s: %s\n"
                                 % (err.error_type, err.detail or "", err.message))
            return self._send_aws_error(err.status, err.aws_type, err.message)
        with state.lock:
            key = target or "%s %s" % (self.command, urllib.parse.urlsplit(self.path).path)
            state.targets[key] = state.targets.get(key, 0) + 1
            index = _index_name(body) if target else None
            if index:
                per = state.indexes.setdefault(key, {})
                per[index] = per.get(index, 0) + 1
            state.akids[verified.akid] = state.akids.get(verified.akid, 0) + 1

        fault = state.take_fault(target)
        kind = fault["kind"] if fault else None
        if kind in ("throttle", "throttling", "request_limit", "error500",
                    "error503", "status"):
            status, aws_type, message = _fault_error_body(kind, fault)
            return self._send_aws_error(status, aws_type, message)
        if kind == "drop":
            return self._drop()
        if kind == "hang":
            proxy.stop_event.wait(float(fault.get("hang_seconds", 10)))
            if fault.get("then", "close") != "forward":
                return self._drop()
        if (target or "").endswith(".TransactWriteItems") and proxy.service == "dynamodb":
            response = self._transact(body, target)
        else:
            with proxy.upstream_lock:
                response = self._forward(body, target)
        if response is None:
            return None
        if kind == "timeout_after_forward":
            proxy.stop_event.wait(float(fault.get("hang_seconds", 30)))
            return self._drop()
        status, headers, resp_body = response
        return self._send(status, resp_body, headers)

    def _transact(self, body, target):
        """TransactWriteItems, which dynalite lacks: see ddb_transact."""
        proxy = self.server.proxy
        prefix = target[:-len("TransactWriteItems")]

        def send(op, req):
            headers = [(k, prefix + op if k.lower() == "x-amz-target" else v)
                       for k, v in self.headers.items()]
            got = self._forward(json.dumps(req).encode(), prefix + op, headers)
            if got is None:
                raise ddb_transact.TransactError("InternalServerError",
                                                 "sigv4_proxy: upstream unavailable")
            status, _, resp_body = got
            return status, json.loads(resp_body or b"{}")

        try:
            req = json.loads(body)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError:
            self._send_aws_error(400, "com.amazon.coral.service#SerializationException",
                                 "Start of structure or map found where not expected.")
            return None
        with proxy.upstream_lock:
            try:
                out = proxy.transactor.run(req, send)
            except ddb_transact.TransactError as err:
                status = 500 if err.aws_type == "InternalServerError" else 400
                return status, [("Content-Type", "application/x-amz-json-1.0")], \
                    json.dumps(err.body()).encode()
        return 200, [("Content-Type", "application/x-amz-json-1.0")], json.dumps(out).encode()

    def _forward(self, body, target, headers=None):
        proxy = self.server.proxy
        if headers is None:
            headers = self.headers.items()
        headers = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        for attempt in (0, 1):
            conn = getattr(self, "_upstream", None)
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port,
                                                  timeout=proxy.upstream_timeout)
                self._upstream = conn
            try:
                conn.putrequest(self.command, self.path, skip_host=True,
                                skip_accept_encoding=True)
                for k, v in headers:
                    conn.putheader(k, v)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
                resp_body = resp.read()
                resp_headers = resp.getheaders()
                if resp.will_close or not proxy.upstream_keepalive:
                    conn.close()
                    self._upstream = None
                break
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                conn.close()
                self._upstream = None
                if reused and attempt == 0:
                    continue  # stale keep-alive connection: the request never arrived
                if proxy.mirror_upstream_close and isinstance(exc, http.client.RemoteDisconnected):
                    self._drop()  # the upstream took the request and closed: so do we
                    return None
                return self._upstream_error(exc)
            except OSError as exc:
                conn.close()
                self._upstream = None
                return self._upstream_error(exc)
        state = proxy.state
        with state.lock:
            key = target or self.command
            state.forwarded[key] = state.forwarded.get(key, 0) + 1
        return resp.status, resp_headers, resp_body

    def _upstream_error(self, exc):
        self._send_aws_error(502, DDB + "InternalServerError",
                             "sigv4_proxy: upstream unavailable: %s" % exc)
        return None

    def finish(self):
        conn = getattr(self, "_upstream", None)
        if conn is not None:
            conn.close()
        super().finish()

    # --- control API ----------------------------------------------------
    def _control(self, body):
        proxy = self.server.proxy
        state = proxy.state
        path = urllib.parse.urlsplit(self.path).path[len("/__control/"):].strip("/")
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return self._send_json(400, {"error": "body is not JSON"})
        method = self.command
        try:
            if path == "stats" and method == "GET":
                out = state.stats()
                with proxy.upstream_lock:
                    out["transactions"] = dict(proxy.transactor.stats)
                return self._send_json(200, out)
            if path == "health":
                return self._send_json(200, {"ok": True})
            if path == "faults" and method == "GET":
                with state.lock:
                    return self._send_json(200, {"faults": [dict(f) for f in state.faults]})
            if path == "fault" and method == "POST":
                specs = data.get("faults") if "faults" in data else [data]
                for spec in specs:
                    state.add_fault(spec)
                return self._send_json(200, {"queued": len(specs)})
            if path == "reset" and method == "POST":
                state.reset()
                with proxy.upstream_lock:
                    proxy.transactor.reset()
                return self._send_json(200, {"ok": True})
            if path == "credentials" and method == "GET":
                return self._send_json(200, {"credentials": state.verifier.store.list()})
            if path == "credentials" and method == "POST":
                expires_at = data.get("expires_at")
                if data.get("expiration"):
                    expires_at = parse_iso8601(data["expiration"])
                state.verifier.store.put(data["akid"], data["secret"],
                                         data.get("token"), expires_at)
                return self._send_json(200, {"ok": True})
            if path == "credentials/revoke" and method == "POST":
                return self._send_json(200, {"revoked": state.verifier.store.revoke(data["akid"])})
        except (KeyError, ValueError, TypeError) as exc:
            return self._send_json(400, {"error": "%s: %s" % (type(exc).__name__, exc)})
        return self._send_json(404, {"error": "unknown control endpoint %s %s" % (method, path)})


class _Server(TrackingServer):
    def __init__(self, addr, proxy):
        self.proxy = proxy
        super().__init__(addr, _Handler)


class SigV4Proxy(BackgroundServer):
    """The proxy server; start() runs it on a background thread."""

    thread_name = "sigv4-proxy"

    def __init__(self, upstream, host="127.0.0.1", port=0, region="us-east-1",
                 service="dynamodb", credentials=None, max_skew=MAX_SKEW_SECONDS,
                 upstream_timeout=60, verbose=False, clock=time.time,
                 upstream_keepalive=True, mirror_upstream_close=False):
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http":
            raise ValueError("upstream must be http://host:port, got %r" % upstream)
        self.upstream = upstream
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.upstream_timeout = upstream_timeout
        # False: one upstream connection per request, so an upstream that
        # closes without answering (a test server's hang/drop fault) is never
        # mistaken for a stale keep-alive connection and the request is never
        # sent twice.
        self.upstream_keepalive = upstream_keepalive
        # True: an upstream that closes without answering makes the proxy
        # close the client's connection unanswered too (instead of a 502),
        # so the upstream's drop/hang faults reach the client as they are.
        self.mirror_upstream_close = mirror_upstream_close
        self.verbose = verbose
        self.store = CredentialStore(credentials)
        self.verifier = SigV4Verifier(self.store, region, service, max_skew, clock)
        self.state = ProxyState(self.verifier)
        self.service = service
        # every forwarded request holds it: a transaction applied item by
        # item (ddb_transact) is never seen half done
        self.upstream_lock = threading.RLock()
        self.transactor = ddb_transact.Transactor(clock)
        self.stop_event = threading.Event()
        self._server = _Server((host, port), self)
        self.host, self.port = self._server.server_address[:2]
        self._thread = None

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def add_credentials(self, akid, secret, token=None, expires_at=None):
        self.store.put(akid, secret, token, expires_at)



def default_credentials():
    return {
        TEST_AKID: (TEST_SECRET, None),
        TEST_SESSION_AKID: (TEST_SESSION_SECRET, TEST_SESSION_TOKEN),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--service", default="dynamodb")
    ap.add_argument("--cred", action="append", default=[],
                    help="AKID:SECRET[:TOKEN] (default: the cart test credentials)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    creds = {}
    for spec in args.cred:
        parts = spec.split(":", 2)
        creds[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else None)
    proxy = SigV4Proxy(args.upstream, args.host, args.port, args.region, args.service,
                       creds or default_credentials(), verbose=args.verbose)
    print("sigv4_proxy listening at %s -> %s" % (proxy.url, args.upstream), flush=True)
    try:
        proxy._server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop_event.set()
        proxy._server.server_close()


if __name__ == "__main__":
    main()
