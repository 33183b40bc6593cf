//! The glue between sockets and the server core: hand an input in, send
//! what comes out, carry out the core's events (bind or close relay
//! sockets), and run its timers.
//!
//! The core sits behind one mutex, held for one input and its output. That
//! is simple and correct; one core per worker thread (sharded by 5-tuple)
//! is the planned step for multi-core relaying.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use edgeice_server::{
    Event, FiveTuple, Input, RelayPort, RelayTransport, Server, ServerConfig, Transmit, Transport,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use edgeice_stun::IntegrityKey;

use super::relay::{RelayPool, RelaySocket};
use super::tcp_relay::{PeerStreams, TcpRelay};
use crate::users::store::UserStore;

/// The user store, re-read when its file changes, so that `edgeice user
/// add` takes effect without a restart.
pub struct WatchedStore {
    store: UserStore,
    modified: Option<SystemTime>,
}

impl WatchedStore {
    pub fn new(store: UserStore) -> Self {
        let modified = modified(store.path());
        WatchedStore { store, modified }
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

    /// Whether the file changed since the last call.
    fn changed(&mut self) -> bool {
        let now = modified(self.store.path());
        let changed = now != self.modified;
        self.modified = now;
        changed
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

/// Where messages for one TCP/TLS client go: its connection's task.
pub type StreamWriter = mpsc::UnboundedSender<StreamCommand>;

/// Everything the I/O tasks share.
pub struct Shared {
    server: Mutex<Server>,
    udp_listeners: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    relays: Mutex<HashMap<SocketAddr, RelaySocket>>,
    /// Ports bound for a reservation token and not yet allocated.
    held: Mutex<HashMap<SocketAddr, UdpSocket>>,
    /// Writers of the TCP/TLS connections, by (client, server) address.
    pub(super) streams: Mutex<HashMap<(SocketAddr, SocketAddr), StreamWriter>>,
    /// TCP relays' listener tasks (RFC 6062), by relay address.
    tcp_relays: Mutex<HashMap<SocketAddr, TcpRelay>>,
    /// Peer connections of TCP relays.
    pub(super) peers: Mutex<PeerStreams>,
    pool: RelayPool,
    /// Users from flags, kept to merge with the store's on reload.
    static_users: HashMap<String, IntegrityKey>,
    store: Mutex<Option<WatchedStore>>,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the whole server down with it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(
        config: ServerConfig,
        pool: RelayPool,
        now: Instant,
        static_users: HashMap<String, IntegrityKey>,
        store: Option<WatchedStore>,
    ) -> Self {
        Shared {
            static_users,
            store: Mutex::new(store),
            server: Mutex::new(Server::new(config, now)),
            udp_listeners: Mutex::new(HashMap::new()),
            relays: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            tcp_relays: Mutex::new(HashMap::new()),
            peers: Mutex::new(PeerStreams::default()),
            pool,
        }
    }

    pub fn add_udp_listener(&self, local: SocketAddr, socket: Arc<UdpSocket>) {
        lock(&self.udp_listeners).insert(local, socket);
    }

    /// Registers a TCP/TLS connection, so that messages for its client
    /// (responses, relayed data) reach its writer.
    pub fn add_stream(&self, from: FiveTuple, writer: StreamWriter) {
        lock(&self.streams).insert((from.client, from.server), writer);
    }

    /// Forgets a closed connection and tells the core.
    pub fn remove_stream(self: &Arc<Self>, from: FiveTuple) {
        lock(&self.streams).remove(&(from.client, from.server));
        self.drive(Input::ConnectionClosed { from });
    }

    /// The core's counters, for the metrics endpoint.
    pub fn snapshot(&self) -> super::metrics::Snapshot {
        let server = lock(&self.server);
        super::metrics::Snapshot {
            stats: server.stats().clone(),
            allocations: server.allocations_by_kind(),
        }
    }

    /// Hands one input to the core and carries out everything it answers.
    pub fn drive(self: &Arc<Self>, input: Input<'_>) {
        let now = Instant::now();
        let mut server = lock(&self.server);
        if let Some(transmit) = server.handle_input(now, input) {
            self.send(&transmit);
        }
        self.run_events(&mut server, now);
    }

    fn run_events(self: &Arc<Self>, server: &mut Server, now: Instant) {
        while let Some(event) = server.poll_event() {
            match event {
                Event::BindRelay {
                    id,
                    transport: RelayTransport::Tcp,
                    family,
                    ..
                } => {
                    let relay = self.bind_tcp_relay(family);
                    let input = Input::RelayBound {
                        id,
                        relay,
                        reserved: None,
                        additional: None,
                    };
                    if let Some(transmit) = server.handle_input(now, input) {
                        self.send(&transmit);
                    }
                }
                Event::BindRelay {
                    id,
                    family,
                    port,
                    additional_family,
                    ..
                } => {
                    let (relay, reserved) = self.bind_relay(family, port);
                    let additional = match (relay, additional_family) {
                        (Some(_), Some(family)) => self.bind_relay(family, RelayPort::Any).0,
                        _ => None,
                    };
                    let input = Input::RelayBound {
                        id,
                        relay,
                        reserved,
                        additional,
                    };
                    if let Some(transmit) = server.handle_input(now, input) {
                        self.send(&transmit);
                    }
                }
                Event::PrivateRelayAdvertised(warning) => tracing::warn!("{warning}"),
                Event::ReleaseRelay { relay } => {
                    lock(&self.relays).remove(&relay);
                    lock(&self.held).remove(&relay);
                    lock(&self.tcp_relays).remove(&relay);
                }
                Event::ConnectPeer { id, relay, peer } => self.connect_peer(id, relay, peer),
                Event::AcceptPeer { id, relay, peer } => self.accept_peer(id, relay, peer),
                Event::RefusePeer { relay, peer } => self.refuse_peer(relay, peer),
                Event::Splice { id, data } => self.splice(id, data),
                Event::ClosePeerConnection { id } => self.close_peer(id),
            }
        }
    }

    /// Binds a TCP relay listener and starts accepting peers on it.
    fn bind_tcp_relay(self: &Arc<Self>, family: edgeice_stun::AddressFamily) -> Option<SocketAddr> {
        match self.pool.bind_tcp(family) {
            Ok((listener, addr)) => {
                let relay = TcpRelay::spawn(self.clone(), listener, addr);
                lock(&self.tcp_relays).insert(addr, relay);
                Some(addr)
            }
            Err(e) => {
                tracing::warn!(error = %e, ?family, "cannot bind a TCP relay");
                None
            }
        }
    }

    /// Binds (or takes from the held ones) the relay socket the core asked
    /// for and starts feeding it; returns its address and, for a
    /// reservation, the held next port's.
    fn bind_relay(
        self: &Arc<Self>,
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
                        tracing::warn!(error = %e, ?family, "cannot bind a relay socket");
                        return (None, None);
                    }
                }
            }
        };
        let (socket, addr) = socket;
        let relay = RelaySocket::spawn(self.clone(), socket, addr);
        lock(&self.relays).insert(addr, relay);
        let reserved = next.map(|(socket, next_addr)| {
            lock(&self.held).insert(next_addr, socket);
            next_addr
        });
        (Some(addr), reserved)
    }

    /// Sends one message where the core said. UDP sends never wait: a full
    /// socket buffer drops the datagram, as the network would.
    fn send(&self, transmit: &Transmit<'_>) {
        match transmit.transport {
            Transport::Udp => {
                let socket = lock(&self.udp_listeners)
                    .get(&transmit.source)
                    .cloned()
                    .or_else(|| {
                        lock(&self.relays)
                            .get(&transmit.source)
                            .map(|r| r.socket.clone())
                    });
                if let Some(socket) = socket {
                    let _ = socket.try_send_to(transmit.contents, transmit.destination);
                }
            }
            Transport::Tcp | Transport::Tls => {
                let key = (transmit.destination, transmit.source);
                if let Some(writer) = lock(&self.streams).get(&key) {
                    let _ = writer.send(StreamCommand::Send(transmit.contents.to_vec()));
                }
            }
        }
    }
}

impl Shared {
    /// Re-reads the user store if its file changed.
    fn reload_users(&self, realm: &str) -> Option<HashMap<String, IntegrityKey>> {
        let mut store = lock(&self.store);
        let store = store.as_mut()?;
        if !store.changed() {
            return None;
        }
        match store.load(realm) {
            Ok(stored) => {
                let mut users = self.static_users.clone();
                users.extend(stored);
                tracing::info!(users = users.len(), "user store changed, users reloaded");
                Some(users)
            }
            Err(e) => {
                tracing::warn!(error = %e, "user store changed but could not be read; keeping the old users");
                None
            }
        }
    }
}

/// Calls the core's timers once per `tick`, and reloads the user store
/// when it changes.
pub async fn run_timers(shared: Arc<Shared>, tick: Duration, realm: String) -> anyhow::Result<()> {
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        let users = shared.reload_users(&realm);
        let now = Instant::now();
        let mut server = lock(&shared.server);
        if let Some(users) = users {
            server.set_users(users);
        }
        if server.poll_timeout().is_some_and(|due| due <= now) {
            server.handle_timeout(now);
        }
        shared.run_events(&mut server, now);
    }
}
