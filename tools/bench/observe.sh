#!/bin/sh
# The cost of observability (issue 9): GET /v1/cart/{id} with metrics
# counted (METRICS_ENABLED=true, /metrics scraped every second) and X-Ray
# on (AWS_XRAY_ENABLED=true, the default sampling: 1 request a second,
# then 5 %, segments sent to a UDP sink this script owns), against both
# off; LOG_LEVEL=warn on both sides, alternated twice each so a noisy
# neighbour hits both alike.  Target: on within 5 % of off in throughput
# (ratio >= 0.95).  Alone: make bench-observe.
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build}
DURATION=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-64}
mkdir -p "$O/bench"

. tools/bench/common.sh

# The X-Ray daemon stand-in: counts datagrams until killed.
UDP=$(/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 -c '
import signal, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
n = [0]
def done(*_):
    open(sys.argv[2], "w").write("%d\n" % n[0]); sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    s.recv(65536); n[0] += 1
' "$UDP" "$O/bench/xray-datagrams.txt" & upid=$!

obs_run() {   # $1 name, $2 on|off
	p=$(free_port)
	if [ "$2" = on ]; then
		APP_PORT=$p LISTEN_ADDR=127.0.0.1 LOG_LEVEL=warn RATE_LIMIT_RPS=0 \
		METRICS_ENABLED=true AWS_XRAY_ENABLED=true AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:$UDP \
		bin/cart-service > "$O/bench/$1.log" & spid=$!
	else
		APP_PORT=$p LISTEN_ADDR=127.0.0.1 LOG_LEVEL=warn RATE_LIMIT_RPS=0 \
		METRICS_ENABLED=false AWS_XRAY_ENABLED=false \
		bin/cart-service > "$O/bench/$1.log" & spid=$!
	fi
	wait_up "$p" health
	curl -fs -X POST "http://127.0.0.1:$p/v1/cart/bench/items" -H 'Content-Type: application/json' \
		-d '{"itemId":"sku-1","quantity":2,"unitPrice":{"amount":1999,"currency":"EUR"},"name":"Mug"}' >/dev/null
	scraper=
	if [ "$2" = on ]; then
		( while :; do curl -fs "http://127.0.0.1:$p/metrics" >/dev/null || true; sleep 1; done ) &
		scraper=$!
	fi
	echo "== observability $2 ($1): GET /v1/cart/bench"
	wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$p/v1/cart/bench" \
		| tee "$O/bench/$1.txt" | grep -E "Requests/sec|99%"
	[ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
	kill -TERM "$spid"; wait "$spid" || true
}
obs_run obs-off-1 off; obs_run obs-on-1 on; obs_run obs-off-2 off; obs_run obs-on-2 on
kill -TERM "$upid"; wait "$upid" 2>/dev/null || true

rps() { awk '/Requests\/sec/ {print $2}' "$O/bench/$1.txt"; }
echo "== observability on/off = $(awk -v a="$(rps obs-on-1)" -v b="$(rps obs-on-2)" \
	-v c="$(rps obs-off-1)" -v d="$(rps obs-off-2)" 'BEGIN { printf "%.2f", (a + b) / (c + d) }')" \
	"(metrics + X-Ray with default sampling; target >= 0.95);" \
	"segments received: $(cat "$O/bench/xray-datagrams.txt" 2>/dev/null || echo 0)"
