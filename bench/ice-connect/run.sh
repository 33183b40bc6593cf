#!/usr/bin/env bash
# Time from both descriptions known to connected, host-only on loopback:
# edgeice's agent, aioice and libnice, each against itself, ROUNDS rounds
# each, in one run. Prints median, min and max in milliseconds.
#
#   bench/ice-connect/run.sh [ROUNDS]
#
# Needs what scripts/test.sh installs (.venv with aioice; python3-gi with
# libnice for /usr/bin/python3). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-50}
cargo build --quiet --release -p edgeice-ice --example loopback_connect

summarize() {
  sort -n | awk -v name="$1" '{ v[NR] = $1 }
    END { printf "%-22s median %7.2f ms   min %7.2f   max %7.2f   (%d rounds)\n", name, v[int((NR + 1) / 2)], v[1], v[NR], NR }'
}

target/release/examples/loopback_connect "$rounds" | summarize "edgeice (Ta 20 ms)"
.venv/bin/python bench/ice-connect/aioice_connect.py "$rounds" | summarize "aioice $(.venv/bin/python -c 'import aioice; print(aioice.__version__)')"
/usr/bin/python3 bench/ice-connect/libnice_connect.py "$rounds" | summarize "libnice $(dpkg-query -W -f='${Version}' libnice10 2>/dev/null || echo '?')"
