//! Relaying to a TURN client over TLS when the client reads slowly: what
//! the server relayed reaches the client without waiting for a later
//! packet to push it out. (tokio-rustls reports a write done once its own
//! buffer holds the records; unless the server flushes, the tail of a
//! burst sent into a full socket stays in that buffer until the next
//! write. `turnutils_uclient -t -S` lost a packet that way under load.)
//!
//! Runs in a network namespace the test makes (`unshare --net`, so it needs
//! root) whose loopback has an Ethernet MTU: with loopback's usual 64 KiB
//! segments Linux grows the server's send buffer so far that the case never
//! arises, while on a real link it does. Everything runs on 127.0.0.1.

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgeice_client::{
    Allocation, AllocationConfig, AllocationEvent, Credentials, InputError, StreamDecoder,
    Transport,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, ClientConnection, StreamOwned};

/// How long any wait in these tests may last.
const PATIENCE: Duration = Duration::from_secs(10);

/// How long without a byte before the client takes it that nothing more
/// is on its way.
const QUIET: Duration = Duration::from_millis(1500);

/// Packets the peer sends while the client is not reading: far more than
/// the socket buffers (Linux grows a TCP send buffer up to 4 MiB) and the
/// server's queue for the connection hold.
const BURST: u32 = 8000;

/// Each relayed packet's size: its number, then filler.
const PACKET: usize = 1000;

/// The number of the packet sent after the pause.
const MARKER: u32 = u32::MAX;

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TURN client over TLS with a small receive buffer.
struct Client {
    tls: Tls,
    decoder: StreamDecoder,
    allocation: Allocation,
}

impl Client {
    fn connect(server: SocketAddr, ca: &std::path::Path) -> Client {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a TCP socket");
        // A small window, so that the server's socket fills and stays full
        // while the client reads slowly.
        socket.set_recv_buffer_size(4096).unwrap();
        socket
            .connect(&server.into())
            .expect("connect to the server");
        let tcp: TcpStream = socket.into();
        tcp.set_nodelay(true).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("the CA file") {
            roots.add(cert.expect("a CA certificate")).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let connection = ClientConnection::new(Arc::new(config), name).unwrap();
        let config = AllocationConfig::new(
            server,
            Transport::Tls,
            Credentials {
                username: "u".into(),
                password: "p".into(),
            },
        );
        Client {
            tls: StreamOwned::new(connection, tcp),
            decoder: StreamDecoder::new(),
            allocation: Allocation::new(config),
        }
    }

    fn flush(&mut self) {
        while let Some(t) = self.allocation.poll_transmit() {
            self.tls.write_all(t.payload).unwrap();
        }
        self.tls.flush().unwrap();
    }

    /// Reads what arrives within `wait`, at most `most` bytes: false when
    /// nothing did.
    fn read_some(&mut self, wait: Duration, most: usize) -> bool {
        self.tls.sock.set_read_timeout(Some(wait)).unwrap();
        let space = self.decoder.read_buf(most);
        match self.tls.read(space) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(n) => {
                self.decoder.commit(most, n);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                self.decoder.commit(most, 0);
                false
            }
            Err(e) => panic!("TLS connection: {e}"),
        }
    }

    /// Runs the client until it reports an event; panics after PATIENCE.
    fn next_event(&mut self) -> AllocationEvent {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            self.flush();
            if let Some(event) = self.allocation.poll_event() {
                return event;
            }
            if let Some(frame) = self.decoder.next_raw().expect("framing") {
                match self.allocation.handle_input(Instant::now(), frame) {
                    Ok(_) | Err(InputError::UnknownTransaction) => {}
                    Err(e) => panic!("input refused: {e}"),
                }
                continue;
            }
            self.read_some(Duration::from_millis(50), 4096);
            self.allocation.handle_timeout(Instant::now());
        }
        panic!("no event from the allocation within {PATIENCE:?}");
    }

    /// The numbers of the relayed packets in complete frames read so far.
    fn take_packets(&mut self, into: &mut Vec<u32>) {
        while let Some(frame) = self.decoder.next_raw().expect("framing") {
            match self.allocation.handle_input(Instant::now(), frame) {
                Ok(Some((_, data))) => {
                    let number = data.get(..4).expect("a numbered packet");
                    into.push(u32::from_be_bytes(number.try_into().unwrap()));
                }
                Ok(None) | Err(InputError::UnknownTransaction) => {}
                Err(e) => panic!("input refused: {e}"),
            }
        }
    }
}

fn packet(number: u32) -> Vec<u8> {
    let mut bytes = vec![0x5a; PACKET];
    bytes[..4].copy_from_slice(&number.to_be_bytes());
    bytes
}

/// Set in the copy of this test that runs inside the namespace.
const IN_NAMESPACE: &str = "TLS_RELAY_TEST_IN_NAMESPACE";

/// Runs the test `name` of this binary again, inside a new network
/// namespace whose loopback has a 1500-byte MTU, and checks it passed.
fn rerun_in_namespace(name: &str) {
    let output = std::process::Command::new("unshare")
        .args([
            "--net",
            "sh",
            "-c",
            "ip link set lo mtu 1500 up && exec \"$@\"",
            "sh",
        ])
        .arg(std::env::current_exe().expect("this test's path"))
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(IN_NAMESPACE, "1")
        .output()
        .expect("run unshare (util-linux)");
    assert!(
        output.status.success(),
        "the test in its namespace (needs root) failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_slow_tls_client_gets_every_relayed_packet_without_waiting_for_the_next() {
    if std::env::var_os(IN_NAMESPACE).is_none() {
        rerun_in_namespace(
            "a_slow_tls_client_gets_every_relayed_packet_without_waiting_for_the_next",
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("edgeice-tls-relay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, tls, ca) = common::start_tls_server(&dir);
    let mut client = Client::connect(tls, &ca);
    client.allocation.allocate(Instant::now()).unwrap();
    let relayed = match client.next_event() {
        AllocationEvent::Allocated { relayed, .. } => relayed,
        other => panic!("Allocate over TLS: {other:?}"),
    };
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_ip = peer.local_addr().unwrap().ip();
    client
        .allocation
        .create_permission(Instant::now(), peer_ip)
        .unwrap();
    assert_eq!(
        client.next_event(),
        AllocationEvent::PermissionCreated { ip: peer_ip }
    );

    // The client reads nothing while the peer sends a burst: the server's
    // socket fills, then its queue, and the rest is dropped (as it must be).
    for n in 0..BURST {
        peer.send_to(&packet(n), relayed).unwrap();
        if n % 100 == 99 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(Duration::from_millis(500));

    // Then it reads slowly, a little at a time, so that the server's
    // socket stays full to the end, until nothing more comes.
    let mut before = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.read_some(QUIET, 4096) {
        client.take_packets(&mut before);
        std::thread::sleep(Duration::from_millis(1));
        assert!(Instant::now() < deadline, "the burst never stopped coming");
    }
    client.take_packets(&mut before);
    assert!(!before.is_empty(), "nothing of the burst came through");
    assert!(
        before.windows(2).all(|w| w[0] < w[1]),
        "the burst came out of order"
    );

    // One more packet after the pause. Only it may come now: anything else
    // was relayed before it and held back.
    peer.send_to(&packet(MARKER), relayed).unwrap();
    let mut after = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !after.contains(&MARKER) {
        assert!(
            Instant::now() < deadline,
            "the packet after the pause never came"
        );
        client.read_some(Duration::from_millis(200), 4096);
        client.take_packets(&mut after);
    }
    let held: BTreeSet<u32> = after.iter().copied().filter(|&n| n != MARKER).collect();
    assert!(
        held.is_empty(),
        "{} of {} relayed packets waited for the next one to push them out: {:?}",
        held.len(),
        before.len() + held.len(),
        held
    );
    let _ = std::fs::remove_dir_all(&dir);
}
