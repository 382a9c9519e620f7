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

AppConfig's data plane is rest-json: its proxy counts "POST
/configurationsessions" (appconfig:StartConfigurationSession) and "GET
/configuration" (appconfig:GetLatestConfiguration).  IAM checks both on the
configuration's resource, application/A/environment/E/configuration/P,
so these names are compared: the sessions the AppConfig stand-in opened
must each be covered by the policy's Resource for both actions.

Run inside `tests/aws/stack.py run` (it sets CART_TEST_CONTROL, and with
--eventbridge EVENTBRIDGE_ENDPOINT, whose proxy counts PutEvents, and with
--appconfig FEATURE_FLAGS_APPCONFIG_ENDPOINT and CART_TEST_APPCONFIG_CONTROL).
"""
import argparse
import json
import os
import sys
import urllib.request

# X-Amz-Target prefix -> IAM service prefix
SERVICES = {"DynamoDB_20120810": "dynamodb", "AWSEvents": "events"}
# rest-json operations (method and path, as the proxy counts them) -> action
REST = {"POST /configurationsessions": "appconfig:StartConfigurationSession",
        "GET /configuration": "appconfig:GetLatestConfiguration"}


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def appconfig_actions(proxy, standin):
    """(action, "application/A/environment/E/configuration/P") pairs: the
    REST operations the AppConfig proxy saw, on every configuration a
    session was opened for (a token carries its session's resource)."""
    if not proxy:
        return set()
    targets = _get(proxy + "/__control/stats").get("targets", {})
    used = {REST[t] for t, n in targets.items() if n and t in REST}
    unknown = [t for t, n in targets.items() if n and t not in REST]
    if unknown:
        raise SystemExit("check_iam: unknown AppConfig operation %r" % unknown[0])
    if not used:
        return set()
    if not standin:
        raise SystemExit("check_iam: AppConfig calls seen but CART_TEST_APPCONFIG_CONTROL "
                         "is not set (which configuration did they read?)")
    resources = {"application/%(application)s/environment/%(environment)s"
                 "/configuration/%(profile)s" % s
                 for s in _get(standin + "/__control/stats")["sessions"]}
    return {(a, r) for a in used for r in resources}


def used_actions(control):
    """(action, scope) pairs seen by the proxy at control; {} if control is
    None.  scope: "table" or "index/NAME" for DynamoDB, "*" otherwise."""
    if not control:
        return set()
    stats = _get(control + "/__control/stats")
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
    (NAME may be *), an AppConfig configuration path, or "*"."""
    if resource == "*":
        return "*"
    if action.startswith("appconfig:"):
        return resource.split(":", 5)[5] if resource.count(":") >= 5 else resource
    if not action.startswith("dynamodb:"):
        return "*"
    _, _, path = resource.partition(":table/")
    _, sep, index = path.partition("/index/")
    return "index/" + index if sep else "table"


def covers(granted, used):
    return granted in ("*", used) or (granted == "index/*" and used.startswith("index/"))


def granted_actions(path):
    """(action, scope) pairs the policy allows."""
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
    appconfig = os.environ.get("FEATURE_FLAGS_APPCONFIG_ENDPOINT")
    standin = os.environ.get("CART_TEST_APPCONFIG_CONTROL")
    used = used_actions(control) | used_actions(events) | \
        appconfig_actions(appconfig, standin)
    granted = granted_actions(args.policy)
    problems = ["used but not granted: %s" % show(u) for u in sorted(used)
                if not any(a == u[0] and covers(g, u[1]) for a, g in granted)]
    if args.exact:
        problems += ["granted but never used: %s" % show(g) for g in sorted(granted)
                     if not any(a == g[0] and covers(g[1], s) for a, s in used)]
    if not used:
        problems.append("no AWS action was seen at all")
    print("check_iam: %s: used %s" % (args.policy, ", ".join(map(show, sorted(used)))))
    if args.reset:
        for c in filter(None, (control, events, appconfig, standin)):
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
