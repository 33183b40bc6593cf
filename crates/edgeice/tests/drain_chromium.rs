//! Chromium follows a draining edge's 300 Try Alternate: two edges on
//! loopback, a coturn `turnutils_uclient` call holding allocations on the
//! first, SIGUSR1 to the first, then two RTCPeerConnections in headless
//! Chromium given only the first edge as TURN server: their relay
//! candidates come from the second (libwebrtc's TurnPort handles
//! TRY_ALTERNATE), and the data channel opens through it. Everything runs
//! in a fresh `unshare --net` namespace (the single machine version of the
//! fleet lab's case). libwebrtc refuses a redirect to a loopback address
//! (Chromium bug 649118), so the second edge listens on 10.99.0.2, an
//! address added to that namespace's `lo`, reaching nothing outside it. Needs root, node, Debian's chromium and playwright-core,
//! and coturn 4.17.1's tools: what `scripts/test.sh` installs.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/chromium_relay.mjs"
);
/// The script bounds each of its own waits; this is the last resort.
const TIMEOUT: Duration = Duration::from_secs(180);

/// The edges' relay ports: the second's tell its relay candidates apart.
const FIRST_PORTS: (u16, u16) = (61000, 62999);
const SECOND_PORTS: (u16, u16) = (63000, 65535);

/// Inside the namespace. Arguments: $1 edgeice, $2 the node script, $3
/// turnutils_uclient, $4 turnutils_peer, $5 and $6 the relay port ranges.
const SCRIPT: &str = r#"
set -eu
ip link set lo up
# Only inside this namespace: Chromium follows no redirect to a loopback
# address (127.0.0.0/8), so the second edge gets another one, on lo.
ip addr add 10.99.0.2/32 dev lo
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
edgeice=$1
# start NAME IP RELAY-PORTS [FLAGS...]: an edge, its UDP port in $port.
start() {
    name=$1 ip=$2 ports=$3
    shift 3
    "$edgeice" serve --listen "$ip:0" --no-tcp --user user:pass --realm edgeice.test \
        --relay-ports "$ports" --allow-peer 127.0.0.0/8 --private-relay-ok \
        --admin-socket "$dir/$name.sock" "$@" >"$dir/$name.out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q 'admin socket' "$dir/$name.out" && break; sleep 0.1; done
    port=$(sed -n 's/^edgeice: listening on udp [0-9.]*:\([0-9][0-9]*\).*/\1/p;T;q' "$dir/$name.out")
    [ -n "$port" ] || { echo "edge $name did not start:" >&2; cat "$dir/$name.out" >&2; exit 1; }
}
start second 10.99.0.2 "$6"
second=$port
start first 127.0.0.1 "$5" --alternate-server "10.99.0.2:$second"
first=$port first_pid=$pid
"$4" -L 127.0.0.1 -p 3480 >/dev/null 2>&1 &
# A call on the first edge, 30 s long, that the drain must not cut.
"$3" -u user -w pass -e 127.0.0.1 -r 3480 -p "$first" -m 1 -n 1500 -l 120 -z 20 127.0.0.1 \
    >"$dir/uclient.out" 2>&1 &
for _ in $(seq 200); do
    "$edgeice" sessions --admin-socket "$dir/first.sock" --json | grep -q '"session":' && break
    sleep 0.1
done
"$edgeice" sessions --admin-socket "$dir/first.sock" --json | grep -q '"session":' \
    || { echo "uclient made no allocation on the first edge:" >&2; cat "$dir/uclient.out" >&2; exit 1; }
kill -USR1 "$first_pid"
for _ in $(seq 100); do grep -q 'SIGUSR1: draining' "$dir/first.out" && break; sleep 0.1; done
status=0
node "$2" "127.0.0.1:$first" udp user pass || status=$?
echo "--- first edge"
grep -E 'drain|redirect' "$dir/first.out" || true
echo "--- first edge sessions"
"$edgeice" sessions --admin-socket "$dir/first.sock" 2>&1 || echo "sessions: exit $?"
exit "$status"
"#;

#[test]
fn chromium_gets_its_relay_candidate_from_the_alternate_while_the_first_edge_drains() {
    for (what, path) in [
        ("chromium", "/usr/bin/chromium"),
        (
            "playwright-core",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../node_modules/playwright-core/package.json"
            ),
        ),
    ] {
        assert!(Path::new(path).exists(), "no {what}: run scripts/test.sh");
    }
    let range = |(lo, hi): (u16, u16)| format!("{lo}-{hi}");
    let mut command = Command::new("unshare");
    command
        .args(["--net", "bash", "-c", SCRIPT, "edgeice-netns"])
        .arg(env!("CARGO_BIN_EXE_edgeice"))
        .arg(PEER)
        .arg(common::coturn_tool("turnutils_uclient"))
        .arg(common::coturn_tool("turnutils_peer"))
        .arg(range(FIRST_PORTS))
        .arg(range(SECOND_PORTS))
        .current_dir(REPO);
    let outcome = common::run_bounded(command, TIMEOUT);
    let all = format!("{}\n{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome.status.is_some_and(|s| s.success()),
        "Chromium through a draining edge failed ({:?}):\n{all}",
        outcome.status
    );
    // "OK: Chromium ... over TURN/udp: RELAY <-> RELAY"
    let ok = outcome
        .stdout
        .lines()
        .find(|l| l.starts_with("OK: Chromium"))
        .unwrap_or_else(|| panic!("no OK line:\n{all}"));
    let relays: Vec<u16> = ok
        .rsplit(": ")
        .next()
        .unwrap_or("")
        .split(" <-> ")
        .filter_map(|a| a.rsplit(':').next()?.parse().ok())
        .collect();
    assert_eq!(relays.len(), 2, "{ok}");
    // With --nocapture: what was seen.
    eprintln!("{all}");
    for port in relays {
        assert!(
            (SECOND_PORTS.0..=SECOND_PORTS.1).contains(&port),
            "relay port {port} is not the second edge's:\n{all}"
        );
    }
    // The call on the first edge is still there, untouched by the drain.
    assert!(all.contains("SIGUSR1: draining: "), "{all}");
    assert!(!all.contains("no live allocations"), "{all}");
}
