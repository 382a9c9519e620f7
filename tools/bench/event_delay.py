#!/usr/bin/python3
"""Follows a file of event log lines (the log publisher's output) and times
each event: read time minus the event's occurredAt.  Stops after --idle
seconds without new lines (once --expect lines were seen, or at SIGTERM);
prints one JSON object: events, first_ms, last_ms, p50_ms, p99_ms, max_ms.

    event_delay.py FILE [--expect N] [--idle S]
"""
import argparse
import datetime
import json
import signal
import time

KEY = b'"occurredAt":"'


_second = {}


def occurred_ms(line):
    """occurredAt in ms.  strptime once per second of occurredAt: at 40,000
    events a second, strptime on every line (~10 us each) made this
    reader fall seconds behind the file on the shared cores, and its lag
    was reported as the relay's delay (2,198 ms p50 on 2026-11-29)."""
    i = line.find(KEY)
    if i < 0:
        return None
    s = line[i + len(KEY):i + len(KEY) + 24]
    sec = s[:19]
    base = _second.get(sec)
    if base is None:
        t = datetime.datetime.strptime(sec.decode(), "%Y-%m-%dT%H:%M:%S")
        base = _second[sec] = int(t.replace(tzinfo=datetime.timezone.utc).timestamp()) * 1000
    return base + int(s[20:23])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--idle", type=float, default=3.0)
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    delays, first, last, rest = [], None, None, b""
    quiet_since, t_end = time.time(), time.time() + args.timeout
    with open(args.file, "rb") as f:
        while not stop and time.time() < t_end:
            chunk = f.read(1 << 20)
            now = int(time.time() * 1000)
            if not chunk:
                if (len(delays) >= args.expect and
                        time.time() - quiet_since > args.idle):
                    break
                time.sleep(0.005)
                continue
            quiet_since = time.time()
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if b'"msg":"event"' not in line:
                    continue
                at = occurred_ms(line)
                if at is None:
                    continue
                delays.append(now - at)
                first = first or now
                last = now
    delays.sort()

    def pct(p):
        return delays[min(len(delays) - 1, int(len(delays) * p))] if delays else None
    print(json.dumps({"events": len(delays), "first_ms": first, "last_ms": last,
                      "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                      "max_ms": delays[-1] if delays else None}), flush=True)


if __name__ == "__main__":
    main()
