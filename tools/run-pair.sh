#!/bin/sh
# Runs two commands side by side (make check's time on 2 cores): the
# second's output streams, the first's is printed after it.  Exits
# non-zero if either failed.
#   tools/run-pair.sh 'command one' 'command two'
set -u
log=$(mktemp)
sh -c "$1" >"$log" 2>&1 &
p1=$!
sh -c "$2"
r2=$?
wait "$p1"
r1=$?
echo "--- side by side: $1"
cat "$log"
rm -f "$log"
[ "$r1" -eq 0 ] && [ "$r2" -eq 0 ]
