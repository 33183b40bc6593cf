#!/usr/bin/env bash
# CPU per relayed datagram of edgeice and coturn under the same load:
# coturn's turnutils_uclient (10 clients, channels, no RTCP, 100-byte
# payloads, no pacing) against turnutils_peer, on loopback. The server's CPU
# time comes from /proc/PID/stat (utime + stime) before and after; every
# message crosses the relay twice (to the peer and back).
#
#   bench/uclient-cpu.sh [ROUNDS] [MESSAGES_PER_CLIENT]
#
# Needs: a release build (cargo build --release -p edgeice), and the Debian
# package coturn. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
messages=${2:-20000}
clients=10
edgeice=target/release/edgeice
[ -x "$edgeice" ] || { echo "build first: cargo build --release -p edgeice" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
ticks=$(getconf CLK_TCK)

cpu_seconds() { # utime + stime of PID, in seconds
  awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat"
}

turnutils_peer -L 127.0.0.1 -p 3480 >/dev/null 2>&1 &
pids+=($!)

start_server() { # NAME PORT -> echoes PID
  case $1 in
    edgeice)
      "$edgeice" serve --listen "127.0.0.1:$2" --no-tcp --user u:p --realm r \
        --relay-ports 61000-65535 --allow-peer 127.0.0.0/8 --private-relay-ok \
        >"$tmp/$1.out" 2>&1 &
      ;;
    coturn)
      turnserver -n --listening-ip=127.0.0.1 --listening-port="$2" --relay-ip=127.0.0.1 \
        --min-port=61000 --max-port=65535 --user=u:p --realm=r --lt-cred-mech --fingerprint \
        --allow-loopback-peers --no-cli --no-tls --no-dtls --no-tcp --log-file=stdout \
        --relay-threads="$(nproc)" >"$tmp/$1.out" 2>&1 &
      ;;
  esac
  echo $!
}

printf '%-8s %5s %12s %12s %14s\n' server round datagrams cpu_s us_per_datagram
for round in $(seq "$rounds"); do
  for server in edgeice coturn; do
    port=$((34000 + round * 10 + ${#server}))
    pid=$(start_server "$server" "$port")
    pids+=("$pid")
    sleep 1
    before=$(cpu_seconds "$pid")
    out=$(timeout 300 turnutils_uclient -m "$clients" -n "$messages" -l 100 -z 0 -c \
      -u u -w p -e 127.0.0.1 -r 3480 -p "$port" 127.0.0.1 2>&1 || true)
    after=$(cpu_seconds "$pid")
    kill "$pid" 2>/dev/null || true
    received=$(echo "$out" | sed -n 's/.*tot_recv_msgs=\([0-9]*\).*/\1/p' | tail -1)
    datagrams=$(( ${received:-0} * 2 ))
    awk -v s="$server" -v r="$round" -v d="$datagrams" -v b="$before" -v a="$after" \
      'BEGIN { c = a - b; printf "%-8s %5d %12d %12.3f %14.2f\n", s, r, d, c, (d ? c * 1e6 / d : 0) }'
  done
done
