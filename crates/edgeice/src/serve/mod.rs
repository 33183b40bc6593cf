//! `edgeice serve`: turns its settings (flags, environment, file: see
//! [`settings`]) into a [`ServerConfig`], binds the listeners and runs the
//! drivers around one [`edgeice_server::Server`].

mod accept;
mod admin;
mod admission;
mod counted;
mod drain;
mod driver;
mod external_ip;
pub(crate) mod fleet;
mod health;
mod kernel;
mod log_throttle;
mod metrics;
mod records;
mod relay;
mod reload;
mod settings;
mod systemd;
mod tcp;
mod tcp_relay;
mod tls;
mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edgeice_server::ServerConfig;

use driver::Shared;
use relay::RelayPool;
pub(crate) use settings::user_key;
pub use settings::{Resolved, ServeArgs, Settings, command};

use crate::users::store::UserStore;

/// Replaces `--external-ip auto` by the mappings a STUN server reports for
/// each relay IP of its family. A relay that gets no answer stays unmapped
/// (and the private-address warning then says so).
async fn resolve_auto_external_ips(mut args: Settings, relay_ips: &[IpAddr]) -> Result<Settings> {
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
fn open_user_store(args: &Settings, config: &ServerConfig) -> Result<Option<driver::WatchedStore>> {
    let other_credentials = !args.users.is_empty()
        || !args.user_keys.is_empty()
        || !args.auth_secrets.is_empty()
        || !args.user_files.is_empty()
        || !args.auth_secret_files.is_empty()
        || args.redis.is_some();
    if let (Some(_), Some(db)) = (&args.redis, &args.users_db) {
        bail!(
            "--redis and --users-db {}: the fleet's users are in Redis; choose one user store",
            db.display()
        );
    }
    let path = match &args.users_db {
        Some(path) => path.clone(),
        None if other_credentials => return Ok(None),
        None => UserStore::default_path(),
    };
    let store = UserStore::open(&path, crate::users::store::WRITER_PATIENCE)?;
    if store.keys(&config.realm)?.is_empty() && !other_credentials {
        let password = crate::users::store::random_password()?;
        store.add("edgeice", &config.realm, &password)?;
        first_password(&path, &config.realm, &password)?;
    }
    Ok(Some(driver::WatchedStore::new(store)))
}

/// Hands the first user's password to whoever started the server, and to
/// no log: on the terminal when stdout is one, otherwise in a 0600 file
/// next to the store (`users.db.first-password`), whose path the log says.
fn first_password(store: &std::path::Path, realm: &str, password: &str) -> Result<()> {
    use std::io::{IsTerminal, Write};
    use std::os::unix::fs::OpenOptionsExt;
    if std::io::stdout().is_terminal() {
        announce(format_args!(
            "created TURN user edgeice with password {password} in realm {realm} ({}); \
             shown only this once, manage users with `edgeice user`",
            store.display()
        ));
        return Ok(());
    }
    let mut name = store.as_os_str().to_owned();
    name.push(".first-password");
    let file = std::path::PathBuf::from(name);
    // A new file, never one already there (a symlink planted to make the
    // password land elsewhere): remove, then create exclusively.
    match std::fs::remove_file(&file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing the old {}", file.display()));
        }
        _ => {}
    }
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .with_context(|| format!("creating {}", file.display()))?;
    writeln!(out, "{password}").with_context(|| format!("writing {}", file.display()))?;
    // A warning: someone must go and read it, whatever the level.
    tracing::warn!(
        "created TURN user edgeice in realm {realm} ({}); its password is in {} (0600), \
         shown nowhere else: read it, then delete the file; manage users with `edgeice user`",
        store.display(),
        file.display()
    );
    Ok(())
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
/// the bound addresses from it); JSON in JSON mode.
fn announce(line: std::fmt::Arguments<'_>) {
    crate::logging::announce(line);
}

/// Where `edgeice serve` puts its admin socket unless told.
pub fn default_admin_socket() -> std::path::PathBuf {
    admin::default_path()
}

/// Runs the server until Ctrl-C or SIGTERM; with `--check-config`, prints
/// and checks the settings instead.
pub fn run(resolved: Resolved) -> Result<()> {
    resolved.warn_exposed_secrets();
    if resolved.check_config {
        return check_config(&resolved);
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(resolved))
}

fn config(args: &Settings, relay_ips: &[IpAddr]) -> Result<ServerConfig> {
    let mut config = ServerConfig {
        realm: args.realm().to_owned(),
        ..ServerConfig::default()
    };
    if args.no_software {
        config.software = None;
    }
    config.auth_secrets = args.auth_secrets()?;
    config.unix_time_at_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    getrandom::fill(&mut config.nonce_secret)
        .map_err(|e| anyhow::anyhow!("no system randomness for the nonce secret: {e}"))?;
    for user in &args.users()? {
        // The line may be a password alone: it is not repeated.
        let Some((name, password)) = user.split_once(':') else {
            bail!("a user of --user or --user-file is not NAME:PASSWORD");
        };
        config
            .add_user(name, password)
            .with_context(|| format!("--user {name}"))?;
    }
    for user in &args.user_keys {
        let (name, key) = settings::user_key(user).map_err(|e| anyhow::anyhow!("user-key: {e}"))?;
        config.add_user_key(name, &key);
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
    config.redirect_above = args.redirect_above;
    let challenges = args.challenges_per_ip.unwrap_or((50, 200));
    config.shared = Arc::new(edgeice_server::SharedState::new(challenges));
    let alternates = drain::resolve(&args.alternate_servers, "alternate-server")?;
    config.shared.set_alternates(alternates);
    let tls_alternates = drain::resolve(&args.tls_alternate_servers, "tls-alternate-server")?;
    config.shared.set_tls_alternates(tls_alternates);
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

/// `--check-config`: prints the settings with their sources, then checks
/// what serving would, short of binding sockets or asking a STUN server:
/// the server configuration, the secret files, the TLS certificate.
fn check_config(resolved: &Resolved) -> Result<()> {
    // A closed stdout (`| head`) is no reason to panic.
    let mut out = std::io::stdout().lock();
    let _ = std::io::Write::write_all(&mut out, resolved.render().as_bytes());
    let args = &resolved.settings;
    let relay_ips = RelayPool::new(&args.relay_ips, &args.listen, args.relay_ports()).ips();
    let mut args = args.clone();
    if args.external_ips.iter().any(|e| e == "auto") && args.external_ip_stun.is_none() {
        bail!("external-ip auto needs external-ip-stun, a STUN server outside the NAT");
    }
    args.external_ips.retain(|e| e != "auto");
    config(&args, &relay_ips)?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        tls::acceptor(cert, key)?;
    }
    let _ = std::io::Write::write_all(&mut out, b"# the settings are valid\n");
    Ok(())
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
fn stream_policy(args: &Settings) -> tcp::StreamPolicy {
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

/// Connects to the fleet's Redis (`--redis`) and reads its state before
/// serving; a Redis that cannot be reached now is caught up with later.
async fn start_fleet(
    url: &str,
    args: &Settings,
    config: &ServerConfig,
    listening: &[SocketAddr],
    relay_ips: &[IpAddr],
    tls_listeners: &[(tokio::net::TcpListener, tokio_rustls::TlsAcceptor)],
) -> Result<(Arc<fleet::Fleet>, fleet::Loaded)> {
    let connector = fleet::Connector::new(url, args.redis_password_file.as_deref())?;
    // What clients are told: a wildcard listener by the relay IPs, a
    // private IP by its --external-ip.
    let advertise = |addrs: &mut dyn Iterator<Item = SocketAddr>| -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for addr in addrs {
            let ips: Vec<IpAddr> = if addr.ip().is_unspecified() {
                relay_ips.to_vec()
            } else {
                vec![addr.ip()]
            };
            for ip in ips {
                let ip = config.external_ips.get(&ip).copied().unwrap_or(ip);
                out.push(SocketAddr::new(ip, addr.port()));
            }
        }
        out.sort();
        out.dedup();
        out
    };
    let tls: Vec<SocketAddr> = tls_listeners
        .iter()
        .filter_map(|(l, _)| l.local_addr().ok())
        .collect();
    let options = fleet::FleetOptions {
        connector,
        node_id: args.node_id.clone().unwrap_or_else(fleet::default_node_id),
        heartbeat: Duration::from_secs(args.fleet_heartbeat.unwrap_or(1)),
        realm: config.realm.clone(),
        addresses: advertise(&mut listening.iter().copied()),
        tls_addresses: advertise(&mut tls.into_iter()),
        capacity: config.max_allocations,
        per_user_limit: config.max_allocations_per_user,
        core: config.shared.clone(),
    };
    announce(format_args!(
        "fleet node {} with Redis at {}",
        options.node_id,
        options.connector.shown()
    ));
    let fleet = fleet::Fleet::new(options);
    let loaded = fleet.first_load().await.unwrap_or_default();
    announce(format_args!(
        "fleet: {} users, {} REST API secrets loaded",
        loaded.users.len(),
        loaded.secrets.len()
    ));
    Ok((fleet, loaded))
}

/// Binds the admin socket and serves it; its path, to remove at the end.
/// One given with `--admin-socket` must work; the default one may be
/// taken (another server on this machine), then this server has none.
async fn start_admin_socket(
    args: &Settings,
    shared: &Arc<Shared>,
    tasks: &mut Tasks,
) -> Result<Option<std::path::PathBuf>> {
    let Some(path) = admin::chosen(args.admin_socket.as_deref()) else {
        return Ok(None);
    };
    match admin::bind(&path).await {
        Ok(listener) => {
            announce(format_args!("admin socket {}", path.display()));
            tasks.spawn("the admin socket", admin::run(listener, shared.clone()));
            Ok(Some(path))
        }
        Err(e) if args.admin_socket.is_some() => Err(e.context("--admin-socket")),
        Err(e) => {
            tracing::warn!("no admin socket, `edgeice sessions` cannot reach this server: {e:#}");
            Ok(None)
        }
    }
}

async fn serve(resolved: Resolved) -> Result<()> {
    // First: a signal that comes while starting must not kill the server.
    let mut signals = reload::Signals::install()?;
    let level = crate::logging::prepare_level(resolved.file_log_level())?;
    crate::logging::apply_level(level);
    let args = resolved.settings.clone();
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
    let mut certificate = None;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let (acceptor, handle) = tls::acceptor(cert, key)?;
        certificate = Some(handle);
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
    let static_keys = static_users.clone();
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
    let fleet = match &args.redis {
        Some(url) => {
            Some(start_fleet(url, &args, &config, &bound, &relay_ips, &tls_listeners).await?)
        }
        None => None,
    };
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
    if let Some((fleet, loaded)) = fleet.clone() {
        shared.set_fleet(fleet.clone());
        shared.set_fleet_credentials(loaded.users.clone(), loaded.secrets.clone());
        if let Some(key) = &loaded.nonce_key {
            shared.share_nonces(key);
        }
        tasks.spawn("the fleet state (Redis)", fleet.run(shared.clone(), loaded));
    }
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
    // Every TURN listener is bound and serving, the users are loaded:
    // /readyz says so from its first answer (a probe that read "metrics
    // on" never sees "starting").
    shared.health.set(health::Readiness::Ready);
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
    let admin_socket = start_admin_socket(&args, &shared, &mut tasks).await?;
    let tick = systemd::timer_tick(Duration::from_secs(1));
    tasks.spawn(
        "the timers",
        driver::run_timers(shared.clone(), tick, realm),
    );
    if let (Some(certificate), false) = (&certificate, args.tls_listen.is_empty()) {
        tasks.spawn(
            "the certificate watcher",
            reload::watch_certificate(certificate.clone()),
        );
    }
    let mut reloader = reload::Reloader::new(resolved, shared.clone(), certificate, &static_keys)?;
    // Every listener is bound and announced, the timers run: tell the
    // service manager.
    systemd::ready();

    let drain_timeout = args.drain_timeout;
    let mut terminated = false;
    let mut drain_check = tokio::time::interval(drain::CHECK_EVERY);
    let result = loop {
        tokio::select! {
            _ = signals.interrupt.recv() => break Ok("SIGINT"),
            // With --drain-timeout, the first SIGTERM drains (or brings a
            // drain under way to that deadline); a second one, or one
            // without it, stops at once.
            _ = signals.terminate.recv() => match drain_timeout {
                Some(s) if !terminated => {
                    terminated = true;
                    shared.drain(Some(drain::deadline_in(s)), "SIGTERM");
                }
                _ => break Ok("SIGTERM"),
            },
            _ = signals.hangup.recv() => reloader.reload("SIGHUP"),
            // coturn's drain signal.
            _ = signals.user1.recv() => {
                shared.drain(drain_timeout.map(drain::deadline_in), "SIGUSR1");
            }
            _ = drain_check.tick() => if shared.drain_over(Instant::now()) {
                break Ok("drain");
            },
            // coturn reloads its certificates on SIGUSR2: scripts written
            // for it work here too.
            _ = signals.user2.recv() => reloader.reload("SIGUSR2"),
            e = tasks.first_failure() => break Err(e),
        }
    };
    systemd::stopping();
    shared.shutdown();
    if let Some((fleet, _)) = &fleet {
        fleet.withdraw().await;
    }
    if let Some(path) = admin_socket {
        let _ = std::fs::remove_file(path);
    }
    let signal = result?;
    tracing::info!("{signal}: stopped");
    Ok(())
}
