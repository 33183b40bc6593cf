//! A blocking driver for the sans-IO clients, and the third-party servers
//! and echo peers the interop tests run them against — all on 127.0.0.1.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

pub mod scenarios;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use edgeice_client::{
    Allocation, AllocationEvent, BindingClient, BindingEvent, InputError, StreamDecoder,
    TransactionConfig, Transport,
};

/// How long any wait in these tests may last.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A port of 127.0.0.1 free for both UDP and TCP.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        let port = udp.local_addr().expect("its address").port();
        // Keep clear of the relay range the servers use.
        if port < 61000 && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port of 127.0.0.1 free for both UDP and TCP");
}

/// coturn's `turnserver` on 127.0.0.1 (user `u:p`, realm `r`), killed on
/// drop.
pub struct Coturn {
    child: Child,
    /// Its UDP and TCP listening address.
    pub addr: SocketAddr,
    pidfile: std::path::PathBuf,
}

impl Coturn {
    /// Starts one on a free port and waits until it answers Binding.
    pub fn start() -> Coturn {
        Self::start_with(&[])
    }

    /// As [`Coturn::start`], with more flags.
    pub fn start_with(flags: &[&str]) -> Coturn {
        let port = free_port();
        let pidfile = std::env::temp_dir().join(format!("edgeice-client-coturn-{port}.pid"));
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                "--relay-ip=127.0.0.1",
                "--min-port=61000",
                "--max-port=65535",
                "--user=u:p",
                "--realm=r",
                "--lt-cred-mech",
                "--fingerprint",
                "--allow-loopback-peers",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--log-file=stdout",
                &format!("--pidfile={}", pidfile.display()),
            ])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run turnserver ({e}): install coturn, or run scripts/test.sh")
            });
        let coturn = Coturn {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            pidfile,
        };
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let quick = TransactionConfig {
                max_requests: 1,
                last_wait_factor: 1,
                rto: Duration::from_millis(200),
                ..TransactionConfig::default()
            };
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            if binding(&socket, coturn.addr, quick).is_some() {
                return coturn;
            }
        }
        panic!("turnserver on {} never answered", coturn.addr);
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pidfile);
    }
}

/// `edgeice serve` on 127.0.0.1 (user `u:p`, realm `r`, loopback peers
/// allowed), killed on drop. The binary is `$EDGEICE_BIN`, else the
/// workspace's `target/debug/edgeice` (built by `cargo test --workspace`
/// or `cargo build -p edgeice`); `None` when there is none.
pub struct EdgeiceServe {
    child: Child,
    /// Its UDP and TCP listening address.
    pub addr: SocketAddr,
}

impl EdgeiceServe {
    /// The binary to run, if built.
    pub fn binary() -> Option<std::path::PathBuf> {
        if let Some(bin) = std::env::var_os("EDGEICE_BIN") {
            return Some(bin.into());
        }
        let bin =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/edgeice");
        bin.exists().then_some(bin)
    }

    /// Starts one on a free port and waits until it answers Binding.
    pub fn start() -> Option<EdgeiceServe> {
        let binary = Self::binary()?;
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--user",
                "u:p",
                "--realm",
                "r",
                "--relay-ports",
                "61000-65535",
                "--allow-peer",
                "127.0.0.0/8",
                "--private-relay-ok",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run edgeice serve");
        let server = EdgeiceServe { child, addr };
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let quick = TransactionConfig {
                max_requests: 1,
                last_wait_factor: 1,
                rto: Duration::from_millis(200),
                ..TransactionConfig::default()
            };
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            if binding(&socket, addr, quick).is_some() && TcpStream::connect(addr).is_ok() {
                return Some(server);
            }
        }
        panic!("edgeice serve on {addr} never answered");
    }
}

impl Drop for EdgeiceServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one Binding transaction over `socket`; the mapped address, or
/// `None` on timeout.
pub fn binding(
    socket: &UdpSocket,
    server: SocketAddr,
    config: TransactionConfig,
) -> Option<SocketAddr> {
    let mut client = BindingClient::new(server, Transport::Udp, config);
    client.send_request(Instant::now()).unwrap();
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        while let Some(t) = client.poll_transmit() {
            socket.send_to(t.payload, t.destination).unwrap();
        }
        let wait = client
            .poll_timeout()
            .map_or(Duration::from_millis(50), |t| {
                t.saturating_duration_since(Instant::now())
            })
            .max(Duration::from_millis(1));
        socket.set_read_timeout(Some(wait)).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            let _ = client.handle_input(Instant::now(), &buf[..n]);
        }
        client.handle_timeout(Instant::now());
        match client.poll_event() {
            Some(BindingEvent::Mapped { mapped, .. }) => return Some(mapped),
            Some(other) => {
                assert!(matches!(other, BindingEvent::TimedOut { .. }), "{other:?}");
                return None;
            }
            None => {}
        }
    }
    None
}

/// A connection to the server: a UDP socket, or a TCP stream framed with
/// a [`StreamDecoder`].
pub enum Link {
    /// UDP.
    Udp(UdpSocket, SocketAddr),
    /// TCP.
    Tcp(TcpStream, StreamDecoder),
}

impl Link {
    /// Connects to `server` over `transport` (UDP or TCP).
    pub fn connect(server: SocketAddr, transport: Transport) -> Link {
        match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                Link::Udp(socket, server)
            }
            _ => {
                let stream = TcpStream::connect(server).unwrap();
                stream.set_nodelay(true).unwrap();
                Link::Tcp(stream, StreamDecoder::new())
            }
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Link::Udp(s, _) => s.local_addr().unwrap(),
            Link::Tcp(s, _) => s.local_addr().unwrap(),
        }
    }

    /// Sends one datagram or frame.
    pub fn send(&mut self, data: &[u8]) {
        match self {
            Link::Udp(s, server) => {
                s.send_to(data, *server).unwrap();
            }
            Link::Tcp(s, _) => s.write_all(data).unwrap(),
        }
    }

    /// Receives one datagram or frame into `buf`, waiting at most `wait`.
    pub fn recv(&mut self, buf: &mut Vec<u8>, wait: Duration) -> bool {
        let wait = Some(wait.max(Duration::from_millis(1)));
        match self {
            Link::Udp(s, server) => {
                s.set_read_timeout(wait).unwrap();
                buf.resize(65536, 0);
                match s.recv_from(buf) {
                    Ok((n, from)) if from == *server => {
                        buf.truncate(n);
                        true
                    }
                    _ => false,
                }
            }
            Link::Tcp(s, decoder) => {
                if let Some(frame) = decoder.next_raw().expect("framing") {
                    buf.clear();
                    buf.extend_from_slice(frame);
                    return true;
                }
                s.set_read_timeout(wait).unwrap();
                let space = decoder.read_buf(4096);
                match s.read(space) {
                    Ok(n) => decoder.commit(4096, n),
                    Err(e) => {
                        decoder.commit(4096, 0);
                        assert!(
                            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                            "{e}"
                        );
                    }
                }
                if let Some(frame) = decoder.next_raw().expect("framing") {
                    buf.clear();
                    buf.extend_from_slice(frame);
                    return true;
                }
                false
            }
        }
    }
}

/// Drives `allocation` over `link` until `done` says so or [`PATIENCE`]
/// runs out; returns every event and every relayed packet received.
pub fn drive(
    allocation: &mut Allocation,
    link: &mut Link,
    mut done: impl FnMut(&[AllocationEvent], &[(SocketAddr, Vec<u8>)]) -> bool,
) -> (Vec<AllocationEvent>, Vec<(SocketAddr, Vec<u8>)>) {
    let mut events = Vec::new();
    let mut data = Vec::new();
    let mut buf = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        while let Some(t) = allocation.poll_transmit() {
            link.send(t.payload);
        }
        while let Some(event) = allocation.poll_event() {
            events.push(event);
        }
        if done(&events, &data) {
            return (events, data);
        }
        let wait = allocation
            .poll_timeout()
            .map_or(Duration::from_millis(50), |t| {
                t.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_millis(50));
        if link.recv(&mut buf, wait) {
            match allocation.handle_input(Instant::now(), &buf) {
                Ok(Some((peer, bytes))) => data.push((peer, bytes.to_vec())),
                Ok(None) => {}
                // A second answer to a retransmitted request.
                Err(InputError::UnknownTransaction) => {}
                Err(e) => panic!("input refused: {e}"),
            }
        }
        allocation.handle_timeout(Instant::now());
    }
    panic!("gave up waiting; events {events:?}, data {data:?}");
}

/// A UDP echo peer on 127.0.0.1, stopped on drop.
pub struct UdpEcho {
    /// Its address.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEcho {
    /// Starts one.
    pub fn start() -> UdpEcho {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) && started.elapsed() < PATIENCE * 6 {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        });
        UdpEcho {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
