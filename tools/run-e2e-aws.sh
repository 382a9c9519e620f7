#!/bin/sh
# tests/e2e_aws in two processes side by side (CI keeps `make check` under
# 15 minutes; each test class starts its own stack on free ports, so the
# groups share nothing).  Group 1 holds the modules that wait on the clock
# most (EventBridge faults, the breaker, retries with timeouts); every
# other test_*.py, new ones included, runs in group 2.  Exits non-zero if
# either group failed; group 1's output is printed after group 2's.
set -u
cd "$(dirname "$0")/../tests/e2e_aws" || exit 2
G1="test_eventbridge test_breaker test_unknown_outcome test_wrong_credentials"
G2=""
for f in test_*.py; do
	m=${f%.py}
	case " $G1 " in *" $m "*) ;; *) G2="$G2 $m" ;; esac
done
log=$(mktemp)
/usr/bin/python3 -m unittest $G1 >"$log" 2>&1 &
p1=$!
/usr/bin/python3 -m unittest $G2
r2=$?
wait "$p1"
r1=$?
echo "--- tests/e2e_aws group 1 ($G1):"
cat "$log"
rm -f "$log"
[ "$r1" -eq 0 ] && [ "$r2" -eq 0 ]
