//! `edgeice call`: a call between two machines whose four phases you can
//! watch. The ICE agent is `edgeice_ice::Agent`; this module owns the UDP
//! sockets, the clock, the signalling files and the terminal.

mod media;
mod net;
mod signalling;
mod timeline;
mod tls;

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use edgeice_ice::sdp::{
    DescriptionReader, END_OF_CANDIDATES, RemoteLine, candidate_line, description_header,
    remote_candidates_line,
};
use edgeice_ice::{
    Agent, AgentConfig, Dialect, Event, Input, Nomination, Output, ServerTransport, State,
    StunServer, TcpCommand, TurnServer,
};
use serde_json::json;

use crate::server_url::{Scheme, ServerUrl, UrlTransport};
use edgeice_candidate::AddressClass;
use media::{BYE, Probes};
use net::{Incoming, Net};
use timeline::Timeline;

/// `edgeice call` arguments.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// Where to write this side's description (`-`: stdout).
    #[arg(long)]
    local: String,
    /// Where to read the other side's description from, as it grows (`-`: stdin).
    #[arg(long)]
    remote: String,
    /// Be the controlling agent (the offerer); the other side must not be.
    #[arg(long)]
    controlling: bool,
    /// A STUN server for server-reflexive candidates (`stun:HOST[:PORT]`); repeatable.
    #[arg(long = "stun", value_name = "URL")]
    stun: Vec<String>,
    /// A TURN server for relayed candidates (`turn:HOST[:PORT][?transport=udp]`); repeatable.
    #[arg(long = "turn", value_name = "URL")]
    turn: Vec<String>,
    /// PEM certificates to trust for `turns:` servers (default: the
    /// system's roots).
    #[arg(long, value_name = "PEM")]
    turn_ca: Option<std::path::PathBuf>,
    /// TURN user name.
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// TURN password.
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// Offer relayed candidates only.
    #[arg(long, requires = "turn")]
    relay_only: bool,
    /// Components: 1 (RTP and RTCP multiplexed) or 2.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=2))]
    components: u16,
    /// Local addresses to gather host candidates on (default: every
    /// interface's, loopback only when there is nothing else); repeatable.
    #[arg(long = "host-ip", value_name = "IP")]
    host_ip: Vec<IpAddr>,
    /// Also gather ICE-TCP candidates (RFC 6544): a passive one on a TCP
    /// listener and an active one, per address and component; and a TCP
    /// relay (RFC 6062) on `--turn` servers reached over TCP or TLS.
    #[arg(long)]
    tcp: bool,
    /// Gather ICE-TCP candidates only (no UDP): to see whether a call gets
    /// through where UDP is blocked. With `--turn` over TCP or TLS, a TCP
    /// relay (RFC 6062) is allocated too.
    #[arg(long, conflicts_with = "stun")]
    tcp_only: bool,
    /// Nominate aggressively (every check carries USE-CANDIDATE).
    #[arg(long)]
    aggressive: bool,
    /// The ICE dialect on the wire: `rfc8445`, or `ms-ice2` for Microsoft's
    /// (Lync/Skype for Business clients, libnice's OC2007R2 mode):
    /// unpadded checks with IMPLEMENTATION-VERSION 2, RFC 3489-style
    /// MESSAGE-INTEGRITY, Microsoft's priorities, 4- and 22-character
    /// credentials.
    #[arg(long, value_enum, default_value_t = CallDialect::Rfc8445)]
    dialect: CallDialect,
    /// Once connected, send back every datagram that arrives.
    #[arg(long, conflicts_with = "send")]
    echo: bool,
    /// Once connected, send N probes and report their round trips.
    #[arg(long, value_name = "N")]
    send: Option<u32>,
    /// Also write the timeline as JSON lines (`edgeice analyze` reads them).
    #[arg(long, value_name = "PATH")]
    trace: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
}

/// `--dialect`: the agent's wire dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CallDialect {
    /// RFC 8445 (and RFC 5245 peers).
    Rfc8445,
    /// Microsoft's MS-ICE2.
    MsIce2,
}

impl From<CallDialect> for Dialect {
    fn from(dialect: CallDialect) -> Dialect {
        match dialect {
            CallDialect::Rfc8445 => Dialect::Rfc8445,
            CallDialect::MsIce2 => Dialect::MsIce2,
        }
    }
}

/// How long a call without `--echo` or `--send` stays after connecting.
const LINGER: Duration = Duration::from_secs(2);

/// How a call ended, for the exit status.
enum Outcome {
    Connected,
    Failed,
}

/// Runs the call; exit 0 when connected (and the probes came back), 1
/// when ICE failed or timed out, 2 for bad usage or configuration.
pub fn run(args: CallArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("edgeice call: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match agent_config(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("edgeice call: {e:#}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(call(args, config));
    // A task may still be blocked reading stdin (`--remote -`): do not wait
    // for it.
    runtime.shutdown_background();
    match outcome {
        Ok(Outcome::Connected) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("edgeice call: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn agent_config(args: &CallArgs) -> Result<AgentConfig> {
    let mut config = AgentConfig {
        controlling: args.controlling,
        components: args.components,
        relay_only: args.relay_only,
        // With ICE-TCP, TURN servers reached over TCP or TLS also give TCP
        // relays (RFC 6062): passive relayed ICE-TCP candidates.
        tcp_relays: args.tcp || args.tcp_only,
        dialect: args.dialect.into(),
        nomination: if args.aggressive {
            Nomination::Aggressive
        } else {
            Nomination::Regular
        },
        ..AgentConfig::default()
    };
    for url in &args.stun {
        let parsed = ServerUrl::parse(url).map_err(anyhow::Error::msg)?;
        if parsed.scheme != Scheme::Stun {
            bail!("--stun {url}: only stun: URLs over UDP are supported");
        }
        config.stun_servers.push(StunServer {
            address: parsed.resolve().map_err(anyhow::Error::msg)?,
            url: parsed.to_string(),
        });
    }
    for url in &args.turn {
        let parsed = ServerUrl::parse(url).map_err(anyhow::Error::msg)?;
        if !matches!(parsed.scheme, Scheme::Turn | Scheme::Turns) {
            bail!("--turn {url}: a turn: or turns: URL is needed");
        }
        let (Some(username), Some(password)) = (&args.user, &args.password) else {
            bail!("--turn needs --user and --password");
        };
        config.turn_servers.push(TurnServer {
            address: parsed.resolve().map_err(anyhow::Error::msg)?,
            url: parsed.to_string(),
            transport: match (parsed.scheme, parsed.transport) {
                (Scheme::Turns, _) => ServerTransport::Tls,
                (_, UrlTransport::Udp) => ServerTransport::Udp,
                (_, UrlTransport::Tcp) => ServerTransport::Tcp,
            },
            username: username.clone(),
            password: password.clone(),
        });
    }
    Ok(config)
}

/// The addresses to bind host sockets on.
fn host_ips(args: &CallArgs) -> Result<Vec<IpAddr>> {
    if !args.host_ip.is_empty() {
        return Ok(args.host_ip.clone());
    }
    let interfaces = if_addrs::get_if_addrs().context("cannot list the network interfaces")?;
    // Link-local addresses need a scope id a candidate line cannot carry.
    let usable = |ip: &IpAddr| {
        !matches!(
            AddressClass::of(*ip),
            AddressClass::LinkLocal | AddressClass::Unusable
        )
    };
    let mut ips: Vec<IpAddr> = interfaces
        .iter()
        .map(|i| i.ip())
        .filter(|ip| usable(ip) && !ip.is_loopback())
        .collect();
    if ips.is_empty() {
        ips = interfaces
            .iter()
            .map(|i| i.ip())
            .filter(|ip| ip.is_loopback())
            .collect();
    }
    if ips.is_empty() {
        bail!("no usable network interface address; name one with --host-ip");
    }
    Ok(ips)
}

async fn call(args: CallArgs, config: AgentConfig) -> Result<Outcome> {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, args.local == "-", args.trace.as_deref())?;
    let mut agent = Agent::new(config, start);
    let role = if args.controlling {
        "controlling"
    } else {
        "controlled"
    };
    timeline.record(
        "start",
        json!({
            "tool": concat!("edgeice ", env!("CARGO_PKG_VERSION")),
            "role": role,
            "local_ufrag": agent.local_ufrag(),
            "components": args.components,
            "dialect": match args.dialect {
                CallDialect::Rfc8445 => "rfc8445",
                CallDialect::MsIce2 => "ms-ice2",
            },
        }),
    );
    let mut local = signalling::LocalDescription::open(&args.local)?;
    local.append(&description_header(
        agent.local_ufrag(),
        agent.local_password(),
        args.components,
        false,
    ))?;

    // One socket per address and component; a task per socket reads it.
    let (mut net, mut incoming) = Net::new();
    let tls_servers: Vec<(std::net::SocketAddr, String)> = args
        .turn
        .iter()
        .filter_map(|url| ServerUrl::parse(url).ok())
        .filter(|url| url.scheme == Scheme::Turns)
        .filter_map(|url| {
            url.resolve()
                .ok()
                .map(|address| (address, url.host.clone()))
        })
        .collect();
    if !tls_servers.is_empty() {
        net.set_tls(tls::setup(args.turn_ca.as_deref(), &tls_servers)?);
    }
    for ip in host_ips(&args)? {
        for component in 1..=args.components {
            if !args.tcp_only {
                let address = net.bind(ip).await?;
                agent.add_host_socket(Instant::now(), component, address);
            }
            if args.tcp || args.tcp_only {
                let listener = net.listen_tcp(ip).await?;
                agent.add_tcp_listener(Instant::now(), component, listener);
            }
        }
    }

    let mut remote_lines = signalling::read_remote(args.remote.clone());
    let mut reader = DescriptionReader::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let mut probes = args.send.map(Probes::new);
    let mut next_probe = Instant::now();
    let mut last_probe_sent: Option<Instant> = None;
    let mut connected_once = false;
    let mut connected_at: Option<Instant> = None;
    let mut remote_open = true;
    let outcome = loop {
        // Drain what the agent has (str0m's rule: one input, then every
        // output up to the next timeout): open and close what it asks,
        // send, show, and answer what arrived on ICE-TCP connections.
        let mut finished = None;
        let mut arrived: Vec<(u16, Vec<u8>)> = Vec::new();
        while let Some(output) = agent.poll_output() {
            let event = match output {
                Output::Tcp(TcpCommand::Connect {
                    id,
                    local,
                    remote,
                    tls,
                }) => {
                    net.connect(id, local, remote, tls);
                    continue;
                }
                Output::Tcp(TcpCommand::Close { id }) => {
                    net.close(id);
                    continue;
                }
                Output::Transmit(d) => {
                    net.send(d.source, d.route, d.destination, &d.payload).await;
                    continue;
                }
                Output::Received {
                    component, data, ..
                } => {
                    arrived.push((component, data));
                    continue;
                }
                Output::Timeout { .. } => break,
                Output::Event(event) => event,
            };
            timeline.event(&event);
            match &event {
                Event::CandidateGathered { candidate, .. } => {
                    local.trickle(&format!("{}\n", candidate_line(candidate)));
                }
                Event::GatheringComplete => local.trickle(&format!("{END_OF_CANDIDATES}\n")),
                // The controlling side tells which remote candidates it
                // selected (RFC 8839 §5.2), as its next offer would.
                Event::Selected { .. } | Event::Promoted { .. } if agent.is_controlling() => {
                    let selected: Option<Vec<_>> = (1..=agent.components())
                        .map(|c| agent.selected_pair(c).map(|p| p.remote))
                        .collect();
                    if let Some(remotes) = selected {
                        local.trickle(&format!("{}\n", remote_candidates_line(&remotes)));
                    }
                }
                Event::StateChanged { state, .. } => match state {
                    State::Connected | State::Completed => connected_once = true,
                    State::Failed => finished = Some(Outcome::Failed),
                    // An echo peer stops when the sender went away.
                    State::Disconnected if args.echo && connected_once => {
                        finished = Some(Outcome::Connected)
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        if let Some(outcome) = finished {
            break outcome;
        }
        if take_arrivals(&mut agent, &mut net, &args, &mut probes, &arrived).await {
            timeline.say("data", "the other side said bye");
            break Outcome::Connected;
        }
        let now = Instant::now();
        let connected = matches!(agent.state(), State::Connected | State::Completed);
        // Without data to exchange, stay a moment after connecting: the
        // other side may still be waiting for answers to its own checks.
        if connected && !args.echo && probes.is_none() {
            let since = *connected_at.get_or_insert(now);
            if now >= since + LINGER {
                break Outcome::Connected;
            }
        }
        if connected && let Some(probes) = &mut probes {
            if now >= next_probe
                && let Some(probe) = probes.next(now)
            {
                send_data(&mut agent, &mut net, now, &probe).await;
                next_probe = now + Duration::from_millis(10);
                last_probe_sent = Some(now);
            }
            let drained = last_probe_sent.is_some_and(|t| now >= t + Duration::from_secs(2));
            if probes.all_back() || (probes.all_sent() && drained) {
                send_data(&mut agent, &mut net, now, BYE).await;
                break Outcome::Connected;
            }
        }

        let wake = agent
            .poll_timeout()
            .map(|t| tokio::time::Instant::from_std(t.max(now)))
            .unwrap_or(deadline)
            .min(deadline);
        let wake = match connected_at {
            Some(t) => wake.min(tokio::time::Instant::from_std(t + LINGER)),
            None => wake,
        };
        let wake = match &probes {
            Some(p) if connected && !p.all_sent() => {
                wake.min(tokio::time::Instant::from_std(next_probe.max(now)))
            }
            Some(_) if connected => {
                wake.min(tokio::time::Instant::now() + Duration::from_millis(100))
            }
            _ => wake,
        };
        tokio::select! {
            Some(incoming) = incoming.recv() => {
                let now = Instant::now();
                // Connections are adopted first: what the agent sends on
                // them goes out. An accepted one is named by the agent.
                let mut incoming = incoming;
                match &mut incoming {
                    Incoming::Accepted { listener, remote, .. } => {
                        let id = agent.tcp_accepted(now, *listener, *remote);
                        if let (Some(id), Incoming::Accepted { stream, .. }) = (id, incoming) {
                            let _ = stream.set_nodelay(true);
                            net.adopt(id, Box::new(stream));
                        }
                        continue;
                    }
                    Incoming::Connected { id, stream } => {
                        if let Some(stream) = stream.take() {
                            net.adopt(*id, stream);
                        }
                    }
                    Incoming::Closed { id } => net.close(*id),
                    _ => {}
                }
                let Some(input) = incoming.as_input() else { continue };
                let received = agent
                    .handle_input(now, input)
                    .map(|r| (r.component, r.data.to_vec()));
                if take_arrivals(&mut agent, &mut net, &args, &mut probes, received.as_slice()).await {
                    timeline.say("data", "the other side said bye");
                    break Outcome::Connected;
                }
            }
            line = remote_lines.recv(), if remote_open => {
                match line {
                    Some(Ok(line)) => read_remote_line(&mut agent, &mut reader, &mut timeline, &line)?,
                    Some(Err(e)) => return Err(e).context("cannot read the remote description"),
                    None => remote_open = false,
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if tokio::time::Instant::now() >= deadline {
                    let state = agent.state();
                    timeline.say("state", &format!("timeout after {} s in state {}", args.timeout, state.as_str()));
                    timeline.record("state", json!({"state": "failed", "reason": format!("timeout after {} s", args.timeout)}));
                    break if args.echo && connected_once { Outcome::Connected } else { Outcome::Failed };
                }
                let now = Instant::now();
                if let Some((due, timer)) = agent.next_timer().filter(|(due, _)| *due <= now) {
                    timeline.timer(due, timer);
                }
                agent.handle_input(now, Input::Timeout);
            }
        }
    };
    agent.close(Instant::now());
    // What closing releases (TURN allocations) goes out; nothing else
    // is read any more.
    while let Some(output) = agent.poll_output() {
        match output {
            Output::Transmit(d) => net.send(d.source, d.route, d.destination, &d.payload).await,
            Output::Timeout { .. } => break,
            _ => {}
        }
    }
    net.flush().await;
    if let Some(probes) = &probes {
        let (sent, received, p50, max) = probes.summary();
        let p50_ms = p50.map(|d| d.as_secs_f64() * 1e3);
        timeline.say(
            "data",
            &format!(
                "{received}/{sent} probes came back; rtt p50 {} ms, max {} ms",
                p50_ms.map_or("-".into(), |v| format!("{v:.2}")),
                max.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3)),
            ),
        );
        timeline.record(
            "data",
            json!({"sent": sent, "received": received, "rtt_ms_p50": p50_ms}),
        );
        if matches!(outcome, Outcome::Connected) && !probes.passed() {
            return Ok(Outcome::Failed);
        }
    }
    Ok(outcome)
}

/// Echoes what arrived (or counts it back as a probe's echo); whether
/// the other side said bye.
async fn take_arrivals(
    agent: &mut Agent,
    net: &mut Net,
    args: &CallArgs,
    probes: &mut Option<Probes>,
    arrived: &[(u16, Vec<u8>)],
) -> bool {
    let now = Instant::now();
    for (component, data) in arrived {
        if args.echo {
            if data == BYE {
                return true;
            }
            if let Ok(t) = agent.send(now, *component, data) {
                let (source, route, destination) = (t.source, t.route, t.destination);
                let payload = t.payload.to_vec();
                net.send(source, route, destination, &payload).await;
            }
        } else if let Some(probes) = probes {
            probes.echo(now, data);
        }
    }
    false
}

async fn send_data(agent: &mut Agent, net: &mut Net, now: Instant, data: &[u8]) {
    if let Ok(t) = agent.send(now, 1, data) {
        let (source, route, destination) = (t.source, t.route, t.destination);
        let payload = t.payload.to_vec();
        net.send(source, route, destination, &payload).await;
    }
}

fn read_remote_line(
    agent: &mut Agent,
    reader: &mut DescriptionReader,
    timeline: &mut Timeline,
    line: &str,
) -> Result<()> {
    let now = Instant::now();
    match reader
        .read_line(line)
        .context("the remote description is malformed")?
    {
        RemoteLine::Credentials {
            ufrag,
            pwd,
            ice_lite,
        } => {
            timeline.say(
                "2 exchange",
                &format!(
                    "remote credentials: ufrag {ufrag}{}",
                    if ice_lite { ", ice-lite" } else { "" }
                ),
            );
            timeline.record(
                "remote-description",
                json!({"remote_ufrag": ufrag, "ice_lite": ice_lite}),
            );
            agent.set_remote_credentials(now, &ufrag, &pwd, ice_lite);
        }
        RemoteLine::Candidate(candidate) => {
            timeline.say(
                "2 exchange",
                &format!(
                    "remote {} {} (component {})",
                    candidate.kind.as_str(),
                    candidate.address,
                    candidate.component
                ),
            );
            timeline.record(
                "candidate",
                json!({"side": "remote", "candidate": candidate.to_string()}),
            );
            agent.add_remote_candidate(now, candidate);
        }
        RemoteLine::Skipped { line, reason } => {
            timeline.say(
                "2 exchange",
                &format!("remote description line {line} skipped: {reason}"),
            );
        }
        RemoteLine::EndOfCandidates => {
            timeline.say("2 exchange", "remote end-of-candidates");
            timeline.record("end-of-candidates", json!({"side": "remote"}));
            agent.end_of_remote_candidates();
        }
        RemoteLine::RemoteCandidates(selected) => {
            let list: Vec<String> = selected
                .iter()
                .map(|(component, address)| format!("component {component}: {address}"))
                .collect();
            timeline.say(
                "2 exchange",
                &format!("the other side selected our {}", list.join(", ")),
            );
        }
        RemoteLine::Other => {}
    }
    Ok(())
}
