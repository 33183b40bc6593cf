#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine, then runs
# them all. Safe to run again: it installs only what is missing.
#
#   Debian packages: coturn (turnutils_stunclient, the third-party client the
#                    interop tests run against)
#   Python:          a virtual environment in .venv from requirements-test.txt
#                    (third-party peers such as aioice, as tests come to need them)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(coturn)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test.sh: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  # The coturn package must not start a system TURN server under the tests.
  $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt

cargo test --workspace --locked "$@"
