"""A stand-in for the X-Ray daemon: a UDP listener owned by the test, and
a validator for what it receives.

    daemon = XrayDaemon().start()          # 127.0.0.1, a port the kernel picks
    env = {"AWS_XRAY_ENABLED": "true", "AWS_XRAY_DAEMON_ADDRESS": daemon.address}
    ...
    seg = daemon.wait(lambda d: d["trace_id"] == root)
    daemon.stop()

Each datagram must be the daemon format: the header line
{"format": "json", "version": 1}, a newline, one JSON document.

The segment document schema is not shipped by botocore (its X-Ray model
only describes the PutTraceSegments API, whose documents are strings), so
validate_segment() checks the fields the X-Ray developer guide ("AWS X-Ray
segment documents") marks required and the types of the optional ones we
send: name, id, trace_id, start_time, end_time or in_progress; for
subsegments name, id, start_time, end_time, and for a subsegment sent on
its own also type "subsegment", trace_id and parent_id.
"""

import json
import re
import socket
import threading
import time

HEADER = {"format": "json", "version": 1}
TRACE_ID_RE = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")
ID_RE = re.compile(r"^[0-9a-f]{16}$")
NAME_RE = re.compile(r"^[\w.:/%&#=+\-@ ]{1,200}$", re.UNICODE)
ANNOTATION_KEY_RE = re.compile(r"^[A-Za-z0-9_]{1,500}$")
MAX_DATAGRAM = 64 * 1024


class XrayDaemon:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.datagrams = []          # raw bytes, in arrival order
        self.problems = []           # datagrams that broke the format
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(MAX_DATAGRAM + 1)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.datagrams.append(data)

    def documents(self):
        """Every document received so far (header line checked)."""
        out = []
        with self._lock:
            grams = list(self.datagrams)
        for data in grams:
            out.append(parse_datagram(data))
        return out

    def wait(self, pred, timeout=3.0):
        """The first document matching pred, polling up to timeout; None."""
        deadline = time.monotonic() + timeout
        while True:
            for doc in self.documents():
                if pred(doc):
                    return doc
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def for_trace(self, trace_id, timeout=3.0):
        return self.wait(lambda d: d.get("trace_id") == trace_id, timeout)


def parse_datagram(data):
    if len(data) > MAX_DATAGRAM:
        raise AssertionError("datagram of %d bytes (daemon limit 64 KB)" % len(data))
    head, sep, body = data.partition(b"\n")
    if not sep:
        raise AssertionError("no header line: %r" % data[:200])
    if json.loads(head) != HEADER:
        raise AssertionError("bad header line %r" % head)
    return json.loads(body)


def _number(doc, key, where):
    v = doc.get(key)
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise AssertionError("%s: %s is not a number: %r" % (where, key, v))
    return v


def _common(doc, where):
    if not isinstance(doc.get("name"), str) or not NAME_RE.match(doc["name"]):
        raise AssertionError("%s: bad name %r" % (where, doc.get("name")))
    if not isinstance(doc.get("id"), str) or not ID_RE.match(doc["id"]):
        raise AssertionError("%s: bad id %r" % (where, doc.get("id")))
    start = _number(doc, "start_time", where)
    if "end_time" in doc:
        end = _number(doc, "end_time", where)
        if end < start:
            raise AssertionError("%s: end_time %r before start_time %r"
                                 % (where, end, start))
    elif doc.get("in_progress") is not True:
        raise AssertionError("%s: neither end_time nor in_progress" % where)
    for flag in ("error", "throttle", "fault"):
        if flag in doc and not isinstance(doc[flag], bool):
            raise AssertionError("%s: %s is not a boolean" % (where, flag))
    if "http" in doc and not isinstance(doc["http"], dict):
        raise AssertionError("%s: http is not an object" % where)
    if "aws" in doc and not isinstance(doc["aws"], dict):
        raise AssertionError("%s: aws is not an object" % where)
    if "namespace" in doc and doc["namespace"] not in ("aws", "remote"):
        raise AssertionError("%s: namespace %r" % (where, doc["namespace"]))
    for sub in doc.get("subsegments", []):
        validate_subsegment(sub, embedded=True, parent=doc)


def validate_subsegment(doc, embedded=False, parent=None):
    where = "subsegment %s" % doc.get("id")
    _common(doc, where)
    if not embedded:
        if doc.get("type") != "subsegment":
            raise AssertionError("%s: type %r" % (where, doc.get("type")))
        if not TRACE_ID_RE.match(doc.get("trace_id", "")):
            raise AssertionError("%s: bad trace_id" % where)
        if not ID_RE.match(doc.get("parent_id", "")):
            raise AssertionError("%s: bad parent_id" % where)
    if parent is not None and "end_time" in doc and "end_time" in parent:
        # nested timings: inside the parent's (a microsecond of rounding)
        if doc["start_time"] < parent["start_time"] - 1e-6 or \
                doc["end_time"] > parent["end_time"] + 1e-6:
            raise AssertionError("%s [%r, %r] not inside its parent [%r, %r]"
                                 % (where, doc["start_time"], doc["end_time"],
                                    parent["start_time"], parent["end_time"]))


def validate_segment(doc):
    """Raises AssertionError unless doc is a valid segment document."""
    where = "segment %s" % doc.get("id")
    if doc.get("type") == "subsegment":
        validate_subsegment(doc)
        return
    _common(doc, where)
    if not isinstance(doc.get("trace_id"), str) or not TRACE_ID_RE.match(doc["trace_id"]):
        raise AssertionError("%s: bad trace_id %r" % (where, doc.get("trace_id")))
    if "parent_id" in doc and not ID_RE.match(str(doc["parent_id"])):
        raise AssertionError("%s: bad parent_id %r" % (where, doc["parent_id"]))
    ann = doc.get("annotations", {})
    if not isinstance(ann, dict):
        raise AssertionError("%s: annotations is not an object" % where)
    for k, v in ann.items():
        if not ANNOTATION_KEY_RE.match(k) or \
                not isinstance(v, (str, int, float, bool)):
            raise AssertionError("%s: bad annotation %r=%r" % (where, k, v))


class DaemonPerClass:
    """Mixin for a test class whose server sends X-Ray segments: starts one
    XrayDaemon before the server (setUpClass) and stops it after, and sets
    the server's AWS_XRAY_* variables; xray_env adds to them.  Put it
    before the server test case class in the bases."""

    xray_env = {}

    @classmethod
    def setUpClass(cls):
        cls.daemon = XrayDaemon().start()
        cls.server_env = dict({"AWS_XRAY_ENABLED": "true",
                               "AWS_XRAY_DAEMON_ADDRESS": cls.daemon.address},
                              **cls.xray_env)
        try:
            super().setUpClass()
        except BaseException:
            cls.daemon.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.daemon.stop()
