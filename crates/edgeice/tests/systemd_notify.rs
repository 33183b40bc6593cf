//! `edgeice serve` under a service manager: with NOTIFY_SOCKET set it says
//! READY=1 once its listeners answer, pings the watchdog when WATCHDOG_USEC
//! asks for it, reports its allocations in STATUS= (and a drain), and says
//! STOPPING=1 on SIGTERM; a notify socket that is not there does not stop it. The test is
//! the service manager: it binds the Unix datagram socket itself, as
//! systemd binds /run/systemd/notify.

mod common;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Running;
use edgeice_stun::*;

/// A directory of this test's own, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeice-notify-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The server, its UDP/TCP address and its metrics address, started with
/// `env` and its output thrown away (nothing here waits for its lines).
fn spawn_server(env: &[(&str, &str)]) -> (Running, SocketAddr, SocketAddr) {
    let listen: SocketAddr = format!("127.0.0.1:{}", common::free_udp_tcp_port())
        .parse()
        .unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", common::free_udp_tcp_port())
        .parse()
        .unwrap();
    let args = common::turn_server_args(&listen.to_string(), "61000-65535");
    let child = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .arg("serve")
        .args(&args)
        .args(["--metrics", &metrics.to_string()])
        .envs(env.iter().copied())
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start edgeice");
    (Running::new(child), listen, metrics)
}

/// Receives notifications until one has a line `wanted`; returns every
/// line seen up to it. Panics after 20 s.
fn wait_for(socket: &UnixDatagram, wanted: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let found = text.lines().any(|line| line == wanted);
        seen.extend(text.lines().map(str::to_owned));
        if found {
            return;
        }
    }
    panic!("no {wanted} within 20 s; got {seen:?}");
}

/// Whether the server at `addr` answers a Binding request over UDP.
fn answers_binding(addr: SocketAddr) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    MessageBuilder::new(&mut buf, kind, TransactionId([7; 12]));
    socket.send_to(&buf, addr).unwrap();
    let mut answer = [0u8; 1500];
    socket
        .recv(&mut answer)
        .ok()
        .and_then(|n| Message::parse(&answer[..n]).ok())
        .is_some_and(|m| m.kind() == MessageType::new(Method::BINDING, Class::Success))
}

#[test]
fn ready_watchdog_status_and_stopping_reach_the_notify_socket() {
    let dir = scratch("lifecycle");
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let path = path.to_string_lossy().into_owned();
    // A watchdog of 2 s: pings due every second.
    let (mut server, listen, metrics) =
        spawn_server(&[("NOTIFY_SOCKET", &path), ("WATCHDOG_USEC", "2000000")]);

    let mut seen = Vec::new();
    wait_for(&socket, "READY=1", &mut seen);
    // Told ready, a client is served at once: UDP, TCP and metrics alike.
    assert!(answers_binding(listen), "READY=1 before UDP answers");
    assert!(TcpStream::connect(listen).is_ok(), "READY=1 before TCP");
    assert!(common::scrape(metrics).contains("edgeice_"));

    wait_for(&socket, "STATUS=serving: 0 allocations", &mut seen);
    wait_for(&socket, "WATCHDOG=1", &mut seen);
    seen.clear();
    wait_for(&socket, "WATCHDOG=1", &mut seen);

    let pid = server.child().id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for(&socket, "STOPPING=1", &mut seen);
    let status = server.child().wait().unwrap();
    assert!(
        status.success(),
        "edgeice serve exited with {status} after SIGTERM"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_watchdog_pings_unless_asked_for() {
    let dir = scratch("no-watchdog");
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let path = path.to_string_lossy().into_owned();
    let (mut server, _, _) = spawn_server(&[("NOTIFY_SOCKET", &path)]);
    let mut seen = Vec::new();
    wait_for(&socket, "READY=1", &mut seen);
    // Three timer ticks at least.
    let until = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned),
            );
        }
    }
    assert!(!seen.iter().any(|l| l == "WATCHDOG=1"), "{seen:?}");
    let pid = server.child().id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for(&socket, "STOPPING=1", &mut seen);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_notify_socket_does_not_stop_the_server() {
    let dir = scratch("missing");
    let path = dir.join("nobody-listens.sock");
    let path = path.to_string_lossy().into_owned();
    let (mut server, listen, _) =
        spawn_server(&[("NOTIFY_SOCKET", &path), ("WATCHDOG_USEC", "200000")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !answers_binding(listen) {
        assert!(Instant::now() < deadline, "the server never answered");
        assert!(
            server.child().try_wait().unwrap().is_none(),
            "the server stopped"
        );
    }
    // Several watchdog periods later it still serves.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        server.child().try_wait().unwrap().is_none(),
        "the server stopped"
    );
    assert!(answers_binding(listen));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_drain_says_so_in_status_then_stops() {
    let dir = scratch("drain");
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let path = path.to_string_lossy().into_owned();
    let (mut server, _, _) = spawn_server(&[("NOTIFY_SOCKET", &path)]);
    let mut seen = Vec::new();
    wait_for(&socket, "READY=1", &mut seen);
    let pid = server.child().id().to_string();
    let usr1 = Command::new("kill").args(["-USR1", &pid]).status();
    assert!(usr1.unwrap().success());
    // Empty, it drains at once: STATUS says so, then STOPPING.
    wait_for(&socket, "STATUS=draining: 0 allocations left", &mut seen);
    wait_for(&socket, "STOPPING=1", &mut seen);
    assert!(server.child().wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
