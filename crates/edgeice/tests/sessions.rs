//! The operator's records against real clients: a coturn
//! `turnutils_uclient` session through `edgeice serve` gives a
//! session-start and a session-end record whose fields say what it was and
//! what it relayed; a wrong password is logged with the user and the
//! address; `edgeice sessions` lists and kicks over the admin socket, which
//! survives hostile local clients; `edgeice analyze` explains a log whose
//! peer never answered. Needs coturn (`scripts/test.sh` installs it); uses
//! coturn 4.17.1's tools where they were built, else those on PATH.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Running;
use serde_json::Value;

const MESSAGES: u64 = 50;
const MESSAGE_SIZE: u64 = 120;

/// A directory of this test's own, 0700.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeice-sessions-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// A running server whose log goes to a file.
struct Server {
    process: Running,
    addr: SocketAddr,
    log: PathBuf,
    socket: PathBuf,
}

impl Server {
    /// Starts `edgeice --log-format FORMAT serve` on loopback with the test
    /// user `user:pass`, its admin socket and log in `dir`.
    fn start(dir: &Path, format: &str) -> Server {
        let port = common::free_udp_tcp_port();
        let listen = format!("127.0.0.1:{port}");
        let log = dir.join("serve.log");
        let socket = dir.join("admin.sock");
        let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
        command
            .args(["--log-format", format, "serve"])
            .args(common::turn_server_args(&listen, "61000-65535"))
            .arg("--admin-socket")
            .arg(&socket)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = command.spawn().expect("start edgeice");
        let stdout = child.stdout.take().unwrap();
        let process = Running::new(child);
        let mut lines = BufReader::new(stdout).lines();
        let mut ready = false;
        // The line for scripts: `edgeice: LINE`, or in JSON mode an object
        // whose message is LINE.
        let announced = |line: &str| match line.strip_prefix("edgeice: ") {
            Some(text) => Some(text.to_owned()),
            None => serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned)),
        };
        for line in lines.by_ref() {
            if announced(&line.unwrap()).is_some_and(|m| m.starts_with("admin socket")) {
                ready = true;
                break;
            }
        }
        assert!(ready, "the server stopped before its admin socket was up");
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            process,
            addr: listen.parse().unwrap(),
            log,
            socket,
        }
    }

    /// `edgeice sessions ARGS --admin-socket ...`: (success, stdout, stderr).
    fn sessions(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_edgeice"))
            .arg("sessions")
            .args(args)
            .arg("--admin-socket")
            .arg(&self.socket)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn listed(&self) -> Vec<Value> {
        let (ok, out, err) = self.sessions(&["--json"]);
        assert!(ok, "edgeice sessions failed: {err}");
        let answer: Value = serde_json::from_str(out.trim()).unwrap();
        answer["sessions"].as_array().unwrap().clone()
    }

    /// Stops it with SIGTERM and returns its log.
    fn stop(mut self) -> String {
        let pid = self.process.child().id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.process.child().wait().unwrap();
        assert!(status.success(), "SIGTERM: {status:?}");
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// One uclient run of MESSAGES messages to `peer_port`; its stdout.
fn uclient(server: SocketAddr, password: &str, peer_port: u16) -> String {
    let mut command = Command::new(common::coturn_tool("turnutils_uclient"));
    command
        .args(["-u", "user", "-w", password])
        .args(["-e", "127.0.0.1", "-r", &peer_port.to_string()])
        .args(["-p", &server.port().to_string()])
        .args([
            "-m",
            "1",
            "-n",
            &MESSAGES.to_string(),
            "-l",
            &MESSAGE_SIZE.to_string(),
        ])
        .args(["-z", "5"])
        .arg(server.ip().to_string());
    let outcome = common::run_bounded(command, Duration::from_secs(60));
    outcome.stdout
}

/// The JSON records of `event` in a log.
fn records(log: &str, event: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == event)
        .collect()
}

#[test]
fn a_uclient_session_is_recorded_field_by_field_and_kicked() {
    let dir = scratch("records");
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let server = Server::start(&dir, "json");
    let mode = std::fs::metadata(&server.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the admin socket is 0600");
    let out = uclient(server.addr, "pass", peer_port);
    assert!(out.contains("Total lost packets 0 "), "uclient: {out}");

    // Listed while live: uclient leaves its allocations to expire.
    let listed = server.listed();
    let relayed: Vec<&Value> = listed
        .iter()
        .filter(|s| s["packets_to_peer"].as_u64() > Some(0))
        .collect();
    assert!(!relayed.is_empty(), "no listed session relayed: {listed:?}");
    let kicked = relayed[0]["session"].as_u64().unwrap();
    let (ok, out, err) = server.sessions(&["kick", &kicked.to_string()]);
    assert!(ok, "kick failed: {err}");
    assert!(out.contains(&format!("kicked session {kicked}")), "{out}");
    assert!(
        server
            .listed()
            .iter()
            .all(|s| s["session"].as_u64() != Some(kicked))
    );
    let (ok, _, err) = server.sessions(&["kick", &kicked.to_string()]);
    assert!(
        !ok && err.contains(&format!("no session {kicked}")),
        "{err}"
    );
    let (ok, table, _) = server.sessions(&[]);
    assert!(
        ok && table.contains("USER") && table.contains("127.0.0.1"),
        "{table}"
    );

    let addr = server.addr;
    let log = server.stop();
    let starts = records(&log, "session-start");
    let ends = records(&log, "session-end");
    assert_eq!(
        starts.len(),
        listed.len(),
        "one session-start per allocation:\n{log}"
    );
    assert_eq!(
        ends.len(),
        starts.len(),
        "one session-end per allocation:\n{log}"
    );
    for start in &starts {
        assert_eq!(start["target"], "edgeice::session");
        assert_eq!(start["user"], "user");
        assert_eq!(start["realm"], "edgeice.test");
        assert_eq!(start["transport"], "udp");
        assert_eq!(start["dialect"], "standard");
        assert_eq!(start["relay_transport"], "udp");
        assert_eq!(start["listener"], addr.to_string());
        let client: SocketAddr = start["client"].as_str().unwrap().parse().unwrap();
        assert_eq!(client.ip().to_string(), "127.0.0.1");
        let relay: SocketAddr = start["relay"].as_str().unwrap().parse().unwrap();
        assert!((61000..=65535).contains(&relay.port()), "{relay}");
        let end = ends
            .iter()
            .find(|e| e["session"] == start["session"])
            .expect("each start has its end");
        assert_eq!(end["client"], start["client"]);
        assert_eq!(end["relay"], start["relay"]);
        let expected = if end["session"].as_u64() == Some(kicked) {
            "kicked"
        } else {
            "shutdown"
        };
        assert_eq!(end["reason"], expected, "{end}");
        assert!(end["duration_s"].as_f64().is_some_and(|d| d >= 0.0));
    }
    // The sessions that carried uclient's messages: every message went to
    // the peer and came back, each MESSAGE_SIZE bytes.
    let carried: Vec<&Value> = ends
        .iter()
        .filter(|e| e["packets_to_peer"].as_u64() > Some(0))
        .collect();
    assert!(!carried.is_empty(), "{log}");
    for end in carried {
        let to_peer = end["packets_to_peer"].as_u64().unwrap();
        let to_client = end["packets_to_client"].as_u64().unwrap();
        assert!((MESSAGES * 9 / 10..=MESSAGES).contains(&to_peer), "{end}");
        assert!(
            to_client <= to_peer && to_client >= MESSAGES * 9 / 10,
            "{end}"
        );
        assert_eq!(end["bytes_to_peer"].as_u64(), Some(to_peer * MESSAGE_SIZE));
        assert_eq!(
            end["bytes_to_client"].as_u64(),
            Some(to_client * MESSAGE_SIZE)
        );
        assert_eq!(end["peers"], 1);
        assert_eq!(end["peer_addrs"], "127.0.0.1");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Removes terminal colour codes from a text log.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_wrong_password_is_logged_with_the_user_and_the_address() {
    let dir = scratch("refused");
    let server = Server::start(&dir, "text");
    // No peer needed: the Allocate is refused.
    uclient(server.addr, "wrong", common::free_port_pair("127.0.0.1"));
    let log = strip_ansi(&server.stop());
    let line = log
        .lines()
        .find(|l| l.contains("reason=\"wrong-password\""))
        .unwrap_or_else(|| panic!("no wrong-password record:\n{log}"));
    assert!(line.contains("edgeice::refused"), "{line}");
    assert!(
        line.contains("refused Allocate from 127.0.0.1: wrong password for user user"),
        "{line}"
    );
    assert!(line.contains("ip=127.0.0.1"), "{line}");
    assert!(line.contains("code=401"), "{line}");
    // The first, credential-less request is not a failure, nor a stale nonce.
    assert!(!log.contains("reason=\"error\" code=401"), "{log}");
    assert!(!log.contains("code=438"), "{log}");
    // The analyzer reads the text form too.
    let log_file = dir.join("text.log");
    std::fs::write(&log_file, &log).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .arg("analyze")
        .arg(&log_file)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains("wrong password for user user from 127.0.0.1"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_analyzer_explains_a_session_whose_peer_never_answered() {
    let dir = scratch("silent-peer");
    let server = Server::start(&dir, "json");
    // Nothing listens on the peer's port: uclient's data goes out through
    // the relay and nothing comes back.
    uclient(server.addr, "pass", common::free_port_pair("127.0.0.1"));
    let log = server.stop();
    let log_file = dir.join("serve.log");
    let output = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .arg("analyze")
        .arg(&log_file)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "an error finding:\n{report}\n{log}"
    );
    assert!(report.contains("session-peer-never-answered"), "{report}");
    assert!(
        report.contains("permission created for peer 127.0.0.1"),
        "{report}"
    );
    assert!(
        report.contains("nothing ever came back: the peer never answered"),
        "{report}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .args(["analyze", "--format", "json"])
        .arg(&log_file)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["inputs"][0]["format"], "edgeice-serve-log");
    assert!(
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "session-peer-never-answered" && f["severity"] == "error")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_admin_socket_survives_garbage_huge_lines_and_many_connections() {
    let dir = scratch("hostile");
    let server = Server::start(&dir, "json");
    let connect = || UnixStream::connect(&server.socket).unwrap();
    let read_line = |stream: &UnixStream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut line = String::new();
        let _ = BufReader::new(stream).read_line(&mut line);
        line
    };

    // Garbage, binary and all, is answered with an error.
    let mut garbage = connect();
    garbage.write_all(b"\x00\xff\xfe drop table\n").unwrap();
    let answer: Value = serde_json::from_str(&read_line(&garbage)).unwrap();
    assert_eq!(answer["ok"], false);
    drop(garbage);

    // A line of a megabyte is cut off at the limit, answered, and closed.
    let mut huge = connect();
    let _ = huge.write_all(&vec![b'a'; 1 << 20]);
    let answer: Value = serde_json::from_str(&read_line(&huge)).unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("longer than"),
        "{answer}"
    );
    drop(huge);

    // Many idle connections: those past the limit are closed at once.
    let held: Vec<UnixStream> = (0..32).map(|_| connect()).collect();
    let mut closed = 0;
    for stream in &held[16..] {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut byte = [0u8; 1];
        if matches!((&*stream).read(&mut byte), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 16, "connections past the limit are closed");
    drop(held);

    // And the server still answers.
    let listed = (0..50).find_map(|_| {
        let (ok, out, _) = server.sessions(&["--json"]);
        if ok {
            return Some(out);
        }
        std::thread::sleep(Duration::from_millis(100));
        None
    });
    assert!(listed.is_some_and(|out| out.contains("\"ok\":true")));
    server.stop();

    // A socket in a directory anyone may write to is refused.
    let outcome = common::run_bounded(
        {
            let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
            command
                .arg("serve")
                .args(common::turn_server_args("127.0.0.1:0", "61000-65535"))
                .args(["--admin-socket", "/tmp/edgeice-world-writable.sock"]);
            command
        },
        Duration::from_secs(20),
    );
    assert!(
        outcome.status.is_some_and(|s| !s.success()),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("writable by everyone"),
        "{}",
        outcome.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `request` and waits for the answer (lockstep: nothing is lost
/// to a full socket buffer); the answer, if one came.
fn exchange(socket: &UdpSocket, request: &[u8]) -> Option<Vec<u8>> {
    socket.send(request).unwrap();
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

#[test]
fn a_flood_of_wrong_passwords_is_logged_rate_limited_with_the_count_left_out() {
    use edgeice_stun::credentials::{Preparation, long_term_key};
    use edgeice_stun::{
        Attribute, AttributeType, Class, Message, MessageBuilder, MessageType, Method,
        TransactionId,
    };
    const FLOOD: u32 = 3000;
    let dir = scratch("flood");
    let server = Server::start(&dir, "json");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let allocate = |id: u32, signed: Option<(&str, &edgeice_stun::IntegrityKey)>| {
        let mut transaction = [0u8; 12];
        transaction[..4].copy_from_slice(&id.to_be_bytes());
        let mut buf = Vec::new();
        let kind = MessageType::new(Method::ALLOCATE, Class::Request);
        let mut b = MessageBuilder::new(&mut buf, kind, TransactionId(transaction));
        b.add(&Attribute::RequestedTransport(17)).unwrap();
        if let Some((nonce, key)) = signed {
            b.add(&Attribute::Username("user")).unwrap();
            b.add(&Attribute::Realm("edgeice.test")).unwrap();
            b.add(&Attribute::Nonce(nonce)).unwrap();
            b.add_integrity_sha1(key).unwrap();
        }
        buf
    };
    let challenge = exchange(&socket, &allocate(0, None)).expect("a 401");
    let message = Message::parse(&challenge).unwrap();
    let Some(Ok(Attribute::Nonce(nonce))) = message.get(AttributeType::NONCE) else {
        panic!("401 without a nonce")
    };
    let nonce = nonce.to_owned();
    let wrong = long_term_key(
        "user",
        "edgeice.test",
        "wrong",
        1,
        Preparation::OpaqueString,
    )
    .unwrap();
    let mut answered = 0;
    for id in 1..=FLOOD {
        answered += usize::from(exchange(&socket, &allocate(id, Some((&nonce, &wrong)))).is_some());
    }
    assert_eq!(
        answered, FLOOD as usize,
        "every guess answered (with a nonce of its own: not spoofed)"
    );
    // After a pause, one more; within a tick or two, the server says how
    // many of each reason it left out.
    std::thread::sleep(Duration::from_millis(500));
    exchange(&socket, &allocate(FLOOD + 1, Some((&nonce, &wrong))));
    for _ in 0..200 {
        let log = std::fs::read_to_string(&server.log).unwrap();
        if log.contains("refusals-left-out") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.stop();
    let refused = records(&log, "refused");
    let left_out: u64 = records(&log, "refusals-left-out")
        .iter()
        .map(|r| r["suppressed"].as_u64().unwrap())
        .sum();
    assert!(
        refused.len() < 100,
        "{} lines for {FLOOD} refusals: not rate-limited",
        refused.len()
    );
    let accounted: u64 = refused
        .iter()
        .map(|r| 1 + r["suppressed"].as_u64().unwrap())
        .sum::<u64>()
        + left_out;
    assert_eq!(
        accounted,
        u64::from(FLOOD) + 1,
        "every refusal written or counted"
    );
    assert!(
        refused
            .iter()
            .all(|r| r["ip"] == "127.0.0.1" && r["user"] == "user")
    );
    assert!(refused.iter().any(|r| r["reason"] == "wrong-password"));
    assert!(refused.iter().any(|r| r["reason"] == "guessing-backoff"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A signed (or, without `nonce`, unsigned) TURN request of `method`
/// for user `user:pass`, with REQUESTED-TRANSPORT UDP for an Allocate.
fn turn_request(method: edgeice_stun::Method, id: u32, nonce: Option<&str>) -> Vec<u8> {
    use edgeice_stun::credentials::{Preparation, long_term_key};
    use edgeice_stun::{Attribute, Class, MessageBuilder, MessageType, Method, TransactionId};
    let mut transaction = [0u8; 12];
    transaction[..4].copy_from_slice(&id.to_be_bytes());
    let mut buf = Vec::new();
    let kind = MessageType::new(method, Class::Request);
    let mut b = MessageBuilder::new(&mut buf, kind, TransactionId(transaction));
    if method == Method::ALLOCATE {
        b.add(&Attribute::RequestedTransport(17)).unwrap();
    }
    if let Some(nonce) = nonce {
        let key =
            long_term_key("user", "edgeice.test", "pass", 1, Preparation::OpaqueString).unwrap();
        b.add(&Attribute::Username("user")).unwrap();
        b.add(&Attribute::Realm("edgeice.test")).unwrap();
        b.add(&Attribute::Nonce(nonce)).unwrap();
        b.add_integrity_sha1(&key).unwrap();
    }
    buf
}

/// The NONCE and ERROR-CODE of an answer.
fn nonce_and_code(answer: &[u8]) -> (Option<String>, Option<u16>) {
    use edgeice_stun::{Attribute, AttributeType, Message};
    let message = Message::parse(answer).unwrap();
    let nonce = match message.get(AttributeType::NONCE) {
        Some(Ok(Attribute::Nonce(n))) => Some(n.to_owned()),
        _ => None,
    };
    let code = match message.get(AttributeType::ERROR_CODE) {
        Some(Ok(Attribute::ErrorCode(e))) => Some(e.code),
        _ => None,
    };
    (nonce, code)
}

/// One STUN message from a TCP stream (20-byte header, then its length).
fn read_stun(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut header = [0u8; 20];
    stream.read_exact(&mut header).ok()?;
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut message = header.to_vec();
    message.resize(20 + len, 0);
    stream.read_exact(&mut message[20..]).ok()?;
    Some(message)
}

#[test]
fn a_kicked_client_loses_its_allocation_and_a_tcp_one_its_connection() {
    use edgeice_stun::Method;
    let dir = scratch("kick");
    let server = Server::start(&dir, "json");

    // UDP: allocate, kick, and the next Refresh finds no allocation.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.connect(server.addr).unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (nonce, _) =
        nonce_and_code(&exchange(&udp, &turn_request(Method::ALLOCATE, 1, None)).unwrap());
    let nonce = nonce.expect("a nonce");
    let (_, code) =
        nonce_and_code(&exchange(&udp, &turn_request(Method::ALLOCATE, 2, Some(&nonce))).unwrap());
    assert_eq!(code, None, "allocated");

    // TCP: the same over a stream.
    let mut tcp = std::net::TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(&turn_request(Method::ALLOCATE, 3, None))
        .unwrap();
    let (tcp_nonce, _) = nonce_and_code(&read_stun(&mut tcp).unwrap());
    tcp.write_all(&turn_request(Method::ALLOCATE, 4, tcp_nonce.as_deref()))
        .unwrap();
    let (_, code) = nonce_and_code(&read_stun(&mut tcp).unwrap());
    assert_eq!(code, None, "allocated over TCP");

    let listed = server.listed();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let id_of = |transport: &str| {
        listed
            .iter()
            .find(|s| s["transport"] == transport)
            .and_then(|s| s["session"].as_u64())
            .unwrap()
    };
    let (udp_id, tcp_id) = (id_of("udp"), id_of("tcp"));
    for id in [udp_id, tcp_id] {
        let (ok, _, err) = server.sessions(&["kick", &id.to_string()]);
        assert!(ok, "kick {id}: {err}");
    }
    let (_, code) =
        nonce_and_code(&exchange(&udp, &turn_request(Method::REFRESH, 5, Some(&nonce))).unwrap());
    assert_eq!(code, Some(437), "the kicked allocation is gone");
    let mut rest = Vec::new();
    let closed = tcp.read_to_end(&mut rest).is_ok();
    assert!(closed, "the kicked TCP client's connection is closed");
    assert!(server.listed().is_empty());

    let log = server.stop();
    let ends = records(&log, "session-end");
    assert_eq!(
        ends.len(),
        2,
        "one end each, no second one when the connection closes:\n{log}"
    );
    assert!(ends.iter().all(|e| e["reason"] == "kicked"), "{ends:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
