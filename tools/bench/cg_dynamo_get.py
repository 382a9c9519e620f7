#!/usr/bin/python3
"""Instructions per DynamoDB GET in the service, counted by callgrind.

    /usr/bin/python3 tools/bench/cg_dynamo_get.py [BIN [N]]

BIN (default bin/cart-service) runs under valgrind --tool=callgrind,
counting only inside the request handler (--toggle-collect=serve), on the
DynamoDB store against dynalite behind the SigV4 proxy (tests/aws/stack.py,
environment credentials, X-Ray, logs below warn and events off).  One
keep-alive connection adds an item to cart u1 (one line, one pending event
in the item: the relay is off), then GETs it N times (300).  Prints the
instructions per request over the N + 2 requests.  Counts, unlike timings,
do not move with the shared machine's load: this is how the DynamoDB GET
figures in docs/performance.md and ADR 6 were taken.
"""
import glob
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "aws"))
from stack import AwsStack, free_port  # noqa: E402

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bin", "cart-service"))
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300


def main():
    out = os.path.join(tempfile.mkdtemp(prefix="cg-dynamo-"), "callgrind.out")
    with AwsStack() as st:
        env = st.env(creds="env")
        env.update(DYNAMODB_ENDPOINT=st.dynalite_endpoint, DYNAMODB_TABLE="cg-bench",
                   STORAGE_BACKEND="dynamodb")
        for n in ("CART_TEST_CONTROL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
            env.pop(n, None)
        subprocess.run([BIN, "migrate"], env=env, check=True, capture_output=True)
        port = free_port()
        env.update(APP_PORT=str(port), LISTEN_ADDR="127.0.0.1", LOG_LEVEL="warn",
                   EVENTS_PUBLISHER="none", EVENTS_RELAY_ENABLED="false", RATE_LIMIT_RPS="0",
                   HTTP_THREADS="8")
        svc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                                "--toggle-collect=serve", BIN],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            conn = None
            for _ in range(300):
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    conn.request("GET", "/health")
                    conn.getresponse().read()
                    break
                except OSError:
                    time.sleep(0.2)
            body = json.dumps({"itemId": "sku-1", "quantity": 1,
                               "unitPrice": {"amount": 199, "currency": "EUR"}})
            conn.request("POST", "/v1/cart/u1/items", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 201, r.status
            for _ in range(N):
                conn.request("GET", "/v1/cart/u1")
                r = conn.getresponse()
                r.read()
                assert r.status == 200, r.status
            conn.close()
        finally:
            svc.terminate()
            svc.wait(60)
    total = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True).stdout
    for line in total.splitlines():
        if "PROGRAM TOTALS" in line:
            n = int(line.split()[0].replace(",", ""))
            print("%s: %d instructions per request (%d requests); profile: %s"
                  % (BIN, n // (N + 2), N + 2, out))
            return
    raise SystemExit("cg_dynamo_get: no totals in " + out)


if __name__ == "__main__":
    main()
