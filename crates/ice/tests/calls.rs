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
fn the_nominating_check_does_not_wait_for_a_pacing_slot() {
    // With Ta far longer than the call's round trips, a selection before
    // the first Ta is over shows that regular nomination's USE-CANDIDATE
    // check followed the first success at once (docs/ice.md).
    let now = Instant::now();
    let ta = Duration::from_secs(2);
    let paced = |controlling| {
        let mut config = config(controlling);
        config.ta = ta;
        config
    };
    let a = Peer::new(paced(true), now, &["192.0.2.1:5000"], None);
    let b = Peer::new(paced(false), now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    assert!(sim.run_until_connected(Duration::from_secs(10)));
    for peer in &sim.peers {
        let selected = peer
            .events
            .iter()
            .find(|(_, e)| matches!(e, Event::Selected { .. }))
            .map(|(at, _)| *at);
        assert!(selected.is_some_and(|at| at < ta), "{:?}", peer.events);
    }
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

#[test]
fn a_full_agent_connects_to_a_lite_one() {
    let now = Instant::now();
    let a = Peer::new(config(true), now, &["192.0.2.1:5000"], None);
    let mut lite = config(true);
    lite.lite = true;
    let b = Peer::new(lite, now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    // The lite side says so in its description.
    let (ufrag, pwd) = (
        sim.peers[1].agent.local_ufrag().to_string(),
        sim.peers[1].agent.local_password().to_string(),
    );
    sim.peers[0]
        .agent
        .set_remote_credentials(now, &ufrag, &pwd, true);
    assert!(sim.run_until_connected(Duration::from_secs(5)));
    assert!(sim.peers[0].agent.is_controlling());
    assert!(
        !sim.peers[1].agent.is_controlling(),
        "a lite agent is controlled"
    );
    let checks_from_lite = sim.peers[1]
        .events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                Event::Check {
                    state: edgeice_ice::CheckState::InProgress,
                    ..
                }
            )
        })
        .count();
    assert_eq!(checks_from_lite, 0, "a lite agent sends no checks");
    assert!(sim.send_data(0, b"to lite"));
    assert!(sim.send_data(1, b"from lite"));
    sim.run(Duration::from_secs(6), |_| false);
    assert_eq!(sim.peers[1].received, vec![b"to lite".to_vec()]);
    assert_eq!(sim.peers[0].received, vec![b"from lite".to_vec()]);
}

#[test]
fn an_ice_restart_connects_again_with_new_credentials() {
    let now = Instant::now();
    let a = Peer::new(config(true), now, &["192.0.2.1:5000"], None);
    let b = Peer::new(config(false), now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    assert!(sim.run_until_connected(Duration::from_secs(5)));
    let old = sim.peers[0].agent.local_ufrag().to_string();
    let t = sim.now;
    // Both sides restart (a new offer and answer), then signal again.
    let creds: Vec<(String, String)> = (0..2)
        .map(|side| {
            let (u, p) = sim.peers[side].agent.restart(t);
            (u.to_string(), p.to_string())
        })
        .collect();
    assert_ne!(creds[0].0, old);
    for side in 0..2 {
        let (u, p) = &creds[1 - side];
        sim.peers[side].agent.set_remote_credentials(t, u, p, false);
        for candidate in sim.peers[1 - side].agent.local_candidates() {
            sim.peers[side].agent.add_remote_candidate(t, candidate);
        }
        sim.peers[side].agent.end_of_remote_candidates();
    }
    assert_eq!(sim.peers[0].agent.selected_pair(1), None);
    assert!(sim.run_until_connected(Duration::from_secs(10)));
    assert!(sim.send_data(0, b"after restart"));
    sim.run(sim.now - sim.start + Duration::from_secs(1), |_| false);
    assert_eq!(
        sim.peers[1].received.last().map(Vec::as_slice),
        Some(&b"after restart"[..])
    );
}

#[test]
fn two_controlled_agents_resolve_the_conflict() {
    let now = Instant::now();
    let a = Peer::new(config(false), now, &["192.0.2.1:5000"], None);
    let b = Peer::new(config(false), now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    assert!(sim.run_until_connected(Duration::from_secs(10)));
    assert_ne!(
        sim.peers[0].agent.is_controlling(),
        sim.peers[1].agent.is_controlling()
    );
}
