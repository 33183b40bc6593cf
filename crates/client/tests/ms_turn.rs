//! The MS-TURN client against `edgeice serve` (coturn speaks no MS-TURN):
//! allocate, relay through Send requests and Data indications, switch to
//! raw datagrams with Set Active Destination, release; over UDP and over
//! TCP with MS-TURN's framing. The server side is proven against libnice's
//! MS-TURN client in the `edgeice` crate's interop tests.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{EdgeiceServe, Link, UdpEcho};
use edgeice_client::{
    InputError, MsTurnClient, MsTurnConfig, MsTurnEvent, TransactionConfig, Transport,
};
use edgeice_stun::Framing;

/// Drives `client` over `link` until `done` says so (bounded).
fn drive(
    client: &mut MsTurnClient,
    link: &mut Link,
    mut done: impl FnMut(&[MsTurnEvent], &[(SocketAddr, Vec<u8>)]) -> bool,
) -> (Vec<MsTurnEvent>, Vec<(SocketAddr, Vec<u8>)>) {
    let mut events = Vec::new();
    let mut data = Vec::new();
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        while let Some(t) = client.poll_transmit() {
            link.send(t.payload);
        }
        while let Some(event) = client.poll_event() {
            events.push(event);
        }
        if done(&events, &data) {
            return (events, data);
        }
        if link.recv(&mut buf, Duration::from_millis(50)) {
            match client.handle_input(Instant::now(), &buf) {
                Ok(Some((peer, bytes))) => data.push((peer, bytes.to_vec())),
                Ok(None) | Err(InputError::UnknownTransaction) => {}
                Err(e) => panic!("input refused: {e}"),
            }
        }
        client.handle_timeout(Instant::now());
    }
    panic!("gave up waiting; events {events:?}, data {data:?}");
}

fn relay_through_edgeice(transport: Transport) {
    let Some(server) = EdgeiceServe::start() else {
        panic!("no edgeice binary: run `cargo build -p edgeice` or set EDGEICE_BIN");
    };
    let echo = UdpEcho::start();
    let mut link = Link::connect(server.addr, transport);
    if let Link::Tcp(_, decoder) = &mut link {
        decoder.set_framing(Framing::MsTurn);
    }
    let mut client = MsTurnClient::new(MsTurnConfig {
        server: server.addr,
        transport,
        username: "u".to_owned(),
        password: "p".to_owned(),
        transactions: TransactionConfig::default(),
    })
    .unwrap();
    client.allocate(Instant::now()).unwrap();
    let (events, _) = drive(&mut client, &mut link, |e, _| !e.is_empty());
    let MsTurnEvent::Allocated {
        relayed, reflexive, ..
    } = &events[0]
    else {
        panic!("not allocated: {events:?}")
    };
    assert_eq!(relayed.ip(), server.addr.ip());
    assert_eq!(*reflexive, Some(link.local_addr()));

    // Through Send requests and back in Data indications.
    let mut out = Vec::new();
    client.send_to(echo.addr, b"by Send", &mut out).unwrap();
    link.send(&out);
    let (_, data) = drive(&mut client, &mut link, |_, d| !d.is_empty());
    assert_eq!(data, [(echo.addr, b"by Send".to_vec())]);

    // Raw, once the echo is the active destination.
    client
        .set_active_destination(Instant::now(), echo.addr)
        .unwrap();
    let (events, _) = drive(&mut client, &mut link, |e, _| !e.is_empty());
    assert_eq!(events, [MsTurnEvent::ActiveDestination { peer: echo.addr }]);
    client
        .send_to(echo.addr, &[0x80, 1, 2, 3], &mut out)
        .unwrap();
    link.send(&out);
    let (_, data) = drive(&mut client, &mut link, |_, d| !d.is_empty());
    assert_eq!(data, [(echo.addr, vec![0x80, 1, 2, 3])]);

    client.release(Instant::now()).unwrap();
    let (events, _) = drive(&mut client, &mut link, |e, _| !e.is_empty());
    assert_eq!(events, [MsTurnEvent::Released]);
}

#[test]
fn relays_over_udp() {
    relay_through_edgeice(Transport::Udp);
}

#[test]
fn relays_over_tcp() {
    relay_through_edgeice(Transport::Tcp);
}

#[test]
fn wrong_password_fails_with_401() {
    let Some(server) = EdgeiceServe::start() else {
        panic!("no edgeice binary: run `cargo build -p edgeice` or set EDGEICE_BIN");
    };
    let mut link = Link::connect(server.addr, Transport::Udp);
    let mut client = MsTurnClient::new(MsTurnConfig {
        server: server.addr,
        transport: Transport::Udp,
        username: "u".to_owned(),
        password: "wrong".to_owned(),
        transactions: TransactionConfig::default(),
    })
    .unwrap();
    client.allocate(Instant::now()).unwrap();
    let (events, _) = drive(&mut client, &mut link, |e, _| !e.is_empty());
    assert!(
        matches!(
            &events[0],
            MsTurnEvent::Failed {
                code: Some(401),
                ..
            }
        ),
        "{events:?}"
    );
}
