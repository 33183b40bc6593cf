//! Two libnice agents (the ICE library of GStreamer's webrtcbin, Pidgin and
//! Farstream; Debian's libnice10 through its GObject bindings) connect
//! through `edgeice serve` with relay candidates only, as reliable
//! (pseudo-TCP) streams, and send a message each way: TURN over UDP, and TURN
//! over TCP to the server. The peers are `tests/peers/libnice_relay.py`, run
//! with Debian's `/usr/bin/python3` (python3-gi, gir1.2-nice-0.1 and
//! libnice10; `scripts/test.sh` installs them).

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's Python, which sees Debian's python3-gi (a venv would not).
const PYTHON: &str = "/usr/bin/python3";
const PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/libnice_relay.py"
);
/// The script bounds each of its own waits; this is the last resort.
const PEER_TIMEOUT: Duration = Duration::from_secs(90);

/// What a bounded run printed: exit status (None if it had to be killed),
/// stdout, stderr.
struct Outcome {
    status: Option<std::process::ExitStatus>,
    stdout: String,
    stderr: String,
}

/// Runs `command` to completion, killing it after `timeout`.
fn run_bounded(mut command: Command, timeout: Duration) -> Outcome {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the peer") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Outcome {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn check_dependencies() {
    assert!(
        Path::new(PYTHON).exists(),
        "no {PYTHON}: install Debian's python3, python3-gi, gir1.2-nice-0.1 and libnice10 \
         (run scripts/test.sh)"
    );
    let outcome = run_bounded(
        {
            let mut c = Command::new(PYTHON);
            c.args([
                "-c",
                "import gi; gi.require_version('Nice', '0.1'); from gi.repository import Nice",
            ]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(
        outcome.status.is_some_and(|s| s.success()),
        "libnice's Python bindings are missing: install the Debian packages python3-gi \
         gir1.2-nice-0.1 libnice10 (run scripts/test.sh)\n{}",
        outcome.stderr
    );
}

/// A port of 127.0.0.1 free for both UDP and TCP. `--listen 127.0.0.1:0`
/// is not used: the server binds UDP to port 0, then TCP to the port UDP got,
/// and exits with "binding TCP …: Address already in use" when a TCP socket
/// already holds that port — as a client connection of an earlier test left
/// in TIME-WAIT can (seen in about 1 start in 300 on a quiet machine, more
/// after the TCP tests).
fn free_udp_tcp_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        let port = udp.local_addr().expect("its address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port of 127.0.0.1 free for both UDP and TCP");
}

fn start_server() -> (common::Running, SocketAddr) {
    let listen = format!("127.0.0.1:{}", free_udp_tcp_port());
    let (server, listeners) = common::start_server(
        &[
            "--listen",
            &listen,
            "--user",
            "user:pass",
            "--realm",
            "edgeice.test",
            "--relay-ports",
            "61000-65535",
            "--allow-peer",
            "127.0.0.0/8",
            "--private-relay-ok",
        ],
        2,
    );
    let udp = listeners
        .iter()
        .find(|(proto, _)| proto == "udp")
        .expect("a UDP listener")
        .1;
    assert!(
        listeners
            .iter()
            .any(|(proto, addr)| proto == "tcp" && *addr == udp),
        "expected a TCP listener on {udp}: {listeners:?}"
    );
    (server, udp)
}

/// Runs the two libnice agents against `server` over `transport`.
fn libnice_relays(server: SocketAddr, transport: &str) {
    let mut command = Command::new(PYTHON);
    command.arg(PEER).arg(server.to_string()).arg(transport);
    command.args(["user", "pass"]);
    let outcome = run_bounded(command, PEER_TIMEOUT);
    match outcome.status {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "libnice over TURN/{transport} failed ({status}):\n{}\n{}",
            outcome.stdout, outcome.stderr
        ),
        None => panic!(
            "libnice over TURN/{transport} still running after {PEER_TIMEOUT:?}, killed:\n{}\n{}",
            outcome.stdout, outcome.stderr
        ),
    }
    assert!(
        outcome.stdout.contains("OK: libnice"),
        "libnice exited 0 without reporting success:\n{}",
        outcome.stdout
    );
}

#[test]
fn libnice_agents_relay_over_turn_udp() {
    check_dependencies();
    let (_server, addr) = start_server();
    libnice_relays(addr, "udp");
}

#[test]
fn libnice_agents_relay_over_turn_tcp() {
    check_dependencies();
    let (_server, addr) = start_server();
    libnice_relays(addr, "tcp");
}
