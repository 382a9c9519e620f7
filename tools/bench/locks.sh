#!/bin/sh
# Lock sleeps on the write path (issue 10, ADR 17): how often a worker
# sleeps in the kernel on a mutex (glibc's __lll_lock_wait) or on one of
# glibc malloc's arena locks (__lll_lock_wait_private), per 1,000
# requests, with the service built twice -- jemalloc (as shipped) and
# glibc's malloc (MALLOC_LIBS=) -- alternated BENCH_PAIRS times (default
# 3).  Each run: 10,000 carts seeded, then tests/load/$BENCH_LOCK_SCENARIO
# (default add) at 64 connections for 8 s, counted over 5 s of it with
# perf's uprobes.  Needs root and perf (linux-perf).  Alone: make bench-locks.
#
# BENCH_LOCK_COMPARE=sched compares the shipped build with
# BACKGROUND_SCHED_BATCH=true (default) and =false instead (ADR 20);
# BENCH_CPUS (e.g. 0) pins the service with taskset, wrk unpinned.
# Example: BENCH_LOCK_COMPARE=sched BENCH_CPUS=0 make bench-locks
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build}
PAIRS=${BENCH_PAIRS:-3}
S=${BENCH_LOCK_SCENARIO:-add}
mkdir -p "$O/bench"
. tools/bench/common.sh
LIBC=$(ldd bin/cart-service | awk '/libc\.so/ {print $3}')
for f in __lll_lock_wait __lll_lock_wait_private; do
	perf probe -q -x "$LIBC" -a "$f" 2>/dev/null || true
done
COMPARE=${BENCH_LOCK_COMPARE:-alloc}
PIN=
[ -n "${BENCH_CPUS:-}" ] && PIN="taskset -c $BENCH_CPUS"
[ "$COMPARE" = alloc ] &&
	make --no-print-directory BIN="$O/bench/cart-service-glibc" MALLOC_LIBS= "$O/bench/cart-service-glibc" >/dev/null
run() {   # $1 label, $2 binary, $3 BACKGROUND_SCHED_BATCH
	p=$(free_port)
	APP_PORT=$p LISTEN_ADDR=127.0.0.1 LOG_LEVEL=info RATE_LIMIT_RPS=1000000 METRICS_ENABLED=true \
		BACKGROUND_SCHED_BATCH=${3:-true} $PIN "$2" > /dev/null 2>&1 & spid=$!
	wait_up "$p" health
	BENCH_CARTS=10000 wrk -t2 -c64 -d600s -s tests/load/seed.lua "http://127.0.0.1:$p" > /dev/null 2>&1 & w=$!
	sleep 3; kill -INT $w 2>/dev/null; wait $w || true
	BENCH_CARTS=10000 wrk -t2 -c64 -d8s --latency -s "tests/load/$S.lua" "http://127.0.0.1:$p" \
		> "$O/bench/locks-$1.txt" & w=$!
	sleep 1
	perf stat -x, -e probe_libc:__lll_lock_wait -e probe_libc:__lll_lock_wait_private \
		-p "$spid" -o "$O/bench/locks-$1.stat" -- sleep 5 > /dev/null 2>&1
	wait $w
	kill -TERM "$spid"; wait "$spid" || true
	awk -F, -v rps="$(wrk_rps "$O/bench/locks-$1.txt")" -v p99="$(wrk_pct "$O/bench/locks-$1.txt" 99)" -v l="$1" '
		/probe_libc/ { split($3, a, ":"); v[a[2]] = $1 }
		END { n = rps * 5; printf "   %-9s %8.0f req/s  p99 %6s ms  mutex sleeps/1k %5.2f  arena sleeps/1k %5.2f\n",
			l, rps, p99, v["__lll_lock_wait"] * 1000 / n, v["__lll_lock_wait_private"] * 1000 / n }' \
		"$O/bench/locks-$1.stat"
}
if [ "$COMPARE" = sched ]; then
	echo "== lock sleeps: $S, 64 connections, cores ${BENCH_CPUS:-all}, background threads SCHED_BATCH (shipped) against SCHED_OTHER, $PAIRS pairs"
	a() { run batch bin/cart-service true; }
	b() { run other bin/cart-service false; }
else
	echo "== lock sleeps: $S, 64 connections, jemalloc (shipped) against glibc malloc, $PAIRS pairs"
	a() { run jemalloc bin/cart-service; }
	b() { run glibc "$O/bench/cart-service-glibc"; }
fi
i=1
while [ "$i" -le "$PAIRS" ]; do
	if [ $((i % 2)) = 1 ]; then a; b; else b; a; fi
	i=$((i + 1))
done
