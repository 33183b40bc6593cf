#!/usr/bin/env bash
# edgeice serve against coturn and against the floor (a bare batched UDP
# echo, bench/floor-echo), under the same load from `edgeice bench`, on
# loopback: the same cases against each server in turn, several rounds, one
# table of medians with the ratios edgeice/coturn and edgeice/floor.
#
#   bench/compare.sh [ROUNDS]        (default 3)
#
# Environment: SECONDS_PER_CASE (default 3), RATE (packets/s per client at
# the fixed rate, default 2000, 10 clients), ALLOCS (clients of the memory
# case, default 4000: one relay port range of 4,536 ports on one IP).
#
# Needs: a Rust toolchain, cc, python3, and coturn (installed with apt when
# missing and root). Traffic stays on 127.0.0.0/8. Server CPU is utime +
# stime from /proc/PID/stat around each run; a relayed datagram is one that
# crossed the server once (client → peer or peer → client), an echoed one
# crossed the floor once (in and out), so both cost one receive and one send.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${SECONDS_PER_CASE:-3}
rate=${RATE:-2000}
allocs=${ALLOCS:-4000}
clients=10
threads=$(nproc)

cargo build --release -q -p edgeice
edgeice=$PWD/target/release/edgeice
if ! command -v turnserver >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q coturn >/dev/null
  else
    echo "compare.sh: coturn is missing (apt-get install coturn)" >&2
    exit 1
  fi
fi
tmp=$(mktemp -d)
cc -O2 -pthread -o "$tmp/floor-echo" bench/floor-echo/floor-echo.c

# Each server on its own loopback address, so their relay ranges never meet.
edgeice_ip=127.0.0.2 coturn_ip=127.0.0.3 floor_ip=127.0.0.4 port=23478
declare -A pid
cleanup() {
  for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{ printf "%.4f\n", ($14 + $15) / t }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

start_servers() {
  "$edgeice" serve --listen "$edgeice_ip:$port" --user u:p --realm r \
    --relay-ports 61000-65535 --allow-peer 127.0.0.0/8 --private-relay-ok \
    --challenges-per-ip 1000000/1000000 --max-allocations 100000 \
    --max-allocations-per-user 100000 >"$tmp/edgeice.log" 2>&1 &
  pid[edgeice]=$!
  turnserver -n --listening-ip="$coturn_ip" --listening-port="$port" --relay-ip="$coturn_ip" \
    --min-port=61000 --max-port=65535 --user=u:p --realm=r --lt-cred-mech --fingerprint \
    --allow-loopback-peers --no-cli --no-tls --no-dtls --log-file=stdout \
    --relay-threads="$threads" >"$tmp/coturn.log" 2>&1 &
  pid[coturn]=$!
  "$tmp/floor-echo" "$floor_ip" "$port" "$threads" >"$tmp/floor.log" 2>&1 &
  pid[floor]=$!
  sleep 1.5
  for s in edgeice coturn floor; do
    kill -0 "${pid[$s]}" 2>/dev/null || { echo "compare.sh: $s did not start:" >&2; cat "$tmp/$s.log" >&2; exit 1; }
  done
}
stop_servers() {
  for s in edgeice coturn floor; do kill "${pid[$s]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  sleep 0.5
}

# bench SERVER ARGS... : runs edgeice bench against SERVER, prints its JSON
# with the server's CPU seconds added.
bench() {
  local server=$1; shift
  local ip_var="${server}_ip" target
  if [ "$server" = floor ]; then target="${!ip_var}:$port"; else target="turn:${!ip_var}:$port"; fi
  local before after json
  before=$(cpu "${pid[$server]}")
  json=$(timeout 120 "$edgeice" bench "$target" --json --user u --password p "$@" 2>>"$tmp/bench.err" || true)
  after=$(cpu "${pid[$server]}")
  [ -n "$json" ] || json='{}'
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["server_cpu_s"]=float(sys.argv[2])-float(sys.argv[3]); print(json.dumps(d))' \
    "$json" "$after" "$before"
}

record() { # ROUND SERVER CASE JSON
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$tmp/results.tsv"
}

relay_case() { # ROUND NAME SIZE [ARGS...]
  local round=$1 name=$2 size=$3; shift 3
  local servers=(edgeice coturn floor)
  [[ " $* " == *" tcp "* ]] && servers=(edgeice coturn)
  # Rotate the order every round so no server always goes first.
  local n=${#servers[@]} i
  for ((i = 0; i < n; i++)); do
    local s=${servers[$(((i + round) % n))]}
    if [ "$s" = floor ]; then
      record "$round" "$s" "$name" "$(bench floor --direct --clients $clients --rate "$rate" --size $((size + 4)) --duration "$secs" "$@")"
    else
      record "$round" "$s" "$name" "$(bench "$s" --clients $clients --rate "$rate" --size "$size" --duration "$secs" "$@")"
    fi
  done
}

search_case() { # ROUND: highest total rate with <= 0.1% loss, stepped
  local round=$1 s r json loss
  for s in edgeice coturn floor; do
    local best=0
    for r in 2000 4000 6000 8000 10000 13000 16000 20000 25000 30000; do
      if [ "$s" = floor ]; then
        json=$(bench floor --direct --clients $clients --rate $r --size 104 --duration 2 --drain 0.5)
      else
        json=$(bench "$s" --clients $clients --rate $r --size 100 --duration 2 --drain 0.5)
      fi
      loss=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(1 if d.get("sent",0)==0 or d["loss_percent"]>0.1 or d["sent_per_s"]<0.97*float(sys.argv[2]) else 0)' "$json" $((r * clients)))
      [ "$loss" = 0 ] || break
      best=$((r * clients))
    done
    record "$round" "$s" search "{\"loss_free_rate\": $best}"
  done
}

memory_case() { # ROUND: resident memory per allocation
  local round=$1 s
  for s in edgeice coturn; do
    local before max now bpid
    before=$(rss_kb "${pid[$s]}"); max=$before
    "$edgeice" bench "turn:$( v=${s}_ip; echo "${!v}"):$port" --user u --password p --clients "$allocs" \
      --setup-only --hold 3 --json >"$tmp/mem.json" 2>>"$tmp/bench.err" &
    bpid=$!
    while kill -0 "$bpid" 2>/dev/null; do
      now=$(rss_kb "${pid[$s]}"); [ "$now" -gt "$max" ] && max=$now
      sleep 0.2
    done
    wait "$bpid" || true
    record "$round" "$s" memory "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["rss_kb_delta"]=int(sys.argv[2])-int(sys.argv[3]); print(json.dumps(d))' "$tmp/mem.json" "$max" "$before")"
    sleep 1
  done
}

echo "compare.sh: $rounds rounds, $clients clients at $rate packets/s each for ${secs}s per case; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq "$rounds"); do
  start_servers
  echo "round $round: memory" >&2
  memory_case "$round"
  echo "round $round: relay 100 B, 1000 B, TCP" >&2
  relay_case "$round" relay100 100
  relay_case "$round" relay1000 1000
  relay_case "$round" tcp100 100 --transport tcp
  echo "round $round: allocations, Binding" >&2
  for s in edgeice coturn; do
    record "$round" "$s" alloc "$(bench "$s" --clients 2000 --setup-only)"
    record "$round" "$s" binding "$(bench "$s" --binding --max --clients $clients --duration "$secs")"
  done
  echo "round $round: loss-free rate search" >&2
  search_case "$round"
  stop_servers
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
[ -s "$tmp/bench.err" ] && { echo "bench errors:" >&2; sort "$tmp/bench.err" | uniq -c | head -20 >&2; }
python3 bench/compare_table.py "$tmp/results.tsv"
