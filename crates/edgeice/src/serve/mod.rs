//! `edgeice serve`: turns flags into a [`ServerConfig`], binds the
//! listeners and runs the drivers around one [`edgeice_server::Server`].

mod driver;
mod external_ip;
mod kernel;
mod metrics;
mod relay;
mod tcp;
mod tcp_relay;
mod tls;
mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use edgeice_server::ServerConfig;
use ipnet::IpNet;

use driver::Shared;
use relay::RelayPool;

use crate::users::store::UserStore;

/// Arguments of `edgeice serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file with the same settings as these flags (keys named like
    /// the flags: `listen = ["0.0.0.0:3478"]`, `relay-ports = "61000-65535"`);
    /// flags given on the command line override it.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    /// Address to listen on, UDP and TCP; repeat for several. Port 0 picks
    /// a free port (the chosen one is printed) [default: 0.0.0.0:3478 and
    /// [::]:3478].
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,

    /// Do not listen on TCP.
    #[arg(long)]
    no_tcp: bool,

    /// Address to listen on with TLS over TCP (TURN on 443 gets through
    /// strict firewalls); repeatable. Needs --tls-cert and --tls-key.
    #[arg(long = "tls-listen", value_name = "ADDR:PORT")]
    tls_listen: Vec<SocketAddr>,

    /// PEM certificate chain for TLS.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<std::path::PathBuf>,

    /// PEM private key for TLS.
    #[arg(long, value_name = "PEM")]
    tls_key: Option<std::path::PathBuf>,

    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,

    /// Leave the SOFTWARE attribute out of responses.
    #[arg(long)]
    no_software: bool,

    /// Realm of the long-term credentials [default: edgeice].
    #[arg(long)]
    realm: Option<String>,

    /// A TURN user, as NAME:PASSWORD; repeat for several.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,

    /// The SQLite user store (`edgeice user` manages it). Used by default
    /// when no --user or --auth-secret is given; re-read when it changes.
    #[arg(long = "users-db", value_name = "PATH")]
    users_db: Option<std::path::PathBuf>,

    /// RFC 5780 NAT behaviour discovery: a second IP of this host. Each UDP
    /// listener on a specific address of that family is also served on
    /// port+1, and on this IP with both ports; Binding answers then carry
    /// OTHER-ADDRESS and honour CHANGE-REQUEST.
    #[arg(long = "alternate-ip", value_name = "IP")]
    alternate_ip: Option<IpAddr>,

    /// Shared secret of the TURN REST API scheme (time-limited user names
    /// `expiry:name` with password base64(HMAC-SHA1(secret, user name)));
    /// repeat to accept several while rotating.
    #[arg(long = "auth-secret", value_name = "SECRET")]
    auth_secrets: Vec<String>,

    /// IP address relay sockets bind to, one per family. By default, the
    /// listening address of that family, when it is not a wildcard.
    #[arg(long = "relay-ip", value_name = "IP")]
    relay_ips: Vec<IpAddr>,

    /// Ports relay sockets use [default: 49152-65535]. Keep it clear of the
    /// system's ephemeral ports (Linux: 32768-60999).
    #[arg(long, value_name = "LO-HI", value_parser = parse_port_range)]
    relay_ports: Option<RangeInclusive<u16>>,

    /// Behind a 1:1 NAT, PUBLIC is advertised for relays bound on PRIVATE
    /// (PUBLIC alone: for the relay IP of the same family). Repeatable.
    /// `auto` asks the STUN server of --external-ip-stun instead.
    #[arg(long = "external-ip", value_name = "PUBLIC[/PRIVATE]")]
    external_ips: Vec<String>,

    /// The STUN server `--external-ip auto` asks, outside the NAT:
    /// `stun:HOST[:PORT]` (RFC 7064), `HOST:PORT` or an IP; port 3478 if none.
    #[arg(long, value_name = "STUN-URI", value_parser = parse_stun_server)]
    external_ip_stun: Option<SocketAddr>,

    /// Do not warn about private relay addresses: this edge serves only its
    /// own network.
    #[arg(long)]
    private_relay_ok: bool,

    /// Relay bound channels in the kernel (XDP) on the interfaces of the
    /// listening and relay addresses: `auto` when the kernel and privileges
    /// allow, saying so once in the log; `on` refuses to start without it.
    /// Needs a build with the `ebpf` feature.
    #[arg(long, value_enum, default_value_t = kernel::FastPathMode::Off)]
    kernel_fast_path: kernel::FastPathMode,

    /// Most 401/438 answers per source IP: RATE per second on average,
    /// BURST at once (default 50/200); the rest go unanswered, so spoofed
    /// requests cannot turn the server against a victim.
    #[arg(long, value_name = "RATE/BURST", value_parser = parse_rate)]
    challenges_per_ip: Option<(u32, u32)>,

    /// Bandwidth cap per allocation: relayed payload bytes per second, both
    /// directions together; what exceeds it is dropped.
    #[arg(long, value_name = "BYTES")]
    max_bytes_per_second: Option<u64>,

    /// Most allocations at once, all users together (coturn's
    /// total-quota); beyond it Allocate gets 486 [default: 10000].
    #[arg(long, value_name = "N")]
    max_allocations: Option<usize>,

    /// Most allocations at once per user name (coturn's user-quota);
    /// beyond it Allocate gets 486 [default: 1000].
    #[arg(long, value_name = "N")]
    max_allocations_per_user: Option<usize>,

    /// Allow relaying to peers in CIDR even if refused by default (loopback...).
    #[arg(long = "allow-peer", value_name = "CIDR")]
    allow_peers: Vec<IpNet>,

    /// Refuse relaying to peers in CIDR.
    #[arg(long = "deny-peer", value_name = "CIDR")]
    deny_peers: Vec<IpNet>,

    /// Seconds a permission lasts unless refreshed (coturn's
    /// permission-lifetime) [default: 300, RFC 8656's].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    permission_lifetime: Option<u64>,
}

fn default_listen() -> Vec<SocketAddr> {
    vec![
        SocketAddr::from(([0, 0, 0, 0], 3478)),
        SocketAddr::from(([0u16; 8], 3478)),
    ]
}

/// The settings file: the flags' names as keys, lists for repeatable flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    #[serde(default)]
    listen: Vec<SocketAddr>,
    #[serde(default)]
    no_tcp: bool,
    #[serde(default)]
    tls_listen: Vec<SocketAddr>,
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
    metrics: Option<SocketAddr>,
    #[serde(default)]
    no_software: bool,
    realm: Option<String>,
    alternate_ip: Option<IpAddr>,
    #[serde(default)]
    user: Vec<String>,
    users_db: Option<std::path::PathBuf>,
    #[serde(default)]
    auth_secret: Vec<String>,
    #[serde(default)]
    relay_ip: Vec<IpAddr>,
    relay_ports: Option<String>,
    external_ip_stun: Option<String>,
    challenges_per_ip: Option<String>,
    max_bytes_per_second: Option<u64>,
    max_allocations: Option<usize>,
    max_allocations_per_user: Option<usize>,
    #[serde(default)]
    external_ip: Vec<String>,
    #[serde(default)]
    private_relay_ok: bool,
    #[serde(default)]
    allow_peer: Vec<IpNet>,
    #[serde(default)]
    deny_peer: Vec<IpNet>,
}

impl ServeArgs {
    /// Fills what the command line left unset from `--config`, then the
    /// defaults.
    fn resolve(mut self) -> Result<Self> {
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the config file {}", path.display()))?;
            let file: FileConfig = toml::from_str(&text)
                .with_context(|| format!("in the config file {}", path.display()))?;
            fn list<T>(flag: &mut Vec<T>, file: Vec<T>) {
                if flag.is_empty() {
                    *flag = file;
                }
            }
            list(&mut self.listen, file.listen);
            list(&mut self.tls_listen, file.tls_listen);
            list(&mut self.users, file.user);
            list(&mut self.auth_secrets, file.auth_secret);
            list(&mut self.relay_ips, file.relay_ip);
            list(&mut self.external_ips, file.external_ip);
            list(&mut self.allow_peers, file.allow_peer);
            list(&mut self.deny_peers, file.deny_peer);
            self.no_tcp |= file.no_tcp;
            self.no_software |= file.no_software;
            self.private_relay_ok |= file.private_relay_ok;
            self.tls_cert = self.tls_cert.or(file.tls_cert);
            self.tls_key = self.tls_key.or(file.tls_key);
            self.metrics = self.metrics.or(file.metrics);
            self.realm = self.realm.or(file.realm);
            self.users_db = self.users_db.or(file.users_db);
            self.alternate_ip = self.alternate_ip.or(file.alternate_ip);
            if self.external_ip_stun.is_none() {
                self.external_ip_stun = file
                    .external_ip_stun
                    .map(|s| {
                        parse_stun_server(&s).map_err(|e| anyhow::anyhow!("external-ip-stun: {e}"))
                    })
                    .transpose()?;
            }
            self.max_bytes_per_second = self.max_bytes_per_second.or(file.max_bytes_per_second);
            self.max_allocations = self.max_allocations.or(file.max_allocations);
            self.max_allocations_per_user = self
                .max_allocations_per_user
                .or(file.max_allocations_per_user);
            if self.challenges_per_ip.is_none() {
                self.challenges_per_ip = file
                    .challenges_per_ip
                    .map(|r| parse_rate(&r).map_err(|e| anyhow::anyhow!("challenges-per-ip: {e}")))
                    .transpose()?;
            }
            if self.relay_ports.is_none() {
                self.relay_ports = file
                    .relay_ports
                    .map(|r| parse_port_range(&r).map_err(|e| anyhow::anyhow!("relay-ports: {e}")))
                    .transpose()?;
            }
        }
        if self.listen.is_empty() {
            self.listen = default_listen();
        }
        self.realm.get_or_insert_with(|| "edgeice".to_owned());
        self.relay_ports.get_or_insert(49152..=65535);
        if !self.tls_listen.is_empty() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            anyhow::bail!("TLS listeners need both --tls-cert and --tls-key");
        }
        Ok(self)
    }

    fn realm(&self) -> &str {
        self.realm.as_deref().unwrap_or("edgeice")
    }

    fn relay_ports(&self) -> RangeInclusive<u16> {
        self.relay_ports.clone().unwrap_or(49152..=65535)
    }
}

/// Reads a STUN server as `--external-ip-stun` takes it: `stun:HOST[:PORT]`
/// (RFC 7064), `HOST:PORT`, or an IP alone; the port defaults to 3478. A
/// host name is resolved once, at start-up.
fn parse_stun_server(s: &str) -> Result<SocketAddr, String> {
    let url = crate::server_url::ServerUrl::parse(s)?;
    if url.scheme != crate::server_url::Scheme::Stun {
        return Err(format!("{s}: a stun: server is needed here"));
    }
    url.resolve()
}

fn parse_rate(s: &str) -> Result<(u32, u32), String> {
    let (rate, burst) = s.split_once('/').unwrap_or((s, s));
    let rate = rate.trim().parse().map_err(|e| format!("{rate}: {e}"))?;
    let burst = burst.trim().parse().map_err(|e| format!("{burst}: {e}"))?;
    Ok((rate, burst))
}

fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or("expected LO-HI, such as 61000-65535")?;
    let lo: u16 = lo.trim().parse().map_err(|e| format!("{lo}: {e}"))?;
    let hi: u16 = hi.trim().parse().map_err(|e| format!("{hi}: {e}"))?;
    if lo == 0 || lo > hi {
        return Err(format!("{lo}-{hi} is not a range of ports"));
    }
    Ok(lo..=hi)
}

/// Replaces `--external-ip auto` by the mappings a STUN server reports for
/// each relay IP of its family. A relay that gets no answer stays unmapped
/// (and the private-address warning then says so).
async fn resolve_auto_external_ips(mut args: ServeArgs, relay_ips: &[IpAddr]) -> Result<ServeArgs> {
    if !args.external_ips.iter().any(|e| e == "auto") {
        return Ok(args);
    }
    let Some(stun) = args.external_ip_stun else {
        bail!(
            "--external-ip auto needs --external-ip-stun stun:HOST[:PORT], a STUN server outside the NAT"
        );
    };
    args.external_ips.retain(|e| e != "auto");
    for relay in relay_ips.iter().filter(|ip| ip.is_ipv4() == stun.is_ipv4()) {
        match external_ip::discover(*relay, stun).await {
            Ok(public) => {
                announce(format_args!(
                    "external IP of relay {relay} is {public} (asked {stun})"
                ));
                if public != *relay {
                    args.external_ips.push(format!("{public}/{relay}"));
                }
            }
            Err(e) => tracing::warn!("--external-ip auto: {e:#}"),
        }
    }
    Ok(args)
}

/// How many shards (cores) clients are spread over: several per thread, so
/// that two busy clients rarely share one.
fn shard_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) * 4
}

/// How many SO_REUSEPORT shares each listening UDP address gets, each
/// read by its own task.
fn receivers_per_socket() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Binds a UDP listener and, with `tcp`, a TCP one on the same port, so
/// that `--listen host:0` gives one port for both. The kernel picks a port
/// free for UDP that TCP may not have free (a connection in TIME-WAIT holds
/// it): with port 0, another pick is tried, a bounded number of times.
async fn bind_listener(
    addr: SocketAddr,
    tcp: bool,
) -> Result<(Vec<tokio::net::UdpSocket>, Option<tokio::net::TcpListener>)> {
    const PICKS: usize = 20;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let shares = udp::bind_shares(addr, receivers_per_socket()).await?;
        let local = shares[0].local_addr()?;
        if !tcp {
            return Ok((shares, None));
        }
        match tcp::bind(local).await {
            Ok(listener) => return Ok((shares, Some(listener))),
            Err(_) if addr.port() == 0 && attempt < PICKS => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Opens the user store when asked for, or by default when no other
/// credentials are given; creates a first user in an empty one.
fn open_user_store(
    args: &ServeArgs,
    config: &ServerConfig,
) -> Result<Option<driver::WatchedStore>> {
    let other_credentials = !args.users.is_empty() || !args.auth_secrets.is_empty();
    let path = match &args.users_db {
        Some(path) => path.clone(),
        None if other_credentials => return Ok(None),
        None => UserStore::default_path(),
    };
    let store = UserStore::open(&path, crate::users::store::WRITER_PATIENCE)?;
    if store.keys(&config.realm)?.is_empty() && !other_credentials {
        let password = crate::users::store::random_password()?;
        store.add("edgeice", &config.realm, &password)?;
        announce(format_args!(
            "created TURN user edgeice with password {password} in realm {} ({}); \
             shown only this once, manage users with `edgeice user`",
            config.realm,
            path.display()
        ));
    }
    Ok(Some(driver::WatchedStore::new(store)))
}

/// Prints a line for whoever started the server (scripts and tests read
/// the bound addresses from it). A closed stdout is not a reason to stop.
fn announce(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "edgeice: {line}");
    let _ = out.flush();
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

fn config(args: &ServeArgs, relay_ips: &[IpAddr]) -> Result<ServerConfig> {
    let mut config = ServerConfig {
        realm: args.realm().to_owned(),
        ..ServerConfig::default()
    };
    if args.no_software {
        config.software = None;
    }
    config.auth_secrets = args.auth_secrets.clone();
    config.unix_time_at_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    getrandom::fill(&mut config.nonce_secret)
        .map_err(|e| anyhow::anyhow!("no system randomness for the nonce secret: {e}"))?;
    for user in &args.users {
        let Some((name, password)) = user.split_once(':') else {
            bail!("--user {user}: expected NAME:PASSWORD");
        };
        config
            .add_user(name, password)
            .with_context(|| format!("--user {name}"))?;
    }
    for mapping in &args.external_ips {
        let (public, private) = match mapping.split_once('/') {
            Some((public, private)) => (public, Some(private)),
            None => (mapping.as_str(), None),
        };
        let public: IpAddr = public
            .parse()
            .with_context(|| format!("--external-ip {mapping}: not an IP address"))?;
        let privates: Vec<IpAddr> = match private {
            Some(p) => vec![
                p.parse()
                    .with_context(|| format!("--external-ip {mapping}"))?,
            ],
            None => relay_ips
                .iter()
                .filter(|ip| ip.is_ipv4() == public.is_ipv4())
                .copied()
                .collect(),
        };
        if privates.is_empty() {
            bail!(
                "--external-ip {mapping}: no relay IP of that family to map; add /PRIVATE or --relay-ip"
            );
        }
        for private in privates {
            config.external_ips.insert(private, public);
        }
    }
    config.private_relay_ok = args.private_relay_ok;
    config.max_bytes_per_second = args.max_bytes_per_second;
    if let Some(seconds) = args.permission_lifetime {
        config.permission_lifetime = std::time::Duration::from_secs(seconds);
    }
    if let Some(max) = args.max_allocations {
        config.max_allocations = max;
    }
    if let Some(max) = args.max_allocations_per_user {
        config.max_allocations_per_user = max;
    }
    let challenges = args.challenges_per_ip.unwrap_or((50, 200));
    config.shared = Arc::new(edgeice_server::SharedState::new(challenges));
    config.peer_policy.allow = args.allow_peers.clone();
    config.peer_policy.deny = args.deny_peers.clone();
    Ok(config)
}

async fn serve(args: ServeArgs) -> Result<()> {
    let args = args.resolve()?;
    let mut listeners = Vec::new();
    for addr in &args.listen {
        listeners.push(bind_listener(*addr, !args.no_tcp).await?);
    }
    let mut alternates = Vec::new();
    let mut alternate_sockets = Vec::new();
    if let Some(alt_ip) = args.alternate_ip {
        for (shares, _) in &listeners {
            let Some(primary) = shares.first() else {
                continue;
            };
            let primary = primary.local_addr()?;
            if primary.ip().is_unspecified()
                || primary.is_ipv4() != alt_ip.is_ipv4()
                || primary.ip() == alt_ip
            {
                continue;
            }
            let alt_port = primary
                .port()
                .checked_add(1)
                .context("--alternate-ip: no port above the listener's")?;
            let alternate = SocketAddr::new(alt_ip, alt_port);
            for addr in [
                SocketAddr::new(primary.ip(), alt_port),
                SocketAddr::new(alt_ip, primary.port()),
                alternate,
            ] {
                let socket = udp::bind(addr).await.with_context(|| {
                    format!("--alternate-ip needs {addr} free (RFC 5780 uses port+1)")
                })?;
                alternate_sockets.push(socket);
            }
            alternates.push(edgeice_server::AlternateAddress { primary, alternate });
        }
        if alternates.is_empty() {
            anyhow::bail!(
                "--alternate-ip {alt_ip}: no UDP listener on a specific address of that family"
            );
        }
    }
    let mut tls_listeners = Vec::new();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let acceptor = tls::acceptor(cert, key)?;
        for addr in &args.tls_listen {
            tls_listeners.push((tcp::bind(*addr).await?, acceptor.clone()));
        }
    }
    let bound: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|(shares, _)| shares.first()?.local_addr().ok())
        .collect();
    let pool = RelayPool::new(&args.relay_ips, &bound, args.relay_ports());
    let relay_ips = pool.ips();
    let args = resolve_auto_external_ips(args, &relay_ips).await?;
    let mut config = config(&args, &relay_ips)?;
    if !config.private_relay_ok {
        for warning in edgeice_server::nat::private_relays(&relay_ips, &config.external_ips) {
            tracing::warn!("{warning}");
        }
    }
    if relay_ips.is_empty() {
        tracing::warn!(
            "no relay IP: listening on a wildcard address; give --relay-ip so TURN can allocate"
        );
    }

    config.alternates = alternates;
    config.relay_families = relay_ips
        .iter()
        .map(edgeice_stun::AddressFamily::of)
        .collect();
    let store = open_user_store(&args, &config)?;
    let static_users = config.users.clone();
    let realm = config.realm.clone();
    if let Some(store) = &store {
        let mut users = static_users.clone();
        users.extend(store.load(&config.realm)?);
        config.users = users;
    }
    // Every listening UDP socket, known before any task starts, so the
    // send path looks them up without a lock.
    let mut udp_sockets = HashMap::new();
    let mut udp_announced = Vec::new();
    let mut tcp_listeners = Vec::new();
    let mut receivers: Vec<Arc<tokio::net::UdpSocket>> = Vec::new();
    for (shares, tcp) in listeners {
        let shares: Vec<Arc<tokio::net::UdpSocket>> = shares.into_iter().map(Arc::new).collect();
        let Some(first) = shares.first() else {
            continue;
        };
        let local = first.local_addr()?;
        udp_announced.push(format!("listening on udp {local}"));
        // Any share sends from the same address: answers go out of the first.
        udp_sockets.insert(local, first.clone());
        receivers.extend(shares);
        if let Some(listener) = tcp {
            udp_announced.push(format!("listening on tcp {}", listener.local_addr()?));
            tcp_listeners.push(listener);
        }
    }
    for socket in alternate_sockets {
        let socket = Arc::new(socket);
        let local = socket.local_addr()?;
        udp_announced.push(format!("listening on udp {local} (RFC 5780 alternate)"));
        udp_sockets.insert(local, socket.clone());
        receivers.push(socket);
    }
    let mut fast_path_ips = relay_ips.clone();
    fast_path_ips.extend(udp_sockets.keys().map(SocketAddr::ip));
    let kernel = kernel::KernelPath::start(args.kernel_fast_path, &fast_path_ips)?;
    config.kernel_fast_path = kernel.is_some();
    let shared = Arc::new(Shared::new(
        config,
        shard_count(),
        udp_sockets,
        pool,
        Instant::now(),
        static_users,
        (store, kernel),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for line in &udp_announced {
        announce(format_args!("{line}"));
    }
    // One task per socket: a client's datagrams stay in order.
    for socket in receivers {
        tasks.spawn(udp::run(socket, shared.clone()));
    }
    for listener in tcp_listeners {
        tasks.spawn(tcp::run(listener, shared.clone(), None));
    }
    for (listener, acceptor) in tls_listeners {
        announce(format_args!("listening on tls {}", listener.local_addr()?));
        tasks.spawn(tcp::run(listener, shared.clone(), Some(acceptor)));
    }
    for ip in &relay_ips {
        let ports = args.relay_ports();
        let (lo, hi) = (ports.start(), ports.end());
        announce(format_args!("relaying from {ip} ports {lo}-{hi}"));
    }
    if let Some(addr) = args.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the metrics endpoint {addr}"))?;
        announce(format_args!(
            "metrics on http://{}/metrics",
            listener.local_addr()?
        ));
        tasks.spawn(metrics::run(listener, shared.clone()));
    }
    tasks.spawn(driver::run_timers(
        shared.clone(),
        Duration::from_secs(1),
        realm,
    ));

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted, stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM, stopping"),
        Some(result) = tasks.join_next() => result.context("listener task panicked")??,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_stun_server;

    #[test]
    fn stun_servers_are_read_as_uris_or_addresses() {
        let read = |s| parse_stun_server(s).map(|a| a.to_string());
        assert_eq!(read("stun:192.0.2.1"), Ok("192.0.2.1:3478".into()));
        assert_eq!(read("stun:192.0.2.1:3479"), Ok("192.0.2.1:3479".into()));
        assert_eq!(read("192.0.2.1:19302"), Ok("192.0.2.1:19302".into()));
        assert_eq!(read("stun:[2001:db8::1]"), Ok("[2001:db8::1]:3478".into()));
        assert_eq!(read("[2001:db8::1]:5349"), Ok("[2001:db8::1]:5349".into()));
        assert_eq!(read("2001:db8::1"), Ok("[2001:db8::1]:3478".into()));
        assert!(read("stun:").is_err());
    }
}
