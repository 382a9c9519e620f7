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
  4. reports the event delay (occurredAt to the line reaching this
     script through the log publisher's stdout), p50 / p99 / max;
  5. then idles MIX_IDLE_S seconds and reports the relay's polling
     (Query requests per 5 s).

MIX_ORDER=burst (default): each client makes a cart's adds one after the
other (a shopper adding several items at once), then the next cart's;
MIX_ORDER=round: each client goes round its carts, one add each, so a
cart's adds are seconds apart (more than EVENTS_ACK_DELAY_MS: every ack
is a write of its own).

Figures go to stdout (one "==" line per measure).
"""

import http.client
import json
import os
import subprocess
import sys
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
ORDER = os.environ.get("MIX_ORDER", "burst")
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


def epoch_ms(rfc3339):
    import datetime
    t = datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return t.timestamp() * 1000.0


class EventLines:
    """Reads the service's stdout; notes each event line's delay."""

    def __init__(self, stream):
        self.stream = stream
        self.delays = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        for line in self.stream:
            now = time.time() * 1000.0
            if b'"msg":"event"' not in line:
                continue
            try:
                ev = json.loads(line)["event"]
                with self.lock:
                    self.delays.append(now - epoch_ms(ev["occurredAt"]))
            except (ValueError, KeyError):
                pass

    def count(self):
        with self.lock:
            return len(self.delays)

    def summary(self):
        with self.lock:
            d = sorted(self.delays)
        if not d:
            return "no events"
        pick = lambda q: d[min(len(d) - 1, int(q * len(d)))]
        return "p50 %.0f ms, p99 %.0f ms, max %.0f ms" % (pick(0.5), pick(0.99), d[-1])


def ops(stats):
    return {k.split(".", 1)[1]: v for k, v in stats["targets"].items()}


def main():
    with AwsStack(table=None) as st:
        env = st.env(creds="env")
        env.update({"DYNAMODB_TABLE": TABLE, "STORAGE_BACKEND": "dynamodb"})
        subprocess.run([os.path.join(ROOT, "bin", "cart-service"), "migrate"], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        env.update({"APP_PORT": str(port), "LISTEN_ADDR": "127.0.0.1", "LOG_LEVEL": "info",
                    "ENV_NAME": "dev", "EVENTS_PUBLISHER": "log", "EVENTS_RELAY_ENABLED": "true",
                    "RATE_LIMIT_RPS": "0"})
        if os.environ.get("MIX_ACK_DELAY_MS"):
            env["EVENTS_ACK_DELAY_MS"] = os.environ["MIX_ACK_DELAY_MS"]
        svc = subprocess.Popen([os.path.join(ROOT, "bin", "cart-service")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        lines = EventLines(svc.stdout)
        try:
            wait_up(port)
            st.reset()
            n_ok = [0]
            lock = threading.Lock()

            def client(first):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                mine = range(first, CARTS, CONNS)
                if ORDER == "round":
                    plan = [(c, w) for w in range(WRITES) for c in mine]
                else:
                    plan = [(c, w) for c in mine for w in range(WRITES)]
                for c, w in plan:
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
            while time.monotonic() < deadline and lines.count() < n_ok[0]:
                time.sleep(0.2)
            time.sleep(2.5)     # the relay's acks wait up to 1 s after the last publish
            mix = ops(st.stats())
            n = max(n_ok[0], 1)
            writes = sum(mix.get(op, 0) for op in WRITE_OPS)
            print("== dynamo mix: %d mutations (%d carts x %d adds, %s, %s, %d clients, %.1f s): "
                  "%s per mutation; write requests per mutation %.2f"
                  % (n_ok[0], CARTS, WRITES, ORDER, "keyed" if KEYED else "no key", CONNS, took,
                     ", ".join("%s %.2f" % (k, v / n) for k, v in sorted(mix.items())),
                     writes / n))
            print("== dynamo event delay (commit to published, %d events): %s"
                  % (lines.count(), lines.summary()))
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
