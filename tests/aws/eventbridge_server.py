#!/usr/bin/python3
"""Test-side EventBridge: an AWSEvents.PutEvents server on loopback.

It speaks the real wire protocol (AWS JSON 1.1: POST /, X-Amz-Target
AWSEvents.PutEvents, Content-Type application/x-amz-json-1.1) and checks each
request against the PutEvents API before it accepts anything. Signatures are
not checked here: run it behind sigv4_proxy.SigV4Proxy(service="events")
(AwsStack(eventbridge=True) does that), so every call is signature-checked.

Request checks (400 + {"__type", "message"}, nothing stored):
- wrong X-Amz-Target -> UnknownOperationException
- Content-Type not application/x-amz-json-1.1 -> UnknownOperationException (stand-in choice)
- body not JSON / wrong JSON types -> SerializationException
- Entries missing, 0 or more than 10 -> ValidationException
- total entry size over 256 KB (262144 bytes), computed as AWS documents it:
  Time 14 bytes if present + UTF-8 bytes of Source, DetailType, Detail and
  each Resources string -> ValidationException
- an entry without EventBusName -> ValidationException (stand-in strictness:
  the service must always name its bus; AWS would use the default bus)
Per-entry checks (the call succeeds, the entry gets ErrorCode/ErrorMessage,
as AWS does): Source / DetailType / Detail missing or empty -> InvalidArgument;
Detail not a JSON object -> MalformedDetail; a bus not in `buses` (when set)
-> ResourceNotFoundException.

Accepted entries are stored in order. Control API (unsigned JSON):
    GET  /__control/events   -> {"events": [{"bus", "source", "detailType",
                                  "detail" (parsed), "time", "eventId",
                                  "resources", "traceHeader" (or null),
                                  "call", "index"}]}
    POST /__control/fault    {"kind": "fail_call"|"throttle"|"fail_entries"|"hang"|"drop",
                              "count": 1 (-1: until reset), "skip": 0, ...}
        fail_call    500 InternalException; or "status" and "error_type" (e.g.
                     400 AccessDeniedException, a refusal of the whole call)
        throttle     400 ThrottlingException
        fail_entries "entries": [indices] and/or "match": {"detail.cartVersion": 3,
                     "source": ..., "detailType": ..., "bus": ...};
                     "error_code" (default InternalFailure), "error_message".
                     count = calls it applies to (a match fault only counts
                     calls in which some entry matched).
        hang         "seconds" (default 10); "then": "close" (default: no
                     answer, nothing stored), "respond" (answer late) or
                     "apply_close" (store the entries, then close unanswered)
        drop         close the connection at once, nothing stored
    GET  /__control/faults, POST /__control/reset (events, stats, faults)
    GET  /__control/stats    -> {"calls", "entries_accepted", "entries_failed",
                                 "rejected": {type: n}, "faults_served",
                                 "batch_sizes": [...], "max_batch_entries",
                                 "max_batch_bytes", "last_rejection"}
    GET  /__control/latency  -> {"events", "first_ms", "last_ms", "p50_ms",
                                 "p99_ms", "max_ms"}: receipt time (epoch ms,
                                 "receivedMs" in each event) minus the
                                 detail's occurredAt, over accepted events
    GET  /__control/health

delay_ms (--delay-ms): every PutEvents call is answered that long after
it arrived (entries are stored on arrival), like a remote bus's latency.

CLI:  /usr/bin/python3 tests/aws/eventbridge_server.py [--port N] [--bus NAME]...
      [--delay-ms MS] [--no-keep]   (--no-keep: count events, keep none;
      for long benchmarks)
"""

import argparse
import datetime
import http.server
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from standin import BackgroundServer, TrackingServer  # noqa: E402

TARGET = "AWSEvents.PutEvents"
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_ENTRIES = 10
MAX_REQUEST_ENTRIES_BYTES = 256 * 1024
TIME_ENTRY_BYTES = 14
FAULT_KINDS = ("fail_call", "throttle", "fail_entries", "hang", "drop")


class RequestError(Exception):
    def __init__(self, aws_type, message, status=400):
        super().__init__(message)
        self.aws_type = aws_type
        self.message = message
        self.status = status


def _utf8_len(s):
    return len(s.encode("utf-8"))


def entry_size(entry):
    """PutEvents entry size as AWS documents it ("Calculating PutEvents event
    entry size"): 14 bytes for Time if present, plus the UTF-8 sizes of
    Source, DetailType, Detail and every Resources string."""
    size = 0
    if entry.get("Time") is not None:
        size += TIME_ENTRY_BYTES
    for key in ("Source", "DetailType", "Detail"):
        if isinstance(entry.get(key), str):
            size += _utf8_len(entry[key])
    for res in entry.get("Resources") or ():
        if isinstance(res, str):
            size += _utf8_len(res)
    return size


def _iso_ms(epoch):
    dt = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def _occurred_ms(detail):
    """occurredAt of an event document (RFC 3339, ms, UTC) in epoch ms."""
    at = detail.get("occurredAt") if isinstance(detail, dict) else None
    try:
        t = datetime.datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ")
    except (TypeError, ValueError):
        return None
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def _lookup(record, dotted):
    cur = record
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


_MISSING = object()

_ENTRY_TYPES = {"Source": str, "DetailType": str, "Detail": str, "EventBusName": str,
                "TraceHeader": str, "Resources": list, "Time": (int, float)}


def _trace_header_bounds():
    """TraceHeader's length bounds from botocore's EventBridge model (the
    shape AWS publishes: an X-Ray trace header, 1-500 characters)."""
    import botocore.session
    model = botocore.session.get_session().get_service_model("events")
    meta = model.shape_for("PutEventsRequestEntry").members["TraceHeader"].metadata
    return meta["min"], meta["max"]


_TRACE_HEADER_BOUNDS = None


def check_trace_header(i, value):
    global _TRACE_HEADER_BOUNDS
    if _TRACE_HEADER_BOUNDS is None:
        _TRACE_HEADER_BOUNDS = _trace_header_bounds()
    lo, hi = _TRACE_HEADER_BOUNDS
    if not lo <= len(value) <= hi:
        raise RequestError("ValidationException",
                           "1 validation error detected: Value at 'entries.%d.member."
                           "traceHeader' failed to satisfy constraint: Member must have "
                           "length between %d and %d" % (i + 1, lo, hi))


def parse_put_events(body):
    """Validate a PutEvents body; returns the Entries list or raises RequestError."""
    try:
        req = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RequestError("SerializationException", "Start of structure or map found where "
                           "not expected." if not body.strip() else
                           "Unexpected character in the request body: not valid JSON")
    if not isinstance(req, dict):
        raise RequestError("SerializationException", "Request body must be a JSON object")
    unknown = sorted(set(req) - {"Entries", "EndpointId"})
    if unknown:
        raise RequestError("SerializationException", "Unknown member(s): %s" % ", ".join(unknown))
    entries = req.get("Entries")
    if entries is None:
        raise RequestError("ValidationException", "1 validation error detected: Value null "
                           "at 'entries' failed to satisfy constraint: Member must not be null")
    if not isinstance(entries, list):
        raise RequestError("SerializationException", "Entries must be a list")
    if len(entries) < 1:
        raise RequestError("ValidationException", "1 validation error detected: Value '[]' at "
                           "'entries' failed to satisfy constraint: Member must have length "
                           "greater than or equal to 1")
    if len(entries) > MAX_ENTRIES:
        raise RequestError("ValidationException", "1 validation error detected: Value '[...]' "
                           "at 'entries' failed to satisfy constraint: Member must have length "
                           "less than or equal to %d (got %d)" % (MAX_ENTRIES, len(entries)))
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise RequestError("SerializationException", "Entries[%d] must be an object" % i)
        for key, value in entry.items():
            want = _ENTRY_TYPES.get(key)
            if want is None:
                raise RequestError("SerializationException",
                                   "Unknown member Entries[%d].%s" % (i, key))
            if value is not None and (not isinstance(value, want) or isinstance(value, bool)):
                raise RequestError("SerializationException",
                                   "Entries[%d].%s has the wrong JSON type" % (i, key))
        if entry.get("TraceHeader") is not None:
            check_trace_header(i, entry["TraceHeader"])
        if any(not isinstance(r, str) for r in entry.get("Resources") or ()):
            raise RequestError("SerializationException",
                               "Entries[%d].Resources must be strings" % i)
        if not entry.get("EventBusName"):
            raise RequestError("ValidationException",
                               "Entries[%d].EventBusName is missing: this test server requires "
                               "every entry to name its bus (AWS would use the default bus)" % i)
    total = sum(entry_size(e) for e in entries)
    if total > MAX_REQUEST_ENTRIES_BYTES:
        raise RequestError("ValidationException",
                           "Total size of the entries in the request is over the limit. "
                           "(%d > %d bytes)" % (total, MAX_REQUEST_ENTRIES_BYTES))
    return entries, total


def entry_error(entry, buses):
    """Per-entry problem as (ErrorCode, ErrorMessage), or None."""
    for key in ("Source", "DetailType", "Detail"):
        if not entry.get(key):
            return ("InvalidArgument",
                    "Parameter %s is not valid. Reason: %s is a required argument."
                    % (key, key))
    try:
        detail = json.loads(entry["Detail"])
    except ValueError:
        detail = None
    if not isinstance(detail, dict):
        return ("MalformedDetail", "Detail is malformed.")
    if buses is not None and entry["EventBusName"] not in buses:
        return ("ResourceNotFoundException",
                "Event bus %s does not exist." % entry["EventBusName"])
    return None


class EventBridgeState:
    def __init__(self, buses=None):
        self.lock = threading.Lock()
        self.keep = True
        self.buses = set(buses) if buses else None
        self.faults = []
        self._clear()

    def _clear(self):
        self.events = []
        self.calls = 0
        self.entries_accepted = 0
        self.entries_failed = 0
        self.rejected = {}
        self.faults_served = 0
        self.fault_log = []
        self.batch_sizes = []
        self.delays = []
        self.first_ms = self.last_ms = None
        self.max_batch_bytes = 0
        self.last_rejection = None

    def reset(self):
        with self.lock:
            self.faults = []
            self._clear()

    def add_fault(self, spec):
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError("unknown fault kind %r (one of %s)" % (kind, ", ".join(FAULT_KINDS)))
        fault = dict(spec)
        fault["count"] = int(spec.get("count", 1))
        fault["skip"] = int(spec.get("skip", 0))
        if kind == "fail_entries":
            if "entries" not in spec and "match" not in spec:
                raise ValueError("fail_entries needs \"entries\" and/or \"match\"")
            fault["entries"] = [int(i) for i in spec.get("entries") or []]
            if not isinstance(spec.get("match", {}), dict):
                raise ValueError("match must be an object")
        with self.lock:
            self.faults.append(fault)

    def _consume(self, fault):
        if fault["skip"] > 0:
            fault["skip"] -= 1
            return False
        if fault["count"] > 0:
            fault["count"] -= 1
            if fault["count"] == 0:
                self.faults.remove(fault)
        self.faults_served += 1
        self.fault_log.append({"kind": fault["kind"], "call": self.calls})
        return True

    def take_call_fault(self):
        """First pending whole-call fault (fail_call, throttle, hang, drop)."""
        with self.lock:
            for fault in list(self.faults):
                if fault["kind"] != "fail_entries":
                    return fault if self._consume(fault) else None
        return None

    def entry_faults(self, records):
        """{index: (code, message)} for the fail_entries faults of this call."""
        failed = {}
        with self.lock:
            for fault in list(self.faults):
                if fault["kind"] != "fail_entries":
                    continue
                hits = [i for i in fault["entries"] if 0 <= i < len(records)]
                for i, rec in enumerate(records):
                    match = fault.get("match")
                    if match and rec is not None and all(
                            _lookup(rec, k) == v for k, v in match.items()):
                        hits.append(i)
                hits = [i for i in hits if records[i] is not None and i not in failed]
                if not hits or not self._consume(fault):
                    continue
                code = fault.get("error_code", "InternalFailure")
                msg = fault.get("error_message", "Internal service error (injected)")
                for i in hits:
                    failed[i] = (code, msg)
        return failed

    def stats(self):
        with self.lock:
            return {
                "calls": self.calls,
                "entries_accepted": self.entries_accepted,
                "entries_failed": self.entries_failed,
                "events": len(self.events),
                "rejected": dict(self.rejected),
                "faults_served": self.faults_served,
                "faults_pending": len(self.faults),
                "fault_log": list(self.fault_log[-200:]),
                "batch_sizes": list(self.batch_sizes[-1000:]),
                "max_batch_entries": max(self.batch_sizes, default=0),
                "max_batch_bytes": self.max_batch_bytes,
                "last_rejection": self.last_rejection,
            }

    def latency(self):
        with self.lock:
            d = sorted(self.delays)
            first, last = self.first_ms, self.last_ms

        def pct(p):
            return d[min(len(d) - 1, int(len(d) * p))] if d else None
        return {"events": len(d), "first_ms": first, "last_ms": last,
                "p50_ms": pct(0.50), "p99_ms": pct(0.99),
                "max_ms": d[-1] if d else None}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "eventbridge-standin"
    # headers and body go out in two writes: without TCP_NODELAY the body
    # waits for the client's delayed ACK, tens of ms on every call
    disable_nagle_algorithm = True
    sys_version = ""
    timeout = 120

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.owner.verbose:
            sys.stderr.write("eventbridge_server: " + (fmt % args) + "\n")

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

    def _send(self, status, obj, content_type=CONTENT_TYPE):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _error(self, status, aws_type, message):
        state = self.server.owner.state
        with state.lock:
            state.rejected[aws_type] = state.rejected.get(aws_type, 0) + 1
            state.last_rejection = {"type": aws_type, "message": message}
        if self.server.owner.verbose:
            sys.stderr.write("eventbridge_server: %d %s: %s\n" % (status, aws_type, message))
        self._send(status, {"__type": aws_type, "message": message})

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _dispatch(self):
        body = self._read_body()
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/__control/"):
            return self._control(path[len("/__control/"):].strip("/"), body)
        if self.command != "POST" or path != "/":
            return self._error(404 if self.command == "POST" else 405,
                               "UnknownOperationException",
                               "%s %s is not an EventBridge operation" % (self.command, path))
        target = self.headers.get("X-Amz-Target")
        if target != TARGET:
            return self._error(400, "UnknownOperationException",
                               "X-Amz-Target %r: only %s is served" % (target, TARGET))
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != CONTENT_TYPE:
            return self._error(400, "UnknownOperationException",
                               "Content-Type %r: PutEvents is %s" % (ctype, CONTENT_TYPE))
        self._put_events(body)

    def _put_events(self, body):
        owner = self.server.owner
        state = owner.state
        with state.lock:
            state.calls += 1
            call = state.calls
        fault = state.take_call_fault()
        kind = fault["kind"] if fault else None
        if kind == "fail_call":
            return self._error(int(fault.get("status", 500)),
                               fault.get("error_type", "InternalException"),
                               fault.get("message", "Internal service error (injected)"))
        if kind == "throttle":
            return self._error(400, "ThrottlingException",
                               fault.get("message", "Rate exceeded"))
        if kind == "drop":
            return self._drop()
        then = fault.get("then", "close") if kind == "hang" else None
        if kind == "hang" and then == "close":
            owner.stop_event.wait(float(fault.get("seconds", fault.get("hang_seconds", 10))))
            return self._drop()
        try:
            entries, total = parse_put_events(body)
        except RequestError as err:
            return self._error(err.status, err.aws_type, err.message)
        response, records = self._apply(entries, total, call)
        if kind == "hang":
            owner.stop_event.wait(float(fault.get("seconds", fault.get("hang_seconds", 10))))
            if then != "respond":
                return self._drop()
        if owner.delay_ms:
            time.sleep(owner.delay_ms / 1000.0)
        self._send(200, response)

    def _apply(self, entries, total, call):
        owner = self.server.owner
        state = owner.state
        now = time.time()
        records = []
        per_entry = {}
        for i, entry in enumerate(entries):
            problem = entry_error(entry, state.buses)
            if problem:
                per_entry[i] = problem
                records.append(None)
                continue
            when = entry.get("Time")
            records.append({
                "bus": entry["EventBusName"],
                "source": entry["Source"],
                "detailType": entry["DetailType"],
                "detail": json.loads(entry["Detail"]),
                "time": _iso_ms(when if when is not None else now),
                "resources": list(entry.get("Resources") or []),
                "traceHeader": entry.get("TraceHeader"),
                "call": call,
                "index": i,
            })
        per_entry.update(state.entry_faults(records))
        result = []
        with state.lock:
            state.batch_sizes.append(len(entries))
            state.max_batch_bytes = max(state.max_batch_bytes, total)
            for i, rec in enumerate(records):
                if i in per_entry:
                    code, msg = per_entry[i]
                    result.append({"ErrorCode": code, "ErrorMessage": msg})
                    state.entries_failed += 1
                    continue
                rec["eventId"] = str(uuid.uuid4())
                rec["receivedMs"] = int(now * 1000)
                if state.keep:
                    state.events.append(rec)
                state.entries_accepted += 1
                state.first_ms = state.first_ms or rec["receivedMs"]
                state.last_ms = rec["receivedMs"]
                at = _occurred_ms(rec["detail"])
                if at is not None:
                    state.delays.append(rec["receivedMs"] - at)
                result.append({"EventId": rec["eventId"]})
        return {"FailedEntryCount": len(per_entry), "Entries": result}, records

    def _control(self, path, body):
        state = self.server.owner.state
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return self._send(400, {"error": "body is not JSON"}, "application/json")
        method = self.command
        try:
            if path == "health":
                return self._send(200, {"ok": True}, "application/json")
            if path == "events" and method == "GET":
                with state.lock:
                    events = [dict(e) for e in state.events]
                return self._send(200, {"events": events}, "application/json")
            if path == "latency" and method == "GET":
                return self._send(200, state.latency(), "application/json")
            if path == "stats" and method == "GET":
                return self._send(200, state.stats(), "application/json")
            if path == "faults" and method == "GET":
                with state.lock:
                    faults = [dict(f) for f in state.faults]
                return self._send(200, {"faults": faults}, "application/json")
            if path == "fault" and method == "POST":
                specs = data.get("faults") if "faults" in data else [data]
                for spec in specs:
                    state.add_fault(spec)
                return self._send(200, {"queued": len(specs)}, "application/json")
            if path == "reset" and method == "POST":
                state.reset()
                return self._send(200, {"ok": True}, "application/json")
        except (KeyError, ValueError, TypeError) as exc:
            return self._send(400, {"error": "%s: %s" % (type(exc).__name__, exc)},
                              "application/json")
        return self._send(404, {"error": "unknown control endpoint %s %s" % (method, path)},
                          "application/json")


class _Server(TrackingServer):
    """A stand-in's server: its handler reaches the stand-in as server.owner
    (secretsmanager_server.py passes its own handler)."""

    def __init__(self, addr, owner, handler=None):
        self.owner = owner
        super().__init__(addr, handler or _Handler)


class EventBridgeServer(BackgroundServer):
    """The PutEvents stand-in; start() serves on a background thread."""

    thread_name = "eventbridge-server"

    def __init__(self, host="127.0.0.1", port=0, buses=None, verbose=False,
                 delay_ms=0, keep=True):
        self.verbose = verbose
        self.delay_ms = delay_ms
        self.state = EventBridgeState(buses)
        self.state.keep = keep
        self.stop_event = threading.Event()
        self._server = _Server((host, port), self)
        self.host, self.port = self._server.server_address[:2]
        self._thread = None

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    base_url = url

    # in-process shortcuts (the HTTP control API does the same)
    def events(self):
        with self.state.lock:
            return [dict(e) for e in self.state.events]

    def stats(self):
        return self.state.stats()

    def fault(self, kind, count=1, **kw):
        self.state.add_fault(dict(kw, kind=kind, count=count))

    def reset(self):
        self.state.reset()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bus", action="append", default=[],
                    help="accept only these bus names (default: any)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--delay-ms", type=int, default=0,
                    help="answer each PutEvents call this late")
    ap.add_argument("--no-keep", action="store_true",
                    help="count and time events, keep none (benchmarks)")
    args = ap.parse_args(argv)
    srv = EventBridgeServer(args.host, args.port, args.bus or None, args.verbose,
                            args.delay_ms, not args.no_keep)
    srv.serve_until_interrupted("eventbridge_server listening at %s (unsigned; put "
                                "sigv4_proxy.py --service events in front)" % srv.url)


if __name__ == "__main__":
    main()
