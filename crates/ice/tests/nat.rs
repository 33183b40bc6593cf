//! Calls across simulated NATs of the four classic kinds, with edgeice's
//! own STUN/TURN server core on the simulated internet: server-reflexive
//! candidates get through cone NATs, only relays get through symmetric
//! ones, and a dead STUN server delays nothing.

mod sim;

use std::time::Duration;

use edgeice_ice::{AgentConfig, CandidateKind, Event, State};
use sim::{DEAD_SERVER, Nat, NatKind, Peer, SERVER, Sim, stun_server, turn_server};

fn config(controlling: bool, stun: bool, turn: bool) -> AgentConfig {
    let mut config = sim::config(controlling);
    if stun {
        config.stun_servers.push(stun_server(SERVER));
    }
    if turn {
        config.turn_servers.push(turn_server());
    }
    config
}

/// A behind `a_nat`, B behind `b_nat`, each in its own private network.
fn call(a_nat: NatKind, b_nat: NatKind, stun: bool, turn: bool) -> Sim {
    let now = std::time::Instant::now();
    let a = Peer::new(
        config(true, stun, turn),
        now,
        &["10.0.1.2:5000"],
        Some(Nat::new(a_nat, "203.0.113.1", "10.0.1.0")),
    );
    let b = Peer::new(
        config(false, stun, turn),
        now,
        &["10.0.2.2:6000"],
        Some(Nat::new(b_nat, "203.0.113.2", "10.0.2.0")),
    );
    Sim::new(now, a, b)
}

fn selected_local_kind(sim: &Sim, side: usize) -> Option<CandidateKind> {
    sim.peers[side].agent.selected_pair(1).map(|p| p.local.kind)
}

fn carries_data(sim: &mut Sim) {
    assert!(sim.send_data(0, b"through"));
    assert!(sim.send_data(1, b"back"));
    sim.run(sim.now - sim.start + Duration::from_secs(1), |_| false);
    assert_eq!(
        sim.peers[1].received.last().map(Vec::as_slice),
        Some(&b"through"[..])
    );
    assert_eq!(
        sim.peers[0].received.last().map(Vec::as_slice),
        Some(&b"back"[..])
    );
}

#[test]
fn cone_nats_connect_through_server_reflexive_candidates() {
    for kind in [
        NatKind::FullCone,
        NatKind::AddressRestricted,
        NatKind::PortRestricted,
    ] {
        let mut sim = call(kind, kind, true, false);
        assert!(sim.run_until_connected(Duration::from_secs(15)), "{kind:?}");
        let local = selected_local_kind(&sim, 0);
        assert!(
            matches!(
                local,
                Some(CandidateKind::ServerReflexive | CandidateKind::PeerReflexive)
            ),
            "{kind:?}: {local:?}"
        );
        carries_data(&mut sim);
    }
}

#[test]
fn symmetric_nats_defeat_stun_alone() {
    let mut sim = call(NatKind::Symmetric, NatKind::Symmetric, true, false);
    sim.run(Duration::from_secs(40), |sim| {
        sim.peers[0].agent.state() == State::Failed
    });
    assert_eq!(sim.peers[0].agent.state(), State::Failed);
}

#[test]
fn symmetric_nats_connect_through_the_relay() {
    let mut sim = call(NatKind::Symmetric, NatKind::Symmetric, true, true);
    assert!(sim.run_until_connected(Duration::from_secs(20)));
    assert!(
        [0, 1]
            .iter()
            .any(|&side| selected_local_kind(&sim, side) == Some(CandidateKind::Relayed)),
        "{:?}",
        sim.peers[0].agent.selected_pair(1)
    );
    carries_data(&mut sim);
}

#[test]
fn relay_only_uses_relayed_candidates() {
    let now = std::time::Instant::now();
    let mut relay_only = config(true, false, true);
    relay_only.relay_only = true;
    let a = Peer::new(relay_only, now, &["192.0.2.1:5000"], None);
    let mut other = config(false, false, true);
    other.relay_only = true;
    let b = Peer::new(other, now, &["192.0.2.2:6000"], None);
    let mut sim = Sim::new(now, a, b);
    let ok = sim.run_until_connected(Duration::from_secs(20));
    assert!(ok, "{:#?}", sim.peers[0].events);
    let gathered: Vec<CandidateKind> = sim.peers[0]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CandidateGathered { candidate, .. } => Some(candidate.kind),
            _ => None,
        })
        .collect();
    assert_eq!(gathered, [CandidateKind::Relayed]);
    let pair = sim.peers[0].agent.selected_pair(1).unwrap();
    assert_eq!(
        (pair.local.kind, pair.remote.kind),
        (CandidateKind::Relayed, CandidateKind::Relayed)
    );
    carries_data(&mut sim);
}

#[test]
fn a_dead_stun_server_delays_nothing_but_its_own_answer() {
    let connect_time = |dead: bool| {
        let mut sim = call(
            NatKind::PortRestricted,
            NatKind::PortRestricted,
            true,
            false,
        );
        if dead {
            // Rebuild A with the dead server listed first.
            let now = sim.start;
            let mut with_dead = config(true, false, false);
            with_dead.stun_servers = vec![stun_server(DEAD_SERVER), stun_server(SERVER)];
            let a = Peer::new(
                with_dead,
                now,
                &["10.0.1.2:5000"],
                Some(Nat::new(NatKind::PortRestricted, "203.0.113.1", "10.0.1.0")),
            );
            let b = Peer::new(
                config(false, true, false),
                now,
                &["10.0.2.2:6000"],
                Some(Nat::new(NatKind::PortRestricted, "203.0.113.2", "10.0.2.0")),
            );
            sim = Sim::new(now, a, b);
        }
        assert!(
            sim.run_until_connected(Duration::from_secs(20)),
            "dead server listed: {dead}"
        );
        let connected = sim.now - sim.start;
        sim.run(Duration::from_secs(30), |_| false);
        let failures: Vec<_> = sim.peers[0]
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::GatheringFailed { server, code, .. } => Some((server.clone(), *code)),
                _ => None,
            })
            .collect();
        (connected, failures)
    };
    let (without, no_failures) = connect_time(false);
    let (with, failures) = connect_time(true);
    assert!(no_failures.is_empty());
    assert_eq!(failures, [(format!("stun:{DEAD_SERVER}"), None)]);
    assert_eq!(with, without, "the dead server must not delay the call");
}
