#!/bin/sh
# Event relay throughput and delay under sustained adds (issue 8):
# wrk posts items to BENCH_CARTS carts (tools/bench/add.lua) for
# BENCH_SECONDS on the memory store, twice:
#   eventbridge  EVENTS_PUBLISHER=eventbridge against the loopback PutEvents
#                stand-in (tests/aws/eventbridge_server.py) answering every
#                call after BENCH_EB_DELAY_MS;
#   log          the log publisher to a file, followed by
#                tools/bench/event_delay.py.
# Per run: writes/s (2xx), events/s delivered while wrk ran, the drain
# time after it, event delay p50/p99 (occurredAt -> receipt), 503s, RSS.
# Targets: delivered >= writes, p99 < 1 s, no 503.
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build}
SERVICE=${BENCH_BIN:-bin/cart-service}   # another build to compare, e.g. the previous commit's
DURATION=${BENCH_SECONDS:-20}
CONNS=${BENCH_CONNECTIONS:-64}
DELAY=${BENCH_EB_DELAY_MS:-20}
export BENCH_CARTS=${BENCH_CARTS:-1000}
mkdir -p "$O/bench"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -fs "http://127.0.0.1:$1/$2" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "bench: nothing on $1" >&2; return 1; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
json() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

# $1 name, then the service's environment; sets spid, port.
start_service() {
	name=$1; shift
	port=$(free_port)
	env APP_PORT="$port" LISTEN_ADDR=127.0.0.1 LOG_LEVEL=warn ENV_NAME=dev \
		STORAGE_BACKEND=memory RATE_LIMIT_RPS=0 "$@" "$SERVICE" \
		> "$O/bench/$name.out" 2> "$O/bench/$name.err" & spid=$!
	wait_up "$port" health
}

# Runs wrk; sets ok (2xx), unavail (503), rss0, rss1.
load() {
	rss0=$(rss_kb "$spid")
	wrk -t2 -c"$CONNS" -d"${DURATION}s" -s tools/bench/add.lua \
		"http://127.0.0.1:$port" > "$O/bench/$1.txt"
	rss1=$(rss_kb "$spid")
	ok=$(awk '$1 == "status" && $2 ~ /^2/ {s += $3} END {print s + 0}' "$O/bench/$1.txt")
	unavail=$(awk '$1 == "status" && $2 == 503 {s += $3} END {print s + 0}' "$O/bench/$1.txt")
}

# $1 name, $2 delivered during wrk, $3 drain seconds, $4 latency json
report() {
	p50=$(echo "$4" | json '["p50_ms"]'); p99=$(echo "$4" | json '["p99_ms"]')
	echo "== $1: writes/s $((ok / DURATION)), events/s delivered $(($2 / DURATION))," \
		"backlog drained $3 s after wrk, delay p50 ${p50} ms p99 ${p99} ms," \
		"503s $unavail, RSS ${rss0} -> ${rss1} KiB" | tee -a "$O/bench/events-summary.txt"
}

# Polls $1 (a command printing a count) until it reaches $2; prints seconds.
drain() {
	t0=$(date +%s.%N)
	for _ in $(seq 1200); do
		[ "$(eval "$1")" -ge "$2" ] && break
		sleep 0.05
	done
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

: > "$O/bench/events-summary.txt"

# --- EventBridge against the stand-in ---------------------------------------
# BENCH_STANDIN=python: the test stand-in (tests/aws/eventbridge_server.py,
# botocore SigV4 checks under one GIL: ~800 calls/s on this machine, less
# than the relay sends); default node: tools/bench/putevents_fast.js, the
# same answers and delay at a fraction of the CPU, no signature check.
ep=$(free_port)
if [ "${BENCH_STANDIN:-node}" = python ]; then
	/usr/bin/python3 tests/aws/eventbridge_server.py --port "$ep" --delay-ms "$DELAY" \
		--no-keep > "$O/bench/eventbridge-standin.log" 2>&1 & epid=$!
else
	node tools/bench/putevents_fast.js "$ep" "$DELAY" \
		> "$O/bench/eventbridge-standin.log" 2>&1 & epid=$!
fi
wait_up "$ep" __control/health
start_service eventbridge EVENTS_PUBLISHER=eventbridge \
	EVENTBRIDGE_ENDPOINT="http://127.0.0.1:$ep" EVENTBRIDGE_BUS_NAME=bench \
	AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench \
	${EVENTS_RELAY_CONCURRENCY:+EVENTS_RELAY_CONCURRENCY=$EVENTS_RELAY_CONCURRENCY}
accepted() { curl -fs "http://127.0.0.1:$ep/__control/stats" | json '["entries_accepted"]'; }
echo "== eventbridge: ${DURATION}s of adds to $BENCH_CARTS carts, PutEvents answers in ${DELAY} ms (${BENCH_STANDIN:-node} stand-in)"
load eventbridge
during=$(accepted)
secs=$(drain accepted "$ok")
lat=$(curl -fs "http://127.0.0.1:$ep/__control/latency")
report eventbridge "$during" "$secs" "$lat"
kill -TERM "$spid"; wait "$spid" || true
kill "$epid"; wait "$epid" 2>/dev/null || true

# --- the log publisher to a file ---------------------------------------------
# LOG_LEVEL=info: event lines are info lines; below it the log publisher
# prints none (they still count as sent), and there would be nothing to time.
start_service log LOG_LEVEL=info EVENTS_PUBLISHER=log \
	${EVENTS_RELAY_CONCURRENCY:+EVENTS_RELAY_CONCURRENCY=$EVENTS_RELAY_CONCURRENCY}
/usr/bin/python3 tools/bench/event_delay.py "$O/bench/log.out" --idle 3600 \
	> "$O/bench/log-delay.json" & fpid=$!
lines() { grep -c '"msg":"event"' "$O/bench/log.out" || true; }
echo "== log: ${DURATION}s of adds to $BENCH_CARTS carts, events to a file"
load log
during=$(lines)
secs=$(drain lines "$ok")
sleep 0.5
kill -TERM "$fpid"; wait "$fpid" || true
report log "$during" "$secs" "$(cat "$O/bench/log-delay.json")"
kill -TERM "$spid"; wait "$spid" || true
