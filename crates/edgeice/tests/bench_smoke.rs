//! A short run of `edgeice bench` against `edgeice serve` on loopback:
//! it must finish, report in JSON, and have packets echoed. Timings are
//! never asserted; they depend on the machine.

mod common;

use std::process::Command;
use std::time::Duration;

fn bench(server: &str, extra: &[&str]) -> serde_json::Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
    command.args([
        "bench",
        server,
        "--json",
        "--duration",
        "1",
        "--drain",
        "0.5",
    ]);
    command.args(extra);
    let outcome = common::run_bounded(command, Duration::from_secs(60));
    assert_eq!(
        outcome.status.map(|s| s.success()),
        Some(true),
        "edgeice bench failed: {}",
        outcome.stderr
    );
    serde_json::from_str(outcome.stdout.trim()).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", outcome.stdout);
    })
}

#[test]
fn bench_relays_through_channels_indications_and_tcp() {
    let (_server, udp) = common::start_turn_server();
    let url = format!("turn:{udp}");
    let credentials = ["--user", "user", "--password", "pass", "--clients", "4"];
    for extra in [
        &["--rate", "100"][..],
        &["--send-indications", "--rate", "100"][..],
        &["--transport", "tcp", "--max", "--window", "4"][..],
        &["--binding", "--rate", "100"][..],
    ] {
        let args: Vec<&str> = credentials.iter().chain(extra).copied().collect();
        let report = bench(&url, &args);
        assert_eq!(report["ready"], 4, "{extra:?}: {report}");
        assert!(
            report["sent"].as_u64().unwrap_or(0) > 0,
            "{extra:?}: {report}"
        );
        assert!(
            report["received"].as_u64().unwrap_or(0) > 0,
            "{extra:?}: {report}"
        );
        assert!(
            report["latency_us"]["p50"].is_number(),
            "{extra:?}: {report}"
        );
    }
}

#[test]
fn setup_only_counts_allocations() {
    let (_server, udp) = common::start_turn_server();
    let report = bench(
        &format!("turn:{udp}"),
        &[
            "--user",
            "user",
            "--password",
            "pass",
            "--clients",
            "8",
            "--setup-only",
        ],
    );
    assert_eq!(report["allocated"], 8, "{report}");
    assert!(report["allocations_per_s"].is_number(), "{report}");
    // Every allocation is released at the end, and the rate reported.
    assert_eq!(report["released"], 8, "{report}");
    assert!(report["refreshes_per_s"].is_number(), "{report}");
}

#[test]
fn wrong_password_is_reported_with_its_code() {
    let (_server, udp) = common::start_turn_server();
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
    command.args([
        "bench",
        &format!("turn:{udp}"),
        "--user",
        "user",
        "--password",
        "wrong",
        "--clients",
        "2",
        "--duration",
        "0.5",
    ]);
    let outcome = common::run_bounded(command, Duration::from_secs(60));
    assert_eq!(
        outcome.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("Allocate 401"),
        "stderr: {}",
        outcome.stderr
    );
}

#[test]
fn rest_api_secret_authenticates() {
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let (_server, _) = common::start_server(
        &[
            "--listen",
            &listen,
            "--auth-secret",
            "bench-secret",
            "--relay-ports",
            "61000-65535",
            "--allow-peer",
            "127.0.0.0/8",
            "--private-relay-ok",
        ],
        2,
    );
    let report = bench(
        &format!("turn:{listen}"),
        &[
            "--auth-secret",
            "bench-secret",
            "--clients",
            "2",
            "--rate",
            "50",
        ],
    );
    assert_eq!(report["ready"], 2, "{report}");
    assert!(report["received"].as_u64().unwrap_or(0) > 0, "{report}");
}

#[test]
fn bench_relays_over_tls_trusting_the_ca_it_is_given() {
    let dir = std::env::temp_dir().join(format!("edgeice-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let (_server, tls, ca) = common::start_tls_server(&dir);
    let url = format!("turns:{tls}");
    let ca = ca.to_string_lossy();
    let args = [
        "--user",
        "u",
        "--password",
        "p",
        "--clients",
        "3",
        "--rate",
        "100",
        "--ca",
        &ca,
    ];
    let report = bench(&url, &args);
    assert_eq!(report["transport"], "tls", "{report}");
    assert_eq!(report["ready"], 3, "{report}");
    assert!(report["received"].as_u64().unwrap_or(0) > 0, "{report}");
    // Without the CA the handshake is refused, and the bench says so.
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
    command.args([
        "bench",
        &url,
        "--user",
        "u",
        "--password",
        "p",
        "--clients",
        "1",
    ]);
    command.args(["--duration", "1"]);
    let refused = common::run_bounded(command, Duration::from_secs(60));
    assert_ne!(
        refused.status.and_then(|s| s.code()),
        Some(0),
        "{}",
        refused.stdout
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An edge that redirects every new Allocate (`--redirect-above 0`) to
/// `alternate`, listening on `listen` (UDP and TCP).
fn redirecting_edge(listen: &str, alternate: &str) -> common::Running {
    let mut args = common::turn_server_args(listen, "61000-65535");
    args.extend(
        [
            "--redirect-above",
            "0",
            "--alternate-server",
            alternate,
            "--admin-socket",
            "none",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::start_server(&args, 2).0
}

#[test]
fn bench_follows_a_300_to_the_alternate_server() {
    let plain = format!("127.0.0.2:{}", common::free_udp_tcp_port());
    let mut args = common::turn_server_args(&plain, "61000-65535");
    args.extend(["--admin-socket", "none"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_plain, _) = common::start_server(&args, 2);
    let first = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let _first = redirecting_edge(&first, &plain);
    let report = bench(
        &format!("turn:{first}"),
        &[
            "--user",
            "user",
            "--password",
            "pass",
            "--clients",
            "4",
            "--rate",
            "50",
        ],
    );
    assert_eq!(report["ready"], 4, "{report}");
    assert_eq!(report["redirected"], 4, "{report}");
    assert_eq!(report["allocated_on"][&plain], 4, "{report}");
    assert!(report["received"].as_u64().unwrap_or(0) > 0, "{report}");
}

/// Two edges that send every client to each other: bench goes from the
/// first to the second, is sent back, and stops there (a redirection loop
/// fails each client, it does not bounce for ever).
#[test]
fn bench_does_not_follow_a_redirection_back() {
    let a = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let b = format!("127.0.0.2:{}", common::free_udp_tcp_port());
    let _b = redirecting_edge(&b, &a);
    let _a = redirecting_edge(&a, &b);
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
    command.args(["bench", &format!("turn:{a}"), "--json", "--setup-only"]);
    command.args(["--user", "user", "--password", "pass", "--clients", "3"]);
    command.args(["--setup-timeout", "10"]);
    let outcome = common::run_bounded(command, Duration::from_secs(60));
    assert_eq!(
        outcome.status.and_then(|s| s.code()),
        Some(1),
        "{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    let report: serde_json::Value = serde_json::from_str(outcome.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", outcome.stdout));
    assert_eq!(report["redirected"], 3, "{report}");
    assert_eq!(
        report["errors"]["Allocate 300 (redirected back)"], 3,
        "{report}"
    );
}

/// A chain of edges, each sending every client to the next: bench follows
/// three redirections and refuses the fourth.
#[test]
fn bench_follows_at_most_three_redirections() {
    let edges: Vec<String> = (1..=5)
        .map(|i| format!("127.0.0.{i}:{}", common::free_udp_tcp_port()))
        .collect();
    // The last is never reached; the four before it redirect.
    let _running: Vec<common::Running> = (0..4)
        .rev()
        .map(|i| redirecting_edge(&edges[i], &edges[i + 1]))
        .collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
    command.args([
        "bench",
        &format!("turn:{}", edges[0]),
        "--json",
        "--setup-only",
    ]);
    command.args(["--user", "user", "--password", "pass", "--clients", "1"]);
    command.args(["--setup-timeout", "10"]);
    let outcome = common::run_bounded(command, Duration::from_secs(60));
    assert_eq!(
        outcome.status.and_then(|s| s.code()),
        Some(1),
        "{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    let report: serde_json::Value = serde_json::from_str(outcome.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", outcome.stdout));
    assert_eq!(report["redirected"], 3, "{report}");
    assert_eq!(
        report["errors"]["Allocate 300 (too many redirections)"], 1,
        "{report}"
    );
}
