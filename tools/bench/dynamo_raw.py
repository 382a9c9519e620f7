#!/usr/bin/python3
"""DynamoDB store against dynalite's own raw rate (issue 10).

Target: the service on its DynamoDB store reaches >= 0.80x the rate a
minimal client gets from the same dynalite for the same DynamoDB requests,
both measured in the same run.

  1. Starts dynalite on loopback (tests/aws/stack.py, AwsStack).  BOTH
     sides talk to dynalite DIRECTLY: the SigV4-verifying Python proxy
     would be the bottleneck of either.  dynalite checks the shape of
     Authorization, not the signature, so the service's signed requests
     and the raw client's unsigned ones are accepted alike.
  2. Creates the table with `bin/cart-service migrate` (the GSI "outbox"
     included, as in production) and starts the service on it with
     EVENTS_RELAY_ENABLED=false and EVENTS_PUBLISHER=none: the relay's
     Query/UpdateItem traffic would be extra load on the single-threaded
     dynalite during the service's runs only.  What is compared is the
     request path: each add still appends its event to the cart's outbox
     (obPending "-"), exactly like the raw client's UpdateItem.
  3. Seeds BENCH_CARTS carts (default 1000) of 3 lines through the service.
  4. For BENCH_ROUNDS rounds (default 2), for each scenario, runs the raw
     client and the service for BENCH_SECONDS each (default 10), raw first
     in even rounds and service first in odd ones (ABBA), with wrk
     -t BENCH_THREADS (2) -c BENCH_CONNECTIONS (16):
       get  raw: tests/load/dynamo_raw_get.lua, the service's GetItem;
            service: tests/load/service_get.lua, GET /v1/cart/{user}.
       add  raw: tests/load/dynamo_raw_add.lua, the service's GetItem +
            conditional UpdateItem (one operation per pair);
            service: tests/load/service_add.lua, POST /v1/cart/{user}/items
            (a merge into one of the 3 lines).
     Before every run each cart's outbox is emptied on dynalite directly,
     so every run starts from the same items (without the relay the
     outbox only grows, and it is read and written by every request).
  5. Prints a table and writes it to build/bench/dynamo_raw.md.

Rates are 2xx answers (raw add: UpdateItem 200s) / wrk's own duration.
Errors are non-2xx answers (raw get: also 200s without an Item).  Raw add
p99 is per DynamoDB request (wrk cannot pair a GetItem with its
UpdateItem), service p99 per HTTP request.

BENCH_DYNALITE_CPUS (e.g. "0"; default unset: no pinning) pins dynalite to
those CPUs and the service and wrk to the others.  DynamoDB does not share
the service's CPUs in production; on a small machine, pinning keeps the
service's own CPU from counting against dynalite.

Everything listens on 127.0.0.1; the service is stopped by PID on exit
(also on SIGINT/SIGTERM), dynalite by AwsStack (also if this process is
killed: PR_SET_PDEATHSIG); every wait is bounded.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "aws"))
from stack import AwsStack, free_port  # noqa: E402

O = os.environ.get("O", "build")
OUT = os.path.join(ROOT, O, "bench")
SERVICE = os.environ.get("BENCH_BIN", os.path.join(ROOT, "bin", "cart-service"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
CARTS = int(os.environ.get("BENCH_CARTS", "1000"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
TABLE = "cart-bench"
PREFIX = "bench-"
TARGET = 0.80
LOAD = os.path.join(ROOT, "tests", "load")
PIN = os.environ.get("BENCH_DYNALITE_CPUS", "")
DYN_CPUS = {int(c) for c in PIN.split(",") if c.strip()}
OTHER_CPUS = (os.sched_getaffinity(0) - DYN_CPUS) or None


def pinned():
    """preexec_fn for the service and wrk: the CPUs dynalite does not have."""
    if DYN_CPUS and OTHER_CPUS:
        os.sched_setaffinity(0, OTHER_CPUS)


def fake_auth(target):
    """Headers of a DynamoDB JSON request with a well-formed, unsigned
    Authorization (dynalite does not verify signatures)."""
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810." + target,
        "X-Amz-Date": date,
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDCARTTEST/%s/us-east-1/dynamodb/"
                         "aws4_request, SignedHeaders=content-type;host;x-amz-date;"
                         "x-amz-target, Signature=%s" % (date[:8], "0" * 64),
    }


class Dynalite:
    """A keep-alive connection to dynalite for the harness's own calls."""

    def __init__(self, endpoint):
        host, port = endpoint.split("//", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def call(self, target, body):
        # dynalite (Node) closes a connection idle for 5 s, as it is during
        # each 10 s wrk run: reconnect once.  The harness's calls are
        # idempotent (reads, and outbox resets to a fixed state).
        for attempt in (0, 1):
            try:
                self.conn.request("POST", "/", json.dumps(body), fake_auth(target))
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.conn.close()
                if attempt:
                    raise

    def close(self):
        self.conn.close()


def key(n):
    return {"PK": {"S": "CART#%s%d" % (PREFIX, n)}, "SK": {"S": "CART"}}


def reset_outboxes(dyn):
    """Empty every seeded cart's outbox (the relay is off), so each run
    starts from the same items."""
    for n in range(CARTS):
        status, data = dyn.call("UpdateItem", {
            "TableName": TABLE, "Key": key(n),
            "UpdateExpression": "REMOVE outbox, obPending",
            "ConditionExpression": "attribute_exists(PK)"})
        if status != 200:
            raise SystemExit("dynamo_raw: resetting %s%d: %d %s" % (PREFIX, n, status, data[:200]))


def wait_up(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("dynamo_raw: the service exited with %s (see %s)"
                             % (proc.returncode, os.path.join(OUT, "dynamo_raw-service.err")))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("dynamo_raw: the service did not start")


def seed(port):
    """BENCH_CARTS carts of 3 lines (sku-0..2) through the service."""
    errors = []

    def client(first):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for n in range(first, CARTS, 8):
            for sku in range(3):
                body = json.dumps({"itemId": "sku-%d" % sku, "quantity": 1,
                                   "unitPrice": {"amount": 199, "currency": "EUR"}})
                conn.request("POST", "/v1/cart/%s%d/items" % (PREFIX, n), body,
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status not in (200, 201):
                    errors.append((n, r.status))
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise SystemExit("dynamo_raw: seeding failed: %d errors, first %r" % (len(errors), errors[0]))


def check(dyn, port):
    """Both sides find the seeded carts before anything is measured."""
    status, data = dyn.call("GetItem", {"TableName": TABLE, "Key": key(CARTS - 1),
                                        "ConsistentRead": True,
                                        "ReturnConsumedCapacity": "TOTAL"})
    if status != 200 or b'"Item":' not in data:
        raise SystemExit("dynamo_raw: raw GetItem of a seeded cart: %d %s" % (status, data[:300]))
    item = json.loads(data)["Item"]
    if len(item["items"]["L"]) != 3:
        raise SystemExit("dynamo_raw: a seeded cart has %d lines" % len(item["items"]["L"]))
    with urllib.request.urlopen("http://127.0.0.1:%d/v1/cart/%s%d" % (port, PREFIX, CARTS - 1),
                                timeout=5) as r:
        if r.status != 200:
            raise SystemExit("dynamo_raw: service GET of a seeded cart: %d" % r.status)


def pct_ms(text, q):
    """wrk --latency's "99%  1.23ms" (us, ms or s) in ms."""
    for line in text.splitlines():
        f = line.split()
        if len(f) == 2 and f[0] == "%s%%" % q:
            v = f[1]
            for unit, mul in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
                if v.endswith(unit):
                    return float(v[:-len(unit)]) * mul
    return float("nan")


def wrk(name, script, url):
    env = dict(os.environ, BENCH_TABLE=TABLE, BENCH_CARTS=str(CARTS), BENCH_PREFIX=PREFIX,
               BENCH_THREADS=str(THREADS))
    out = subprocess.run(["wrk", "-t%d" % THREADS, "-c%d" % CONNS, "-d%ds" % SECONDS,
                          "--latency", "-s", os.path.join(LOAD, script), url],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=SECONDS + 60, check=False, preexec_fn=pinned).stdout.decode(errors="replace")
    with open(os.path.join(OUT, "dynamo_raw-%s.txt" % name), "w") as f:
        f.write(out)
    fields = {}
    statuses = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[0] == "status":
            statuses[int(f[1])] = int(f[2])
        elif len(f) == 2 and f[0] in ("ops", "gets", "updates", "found", "missing",
                                      "duration_us"):
            fields[f[0]] = int(f[1])
    if "duration_us" not in fields:
        raise SystemExit("dynamo_raw: wrk %s failed:\n%s" % (name, out))
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    errors = sum(v for k, v in statuses.items() if not 200 <= k < 300)
    if "found" in fields:          # raw get: a 200 without an Item is a miss
        ok, errors = fields["found"], errors + fields["missing"]
    if "ops" in fields:            # raw add: an operation is an UpdateItem 200
        ok = fields["ops"]
    secs = fields["duration_us"] / 1e6
    return {"rate": ok / secs, "p99": pct_ms(out, 99), "errors": errors,
            "statuses": statuses, "fields": fields}


def fmt_statuses(r):
    s = ",".join("%d:%d" % kv for kv in sorted(r["statuses"].items()))
    extra = r["fields"]
    if "missing" in extra:
        s += " missing:%d" % extra["missing"]
    if "gets" in extra:
        s += " gets:%d updates:%d" % (extra["gets"], extra["updates"])
    return s


def main():
    os.makedirs(OUT, exist_ok=True)
    svc = None

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with AwsStack() as st:
        direct = st.dynalite_endpoint
        if DYN_CPUS:
            os.sched_setaffinity(st.dynalite.pid, DYN_CPUS)
        env = st.env(creds="env")
        env.update({"DYNAMODB_ENDPOINT": direct, "DYNAMODB_TABLE": TABLE,
                    "STORAGE_BACKEND": "dynamodb"})
        for name in ("CART_TEST_CONTROL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
            env.pop(name, None)
        subprocess.run([SERVICE, "migrate"], env=env, check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        env.update({"APP_PORT": str(port), "LISTEN_ADDR": "127.0.0.1", "LOG_LEVEL": "warn",
                    "ENV_NAME": "dev", "EVENTS_PUBLISHER": "none",
                    "EVENTS_RELAY_ENABLED": "false", "RATE_LIMIT_RPS": "0"})
        dyn = Dynalite(direct)
        try:
            with open(os.path.join(OUT, "dynamo_raw-service.err"), "wb") as err:
                svc = subprocess.Popen([SERVICE], env=env, stdout=subprocess.DEVNULL,
                                       stderr=err, stdin=subprocess.DEVNULL,
                                       preexec_fn=pinned)
            wait_up(port, svc)
            t0 = time.monotonic()
            seed(port)
            check(dyn, port)
            print("== dynamo_raw: %d carts of 3 lines seeded in %.1f s; dynalite %s, service :%d "
                  "(relay off); wrk -t%d -c%d, %d s per run, %d rounds%s"
                  % (CARTS, time.monotonic() - t0, direct, port, THREADS, CONNS, SECONDS, ROUNDS,
                     "; dynalite on CPUs " + PIN if DYN_CPUS else ""),
                  flush=True)
            sides = {
                "get": (("raw", "dynamo_raw_get.lua", direct),
                        ("service", "service_get.lua", "http://127.0.0.1:%d" % port)),
                "add": (("raw", "dynamo_raw_add.lua", direct),
                        ("service", "service_add.lua", "http://127.0.0.1:%d" % port)),
            }
            results = {s: {"raw": [], "service": []} for s in sides}
            for rnd in range(ROUNDS):
                for scen, pair in sides.items():
                    for side, script, url in (pair if rnd % 2 == 0 else pair[::-1]):
                        reset_outboxes(dyn)
                        r = wrk("%s-%s-%d" % (scen, side, rnd), script, url)
                        results[scen][side].append(r)
                        print("   round %d %-3s %-7s %8.0f /s  p99 %7.2f ms  %s"
                              % (rnd, scen, side, r["rate"], r["p99"], fmt_statuses(r)),
                              flush=True)
        finally:
            dyn.close()
            if svc is not None and svc.poll() is None:
                svc.terminate()
                try:
                    svc.wait(10)
                except subprocess.TimeoutExpired:
                    svc.kill()
                    svc.wait(5)

    mean = lambda xs: sum(xs) / len(xs)
    lines = [
        "DynamoDB store against dynalite's raw rate (make bench-dynamo-raw): "
        "%d carts of 3 lines, wrk -t%d -c%d, %d s per run, %d rounds (ABBA), "
        "both sides straight to dynalite, relay off%s."
        % (CARTS, THREADS, CONNS, SECONDS, ROUNDS,
           ", dynalite on CPUs %s" % PIN if DYN_CPUS else ""),
        "",
        "| scenario | raw ops/s | service req/s | ratio | target | p99 raw ms | "
        "p99 service ms | errors raw / service |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for scen, r in results.items():
        raw, svc_ = mean([x["rate"] for x in r["raw"]]), mean([x["rate"] for x in r["service"]])
        ratio = svc_ / raw if raw else float("nan")
        lines.append("| %s | %.0f | %.0f | %.2f | >= %.2f %s | %.2f | %.2f | %d / %d |" % (
            scen, raw, svc_, ratio, TARGET, "met" if ratio >= TARGET else "MISSED",
            max(x["p99"] for x in r["raw"]), max(x["p99"] for x in r["service"]),
            sum(x["errors"] for x in r["raw"]), sum(x["errors"] for x in r["service"])))
    lines += ["",
              "Rates: means over the rounds; p99: the worst round (raw add: per DynamoDB "
              "request, GetItem or UpdateItem; service: per HTTP request); errors: non-2xx "
              "(raw get: also 200s without an Item), summed."]
    text = "\n".join(lines) + "\n"
    sys.stdout.write("\n" + text)
    with open(os.path.join(OUT, "dynamo_raw.md"), "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
