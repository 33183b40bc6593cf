//! How long two edgeice agents take to connect over loopback UDP: the
//! edgeice column of `bench/ice-connect/run.sh`.
//!
//! ```text
//! cargo run --release -p edgeice-ice --example loopback_connect -- ROUNDS [--turn ADDR USER PASS] [--stun ADDR]... [--trickle] [--ta MS] [--aggressive]
//! ```
//!
//! Prints one line per round, in milliseconds. Without `--trickle`: from
//! the moment both descriptions are complete (gathering done) and
//! exchanged, to both agents connected. With `--trickle`: from the agents'
//! creation, candidates passed on as they are gathered, to both connected
//! (what a dead STUN server could delay). `--turn`: relayed candidates
//! only, allocated on that TURN server. `--ta MS` paces checks every MS
//! instead of 20 ms; `--aggressive` nominates with every check (one
//! round trip instead of regular nomination's two).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use edgeice_ice::{
    Agent, AgentConfig, Candidate, Event, Nomination, ServerTransport, State, StunServer,
    TurnServer,
};

struct Options {
    rounds: usize,
    turn: Option<TurnServer>,
    stun: Vec<StunServer>,
    trickle: bool,
    ta: Duration,
    aggressive: bool,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        rounds: 20,
        turn: None,
        stun: Vec::new(),
        trickle: false,
        ta: AgentConfig::default().ta,
        aggressive: false,
    };
    let address = |s: Option<String>| -> Result<SocketAddr, String> {
        s.ok_or("missing address")?
            .parse()
            .map_err(|e| format!("{e}"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--turn" => {
                let address = address(args.next())?;
                options.turn = Some(TurnServer {
                    address,
                    url: format!("turn:{address}"),
                    transport: ServerTransport::Udp,
                    username: args.next().ok_or("--turn ADDR USER PASS")?,
                    password: args.next().ok_or("--turn ADDR USER PASS")?,
                });
            }
            "--stun" => {
                let address = address(args.next())?;
                options.stun.push(StunServer {
                    address,
                    url: format!("stun:{address}"),
                });
            }
            "--trickle" => options.trickle = true,
            "--aggressive" => options.aggressive = true,
            "--ta" => {
                let ms: u64 = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--ta MILLISECONDS")?;
                options.ta = Duration::from_millis(ms);
            }
            rounds => {
                options.rounds = rounds
                    .parse()
                    .map_err(|_| format!("unexpected {rounds:?}"))?
            }
        }
    }
    Ok(options)
}

fn connected(agent: &Agent) -> bool {
    matches!(agent.state(), State::Connected | State::Completed)
}

/// Runs both agents over their sockets until `done` or 15 s; passes
/// gathered candidates to the other side when `trickle`.
fn drive(
    agents: &mut [Agent; 2],
    sockets: &[UdpSocket; 2],
    trickle: bool,
    gathered: &mut [Vec<Candidate>; 2],
    complete: &mut [bool; 2],
    mut done: impl FnMut(&[Agent; 2], &[bool; 2]) -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    let addresses: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let mut buf = [0u8; 2048];
    while start.elapsed() < Duration::from_secs(15) {
        let now = Instant::now();
        for side in 0..2 {
            if agents[side].poll_timeout().is_some_and(|t| t <= now) {
                agents[side].handle_timeout(now);
            }
            while let Some(d) = agents[side].poll_transmit() {
                let _ = sockets[side].send_to(&d.payload, d.destination);
            }
            while let Ok((len, from)) = sockets[side].recv_from(&mut buf) {
                let _ = agents[side].handle_input(
                    Instant::now(),
                    edgeice_ice::Input::Datagram {
                        socket: addresses[side],
                        from,
                        payload: &buf[..len],
                    },
                );
            }
            while let Some(event) = agents[side].poll_event() {
                match event {
                    Event::CandidateGathered { candidate, .. } if trickle => {
                        agents[1 - side].add_remote_candidate(now, candidate);
                    }
                    Event::CandidateGathered { candidate, .. } => gathered[side].push(candidate),
                    Event::GatheringComplete => {
                        complete[side] = true;
                        if trickle {
                            agents[1 - side].end_of_remote_candidates();
                        }
                    }
                    _ => {}
                }
            }
        }
        if done(agents, complete) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Err("nothing within 15 s".into())
}

fn round(options: &Options) -> Result<Duration, String> {
    let sockets = [
        UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?,
        UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?,
    ];
    for socket in &sockets {
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    let start = Instant::now();
    let mut agents = [true, false].map(|controlling| {
        Agent::new(
            AgentConfig {
                controlling,
                stun_servers: options.stun.clone(),
                turn_servers: options.turn.clone().into_iter().collect(),
                relay_only: options.turn.is_some(),
                ta: options.ta,
                nomination: if options.aggressive {
                    Nomination::Aggressive
                } else {
                    Nomination::Regular
                },
                ..AgentConfig::default()
            },
            start,
        )
    });
    let credentials: Vec<(String, String)> = agents
        .iter()
        .map(|a| (a.local_ufrag().to_string(), a.local_password().to_string()))
        .collect();
    for (side, agent) in agents.iter_mut().enumerate() {
        agent.add_host_socket(
            start,
            1,
            sockets[side].local_addr().map_err(|e| e.to_string())?,
        );
    }
    let mut gathered: [Vec<Candidate>; 2] = [Vec::new(), Vec::new()];
    let mut complete = [false, false];
    if options.trickle {
        for (side, agent) in agents.iter_mut().enumerate() {
            let (ufrag, pwd) = &credentials[1 - side];
            agent.set_remote_credentials(start, ufrag, pwd, false);
        }
        drive(
            &mut agents,
            &sockets,
            true,
            &mut gathered,
            &mut complete,
            |a, _| a.iter().all(connected),
        )?;
        return Ok(start.elapsed());
    }
    drive(
        &mut agents,
        &sockets,
        false,
        &mut gathered,
        &mut complete,
        |_, c| c.iter().all(|x| *x),
    )?;
    let t0 = Instant::now();
    for (side, agent) in agents.iter_mut().enumerate() {
        let (ufrag, pwd) = &credentials[1 - side];
        agent.set_remote_credentials(t0, ufrag, pwd, false);
        for candidate in gathered[1 - side].clone() {
            agent.add_remote_candidate(t0, candidate);
        }
        agent.end_of_remote_candidates();
    }
    drive(
        &mut agents,
        &sockets,
        false,
        &mut gathered,
        &mut complete,
        |a, _| a.iter().all(connected),
    )?;
    let elapsed = t0.elapsed();
    for agent in &mut agents {
        agent.close(Instant::now());
    }
    for (side, agent) in agents.iter_mut().enumerate() {
        while let Some(d) = agent.poll_transmit() {
            let _ = sockets[side].send_to(&d.payload, d.destination);
        }
    }
    Ok(elapsed)
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("loopback_connect: {e}");
            std::process::exit(2);
        }
    };
    for _ in 0..options.rounds {
        match round(&options) {
            Ok(elapsed) => println!("{:.3}", elapsed.as_secs_f64() * 1e3),
            Err(e) => {
                eprintln!("loopback_connect: {e}");
                std::process::exit(1);
            }
        }
    }
}
