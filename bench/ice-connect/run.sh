#!/usr/bin/env bash
# Time from both descriptions known to connected, on loopback: edgeice's
# agent, aioice and libnice, each against itself, ROUNDS rounds each, in
# one run — host candidates only, then relayed candidates only through a
# local `edgeice serve`. Then edgeice's set-up time (from the agents'
# creation, trickled) with a live STUN server, and with a dead one listed
# first. Prints median, min and max in milliseconds.
#
#   bench/ice-connect/run.sh [ROUNDS]
#
# Needs what scripts/test.sh installs (.venv with aioice; python3-gi with
# libnice for /usr/bin/python3). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-50}
cargo build --quiet --release -p edgeice -p edgeice-ice --example loopback_connect
cargo build --quiet --release -p edgeice
tmp=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

summarize() {
  sort -n | awk -v name="$1" '{ v[NR] = $1 }
    END { printf "  %-30s median %7.2f ms   min %7.2f   max %7.2f   (%d rounds)\n", name, v[int((NR + 1) / 2)], v[1], v[NR], NR }'
}
aioice="aioice $(.venv/bin/python -c 'import aioice; print(aioice.__version__)')"
libnice="libnice $(dpkg-query -W -f='${Version}' libnice10 2>/dev/null || echo '?')"

target/release/edgeice serve --listen 127.0.0.1:0 --no-tcp --user u:p --realm bench \
  --relay-ports 61000-65535 --allow-peer 127.0.0.0/8 --private-relay-ok >"$tmp/serve.out" 2>&1 &
server=$!
for _ in $(seq 50); do grep -q "listening on udp" "$tmp/serve.out" && break; sleep 0.1; done
turn=$(sed -n 's/^edgeice: listening on udp \([^ ]*\).*/\1/p' "$tmp/serve.out" | head -1)
[ -n "$turn" ] || { echo "edgeice serve did not start:" >&2; cat "$tmp/serve.out" >&2; exit 1; }

echo "host candidates only, loopback (from both descriptions known to connected):"
target/release/examples/loopback_connect "$rounds" | summarize "edgeice (Ta 20 ms)"
.venv/bin/python bench/ice-connect/aioice_connect.py "$rounds" | summarize "$aioice"
/usr/bin/python3 bench/ice-connect/libnice_connect.py "$rounds" | summarize "$libnice"

echo "relayed candidates only, through edgeice serve at $turn:"
target/release/examples/loopback_connect "$rounds" --turn "$turn" u p | summarize "edgeice"
.venv/bin/python bench/ice-connect/aioice_connect.py "$rounds" "$turn" u p | summarize "$aioice"
/usr/bin/python3 bench/ice-connect/libnice_connect.py "$rounds" "$turn" u p | summarize "$libnice"

echo "edgeice set-up, trickled, from the agents' creation to connected:"
target/release/examples/loopback_connect "$rounds" --trickle --stun "$turn" | summarize "live STUN server"
target/release/examples/loopback_connect "$rounds" --trickle --stun 127.0.0.1:9 --stun "$turn" | summarize "dead STUN server listed first"
