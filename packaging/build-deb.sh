#!/usr/bin/env bash
# Builds target/debian/edgeice_VERSION_ARCH.deb with cargo-deb: the binary
# in the dist profile (Cargo.toml: fat LTO, one codegen unit, stripped)
# (the kernel fast path included: its BPF object is committed), its
# manual pages and shell completions (made by the binary itself, from its
# own flags), then the package. Prints the .deb's path last.
#
#   packaging/build-deb.sh            cargo-deb must be installed:
#                                     cargo install cargo-deb --locked
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || {
  echo "build-deb.sh: cargo-deb is missing: cargo install cargo-deb --locked" >&2
  exit 1
}
target="${CARGO_TARGET_DIR:-target}"
cargo build --locked --profile dist -p edgeice
assets="$target/dist/assets"
rm -rf "$assets"
"$target/dist/edgeice" assets "$assets" >/dev/null
# Debian's policy: manual pages compressed (cargo-deb leaves files from
# the target directory as they are).
gzip -9n "$assets"/man/*.1
cargo deb --locked -p edgeice --no-build --output "$target/debian/" 2>&1 | sed -n '$p'
