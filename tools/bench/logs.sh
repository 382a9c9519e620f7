#!/bin/sh
# The cost of request logs (issue 9): GET /v1/cart/{id} with LOG_LEVEL=info
# (one access line per request, through the log writer thread) against
# LOG_LEVEL=warn (none).
#
# Where stdout goes (BENCH_LOG_SINK):
#   pipe  (default) a pipe read by another process, as on ECS, where the
#         awslogs/FireLens driver reads the container's stdout; the reader
#         (cat into /dev/null) runs on the same cores.  The target is for
#         this sink.
#   file  a file on this machine's disk.  Here the kernel's writeback of
#         ~10 MB/s of lines (ext4, flusher and journal threads) competes
#         with the workers for the same 2 cores: it raises info's p99 by
#         1.2-1.6x although the service's own work is the same
#         (docs/performance.md).  Reported, not the target.
#   both  pipe, then file.
#
# One run's p99 moves by +-30 % on a shared 2-core machine whatever the
# level, so a single pair proves nothing: BENCH_PAIRS pairs (default 5)
# of short runs, the order swapped in every other pair so drift hits both
# sides alike, and the ratio reported is the median of the pairs' ratios.
# Target: info within 10 % of warn (throughput ratio >= 0.90, p99 ratio
# <= 1.10).  Lines dropped are read from /metrics (log_lines_dropped_total)
# before each server stops.  Alone: make bench-logs (BENCH_LOG_SECONDS,
# default 5; BENCH_CONNECTIONS; BENCH_PAIRS; BENCH_LOG_SINK).
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build}
DURATION=${BENCH_LOG_SECONDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
PAIRS=${BENCH_PAIRS:-5}
SINKS=${BENCH_LOG_SINK:-pipe}
[ "$SINKS" = both ] && SINKS="pipe file"
mkdir -p "$O/bench"

. tools/bench/common.sh

log_run() {   # $1 name, $2 level, $3 sink
	p=$(free_port)
	rpid=
	if [ "$3" = pipe ]; then
		fifo="$O/bench/$1.fifo"
		rm -f "$fifo"; mkfifo "$fifo"
		cat "$fifo" > /dev/null & rpid=$!
		out=$fifo
	else
		out="$O/bench/$1.log"
	fi
	APP_PORT=$p LISTEN_ADDR=127.0.0.1 LOG_LEVEL=$2 RATE_LIMIT_RPS=0 \
		bin/cart-service > "$out" & spid=$!
	wait_up "$p" health
	curl -fs -X POST "http://127.0.0.1:$p/v1/cart/bench/items" -H 'Content-Type: application/json' \
		-d '{"itemId":"sku-1","quantity":2,"unitPrice":{"amount":1999,"currency":"EUR"},"name":"Mug"}' >/dev/null
	wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$p/v1/cart/bench" > "$O/bench/$1.txt"
	curl -fs "http://127.0.0.1:$p/metrics" | awk '/^log_lines_dropped_total/ { n += $2 } END { print n + 0 }' \
		> "$O/bench/$1.dropped"
	kill -TERM "$spid"; wait "$spid" || true
	[ -z "$rpid" ] || { wait "$rpid" || true; rm -f "$fifo"; }
	printf '   %-17s %10s req/s  p50 %6s ms  p99 %6s ms  dropped %s\n' "$1" "$(wrk_rps "$O/bench/$1.txt")" \
		"$(wrk_pct "$O/bench/$1.txt" 50)" "$(wrk_pct "$O/bench/$1.txt" 99)" "$(cat "$O/bench/$1.dropped")"
}

for sink in $SINKS; do
	echo "== logs ($sink): GET /v1/cart/bench, LOG_LEVEL=info against warn, $PAIRS pairs of ${DURATION} s"
	ratios="$O/bench/logs-$sink-ratios.txt"
	rm -f "$ratios" "$O"/bench/logs-"$sink"-*.dropped
	i=1
	while [ "$i" -le "$PAIRS" ]; do
		if [ $((i % 2)) = 1 ]; then log_run "logs-$sink-warn-$i" warn "$sink"; log_run "logs-$sink-info-$i" info "$sink"
		else log_run "logs-$sink-info-$i" info "$sink"; log_run "logs-$sink-warn-$i" warn "$sink"; fi
		w="$O/bench/logs-$sink-warn-$i.txt"; n="$O/bench/logs-$sink-info-$i.txt"
		awk -v a="$(wrk_rps "$n")" -v b="$(wrk_rps "$w")" -v c="$(wrk_pct "$n" 99)" -v d="$(wrk_pct "$w" 99)" \
			'BEGIN { printf "%.4f %.4f\n", a / b, c / d }' >> "$ratios"
		i=$((i + 1))
	done
	dropped=$(cat "$O"/bench/logs-"$sink"-*.dropped | awk '{ n += $1 } END { print n + 0 }')
	note=; [ "$sink" = pipe ] || note=", not the target"
	echo "== logs info/warn ($sink$note): throughput" \
		"$(awk '{print $1}' "$ratios" | median | xargs printf '%.2f') (target >= 0.90)," \
		"p99 $(awk '{print $2}' "$ratios" | median | xargs printf '%.2f') (target <= 1.10);" \
		"medians of $PAIRS pairs (p99 ratios: $(awk '{printf "%s%.2f", (NR > 1 ? " " : ""), $2}' "$ratios"));" \
		"log lines dropped: $dropped"
done
