#!/bin/sh
# Runs a command against a throwaway redis-server: starts one on a free
# loopback port (no persistence), waits until it answers, runs the command
# with CART_REDIS_URL=redis://127.0.0.1:<port> (and CART_REDIS_SERVER, the
# binary, for tests that start servers of their own), and stops the server
# by its PID however the command ends.  Exit status: the command's.
#   usage: tests/redis/run.sh <command> [args...]
set -eu

server=$(command -v redis-server) || {
	echo "run.sh: redis-server not found (tools/bootstrap.sh check installs it)" >&2
	exit 2
}
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
"$server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
	--daemonize no --dir "$dir" >"$dir/redis.log" 2>&1 &
pid=$!

stop() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

# Up to 5 s for the first PONG.
i=0
until redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; do
	if ! kill -0 "$pid" 2>/dev/null || [ "$i" -ge 100 ]; then
		echo "run.sh: redis-server did not start on port $port:" >&2
		cat "$dir/redis.log" >&2
		exit 2
	fi
	i=$((i + 1))
	sleep 0.05
done

set +e
CART_REDIS_URL="redis://127.0.0.1:$port" CART_REDIS_SERVER="$server" "$@"
rc=$?
exit "$rc"
