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

/// `edgeice serve ARGS --check-config` with `env`: (success, stdout, stderr).
fn check_config(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .arg("serve")
        .args(args)
        .arg("--check-config")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The line of `--check-config`'s output for `key`.
fn line_of<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key}:")))
        .unwrap_or_else(|| panic!("no {key} in:\n{output}"))
}

#[test]
fn the_file_takes_the_settings_it_once_refused() {
    // Before: "unknown field" for each of these.
    let path = write_config(
        "refused",
        r#"
        listen = ["127.0.0.1:0"]
        user = ["alice:secret"]
        relay-ports = "61000-65535"
        kernel-fast-path = "off"
        log-format = "json"
        log-level = "warn"
        permission-lifetime = 120
        max-allocate-lifetime = 300
        "#,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .args(["serve", "--config", &path])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = common::Running::new(child);
    // The loopback relay's warning comes as JSON (log-format from the
    // file), and no INFO line before it (log-level from the file).
    let line = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .take(5)
        .inspect(|line| {
            assert!(line.starts_with('{'), "not JSON: {line}");
            assert!(!line.contains(r#""level":"INFO""#), "not filtered: {line}");
        })
        .find(|line| line.contains("is private"))
        .expect("the private relay warning");
    assert!(line.contains(r#""level":"WARN""#), "{line}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn the_command_line_beats_the_environment_which_beats_the_file() {
    let path = write_config(
        "precedence",
        r#"
        listen = ["127.0.0.1:0"]
        no-tcp = true
        realm = "from-file"
        user = ["alice:secret"]
        relay-ports = "61000-65535"
        "#,
    );
    let (_server, listeners) = common::start_server_command(
        {
            let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
            command
                .args(["serve", "--config", &path])
                .env("EDGEICE_REALM", "from-env");
            command
        },
        1,
    );
    assert_eq!(realm_of(listeners[0].1), "from-env");

    let env = [
        ("EDGEICE_REALM", "from-env"),
        ("EDGEICE_MAX_ALLOCATIONS", "9"),
    ];
    let (ok, out, err) = check_config(&["--config", &path, "--realm", "from-flag"], &env);
    assert!(ok, "{err}");
    assert_eq!(
        line_of(&out, "realm"),
        r#"realm = "from-flag"  # command line"#
    );
    assert_eq!(
        line_of(&out, "max-allocations"),
        "max-allocations = 9  # environment EDGEICE_MAX_ALLOCATIONS"
    );
    assert_eq!(
        line_of(&out, "relay-ports"),
        format!(r#"relay-ports = "61000-65535"  # file {path}"#)
    );
    assert_eq!(line_of(&out, "metrics"), "# metrics: not set");
    assert_eq!(
        line_of(&out, "max-allocations-per-user"),
        "# max-allocations-per-user: not set, default 1000"
    );
    // The file named by the environment.
    let (ok, out, err) = check_config(&[], &[("EDGEICE_CONFIG", &path)]);
    assert!(ok, "{err}");
    assert_eq!(
        line_of(&out, "realm"),
        format!(r#"realm = "from-file"  # file {path}"#)
    );
    // A list from a higher source replaces the file's; peer rules add up.
    let env = [("EDGEICE_DENY_PEER", "192.0.2.0/24,203.0.113.0/24")];
    let args = [
        "--config",
        &path,
        "--listen",
        "127.0.0.2:0",
        "--deny-peer",
        "10.1.0.0/16",
    ];
    let (ok, out, err) = check_config(&args, &env);
    assert!(ok, "{err}");
    assert_eq!(
        line_of(&out, "listen"),
        r#"listen = ["127.0.0.2:0"]  # command line"#
    );
    assert_eq!(
        line_of(&out, "deny-peer"),
        r#"deny-peer = ["192.0.2.0/24", "203.0.113.0/24", "10.1.0.0/16"]  # environment EDGEICE_DENY_PEER + command line"#
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_boolean_the_file_sets_can_be_unset() {
    let path = write_config(
        "unset",
        r#"
        listen = ["127.0.0.1:0"]
        no-tcp = true
        user = ["alice:secret"]
        relay-ports = "61000-65535"
        "#,
    );
    // Two listeners, UDP and TCP: no-tcp from the file is undone.
    let (_server, listeners) = common::start_server(&["--config", &path, "--no-tcp=false"], 2);
    assert_eq!(listeners[1].0, "tcp");
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
    command
        .args(["serve", "--config", &path])
        .env("EDGEICE_NO_TCP", "0");
    let (_server, listeners) = common::start_server_command(command, 2);
    assert_eq!(listeners[1].0, "tcp");
    for (value, expected) in [
        ("false", "false"),
        ("no", "false"),
        ("1", "true"),
        ("on", "true"),
    ] {
        let (ok, out, err) = check_config(&["--config", &path], &[("EDGEICE_NO_TCP", value)]);
        assert!(ok, "{err}");
        assert_eq!(
            line_of(&out, "no-tcp"),
            format!("no-tcp = {expected}  # environment EDGEICE_NO_TCP")
        );
    }
    let (ok, out, _) = check_config(&["--no-tcp"], &[]);
    assert!(ok);
    assert_eq!(line_of(&out, "no-tcp"), "no-tcp = true  # command line");
    let _ = std::fs::remove_file(path);
}

#[test]
fn errors_name_the_key_and_where_it_came_from() {
    let path = write_config("errors", "relay-ports = \"70000-1\"\n");
    let (ok, _, err) = check_config(&["--config", &path], &[]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            r#"relay-ports = "70000-1" in {path}: 70000: number too large"#
        )),
        "{err}"
    );
    let (ok, _, err) = check_config(&[], &[("EDGEICE_MAX_ALLOCATIONS", "abc")]);
    assert!(!ok);
    assert!(
        err.contains("EDGEICE_MAX_ALLOCATIONS=abc (environment): invalid digit"),
        "{err}"
    );
    let (ok, _, err) = check_config(&[], &[("EDGEICE_RELAY_PORT", "1-2")]);
    assert!(!ok);
    assert!(
        err.contains("EDGEICE_RELAY_PORT (environment) is not a setting of edgeice serve; did you mean EDGEICE_RELAY_PORTS?"),
        "{err}"
    );
    let (ok, _, err) = check_config(&["--relay-ports", "9-1"], &[]);
    assert!(!ok);
    assert!(
        err.contains("--relay-ports") && err.contains("9-1 is not a range"),
        "{err}"
    );
    let typo = write_config("suggest", "no_tcp = true\n");
    let (ok, _, err) = check_config(&["--config", &typo], &[]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "no_tcp in {typo}: not a setting of edgeice serve; did you mean no-tcp?"
        )),
        "{err}"
    );
    let list = write_config("list", "realm = [\"a\", \"b\"]\n");
    let (ok, _, err) = check_config(&["--config", &list], &[]);
    assert!(!ok);
    assert!(
        err.contains("realm = [\"a\", \"b\"]") && err.contains("expected one value"),
        "{err}"
    );
    // A secret's value is not repeated in the error.
    let (ok, _, err) = check_config(
        &["--tls-listen", "127.0.0.1:0"],
        &[("EDGEICE_AUTH_SECRET", "")],
    );
    assert!(!ok);
    assert!(
        err.contains("tls-listen needs both tls-cert and tls-key"),
        "{err}"
    );
    for p in [path, typo, list] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn check_config_masks_secrets_binds_nothing_and_fails_on_what_serving_would() {
    // A port in use: serving would fail to bind it, checking does not.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let args = [
        "--listen",
        &listen,
        "--user",
        "alice:hunter2",
        "--auth-secret",
        "s3cret",
    ];
    let (ok, out, err) = check_config(&args, &[]);
    assert!(ok, "{err}");
    assert_eq!(
        line_of(&out, "user"),
        r#"user = ["alice:***"]  # command line"#
    );
    assert_eq!(
        line_of(&out, "auth-secret"),
        r#"auth-secret = ["***"]  # command line"#
    );
    assert!(!out.contains("hunter2") && !out.contains("s3cret"), "{out}");
    assert!(err.contains("shows in `ps`"), "{err}");
    // What only building the server configuration finds.
    let (ok, _, err) = check_config(&["--user", "no-colon"], &[]);
    assert!(!ok);
    assert!(
        err.contains("not NAME:PASSWORD") && !err.contains("no-colon"),
        "{err}"
    );
    let (ok, _, err) = check_config(
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.key",
        ],
        &[],
    );
    assert!(!ok, "a missing certificate passed");
    assert!(err.contains("/nonexistent"), "{err}");
}

#[test]
fn users_and_rest_secrets_come_from_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("edgeice-secret-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users");
    std::fs::write(&users, "# TURN users\nalice:wonder land\n\nbob:builder\n").unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secrets = dir.join("secrets");
    std::fs::write(
        &secrets,
        "rotated-out\n# the current one:\ncurrent-secret\n",
    )
    .unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--no-tcp",
        "--realm",
        "edgeice.test",
        "--relay-ports",
        "61000-65535",
        "--allow-peer",
        "127.0.0.0/8",
        "--user-file",
        users.to_str().unwrap(),
        "--auth-secret-file",
        secrets.to_str().unwrap(),
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeice"));
    child
        .arg("serve")
        .args(args)
        .stderr(std::process::Stdio::piped());
    let mut child = child.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = common::Running::new(child);
    let mut out = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let listen = out
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("edgeice: listening on udp ")
                .map(str::to_owned)
        })
        .expect("a UDP listener");
    // Keep reading what the server prints, so it never writes to a closed pipe.
    std::thread::spawn(move || out.for_each(drop));
    let server: std::net::SocketAddr = listen.parse().unwrap();
    let mut err = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let warning = err
        .by_ref()
        .map_while(Result::ok)
        .take(5)
        .find(|l| l.contains("every user of this host can read it"))
        .expect("a warning about the readable secret file");
    std::thread::spawn(move || err.for_each(drop));
    assert!(warning.contains("secrets"), "{warning}");
    assert!(
        common::uclient_relays(&["-u", "alice", "-w", "wonder land"], server),
        "alice"
    );
    assert!(
        common::uclient_relays(&["-u", "bob", "-w", "builder"], server),
        "bob"
    );
    assert!(
        common::uclient_relays(&["-u", "rest", "-W", "current-secret"], server),
        "REST"
    );
    assert!(
        !common::uclient_relays(&["-u", "bob", "-w", "wrong"], server),
        "a wrong password relayed"
    );
    // An empty file is an error, not a server without credentials.
    std::fs::write(&secrets, "# nothing yet\n").unwrap();
    let (ok, _, err) = check_config(&["--auth-secret-file", secrets.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(err.contains("no secret in it"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_closed_standard_output_is_no_panic() {
    // Before: print! panicked on the broken pipe (`... --check-config | head -1`).
    for args in [
        vec!["serve", "--check-config"],
        vec![
            "config",
            "from-coturn",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/coturn/turnserver-realistic.conf"
            ),
        ],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_edgeice"))
            .args(&args)
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(output.status.code(), Some(101), "{args:?}: {stderr}");
    }
}
