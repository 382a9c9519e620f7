#!/bin/sh
# make bench: throughput and latency of GET /v1/cart/{id} against a bare
# civetweb ceiling with the same options, and heap bytes per stored
# 3-line cart.  Loopback, wrk with 2 threads and 64 connections.
# Targets (issue 2's "what comes next"): GET >= 0.8x ceiling,
# p99 < 5 ms at 64 connections, <= 1 KiB per stored 3-line cart.
set -eu
cd "$(dirname "$0")/.."
tools/bootstrap.sh dev >/dev/null
O=${O:-build}
DURATION=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-64}
mkdir -p "$O/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -o "$O/bench/ceiling" tools/bench/ceiling.c -lcivetweb -lpthread -ldl
cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Iadapters -o "$O/bench/mem_per_cart" \
	tools/bench/mem_per_cart.c "$O/libcart-adapters.a" "$O/libcart.a" -lz -lpthread

. tools/bench/common.sh
run_wrk() { wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$1" | tee "$O/bench/$2.txt" | grep -E "Requests/sec|99%"; }

p=$(free_port)
"$O/bench/ceiling" "$p" & cpid=$!
wait_up "$p" x
echo "== ceiling: bare civetweb, fixed body"
run_wrk "http://127.0.0.1:$p/v1/cart/bench" ceiling
kill "$cpid"; wait "$cpid" 2>/dev/null || true

p=$(free_port)
APP_PORT=$p LISTEN_ADDR=127.0.0.1 LOG_LEVEL=warn bin/cart-service > "$O/bench/service.log" & spid=$!
wait_up "$p" health
curl -fs -X POST "http://127.0.0.1:$p/v1/cart/bench/items" -H 'Content-Type: application/json' \
	-d '{"itemId":"sku-1","quantity":2,"unitPrice":{"amount":1999,"currency":"EUR"},"name":"Mug"}' >/dev/null
echo "== service: GET /v1/cart/bench (1 line), LOG_LEVEL=warn"
run_wrk "http://127.0.0.1:$p/v1/cart/bench" service
kill -TERM "$spid"; wait "$spid" || true

p=$(free_port)
APP_PORT=$p LISTEN_ADDR=127.0.0.1 LOG_LEVEL=info bin/cart-service > "$O/bench/service-info.log" & spid=$!
wait_up "$p" health
curl -fs -X POST "http://127.0.0.1:$p/v1/cart/bench/items" -H 'Content-Type: application/json' \
	-d '{"itemId":"sku-1","quantity":2,"unitPrice":{"amount":1999,"currency":"EUR"},"name":"Mug"}' >/dev/null
echo "== service: the same with LOG_LEVEL=info (a JSON line per request to a file)"
run_wrk "http://127.0.0.1:$p/v1/cart/bench" service-info
kill -TERM "$spid"; wait "$spid" || true

# The edge's cost: JWT verification (RS256) and the rate limiter on every
# request, against the same service with both off.  Alternated, twice
# each, so a noisy neighbour hits both sides alike; the ratio is what
# counts (target: >= 0.90).
TOKEN=$(/usr/bin/python3 tools/bench/mint_token.py "$O/bench/jwks.json")
edge_run() {   # $1 name, $2 on|off
	p=$(free_port)
	if [ "$2" = on ]; then
		APP_PORT=$p LISTEN_ADDR=127.0.0.1 LOG_LEVEL=warn AUTH_ENABLED=true \
		JWT_JWKS_FILE="$O/bench/jwks.json" JWT_ISSUER=https://bench.test JWT_AUDIENCE=cart \
		RATE_LIMIT_RPS=1000000 bin/cart-service > "$O/bench/$1.log" & spid=$!
	else
		APP_PORT=$p LISTEN_ADDR=127.0.0.1 LOG_LEVEL=warn RATE_LIMIT_RPS=0 \
		bin/cart-service > "$O/bench/$1.log" & spid=$!
	fi
	wait_up "$p" health
	curl -fs -X POST "http://127.0.0.1:$p/v1/cart/bench/items" -H 'Content-Type: application/json' \
		-H "Authorization: Bearer $TOKEN" \
		-d '{"itemId":"sku-1","quantity":2,"unitPrice":{"amount":1999,"currency":"EUR"},"name":"Mug"}' >/dev/null
	echo "== edge $2 ($1): GET with a bearer token"
	wrk -t2 -c"$CONNS" -d"$((DURATION / 2 > 0 ? DURATION / 2 : 1))s" --latency \
		-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$p/v1/cart/bench" \
		| tee "$O/bench/$1.txt" | grep -E "Requests/sec|99%|Non-2xx"
	kill -TERM "$spid"; wait "$spid" || true
}
edge_run edge-off-1 off; edge_run edge-on-1 on; edge_run edge-off-2 off; edge_run edge-on-2 on
rps() { awk '/Requests\/sec/ {print $2}' "$O/bench/$1.txt"; }
echo "== edge on/off = $(awk -v a="$(rps edge-on-1)" -v b="$(rps edge-on-2)" \
	-v c="$(rps edge-off-1)" -v d="$(rps edge-off-2)" 'BEGIN { printf "%.2f", (a + b) / (c + d) }')" \
	"(auth RS256 + rate limiting; target >= 0.90)"

# Request logs (issue 9): LOG_LEVEL=info against warn, alternated
# (alone: make bench-logs).
tools/bench/logs.sh

# Metrics + X-Ray (issue 9): on against off, alternated (alone: make
# bench-observe).
tools/bench/observe.sh

echo "== memory per stored cart"
"$O/bench/mem_per_cart" 100000 | tee "$O/bench/memory.txt"

c=$(awk '/Requests\/sec/ {print $2}' "$O/bench/ceiling.txt")
s=$(awk '/Requests\/sec/ {print $2}' "$O/bench/service.txt")
i=$(awk '/Requests\/sec/ {print $2}' "$O/bench/service-info.txt")
echo "== service/ceiling = $(awk -v s="$s" -v c="$c" 'BEGIN { printf "%.2f", s / c }')" \
	"(with request logs: $(awk -v s="$i" -v c="$c" 'BEGIN { printf "%.2f", s / c }'))"

# The event relay under sustained adds (issue 8): tools/bench/events.sh
# (alone: make bench-events).
tools/bench/events.sh
