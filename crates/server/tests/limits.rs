//! Caps per allocation: permissions and channels (RFC 8656 answers 508
//! Insufficient Capacity beyond them). Before, neither had a cap, so each
//! of these tests failed at its first 508.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use edgeice_server::{Server, Transport};
use edgeice_stun::*;

fn capped(permissions: usize, channels: usize) -> edgeice_server::ServerConfig {
    let mut config = config();
    config.max_permissions_per_allocation = permissions;
    config.max_channels_per_allocation = channels;
    config
}

fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, last], 7000))
}

fn create_permission(server: &mut Server, now: Instant, c: &mut Client, peers: &[u8]) -> Vec<u8> {
    let request = c.request(Method::CREATE_PERMISSION, |b| {
        for last in peers {
            b.add(&Attribute::XorPeerAddress(peer(*last))).unwrap();
        }
    });
    send(server, now, c.from, &request).expect("answered")
}

fn channel_bind(
    server: &mut Server,
    now: Instant,
    c: &mut Client,
    number: u16,
    last: u8,
) -> Vec<u8> {
    let request = c.request(Method::CHANNEL_BIND, |b| {
        b.add(&Attribute::ChannelNumber(number)).unwrap();
        b.add(&Attribute::XorPeerAddress(peer(last))).unwrap();
    });
    send(server, now, c.from, &request).expect("answered")
}

const OK: (Class, Option<u16>) = (Class::Success, None);
const FULL: (Class, Option<u16>) = (Class::Error, Some(508));

#[test]
fn permissions_are_capped_per_allocation() {
    let t0 = Instant::now();
    let mut server = Server::new(capped(3, 256), t0);
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    allocate(&mut server, t0, &mut alice, UDP, false);
    assert_eq!(
        outcome(&create_permission(&mut server, t0, &mut alice, &[1, 2])),
        OK
    );
    // All or nothing: two more would be four.
    assert_eq!(
        outcome(&create_permission(&mut server, t0, &mut alice, &[3, 4])),
        FULL
    );
    assert!(
        server
            .allocation(&alice.from)
            .unwrap()
            .permits(peer(2).ip(), t0)
    );
    assert!(
        !server
            .allocation(&alice.from)
            .unwrap()
            .permits(peer(3).ip(), t0)
    );
    // The same IP twice in one request counts once.
    assert_eq!(
        outcome(&create_permission(&mut server, t0, &mut alice, &[3, 3])),
        OK
    );
    assert_eq!(
        outcome(&create_permission(&mut server, t0, &mut alice, &[5])),
        FULL
    );
    // Refreshing what is held is always possible.
    assert_eq!(
        outcome(&create_permission(&mut server, t0, &mut alice, &[1, 2, 3])),
        OK
    );
    // A ChannelBind that would need a fourth permission: 508, no channel.
    assert_eq!(
        outcome(&channel_bind(&mut server, t0, &mut alice, 0x4000, 9)),
        FULL
    );
    assert!(
        server
            .allocation(&alice.from)
            .unwrap()
            .channel(0x4000, t0)
            .is_none()
    );
    assert_eq!(
        outcome(&channel_bind(&mut server, t0, &mut alice, 0x4000, 1)),
        OK
    );

    // Lapsed permissions make room, even before the sweep.
    let later = t0 + Duration::from_secs(301);
    learn_nonce(&mut server, later, &mut alice);
    assert_eq!(
        outcome(&create_permission(&mut server, later, &mut alice, &[7, 8])),
        OK
    );
}

#[test]
fn channels_are_capped_per_allocation() {
    let t0 = Instant::now();
    let mut server = Server::new(capped(256, 2), t0);
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    allocate(&mut server, t0, &mut alice, UDP, false);
    assert_eq!(
        outcome(&channel_bind(&mut server, t0, &mut alice, 0x4000, 1)),
        OK
    );
    assert_eq!(
        outcome(&channel_bind(&mut server, t0, &mut alice, 0x4001, 2)),
        OK
    );
    assert_eq!(
        outcome(&channel_bind(&mut server, t0, &mut alice, 0x4002, 3)),
        FULL
    );
    assert!(
        !server
            .allocation(&alice.from)
            .unwrap()
            .permits(peer(3).ip(), t0)
    );
    // Refreshing a bound channel is always possible.
    assert_eq!(
        outcome(&channel_bind(&mut server, t0, &mut alice, 0x4001, 2)),
        OK
    );
    // A conflict is still 400, not 508.
    let conflict = channel_bind(&mut server, t0, &mut alice, 0x4001, 5);
    assert_eq!(outcome(&conflict), (Class::Error, Some(400)));
}

#[test]
fn a_full_allocation_still_relays_by_bisection() {
    // 256 peers, each with a channel: every one of them is found, both ways.
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    allocate(&mut server, t0, &mut alice, UDP, false);
    let peers: Vec<SocketAddr> = (0..256u16)
        .map(|i| SocketAddr::from(([203, 0, 113, (255 - i) as u8], 7000 + i)))
        .collect();
    for (i, p) in peers.iter().enumerate() {
        let number = 0x4000 + ((i as u16 * 37) % 256);
        let request = alice.request(Method::CHANNEL_BIND, |b| {
            b.add(&Attribute::ChannelNumber(number)).unwrap();
            b.add(&Attribute::XorPeerAddress(*p)).unwrap();
        });
        assert_eq!(
            outcome(&send(&mut server, t0, alice.from, &request).unwrap()),
            OK
        );
    }
    let one_more = alice.request(Method::CREATE_PERMISSION, |b| {
        b.add(&Attribute::XorPeerAddress(peer(1))).unwrap();
    });
    assert_eq!(
        outcome(&send(&mut server, t0, alice.from, &one_more).unwrap()),
        FULL
    );
    for (i, p) in peers.iter().enumerate() {
        let number = 0x4000 + ((i as u16 * 37) % 256);
        let mut frame = Vec::new();
        ChannelData {
            channel: number,
            data: b"out",
        }
        .encode(false, &mut frame)
        .unwrap();
        let t = server
            .handle_input(
                t0,
                edgeice_server::Input::Client {
                    from: alice.from,
                    payload: &frame,
                },
            )
            .expect("relayed");
        assert_eq!(t.destination, *p);
        let back = peer_data(&mut server, t0, RELAY, *p, b"in").expect("relayed back");
        assert_eq!(ChannelData::parse(&back).unwrap().channel, number);
    }
}

#[test]
fn a_refreshed_channel_still_carries_its_peers_data() {
    // The peer → channel table keeps its own copy of the expiry: a refresh
    // must move both.
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    allocate(&mut server, t0, &mut alice, UDP, false);
    assert_eq!(
        outcome(&channel_bind(&mut server, t0, &mut alice, 0x4000, 1)),
        OK
    );
    let refresh = t0 + Duration::from_secs(500);
    assert_eq!(
        outcome(&channel_bind(&mut server, refresh, &mut alice, 0x4000, 1)),
        OK
    );
    let later = t0 + Duration::from_secs(700);
    let back = peer_data(&mut server, later, RELAY, peer(1), b"in").expect("relayed");
    assert_eq!(ChannelData::parse(&back).unwrap().channel, 0x4000);
}

// Before: a CreatePermission listing thousands of peers was compared pair
// by pair (quadratic) under the shard's lock before being refused.
#[test]
fn a_request_listing_more_peers_than_the_cap_is_refused_at_once() {
    let t0 = Instant::now();
    let mut server = Server::new(capped(4, 256), t0);
    let mut alice = Client::new(
        five_tuple(Transport::Udp, "192.0.2.10:50000"),
        "alice",
        "secret",
    );
    allocate(&mut server, t0, &mut alice, UDP, false);
    // The same peer five times is one permission, but five listed: refused.
    assert_eq!(
        outcome(&create_permission(&mut server, t0, &mut alice, &[1; 5])),
        FULL
    );
    assert_eq!(
        outcome(&create_permission(&mut server, t0, &mut alice, &[1; 4])),
        OK
    );
}
