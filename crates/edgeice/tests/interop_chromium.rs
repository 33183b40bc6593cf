//! Chromium's WebRTC stack relays through `edgeice serve`, and its ICE agent
//! connects to `edgeice call` in both roles. The relay tests: two
//! RTCPeerConnections in one headless page, `iceTransportPolicy: "relay"`,
//! open a data channel and send a message each way, with TURN over UDP and
//! with TURN over TCP (`turn:…?transport=tcp`). Debian's chromium, driven by
//! playwright-core from npm (`tests/peers/chromium_relay.mjs`; playwright-core
//! never downloads a browser). Everything — the server, node and Chromium —
//! runs inside a network namespace the test creates, with loopback alone, so
//! the browser can reach nothing else. Needs root (for the namespace), node,
//! and what `scripts/test.sh` installs: the Debian package chromium and
//! `npm ci` for playwright-core.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/chromium_relay.mjs"
);
const PLAYWRIGHT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../node_modules/playwright-core/package.json"
);
const CHROMIUM: &str = "/usr/bin/chromium";
/// The script bounds each of its own waits; this is the last resort.
const TIMEOUT: Duration = Duration::from_secs(150);

/// Inside the fresh namespace: loopback up, the server on an ephemeral port,
/// then the page. Arguments: $1 edgeice, $2 the node script, $3 transport.
const NAMESPACE_SCRIPT: &str = r#"
set -eu
ip link set lo up
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
"$1" serve --listen 127.0.0.1:0 --user user:pass --realm edgeice.test \
    --relay-ports 61000-65535 --allow-peer 127.0.0.0/8 --private-relay-ok >"$dir/out" &
for _ in $(seq 100); do grep -q 'listening on tcp' "$dir/out" && break; sleep 0.1; done
port=$(sed -n 's/^edgeice: listening on udp 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p;T;q' "$dir/out")
if [ -z "$port" ]; then
    echo "edgeice did not start listening within 10 s:" >&2
    cat "$dir/out" >&2
    exit 1
fi
node "$2" "127.0.0.1:$port" "$3" user pass
"#;

fn check_dependencies() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "no {CHROMIUM}: install the Debian package chromium (run scripts/test.sh)"
    );
    assert!(
        Path::new(PLAYWRIGHT).exists(),
        "playwright-core is not installed in node_modules: run scripts/test.sh (npm ci)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "cannot run node: install Node.js 20 or later (run scripts/test.sh)"
    );
}

/// Runs the page against a server in a fresh namespace, over `transport`.
fn chromium_relays(transport: &str) {
    check_dependencies();
    let mut command = Command::new("unshare");
    command
        .args(["--net", "bash", "-c", NAMESPACE_SCRIPT, "edgeice-netns"])
        .arg(env!("CARGO_BIN_EXE_edgeice"))
        .arg(PEER)
        .arg(transport)
        .current_dir(REPO);
    let outcome = common::run_bounded(command, TIMEOUT);
    let needs_root = if outcome.stderr.contains("unshare failed") {
        "\n(creating a network namespace needs root)"
    } else {
        ""
    };
    match outcome.status {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "Chromium over TURN/{transport} failed ({status}):\n{}\n{}{needs_root}",
            outcome.stdout, outcome.stderr
        ),
        None => panic!(
            "Chromium over TURN/{transport} still running after {TIMEOUT:?}, killed:\n{}\n{}",
            outcome.stdout, outcome.stderr
        ),
    }
    assert!(
        outcome.stdout.contains("OK: Chromium"),
        "the Chromium peer exited 0 without reporting success:\n{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
}

#[test]
fn chromium_data_channel_relays_over_turn_udp() {
    chromium_relays("udp");
}

#[test]
fn chromium_data_channel_relays_over_turn_tcp() {
    chromium_relays("tcp");
}

/// Chromium's ICE agent against `edgeice call`, in a fresh namespace: the
/// server (for Chromium's relayed candidates: with loopback alone it has no
/// host candidate), `edgeice call` and the page, signalling through files.
/// Arguments: $1 edgeice, $2 the node script, $3 offerer|answerer (Chromium's
/// part; edgeice takes the other and controls when Chromium answers).
const CALL_SCRIPT: &str = r#"
set -eu
ip link set lo up
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
"$1" serve --listen 127.0.0.1:0 --no-tcp --user user:pass --realm edgeice.test \
    --relay-ports 61000-65535 --allow-peer 127.0.0.0/8 --private-relay-ok >"$dir/out" &
for _ in $(seq 100); do grep -q 'listening on udp' "$dir/out" && break; sleep 0.1; done
port=$(sed -n 's/^edgeice: listening on udp 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p;T;q' "$dir/out")
[ -n "$port" ] || { echo "edgeice serve did not start:" >&2; cat "$dir/out" >&2; exit 1; }
role=""
[ "$3" = answerer ] && role=--controlling
"$1" call --local "$dir/e.sdp" --remote "$dir/c.sdp" --host-ip 127.0.0.1 $role --timeout 40 >"$dir/call" 2>&1 &
call=$!
status=0
node "$2" "$dir/c.sdp" "$dir/e.sdp" "$3" "127.0.0.1:$port" user pass || status=$?
wait "$call" || { echo "edgeice call failed:" >&2; cat "$dir/call" >&2; exit 1; }
echo "--- edgeice call"
cat "$dir/call"
exit "$status"
"#;

const CALL_PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/chromium_call.mjs"
);

/// Runs Chromium as `role` against `edgeice call`; both must connect.
fn chromium_calls_edgeice(role: &str) {
    check_dependencies();
    let mut command = Command::new("unshare");
    command
        .args(["--net", "bash", "-c", CALL_SCRIPT, "edgeice-netns"])
        .arg(env!("CARGO_BIN_EXE_edgeice"))
        .arg(CALL_PEER)
        .arg(role)
        .current_dir(REPO);
    let outcome = common::run_bounded(command, TIMEOUT);
    assert!(
        outcome.status.is_some_and(|s| s.success()),
        "Chromium ({role}) against edgeice call failed ({:?}):\n{}\n{}",
        outcome.status,
        outcome.stdout,
        outcome.stderr
    );
    assert!(
        outcome.stdout.contains("OK: Chromium"),
        "{}",
        outcome.stdout
    );
    assert!(outcome.stdout.contains("4 select"), "{}", outcome.stdout);
}

#[test]
fn chromium_offers_and_controls_edgeice_answers() {
    chromium_calls_edgeice("offerer");
}

#[test]
fn edgeice_offers_and_controls_chromium_answers() {
    chromium_calls_edgeice("answerer");
}
