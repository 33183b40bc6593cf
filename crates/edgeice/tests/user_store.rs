//! `edgeice serve` with no credentials flags uses the SQLite user store:
//! an empty store gets a first user with a random password, put in a 0600
//! file beside the store when stdout is not a terminal;
//! `edgeice user add` takes effect without a restart. coturn's
//! `turnutils_uclient` proves each user works.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Allocates and relays a few packets as `user`; whether every one came back.
fn relays_as(server: SocketAddr, user: &str, password: &str, peer_port: u16) -> bool {
    let output = Command::new(common::coturn_tool("turnutils_uclient"))
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
        Command::new(common::coturn_tool("turnutils_peer"))
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
    let mut server = None;
    while server.is_none() {
        let line = lines.next().expect("server stopped").unwrap();
        assert!(!line.contains("password "), "a password on stdout: {line}");
        if let Some(addr) = line.strip_prefix("edgeice: listening on udp ") {
            server = Some(addr.parse::<SocketAddr>().unwrap());
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    // stdout is not a terminal: the password is in a 0600 file by the store.
    let file = dir.join("users.db.first-password");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file)
            .expect("the first password's file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    let password = std::fs::read_to_string(&file)
        .unwrap()
        .trim_end()
        .to_owned();
    let server = server.unwrap();
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

/// `edgeice user ARGS --users-db DB`, and whether it succeeded, with its
/// stderr.
fn user_command(db: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .arg("user")
        .args(args)
        .args(["--users-db", db])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_reload_that_meets_a_locked_store_is_tried_again() {
    let dir = std::env::temp_dir().join(format!("edgeice-users-busy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("users.db");
    let db_arg = db.to_string_lossy().into_owned();
    for (name, password) in [("alice", "a-pw"), ("bob", "b-pw")] {
        let (ok, stderr) = user_command(&db_arg, &["add", name, "--password", password]);
        assert!(ok, "{stderr}");
    }
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let (_server, listeners) = common::start_server(
        &[
            "--listen",
            "127.0.0.1:0",
            "--no-tcp",
            "--users-db",
            &db_arg,
            "--relay-ports",
            "61000-65535",
            "--allow-peer",
            "127.0.0.0/8",
            "--private-relay-ok",
        ],
        1,
    );
    let server = listeners[0].1;
    assert!(relays_as(server, "bob", "b-pw", peer_port));

    // bob is removed, and straight after, another writer holds the store
    // locked for several of the server's one-second ticks, longer than any
    // reader waits (SQLite's busy timeout; rusqlite's default is 5 s): the
    // reloads the change asks for fail with SQLITE_BUSY. Then the lock
    // goes, with nothing more changed in the file.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("DELETE FROM users WHERE name = 'bob'; BEGIN EXCLUSIVE;")
        .unwrap();
    std::thread::sleep(Duration::from_millis(6500));
    conn.execute_batch("COMMIT;").unwrap();
    drop(conn);

    // The failed reload is tried again: bob is refused within a few ticks.
    let refused = (0..10).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        !relays_as(server, "bob", "b-pw", peer_port)
    });
    assert!(refused, "a removed user stayed valid after a failed reload");
    assert!(
        relays_as(server, "alice", "a-pw", peer_port),
        "the other user was lost"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_store_is_private_and_a_read_only_or_full_one_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let base = std::env::temp_dir().join(format!("edgeice-users-mode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir(&base).unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    // A new store: 0600, in a new 0700 directory; the existing one above
    // it is left alone.
    let db = base.join("store/users.db");
    let db_arg = db.to_string_lossy().into_owned();
    let (ok, stderr) = user_command(&db_arg, &["add", "alice", "--password", "pw"]);
    assert!(ok, "{stderr}");
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&base.join("store")), 0o700);
    assert_eq!(mode(&base), 0o755);

    // A store others can read is made private, and said so.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, stderr) = user_command(&db_arg, &["list"]);
    assert!(ok, "{stderr}");
    assert_eq!(mode(&db), 0o600);
    assert!(stderr.contains("readable by others"), "{stderr}");

    // On a read-only file system (a bind mount, in a mount namespace of
    // its own): a clear error and a failed exit; listing still works.
    let store_dir = base.join("store");
    let dir = store_dir.to_string_lossy();
    let edgeice = env!("CARGO_BIN_EXE_edgeice");
    let read_only = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind {dir} {dir} && mount -o remount,ro,bind {dir} {dir} && \
             {edgeice} user list --users-db {db_arg} && \
             exec {edgeice} user add bob --password pw --users-db {db_arg}"
        ))
        .output()
        .expect("run unshare (util-linux; as root)");
    let stderr = String::from_utf8_lossy(&read_only.stderr);
    assert_eq!(
        String::from_utf8_lossy(&read_only.stdout),
        "alice\tedgeice\n"
    );
    assert!(
        !read_only.status.success(),
        "a write to a read-only store succeeded"
    );
    assert!(stderr.contains("read-only"), "{stderr}");

    // On a full disk (a small tmpfs, filled up): the same.
    let full_dir = base.join("full");
    std::fs::create_dir(&full_dir).unwrap();
    let full = full_dir.to_string_lossy();
    let full_db = format!("{full}/users.db");
    let full_disk = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size=256k tmpfs {full} && \
             {edgeice} user add alice --password pw --users-db {full_db} && \
             (dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null; true) && \
             exec {edgeice} user add bob --password pw --users-db {full_db}"
        ))
        .output()
        .expect("run unshare (util-linux; as root)");
    let stderr = String::from_utf8_lossy(&full_disk.stderr);
    assert!(
        !full_disk.status.success(),
        "a write to a full disk succeeded: {stderr}"
    );
    assert!(stderr.contains("is full"), "{stderr}");
    let _ = std::fs::remove_dir_all(&base);
}
