//! MS-TURN (Lync and Skype for Business clients) through the server core:
//! the challenge, Allocate and its refresh and deletion, Send requests,
//! Data indications, Set Active Destination and raw relaying, and the
//! answers the dialect gives to what is malformed or mixed with RFC 8656.
//! The real client (libnice in OC2007R2 mode) is in the `edgeice` crate's
//! interop tests; these pin the bytes down.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_server::allocation::AllocationDialect;
use edgeice_server::{
    Event, FiveTuple, Input, PEER_DATA_HEADROOM, Server, ServerConfig, Transport,
};
use edgeice_stun::attribute::{TRANSPORT_UDP, address_value, decode_address, decode_xor_keyed};
use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::*;

const REALM: &str = "edge.example";
const RELAY: &str = "10.0.1.5:61000";

fn server(now: Instant) -> Server {
    let mut config = ServerConfig {
        realm: REALM.to_owned(),
        nonce_secret: [5; 32],
        private_relay_ok: true,
        ..ServerConfig::default()
    };
    config.add_user("alice", "secret").unwrap();
    Server::new(config, now)
}

fn from(client: &str) -> FiveTuple {
    FiveTuple {
        transport: Transport::Udp,
        client: client.parse().unwrap(),
        server: "10.0.1.5:3478".parse().unwrap(),
    }
}

/// An MS-TURN client as libnice's OC2007R2 mode writes it: unpadded
/// attributes, MAGIC-COOKIE first, RFC 3489 integrity.
struct MsClient {
    from: FiveTuple,
    key: IntegrityKey,
    realm: Vec<u8>,
    nonce: Vec<u8>,
    next_id: u8,
}

impl MsClient {
    fn new(from: FiveTuple, password: &str) -> Self {
        let key = long_term_key("alice", REALM, password, 1, Preparation::None).unwrap();
        MsClient {
            from,
            key,
            realm: Vec::new(),
            nonce: Vec::new(),
            next_id: 0,
        }
    }

    /// A request of `method`; signed (with USERNAME, REALM and, when
    /// `with_nonce`, NONCE) once a challenge was answered.
    fn request(
        &mut self,
        method: Method,
        with_nonce: bool,
        add: impl FnOnce(&mut MessageBuilder<'_>),
    ) -> Vec<u8> {
        self.next_id += 1;
        let mut buf = Vec::new();
        let kind = MessageType::new(method, Class::Request);
        let mut b = MessageBuilder::with_cookie(
            &mut buf,
            kind,
            [1, 2, 3, self.next_id],
            TransactionId([self.next_id; 12]),
        )
        .layout(Layout::Unpadded);
        b.add_raw(ms::MAGIC_COOKIE, &ms::MAGIC_COOKIE_VALUE.to_be_bytes())
            .unwrap();
        add(&mut b);
        if !self.realm.is_empty() {
            b.add(&Attribute::Username("alice")).unwrap();
            b.add_raw(ms::REALM, &self.realm).unwrap();
            if with_nonce {
                b.add_raw(ms::NONCE, &self.nonce).unwrap();
            }
            b.add_integrity_sha1_rfc3489(&self.key, false).unwrap();
        }
        buf
    }

    fn allocate(&mut self, lifetime: Option<u32>) -> Vec<u8> {
        self.request(ms::ALLOCATE, true, |b| {
            b.add_raw(ms::MS_VERSION, &1u32.to_be_bytes()).unwrap();
            if let Some(secs) = lifetime {
                b.add(&Attribute::Lifetime(secs)).unwrap();
            }
        })
    }
}

fn send(
    server: &mut Server,
    now: Instant,
    from: FiveTuple,
    bytes: &[u8],
) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
    let t = server.handle_input(
        now,
        Input::Client {
            from,
            contents: bytes,
        },
    )?;
    Some((t.source, t.destination, t.contents.to_vec()))
}

fn parse(bytes: &[u8]) -> Message<'_> {
    assert!(
        ms::is_ms_turn(bytes),
        "answer without MAGIC-COOKIE: {bytes:02x?}"
    );
    Message::parse_unpadded(bytes).expect("an unpadded MS-TURN message")
}

fn error_code(message: &Message<'_>) -> Option<u16> {
    match message.get(AttributeType::ERROR_CODE) {
        Some(Ok(Attribute::ErrorCode(e))) => Some(e.code),
        _ => None,
    }
}

/// Challenge, then Allocate: returns the relayed and reflexive addresses.
fn allocate(server: &mut Server, now: Instant, client: &mut MsClient) -> (SocketAddr, SocketAddr) {
    let (_, _, answer) = send(server, now, client.from, &client.allocate(None)).unwrap();
    let challenge = parse(&answer);
    assert_eq!(challenge.class(), Class::Error);
    assert_eq!(error_code(&challenge), Some(401));
    // REALM and NONCE under MS-TURN's numbers, no FINGERPRINT.
    assert_eq!(challenge.get_raw(ms::REALM), Some(REALM.as_bytes()));
    client.realm = REALM.as_bytes().to_vec();
    client.nonce = challenge.get_raw(ms::NONCE).expect("a NONCE").to_vec();
    assert!(!challenge.has_fingerprint());

    let request = client.allocate(None);
    assert!(send(server, now, client.from, &request).is_none());
    let Some(Event::BindRelay { id, .. }) = server.poll_event() else {
        panic!("no BindRelay event")
    };
    let t = server
        .handle_input(
            now,
            Input::RelayBound {
                id,
                relay: Some(RELAY.parse().unwrap()),
                reserved: None,
                additional: None,
            },
        )
        .expect("Allocate answered");
    let answer = t.contents.to_vec();
    let success = parse(&answer);
    assert_eq!(
        success.class(),
        Class::Success,
        "error {:?}",
        error_code(&success)
    );
    success
        .verify_integrity_sha1_rfc3489(&client.key)
        .expect("signed the RFC 3489 way with the user's key");
    assert!(!success.has_fingerprint());
    let relayed = match success.get(AttributeType::MAPPED_ADDRESS) {
        Some(Ok(Attribute::MappedAddress(a))) => a,
        other => panic!("MAPPED-ADDRESS missing: {other:?}"),
    };
    let key = ms::xor_key(&answer).unwrap();
    let reflexive =
        decode_xor_keyed(success.get_raw(ms::MS_XOR_MAPPED_ADDRESS).unwrap(), &key).unwrap();
    assert_eq!(
        success.get(AttributeType::LIFETIME),
        Some(Ok(Attribute::Lifetime(600)))
    );
    assert_eq!(
        success.get_raw(ms::MS_SEQUENCE_NUMBER).map(<[u8]>::len),
        Some(24)
    );
    // Nothing libnice would refuse: no comprehension-required attribute
    // outside the dialect's.
    for (kind, _) in success.raw_attributes() {
        assert!(
            !kind.is_comprehension_required()
                || [
                    ms::MAGIC_COOKIE,
                    AttributeType::MAPPED_ADDRESS,
                    AttributeType::LIFETIME,
                    AttributeType::MESSAGE_INTEGRITY
                ]
                .contains(&kind),
            "{kind:?} in an MS-TURN answer"
        );
    }
    (relayed, reflexive)
}

fn peer_data(
    server: &mut Server,
    now: Instant,
    peer: SocketAddr,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let mut datagram = vec![0u8; PEER_DATA_HEADROOM];
    datagram.extend_from_slice(payload);
    let t = server.handle_input(
        now,
        Input::PeerData {
            relay: RELAY.parse().unwrap(),
            peer,
            datagram: &mut datagram,
        },
    )?;
    Some(t.contents.to_vec())
}

#[test]
fn allocate_send_data_and_active_destination() {
    let t0 = Instant::now();
    let mut server = server(t0);
    let mut client = MsClient::new(from("192.0.2.10:5000"), "secret");
    let (relayed, reflexive) = allocate(&mut server, t0, &mut client);
    assert_eq!(relayed, RELAY.parse().unwrap());
    assert_eq!(reflexive, client.from.client);
    let allocation = server.allocation(&client.from).unwrap();
    assert_eq!(allocation.dialect(), AllocationDialect::MsTurn);
    assert_eq!(server.stats().ms_turn_allocations_created, 1);

    // Nothing from a peer passes before a Send let it in.
    let peer: SocketAddr = "198.51.100.7:9000".parse().unwrap();
    assert!(peer_data(&mut server, t0, peer, b"early").is_none());

    // A Send request goes out from the relay and is not answered...
    let request = client.request(ms::SEND, false, |b| {
        b.add_raw(ms::DESTINATION_ADDRESS, &address_value(&peer))
            .unwrap();
        b.add_raw(ms::DATA, b"check").unwrap();
    });
    let (source, destination, out) = send(&mut server, t0, client.from, &request).unwrap();
    assert_eq!(
        (source, destination, &out[..]),
        (RELAY.parse().unwrap(), peer, &b"check"[..])
    );

    // ...and the peer's answer comes back in a Data indication.
    let indication = peer_data(&mut server, t0, peer, b"answer").unwrap();
    let message = parse(&indication);
    assert_eq!(message.kind(), ms::DATA_INDICATION);
    assert_eq!(message.kind().to_u16(), 0x0115);
    assert_eq!(
        decode_address(message.get_raw(ms::REMOTE_ADDRESS).unwrap()),
        Ok(peer)
    );
    assert_eq!(message.get_raw(ms::DATA), Some(&b"answer"[..]));

    // A Send signed with the wrong key goes nowhere.
    let mut mallory = MsClient::new(client.from, "wrong");
    mallory.realm = client.realm.clone();
    mallory.next_id = 40;
    let forged = mallory.request(ms::SEND, false, |b| {
        b.add_raw(ms::DESTINATION_ADDRESS, &address_value(&peer))
            .unwrap();
        b.add_raw(ms::DATA, b"forged").unwrap();
    });
    assert!(send(&mut server, t0, client.from, &forged).is_none());

    // Set Active Destination: answered, signed, then raw both ways.
    let request = client.request(ms::SET_ACTIVE_DESTINATION, false, |b| {
        b.add_raw(ms::DESTINATION_ADDRESS, &address_value(&peer))
            .unwrap();
    });
    let (_, _, answer) = send(&mut server, t0, client.from, &request).unwrap();
    let answer = parse(&answer);
    assert_eq!(answer.class(), Class::Success);
    assert_eq!(answer.method(), ms::SET_ACTIVE_DESTINATION);
    answer.verify_integrity_sha1_rfc3489(&client.key).unwrap();

    let rtp = [0x80, 0x00, 0x01, 0x02, 0xAA];
    let (source, destination, out) = send(&mut server, t0, client.from, &rtp).unwrap();
    assert_eq!(
        (source, destination, &out[..]),
        (RELAY.parse().unwrap(), peer, &rtp[..])
    );
    assert_eq!(peer_data(&mut server, t0, peer, &rtp).unwrap(), rtp);
    // No channels in this dialect: 0x40..0x7F is a raw first byte too.
    let (_, destination, out) = send(&mut server, t0, client.from, b"ms raw").unwrap();
    assert_eq!((destination, &out[..]), (peer, &b"ms raw"[..]));

    // An MS-ICE2 check looks like STUN but has no MAGIC-COOKIE: it is
    // for the destination, not for the server.
    let mut check = Vec::new();
    let mut b = MessageBuilder::new(
        &mut check,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId([9; 12]),
    );
    b.add_fingerprint().unwrap();
    let (_, destination, out) = send(&mut server, t0, client.from, &check).unwrap();
    assert_eq!((destination, out), (peer, check.clone()));

    // Another peer with a permission still gets Data indications.
    let other: SocketAddr = "198.51.100.8:9000".parse().unwrap();
    let request = client.request(ms::SEND, false, |b| {
        b.add_raw(ms::DESTINATION_ADDRESS, &address_value(&other))
            .unwrap();
        b.add_raw(ms::DATA, b"x").unwrap();
    });
    assert!(send(&mut server, t0, client.from, &request).is_some());
    let indication = peer_data(&mut server, t0, other, b"y").unwrap();
    assert_eq!(parse(&indication).kind(), ms::DATA_INDICATION);
}

#[test]
fn allocate_again_refreshes_and_lifetime_zero_deletes() {
    let t0 = Instant::now();
    let mut server = server(t0);
    let mut client = MsClient::new(from("192.0.2.11:5000"), "secret");
    allocate(&mut server, t0, &mut client);

    // The nonce has gone stale by the refresh; libnice would not retry a
    // 438 here, so its own allocation's refresh is still accepted.
    let later = t0 + Duration::from_secs(3000);
    let (_, _, answer) = send(&mut server, later, client.from, &client.allocate(None)).unwrap();
    let answer = parse(&answer);
    assert_eq!(
        answer.class(),
        Class::Success,
        "error {:?}",
        error_code(&answer)
    );
    assert!(
        server.poll_event().is_none(),
        "a refresh binds no new relay"
    );
    assert!(server.allocation(&client.from).unwrap().expires > later);

    let (_, _, answer) = send(&mut server, later, client.from, &client.allocate(Some(0))).unwrap();
    assert_eq!(parse(&answer).class(), Class::Success);
    assert!(server.allocation(&client.from).is_none());
    assert!(matches!(
        server.poll_event(),
        Some(Event::ReleaseRelay { .. })
    ));
    // The records: made in the MS-TURN dialect, released by LIFETIME 0.
    let reports: Vec<_> = std::iter::from_fn(|| server.poll_report()).collect();
    assert!(
        matches!(
            reports.as_slice(),
            [
                edgeice_server::Report::SessionStart(start),
                edgeice_server::Report::SessionEnd(end, edgeice_server::EndReason::Released),
            ] if start.dialect.label() == "ms-turn" && end.id == start.id
        ),
        "{reports:?}"
    );
}

#[test]
fn refusals_speak_the_dialect() {
    let t0 = Instant::now();
    let mut server = server(t0);

    // A wrong password: 401 again, in MS-TURN's form.
    let mut client = MsClient::new(from("192.0.2.12:5000"), "secret");
    let (_, _, answer) = send(&mut server, t0, client.from, &client.allocate(None)).unwrap();
    let challenge = parse(&answer);
    let mut wrong = MsClient::new(client.from, "not the password");
    wrong.realm = REALM.as_bytes().to_vec();
    wrong.nonce = challenge.get_raw(ms::NONCE).unwrap().to_vec();
    let (_, _, answer) = send(&mut server, t0, client.from, &wrong.allocate(None)).unwrap();
    assert_eq!(error_code(&parse(&answer)), Some(401));

    // An unknown method: 400, with MAGIC-COOKIE.
    let unknown = Method::new(0x0FF).unwrap();
    let (_, _, answer) = send(
        &mut server,
        t0,
        client.from,
        &client.request(unknown, false, |_| {}),
    )
    .unwrap();
    assert_eq!(error_code(&parse(&answer)), Some(400));

    // Set Active Destination without an allocation: 401, unsigned.
    client.realm = REALM.as_bytes().to_vec();
    let peer: SocketAddr = "198.51.100.7:9000".parse().unwrap();
    let request = client.request(ms::SET_ACTIVE_DESTINATION, false, |b| {
        b.add_raw(ms::DESTINATION_ADDRESS, &address_value(&peer))
            .unwrap();
    });
    let (_, _, answer) = send(&mut server, t0, client.from, &request).unwrap();
    assert_eq!(error_code(&parse(&answer)), Some(401));

    // Truncated: dropped, counted, no panic.
    let request = client.allocate(None);
    assert!(send(&mut server, t0, client.from, &request[..request.len() - 3]).is_none());
    assert!(server.stats().dropped >= 1);
}

#[test]
fn dialects_do_not_mix_on_one_allocation() {
    let t0 = Instant::now();
    let mut server = server(t0);
    let mut client = MsClient::new(from("192.0.2.13:5000"), "secret");
    allocate(&mut server, t0, &mut client);

    // An RFC 8656 Allocate from the same 5-tuple finds the MS-TURN one:
    // 437 Allocation Mismatch, in the standard dialect.
    let key = long_term_key("alice", REALM, "secret", 1, Preparation::OpaqueString).unwrap();
    let mut buf = Vec::new();
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::ALLOCATE, Class::Request),
        TransactionId([7; 12]),
    );
    b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
        .unwrap();
    b.add(&Attribute::Username("alice")).unwrap();
    b.add(&Attribute::Realm(REALM)).unwrap();
    b.add(&Attribute::Nonce(
        std::str::from_utf8(&client.nonce).unwrap(),
    ))
    .unwrap();
    b.add_integrity_sha1(&key).unwrap();
    b.add_fingerprint().unwrap();
    let (_, _, answer) = send(&mut server, t0, client.from, &buf).unwrap();
    let answer = Message::parse(&answer).unwrap();
    assert_eq!(
        answer
            .get(AttributeType::ERROR_CODE)
            .and_then(Result::ok)
            .map(|a| match a {
                Attribute::ErrorCode(e) => e.code,
                _ => 0,
            }),
        Some(437)
    );
    assert_eq!(
        server.allocation(&client.from).unwrap().dialect(),
        AllocationDialect::MsTurn
    );
}

#[test]
fn version_bandwidth_and_sequence_numbers() {
    let t0 = Instant::now();
    let mut server = server(t0);
    let mut client = MsClient::new(from("192.0.2.14:5000"), "secret");
    // The challenge first, then an Allocate asking for MS-VERSION 5 with a
    // BANDWIDTH and a service quality.
    let (_, _, answer) = send(&mut server, t0, client.from, &client.allocate(None)).unwrap();
    client.realm = REALM.as_bytes().to_vec();
    client.nonce = parse(&answer).get_raw(ms::NONCE).unwrap().to_vec();

    // A malformed BANDWIDTH is refused with 400, signed.
    let bad = client.request(ms::ALLOCATE, true, |b| {
        b.add_raw(ms::BANDWIDTH, &[0, 1, 2]).unwrap();
    });
    let (_, _, answer) = send(&mut server, t0, client.from, &bad).unwrap();
    let answer = parse(&answer);
    assert_eq!(error_code(&answer), Some(400));
    answer.verify_integrity_sha1_rfc3489(&client.key).unwrap();

    let request = client.request(ms::ALLOCATE, true, |b| {
        b.add_raw(ms::MS_VERSION, &5u32.to_be_bytes()).unwrap();
        b.add_raw(ms::BANDWIDTH, &512u32.to_be_bytes()).unwrap();
        b.add_raw(AttributeType(0x8055), &[0, 1, 0, 2]).unwrap();
    });
    assert!(send(&mut server, t0, client.from, &request).is_none());
    let Some(Event::BindRelay { id, .. }) = server.poll_event() else {
        panic!("no BindRelay event")
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
    let answer = t.contents.to_vec();
    let success = parse(&answer);
    // The version agreed is the highest served.
    assert_eq!(
        success.get_raw(ms::MS_VERSION),
        Some(&2u32.to_be_bytes()[..])
    );
    let sequence = success.get_raw(ms::MS_SEQUENCE_NUMBER).unwrap().to_vec();
    let state = server.allocation(&client.from).unwrap().ms_turn.unwrap();
    assert_eq!(state.version, 2);
    assert_eq!(state.bandwidth_kbps, Some(512));
    assert_eq!(state.service_quality, Some((1, 2)));

    // Send requests numbered from the answer's connection ID: going up or
    // staying is fine, going back is a replay and goes nowhere.
    let peer: SocketAddr = "198.51.100.7:9000".parse().unwrap();
    let numbered = |client: &mut MsClient, number: u32, id: &[u8]| {
        client.request(ms::SEND, false, |b| {
            b.add_raw(ms::DESTINATION_ADDRESS, &address_value(&peer))
                .unwrap();
            let mut value = id[..20].to_vec();
            value.extend_from_slice(&number.to_be_bytes());
            b.add_raw(ms::MS_SEQUENCE_NUMBER, &value).unwrap();
            b.add_raw(ms::DATA, &number.to_be_bytes()).unwrap();
        })
    };
    for (number, relayed) in [(1, true), (2, true), (2, true), (1, false)] {
        let request = numbered(&mut client, number, &sequence);
        let out = send(&mut server, t0, client.from, &request);
        assert_eq!(out.is_some(), relayed, "sequence number {number}");
    }
    // Another allocation's connection ID does not pass either.
    let request = numbered(&mut client, 9, &[0xAB; 20]);
    assert!(send(&mut server, t0, client.from, &request).is_none());
}

#[test]
fn send_and_set_active_destination_refuse_metadata_and_link_local_peers() {
    // Before: only loopback, unspecified, multicast and broadcast were
    // refused, so both went through.
    let t0 = Instant::now();
    let mut server = server(t0);
    let mut client = MsClient::new(from("192.0.2.10:5000"), "secret");
    allocate(&mut server, t0, &mut client);
    for refused in ["169.254.169.254:80", "169.254.1.1:80", "100.100.100.200:80"] {
        let peer: SocketAddr = refused.parse().unwrap();
        let request = client.request(ms::SEND, false, |b| {
            b.add_raw(ms::DESTINATION_ADDRESS, &address_value(&peer))
                .unwrap();
            b.add_raw(ms::DATA, b"GET /").unwrap();
        });
        assert!(
            send(&mut server, t0, client.from, &request).is_none(),
            "{peer}"
        );
        assert!(peer_data(&mut server, t0, peer, b"creds").is_none());
        let request = client.request(ms::SET_ACTIVE_DESTINATION, false, |b| {
            b.add_raw(ms::DESTINATION_ADDRESS, &address_value(&peer))
                .unwrap();
        });
        let (_, _, answer) = send(&mut server, t0, client.from, &request).unwrap();
        assert_eq!(error_code(&parse(&answer)), Some(403), "{peer}");
        // Raw datagrams still have nowhere to go.
        assert!(send(&mut server, t0, client.from, &[0x80, 0, 1, 2]).is_none());
    }
}

#[test]
fn send_beyond_the_permission_cap_is_dropped() {
    let t0 = Instant::now();
    let mut config = ServerConfig {
        realm: REALM.to_owned(),
        nonce_secret: [5; 32],
        private_relay_ok: true,
        max_permissions_per_allocation: 2,
        ..ServerConfig::default()
    };
    config.add_user("alice", "secret").unwrap();
    let mut server = Server::new(config, t0);
    let mut client = MsClient::new(from("192.0.2.10:5000"), "secret");
    allocate(&mut server, t0, &mut client);
    let mut send_to = |server: &mut Server, last: u8| {
        let peer = SocketAddr::from(([198, 51, 100, last], 9000));
        let request = client.request(ms::SEND, false, |b| {
            b.add_raw(ms::DESTINATION_ADDRESS, &address_value(&peer))
                .unwrap();
            b.add_raw(ms::DATA, b"x").unwrap();
        });
        send(server, t0, client.from, &request).is_some()
    };
    assert!(send_to(&mut server, 1));
    assert!(send_to(&mut server, 2));
    assert!(!send_to(&mut server, 3), "a third peer is over the cap");
    assert!(send_to(&mut server, 1), "known peers still pass");
}

#[test]
fn a_drain_refuses_new_ms_turn_allocations_and_keeps_refreshing_old_ones() {
    let t0 = Instant::now();
    let mut config = ServerConfig {
        realm: REALM.to_owned(),
        nonce_secret: [5; 32],
        private_relay_ok: true,
        ..ServerConfig::default()
    };
    config.add_user("alice", "secret").unwrap();
    let shared = config.shared.clone();
    let mut server = Server::new(config, t0);
    let mut old = MsClient::new(from("192.0.2.20:5000"), "secret");
    allocate(&mut server, t0, &mut old);
    // An alternate is known, but MS-TURN's redirect is not spoken: 508.
    shared.set_alternates(vec![edgeice_server::Alternate {
        address: "10.0.2.7:3478".parse().unwrap(),
        domain: None,
    }]);
    shared.set_draining(true);

    let (_, _, answer) = send(&mut server, t0, old.from, &old.allocate(None)).unwrap();
    let refreshed = parse(&answer);
    assert_eq!(
        refreshed.class(),
        Class::Success,
        "{:?}",
        error_code(&refreshed)
    );

    let mut new = MsClient::new(from("192.0.2.21:5000"), "secret");
    let (_, _, answer) = send(&mut server, t0, new.from, &new.allocate(None)).unwrap();
    let challenge = parse(&answer);
    assert_eq!(error_code(&challenge), Some(401));
    new.realm = REALM.as_bytes().to_vec();
    new.nonce = challenge.get_raw(ms::NONCE).unwrap().to_vec();
    let (_, _, answer) = send(&mut server, t0, new.from, &new.allocate(None)).unwrap();
    let refused = parse(&answer);
    assert_eq!(error_code(&refused), Some(508));
    refused.verify_integrity_sha1_rfc3489(&new.key).unwrap();
    assert_eq!(server.stats().drain_refusals, 1);
    assert!(server.poll_event().is_none(), "no relay socket asked for");
}
