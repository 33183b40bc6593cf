#!/usr/bin/env bash
# edgeice serve against coturn — 4.17.1, the newest release, built from
# ../shared/anchors (`coturn`), and Debian's 4.6.1 (`coturn-4.6.1`) — and
# against the floor (a bare batched UDP echo, bench/floor-echo), under the
# same load: the same cases against each server in turn, the order
# rotated every round, several rounds, one table of medians with the
# ratios to coturn 4.17.1 and to the floor. The load is `edgeice bench`,
# and in the uclient case coturn 4.17.1's turnutils_uclient for every
# server (4.17.1 refuses the channel numbers 4.6.1's client picks), with
# bench/floor-echo as its peer. Each server runs pinned to one core
# (SERVER_CPU, default 0) and the load to another (LOAD_CPU, default 1),
# with taskset, the servers with one relay thread each.
#
#   bench/compare.sh [ROUNDS]            on loopback (default 3 rounds)
#   bench/compare.sh --netns [ROUNDS]    in network namespaces, with the
#                                        kernel fast path beside the rest
#
# Environment: SECONDS_PER_CASE (default 3), RATE (packets/s per client at
# the fixed rate, default 2000, 10 clients), ALLOCS (allocation counts of
# the memory case, default "4000 10000 18000": on loopback the servers
# relay from ports 1024-65535 of their own address, which only they use,
# and the generator spreads its clients over 127.0.1.x, 10,000 to an
# address; each allocation is a socket in the server and one in the
# generator, so the open-file limit bounds the count — 20,000 here, a hard
# limit this container does not let even root raise),
# COMPARE_RESULTS (a file to keep every run's JSON in, one per line),
# CASES (which to run, default all: memory relay tcp alloc uclient search),
# UCLIENT_MESSAGES (turnutils_uclient's -n, default 20000; -m 10 -l 100
# -z 0 -c), COTURN_BIN (the directory of coturn 4.17.1's binaries; default:
# what ../shared/anchors/build-coturn.sh builds, or ~/.cache's), EDGEICE (a
# binary to measure instead of building target/release/edgeice).
#
# On loopback: every case (relay CPU, latency, loss-free rate, allocations,
# memory, Binding, TCP, TLS: both servers get a certificate for their
# address from a CA made here with openssl, which the generator trusts). Server CPU is utime + stime from /proc/PID/stat
# around each run; a relayed datagram is one that crossed the server once
# (client → peer or peer → client), an echoed one crossed the floor once
# (in and out), so both cost one receive and one send.
#
# --netns (root; clang and libbpf-dev for a pass-through XDP program): the relay cases
# and the loss-free rate, with a fourth server, `edgeice serve
# --kernel-fast-path on` (edgeice-xdp). The servers run in one namespace
# and the generator in another, each server behind its own veth pair
# (10.77.K.1 server side, 10.77.K.2 generator side). The kernel relays in
# softirq, which a process's own CPU time does not show, so every veth
# gets threaded NAPI: the receive work of a server's interface (XDP, or the
# IP and UDP input path for the socket servers) runs in its own kernel
# thread, napi/sK-N, whose CPU time is added to that server's. veth has
# NAPI only with an XDP program, so every veth has one: edgeice's, or one
# that passes everything (the same small cost for every socket server).
# All the CPU a round trip took — server, generator, both sides' receive
# threads — is shown as a cross-check.
#
# Needs: a Rust toolchain, cc, python3, taskset, ethtool (--netns), coturn 4.17.1 (see
# COTURN_BIN) and Debian's coturn (installed with apt when missing and
# root). Traffic stays on 127.0.0.0/8, or inside the
# namespaces this script creates.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=loopback
if [ "${1:-}" = --netns ]; then mode=netns; shift; fi
rounds=${1:-3}
secs=${SECONDS_PER_CASE:-3}
rate=${RATE:-2000}
allocs=${ALLOCS:-4000 10000 18000}
clients=10
cases=" ${CASES:-memory relay tcp alloc uclient search} "
want() { [[ "$cases" == *" $1 "* ]]; }
uclient_n=${UCLIENT_MESSAGES:-20000}
# Server and load on cores of their own; the servers get one thread each.
threads=1
server_cpu=${SERVER_CPU:-0} load_cpu=${LOAD_CPU:-1}
on_server=(taskset -c "$server_cpu") on_load=(taskset -c "$load_cpu")
if [ "$(nproc)" -lt 2 ]; then on_server=() on_load=(); fi

if [ "$mode" = netns ]; then
  [ "$(id -u)" = 0 ] || { echo "compare.sh --netns: needs root (namespaces, XDP)" >&2; exit 1; }
fi
if [ -n "${EDGEICE:-}" ]; then
  edgeice=$(realpath "$EDGEICE")
else
  cargo build --release -q -p edgeice
  edgeice=$PWD/target/release/edgeice
fi
if [ -z "${COTURN_BIN:-}" ]; then
  if [ -f ../shared/anchors/build-coturn.sh ]; then
    COTURN_BIN=$(bash ../shared/anchors/build-coturn.sh | tail -1)
  else
    COTURN_BIN=$HOME/.cache/coturn-4.17.1/build/bin
  fi
fi
for tool in turnserver turnutils_uclient; do
  [ -x "$COTURN_BIN/$tool" ] || { echo "compare.sh: no coturn 4.17.1 $tool in $COTURN_BIN (COTURN_BIN)" >&2; exit 1; }
done
if ! [ -x /usr/bin/turnserver ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q coturn >/dev/null
  else
    echo "compare.sh: coturn is missing (apt-get install coturn)" >&2
    exit 1
  fi
fi
# --netns turns off checksum offload on the load's veths with ethtool
# (root is already required there).
if [ "$mode" = netns ] && ! command -v ethtool >/dev/null; then
  apt-get install -y -q ethtool >/dev/null
fi
ulimit -n "$(ulimit -Hn)"
if [ "$mode" = netns ]; then relay_lo=61000; else relay_lo=1024; fi
tmp=$(mktemp -d)
tls_port=5349
cc -O2 -pthread -o "$tmp/floor-echo" bench/floor-echo/floor-echo.c

# Each server on its own address, so their relay ranges never meet.
port=23478
declare -A pid ip client_ip dev
if [ "$mode" = netns ]; then
  servers=(edgeice edgeice-xdp coturn coturn-4.6.1 floor)
  S=cmp$$s C=cmp$$c
  in_server=(ip netns exec "$S")
  in_client=(ip netns exec "$C")
  peers=10.77.0.0/16
else
  servers=(edgeice coturn coturn-4.6.1 floor)
  ip=([edgeice]=127.0.0.2 [coturn]=127.0.0.3 [floor]=127.0.0.4 [coturn-4.6.1]=127.0.0.5)
  client_ip=([edgeice]=127.0.0.1 [coturn]=127.0.0.1 [floor]=127.0.0.1 [coturn-4.6.1]=127.0.0.1)
  in_server=() in_client=()
  # A CA, and one certificate for both servers' addresses.
  (
    cd "$tmp"
    openssl req -x509 -days 2 -subj "/CN=compare.sh CA" -newkey ec \
      -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem
    openssl req -subj "/CN=compare.sh" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -nodes -keyout key.pem -out req.csr
    printf 'subjectAltName=IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.5\n' >san.ext
    openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile san.ext -out cert.pem
  ) 2>/dev/null
  peers=127.0.0.0/8
fi
cleanup() {
  for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$mode" = netns ]; then
    ip netns del "$S" 2>/dev/null || true
    ip netns del "$C" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# netns: one veth pair per server, threaded NAPI on both ends (see above).
if [ "$mode" = netns ]; then
  printf '%s\n' '#include <linux/bpf.h>' '#include <bpf/bpf_helpers.h>' \
    'SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }' \
    'char LICENSE[] SEC("license") = "GPL";' >"$tmp/pass.c"
  clang -O2 -target bpf -I"/usr/include/$(uname -m)-linux-gnu" -c "$tmp/pass.c" -o "$tmp/pass.o"
  ip netns add "$S"
  ip netns add "$C"
  ip -n "$S" link set lo up
  ip -n "$C" link set lo up
  ip netns exec "$S" sysctl -qw net.ipv4.conf.all.forwarding=1
  k=0
  for s in "${servers[@]}"; do
    k=$((k + 1))
    ip link add "s$k" netns "$S" type veth peer name "c$k" netns "$C"
    ip -n "$S" addr add "10.77.$k.1/24" dev "s$k"
    ip -n "$C" addr add "10.77.$k.2/24" dev "c$k"
    ip netns exec "$S" sysctl -qw "net.ipv4.conf.s$k.forwarding=1"
    ip -n "$S" link set "s$k" up
    ip -n "$C" link set "c$k" up
    # The generator's packets carry their UDP checksums, as a physical
    # NIC's do: left to veth's offload (CHECKSUM_PARTIAL) they cannot be
    # verified in XDP, and the kernel path passes every one up to the
    # sockets. The same for every server.
    ip netns exec "$C" ethtool -K "c$k" tx off >/dev/null
    # veth has NAPI (so threaded NAPI) only with an XDP program (GRO does
    # not take a socket's UDP): the socket servers' sides get one that
    # passes everything, and edgeice-xdp's generator side too (veth hands
    # XDP_TX'd frames only to a peer that runs XDP); edgeice-xdp attaches
    # its own to its side.
    ip -n "$C" link set dev "c$k" xdpdrv obj "$tmp/pass.o" sec xdp
    [ "$s" = edgeice-xdp ] || ip -n "$S" link set dev "s$k" xdpdrv obj "$tmp/pass.o" sec xdp
    # (threaded_napi makes the receive threads, once edgeice-xdp has
    # attached its program: its side has no NAPI before.)
    ip[$s]=10.77.$k.1
    client_ip[$s]=10.77.$k.2
    dev[$s]=s$k
  done
fi

ticks=$(getconf CLK_TCK)
ticks_of() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# napi_ticks DEV: CPU ticks of the kernel threads that receive on DEV
# (netns only; they come and go with XDP). Per-task times are the
# scheduler's exact runtime; /proc/stat's are sampled at ticks, which miss
# most of a bursty load's short wake-ups on this VM, so they are not used.
napi_ticks() {
  local total=0 p
  if [ "$mode" = netns ]; then
    for p in $(pgrep "^napi/$1-" || true); do total=$((total + $(ticks_of "$p"))); done
  fi
  echo "$total"
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

start_servers() {
  local s tls_args=() coturn_tls=(--no-tls)
  for s in "${servers[@]}"; do
    if [ "$mode" = loopback ]; then
      tls_args=(--tls-listen "${ip[$s]}:$tls_port" --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem")
      coturn_tls=(--tls-listening-port="$tls_port" --cert="$tmp/cert.pem" --pkey="$tmp/key.pem")
    fi
    case $s in
    edgeice | edgeice-xdp)
      local fast=off
      [ "$s" = edgeice-xdp ] && fast=on
      "${in_server[@]}" "${on_server[@]}" "$edgeice" serve --listen "${ip[$s]}:$port" --user u:p --realm r \
        --relay-ports "$relay_lo-65535" --allow-peer "$peers" --private-relay-ok \
        --challenges-per-ip 1000000/1000000 --max-allocations 100000 \
        --max-allocations-per-user 100000 --max-tcp-connections-per-ip 100000 \
        --kernel-fast-path "$fast" "${tls_args[@]}" \
        >"$tmp/$s.log" 2>&1 &
      ;;
    coturn | coturn-4.6.1)
      local turnserver=$COTURN_BIN/turnserver
      [ "$s" = coturn-4.6.1 ] && turnserver=/usr/bin/turnserver
      "${in_server[@]}" "${on_server[@]}" "$turnserver" -n --listening-ip="${ip[$s]}" --listening-port="$port" --relay-ip="${ip[$s]}" \
        --min-port="$relay_lo" --max-port=65535 --user=u:p --realm=r --lt-cred-mech --fingerprint \
        --allow-loopback-peers --no-cli --no-dtls --log-file=stdout "${coturn_tls[@]}" \
        --relay-threads="$threads" >"$tmp/$s.log" 2>&1 &
      ;;
    floor)
      "${in_server[@]}" "${on_server[@]}" "$tmp/floor-echo" "${ip[$s]}" "$port" "$threads" >"$tmp/$s.log" 2>&1 &
      ;;
    esac
    pid[$s]=$!
  done
  sleep 1.5
  # coturn prepares its whole relay port range before it listens: seconds
  # for 64,000 ports on a loaded machine (4.17.1 more than 4.6.1).
  # And the kernel verifies edgeice-xdp's programs before it listens.
  for s in "${servers[@]}"; do
    local ready="Relay ports initialization done"
    [ "$s" = edgeice-xdp ] && ready="kernel fast path"
    [[ "$s" == coturn* || "$s" == edgeice-xdp ]] || continue
    for _ in $(seq 600); do
      grep -q "$ready" "$tmp/$s.log" && break
      kill -0 "${pid[$s]}" 2>/dev/null || break
      sleep 0.1
    done
  done
  sleep 0.5
  for s in "${servers[@]}"; do
    kill -0 "${pid[$s]}" 2>/dev/null || { echo "compare.sh: $s did not start:" >&2; cat "$tmp/$s.log" >&2; exit 1; }
  done
  if [ "$mode" = netns ] && ! grep -q "kernel fast path on" "$tmp/edgeice-xdp.log"; then
    echo "compare.sh: edgeice-xdp has no kernel fast path:" >&2; cat "$tmp/edgeice-xdp.log" >&2; exit 1
  fi
}

# threaded_napi 1|0: the interfaces' receive work in kernel threads of its
# own (1: for the CPU figures, so that it is charged to the right side), or
# in softirq where the packets arrive (0: the kernel's default, for the
# loss-free rate and latency — a kernel thread that waits its turn behind
# the generator's lets veth's 256-packet rings overflow).
threaded_napi() {
  [ "$mode" = netns ] || return 0
  local s
  for s in "${servers[@]}"; do
    ip netns exec "$S" sh -c "echo $1 > /sys/class/net/${dev[$s]}/threaded"
    ip netns exec "$C" sh -c "echo $1 > /sys/class/net/${dev[$s]/s/c}/threaded"
    if [ "$1" = 1 ] && [ -z "$(pgrep "^napi/${dev[$s]}-" || true)" ]; then
      echo "compare.sh: no receive thread on ${dev[$s]} ($s)" >&2
      exit 1
    fi
  done
}
stop_servers() {
  local s
  for s in "${servers[@]}"; do kill "${pid[$s]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  sleep 0.5
}

# bench SERVER ARGS... : runs edgeice bench against SERVER, prints its JSON
# with the CPU seconds spent meanwhile added: server_cpu_s (the process and,
# in namespaces, its receive threads), server_process_cpu_s, napi_cpu_s, and
# in namespaces all_cpu_s (server, generator — client_cpu_s — and the
# generator side's receive threads).
bench() {
  local server=$1; shift
  local target bind=()
  if [ "$server" = floor ]; then
    target="${ip[$server]}:$port"
  elif [[ " $* " == *" tls "* ]]; then
    target="turns:${ip[$server]}:$tls_port"
    set -- "$@" --ca "$tmp/ca.pem"
  else
    target="turn:${ip[$server]}:$port"
  fi
  [ "$mode" = netns ] && bind=(--bind "${client_ip[$server]}")
  local p0 n0 c0 p1 n1 c1 json d=${dev[$server]:-}
  p0=$(ticks_of "${pid[$server]}") n0=$(napi_ticks "$d") c0=$(napi_ticks "${d/s/c}")
  json=$("${in_client[@]}" "${on_load[@]}" timeout 120 "$edgeice" bench "$target" --json --user u --password p \
    "${bind[@]}" "$@" 2>>"$tmp/bench.err" || true)
  p1=$(ticks_of "${pid[$server]}") n1=$(napi_ticks "$d") c1=$(napi_ticks "${d/s/c}")
  [ -n "$json" ] || json='{}'
  python3 -c '
import json, sys
d = json.loads(sys.argv[1])
t, p, n, c = (float(x) for x in sys.argv[2:6])
d.update(server_process_cpu_s=p / t, server_cpu_s=(p + n) / t)
if sys.argv[6] == "netns":
    d.update(napi_cpu_s=n / t, all_cpu_s=(p + n + c) / t + d.get("client_cpu_s", 0))
print(json.dumps(d))' "$json" "$ticks" $((p1 - p0)) $((n1 - n0)) $((c1 - c0)) "$mode"
}

record() { # ROUND SERVER CASE JSON
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$tmp/results.tsv"
}

relay_case() { # ROUND NAME SIZE [ARGS...]
  local round=$1 name=$2 size=$3; shift 3
  local servers=("${servers[@]}")
  [[ " $* " == *" tcp "* || " $* " == *" tls "* ]] && servers=(edgeice coturn coturn-4.6.1)
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
  for s in "${servers[@]}"; do
    local best=0
    for r in 2000 4000 6000 8000 10000 13000 16000 20000 25000 30000 35000 40000; do
      if [ "$s" = floor ]; then
        json=$(bench floor --direct --clients $clients --rate $r --size 104 --duration 2 --drain 0.5)
      else
        json=$(bench "$s" --clients $clients --rate $r --size 100 --duration 2 --drain 0.5)
      fi
      record "$round" "$s" "search-step-$r" "$json"
      loss=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(1 if d.get("sent",0)==0 or d["loss_percent"]>0.1 or d["sent_per_s"]<0.97*float(sys.argv[2]) else 0)' "$json" $((r * clients)))
      [ "$loss" = 0 ] || break
      best=$((r * clients))
    done
    record "$round" "$s" search "{\"loss_free_rate\": $best}"
  done
}

memory_case() { # ROUND COUNT: resident memory per allocation
  local round=$1 count=$2 s binds=() i
  for ((i = 0; i * 10000 < count; i++)); do binds+=(--bind "127.0.1.$((i + 1))"); done
  for s in edgeice coturn coturn-4.6.1; do
    local before max now bpid
    before=$(rss_kb "${pid[$s]}"); max=$before
    "$edgeice" bench "turn:${ip[$s]}:$port" --user u --password p --clients "$count" \
      "${binds[@]}" --setup-only --hold 3 --json >"$tmp/mem.json" 2>>"$tmp/bench.err" &
    bpid=$!
    while kill -0 "$bpid" 2>/dev/null; do
      now=$(rss_kb "${pid[$s]}"); [ "$now" -gt "$max" ] && max=$now
      sleep 0.2
    done
    wait "$bpid" || true
    record "$round" "$s" "memory$count" "$(python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read() or "{}"); d["rss_kb_delta"]=int(sys.argv[2])-int(sys.argv[3]); print(json.dumps(d))' "$tmp/mem.json" "$max" "$before")"
    sleep 1
  done
}

# uclient_case ROUND: coturn 4.17.1's turnutils_uclient (-m 10 -n N -l 100
# -z 0 -c) through each TURN server in turn (the order rotated every round)
# to bench/floor-echo as the peer, both pinned to the load core: the
# server's CPU (in namespaces with its interface's receive threads:
# softirq included) per relayed datagram, one crossing of the server
# (client → peer or peer → client), counted from what uclient sent and
# got back.
uclient_case() {
  local round=$1 list=() s i n
  for s in "${servers[@]}"; do [ "$s" = floor ] || list+=("$s"); done
  n=${#list[@]}
  for ((i = 0; i < n; i++)); do
    s=${list[$(((i + round) % n))]}
    local peer_ip=${client_ip[$s]} peer_port=$((port + 2)) echo_pid p0 n0 p1 n1 d=${dev[$s]:-}
    "${in_client[@]}" "${on_load[@]}" "$tmp/floor-echo" "$peer_ip" "$peer_port" 1 >/dev/null 2>&1 &
    echo_pid=$!
    sleep 0.3
    p0=$(ticks_of "${pid[$s]}") n0=$(napi_ticks "$d")
    "${in_client[@]}" "${on_load[@]}" timeout 120 "$COTURN_BIN/turnutils_uclient" -m 10 -n "$uclient_n" \
      -l 100 -z 0 -c -e "$peer_ip" -r "$peer_port" -u u -w p -p "$port" "${ip[$s]}" \
      >"$tmp/uclient-$s.log" 2>&1 || true
    p1=$(ticks_of "${pid[$s]}") n1=$(napi_ticks "$d")
    kill "$echo_pid" 2>/dev/null; wait "$echo_pid" 2>/dev/null || true
    record "$round" "$s" uclient100 "$(python3 -c '
import json, re, sys
log = open(sys.argv[1], errors="replace").read()
def last(name):
    found = re.findall(name + r" ~ (\d+)", log)
    return int(found[-1]) if found else 0
lost = re.findall(r"Total lost packets (\d+)", log)
t, p, n = (float(x) for x in sys.argv[2:5])
sent, received = last("tot_send_bytes"), last("tot_recv_bytes")
print(json.dumps({"relayed": (sent + received) // 100, "lost": int(lost[-1]) if lost else None,
                  "server_cpu_s": (p + n) / t, "server_process_cpu_s": p / t}))' \
      "$tmp/uclient-$s.log" "$ticks" $((p1 - p0)) $((n1 - n0)))"
  done
}

echo "compare.sh ($mode): $rounds rounds, $clients clients at $rate packets/s each for ${secs}s per case; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq "$rounds"); do
  start_servers
  if [ "$mode" = loopback ] && want memory; then
    echo "round $round: memory" >&2
    for count in $allocs; do memory_case "$round" "$count"; done
  fi
  threaded_napi 1
  if want relay; then
    echo "round $round: relay 100 B, 1000 B" >&2
    relay_case "$round" relay100 100
    relay_case "$round" relay1000 1000
  fi
  if want uclient; then
    echo "round $round: turnutils_uclient (coturn 4.17.1) through each server" >&2
    uclient_case "$round"
  fi
  if [ "$mode" = loopback ] && want tcp; then
    echo "round $round: relay over TCP and TLS" >&2
    relay_case "$round" tcp100 100 --transport tcp
    relay_case "$round" tls100 100 --transport tls
  fi
  if [ "$mode" = loopback ] && want alloc; then
    echo "round $round: allocations and Binding over UDP and TCP" >&2
    for s in edgeice coturn coturn-4.6.1; do
      record "$round" "$s" alloc "$(bench "$s" --clients 2000 --setup-only)"
      record "$round" "$s" binding "$(bench "$s" --binding --max --clients $clients --duration "$secs")"
      record "$round" "$s" alloc-tcp "$(bench "$s" --clients 2000 --setup-only --transport tcp)"
      record "$round" "$s" binding-tcp "$(bench "$s" --binding --max --clients $clients --duration "$secs" --transport tcp)"
    done
  fi
  threaded_napi 0
  if want search; then
    echo "round $round: loss-free rate search" >&2
    search_case "$round"
  fi
  stop_servers
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
[ -s "$tmp/bench.err" ] && { echo "bench errors:" >&2; sort "$tmp/bench.err" | uniq -c | head -20 >&2; }
[ -z "${COMPARE_RESULTS:-}" ] || cp "$tmp/results.tsv" "$COMPARE_RESULTS"
python3 bench/compare_table.py "$tmp/results.tsv"
