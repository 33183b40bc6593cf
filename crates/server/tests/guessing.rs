//! Throttling guessing, not users: failed integrity checks back off per
//! (user, source), per source and per user; spoofed floods cannot starve a
//! client that holds a nonce; unauthenticated answers stay within 4× their
//! request, REALM and NONCE counted; RFC 5780 answers aimed elsewhere are
//! rate-limited per source.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use edgeice_server::{AlternateAddress, FiveTuple, Input, Server, ServerConfig, Transport};
use edgeice_stun::*;

fn udp(client: &str) -> FiveTuple {
    five_tuple(Transport::Udp, client)
}

/// A Refresh signed by `client`: Success, or the error code.
fn refresh(server: &mut Server, now: Instant, client: &mut Client) -> Option<(Class, Option<u16>)> {
    let request = client.request(Method::REFRESH, |_| {});
    send(server, now, client.from, &request).map(|answer| outcome(&answer))
}

/// An Allocate signed by `client`: None when the server went on to bind a
/// relay (the credentials were good), else the error code.
fn try_allocate(server: &mut Server, now: Instant, client: &mut Client) -> Option<u16> {
    let request = client.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(UDP)).unwrap();
    });
    let answer = send(server, now, client.from, &request)?;
    error_code(&answer)
}

#[test]
fn guesses_back_off_for_that_user_from_that_source_only() {
    // Before: the sixth attempt, with the right password, succeeded.
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut mallory = Client::new(udp("198.51.100.66:4000"), "alice", "guess");
    learn_nonce(&mut server, t0, &mut mallory);
    for _ in 0..5 {
        assert_eq!(try_allocate(&mut server, t0, &mut mallory), Some(401));
    }
    assert_eq!(server.stats().guesses_held_back, 0);
    // The right password now gets the same 401: no oracle in backoff.
    let mut lucky = Client::new(mallory.from, "alice", "secret");
    lucky.nonce = mallory.nonce.clone();
    lucky.next_id = 100;
    assert_eq!(try_allocate(&mut server, t0, &mut lucky), Some(401));
    assert_eq!(server.stats().guesses_held_back, 1);
    // Alice elsewhere, and other users from there, are not held back.
    let mut alice = Client::new(udp("192.0.2.10:5000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    assert_eq!(try_allocate(&mut server, t0, &mut alice), None);
    let mut bob = Client::new(udp("198.51.100.66:4001"), "bob", "hunter2");
    learn_nonce(&mut server, t0, &mut bob);
    assert_eq!(try_allocate(&mut server, t0, &mut bob), None);
    // The backoff ends (1 s, then doubling).
    let later = t0 + Duration::from_secs(2);
    assert_eq!(try_allocate(&mut server, later, &mut lucky), None);
}

#[test]
fn a_botnet_guessing_one_name_does_not_lock_out_its_working_client() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(udp("192.0.2.10:5000"), "alice", "secret");
    allocate(&mut server, t0, &mut alice, UDP, false);
    // 100 addresses, one wrong guess each: the per-user count is reached.
    for i in 0..100u16 {
        let from = udp(&format!("203.0.{}.{}:4000", i / 200, i % 200 + 1));
        let mut bot = Client::new(from, "alice", "guess");
        learn_nonce(&mut server, t0, &mut bot);
        assert_eq!(try_allocate(&mut server, t0, &mut bot), Some(401));
    }
    // Alice's client, which authenticated from its address before, goes on.
    assert_eq!(
        refresh(&mut server, t0, &mut alice),
        Some((Class::Success, None))
    );
    // Alice from a new address waits out the backoff like everyone else
    // (before: allowed at once).
    let mut roaming = Client::new(udp("192.0.2.77:5000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut roaming);
    assert_eq!(try_allocate(&mut server, t0, &mut roaming), Some(401));
    let later = t0 + Duration::from_secs(2);
    assert_eq!(try_allocate(&mut server, later, &mut roaming), None);
}

#[test]
fn one_source_guessing_many_names_is_held_back() {
    // Before: the right password from that source succeeded at once.
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut bob = Client::new(udp("198.51.100.66:4000"), "bob", "hunter2");
    allocate(&mut server, t0, &mut bob, UDP, false);
    for i in 0..30 {
        let name: &'static str = Box::leak(format!("user{i}").into_boxed_str());
        let mut guesser = Client::new(udp("198.51.100.66:4001"), name, "guess");
        learn_nonce(&mut server, t0, &mut guesser);
        assert_eq!(try_allocate(&mut server, t0, &mut guesser), Some(401));
    }
    let mut carol = Client::new(udp("198.51.100.66:4002"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut carol);
    assert_eq!(try_allocate(&mut server, t0, &mut carol), Some(401));
    // Bob, who authenticated from there before the guessing, is not.
    assert_eq!(
        refresh(&mut server, t0, &mut bob),
        Some((Class::Success, None))
    );
}

#[test]
fn a_spoofed_flood_cannot_starve_a_client_of_its_answers() {
    let t0 = Instant::now();
    let mut server = Server::new(config(), t0);
    let mut alice = Client::new(udp("192.0.2.10:5000"), "alice", "secret");
    learn_nonce(&mut server, t0, &mut alice);
    // Spoofed unauthenticated Allocates in alice's name spend her
    // address's 401 budget (200 at once, 50 a second).
    let mut spoofer = Client::new(alice.from, "alice", "x");
    let answered = (0..1000)
        .filter(|_| {
            let request = spoofer.unauthenticated_allocate();
            send(&mut server, t0, alice.from, &request).is_some()
        })
        .count();
    // (Alice's own first request spent one of the 200.)
    assert_eq!(answered, 199);
    // Alice's retry carries a nonce issued to her address: it proves she
    // reads what is sent there, so it is served whatever the flood spent.
    assert_eq!(try_allocate(&mut server, t0, &mut alice), None);
    // And when her nonce goes stale, the 438 still reaches her (before:
    // dropped with the flood's).
    let stale = t0 + Duration::from_secs(601);
    for _ in 0..250 {
        let request = spoofer.unauthenticated_allocate();
        send(&mut server, stale, alice.from, &request);
    }
    assert_eq!(
        refresh(&mut server, stale, &mut alice),
        Some((Class::Error, Some(438)))
    );
    // A forged nonce does not get past the budget.
    let mut forger = Client::new(alice.from, "alice", "secret");
    forger.nonce = "0000000000000fff000000000000000000000000".to_owned();
    forger.next_id = 500;
    let request = forger.request(Method::REFRESH, |_| {});
    assert!(send(&mut server, stale, alice.from, &request).is_none());
}

/// An unauthenticated Allocate of `len` bytes (padded with SOFTWARE).
fn allocate_of_len(len: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::ALLOCATE, Class::Request);
    let mut b = MessageBuilder::new(&mut buf, kind, TransactionId([7; 12]));
    b.add(&Attribute::RequestedTransport(UDP)).unwrap();
    if len > 32 {
        let padding = "p".repeat(len - 32);
        b.add(&Attribute::Software(&padding)).unwrap();
    }
    buf
}

#[test]
fn unauthenticated_answers_stay_within_four_times_the_request_realm_and_nonce_counted() {
    // Before: only SOFTWARE was left out, so a long realm took a tiny
    // Allocate's answer to 5× its size.
    let t0 = Instant::now();
    let mut config = config();
    config.realm = "a-rather-long-realm.turn.example.org".to_owned();
    let mut server = Server::new(config, t0);
    let from = udp("192.0.2.10:5000");
    let tiny = allocate_of_len(28);
    assert_eq!(tiny.len(), 28);
    assert!(
        send(&mut server, t0, from, &tiny).is_none(),
        "no answer fits 112 bytes"
    );
    // Over TCP nothing is reflected: answered whatever its size.
    let over_tcp = five_tuple(Transport::Tcp, "192.0.2.10:5000");
    assert!(send(&mut server, t0, over_tcp, &tiny).is_some());
    let mut answered = 0;
    for len in (36..200).step_by(4) {
        let request = allocate_of_len(len);
        if let Some(answer) = send(&mut server, t0, from, &request) {
            answered += 1;
            assert!(
                answer.len() <= 4 * request.len(),
                "{} for {}",
                answer.len(),
                request.len()
            );
            let m = Message::parse(&answer).unwrap();
            assert_eq!(error_code(&answer), Some(401));
            assert!(m.get(AttributeType::REALM).is_some() && m.get(AttributeType::NONCE).is_some());
        }
    }
    assert!(answered > 30);
    // With the default realm, the smallest Allocate is answered, reason
    // phrase included.
    let mut server = Server::new(ServerConfig::default(), t0);
    let answer = send(&mut server, t0, from, &tiny).expect("answered");
    assert!(answer.len() <= 4 * 28);
    let m = Message::parse(&answer).unwrap();
    let Some(Ok(Attribute::ErrorCode(e))) = m.get(AttributeType::ERROR_CODE) else {
        panic!("no ERROR-CODE")
    };
    assert_eq!((e.code, e.reason), (401, "Unauthenticated"));
}

#[test]
fn rfc5780_answers_aimed_elsewhere_are_rate_limited_per_source() {
    // Before: every one was answered, to any port the request named.
    let t0 = Instant::now();
    let primary: SocketAddr = "10.0.1.5:3478".parse().unwrap();
    let config = ServerConfig {
        alternates: vec![AlternateAddress {
            primary,
            alternate: "10.0.1.6:3479".parse().unwrap(),
        }],
        ..ServerConfig::default()
    };
    let mut server = Server::new(config, t0);
    let binding = |add: &dyn Fn(&mut MessageBuilder<'_>)| {
        let mut buf = Vec::new();
        let kind = MessageType::new(Method::BINDING, Class::Request);
        let mut b = MessageBuilder::new(&mut buf, kind, TransactionId([1; 12]));
        add(&mut b);
        buf
    };
    let aimed = binding(&|b| b.add(&Attribute::ResponsePort(9)).map(drop).unwrap());
    let changed = binding(&|b| {
        b.add(&Attribute::ChangeRequest {
            change_ip: true,
            change_port: false,
        })
        .map(drop)
        .unwrap()
    });
    let plain = binding(&|_| {});
    let victim = udp("192.0.2.10:5000");
    let count = |server: &mut Server, now: Instant, from: FiveTuple, bytes: &[u8], n: usize| {
        (0..n)
            .filter(|_| {
                let input = Input::Client {
                    from,
                    payload: bytes,
                };
                server.handle_input(now, input).is_some()
            })
            .count()
    };
    assert_eq!(count(&mut server, t0, victim, &aimed, 100), 20);
    assert_eq!(count(&mut server, t0, victim, &changed, 100), 0);
    assert_eq!(server.stats().discovery_dropped, 180);
    // Plain Bindings, and other sources, are still answered.
    assert_eq!(count(&mut server, t0, victim, &plain, 100), 100);
    assert_eq!(
        count(&mut server, t0, udp("192.0.2.11:5000"), &changed, 5),
        5
    );
    // The budget refills at 5 a second.
    let later = t0 + Duration::from_secs(2);
    assert_eq!(count(&mut server, later, victim, &aimed, 100), 10);
}
