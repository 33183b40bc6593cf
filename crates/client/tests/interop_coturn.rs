//! The client against coturn's `turnserver` (Debian's coturn package), one
//! server per test on 127.0.0.1: Binding; allocating over UDP and TCP;
//! relaying to an echo peer through Send/Data indications and through a
//! channel; wrong credentials; an unsupported family; refreshes; release;
//! an RFC 6062 TCP relay.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::scenarios::{self, allocate, config};
use common::{Coturn, Link, UdpEcho, drive};
use edgeice_client::{
    AddressFamily, Allocation, AllocationEvent, AllocationState, TransactionConfig, Transport,
};
use edgeice_stun::{Attribute, AttributeType, ChannelData, ErrorCode, Message, Method};

#[test]
fn binding_reports_the_socket_address() {
    let coturn = Coturn::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mapped = common::binding(&socket, coturn.addr, TransactionConfig::default());
    assert_eq!(mapped, Some(socket.local_addr().unwrap()));
}

#[test]
fn relays_over_udp() {
    scenarios::relay(Coturn::start().addr, Transport::Udp);
}

#[test]
fn relays_over_tcp() {
    scenarios::relay(Coturn::start().addr, Transport::Tcp);
}

#[test]
fn wrong_password_fails_with_401() {
    scenarios::wrong_password(Coturn::start().addr);
}

/// RFC 6062: a TCP relay; the client asks coturn to connect to a TCP echo
/// peer, binds a data connection to it, and the bytes come back raw.
#[test]
fn tcp_relay_connects_to_a_peer() {
    scenarios::tcp_relay(Coturn::start().addr);
}

/// RFC 6062: a peer connects to the relayed address; the client accepts
/// it with ConnectionBind.
#[test]
fn tcp_relay_accepts_a_peer() {
    scenarios::tcp_relay_accepts(Coturn::start().addr);
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
        sent.push(Message::parse(t.payload).unwrap().method());
        link.send(t.payload);
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

/// coturn with nonces that go stale after a second answers 438 with a new
/// nonce; the client retries with it and the permission is installed.
#[test]
fn stale_nonce_is_retried() {
    let coturn = Coturn::start_with(&["--stale-nonce=1"]);
    let echo = UdpEcho::start();
    let mut link = Link::connect(coturn.addr, Transport::Udp);
    let mut allocation = Allocation::new(config(coturn.addr, Transport::Udp, "p"));
    allocate(&mut allocation, &mut link);
    std::thread::sleep(Duration::from_millis(2100));
    allocation
        .create_permission(Instant::now(), echo.addr.ip())
        .unwrap();
    let first = allocation.poll_transmit().unwrap().payload.to_vec();
    link.send(&first);
    let mut response = Vec::new();
    let deadline = Instant::now() + common::PATIENCE;
    while !link.recv(&mut response, Duration::from_millis(100)) {
        assert!(Instant::now() < deadline, "no answer");
    }
    let answer = Message::parse(&response).unwrap();
    assert!(
        matches!(
            answer.get(AttributeType::ERROR_CODE),
            Some(Ok(Attribute::ErrorCode(ErrorCode { code: 438, .. })))
        ),
        "{answer:?}"
    );
    allocation.handle_input(Instant::now(), &response).unwrap();
    let (events, _) = drive(&mut allocation, &mut link, |e, _| !e.is_empty());
    assert_eq!(
        events,
        [AllocationEvent::PermissionCreated { ip: echo.addr.ip() }]
    );
}
