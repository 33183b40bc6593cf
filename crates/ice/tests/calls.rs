//! Whole calls between two agents over the simulated network of `sim`.

mod sim;

use std::time::{Duration, Instant};

use edgeice_ice::{CandidateKind, Event, Nomination, State};
use sim::{Peer, Sim, config};

fn selected_kinds(peer: &Peer) -> Option<(CandidateKind, CandidateKind)> {
    peer.agent
        .selected_pair(1)
        .map(|p| (p.local.kind, p.remote.kind))
}

#[test]
fn host_to_host_connects_and_carries_data() {
    let now = Instant::now();
    let a = Peer::new(config(true), now, &["192.0.2.1:5000"], None);
    let b = Peer::new(config(false), now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    assert!(sim.run_until_connected(Duration::from_secs(5)));
    assert_eq!(
        selected_kinds(&sim.peers[0]),
        Some((CandidateKind::Host, CandidateKind::Host))
    );
    assert!(sim.send_data(0, b"ping"));
    assert!(sim.send_data(1, b"pong"));
    sim.run(Duration::from_secs(6), |_| false);
    assert_eq!(sim.peers[1].received, vec![b"ping".to_vec()]);
    assert_eq!(sim.peers[0].received, vec![b"pong".to_vec()]);
}

#[test]
fn aggressive_nomination_connects() {
    let now = Instant::now();
    let mut controlling = config(true);
    controlling.nomination = Nomination::Aggressive;
    let a = Peer::new(controlling, now, &["192.0.2.1:5000"], None);
    let b = Peer::new(config(false), now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    assert!(sim.run_until_connected(Duration::from_secs(5)));
}

#[test]
fn role_conflict_is_resolved() {
    let now = Instant::now();
    let a = Peer::new(config(true), now, &["192.0.2.1:5000"], None);
    let b = Peer::new(config(true), now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    assert!(sim.run_until_connected(Duration::from_secs(10)));
    assert_ne!(
        sim.peers[0].agent.is_controlling(),
        sim.peers[1].agent.is_controlling()
    );
    let conflicts = sim
        .peers
        .iter()
        .flat_map(|p| &p.events)
        .filter(|(_, e)| matches!(e, Event::RoleChanged { .. }))
        .count();
    assert_eq!(conflicts, 1, "exactly one side yields");
}

#[test]
fn survives_packet_loss() {
    let now = Instant::now();
    let a = Peer::new(config(true), now, &["192.0.2.1:5000"], None);
    let b = Peer::new(config(false), now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    sim.loss_one_in = 3;
    assert!(sim.run_until_connected(Duration::from_secs(20)));
}

#[test]
fn unreachable_peer_fails_within_bounded_time() {
    let now = Instant::now();
    let mut a = Peer::new(config(true), now, &["192.0.2.1:5000"], None);
    a.block_udp = true;
    let b = Peer::new(config(false), now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    sim.run(Duration::from_secs(30), |sim| {
        sim.peers[0].agent.state() == State::Failed
    });
    assert_eq!(sim.peers[0].agent.state(), State::Failed);
    assert!(sim.now - sim.start < Duration::from_secs(15));
}

#[test]
fn consent_loss_disconnects_then_fails() {
    let now = Instant::now();
    let a = Peer::new(config(true), now, &["192.0.2.1:5000"], None);
    let b = Peer::new(config(false), now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    assert!(sim.run_until_connected(Duration::from_secs(5)));
    sim.cut = true;
    sim.run(Duration::from_secs(60), |sim| {
        sim.peers[0].agent.state() == State::Failed
    });
    let states = sim.peers[0].state_changes();
    assert!(states.contains(&State::Disconnected), "{states:?}");
    assert_eq!(states.last(), Some(&State::Failed));
}

#[test]
fn a_better_pair_found_later_is_promoted() {
    let now = Instant::now();
    // A's second interface comes up after the call connected: its pair has
    // a higher priority (its local preference is the same family's first...
    // so give the late one the better type instead: A starts behind a path
    // that only a lower-priority pair takes).
    let a = Peer::new(config(true), now, &["192.0.2.1:5000"], None);
    let b = Peer::new(config(false), now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    assert!(sim.run_until_connected(Duration::from_secs(5)));
    let first = sim.peers[0].agent.selected_pair(1).unwrap();
    // An IPv6 path appears: RFC 8421 prefers IPv6, so it ranks higher.
    let t = sim.now;
    sim.peers[0]
        .sockets
        .push("[2001:db8::1]:5000".parse().unwrap());
    sim.peers[0]
        .agent
        .add_host_socket(t, 1, "[2001:db8::1]:5000".parse().unwrap());
    sim.peers[1]
        .sockets
        .push("[2001:db8::2]:6000".parse().unwrap());
    sim.peers[1]
        .agent
        .add_host_socket(t, 1, "[2001:db8::2]:6000".parse().unwrap());
    sim.run(Duration::from_secs(15), |sim| {
        sim.peers[0]
            .agent
            .selected_pair(1)
            .is_some_and(|p| p.local.address.is_ipv6())
            && sim.peers[1]
                .agent
                .selected_pair(1)
                .is_some_and(|p| p.local.address.is_ipv6())
    });
    let promotions: Vec<_> = sim.peers[0]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Promoted { from, to, .. } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(promotions.len(), 1, "{promotions:?}");
    assert_eq!(promotions[0].0, first);
    assert!(promotions[0].1.local.address.is_ipv6());
    assert!(
        sim.peers[1]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Promoted { .. }))
    );
}
