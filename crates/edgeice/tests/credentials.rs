//! `edgeice credentials`: the TURN REST API credential it prints logs in to
//! `edgeice serve --auth-secret` with coturn's `turnutils_uclient -u -w`
//! (coturn 4.17.1's when built in ~/.cache, else the one on PATH), and
//! relays to coturn's echo peer; the same credential once expired, or made
//! with another secret, is refused. Needs the Debian package coturn.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::Running;

const SECRET: &str = "current-secret";

fn start_server() -> (Running, SocketAddr) {
    let (server, udp, _) = common::start_turn_server_with(&["--auth-secret", SECRET], 2);
    (server, udp)
}

/// Runs `edgeice credentials` with `args`.
fn credentials(args: &[&str], env: &[(&str, &str)]) -> common::Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
    command
        .arg("credentials")
        .args(args)
        .env_remove("EDGEICE_AUTH_SECRET")
        .envs(env.iter().copied());
    common::run_bounded(command, Duration::from_secs(30))
}

/// The user name and password of a `--json` credential.
fn login_of(outcome: &common::Outcome) -> (String, String) {
    assert_eq!(
        outcome.status.and_then(|s| s.code()),
        Some(0),
        "edgeice credentials failed: {}",
        outcome.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&outcome.stdout).expect("JSON");
    let server = &json["iceServers"][0];
    assert_eq!(server["username"], json["username"]);
    assert_eq!(server["credential"], json["password"]);
    (
        json["username"].as_str().expect("a username").to_owned(),
        json["password"].as_str().expect("a password").to_owned(),
    )
}

fn secret_file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("edgeice-secret-{name}-{}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// What turnutils_uclient made of a login as `user`/`password`.
#[derive(Debug, PartialEq)]
enum Login {
    /// Every message came back from the peer through the relay.
    Relayed,
    /// The server refused the Allocate.
    Refused,
}

/// Runs turnutils_uclient, logging in as `user`/`password`, relaying to
/// the echo peer; says whether every message came back or the Allocate was
/// refused (and panics on anything else, with its output).
fn login(server: SocketAddr, peer_port: u16, user: &str, password: &str) -> Login {
    let mut command = Command::new(common::coturn_tool("turnutils_uclient"));
    command
        .args(["-u", user, "-w", password])
        .args(["-e", "127.0.0.1", "-r", &peer_port.to_string()])
        .args(["-p", &server.port().to_string()])
        .args(["-m", "1", "-n", "20", "-l", "120", "-z", "5"])
        .arg(server.ip().to_string());
    let described = format!("{command:?}");
    let outcome = common::run_bounded(command, Duration::from_secs(60));
    let log = format!("{}{}", outcome.stdout, outcome.stderr);
    // The closing totals (the lines with msz= are progress reports).
    let totals = log
        .lines()
        .filter(|line| !line.contains("msz="))
        .find_map(|line| {
            let rest = &line[line.find("tot_send_msgs=")? + "tot_send_msgs=".len()..];
            let (sent, rest) = rest.split_once(", tot_recv_msgs=")?;
            let received = rest.split(|c: char| !c.is_ascii_digit()).next()?;
            Some((sent.parse::<u32>().ok()?, received.parse::<u32>().ok()?))
        });
    match totals {
        Some((sent, received)) if sent > 0 && sent == received => Login::Relayed,
        _ if log.contains("Cannot complete Allocation") => Login::Refused,
        _ => panic!(
            "{described}: neither relayed nor refused ({:?}):\n{log}",
            outcome.status
        ),
    }
}

#[test]
fn a_printed_credential_logs_in_and_relays() {
    let (_server, addr) = start_server();
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    // A secret file as an editor leaves it: with a final newline.
    let file = secret_file("login", &format!("{SECRET}\n"));
    let url = format!("turn:{addr}?transport=udp");
    let printed = credentials(
        &[
            "--secret-file",
            &file,
            "--ttl",
            "1h",
            "--json",
            "--url",
            &url,
            "alice",
        ],
        &[],
    );
    let (user, password) = login_of(&printed);
    assert!(user.ends_with(":alice"), "{user}");
    let json: serde_json::Value = serde_json::from_str(&printed.stdout).unwrap();
    assert_eq!(json["iceServers"][0]["urls"][0], url.as_str());
    assert_eq!(json["ttl"], 3600);
    assert_eq!(login(addr, peer_port, &user, &password), Login::Relayed);

    // The same from EDGEICE_AUTH_SECRET.
    let (user, password) = login_of(&credentials(
        &["--json", "--url", &url, "bob"],
        &[("EDGEICE_AUTH_SECRET", SECRET)],
    ));
    assert_eq!(login(addr, peer_port, &user, &password), Login::Relayed);
    let _ = std::fs::remove_file(file);
}

#[test]
fn expired_or_foreign_credentials_are_refused() {
    let (_server, addr) = start_server();
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let url = format!("turn:{addr}");
    let (user, password) = login_of(&credentials(
        &[
            "--secret",
            "another-secret",
            "--json",
            "--url",
            &url,
            "mallory",
        ],
        &[],
    ));
    assert_eq!(login(addr, peer_port, &user, &password), Login::Refused);

    let (user, password) = login_of(&credentials(
        &[
            "--secret", SECRET, "--ttl", "1s", "--json", "--url", &url, "late",
        ],
        &[],
    ));
    // Past its expiry (the server counts whole seconds).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(login(addr, peer_port, &user, &password), Login::Refused);
}

#[test]
fn bad_secrets_lifetimes_and_urls_are_refused_with_a_reason() {
    let refused = |args: &[&str], env: &[(&str, &str)], reason: &str| {
        let outcome = credentials(args, env);
        assert_ne!(
            outcome.status.and_then(|s| s.code()),
            Some(0),
            "{args:?} succeeded"
        );
        assert!(
            outcome.stderr.contains(reason),
            "{args:?}: expected {reason:?} in:\n{}",
            outcome.stderr
        );
        assert!(
            outcome.stdout.is_empty(),
            "{args:?} printed {}",
            outcome.stdout
        );
    };
    refused(&["alice"], &[], "no secret");
    refused(&["--secret", "", "alice"], &[], "the secret is empty");
    let empty = secret_file("empty", "\n");
    refused(
        &["--secret-file", &empty, "alice"],
        &[],
        "the secret is empty",
    );
    refused(
        &["--secret-file", "/nonexistent/edgeice-secret", "alice"],
        &[],
        "reading the secret file /nonexistent/edgeice-secret",
    );
    refused(
        &["--secret-file", &empty, "--secret", "s", "alice"],
        &[],
        "cannot be used with",
    );
    for ttl in ["0", "-1h", "367d", "1w", "18446744073709551615d"] {
        refused(
            &["--secret", "s", &format!("--ttl={ttl}"), "alice"],
            &[],
            "--ttl",
        );
    }
    refused(
        &["--secret", "s", "--url", "turn.example.org", "alice"],
        &[],
        "--url",
    );
    refused(&["--secret", "s", ""], &[], "the name is empty");
    let _ = std::fs::remove_file(empty);
}
