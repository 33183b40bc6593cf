//! `edgeice serve --config FILE`: the file holds the same settings as the
//! flags, and flags given on the command line win.

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use edgeice_stun::attribute::TRANSPORT_UDP;
use edgeice_stun::*;

/// The REALM a server at `addr` challenges an unauthenticated Allocate with.
fn realm_of(addr: std::net::SocketAddr) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::ALLOCATE, Class::Request);
    let mut b = MessageBuilder::new(&mut buf, kind, TransactionId([4; 12]));
    b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
        .unwrap();
    socket.send_to(&buf, addr).unwrap();
    let mut answer = [0u8; 1500];
    let n = socket.recv(&mut answer).expect("a 401 answer");
    let message = Message::parse(&answer[..n]).unwrap();
    match message.get(AttributeType::REALM) {
        Some(Ok(Attribute::Realm(realm))) => realm.to_owned(),
        other => panic!("no REALM in the answer: {other:?}"),
    }
}

fn write_config(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("edgeice-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn settings_come_from_the_file_and_flags_override_them() {
    let path = write_config(
        "config",
        r#"
        listen = ["127.0.0.1:0"]
        no-tcp = true
        realm = "from-file"
        user = ["alice:secret"]
        relay-ports = "61000-65535"
        allow-peer = ["127.0.0.0/8"]
        "#,
    );
    let (_server, listeners) = common::start_server(&["--config", &path], 1);
    assert_eq!(listeners[0].0, "udp", "no-tcp from the file");
    assert_eq!(realm_of(listeners[0].1), "from-file");

    let (_server, listeners) =
        common::start_server(&["--config", &path, "--realm", "from-flag"], 1);
    assert_eq!(realm_of(listeners[0].1), "from-flag");
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_mistyped_key_is_an_error_that_names_it() {
    let path = write_config("typo", "listen = [\"127.0.0.1:0\"]\nrelay-port = \"1-2\"\n");
    let output = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .args(["serve", "--config", &path])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("relay-port"),
        "the error does not name the key:\n{stderr}"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn logs_can_be_json_lines() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--user",
            "a:b",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = common::Running::new(child);
    // A loopback relay address is private: the start-up warning is logged,
    // after the open-file limit's line; every line is a JSON object.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let line = lines
        .by_ref()
        .take(5)
        .map(|line| line.unwrap())
        .inspect(|line| {
            assert!(
                line.starts_with('{') && line.ends_with('}'),
                "not a JSON object: {line}"
            )
        })
        .find(|line| line.contains("is private"))
        .expect("the private relay warning");
    assert!(line.contains(r#""level":"WARN""#), "{line}");
}

#[test]
fn peer_rules_from_the_file_and_the_flags_add_up_and_are_logged_once() {
    // Before: --deny-peer on the command line replaced the file's list.
    let path = write_config(
        "peers",
        r#"
        listen = ["127.0.0.1:0"]
        user = ["alice:secret"]
        relay-ports = "61000-65535"
        deny-peer = ["198.51.100.0/24"]
        allow-peer = ["127.0.0.0/8"]
        "#,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .args(["serve", "--config", &path, "--deny-peer", "64:ff9b::/96"])
        .args(["--deny-private-peers", "--allow-peer", "10.9.0.0/16"])
        .env("EDGEICE_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = common::Running::new(child);
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let policy = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = received
            .recv_timeout(left)
            .expect("the effective peer policy is logged at start");
        if line.contains("peers refused") {
            break line;
        }
    };
    for part in [
        "169.254.169.254",
        "fe80::/10",
        "127.0.0.1",
        "fc00::/7",
        "denied: 198.51.100.0/24, 64:ff9b::/96",
        "allowed despite the above: 127.0.0.0/8, 10.9.0.0/16",
    ] {
        assert!(policy.contains(part), "{part} missing from: {policy}");
    }
    let _ = std::fs::remove_file(path);
}
