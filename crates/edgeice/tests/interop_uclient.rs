//! coturn's own TURN load client, `turnutils_uclient`, relays through
//! `edgeice serve` to coturn's echo peer, `turnutils_peer`: over UDP with
//! channels and with Send indications, over TCP, and with IPv6 relays. Every
//! packet sent must come back. Needs the Debian package coturn
//! (`scripts/test.sh` installs it).

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::Running;

const CLIENTS: u32 = 4;
const MESSAGES: u32 = 50;

/// Runs turnutils_uclient with `flags` and checks every message came back.
/// Without a `-W` among the flags, it logs in as the static user.
fn uclient(flags: &[&str], server: SocketAddr, peer_ip: &str, peer_port: u16) {
    let credentials: &[&str] = if flags.contains(&"-W") {
        &["-u", "rest-user"]
    } else {
        &["-u", "user", "-w", "pass"]
    };
    let output = Command::new(common::coturn_tool("turnutils_uclient"))
        .args(flags)
        .args(credentials)
        .args(["-e", peer_ip, "-r", &peer_port.to_string()])
        .args(["-p", &server.port().to_string()])
        .args([
            "-m",
            &CLIENTS.to_string(),
            "-n",
            &MESSAGES.to_string(),
            "-l",
            "120",
            "-z",
            "5",
        ])
        .arg(server.ip().to_string())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run turnutils_uclient ({e}): install coturn, or run scripts/test.sh")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let total = CLIENTS * MESSAGES;
    let expected = format!("tot_send_msgs={total}, tot_recv_msgs={total}");
    assert!(
        stdout.contains(&expected) && stdout.contains("Total lost packets 0 "),
        "turnutils_uclient {flags:?}: not every message came back:\n{stdout}"
    );
}

fn server(listen: &str) -> (Running, SocketAddr) {
    let (server, listeners) = server_with(listen, &[], 2);
    (server, listeners[0].1)
}

/// Starts the server with `extra` flags, waiting for `lines` listeners.
fn server_with(listen: &str, extra: &[&str], lines: usize) -> (Running, Vec<common::Listener>) {
    common::start_server(&server_args(listen, extra), lines)
}

/// `edgeice serve`'s arguments for these tests, then `extra`.
fn server_args<'a>(listen: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--listen",
        listen,
        "--user",
        "user:pass",
        "--realm",
        "edgeice.test",
        "--relay-ports",
        "61000-65535",
        "--allow-peer",
        "127.0.0.0/8",
        "--allow-peer",
        "::1/128",
        "--auth-secret",
        "rotated-out",
        "--auth-secret",
        "current-secret",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn uclient_relays_over_udp_with_channels_and_send_indications() {
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let (_server, addr) = server("127.0.0.1:0");
    uclient(&[], addr, "127.0.0.1", peer_port);
    uclient(&["-s"], addr, "127.0.0.1", peer_port);
}

#[test]
fn a_server_on_one_core_relays_over_udp_and_tcp() {
    // On one core every listener, relay socket and TCP connection shares
    // one worker thread.
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let mut command = Command::new("taskset");
    command.args(["-c", "0", env!("CARGO_BIN_EXE_edgeice"), "serve"]);
    command.args(server_args("127.0.0.1:0", &[]));
    let (_server, listeners) = common::start_server_command(command, 2);
    let addr = listeners[0].1;
    uclient(&[], addr, "127.0.0.1", peer_port);
    uclient(&["-t"], addr, "127.0.0.1", peer_port);
}

#[test]
fn uclient_relays_over_tcp() {
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let (_server, addr) = server("127.0.0.1:0");
    uclient(&["-t"], addr, "127.0.0.1", peer_port);
    uclient(&["-t", "-s"], addr, "127.0.0.1", peer_port);
}

#[test]
fn uclient_authenticates_with_rest_api_credentials() {
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let (_server, addr) = server("127.0.0.1:0");
    uclient(&["-W", "current-secret"], addr, "127.0.0.1", peer_port);
}

#[test]
fn uclient_relays_over_ipv6() {
    let (_peer, peer_port) = common::start_peer("::1");
    let (_server, addr) = server("[::1]:0");
    uclient(&["-x"], addr, "::1", peer_port);
}

#[test]
fn uclient_relays_over_tls() {
    let dir = std::env::temp_dir().join(format!("edgeice-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-subj", "/CN=localhost", "-days", "2", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("run openssl to make a test certificate");
    assert!(status.success(), "openssl could not make a certificate");
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let (cert, key) = (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    );
    let extra = [
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    let (_server, listeners) = server_with("127.0.0.1:0", &extra, 3);
    let (_, tls) = listeners
        .iter()
        .find(|(p, _)| p == "tls")
        .expect("a TLS listener");
    uclient(&["-t", "-S"], *tls, "127.0.0.1", peer_port);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metrics_count_what_uclient_relayed() {
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let (_server, listeners) = server_with("127.0.0.1:0", &["--metrics", "127.0.0.1:0"], 3);
    let (_, udp) = listeners
        .iter()
        .find(|(p, _)| p == "udp")
        .expect("a UDP listener");
    let (_, metrics) = listeners
        .iter()
        .find(|(p, _)| p == "metrics")
        .expect("a metrics endpoint");
    uclient(&[], *udp, "127.0.0.1", peer_port);
    let body = common::scrape(*metrics);
    let sent = f64::from(CLIENTS * MESSAGES);
    let to_peer = common::metric(
        &body,
        "edgeice_relayed_packets_total{transport=\"udp\",direction=\"to_peer\"}",
    );
    let to_client = common::metric(
        &body,
        "edgeice_relayed_packets_total{transport=\"udp\",direction=\"to_client\"}",
    );
    assert!(
        to_peer.is_some_and(|n| n >= sent),
        "to_peer {to_peer:?}:\n{body}"
    );
    assert!(
        to_client.is_some_and(|n| n >= sent),
        "to_client {to_client:?}:\n{body}"
    );
    let created = common::metric(&body, "edgeice_allocations_created_total");
    assert!(
        created.is_some_and(|n| n >= f64::from(CLIENTS)),
        "allocations {created:?}:\n{body}"
    );
    // Every client first asks without credentials, as TURN clients do.
    let challenged = common::metric(&body, "edgeice_error_responses_total{code=\"401\"}");
    assert!(
        challenged.is_some_and(|n| n >= f64::from(CLIENTS)),
        "401s {challenged:?}:\n{body}"
    );
}

#[test]
fn uclient_makes_dual_allocations() {
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let (_server, listeners) = server_with("127.0.0.1:0", &["--listen", "[::1]:0"], 4);
    let (_, udp) = listeners
        .iter()
        .find(|(p, a)| p == "udp" && a.is_ipv4())
        .expect("a UDP listener");
    // -Z asks for an IPv4 and an IPv6 relay in one Allocate.
    uclient(&["-Z"], *udp, "127.0.0.1", peer_port);
}

#[test]
fn uclient_relays_through_tcp_allocations() {
    // -T: RFC 6062 TCP relays, clients connecting to each other's relay
    // (Connect on one side, ConnectionAttempt on the other, ConnectionBind
    // on new data connections).
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let (_server, addr) = server("127.0.0.1:0");
    uclient(&["-T"], addr, "127.0.0.1", peer_port);
}

#[test]
fn a_user_over_its_allocation_quota_gets_486() {
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let (_server, listeners) = server_with("127.0.0.1:0", &["--max-allocations-per-user", "1"], 2);
    // Two clients of the same user: the second Allocate is over the quota.
    let output = Command::new(common::coturn_tool("turnutils_uclient"))
        .args([
            "-u", "user", "-w", "pass", "-m", "2", "-n", "3", "-l", "100",
        ])
        .args(["-e", "127.0.0.1", "-r", &peer_port.to_string()])
        .args(["-p", &listeners[0].1.port().to_string(), "127.0.0.1"])
        .output()
        .expect("run turnutils_uclient");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("error 486"),
        "expected 486 Allocation Quota Reached:\n{stdout}"
    );
}
