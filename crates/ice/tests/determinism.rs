//! The agent takes all its randomness from `AgentConfig::rng_seed`: a call
//! over the simulated network (NATs, a STUN and TURN server, loss) replays
//! byte for byte with the same seeds, and differs with others.

mod sim;

use std::time::{Duration, Instant};

use sim::{Nat, NatKind, Peer, SERVER, Sim, stun_server, turn_server};

/// One call, A behind a port-restricted NAT and B behind a symmetric one
/// (so relayed, reflexive and peer-reflexive candidates all appear), with
/// some loss; then data both ways and consent checks for a while. The
/// trace of everything delivered and every event.
fn run(seeds: [[u8; 32]; 2]) -> Vec<u8> {
    let now = Instant::now();
    let config = |controlling: bool, seed: [u8; 32]| {
        let mut config = sim::config(controlling);
        config.stun_servers.push(stun_server(SERVER));
        config.turn_servers.push(turn_server());
        config.rng_seed = Some(seed);
        config
    };
    let a = Peer::new(
        config(true, seeds[0]),
        now,
        &["10.0.1.2:5000"],
        Some(Nat::new(NatKind::PortRestricted, "203.0.113.1", "10.0.1.0")),
    );
    let b = Peer::new(
        config(false, seeds[1]),
        now,
        &["10.0.2.2:6000"],
        Some(Nat::new(NatKind::Symmetric, "203.0.113.2", "10.0.2.0")),
    );
    let mut sim = Sim::new(now, a, b);
    sim.loss_one_in = 17;
    assert!(sim.run_until_connected(Duration::from_secs(30)));
    sim.send_data(0, b"there");
    sim.send_data(1, b"back");
    // Past a few consent checks, whose jitter is random too.
    sim.run(sim.now - sim.start + Duration::from_secs(20), |_| false);
    sim.trace
}

#[test]
fn the_same_seeds_replay_the_same_call_byte_for_byte() {
    let seeds = [[1; 32], [2; 32]];
    let first = run(seeds);
    // To compare runs across a change: `SIM_TRACE_OUT=before.trace`, then
    // `cmp` with the trace written after it.
    if let Some(path) = std::env::var_os("SIM_TRACE_OUT") {
        std::fs::write(path, &first).unwrap();
    }
    let second = run(seeds);
    assert!(first.len() > 10_000, "a trace of {} bytes", first.len());
    assert!(first == second, "two runs with the same seeds differ");
    assert!(
        run([[3; 32], [2; 32]]) != first,
        "another seed, the same run"
    );
}
