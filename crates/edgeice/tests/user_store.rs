//! `edgeice serve` with no credentials flags uses the SQLite user store:
//! an empty store gets a first user with a random password, printed once;
//! `edgeice user add` takes effect without a restart. coturn's
//! `turnutils_uclient` proves each user works.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Allocates and relays a few packets as `user`; whether every one came back.
fn relays_as(server: SocketAddr, user: &str, password: &str, peer_port: u16) -> bool {
    let output = Command::new("turnutils_uclient")
        .args([
            "-c", "-m", "1", "-n", "5", "-z", "5", "-u", user, "-w", password,
        ])
        .args([
            "-e",
            "127.0.0.1",
            "-r",
            &peer_port.to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .arg("127.0.0.1")
        .output()
        .expect("run turnutils_uclient (install coturn, or run scripts/test.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.contains("tot_send_msgs=5, tot_recv_msgs=5")
}

#[test]
fn an_empty_store_gets_a_first_user_and_new_users_arrive_live() {
    let dir = std::env::temp_dir().join(format!("edgeice-users-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("users.db");
    let db_arg = db.to_string_lossy().into_owned();

    let peer_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _peer = common::Running::new(
        Command::new("turnutils_peer")
            .args(["-L", "127.0.0.1", "-p", &peer_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run turnutils_peer (install coturn, or run scripts/test.sh)"),
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-tcp",
            "--users-db",
            &db_arg,
        ])
        .args([
            "--relay-ports",
            "61000-65535",
            "--allow-peer",
            "127.0.0.0/8",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start edgeice");
    let stdout = child.stdout.take().unwrap();
    let _server = common::Running::new(child);
    let mut lines = BufReader::new(stdout).lines();
    let (mut server, mut password) = (None, None);
    while server.is_none() || password.is_none() {
        let line = lines.next().expect("server stopped").unwrap();
        if let Some(addr) = line.strip_prefix("edgeice: listening on udp ") {
            server = Some(addr.parse::<SocketAddr>().unwrap());
        }
        if let Some(rest) = line.strip_prefix("edgeice: created TURN user edgeice with password ") {
            password = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let (server, password) = (server.unwrap(), password.unwrap());
    assert!(
        relays_as(server, "edgeice", &password, peer_port),
        "the printed user does not work"
    );
    assert!(
        !relays_as(server, "bob", "pw", peer_port),
        "an unknown user was let in"
    );

    let added = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .args([
            "user",
            "add",
            "bob",
            "--password",
            "pw",
            "--users-db",
            &db_arg,
        ])
        .status()
        .unwrap();
    assert!(added.success());
    let listed = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .args(["user", "list", "--users-db", &db_arg])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "bob\tedgeice\nedgeice\tedgeice\n"
    );

    // The server re-reads the store when it changes (it checks every second).
    let live = (0..20).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        relays_as(server, "bob", "pw", peer_port)
    });
    assert!(
        live,
        "a user added with `edgeice user add` was not picked up"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
