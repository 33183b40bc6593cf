//! Steering new Allocates: 300 Try Alternate with ALTERNATE-SERVER (RFC
//! 8489 §10) while draining or full, 508 while draining with no
//! alternate, and allocations already made going on through a drain.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::*;
use edgeice_server::{
    Alternate, Event, Input, RedirectReason, RefusalReason, Report, Server, ServerConfig, Transport,
};
use edgeice_stun::*;

fn alternate(address: &str) -> Alternate {
    Alternate {
        address: address.parse().unwrap(),
        domain: None,
    }
}

fn alice(client: &str) -> Client {
    Client::new(five_tuple(Transport::Udp, client), "alice", "secret")
}

/// An authenticated Allocate's answer (a nonce learnt first); `None` when
/// the core asked for a relay socket instead (it is being served here).
fn try_allocate(server: &mut Server, now: Instant, client: &mut Client) -> Option<Vec<u8>> {
    learn_nonce(server, now, client);
    let request = client.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(UDP)).unwrap();
    });
    send(server, now, client.from, &request)
}

/// A client's first, unauthenticated Allocate: its answer.
fn first_allocate(server: &mut Server, now: Instant, client: &mut Client) -> Option<Vec<u8>> {
    let request = client.unauthenticated_allocate();
    send(server, now, client.from, &request)
}

fn alternate_servers(response: &[u8]) -> Vec<SocketAddr> {
    let m = Message::parse(response).unwrap();
    m.attributes()
        .filter_map(|a| match a {
            Ok(Attribute::AlternateServer(address)) => Some(address),
            _ => None,
        })
        .collect()
}

fn draining(config: &ServerConfig, alternates: &[&str]) {
    let list = alternates.iter().map(|a| alternate(a)).collect();
    config.shared.set_alternates(list);
    config.shared.set_draining(true);
}

#[test]
fn a_draining_server_redirects_a_first_allocate_at_once_unsigned() {
    let t0 = Instant::now();
    let config = config();
    draining(&config, &["10.0.2.7:3478"]);
    let mut server = Server::new(config, t0);
    let mut client = alice("192.0.2.10:50000");
    // No 401 first: libwebrtc would carry this server's nonce to the
    // alternate and give up on the 401 there.
    let response = first_allocate(&mut server, t0, &mut client).expect("answered");
    assert_eq!(outcome(&response), (Class::Error, Some(300)));
    assert_eq!(
        alternate_servers(&response),
        ["10.0.2.7:3478".parse().unwrap()]
    );
    let m = Message::parse(&response).unwrap();
    assert!(!m.has_integrity(), "nothing to sign it with");
    assert!(m.get(AttributeType::NONCE).is_none());
    // Small enough to give no amplification: within 4x the request.
    let request_len = client.unauthenticated_allocate().len();
    assert!(
        response.len() <= 4 * request_len,
        "{} bytes",
        response.len()
    );
    assert_eq!(
        server.stats().redirects[RedirectReason::Draining.index()],
        1
    );
    assert!(server.poll_event().is_none(), "no relay socket asked for");
}

#[test]
fn unsigned_redirects_spend_the_sources_401_budget() {
    let t0 = Instant::now();
    let mut config = config();
    config.shared = std::sync::Arc::new(edgeice_server::SharedState::new((1, 3)));
    draining(&config, &["10.0.2.7:3478"]);
    let mut server = Server::new(config, t0);
    let mut answered = 0;
    for n in 0..10u16 {
        let mut client = alice(&format!("192.0.2.10:{}", 50000 + n));
        answered += usize::from(first_allocate(&mut server, t0, &mut client).is_some());
    }
    assert_eq!(
        answered, 3,
        "a burst of 3 answers per source IP, then silence"
    );
}

#[test]
fn a_draining_server_redirects_an_authenticated_allocate_with_integrity() {
    let t0 = Instant::now();
    let config = config();
    let shared = config.shared.clone();
    let mut server = Server::new(config, t0);
    let mut client = alice("192.0.2.10:50000");
    // The client got its 401 before the drain began.
    learn_nonce(&mut server, t0, &mut client);
    shared.set_alternates(vec![alternate("10.0.2.7:3478")]);
    shared.set_draining(true);
    let request = client.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(UDP)).unwrap();
    });
    let response = send(&mut server, t0, client.from, &request).expect("answered");
    assert_eq!(outcome(&response), (Class::Error, Some(300)));
    assert_eq!(
        alternate_servers(&response),
        ["10.0.2.7:3478".parse().unwrap()]
    );
    let m = Message::parse(&response).unwrap();
    m.verify_integrity(&client.key)
        .expect("the 300 is signed with the client's key");
    assert!(m.get(AttributeType::ALTERNATE_DOMAIN).is_none());
    assert_eq!(
        server.stats().redirects[RedirectReason::Draining.index()],
        1
    );
    assert_eq!(server.allocation_count(), 0);
    assert!(server.poll_event().is_none(), "no relay socket asked for");
}

#[test]
fn a_draining_server_with_no_alternate_answers_508() {
    let t0 = Instant::now();
    let config = config();
    draining(&config, &[]);
    let mut server = Server::new(config, t0);
    let mut client = alice("192.0.2.10:50000");
    let response = try_allocate(&mut server, t0, &mut client).expect("answered");
    assert_eq!(outcome(&response), (Class::Error, Some(508)));
    let refused = std::iter::from_fn(|| server.poll_report()).any(
        |r| matches!(r, Report::Refused(refusal) if refusal.reason == RefusalReason::Draining),
    );
    assert!(refused, "the refusal is reported as a drain's");
    assert_eq!(server.stats().redirects, [0, 0]);
    assert_eq!(server.stats().drain_refusals, 1);
}

#[test]
fn an_alternate_of_the_other_family_is_never_sent() {
    let t0 = Instant::now();
    let config = config();
    // Only IPv6 alternates, and this node's own address, for an IPv4 client.
    draining(&config, &["[2001:db8::7]:3478", "10.0.1.5:3478"]);
    let mut server = Server::new(config.clone(), t0);
    let mut client = alice("192.0.2.10:50000");
    let response = try_allocate(&mut server, t0, &mut client).expect("answered");
    assert_eq!(outcome(&response), (Class::Error, Some(508)));

    // With both families listed, every redirect names an IPv4 one.
    config.shared.set_alternates(vec![
        alternate("[2001:db8::7]:3478"),
        alternate("10.0.2.7:3478"),
        alternate("[2001:db8::8]:3478"),
        alternate("10.0.2.8:3478"),
    ]);
    let mut seen = Vec::new();
    for n in 0..6u16 {
        let mut client = alice(&format!("192.0.2.10:{}", 50001 + n));
        let response = first_allocate(&mut server, t0, &mut client).expect("answered");
        let named = alternate_servers(&response);
        assert_eq!(named.len(), 1, "one ALTERNATE-SERVER");
        assert!(named[0].is_ipv4(), "{named:?}");
        seen.push(named[0]);
    }
    // Spread over both IPv4 alternates.
    assert!(seen.contains(&"10.0.2.7:3478".parse().unwrap()));
    assert!(seen.contains(&"10.0.2.8:3478".parse().unwrap()));
}

#[test]
fn allocations_made_before_a_drain_go_on_refreshing_and_binding() {
    let t0 = Instant::now();
    let config = config();
    let shared = config.shared.clone();
    let mut server = Server::new(config, t0);
    let mut client = alice("192.0.2.10:50000");
    allocate(&mut server, t0, &mut client, UDP, false);
    shared.set_alternates(vec![alternate("10.0.2.7:3478")]);
    shared.set_draining(true);

    let peer: SocketAddr = "198.51.100.1:7000".parse().unwrap();
    let refresh = client.request(Method::REFRESH, |b| {
        b.add(&Attribute::Lifetime(600)).unwrap();
    });
    let answer = send(&mut server, t0, client.from, &refresh).unwrap();
    assert_eq!(outcome(&answer), (Class::Success, None));
    let permission = client.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    let answer = send(&mut server, t0, client.from, &permission).unwrap();
    assert_eq!(outcome(&answer), (Class::Success, None));
    let bind = client.request(Method::CHANNEL_BIND, |b| {
        b.add(&Attribute::ChannelNumber(0x4000)).unwrap();
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    let answer = send(&mut server, t0, client.from, &bind).unwrap();
    assert_eq!(outcome(&answer), (Class::Success, None));
    // Relaying goes on both ways.
    let relayed = peer_data(&mut server, t0, RELAY, peer, b"from the peer").expect("relayed");
    assert_eq!(&relayed[4..], b"from the peer");
    let channel_data = [&[0x40, 0x00, 0, 5][..], b"hello"].concat();
    let t = server
        .handle_input(
            t0,
            Input::Client {
                from: client.from,
                payload: &channel_data,
            },
        )
        .expect("relayed to the peer");
    assert_eq!(t.payload, b"hello");
    // Binding is answered too.
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    MessageBuilder::new(&mut buf, kind, TransactionId([9; 12]));
    let answer = send(&mut server, t0, client.from, &buf).unwrap();
    assert_eq!(outcome(&answer), (Class::Success, None));
    assert_eq!(server.allocation_count(), 1);
}

#[test]
fn a_full_server_redirects_above_its_threshold_and_refuses_when_nowhere() {
    let t0 = Instant::now();
    let mut config = config();
    config.redirect_above = Some(1);
    config.max_allocations = 3;
    let shared = config.shared.clone();
    let mut server = Server::new(config, t0);
    let mut first = alice("192.0.2.10:50000");
    allocate(&mut server, t0, &mut first, UDP, false);

    // At the threshold, with no alternate known: served here up to the limit.
    let mut second = alice("192.0.2.10:50001");
    allocate(&mut server, t0, &mut second, UDP, false);

    shared.set_alternates(vec![alternate("10.0.2.7:3478")]);
    let mut third = alice("192.0.2.10:50002");
    let response = first_allocate(&mut server, t0, &mut third).expect("answered");
    assert_eq!(outcome(&response), (Class::Error, Some(300)));
    assert_eq!(server.stats().redirects[RedirectReason::Full.index()], 1);
    assert_eq!(server.allocation_count(), 2);
}

#[test]
fn tls_clients_are_sent_to_tls_alternates_with_their_domain_under_sha256() {
    let t0 = Instant::now();
    let config = config();
    let shared = config.shared.clone();
    let mut server = Server::new(config, t0);
    let mut client = Client::new(
        five_tuple(Transport::Tls, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    learn_nonce(&mut server, t0, &mut client);
    shared.set_alternates(vec![alternate("10.0.2.7:3478")]);
    shared.set_tls_alternates(vec![Alternate {
        address: "10.0.2.7:5349".parse().unwrap(),
        domain: Some("turn2.example.org".to_owned()),
    }]);
    shared.set_draining(true);
    // Unsigned, or under MESSAGE-INTEGRITY (SHA-1): the TLS alternate, no
    // domain (RFC 8489 §10 sends it only under SHA-256).
    let mut other = Client::new(
        five_tuple(Transport::Tls, "192.0.2.11:50000"),
        "alice",
        "secret",
    );
    let response = first_allocate(&mut server, t0, &mut other).expect("answered");
    let tls_alternate: SocketAddr = "10.0.2.7:5349".parse().unwrap();
    assert_eq!(alternate_servers(&response), [tls_alternate]);
    let request = client.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(UDP)).unwrap();
    });
    let response = send(&mut server, t0, client.from, &request).expect("answered");
    assert_eq!(alternate_servers(&response), [tls_alternate]);
    let m = Message::parse(&response).unwrap();
    assert!(m.get(AttributeType::ALTERNATE_DOMAIN).is_none());

    // Under MESSAGE-INTEGRITY-SHA256: the domain too.
    let request = {
        let mut buf = Vec::new();
        let kind = MessageType::new(Method::ALLOCATE, Class::Request);
        let mut b = MessageBuilder::new(&mut buf, kind, TransactionId([7; 12]));
        b.add(&Attribute::RequestedTransport(UDP)).unwrap();
        b.add(&Attribute::Username("alice")).unwrap();
        b.add(&Attribute::Realm(REALM)).unwrap();
        b.add(&Attribute::Nonce(&client.nonce)).unwrap();
        b.add_integrity_sha256(&client.key).unwrap();
        buf
    };
    let response = send(&mut server, t0, client.from, &request).expect("answered");
    assert_eq!(outcome(&response), (Class::Error, Some(300)));
    let m = Message::parse(&response).unwrap();
    assert_eq!(
        m.get(AttributeType::ALTERNATE_DOMAIN),
        Some(Ok(Attribute::AlternateDomain("turn2.example.org")))
    );
    m.verify_integrity_sha256(&client.key).expect("signed");
}

#[test]
fn a_tls_client_with_no_tls_alternate_is_not_sent_to_a_udp_port() {
    let t0 = Instant::now();
    let config = config();
    draining(&config, &["10.0.2.7:3478"]);
    let mut server = Server::new(config, t0);
    let mut client = Client::new(
        five_tuple(Transport::Tls, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    let response = try_allocate(&mut server, t0, &mut client).expect("answered");
    assert_eq!(outcome(&response), (Class::Error, Some(508)));
}

#[test]
fn a_drain_ended_serves_allocates_again() {
    let t0 = Instant::now();
    let config = config();
    draining(&config, &["10.0.2.7:3478"]);
    let shared = config.shared.clone();
    let mut server = Server::new(config, t0);
    shared.set_draining(false);
    let mut client = alice("192.0.2.10:50000");
    assert!(try_allocate(&mut server, t0, &mut client).is_none());
    assert!(matches!(server.poll_event(), Some(Event::BindRelay { .. })));
}

#[test]
fn a_fleet_registry_comes_before_the_static_list_which_stays_its_fallback() {
    let shared = edgeice_server::SharedState::default();
    let at = |address: &str| edgeice_server::Alternate {
        address: address.parse().unwrap(),
        domain: None,
    };
    shared.set_alternates(vec![at("192.0.2.7:3478")]);
    assert_eq!(shared.alternates(), vec![at("192.0.2.7:3478")]);
    shared.set_fleet_alternates(vec![at("192.0.2.8:3478")], Vec::new());
    assert_eq!(shared.alternates(), vec![at("192.0.2.8:3478")]);
    // No other live node with room: the static list again.
    shared.set_fleet_alternates(Vec::new(), Vec::new());
    assert_eq!(shared.alternates(), vec![at("192.0.2.7:3478")]);
    assert!(shared.tls_alternates().is_empty());
}
