//! `edgeice call --dialect ms-ice2` against libnice speaking Microsoft's
//! MS-ICE2 (`Nice.Compatibility.OC2007R2`, Debian's libnice10 through
//! python3-gi), host candidates only, over UDP on 127.0.0.1, in both
//! roles: ICE connects on both sides and edgeice's probes come back
//! through libnice's echo.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Outcome, run_bounded};

const EDGEICE: &str = env!("CARGO_BIN_EXE_edgeice");
const LIBNICE_PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/libnice_call.py"
);
const LIMIT: Duration = Duration::from_secs(60);
const PROBES: &str = "50";

/// A fresh directory for one test's descriptions.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeice-ms-ice2-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn edgeice(dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(EDGEICE);
    command
        .current_dir(dir)
        .args(["call", "--local", "a.sdp", "--remote", "b.sdp"])
        .args(["--host-ip", "127.0.0.1", "--timeout", "30"])
        .args([
            "--dialect",
            "ms-ice2",
            "--send",
            PROBES,
            "--trace",
            "a.jsonl",
        ])
        .args(extra);
    command
}

fn libnice(dir: &Path, role: &str, extra: &[&str]) -> Command {
    let mut command = Command::new("/usr/bin/python3");
    command
        .current_dir(dir)
        .args([LIBNICE_PEER, "b.sdp", "a.sdp", role, "oc2007r2"])
        .args(extra);
    command
}

fn assert_success(name: &str, outcome: &Outcome) {
    assert!(
        outcome.status.is_some_and(|s| s.success()),
        "{name} failed ({:?}):\n{}\n{}",
        outcome.status,
        outcome.stdout,
        outcome.stderr
    );
}

/// Runs edgeice (with `edgeice_role`) against libnice in OC2007R2 mode
/// (with `libnice_role`); both must connect and every probe come back.
fn connects_and_carries_data(name: &str, edgeice_role: &[&str], libnice_role: &str) {
    let dir = workdir(name);
    let peer = libnice(&dir, libnice_role, &[]);
    let peer = std::thread::spawn(move || run_bounded(peer, LIMIT));
    let ours = run_bounded(edgeice(&dir, edgeice_role), LIMIT);
    let peer = peer.join().expect("the libnice side's thread");
    assert_success("edgeice", &ours);
    assert_success("libnice", &peer);
    let all = format!("{PROBES}/{PROBES} probes came back");
    assert!(ours.stdout.contains(&all), "{}", ours.stdout);
    assert!(ours.stdout.contains("4 select"), "{}", ours.stdout);
    // Microsoft's credentials: a 4-character ufrag, a 22-character password.
    let description = std::fs::read_to_string(dir.join("a.sdp")).expect("our description");
    let value = |prefix: &str| {
        description
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::len)
    };
    assert_eq!(value("a=ice-ufrag:"), Some(4), "{description}");
    assert_eq!(value("a=ice-pwd:"), Some(22), "{description}");
    // MS-ICE2 host priority: type preference 120, UDP in the top bits of
    // the local preference.
    let candidate = description
        .lines()
        .find(|l| l.starts_with("a=candidate:"))
        .expect("a candidate line");
    let priority: u32 = candidate
        .split(' ')
        .nth(3)
        .and_then(|p| p.parse().ok())
        .expect("a priority");
    assert_eq!(priority >> 24, 120, "{candidate}");
    assert_eq!(priority >> 20 & 0xf, 15, "{candidate}");
}

#[test]
fn edgeice_controlling_calls_libnice_oc2007r2() {
    connects_and_carries_data("controlling", &["--controlling"], "controlled");
}

#[test]
fn libnice_oc2007r2_controlling_calls_edgeice() {
    connects_and_carries_data("controlled", &[], "controlling");
}

#[test]
fn edgeice_controlling_aggressively_calls_libnice_oc2007r2() {
    connects_and_carries_data(
        "aggressive",
        &["--controlling", "--aggressive"],
        "controlled",
    );
}

/// The control: the same call in edgeice's default dialect (RFC 8445) never
/// connects, since libnice in OC2007R2 mode takes none of its checks or
/// answers (padding, integrity) — so the tests above do test MS-ICE2.
#[test]
fn rfc_8445_edgeice_does_not_reach_libnice_oc2007r2() {
    let dir = workdir("rfc-control");
    let peer = libnice(&dir, "controlled", &[]);
    let peer = std::thread::spawn(move || run_bounded(peer, LIMIT));
    let mut ours = Command::new(EDGEICE);
    ours.current_dir(&dir)
        .args(["call", "--local", "a.sdp", "--remote", "b.sdp"])
        .args(["--host-ip", "127.0.0.1", "--timeout", "10", "--controlling"]);
    let ours = run_bounded(ours, LIMIT);
    let peer = peer.join().expect("the libnice side's thread");
    assert_eq!(
        ours.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        ours.stdout
    );
    assert!(!ours.stdout.contains("4 select"), "{}", ours.stdout);
    assert_eq!(
        peer.status.and_then(|s| s.code()),
        Some(1),
        "{}\n{}",
        peer.stdout,
        peer.stderr
    );
}

/// Both sides offer relayed candidates only, allocated with MS-TURN on
/// `edgeice serve` (libnice as Lync's client would; edgeice through its own
/// MS-TURN client): they connect relay to relay and the probes come back.
fn connects_through_ms_turn(name: &str, edgeice_role: &[&str], libnice_role: &str) {
    let (_server, turn) = common::start_turn_server();
    let dir = workdir(name);
    let relay = format!("relay={turn}");
    let peer = libnice(&dir, libnice_role, &[&relay]);
    let peer = std::thread::spawn(move || run_bounded(peer, LIMIT));
    let url = format!("turn:{turn}");
    let mut extra = vec![
        "--relay-only",
        "--turn",
        &url,
        "--user",
        "user",
        "--password",
        "pass",
    ];
    extra.extend_from_slice(edgeice_role);
    let ours = run_bounded(edgeice(&dir, &extra), LIMIT);
    let peer = peer.join().expect("the libnice side's thread");
    assert_success("edgeice", &ours);
    assert_success("libnice", &peer);
    let all = format!("{PROBES}/{PROBES} probes came back");
    assert!(ours.stdout.contains(&all), "{}", ours.stdout);
    let selected = ours
        .stdout
        .lines()
        .find(|l| l.contains("4 select"))
        .unwrap_or_default();
    assert!(
        selected.matches("relay ").count() == 2,
        "not relay to relay: {}",
        ours.stdout
    );
}

#[test]
fn edgeice_controlling_calls_libnice_oc2007r2_through_ms_turn_relays() {
    connects_through_ms_turn("relay-controlling", &["--controlling"], "controlled");
}

#[test]
fn libnice_oc2007r2_controlling_calls_edgeice_through_ms_turn_relays() {
    connects_through_ms_turn("relay-controlled", &[], "controlling");
}
