//! The peer rule on every path that names a peer: CreatePermission,
//! ChannelBind (and so the kernel fast path, which only gets bound
//! channels), Send indications, RFC 6062 Connect, and data from peers.
//! MS-TURN's Send and Set Active Destination are in ms_turn.rs.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::*;
use edgeice_server::{Event, Server, ServerConfig, Transport};
use edgeice_stun::*;

fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn create_permission(server: &mut Server, now: Instant, c: &mut Client, p: SocketAddr) -> Vec<u8> {
    let request = c.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(p)).unwrap();
    });
    send(server, now, c.from, &request).expect("answered")
}

fn channel_bind(
    server: &mut Server,
    now: Instant,
    c: &mut Client,
    number: u16,
    p: SocketAddr,
) -> Vec<u8> {
    let request = c.request(Method::CHANNEL_BIND, |b| {
        b.add(&Attribute::ChannelNumber(number)).unwrap();
        b.add(&Attribute::XorPeerAddress(p)).unwrap();
    });
    send(server, now, c.from, &request).expect("answered")
}

/// The server's own addresses as the driver would gather them: the
/// listener's and the relays' (and, in production, every interface's).
fn hardened() -> ServerConfig {
    let mut config = config();
    config.kernel_fast_path = true;
    config.peer_policy.own_addresses = vec![
        "10.0.1.5".parse().unwrap(),
        "2001:db8::5".parse().unwrap(),
        "192.0.2.99".parse().unwrap(),
    ];
    config
}

/// Refused by default, in some of their disguises. Each failed before
/// except loopback (which was refused already).
const REFUSED: [&str; 12] = [
    "169.254.169.254:80",
    "[::ffff:169.254.169.254]:80",
    "[64:ff9b::a9fe:a9fe]:80",
    "[2002:a9fe:a9fe::]:80",
    "[2001:0:c000:201::5601:5601]:80",
    "169.254.10.20:9",
    "[fe80::1]:9",
    "[fd00:ec2::254]:80",
    "100.100.100.200:80",
    "10.0.1.5:3478",
    "[::ffff:192.0.2.99]:22",
    "[2001:db8::5]:22",
];

#[test]
fn create_permission_and_channel_bind_refuse_metadata_link_local_and_the_server_itself() {
    let t0 = Instant::now();
    let mut server = Server::new(hardened(), t0);
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    allocate(&mut server, t0, &mut alice, UDP, true);
    for (i, refused) in REFUSED.iter().enumerate() {
        let p = peer(refused);
        let answer = create_permission(&mut server, t0, &mut alice, p);
        assert_eq!(
            outcome(&answer),
            (Class::Error, Some(403)),
            "CreatePermission {p}"
        );
        let answer = channel_bind(&mut server, t0, &mut alice, 0x4000 + i as u16, p);
        assert_eq!(
            outcome(&answer),
            (Class::Error, Some(403)),
            "ChannelBind {p}"
        );
        // Nothing for the kernel either.
        while let Some(event) = server.poll_event() {
            assert!(
                !matches!(event, Event::FastPathInstall { .. }),
                "{event:?} for {p}"
            );
        }
        let send_indication = alice.send_indication(p, b"GET /latest/meta-data/");
        assert!(send(&mut server, t0, alice.from, &send_indication).is_none());
        let relay = if p.is_ipv4() { RELAY } else { RELAY_V6 };
        assert!(peer_data(&mut server, t0, relay, p, b"x").is_none());
    }
    // Ordinary peers, private ones included, still go through.
    for ok in ["10.0.1.6:7000", "198.51.100.20:7000", "[2001:db8::6]:7000"] {
        let answer = create_permission(&mut server, t0, &mut alice, peer(ok));
        assert_eq!(outcome(&answer), (Class::Success, None), "{ok}");
    }
    let answer = channel_bind(&mut server, t0, &mut alice, 0x4100, peer("10.0.1.6:7000"));
    assert_eq!(outcome(&answer), (Class::Success, None));
}

#[test]
fn rfc6062_connect_refuses_metadata_link_local_and_the_server_itself() {
    let t0 = Instant::now();
    let mut server = Server::new(hardened(), t0);
    let control = five_tuple(Transport::Tcp, "192.0.2.10:50000");
    let mut alice = Client::new(control, "alice", "secret");
    allocate(&mut server, t0, &mut alice, TCP, false);
    for refused in REFUSED.iter().filter(|r| !r.starts_with('[')) {
        let p = peer(refused);
        // Connect needs a permission: try to get one first, so that the
        // Connect itself is what must refuse.
        let _ = create_permission(&mut server, t0, &mut alice, p);
        let connect = alice.request(Method::CONNECT, |b| {
            b.add(&Attribute::XorPeerAddress(p)).unwrap();
        });
        let answer = send(&mut server, t0, control, &connect).expect("answered");
        assert_eq!(outcome(&answer), (Class::Error, Some(403)), "Connect {p}");
        assert_eq!(server.poll_event(), None, "no ConnectPeer for {p}");
    }
}

#[test]
fn an_ipv6_form_deny_entry_holds_on_every_path() {
    // Before: the peer was turned into 10.0.0.1 before matching, so
    // 64:ff9b::/96 matched nothing, and a permission for 10.0.0.1 let the
    // NAT64 form through both ways.
    let t0 = Instant::now();
    let mut config = config();
    config.peer_policy.deny = vec!["64:ff9b::/96".parse().unwrap()];
    let mut server = Server::new(config, t0);
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    allocate(&mut server, t0, &mut alice, UDP, true);
    let nat64 = peer("[64:ff9b::a00:1]:7000");
    let answer = create_permission(&mut server, t0, &mut alice, nat64);
    assert_eq!(outcome(&answer), (Class::Error, Some(403)));
    let answer = channel_bind(&mut server, t0, &mut alice, 0x4000, nat64);
    assert_eq!(outcome(&answer), (Class::Error, Some(403)));

    // The IPv4 address itself is not denied; its permission does not
    // cover the NAT64 form.
    let answer = create_permission(&mut server, t0, &mut alice, peer("10.0.0.1:7000"));
    assert_eq!(outcome(&answer), (Class::Success, None));
    let send_indication = alice.send_indication(nat64, b"hello");
    assert!(send(&mut server, t0, alice.from, &send_indication).is_none());
    assert!(peer_data(&mut server, t0, RELAY_V6, nat64, b"in").is_none());
    // A v4-mapped peer is the IPv4 peer, on the IPv6 relay.
    let mapped = peer("[::ffff:10.0.0.1]:7000");
    let send_indication = alice.send_indication(mapped, b"hello");
    assert!(send(&mut server, t0, alice.from, &send_indication).is_some());
}

#[test]
fn the_private_preset_refuses_private_peers() {
    let t0 = Instant::now();
    let mut config = config();
    config.peer_policy.deny_private = true;
    let mut server = Server::new(config, t0);
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    allocate(&mut server, t0, &mut alice, UDP, true);
    for refused in [
        "10.1.2.3:1",
        "172.16.0.1:1",
        "192.168.1.1:1",
        "100.64.0.1:1",
        "[fd00::1]:1",
    ] {
        let answer = create_permission(&mut server, t0, &mut alice, peer(refused));
        assert_eq!(outcome(&answer), (Class::Error, Some(403)), "{refused}");
    }
    let answer = create_permission(&mut server, t0, &mut alice, peer("198.51.100.1:1"));
    assert_eq!(outcome(&answer), (Class::Success, None));
}

#[test]
fn clients_of_one_server_relay_to_each_other_but_not_to_its_other_ports() {
    // Each one's peer is the other's relay: the server's own address, on
    // a relay port. Its other ports stay out of reach, Send included.
    let t0 = Instant::now();
    let mut config = hardened();
    config.peer_policy.relay_ports = Some(61000..=65535);
    let mut server = Server::new(config, t0);
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    allocate(&mut server, t0, &mut alice, UDP, true);
    let other_relay = peer("10.0.1.5:61002");
    let answer = create_permission(&mut server, t0, &mut alice, other_relay);
    assert_eq!(outcome(&answer), (Class::Success, None));
    let send_indication = alice.send_indication(other_relay, b"to bob");
    assert!(send(&mut server, t0, alice.from, &send_indication).is_some());
    // The same permission does not reach the server's SSH or its listener.
    for service in ["10.0.1.5:22", "10.0.1.5:3478"] {
        let send_indication = alice.send_indication(peer(service), b"hello");
        assert!(
            send(&mut server, t0, alice.from, &send_indication).is_none(),
            "{service}"
        );
        let answer = channel_bind(&mut server, t0, &mut alice, 0x4001, peer(service));
        assert_eq!(outcome(&answer), (Class::Error, Some(403)), "{service}");
    }
    let answer = channel_bind(&mut server, t0, &mut alice, 0x4000, other_relay);
    assert_eq!(outcome(&answer), (Class::Success, None));
    // Bob's relay answers from its relay port.
    assert!(peer_data(&mut server, t0, RELAY, other_relay, b"from bob").is_some());
}

#[test]
fn the_rule_that_refuses_a_peer_is_named() {
    use edgeice_server::peer_policy::{PeerPolicy, PeerRule};
    let policy = PeerPolicy {
        deny: vec!["198.51.100.0/24".parse().unwrap()],
        own_addresses: vec!["192.0.2.1".parse().unwrap()],
        deny_private: true,
        relay_ports: Some(61000..=65535),
        ..PeerPolicy::default()
    };
    let rule = |p: &str| policy.refusing_rule(peer(p)).map(|r| r.to_string());
    assert_eq!(rule("203.0.113.5:9"), None);
    assert_eq!(
        rule("198.51.100.7:9").as_deref(),
        Some("deny-peer 198.51.100.0/24")
    );
    assert_eq!(rule("127.0.0.1:9").as_deref(), Some("loopback"));
    // An IPv6 form is judged as the IPv4 address it stands for.
    assert_eq!(rule("[64:ff9b::7f00:1]:9").as_deref(), Some("loopback"));
    assert_eq!(
        rule("169.254.169.254:80").as_deref(),
        Some("cloud-metadata")
    );
    assert_eq!(rule("169.254.1.1:80").as_deref(), Some("link-local"));
    assert_eq!(rule("[ff02::1]:9").as_deref(), Some("multicast"));
    assert_eq!(rule("192.0.2.1:22").as_deref(), Some("own-address"));
    // Another allocation's relay on the server's own address is allowed.
    assert_eq!(rule("192.0.2.1:61000"), None);
    assert_eq!(rule("10.1.2.3:9").as_deref(), Some("deny-private-peers"));
    assert_eq!(
        policy.refusing_rule(peer("10.1.2.3:9")),
        Some(PeerRule::Private)
    );
}
