#!/bin/sh
# make check's test stages, in two lanes (2 cores, and most end-to-end
# time is spent waiting on sockets, clocks and dynalite):
#
#   live    layering, contract, unit, e2e, dynamo-live, redis, postman,
#           deploy-check: everything that starts servers or asserts on
#           timing, at normal priority, its output streamed;
#   memory  the unit and DynamoDB tests under valgrind, then the fuzz
#           pass: CPU-bound work at nice 19, so it takes only the CPU the
#           live lane leaves idle and never delays a timed assertion
#           there.  Its output is printed when it ends.
#
# Each stage's time is printed ("check: STAGE N s") and the summary lists
# them all.  Exits non-zero when any stage of either lane failed.
#   tools/check.sh            both lanes (make check, after the build)
#   tools/check.sh lane NAME  one lane, in this process
set -u
cd "$(dirname "$0")/.." || exit 2
MAKE=${MAKE:-make}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}   # the Makefile takes it from the environment
export FUZZ_SECONDS
out=build/check
mkdir -p "$out"

LIVE="layering contract unit e2e dynamo-live redis postman deploy-check"
MEMORY="valgrind dynamo-valgrind fuzz"

run_lane() { # stages...; stops at the first failure
	for st in "$@"; do
		s=$(date +%s)
		$MAKE --no-print-directory "$st"
		r=$?
		line="check: $st $(($(date +%s) - s)) s"
		[ "$r" -eq 0 ] || line="$line, FAILED (exit $r)"
		echo "$line"
		echo "$line" >>"$out/times"
		[ "$r" -eq 0 ] || return "$r"
	done
}

if [ "${1:-}" = lane ]; then
	case "${2:-}" in
	live) run_lane $LIVE ;;
	memory) run_lane $MEMORY ;;
	*) echo "check.sh: unknown lane '${2:-}' (live|memory)" >&2; exit 2 ;;
	esac
	exit $?
fi

: >"$out/times"
t0=$(date +%s)
nice -n 19 "$0" lane memory >"$out/memory.log" 2>&1 &
bg=$!
"$0" lane live
live=$?
echo "check: the live lane is done; waiting for the memory lane (valgrind, fuzz)"
wait "$bg"
memory=$?
echo "--- the memory lane ($MEMORY), at nice 19:"
cat "$out/memory.log"
echo "--- stage times (the two lanes overlap):"
cat "$out/times"
echo "check: tests took $(($(date +%s) - t0)) s"
[ "$live" -eq 0 ] && [ "$memory" -eq 0 ]
