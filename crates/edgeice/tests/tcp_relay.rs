//! RFC 6062 TCP relays of `edgeice serve`, from the outside: a peer
//! connection ends with its allocation, and a relay port belongs to one
//! allocation at a time. Everything runs on 127.0.0.1.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use edgeice_client::{
    Allocation, AllocationConfig, AllocationEvent, ConnectionBindOutcome, Credentials, InputError,
    RelayProtocol, StreamDecoder, Transport,
};
use edgeice_stun::{Class, Message, Method};

/// How long any wait in these tests may last.
const PATIENCE: Duration = Duration::from_secs(10);

/// A TURN control connection over TCP and its TCP allocation.
struct Control {
    stream: TcpStream,
    decoder: StreamDecoder,
    allocation: Allocation,
}

impl Control {
    /// Connects to `server` as `user:pass`, asking for a TCP relay.
    fn connect(server: SocketAddr) -> Control {
        let stream = TcpStream::connect(server).expect("connect to the server");
        stream.set_nodelay(true).unwrap();
        let mut config = AllocationConfig::new(
            server,
            Transport::Tcp,
            Credentials {
                username: "user".into(),
                password: "pass".into(),
            },
        );
        config.relay = RelayProtocol::Tcp;
        Control {
            stream,
            decoder: StreamDecoder::new(),
            allocation: Allocation::new(config),
        }
    }

    /// Sends what the client has to send.
    fn flush(&mut self) {
        while let Some(t) = self.allocation.poll_transmit() {
            self.stream.write_all(t.payload).unwrap();
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
            self.stream
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let space = self.decoder.read_buf(4096);
            match self.stream.read(space) {
                Ok(0) => panic!("the server closed the control connection"),
                Ok(n) => self.decoder.commit(4096, n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.decoder.commit(4096, 0);
                }
                Err(e) => panic!("control connection: {e}"),
            }
            self.allocation.handle_timeout(Instant::now());
        }
        panic!("no event from the allocation within {PATIENCE:?}");
    }

    /// Allocates: the relayed address, or the error code.
    fn allocate(&mut self) -> Result<SocketAddr, Option<u16>> {
        self.allocation.allocate(Instant::now()).unwrap();
        match self.next_event() {
            AllocationEvent::Allocated { relayed, .. } => Ok(relayed),
            AllocationEvent::Failed { code, .. } => Err(code),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Installs a permission for 127.0.0.1.
    fn permit_loopback(&mut self) {
        let ip = "127.0.0.1".parse().unwrap();
        self.allocation
            .create_permission(Instant::now(), ip)
            .unwrap();
        assert_eq!(self.next_event(), AllocationEvent::PermissionCreated { ip });
    }

    /// Opens a data connection bound to `connection_id` (ConnectionBind).
    fn bind_data(&mut self, server: SocketAddr, connection_id: u32) -> TcpStream {
        let bind = self
            .allocation
            .connection_bind(Instant::now(), connection_id)
            .unwrap();
        let mut data = TcpStream::connect(server).unwrap();
        data.set_read_timeout(Some(PATIENCE)).unwrap();
        data.write_all(bind.request()).unwrap();
        let mut decoder = StreamDecoder::new();
        loop {
            if let Some(frame) = decoder.next_raw().unwrap() {
                let message = Message::parse(frame).unwrap();
                assert_eq!(message.method(), Method::CONNECTION_BIND);
                assert_ne!(message.class(), Class::Request);
                let outcome = bind.handle_response(frame).unwrap();
                assert_eq!(outcome, ConnectionBindOutcome::Bound);
                assert!(decoder.pending().is_empty(), "the peer said nothing yet");
                return data;
            }
            let space = decoder.read_buf(1024);
            let n = data.read(space).expect("a ConnectionBind response");
            decoder.commit(1024, n);
            assert!(
                n > 0,
                "data connection closed before its ConnectionBind response"
            );
        }
    }
}

/// The next connection to `listener`; panics after PATIENCE.
fn accept_within(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    panic!("the relay never connected to the peer");
}

/// Whether `stream` is closed by the other side (EOF or reset) within
/// PATIENCE; bytes read meanwhile are thrown away.
fn closes(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
    false
}

/// `edgeice serve` on 127.0.0.1 as [`common::start_turn_server`] starts
/// it, relaying on `ports` only; its UDP and TCP address.
fn server_with_relay_ports(ports: &str) -> (common::Running, SocketAddr) {
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let args = common::turn_server_args(&listen, ports);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (server, _) = common::start_server(&args, 2);
    (server, listen.parse().unwrap())
}

#[test]
fn a_spliced_peer_connection_closes_when_its_allocation_ends() {
    let (_server, addr) = common::start_turn_server();
    let peer_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer_listener.local_addr().unwrap();

    let mut control = Control::connect(addr);
    control.allocate().expect("a TCP allocation");
    control.permit_loopback();
    control
        .allocation
        .connect(Instant::now(), peer_addr)
        .unwrap();
    control.flush();
    let mut peer = accept_within(&peer_listener);
    let connection_id = match control.next_event() {
        AllocationEvent::Connected {
            connection_id,
            peer,
        } if peer == peer_addr => connection_id,
        other => panic!("Connect: {other:?}"),
    };
    let mut data = control.bind_data(addr, connection_id);

    // The splice works both ways.
    data.write_all(b"to the peer").unwrap();
    let mut got = [0u8; 11];
    peer.set_read_timeout(Some(PATIENCE)).unwrap();
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"to the peer");
    peer.write_all(b"to the client").unwrap();
    let mut got = [0u8; 13];
    data.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"to the client");

    // Refresh with LIFETIME 0: the allocation ends, and with it the peer
    // connection and the data connection carrying it.
    control.allocation.release(Instant::now()).unwrap();
    assert_eq!(control.next_event(), AllocationEvent::Released);
    assert!(
        closes(&mut peer),
        "the peer connection outlived its allocation"
    );
    assert!(
        closes(&mut data),
        "the data connection outlived its allocation"
    );
}

#[test]
fn a_tcp_relay_port_belongs_to_one_allocation_at_a_time() {
    // Three relay ports: the fourth TCP allocation wraps the port cursor
    // round to the first allocation's port.
    let (_server, addr) = server_with_relay_ports("64990-64992");
    let mut first = Control::connect(addr);
    let relay = first.allocate().expect("a first TCP allocation");
    first.permit_loopback();
    let mut held = vec![relay];
    let mut others = Vec::new();
    for _ in 0..4 {
        let mut control = Control::connect(addr);
        match control.allocate() {
            Ok(other) => {
                assert!(
                    !held.contains(&other),
                    "relay {other} handed out twice: {held:?}"
                );
                held.push(other);
                control.permit_loopback();
                others.push(control);
            }
            // Every port is taken: Allocate gets 508.
            Err(code) => assert_eq!(code, Some(508)),
        }
    }
    assert!(held.len() <= 3, "{held:?}");

    // Peers connecting to the first relay reach the first allocation.
    for _ in 0..4 {
        let peer = TcpStream::connect(relay).expect("connect to the first relay");
        let from = peer.local_addr().unwrap();
        match first.next_event() {
            AllocationEvent::ConnectionAttempt { peer, .. } => assert_eq!(peer, from),
            other => panic!("{other:?}"),
        }
    }
}
