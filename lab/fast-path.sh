#!/usr/bin/env bash
# lab/fast-path.sh — the kernel fast path end to end, in two network
# namespaces joined by a veth pair (native XDP works on veth): edgeice
# serve in one (10.77.0.1 and fd77::1, IPv4 forwarding on), coturn's
# turnutils_uclient and turnutils_peer in the other (10.77.0.2 and
# 10.77.0.3, fd77::2), then lab/edge-packets.py, aioice's TURN client
# (lab/aioice-relay.py) and edgeice bench with its built-in echo peer. The
# same load runs with --kernel-fast-path off, then on; then, with the fast
# path on, permissions that lapse after 2 s while the bench goes on
# sending. Checks: no loss either way (uclient, aioice and the bench), the
# same bytes sent and received (aioice: the same SHA-256 of what came
# back), that nothing is relayed after the permission lapsed (the kernel
# lets go within a sweep and the server refuses the rest), edge-case
# ChannelData (lab/edge-packets.py: padded, too long, unbound, short,
# fragmented — 3000 bytes over a 1500-byte MTU —, the largest datagram
# IPv4 carries, and datagrams with a right and a wrong UDP checksum from
# the client and from the peer, from an IPv4 client, then again from an
# IPv6 client with an IPv4 relay, then IPv6 throughout — client, relayed
# address and peer fd77::3 — with 1200 bytes unfragmented too) answered
# the same with the fast path on as off, none with
# a wrong checksum relayed either way, the fragmented ones and the IPv6 client's relayed
# and echoed, fragments, padded frames and everything of the IPv6 client
# left to the sockets (XDP's counters do not move for them), IPv6
# throughout relayed by XDP both ways (and by TC in the fallback), nothing in
# the kernel when off, with it on nearly every ChannelData packet relayed
# by XDP both ways (edgeice_kernel_relayed_packets_total; for aioice
# alone too), and the server's edgeice_relayed_packets_total (XDP and
# sockets together) moving by exactly what edgeice bench sent and got
# back, each way. The server process's CPU per relayed datagram is
# printed for both. Exits 0 when all hold, 1 when one does not, 77 when
# the kernel refuses the XDP program (a skip, said on stderr), 2 for a
# missing tool. Last, the TC fallback (tc_fallback): with an XDP program
# already on the server's veth, that it stays, that the same load goes
# through TC with the same results, and that a server killed with SIGKILL
# leaves no TC program behind.
#
# Environment: EDGEICE (an edgeice binary), FP_TIMEOUT
# (seconds the whole run may take, default 150; the test gives 300: loading
# the programs takes seconds on a loaded machine), FP_MESSAGES, FP_CLIENTS and
# FP_GAP_MS (uclient's -n, -m and -z: 200, 5, 5), FP_AIOICE (datagrams
# aioice sends, 200), FP_PYTHON (a Python with aioice: default the .venv
# that scripts/test.sh makes). Needs root, iproute2 (the client side's
# veth needs an XDP program of its own to take XDP_TX'd frames: the
# committed object's, whose empty maps pass everything),
# coturn's tools, /usr/bin/python3 and ethtool.
set -u

E=${EDGEICE:?set EDGEICE to an edgeice binary}
N=${FP_MESSAGES:-200}
CLIENTS=${FP_CLIENTS:-5}
GAP=${FP_GAP_MS:-5}
A=${FP_AIOICE:-200}
lab=$(cd "$(dirname "$0")" && pwd)
PY=${FP_PYTHON:-$lab/../.venv/bin/python}
for tool in ip turnutils_uclient turnutils_peer python3 ethtool; do
  command -v "$tool" >/dev/null || { echo "fast-path.sh: $tool is missing" >&2; exit 2; }
done
"$PY" -c 'import aioice' 2>/dev/null || {
  echo "fast-path.sh: no aioice in $PY (FP_PYTHON): run scripts/test.sh, which makes .venv" >&2
  exit 2
}
[ "$(id -u)" -eq 0 ] || { echo "fast-path.sh: needs root (namespaces, XDP)" >&2; exit 2; }

tag=fp$$
S=${tag}s
C=${tag}c
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  # Whatever still runs in the namespaces (a server started in a subshell).
  for ns in "$S" "$C"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
  done
  ip netns del "$S" 2>/dev/null
  ip netns del "$C" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
# On a signal (the watchdog's, or the caller's), exit so that cleanup runs.
trap 'exit 143' TERM INT
# The whole run is bounded. (Its output goes nowhere, so that it holds no
# pipe of whoever reads ours.)
# Stopped, it stops its sleep and leaves this script alone.
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "${FP_TIMEOUT:-150}" &
  sleeper=$!
  wait "$sleeper" && kill -TERM $$
) >/dev/null 2>&1 &
pids+=($!)

# The XDP program the client side's veth needs, and the "other" program
# of the TC fallback: the committed relay object's, loaded by iproute2
# with maps of its own, all empty, so it passes every packet (no clang).
cp "$lab/../crates/fastpath/ebpf/relay.bpf.o" "$tmp/pass.o"

ip netns add "$S"
ip netns add "$C"
ip link add s0 netns "$S" type veth peer name c0 netns "$C"
ip -n "$S" link set lo up
ip -n "$S" addr add 10.77.0.1/24 dev s0
ip -n "$S" link set s0 up
ip netns exec "$S" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.s0.forwarding=1
ip -n "$C" link set lo up
ip -n "$C" addr add 10.77.0.2/24 dev c0
ip -n "$C" addr add 10.77.0.3/24 dev c0
ip -n "$C" link set c0 up
# The client side's packets carry their UDP checksums, as from a physical
# NIC: a veth otherwise leaves them for the stack to fill in (checksum
# offload), which neither program can verify, so they would all go up
# untouched (see relay.c).
ip netns exec "$C" ethtool -K c0 tx off >/dev/null || { echo "fast-path.sh: ethtool -K c0 tx off failed" >&2; exit 2; }
# IPv6 on the same link too, for an IPv6 client (nodad: usable at once).
ip -n "$S" addr add fd77::1/64 dev s0 nodad
ip -n "$C" addr add fd77::2/64 dev c0 nodad
ip -n "$C" addr add fd77::3/64 dev c0 nodad
# The kernel's IPv6 route lookup answers only where IPv6 forwarding is on.
ip netns exec "$S" sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.s0.forwarding=1
if ! ip -n "$C" link set dev c0 xdpdrv obj "$tmp/pass.o" sec xdp 2>"$tmp/xdp.err"; then
  echo "fast-path.sh: SKIP: the kernel refuses XDP on veth: $(tail -1 "$tmp/xdp.err")" >&2
  exit 77
fi

ip netns exec "$C" turnutils_peer -L 10.77.0.3 -p 3480 >"$tmp/peer.log" 2>&1 &
pids+=($!)
# The IPv6 peer (3482 and 3483).
ip netns exec "$C" turnutils_peer -L fd77::3 -p 3482 >"$tmp/peer6.log" 2>&1 &
pids+=($!)

# CPU time of one process (user + system), in clock ticks. XDP itself runs
# in softirq, charged to whichever task was interrupted: not to the server.
process_jiffies() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# counters NAME: the server's relayed packets now, "TO_PEER TO_CLIENT
# KERNEL_TO_PEER KERNEL_TO_CLIENT" (all, and those by XDP, which are also
# in all), into $tmp/counters-NAME.
counters() {
  ip netns exec "$S" python3 -c '
import re, sys, urllib.request
body = urllib.request.urlopen("http://10.77.0.1:9100/metrics", timeout=5).read().decode()
def metric(name):
    m = re.search("^" + re.escape(name) + r" (\S+)$", body, re.M)
    return int(float(m.group(1))) if m else 0
# The bench is a UDP client; the kernel share has no transport label.
print(*(metric(f"edgeice_{kind}relayed_packets_total{{{label}direction=\"{d}\"}}")
        for kind, label in (("", "transport=\"udp\","), ("kernel_", ""))
        for d in ("to_peer", "to_client")))
' >"$tmp/counters-$1" || { echo "fast-path.sh: no metrics" >&2; exit 1; }
}

# delta A B: $tmp/counters-B minus $tmp/counters-A, field by field.
delta() {
  paste -d' ' "$tmp/counters-$1" "$tmp/counters-$2" |
    awk '{ n = NF / 2; for (i = 1; i <= n; i++) printf "%d%s", $(i + n) - $i, i < n ? " " : "\n" }'
}

# run MODE: one uclient run against a fresh server; prints
# "lost SENT RECEIVED KERNEL_TO_PEER KERNEL_TO_CLIENT". Then, each between
# two readings of the counters: edge-packets.py over IPv4 and over IPv6,
# aioice and edgeice bench.
run() {
  local mode=$1
  ip netns exec "$S" "$E" serve --listen 10.77.0.1:3478 --listen '[fd77::1]:3478' \
    --no-tcp --user u:p --realm r \
    --relay-ports 61000-65535 --allow-peer 10.77.0.0/24 --allow-peer fd77::/64 --private-relay-ok \
    --metrics 10.77.0.1:9100 --kernel-fast-path "$mode" >"$tmp/serve-$mode.log" 2>&1 &
  local server=$!
  pids+=("$server")
  for _ in $(seq 300); do
    grep -q "metrics on" "$tmp/serve-$mode.log" && break
    if ! kill -0 "$server" 2>/dev/null; then
      if grep -q "kernel refused" "$tmp/serve-$mode.log"; then
        echo "fast-path.sh: SKIP: $(grep -m1 "kernel refused" "$tmp/serve-$mode.log")" >&2
        exit 77
      fi
      echo "fast-path.sh: edgeice serve --kernel-fast-path $mode did not start:" >&2
      cat "$tmp/serve-$mode.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  local server_before server_after
  server_before=$(process_jiffies "$server")
  ip netns exec "$C" timeout 60 turnutils_uclient -n "$N" -m "$CLIENTS" -l 120 -z "$GAP" \
    -e 10.77.0.3 -r 3480 -u u -w p -X 10.77.0.1 >"$tmp/uclient-$mode.log" 2>&1
  server_after=$(process_jiffies "$server")
  echo $((server_after - server_before)) >"$tmp/server-$mode"
  # Edge cases on a bound channel (lab/edge-packets.py), from an IPv4
  # client, then from an IPv6 one (its relay and peer IPv4).
  counters "$mode-edge4"
  ip netns exec "$C" timeout 20 python3 "$lab/edge-packets.py" \
    10.77.0.1:3478 10.77.0.3:3480 u p r >"$tmp/edge4-$mode" 2>"$tmp/edge4-$mode.err"
  counters "$mode-edge6"
  ip netns exec "$C" timeout 20 python3 "$lab/edge-packets.py" \
    '[fd77::1]:3478' 10.77.0.3:3480 u p r >"$tmp/edge6-$mode" 2>"$tmp/edge6-$mode.err"
  counters "$mode-edge6r"
  # IPv6 throughout: the relayed address and the peer IPv6 too.
  ip netns exec "$C" timeout 20 python3 "$lab/edge-packets.py" \
    '[fd77::1]:3478' '[fd77::3]:3482' u p r >"$tmp/edge6r-$mode" 2>"$tmp/edge6r-$mode.err"
  counters "$mode-aioice"
  sort "$tmp/edge4-$mode" "$tmp/edge6-$mode" "$tmp/edge6r-$mode" >"$tmp/edge-$mode"
  # aioice's TURN client (lab/aioice-relay.py), A datagrams to the echo.
  ip netns exec "$C" timeout 30 "$PY" "$lab/aioice-relay.py" \
    10.77.0.1:3478 10.77.0.3:3480 u p "$A" >"$tmp/aioice-$mode" 2>"$tmp/aioice-$mode.err"
  counters "$mode-bench"
  # edgeice's own generator too, its echo peer built in, a fixed count.
  ip netns exec "$C" timeout 30 "$E" bench turn:10.77.0.1:3478 --user u --password p \
    --bind 10.77.0.2 --clients 4 --rate 250 --size 100 --duration 2 --json \
    >"$tmp/bench-$mode.json" 2>"$tmp/bench-$mode.err"
  counters "$mode-end"
  cut -d' ' -f3,4 "$tmp/counters-$mode-end" >"$tmp/kernel-$mode"
  kill "$server"; wait "$server" 2>/dev/null
  # SIGTERM: a clean stop, exit 0 (the programs detached, said in its log).
  echo $? >"$tmp/exit-$mode"
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d.get("sent", "?"), d.get("received", "?"))
' "$tmp/bench-$mode.json" >"$tmp/bench-$mode" 2>/dev/null || echo "? ?" >"$tmp/bench-$mode"
  local lost sent received
  lost=$(sed -n 's/.*Total lost packets \([0-9]*\).*/\1/p' "$tmp/uclient-$mode.log" | tail -1)
  sent=$(sed -n 's/.*tot_send_bytes ~ \([0-9]*\).*/\1/p' "$tmp/uclient-$mode.log" | tail -1)
  received=$(sed -n 's/.*tot_recv_bytes ~ \([0-9]*\).*/\1/p' "$tmp/uclient-$mode.log" | tail -1)
  echo "${lost:-?} ${sent:-?} ${received:-?} $(cat "$tmp/kernel-$mode")"
}

# tcx_count: how many tcx programs s0's ingress has (BPF_PROG_QUERY; the
# iproute2 of the day lists clsact filters, not tcx links).
tcx_count() {
  ip netns exec "$S" python3 -c '
import ctypes, os, platform, socket, struct, sys
nr = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
if nr is None:
    print("?"); sys.exit()
libc = ctypes.CDLL(None, use_errno=True)
BPF_PROG_QUERY, BPF_TCX_INGRESS = 16, 46
attr = ctypes.create_string_buffer(struct.pack("IIII", socket.if_nametoindex("s0"), BPF_TCX_INGRESS, 0, 0), 64)
if libc.syscall(nr, BPF_PROG_QUERY, attr, 64) != 0:
    print("0" if ctypes.get_errno() == 2 else "?"); sys.exit()
print(struct.unpack_from("I", attr, 24)[0])
'
}

# serve_in_background NAME: a server with the fast path on (no load),
# its log $tmp/tc/serve-NAME.log; returns once it has attached, its pid
# in $bg_server.
serve_in_background() {
  ip netns exec "$S" "$E" serve --listen 10.77.0.1:3478 --no-tcp --user u:p --realm r \
    --relay-ports 61000-65535 --allow-peer 10.77.0.0/24 --private-relay-ok \
    --kernel-fast-path on >"$tmp/tc/serve-$1.log" 2>&1 &
  local server=$!
  pids+=("$server")
  for _ in $(seq 300); do
    grep -q "kernel fast path on" "$tmp/tc/serve-$1.log" && break
    sleep 0.1
  done
  bg_server=$server
}

# tc_fallback: the server's veth already has an XDP program (pass.o, as
# another tool's would be), so edgeice must leave it be and relay through
# TC instead; the same load as `run on`, its files under $tmp/tc. Also:
# no TC program of edgeice's is left behind by a server killed with
# SIGKILL (or, with a clsact filter, that the next start removes it).
# Prints the hook in the log, "PROGRAM_BEFORE PROGRAM_AFTER" (s0's XDP
# program id), the tcx programs while running and after the SIGKILL, the
# clsact filters of edgeice's left then and after a restart, then run's
# line.
tc_fallback() {
  # The last server may still be on its way out (its caller returns once
  # it has printed): its XDP link goes with it.
  for _ in $(seq 300); do
    ip -n "$S" link show s0 | grep -q "prog/xdp" || break
    sleep 0.1
  done
  ip -n "$S" link set dev s0 xdpdrv obj "$tmp/pass.o" sec xdp || return 1
  local prog_before prog_after
  prog_before=$(ip -n "$S" link show s0 | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p')
  mkdir -p "$tmp/tc"
  (tmp=$tmp/tc; run on) >"$tmp/tc/run"
  prog_after=$(ip -n "$S" link show s0 | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p')
  # Killed, not stopped: the kernel must let go of the TC program anyway.
  local server running killed left restarted=-
  serve_in_background kill; server=$bg_server
  running=$(tcx_count)
  kill -KILL "$server"; wait "$server" 2>/dev/null
  sleep 0.5
  killed=$(tcx_count)
  left=$(tc -n "$S" filter show dev s0 ingress 2>/dev/null | grep -c "edgeice_relay_tc")
  if [ "$left" -gt 0 ]; then
    # A clsact filter (a kernel without tcx) outlives its process: the
    # next start must take it out before attaching its own.
    serve_in_background restart; server=$bg_server
    restarted=$(tc -n "$S" filter show dev s0 ingress 2>/dev/null | grep -c "edgeice_relay_tc")
    kill "$server"; wait "$server" 2>/dev/null
  fi
  ip -n "$S" link set dev s0 xdpdrv off
  echo "$(grep -m1 -o 'kernel on s0 ([a-z, ]*)' "$tmp/tc/serve-on.log" | sed 's/.*(\(.*\))/\1/;s/ /_/g')" \
    "${prog_before:-none}" "${prog_after:-none}" "$running" "$killed" "$left" "$restarted"
  cat "$tmp/tc/run"
}

# length_wrap: a link MTU of 64 KiB (too large for native XDP on a veth:
# edgeice takes TC), and from the peer three datagrams of 60000 bytes,
# then three of the largest IPv4 datagram, which with the ChannelData
# header would not fit in IPv4 (lab/edge-packets.py peer-64k): the kernel
# must pass the largest up (the sockets cannot send them either), not
# relay them with their length wrapped; the 60000-byte ones show that
# datagrams that large arrive whole and are relayed (TC itself leaves them
# to the sockets as things are: only the first ChannelData, which puts the
# channel in the kernel, is relayed there). Prints the hook, what the
# kernel relayed to the client, and the lengths the client got.
length_wrap() {
  ip -n "$C" link set dev c0 xdpdrv off
  ip -n "$S" link set dev s0 mtu 65535
  ip -n "$C" link set dev c0 mtu 65535
  mkdir -p "$tmp/wrap"
  ip netns exec "$S" "$E" serve --listen 10.77.0.1:3478 --no-tcp --user u:p --realm r \
    --relay-ports 61000-65535 --allow-peer 10.77.0.0/24 --private-relay-ok \
    --metrics 10.77.0.1:9100 --kernel-fast-path on >"$tmp/wrap/serve.log" 2>&1 &
  local server=$!
  pids+=("$server")
  for _ in $(seq 300); do
    grep -q "metrics on" "$tmp/wrap/serve.log" && break
    sleep 0.1
  done
  ip netns exec "$C" timeout 20 python3 "$lab/edge-packets.py" \
    10.77.0.1:3478 10.77.0.3:3480 u p r peer-64k >"$tmp/wrap/edge" 2>"$tmp/wrap/edge.err"
  counters wrap
  kill "$server"; wait "$server" 2>/dev/null
  ip -n "$S" link set dev s0 mtu 1500
  ip -n "$C" link set dev c0 mtu 1500
  ip -n "$C" link set dev c0 xdpdrv obj "$tmp/pass.o" sec xdp
  echo "$(grep -m1 -o 'kernel on s0 ([a-z, ]*)' "$tmp/wrap/serve.log" | sed 's/.*(\(.*\))/\1/;s/ /_/g')" \
    "$(cut -d' ' -f4 "$tmp/counters-wrap")" "$(cat "$tmp/wrap/edge")"
}

# limited NAME "SERVE ARGS" "BENCH ARGS": a fresh server given SERVE ARGS
# besides the usual ones, one edgeice bench run (100-byte payloads) given
# BENCH ARGS; prints "SENT RECEIVED RELAYED_BYTES DENIED OVER_BANDWIDTH
# KERNEL_TO_PEER": the bench's counts, then the server's metrics (payload
# bytes relayed both ways, packets refused for want of a permission,
# dropped over a bandwidth cap, relayed to peers by the kernel).
#
# Used twice. Permissions that lapse: the fast path on, permissions that
# last 2 s, and a bench that sends for 5 s without refreshing them — the
# kernel must stop at the lapse (its deadline), and the rest comes up to
# the server, which refuses it. A bandwidth cap of 20,000 bytes a second
# per allocation, one client offering 500 round trips a second (100,000
# bytes a second through the relay, both ways counted) for 4 s: with the
# fast path on the kernel relays on bytes lent from the cap, and what is
# over it comes up and is dropped by the server, as with it off.
limited() {
  local name=$1 serve_args=$2 bench_args=$3
  # shellcheck disable=SC2086 # the arguments are split on purpose
  ip netns exec "$S" "$E" serve --listen 10.77.0.1:3478 --no-tcp --user u:p --realm r \
    --relay-ports 61000-65535 --allow-peer 10.77.0.0/24 --private-relay-ok \
    --metrics 10.77.0.1:9100 $serve_args >"$tmp/serve-$name.log" 2>&1 &
  local server=$!
  for _ in $(seq 300); do
    grep -q "metrics on" "$tmp/serve-$name.log" && break
    sleep 0.1
  done
  # shellcheck disable=SC2086
  ip netns exec "$C" timeout 30 "$E" bench turn:10.77.0.1:3478 --user u --password p \
    --bind 10.77.0.2 --size 100 --json $bench_args \
    >"$tmp/bench-$name.json" 2>"$tmp/bench-$name.err"
  local result
  result=$(ip netns exec "$S" python3 -c '
import json, re, sys, urllib.request
body = urllib.request.urlopen("http://10.77.0.1:9100/metrics", timeout=5).read().decode()
def metric(name):
    m = re.search("^" + re.escape(name) + r" (\S+)$", body, re.M)
    return int(float(m.group(1))) if m else 0
d = json.load(open(sys.argv[1]))
relayed = sum(metric("edgeice_relayed_bytes_total{transport=\"udp\",direction=\"%s\"}" % w) for w in ("to_peer", "to_client"))
print(d.get("sent", 0), d.get("received", 0), relayed, metric("edgeice_permission_denied_total"),
      metric("edgeice_over_bandwidth_total"),
      metric("edgeice_kernel_relayed_packets_total{direction=\"to_peer\"}"))
' "$tmp/bench-$name.json" || echo "0 0 0 0 0 0")
  # Stopped before the result is printed: the caller reads it through a
  # process substitution and goes on at once.
  kill "$server"; wait "$server" 2>/dev/null
  echo "$result"
}

read -r off_lost off_sent off_received off_peer off_client < <(run off)
read -r off_bench_sent off_bench_received <"$tmp/bench-off"
read -r on_lost on_sent on_received on_peer on_client < <(run on)
read -r on_bench_sent on_bench_received <"$tmp/bench-on"
read -r lapse_sent lapse_received _ lapse_denied _ lapse_kernel < <(limited lapse \
  "--kernel-fast-path on --permission-lifetime 2" "--clients 2 --rate 100 --duration 5")
read -r cap_off_sent cap_off_received cap_off_bytes _ cap_off_over _ < <(limited capped-off \
  "--kernel-fast-path off --max-bytes-per-second 20000" "--clients 1 --rate 500 --duration 4")
read -r cap_on_sent cap_on_received cap_on_bytes _ cap_on_over cap_on_kernel < <(limited capped-on \
  "--kernel-fast-path on --max-bytes-per-second 20000" "--clients 1 --rate 500 --duration 4")
tc_hook=? tc_prog_before=none tc_prog_after=none tc_running=? tc_killed=? tc_filters=? tc_restarted=?
tc_lost=? tc_sent=? tc_received=? tc_peer=0 tc_client=0 tc_bench_sent=? tc_bench_received=?
tc_fallback >"$tmp/tc-fallback"
read -r wrap_hook wrap_kernel wrap_got < <(length_wrap)
{ read -r tc_hook tc_prog_before tc_prog_after tc_running tc_killed tc_filters tc_restarted
  read -r tc_lost tc_sent tc_received tc_peer tc_client; } <"$tmp/tc-fallback"
read -r tc_bench_sent tc_bench_received <"$tmp/tc/bench-on" 2>/dev/null
echo "permission lapse (2 s, 5 s of sending): $lapse_received of $lapse_sent echoed, $lapse_kernel to peers by XDP, $lapse_denied refused by the server"
echo "bandwidth cap (20,000 B/s, 100,000 B/s offered for 4 s): off $cap_off_bytes B relayed, $cap_off_over dropped, $cap_off_received of $cap_off_sent echoed; on $cap_on_bytes B relayed ($cap_on_kernel packets to the peer by the kernel), $cap_on_over dropped, $cap_on_received of $cap_on_sent echoed"
echo "edgeice bench: off $off_bench_received of $off_bench_sent echoed, on $on_bench_received of $on_bench_sent"
echo "uclient off: lost $off_lost, sent $off_sent B, received $off_received B"
echo "uclient on:  lost $on_lost, sent $on_sent B, received $on_received B"
echo "edge cases echoed back: off [$(paste -sd, "$tmp/edge-off")], on [$(paste -sd, "$tmp/edge-on")]"
# What each part had relayed (to peers, to clients; then by XDP), per mode.
for mode in off on; do
  delta "$mode-edge4" "$mode-edge6" >"$tmp/d-edge4-$mode"
  delta "$mode-edge6" "$mode-edge6r" >"$tmp/d-edge6-$mode"
  delta "$mode-edge6r" "$mode-aioice" >"$tmp/d-edge6r-$mode"
  delta "$mode-aioice" "$mode-bench" >"$tmp/d-aioice-$mode"
  delta "$mode-bench" "$mode-end" >"$tmp/d-bench-$mode"
done 2>/dev/null
read -r e4_peer e4_client e4_kpeer e4_kclient <"$tmp/d-edge4-on"
e4_rounds=$(sed -n 's/^rounds //p' "$tmp/edge4-on.err")
read -r e6_off_peer e6_off_client _ _ <"$tmp/d-edge6-off"
read -r e6_peer e6_client e6_kpeer e6_kclient <"$tmp/d-edge6-on"
echo "edge cases, IPv4 client, on: relayed $e4_peer/$e4_client, by XDP $e4_kpeer/$e4_kclient (frames sent ${e4_rounds:-?} times)"
echo "edge cases, IPv6 client: relayed off $e6_off_peer/$e6_off_client, on $e6_peer/$e6_client, by XDP $e6_kpeer/$e6_kclient"
read -r e6r_off_peer e6r_off_client _ _ <"$tmp/d-edge6r-off"
read -r e6r_peer e6r_client e6r_kpeer e6r_kclient <"$tmp/d-edge6r-on"
(tmp=$tmp/tc; delta on-edge6r on-aioice) >"$tmp/tc/d-edge6r" 2>/dev/null
read -r _ _ tc6_kpeer tc6_kclient <"$tmp/tc/d-edge6r"
echo "edge cases, IPv6 throughout: relayed off $e6r_off_peer/$e6r_off_client, on $e6r_peer/$e6r_client, by XDP $e6r_kpeer/$e6r_kclient, by TC (fallback) ${tc6_kpeer:-?}/${tc6_kclient:-?}; echoed on [$(paste -sd, "$tmp/edge6r-on")]"
read -r _ off_aioice_n _ off_aioice_sum <"$tmp/aioice-off"
read -r _ on_aioice_n _ on_aioice_sum <"$tmp/aioice-on"
read -r off_aioice_peer off_aioice_client _ _ <"$tmp/d-aioice-off"
read -r on_aioice_peer on_aioice_client on_aioice_kpeer on_aioice_kclient <"$tmp/d-aioice-on"
echo "aioice: off $off_aioice_n of $A echoed (sha256 ${off_aioice_sum:0:16}), on $on_aioice_n (sha256 ${on_aioice_sum:0:16}); on, relayed $on_aioice_peer/$on_aioice_client, by XDP $on_aioice_kpeer/$on_aioice_kclient"
read -r off_bench_peer off_bench_client off_bench_kpeer off_bench_kclient <"$tmp/d-bench-off"
read -r on_bench_peer on_bench_client on_bench_kpeer on_bench_kclient <"$tmp/d-bench-on"
echo "edgeice bench relayed (to peers/to clients): off $off_bench_peer/$off_bench_client, on $on_bench_peer/$on_bench_client = XDP $on_bench_kpeer/$on_bench_kclient + sockets $((on_bench_peer - on_bench_kpeer))/$((on_bench_client - on_bench_kclient))"
echo "relayed by XDP (all of a run, to peers/to clients): off $off_peer/$off_client, on $on_peer/$on_client packets"
ticks=$(getconf CLK_TCK)
for mode in off on; do
  awk -v b="$(cat "$tmp/server-$mode")" -v t="$ticks" -v n="$((on_sent / 120 * 2))" -v m="$mode" \
    'BEGIN { printf "cpu %s: %.2f us per relayed datagram (edgeice serve process alone)\n", m, b / t / n * 1e6 }'
done
grep -m1 "kernel fast path" "$tmp/serve-on.log" | sed 's/\x1b\[[0-9;]*m//g'
echo "near 64 KiB from the peer (64 KiB MTU; 3 of 60000 bytes, 3 of 65507): hook ${wrap_hook:-?}, relayed by the kernel ${wrap_kernel:-?}, the client got lengths [${wrap_got:-}]"
echo "TC fallback (s0 already had an XDP program, id $tc_prog_before, after: $tc_prog_after): hook ${tc_hook:-?}; uclient lost ${tc_lost:-?}, sent ${tc_sent:-?} B, received ${tc_received:-?} B; bench ${tc_bench_received:-?} of ${tc_bench_sent:-?} echoed; edge cases [$(paste -sd, "$tmp/tc/edge-on" 2>/dev/null)]; relayed by TC ${tc_peer:-?}/${tc_client:-?} packets; tcx programs on s0 while serving ${tc_running:-?}, after SIGKILL ${tc_killed:-?}; clsact filters left ${tc_filters:-?}, after a restart ${tc_restarted:-?}"

# Messages sent: uclient's (120 bytes each), aioice's and the bench's.
total=$((on_sent / 120 + A + ${on_bench_sent/\?/0}))
ok=1
check() { if ! eval "$2"; then echo "FAIL: $1" >&2; ok=0; fi; }
check "no loss with the fast path off" '[ "$off_lost" = 0 ]'
check "no loss with the fast path on" '[ "$on_lost" = 0 ]'
check "the same bytes both ways" '[ "$off_sent" = "$on_sent" ] && [ "$off_received" = "$on_received" ] && [ "$on_sent" = "$on_received" ]'
check "edgeice bench loses nothing either way" '[ "$off_bench_sent" = "$off_bench_received" ] && [ "$on_bench_sent" = "$on_bench_received" ] && [ "$on_bench_sent" != "?" ]'
check "after the permission lapsed, nothing more was relayed, by XDP or not" '[ "$lapse_sent" -gt 0 ] && [ "$lapse_received" -lt "$lapse_sent" ] && [ "$lapse_kernel" -lt "$lapse_sent" ]'
check "what the kernel let go came up to the server and was refused" '[ "$lapse_denied" -gt 0 ]'
check "the kernel stopped at the permission's lapse, not a sweep later (at most 2 s of 200 packets/s echoed)" '[ "$lapse_received" -le 420 ]'
# The cap lets one second's worth through at once, then 20,000 bytes a
# second: at most 6 s' worth over 4 s, with a second to spare for the
# loans, which are made once a second.
check "the cap holds with the fast path off" '[ "$cap_off_bytes" -gt 0 ] && [ "$cap_off_bytes" -le 120000 ] && [ "$cap_off_over" -gt 0 ]'
check "the cap holds with the fast path on" '[ "$cap_on_bytes" -gt 0 ] && [ "$cap_on_bytes" -le 120000 ] && [ "$cap_on_over" -gt 0 ]'
check "a capped allocation is relayed by the kernel, on bytes lent from its cap" '[ "$cap_on_kernel" -gt 0 ]'
check "edge-case ChannelData treated the same either way ($(paste -sd, "$tmp/edge-on"))" 'cmp -s "$tmp/edge-off" "$tmp/edge-on" && grep -qx exact "$tmp/edge-on"'
check "fragmented ChannelData and an IPv6 client relayed and echoed" 'grep -qx fragmented "$tmp/edge-on" && grep -qx "ipv6 exact" "$tmp/edge-on" && grep -qx "ipv6 fragmented" "$tmp/edge-on"'
# Per round: exact, pad, fragmented, near-64k and raw-csum to the peer,
# their echoes back, and raw-peer from the peer. Of these XDP may relay
# only exact and raw-csum (and the echoes of exact, pad and raw-csum, and
# raw-peer: plain datagrams from the peer): the padded frame and every
# fragment go up, and so do the datagrams with a wrong checksum, which
# the stack drops.
check "fragments, padding and wrong checksums left to the sockets (XDP $e4_kpeer/$e4_kclient, ${e4_rounds:-?} rounds)" '[ "$e4_peer" -eq $((5 * e4_rounds)) ] && [ "$e4_kpeer" -le $((2 * e4_rounds)) ] && [ "$e4_kclient" -le $((4 * e4_rounds)) ]'
check "no datagram with a wrong UDP checksum relayed, fast path off or on" '! grep -q bad "$tmp/edge-off" "$tmp/edge-on" && grep -qx raw-csum "$tmp/edge-on" && grep -qx raw-peer "$tmp/edge-on"'
check "IPv6 throughout: every well-formed kind echoed, none with a wrong checksum" 'for k in first exact big fragmented raw-csum raw-peer; do grep -qx "ipv6-relay $k" "$tmp/edge6r-on" || exit 1; done; ! grep -q bad "$tmp/edge6r-on"'
check "IPv6 throughout relayed by XDP both ways ($e6r_kpeer/$e6r_kclient)" '[ "${e6r_kpeer:-0}" -gt 0 ] && [ "${e6r_kclient:-0}" -gt 0 ]'
check "IPv6 throughout relayed by TC both ways in the fallback (${tc6_kpeer:-?}/${tc6_kclient:-?})" '[ "${tc6_kpeer:-0}" -gt 0 ] && [ "${tc6_kclient:-0}" -gt 0 ]'
check "an IPv6 client relayed by the sockets alone" '[ "$e6_peer" -gt 0 ] && [ "$e6_client" -gt 0 ] && [ "$e6_kpeer" = 0 ] && [ "$e6_kclient" = 0 ] && [ "$e6_peer" = "$e6_off_peer" ]'
check "aioice gets every datagram back, the same either way" '[ "$off_aioice_n" = "$A" ] && [ "$off_aioice_sum" = "$on_aioice_sum" ] && [ "$on_aioice_n" = "$A" ]'
check "aioice: each datagram relayed once each way" '[ "$off_aioice_peer/$off_aioice_client" = "$A/$A" ] && [ "$on_aioice_peer/$on_aioice_client" = "$A/$A" ]'
check "aioice: nearly all in the kernel ($on_aioice_kpeer/$on_aioice_kclient of $A)" '[ "$on_aioice_kpeer" -ge $((A * 9 / 10)) ] && [ "$on_aioice_kclient" -ge $((A * 9 / 10)) ]'
check "the server relayed exactly what edgeice bench sent, XDP and sockets together" '[ "$off_bench_peer" = "$off_bench_sent" ] && [ "$off_bench_client" = "$off_bench_received" ] && [ "$on_bench_peer" = "$on_bench_sent" ] && [ "$on_bench_client" = "$on_bench_received" ]'
check "the forwarding the fast path needs is warned about at start" 'grep -q "IPv4 forwarding is on for s0.*FORWARD policy" "$tmp/serve-on.log"'
# The session-end records (written at SIGTERM) count what each session's
# kernel routes relayed too: the sockets alone carry a tenth at most.
session_packets() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" | grep 'event="session-end"' \
    | sed -n 's/.* packets_to_peer=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}
on_records=$(session_packets "$tmp/serve-on.log")
off_records=$(session_packets "$tmp/serve-off.log")
echo "session-end records, packets to peers: off $off_records, on $on_records (XDP relayed $on_peer of them)"
check "session records count the kernel's packets too (on $on_records, off $off_records, XDP $on_peer)" '[ "$on_peer" -gt 0 ] && [ "$on_records" -ge "$on_peer" ] && [ "$off_records" -gt 0 ]'
check "SIGTERM stops the server with exit 0, the kernel program detached first" '[ "$(cat "$tmp/exit-on")" = 0 ] && [ "$(cat "$tmp/exit-off")" = 0 ] && grep -q "kernel fast path removed from s0" "$tmp/serve-on.log" && grep -q "SIGTERM: stopped" "$tmp/serve-on.log"'
check "nothing in the kernel when off" '[ "$off_peer" = 0 ] && [ "$off_client" = 0 ]'
check "nearly all to peers in the kernel ($on_peer of $total)" '[ "$on_peer" -ge $((total * 9 / 10)) ]'
check "nearly all to clients in the kernel ($on_client of $total)" '[ "$on_client" -ge $((total * 9 / 10)) ]'
# The TC fallback: the same load, the same results, through TC.
tc_total=$((${tc_sent:-0} / 120 + ${tc_bench_sent/\?/0}))
check "TC, not XDP, where s0 already had an XDP program (hook ${tc_hook:-none})" '[ "${tc_hook:-}" = tc ] || [ "${tc_hook:-}" = tc,_clsact_filter ]'
check "the other XDP program left in place" '[ "$tc_prog_before" != none ] && [ "$tc_prog_before" = "$tc_prog_after" ]'
check "no loss through TC, the same bytes as off" '[ "$tc_lost" = 0 ] && [ "$tc_sent" = "$off_sent" ] && [ "$tc_received" = "$off_received" ]'
check "edgeice bench loses nothing through TC" '[ "${tc_bench_sent:-?}" = "${tc_bench_received:-}" ] && [ "${tc_bench_sent:-?}" != "?" ]'
check "edge-case ChannelData treated the same through TC ($(paste -sd, "$tmp/tc/edge-on" 2>/dev/null))" 'cmp -s "$tmp/edge-off" "$tmp/tc/edge-on"'
check "nearly all to peers through TC ($tc_peer of $tc_total)" '[ "${tc_peer:-0}" -ge $((tc_total * 9 / 10)) ] && [ "$tc_total" -gt 0 ]'
check "nearly all to clients through TC ($tc_client of $tc_total)" '[ "${tc_client:-0}" -ge $((tc_total * 9 / 10)) ] && [ "$tc_total" -gt 0 ]'
check "near 64 KiB through TC: 60000 bytes relayed, what would not fit with the ChannelData header not relayed by the kernel (hook ${wrap_hook:-?}, kernel ${wrap_kernel:-?}, client [${wrap_got:-}])" '{ [ "${wrap_hook:-}" = tc ] || [ "${wrap_hook:-}" = tc,_clsact_filter ]; } && [ "${wrap_kernel:-9}" -le 1 ] && [ "${wrap_got:-}" = "9 60004" ]'
# A tcx link goes with the process; a clsact filter (kernels before 6.6)
# stays until the next start removes it, as README.md says.
if [ "${tc_hook:-}" = tc ]; then
  check "a SIGKILLed server leaves no TC program (tcx: $tc_running while serving, $tc_killed after)" '[ "$tc_running" = 1 ] && [ "$tc_killed" = 0 ] && [ "$tc_filters" = 0 ]'
else
  check "the filter a SIGKILLed server left is replaced at the next start ($tc_filters left, $tc_restarted after)" '[ "$tc_restarted" = 1 ]'
fi
[ "$ok" = 1 ] && echo "== fast path: behaved as expected" && exit 0
for f in "$tmp"/uclient-*.log "$tmp"/edge*.err "$tmp"/aioice-*.err "$tmp"/serve-capped-*.log "$tmp"/bench-capped-*.err "$tmp"/tc/uclient-*.log "$tmp"/tc/serve-*.log; do echo "--- $f"; tail -5 "$f"; done >&2
exit 1
