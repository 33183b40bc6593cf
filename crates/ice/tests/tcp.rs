//! ICE-TCP (RFC 6544) over the simulated network: when UDP is blocked,
//! active candidates connect to passive ones and the call runs over TCP;
//! simultaneous-open candidates connect to each other; UDP is preferred
//! when both work.

mod sim;

use std::time::{Duration, Instant};

use edgeice_ice::{CandidateKind, TcpType};
use sim::{Peer, Sim, config};

fn peers(now: Instant) -> (Peer, Peer) {
    let a = Peer::new(config(true), now, &["192.0.2.1:5000"], None);
    let b = Peer::new(config(false), now, &["192.0.2.2:6000"], None);
    (a, b)
}

fn selected_tcp_types(sim: &Sim) -> Vec<Option<TcpType>> {
    (0..2)
        .map(|side| {
            sim.peers[side]
                .agent
                .selected_pair(1)
                .and_then(|p| p.local.tcp_type)
        })
        .collect()
}

fn carries_data(sim: &mut Sim) {
    assert!(sim.send_data(0, b"over tcp"));
    assert!(sim.send_data(1, b"and back"));
    sim.run(sim.now - sim.start + Duration::from_secs(1), |_| false);
    assert_eq!(
        sim.peers[1].received.last().map(Vec::as_slice),
        Some(&b"over tcp"[..])
    );
    assert_eq!(
        sim.peers[0].received.last().map(Vec::as_slice),
        Some(&b"and back"[..])
    );
}

#[test]
fn udp_blocked_connects_over_tcp() {
    let now = Instant::now();
    let (mut a, mut b) = peers(now);
    a.block_udp = true;
    b.block_udp = true;
    a.listen_tcp(now, "192.0.2.1:7000");
    b.listen_tcp(now, "192.0.2.2:8000");
    let mut sim = Sim::new(now, a, b);
    assert!(
        sim.run_until_connected(Duration::from_secs(30)),
        "{:#?}",
        sim.peers[0].events
    );
    let types = selected_tcp_types(&sim);
    assert!(types.iter().all(Option::is_some), "{types:?}");
    // One side's selected local candidate is the connection's active end
    // (peer-reflexive: its real port), the other's the passive listener.
    let pair = sim.peers[0].agent.selected_pair(1).unwrap();
    assert!(pair.remote.is_tcp() && pair.local.is_tcp());
    carries_data(&mut sim);
}

#[test]
fn udp_is_preferred_when_both_work() {
    let now = Instant::now();
    let (mut a, mut b) = peers(now);
    a.listen_tcp(now, "192.0.2.1:7000");
    b.listen_tcp(now, "192.0.2.2:8000");
    let mut sim = Sim::new(now, a, b);
    assert!(sim.run_until_connected(Duration::from_secs(10)));
    sim.run(Duration::from_secs(5), |_| false);
    assert_eq!(selected_tcp_types(&sim), [None, None]);
    let pair = sim.peers[0].agent.selected_pair(1).unwrap();
    assert_eq!(pair.local.kind, CandidateKind::Host);
}

#[test]
fn simultaneous_open_candidates_connect() {
    let now = Instant::now();
    let (mut a, mut b) = peers(now);
    a.block_udp = true;
    b.block_udp = true;
    a.simultaneous_open(now, "192.0.2.1:7100");
    b.simultaneous_open(now, "192.0.2.2:8100");
    let mut sim = Sim::new(now, a, b);
    assert!(
        sim.run_until_connected(Duration::from_secs(30)),
        "{:#?}",
        sim.peers[0].events
    );
    assert_eq!(
        selected_tcp_types(&sim),
        [
            Some(TcpType::SimultaneousOpen),
            Some(TcpType::SimultaneousOpen)
        ]
    );
    carries_data(&mut sim);
}

#[test]
fn refused_connections_fail_the_pairs() {
    let now = Instant::now();
    let (mut a, b) = peers(now);
    a.block_udp = true;
    a.listen_tcp(now, "192.0.2.1:7000");
    // B advertises nothing TCP: A's active candidate has no passive to
    // reach, and B never connects to A: everything fails.
    let mut sim = Sim::new(now, a, b);
    sim.run(Duration::from_secs(40), |sim| {
        sim.peers[0].agent.state() == edgeice_ice::State::Failed
    });
    assert_eq!(sim.peers[0].agent.state(), edgeice_ice::State::Failed);
}
