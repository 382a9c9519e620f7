# Sourced by the bench scripts (tools/bench.sh, tools/bench/*.sh): a free
# loopback port, waiting for a server to answer, and reading wrk's output.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/$2" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "bench: server on $1 did not start" >&2; return 1; }
# wrk --latency output file -> requests/s; the 50 % or 99 % latency in ms
# (wrk prints "99%  1.23ms" in us, ms or s).
wrk_rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
wrk_pct() { awk -v q="$2%" '$1 == q { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
	print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : v) }' "$1"; }
# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan";
	else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
