#!/usr/bin/env bash
# Builds relay.bpf.o from relay.c with the clang and the flags that
# relay.bpf.toolchain pins, so that anyone with that clang gets the same
# bytes as the committed object (crates/fastpath/tests/committed_object.rs
# rebuilds it and compares; scripts/test.sh and CI run that test).
#
#   crates/fastpath/ebpf/build.sh [OUT]   (OUT: default relay.bpf.o here)
#
# Needs Debian's clang and libbpf-dev (the <bpf/*.h> headers); CLANG names
# another clang binary. Exits 3 when clang is not the pinned version: its
# object would differ, and the committed one would stop matching.
# Reproducible: run from this directory with a relative source name, and
# -fdebug-compilation-dir=. so that no path of the machine that built it
# is in the debug information, which the BTF the loader needs comes with;
# clang writes no timestamp.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "${1:-$here/relay.bpf.o}")
clang=${CLANG:-clang}
pinned=$(sed -n 's/^clang: //p' "$here/relay.bpf.toolchain")
read -r -a flags <<<"$(sed -n 's/^flags: //p' "$here/relay.bpf.toolchain")"
found=$("$clang" --version | head -1)
if [ "$found" != "$pinned" ]; then
  echo "build.sh: $clang is \"$found\"; relay.bpf.o is pinned to \"$pinned\" (relay.bpf.toolchain)" >&2
  exit 3
fi
# <asm/types.h> is under the multiarch directory on Debian; no path of it
# ends up in the object.
cd "$here"
"$clang" "${flags[@]}" -I"/usr/include/$(uname -m)-linux-gnu" -c relay.c -o "$out"
