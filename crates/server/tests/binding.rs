//! The Binding responder, driven without sockets.

use std::net::SocketAddr;
use std::time::Instant;

use edgeice_server::{FiveTuple, Input, Server, ServerConfig, Transport};
use edgeice_stun::*;

fn from(client: &str) -> FiveTuple {
    FiveTuple {
        transport: Transport::Udp,
        client: client.parse().unwrap(),
        server: "127.0.0.1:3478".parse().unwrap(),
    }
}

fn request(cookie: [u8; 4], build: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    let mut b = MessageBuilder::with_cookie(&mut buf, kind, cookie, TransactionId([9; 12]));
    build(&mut b);
    buf
}

fn exchange(server: &mut Server, from: FiveTuple, bytes: &[u8]) -> Option<Vec<u8>> {
    let transmit = server.handle_input(
        Instant::now(),
        Input::Client {
            from,
            payload: bytes,
        },
    )?;
    assert_eq!(transmit.destination, from.client);
    assert_eq!(transmit.source, from.server);
    Some(transmit.payload.to_vec())
}

#[test]
fn binding_success_reports_the_reflexive_address_v4_and_v6() {
    let mut server = Server::new(ServerConfig::default(), Instant::now());
    for client in ["203.0.113.7:40000", "[2001:db8::7]:50000"] {
        let from = from(client);
        let req = request(MAGIC_COOKIE.to_be_bytes(), |_| {});
        let resp = exchange(&mut server, from, &req).unwrap();
        let m = Message::parse(&resp).unwrap();
        assert_eq!(m.kind(), MessageType::new(Method::BINDING, Class::Success));
        assert_eq!(m.transaction_id(), &TransactionId([9; 12]));
        assert_eq!(
            m.get(AttributeType::XOR_MAPPED_ADDRESS),
            Some(Ok(Attribute::XorMappedAddress(from.client)))
        );
        assert!(m.verify_fingerprint().is_ok());
    }
    assert_eq!(server.stats().binding_success, 2);
}

#[test]
fn rfc3489_clients_get_mapped_address_and_their_own_cookie_back() {
    let mut server = Server::new(ServerConfig::default(), Instant::now());
    let from = from("198.51.100.1:1234");
    let req = request([1, 2, 3, 4], |_| {});
    let resp = exchange(&mut server, from, &req).unwrap();
    let m = Message::parse_any_cookie(&resp).unwrap();
    assert_eq!(m.cookie_field(), [1, 2, 3, 4]);
    assert_eq!(
        m.get(AttributeType::MAPPED_ADDRESS),
        Some(Ok(Attribute::MappedAddress(from.client)))
    );
    assert_eq!(m.get(AttributeType::XOR_MAPPED_ADDRESS), None);
    assert!(!m.has_fingerprint());
}

#[test]
fn unknown_comprehension_required_attributes_get_420() {
    let mut server = Server::new(ServerConfig::default(), Instant::now());
    let req = request(MAGIC_COOKIE.to_be_bytes(), |b| {
        b.add_raw(AttributeType(0x7001), b"x").unwrap();
        b.add_raw(AttributeType(0xC001), b"ignored").unwrap();
    });
    let resp = exchange(&mut server, from("198.51.100.1:1234"), &req).unwrap();
    let m = Message::parse(&resp).unwrap();
    assert_eq!(m.class(), Class::Error);
    let Some(Ok(Attribute::ErrorCode(e))) = m.get(AttributeType::ERROR_CODE) else {
        panic!("no ERROR-CODE")
    };
    assert_eq!(e.code, 420);
    let Some(Ok(Attribute::UnknownAttributes(list))) = m.get(AttributeType::UNKNOWN_ATTRIBUTES)
    else {
        panic!("no UNKNOWN-ATTRIBUTES")
    };
    assert_eq!(list.iter().collect::<Vec<_>>(), vec![AttributeType(0x7001)]);
}

#[test]
fn garbage_indications_and_bad_fingerprints_are_dropped() {
    let mut server = Server::new(ServerConfig::default(), Instant::now());
    let from = from("198.51.100.1:1234");
    assert!(exchange(&mut server, from, b"\x80\x00hello rtp").is_none());
    let mut indication = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Indication);
    MessageBuilder::new(&mut indication, kind, TransactionId([1; 12]));
    assert!(exchange(&mut server, from, &indication).is_none());
    let mut req = request(MAGIC_COOKIE.to_be_bytes(), |b| {
        b.add_fingerprint().unwrap();
    });
    let last = req.len() - 1;
    req[last] ^= 1;
    assert!(exchange(&mut server, from, &req).is_none());
    assert_eq!(server.stats().dropped, 3);
}

#[test]
fn the_source_address_is_reported_whatever_its_family() {
    let mut server = Server::new(ServerConfig::default(), Instant::now());
    let mapped: SocketAddr = "[::ffff:192.0.2.1]:9".parse().unwrap();
    let req = request(MAGIC_COOKIE.to_be_bytes(), |_| {});
    let resp = exchange(&mut server, from(&mapped.to_string()), &req).unwrap();
    let m = Message::parse(&resp).unwrap();
    assert_eq!(
        m.get(AttributeType::XOR_MAPPED_ADDRESS),
        Some(Ok(Attribute::XorMappedAddress(mapped)))
    );
}

#[test]
fn rfc5780_answers_from_the_other_address_and_says_where_from() {
    let mut config = ServerConfig::default();
    let primary: SocketAddr = "192.0.2.1:3478".parse().unwrap();
    let alternate: SocketAddr = "192.0.2.2:3479".parse().unwrap();
    config
        .alternates
        .push(edgeice_server::AlternateAddress { primary, alternate });
    let mut server = Server::new(config, Instant::now());
    let from = FiveTuple {
        transport: Transport::Udp,
        client: "203.0.113.9:4000".parse().unwrap(),
        server: primary,
    };
    let ask = |server: &mut Server, change_ip, change_port, response_port: Option<u16>| {
        let req = request(MAGIC_COOKIE.to_be_bytes(), |b| {
            b.add(&Attribute::ChangeRequest {
                change_ip,
                change_port,
            })
            .unwrap();
            if let Some(port) = response_port {
                b.add(&Attribute::ResponsePort(port)).unwrap();
            }
        });
        let t = server
            .handle_input(
                Instant::now(),
                Input::Client {
                    from,
                    payload: &req,
                },
            )
            .unwrap();
        let m = Message::parse(t.payload).unwrap();
        let origin = m.get(AttributeType::RESPONSE_ORIGIN);
        let other = m.get(AttributeType::OTHER_ADDRESS);
        (
            t.source,
            t.destination,
            format!("{origin:?}"),
            format!("{other:?}"),
        )
    };
    let (source, destination, origin, other) = ask(&mut server, false, false, None);
    assert_eq!((source, destination), (primary, from.client));
    assert_eq!(
        origin,
        format!(
            "{:?}",
            Some(Ok::<_, AttributeError>(Attribute::ResponseOrigin(primary)))
        )
    );
    assert_eq!(
        other,
        format!(
            "{:?}",
            Some(Ok::<_, AttributeError>(Attribute::OtherAddress(alternate)))
        )
    );
    let (source, ..) = ask(&mut server, true, true, None);
    assert_eq!(source, alternate);
    let (source, ..) = ask(&mut server, false, true, None);
    assert_eq!(source, "192.0.2.1:3479".parse().unwrap());
    let (source, destination, ..) = ask(&mut server, true, false, Some(5555));
    assert_eq!(source, "192.0.2.2:3478".parse().unwrap());
    assert_eq!(destination, "203.0.113.9:5555".parse().unwrap());
}

#[test]
fn without_an_alternate_address_change_request_is_not_understood() {
    let mut server = Server::new(ServerConfig::default(), Instant::now());
    let req = request(MAGIC_COOKIE.to_be_bytes(), |b| {
        b.add(&Attribute::ChangeRequest {
            change_ip: true,
            change_port: false,
        })
        .unwrap();
        b.add(&Attribute::ResponsePort(9)).unwrap();
    });
    let resp = exchange(&mut server, from("198.51.100.1:1234"), &req).unwrap();
    let m = Message::parse(&resp).unwrap();
    let Some(Ok(Attribute::UnknownAttributes(list))) = m.get(AttributeType::UNKNOWN_ATTRIBUTES)
    else {
        panic!("no UNKNOWN-ATTRIBUTES")
    };
    assert_eq!(
        list.iter().collect::<Vec<_>>(),
        vec![AttributeType::CHANGE_REQUEST, AttributeType::RESPONSE_PORT]
    );
}

#[test]
fn unauthenticated_answers_stay_within_three_times_the_request() {
    let mut server = Server::new(ServerConfig::default(), Instant::now());
    let from = from("[2001:db8::7]:50000");
    // A bare 20-byte request: the answer leaves SOFTWARE out.
    let bare = request(MAGIC_COOKIE.to_be_bytes(), |_| {});
    let resp = exchange(&mut server, from, &bare).unwrap();
    assert!(
        resp.len() <= 3 * bare.len(),
        "{} bytes for a {}-byte request",
        resp.len(),
        bare.len()
    );
    assert_eq!(
        Message::parse(&resp).unwrap().get(AttributeType::SOFTWARE),
        None
    );
    // A larger request can have it.
    let larger = request(MAGIC_COOKIE.to_be_bytes(), |b| {
        b.add(&Attribute::Software("a client that says who it is"))
            .unwrap();
    });
    let resp = exchange(&mut server, from, &larger).unwrap();
    assert!(
        Message::parse(&resp)
            .unwrap()
            .get(AttributeType::SOFTWARE)
            .is_some()
    );
}

#[test]
fn behind_nat_rfc5780_addresses_are_the_public_ones() {
    let mut config = ServerConfig::default();
    let primary: SocketAddr = "10.0.1.5:3478".parse().unwrap();
    let alternate: SocketAddr = "10.0.1.6:3479".parse().unwrap();
    config
        .alternates
        .push(edgeice_server::AlternateAddress { primary, alternate });
    config
        .external_ips
        .insert("10.0.1.5".parse().unwrap(), "203.0.113.5".parse().unwrap());
    config
        .external_ips
        .insert("10.0.1.6".parse().unwrap(), "203.0.113.6".parse().unwrap());
    let mut server = Server::new(config, Instant::now());
    let from = FiveTuple {
        transport: Transport::Udp,
        client: "198.51.100.9:4000".parse().unwrap(),
        server: primary,
    };
    let req = request(MAGIC_COOKIE.to_be_bytes(), |_| {});
    let t = server
        .handle_input(
            Instant::now(),
            Input::Client {
                from,
                payload: &req,
            },
        )
        .unwrap();
    let m = Message::parse(t.payload).unwrap();
    assert_eq!(
        m.get(AttributeType::RESPONSE_ORIGIN),
        Some(Ok(Attribute::ResponseOrigin(
            "203.0.113.5:3478".parse().unwrap()
        )))
    );
    assert_eq!(
        m.get(AttributeType::OTHER_ADDRESS),
        Some(Ok(Attribute::OtherAddress(
            "203.0.113.6:3479".parse().unwrap()
        )))
    );
}
