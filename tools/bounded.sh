#!/bin/sh
# tools/bounded.sh SECONDS CMD [ARG...]
#
# Runs CMD and returns its exit status.  Past SECONDS it prints every
# thread's stack (gdb; through vgdb when CMD is valgrind) and kills it:
# exit 124.  For the valgrind runs of make check: they run with
# CK_FORK=no, where Check has no per-test timeout, and a test that hung
# there once held a CI run for 18 minutes and said nothing about where.
set -u
limit=$1
shift
"$@" &
pid=$!
waited=0
while kill -0 "$pid" 2>/dev/null; do
	if [ "$waited" -ge "$limit" ]; then
		echo "bounded.sh: '$*' still running after $limit s: its threads' stacks" >&2
		prog=""
		for a in "$@"; do prog=$a; done   # valgrind's program is its last word
		case "$1" in
		valgrind | */valgrind)
			timeout 60 gdb -batch -nx -ex "target remote | vgdb --pid=$pid" \
				-ex "thread apply all bt" "$prog" >&2 2>&1 ;;
		*)
			timeout 60 gdb -batch -nx -p "$pid" -ex "thread apply all bt" >&2 2>&1 ;;
		esac
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		echo "bounded.sh: killed after $limit s" >&2
		exit 124
	fi
	sleep 1
	waited=$((waited + 1))
done
wait "$pid"
