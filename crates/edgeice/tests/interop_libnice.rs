//! Two libnice agents (the ICE library of GStreamer's webrtcbin, Pidgin and
//! Farstream; Debian's libnice10 through its GObject bindings) connect
//! through `edgeice serve` with relay candidates only, as reliable
//! (pseudo-TCP) streams, and send a message each way: TURN over UDP, and TURN
//! over TCP to the server. The peers are `tests/peers/libnice_relay.py`, run
//! with Debian's `/usr/bin/python3` (python3-gi, gir1.2-nice-0.1 and
//! libnice10; `scripts/test.sh` installs them).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Debian's Python, which sees Debian's python3-gi (a venv would not).
const PYTHON: &str = "/usr/bin/python3";
const PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/libnice_relay.py"
);
/// The script bounds each of its own waits; this is the last resort.
const PEER_TIMEOUT: Duration = Duration::from_secs(90);

fn check_dependencies() {
    assert!(
        Path::new(PYTHON).exists(),
        "no {PYTHON}: install Debian's python3, python3-gi, gir1.2-nice-0.1 and libnice10 \
         (run scripts/test.sh)"
    );
    let outcome = common::run_bounded(
        {
            let mut c = Command::new(PYTHON);
            c.args([
                "-c",
                "import gi; gi.require_version('Nice', '0.1'); from gi.repository import Nice",
            ]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(
        outcome.status.is_some_and(|s| s.success()),
        "libnice's Python bindings are missing: install the Debian packages python3-gi \
         gir1.2-nice-0.1 libnice10 (run scripts/test.sh)\n{}",
        outcome.stderr
    );
}

/// Runs the two libnice agents against `server` over `transport`.
fn libnice_relays(server: SocketAddr, transport: &str) {
    let mut command = Command::new(PYTHON);
    command.arg(PEER).arg(server.to_string()).arg(transport);
    command.args(["user", "pass"]);
    let outcome = common::run_bounded(command, PEER_TIMEOUT);
    match outcome.status {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "libnice over TURN/{transport} failed ({status}):\n{}\n{}",
            outcome.stdout, outcome.stderr
        ),
        None => panic!(
            "libnice over TURN/{transport} still running after {PEER_TIMEOUT:?}, killed:\n{}\n{}",
            outcome.stdout, outcome.stderr
        ),
    }
    assert!(
        outcome.stdout.contains("OK: libnice"),
        "libnice exited 0 without reporting success:\n{}",
        outcome.stdout
    );
}

#[test]
fn libnice_agents_relay_over_turn_udp() {
    check_dependencies();
    let (_server, addr) = common::start_turn_server();
    libnice_relays(addr, "udp");
}

#[test]
fn libnice_agents_relay_over_turn_tcp() {
    check_dependencies();
    let (_server, addr) = common::start_turn_server();
    libnice_relays(addr, "tcp");
}
