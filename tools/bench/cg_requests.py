#!/usr/bin/python3
"""Instructions per request in every thread of the service, counted by callgrind.

    /usr/bin/python3 tools/bench/cg_requests.py [SCENARIO [SECONDS [BIN]]]

SCENARIO is a script of tests/load (get, add, mixed, patch...; default add),
SECONDS the wrk run (10), BIN the service (bin/cart-service).  The service
runs under valgrind --tool=callgrind in the bench's production shape
(memory store, LOG_LEVEL=info to a pipe drained by cat, the rate limiter on
with a high limit, metrics on, auth off; CG_AUTH=on: auth on with the
bench's JWKS and a token per user, as make bench) with 80 workers; 1,000 carts are
seeded with 3 lines each, then counting is switched on (callgrind_control)
for one wrk run of 64 connections and off again 2 s after it, so the relay's
and log writer's work for those requests is in.  Prints the instructions
per request and the profile's path (callgrind_annotate --inclusive=yes PATH
for the breakdown).  Counts, unlike timings, do not move with the shared
machine's load; valgrind runs one thread at a time, so the relay sees
smaller batches than at full speed.  docs/performance.md's per-request
instruction counts were taken with this.
"""
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "aws"))
from stack import free_port  # noqa: E402

SCEN = sys.argv[1] if len(sys.argv) > 1 else "add"
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
BIN = os.path.abspath(sys.argv[3] if len(sys.argv) > 3 else os.path.join(ROOT, "bin", "cart-service"))
LOAD = os.path.join(ROOT, "tests", "load")


def wrk(script, seconds, port, env):
    out = subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % seconds, "-s",
                          os.path.join(LOAD, script + ".lua"), "http://127.0.0.1:%d" % port],
                         env=env, capture_output=True, text=True)
    return out.stdout


def bench_token():
    """make bench's JWKS and tokens file (tools/bench/scenarios.py: a token
    per user, or BENCH_TOKENS=admin one admin token)."""
    sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
    import scenarios
    scenarios.build_tools()
    return scenarios.mint_tokens(), scenarios


def main():
    out = os.path.join(tempfile.mkdtemp(prefix="cg-requests-"), "callgrind.out")
    port = free_port()
    token = None
    env = dict(os.environ, APP_PORT=str(port), LISTEN_ADDR="127.0.0.1", ENV_NAME="dev",
               STORAGE_BACKEND="memory", LOG_LEVEL="info", RATE_LIMIT_RPS="1000000",
               METRICS_ENABLED="true", AWS_XRAY_ENABLED="false", AUTH_ENABLED="false",
               HTTP_THREADS="80")
    if os.environ.get("CG_AUTH") == "on":
        token, sc = bench_token()
        env.update(AUTH_ENABLED="true", JWT_JWKS_FILE=sc.JWKS, JWT_ISSUER=sc.ISSUER,
                   JWT_AUDIENCE=sc.AUDIENCE)
    svc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                            "--instr-atstart=no", BIN], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    sink = subprocess.Popen(["cat"], stdin=svc.stdout, stdout=subprocess.DEVNULL)
    svc.stdout.close()
    try:
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request("GET", "/health")
                c.getresponse().read()
                c.close()
                break
            except OSError:
                time.sleep(0.2)
        wenv = dict(os.environ, BENCH_CARTS="1000", BENCH_TOKENS_FILE=token or "")
        wrk("seed", 5, port, wenv)
        subprocess.run(["callgrind_control", "-i", "on", str(svc.pid)], check=True,
                       capture_output=True)
        text = wrk(SCEN, SECONDS, port, wenv)
        time.sleep(2)
        subprocess.run(["callgrind_control", "-i", "off", str(svc.pid)], check=True,
                       capture_output=True)
    finally:
        svc.terminate()
        svc.wait(60)
        sink.wait(60)
    m = re.search(r"(\d+) requests in", text)
    if not m:
        raise SystemExit("cg_requests: wrk printed no request count:\n" + text)
    n = int(m.group(1))
    statuses = re.findall(r"status (\d+) (\d+)", text)
    total = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True).stdout
    for line in total.splitlines():
        if "PROGRAM TOTALS" in line:
            ir = int(line.split()[0].replace(",", ""))
            print("%s %s: %d instructions per request (%d requests, statuses %s); profile: %s"
                  % (BIN, SCEN, ir // n, n, " ".join("%s:%s" % s for s in statuses), out))
            return
    raise SystemExit("cg_requests: no totals in " + out)


if __name__ == "__main__":
    main()
