#!/usr/bin/env bash
# Two edgeice binaries, the same relay load, alternating: server CPU per
# relayed datagram (utime + stime from /proc over the datagrams relayed,
# two per round trip). The server runs pinned to core SERVER_CPU (0), the
# load — `edgeice bench` of the first binary, 10 clients with channels,
# RATE packets/s each (2000), SIZE-byte payloads (100), SECONDS long (4) —
# to core LOAD_CPU (1). For a change to the server: the binary before and
# the binary after.
#
#   bench/relay-cpu-ab.sh BEFORE AFTER [ROUNDS]
#
# Traffic stays on 127.0.0.2.
set -euo pipefail
before=$(realpath "$1") after=$(realpath "$2") rounds=${3:-3}
rate=${RATE:-2000} size=${SIZE:-100} secs=${SECONDS_PER_RUN:-4}
server_cpu=${SERVER_CPU:-0} load_cpu=${LOAD_CPU:-1}
ticks=$(getconf CLK_TCK)
tmp=$(mktemp -d)
server=""
cleanup() { [ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

cpu_seconds() { awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }

one_run() { # BINARY -> "µs per datagram"
  local port
  port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.2", 0)); print(s.getsockname()[1])')
  taskset -c "$server_cpu" "$1" serve --listen "127.0.0.2:$port" --no-tcp --user u:p --realm r \
    --relay-ports 61000-65535 --allow-peer 127.0.0.0/8 --private-relay-ok --kernel-fast-path off \
    >"$tmp/server.log" 2>&1 &
  server=$!
  for _ in $(seq 50); do grep -q "listening on udp" "$tmp/server.log" && break; sleep 0.1; done
  local start end
  start=$(cpu_seconds "$server")
  taskset -c "$load_cpu" "$before" bench "turn:127.0.0.2:$port" --user u --password p --clients 10 --rate "$rate" \
    --size "$size" --duration "$secs" --json >"$tmp/bench.json" 2>"$tmp/bench.err"
  end=$(cpu_seconds "$server")
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  python3 - "$tmp/bench.json" "$start" "$end" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
echoed = report["received"]
cpu = float(sys.argv[3]) - float(sys.argv[2])
print(f"{cpu * 1e6 / (2 * echoed):.2f}")
PY
}

for round in $(seq "$rounds"); do
  b=$(one_run "$before") a=$(one_run "$after")
  echo "round $round: before $b µs, after $a µs per relayed datagram"
done
