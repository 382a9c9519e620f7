#!/bin/sh
# The cost of request logs (issue 9): GET /v1/cart/{id} with LOG_LEVEL=info
# (one access line per request, through the log writer thread) against
# LOG_LEVEL=warn (none), alternated twice each so a noisy neighbour hits
# both alike.  stdout goes to a file.  Target: info within 10 % of warn in
# throughput and p99 (throughput ratio >= 0.90, p99 ratio <= 1.10).
# Alone: make bench-logs (BENCH_SECONDS, BENCH_CONNECTIONS as make bench).
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build}
DURATION=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-64}
mkdir -p "$O/bench"

. tools/bench/common.sh

log_run() {   # $1 name, $2 level
	p=$(free_port)
	APP_PORT=$p LISTEN_ADDR=127.0.0.1 LOG_LEVEL=$2 RATE_LIMIT_RPS=0 \
		bin/cart-service > "$O/bench/$1.log" & spid=$!
	wait_up "$p" health
	curl -fs -X POST "http://127.0.0.1:$p/v1/cart/bench/items" -H 'Content-Type: application/json' \
		-d '{"itemId":"sku-1","quantity":2,"unitPrice":{"amount":1999,"currency":"EUR"},"name":"Mug"}' >/dev/null
	echo "== logs $2 ($1): GET /v1/cart/bench"
	wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$p/v1/cart/bench" \
		| tee "$O/bench/$1.txt" | grep -E "Requests/sec|99%"
	kill -TERM "$spid"; wait "$spid" || true
}
log_run logs-warn-1 warn; log_run logs-info-1 info; log_run logs-warn-2 warn; log_run logs-info-2 info

rps() { awk '/Requests\/sec/ {print $2}' "$O/bench/$1.txt"; }
# wrk prints "99%  1.23ms" (us, ms or s): in ms
p99() { awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
	print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : v) }' "$O/bench/$1.txt"; }
dropped=$(grep -h '"log lines dropped"' "$O"/bench/logs-info-*.log | wc -l)
echo "== logs info/warn: throughput $(awk -v a="$(rps logs-info-1)" -v b="$(rps logs-info-2)" \
	-v c="$(rps logs-warn-1)" -v d="$(rps logs-warn-2)" 'BEGIN { printf "%.2f", (a + b) / (c + d) }')" \
	"(target >= 0.90), p99 $(awk -v a="$(p99 logs-info-1)" -v b="$(p99 logs-info-2)" \
	-v c="$(p99 logs-warn-1)" -v d="$(p99 logs-warn-2)" 'BEGIN { printf "%.2f", (a + b) / (c + d) }')" \
	"(target <= 1.10); \"log lines dropped\" lines: $dropped"
