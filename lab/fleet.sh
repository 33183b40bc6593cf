#!/usr/bin/env bash
# lab/fleet.sh — a fleet of edges (issue 18): Redis and three `edgeice
# serve` nodes, each in its own network namespace, clients in another, all
# joined by one bridge in a sixth namespace, on addresses of the lab's own
# (10.66.0.0/24, no default route anywhere: nothing leaves the namespaces).
# Every name starts with one random prefix; everything is torn down on exit.
#
#   redis 10.66.0.2   node 1 10.66.0.11   node 2 10.66.0.12   node 3 10.66.0.13
#   clients 10.66.0.100-.229 (edgeice bench, coturn's turnutils_uclient and
#   turnutils_peer, Chromium, lab/fleet-probe.py)
#
# Cases (FLEET_CASES narrows them; each prints one line, `case NAME
# key=value... result=pass|fail|skip`, then a markdown table of all):
#   spread        calls on all three nodes at once (edgeice bench with
#                 ChannelData, and turnutils_uclient): every call relayed,
#                 no loss
#   drain         node 2 drained (`edgeice drain`) with calls running: they
#                 go on with no loss until they end; new allocations sent to
#                 node 2 (bench and uclient) land on nodes 1 and 3 through
#                 300 Try Alternate; /readyz false; node 2 exits by itself,
#                 status 0, once its last call is gone
#   chromium      Chromium (tests/peers/chromium_relay.mjs, run in the
#                 clients' namespace) pointed at node 2 while it drains gets
#                 its relay candidates from node 1 or 3 and relays a data
#                 channel message each way
#   kill9         node 3 killed (SIGKILL) during calls on all three: nodes 1
#                 and 2's calls lose nothing; node 3's clients allocate
#                 again on the others; with Redis, node 3 leaves the
#                 registry when its heartbeat expires
#   users         (Redis) a user added with `edgeice user --redis` from node
#                 1's namespace allocates on every node, a removed one is
#                 refused on every node (lab/fleet-probe.py, one process per
#                 node trying every 50 ms); the time from the command's
#                 start until the last node answered, against the issue's
#                 second (FLEET_USER_MS, default 2000: the second plus the
#                 command's own start-up on a loaded machine)
#   quota         (Redis) --max-allocations-per-user 6 on every node and
#                 three groups of 6 clients allocating at once, one on each
#                 node: at most 6 allocations in all; then node 3 killed
#                 while its clients hold all 6: within 60 s node 1 grants
#                 all 6 again (the dead node's share does not stay taken)
#   redis-outage  (Redis) redis-server killed (SIGKILL) during calls, then
#                 restarted from its append-only file: calls lose nothing,
#                 new allocations and known users keep working meanwhile,
#                 every node counts the outage (edgeice_redis_outages), the
#                 nodes come back into the registry and a user added after
#                 the restart reaches every node
# A case whose feature this build lacks prints result=skip, the missing
# flag or command, and the reason; it never passes.
#
# Exit 0 when no case failed (skips allowed), 1 when one failed (named on
# stderr), 2 for bad usage or a missing tool.
#
# Environment: EDGEICE (the binary; default target/debug/edgeice, built when
# missing), COTURN_BIN (coturn 4.17.1's tools; default
# ~/.cache/coturn-4.17.1/build/bin, else those on PATH), FLEET_CASES,
# FLEET_TIMEOUT (seconds the whole run may take, default 600), FLEET_KEEP
# (keep the logs). Needs root, iproute2, redis-server, curl, python3,
# timeout; node, chromium and playwright-core (npm ci) for the chromium case.
set -u

usage() {
  sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
[ $# -eq 0 ] || usage

lab=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$lab/.." && pwd)
if [ -z "${EDGEICE:-}" ]; then
  EDGEICE=${CARGO_TARGET_DIR:-$repo/target}/debug/edgeice
  if [ ! -x "$EDGEICE" ] && command -v cargo >/dev/null 2>&1; then
    echo "fleet: building edgeice (cargo build -p edgeice)" >&2
    (cd "$repo" && cargo build -q -p edgeice) || exit 2
  fi
fi
E=$EDGEICE
COTURN_BIN=${COTURN_BIN:-$HOME/.cache/coturn-4.17.1/build/bin}
uclient=$COTURN_BIN/turnutils_uclient
upeer=$COTURN_BIN/turnutils_peer
[ -x "$uclient" ] || uclient=turnutils_uclient
[ -x "$upeer" ] || upeer=turnutils_peer
for tool in ip redis-server redis-cli curl python3 timeout ss "$uclient" "$upeer" "$E"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "fleet: $tool is missing (scripts/test.sh installs it)" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "fleet: needs root (network namespaces)" >&2; exit 2; }
ALL_CASES="spread drain chromium kill9 users quota redis-outage"
CASES=${FLEET_CASES:-$ALL_CASES}
for c in $CASES; do
  [[ " $ALL_CASES " == *" $c "* ]] || { echo "fleet: unknown case '$c'" >&2; exit 2; }
done
TIMEOUT=${FLEET_TIMEOUT:-600}
USER_MS=${FLEET_USER_MS:-2000}

# ---- what this build can do --------------------------------------------------
# Each fleet feature is looked for in the binary's own help, so that a case
# runs exactly when the feature is there.
serve_help=$("$E" serve --help 2>&1)
has_serve_flag() { grep -q -- "^ *$1 " <<<"$serve_help"; }
HAS_DRAIN=0
"$E" drain --help >/dev/null 2>&1 && HAS_DRAIN=1
HAS_ALTERNATE=0
has_serve_flag --alternate-server && HAS_ALTERNATE=1
HAS_REDIS=0
has_serve_flag --redis && HAS_REDIS=1
HAS_USER_REDIS=0
"$E" user --help 2>&1 | grep -q -- '--redis ' && HAS_USER_REDIS=1
HAS_FLEET_SESSIONS=0
"$E" sessions --help 2>&1 | grep -q -- '--fleet' && HAS_FLEET_SESSIONS=1

# ---- the world ---------------------------------------------------------------
for _ in 1 2 3 4 5; do
  P=fl$(printf '%04x' $((RANDOM)))
  ip netns list | grep -q "^$P" || break
done
SW=${P}sw RD=${P}rd CL=${P}cl
NODE_NS=("" "${P}n1" "${P}n2" "${P}n3")
NET=10.66.0
REDIS_IP=$NET.2
NODE_IP=("" "$NET.11" "$NET.12" "$NET.13")
REDIS_URL=redis://$REDIS_IP:6379
NAMESPACES="$SW $RD $CL ${NODE_NS[1]} ${NODE_NS[2]} ${NODE_NS[3]}"
tmp=$(mktemp -d /tmp/edgeice-fleet.XXXXXX)
NODE_PID=("" "" "" "")
REDIS_PID=""
WATCHDOG=""

# (Run from the trap, which shellcheck does not follow.)
# shellcheck disable=SC2317
cleanup() {
  local status=$? ns pid
  trap - EXIT INT TERM
  [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
  # shellcheck disable=SC2046
  kill $(jobs -p) 2>/dev/null
  for ns in $NAMESPACES; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  # Reaped here, quietly (the shell would report each as Killed).
  wait 2>/dev/null
  for ns in $NAMESPACES; do ip netns del "$ns" 2>/dev/null; done
  if [ -n "${FLEET_KEEP:-}" ] || [ "$status" -ne 0 ]; then
    echo "fleet: logs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo "fleet: interrupted" >&2; exit 1' INT TERM
# The whole run is bounded (the sleep is waited for, so that stopping the
# watchdog stops it too and nothing holds our stdout).
(
  sleep "$TIMEOUT" >/dev/null &
  trap 'kill $! 2>/dev/null; exit 0' TERM
  wait $!
  echo "fleet: FLEET_TIMEOUT ($TIMEOUT s) reached, stopping" >&2
  kill -TERM $$
) >/dev/null 2>&1 &
WATCHDOG=$!

# The benchmark's user, on every node (a file: not in `ps`).
printf 'u:p\n' >"$tmp/users"
chmod 600 "$tmp/users"

# One bridge, one veth from it to each namespace.
set -e
for ns in $NAMESPACES; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
join() {
  local ns=$1 port=$2
  shift 2
  ip link add "$port" netns "$SW" type veth peer name eth0 netns "$ns"
  ip -n "$SW" link set "$port" master br0 up
  local addr
  for addr in "$@"; do ip -n "$ns" addr add "$addr/24" dev eth0; done
  ip -n "$ns" link set eth0 up
}
join "$RD" rd "$REDIS_IP"
for i in 1 2 3; do join "${NODE_NS[$i]}" "n$i" "${NODE_IP[$i]}"; done
# The clients: .100-.109 for bench and coturn's tools, .110-.229 for the
# user probes (40 per node).
join "$CL" cl $(for a in $(seq 100 229); do echo "$NET.$a"; done)
set +e

# ---- Redis -------------------------------------------------------------------
# Its own namespace, an append-only file synced on every write (so that a
# SIGKILL loses nothing and the restarted server has the users back).
mkdir -p "$tmp/redis"
start_redis() {
  ip netns exec "$RD" redis-server --bind "$REDIS_IP" --port 6379 --protected-mode no --save '' \
    --appendonly yes --appendfsync always --dir "$tmp/redis" --daemonize no \
    >>"$tmp/redis.log" 2>&1 &
  REDIS_PID=$!
  local _
  for _ in $(seq 100); do
    ip netns exec "$RD" redis-cli -h "$REDIS_IP" ping 2>/dev/null | grep -q PONG && return 0
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "fleet: redis-server did not start:" >&2
  tail -5 "$tmp/redis.log" >&2
  return 1
}

# ---- nodes -------------------------------------------------------------------
# node_args I: today's flags, plus the fleet's where the build has them
# (Redis when it has --redis, else the static --alternate-server list of
# the two other nodes).
node_args() {
  local i=$1 j
  local ip=${NODE_IP[$i]}
  ARGS=(serve --listen "$ip:3478" --realm fleet --user-file "$tmp/users" --relay-ports 61000-65535 --private-relay-ok
    --admin-socket "$tmp/n$i.sock" --metrics "$ip:9100")
  if [ "$HAS_REDIS" = 1 ]; then
    ARGS+=(--redis "$REDIS_URL" --node-id "n$i")
  elif [ "$HAS_ALTERNATE" = 1 ]; then
    for j in 1 2 3; do [ "$j" = "$i" ] || ARGS+=(--alternate-server "${NODE_IP[$j]}:3478"); done
  fi
}

# start_node I [ARGS...]: starts node I (extra serve flags after), waits
# until it listens on UDP and TCP; its pid in NODE_PID[I].
start_node() {
  local i=$1
  shift
  node_args "$i"
  local log=$tmp/n$i.log
  echo "---- start $(date -u +%T.%N) ${ARGS[*]} $*" >>"$log"
  # ip netns exec execs the command: $! is the server itself.
  ip netns exec "${NODE_NS[$i]}" "$E" "${ARGS[@]}" "$@" >>"$log" 2>&1 &
  NODE_PID[i]=$!
  local _ l
  for _ in $(seq 150); do
    kill -0 "${NODE_PID[$i]}" 2>/dev/null || break
    l=$(ip netns exec "${NODE_NS[$i]}" ss -Hlnut 2>/dev/null)
    if grep -q "udp.*${NODE_IP[$i]}:3478" <<<"$l" && grep -q "tcp.*${NODE_IP[$i]}:3478" <<<"$l"; then
      return 0
    fi
    sleep 0.1
  done
  echo "fleet: node $i did not start:" >&2
  tail -5 "$log" >&2
  return 1
}

# stop_node I: SIGTERM, then SIGKILL if it lingers.
stop_node() {
  local pid=${NODE_PID[$1]} _
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  NODE_PID[$1]=""
}

# start_fleet [ARGS...]: all three nodes, with the same extra flags.
start_fleet() {
  local i
  for i in 1 2 3; do start_node "$i" "$@" || return 1; done
}
stop_fleet() {
  local i
  for i in 1 2 3; do stop_node "$i"; done
}

alive() { kill -0 "${NODE_PID[$1]}" 2>/dev/null && echo yes || echo no; }

# metric I NAME: a metric of node I (a counter's NAME_total too), its
# samples added up (0 when absent).
metric() {
  ip netns exec "${NODE_NS[$1]}" curl -s --max-time 3 "http://${NODE_IP[$1]}:9100/metrics" 2>/dev/null |
    awk -v n="$2" '$1 == n || $1 == n "_total" || index($1, n "{") == 1 || index($1, n "_total{") == 1 {s += $2}
      END {printf "%d\n", s}'
}

# readyz I: the HTTP status of node I's /readyz (000 when none).
readyz() {
  ip netns exec "${NODE_NS[$1]}" curl -s -o /dev/null -w '%{http_code}' --max-time 3 \
    "http://${NODE_IP[$1]}:9100/readyz" 2>/dev/null
}

# wait_allocations I N: until node I holds at least N allocations (10 s).
wait_allocations() {
  local _
  for _ in $(seq 100); do
    [ "$(metric "$1" edgeice_allocations)" -ge "$2" ] 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ---- clients -----------------------------------------------------------------

# bench FILE NODE CLIENT-ADDR ARGS...: edgeice bench from the clients'
# namespace towards node NODE, its JSON report in FILE (bounded; its pid
# in FILE.pid, to stop it early).
bench() {
  local file=$1 node=$2 bind=$3
  shift 3
  ip netns exec "$CL" timeout "${BENCH_TIMEOUT:-90}" "$E" bench "turn:${NODE_IP[$node]}:3478" \
    --user "${BENCH_USER:-u}" --password "${BENCH_PASS:-p}" --threads 1 --json --bind "$NET.$bind" \
    "$@" >"$file" 2>"$file.err" &
  local pid=$!
  echo "$pid" >"$file.pid"
  wait "$pid"
}

# field FILE KEY: a value of a bench report (? when missing); KEY may be
# `errors` or `allocated_on` (then `a:n,b:n`, or none).
field() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
try:
    v = json.load(open(sys.argv[1]))[sys.argv[2]]
    if isinstance(v, dict):
        v = ",".join(f"{k.replace(' ', '_')}:{n}" for k, n in v.items()) or "none"
    print(v)
except Exception:
    print("?")
EOF
}

# on_node FILE I: allocations a report made on node I.
on_node() {
  python3 - "$1" "${NODE_IP[$2]}:3478" <<'EOF'
import json, sys
try:
    print(json.load(open(sys.argv[1]))["allocated_on"].get(sys.argv[2], 0))
except Exception:
    print("?")
EOF
}

# clean FILE N: "yes" when the report has all N clients ready, every packet
# echoed, and no error.
clean() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
    ok = r["ready"] == int(sys.argv[2]) and r["sent"] > 0 and r["lost"] == 0 and not r["errors"]
    print("yes" if ok else "no")
except Exception:
    print("no")
EOF
}

# The echo peer coturn's clients send to (it binds the port and the next).
ip netns exec "$CL" "$upeer" -L "$NET.101" -p 3480 >"$tmp/peer.log" 2>&1 &

# uclient FILE NODE: coturn's turnutils_uclient, 2 clients (RTP and RTCP
# each), 10 messages, through node NODE to the peer; "yes" when every
# message came back. It follows a 300's ALTERNATE-SERVER by itself.
uclient() {
  local file=$1 node=$2
  ip netns exec "$CL" timeout 60 "$uclient" -u u -w p -e "$NET.101" -r 3480 -p 3478 -m 2 -n 10 -l 120 -z 5 \
    "${NODE_IP[$node]}" >"$file" 2>&1
  python3 - "$file" <<'EOF'
import re, sys
text = open(sys.argv[1], errors="replace").read()
m = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", text)
lost = re.findall(r"Total lost packets (\d+) ", text)
ok = m and int(m[-1][0]) > 0 and m[-1][0] == m[-1][1] and lost and lost[-1] == "0"
print("yes" if ok else "no")
EOF
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ---- results -----------------------------------------------------------------
results=$tmp/results
: >"$results"
failed=()
# result CASE PASS FIGURES...: prints and keeps one result line.
result() {
  local case=$1 pass=$2
  shift 2
  local line="case $case $* result=$([ "$pass" = 1 ] && echo pass || echo fail)"
  echo "$line"
  echo "$line" >>"$results"
  [ "$pass" = 1 ] || failed+=("$case")
}
# skip CASE MISSING WHY...: the case cannot run on this build.
skip() {
  local case=$1 missing=$2
  shift 2
  local line="case $case result=skip missing=$missing reason: $*"
  echo "$line"
  echo "$line" >>"$results"
}
# yes1 WORDS...: 1 when every word is "yes", else 0.
yes1() {
  local w
  for w in "$@"; do [ "$w" = yes ] || { echo 0; return; }; done
  echo 1
}

# needs_drain CASE: skips CASE (and returns 1) without drain and steering.
needs_drain() {
  if [ "$HAS_DRAIN" = 0 ]; then
    skip "$1" "edgeice drain" "this build has no 'edgeice drain' (branch fleet-drain not merged)"
    return 1
  fi
  if [ "$HAS_ALTERNATE" = 0 ] && [ "$HAS_REDIS" = 0 ]; then
    skip "$1" "--alternate-server" "this build has neither --alternate-server nor --redis: nowhere to redirect to"
    return 1
  fi
}
# needs_redis CASE: skips CASE (and returns 1) without the Redis fleet.
needs_redis() {
  if [ "$HAS_REDIS" = 0 ]; then
    skip "$1" "--redis" "this build's serve has no --redis (branch fleet-redis not merged)"
    return 1
  fi
  if [ "$HAS_USER_REDIS" = 0 ]; then
    skip "$1" "user --redis" "this build's 'edgeice user' has no --redis (branch fleet-redis not merged)"
    return 1
  fi
}

# fleet_nodes: the registry, as `edgeice sessions --fleet` lists it (from
# node 1's namespace, where Redis is reachable).
fleet_nodes() {
  ip netns exec "${NODE_NS[1]}" timeout 5 "$E" sessions --fleet --redis "$REDIS_URL" 2>/dev/null
}

# watch_registry FILE WHAT: in the background, reads the registry every
# 100 ms (for 30 s at most) until WHAT holds — `gone ID` (ID no longer
# listed) or `all` (n1, n2 and n3 listed) — and writes the time (ms since
# the epoch) to FILE; nothing when it never does.
watch_registry() {
  local file=$1 what=$2 id=${3:-} _ listed
  : >"$file"
  (
    for _ in $(seq 300); do
      listed=$(fleet_nodes)
      if { [ "$what" = gone ] && [ -n "$listed" ] && ! grep -q "^$id[[:space:]]" <<<"$listed"; } ||
        { [ "$what" = all ] && grep -q "^n1[[:space:]]" <<<"$listed" && grep -q "^n2[[:space:]]" <<<"$listed" &&
          grep -q "^n3[[:space:]]" <<<"$listed"; }; then
        now_ms >"$file"
        exit 0
      fi
      sleep 0.1
    done
  ) &
  WATCHER=$!
}

# since FILE START: ms from START to the time in FILE, or "never".
since() {
  local t
  t=$(cat "$1" 2>/dev/null)
  if [ -n "$t" ]; then echo $((t - $2)); else echo never; fi
}

# drain I: puts node I into drain, over its admin socket.
drain() { "$E" drain --admin-socket "$tmp/n$1.sock" >>"$tmp/drain.log" 2>&1; }

# wait_exit I SECONDS: until node I's process ends by itself; sets
# EXIT_STATUS (or "running") and EXIT_MS, how long it took.
wait_exit() {
  local i=$1 pid=${NODE_PID[$1]} start _
  start=$(now_ms)
  EXIT_STATUS=running
  for _ in $(seq $(($2 * 10))); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      EXIT_STATUS=$?
      NODE_PID[i]=""
      break
    fi
    sleep 0.1
  done
  EXIT_MS=$(($(now_ms) - start))
}

# ---- the cases ---------------------------------------------------------------

case_spread() {
  local i pids=()
  for i in 1 2 3; do
    bench "$tmp/spread-$i.json" "$i" 10$i --clients 10 --rate 50 --duration 5 &
    pids+=($!)
  done
  local u1 u2 u3
  u1=$(uclient "$tmp/spread-u1.out" 1)
  u2=$(uclient "$tmp/spread-u2.out" 2)
  u3=$(uclient "$tmp/spread-u3.out" 3)
  wait "${pids[@]}"
  local c1 c2 c3 lost=0 sent=0
  c1=$(clean "$tmp/spread-1.json" 10)
  c2=$(clean "$tmp/spread-2.json" 10)
  c3=$(clean "$tmp/spread-3.json" 10)
  for i in 1 2 3; do
    sent=$((sent + $(field "$tmp/spread-$i.json" sent)))
    lost=$((lost + $(field "$tmp/spread-$i.json" lost)))
  done 2>/dev/null
  result spread "$(yes1 "$c1" "$c2" "$c3" "$u1" "$u2" "$u3")" \
    calls_per_node="$(on_node "$tmp/spread-1.json" 1)/$(on_node "$tmp/spread-2.json" 2)/$(on_node "$tmp/spread-3.json" 3)" \
    packets_sent="$sent" packets_lost="$lost" bench_clean="$c1$c2$c3" uclient_ok="$u1,$u2,$u3"
}

case_drain() {
  needs_drain drain || return
  # A node 2 that holds nothing but this case's calls (coturn's clients
  # leave their allocations to expire), so that its exit says they ended.
  stop_node 2
  start_node 2
  # Calls on node 2 that outlive the drain by several seconds.
  bench "$tmp/drain-held.json" 2 104 --clients 10 --rate 50 --duration 10 &
  local held=$!
  wait_allocations 2 10
  local created_before ready_before
  ready_before=$(readyz 2)
  drain 2
  local drained=$?
  sleep 0.3
  local ready_during
  ready_during=$(readyz 2)
  created_before=$(metric 2 edgeice_allocations_created)
  # New allocations aimed at node 2.
  bench "$tmp/drain-new.json" 2 105 --clients 10 --setup-only
  local redirected new1 new3 newready
  redirected=$(field "$tmp/drain-new.json" redirected)
  newready=$(field "$tmp/drain-new.json" ready)
  new1=$(on_node "$tmp/drain-new.json" 1)
  new3=$(on_node "$tmp/drain-new.json" 3)
  local u2
  u2=$(uclient "$tmp/drain-uclient.out" 2)
  local created_after
  created_after=$(metric 2 edgeice_allocations_created)
  wait "$held"
  local kept sent lost
  kept=$(field "$tmp/drain-held.json" ready)
  sent=$(field "$tmp/drain-held.json" sent)
  lost=$(field "$tmp/drain-held.json" lost)
  local heldclean
  heldclean=$(clean "$tmp/drain-held.json" 10)
  # The held calls released their allocations as they ended: node 2 is
  # empty and goes.
  wait_exit 2 30
  local status=$EXIT_STATUS took=$EXIT_MS
  local none_new=no
  [ "$created_after" = "$created_before" ] && none_new=yes
  local redirected_all=no
  [ "$newready" = 10 ] && [ "$redirected" = 10 ] && [ $((new1 + new3)) = 10 ] 2>/dev/null && redirected_all=yes
  local notready=no
  [ "$ready_before" = 200 ] && [ "$ready_during" != 200 ] && notready=yes
  local exited=no
  [ "$status" = 0 ] && exited=yes
  result drain "$(yes1 "$([ $drained = 0 ] && echo yes)" "$heldclean" "$redirected_all" "$none_new" "$u2" "$notready" "$exited")" \
    calls_kept="$kept/10" packets_sent="$sent" packets_lost="$lost" \
    new_allocations_redirected="$redirected/10" landed_on_n1="$new1" landed_on_n3="$new3" \
    new_on_n2="$((created_after - created_before))" uclient_followed="$u2" \
    readyz="$ready_before->$ready_during" n2_exit_status="$status" n2_exit_after_last_call_ms="$took"
  # Node 2 comes back (an upgrade) for the next cases.
  stop_node 2
  start_node 2
}

case_chromium() {
  needs_drain chromium || return
  local tool
  for tool in node /usr/bin/chromium; do
    command -v "$tool" >/dev/null 2>&1 ||
      { result chromium 0 missing="$tool"; return; }
  done
  [ -f "$repo/node_modules/playwright-core/package.json" ] ||
    { result chromium 0 missing=playwright-core; return; }
  # A call holds node 2 in drain while the browser asks it.
  bench "$tmp/chromium-held.json" 2 106 --clients 2 --setup-only --hold 45 &
  local held=$!
  wait_allocations 2 2
  drain 2
  sleep 0.3
  # Chromium only ever runs inside the clients' namespace, which has the
  # lab's bridge alone (and chromium.mjs's flags keep it off any network).
  (cd "$repo" && ip netns exec "$CL" timeout 90 node tests/peers/chromium_relay.mjs "${NODE_IP[2]}:3478" udp u p) \
    >"$tmp/chromium.out" 2>&1
  local ok=$? relay
  relay=$(sed -n 's/^OK: .*over TURN\/udp: \([0-9.]*\):.*/\1/p' "$tmp/chromium.out")
  local elsewhere=no
  [ -n "$relay" ] && [ "$relay" != "${NODE_IP[2]}" ] && elsewhere=yes
  result chromium "$(yes1 "$([ $ok = 0 ] && echo yes)" "$elsewhere")" \
    asked="${NODE_IP[2]}" relay_candidate_on="${relay:-none}" data_channel="$([ $ok = 0 ] && echo both-ways || echo failed)"
  [ $ok = 0 ] || sed 's/^/  chromium: /' "$tmp/chromium.out" | tail -20 >&2
  # Stop the held call (without releasing it) and bring node 2 back.
  kill "$(cat "$tmp/chromium-held.json.pid")" 2>/dev/null
  wait "$held" 2>/dev/null
  stop_node 2
  start_node 2
}

case_kill9() {
  local i pids=()
  for i in 1 2 3; do
    bench "$tmp/kill9-$i.json" "$i" 10$i --clients 10 --rate 50 --duration 8 --drain 2 &
    pids+=($!)
  done
  wait_allocations 3 10
  wait_allocations 1 10
  wait_allocations 2 10
  sleep 1
  kill -9 "${NODE_PID[3]}"
  local killed_at
  killed_at=$(now_ms)
  # With a registry, node 3 leaves it when its heartbeat lapses.
  [ "$HAS_FLEET_SESSIONS" = 1 ] && watch_registry "$tmp/kill9-left" gone n3
  wait "${NODE_PID[3]}" 2>/dev/null
  NODE_PID[3]=""
  wait "${pids[@]}"
  local c1 c2 l3 s3
  c1=$(clean "$tmp/kill9-1.json" 10)
  c2=$(clean "$tmp/kill9-2.json" 10)
  s3=$(field "$tmp/kill9-3.json" sent)
  l3=$(field "$tmp/kill9-3.json" lost)
  # Node 3's clients allocate again, on the nodes left.
  bench "$tmp/kill9-again-1.json" 1 103 --clients 5 --setup-only
  bench "$tmp/kill9-again-2.json" 2 103 --clients 5 --setup-only
  local again
  again=$(($(field "$tmp/kill9-again-1.json" ready) + $(field "$tmp/kill9-again-2.json" ready))) 2>/dev/null
  local left=n/a
  if [ "$HAS_FLEET_SESSIONS" = 1 ]; then
    wait "$WATCHER"
    left=$(since "$tmp/kill9-left" "$killed_at")
    [ "$left" = never ] || left=${left}ms
  fi
  local gone=no
  [ "$l3" != "?" ] && [ "$l3" -gt 0 ] 2>/dev/null && gone=yes
  result kill9 "$(yes1 "$c1" "$c2" "$gone" "$([ "$again" = 10 ] && echo yes)" "$([ "$left" != never ] && echo yes)")" \
    n1_calls_clean="$c1" n2_calls_clean="$c2" n3_packets_lost="$l3/$s3" \
    n3_clients_allocated_again="${again:-?}/10" n3_left_registry_after="$left"
  start_node 3
}

# probe_user FILE NODE USER PASSWORD WANT: lab/fleet-probe.py against node
# NODE until its answer to USER is WANT (ok or refused), from the 40
# client addresses kept for that node; `reached MS N` or `never N` in FILE.
probe_user() {
  local file=$1 node=$2 user=$3 pass=$4 want=$5 first sources
  first=$((110 + 40 * (node - 1)))
  sources=$(seq -s, -f "$NET.%g" "$first" $((first + 39)))
  ip netns exec "$CL" timeout 20 python3 "$lab/fleet-probe.py" "${NODE_IP[$node]}" 3478 "$user" "$pass" fleet \
    "$want" "$sources" 50 10 >"$file" 2>&1
}

# user_change VERB NAME PASSWORD WANT: starts a probe per node, makes the
# change from node 1's namespace, and prints the ms from the command's
# start until the last node answered WANT (or "never"), the ms per node,
# and how long the command itself took.
user_change() {
  local verb=$1 name=$2 pass=$3 want=$4 i pids=() start done
  for i in 1 2 3; do
    probe_user "$tmp/user-$verb-$name-$i" "$i" "$name" "$pass" "$want" &
    pids+=($!)
  done
  # The probes are running (their start-up is not the figure).
  sleep 1
  start=$(now_ms)
  if [ "$verb" = add ]; then
    ip netns exec "${NODE_NS[1]}" "$E" user --redis "$REDIS_URL" add "$name" --password "$pass" --realm fleet \
      >>"$tmp/user.log" 2>&1
  else
    ip netns exec "${NODE_NS[1]}" "$E" user --redis "$REDIS_URL" remove "$name" --realm fleet >>"$tmp/user.log" 2>&1
  fi
  done=$(now_ms)
  wait "${pids[@]}"
  local worst=0 per=() word t
  for i in 1 2 3; do
    read -r word t _ <"$tmp/user-$verb-$name-$i"
    if [ "$word" != reached ]; then
      per+=(never)
      worst=never
    else
      per+=($((t - start)))
      [ "$worst" != never ] && [ $((t - start)) -gt "$worst" ] && worst=$((t - start))
    fi
  done
  echo "$worst ${per[0]}/${per[1]}/${per[2]} $((done - start))"
}

case_users() {
  needs_redis users || return
  local add_worst add_per add_cmd rm_worst rm_per rm_cmd
  read -r add_worst add_per add_cmd < <(user_change add alice pw-alice ok)
  read -r rm_worst rm_per rm_cmd < <(user_change remove alice pw-alice refused)
  local in_time=no
  [ "$add_worst" != never ] && [ "$rm_worst" != never ] &&
    [ "$add_worst" -le "$USER_MS" ] && [ "$rm_worst" -le "$USER_MS" ] && in_time=yes
  result users "$(yes1 "$in_time")" \
    added_reached_every_node_ms="$add_worst" added_ms_n1_n2_n3="$add_per" \
    removed_reached_every_node_ms="$rm_worst" removed_ms_n1_n2_n3="$rm_per" \
    user_command_ms="$add_cmd/$rm_cmd" bound_ms="$USER_MS"
}

case_quota() {
  needs_redis quota || return
  local quota=6 i pids=()
  stop_fleet
  start_fleet --max-allocations-per-user "$quota" || { result quota 0 started=no; return; }
  for i in 1 2 3; do
    BENCH_USER=u bench "$tmp/quota-$i.json" "$i" 10$i --clients "$quota" --setup-only --hold 3 &
    pids+=($!)
  done
  wait "${pids[@]}"
  local total=0 per=() refused=0 n
  for i in 1 2 3; do
    n=$(field "$tmp/quota-$i.json" ready)
    per+=("$n")
    total=$((total + n)) 2>/dev/null
    refused=$((refused + $(python3 -c '
import json, sys
try:
    print(json.load(open(sys.argv[1]))["errors"].get("Allocate 486", 0))
except Exception:
    print(0)' "$tmp/quota-$i.json")))
  done
  # A node killed while its user holds the whole quota: the others must
  # get it back (once the dead node's share expires), not refuse for ever.
  bench "$tmp/quota-held.json" 3 103 --clients "$quota" --setup-only --hold 60 &
  local held=$!
  wait_allocations 3 "$quota"
  kill -9 "${NODE_PID[3]}"
  wait "${NODE_PID[3]}" 2>/dev/null
  NODE_PID[3]=""
  kill "$(cat "$tmp/quota-held.json.pid")" 2>/dev/null
  wait "$held" 2>/dev/null
  local killed_at freed=never _
  killed_at=$(now_ms)
  for _ in $(seq 60); do
    bench "$tmp/quota-after.json" 1 104 --clients "$quota" --setup-only
    if [ "$(field "$tmp/quota-after.json" ready)" = "$quota" ]; then
      freed=$(($(now_ms) - killed_at))
      break
    fi
    sleep 1
  done
  result quota "$([ "$total" -le "$quota" ] && [ "$total" -gt 0 ] && [ "$freed" != never ] && echo 1 || echo 0)" \
    quota="$quota" asked="$((3 * quota))" allocated="$total" per_node="${per[0]}/${per[1]}/${per[2]}" refused_486="$refused" \
    quota_back_after_holder_killed_ms="$freed"
  stop_fleet
  start_fleet
}

case_redis_outage() {
  needs_redis redis-outage || return
  # A user every node has loaded before the outage.
  ip netns exec "${NODE_NS[1]}" "$E" user --redis "$REDIS_URL" add carol --password pw-carol --realm fleet \
    >>"$tmp/user.log" 2>&1
  sleep 1
  local i pids=()
  for i in 1 2 3; do
    bench "$tmp/outage-$i.json" "$i" 10$i --clients 10 --rate 50 --duration 12 &
    pids+=($!)
  done
  for i in 1 2 3; do wait_allocations "$i" 10; done
  kill -9 "$REDIS_PID"
  wait "$REDIS_PID" 2>/dev/null
  sleep 1
  # Meanwhile: new allocations, by a static user and by carol, on every node.
  local during=0 carol=0
  for i in 1 2 3; do
    bench "$tmp/outage-new-$i.json" "$i" 107 --clients 3 --setup-only
    during=$((during + $(field "$tmp/outage-new-$i.json" ready))) 2>/dev/null
    BENCH_USER=carol BENCH_PASS=pw-carol bench "$tmp/outage-carol-$i.json" "$i" 108 --clients 1 --setup-only
    carol=$((carol + $(field "$tmp/outage-carol-$i.json" ready))) 2>/dev/null
  done
  local alive_all=no
  [ "$(yes1 "$(alive 1)" "$(alive 2)" "$(alive 3)")" = 1 ] && alive_all=yes
  start_redis
  local restarted_at
  restarted_at=$(now_ms)
  # Converged: every node back in the registry...
  local back=n/a
  [ "$HAS_FLEET_SESSIONS" = 1 ] && watch_registry "$tmp/outage-back" all
  wait "${pids[@]}"
  local c1 c2 c3
  c1=$(clean "$tmp/outage-1.json" 10)
  c2=$(clean "$tmp/outage-2.json" 10)
  c3=$(clean "$tmp/outage-3.json" 10)
  if [ "$HAS_FLEET_SESSIONS" = 1 ]; then
    wait "$WATCHER"
    back=$(since "$tmp/outage-back" "$restarted_at")
  fi
  # The outage was counted by every node.
  local counted=0
  for i in 1 2 3; do [ "$(metric "$i" edgeice_redis_outages)" -ge 1 ] 2>/dev/null && counted=$((counted + 1)); done
  # ... and a user added after the restart reaches every node.
  local add_worst
  read -r add_worst _ < <(user_change add dave pw-dave ok)
  local converged=no
  [ "$add_worst" != never ] && [ "$back" != never ] && converged=yes
  result redis-outage "$(yes1 "$c1" "$c2" "$c3" "$alive_all" "$([ "$during" = 9 ] && echo yes)" "$([ "$carol" = 3 ] && echo yes)" "$converged" "$([ "$counted" = 3 ] && echo yes)")" \
    calls_kept_n1_n2_n3="$c1/$c2/$c3" nodes_alive="$alive_all" \
    new_allocations_during_outage="$during/9" known_user_during_outage="$carol/3" \
    outage_counted_by="$counted/3" registry_back_after_restart_ms="$back" new_user_reached_every_node_ms="$add_worst"
}

# ---- the run -----------------------------------------------------------------
echo "== fleet: $(nproc) cores, Linux $(uname -r), drain=$HAS_DRAIN alternate-server=$HAS_ALTERNATE redis=$HAS_REDIS"
start_redis || exit 1
start_fleet || exit 1
for c in $CASES; do
  "case_${c//-/_}"
done
stop_fleet

# The table: one row per case.
echo
python3 - "$results" <<'EOF'
import sys
print("| case | result | figures |")
print("|---|---|---|")
for line in open(sys.argv[1]):
    words = line.split()
    case, rest = words[1], line.split(None, 2)[2].strip()
    if " reason: " in rest:
        head, reason = rest.split(" reason: ", 1)
        figures = dict(w.split("=", 1) for w in head.split() if "=" in w)
        verdict = figures.pop("result", "?")
        print(f"| {case} | **{verdict.upper()}** | {reason} |")
        continue
    figures = dict(w.split("=", 1) for w in rest.split() if "=" in w)
    verdict = figures.pop("result", "?")
    print(f"| {case} | **{verdict.upper()}** | " + ", ".join(f"{k} {v}" for k, v in figures.items()) + " |")
EOF

if ((${#failed[@]})); then
  echo "fleet: FAIL: ${failed[*]}" >&2
  exit 1
fi
echo "== fleet: no case failed"
exit 0
