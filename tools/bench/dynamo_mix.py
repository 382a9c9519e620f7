#!/usr/bin/python3
"""DynamoDB request mix per mutation, all-in (issue 8, failure 5).

Starts dynalite behind the SigV4 proxy (tests/aws/stack.py), a migrated
table and bin/cart-service with the event relay on (log publisher), then:

  1. MIX_CARTS carts x MIX_WRITES adds each, MIX_CONNS clients at a time,
     with and without Idempotency-Key (MIX_KEYED=1 for keyed);
  2. waits until the relay has drained the outbox;
  3. reports every DynamoDB request the proxy saw, per mutation, and the
     write requests per mutation (UpdateItem, PutItem, DeleteItem,
     TransactWriteItems, BatchWriteItem);
  4. then idles MIX_IDLE_S seconds and reports the relay's polling
     (Query requests per 5 s).

Figures go to stdout (one "==" line per measure).
"""

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "aws"))
from stack import AwsStack  # noqa: E402

CARTS = int(os.environ.get("MIX_CARTS", "200"))
WRITES = int(os.environ.get("MIX_WRITES", "5"))
CONNS = int(os.environ.get("MIX_CONNS", "8"))
IDLE = float(os.environ.get("MIX_IDLE_S", "30"))
KEYED = os.environ.get("MIX_KEYED", "0") == "1"
TABLE = "cart-mix"
WRITE_OPS = ("UpdateItem", "PutItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_up(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("dynamo_mix: the service did not start")


def ops(stats):
    return {k.split(".", 1)[1]: v for k, v in stats["targets"].items()}


def main():
    with AwsStack(table=None) as st:
        env = st.env(creds="env")
        env.update({"DYNAMODB_TABLE": TABLE, "STORAGE_BACKEND": "dynamodb"})
        subprocess.run([os.path.join(ROOT, "bin", "cart-service"), "migrate"], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        env.update({"APP_PORT": str(port), "LISTEN_ADDR": "127.0.0.1", "LOG_LEVEL": "warn",
                    "ENV_NAME": "dev", "EVENTS_PUBLISHER": "log", "EVENTS_RELAY_ENABLED": "true",
                    "RATE_LIMIT_RPS": "0"})
        log = tempfile.TemporaryFile()
        svc = subprocess.Popen([os.path.join(ROOT, "bin", "cart-service")], env=env,
                               stdout=log, stderr=log)
        try:
            wait_up(port)
            st.reset()
            n_ok = [0]
            lock = threading.Lock()

            def client(first):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                for c in range(first, CARTS, CONNS):
                    for w in range(WRITES):
                        body = json.dumps({"itemId": "sku-%d" % w, "quantity": 1,
                                           "unitPrice": {"amount": 1999, "currency": "EUR"}})
                        hdr = {"Content-Type": "application/json"}
                        if KEYED:
                            hdr["Idempotency-Key"] = "mix-%d-%d" % (c, w)
                        conn.request("POST", "/v1/cart/mix-%d/items" % c, body, hdr)
                        r = conn.getresponse()
                        r.read()
                        if r.status in (200, 201):
                            with lock:
                                n_ok[0] += 1
                conn.close()

            t0 = time.monotonic()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(CONNS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.monotonic() - t0
            # drained: the relay published every event (the log publisher
            # writes one line per event to stdout)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                log.seek(0)
                if sum(1 for line in log if b"CartItemAdded" in line) >= n_ok[0]:
                    break
                time.sleep(0.2)
            time.sleep(1.5)     # the relay's acks after the last publish
            mix = ops(st.stats())
            n = max(n_ok[0], 1)
            writes = sum(mix.get(op, 0) for op in WRITE_OPS)
            print("== dynamo mix: %d mutations (%d carts x %d adds, %s, %d clients, %.1f s): "
                  "%s per mutation; write requests per mutation %.2f"
                  % (n_ok[0], CARTS, WRITES, "keyed" if KEYED else "no key", CONNS, took,
                     ", ".join("%s %.2f" % (k, v / n) for k, v in sorted(mix.items())),
                     writes / n))
            st.reset()
            time.sleep(IDLE)
            idle = ops(st.stats())
            print("== dynamo idle: %s in %.0f s (%.2f requests per 5 s)"
                  % (json.dumps(idle), IDLE, sum(idle.values()) * 5 / IDLE))
        finally:
            svc.terminate()
            svc.wait(10)


if __name__ == "__main__":
    main()
