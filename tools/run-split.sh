#!/bin/sh
# Runs the unittest modules of one test directory in two processes side by
# side, to keep `make check` under its time limit on 2 cores:
#   tools/run-split.sh DIR "module module ..." ["alone ..."]
# The named modules run in one process, every other test_*.py of DIR (new
# ones included) in the other.  Each test class starts its own servers on
# free ports, so the two share nothing but the CPUs -- and the store, on
# DynamoDB: modules that need no other relay running against the same
# table (a relay takes a relay-less writer's events at once) go in the
# third argument and run alone afterwards.  Exits non-zero if
# either failed; the first group's output is printed after the second's.
# UNITTEST_ARGS (e.g. -v) is passed to both.
set -u
dir=$1
g1=$2
alone=${3:-}
cd "$dir" || exit 2
g2=""
for f in test_*.py; do
	m=${f%.py}
	case " $g1 $alone " in *" $m "*) ;; *) g2="$g2 $m" ;; esac
done
log=$(mktemp)
# shellcheck disable=SC2086
/usr/bin/python3 -m unittest ${UNITTEST_ARGS:-} $g1 >"$log" 2>&1 &
p1=$!
# shellcheck disable=SC2086
/usr/bin/python3 -m unittest ${UNITTEST_ARGS:-} $g2
r2=$?
wait "$p1"
r1=$?
echo "--- $dir, the other group ($g1):"
cat "$log"
rm -f "$log"
r3=0
if [ -n "$alone" ]; then
	echo "--- $dir, alone ($alone):"
	# shellcheck disable=SC2086
	/usr/bin/python3 -m unittest ${UNITTEST_ARGS:-} $alone
	r3=$?
fi
[ "$r1" -eq 0 ] && [ "$r2" -eq 0 ] && [ "$r3" -eq 0 ]
