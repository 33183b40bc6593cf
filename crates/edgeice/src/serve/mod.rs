//! `edgeice serve`: turns flags into a [`ServerConfig`], binds the
//! listeners and runs the drivers around one [`edgeice_server::Server`].

mod accept;
mod admission;
mod driver;
mod external_ip;
mod kernel;
mod log_throttle;
mod metrics;
mod relay;
mod systemd;
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

    /// Allow relaying to peers in CIDR even if refused by default
    /// (loopback, link-local, cloud metadata, this host's own addresses,
    /// private with --deny-private-peers); repeatable, adds to the config
    /// file's list.
    #[arg(long = "allow-peer", value_name = "CIDR")]
    allow_peers: Vec<IpNet>,

    /// Refuse relaying to peers in CIDR, in whatever form it is written
    /// (an IPv6 prefix such as 64:ff9b::/96 matches IPv6 peers under it);
    /// repeatable, adds to the config file's list.
    #[arg(long = "deny-peer", value_name = "CIDR")]
    deny_peers: Vec<IpNet>,

    /// Most TCP and TLS connections open at once, all clients together;
    /// more are closed as soon as accepted [default: half the files the
    /// open-file limit leaves, the rest being for relay sockets].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_tcp_connections: Option<u64>,

    /// Most TCP and TLS connections open at once from one IP address
    /// [default: 1000; raise it for an edge that serves a large site behind
    /// one NAT address].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_tcp_connections_per_ip: Option<u64>,

    /// Seconds a TCP or TLS connection without an allocation may go without
    /// a complete request (its first one included, however slowly the bytes
    /// come) before it is closed [default: 30].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    tcp_idle_timeout: Option<u64>,

    /// Also refuse private peers (RFC 1918, CGNAT 100.64.0.0/10, ULA
    /// fc00::/7) unless --allow-peer covers them: for an edge that serves
    /// only the public internet.
    #[arg(long)]
    deny_private_peers: bool,

    /// Most permissions (peer IPs) per allocation; beyond it
    /// CreatePermission and ChannelBind get 508 [default: 256].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_permissions_per_allocation: Option<u64>,

    /// Most channels per allocation; beyond it ChannelBind gets 508
    /// [default: 256].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=16384))]
    max_channels_per_allocation: Option<u64>,

    /// Seconds a permission lasts unless refreshed (coturn's
    /// permission-lifetime) [default: 300, RFC 8656's].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    permission_lifetime: Option<u64>,

    /// Longest allocation lifetime granted, in seconds (coturn's
    /// max-allocate-lifetime); below 600 it is also the default, so that
    /// clients refresh sooner (soak tests, short-lived edges)
    /// [default: 3600, RFC 8656's].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    max_allocate_lifetime: Option<u64>,
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
    max_tcp_connections: Option<u64>,
    max_tcp_connections_per_ip: Option<u64>,
    tcp_idle_timeout: Option<u64>,
    #[serde(default)]
    deny_private_peers: bool,
    max_permissions_per_allocation: Option<u64>,
    max_channels_per_allocation: Option<u64>,
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
            // Peer rules add up: the file's, then the command line's, so a
            // flag cannot silently drop a deny entry the file holds.
            self.allow_peers.splice(0..0, file.allow_peer);
            self.deny_peers.splice(0..0, file.deny_peer);
            self.deny_private_peers |= file.deny_private_peers;
            self.max_permissions_per_allocation = self
                .max_permissions_per_allocation
                .or(file.max_permissions_per_allocation);
            self.max_channels_per_allocation = self
                .max_channels_per_allocation
                .or(file.max_channels_per_allocation);
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
            self.max_tcp_connections = self.max_tcp_connections.or(file.max_tcp_connections);
            self.max_tcp_connections_per_ip = self
                .max_tcp_connections_per_ip
                .or(file.max_tcp_connections_per_ip);
            self.tcp_idle_timeout = self.tcp_idle_timeout.or(file.tcp_idle_timeout);
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

/// The server's own addresses, which clients must not reach through a
/// relay (the datagram would arrive over `lo`): every relay and listening
/// address and every address of the host's interfaces. Gathered once at
/// start; an address added later is not covered.
fn own_addresses(relay_ips: &[IpAddr], listeners: impl Iterator<Item = SocketAddr>) -> Vec<IpAddr> {
    let mut own: Vec<IpAddr> = relay_ips.to_vec();
    own.extend(listeners.map(|a| a.ip()).filter(|ip| !ip.is_unspecified()));
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => own.extend(interfaces.into_iter().map(|i| i.ip())),
        Err(e) => tracing::warn!(
            "cannot list the network interfaces ({e}): only the listening and relay addresses \
             are refused as peers"
        ),
    }
    own.sort();
    own.dedup();
    own
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
    if let Some(seconds) = args.max_allocate_lifetime {
        config.max_lifetime = std::time::Duration::from_secs(seconds);
        config.default_lifetime = config.default_lifetime.min(config.max_lifetime);
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
    config.peer_policy.deny_private = args.deny_private_peers;
    // Two clients of this server relay to each other through its own
    // address on these ports.
    config.peer_policy.relay_ports = Some(args.relay_ports());
    if let Some(max) = args.max_permissions_per_allocation {
        config.max_permissions_per_allocation = usize::try_from(max).unwrap_or(usize::MAX);
    }
    if let Some(max) = args.max_channels_per_allocation {
        config.max_channels_per_allocation = usize::try_from(max).unwrap_or(usize::MAX);
    }
    Ok(config)
}

/// Files left out of the budget for relays and connections: listeners, the
/// user store, the metrics endpoint, the kernel path's maps, logs.
const RESERVED_FILES: u64 = 64;

/// Default of `--max-tcp-connections-per-ip`.
const DEFAULT_TCP_CONNECTIONS_PER_IP: u64 = 1000;

/// Default of `--tcp-idle-timeout`, in seconds.
const DEFAULT_TCP_IDLE_TIMEOUT: u64 = 30;

/// Raises the open-file limit as far as it goes, and sets the TCP/TLS
/// connection limits from what it allows unless given: half the files for
/// connections, half for relay sockets. Says what that leaves room for.
fn stream_policy(args: &ServeArgs) -> tcp::StreamPolicy {
    let limit = match crate::open_files::raise_to_hard_limit() {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!("cannot read or raise the open-file limit: {e}");
            None
        }
    };
    let files = limit.map_or(1024, |l| l.now);
    let budget = files.saturating_sub(RESERVED_FILES).max(2);
    let max_total = args.max_tcp_connections.unwrap_or(budget / 2);
    let per_ip = args
        .max_tcp_connections_per_ip
        .unwrap_or(DEFAULT_TCP_CONNECTIONS_PER_IP)
        .min(max_total);
    let relay_room = budget.saturating_sub(max_total);
    let raised = match limit {
        Some(l) if l.before < l.now => format!(" (raised from {})", l.before),
        _ => String::new(),
    };
    tracing::info!(
        "open files: limit {files}{raised}: room for {max_total} TCP/TLS connections \
         ({per_ip} per IP) and about {relay_room} relay sockets"
    );
    let max_allocations = args.max_allocations.unwrap_or(10_000) as u64;
    if max_allocations > relay_room {
        tracing::warn!(
            "--max-allocations {max_allocations} is more than the open-file limit leaves room \
             for (about {relay_room} relay sockets): beyond that Allocate gets 508; raise the \
             hard limit (ulimit -Hn, systemd's LimitNOFILE=)"
        );
    }
    let as_count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    tcp::StreamPolicy {
        limits: admission::ConnectionLimits::new(as_count(max_total), as_count(per_ip)),
        idle_timeout: Duration::from_secs(
            args.tcp_idle_timeout.unwrap_or(DEFAULT_TCP_IDLE_TIMEOUT),
        ),
    }
}

/// The server's long-running tasks, each with a name to say which one
/// stopped: none is meant to.
struct Tasks {
    set: tokio::task::JoinSet<Result<()>>,
    names: HashMap<tokio::task::Id, String>,
}

impl Tasks {
    fn new() -> Self {
        Tasks {
            set: tokio::task::JoinSet::new(),
            names: HashMap::new(),
        }
    }

    fn spawn(
        &mut self,
        name: impl Into<String>,
        task: impl std::future::Future<Output = Result<()>> + Send + 'static,
    ) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name.into());
    }

    /// Waits for the first task to end, and says which and why as an
    /// error: a listener or timer that stops means the server no longer
    /// does its job, so it must not go on half alive.
    async fn first_failure(&mut self) -> anyhow::Error {
        let Some(ended) = self.set.join_next_with_id().await else {
            return anyhow::anyhow!("no task to run");
        };
        let (id, outcome) = match ended {
            Ok((id, result)) => (id, result.err()),
            Err(e) => (e.id(), Some(anyhow::anyhow!("{e}"))),
        };
        let name = self
            .names
            .remove(&id)
            .unwrap_or_else(|| "a task".to_owned());
        match outcome {
            Some(e) => e.context(format!("{name} failed; stopping the server")),
            None => anyhow::anyhow!("{name} stopped unexpectedly; stopping the server"),
        }
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let args = args.resolve()?;
    let stream_policy = stream_policy(&args);
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
    config.peer_policy.own_addresses = own_addresses(
        &relay_ips,
        udp_sockets
            .keys()
            .copied()
            .chain(tcp_listeners.iter().filter_map(|l| l.local_addr().ok()))
            .chain(
                tls_listeners
                    .iter()
                    .filter_map(|(l, _)| l.local_addr().ok()),
            ),
    );
    // Behind 1:1 NAT the public address leads back here too (hairpinning).
    config
        .peer_policy
        .own_addresses
        .extend(config.external_ips.values().copied());
    config.peer_policy.own_addresses.sort();
    config.peer_policy.own_addresses.dedup();
    tracing::info!("{}", config.peer_policy);
    // The smallest Allocate: a header and REQUESTED-TRANSPORT.
    const SMALLEST_ALLOCATE: usize = 28;
    let smallest = edgeice_server::smallest_challenged_request(&config.realm);
    if smallest > SMALLEST_ALLOCATE {
        tracing::warn!(
            "realm {:?} is long: a 401 over UDP is kept within 4x its request against \
             reflection, so an Allocate of fewer than {smallest} bytes (the smallest is \
             {SMALLEST_ALLOCATE}) goes unanswered; a realm of 28 characters or fewer avoids it",
            config.realm
        );
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
    let mut tasks = Tasks::new();
    for line in &udp_announced {
        announce(format_args!("{line}"));
    }
    // One task per socket: a client's datagrams stay in order.
    for socket in receivers {
        let name = format!("the UDP receiver on {}", socket.local_addr()?);
        tasks.spawn(name, udp::run(socket, shared.clone()));
    }
    for listener in tcp_listeners {
        let name = format!("the TCP listener on {}", listener.local_addr()?);
        let policy = stream_policy.clone();
        tasks.spawn(name, tcp::run(listener, shared.clone(), None, policy));
    }
    for (listener, acceptor) in tls_listeners {
        let local = listener.local_addr()?;
        announce(format_args!("listening on tls {local}"));
        let policy = stream_policy.clone();
        let task = tcp::run(listener, shared.clone(), Some(acceptor), policy);
        tasks.spawn(format!("the TLS listener on {local}"), task);
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
        tasks.spawn(
            format!("the metrics endpoint on {addr}"),
            metrics::run(listener, shared.clone()),
        );
    }
    // Every listener is bound and announced; the timers' first tick (and
    // watchdog ping) comes after.
    systemd::ready();
    let tick = systemd::timer_tick(Duration::from_secs(1));
    tasks.spawn(
        "the timers",
        driver::run_timers(shared.clone(), tick, realm),
    );

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted, stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM, stopping"),
        e = tasks.first_failure() => return Err(e),
    }
    systemd::stopping();
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
