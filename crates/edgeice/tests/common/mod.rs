//! Starting `edgeice serve` from integration tests.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills a child process when the test ends, however it ends.
pub struct Running(Child);

impl Running {
    /// Takes charge of `child`.
    pub fn new(child: Child) -> Self {
        Running(child)
    }

    /// The process, to take its pipes or wait for it.
    pub fn child(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A coturn tool (`turnutils_uclient`, `turnutils_peer`...): coturn
/// 4.17.1's, the newest, where scripts/test.sh built it (`COTURN_BIN`, else
/// `~/.cache/coturn-4.17.1/build/bin`), else the one on PATH (Debian's
/// 4.6.1). Every test drives servers with 4.17.1's client when it can:
/// 4.6.1's picks among TLS 1.0, 1.1 and 1.2 contexts at random and gives
/// up after a few refused handshakes (rustls speaks TLS 1.2 and 1.3 only),
/// so its TLS runs lose whole clients now and then.
pub fn coturn_tool(name: &str) -> PathBuf {
    let dirs = [
        std::env::var_os("COTURN_BIN").map(PathBuf::from),
        std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache/coturn-4.17.1/build/bin")),
    ];
    dirs.into_iter()
        .flatten()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A UDP port of `ip` free with the one above it (coturn's peer and
/// client use both, for RTP and RTCP), and both below 61000: the tests
/// give servers relay ports 61000-65535, and a peer sharing a relay's port
/// (as SO_REUSEPORT lets it) would take that relay's datagrams.
pub fn free_port_pair(ip: &str) -> u16 {
    const RELAY_PORTS_START: u16 = 61000;
    (0..1000)
        .find_map(|_| {
            let port = UdpSocket::bind((ip, 0)).ok()?.local_addr().ok()?.port();
            let free = port < RELAY_PORTS_START - 1 && UdpSocket::bind((ip, port + 1)).is_ok();
            free.then_some(port)
        })
        .unwrap_or_else(|| panic!("no free pair of UDP ports on {ip} below {RELAY_PORTS_START}"))
}

/// coturn's echo peer, `turnutils_peer`, on `ip` (on a port and the
/// next, from [`free_port_pair`]), and its port.
pub fn start_peer(ip: &str) -> (Running, u16) {
    let port = free_port_pair(ip);
    let child = Command::new(coturn_tool("turnutils_peer"))
        .args(["-L", ip, "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run turnutils_peer ({e}): install coturn, or run scripts/test.sh")
        });
    // Returned only once it listens on both ports: a first datagram
    // relayed before then meets a closed port and is lost (CI saw one of
    // 200 go so).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(udp_port_bound(port) && udp_port_bound(port + 1)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    (Running::new(child), port)
}

/// Whether some UDP socket of this host is bound to `port`, as the
/// kernel lists them (looking leaves the port alone: a probe bind could
/// take it from the program about to bind it).
fn udp_port_bound(port: u16) -> bool {
    let local_port = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                line.split_whitespace()
                    .nth(1)
                    .is_some_and(|local| format!("{local} ").ends_with(&local_port))
            })
        })
    })
}

/// Runs coturn's `turnutils_uclient` (`flags` carry the credentials)
/// through `server` to a `turnutils_peer` on loopback: one client, 10
/// messages; true when every message came back.
///
/// The client binds two random channel numbers (of 4096) on one
/// allocation, to two peers; one run in 4096 draws the same number twice
/// and is refused (400, as RFC 8656 §12 and coturn itself require). Such a
/// run is the client's, not the server's: it is run again, up to twice.
pub fn uclient_relays(flags: &[&str], server: SocketAddr) -> bool {
    for _ in 0..3 {
        let (relayed, channel_collision) = uclient_run(flags, server);
        if relayed || !channel_collision {
            return relayed;
        }
    }
    false
}

/// One [`uclient_relays`] run: whether every message came back, and
/// whether a ChannelBind was refused with 400.
fn uclient_run(flags: &[&str], server: SocketAddr) -> (bool, bool) {
    let (_peer, peer_port) = start_peer("127.0.0.1");
    let output = Command::new(coturn_tool("turnutils_uclient"))
        .args(flags)
        .args(["-e", "127.0.0.1", "-r", &peer_port.to_string()])
        .args(["-p", &server.port().to_string()])
        .args(["-m", "1", "-n", "10", "-l", "120", "-z", "5"])
        .arg(server.ip().to_string())
        .output()
        .expect("turnutils_uclient (coturn; scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // One client is an RTP and RTCP pair: 20 messages each way.
    let relayed = stdout.contains("tot_send_msgs=20, tot_recv_msgs=20")
        && stdout.contains("Total lost packets 0 ");
    let collision = [&stdout, &stderr]
        .iter()
        .any(|out| out.contains("channel bind: error 400"));
    (relayed, collision)
}

/// A listener the server reported: ("udp" or "tcp", address).
pub type Listener = (String, SocketAddr);

/// Starts `edgeice serve` with `args` and waits for `expected` listeners
/// ("listening on" and "metrics on" lines) to be announced.
pub fn start_server(args: &[&str], expected: usize) -> (Running, Vec<Listener>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeice"));
    command.arg("serve").args(args);
    start_server_command(command, expected)
}

/// [`start_server`] for a command already made (under `ulimit`, say).
pub fn start_server_command(mut command: Command, expected: usize) -> (Running, Vec<Listener>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start edgeice");
    let stdout = child.stdout.take().expect("piped stdout");
    let server = Running(child);
    let mut listeners = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    while listeners.len() < expected {
        let Some(line) = lines.next() else { break };
        let line = line.expect("read server output");
        if let Some(rest) = line.strip_prefix("edgeice: listening on ") {
            let mut words = rest.split_whitespace();
            let (Some(proto), Some(addr)) = (words.next(), words.next()) else {
                panic!("unexpected server output: {line}")
            };
            listeners.push((proto.to_owned(), addr.parse().expect("a socket address")));
        } else if let Some(rest) = line.strip_prefix("edgeice: metrics on http://") {
            let addr = rest.trim_end_matches("/metrics");
            listeners.push((
                "metrics".to_owned(),
                addr.parse().expect("a socket address"),
            ));
        }
    }
    assert_eq!(listeners.len(), expected, "server stopped before listening");
    // Keep reading what the server prints, so it never writes to a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (server, listeners)
}

/// Fetches http://`addr`/metrics and returns the body.
pub fn scrape(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: edgeice\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the metrics response");
    assert!(
        response.starts_with("HTTP/1.1 200 OK"),
        "metrics answer:\n{response}"
    );
    response
}

/// The value of the metric line that starts with `series` (name and labels).
pub fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// What a bounded run printed: exit status (None if it had to be killed),
/// stdout, stderr.
pub struct Outcome {
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` in a process group of its own to completion, killing the
/// whole group after `timeout`.
pub fn run_bounded(mut command: Command, timeout: Duration) -> Outcome {
    let mut child = command
        .process_group(0)
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
            // The group: bash, the server and node (Chromium, which Playwright
            // starts in a session of its own, exits when node's pipe to it
            // closes).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
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

/// A port of 127.0.0.1 free for both UDP and TCP. `--listen 127.0.0.1:0`
/// is not used: the server binds UDP to port 0, then TCP to the port UDP got,
/// and exits with "binding TCP …: Address already in use" when a TCP socket
/// already holds that port — as a client connection of an earlier test left
/// in TIME-WAIT can (seen in about 1 start in 300 on a quiet machine, more
/// after the TCP tests).
pub fn free_udp_tcp_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        let port = udp.local_addr().expect("its address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port of 127.0.0.1 free for both UDP and TCP");
}

/// A TURN server on 127.0.0.1 for the interop peers (user `user:pass`,
/// realm `edgeice.test`, loopback peers allowed), and its UDP address; TCP
/// listens on the same port.
pub fn start_turn_server() -> (Running, SocketAddr) {
    let (server, udp, _) = start_turn_server_with(&[], 2);
    (server, udp)
}

/// The flags of the test TURN server: user `user:pass` in realm
/// `edgeice.test`, listening on `listen`, relaying from `relay_ports` to
/// loopback peers.
pub fn turn_server_args(listen: &str, relay_ports: &str) -> Vec<String> {
    [
        "--listen",
        listen,
        "--user",
        "user:pass",
        "--realm",
        "edgeice.test",
        "--relay-ports",
        relay_ports,
        "--allow-peer",
        "127.0.0.0/8",
        "--private-relay-ok",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// [`start_turn_server`] with `extra` flags, waiting for `expected`
/// listeners; returns every listener too.
pub fn start_turn_server_with(
    extra: &[&str],
    expected: usize,
) -> (Running, SocketAddr, Vec<Listener>) {
    let listen = format!("127.0.0.1:{}", free_udp_tcp_port());
    let base = turn_server_args(&listen, "61000-65535");
    let base: Vec<&str> = base.iter().map(String::as_str).collect();
    let (server, listeners) = start_server(&[&base[..], extra].concat(), expected);
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
    (server, udp, listeners)
}

/// A CA and a certificate it signed for 127.0.0.1, made with openssl in
/// `dir`: (ca, cert, key).
pub fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl {args:?} failed");
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509", "-days", "2", "-subj", "/CN=edgeice test CA"][..],
        &key,
        &["-keyout", "ca.key", "-out", "ca.pem"],
    ]
    .concat());
    run(&[
        &["req", "-subj", "/CN=127.0.0.1"][..],
        &key,
        &["-keyout", "key.pem", "-out", "req.csr"],
    ]
    .concat());
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("write san.cnf");
    run(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "cert.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// coturn's `turnserver` on 127.0.0.1 (user `u:p`, realm `r`, loopback
/// peers allowed, no TLS or DTLS), answering on the returned UDP/TCP port.
/// Waits until it answers a Binding request (bounded: 50 tries).
pub fn start_coturn() -> (Running, u16) {
    let port = free_udp_tcp_port();
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
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run turnserver (Debian's coturn; scripts/test.sh installs it)");
    let coturn = Running::new(child);
    let stun = format!("stun:127.0.0.1:{port}");
    let ready = (0..50).any(|_| {
        let up = Command::new(env!("CARGO_BIN_EXE_edgeice"))
            .args(["probe", &stun, "--timeout", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !up {
            std::thread::sleep(Duration::from_millis(100));
        }
        up
    });
    assert!(ready, "coturn never answered on port {port}");
    (coturn, port)
}

/// `edgeice serve` with user `u:p` on UDP, TCP and TLS (a certificate for
/// 127.0.0.1 from a CA made in `dir`): the server, its TLS address, and
/// the CA's file.
pub fn start_tls_server(dir: &Path) -> (Running, SocketAddr, PathBuf) {
    let (ca, cert, key) = certificates(dir);
    let listen = format!("127.0.0.1:{}", free_udp_tcp_port());
    let (server, listeners) = start_server(
        &[
            "--listen",
            &listen,
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert.to_string_lossy(),
            "--tls-key",
            &key.to_string_lossy(),
            "--user",
            "u:p",
            "--relay-ports",
            "61000-65535",
            "--allow-peer",
            "127.0.0.0/8",
            "--private-relay-ok",
        ],
        3,
    );
    let tls = listeners
        .iter()
        .find(|(proto, _)| proto == "tls")
        .expect("a TLS listener")
        .1;
    (server, tls, ca)
}

/// A STUN request of `method` with `attributes`, signed with `key` when
/// given (MESSAGE-INTEGRITY), and a FINGERPRINT.
pub fn stun_request(
    method: edgeice_stun::Method,
    id: [u8; 12],
    attributes: &[edgeice_stun::Attribute<'_>],
    key: Option<&edgeice_stun::IntegrityKey>,
) -> Vec<u8> {
    use edgeice_stun::{Class, MessageBuilder, MessageType, TransactionId};
    let mut buf = Vec::new();
    let kind = MessageType::new(method, Class::Request);
    let mut b = MessageBuilder::new(&mut buf, kind, TransactionId(id));
    for attribute in attributes {
        b.add(attribute).unwrap();
    }
    if let Some(key) = key {
        b.add_integrity_sha1(key).unwrap();
    }
    b.add_fingerprint().unwrap();
    buf
}
