//! How long two edgeice agents take to connect over loopback UDP once both
//! descriptions are known: the edgeice column of `bench/ice-connect/run.sh`.
//!
//! `cargo run --release -p edgeice-ice --example loopback_connect -- ROUNDS`
//! prints one line per round: milliseconds from the exchange of
//! descriptions to both agents connected.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use edgeice_ice::{Agent, AgentConfig, Event, State};

fn connected(agent: &Agent) -> bool {
    matches!(agent.state(), State::Connected | State::Completed)
}

fn round() -> Result<Duration, String> {
    let sockets = [
        UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?,
        UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?,
    ];
    let start = Instant::now();
    let mut agents = [true, false].map(|controlling| {
        Agent::new(
            AgentConfig {
                controlling,
                ..AgentConfig::default()
            },
            start,
        )
    });
    let addresses: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    for (agent, address) in agents.iter_mut().zip(&addresses) {
        agent.add_host_socket(start, 1, *address);
    }
    // Gathering (host only) is done: exchange the descriptions, start the clock.
    let mut gathered: [Vec<_>; 2] = [Vec::new(), Vec::new()];
    for (side, agent) in agents.iter_mut().enumerate() {
        while let Some(event) = agent.poll_event() {
            if let Event::CandidateGathered { candidate, .. } = event {
                gathered[side].push(candidate);
            }
        }
    }
    let t0 = Instant::now();
    let credentials: Vec<(String, String)> = agents
        .iter()
        .map(|a| (a.local_ufrag().to_string(), a.local_password().to_string()))
        .collect();
    for (side, agent) in agents.iter_mut().enumerate() {
        let (ufrag, pwd) = &credentials[1 - side];
        agent.set_remote_credentials(t0, ufrag, pwd, false);
        for candidate in gathered[1 - side].clone() {
            agent.add_remote_candidate(t0, candidate);
        }
        agent.end_of_remote_candidates();
    }
    for socket in &sockets {
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    let mut buf = [0u8; 2048];
    while t0.elapsed() < Duration::from_secs(10) {
        let now = Instant::now();
        for side in 0..2 {
            if agents[side].poll_timeout().is_some_and(|t| t <= now) {
                agents[side].handle_timeout(now);
            }
            while let Some(d) = agents[side].poll_transmit() {
                let _ = sockets[side].send_to(&d.payload, d.destination);
            }
            while let Ok((len, from)) = sockets[side].recv_from(&mut buf) {
                let _ =
                    agents[side].handle_input(Instant::now(), addresses[side], from, &buf[..len]);
            }
            while agents[side].poll_event().is_some() {}
        }
        if agents.iter().all(connected) {
            return Ok(t0.elapsed());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Err("no connection within 10 s".into())
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    for _ in 0..rounds {
        match round() {
            Ok(elapsed) => println!("{:.3}", elapsed.as_secs_f64() * 1e3),
            Err(e) => {
                eprintln!("loopback_connect: {e}");
                std::process::exit(1);
            }
        }
    }
}
