//! The client against coturn's `turnserver` (Debian's coturn package), one
//! server per test on 127.0.0.1: Binding; allocating over UDP and TCP;
//! relaying to an echo peer through Send/Data indications and through a
//! channel; wrong credentials; release; an RFC 6062 TCP relay.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{Coturn, Link, PATIENCE, UdpEcho, drive};
use edgeice_client::{
    AddressFamily, Allocation, AllocationConfig, AllocationEvent, AllocationState,
    ConnectionBindOutcome, Credentials, RelayProtocol, StreamDecoder, TransactionConfig, Transport,
};
use edgeice_stun::{ChannelData, Class, Message, Method};

fn config(server: SocketAddr, transport: Transport, password: &str) -> AllocationConfig {
    AllocationConfig::new(
        server,
        transport,
        Credentials {
            username: "u".into(),
            password: password.into(),
        },
    )
}

fn allocate(allocation: &mut Allocation, link: &mut Link) -> (SocketAddr, Option<SocketAddr>) {
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

#[test]
fn binding_reports_the_socket_address() {
    let coturn = Coturn::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mapped = common::binding(&socket, coturn.addr, TransactionConfig::default());
    assert_eq!(mapped, Some(socket.local_addr().unwrap()));
}

/// Allocates over `transport`, then relays to a UDP echo peer with a Send
/// indication and with a channel, and releases.
fn relay_through_coturn(transport: Transport) {
    let coturn = Coturn::start();
    let echo = UdpEcho::start();
    let mut link = Link::connect(coturn.addr, transport);
    let mut allocation = Allocation::new(config(coturn.addr, transport, "p"));
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

#[test]
fn relays_over_udp() {
    relay_through_coturn(Transport::Udp);
}

#[test]
fn relays_over_tcp() {
    relay_through_coturn(Transport::Tcp);
}

#[test]
fn wrong_password_fails_with_401() {
    let coturn = Coturn::start();
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut link = Link::connect(coturn.addr, transport);
        let mut allocation = Allocation::new(config(coturn.addr, transport, "wrong"));
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

#[test]
fn unsupported_address_family_fails_with_440() {
    let coturn = Coturn::start();
    let mut link = Link::connect(coturn.addr, Transport::Udp);
    let mut config = config(coturn.addr, Transport::Udp, "p");
    config.address_family = Some(AddressFamily::V6);
    let mut allocation = Allocation::new(config);
    allocation.allocate(Instant::now()).unwrap();
    let (events, _) = drive(&mut allocation, &mut link, |e, _| !e.is_empty());
    assert!(
        matches!(
            &events[..],
            [AllocationEvent::Failed {
                code: Some(440),
                ..
            }]
        ),
        "{events:?}"
    );
}

/// The refreshes of the allocation, a permission and a channel, made due
/// early by handing the client a clock from the future (it is sans-IO), are
/// accepted by coturn.
#[test]
fn refreshes_are_accepted() {
    let coturn = Coturn::start();
    let echo = UdpEcho::start();
    let mut link = Link::connect(coturn.addr, Transport::Udp);
    let mut config = config(coturn.addr, Transport::Udp, "p");
    config.lifetime = Some(Duration::from_secs(900));
    let mut allocation = Allocation::new(config);
    let started = Instant::now();
    allocate(&mut allocation, &mut link);
    // coturn grants between its default (600 s) and its maximum (3600 s).
    let lifetime = allocation.lifetime();
    assert!(lifetime >= Duration::from_secs(600), "{lifetime:?}");
    allocation.bind_channel(Instant::now(), echo.addr).unwrap();
    drive(&mut allocation, &mut link, |e, _| !e.is_empty());

    // The channel's refresh is due a minute before its 600 s end, the
    // allocation's a minute before its own.
    let due = allocation.poll_timeout().unwrap();
    assert!(
        due >= started + Duration::from_secs(540),
        "{:?}",
        due - started
    );
    assert!(due < started + Duration::from_secs(600));
    allocation.handle_timeout(started + lifetime - Duration::from_secs(59));
    let mut sent = Vec::new();
    while let Some(t) = allocation.poll_transmit() {
        sent.push(Message::parse(t.data).unwrap().method());
        link.send(t.data);
    }
    sent.sort();
    assert_eq!(sent, [Method::REFRESH, Method::CHANNEL_BIND]);
    let (events, _) = drive(&mut allocation, &mut link, |e, _| !e.is_empty());
    assert_eq!(events, [AllocationEvent::Refreshed { lifetime }]);
    // The channel still carries data after its refresh.
    let mut out = Vec::new();
    allocation
        .send_to(Instant::now(), echo.addr, b"after refresh", &mut out)
        .unwrap();
    assert!(ChannelData::parse(&out).is_ok());
    link.send(&out);
    let (_, data) = drive(&mut allocation, &mut link, |_, d| !d.is_empty());
    assert_eq!(data, [(echo.addr, b"after refresh".to_vec())]);
    assert_eq!(allocation.state(), AllocationState::Allocated);
}

/// RFC 6062: a TCP relay; the client asks coturn to connect to a TCP echo
/// peer, binds a data connection to it, and the bytes come back raw.
#[test]
fn tcp_relay_connects_to_a_peer() {
    let coturn = Coturn::start();
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

    let mut link = Link::connect(coturn.addr, Transport::Tcp);
    let mut config = config(coturn.addr, Transport::Tcp, "p");
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
    let mut data = TcpStream::connect(coturn.addr).unwrap();
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
    assert_eq!(decoder.pending(), b"");
    data.write_all(b"raw bytes to the peer").unwrap();
    let mut back = vec![0u8; 21];
    data.read_exact(&mut back).unwrap();
    assert_eq!(back, b"raw bytes to the peer");
    echo.join().unwrap();
}
