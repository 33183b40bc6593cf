//! `edgeice bench`: a TURN load generator. Clients allocate through the
//! sans-IO TURN client, bind a channel (or install a permission) towards
//! an echo peer, then send timestamped packets at a fixed rate or as fast
//! as a window allows, one thread per core with batched syscalls; the
//! report gives what was sent and echoed, loss, round-trip percentiles,
//! allocations per second and errors by code.
//!
//! `--binding` sends STUN Binding requests instead (requests answered per
//! second), and `--direct` sends bare payloads to a UDP echo server — the
//! floor (`bench/floor-echo`) — so that the same offered load can be put
//! on a server and on the socket layer alone.

mod conn;
mod histogram;
mod peer;
mod report;
mod sys;
mod worker;

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use edgeice_client::Credentials;
use indicatif::{ProgressBar, ProgressStyle};

use crate::server_url::{Scheme, ServerUrl, UrlTransport};
use histogram::Histogram;
use report::Report;

/// Load a TURN server and measure it.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server: `turn:HOST[:PORT][?transport=tcp]`, `turns:HOST[:PORT]`
    /// (TLS), or `HOST:PORT`.
    url: String,
    /// Allocations (one socket each).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// How clients reach the server (overrides the URL's `?transport=`).
    #[arg(long, value_enum)]
    transport: Option<BenchTransport>,
    /// Relay through channels (ChannelData) — the default.
    #[arg(long, conflicts_with_all = ["send_indications", "binding", "direct"])]
    channels: bool,
    /// Relay through Send and Data indications instead of channels.
    #[arg(long, conflicts_with_all = ["binding", "direct"])]
    send_indications: bool,
    /// No TURN: send STUN Binding requests and time their answers.
    #[arg(long, conflicts_with = "direct")]
    binding: bool,
    /// No TURN: send bare payloads to a UDP echo server at URL (the floor).
    #[arg(long)]
    direct: bool,
    /// PEM certificates to trust over TLS (default: the system's roots).
    #[arg(long, value_name = "PEM")]
    ca: Option<std::path::PathBuf>,
    /// An external echo peer, instead of the built-in one.
    #[arg(long, value_name = "ADDR")]
    peer: Option<SocketAddr>,
    /// Packets per second per client.
    #[arg(long, default_value_t = 50.0, conflicts_with = "max")]
    rate: f64,
    /// As fast as the server answers: each client keeps `--window`
    /// packets in flight.
    #[arg(long)]
    max: bool,
    /// Packets in flight per client with `--max`.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Payload bytes (12 to 1400; ignored by `--binding`).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait for late echoes after sending stops.
    #[arg(long, default_value_t = 1.0)]
    drain: f64,
    /// Only allocate (and bind), report allocations per second, release.
    #[arg(long)]
    setup_only: bool,
    /// With `--setup-only`: keep the allocations this many seconds before
    /// releasing them (to measure the server's memory meanwhile).
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// LIFETIME (seconds) to ask for in Allocate and Refresh (default:
    /// none, the server's default). Asking more than a server's maximum
    /// gets that maximum, from edgeice and coturn alike.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    lifetime: Option<u32>,
    /// Give up on setup after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    setup_timeout: f64,
    /// Allocations in flight at once per thread during setup.
    #[arg(long, default_value_t = 200)]
    setup_concurrency: usize,
    /// TURN user name.
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// TURN password.
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// TURN REST API secret (user names `expiry:edgeice-bench`).
    #[arg(long, conflicts_with_all = ["user", "password"])]
    auth_secret: Option<String>,
    /// Generator threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Local address(es) for the clients, repeatable: clients take them in
    /// turn (e.g. several 127.0.0.x to go past one range of ports).
    #[arg(long = "bind", value_name = "IP")]
    binds: Vec<IpAddr>,
    /// One JSON object on stdout instead of the text report.
    #[arg(long)]
    json: bool,
}

/// How clients reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTransport {
    /// UDP.
    Udp,
    /// TCP (RFC 8656 over a stream, ChannelData padded).
    Tcp,
    /// TLS over TCP (`turns:`), trusting `--ca` or the system's roots.
    Tls,
}

/// What each client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// ChannelData to the peer through a bound channel.
    Channels,
    /// Send indications to the peer.
    Indications,
    /// STUN Binding requests to the server.
    Binding,
    /// Bare payloads to a UDP echo server.
    Direct,
}

impl Mode {
    fn allocates(self) -> bool {
        matches!(self, Mode::Channels | Mode::Indications)
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Channels => "channels",
            Mode::Indications => "send-indications",
            Mode::Binding => "binding",
            Mode::Direct => "direct",
        }
    }
}

/// Live counters of one thread, published a few times a second for the
/// progress bar (never per packet).
#[derive(Default)]
pub struct Progress {
    allocated: AtomicU64,
    ready: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
}

/// Everything the threads share: settings, barriers, the clock's origin.
pub struct Plan {
    server: SocketAddr,
    /// Over a stream (TCP, or TLS with `tls`) rather than UDP.
    tcp: bool,
    tls: Option<conn::TlsTarget>,
    mode: Mode,
    peer: Option<SocketAddr>,
    credentials: Credentials,
    rate: Option<f64>,
    window: usize,
    size: usize,
    duration: Duration,
    drain: Duration,
    setup_only: bool,
    hold: Duration,
    lifetime: Option<Duration>,
    setup_timeout: Duration,
    setup_concurrency: usize,
    binds: Vec<IpAddr>,
    /// Timestamps in payloads are nanoseconds since this instant.
    epoch: Instant,
    setup_started: OnceLock<Instant>,
    stop: AtomicBool,
    setup_barrier: Barrier,
    data_barrier: Barrier,
    progress: Vec<Progress>,
}

impl Plan {
    /// The stream clients open, if not UDP.
    pub(crate) fn stream_kind(&self) -> Option<conn::StreamKind<'_>> {
        match (self.tcp, &self.tls) {
            (false, _) => None,
            (true, None) => Some(conn::StreamKind::Tcp),
            (true, Some(target)) => Some(conn::StreamKind::Tls(target)),
        }
    }

    /// When setup started: the first thread past the barrier sets it.
    fn setup_start(&self) -> Instant {
        *self.setup_started.get_or_init(Instant::now)
    }
}

/// Runs the benchmark; prints the report.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let url = ServerUrl::parse(&args.url).map_err(anyhow::Error::msg)?;
    let server = url.resolve().map_err(anyhow::Error::msg)?;
    let transport = args.transport.unwrap_or(match (url.scheme, url.transport) {
        (Scheme::Turns | Scheme::Stuns, _) => BenchTransport::Tls,
        (_, UrlTransport::Tcp) => BenchTransport::Tcp,
        _ => BenchTransport::Udp,
    });
    let tcp = transport != BenchTransport::Udp;
    let tls = if transport == BenchTransport::Tls {
        let name = rustls_pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| anyhow::anyhow!("{}: not a name for TLS: {e}", url.host))?;
        let config = crate::probe::tls_config(args.ca.as_deref()).map_err(anyhow::Error::msg)?;
        Some(conn::TlsTarget { config, name })
    } else {
        None
    };
    let mode = if args.direct {
        Mode::Direct
    } else if args.binding {
        Mode::Binding
    } else if args.send_indications {
        Mode::Indications
    } else {
        Mode::Channels
    };
    if tcp && mode == Mode::Direct {
        bail!("--direct is UDP only");
    }
    if !(worker::MIN_SIZE..=sys::MAX_PAYLOAD).contains(&args.size) {
        bail!(
            "--size must be {} to {} bytes",
            worker::MIN_SIZE,
            sys::MAX_PAYLOAD
        );
    }
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    for (name, value) in [
        ("--duration", args.duration),
        ("--drain", args.drain),
        ("--hold", args.hold),
        ("--setup-timeout", args.setup_timeout),
    ] {
        if !(0.0..=86_400.0).contains(&value) {
            bail!("{name} must be between 0 and 86400 seconds");
        }
    }
    let rate = if args.max {
        None
    } else if args.rate > 0.0 && args.rate <= 1e7 {
        Some(args.rate)
    } else {
        bail!("--rate must be above 0 and at most 10,000,000 packets per second");
    };
    if args.max && args.window == 0 {
        bail!("--window must be at least 1");
    }
    let credentials = match (&args.user, &args.password, &args.auth_secret) {
        (Some(user), Some(password), _) => Credentials {
            username: user.clone(),
            password: password.clone(),
        },
        (_, _, Some(secret)) => {
            let expiry = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                + 86_400;
            let username = format!("{expiry}:edgeice-bench");
            Credentials {
                password: edgeice_server::rest_api_password(secret, &username),
                username,
            }
        }
        _ if mode.allocates() => bail!("TURN needs --user and --password, or --auth-secret"),
        _ => Credentials {
            username: String::new(),
            password: String::new(),
        },
    };
    let binds = if args.binds.is_empty() {
        vec![match server.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }]
    } else {
        args.binds.clone()
    };
    let limit = sys::raise_fd_limit().context("raising the open-file limit")?;
    if args.clients as u64 + 64 > limit {
        bail!(
            "{} clients need as many sockets, but the open-file limit is {limit}",
            args.clients
        );
    }

    // The built-in echo peer listens where the server can reach it: the
    // local address this machine uses towards the server.
    let stop_peer = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU64::new(0));
    let mut peer_thread = None;
    let peer = match (mode.allocates(), args.peer) {
        (false, _) => None,
        (true, Some(peer)) => Some(peer),
        (true, None) => {
            let probe =
                UdpSocket::bind(SocketAddr::new(binds[0], 0)).context("binding the echo peer")?;
            probe
                .connect(server)
                .context("finding the address towards the server")?;
            let ip = probe.local_addr()?.ip();
            drop(probe);
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(server),
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )?;
            let _ = socket.set_recv_buffer_size(8 << 20);
            let _ = socket.set_send_buffer_size(8 << 20);
            socket
                .bind(&SocketAddr::new(ip, 0).into())
                .context("binding the echo peer")?;
            let socket: UdpSocket = socket.into();
            let address = socket.local_addr()?;
            let (stop, echoed) = (stop_peer.clone(), echoed.clone());
            peer_thread = Some(
                std::thread::Builder::new()
                    .name("bench-peer".into())
                    .spawn(move || peer::run(socket, stop, echoed))?,
            );
            Some(address)
        }
    };

    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, args.clients);
    let plan = Arc::new(Plan {
        server,
        tcp,
        tls,
        mode,
        peer,
        credentials,
        rate,
        window: args.window,
        size: args.size,
        duration: Duration::from_secs_f64(args.duration),
        drain: Duration::from_secs_f64(args.drain),
        setup_only: args.setup_only,
        hold: Duration::from_secs_f64(args.hold),
        lifetime: args.lifetime.map(|s| Duration::from_secs(s.into())),
        setup_timeout: Duration::from_secs_f64(args.setup_timeout),
        setup_concurrency: args.setup_concurrency.max(1),
        binds,
        epoch: Instant::now(),
        setup_started: OnceLock::new(),
        stop: AtomicBool::new(false),
        setup_barrier: Barrier::new(threads),
        data_barrier: Barrier::new(threads + 1),
        progress: (0..threads).map(|_| Progress::default()).collect(),
    });

    let cpu_before = sys::process_cpu_seconds();
    let mut handles = Vec::with_capacity(threads);
    let mut first = 0;
    for index in 0..threads {
        let count = args.clients / threads + usize::from(index < args.clients % threads);
        let plan = plan.clone();
        let id = first;
        first += count;
        handles.push(
            std::thread::Builder::new()
                .name(format!("bench-{index}"))
                .spawn(move || worker::run(plan, index, count, id))?,
        );
    }

    let bar = if args.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
            bar.set_style(style);
        }
        bar
    };
    let total = args.clients as u64;
    let sum = |f: fn(&Progress) -> u64| plan.progress.iter().map(f).sum::<u64>();
    // Setup: until every thread reaches the data barrier.
    let setup_watch = {
        let plan = plan.clone();
        std::thread::spawn(move || {
            plan.data_barrier.wait();
        })
    };
    while !setup_watch.is_finished() {
        bar.set_message(format!(
            "setup: {} of {total} allocated, {} ready, {} failed",
            sum(|p| p.allocated.load(Ordering::Relaxed)),
            sum(|p| p.ready.load(Ordering::Relaxed)),
            sum(|p| p.failed.load(Ordering::Relaxed)),
        ));
        bar.tick();
        std::thread::sleep(Duration::from_millis(100));
    }
    let data_started = Instant::now();
    while handles.iter().any(|h| !h.is_finished()) {
        let (sent, received) = (
            sum(|p| p.sent.load(Ordering::Relaxed)),
            sum(|p| p.received.load(Ordering::Relaxed)),
        );
        let seconds = data_started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{} {:.0}/{:.0} s: sent {sent} ({:.0}/s), received {received}, {} in flight or lost",
            if args.setup_only {
                "holding"
            } else {
                "sending"
            },
            seconds.min(if args.setup_only {
                args.hold
            } else {
                args.duration
            }),
            if args.setup_only {
                args.hold
            } else {
                args.duration
            },
            sent as f64 / seconds,
            sent.saturating_sub(received),
        ));
        bar.tick();
        std::thread::sleep(Duration::from_millis(200));
    }
    bar.finish_and_clear();
    let mut outcomes = Vec::with_capacity(threads);
    for handle in handles {
        match handle.join() {
            Ok(outcome) => outcomes.push(outcome),
            Err(_) => bail!("a generator thread panicked"),
        }
    }
    let client_cpu = sys::process_cpu_seconds() - cpu_before;
    stop_peer.store(true, Ordering::Relaxed);
    if let Some(handle) = peer_thread {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("edgeice bench: the echo peer stopped: {e}"),
            Err(_) => bail!("the echo peer panicked"),
        }
    }

    let mut latency = Histogram::new();
    for o in &outcomes {
        latency.merge(&o.latency);
    }
    let report = Report::new(
        &args,
        &plan,
        threads,
        &outcomes,
        &latency,
        echoed.load(Ordering::Relaxed),
        client_cpu,
    );
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if report.ready == 0 {
        let errors = report.errors_text();
        let hint = if errors.contains("ChannelBind 403") || errors.contains("CreatePermission 403")
        {
            " (the server refuses the peer: `edgeice serve` needs --allow-peer for a loopback or private peer, coturn --allow-loopback-peers)"
        } else if errors.contains("Allocate 401") {
            " (wrong user name or password)"
        } else if errors.contains("setup timeout") {
            " (no answer: is the server running, on that address and transport?)"
        } else {
            ""
        };
        bail!("no client got ready: {errors}{hint}");
    }
    Ok(())
}
