//! TURN (RFC 8656) driven without sockets: a client allocates, permits a
//! peer, relays by Send/Data indications and by channels, refreshes and
//! lets go; and the errors the RFC names where it names them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_server::allocation::AllocationDialect;
use edgeice_server::{
    Event, FiveTuple, Input, PEER_DATA_HEADROOM, RelayPort, Server, ServerConfig, Transport,
};
use edgeice_stun::attribute::TRANSPORT_UDP;
use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::*;

const REALM: &str = "example.org";
const RELAY: &str = "10.0.1.5:61000";

fn config() -> ServerConfig {
    let mut config = ServerConfig {
        realm: REALM.to_owned(),
        nonce_secret: [3; 32],
        // Most tests use private relay addresses on purpose.
        private_relay_ok: true,
        ..ServerConfig::default()
    };
    config.add_user("alice", "secret").unwrap();
    config.add_user("bob", "hunter2").unwrap();
    config
}

fn five_tuple(client: &str) -> FiveTuple {
    FiveTuple {
        transport: Transport::Udp,
        client: client.parse().unwrap(),
        server: "10.0.1.5:3478".parse().unwrap(),
    }
}

/// A TURN client as a test drives it: it knows its credentials and the
/// nonce it was last given.
struct Client {
    from: FiveTuple,
    username: &'static str,
    key: IntegrityKey,
    nonce: String,
    next_id: u8,
}

impl Client {
    fn new(from: FiveTuple, username: &'static str, password: &str) -> Self {
        let key = long_term_key(username, REALM, password, 1, Preparation::OpaqueString).unwrap();
        Client {
            from,
            username,
            key,
            nonce: String::new(),
            next_id: 0,
        }
    }

    /// A signed Allocate for a UDP relay, with nothing else.
    fn allocate_request(&mut self) -> Vec<u8> {
        self.request(Method::ALLOCATE, |b| {
            b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
                .unwrap();
        })
    }

    /// Builds a signed request of `method` with the attributes `add` adds.
    fn request(&mut self, method: Method, add: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
        self.next_id += 1;
        let mut buf = Vec::new();
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(method, Class::Request),
            TransactionId([self.next_id; 12]),
        );
        add(&mut b);
        b.add(&Attribute::Username(self.username)).unwrap();
        b.add(&Attribute::Realm(REALM)).unwrap();
        b.add(&Attribute::Nonce(&self.nonce)).unwrap();
        b.add_integrity_sha1(&self.key).unwrap();
        b.add_fingerprint().unwrap();
        buf
    }
}

fn send(server: &mut Server, now: Instant, from: FiveTuple, bytes: &[u8]) -> Option<Vec<u8>> {
    let t = server.handle_input(
        now,
        Input::Client {
            from,
            payload: bytes,
        },
    )?;
    Some(t.payload.to_vec())
}

fn error_code(response: &[u8]) -> Option<u16> {
    let m = Message::parse(response).unwrap();
    match m.get(AttributeType::ERROR_CODE) {
        Some(Ok(Attribute::ErrorCode(e))) => Some(e.code),
        _ => None,
    }
}

/// Gets a nonce the way clients do: an unauthenticated request, a 401.
fn learn_nonce(server: &mut Server, now: Instant, client: &mut Client) {
    let mut buf = Vec::new();
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::ALLOCATE, Class::Request),
        TransactionId([0xee; 12]),
    );
    b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
        .unwrap();
    let response = send(server, now, client.from, &buf).unwrap();
    assert_eq!(error_code(&response), Some(401));
    let m = Message::parse(&response).unwrap();
    assert_eq!(
        m.get(AttributeType::REALM),
        Some(Ok(Attribute::Realm(REALM)))
    );
    let Some(Ok(Attribute::Nonce(nonce))) = m.get(AttributeType::NONCE) else {
        panic!("401 without NONCE")
    };
    client.nonce = nonce.to_owned();
}

/// Allocates: the server asks for a relay socket, gets `relay`, answers.
fn allocate(
    server: &mut Server,
    now: Instant,
    client: &mut Client,
    relay: &str,
) -> Message<'static> {
    let request = client.allocate_request();
    assert!(
        send(server, now, client.from, &request).is_none(),
        "answered before the relay was bound"
    );
    let Some(Event::BindRelay {
        id, family, port, ..
    }) = server.poll_event()
    else {
        panic!("no BindRelay event")
    };
    assert_eq!(family, AddressFamily::V4);
    assert_eq!(port, RelayPort::Any);
    let t = server
        .handle_input(
            now,
            Input::RelayBound {
                id,
                relay: Some(relay.parse().unwrap()),
                reserved: None,
                additional: None,
            },
        )
        .expect("Allocate answered");
    assert_eq!(t.destination, client.from.client);
    let bytes: &'static [u8] = Box::leak(t.payload.to_vec().into_boxed_slice());
    let m = Message::parse(bytes).unwrap();
    assert_eq!(m.class(), Class::Success, "error {:?}", error_code(bytes));
    m.verify_integrity(&client.key)
        .expect("signed with the user's key");
    m
}

fn peer_data(
    server: &mut Server,
    now: Instant,
    relay: &str,
    peer: SocketAddr,
    payload: &[u8],
) -> Option<(FiveTuple, Vec<u8>)> {
    let mut datagram = vec![0u8; PEER_DATA_HEADROOM];
    datagram.extend_from_slice(payload);
    let t = server.handle_input(
        now,
        Input::PeerData {
            relay: relay.parse().unwrap(),
            peer,
            datagram: &mut datagram,
        },
    )?;
    Some((
        FiveTuple {
            transport: t.transport,
            client: t.destination,
            server: t.source,
        },
        t.payload.to_vec(),
    ))
}

#[test]
fn a_client_allocates_relays_both_ways_and_lets_go() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    let allocated = allocate(&mut server, t0, &mut alice, RELAY);
    assert_eq!(
        allocated.get(AttributeType::XOR_RELAYED_ADDRESS),
        Some(Ok(Attribute::XorRelayedAddress(RELAY.parse().unwrap())))
    );
    assert_eq!(
        allocated.get(AttributeType::XOR_MAPPED_ADDRESS),
        Some(Ok(Attribute::XorMappedAddress(alice.from.client)))
    );
    assert_eq!(
        allocated.get(AttributeType::LIFETIME),
        Some(Ok(Attribute::Lifetime(600)))
    );

    let peer: SocketAddr = "198.51.100.20:7000".parse().unwrap();

    // Without a permission, nothing passes either way.
    assert!(peer_data(&mut server, t0, RELAY, peer, b"early").is_none());
    let mut send_indication = Vec::new();
    let mut b = MessageBuilder::new(
        &mut send_indication,
        MessageType::new(Method::SEND, Class::Indication),
        TransactionId([0x55; 12]),
    );
    b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    b.add(&Attribute::Data(b"hello peer")).unwrap();
    assert!(send(&mut server, t0, alice.from, &send_indication).is_none());

    let request = alice.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    let response = send(&mut server, t0, alice.from, &request).unwrap();
    assert_eq!(Message::parse(&response).unwrap().class(), Class::Success);

    // Send indication → the bare data, from the relay address to the peer.
    let t = server
        .handle_input(
            t0,
            Input::Client {
                from: alice.from,
                payload: &send_indication,
            },
        )
        .unwrap();
    assert_eq!(
        (t.source, t.destination, t.payload),
        (RELAY.parse().unwrap(), peer, &b"hello peer"[..])
    );

    // The peer answers (from any port of the permitted IP) → Data indication.
    let other_port: SocketAddr = "198.51.100.20:7001".parse().unwrap();
    let (to, bytes) = peer_data(&mut server, t0, RELAY, other_port, b"hello alice").unwrap();
    assert_eq!(to, alice.from);
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.kind(), MessageType::new(Method::DATA, Class::Indication));
    assert_eq!(
        m.get(AttributeType::XOR_PEER_ADDRESS),
        Some(Ok(Attribute::XorPeerAddress(other_port)))
    );
    assert_eq!(
        m.get(AttributeType::DATA),
        Some(Ok(Attribute::Data(b"hello alice")))
    );

    // A channel: ChannelData both ways, the header written in place.
    let request = alice.request(Method::CHANNEL_BIND, |b| {
        b.add(&Attribute::ChannelNumber(0x4001)).unwrap();
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    let response = send(&mut server, t0, alice.from, &request).unwrap();
    assert_eq!(Message::parse(&response).unwrap().class(), Class::Success);
    let mut frame = Vec::new();
    ChannelData {
        channel: 0x4001,
        data: b"over the channel",
    }
    .encode(false, &mut frame)
    .unwrap();
    let t = server
        .handle_input(
            t0,
            Input::Client {
                from: alice.from,
                payload: &frame,
            },
        )
        .unwrap();
    assert_eq!((t.destination, t.payload), (peer, &b"over the channel"[..]));
    let (_, bytes) = peer_data(&mut server, t0, RELAY, peer, b"back").unwrap();
    assert_eq!(
        ChannelData::parse(&bytes).unwrap(),
        ChannelData {
            channel: 0x4001,
            data: b"back"
        }
    );

    let stats = server.stats();
    assert_eq!(stats.relayed_to_peer, (2, 26));
    assert_eq!(stats.relayed_to_client, (2, 15));

    // Refresh with LIFETIME 0 deletes the allocation and frees the socket.
    let request = alice.request(Method::REFRESH, |b| {
        b.add(&Attribute::Lifetime(0)).unwrap();
    });
    let response = send(&mut server, t0, alice.from, &request).unwrap();
    assert_eq!(
        Message::parse(&response)
            .unwrap()
            .get(AttributeType::LIFETIME),
        Some(Ok(Attribute::Lifetime(0)))
    );
    assert_eq!(
        server.poll_event(),
        Some(Event::ReleaseRelay {
            relay: RELAY.parse().unwrap()
        })
    );
    assert_eq!(server.allocation_count(), 0);
    assert!(peer_data(&mut server, t0, RELAY, peer, b"late").is_none());
}

#[test]
fn permissions_channels_and_allocations_lapse() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    allocate(&mut server, t0, &mut alice, RELAY);
    let peer: SocketAddr = "198.51.100.20:7000".parse().unwrap();
    let request = alice.request(Method::CHANNEL_BIND, |b| {
        b.add(&Attribute::ChannelNumber(0x4000)).unwrap();
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    send(&mut server, t0, alice.from, &request).unwrap();
    assert!(peer_data(&mut server, t0, RELAY, peer, b"x").is_some());

    // Five minutes on, the permission the channel installed has lapsed.
    let t5 = t0 + Duration::from_secs(301);
    server.handle_timeout(t5);
    assert!(peer_data(&mut server, t5, RELAY, peer, b"x").is_none());
    assert_eq!(server.poll_event(), None);

    // Ten minutes on, the allocation itself lapses and its socket is freed.
    assert!(server.poll_timeout().is_some());
    let t10 = t0 + Duration::from_secs(601);
    server.handle_timeout(t10);
    assert_eq!(
        server.poll_event(),
        Some(Event::ReleaseRelay {
            relay: RELAY.parse().unwrap()
        })
    );
    assert_eq!(server.allocation_count(), 0);
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn authentication_errors() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);

    // Wrong password: 401 with a fresh nonce.
    let mut mallory = Client::new(alice.from, "alice", "guess");
    mallory.nonce = alice.nonce.clone();
    let request = mallory.allocate_request();
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(401)
    );

    // A nonce issued to another client address: 401.
    let mut moved = Client::new(five_tuple("192.0.2.11:50000"), "alice", "secret");
    moved.nonce = alice.nonce.clone();
    let request = moved.allocate_request();
    assert_eq!(
        error_code(&send(&mut server, t0, moved.from, &request).unwrap()),
        Some(401)
    );

    // An expired nonce: 438 Stale Nonce.
    let later = t0 + Duration::from_secs(3600);
    let request = alice.allocate_request();
    assert_eq!(
        error_code(&send(&mut server, later, alice.from, &request).unwrap()),
        Some(438)
    );

    // Another user on an allocation's 5-tuple: 441.
    allocate(&mut server, t0, &mut alice, RELAY);
    let mut bob = Client::new(alice.from, "bob", "hunter2");
    bob.nonce = alice.nonce.clone();
    let request = bob.request(Method::REFRESH, |_| {});
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(441)
    );
    assert!(server.stats().auth_failures >= 4);
}

#[test]
fn request_errors_follow_rfc_8656() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);

    // No allocation yet: 437.
    let request = alice.request(Method::REFRESH, |_| {});
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(437)
    );
    // No REQUESTED-TRANSPORT: 400. A TCP relay asked for over UDP: 400
    // (RFC 6062 §5.1). A transport that is neither: 442.
    let request = alice.request(Method::ALLOCATE, |_| {});
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(400)
    );
    let request = alice.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(6)).unwrap();
    });
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(400)
    );
    let request = alice.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(132)).unwrap();
    });
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(442)
    );
    // An unknown comprehension-required attribute: 420, signed.
    let request = alice.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add_raw(AttributeType(0x7123), b"?").unwrap();
    });
    let response = send(&mut server, t0, alice.from, &request).unwrap();
    assert_eq!(error_code(&response), Some(420));
    assert!(
        Message::parse(&response)
            .unwrap()
            .verify_integrity(&alice.key)
            .is_ok()
    );

    let allocated = allocate(&mut server, t0, &mut alice, RELAY);
    let txid = *allocated.transaction_id();
    // A second Allocate on the same 5-tuple: 437.
    let request = alice.allocate_request();
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(437)
    );
    let _ = txid;

    // Peers the relay must not reach: 403, in any disguise.
    for peer in ["127.0.0.1:22", "0.0.0.0:80", "224.0.0.1:5000"] {
        let peer: SocketAddr = peer.parse().unwrap();
        let request = alice.request(Method::CREATE_PERMISSION, |b| {
            b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        });
        assert_eq!(
            error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
            Some(403),
            "{peer}"
        );
    }
    // An IPv6 peer on an IPv4 relay: 443.
    let request = alice.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(
            "[2001:db8::1]:5000".parse().unwrap(),
        ))
        .unwrap();
    });
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(443)
    );
    // Invalid channel number, and a channel already bound to another peer: 400.
    let peer: SocketAddr = "198.51.100.20:7000".parse().unwrap();
    let request = alice.request(Method::CHANNEL_BIND, |b| {
        b.add(&Attribute::ChannelNumber(0x3fff)).unwrap();
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(400)
    );
    let request = alice.request(Method::CHANNEL_BIND, |b| {
        b.add(&Attribute::ChannelNumber(0x4000)).unwrap();
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    assert!(error_code(&send(&mut server, t0, alice.from, &request).unwrap()).is_none());
    let request = alice.request(Method::CHANNEL_BIND, |b| {
        b.add(&Attribute::ChannelNumber(0x4000)).unwrap();
        b.add(&Attribute::XorPeerAddress(
            "198.51.100.21:7000".parse().unwrap(),
        ))
        .unwrap();
    });
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(400)
    );
}

#[test]
fn quotas_and_relay_exhaustion() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_allocations_per_user = 1;
    let mut server = Server::new(config, t0);
    let mut first = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut first);
    allocate(&mut server, t0, &mut first, RELAY);
    let mut second = Client::new(five_tuple("192.0.2.10:50002"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut second);
    let request = second.allocate_request();
    assert_eq!(
        error_code(&send(&mut server, t0, second.from, &request).unwrap()),
        Some(486)
    );

    // No relay port free: 508.
    let mut bob = Client::new(five_tuple("192.0.2.11:50000"), "bob", "hunter2");
    learn_nonce(&mut server, t0, &mut bob);
    let request = bob.allocate_request();
    assert!(send(&mut server, t0, bob.from, &request).is_none());
    let Some(Event::BindRelay { id, .. }) = server.poll_event() else {
        panic!()
    };
    let t = server
        .handle_input(
            t0,
            Input::RelayBound {
                id,
                relay: None,
                reserved: None,
                additional: None,
            },
        )
        .unwrap();
    assert_eq!(error_code(t.payload), Some(508));
}

#[test]
fn a_private_relay_address_is_reported_once() {
    let t0 = Instant::now();
    let mut config = config();
    config.private_relay_ok = false;
    let mut server = Server::new(config, t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    let request = alice.allocate_request();
    send(&mut server, t0, alice.from, &request);
    let Some(Event::BindRelay { id, .. }) = server.poll_event() else {
        panic!()
    };
    server.handle_input(
        t0,
        Input::RelayBound {
            id,
            relay: Some(RELAY.parse().unwrap()),
            reserved: None,
            additional: None,
        },
    );
    let Some(Event::PrivateRelayAdvertised(warning)) = server.poll_event() else {
        panic!("no warning for a private relay address")
    };
    assert_eq!(warning.ip.to_string(), "10.0.1.5");
    assert!(warning.to_string().contains("--external-ip"));
    assert_eq!(server.poll_event(), None);
}

#[test]
fn behind_nat_the_public_address_is_advertised() {
    let t0 = Instant::now();
    let mut config = config();
    config
        .external_ips
        .insert("10.0.1.5".parse().unwrap(), "203.0.113.5".parse().unwrap());
    let mut server = Server::new(config, t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    let allocated = allocate(&mut server, t0, &mut alice, RELAY);
    assert_eq!(
        allocated.get(AttributeType::XOR_RELAYED_ADDRESS),
        Some(Ok(Attribute::XorRelayedAddress(
            "203.0.113.5:61000".parse().unwrap()
        )))
    );
}

#[test]
fn even_port_reserves_the_next_port_for_a_token() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut rtp = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut rtp);
    let request = rtp.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add(&Attribute::EvenPort(true)).unwrap();
    });
    assert!(send(&mut server, t0, rtp.from, &request).is_none());
    let Some(Event::BindRelay { id, port, .. }) = server.poll_event() else {
        panic!()
    };
    assert_eq!(port, RelayPort::Even { reserve_next: true });
    let even: SocketAddr = "10.0.1.5:61000".parse().unwrap();
    let odd: SocketAddr = "10.0.1.5:61001".parse().unwrap();
    let t = server
        .handle_input(
            t0,
            Input::RelayBound {
                id,
                relay: Some(even),
                reserved: Some(odd),
                additional: None,
            },
        )
        .unwrap();
    let bytes = t.payload.to_vec();
    let m = Message::parse(&bytes).unwrap();
    let Some(Ok(Attribute::ReservationToken(token))) = m.get(AttributeType::RESERVATION_TOKEN)
    else {
        panic!("no RESERVATION-TOKEN")
    };

    // The RTCP allocation claims the held port with the token, once.
    let mut rtcp = Client::new(five_tuple("192.0.2.10:50001"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut rtcp);
    let request = rtcp.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add(&Attribute::ReservationToken(token)).unwrap();
    });
    assert!(send(&mut server, t0, rtcp.from, &request).is_none());
    let Some(Event::BindRelay { port, .. }) = server.poll_event() else {
        panic!()
    };
    assert_eq!(port, RelayPort::Reserved(odd));
    let mut again = Client::new(five_tuple("192.0.2.10:50002"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut again);
    let request = again.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add(&Attribute::ReservationToken(token)).unwrap();
    });
    assert_eq!(
        error_code(&send(&mut server, t0, again.from, &request).unwrap()),
        Some(508)
    );
}

#[test]
fn unclaimed_reservations_are_released() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut rtp = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut rtp);
    let request = rtp.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add(&Attribute::EvenPort(true)).unwrap();
    });
    send(&mut server, t0, rtp.from, &request);
    let Some(Event::BindRelay { id, .. }) = server.poll_event() else {
        panic!()
    };
    let odd: SocketAddr = "10.0.1.5:61001".parse().unwrap();
    server.handle_input(
        t0,
        Input::RelayBound {
            id,
            relay: Some("10.0.1.5:61000".parse().unwrap()),
            reserved: Some(odd),
            additional: None,
        },
    );
    server.handle_timeout(t0 + Duration::from_secs(31));
    assert_eq!(
        server.poll_event(),
        Some(Event::ReleaseRelay { relay: odd })
    );
}

#[test]
fn rest_api_credentials_with_rotated_secrets() {
    let t0 = Instant::now();
    let mut config = config();
    config.auth_secrets = vec!["new-secret".into(), "old-secret".into()];
    config.unix_time_at_start = 1_700_000_000;
    let mut server = Server::new(config, t0);

    // Signed under the older secret, still accepted during rotation.
    let username: &'static str = "1700000600:alice";
    let password = edgeice_server::rest_api_password("old-secret", username);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), username, &password);
    learn_nonce(&mut server, t0, &mut alice);
    allocate(&mut server, t0, &mut alice, RELAY);

    // Past its expiry, the same user name is refused.
    let later = t0 + Duration::from_secs(601);
    let mut late = Client::new(five_tuple("192.0.2.10:50001"), username, &password);
    learn_nonce(&mut server, later, &mut late);
    let request = late.allocate_request();
    assert_eq!(
        error_code(&send(&mut server, later, late.from, &request).unwrap()),
        Some(401)
    );

    // A password made with a secret the server does not have: refused.
    let forged = edgeice_server::rest_api_password("guess", username);
    let mut mallory = Client::new(five_tuple("192.0.2.10:50002"), username, &forged);
    learn_nonce(&mut server, t0, &mut mallory);
    let request = mallory.allocate_request();
    assert_eq!(
        error_code(&send(&mut server, t0, mallory.from, &request).unwrap()),
        Some(401)
    );
}

#[test]
fn a_dual_allocation_relays_both_families() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    let request = alice.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add(&Attribute::AdditionalAddressFamily(AddressFamily::V6))
            .unwrap();
    });
    assert!(send(&mut server, t0, alice.from, &request).is_none());
    let Some(Event::BindRelay {
        id,
        family,
        additional_family,
        ..
    }) = server.poll_event()
    else {
        panic!()
    };
    assert_eq!(
        (family, additional_family),
        (AddressFamily::V4, Some(AddressFamily::V6))
    );
    let v4: SocketAddr = RELAY.parse().unwrap();
    let v6: SocketAddr = "[2001:db8::5]:61002".parse().unwrap();
    let t = server
        .handle_input(
            t0,
            Input::RelayBound {
                id,
                relay: Some(v4),
                reserved: None,
                additional: Some(v6),
            },
        )
        .unwrap();
    let bytes = t.payload.to_vec();
    let m = Message::parse(&bytes).unwrap();
    let relayed: Vec<_> = m
        .attributes()
        .filter_map(|a| match a {
            Ok(Attribute::XorRelayedAddress(addr)) => Some(addr),
            _ => None,
        })
        .collect();
    assert_eq!(relayed, vec![v4, v6]);
    let by_kind = server.allocations_by_kind();
    assert_eq!(
        by_kind.get(&(
            Transport::Udp,
            AddressFamily::V6,
            AllocationDialect::Standard
        )),
        Some(&1)
    );

    // Permissions for peers of both families; each is reached from its relay.
    let peer4: SocketAddr = "198.51.100.20:7000".parse().unwrap();
    let peer6: SocketAddr = "[2001:db8::20]:7000".parse().unwrap();
    let request = alice.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(peer4)).unwrap();
        b.add(&Attribute::XorPeerAddress(peer6)).unwrap();
    });
    assert!(error_code(&send(&mut server, t0, alice.from, &request).unwrap()).is_none());
    for (peer, relay) in [(peer4, v4), (peer6, v6)] {
        let mut indication = Vec::new();
        let mut b = MessageBuilder::new(
            &mut indication,
            MessageType::new(Method::SEND, Class::Indication),
            TransactionId([0x77; 12]),
        );
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        b.add(&Attribute::Data(b"hi")).unwrap();
        let t = server
            .handle_input(
                t0,
                Input::Client {
                    from: alice.from,
                    payload: &indication,
                },
            )
            .unwrap();
        assert_eq!((t.source, t.destination), (relay, peer));
        let (to, _) = peer_data(&mut server, t0, &relay.to_string(), peer, b"back").unwrap();
        assert_eq!(to, alice.from);
    }

    // Deleting it frees both sockets.
    let request = alice.request(Method::REFRESH, |b| {
        b.add(&Attribute::Lifetime(0)).unwrap();
    });
    send(&mut server, t0, alice.from, &request);
    assert_eq!(server.poll_event(), Some(Event::ReleaseRelay { relay: v4 }));
    assert_eq!(server.poll_event(), Some(Event::ReleaseRelay { relay: v6 }));
}

#[test]
fn a_dual_allocation_without_ipv6_gets_ipv4_and_error_440() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    let request = alice.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add(&Attribute::AdditionalAddressFamily(AddressFamily::V6))
            .unwrap();
    });
    send(&mut server, t0, alice.from, &request);
    let Some(Event::BindRelay { id, .. }) = server.poll_event() else {
        panic!()
    };
    let t = server
        .handle_input(
            t0,
            Input::RelayBound {
                id,
                relay: Some(RELAY.parse().unwrap()),
                reserved: None,
                additional: None,
            },
        )
        .unwrap();
    let bytes = t.payload.to_vec();
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.class(), Class::Success);
    let Some(Ok(Attribute::AddressErrorCode { family, error })) =
        m.get(AttributeType::ADDRESS_ERROR_CODE)
    else {
        panic!("no ADDRESS-ERROR-CODE")
    };
    assert_eq!((family, error.code), (AddressFamily::V6, 440));
}

#[test]
fn coturn_clients_draft_additional_address_family_is_understood() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    let request = alice.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add_raw(AttributeType(0x8032), &[2, 0, 0, 0]).unwrap();
    });
    assert!(send(&mut server, t0, alice.from, &request).is_none());
    let Some(Event::BindRelay {
        additional_family, ..
    }) = server.poll_event()
    else {
        panic!()
    };
    assert_eq!(additional_family, Some(AddressFamily::V6));
}

/// Allocates a TCP relay for a client on TCP.
fn allocate_tcp(server: &mut Server, now: Instant, client: &mut Client, relay: &str) {
    let request = client.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(6)).unwrap();
    });
    assert!(send(server, now, client.from, &request).is_none());
    let Some(Event::BindRelay { id, transport, .. }) = server.poll_event() else {
        panic!("no BindRelay")
    };
    assert_eq!(transport, edgeice_server::RelayTransport::Tcp);
    let input = Input::RelayBound {
        id,
        relay: Some(relay.parse().unwrap()),
        reserved: None,
        additional: None,
    };
    let t = server.handle_input(now, input).unwrap();
    assert_eq!(Message::parse(t.payload).unwrap().class(), Class::Success);
}

#[test]
fn rfc6062_connect_and_connection_bind() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let control = FiveTuple {
        transport: Transport::Tcp,
        ..five_tuple("192.0.2.10:50000")
    };
    let mut alice = Client::new(control, "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    allocate_tcp(&mut server, t0, &mut alice, RELAY);
    let peer: SocketAddr = "198.51.100.20:7000".parse().unwrap();

    // Connect needs a permission first: 403.
    let connect = alice.request(Method::CONNECT, |b| {
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    assert_eq!(
        error_code(&send(&mut server, t0, control, &connect).unwrap()),
        Some(403)
    );
    let request = alice.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    send(&mut server, t0, control, &request).unwrap();

    // Connect: the driver is asked to connect; the answer carries the ID.
    assert!(send(&mut server, t0, control, &connect).is_none());
    let Some(Event::ConnectPeer {
        id,
        relay,
        peer: to,
    }) = server.poll_event()
    else {
        panic!()
    };
    assert_eq!((relay, to), (RELAY.parse().unwrap(), peer));
    let t = server
        .handle_input(
            t0,
            Input::PeerConnected {
                id,
                connected: true,
            },
        )
        .unwrap();
    assert_eq!(t.destination, control.client);
    let bytes = t.payload.to_vec();
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(
        m.get(AttributeType::CONNECTION_ID),
        Some(Ok(Attribute::ConnectionId(id.0)))
    );
    // A second Connect to the same peer: 446.
    let again = alice.request(Method::CONNECT, |b| {
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    assert_eq!(
        error_code(&send(&mut server, t0, control, &again).unwrap()),
        Some(446)
    );

    // Another user cannot bind it (441); the owner can, on a new connection.
    let data = FiveTuple {
        client: "192.0.2.10:50001".parse().unwrap(),
        ..control
    };
    let mut bob = Client::new(data, "bob", "hunter2");
    learn_nonce(&mut server, t0, &mut bob);
    let bind = bob.request(Method::CONNECTION_BIND, |b| {
        b.add(&Attribute::ConnectionId(id.0)).unwrap();
    });
    assert_eq!(
        error_code(&send(&mut server, t0, data, &bind).unwrap()),
        Some(441)
    );
    let mut alice_data = Client::new(data, "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice_data);
    let bind = alice_data.request(Method::CONNECTION_BIND, |b| {
        b.add(&Attribute::ConnectionId(id.0)).unwrap();
    });
    let answer = send(&mut server, t0, data, &bind).unwrap();
    assert_eq!(Message::parse(&answer).unwrap().class(), Class::Success);
    assert_eq!(server.poll_event(), Some(Event::Splice { id, data }));
    // Bound once only.
    assert_eq!(
        error_code(&send(&mut server, t0, data, &bind).unwrap()),
        Some(400)
    );

    // The allocation ends: its peer connections close.
    let request = alice.request(Method::REFRESH, |b| {
        b.add(&Attribute::Lifetime(0)).unwrap();
    });
    send(&mut server, t0, control, &request);
    assert_eq!(server.poll_event(), Some(Event::ClosePeerConnection { id }));
}

#[test]
fn rfc6062_incoming_peers_need_a_permission_and_a_timely_bind() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let control = FiveTuple {
        transport: Transport::Tcp,
        ..five_tuple("192.0.2.10:50000")
    };
    let mut alice = Client::new(control, "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    allocate_tcp(&mut server, t0, &mut alice, RELAY);
    let relay: SocketAddr = RELAY.parse().unwrap();
    let peer: SocketAddr = "198.51.100.20:7000".parse().unwrap();

    assert!(
        server
            .handle_input(t0, Input::PeerConnection { relay, peer })
            .is_none()
    );
    assert_eq!(server.poll_event(), Some(Event::RefusePeer { relay, peer }));

    let request = alice.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    send(&mut server, t0, control, &request).unwrap();
    let t = server
        .handle_input(t0, Input::PeerConnection { relay, peer })
        .unwrap();
    assert_eq!(t.destination, control.client);
    let bytes = t.payload.to_vec();
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(
        m.kind(),
        MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication)
    );
    assert_eq!(
        m.get(AttributeType::XOR_PEER_ADDRESS),
        Some(Ok(Attribute::XorPeerAddress(peer)))
    );
    let Some(Event::AcceptPeer { id, .. }) = server.poll_event() else {
        panic!()
    };
    assert_eq!(
        m.get(AttributeType::CONNECTION_ID),
        Some(Ok(Attribute::ConnectionId(id.0)))
    );

    // No ConnectionBind within 30 seconds: closed.
    server.handle_timeout(t0 + Duration::from_secs(31));
    assert_eq!(server.poll_event(), Some(Event::ClosePeerConnection { id }));
}

#[test]
fn challenges_are_rate_limited_per_source_ip() {
    let t0 = Instant::now();
    let mut config = config();
    config.shared = std::sync::Arc::new(edgeice_server::SharedState::new((1, 5)));
    let mut server = Server::new(config, t0);
    let mut buf = Vec::new();
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::ALLOCATE, Class::Request),
        TransactionId([1; 12]),
    );
    b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
        .unwrap();
    let from = five_tuple("192.0.2.10:50000");
    let answered = (0..50)
        .filter(|_| send(&mut server, t0, from, &buf).is_some())
        .count();
    assert_eq!(answered, 5);
    assert_eq!(server.stats().challenges_dropped, 45);
    // Another source is not affected.
    assert!(send(&mut server, t0, five_tuple("198.51.100.3:4000"), &buf).is_some());
}

/// Binds channel `number` of `client`'s allocation to `peer`; the answer.
fn channel_bind(
    server: &mut Server,
    now: Instant,
    client: &mut Client,
    number: u16,
    peer: SocketAddr,
) -> Vec<u8> {
    let request = client.request(Method::CHANNEL_BIND, |b| {
        b.add(&Attribute::ChannelNumber(number)).unwrap();
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    send(server, now, client.from, &request).unwrap()
}

/// Sends ten ChannelData frames of 200 bytes on channel 0x4000 from
/// `from`; how many were relayed.
fn ten_channel_data_relayed(server: &mut Server, now: Instant, from: FiveTuple) -> usize {
    let mut frame = Vec::new();
    ChannelData {
        channel: 0x4000,
        data: &[7u8; 200],
    }
    .encode(false, &mut frame)
    .unwrap();
    (0..10)
        .filter(|_| {
            let input = Input::Client {
                from,
                payload: &frame,
            };
            server.handle_input(now, input).is_some()
        })
        .count()
}

#[test]
fn a_bandwidth_cap_drops_what_exceeds_it() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_bytes_per_second = Some(1000);
    let mut server = Server::new(config, t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    allocate(&mut server, t0, &mut alice, RELAY);
    let peer: SocketAddr = "198.51.100.20:7000".parse().unwrap();
    channel_bind(&mut server, t0, &mut alice, 0x4000, peer);
    let relayed = |server: &mut Server, now| ten_channel_data_relayed(server, now, alice.from);
    // One second's worth (1000 bytes) at once, then 1000 bytes a second.
    assert_eq!(relayed(&mut server, t0), 5);
    assert_eq!(relayed(&mut server, t0 + Duration::from_secs(1)), 5);
    // The cap covers both directions together.
    assert!(
        peer_data(
            &mut server,
            t0 + Duration::from_secs(1),
            RELAY,
            peer,
            &[1; 100]
        )
        .is_none()
    );
    assert_eq!(server.stats().over_bandwidth, 11);
}

/// The kernel relays a family throughout, never from one to the other:
/// an IPv6 client on an IPv6 relay to an IPv6 peer goes to the kernel; an
/// IPv6 client on an IPv4 relay would change the header size, and stays
/// with the sockets.
#[test]
fn ipv6_throughout_goes_to_the_kernel_and_mixed_families_do_not() {
    let t0 = Instant::now();
    let mut config = config();
    config.kernel_fast_path = true;
    config.relay_families = vec![AddressFamily::V4, AddressFamily::V6];
    let mut server = Server::new(config, t0);
    let from = FiveTuple {
        transport: Transport::Udp,
        client: "[2001:db8:1::10]:50000".parse().unwrap(),
        server: "[fd00::5]:3478".parse().unwrap(),
    };
    let mut alice = Client::new(from, "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    let request = alice.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add(&Attribute::RequestedAddressFamily(AddressFamily::V6))
            .unwrap();
    });
    assert!(send(&mut server, t0, alice.from, &request).is_none());
    let Some(Event::BindRelay { id, .. }) = server.poll_event() else {
        panic!("no BindRelay event")
    };
    let relay6: SocketAddr = "[fd00::5]:61000".parse().unwrap();
    server
        .handle_input(
            t0,
            Input::RelayBound {
                id,
                relay: Some(relay6),
                reserved: None,
                additional: None,
            },
        )
        .unwrap();
    while server.poll_event().is_some() {}
    let peer6: SocketAddr = "[2001:db8:2::20]:7000".parse().unwrap();
    let response = channel_bind(&mut server, t0, &mut alice, 0x4001, peer6);
    assert_eq!(Message::parse(&response).unwrap().class(), Class::Success);
    let route = edgeice_server::FastRoute {
        client: alice.from,
        relay: relay6,
        peer: peer6,
        channel: 0x4001,
    };
    assert!(
        matches!(server.poll_event(), Some(Event::FastPathInstall { route: r, .. }) if r == route)
    );
    let mut bob = Client::new(
        FiveTuple {
            client: "[2001:db8:1::11]:50000".parse().unwrap(),
            ..from
        },
        "bob",
        "hunter2",
    );
    learn_nonce(&mut server, t0, &mut bob);
    allocate(&mut server, t0, &mut bob, "10.0.1.5:61002");
    while server.poll_event().is_some() {}
    let peer4: SocketAddr = "198.51.100.20:7000".parse().unwrap();
    let response = channel_bind(&mut server, t0, &mut bob, 0x4002, peer4);
    assert_eq!(Message::parse(&response).unwrap().class(), Class::Success);
    assert!(
        !std::iter::from_fn(|| server.poll_event())
            .any(|e| matches!(e, Event::FastPathInstall { .. })),
        "an IPv6 client's channel through an IPv4 relay went to the kernel"
    );
}

#[test]
fn a_family_the_server_does_not_relay_in_gets_440() {
    let t0 = Instant::now();
    let mut config = config();
    config.relay_families = vec![AddressFamily::V4];
    let mut server = Server::new(config, t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    let request = alice.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add(&Attribute::RequestedAddressFamily(AddressFamily::V6))
            .unwrap();
    });
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(440)
    );
    // Dual: IPv4 only, without asking the driver for IPv6.
    let request = alice.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add(&Attribute::AdditionalAddressFamily(AddressFamily::V6))
            .unwrap();
    });
    assert!(send(&mut server, t0, alice.from, &request).is_none());
    let Some(Event::BindRelay {
        id,
        additional_family,
        ..
    }) = server.poll_event()
    else {
        panic!()
    };
    assert_eq!(additional_family, None);
    let input = Input::RelayBound {
        id,
        relay: Some(RELAY.parse().unwrap()),
        reserved: None,
        additional: None,
    };
    let bytes = server.handle_input(t0, input).unwrap().payload.to_vec();
    let m = Message::parse(&bytes).unwrap();
    let Some(Ok(Attribute::AddressErrorCode { family, error })) =
        m.get(AttributeType::ADDRESS_ERROR_CODE)
    else {
        panic!("no ADDRESS-ERROR-CODE")
    };
    assert_eq!((family, error.code), (AddressFamily::V6, 440));
}

#[test]
fn a_reservation_made_by_one_core_is_claimed_in_another() {
    let t0 = Instant::now();
    let config = config();
    let mut first = Server::new(config.clone(), t0);
    let mut second = Server::new(config.clone(), t0);
    let mut rtp = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut first, t0, &mut rtp);
    let request = rtp.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add(&Attribute::EvenPort(true)).unwrap();
    });
    send(&mut first, t0, rtp.from, &request);
    let Some(Event::BindRelay { id, .. }) = first.poll_event() else {
        panic!()
    };
    let odd: SocketAddr = "10.0.1.5:61001".parse().unwrap();
    let input = Input::RelayBound {
        id,
        relay: Some(RELAY.parse().unwrap()),
        reserved: Some(odd),
        additional: None,
    };
    let bytes = first.handle_input(t0, input).unwrap().payload.to_vec();
    let Some(Ok(Attribute::ReservationToken(token))) = Message::parse(&bytes)
        .unwrap()
        .get(AttributeType::RESERVATION_TOKEN)
    else {
        panic!("no RESERVATION-TOKEN")
    };
    let mut rtcp = Client::new(five_tuple("192.0.2.10:50001"), "alice", "secret");
    learn_nonce(&mut second, t0, &mut rtcp);
    let request = rtcp.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        b.add(&Attribute::ReservationToken(token)).unwrap();
    });
    assert!(send(&mut second, t0, rtcp.from, &request).is_none());
    let Some(Event::BindRelay { port, .. }) = second.poll_event() else {
        panic!()
    };
    assert_eq!(port, RelayPort::Reserved(odd));
}

#[test]
fn cores_sharing_a_quota_ledger_share_the_limits() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_allocations_per_user = 1;
    // Two cores (shards of one server) built from clones of one config.
    let mut first = Server::new(config.clone(), t0);
    let mut second = Server::new(config.clone(), t0);
    let mut a = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut first, t0, &mut a);
    allocate(&mut first, t0, &mut a, RELAY);
    let mut b = Client::new(five_tuple("192.0.2.99:50000"), "alice", "secret");
    learn_nonce(&mut second, t0, &mut b);
    let request = b.allocate_request();
    assert_eq!(
        error_code(&send(&mut second, t0, b.from, &request).unwrap()),
        Some(486)
    );
    assert_eq!(config.shared.allocations(), 1);
    // When the first allocation ends, the quota is free again everywhere.
    let request = a.request(Method::REFRESH, |m| {
        m.add(&Attribute::Lifetime(0)).unwrap();
    });
    send(&mut first, t0, a.from, &request);
    assert_eq!(config.shared.allocations(), 0);
}

/// The kernel fast path gets a channel once it is bound with its
/// permission, with a deadline the kernel enforces itself (the permission's
/// expiry here); a refresh moves that deadline; the sweep after a lapse
/// and the allocation's end take the channel back.
#[test]
fn bound_channels_go_to_the_kernel_and_come_back_when_they_lapse() {
    let t0 = Instant::now();
    let mut server = Server::new(
        ServerConfig {
            kernel_fast_path: true,
            ..config()
        },
        t0,
    );
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    allocate(&mut server, t0, &mut alice, RELAY);
    while server.poll_event().is_some() {}
    let peer: SocketAddr = "198.51.100.20:7000".parse().unwrap();
    let response = channel_bind(&mut server, t0, &mut alice, 0x4001, peer);
    assert_eq!(Message::parse(&response).unwrap().class(), Class::Success);
    let route = edgeice_server::FastRoute {
        client: alice.from,
        relay: RELAY.parse().unwrap(),
        peer,
        channel: 0x4001,
    };
    // The permission lasts 300 s, the channel and the allocation 600 s.
    let install = |until| {
        Some(Event::FastPathInstall {
            route,
            until,
            capped: false,
        })
    };
    assert_eq!(server.poll_event(), install(t0 + Duration::from_secs(300)));
    // Refreshing the binding at once moves nothing: nothing installed twice.
    channel_bind(&mut server, t0, &mut alice, 0x4001, peer);
    assert_eq!(server.poll_event(), None);

    // A CreatePermission 100 s later moves the deadline to 400 s.
    let t100 = t0 + Duration::from_secs(100);
    let request = alice.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    send(&mut server, t100, alice.from, &request).unwrap();
    assert_eq!(server.poll_event(), install(t0 + Duration::from_secs(400)));
    // A Refresh (600 s from now) leaves the permission the first to lapse.
    let request = alice.request(Method::REFRESH, |b| {
        b.add(&Attribute::Lifetime(600)).unwrap();
    });
    send(&mut server, t100, alice.from, &request).unwrap();
    assert_eq!(server.poll_event(), None);

    // At the first sweep after 400 s the route leaves the kernel (which
    // stopped on its own at 400 s).
    let lapsed = t0 + Duration::from_secs(401);
    server.handle_timeout(lapsed);
    assert_eq!(server.poll_event(), Some(Event::FastPathRemove(route)));

    // Bound again (ChannelBind refreshes the permission too), then the
    // allocation is deleted: out of the kernel with it.
    channel_bind(&mut server, lapsed, &mut alice, 0x4001, peer);
    // The allocation (refreshed at 100 s for 600 s) now lapses first.
    assert_eq!(
        server.poll_event(),
        install(t100 + Duration::from_secs(600))
    );
    let request = alice.request(Method::REFRESH, |b| {
        b.add(&Attribute::Lifetime(0)).unwrap();
    });
    send(&mut server, lapsed, alice.from, &request).unwrap();
    assert_eq!(server.poll_event(), Some(Event::FastPathRemove(route)));
}

/// A capped allocation's channels go to the kernel too, with bytes lent
/// from the cap: what the kernel holds the socket path cannot spend, what
/// it leaves comes back, and each sweep lends the next second's worth.
#[test]
fn capped_channels_relay_in_the_kernel_on_bytes_lent_from_the_cap() {
    let t0 = Instant::now();
    let mut config = config();
    config.kernel_fast_path = true;
    config.max_bytes_per_second = Some(1000);
    let mut server = Server::new(config, t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    allocate(&mut server, t0, &mut alice, RELAY);
    while server.poll_event().is_some() {}
    let peer: SocketAddr = "198.51.100.20:7000".parse().unwrap();
    channel_bind(&mut server, t0, &mut alice, 0x4000, peer);
    let route = edgeice_server::FastRoute {
        client: alice.from,
        relay: RELAY.parse().unwrap(),
        peer,
        channel: 0x4000,
    };
    assert_eq!(
        server.poll_event(),
        Some(Event::FastPathInstall {
            route,
            until: t0 + Duration::from_secs(300),
            capped: true,
        })
    );
    let lent = |bytes| {
        Some(Event::FastPathAllowance {
            client: alice.from,
            bytes,
        })
    };
    // The whole first second's worth goes to the kernel.
    assert_eq!(server.poll_event(), lent(1000));
    let relayed = |server: &mut Server, now| ten_channel_data_relayed(server, now, alice.from);
    // What the kernel passes up finds nothing left to spend...
    assert_eq!(relayed(&mut server, t0), 0);
    // ...until the kernel hands back what it did not use (600 of 1000).
    server.return_fast_path_allowance(&alice.from, 600);
    assert_eq!(relayed(&mut server, t0), 3);
    // A second later the sweep lends what has come in since: one second's
    // worth, the most the cap holds.
    server.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(server.poll_event(), lent(1000));
    assert_eq!(server.poll_event(), None);
}

#[test]
fn a_maximum_lifetime_below_the_default_is_what_is_granted() {
    // A short-lived edge (`serve --max-allocate-lifetime 30`), or a core
    // configured with a maximum under the default: Allocate and Refresh
    // get the maximum, whether they ask for less, nothing or more.
    let t0 = Instant::now();
    let mut config = config();
    config.max_lifetime = Duration::from_secs(30);
    let mut server = Server::new(config, t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    let m = allocate(&mut server, t0, &mut alice, RELAY);
    assert_eq!(
        m.get(AttributeType::LIFETIME),
        Some(Ok(Attribute::Lifetime(30)))
    );
    for asked in [10, 3600] {
        let request = alice.request(Method::REFRESH, |b| {
            b.add(&Attribute::Lifetime(asked)).unwrap();
        });
        let response = send(&mut server, t0, alice.from, &request).unwrap();
        let m = Message::parse(&response).unwrap();
        assert_eq!(m.class(), Class::Success, "asked {asked}");
        assert_eq!(
            m.get(AttributeType::LIFETIME),
            Some(Ok(Attribute::Lifetime(30))),
            "asked {asked}"
        );
    }
    // And it lapses then, not ten minutes on.
    server.handle_timeout(t0 + Duration::from_secs(31));
    assert_eq!(server.allocation_count(), 0);
}

#[test]
fn rfc6062_peer_connections_per_allocation_are_capped() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_connections_per_allocation = 2;
    let mut server = Server::new(config, t0);
    let control = FiveTuple {
        transport: Transport::Tcp,
        ..five_tuple("192.0.2.10:50000")
    };
    let mut alice = Client::new(control, "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    allocate_tcp(&mut server, t0, &mut alice, RELAY);
    let relay: SocketAddr = RELAY.parse().unwrap();
    let request = alice.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(
            "198.51.100.20:1".parse().unwrap(),
        ))
        .unwrap();
    });
    send(&mut server, t0, control, &request).unwrap();
    let peer = |port: u16| SocketAddr::new("198.51.100.20".parse().unwrap(), port);

    // One outgoing connection, one incoming: the allocation is full.
    let connect = alice.request(Method::CONNECT, |b| {
        b.add(&Attribute::XorPeerAddress(peer(7000))).unwrap();
    });
    assert!(send(&mut server, t0, control, &connect).is_none());
    let Some(Event::ConnectPeer { id: first, .. }) = server.poll_event() else {
        panic!("no ConnectPeer")
    };
    server
        .handle_input(
            t0,
            Input::PeerConnection {
                relay,
                peer: peer(7001),
            },
        )
        .expect("ConnectionAttempt");
    assert!(matches!(
        server.poll_event(),
        Some(Event::AcceptPeer { .. })
    ));

    // A third, either way: Connect gets 508 (Insufficient Capacity), an
    // incoming peer is refused (closed, nothing told to the client).
    let connect = alice.request(Method::CONNECT, |b| {
        b.add(&Attribute::XorPeerAddress(peer(7002))).unwrap();
    });
    assert_eq!(
        error_code(&send(&mut server, t0, control, &connect).unwrap()),
        Some(508)
    );
    assert_eq!(server.poll_event(), None);
    let incoming = Input::PeerConnection {
        relay,
        peer: peer(7003),
    };
    assert!(server.handle_input(t0, incoming).is_none());
    assert_eq!(
        server.poll_event(),
        Some(Event::RefusePeer {
            relay,
            peer: peer(7003)
        })
    );

    // A connection that ends makes room again.
    server.handle_input(
        t0,
        Input::PeerConnected {
            id: first,
            connected: false,
        },
    );
    let connect = alice.request(Method::CONNECT, |b| {
        b.add(&Attribute::XorPeerAddress(peer(7002))).unwrap();
    });
    assert!(send(&mut server, t0, control, &connect).is_none());
    assert!(matches!(
        server.poll_event(),
        Some(Event::ConnectPeer { .. })
    ));
}

/// The counters an operator graphs: traffic per client transport moves as
/// each packet is relayed (not when the allocation ends); the Allocate
/// latency is the time from the authenticated request to the relay being
/// bound; the lifetime is observed when the allocation ends.
#[test]
fn traffic_counts_per_transport_as_it_goes_and_histograms_observe_ends() {
    use edgeice_server::histogram::{Buckets, LifetimeBuckets};
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let from = FiveTuple {
        transport: Transport::Tcp,
        ..five_tuple("192.0.2.10:50000")
    };
    let mut alice = Client::new(from, "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    let request = alice.allocate_request();
    assert!(send(&mut server, t0, alice.from, &request).is_none());
    let Some(Event::BindRelay { id, .. }) = server.poll_event() else {
        panic!("no BindRelay event")
    };
    let bound = t0 + Duration::from_millis(3);
    let input = Input::RelayBound {
        id,
        relay: Some(RELAY.parse().unwrap()),
        reserved: None,
        additional: None,
    };
    assert!(server.handle_input(bound, input).is_some());
    let latencies = &server.stats().allocate_latencies;
    assert_eq!(latencies.count(), 1);
    assert_eq!(latencies.sum(), Duration::from_millis(3));
    let first_full = latencies.cumulative().find(|(_, n)| *n == 1).unwrap();
    assert_eq!(first_full.0, Some(Duration::from_millis(5)));

    let peer: SocketAddr = "198.51.100.20:7000".parse().unwrap();
    let request = alice.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    assert!(send(&mut server, bound, alice.from, &request).is_some());
    let mut indication = Vec::new();
    let mut b = MessageBuilder::new(
        &mut indication,
        MessageType::new(Method::SEND, Class::Indication),
        TransactionId([0x55; 12]),
    );
    b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    b.add(&Attribute::Data(b"hello peer")).unwrap();
    assert!(send(&mut server, bound, alice.from, &indication).is_some());
    assert!(peer_data(&mut server, bound, RELAY, peer, b"hi").is_some());

    // Live: counted already, under TCP only, and in the totals.
    let stats = server.stats();
    assert_eq!(stats.traffic(Transport::Tcp).to_peer, (1, 10));
    assert_eq!(stats.traffic(Transport::Tcp).to_client, (1, 2));
    assert_eq!(stats.traffic(Transport::Udp), Default::default());
    assert_eq!(stats.traffic(Transport::Tls), Default::default());
    assert_eq!(stats.relayed_to_peer, (1, 10));
    assert_eq!(stats.allocation_lifetimes.count(), 0);

    // It ends 90 s after it was made: one lifetime, in the (60 s, 300 s]
    // bucket.
    let end = bound + Duration::from_secs(90);
    let request = alice.request(Method::REFRESH, |b| {
        b.add(&Attribute::Lifetime(0)).unwrap();
    });
    assert!(send(&mut server, end, alice.from, &request).is_some());
    let lifetimes = &server.stats().allocation_lifetimes;
    assert_eq!(lifetimes.count(), 1);
    assert_eq!(lifetimes.sum(), Duration::from_secs(90));
    let buckets: Vec<_> = lifetimes.cumulative().collect();
    assert_eq!(buckets.len(), LifetimeBuckets::BOUNDS.len() + 1);
    for (bound, count) in buckets {
        let expected = u64::from(bound.is_none_or(|b| b >= Duration::from_secs(300)));
        assert_eq!(count, expected, "bucket {bound:?}");
    }
}

#[test]
fn a_reload_changes_users_and_peer_lists_but_keeps_allocations() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(five_tuple("192.0.2.10:50000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    allocate(&mut server, t0, &mut alice, RELAY);
    let peer: SocketAddr = "198.51.100.7:5000".parse().unwrap();
    let permit = |client: &mut Client, peer: SocketAddr| {
        client.request(Method::CREATE_PERMISSION, |b| {
            b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        })
    };

    // Bob removed, carol added, the peer's network denied.
    let mut new = server.reloadable();
    new.users.remove("bob");
    let key = long_term_key("carol", REALM, "pw", 1, Preparation::OpaqueString).unwrap();
    new.users.insert("carol".to_owned(), key);
    new.deny_peers = vec!["198.51.100.0/24".parse().unwrap()];
    let old = server.reload(new);
    assert!(old.users.contains_key("bob") && old.deny_peers.is_empty());

    // Alice's allocation lives on and refreshes, but the new deny list
    // applies to her next permission.
    let refresh = alice.request(Method::REFRESH, |_| {});
    let response = send(&mut server, t0, alice.from, &refresh).unwrap();
    assert_eq!(Message::parse(&response).unwrap().class(), Class::Success);
    let request = permit(&mut alice, peer);
    assert_eq!(
        error_code(&send(&mut server, t0, alice.from, &request).unwrap()),
        Some(403)
    );
    // A new allocation needs a user in force: carol's works, bob's does
    // not.
    let mut carol = Client::new(five_tuple("192.0.2.20:50000"), "carol", "pw");
    learn_nonce(&mut server, t0, &mut carol);
    allocate(&mut server, t0, &mut carol, "10.0.1.5:61002");
    let mut again = Client::new(five_tuple("192.0.2.11:50000"), "bob", "hunter2");
    learn_nonce(&mut server, t0, &mut again);
    let request = again.allocate_request();
    assert_eq!(
        error_code(&send(&mut server, t0, again.from, &request).unwrap()),
        Some(401)
    );
    assert!(server.reloadable().users.contains_key("carol"));
}
