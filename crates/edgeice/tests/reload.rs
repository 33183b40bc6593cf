//! Operating `edgeice serve` with signals: SIGHUP reloads (a new user, a
//! renewed certificate, a broken one refused) while an allocation keeps
//! refreshing and relaying and a TLS session stays up; certificate files
//! that change are picked up without a signal; SIGUSR2 reloads as coturn does; SIGPIPE does
//! not kill (SIGUSR1 drains: tests/drain.rs); SIGTERM exits 0 with a last line; the log file is reopened;
//! JSON mode writes only JSON; no colour codes in a file; the first
//! password never in a log but on a terminal. Real signals (`kill`), real
//! files, coturn's `turnutils_uclient`, `openssl s_client`, util-linux's
//! `script` for a terminal.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgeice_client::{Allocation, AllocationConfig, AllocationEvent, Credentials, Transport};
use edgeice_stun::*;

const EDGEICE: &str = env!("CARGO_BIN_EXE_edgeice");

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeice-reload-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `edgeice serve ARGS` with stderr into `dir/stderr` (a file: no
/// terminal) and stdout read until `expected` listeners are announced
/// (text `edgeice: listening on PROTO ADDR` or, in JSON mode, objects
/// whose message says so). Returns the server, the listeners, and the
/// stdout lines read so far and to come.
struct Server {
    running: common::Running,
    listeners: Vec<(String, SocketAddr)>,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stderr: PathBuf,
}

fn start(dir: &Path, args: &[&str], expected: usize) -> Server {
    start_with_env(dir, args, expected, &[])
}

/// [`start`] with these environment variables.
fn start_with_env(dir: &Path, args: &[&str], expected: usize, env: &[(&str, &str)]) -> Server {
    let stderr = dir.join("stderr");
    let mut child = Command::new(EDGEICE)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start edgeice");
    let stdout = child.stdout.take().unwrap();
    let running = common::Running::new(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut listeners = Vec::new();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    while listeners.len() < expected {
        let Some(Ok(line)) = lines.next() else {
            panic!(
                "server stopped before listening:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )
        };
        seen.lock().unwrap().push(line.clone());
        let text = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(v) => v["message"].as_str().unwrap_or_default().to_owned(),
            Err(_) => line.strip_prefix("edgeice: ").unwrap_or(&line).to_owned(),
        };
        if let Some(rest) = text.strip_prefix("listening on ") {
            let mut words = rest.split_whitespace();
            let proto = words.next().unwrap().to_owned();
            listeners.push((proto, words.next().unwrap().parse().unwrap()));
        }
    }
    let more = seen.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            more.lock().unwrap().push(line);
        }
    });
    Server {
        running,
        listeners,
        stdout: seen,
        stderr,
    }
}

impl Server {
    fn pid(&mut self) -> u32 {
        self.running.child().id()
    }

    fn signal(&mut self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    fn listener(&self, proto: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(p, _)| p == proto)
            .unwrap_or_else(|| panic!("no {proto} listener: {:?}", self.listeners))
            .1
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (bounded) until stderr holds `count` lines containing `text`.
    fn wait_for_log(&self, text: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = self.stderr();
            if log.matches(text).count() >= count {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {count}× {text:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    fn alive(&mut self) -> bool {
        self.running.child().try_wait().unwrap().is_none()
    }

    /// Waits (bounded) for the process to exit; its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let child: &mut Child = self.running.child();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Answers a Binding request over UDP: the server is up and serving.
fn answers_binding(server: SocketAddr) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let request = binding_request(7);
    let mut buf = [0u8; 1500];
    (0..5).any(|_| {
        socket.send_to(&request, server).unwrap();
        socket
            .recv(&mut buf)
            .is_ok_and(|n| Message::parse(&buf[..n]).is_ok_and(|m| m.class() == Class::Success))
    })
}

fn binding_request(id: u8) -> Vec<u8> {
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    let mut b = MessageBuilder::new(&mut buf, kind, TransactionId([id; 12]));
    b.add_fingerprint().unwrap();
    buf
}

/// turnutils_uclient over TLS to `server` as u:p, relaying 100 messages
/// (and their RTCP) 50 ms apart to the peer, in a thread: its stdout.
fn uclient_over_tls(server: SocketAddr, peer_port: u16) -> std::thread::JoinHandle<String> {
    let mut command = Command::new("timeout");
    command
        .arg("60")
        .arg(common::coturn_tool("turnutils_uclient"))
        .args(["-t", "-S", "-m", "1", "-n", "100", "-z", "50"])
        .args([
            "-u",
            "u",
            "-w",
            "p",
            "-e",
            "127.0.0.1",
            "-r",
            &peer_port.to_string(),
        ])
        .args(["-p", &server.port().to_string(), "127.0.0.1"]);
    std::thread::spawn(move || {
        let output = command
            .output()
            .expect("run turnutils_uclient (install coturn, or run scripts/test.sh)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
}

/// A UDP allocation of edgeice's client crate, driven by the test.
struct Client {
    socket: UdpSocket,
    allocation: Allocation,
    events: Vec<AllocationEvent>,
}

impl Client {
    fn new(server: SocketAddr, user: &str, password: &str) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(server).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let credentials = Credentials {
            username: user.into(),
            password: password.into(),
        };
        let config = AllocationConfig::new(server, Transport::Udp, credentials);
        Client {
            socket,
            allocation: Allocation::new(config),
            events: Vec::new(),
        }
    }

    /// Sends what is due, reads for a moment, runs the timers; payloads
    /// relayed back from peers go to `relayed`.
    fn turn(&mut self, relayed: &mut Vec<Vec<u8>>) {
        while let Some(t) = self.allocation.poll_transmit() {
            self.socket.send(t.data).unwrap();
        }
        let mut buf = [0u8; 2048];
        while let Ok(n) = self.socket.recv(&mut buf) {
            if let Ok(Some((_, data))) = self.allocation.handle_input(Instant::now(), &buf[..n]) {
                relayed.push(data.to_vec());
            }
            while let Some(t) = self.allocation.poll_transmit() {
                self.socket.send(t.data).unwrap();
            }
        }
        self.allocation.handle_timeout(Instant::now());
        while let Some(event) = self.allocation.poll_event() {
            self.events.push(event);
        }
    }

    /// Turns until an event `wanted` matches (10 s at most).
    fn until(&mut self, wanted: impl Fn(&AllocationEvent) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.events.iter().any(&wanted) {
            assert!(Instant::now() < deadline, "events: {:?}", self.events);
            self.turn(&mut Vec::new());
        }
    }

    fn send(&mut self, peer: SocketAddr, payload: &[u8]) {
        let mut out = Vec::new();
        self.allocation
            .send_to(Instant::now(), peer, payload, &mut out)
            .unwrap();
        self.socket.send(&out).unwrap();
    }
}

fn refreshes(events: &[AllocationEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, AllocationEvent::Refreshed { .. }))
        .count()
}

#[test]
fn sighup_adds_a_user_while_an_allocation_keeps_refreshing_and_relaying() {
    let dir = scratch("user");
    let config = dir.join("edgeice.toml");
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let settings = format!(
        "listen = [\"{listen}\"]\nrealm = \"edgeice.test\"\nrelay-ports = \"61000-65535\"\n\
         allow-peer = [\"127.0.0.0/8\"]\nprivate-relay-ok = true\n"
    );
    std::fs::write(&config, format!("{settings}user = [\"alice:one\"]\n")).unwrap();
    let config_arg = config.to_string_lossy().into_owned();
    // max-allocate-lifetime is not in the config file's keys: a flag.
    let mut server = start(
        &dir,
        &[
            "serve",
            "--config",
            &config_arg,
            "--max-allocate-lifetime",
            "4",
        ],
        2,
    );
    let udp = server.listener("udp");
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let peer: SocketAddr = format!("127.0.0.1:{peer_port}").parse().unwrap();
    let mut carol = Client::new(udp, "carol", "two");
    carol.allocation.allocate(Instant::now()).unwrap();
    carol.until(|e| matches!(e, AllocationEvent::Failed { .. }));
    assert!(
        matches!(
            carol.events[..],
            [AllocationEvent::Failed {
                code: Some(401),
                ..
            }]
        ),
        "carol is let in before she is added: {:?}",
        carol.events
    );

    let mut alice = Client::new(udp, "alice", "one");
    alice.allocation.allocate(Instant::now()).unwrap();
    alice.until(|e| matches!(e, AllocationEvent::Allocated { .. }));
    alice
        .allocation
        .create_permission(Instant::now(), peer.ip())
        .unwrap();
    alice.until(|e| matches!(e, AllocationEvent::PermissionCreated { .. }));

    // Alice relays one packet every 50 ms for 10 s (her 4 s allocation
    // refreshed every 2 s), while carol is added and the server gets 21
    // SIGHUPs.
    let started = Instant::now();
    let (mut sent, mut relayed) = (0u32, Vec::new());
    let mut next_send = Instant::now();
    let mut reloaded = false;
    while started.elapsed() < Duration::from_secs(10) {
        if Instant::now() >= next_send {
            alice.send(peer, format!("packet {sent}").as_bytes());
            sent += 1;
            next_send += Duration::from_millis(50);
        }
        alice.turn(&mut relayed);
        if !reloaded && started.elapsed() > Duration::from_secs(3) {
            reloaded = true;
            std::fs::write(
                &config,
                format!("{settings}user = [\"alice:one\", \"carol:two\"]\n"),
            )
            .unwrap();
            server.signal("HUP");
            server.wait_for_log("SIGHUP: reloaded: 2 users (1 added, 0 removed)", 1);
            for _ in 0..20 {
                server.signal("HUP");
            }
        }
    }
    // What is still on its way.
    let deadline = Instant::now() + Duration::from_secs(2);
    while relayed.len() < sent as usize && Instant::now() < deadline {
        alice.turn(&mut relayed);
    }
    assert!(server.alive(), "{}", server.stderr());
    assert!(
        !alice
            .events
            .iter()
            .any(|e| matches!(e, AllocationEvent::Failed { .. })),
        "{:?}",
        alice.events
    );
    assert!(
        refreshes(&alice.events) >= 3,
        "refreshes: {:?}",
        alice.events
    );
    assert_eq!(relayed.len(), sent as usize, "packets lost across reloads");
    // Every SIGHUP was taken as a reload (signals that come while one
    // runs may be merged into one).
    server.wait_for_log("SIGHUP: reloaded", 2);
    // Carol is in, and relays (edgeice's client: turnutils_uclient does
    // not refresh a 4 s allocation in time during its run).
    let mut carol = Client::new(udp, "carol", "two");
    carol.allocation.allocate(Instant::now()).unwrap();
    carol.until(|e| matches!(e, AllocationEvent::Allocated { .. }));
    carol
        .allocation
        .create_permission(Instant::now(), peer.ip())
        .unwrap();
    carol.until(|e| matches!(e, AllocationEvent::PermissionCreated { .. }));
    let mut echoed = Vec::new();
    for i in 0..5 {
        carol.send(peer, format!("carol {i}").as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while echoed.len() < 5 && Instant::now() < deadline {
        carol.turn(&mut echoed);
    }
    assert_eq!(echoed.len(), 5, "carol's packets: {echoed:?}");

    // A changed password takes effect (the keys of unchanged lines are
    // kept across reloads, never a changed one's).
    std::fs::write(
        &config,
        format!("{settings}user = [\"alice:uno\", \"carol:two\"]\n"),
    )
    .unwrap();
    // Reloads the loop above asked for may still be running (signals that
    // come during one merge into the next): wait for one after this one.
    let before = server.stderr().matches("SIGHUP: reloaded").count();
    server.signal("HUP");
    server.wait_for_log("SIGHUP: reloaded", before + 1);
    let allocates = |password: &str| {
        let mut client = Client::new(udp, "alice", password);
        client.allocation.allocate(Instant::now()).unwrap();
        client.until(|e| {
            matches!(
                e,
                AllocationEvent::Allocated { .. } | AllocationEvent::Failed { .. }
            )
        });
        matches!(client.events[..], [AllocationEvent::Allocated { .. }])
    };
    // The reload that read the new file may be the one after the line
    // waited for: a bounded number of tries, one reload apart.
    let mut accepted = allocates("uno");
    for _ in 0..20 {
        if accepted {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        accepted = allocates("uno");
    }
    assert!(accepted, "alice's new password refused");
    assert!(!allocates("one"), "alice's old password still works");

    server.signal("TERM");
    assert_eq!(server.exit_code(), Some(0), "{}", server.stderr());
    let log = server.stderr();
    assert!(
        log.lines()
            .last()
            .unwrap_or_default()
            .contains("SIGTERM: stopped"),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "colour codes in a file:\n{log}");
    // Refusals say "wrong password for user alice"; no password itself.
    for secret in ["alice:one", "alice:uno", "carol:two", "password="] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// A self-signed certificate for 127.0.0.1 named `cn`, as `dir/NAME.pem`
/// and `dir/NAME.key`.
fn self_signed(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={cn}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success());
    (cert, key)
}

/// Puts `from`'s certificate and key in place of the files the server
/// reads, each by a rename (as certbot's symlink swap: never half written).
fn install(dir: &Path, from: &(PathBuf, PathBuf)) {
    for (src, dst) in [(&from.0, "cert.pem"), (&from.1, "key.pem")] {
        let tmp = dir.join(format!("{dst}.tmp"));
        std::fs::copy(src, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join(dst)).unwrap();
    }
}

/// The subject CN of the certificate a new TLS handshake with `addr` gets.
fn served_cn(addr: SocketAddr) -> String {
    let output = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect", &addr.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .map(|s| {
            s.trim()
                .trim_start_matches("CN")
                .trim_start_matches([' ', '='])
                .to_owned()
        })
        .unwrap_or_else(|| panic!("no certificate from {addr}:\n{text}"))
}

/// A TLS session with the server (openssl s_client), kept open: Binding
/// requests written to it are answered in it.
struct TlsSession(common::Running);

impl TlsSession {
    fn open(addr: SocketAddr) -> Self {
        let child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &addr.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run openssl s_client");
        TlsSession(common::Running::new(child))
    }

    /// Sends a Binding request; whether its success answer comes back.
    fn binding(&mut self, id: u8) -> bool {
        let child = self.0.child();
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(&binding_request(id))
            .unwrap();
        child.stdin.as_mut().unwrap().flush().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut header = [0u8; 20];
            let ok = stdout.read_exact(&mut header).is_ok();
            let length = u16::from_be_bytes([header[2], header[3]]) as usize;
            let mut rest = vec![0u8; length];
            let ok = ok && stdout.read_exact(&mut rest).is_ok();
            let _ = tx.send((
                ok && header[0..2] == [0x01, 0x01] && header[8..20] == [id; 12],
                stdout,
            ));
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((ok, stdout)) => {
                self.0.child().stdout = Some(stdout);
                ok
            }
            Err(_) => false,
        }
    }
}

#[test]
fn a_renewed_certificate_is_served_to_new_handshakes_and_a_broken_one_is_refused() {
    let dir = scratch("tls");
    let one = self_signed(&dir, "one", "edgeice-one");
    let two = self_signed(&dir, "two", "edgeice-two");
    let three = self_signed(&dir, "three", "edgeice-three");
    install(&dir, &one);
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut server = start(
        &dir,
        &[
            "serve",
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
    let tls = server.listener("tls");
    assert_eq!(served_cn(tls), "edgeice-one");
    let mut session = TlsSession::open(tls);
    assert!(session.binding(1), "no answer over TLS");
    // A TURN session over TLS relaying through what follows.
    let (_peer, peer_port) = common::start_peer("127.0.0.1");
    let uclient = uclient_over_tls(tls, peer_port);

    // Renewed, then SIGHUP: the next handshake gets the new certificate,
    // the session up since before goes on.
    install(&dir, &two);
    server.signal("HUP");
    server.wait_for_log("TLS certificate reloaded", 1);
    assert_eq!(served_cn(tls), "edgeice-two");
    assert!(
        session.binding(2),
        "the TLS session did not survive the reload"
    );

    // A broken certificate: refused, the one in force stays, the server
    // serves on.
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    server.signal("HUP");
    server.wait_for_log("reload refused", 1);
    // And its files changing was seen too, without a signal: refused once.
    server.wait_for_log("certificate files changed but cannot be used", 1);
    assert!(server.alive());
    assert_eq!(served_cn(tls), "edgeice-two");
    assert!(session.binding(3));
    let relayed = uclient.join().unwrap();
    assert!(
        relayed.contains("tot_send_msgs=200, tot_recv_msgs=200")
            && relayed.contains("Total lost packets 0 "),
        "turnutils_uclient over TLS across reloads:\n{relayed}"
    );
    // A key that does not match its certificate: refused alike.
    std::fs::copy(&three.0, &cert).unwrap();
    server.wait_for_log("does not match the private key", 1);
    assert_eq!(served_cn(tls), "edgeice-two");

    // Renewed with no signal: the watcher puts it in force.
    install(&dir, &three);
    server.wait_for_log("certificate files changed: TLS certificate reloaded", 1);
    assert_eq!(served_cn(tls), "edgeice-three");
    assert!(session.binding(4));
    assert!(answers_binding(server.listener("udp")));
    server.signal("TERM");
    assert_eq!(server.exit_code(), Some(0), "{}", server.stderr());
}

#[test]
fn other_signals_do_not_kill_and_the_log_file_is_reopened() {
    let dir = scratch("signals");
    let log = dir.join("edgeice.log");
    let config = dir.join("edgeice.toml");
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let settings = format!("listen = [\"{listen}\"]\nno-tcp = true\nuser = [\"u:p\"]\n");
    std::fs::write(&config, &settings).unwrap();
    let log_arg = log.to_string_lossy().into_owned();
    let config_arg = config.to_string_lossy().into_owned();
    let mut server = start(
        &dir,
        &["serve", "--config", &config_arg, "--log-file", &log_arg],
        1,
    );
    let udp = server.listener("udp");
    // SIGUSR1 drains (tests/drain.rs): an empty edge would exit.
    for signal in ["USR2", "PIPE"] {
        server.signal(signal);
    }
    assert!(answers_binding(udp));
    assert!(server.alive());
    let wait_in = |file: &Path, text: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !std::fs::read_to_string(file).is_ok_and(|l| l.contains(text)) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in {}",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // logrotate: the file moved away, then SIGHUP.
    let rotated = dir.join("edgeice.log.1");
    // SIGUSR2, coturn's certificate reload, reloads too.
    wait_in(&log, "SIGUSR2: reloaded");
    std::fs::rename(&log, &rotated).unwrap();
    server.signal("HUP");
    wait_in(&log, "reopened");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("SIGUSR2: reloaded"), "{old}");

    // The config file's level, changed by a reload; a listener change
    // needs a restart, said so.
    let other = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    std::fs::write(
        &config,
        format!(
            "{}log-level = \"warn\"\n",
            settings.replace(&listen, &other)
        ),
    )
    .unwrap();
    server.signal("HUP");
    wait_in(&log, "log level info → warn");
    wait_in(&log, "needs a restart: listen");
    assert!(answers_binding(udp), "the listener moved");
    server.signal("INT");
    assert_eq!(server.exit_code(), Some(0));
    let new = std::fs::read_to_string(&log).unwrap();
    assert!(
        !new.contains("SIGINT: stopped"),
        "logged at info under warn: {new}"
    );
    assert!(!new.contains('\x1b') && !old.contains('\x1b'));
    assert_eq!(server.stderr(), "", "the log went to the file only");
}

#[test]
fn json_mode_writes_only_json_and_the_first_password_only_to_a_private_file() {
    let dir = scratch("json");
    let db = dir.join("users.db");
    let config = dir.join("edgeice.toml");
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    std::fs::write(
        &config,
        format!("listen = [\"{listen}\"]\nrelay-ports = \"61000-65535\"\n"),
    )
    .unwrap();
    // --log-level beats EDGEICE_LOG.
    let mut server = start_with_env(
        &dir,
        &[
            "--log-format",
            "json",
            "serve",
            "--config",
            &config.to_string_lossy(),
            "--users-db",
            &db.to_string_lossy(),
            "--log-level",
            "warn",
        ],
        2,
        &[("EDGEICE_LOG", "debug")],
    );
    server.wait_for_log("first-password", 1);
    // A reload that works, one that fails, SIGUSR2.
    server.signal("HUP");
    std::fs::write(&config, "listen = 5\n").unwrap();
    server.signal("HUP");
    server.wait_for_log("reload refused", 1);
    server.signal("USR2");
    server.signal("TERM");
    assert_eq!(server.exit_code(), Some(0));

    let password_file = dir.join("users.db.first-password");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&password_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(&password_file).unwrap();
    let password = password.trim();
    assert!(password.len() >= 12, "{password:?}");

    let stderr = server.stderr();
    let stdout = server.stdout.lock().unwrap().join("\n");
    for (name, text) in [("stderr", &stderr), ("stdout", &stdout)] {
        assert!(!text.contains(password), "the password on {name}");
        for line in text.lines() {
            let record: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON on {name} ({e}): {line}"));
            assert!(record["message"].is_string(), "{line}");
        }
    }
    assert!(stdout.contains("listening on udp"), "{stdout}");
    let records: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Event fields at the top level, not under "fields".
    let refused = records
        .iter()
        .find(|r| {
            r["message"]
                .as_str()
                .is_some_and(|m| m.contains("reload refused"))
        })
        .unwrap();
    assert_eq!(refused["level"], "ERROR");
    assert!(
        records.iter().all(|r| r.get("fields").is_none()),
        "{stderr}"
    );
    assert!(
        records.iter().any(|r| r["message"]
            .as_str()
            .is_some_and(|m| m.contains("first-password"))),
        "the log says where the password is:\n{stderr}"
    );
    assert!(
        records
            .iter()
            .all(|r| r["level"] == "WARN" || r["level"] == "ERROR"),
        "--log-level warn:\n{stderr}"
    );

    // A server that cannot start says why in JSON too.
    let out = common::run_bounded(
        {
            let mut c = Command::new(EDGEICE);
            c.args([
                "--log-format",
                "json",
                "serve",
                "--config",
                "/nonexistent/edgeice.toml",
            ]);
            c
        },
        Duration::from_secs(20),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(1));
    for line in out.stderr.lines() {
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(record["level"], "ERROR");
    }
    assert!(
        out.stderr.contains("/nonexistent/edgeice.toml"),
        "{}",
        out.stderr
    );
    // Also when the log itself cannot be opened.
    let mut command = Command::new(EDGEICE);
    command.args([
        "--log-format",
        "json",
        "--log-file",
        "/nonexistent/edgeice.log",
    ]);
    command.args(["serve", "--user", "u:p"]);
    let out = common::run_bounded(command, Duration::from_secs(20));
    assert_eq!(out.status.and_then(|s| s.code()), Some(1));
    let record: serde_json::Value = serde_json::from_str(out.stderr.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stderr));
    assert!(
        record["message"]
            .as_str()
            .is_some_and(|m| m.contains("/nonexistent/edgeice.log")),
        "{record}"
    );
}

/// `edgeice serve` with a new user store run on a terminal (util-linux's
/// `script` gives it one), stopped by SIGTERM once it answers; what the
/// terminal showed, and whether a password file was made.
fn serve_on_a_terminal(name: &str, env: &[(&str, &str)]) -> (String, bool) {
    let dir = scratch(name);
    let db = dir.join("users.db");
    let port = common::free_udp_tcp_port();
    let shell = format!(
        "{EDGEICE} serve --listen 127.0.0.1:{port} --no-tcp --relay-ports 61000-65535 \
         --users-db {db} & pid=$!; \
         for i in $(seq 100); do {EDGEICE} probe stun:127.0.0.1:{port} --timeout 1 \
         >/dev/null 2>&1 && break; sleep 0.1; done; kill -TERM $pid; wait $pid",
        db = db.display()
    );
    let mut command = Command::new("script");
    command
        .args(["-qefc", &shell, "/dev/null"])
        .env_remove("NO_COLOR")
        .envs(env.iter().copied());
    let out = common::run_bounded(command, Duration::from_secs(60));
    assert_eq!(out.status.and_then(|s| s.code()), Some(0), "{}", out.stdout);
    let file = dir.join("users.db.first-password").exists();
    (out.stdout, file)
}

#[test]
fn on_a_terminal_the_password_is_shown_and_colour_follows_no_color() {
    let (shown, file) = serve_on_a_terminal("tty", &[]);
    assert!(
        shown.contains("created TURN user edgeice with password "),
        "{shown}"
    );
    assert!(!file, "a password file although the terminal showed it");
    assert!(shown.contains("\x1b["), "no colour on a terminal:\n{shown}");
    assert!(shown.contains("SIGTERM: stopped"), "{shown}");
    let (plain, _) = serve_on_a_terminal("tty-no-color", &[("NO_COLOR", "1")]);
    assert!(plain.contains("SIGTERM: stopped"), "{plain}");
    assert!(
        !plain.contains("\x1b["),
        "colour despite NO_COLOR:\n{plain}"
    );
}
