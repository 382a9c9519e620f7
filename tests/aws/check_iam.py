#!/usr/bin/python3
"""Least privilege, checked on the wire.

Reads the AWS actions the SigV4 proxy saw (X-Amz-Target of every request
with a valid signature, from /__control/stats) and compares them with an
IAM policy file.  A DynamoDB request is checked against its resource, like
IAM does: a Query or Scan with an IndexName needs the action on that index
(".../table/T/index/NAME"), any other request on the table.  Table names
are not compared (the tests use their own tables), only table vs index.

  --exact   every action used is granted, and every granted action was used
            (the runtime policy: nothing more, nothing less)
  --subset  every action used is granted (the admin policy for migrations)

  --reset   clear the proxy's counters afterwards, so the next phase is
            counted on its own

A Secrets Manager read is checked against the secret it read, like IAM
does: the stand-in (CART_TEST_SECRETS_CONTROL) says which secret ARNs it
answered, and a policy Resource covers them with IAM's wildcards (* and
?, e.g. ".../secret:cart-service/jwks-??????").  --policy may be given
more than once: the policies attached together (runtime-policy.json, plus
secrets-policy.json when secrets come from Secrets Manager).

Run inside `tests/aws/stack.py run` (it sets CART_TEST_CONTROL, and with
--eventbridge EVENTBRIDGE_ENDPOINT, whose proxy counts PutEvents), or with
SECRETSMANAGER_ENDPOINT and CART_TEST_SECRETS_CONTROL of a stack with
secretsmanager=True.
"""
import argparse
import fnmatch
import json
import os
import sys
import urllib.request

# X-Amz-Target prefix -> IAM service prefix
SERVICES = {"DynamoDB_20120810": "dynamodb", "AWSEvents": "events",
            "secretsmanager": "secretsmanager"}


def _stats(base):
    with urllib.request.urlopen(base + "/__control/stats", timeout=5) as r:
        return json.load(r)


def secrets_read(control):
    """("secretsmanager:GetSecretValue", ARN) for every secret the
    stand-in at control answered."""
    if not control:
        return set()
    return {("secretsmanager:GetSecretValue", arn)
            for arn, n in _stats(control).get("reads", {}).items() if n}


def used_actions(control):
    """(action, scope) pairs seen by the proxy at control; {} if control is
    None.  scope: "table" or "index/NAME" for DynamoDB, "*" otherwise."""
    if not control:
        return set()
    stats = _stats(control)
    actions = set()
    # IAM has no TransactWriteItems action: a transaction needs the
    # item-level action of each of its items (ddb_transact counts them)
    for op, count in stats.get("transactions", {}).get("actions", {}).items():
        if count:
            actions.add(("dynamodb:%s" % op, "table"))
    indexes = stats.get("indexes", {})
    for target, count in stats.get("targets", {}).items():
        prefix, _, op = target.partition(".")
        if op == "TransactWriteItems" and prefix == "DynamoDB_20120810":
            continue
        if count and prefix in SERVICES:
            action = "%s:%s" % (SERVICES[prefix], op)
            if SERVICES[prefix] == "secretsmanager":
                continue   # by secret: secrets_read()
            if SERVICES[prefix] != "dynamodb":
                actions.add((action, "*"))
                continue
            on_index = indexes.get(target, {})
            for name, n in on_index.items():
                if n:
                    actions.add((action, "index/" + name))
            if count > sum(on_index.values()):
                actions.add((action, "table"))
        elif count:
            raise SystemExit("check_iam: unknown target %r" % target)
    return actions


def scope_of(action, resource):
    """What a policy Resource covers for action: "table", "index/NAME"
    (NAME may be *), or "*"."""
    if action.startswith("secretsmanager:"):
        return resource   # an ARN pattern
    if not action.startswith("dynamodb:") or resource == "*":
        return "*"
    _, _, path = resource.partition(":table/")
    _, sep, index = path.partition("/index/")
    return "index/" + index if sep else "table"


def covers(granted, used):
    return granted in ("*", used) or (granted == "index/*" and used.startswith("index/")) or \
        (used.startswith("arn:") and fnmatch.fnmatchcase(used, granted))


def granted_actions(paths):
    """(action, scope) pairs the policies allow together."""
    actions = set()
    for path in paths:
        actions |= _granted(path)
    return actions


def _granted(path):
    with open(path) as f:
        policy = json.load(f)
    actions = set()
    for st in policy["Statement"]:
        if st.get("Effect") != "Allow":
            continue
        acts, res = st["Action"], st.get("Resource", "*")
        for a in [acts] if isinstance(acts, str) else acts:
            if "*" in a:
                raise SystemExit("check_iam: %s uses a wildcard action" % path)
            for r in [res] if isinstance(res, str) else res:
                actions.add((a, scope_of(a, r)))
    return actions


def show(pair):
    action, scope = pair
    return action if scope == "*" else "%s on %s" % (action, scope)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", required=True, action="append")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--exact", action="store_true")
    mode.add_argument("--subset", action="store_true")
    ap.add_argument("--reset", action="store_true")
    args = ap.parse_args()
    control = os.environ.get("CART_TEST_CONTROL")
    secrets = os.environ.get("CART_TEST_SECRETS_CONTROL")
    if not control and not secrets:
        raise SystemExit("check_iam: neither CART_TEST_CONTROL nor "
                         "CART_TEST_SECRETS_CONTROL is set (run inside tests/aws/stack.py run)")
    # The EventBridge proxy (stack.py --eventbridge) counts PutEvents.
    events = os.environ.get("EVENTBRIDGE_ENDPOINT") if control else None
    used = used_actions(control) | used_actions(events) | secrets_read(secrets)
    granted = granted_actions(args.policy)
    problems = ["used but not granted: %s" % show(u) for u in sorted(used)
                if not any(a == u[0] and covers(g, u[1]) for a, g in granted)]
    if args.exact:
        problems += ["granted but never used: %s" % show(g) for g in sorted(granted)
                     if not any(a == g[0] and covers(g[1], s) for a, s in used)]
    if not used:
        problems.append("no AWS action was seen at all")
    print("check_iam: %s: used %s" % (" + ".join(args.policy),
                                       ", ".join(map(show, sorted(used)))))
    if args.reset:
        for c in filter(None, (control, events, secrets)):
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
