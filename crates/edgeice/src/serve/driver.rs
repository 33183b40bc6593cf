//! The glue between sockets and the server cores: hand an input in, send
//! what comes out, carry out the core's events (bind or close relay
//! sockets), and run the timers.
//!
//! Clients are split into shards by a hash of their IP address, each shard
//! a core with the relay sockets of its allocations, behind its own lock.
//! A relayed packet takes one shard's lock, nobody else's, so cores on
//! different threads do not wait for each other. UDP clients spread by
//! address and port; TCP clients by IP, so that an RFC 6062 data connection
//! meets its control connection's allocation. What crosses shards — quotas,
//! EVEN-PORT reservations (an RTCP allocation may land in another shard than
//! its RTP one), the 401 rate limit — is in the cores' shared state and the
//! `held` sockets, touched on control paths only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use edgeice_server::{
    Event, FiveTuple, Input, RelayPort, RelayTransport, Server, ServerConfig, Transmit, Transport,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use edgeice_stun::IntegrityKey;

use super::log_throttle::LogThrottle;
use super::relay::{RelayPool, RelaySocket};
use super::tcp_relay::{PeerStreams, TcpRelay};
use crate::users::store::UserStore;

/// The user store, re-read when its file changes, so that `edgeice user
/// add` takes effect without a restart.
pub struct WatchedStore {
    store: UserStore,
    /// The file's modification time when it was last read successfully: a
    /// read that fails (SQLITE_BUSY while `edgeice user` writes, a disk
    /// error) leaves it, so the next tick tries again.
    loaded: Option<SystemTime>,
    /// Whether the last reload failed (warned about once, not every tick).
    failing: bool,
}

/// How long a reload waits for a writer's lock: the timer task must not
/// stall, and the next tick tries again anyway.
const RELOAD_PATIENCE: Duration = Duration::from_millis(100);

impl WatchedStore {
    pub fn new(store: UserStore) -> Self {
        if let Err(e) = store.set_busy_timeout(RELOAD_PATIENCE) {
            tracing::warn!(error = %e, "user store: cannot set its busy timeout");
        }
        let loaded = modified(store.path());
        WatchedStore {
            store,
            loaded,
            failing: false,
        }
    }

    /// The keys of `realm`'s users.
    pub fn load(&self, realm: &str) -> anyhow::Result<HashMap<String, IntegrityKey>> {
        Ok(self
            .store
            .keys(realm)?
            .into_iter()
            .map(|(name, key)| (name, IntegrityKey::new(&key)))
            .collect())
    }

    /// The users of `realm` if the file changed since it was last read,
    /// `None` if it did not or cannot be read now (the users loaded before
    /// stay; it is read again at the next call).
    fn reload(&mut self, realm: &str) -> Option<HashMap<String, IntegrityKey>> {
        // Taken before reading: a change made while reading is seen next
        // time.
        let now = modified(self.store.path());
        if now == self.loaded && !self.failing {
            return None;
        }
        match self.load(realm) {
            Ok(users) => {
                self.loaded = now;
                if self.failing {
                    tracing::info!("user store readable again");
                }
                self.failing = false;
                Some(users)
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "user store changed but could not be read; keeping the users loaded \
                         before and trying again every tick"
                    );
                }
                self.failing = true;
                None
            }
        }
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What a TCP/TLS client connection's task is told to do.
pub enum StreamCommand {
    /// Write these bytes to the client.
    Send(Vec<u8>),
    /// From now on, pass bytes between the client and this peer connection
    /// unchanged (RFC 6062 ConnectionBind succeeded).
    Splice(tokio::net::TcpStream, edgeice_server::ConnectionId),
    /// Close the connection.
    Close,
}

/// Messages waiting for one TCP/TLS client; beyond this the client is not
/// reading, and more are dropped, as a full UDP socket buffer would.
pub const STREAM_QUEUE: usize = 512;

/// Bytes waiting for one TCP/TLS client, at most: a client that stops
/// reading while 64 KiB datagrams are relayed to it would otherwise hold
/// `STREAM_QUEUE` of them (32 MiB) of the server's memory.
pub const STREAM_QUEUE_BYTES: usize = 256 * 1024;

/// Where messages for one TCP/TLS client go: its connection's task. The
/// buffers come back through `spare` once written, so a busy connection
/// allocates nothing per packet once warmed up.
#[derive(Clone)]
pub struct StreamWriter {
    pub commands: mpsc::Sender<StreamCommand>,
    pub spare: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Bytes queued and not yet taken by the connection's task.
    pub queued: Arc<AtomicUsize>,
}

impl StreamWriter {
    /// Queues a copy of `bytes` for the client; drops it if the queue is
    /// full, in messages or in bytes.
    fn send_bytes(&self, bytes: &[u8]) {
        let len = bytes.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > STREAM_QUEUE_BYTES {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return;
        }
        let mut buf = lock(&self.spare).pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        if self.commands.try_send(StreamCommand::Send(buf)).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// Orders something other than a send; never dropped for a full queue.
    pub fn command(&self, command: StreamCommand) {
        let commands = self.commands.clone();
        tokio::spawn(async move {
            let _ = commands.send(command).await;
        });
    }
}

/// One shard: a core, and the sockets of its allocations.
pub struct Shard {
    server: Server,
    relays: HashMap<SocketAddr, RelaySocket>,
    /// TCP relays' listener tasks (RFC 6062), by relay address.
    tcp_relays: HashMap<SocketAddr, TcpRelay>,
    /// Writes the core's records (sessions, refusals).
    records: super::records::Records,
    /// What the kernel fast path relayed for allocations, by client, from
    /// their routes already removed (empty without the kernel path).
    fast_traffic: HashMap<FiveTuple, edgeice_server::Traffic>,
}

/// Which shard a packet, task or connection belongs to.
pub type ShardId = usize;

/// Everything the I/O tasks share.
pub struct Shared {
    shards: Box<[Mutex<Shard>]>,
    /// Keys the client-to-shard hash, so nobody outside can aim at a shard.
    hasher: std::collections::hash_map::RandomState,
    /// The listening UDP sockets, fixed at start-up (read without a lock).
    udp_listeners: HashMap<SocketAddr, Arc<UdpSocket>>,
    /// Writers of the TCP/TLS connections, by (client, server) address.
    pub(super) streams: Mutex<HashMap<(SocketAddr, SocketAddr), StreamWriter>>,
    /// Peer connections of TCP relays.
    pub(super) peers: Mutex<PeerStreams>,
    /// Ports bound for a reservation token and not yet allocated; the
    /// allocation that claims one may belong to another shard.
    held: Mutex<HashMap<SocketAddr, UdpSocket>>,
    /// Private relay IPs already warned about (each core reports its own).
    warned: Mutex<Vec<std::net::IpAddr>>,
    pool: RelayPool,
    /// Users from flags and the config file, kept to merge with the
    /// store's on reload; replaced on SIGHUP. Locked after `store` only.
    static_users: Mutex<HashMap<String, IntegrityKey>>,
    /// Held while new users are put in the shards, so that a store reload
    /// and a SIGHUP cannot undo each other.
    store: Mutex<Option<WatchedStore>>,
    /// The kernel fast path, when on.
    kernel: Option<super::kernel::KernelPath>,
    /// Relay sockets that could not be bound, said at most every 10 s.
    bind_failures: Mutex<LogThrottle>,
    /// Liveness, readiness, open connections (`/healthz`, `/readyz`).
    pub health: super::health::Health,
    /// What the cores share: the allocation count, the drain flag and the
    /// alternates they redirect to.
    pub core: Arc<edgeice_server::SharedState>,
    /// A drain under way, and its deadline.
    pub(super) drain: super::drain::Drain,
    /// The fleet's shared state (`--redis`), set once before serving.
    fleet: std::sync::OnceLock<Arc<super::fleet::Fleet>>,
    /// Users and secrets from the fleet, merged with the others at each
    /// change of either. Locked after `store` only.
    fleet_credentials: Mutex<FleetCredentials>,
}

/// The credentials a fleet's Redis gives, and the secrets of the settings
/// they are merged with.
#[derive(Default)]
struct FleetCredentials {
    users: HashMap<String, IntegrityKey>,
    secrets: Vec<String>,
    static_secrets: Vec<String>,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the whole server down with it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// `shards` cores from clones of `config` (which share its quota
    /// ledger), and the listening UDP sockets.
    pub fn new(
        config: ServerConfig,
        shards: usize,
        udp_listeners: HashMap<SocketAddr, Arc<UdpSocket>>,
        pool: RelayPool,
        now: Instant,
        static_users: HashMap<String, IntegrityKey>,
        (store, kernel): (Option<WatchedStore>, Option<super::kernel::KernelPath>),
    ) -> Self {
        let fleet_credentials = Mutex::new(FleetCredentials {
            static_secrets: config.auth_secrets.clone(),
            ..FleetCredentials::default()
        });
        let core = config.shared.clone();
        let shards = (0..shards.max(1))
            .map(|_| {
                Mutex::new(Shard {
                    server: Server::new(config.clone(), now),
                    relays: HashMap::new(),
                    tcp_relays: HashMap::new(),
                    records: Default::default(),
                    fast_traffic: HashMap::new(),
                })
            })
            .collect();
        Shared {
            shards,
            hasher: std::collections::hash_map::RandomState::new(),
            static_users: Mutex::new(static_users),
            store: Mutex::new(store),
            kernel,
            udp_listeners,
            streams: Mutex::new(HashMap::new()),
            peers: Mutex::new(PeerStreams::default()),
            warned: Mutex::new(Vec::new()),
            held: Mutex::new(HashMap::new()),
            pool,
            bind_failures: Mutex::new(LogThrottle::new(Duration::from_secs(10))),
            health: super::health::Health::new(now),
            core,
            drain: Default::default(),
            fleet: std::sync::OnceLock::new(),
            fleet_credentials,
        }
    }

    /// Joins the fleet: allocations take the fleet-wide quota from now on.
    pub fn set_fleet(&self, fleet: Arc<super::fleet::Fleet>) {
        let _ = self.fleet.set(fleet);
    }

    /// Puts the fleet's users and secrets in force in every core, merged
    /// with those of the settings (as a reload does).
    pub fn set_fleet_credentials(
        &self,
        users: HashMap<String, IntegrityKey>,
        secrets: Vec<String>,
    ) {
        let _reloading = lock(&self.store);
        let (all_users, all_secrets) = {
            let mut fleet = lock(&self.fleet_credentials);
            fleet.users = users;
            fleet.secrets = secrets;
            let mut all_users = lock(&self.static_users).clone();
            all_users.extend(fleet.users.iter().map(|(n, k)| (n.clone(), k.clone())));
            let mut all_secrets = fleet.static_secrets.clone();
            all_secrets.extend(fleet.secrets.iter().cloned());
            all_secrets.dedup();
            (all_users, all_secrets)
        };
        for shard in self.shards.iter() {
            // Copied before the lock, the old ones dropped after it: the
            // shard's packets wait only for two moves.
            let (users, secrets) = (all_users.clone(), all_secrets.clone());
            let replaced = {
                let mut shard = lock(shard);
                (
                    shard.server.set_users(users),
                    shard.server.set_auth_secrets(secrets),
                )
            };
            drop(replaced);
        }
    }

    /// Signs nonces with the fleet's key from now on, on the Unix clock.
    pub fn share_nonces(&self, key: &[u8; 32]) {
        let now = Instant::now();
        let unix_now = super::fleet::unix_ms() / 1000;
        for shard in self.shards.iter() {
            lock(shard).server.share_nonces(key, now, unix_now);
        }
    }

    /// The shard of a client. UDP clients spread by address and port;
    /// TCP/TLS clients by IP alone, so that an RFC 6062 data connection
    /// meets the allocation its control connection made.
    pub fn shard_of(&self, from: &FiveTuple) -> ShardId {
        use std::hash::BuildHasher;
        let hash = match from.transport {
            Transport::Udp => self.hasher.hash_one(from.client),
            Transport::Tcp | Transport::Tls => self.hasher.hash_one(from.client.ip()),
        };
        (hash as usize) % self.shards.len()
    }

    /// Registers a TCP/TLS connection, so that messages for its client
    /// (responses, relayed data) reach its writer.
    pub fn add_stream(&self, from: FiveTuple, writer: StreamWriter) {
        lock(&self.streams).insert((from.client, from.server), writer);
    }

    /// Whether the client of this connection holds an allocation on it.
    pub fn has_allocation(&self, from: &FiveTuple) -> bool {
        self.shards
            .get(self.shard_of(from))
            .is_some_and(|shard| lock(shard).server.allocation(from).is_some())
    }

    /// Forgets a closed connection and tells the core.
    pub fn remove_stream(self: &Arc<Self>, from: FiveTuple) {
        lock(&self.streams).remove(&(from.client, from.server));
        self.drive(self.shard_of(&from), Input::ConnectionClosed { from });
    }

    /// All cores' counters added up, for the metrics endpoint.
    pub fn snapshot(&self) -> super::metrics::Snapshot {
        let mut snapshot = super::metrics::Snapshot {
            draining: self.core.draining(),
            ..Default::default()
        };
        // Relay ports in use, per IP: (UDP, TCP).
        let mut in_use: HashMap<std::net::IpAddr, (u64, u64)> = HashMap::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            snapshot.stats.absorb(shard.server.stats());
            for (kind, count) in shard.server.allocations_by_kind() {
                *snapshot.allocations.entry(kind).or_insert(0) += count;
            }
            for relay in shard.relays.keys() {
                in_use.entry(relay.ip()).or_default().0 += 1;
            }
            for relay in shard.tcp_relays.keys() {
                in_use.entry(relay.ip()).or_default().1 += 1;
            }
        }
        for relay in lock(&self.held).keys() {
            in_use.entry(relay.ip()).or_default().0 += 1;
        }
        let ports = self.pool.port_count();
        snapshot.free_relay_ports = self
            .pool
            .ips()
            .into_iter()
            .map(|ip| {
                let (udp, tcp) = in_use.get(&ip).copied().unwrap_or_default();
                (ip, ports.saturating_sub(udp), ports.saturating_sub(tcp))
            })
            .collect();
        snapshot.fleet = self.fleet.get().map(|fleet| fleet.snapshot());
        snapshot.streams = self.health.streams();
        snapshot.spliced = self.health.spliced();
        if let Some(kernel) = &self.kernel {
            snapshot.kernel = Some(kernel.absorb_into(&mut snapshot.stats));
        }
        snapshot
    }

    /// Whether a user or REST API secret is loaded (every core has the
    /// same ones).
    pub fn can_authenticate(&self) -> bool {
        self.shards
            .first()
            .is_some_and(|shard| lock(shard).server.can_authenticate())
    }

    /// Hands one input to the core of `shard` and carries out everything it
    /// answers.
    pub fn drive(self: &Arc<Self>, shard: ShardId, input: Input<'_>) {
        let now = Instant::now();
        let Some(shard_lock) = self.shards.get(shard) else {
            return;
        };
        let mut guard = lock(shard_lock);
        let state = &mut *guard;
        if let Some(transmit) = state.server.handle_input(now, input) {
            self.send(&state.relays, &transmit);
        }
        self.run_events(shard, state, now);
    }

    fn run_events(self: &Arc<Self>, shard_id: ShardId, shard: &mut Shard, now: Instant) {
        self.run_core_events(shard_id, shard);
        while let Some(mut report) = shard.server.poll_report() {
            // Its kernel routes were removed (above) before its end was
            // reported: their counts are in.
            if let (edgeice_server::Report::SessionEnd(session, _), Some(fleet)) =
                (&report, self.fleet.get())
            {
                fleet.release(&session.user);
            }
            if let edgeice_server::Report::SessionEnd(session, _) = &mut report
                && let Some(fast) = shard.fast_traffic.remove(&session.five_tuple)
            {
                let t = &mut session.traffic;
                t.packets_to_peer += fast.packets_to_peer;
                t.bytes_to_peer += fast.bytes_to_peer;
                t.packets_to_client += fast.packets_to_client;
                t.bytes_to_client += fast.bytes_to_client;
            }
            shard.records.write(report, now);
        }
    }

    fn run_core_events(self: &Arc<Self>, shard_id: ShardId, shard: &mut Shard) {
        while let Some(event) = shard.server.poll_event() {
            match event {
                Event::BindRelay { id, .. } => match self.fleet_reservation(shard, id) {
                    Some((fleet, user, runtime)) => {
                        // Redis answers later: the relay is bound then,
                        // in a task that takes this shard's lock anew.
                        let shared = self.clone();
                        runtime.spawn(async move {
                            let granted = fleet.reserve(&user).await;
                            shared.reserved(shard_id, event, granted, &fleet, &user);
                        });
                    }
                    None => {
                        self.bind_for(shard_id, shard, event);
                    }
                },
                Event::PrivateRelayAdvertised(warning) => {
                    let mut warned = lock(&self.warned);
                    if !warned.contains(&warning.ip) {
                        warned.push(warning.ip);
                        tracing::warn!("{warning}");
                    }
                }
                Event::FastPathInstall {
                    route,
                    until,
                    capped,
                } => {
                    if let Some(kernel) = &self.kernel {
                        kernel.install(&route, until, capped);
                    }
                }
                Event::FastPathAllowance { client, bytes } => {
                    // Without the kernel path nothing was lent: all of it
                    // goes back.
                    let left = match &self.kernel {
                        Some(kernel) => kernel.lend(&client, bytes),
                        None => bytes,
                    };
                    shard.server.return_fast_path_allowance(&client, left);
                }
                Event::FastPathRemove(route) => {
                    if let Some(kernel) = &self.kernel {
                        let (unspent, to_peer, to_client) = kernel.remove(&route);
                        // What the kernel relayed joins the socket path's
                        // counts in the session-end record.
                        let traffic = shard.fast_traffic.entry(route.client).or_default();
                        traffic.packets_to_peer += to_peer.packets;
                        traffic.bytes_to_peer += to_peer.bytes;
                        traffic.packets_to_client += to_client.packets;
                        traffic.bytes_to_client += to_client.bytes;
                        shard
                            .server
                            .return_fast_path_allowance(&route.client, unspent);
                    }
                }
                Event::ReleaseRelay { relay } => {
                    shard.relays.remove(&relay);
                    lock(&self.held).remove(&relay);
                    shard.tcp_relays.remove(&relay);
                }
                Event::ConnectPeer {
                    id: connection,
                    relay,
                    peer,
                } => self.connect_peer(shard_id, connection, relay, peer),
                Event::AcceptPeer { id, relay, peer } => self.accept_peer(id, relay, peer),
                Event::RefusePeer { relay, peer } => self.refuse_peer(relay, peer),
                Event::Splice { id, data } => self.splice(id, data),
                Event::ClosePeerConnection { id } => self.close_peer(id),
            }
        }
    }

    /// Whether the fleet-wide quota must be taken before `id`'s relay is
    /// bound: with `--redis`, in an async runtime.
    fn fleet_reservation(
        &self,
        shard: &Shard,
        id: edgeice_server::RelayRequestId,
    ) -> Option<(Arc<super::fleet::Fleet>, String, tokio::runtime::Handle)> {
        let fleet = self.fleet.get()?.clone();
        let user = shard.server.pending_user(id)?.to_owned();
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some((fleet, user, runtime))
    }

    /// The fleet quota answered for the Allocate of `event`: bind its relay
    /// (unless it went away meanwhile), or refuse it with 486.
    fn reserved(
        self: &Arc<Self>,
        shard_id: ShardId,
        event: Event,
        granted: bool,
        fleet: &Arc<super::fleet::Fleet>,
        user: &str,
    ) {
        let (Some(shard_lock), Event::BindRelay { id, .. }) = (self.shards.get(shard_id), event)
        else {
            return;
        };
        let mut guard = lock(shard_lock);
        let state = &mut *guard;
        if state.server.pending_user(id).is_none() {
            // Its client left while Redis answered.
            if granted {
                fleet.release(user);
            }
        } else if !granted {
            if let Some(transmit) = state.server.refuse_relay(id) {
                self.send(&state.relays, &transmit);
            }
        } else if !self.bind_for(shard_id, state, event) {
            fleet.release(user);
        }
        self.run_events(shard_id, state, Instant::now());
    }

    /// Binds the relay `event` asks for and answers the core; whether one
    /// was bound.
    fn bind_for(self: &Arc<Self>, shard_id: ShardId, shard: &mut Shard, event: Event) -> bool {
        match event {
            Event::BindRelay {
                id,
                transport: RelayTransport::Tcp,
                family,
                ..
            } => {
                let relay = self.bind_tcp_relay(shard_id, shard, family);
                let input = Input::RelayBound {
                    id,
                    relay,
                    reserved: None,
                    additional: None,
                };
                // Read after binding: the Allocate latency includes it.
                let bound = Instant::now();
                if let Some(transmit) = shard.server.handle_input(bound, input) {
                    self.send(&shard.relays, &transmit);
                }
                relay.is_some()
            }
            Event::BindRelay {
                id,
                family,
                port,
                additional_family,
                ..
            } => {
                let (relay, reserved) = self.bind_relay(shard_id, shard, family, port);
                let additional = match (relay, additional_family) {
                    (Some(_), Some(family)) => {
                        self.bind_relay(shard_id, shard, family, RelayPort::Any).0
                    }
                    _ => None,
                };
                let input = Input::RelayBound {
                    id,
                    relay,
                    reserved,
                    additional,
                };
                let bound = Instant::now();
                if let Some(transmit) = shard.server.handle_input(bound, input) {
                    self.send(&shard.relays, &transmit);
                }
                relay.is_some()
            }
            _ => false,
        }
    }

    /// Binds a TCP relay listener and starts accepting peers on it.
    fn bind_tcp_relay(
        self: &Arc<Self>,
        id: ShardId,
        shard: &mut Shard,
        family: edgeice_stun::AddressFamily,
    ) -> Option<SocketAddr> {
        match self.pool.bind_tcp(family) {
            Ok((listener, addr)) => {
                let relay = TcpRelay::spawn(self.clone(), id, listener, addr);
                shard.tcp_relays.insert(addr, relay);
                Some(addr)
            }
            Err(e) => {
                self.bind_failed(&e, family, "TCP relay");
                None
            }
        }
    }

    /// Binds (or takes from the held ones) the relay socket the core asked
    /// for and starts feeding it; returns its address and, for a
    /// reservation, the held next port's.
    fn bind_relay(
        self: &Arc<Self>,
        id: ShardId,
        shard: &mut Shard,
        family: edgeice_stun::AddressFamily,
        port: RelayPort,
    ) -> (Option<SocketAddr>, Option<SocketAddr>) {
        let (socket, next) = match port {
            RelayPort::Reserved(addr) => match lock(&self.held).remove(&addr) {
                Some(socket) => ((socket, addr), None),
                None => return (None, None),
            },
            RelayPort::Any | RelayPort::Even { .. } => {
                let (even, reserve_next) = match port {
                    RelayPort::Even { reserve_next } => (true, reserve_next),
                    _ => (false, false),
                };
                match self.pool.bind(family, even, reserve_next) {
                    Ok(bound) => (bound.socket, bound.next),
                    Err(e) => {
                        self.bind_failed(&e, family, "relay socket");
                        return (None, None);
                    }
                }
            }
        };
        let (socket, addr) = socket;
        let relay = RelaySocket::spawn(self.clone(), id, socket, addr);
        shard.relays.insert(addr, relay);
        let reserved = next.map(|(socket, next_addr)| {
            lock(&self.held).insert(next_addr, socket);
            next_addr
        });
        (Some(addr), reserved)
    }

    /// Says, at most once in a while, that a relay could not be bound (out
    /// of files or ports, the client gets 508).
    fn bind_failed(&self, error: &std::io::Error, family: edgeice_stun::AddressFamily, what: &str) {
        if let Some(suppressed) = lock(&self.bind_failures).ready(Instant::now()) {
            tracing::warn!(error = %error, ?family, suppressed, "cannot bind a {what}");
        }
    }

    /// Sends one message where the core said. UDP sends never wait: a full
    /// socket buffer drops the datagram, as the network would.
    fn send(&self, relays: &HashMap<SocketAddr, RelaySocket>, transmit: &Transmit<'_>) {
        match transmit.transport {
            Transport::Udp => {
                let socket = self
                    .udp_listeners
                    .get(&transmit.source)
                    .or_else(|| relays.get(&transmit.source).map(|r| &r.socket));
                if let Some(socket) = socket {
                    // Straight to the kernel, not tokio's try_send_to: that
                    // says WouldBlock, without trying, for a socket whose
                    // first writable event the reactor has not seen yet,
                    // which dropped the first datagrams relayed from a
                    // relay socket just bound (a ChannelData right after
                    // its ChannelBind).
                    let destination = socket2::SockAddr::from(transmit.destination);
                    let _ = socket2::SockRef::from(socket).send_to(transmit.payload, &destination);
                }
            }
            Transport::Tcp | Transport::Tls => {
                let key = (transmit.destination, transmit.source);
                if let Some(writer) = lock(&self.streams).get(&key) {
                    writer.send_bytes(transmit.payload);
                }
            }
        }
    }
}

impl Shared {
    /// Every live allocation of every core, oldest first (for the admin
    /// socket's listing).
    pub fn sessions(&self) -> Vec<edgeice_server::Session> {
        let now = Instant::now();
        let mut all = Vec::new();
        for shard in self.shards.iter() {
            all.extend(lock(shard).server.sessions(now));
        }
        all.sort_by_key(|s| s.id);
        all
    }

    /// Ends allocation `id` (its session-end says `kicked`); a TCP/TLS
    /// client's connection is closed too, so that it notices at once.
    /// Whether there was one.
    pub fn kick(self: &Arc<Self>, id: edgeice_server::SessionId) -> bool {
        let now = Instant::now();
        for (shard_id, shard) in self.shards.iter().enumerate() {
            let mut guard = lock(shard);
            let state = &mut *guard;
            let Some(five_tuple) = state.server.kick(now, id) else {
                continue;
            };
            self.run_events(shard_id, state, now);
            drop(guard);
            if five_tuple.transport != Transport::Udp
                && let Some(writer) =
                    lock(&self.streams).get(&(five_tuple.client, five_tuple.server))
            {
                writer.command(StreamCommand::Close);
            }
            return true;
        }
        false
    }

    /// As the server stops: ends every allocation, each with its
    /// session-end record (reason `shutdown`, with what the kernel relayed
    /// for it), then detaches what would outlive the process (the kernel
    /// fast path).
    pub fn shutdown(self: &Arc<Self>) {
        self.end_all(edgeice_server::EndReason::Shutdown);
        if let Some(kernel) = &self.kernel {
            kernel.shut_down();
        }
    }

    /// Ends every allocation, each with its session-end record saying
    /// `why`; how many there were.
    pub fn end_all(self: &Arc<Self>, why: edgeice_server::EndReason) -> usize {
        let now = Instant::now();
        let mut ended = 0;
        for (shard_id, shard) in self.shards.iter().enumerate() {
            let mut guard = lock(shard);
            let state = &mut *guard;
            ended += state.server.allocation_count();
            state.server.end_all(now, why);
            self.run_events(shard_id, state, now);
        }
        ended
    }

    /// Re-reads the user store if its file changed (or the last reading
    /// failed), and puts its users in force.
    fn reload_users(&self, realm: &str) {
        let mut store = lock(&self.store);
        let Some(stored) = store.as_mut().and_then(|s| s.reload(realm)) else {
            return;
        };
        let mut users = lock(&self.static_users).clone();
        users.extend(stored);
        tracing::info!(users = users.len(), "user store changed, users reloaded");
        for shard in self.shards.iter() {
            // Copied before the lock, so the shard's packets wait only
            // for a move.
            let copy = users.clone();
            let replaced = lock(shard).server.set_users(copy);
            drop(replaced);
        }
    }

    /// Puts new settings in force in every core (SIGHUP): `static_users`
    /// with the user store read now, and `new`'s secrets and peer lists
    /// (its users are ignored). Fails, changing nothing, if the store
    /// cannot be read. Returns what changed, for the log.
    pub fn reload(
        &self,
        realm: &str,
        static_users: HashMap<String, IntegrityKey>,
        mut new: edgeice_server::Reloadable,
    ) -> anyhow::Result<Vec<String>> {
        let mut store = lock(&self.store);
        let mut users = static_users.clone();
        if let Some(store) = store.as_mut() {
            let loaded = modified(store.store.path());
            let stored = store.load(realm).map_err(|e| {
                e.context(format!(
                    "reading the user store {}",
                    store.store.path().display()
                ))
            })?;
            users.extend(stored);
            store.loaded = loaded;
            store.failing = false;
        }
        {
            // The fleet's users and secrets stay in force over a reload.
            let mut fleet = lock(&self.fleet_credentials);
            users.extend(fleet.users.iter().map(|(n, k)| (n.clone(), k.clone())));
            fleet.static_secrets = new.auth_secrets.clone();
            new.auth_secrets.extend(fleet.secrets.iter().cloned());
            new.auth_secrets.dedup();
        }
        new.users = users;
        let Some(first) = self.shards.first() else {
            return Ok(Vec::new());
        };
        let old = lock(first).server.reloadable();
        *lock(&self.static_users) = static_users;
        let changes = reload_changes(&old, &new);
        for shard in self.shards.iter() {
            // Copied before the lock and the old settings dropped after
            // it: the shard's packets wait only for moves.
            let copy = new.clone();
            let replaced = lock(shard).server.reload(copy);
            drop(replaced);
        }
        Ok(changes)
    }
}

/// What a reload changed, in a few words each (never a secret).
fn reload_changes(
    old: &edgeice_server::Reloadable,
    new: &edgeice_server::Reloadable,
) -> Vec<String> {
    let mut changes = Vec::new();
    let added = new
        .users
        .keys()
        .filter(|u| !old.users.contains_key(*u))
        .count();
    let removed = old
        .users
        .keys()
        .filter(|u| !new.users.contains_key(*u))
        .count();
    changes.push(format!(
        "{} users ({added} added, {removed} removed)",
        new.users.len()
    ));
    if old.auth_secrets != new.auth_secrets {
        changes.push(format!(
            "auth secrets changed ({} now)",
            new.auth_secrets.len()
        ));
    }
    if old.allow_peers != new.allow_peers
        || old.deny_peers != new.deny_peers
        || old.deny_private_peers != new.deny_private_peers
    {
        let list = |nets: &[ipnet::IpNet]| {
            nets.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        changes.push(format!(
            "peer policy changed (allow [{}], deny [{}]{})",
            list(&new.allow_peers),
            list(&new.deny_peers),
            if new.deny_private_peers {
                ", private peers denied"
            } else {
                ""
            }
        ));
    }
    changes
}

/// Calls the core's timers once per `tick`, and reloads the user store
/// when it changes.
pub async fn run_timers(shared: Arc<Shared>, tick: Duration, realm: String) -> anyhow::Result<()> {
    let mut interval = tokio::time::interval(tick);
    let mut heartbeat = super::systemd::Heartbeat::from_env();
    loop {
        interval.tick().await;
        shared.reload_users(&realm);
        let now = Instant::now();
        shared.health.beat(now);
        let mut allocations = 0;
        for (id, shard) in shared.shards.iter().enumerate() {
            let mut guard = lock(shard);
            let shard = &mut *guard;
            allocations += shard.server.allocation_count();
            if shard.server.poll_timeout().is_some_and(|due| due <= now) {
                shard.server.handle_timeout(now);
            }
            shared.run_events(id, shard, now);
            shard.records.flush(now);
        }
        heartbeat.tick(now, allocations, shared.core.draining());
    }
}
