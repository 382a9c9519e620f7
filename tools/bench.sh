#!/bin/sh
# make bench (issue 10): the scenario table, then the cost of request logs,
# of observability, and the event relay.
#
#   1. tools/bench/scenarios.py all: get, mixed, add, patch, add_delete
#      (wrk scripts in tests/load/), each with auth off and auth on,
#      alternating a bare civetweb ceiling (tools/bench/ceiling.c, the
#      service's options) with the service: ceiling, service, ceiling,
#      service (BENCH_PAIRS), BENCH_SECONDS each, 10,000 carts of 3 lines
#      seeded before each service run; then the soak (mixed, 60 s twice on
#      one process) and heap/RSS bytes per cart at BENCH_MEM_CARTS.
#      Prints the table and writes build/bench/table.md and table.json.
#      The auth on/off ratio per scenario replaces the old "edge" step
#      (auth + rate limiting against neither): the rate limiter is now on,
#      with a limit never reached, on both sides.
#   1b. the same table with both servers pinned to one core (taskset -c 0;
#      build/bench/table-cpus-0.md): with step 1's two cores, how it
#      scales (issue 10).  BENCH_ONE_CORE=0 skips it.
#   2. tools/bench/logs.sh     LOG_LEVEL=info against warn (make bench-logs)
#   3. tools/bench/observe.sh  metrics + X-Ray on against off (make bench-observe)
#   4. tools/bench/events.sh   the event relay under sustained adds (make bench-events)
#   5. tools/bench/dynamo_raw.py  the DynamoDB store against dynalite's raw
#      rate, dynalite alone on CPU 0 (make bench-dynamo-raw; target >= 0.80)
#
# make bench-scaling runs the table on 1 core and on 2 pinned ones, with a
# side-by-side table; step 1b is its 1-core half (step 1 is unpinned, on
# this machine's 2 cores).
#
# Targets: service/ceiling req/s get >= 0.85, mixed >= 0.75, add >= 0.70,
# patch >= 0.70, add_delete >= 0.65; p99 < 5 ms; no errors; auth on/off
# >= 0.90 on get; soak last 10 s within 10 % of the first 10 s, RSS after
# 60 s of mixed <= 64 MB, growth over a second run < 2 MB.
set -eu
cd "$(dirname "$0")/.."
tools/bootstrap.sh dev >/dev/null

/usr/bin/python3 tools/bench/scenarios.py all

# The table again with the servers on one core (wrk unpinned).
if [ "${BENCH_ONE_CORE:-1}" != 0 ]; then
	BENCH_CPUS=0 BENCH_OUT="${O:-build}/bench/table-cpus-0" \
		/usr/bin/python3 tools/bench/scenarios.py table
fi

# Request logs (issue 9): LOG_LEVEL=info against warn, alternated
# (alone: make bench-logs).
tools/bench/logs.sh

# Metrics + X-Ray (issue 9): on against off, alternated (alone: make
# bench-observe).
tools/bench/observe.sh

# The event relay under sustained adds (issue 8): tools/bench/events.sh
# (alone: make bench-events).
tools/bench/events.sh

# The DynamoDB store against dynalite's own raw rate (issue 10): dynalite
# on CPU 0 unless BENCH_DYNALITE_CPUS says otherwise ("" : unpinned).
BENCH_DYNALITE_CPUS=${BENCH_DYNALITE_CPUS-0} /usr/bin/python3 tools/bench/dynamo_raw.py
