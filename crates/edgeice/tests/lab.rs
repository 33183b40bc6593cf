//! The lab's scenarios (lab/run.sh): the seed's two-company call through
//! NATed edges, built in network namespaces, must behave as the issue says
//! — the seed fails and is diagnosed, the fixed edge connects over relays,
//! TURN over TLS and TCP get through UDP-blocking firewalls, ordinary NATs end
//! on the direct pair, symmetric NATs on a relay. Needs root, iproute2,
//! nftables and openssl (scripts/test.sh installs them). The script checks the
//! behaviour and says which check failed; these tests run it and report.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// One scenario at a time: they are independent (each its own namespace
/// prefix), but the calls share two cores with the rest of the suite.
static LAB: Mutex<()> = Mutex::new(());

/// Runs `lab/run.sh scenario` and fails the test with its output unless
/// it exits 0.
fn scenario(name: &str) -> String {
    let _one_at_a_time = LAB.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut command = Command::new("bash");
    command
        .arg(root.join("lab/run.sh"))
        .arg(name)
        .env("EDGEICE", env!("CARGO_BIN_EXE_edgeice"))
        .env("LAB_TIMEOUT", "150");
    // The script stops itself at LAB_TIMEOUT; this is the backstop.
    let outcome = common::run_bounded(command, Duration::from_secs(200));
    assert!(
        outcome.status.is_some_and(|s| s.success()),
        "lab/run.sh {name} did not behave as expected ({:?}):\n{}\n{}",
        outcome.status,
        outcome.stdout,
        outcome.stderr
    );
    outcome.stdout
}

#[test]
fn seed_fails_and_is_diagnosed_as_relay_private_address() {
    let out = scenario("seed");
    assert!(
        out.contains("Verdict: relay-private-address") && out.contains("10.0.1.5"),
        "{out}"
    );
    assert!(
        out.contains("fail  relay reachable") && out.contains("--external-ip"),
        "{out}"
    );
}

#[test]
fn seed_fixed_connects_relay_to_relay() {
    let out = scenario("seed-fixed");
    assert!(out.contains("4 select"), "{out}");
    assert!(out.contains("pass  relay reachable"), "{out}");
}

#[test]
fn udp_blocked_connects_through_turn_over_tls_and_tcp() {
    let out = scenario("udp-blocked");
    assert!(out.contains("from turns:10.0.1.5:5349"), "{out}");
    assert!(
        out.contains("ok    client B's relay came through TURN over TCP"),
        "{out}"
    );
}

#[test]
fn open_nat_is_promoted_to_the_direct_pair() {
    let out = scenario("open");
    assert!(out.contains("4 promote"), "{out}");
}

#[test]
fn symmetric_nat_connects_through_a_relay() {
    let out = scenario("symmetric");
    assert!(out.contains("state      connected"), "{out}");
}

#[test]
fn an_unknown_scenario_is_bad_usage() {
    let status = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab/run.sh"))
        .arg("no-such-scenario")
        .env("EDGEICE", env!("CARGO_BIN_EXE_edgeice"))
        .output()
        .expect("run bash");
    assert_eq!(status.status.code(), Some(2));
}
