#!/usr/bin/env bash
# lab/hardening.sh --short|--long — the fault, flood and soak suite (issue
# 16): does the edge survive hostile clients, exhaustion and faults? Each
# case runs against edgeice serve and, beside it, coturn 4.17.1 (built by
# ../shared/anchors/build-coturn.sh), in two network namespaces this script
# creates and removes on exit: the server's (10.88.0.1) and the clients'
# (10.88.0.2 and up, spoofed sources from 10.99.0.0/16, routed to it),
# joined by one veth pair. Nothing leaves them.
#
# Cases (short mode's numbers, then the long mode's, the issue's):
#   idle-tcp       3,000 (20,000) idle TCP connections from several
#                  generator processes and source addresses: the server
#                  stays up, answers UDP Binding, allocates for well-behaved
#                  clients over UDP and TCP
#   fd-exhaustion  the server started with `ulimit -n 1024`, 1,500 idle TCP
#                  connections from 10 addresses: the same checks
#   slow-tls       500 (5,000) slow TLS handshakes, half silent, half
#                  trickling a ClientHello a byte at a time: new clients
#                  still allocate over TLS and UDP
#   flood          spoofed unauthenticated Allocate requests, one raw socket
#                  at its top rate, 10 s (60 s): the server's RSS grows by
#                  less than 1 MB (1024 kB), legitimate clients allocate
#                  meanwhile
#   soak           200 (1,000) allocations held 60 s (30 min) through tc
#                  netem on both ends of the veth (5% loss, 50 ms delay, 25%
#                  sent undelayed so that they overtake others, each way;
#                  where the kernel lacks sch_netem, lab/hardening.py's UDP
#                  relay does the same in user space: impairment=userspace),
#                  lifetimes capped at 20 s (60 s) so that they are
#                  refreshed every 10 s (30 s): no allocation lost (no
#                  Refresh error), RSS flat (grows by less than 1 MB)
#   kill9          SIGKILL under load (edgeice with --kernel-fast-path auto
#                  and a SQLite user store; coturn with its SQLite userdb),
#                  restart: users intact, no XDP/TC program left on the
#                  interface, clients allocate again
#
# `held` counts the attackers' connections the server had neither closed
# nor reset when the generators stopped (those still in the kernel's accept
# queue included); a server that reaps idle connections holds fewer.
# Each case prints one line per server, `case NAME server=S key=value...
# result=pass|fail`, then a markdown table of both (the one RELIABILITY.md
# holds). Exit 0 when every edgeice case passes, 1 when one fails (named on
# stderr; coturn's results are figures beside it, they do not fail the
# run), 2 for bad usage or a missing tool.
#
# Long mode, one command (as root, about 75 minutes):
#   lab/hardening.sh --long
#
# Environment: EDGEICE (the binary; default target/debug/edgeice of this
# checkout, built with cargo when missing; the kernel fast path, which
# kill9 uses, is in every build), HARDEN_CASES (the cases to run, default
# all), HARDEN_SERVERS (default "edgeice coturn"), HARDEN_SOAK_SECONDS (how
# long the soak lasts: 60 short, 1800 long; the issue's 10 minutes is 600), HARDEN_TIMEOUT (seconds
# the whole run may take: 900 short, 6000 long), COTURN_BIN (a directory
# with coturn 4.17.1's turnserver and turnadmin, instead of building it).
# Needs root, iproute2 (ip, tc with sch_netem), python3, openssl, timeout.
set -u

usage() {
  sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
[ $# -eq 1 ] || usage
case $1 in
  --short) LONG=0 ;;
  --long) LONG=1 ;;
  *) usage ;;
esac

lab=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$lab/.." && pwd)
if [ -z "${EDGEICE:-}" ]; then
  EDGEICE=${CARGO_TARGET_DIR:-$repo/target}/debug/edgeice
  if [ ! -x "$EDGEICE" ] && command -v cargo >/dev/null 2>&1; then
    echo "hardening: building edgeice (cargo build -p edgeice)" >&2
    (cd "$repo" && cargo build -q -p edgeice) || exit 2
  fi
fi
E=$EDGEICE
for tool in ip tc python3 openssl timeout "$E"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "hardening: $tool is missing" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "hardening: needs root (network namespaces, raw sockets, tc)" >&2; exit 2; }
SERVERS=${HARDEN_SERVERS:-edgeice coturn}
CASES=${HARDEN_CASES:-idle-tcp fd-exhaustion slow-tls flood soak kill9}
for c in $CASES; do
  case $c in idle-tcp | fd-exhaustion | slow-tls | flood | soak | kill9) ;;
    *) echo "hardening: unknown case '$c'" >&2; exit 2 ;;
  esac
done
if [[ " $SERVERS " == *" coturn "* ]]; then
  if [ -z "${COTURN_BIN:-}" ]; then
    # The anchors sit beside the repository, for developers and CI alike.
    anchors=$repo/../shared/anchors
    [ -f "$anchors/build-coturn.sh" ] || {
      echo "hardening: $anchors/build-coturn.sh is missing (coturn 4.17.1's anchor); HARDEN_SERVERS=edgeice runs without it" >&2
      exit 2
    }
    COTURN_BIN=$(bash "$anchors/build-coturn.sh" | tail -1) || { echo "hardening: building coturn 4.17.1 failed" >&2; exit 2; }
  fi
  [ -x "$COTURN_BIN/turnserver" ] && [ -x "$COTURN_BIN/turnadmin" ] ||
    { echo "hardening: no turnserver/turnadmin in $COTURN_BIN" >&2; exit 2; }
fi

# The numbers of each mode.
if [ "$LONG" = 1 ]; then
  IDLE=20000 IDLE_PROCS=10 SLOW=5000 SLOW_PROCS=5 SLOW_HOLD=60 FLOOD_S=60
  SOAK_N=1000 SOAK_S=${HARDEN_SOAK_SECONDS:-1800} SOAK_LIFETIME=60 TIMEOUT=${HARDEN_TIMEOUT:-6000}
else
  IDLE=3000 IDLE_PROCS=3 SLOW=500 SLOW_PROCS=2 SLOW_HOLD=15 FLOOD_S=10
  SOAK_N=200 SOAK_S=${HARDEN_SOAK_SECONDS:-60} SOAK_LIFETIME=20 TIMEOUT=${HARDEN_TIMEOUT:-900}
fi
EXHAUST_LIMIT=1024 EXHAUST_CONNS=1500 EXHAUST_PROCS=10

tag=hd$$
S=${tag}s
G=${tag}g
SRV=10.88.0.1
SPOOF=10.99.0.0/16
tmp=$(mktemp -d /tmp/edgeice-hardening.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for ns in "$S" "$G"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
  done
  ip netns del "$S" 2>/dev/null
  ip netns del "$G" 2>/dev/null
  if [ -n "${HARDEN_KEEP:-}" ]; then echo "hardening: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT
# The whole run is bounded (its output goes nowhere, so that it holds no
# pipe of whoever reads ours).
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$TIMEOUT" &
  sleeper=$!
  wait "$sleeper" && echo "hardening: HARDEN_TIMEOUT ($TIMEOUT s) reached" >&2 && kill -TERM $$
) >/dev/null 2>&1 &
pids+=($!)

# The world: two namespaces and a veth pair.
set -e
ip netns add "$S"
ip netns add "$G"
ip link add s0 netns "$S" type veth peer name g0 netns "$G"
ip -n "$S" link set lo up
ip -n "$G" link set lo up
ip -n "$S" addr add $SRV/24 dev s0
ip -n "$S" link set s0 up
ip -n "$G" addr add 10.88.0.2/24 dev g0
# Well-behaved clients (.3-.5) and the generators' source addresses
# (.10-.39), so that per-address limits see several attackers.
for i in 3 4 5 $(seq 10 39); do ip -n "$G" addr add "10.88.0.$i/24" dev g0; done
ip -n "$G" link set g0 up
# Spoofed sources live behind the generators' namespace: answers to them
# go there and die (it does not forward), as they would on the internet.
ip -n "$S" route add $SPOOF via 10.88.0.2
# XDP needs forwarding on the interface (the kill9 case, with the fast path).
ip netns exec "$S" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.s0.forwarding=1
set +e
# A veth takes the frames its peer's XDP program sends back out (XDP_TX)
# only with an XDP program of its own: on g0, the committed relay
# object's, whose maps (its own, empty) pass everything.
if ! ip -n "$G" link set dev g0 xdpdrv obj "$lab/../crates/fastpath/ebpf/relay.bpf.o" sec xdp >/dev/null 2>&1; then
  echo "hardening: no XDP program on the clients' veth: kill9's relayed traffic may read 0 with the fast path on" >&2
fi

# A CA and a certificate for the server's address (TLS cases).
(
  cd "$tmp"
  k=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 -days 2 -subj "/CN=hardening CA" "${k[@]}" -keyout ca.key -out ca.pem
  openssl req -subj "/CN=$SRV" "${k[@]}" -keyout key.pem -out req.csr
  echo "subjectAltName=IP:$SRV" >san.cnf
  openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.cnf -out cert.pem
) >/dev/null 2>&1 || { echo "hardening: openssl could not make the test certificates" >&2; exit 2; }

# ---- servers ---------------------------------------------------------------

# start_server KIND NAME PREFIX [EXTRA...]: starts edgeice or coturn in
# the server namespace (its output in $tmp/NAME.log, PREFIX a shell
# snippet run before it, such as a ulimit), waits until it listens on UDP
# and TCP 3478 and TLS 5349; its pid in $server. Returns 1 if it did not
# come up.
start_server() {
  local kind=$1 name=$2 prefix=${3:-:}
  shift 3
  local cmd
  if [ "$kind" = edgeice ]; then
    cmd=("$E" serve --listen $SRV:3478 --tls-listen $SRV:5349 --tls-cert "$tmp/cert.pem"
      --tls-key "$tmp/key.pem" --realm r --relay-ports 61000-65535 --private-relay-ok)
    [[ " $* " == *" --users-db "* ]] || cmd+=(--user u:p)
    # The fast path is auto by default, and forwarding is on here: the
    # cases measure the sockets unless they ask (kill9 does).
    [[ " $* " == *" --kernel-fast-path "* ]] || cmd+=(--kernel-fast-path off)
  else
    cmd=("$COTURN_BIN/turnserver" -n --listening-ip=$SRV --relay-ip=$SRV --listening-port=3478
      --tls-listening-port=5349 --cert="$tmp/cert.pem" --pkey="$tmp/key.pem" --realm=r
      --lt-cred-mech --min-port=61000 --max-port=65535 --no-cli --log-file=stdout --simple-log
      --pidfile="$tmp/$name.pid" --no-dtls)
    [[ " $* " == *" --db="* ]] || cmd+=(--user=u:p)
  fi
  # The namespace's exec and the shell exec in turn: $! is the server.
  ip netns exec "$S" bash -c "$prefix; exec \"\$@\"" server "${cmd[@]}" "$@" >"$tmp/$name.log" 2>&1 &
  server=$!
  pids+=("$server")
  for _ in $(seq 100); do
    if ! kill -0 "$server" 2>/dev/null; then
      echo "hardening: $kind did not start ($name):" >&2
      tail -5 "$tmp/$name.log" >&2
      return 1
    fi
    local l
    l=$(ip netns exec "$S" ss -Hlnut 2>/dev/null)
    if grep -q "udp.*$SRV:3478" <<<"$l" && grep -q "tcp.*$SRV:3478" <<<"$l" && grep -q "tcp.*$SRV:5349" <<<"$l"; then
      return 0
    fi
    sleep 0.1
  done
  echo "hardening: $kind does not listen ($name)" >&2
  return 1
}

# stop_server: SIGTERM, then SIGKILL if it lingers.
stop_server() {
  kill "$server" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$server" 2>/dev/null
  wait "$server" 2>/dev/null
}

# rss_kb: the server's resident set, kB (0 when it is gone).
rss_kb() { awk '/^VmRSS:/ {print $2; f=1} END {if (!f) print 0}' "/proc/$server/status" 2>/dev/null || echo 0; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
alive() { kill -0 "$server" 2>/dev/null && echo yes || echo no; }

# ---- well-behaved clients --------------------------------------------------

# bench_json FILE ARGS...: edgeice bench from the clients' namespace, its
# JSON report in FILE (bounded: setup timeout and hold plus a margin).
bench_json() {
  local file=$1
  shift
  ip netns exec "$G" timeout "${BENCH_TIMEOUT:-120}" "$E" bench --user "${BENCH_USER:-u}" --password "${BENCH_PASS:-p}" \
    --threads 1 --json "$@" >"$file" 2>"$file.err"
}

# field FILE KEY: a number of a bench report (? when missing).
field() {
  python3 -c '
import json, sys
try:
    print(json.load(open(sys.argv[1]))[sys.argv[2]])
except Exception:
    print("?")' "$1" "$2"
}

# refresh_errors FILE: Refresh (and ChannelBind refresh) failures in a report.
refresh_errors() {
  python3 -c '
import json, sys
try:
    e = json.load(open(sys.argv[1]))["errors"]
    print(sum(n for k, n in e.items() if "efresh" in k))
except Exception:
    print("?")' "$1"
}

# allocates NAME URL N [ARGS]: N clients allocate and bind a channel
# (bench --setup-only); "yes" when all N get ready. Three tries, so that a
# server reaping an attacker's connections has a moment to do so.
allocates() {
  local name=$1 url=$2 n=$3
  shift 3
  for try in 1 2 3; do
    bench_json "$tmp/$name-$try.json" "$url" --bind 10.88.0.3 --setup-only --clients "$n" \
      --setup-timeout 10 "$@"
    [ "$(field "$tmp/$name-$try.json" ready)" = "$n" ] && { echo yes; return; }
    sleep 2
  done
  echo no
}

# binding_ok: a STUN Binding over UDP answered (edgeice probe; three tries).
binding_ok() {
  for _ in 1 2 3; do
    ip netns exec "$G" timeout 15 "$E" probe "stun:$SRV:3478" --timeout 3 >"$tmp/probe.out" 2>&1 &&
      { echo yes; return; }
    sleep 1
  done
  echo no
}

# ---- generators -------------------------------------------------------------

# generators MODE COUNT PROCS FIRST_ADDR SECONDS PORT: PROCS processes of
# lab/hardening.py MODE, COUNT connections between them, each from its
# own address 10.88.0.(FIRST_ADDR + i); their pids in $gens, their output
# in $tmp/gen-MODE-i. Returns once all have opened theirs (bounded).
generators() {
  local mode=$1 count=$2 procs=$3 first=$4 seconds=$5 port=$6 i per
  per=$(((count + procs - 1) / procs))
  gens=()
  for i in $(seq 0 $((procs - 1))); do
    ip netns exec "$G" python3 "$lab/hardening.py" "$mode" $SRV "$port" "$per" \
      "10.88.0.$((first + i))" "$seconds" >"$tmp/gen-$mode-$i" 2>&1 &
    gens+=($!)
    pids+=($!)
  done
  for _ in $(seq 600); do
    [ "$(cat "$tmp"/gen-"$mode"-* 2>/dev/null | grep -c '^opened')" -ge "$procs" ] && break
    sleep 0.2
  done
}

# gen_sum MODE WORD: the sum of the generators' "WORD N" lines.
gen_sum() { cat "$tmp"/gen-"$1"-* 2>/dev/null | awk -v w="$2" '$1 == w {s += $2} END {print s + 0}'; }

# gen_stop: asks the generators for their count of connections still held.
gen_stop() {
  local pid
  for pid in "${gens[@]}"; do kill -USR1 "$pid" 2>/dev/null; done
  for pid in "${gens[@]}"; do wait "$pid" 2>/dev/null; done
}

# ---- results -----------------------------------------------------------------

results=$tmp/results
: >"$results"
failed=()
# result CASE SERVER PASS FIGURES...: prints and keeps one result line.
result() {
  local case=$1 kind=$2 pass=$3
  shift 3
  local line="case $case server=$kind $* result=$([ "$pass" = 1 ] && echo pass || echo fail)"
  echo "$line"
  echo "$line" >>"$results"
  [ "$pass" = 1 ] || [ "$kind" != edgeice ] || failed+=("$case")
}

# ---- the cases ---------------------------------------------------------------

# idle KIND CASE COUNT PROCS PREFIX: COUNT idle TCP connections against a
# server started after PREFIX; then Binding, Allocate over UDP and TCP.
idle() {
  local kind=$1 case=$2 count=$3 procs=$4 prefix=$5
  start_server "$kind" "$case-$kind" "$prefix" || { result "$case" "$kind" 0 started=no; return; }
  local limit
  limit=$(awk '/Max open files/ {print $4}' "/proc/$server/limits")
  generators idle-tcp "$count" "$procs" 10 600 3478
  local opened binding udp tcp up rss
  opened=$(gen_sum idle-tcp opened)
  binding=$(binding_ok)
  udp=$(allocates "$case-$kind-udp" "turn:$SRV:3478" 10)
  tcp=$(allocates "$case-$kind-tcp" "turn:$SRV:3478?transport=tcp" 5)
  up=$(alive)
  rss=$(rss_kb)
  gen_stop
  local held
  held=$(gen_sum idle-tcp held)
  result "$case" "$kind" "$([ "$up$binding$udp$tcp" = yesyesyesyes ] && echo 1 || echo 0)" \
    nofile="$limit" connections="$count" opened="$opened" held="$held" alive="$up" \
    binding_ok="$binding" allocate_udp_ok="$udp" allocate_tcp_ok="$tcp" rss_mb="$(mb "$rss")"
  stop_server
}

case_idle_tcp() { idle "$1" idle-tcp "$IDLE" "$IDLE_PROCS" :; }
case_fd_exhaustion() { idle "$1" fd-exhaustion "$EXHAUST_CONNS" "$EXHAUST_PROCS" "ulimit -n $EXHAUST_LIMIT"; }

case_slow_tls() {
  local kind=$1
  start_server "$kind" "slow-tls-$kind" : || { result slow-tls "$kind" 0 started=no; return; }
  generators slow-tls "$SLOW" "$SLOW_PROCS" 30 "$SLOW_HOLD" 5349
  local opened tls udp up rss held
  opened=$(gen_sum slow-tls opened)
  tls=$(allocates "slow-tls-$kind-tls" "turns:$SRV:5349" 3 --ca "$tmp/ca.pem")
  udp=$(allocates "slow-tls-$kind-udp" "turn:$SRV:3478" 10)
  up=$(alive)
  rss=$(rss_kb)
  # The generators hold their connections SLOW_HOLD seconds, then count
  # those the server has not closed.
  local pid
  for pid in "${gens[@]}"; do wait "$pid" 2>/dev/null; done
  held=$(gen_sum slow-tls held)
  result slow-tls "$kind" "$([ "$up$tls$udp" = yesyesyes ] && echo 1 || echo 0)" \
    handshakes="$SLOW" opened="$opened" held_after_s="$SLOW_HOLD" held="$held" alive="$up" \
    allocate_tls_ok="$tls" allocate_udp_ok="$udp" rss_mb="$(mb "$rss")"
  stop_server
}

case_flood() {
  local kind=$1
  start_server "$kind" "flood-$kind" : || { result flood "$kind" 0 started=no; return; }
  # Warm: the same legitimate load as during the flood, once before, so
  # that what it costs is in the baseline.
  allocates "flood-$kind-warm" "turn:$SRV:3478" 20 >/dev/null
  sleep 1
  local before after
  before=$(rss_kb)
  ip netns exec "$G" timeout $((FLOOD_S + 30)) python3 "$lab/hardening.py" flood $SRV 3478 "$FLOOD_S" $SPOOF \
    >"$tmp/flood-$kind.out" 2>&1 &
  local flooder=$!
  pids+=("$flooder")
  sleep 2
  local during
  during=$(allocates "flood-$kind-during" "turn:$SRV:3478" 20)
  wait "$flooder"
  sleep 1
  after=$(rss_kb)
  local sent rate up binding growth
  read -r _ sent _ rate <"$tmp/flood-$kind.out" 2>/dev/null
  up=$(alive)
  binding=$(binding_ok)
  growth=$((after - before))
  result flood "$kind" "$([ "$up$during$binding" = yesyesyes ] && [ "$growth" -lt 1024 ] && echo 1 || echo 0)" \
    seconds="$FLOOD_S" sent="${sent:-?}" rate_pps="${rate:-?}" rss_before_mb="$(mb "$before")" \
    rss_after_mb="$(mb "$after")" rss_growth_kb="$growth" alive="$up" allocate_during_ok="$during" \
    binding_ok="$binding"
  stop_server
}

case_soak() {
  local kind=$1 extra
  if [ "$kind" = edgeice ]; then extra=(--max-allocate-lifetime "$SOAK_LIFETIME"); else extra=(--max-allocate-lifetime="$SOAK_LIFETIME"); fi
  start_server "$kind" "soak-$kind" : "${extra[@]}" || { result soak "$kind" 0 started=no; return; }
  # tc netem on both ends of the veth where the kernel has it; else
  # lab/hardening.py's relay, which impairs the same way in user space.
  local q="netem loss 5% delay 50ms reorder 25% 50%" how=netem url="turn:$SRV:3478" relay=""
  # shellcheck disable=SC2086 # the qdisc's words
  if ! { tc -n "$G" qdisc add dev g0 root $q && tc -n "$S" qdisc add dev s0 root $q; } 2>/dev/null; then
    tc -n "$G" qdisc del dev g0 root 2>/dev/null
    how=userspace url="turn:10.88.0.6:3478"
    ip -n "$G" addr add 10.88.0.6/24 dev g0 2>/dev/null
    ip netns exec "$G" timeout $((SOAK_S + 150)) python3 "$lab/hardening.py" impair 10.88.0.6 3478 $SRV 3478 \
      10.88.0.4 $((SOAK_S + 120)) >"$tmp/impair-$kind.out" 2>&1 &
    relay=$!
    pids+=("$relay")
    sleep 0.5
  fi
  # Ask for an hour: both servers grant their maximum, SOAK_LIFETIME.
  BENCH_TIMEOUT=$((SOAK_S + 120)) bench_json "$tmp/soak-$kind.json" "$url" --bind 10.88.0.3 --setup-only \
    --clients "$SOAK_N" --hold "$SOAK_S" --lifetime 3600 --setup-timeout 60 &
  local bench=$!
  pids+=("$bench")
  # RSS once the allocations are up and refreshing, then at the end.
  local first=$((SOAK_S / 4)) start end t=0
  sleep "$first"
  start=$(rss_kb)
  while kill -0 "$bench" 2>/dev/null && [ $t -lt $((SOAK_S + 200)) ]; do
    end=$(rss_kb)
    sleep 1
    t=$((t + 1))
  done
  wait "$bench"
  local dropped
  if [ -n "$relay" ]; then
    kill "$relay" 2>/dev/null
    wait "$relay" 2>/dev/null
    dropped=$(awk '{print $4}' "$tmp/impair-$kind.out")
  else
    dropped=$({ tc -s -n "$G" qdisc show dev g0; tc -s -n "$S" qdisc show dev s0; } |
      awk '{for (i = 1; i < NF; i++) if ($i == "(dropped") {gsub(",", "", $(i + 1)); s += $(i + 1)}} END {print s + 0}')
    tc -n "$G" qdisc del dev g0 root 2>/dev/null
    tc -n "$S" qdisc del dev s0 root 2>/dev/null
  fi
  local ready lost up growth errors
  ready=$(field "$tmp/soak-$kind.json" ready)
  lost=$(refresh_errors "$tmp/soak-$kind.json")
  errors=$(python3 -c '
import json, sys
try:
    e = json.load(open(sys.argv[1]))["errors"]
    print(",".join(k.replace(" ", "_") + ":" + str(n) for k, n in e.items()) or "none")
except Exception:
    print("?")' "$tmp/soak-$kind.json")
  up=$(alive)
  growth=$((end - start))
  result soak "$kind" "$([ "$up" = yes ] && [ "$ready" = "$SOAK_N" ] && [ "$lost" = 0 ] && [ "$growth" -lt 1024 ] && echo 1 || echo 0)" \
    impairment="$how" allocations="$SOAK_N" seconds="$SOAK_S" lifetime_s="$SOAK_LIFETIME" ready="$ready" \
    datagrams_dropped="${dropped:-?}" refresh_failures="$lost" errors="$errors" rss_start_mb="$(mb "$start")" rss_end_mb="$(mb "$end")" \
    rss_growth_kb="$growth" alive="$up"
  stop_server
}

# kernel_programs: XDP programs on s0, plus TC filters and tcx links of
# edgeice's (bpftool when present, else what ip and tc show).
kernel_programs() {
  local n=0
  ip -n "$S" link show s0 | grep -q "prog/xdp" && n=$((n + 1))
  n=$((n + $(tc -n "$S" filter show dev s0 ingress 2>/dev/null | grep -c edgeice)))
  if command -v bpftool >/dev/null; then
    n=$((n + $(ip netns exec "$S" bpftool net show dev s0 2>/dev/null | grep -c 'tcx/\|edgeice')))
  fi
  echo "$n"
}

# edgeice_users DB, coturn_users DB: the users of a store, one word each
# (NAME/REALM), sorted (turnadmin also prints its log lines: left out).
edgeice_users() { "$E" user list --users-db "$1" 2>/dev/null | awk '{print $1 "/" $2}' | sort | tr '\n' ' '; }
coturn_users() {
  "$COTURN_BIN/turnadmin" -l -b "$1" 2>/dev/null | sed -n 's/^\([^ []*\)\[\(.*\)\]$/\1\/\2/p' | sort | tr '\n' ' '
}

case_kill9() {
  local kind=$1 users_before users_after db=$tmp/kill9-$kind.db fast=n/a
  local args=()
  if [ "$kind" = edgeice ]; then
    for u in alice bob; do
      "$E" user add "$u" --password "pw-$u" --realm r --users-db "$db" >/dev/null 2>&1
    done
    users_before=$(edgeice_users "$db")
    args=(--users-db "$db" --kernel-fast-path auto)
  else
    for u in alice bob; do
      "$COTURN_BIN/turnadmin" -a -b "$db" -u "$u" -r r -p "pw-$u" >/dev/null 2>&1
    done
    users_before=$(coturn_users "$db")
    args=(--db="$db")
  fi
  start_server "$kind" "kill9-$kind" : "${args[@]}" || { result kill9 "$kind" 0 started=no; return; }
  if [ "$kind" = edgeice ]; then
    # The fast path says once, on or off, why (it may come after the
    # listeners).
    for _ in $(seq 50); do grep -q "kernel fast path" "$tmp/kill9-$kind.log" && break; sleep 0.1; done
    fast=$(grep -q "kernel fast path on" "$tmp/kill9-$kind.log" && echo on || echo off)
  fi
  # Load: relayed traffic through channels (bound in the kernel when the
  # fast path is on), killed mid-way.
  BENCH_USER=alice BENCH_PASS=pw-alice bench_json "$tmp/kill9-$kind-load.json" "turn:$SRV:3478" \
    --bind 10.88.0.5 --clients 20 --rate 100 --duration 6 --drain 0 &
  local load=$!
  pids+=("$load")
  sleep 3
  local during
  during=$(kernel_programs)
  kill -9 "$server"
  wait "$server" 2>/dev/null
  wait "$load"
  sleep 0.5
  local left
  left=$(kernel_programs)
  [ "$kind" = coturn ] && left=n/a
  if [ "$kind" = edgeice ]; then
    users_after=$(edgeice_users "$db")
  else
    users_after=$(coturn_users "$db")
  fi
  start_server "$kind" "kill9-$kind-restart" : "${args[@]}" || { result kill9 "$kind" 0 restarted=no; return; }
  local again intact
  again=$(BENCH_USER=bob BENCH_PASS=pw-bob allocates "kill9-$kind-again" "turn:$SRV:3478" 10)
  intact=$([ -n "$users_before" ] && [ "$users_before" = "$users_after" ] && echo yes || echo no)
  local relayed
  relayed=$(field "$tmp/kill9-$kind-load.json" received)
  result kill9 "$kind" "$([ "$intact$again" = yesyes ] && { [ "$left" = n/a ] || [ "$left" = 0 ]; } && echo 1 || echo 0)" \
    fast_path="$fast" kernel_programs_during="$during" kernel_programs_left="$left" \
    relayed_before_kill="$relayed" users="$(wc -w <<<"$users_before" | tr -d ' ')" users_intact="$intact" \
    allocate_after_restart_ok="$again"
  stop_server
}

echo "== hardening $([ "$LONG" = 1 ] && echo long || echo short): $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)"
for c in $CASES; do
  for kind in $SERVERS; do
    "case_${c//-/_}" "$kind"
  done
done

# The table: one row per case, each server's figures in its column.
echo
python3 - "$results" "$SERVERS" <<'EOF'
import sys
rows, order = {}, []
for line in open(sys.argv[1]):
    words = line.split()
    case, server = words[1], words[2].split("=", 1)[1]
    figures = dict(w.split("=", 1) for w in words[3:] if "=" in w)
    if case not in rows:
        rows[case] = {}
        order.append(case)
    rows[case][server] = figures
servers = sys.argv[2].split()
print("| case | " + " | ".join(servers) + " |")
print("|---|" + "---|" * len(servers))
for case in order:
    cells = []
    for s in servers:
        f = rows[case].get(s)
        if f is None:
            cells.append("—")
            continue
        verdict = f.pop("result", "?").upper()
        cells.append(f"**{verdict}** " + ", ".join(f"{k} {v}" for k, v in f.items()))
    print(f"| {case} | " + " | ".join(cells) + " |")
EOF

if ((${#failed[@]})); then
  echo "hardening: FAIL (edgeice): ${failed[*]}" >&2
  exit 1
fi
echo "== hardening: every edgeice case passed"
exit 0
