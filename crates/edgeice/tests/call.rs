//! `edgeice call` end to end, on loopback, signalling through files:
//! against itself (`--echo` and `--send 100`), against aioice (PyPI) in
//! both roles, and with malformed remote descriptions.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Outcome, run_bounded};

const EDGEICE: &str = env!("CARGO_BIN_EXE_edgeice");
const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
const AIOICE_PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/aioice_call.py"
);
const LIMIT: Duration = Duration::from_secs(60);

/// A fresh directory for one test's descriptions and traces.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeice-call-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn call(dir: &Path, local: &str, remote: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(EDGEICE);
    command
        .current_dir(dir)
        .args([
            "call",
            "--local",
            local,
            "--remote",
            remote,
            "--host-ip",
            "127.0.0.1",
        ])
        .args(["--timeout", "30"])
        .args(extra);
    command
}

/// Runs two commands at once; returns both outcomes.
fn both(a: Command, b: Command) -> (Outcome, Outcome) {
    let b = std::thread::spawn(move || run_bounded(b, LIMIT));
    let a = run_bounded(a, LIMIT);
    (a, b.join().expect("the second side's thread"))
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

#[test]
fn edgeice_calls_edgeice_through_files() {
    let dir = workdir("self");
    let (sender, echo) = both(
        call(
            &dir,
            "a.sdp",
            "b.sdp",
            &["--controlling", "--send", "100", "--trace", "a.jsonl"],
        ),
        call(&dir, "b.sdp", "a.sdp", &["--echo", "--trace", "b.jsonl"]),
    );
    assert_success("the sender", &sender);
    assert_success("the echo", &echo);
    assert!(
        sender.stdout.contains("100/100 probes came back"),
        "{}",
        sender.stdout
    );
    for phase in ["1 gather", "2 exchange", "3 check", "4 select"] {
        assert!(
            sender.stdout.contains(phase),
            "no {phase:?} in the timeline:\n{}",
            sender.stdout
        );
    }
    let description = std::fs::read_to_string(dir.join("a.sdp")).unwrap();
    for line in [
        "a=ice-ufrag:",
        "a=ice-pwd:",
        "a=ice-options:trickle",
        "a=candidate:",
        "a=end-of-candidates",
    ] {
        assert!(
            description.contains(line),
            "{line} missing from\n{description}"
        );
    }
    let trace = std::fs::read_to_string(dir.join("a.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = trace
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "start");
    assert_eq!(events[0]["role"], "controlling");
    assert!(events.iter().any(|e| e["event"] == "selected"));
    // Each wake-up by the agent's timers says what scheduled it.
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "timer" && e["reason"].is_string() && e["due_ms"].is_number()),
        "no timer line in\n{trace}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "data" && e["received"] == 100)
    );
}

#[test]
fn malformed_remote_descriptions_are_usage_errors_naming_the_line() {
    let dir = workdir("malformed");
    std::fs::write(
        dir.join("bad.sdp"),
        "v=0\na=ice-ufrag:abcd\na=ice-pwd:0123456789abcdefghijklmn\na=candidate:1 1 udp xyz 127.0.0.1 9 typ host\n",
    )
    .unwrap();
    let outcome = run_bounded(call(&dir, "a.sdp", "bad.sdp", &["--controlling"]), LIMIT);
    assert_eq!(
        outcome.status.and_then(|s| s.code()),
        Some(2),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains("line 4"), "{}", outcome.stderr);

    std::fs::write(dir.join("bad.sdp"), "a=ice-ufrag:a b\n").unwrap();
    let outcome = run_bounded(call(&dir, "a.sdp", "bad.sdp", &[]), LIMIT);
    assert_eq!(
        outcome.status.and_then(|s| s.code()),
        Some(2),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains("line 1"), "{}", outcome.stderr);
}

#[test]
fn nobody_answering_is_a_failure_not_a_hang() {
    let dir = workdir("alone");
    // The other side's description names a port nobody listens on.
    std::fs::write(
        dir.join("ghost.sdp"),
        "a=ice-ufrag:ghst\na=ice-pwd:0123456789abcdefghijklmn\n\
         a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\na=end-of-candidates\n",
    )
    .unwrap();
    let outcome = run_bounded(call(&dir, "a.sdp", "ghost.sdp", &["--controlling"]), LIMIT);
    assert_eq!(
        outcome.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        outcome.stdout
    );
    assert!(outcome.stdout.contains("failed"), "{}", outcome.stdout);
}

fn aioice(dir: &Path, role: &str, mode: &str, extra: &[&str]) -> Command {
    assert!(
        Path::new(PYTHON).exists(),
        "no Python virtual environment at {PYTHON}: run scripts/test.sh"
    );
    let mut command = Command::new(PYTHON);
    command
        .current_dir(dir)
        .args([AIOICE_PEER, "b.sdp", "a.sdp", role, mode])
        .args(extra);
    command
}

#[test]
fn edgeice_controlling_calls_aioice() {
    let dir = workdir("aioice-controlled");
    let (edgeice, peer) = both(
        call(&dir, "a.sdp", "b.sdp", &["--controlling", "--send", "100"]),
        aioice(&dir, "controlled", "echo", &[]),
    );
    assert_success("edgeice", &edgeice);
    assert_success("aioice", &peer);
}

#[test]
fn aioice_controlling_calls_edgeice() {
    let dir = workdir("aioice-controlling");
    let (edgeice, peer) = both(
        call(&dir, "a.sdp", "b.sdp", &["--echo"]),
        aioice(&dir, "controlling", "send:100", &[]),
    );
    assert_success("edgeice", &edgeice);
    assert_success("aioice", &peer);
}

const LIBNICE_PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/libnice_call.py"
);

/// libnice through Debian's python3-gi: ICE connects, both sides select a
/// pair. (No data: see the peer script.)
fn libnice_connects(edgeice_role: &[&str], libnice_role: &str) {
    libnice_connects_over(edgeice_role, libnice_role, None);
}

/// As [`libnice_connects`]; with `Some("tcp")`, both sides gather ICE-TCP
/// candidates only (RFC 6544).
fn libnice_connects_over(edgeice_role: &[&str], libnice_role: &str, transport: Option<&str>) {
    let dir = workdir(&format!(
        "libnice-{libnice_role}-{}",
        transport.unwrap_or("udp")
    ));
    let mut peer = Command::new("/usr/bin/python3");
    peer.current_dir(&dir)
        .args([LIBNICE_PEER, "b.sdp", "a.sdp", libnice_role])
        .args(transport);
    let tcp_only: &[&str] = if transport == Some("tcp") {
        &["--tcp-only"]
    } else {
        &[]
    };
    let (edgeice, peer) = both(
        call(&dir, "a.sdp", "b.sdp", &[edgeice_role, tcp_only].concat()),
        peer,
    );
    assert_success("edgeice", &edgeice);
    assert_success("libnice", &peer);
    assert!(edgeice.stdout.contains("4 select"), "{}", edgeice.stdout);
    assert!(peer.stdout.contains("ready"), "{}", peer.stdout);
}

#[test]
fn edgeice_controlling_connects_to_libnice() {
    libnice_connects(&["--controlling"], "controlled");
}

#[test]
fn libnice_controlling_connects_to_edgeice() {
    libnice_connects(&[], "controlling");
}

#[test]
fn ice_tcp_with_libnice_in_both_roles() {
    libnice_connects_over(&["--controlling"], "controlled", Some("tcp"));
    libnice_connects_over(&[], "controlling", Some("tcp"));
}

/// `edgeice serve` on loopback for relay-only calls (loopback peers allowed,
/// as the relays of both sides are on 127.0.0.1).
fn relay_server() -> (common::Running, String) {
    relay_server_with(&[], 2).0
}

/// Like [`relay_server`], with more flags and listeners; returns the
/// listeners too.
fn relay_server_with(
    extra: &[&str],
    listeners: usize,
) -> ((common::Running, String), Vec<common::Listener>) {
    let (server, listeners) = common::start_server(
        &[
            &[
                "--listen",
                "127.0.0.1:0",
                "--user",
                "u:p",
                "--realm",
                "edgeice-test",
                "--relay-ports",
                "61000-65535",
                "--allow-peer",
                "127.0.0.0/8",
            ][..],
            extra,
        ]
        .concat(),
        listeners,
    );
    let udp = listeners
        .iter()
        .find(|(proto, _)| proto == "udp")
        .expect("a UDP listener")
        .1;
    ((server, udp.to_string()), listeners)
}

fn relay_only_args(server: &str) -> Vec<String> {
    [
        "--turn",
        &format!("turn:{server}"),
        "--user",
        "u",
        "--password",
        "p",
        "--relay-only",
    ]
    .map(String::from)
    .to_vec()
}

/// Two `edgeice call`s relay-only through `edgeice serve`, reaching it
/// with the TURN URL's `transport`.
fn relay_only_call_through_edgeice_serve(transport: &str) {
    relay_only_call_through_edgeice_serve_in(transport, "rfc8445");
}

/// The same in ICE `dialect`: with `ms-ice2`, the relays are MS-TURN's.
fn relay_only_call_through_edgeice_serve_in(transport: &str, dialect: &str) {
    let (_server, address) = relay_server();
    let dir = workdir(&format!("relay-self-{transport}-{dialect}"));
    let mut turn = relay_only_args(&format!("{address}?transport={transport}"));
    turn.extend(["--dialect".to_owned(), dialect.to_owned()]);
    let turn: Vec<&str> = turn.iter().map(String::as_str).collect();
    let (sender, echo) = both(
        call(
            &dir,
            "a.sdp",
            "b.sdp",
            &[&["--controlling", "--send", "100"], &turn[..]].concat(),
        ),
        call(&dir, "b.sdp", "a.sdp", &[&["--echo"], &turn[..]].concat()),
    );
    assert_success("the sender", &sender);
    assert_success("the echo", &echo);
    assert!(
        sender.stdout.contains("4 select   component 1: relay"),
        "{}",
        sender.stdout
    );
}

#[test]
fn relay_only_call_through_edgeice_serve_over_udp() {
    relay_only_call_through_edgeice_serve("udp");
}

#[test]
fn relay_only_call_through_edgeice_serve_over_tcp() {
    relay_only_call_through_edgeice_serve("tcp");
}

#[test]
fn ms_ice2_calls_through_ms_turn_over_udp_and_tcp() {
    relay_only_call_through_edgeice_serve_in("udp", "ms-ice2");
    relay_only_call_through_edgeice_serve_in("tcp", "ms-ice2");
}

/// aioice relay-only through `edgeice serve` (reaching it over `transport`)
/// against edgeice relay-only, in both roles.
fn relay_only_with_aioice(transport: &str) {
    let (_server, address) = relay_server();
    let turn = relay_only_args(&address);
    let turn: Vec<&str> = turn.iter().map(String::as_str).collect();
    let peer_turn = [address.as_str(), "u", "p", transport];

    let dir = workdir(&format!("relay-aioice-controlled-{transport}"));
    let (edgeice, peer) = both(
        call(
            &dir,
            "a.sdp",
            "b.sdp",
            &[&["--controlling", "--send", "100"], &turn[..]].concat(),
        ),
        aioice(&dir, "controlled", "echo", &peer_turn),
    );
    assert_success("edgeice", &edgeice);
    assert_success("aioice", &peer);
    assert!(
        edgeice.stdout.contains("4 select   component 1: relay"),
        "{}",
        edgeice.stdout
    );

    let dir = workdir(&format!("relay-aioice-controlling-{transport}"));
    let (edgeice, peer) = both(
        call(&dir, "a.sdp", "b.sdp", &[&["--echo"], &turn[..]].concat()),
        aioice(&dir, "controlling", "send:100", &peer_turn),
    );
    assert_success("edgeice", &edgeice);
    assert_success("aioice", &peer);
}

#[test]
fn relay_only_with_aioice_over_udp() {
    relay_only_with_aioice("udp");
}

#[test]
fn relay_only_with_aioice_over_tcp() {
    relay_only_with_aioice("tcp");
}

#[test]
fn ice_tcp_only_call_carries_data() {
    let dir = workdir("tcp-only");
    let (sender, echo) = both(
        call(
            &dir,
            "a.sdp",
            "b.sdp",
            &["--controlling", "--tcp-only", "--send", "100"],
        ),
        call(&dir, "b.sdp", "a.sdp", &["--tcp-only", "--echo"]),
    );
    // The exit status says at least 90% came back: the very first probes
    // may reach the other side before its own check of the pair is done.
    assert_success("the sender", &sender);
    assert_success("the echo", &echo);
    assert!(
        sender
            .stdout
            .contains("4 select   component 1: prflx tcp-active")
            || sender
                .stdout
                .contains("4 select   component 1: host tcp-passive"),
        "{}",
        sender.stdout
    );
    let description = std::fs::read_to_string(dir.join("a.sdp")).unwrap();
    assert!(
        description.contains(" tcp ")
            && description.contains("tcptype passive")
            && description.contains("tcptype active"),
        "{description}"
    );
}

#[test]
fn relay_only_call_through_turn_over_tls() {
    let dir = workdir("relay-tls");
    let (ca, cert, key) = common::certificates(&dir);
    let (ca, cert, key) = (
        ca.to_string_lossy().into_owned(),
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    );
    let ((_server, _), listeners) = relay_server_with(
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        3,
    );
    let tls = listeners
        .iter()
        .find(|(proto, _)| proto == "tls")
        .expect("a TLS listener")
        .1;
    let turn = relay_only_args(&tls.to_string());
    let mut turn: Vec<String> = turn;
    turn[1] = format!("turns:{tls}");
    let with_ca =
        |ca: &str| -> Vec<String> { [&turn[..], &["--turn-ca".into(), ca.into()]].concat() };
    let good = with_ca(&ca);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    let (sender, echo) = both(
        call(
            &dir,
            "a.sdp",
            "b.sdp",
            &[&["--controlling", "--send", "100"], &good[..]].concat(),
        ),
        call(&dir, "b.sdp", "a.sdp", &[&["--echo"], &good[..]].concat()),
    );
    assert_success("the sender", &sender);
    assert_success("the echo", &echo);
    assert!(
        sender.stdout.contains(&format!("from turns:{tls}")),
        "{}",
        sender.stdout
    );

    // Trusting another CA, the server's certificate is refused: no relay,
    // said as a gathering error, and the call fails rather than hangs.
    let other = workdir("relay-tls-other");
    let (other_ca, _, _) = common::certificates(&other);
    let other_ca = other_ca.to_string_lossy().into_owned();
    let bad = with_ca(&other_ca);
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let outcome = run_bounded(
        call(
            &dir,
            "c.sdp",
            "b.sdp",
            &[&["--controlling"], &bad[..]].concat(),
        ),
        LIMIT,
    );
    assert_eq!(
        outcome.status.and_then(|s| s.code()),
        Some(1),
        "{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    assert!(
        outcome.stdout.contains("gave no candidate"),
        "{}",
        outcome.stdout
    );
}

/// RFC 6062: B is relay-only with a TCP relay on `edgeice serve` (reached
/// over TCP); A has TCP host candidates only. The one pair that can work is
/// A's active candidate connecting to B's relayed passive one, through the
/// server: ConnectionAttempt, a data connection, ConnectionBind, then the
/// checks and the data in RFC 4571 frames.
#[test]
fn ice_tcp_through_a_tcp_relay() {
    let (_server, address) = relay_server();
    let dir = workdir("tcp-relay");
    let turn = relay_only_args(&format!("{address}?transport=tcp"));
    let turn: Vec<&str> = turn.iter().map(String::as_str).collect();
    let (sender, echo) = both(
        call(
            &dir,
            "a.sdp",
            "b.sdp",
            &["--controlling", "--tcp-only", "--send", "100"],
        ),
        call(
            &dir,
            "b.sdp",
            "a.sdp",
            &[&["--tcp-only", "--echo"], &turn[..]].concat(),
        ),
    );
    assert_success("the sender", &sender);
    assert_success("the echo", &echo);
    // Through B's relay either way: A's active candidate connecting to the
    // relayed address, or the relay connecting out to A's passive one.
    let description = std::fs::read_to_string(dir.join("b.sdp")).unwrap();
    let relayed = description
        .lines()
        .find(|l| l.contains("typ relay") && l.contains("tcptype passive"))
        .and_then(|l| l.split_whitespace().nth(5))
        .expect("a passive relayed candidate");
    let selected = sender
        .stdout
        .lines()
        .find(|l| l.contains("4 select"))
        .unwrap_or_default();
    assert!(
        selected.contains(&format!(":{relayed}")),
        "{}",
        sender.stdout
    );
}

/// `-` signalling: each side's description on stdout, the other's read
/// from stdin (as when pasting between two terminals); the timeline then
/// goes to stderr.
#[test]
fn descriptions_through_stdin_and_stdout() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let spawn = |extra: &[&str]| {
        Command::new(EDGEICE)
            .args([
                "call",
                "--local",
                "-",
                "--remote",
                "-",
                "--host-ip",
                "127.0.0.1",
                "--timeout",
                "20",
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start edgeice call")
    };
    let mut a = common::Running::new(spawn(&["--controlling", "--send", "20"]));
    let mut b = common::Running::new(spawn(&["--echo"]));
    // Cross the pipes: a's stdout to b's stdin and back.
    let pipe = |mut from: std::process::ChildStdout, mut to: std::process::ChildStdin| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        })
    };
    let (a_out, a_in) = (
        a.child().stdout.take().unwrap(),
        a.child().stdin.take().unwrap(),
    );
    let (b_out, b_in) = (
        b.child().stdout.take().unwrap(),
        b.child().stdin.take().unwrap(),
    );
    pipe(a_out, b_in);
    pipe(b_out, a_in);
    let mut stderr = String::new();
    a.child()
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = a.child().wait().unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("20/20 probes came back"), "{stderr}");
    assert!(b.child().wait().unwrap().success());
}

/// RFC 6062 the other way: A is relay-only with a TCP relay; its active
/// relayed candidate has the server connect out (Connect) to B's passive
/// host candidate, and A binds a data connection for it.
#[test]
fn ice_tcp_from_a_tcp_relay() {
    let (_server, address) = relay_server();
    let dir = workdir("tcp-relay-active");
    let turn = relay_only_args(&format!("{address}?transport=tcp"));
    let turn: Vec<&str> = turn.iter().map(String::as_str).collect();
    let (sender, echo) = both(
        call(
            &dir,
            "a.sdp",
            "b.sdp",
            &[&["--controlling", "--tcp-only", "--send", "100"], &turn[..]].concat(),
        ),
        call(&dir, "b.sdp", "a.sdp", &["--tcp-only", "--echo"]),
    );
    // The exit status says at least 90% came back: the very first probes
    // may reach the other side before its own check of the pair is done.
    assert_success("the sender", &sender);
    assert_success("the echo", &echo);
    assert!(
        sender.stdout.contains("-> host tcp-passive"),
        "{}",
        sender.stdout
    );
    let description = std::fs::read_to_string(dir.join("a.sdp")).unwrap();
    assert!(
        description.contains("typ relay") && description.contains("tcptype active"),
        "{description}"
    );
}
