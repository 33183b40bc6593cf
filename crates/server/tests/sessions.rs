//! The operator's records out of the core: an allocation's start and end
//! with what it relayed, kicking one, ending all at shutdown, and refused
//! requests with their reasons.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use edgeice_server::peer_policy::PeerRule;
use edgeice_server::{EndReason, RefusalReason, Report, Server, Transport};
use edgeice_stun::*;

fn reports(server: &mut Server) -> Vec<Report> {
    std::iter::from_fn(|| server.poll_report()).collect()
}

fn one_refusal(server: &mut Server) -> edgeice_server::Refusal {
    match reports(server).as_slice() {
        [Report::Refused(refusal)] => refusal.clone(),
        other => panic!("expected one refusal, got {other:?}"),
    }
}

fn channel_data(channel: u16, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ChannelData { channel, data }
        .encode(false, &mut out)
        .unwrap();
    out
}

#[test]
fn a_session_is_recorded_from_start_to_end_with_its_traffic() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    allocate(&mut server, t0, &mut alice, UDP, false);
    let started = reports(&mut server);
    let [Report::SessionStart(start)] = started.as_slice() else {
        panic!("expected one session-start, got {started:?}")
    };
    assert_eq!(start.user, "alice");
    assert_eq!(start.realm, REALM);
    assert_eq!(start.five_tuple, alice.from);
    assert_eq!(start.relay, RELAY.parse::<SocketAddr>().unwrap());
    assert_eq!(start.dialect.label(), "standard");
    assert_eq!(start.peers, 0);

    let peer: SocketAddr = "198.51.100.20:7000".parse().unwrap();
    let bind = alice.request(Method::CHANNEL_BIND, |b| {
        b.add(&Attribute::ChannelNumber(0x4000)).unwrap();
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    send(&mut server, t0, alice.from, &bind).unwrap();
    for _ in 0..3 {
        assert!(send(&mut server, t0, alice.from, &channel_data(0x4000, b"hello")).is_some());
    }
    assert!(peer_data(&mut server, t0, RELAY, peer, b"hi").is_some());
    // From an IP without a permission: dropped, and counted as such.
    let stranger: SocketAddr = "198.51.100.99:7000".parse().unwrap();
    assert!(peer_data(&mut server, t0, RELAY, stranger, b"?").is_none());

    let listed = server.sessions(t0 + Duration::from_secs(5));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, start.id);
    assert_eq!(listed[0].age, Duration::from_secs(5));
    assert_eq!(listed[0].traffic.packets_to_peer, 3);

    let release = alice.request(Method::REFRESH, |b| {
        b.add(&Attribute::Lifetime(0)).unwrap();
    });
    let t9 = t0 + Duration::from_secs(9);
    send(&mut server, t9, alice.from, &release).unwrap();
    let ended = reports(&mut server);
    let [Report::SessionEnd(end, EndReason::Released)] = ended.as_slice() else {
        panic!("expected one session-end, released, got {ended:?}")
    };
    assert_eq!(end.id, start.id);
    assert_eq!(end.age, Duration::from_secs(9));
    assert_eq!(end.peers, 1);
    assert_eq!(end.first_peers, vec![peer.ip()]);
    let t = end.traffic;
    assert_eq!((t.packets_to_peer, t.bytes_to_peer), (3, 15));
    assert_eq!((t.packets_to_client, t.bytes_to_client), (1, 2));
    assert_eq!(t.dropped_from_peers, 1);
}

#[test]
fn sessions_end_expired_kicked_or_at_shutdown() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    let mut bob = Client::new(
        five_tuple(Transport::Udp, "192.0.2.11:50000"),
        "bob",
        "hunter2",
    );
    allocate(&mut server, t0, &mut alice, UDP, false);
    let Some(Report::SessionStart(first)) = server.poll_report() else {
        panic!("no session-start")
    };
    // Kicked: gone, its relay released, the client's Refresh gets 437.
    assert_eq!(server.kick(t0, first.id), Some(alice.from));
    assert!(matches!(
        server.poll_report(),
        Some(Report::SessionEnd(s, EndReason::Kicked)) if s.id == first.id
    ));
    assert!(
        server
            .poll_event()
            .is_some_and(|e| matches!(e, edgeice_server::Event::ReleaseRelay { .. }))
    );
    let refresh = alice.request(Method::REFRESH, |_| {});
    let answer = send(&mut server, t0, alice.from, &refresh).unwrap();
    assert_eq!(error_code(&answer), Some(437));
    assert_eq!(server.kick(t0, first.id), None);

    allocate(&mut server, t0, &mut bob, UDP, false);
    let Some(Report::SessionStart(second)) = reports(&mut server)
        .into_iter()
        .find(|r| matches!(r, Report::SessionStart(_)))
    else {
        panic!("no second session-start")
    };
    assert_ne!(second.id, first.id);
    server.end_all(t0, EndReason::Shutdown);
    assert!(matches!(
        reports(&mut server).as_slice(),
        [Report::SessionEnd(s, EndReason::Shutdown)] if s.id == second.id
    ));
    while server.poll_event().is_some() {}

    allocate(&mut server, t0, &mut bob, UDP, false);
    reports(&mut server);
    server.handle_timeout(t0 + Duration::from_secs(601));
    assert!(matches!(
        reports(&mut server).as_slice(),
        [Report::SessionEnd(_, EndReason::Expired)]
    ));
}

#[test]
fn refusals_carry_their_reason_and_the_handshake_is_not_one() {
    let t0 = Instant::now();
    let mut config = config();
    config.peer_policy.deny = vec!["203.0.113.0/24".parse().unwrap()];
    config.max_allocations_per_user = 1;
    let mut server = Server::new(config, t0);

    // The first 401 of every client is the handshake.
    let mut mallory = Client::new(
        five_tuple(Transport::Udp, "192.0.2.66:4000"),
        "alice",
        "guess",
    );
    learn_nonce(&mut server, t0, &mut mallory);
    assert_eq!(reports(&mut server), vec![]);
    let wrong = mallory.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(UDP)).unwrap();
    });
    send(&mut server, t0, mallory.from, &wrong).unwrap();
    let refusal = one_refusal(&mut server);
    assert_eq!(refusal.reason, RefusalReason::WrongPassword);
    assert_eq!(refusal.user.as_deref(), Some("alice"));
    assert_eq!(refusal.five_tuple.client, mallory.from.client);
    assert_eq!(refusal.code, 401);

    // A nonce gone stale is answered 438 and retried: not a failure.
    let mut late = Client::new(
        five_tuple(Transport::Udp, "192.0.2.68:4000"),
        "bob",
        "hunter2",
    );
    learn_nonce(&mut server, t0, &mut late);
    let request = late.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(UDP)).unwrap();
    });
    let stale = t0 + Duration::from_secs(7200);
    let answer = send(&mut server, stale, late.from, &request).unwrap();
    assert_eq!(error_code(&answer), Some(438));
    assert_eq!(reports(&mut server), vec![]);

    let mut nobody = Client::new(five_tuple(Transport::Udp, "192.0.2.67:4000"), "nobody", "x");
    learn_nonce(&mut server, t0, &mut nobody);
    let request = nobody.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(UDP)).unwrap();
    });
    send(&mut server, t0, nobody.from, &request).unwrap();
    let refusal = one_refusal(&mut server);
    assert_eq!(refusal.reason, RefusalReason::UnknownUser);

    // A peer refused by the deny list names the rule.
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    allocate(&mut server, t0, &mut alice, UDP, false);
    reports(&mut server);
    let peer: SocketAddr = "203.0.113.5:9".parse().unwrap();
    let permission = alice.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    });
    let answer = send(&mut server, t0, alice.from, &permission).unwrap();
    assert_eq!(error_code(&answer), Some(403));
    let refusal = one_refusal(&mut server);
    assert_eq!(refusal.user.as_deref(), Some("alice"));
    assert_eq!(
        refusal.reason,
        RefusalReason::PeerForbidden {
            peer,
            rule: PeerRule::Denied("203.0.113.0/24".parse().unwrap())
        }
    );
    let loopback: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let permission = alice.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(loopback)).unwrap();
    });
    send(&mut server, t0, alice.from, &permission).unwrap();
    let refusal = one_refusal(&mut server);
    assert!(matches!(
        refusal.reason,
        RefusalReason::PeerForbidden {
            rule: PeerRule::Builtin("loopback"),
            ..
        }
    ));

    // A CreatePermission without a peer is a bad request.
    let empty = alice.request(Method::CREATE_PERMISSION, |_| {});
    send(&mut server, t0, alice.from, &empty).unwrap();
    let refusal = one_refusal(&mut server);
    assert_eq!(
        (refusal.reason, refusal.code),
        (RefusalReason::BadRequest, 400)
    );

    // A second allocation of alice's is over her quota.
    let mut again = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50001"),
        "alice",
        "secret",
    );
    learn_nonce(&mut server, t0, &mut again);
    let request = again.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(UDP)).unwrap();
    });
    send(&mut server, t0, again.from, &request).unwrap();
    let refusal = one_refusal(&mut server);
    assert_eq!(refusal.reason, RefusalReason::UserQuota);
    assert_eq!(refusal.code, 486);
}
