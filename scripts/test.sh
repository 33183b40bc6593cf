#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine, then runs
# them all. Safe to run again: it installs only what is missing.
#
#   Debian packages: coturn (turnutils_stunclient, turnutils_uclient and
#                    turnutils_peer, the third-party clients the interop tests
#                    run against); openssl (test certificates); iproute2 and
#                    nftables (network namespaces with NAT); libnice10,
#                    gir1.2-nice-0.1 and
#                    python3-gi (libnice agents, run with /usr/bin/python3);
#                    chromium (/usr/bin/chromium, WebRTC in a headless page);
#                    clang and libbpf-dev (crates/fastpath's test rebuilds the
#                    committed XDP/TC object and compares the bytes; the lab
#                    compiles a pass-through XDP program);
#                    ethtool (lab/fast-path.sh turns veth offloads off);
#                    python3-venv (the .venv below; a bare Debian lacks it);
#                    curl (scrapes the metrics endpoint in tests/metrics.rs)
#                    redis-server and redis-tools (lab/fleet.sh's shared
#                    state: its own instance in a namespace)
#                    systemd (systemd-analyze verifies packaging/edgeice.service)
#                    man-db and lintian (packaging/test-deb.sh looks the pages
#                    up and checks the .deb)
#                    tcpdump, tshark and python3-scapy (edgeice analyze's capture
#                    tests: real traffic captured in namespaces, read by tshark too)
#   cargo:           cargo-deb (packaging/build-deb.sh), into ~/.cargo/bin
#   Python:          a virtual environment in .venv from requirements-test.txt
#                    (third-party peers such as aioice, as tests come to need them)
#   npm:             node_modules from package-lock.json (playwright-core, which
#                    drives Debian's chromium and never downloads a browser)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(coturn openssl iproute2 nftables libnice10 gir1.2-nice-0.1 python3-gi chromium clang libbpf-dev
  ethtool python3-venv curl bsdutils systemd man-db lintian tcpdump tshark python3-scapy redis-server redis-tools)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test.sh: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  # The coturn package must not start a system TURN server under the tests
  # (it would hold port 3478): policy-rc.d forbids starting services while
  # installing (RUNLEVEL=1 does it where there is no systemd).
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    guard=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$guard" >/dev/null
    $sudo chmod 755 "$guard"
  fi
  status=0
  $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
  [ -z "$guard" ] || $sudo rm -f "$guard"
  [ "$status" -eq 0 ] || exit "$status"
  # Nor at the next boot.
  if [[ " ${missing[*]} " == *" coturn "* ]] && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now coturn.service >/dev/null 2>&1 || true
  fi
  # Nor a system Redis (the tests and the fleet lab start their own).
  if [[ " ${missing[*]} " == *" redis-server "* ]] && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now redis-server.service >/dev/null 2>&1 || true
  fi
fi

# Every tool a test or lab script calls, present now (a fresh machine lacked
# ethtool once, and the lab failed half way through the run).
for tool in ethtool tc ip nft openssl turnutils_uclient turnutils_peer turnutils_stunclient \
  chromium clang python3 timeout unshare pgrep sysctl curl script systemd-analyze man lintian dpkg-deb setpriv \
  gzip tcpdump tshark redis-server redis-cli ss; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is missing after the installs" >&2; exit 1; }
done

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt

if ! command -v npm >/dev/null; then
  echo "test.sh: npm (with Node.js 20 or later) is needed for playwright-core" >&2
  exit 1
fi
# npm ci only when node_modules is missing or older than the lock file.
if [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# coturn 4.17.1, the newest release, built from the anchor beside the
# repository (once: kept in ~/.cache): the tests drive servers with its
# turnutils_uclient and the hardening suite runs its turnserver beside
# edgeice. Without the anchor, Debian's 4.6.1 tools stand in.
anchors=../shared/anchors
if [ -f "$anchors/build-coturn.sh" ]; then
  COTURN_BIN=$(bash "$anchors/build-coturn.sh" | tail -1)
  export COTURN_BIN
else
  echo "test.sh: $anchors/build-coturn.sh is missing: the tests use Debian's coturn 4.6.1 tools" >&2
fi

# cargo-deb builds the .deb (a few minutes, once: kept in ~/.cargo/bin).
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install cargo-deb --locked --version 3.8.0
fi

# The .deb built, installed with dpkg, run and purged (root: dpkg -i).
if [ "$(id -u)" -eq 0 ]; then
  packaging/test-deb.sh
else
  echo "test.sh: packaging/test-deb.sh skipped: it installs a package, run as root"
fi

# The kernel fast path is in every build. clang is installed now, so the
# check that the committed BPF object is what relay.c compiles to must run,
# not skip.
EDGEICE_BPF_CHECK=required cargo test --workspace --locked "$@"
