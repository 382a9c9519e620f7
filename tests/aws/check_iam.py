#!/usr/bin/python3
"""Least privilege, checked on the wire.

Reads the AWS actions the SigV4 proxy saw (X-Amz-Target of every request
with a valid signature, from /__control/stats) and compares them with an
IAM policy file:

  --exact   every action used is granted, and every granted action was used
            (the runtime policy: nothing more, nothing less)
  --subset  every action used is granted (the admin policy for migrations)

  --reset   clear the proxy's counters afterwards, so the next phase is
            counted on its own

Run inside `tests/aws/stack.py run` (it sets CART_TEST_CONTROL, and with
--eventbridge EVENTBRIDGE_ENDPOINT, whose proxy counts PutEvents).
"""
import argparse
import json
import os
import sys
import urllib.request

# X-Amz-Target prefix -> IAM service prefix
SERVICES = {"DynamoDB_20120810": "dynamodb", "AWSEvents": "events"}


def used_actions(control):
    """Actions seen by the proxy at control; {} if control is None."""
    if not control:
        return set()
    with urllib.request.urlopen(control + "/__control/stats", timeout=5) as r:
        stats = json.load(r)
    actions = set()
    # IAM has no TransactWriteItems action: a transaction needs the
    # item-level action of each of its items (ddb_transact counts them)
    for op, count in stats.get("transactions", {}).get("actions", {}).items():
        if count:
            actions.add("dynamodb:%s" % op)
    for target, count in stats.get("targets", {}).items():
        prefix, _, op = target.partition(".")
        if op == "TransactWriteItems" and prefix == "DynamoDB_20120810":
            continue
        if count and prefix in SERVICES:
            actions.add("%s:%s" % (SERVICES[prefix], op))
        elif count:
            raise SystemExit("check_iam: unknown target %r" % target)
    return actions


def granted_actions(path):
    with open(path) as f:
        policy = json.load(f)
    actions = set()
    for st in policy["Statement"]:
        if st.get("Effect") != "Allow":
            continue
        acts = st["Action"]
        actions.update([acts] if isinstance(acts, str) else acts)
    if any("*" in a for a in actions):
        raise SystemExit("check_iam: %s uses a wildcard action" % path)
    return actions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", required=True)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--exact", action="store_true")
    mode.add_argument("--subset", action="store_true")
    ap.add_argument("--reset", action="store_true")
    args = ap.parse_args()
    control = os.environ.get("CART_TEST_CONTROL")
    if not control:
        raise SystemExit("check_iam: CART_TEST_CONTROL is not set "
                         "(run inside tests/aws/stack.py run)")
    # The EventBridge proxy (stack.py --eventbridge) counts PutEvents.
    events = os.environ.get("EVENTBRIDGE_ENDPOINT")
    used = used_actions(control) | used_actions(events)
    granted = granted_actions(args.policy)
    problems = ["used but not granted: %s" % a for a in sorted(used - granted)]
    if args.exact:
        problems += ["granted but never used: %s" % a
                     for a in sorted(granted - used)]
    if not used:
        problems.append("no AWS action was seen at all")
    print("check_iam: %s: used %s" % (args.policy, ", ".join(sorted(used))))
    if args.reset:
        for c in filter(None, (control, events)):
            req = urllib.request.Request(c + "/__control/reset", data=b"{}",
                                         method="POST")
            urllib.request.urlopen(req, timeout=5).close()
    if problems:
        for p in problems:
            print("check_iam: " + p, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
