//! Two aioice ICE agents (aiortc's ICE library, from PyPI) connect through
//! `edgeice serve` with relay candidates only and exchange data both ways:
//! TURN over UDP, and TURN over TCP to the server. The peers are
//! `tests/peers/aioice_relay.py`, run with the `.venv` that
//! `scripts/test.sh` makes from `requirements-test.txt`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
const PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/aioice_relay.py"
);
/// The script bounds each of its own waits; this is the last resort.
const PEER_TIMEOUT: Duration = Duration::from_secs(90);

fn check_dependencies() {
    assert!(
        Path::new(PYTHON).exists(),
        "no Python virtual environment at {PYTHON}: run scripts/test.sh, which makes .venv \
         and installs requirements-test.txt (aioice) into it"
    );
    let outcome = common::run_bounded(
        {
            let mut c = Command::new(PYTHON);
            c.args(["-c", "import aioice"]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(
        outcome.status.is_some_and(|s| s.success()),
        "aioice is not installed in .venv: run scripts/test.sh (it installs \
         requirements-test.txt)\n{}",
        outcome.stderr
    );
}

/// Runs the two aioice agents against `server` over `transport`.
fn aioice_relays(server: SocketAddr, transport: &str) {
    let mut command = Command::new(PYTHON);
    command.arg(PEER).arg(server.to_string()).arg(transport);
    command.args(["user", "pass"]);
    let outcome = common::run_bounded(command, PEER_TIMEOUT);
    match outcome.status {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "aioice over TURN/{transport} failed ({status}):\n{}\n{}",
            outcome.stdout, outcome.stderr
        ),
        None => panic!(
            "aioice over TURN/{transport} still running after {PEER_TIMEOUT:?}, killed:\n{}\n{}",
            outcome.stdout, outcome.stderr
        ),
    }
    assert!(
        outcome.stdout.contains("OK: aioice"),
        "aioice exited 0 without reporting success:\n{}",
        outcome.stdout
    );
}

#[test]
fn aioice_agents_relay_over_turn_udp() {
    check_dependencies();
    let (_server, addr) = common::start_turn_server();
    aioice_relays(addr, "udp");
}

#[test]
fn aioice_agents_relay_over_turn_tcp() {
    check_dependencies();
    let (_server, addr) = common::start_turn_server();
    aioice_relays(addr, "tcp");
}
