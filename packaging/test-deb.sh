#!/usr/bin/env bash
# The .deb as an operator meets it: built (packaging/build-deb.sh, or the
# one given), inspected (dpkg-deb; lintian when installed), installed with
# dpkg -i, checked (the binary, the man pages, the completions, the unit
# through systemd-analyze verify, the edgeice user, the store's directory,
# the settings' permissions), the installed server run as the edgeice user
# with the installed settings on loopback ports (a Binding and an Allocate
# with the first user it makes), then removed and purged, leaving nothing.
# Needs root. Traffic goes to 127.0.0.1 only.
#
#   packaging/test-deb.sh [PACKAGE.deb]
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-deb.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' edgeice 2>/dev/null | grep -q "ok installed"; then
  fail "a package edgeice is installed on this machine already; not touching it"
fi

deb="${1:-}"
if [ -z "$deb" ]; then
  deb="$(packaging/build-deb.sh | tail -n 1)"
fi
[ -f "$deb" ] || fail "no package at '$deb'"
echo "test-deb.sh: $deb ($(du -k "$deb" | cut -f1) KiB)"

scratch="$(mktemp -d)"
server=""
# Settings or a store already here (`edgeice serve` run as root keeps its
# users in /var/lib/edgeice/users.db) are set aside, and put back at the end.
saved=()
for dir in /etc/edgeice /var/lib/edgeice; do
  if [ -e "$dir" ]; then
    mv "$dir" "$scratch/saved-${dir//\//-}"
    saved+=("$dir")
  fi
done
cleanup() {
  [ -z "$server" ] || kill "$server" 2>/dev/null || true
  dpkg --purge edgeice >/dev/null 2>&1 || true
  for dir in "${saved[@]}"; do
    rm -rf "$dir"
    mv "$scratch/saved-${dir//\//-}" "$dir"
  done
  rm -rf "$scratch"
}
trap cleanup EXIT

# What is in it.
contents="$(dpkg-deb -c "$deb" | awk '{print $6}')"
for path in ./usr/bin/edgeice ./usr/lib/systemd/system/edgeice.service ./etc/edgeice/edgeice.toml \
  ./usr/share/edgeice/socket-path-only.conf ./usr/lib/sysusers.d/edgeice.conf \
  ./usr/share/man/man1/edgeice.1.gz ./usr/share/man/man1/edgeice-serve.1.gz \
  ./usr/share/man/man1/edgeice-credentials.1.gz \
  ./usr/share/bash-completion/completions/edgeice ./usr/share/zsh/vendor-completions/_edgeice \
  ./usr/share/fish/vendor_completions.d/edgeice.fish ./usr/share/doc/edgeice/copyright; do
  grep -qxF "$path" <<<"$contents" || fail "$path is not in the package:
$contents"
done
dpkg-deb -e "$deb" "$scratch/control"
grep -qxF /etc/edgeice/edgeice.toml "$scratch/control/conffiles" || fail "the settings are not a conffile"
grep -q deb-systemd-helper "$scratch/control/postinst" || fail "postinst does not register the unit"
[ "$(dpkg-deb -f "$deb" Package)" = edgeice ] || fail "Package is not edgeice"
if command -v lintian >/dev/null; then
  # Errors and warnings fail (informational tags do not).
  lintian --tag-display-limit 0 "$deb" 2>/dev/null | tee "$scratch/lintian" || true
  ! grep -q '^[EW]:' "$scratch/lintian" || fail "lintian found errors or warnings"
fi

# Installed as on a fresh machine.
dpkg -i "$deb" >/dev/null
version="$(dpkg-deb -f "$deb" Version)"
[ "$(edgeice --version)" = "edgeice ${version%%-*}" ] || fail "edgeice --version: $(edgeice --version)"
[ "$(command -v edgeice)" = /usr/bin/edgeice ] || fail "edgeice is not /usr/bin/edgeice"
man -w edgeice >/dev/null || fail "man -w edgeice finds no page"
man -w edgeice-serve >/dev/null || fail "man -w edgeice-serve finds no page"
zcat /usr/share/man/man1/edgeice-serve.1.gz | grep -q 'relay\\-ports' || fail "the serve page lacks --relay-ports"
bash -c 'source /usr/share/bash-completion/completions/edgeice && complete -p edgeice' >/dev/null ||
  fail "the bash completion does not load"
getent passwd edgeice >/dev/null || fail "no edgeice user"
[ "$(stat -c %U:%G:%a /var/lib/edgeice)" = edgeice:edgeice:750 ] ||
  fail "/var/lib/edgeice is $(stat -c %U:%G:%a /var/lib/edgeice)"
[ "$(stat -c %U:%G:%a /etc/edgeice/edgeice.toml)" = root:edgeice:640 ] ||
  fail "/etc/edgeice/edgeice.toml is $(stat -c %U:%G:%a /etc/edgeice/edgeice.toml)"
# Installed, not enabled: relay-ip must be set first.
[ ! -e /etc/systemd/system/multi-user.target.wants/edgeice.service ] || fail "the unit was enabled"
verify="$(systemd-analyze verify /usr/lib/systemd/system/edgeice.service 2>&1)" ||
  fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify warns: $verify"

# The installed server, as the service would run it (its user, its
# settings), on loopback ports.
free_port() {
  python3 -c 'import socket
for _ in range(100):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", port)); print(port); break
    except OSError:
        pass'
}
port="$(free_port)"
metrics="$(free_port)"
setpriv --reuid=edgeice --regid=edgeice --init-groups /usr/bin/edgeice serve --config /etc/edgeice/edgeice.toml \
  --listen "127.0.0.1:$port" --metrics "127.0.0.1:$metrics" --relay-ports 61000-65535 \
  >"$scratch/out" 2>"$scratch/err" &
server=$!
for _ in $(seq 100); do
  grep -q "metrics on" "$scratch/out" && break
  kill -0 "$server" 2>/dev/null || fail "the installed server stopped: $(cat "$scratch/err")"
  sleep 0.1
done
grep -q "listening on udp 127.0.0.1:$port" "$scratch/out" || fail "not listening: $(cat "$scratch/out" "$scratch/err")"
# Not a terminal: the first user's password is in a 0600 file beside the
# store, never in the output or the log.
first=/var/lib/edgeice/users.db.first-password
for _ in $(seq 50); do [ -s "$first" ] && break; sleep 0.1; done
[ -s "$first" ] || fail "no first user was made: $(cat "$scratch/out" "$scratch/err")"
[ "$(stat -c '%a %U' "$first")" = "600 edgeice" ] || fail "$first is $(stat -c '%a %U' "$first"), not 600 edgeice"
password="$(cat "$first")"
grep -qF "$password" "$scratch/out" "$scratch/err" && fail "the first password is in the server's output"
[ "$(stat -c %U /var/lib/edgeice/users.db)" = edgeice ] || fail "the store is not the edgeice user's"
timeout 30 edgeice probe "stun:127.0.0.1:$port" --timeout 2 >/dev/null || fail "no Binding answer"
timeout 30 edgeice probe "turn:127.0.0.1:$port" --user edgeice --password "$password" --timeout 2 \
  >"$scratch/probe" 2>&1 || fail "no Allocate with the first user: $(cat "$scratch/probe")"
kill -TERM "$server"
status=0
wait "$server" || status=$?
server=""
[ "$status" -eq 0 ] || fail "the installed server exited with $status on SIGTERM"

# Removed: the program goes, the settings and the store stay; purged:
# nothing stays.
dpkg -r edgeice >/dev/null
[ ! -e /usr/bin/edgeice ] || fail "dpkg -r left /usr/bin/edgeice"
[ ! -e /usr/lib/systemd/system/edgeice.service ] || fail "dpkg -r left the unit"
[ -e /etc/edgeice/edgeice.toml ] || fail "dpkg -r removed the settings (a conffile)"
dpkg --purge edgeice >/dev/null
for path in /etc/edgeice /var/lib/edgeice /usr/share/man/man1/edgeice.1.gz \
  /usr/share/bash-completion/completions/edgeice; do
  [ ! -e "$path" ] || fail "dpkg --purge left $path"
done
! dpkg-statoverride --list /etc/edgeice/edgeice.toml >/dev/null || fail "purge left the statoverride"
echo "test-deb.sh: the package installed, served and was removed cleanly"
