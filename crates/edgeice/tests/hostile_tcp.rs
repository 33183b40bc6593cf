//! `edgeice serve` against clients that hold TCP connections open and say
//! nothing, more of them than it has files for, or stop reading what it
//! sends: it keeps serving everyone else.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use edgeice_client::{
    Allocation, AllocationConfig, AllocationEvent, Credentials, StreamDecoder, Transport,
};
use edgeice_stun::*;

/// `edgeice serve` on loopback with the usual test user, under a
/// `ulimit -n` of `files` (soft and hard: it cannot raise it).
fn start_with_files(files: u32, extra: &[&str]) -> (common::Running, SocketAddr) {
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$0\" serve \"$@\""))
        .arg(env!("CARGO_BIN_EXE_edgeice"))
        .args(common::turn_server_args(&listen, "61000-65535"))
        .args(extra);
    let (server, listeners) = common::start_server_command(command, 2);
    (server, listeners[0].1)
}

fn binding_request() -> Vec<u8> {
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    let mut b = MessageBuilder::new(&mut buf, kind, TransactionId([7; 12]));
    b.add_fingerprint().unwrap();
    buf
}

/// Whether a Binding request over UDP gets an answer (three tries).
fn answers_binding_over_udp(server: SocketAddr) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 1500];
    (0..3).any(|_| {
        socket.send_to(&binding_request(), server).unwrap();
        matches!(socket.recv_from(&mut buf), Ok((n, from)) if from == server
            && Message::parse(&buf[..n]).is_ok_and(|m| m.kind().class == Class::Success))
    })
}

/// Whether a Binding request over TCP from `local_ip` gets an answer.
fn answers_binding_over_tcp(server: SocketAddr, local_ip: &str) -> bool {
    let Ok(mut stream) = connect_from(server, local_ip) else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    if stream.write_all(&binding_request()).is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    matches!(stream.read(&mut buf), Ok(n) if n >= 20
        && Message::parse(&buf[..n]).is_ok_and(|m| m.kind().class == Class::Success))
}

fn connect_from(server: SocketAddr, local_ip: &str) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{local_ip}:0").parse().unwrap();
    socket.bind(&local.into())?;
    socket.connect_timeout(&server.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// `n` connections that never send a byte (those the server let be made).
fn idle_connections(server: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect_timeout(&server, Duration::from_secs(2)).ok())
        .collect()
}

/// Whether the server closes `stream` within `within`.
fn closed_by_server(mut stream: &TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Whether `edgeice probe` allocates over UDP.
fn allocates_over_udp(server: SocketAddr) -> bool {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
    command.args(["probe", &format!("turn:{server}"), "--user", "user"]);
    command.args(["--password", "pass", "--json"]);
    let outcome = common::run_bounded(command, Duration::from_secs(60));
    let json: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap_or_default();
    json["servers"][0]["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["name"] == "allocate udp" && c["status"] == "pass")
}

fn still_running(server: &mut common::Running) -> bool {
    server.child().try_wait().unwrap().is_none()
}

/// Retries `check` for up to `patience`.
fn eventually(patience: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// Before: with 256 files, the first accept that failed with EMFILE ended
// the process ("edgeice: accepting TCP: Too many open files"); and once the
// connection limit was full of idle connections, no TCP client got in.
#[test]
fn idle_connections_beyond_the_file_limit_make_room_and_udp_goes_on() {
    let (mut server, addr) = start_with_files(256, &[]);
    let idle = idle_connections(addr, 400);
    assert!(idle.len() > 100, "only {} connections made", idle.len());
    // The default limit follows from the files: the oldest idle ones are
    // closed to make room for the newer.
    let closed = idle
        .iter()
        .filter(|s| closed_by_server(s, Duration::from_millis(300)))
        .count();
    assert!(closed >= 200, "{closed} of {} closed", idle.len());
    assert!(still_running(&mut server), "the server died");
    assert!(answers_binding_over_udp(addr));
    assert!(allocates_over_udp(addr));
    // A TCP client is served at once, the idle ones still open: the oldest
    // of them makes room for it.
    assert!(answers_binding_over_tcp(addr, "127.0.0.2"));
    assert!(still_running(&mut server));
}

#[test]
fn accepts_failing_for_want_of_files_are_survived() {
    // No connection limit: the process runs out of files and accept fails.
    let (mut server, addr) = start_with_files(
        256,
        &["--max-tcp-connections", "100000", "--tcp-idle-timeout", "3"],
    );
    let idle = idle_connections(addr, 400);
    assert!(idle.len() > 100, "only {} connections made", idle.len());
    std::thread::sleep(Duration::from_millis(500));
    assert!(still_running(&mut server), "the server died");
    assert!(answers_binding_over_udp(addr));
    drop(idle);
    assert!(eventually(Duration::from_secs(20), || allocates_over_udp(
        addr
    )));
    assert!(eventually(Duration::from_secs(20), || {
        answers_binding_over_tcp(addr, "127.0.0.1")
    }));
    assert!(still_running(&mut server));
}

// Before: no per-address limit; one client could hold every connection.
#[test]
fn one_address_cannot_take_every_connection() {
    let (_server, udp, _) =
        common::start_turn_server_with(&["--max-tcp-connections-per-ip", "3"], 2);
    let mut held = idle_connections(udp, 3);
    assert_eq!(held.len(), 3);
    for stream in &mut held {
        stream.write_all(&binding_request()).unwrap();
        let mut buf = [0u8; 1500];
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert!(stream.read(&mut buf).unwrap() >= 20, "answered");
    }
    let fourth = TcpStream::connect(udp).unwrap();
    assert!(closed_by_server(&fourth, Duration::from_secs(10)));
    assert!(answers_binding_over_tcp(udp, "127.0.0.2"));
}

// Before: a connection that never completed a request stayed open forever
// (slowloris), and so did one that went quiet without an allocation.
#[test]
fn silent_and_trickling_connections_are_closed_but_allocations_kept() {
    let (_server, udp, _) = common::start_turn_server_with(&["--tcp-idle-timeout", "1"], 2);
    let silent = TcpStream::connect(udp).unwrap();
    assert!(closed_by_server(&silent, Duration::from_secs(10)));

    let mut trickling = TcpStream::connect(udp).unwrap();
    let request = binding_request();
    let mut closed = false;
    for byte in request.iter().take(request.len() - 1) {
        if trickling.write_all(std::slice::from_ref(byte)).is_err() {
            closed = true;
            break;
        }
        if closed_by_server(&trickling, Duration::from_millis(300)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "a request trickled over 5 s kept its connection");

    let mut answered = TcpStream::connect(udp).unwrap();
    answered.write_all(&binding_request()).unwrap();
    assert!(closed_by_server(&answered, Duration::from_secs(10)));

    // An allocation keeps its quiet connection.
    let (mut link, mut allocation) = tcp_allocation(udp);
    std::thread::sleep(Duration::from_secs(3));
    let ip = "127.0.0.1".parse().unwrap();
    allocation.create_permission(Instant::now(), ip).unwrap();
    let events = drive(&mut allocation, &mut link, |e| !e.is_empty());
    assert!(
        matches!(events[..], [AllocationEvent::PermissionCreated { .. }]),
        "{events:?}"
    );
}

// Before: each connection could queue 512 messages whatever their size, so
// a client that stopped reading while 60 KB datagrams were relayed to it
// held about 30 MB of the server's memory.
#[test]
fn a_client_that_stops_reading_holds_little_memory() {
    let (server, udp, _) = common::start_turn_server_with(&[], 2);
    let pid = server_pid(server);
    let (mut link, mut allocation) = tcp_allocation(udp);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    allocation
        .create_permission(Instant::now(), peer_addr.ip())
        .unwrap();
    let events = drive(&mut allocation, &mut link, |e| !e.is_empty());
    assert!(matches!(
        events[..],
        [AllocationEvent::PermissionCreated { .. }]
    ));
    let mut out = Vec::new();
    allocation
        .send_to(Instant::now(), peer_addr, b"hello", &mut out)
        .unwrap();
    link.0.write_all(&out).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let (_, relayed) = peer.recv_from(&mut buf).unwrap();

    let before = rss_kb(pid.0);
    let datagram = vec![0x5a; 60_000];
    for _ in 0..2000 {
        let _ = peer.send_to(&datagram, relayed);
    }
    std::thread::sleep(Duration::from_secs(2));
    let grown_kb = rss_kb(pid.0).saturating_sub(before);
    assert!(grown_kb < 12 * 1024, "the server grew by {grown_kb} KB");
    drop(pid);
}

/// The server and its process ID.
struct Pid(u32, #[allow(dead_code)] common::Running);

fn server_pid(mut server: common::Running) -> Pid {
    Pid(server.child().id(), server)
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A TCP connection to `server` and an allocation made over it.
struct Link(TcpStream, StreamDecoder);

fn tcp_allocation(server: SocketAddr) -> (Link, Allocation) {
    let stream = TcpStream::connect(server).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut link = Link(stream, StreamDecoder::new());
    let credentials = Credentials {
        username: "user".into(),
        password: "pass".into(),
    };
    let config = AllocationConfig::new(server, Transport::Tcp, credentials);
    let mut allocation = Allocation::new(config);
    allocation.allocate(Instant::now()).unwrap();
    let events = drive(&mut allocation, &mut link, |e| !e.is_empty());
    assert!(
        matches!(events[..], [AllocationEvent::Allocated { .. }]),
        "{events:?}"
    );
    (link, allocation)
}

/// Drives `allocation` until `done` says so (10 s at most).
fn drive(
    allocation: &mut Allocation,
    link: &mut Link,
    mut done: impl FnMut(&[AllocationEvent]) -> bool,
) -> Vec<AllocationEvent> {
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        while let Some(t) = allocation.poll_transmit() {
            link.0.write_all(t.payload).unwrap();
        }
        while let Some(event) = allocation.poll_event() {
            events.push(event);
        }
        if done(&events) {
            return events;
        }
        while let Some(frame) = link.1.next_raw().unwrap() {
            let _ = allocation.handle_input(Instant::now(), frame);
        }
        link.0
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        match link.0.read(&mut chunk) {
            Ok(0) => panic!("the server closed the connection; events {events:?}"),
            Ok(n) => link.1.push(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
        allocation.handle_timeout(Instant::now());
    }
    panic!("gave up; events {events:?}");
}
