#!/bin/sh
# The cost of request logs (issue 9): GET /v1/cart/{id} with LOG_LEVEL=info
# (one access line per request, through the log writer thread) against
# LOG_LEVEL=warn (none).  stdout goes to a file.
#
# One run's p99 moves by +-30 % on a shared 2-core machine whatever the
# level, so a single pair proves nothing: BENCH_PAIRS pairs (default 5)
# of short runs, the order swapped in every other pair so drift hits both
# sides alike, and the ratio reported is the median of the pairs' ratios.
# Target: info within 10 % of warn (throughput ratio >= 0.90, p99 ratio
# <= 1.10).  Alone: make bench-logs (BENCH_LOG_SECONDS, default 5;
# BENCH_CONNECTIONS; BENCH_PAIRS).
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build}
DURATION=${BENCH_LOG_SECONDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
PAIRS=${BENCH_PAIRS:-5}
mkdir -p "$O/bench"

. tools/bench/common.sh

log_run() {   # $1 name, $2 level
	p=$(free_port)
	APP_PORT=$p LISTEN_ADDR=127.0.0.1 LOG_LEVEL=$2 RATE_LIMIT_RPS=0 \
		bin/cart-service > "$O/bench/$1.log" & spid=$!
	wait_up "$p" health
	curl -fs -X POST "http://127.0.0.1:$p/v1/cart/bench/items" -H 'Content-Type: application/json' \
		-d '{"itemId":"sku-1","quantity":2,"unitPrice":{"amount":1999,"currency":"EUR"},"name":"Mug"}' >/dev/null
	wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$p/v1/cart/bench" > "$O/bench/$1.txt"
	kill -TERM "$spid"; wait "$spid" || true
	printf '   %-12s %10s req/s  p50 %6s ms  p99 %6s ms\n' "$1" "$(wrk_rps "$O/bench/$1.txt")" \
		"$(wrk_pct "$O/bench/$1.txt" 50)" "$(wrk_pct "$O/bench/$1.txt" 99)"
}

echo "== logs: GET /v1/cart/bench, LOG_LEVEL=info against warn, $PAIRS pairs of ${DURATION} s"
rm -f "$O/bench/logs-ratios.txt"
i=1
while [ "$i" -le "$PAIRS" ]; do
	if [ $((i % 2)) = 1 ]; then log_run "logs-warn-$i" warn; log_run "logs-info-$i" info
	else log_run "logs-info-$i" info; log_run "logs-warn-$i" warn; fi
	w="$O/bench/logs-warn-$i.txt"; n="$O/bench/logs-info-$i.txt"
	awk -v a="$(wrk_rps "$n")" -v b="$(wrk_rps "$w")" -v c="$(wrk_pct "$n" 99)" -v d="$(wrk_pct "$w" 99)" \
		'BEGIN { printf "%.4f %.4f\n", a / b, c / d }' >> "$O/bench/logs-ratios.txt"
	i=$((i + 1))
done

dropped=$(grep -h '"log lines dropped"' "$O"/bench/logs-info-*.log | wc -l)
echo "== logs info/warn: throughput $(awk '{print $1}' "$O/bench/logs-ratios.txt" | median | xargs printf '%.2f')" \
	"(target >= 0.90), p99 $(awk '{print $2}' "$O/bench/logs-ratios.txt" | median | xargs printf '%.2f')" \
	"(target <= 1.10); medians of $PAIRS pairs" \
	"(p99 ratios: $(awk '{printf "%s%.2f", (NR > 1 ? " " : ""), $2}' "$O/bench/logs-ratios.txt"));" \
	"\"log lines dropped\" lines: $dropped"
