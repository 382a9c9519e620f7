# Sourced by the bench scripts (tools/bench.sh, tools/bench/*.sh): a free
# loopback port, and waiting for a server to answer.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/$2" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "bench: server on $1 did not start" >&2; return 1; }
