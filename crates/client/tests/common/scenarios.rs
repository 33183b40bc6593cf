//! What every TURN server is put through: the same scenarios against
//! coturn and against `edgeice serve`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

use edgeice_client::{
    Allocation, AllocationConfig, AllocationEvent, AllocationState, ConnectionBind,
    ConnectionBindOutcome, Credentials, RelayProtocol, StreamDecoder, Transport,
};
use edgeice_stun::{ChannelData, Class, Message, Method};

use super::{Link, PATIENCE, UdpEcho, drive};

/// Settings for user `u`.
pub fn config(server: SocketAddr, transport: Transport, password: &str) -> AllocationConfig {
    AllocationConfig::new(
        server,
        transport,
        Credentials {
            username: "u".into(),
            password: password.into(),
        },
    )
}

/// Allocates, or panics.
pub fn allocate(allocation: &mut Allocation, link: &mut Link) -> (SocketAddr, Option<SocketAddr>) {
    allocation.allocate(Instant::now()).unwrap();
    let (events, _) = drive(allocation, link, |e, _| !e.is_empty());
    match &events[..] {
        [
            AllocationEvent::Allocated {
                relayed, mapped, ..
            },
        ] => (*relayed, *mapped),
        other => panic!("allocation failed: {other:?}"),
    }
}

/// Allocates over `transport`, then relays to a UDP echo peer with a Send
/// indication and with a channel, and releases.
pub fn relay(server: SocketAddr, transport: Transport) {
    let echo = UdpEcho::start();
    let mut link = Link::connect(server, transport);
    let mut allocation = Allocation::new(config(server, transport, "p"));
    let (relayed, mapped) = allocate(&mut allocation, &mut link);
    assert_eq!(relayed.ip(), echo.addr.ip());
    assert!((61000..=65535).contains(&relayed.port()), "{relayed}");
    assert_eq!(mapped, Some(link.local_addr()));

    // Send indication → Data indication.
    let now = Instant::now();
    allocation.create_permission(now, echo.addr.ip()).unwrap();
    let (events, _) = drive(&mut allocation, &mut link, |e, _| !e.is_empty());
    assert_eq!(
        events,
        [AllocationEvent::PermissionCreated { ip: echo.addr.ip() }]
    );
    let mut out = Vec::new();
    allocation
        .send_to(
            Instant::now(),
            echo.addr,
            b"via a Send indication",
            &mut out,
        )
        .unwrap();
    assert_eq!(
        Message::parse(&out).unwrap().kind().method,
        Method::SEND,
        "no channel yet"
    );
    link.send(&out);
    let (_, data) = drive(&mut allocation, &mut link, |_, d| !d.is_empty());
    assert_eq!(data, [(echo.addr, b"via a Send indication".to_vec())]);

    // ChannelBind → ChannelData both ways.
    let channel = allocation.bind_channel(Instant::now(), echo.addr).unwrap();
    let (events, _) = drive(&mut allocation, &mut link, |e, _| !e.is_empty());
    assert_eq!(
        events,
        [AllocationEvent::ChannelBound {
            peer: echo.addr,
            channel
        }]
    );
    for payload in [&b"via channel data"[..], b"odd", b""] {
        allocation
            .send_to(Instant::now(), echo.addr, payload, &mut out)
            .unwrap();
        let frame = ChannelData::parse(&out).unwrap();
        assert_eq!(frame.channel, channel);
        if transport.is_stream() {
            assert_eq!(out.len() % 4, 0, "ChannelData padded on a stream");
        }
        link.send(&out);
        let (_, data) = drive(&mut allocation, &mut link, |_, d| !d.is_empty());
        assert_eq!(data, [(echo.addr, payload.to_vec())]);
    }

    allocation.release(Instant::now()).unwrap();
    let (events, _) = drive(&mut allocation, &mut link, |e, _| !e.is_empty());
    assert_eq!(events, [AllocationEvent::Released]);
    assert_eq!(allocation.state(), AllocationState::Released);
}

/// A wrong password fails with 401 after the challenge, over UDP and TCP.
pub fn wrong_password(server: SocketAddr) {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut link = Link::connect(server, transport);
        let mut allocation = Allocation::new(config(server, transport, "wrong"));
        allocation.allocate(Instant::now()).unwrap();
        let (events, _) = drive(&mut allocation, &mut link, |e, _| !e.is_empty());
        assert!(
            matches!(
                &events[..],
                [AllocationEvent::Failed {
                    code: Some(401),
                    ..
                }]
            ),
            "{events:?}"
        );
        assert_eq!(allocation.state(), AllocationState::Failed);
    }
}

/// RFC 6062: a TCP relay; the client asks the server to connect to a TCP echo
/// peer, binds a data connection to it, and the bytes come back raw.
pub fn tcp_relay(server: SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = listener.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut buf = [0u8; 1024];
        if let Ok(n) = stream.read(&mut buf) {
            let _ = stream.write_all(&buf[..n]);
        }
    });

    let mut link = Link::connect(server, Transport::Tcp);
    let mut config = config(server, Transport::Tcp, "p");
    config.relay = RelayProtocol::Tcp;
    let mut allocation = Allocation::new(config);
    allocate(&mut allocation, &mut link);
    allocation
        .create_permission(Instant::now(), peer.ip())
        .unwrap();
    drive(&mut allocation, &mut link, |e, _| !e.is_empty());
    allocation.connect(Instant::now(), peer).unwrap();
    let (events, _) = drive(&mut allocation, &mut link, |e, _| !e.is_empty());
    let connection_id = match &events[..] {
        [
            AllocationEvent::Connected {
                peer: p,
                connection_id,
            },
        ] if *p == peer => *connection_id,
        other => panic!("{other:?}"),
    };

    let bind = allocation
        .connection_bind(Instant::now(), connection_id)
        .unwrap();
    let (mut data, early) = bind_data_connection(server, &bind);
    assert_eq!(early, b"", "the peer has said nothing yet");
    data.write_all(b"raw bytes to the peer").unwrap();
    let mut back = vec![0u8; 21];
    data.read_exact(&mut back).unwrap();
    assert_eq!(back, b"raw bytes to the peer");
    echo.join().unwrap();
}

/// Opens a data connection to `server`, sends ConnectionBind and checks it
/// succeeds; the connection then carries the peer's bytes, the first of
/// which may have come in the same read as the response (returned too).
fn bind_data_connection(server: SocketAddr, bind: &ConnectionBind) -> (TcpStream, Vec<u8>) {
    let mut data = TcpStream::connect(server).unwrap();
    data.set_read_timeout(Some(PATIENCE)).unwrap();
    data.write_all(bind.request()).unwrap();
    let mut decoder = StreamDecoder::new();
    let deadline = Instant::now() + PATIENCE;
    let outcome = loop {
        assert!(Instant::now() < deadline, "no ConnectionBind response");
        if let Some(frame) = decoder.next_raw().unwrap() {
            let message = Message::parse(frame).unwrap();
            assert_eq!(message.method(), Method::CONNECTION_BIND);
            assert_ne!(message.class(), Class::Request);
            break bind.handle_response(frame).unwrap();
        }
        let space = decoder.read_buf(1024);
        let n = data.read(space).unwrap();
        decoder.commit(1024, n);
        assert!(n > 0, "data connection closed");
    };
    assert_eq!(outcome, ConnectionBindOutcome::Bound);
    // What follows the response is the peer's, unframed: not for the
    // decoder any more.
    (data, decoder.pending().to_vec())
}

/// RFC 6062, the passive side: a peer connects to the relayed address,
/// the server announces it with ConnectionAttempt, the client binds a data
/// connection to it, and bytes flow both ways.
pub fn tcp_relay_accepts(server: SocketAddr) {
    let mut link = Link::connect(server, Transport::Tcp);
    let mut config = config(server, Transport::Tcp, "p");
    config.relay = RelayProtocol::Tcp;
    let mut allocation = Allocation::new(config);
    let (relayed, _) = allocate(&mut allocation, &mut link);
    let peer_ip = "127.0.0.1".parse().unwrap();
    allocation
        .create_permission(Instant::now(), peer_ip)
        .unwrap();
    let (events, _) = drive(&mut allocation, &mut link, |e, _| !e.is_empty());
    assert_eq!(events, [AllocationEvent::PermissionCreated { ip: peer_ip }]);

    let peer = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(relayed).expect("connect to the relayed address");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(b"hello from the peer").unwrap();
        let mut back = [0u8; 17];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello to the peer");
        stream.local_addr().unwrap()
    });
    let (events, _) = drive(&mut allocation, &mut link, |e, _| !e.is_empty());
    let (connection_id, from) = match &events[..] {
        [
            AllocationEvent::ConnectionAttempt {
                connection_id,
                peer,
            },
        ] => (*connection_id, *peer),
        other => panic!("{other:?}"),
    };
    let bind = allocation
        .connection_bind(Instant::now(), connection_id)
        .unwrap();
    let (mut data, mut got) = bind_data_connection(server, &bind);
    let deadline = Instant::now() + PATIENCE;
    while got.len() < 19 && Instant::now() < deadline {
        let mut buf = [0u8; 64];
        let n = data.read(&mut buf).unwrap();
        assert!(n > 0, "data connection closed");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"hello from the peer");
    data.write_all(b"hello to the peer").unwrap();
    assert_eq!(peer.join().unwrap(), from);
}
