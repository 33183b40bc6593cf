//! `edgeice probe` against real servers on loopback: `edgeice serve` and
//! coturn's `turnserver`, over UDP, TCP and TLS, with good and bad
//! credentials, REST API secrets, a server that does not answer, and bad
//! usage. What is checked is the checklist and the exit status.

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// What a probe run came to: exit code and stdout.
struct Probe {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `edgeice probe` with `args` (bounded).
fn probe(args: &[&str]) -> Probe {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
    command.arg("probe").args(args);
    let outcome = common::run_bounded(command, Duration::from_secs(60));
    Probe {
        code: outcome.status.and_then(|s| s.code()),
        stdout: outcome.stdout,
        stderr: outcome.stderr,
    }
}

/// The JSON checklist's checks named `name`, across servers.
fn statuses(json: &Value, name: &str) -> Vec<String> {
    json["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|server| server["checks"].as_array().into_iter().flatten())
        .filter(|check| check["name"] == name)
        .map(|check| check["status"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn parse(probe: &Probe) -> Value {
    serde_json::from_str(&probe.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", probe.stdout, probe.stderr))
}

#[test]
fn edgeice_serve_passes_over_udp_and_tcp() {
    let (_server, udp) = common::start_turn_server();
    let tcp = format!("turn:{udp}?transport=tcp");
    let out = probe(&[
        &format!("turn:{udp}"),
        &tcp,
        "--user",
        "user",
        "--password",
        "pass",
        "--json",
    ]);
    let json = parse(&out);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert_eq!(statuses(&json, "binding udp"), ["pass"]);
    assert_eq!(statuses(&json, "allocate udp"), ["pass"]);
    assert_eq!(statuses(&json, "allocate tcp"), ["pass"]);
    // Loopback relays work from here, but nowhere else: a warning.
    assert_eq!(statuses(&json, "relay address"), ["warn", "warn"]);
    assert_eq!(statuses(&json, "relay reachable"), ["pass", "pass"]);
    assert_eq!(json["result"], "warn");
}

#[test]
fn a_refused_password_fails_and_says_which_credentials_to_check() {
    let (_server, udp) = common::start_turn_server();
    let out = probe(&[
        &format!("turn:{udp}"),
        "--user",
        "user",
        "--password",
        "wrong",
    ]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("allocate udp"))
        .unwrap_or_default();
    assert!(
        line.contains("fail") && line.contains("401"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("check --user/--password"),
        "{}",
        out.stdout
    );
}

#[test]
fn rest_api_credentials_from_the_shared_secret() {
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let (_server, _) = common::start_server(
        &[
            "--listen",
            &listen,
            "--auth-secret",
            "s3cret",
            "--relay-ports",
            "61000-65535",
            "--allow-peer",
            "127.0.0.0/8",
            "--private-relay-ok",
        ],
        2,
    );
    let out = probe(&[&format!("turn:{listen}"), "--secret", "s3cret", "--json"]);
    let json = parse(&out);
    assert_eq!(statuses(&json, "allocate udp"), ["pass"], "{}", out.stdout);
    assert_eq!(out.code, Some(0));
    let wrong = probe(&[&format!("turn:{listen}"), "--secret", "other", "--json"]);
    assert_eq!(statuses(&parse(&wrong), "allocate udp"), ["fail"]);
    assert_eq!(wrong.code, Some(1));
}

#[test]
fn a_peer_policy_that_refuses_the_probe_leaves_reachability_untested() {
    // Without --allow-peer, edgeice serve refuses loopback peers: the
    // probe cannot test its relay from here, and says so without failing.
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let (_server, _) = common::start_server(
        &[
            "--listen",
            &listen,
            "--user",
            "u:p",
            "--relay-ports",
            "61000-65535",
            "--private-relay-ok",
        ],
        2,
    );
    let out = probe(&[&format!("turn:{listen}"), "--user", "u", "--password", "p"]);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("relay reachable"))
        .unwrap_or_default();
    assert!(
        line.contains("warn") && line.contains("not tested") && line.contains("403"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_server_that_does_not_answer_fails() {
    // A port nothing listens on.
    let port = common::free_udp_tcp_port();
    let out = probe(&[
        &format!("turn:127.0.0.1:{port}"),
        &format!("turn:127.0.0.1:{port}?transport=tcp"),
        "--user",
        "u",
        "--password",
        "p",
        "--timeout",
        "1",
    ]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stdout.contains("no answer"), "{}", out.stdout);
    assert!(
        out.stdout.contains("fail  allocate tcp") && out.stdout.contains("cannot connect"),
        "{}",
        out.stdout
    );
}

#[test]
fn bad_usage_exits_2() {
    let no_credentials = probe(&["turn:127.0.0.1:3478"]);
    assert_eq!(no_credentials.code, Some(2));
    assert!(
        no_credentials.stderr.contains("--user"),
        "{}",
        no_credentials.stderr
    );
    let bad_url = probe(&[
        "turn:127.0.0.1:3478?transport=sctp",
        "--user",
        "u",
        "--password",
        "p",
    ]);
    assert_eq!(bad_url.code, Some(2));
    assert!(
        bad_url.stderr.contains("transport=sctp"),
        "{}",
        bad_url.stderr
    );
    assert_eq!(probe(&[]).code, Some(2));
}

#[test]
fn coturn_passes_over_udp_and_tcp() {
    let (_coturn, port) = common::start_coturn();
    let out = probe(&[
        &format!("turn:127.0.0.1:{port}"),
        &format!("turn:127.0.0.1:{port}?transport=tcp"),
        "--user",
        "u",
        "--password",
        "p",
        "--json",
    ]);
    let json = parse(&out);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert_eq!(statuses(&json, "allocate udp"), ["pass"]);
    assert_eq!(statuses(&json, "allocate tcp"), ["pass"]);
    assert_eq!(statuses(&json, "relay reachable"), ["pass", "pass"]);
}

#[test]
fn edgeice_serve_over_tls_passes_with_its_ca_and_fails_without() {
    let dir = std::env::temp_dir().join(format!("edgeice-probe-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let (_server, tls, ca) = common::start_tls_server(&dir);
    let url = format!("turns:{tls}");
    let good = probe(&[
        &url,
        "--user",
        "u",
        "--password",
        "p",
        "--ca",
        &ca.to_string_lossy(),
        "--json",
    ]);
    let json = parse(&good);
    assert_eq!(statuses(&json, "allocate tls"), ["pass"], "{}", good.stdout);
    assert_eq!(statuses(&json, "relay reachable"), ["pass"]);
    assert_eq!(good.code, Some(0));
    // The system's roots do not know this CA: the handshake is refused.
    let untrusted = probe(&[&url, "--user", "u", "--password", "p"]);
    assert_eq!(untrusted.code, Some(1), "{}", untrusted.stdout);
    assert!(
        untrusted.stdout.contains("fail  allocate tls") && untrusted.stdout.contains("TLS"),
        "{}",
        untrusted.stdout
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rfc_5780_mapping_is_checked_when_the_server_offers_it() {
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    // The main listener, the alternate port, and both on the alternate IP.
    let (_server, _) = common::start_server(
        &[
            "--listen",
            &listen,
            "--no-tcp",
            "--alternate-ip",
            "127.0.0.2",
            "--user",
            "u:p",
            "--private-relay-ok",
        ],
        4,
    );
    let out = probe(&[&format!("stun:{listen}"), "--json"]);
    let json = parse(&out);
    assert_eq!(statuses(&json, "binding udp"), ["pass"], "{}", out.stdout);
    // No NAT on loopback: the same mapping towards both addresses.
    assert_eq!(statuses(&json, "nat mapping"), ["pass"], "{}", out.stdout);
    let filtering = json["servers"][0]["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "nat filtering")
        .map(|c| c["reason"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    assert!(
        filtering.starts_with("endpoint-independent"),
        "{}",
        out.stdout
    );
    assert_eq!(out.code, Some(0));
}

#[test]
fn ms_turn_dialect_passes_against_edgeice_and_fails_against_coturn() {
    let (_server, udp) = common::start_turn_server();
    let out = probe(&[
        &format!("turn:{udp}"),
        &format!("turn:{udp}?transport=tcp"),
        "--dialect",
        "ms-turn",
        "--user",
        "user",
        "--password",
        "pass",
        "--json",
    ]);
    let json = parse(&out);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert_eq!(statuses(&json, "ms-turn allocate udp"), ["pass"]);
    assert_eq!(statuses(&json, "ms-turn allocate tcp"), ["pass"]);
    assert_eq!(
        statuses(&json, "send and data indication"),
        ["pass", "pass"]
    );
    assert_eq!(statuses(&json, "active destination"), ["pass", "pass"]);

    // coturn leaves MS-TURN unanswered; the probe says what that means.
    let (_coturn, port) = common::start_coturn();
    let out = probe(&[
        &format!("turn:127.0.0.1:{port}"),
        "--dialect",
        "ms-turn",
        "--user",
        "u",
        "--password",
        "p",
        "--timeout",
        "1",
        "--json",
    ]);
    let json = parse(&out);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert_eq!(statuses(&json, "ms-turn allocate udp"), ["fail"]);
    assert!(out.stdout.contains("MS-TURN"), "{}", out.stdout);
}
