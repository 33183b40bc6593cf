//! Phase 1 against servers: server-reflexive candidates from STUN Binding
//! requests and relayed candidates from TURN allocations (edgeice-client's
//! state machines), one query per (host socket, server) of the same
//! address family, all in parallel and each bounded by its own
//! transaction timeout, so a dead server delays nothing else. The
//! allocations also carry the checks and data of relayed candidates.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_client::{
    Allocation, AllocationConfig, AllocationEvent, BindingClient, BindingEvent, ConnectionBind,
    Credentials, RelayProtocol, TransactionConfig, Transport,
};

use crate::config::{AgentConfig, ServerTransport, StunServer, TurnServer};
use crate::io::{Datagram, Route};
use crate::rng::Random;

mod ms_turn;

/// Why data or a connection could not go through a TURN relay.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The address is none of the agent's relayed candidates (of that
    /// protocol).
    #[error("{0} is not a relayed address")]
    NotRelayed(SocketAddr),
    /// The TURN client refused (too large for a TURN message, the
    /// allocation is gone…).
    #[error(transparent)]
    Client(#[from] edgeice_client::ClientError),
}

/// Where an RFC 6062 data connection goes: from the IP of the socket key
/// the control connection was opened from, to the TURN server, with TLS
/// or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DataConnectionRoute {
    pub socket: SocketAddr,
    pub server: SocketAddr,
    pub tls: bool,
}

/// A STUN or TURN server as the agent names it: where it listens and its
/// URL (two entries of the configuration may share an address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerName {
    pub address: SocketAddr,
    pub url: String,
}

impl ServerName {
    pub(crate) fn of(address: SocketAddr, url: &str) -> ServerName {
        ServerName {
            address,
            url: url.to_owned(),
        }
    }
}

/// What a server query produced.
#[derive(Debug)]
pub(crate) enum Gathered {
    /// A server-reflexive address seen by a STUN (or TURN) server.
    Reflexive {
        component: u16,
        socket: SocketAddr,
        mapped: SocketAddr,
        server: ServerName,
    },
    /// A relayed address allocated on a TURN server.
    Relayed {
        component: u16,
        socket: SocketAddr,
        relayed: SocketAddr,
        mapped: SocketAddr,
        server: ServerName,
        /// How the server was reached: relays reached over UDP rank first.
        transport: ServerTransport,
    },
    /// A TCP relayed address (RFC 6062), for a passive ICE-TCP candidate.
    RelayedTcp {
        component: u16,
        socket: SocketAddr,
        relayed: SocketAddr,
        mapped: SocketAddr,
        server: ServerName,
    },
    /// A peer connected to a TCP relayed address (RFC 6062
    /// ConnectionAttempt): a data connection must be opened and bound.
    PeerConnection {
        relayed: SocketAddr,
        peer: SocketAddr,
        connection_id: u32,
        via: DataConnectionRoute,
    },
    /// The TCP relay connected to `peer` as asked (RFC 6062 Connect).
    RelayConnected {
        relayed: SocketAddr,
        peer: SocketAddr,
        connection_id: u32,
        via: DataConnectionRoute,
    },
    /// The TCP relay could not connect to `peer`.
    RelayConnectFailed {
        relayed: SocketAddr,
        peer: SocketAddr,
        reason: String,
    },
    /// A server gave nothing, or an allocation was lost.
    Failed {
        server: String,
        code: Option<u16>,
        reason: String,
    },
}

/// One Binding request to a STUN server from one host socket.
struct StunQuery {
    component: u16,
    socket: SocketAddr,
    server: StunServer,
    client: BindingClient,
    done: bool,
}

/// One allocation on a TURN server from one host socket.
struct TurnQuery {
    component: u16,
    /// The host socket, which also names the TCP/TLS connection to the
    /// server; for a TCP relay's own control connection, the socket's IP
    /// with port 0 (one connection per allocation: RFC 8656 §2).
    socket: SocketAddr,
    /// UDP relay, or TCP relay (RFC 6062).
    relay: RelayProtocol,
    server: TurnServer,
    allocation: Allocation,
    /// Allocated or failed: gathering no longer waits for it.
    done: bool,
    relayed: Option<SocketAddr>,
    /// Peers a channel was asked for, so each is asked once.
    channels: HashSet<SocketAddr>,
}

impl TurnQuery {
    /// Where an RFC 6062 data connection for this allocation goes.
    fn data_connection_route(&self) -> DataConnectionRoute {
        DataConnectionRoute {
            socket: self.socket,
            server: self.server.address,
            tls: self.server.transport == ServerTransport::Tls,
        }
    }

    /// Whether input from `from` on `socket` (over a stream or not) is this
    /// allocation's server talking.
    fn matches(&self, socket: SocketAddr, from: SocketAddr, stream: bool) -> bool {
        self.socket == socket
            && self.server.address == from
            && (self.server.transport != ServerTransport::Udp) == stream
    }
}

/// The server queries of one agent.
pub(crate) struct Gatherer {
    stun_servers: Vec<StunServer>,
    turn_servers: Vec<TurnServer>,
    /// Also allocate TCP relays on servers reached over TCP or TLS.
    tcp_relays: bool,
    transactions: TransactionConfig,
    stun: Vec<StunQuery>,
    turn: Vec<TurnQuery>,
    /// Ask TURN servers in MS-TURN (an MS-ICE2 agent, as Lync clients do).
    speak_ms_turn: bool,
    ms_turn: Vec<ms_turn::MsTurnQuery>,
    results: VecDeque<Gathered>,
    /// Seeds each client's transaction IDs.
    rng: Random,
}

fn timeout_reason(transactions: &TransactionConfig) -> String {
    format!("no response after {} requests", transactions.max_requests)
}

/// Why an allocation failed (`code` from the server, or none when it
/// never answered), or why the one at `relayed` was lost.
fn failure_reason(
    code: Option<u16>,
    reason: String,
    relayed: Option<SocketAddr>,
    transactions: &TransactionConfig,
) -> String {
    match (code, relayed) {
        (None, None) if reason.is_empty() => timeout_reason(transactions),
        (_, Some(relayed)) => format!("relay {relayed} lost: {reason}"),
        _ => reason,
    }
}

/// What an allocation made from (component, host socket) on `server`
/// gives: the relayed candidate and, over UDP, the server-reflexive one
/// (over TCP or TLS the server saw a TCP mapping, of no use for UDP).
fn push_allocated(
    results: &mut VecDeque<Gathered>,
    (component, socket): (u16, SocketAddr),
    server: &TurnServer,
    relayed: SocketAddr,
    mapped: SocketAddr,
) {
    let named = ServerName::of(server.address, &server.url);
    if server.transport == ServerTransport::Udp {
        results.push_back(Gathered::Reflexive {
            component,
            socket,
            mapped,
            server: named.clone(),
        });
    }
    results.push_back(Gathered::Relayed {
        component,
        socket,
        relayed,
        mapped,
        server: named,
        transport: server.transport,
    });
}

impl Gatherer {
    pub(crate) fn new(config: &AgentConfig, rng: Random) -> Gatherer {
        Gatherer {
            stun_servers: config.stun_servers.clone(),
            turn_servers: config.turn_servers.clone(),
            tcp_relays: config.tcp_relays,
            // Gathering gives up sooner than RFC 8489's 39.5 s: about 9.5 s
            // (requests at 0, 0.5, 1.5, 3.5, 7.5 s, then 2 s more), the
            // time in which a call that waits on it would be abandoned.
            transactions: TransactionConfig {
                rto: Duration::from_millis(500),
                max_requests: 5,
                last_wait_factor: 4,
                ..TransactionConfig::default()
            },
            stun: Vec::new(),
            turn: Vec::new(),
            speak_ms_turn: config.dialect == crate::Dialect::MsIce2,
            ms_turn: Vec::new(),
            results: VecDeque::new(),
            rng,
        }
    }

    /// The retransmission settings for a new client, with a seed of its
    /// own for its transaction IDs.
    fn client_transactions(&mut self) -> TransactionConfig {
        TransactionConfig {
            id_seed: Some(self.rng.next_u64()),
            ..self.transactions
        }
    }

    /// Starts the queries from a new host socket to every server of its
    /// address family.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        component: u16,
        socket: SocketAddr,
        out: &mut VecDeque<Datagram>,
    ) {
        for server in self.stun_servers.clone() {
            if server.address.is_ipv4() != socket.is_ipv4() {
                continue;
            }
            let transactions = self.client_transactions();
            let mut client = BindingClient::new(server.address, Transport::Udp, transactions);
            let started = client.send_request(now);
            let mut query = StunQuery {
                component,
                socket,
                server,
                client,
                done: false,
            };
            if let Err(e) = started {
                query.done = true;
                self.results.push_back(Gathered::Failed {
                    server: query.server.url.clone(),
                    code: None,
                    reason: e.to_string(),
                });
            }
            self.stun.push(query);
        }
        for server in self.turn_servers.clone() {
            if server.address.is_ipv4() != socket.is_ipv4() {
                continue;
            }
            if self.speak_ms_turn {
                let transactions = self.client_transactions();
                let started =
                    ms_turn::MsTurnQuery::start(now, component, socket, &server, transactions);
                match started {
                    Ok(query) => self.ms_turn.push(query),
                    Err(reason) => self.results.push_back(Gathered::Failed {
                        server: server.url.clone(),
                        code: None,
                        reason,
                    }),
                }
                continue;
            }
            self.allocate(now, component, socket, &server, RelayProtocol::Udp);
        }
        self.collect(out);
    }

    /// Starts TCP relay allocations (RFC 6062) from `ip` on the servers
    /// reached over TCP or TLS, once per IP and server, if configured.
    pub(crate) fn start_tcp_relays(
        &mut self,
        now: Instant,
        component: u16,
        ip: std::net::IpAddr,
        out: &mut VecDeque<Datagram>,
    ) {
        if !self.tcp_relays {
            return;
        }
        let key = SocketAddr::new(ip, 0);
        for server in self.turn_servers.clone() {
            let usable = server.transport != ServerTransport::Udp
                && server.address.is_ipv4() == ip.is_ipv4();
            let started = self
                .turn
                .iter()
                .any(|q| q.socket == key && q.server.address == server.address);
            if usable && !started {
                self.allocate(now, component, key, &server, RelayProtocol::Tcp);
            }
        }
        self.collect(out);
    }

    /// Starts an allocation on `server` from `socket`.
    fn allocate(
        &mut self,
        now: Instant,
        component: u16,
        socket: SocketAddr,
        server: &TurnServer,
        relay: RelayProtocol,
    ) {
        let credentials = Credentials {
            username: server.username.clone(),
            password: server.password.clone(),
        };
        let mut config = AllocationConfig::new(server.address, server.transport, credentials);
        config.transactions = self.client_transactions();
        config.relay = relay;
        let mut allocation = Allocation::new(config);
        let started = allocation.allocate(now);
        let mut query = TurnQuery {
            component,
            socket,
            relay,
            server: server.clone(),
            allocation,
            done: false,
            relayed: None,
            channels: HashSet::new(),
        };
        if let Err(e) = started {
            query.done = true;
            self.results.push_back(Gathered::Failed {
                server: query.server.url.clone(),
                code: None,
                reason: e.to_string(),
            });
        }
        self.turn.push(query);
    }

    /// Puts what the clients want sent straight into the agent's queue
    /// `out`, and what they found into the results.
    fn collect(&mut self, out: &mut VecDeque<Datagram>) {
        for query in &mut self.ms_turn {
            query.collect(&self.transactions, out, &mut self.results);
        }
        for query in &mut self.stun {
            while let Some(transmit) = query.client.poll_transmit() {
                out.push_back(Datagram {
                    source: query.socket,
                    route: Route::Udp,
                    destination: transmit.destination,
                    payload: transmit.payload.to_vec(),
                });
            }
            while let Some(event) = query.client.poll_event() {
                if query.done {
                    continue;
                }
                query.done = true;
                let server = query.server.url.clone();
                self.results.push_back(match event {
                    BindingEvent::Mapped { mapped, .. } => Gathered::Reflexive {
                        component: query.component,
                        socket: query.socket,
                        mapped,
                        server: ServerName {
                            address: query.server.address,
                            url: server,
                        },
                    },
                    BindingEvent::Failed { code, reason, .. } => Gathered::Failed {
                        server,
                        code: Some(code),
                        reason,
                    },
                    BindingEvent::TimedOut { .. } => Gathered::Failed {
                        server,
                        code: None,
                        reason: timeout_reason(&self.transactions),
                    },
                });
            }
        }
        for query in &mut self.turn {
            while let Some(transmit) = query.allocation.poll_transmit() {
                out.push_back(Datagram {
                    source: query.socket,
                    route: query.server.transport.into(),
                    destination: transmit.destination,
                    payload: transmit.payload.to_vec(),
                });
            }
            while let Some(event) = query.allocation.poll_event() {
                let server = ServerName::of(query.server.address, &query.server.url);
                match event {
                    AllocationEvent::Allocated {
                        relayed, mapped, ..
                    } if query.relay == RelayProtocol::Tcp => {
                        query.done = true;
                        query.relayed = Some(relayed);
                        self.results.push_back(Gathered::RelayedTcp {
                            component: query.component,
                            socket: query.socket,
                            relayed,
                            mapped: mapped.unwrap_or(query.socket),
                            server,
                        });
                    }
                    AllocationEvent::Connected {
                        peer,
                        connection_id,
                    } => {
                        if let Some(relayed) = query.relayed {
                            self.results.push_back(Gathered::RelayConnected {
                                relayed,
                                peer,
                                connection_id,
                                via: query.data_connection_route(),
                            });
                        }
                    }
                    AllocationEvent::ConnectFailed { peer, code, reason } => {
                        if let Some(relayed) = query.relayed {
                            let code = code.map(|c| format!("{c} ")).unwrap_or_default();
                            self.results.push_back(Gathered::RelayConnectFailed {
                                relayed,
                                peer,
                                reason: format!(
                                    "the TURN server could not connect: {code}{reason}"
                                ),
                            });
                        }
                    }
                    AllocationEvent::ConnectionAttempt {
                        peer,
                        connection_id,
                    } => {
                        if let Some(relayed) = query.relayed {
                            self.results.push_back(Gathered::PeerConnection {
                                relayed,
                                peer,
                                connection_id,
                                via: query.data_connection_route(),
                            });
                        }
                    }
                    AllocationEvent::Allocated {
                        relayed, mapped, ..
                    } => {
                        query.done = true;
                        query.relayed = Some(relayed);
                        let mapped = mapped.unwrap_or(query.socket);
                        let from = (query.component, query.socket);
                        push_allocated(&mut self.results, from, &query.server, relayed, mapped);
                    }
                    AllocationEvent::Failed { code, reason } => {
                        query.done = true;
                        let reason =
                            failure_reason(code, reason, query.relayed, &self.transactions);
                        self.results.push_back(Gathered::Failed {
                            server: server.url,
                            code,
                            reason,
                        });
                    }
                    // Permissions and channels show in the checks' outcome.
                    _ => {}
                }
            }
        }
    }

    /// Whether every query has finished (succeeded, failed or timed out).
    pub(crate) fn is_complete(&self) -> bool {
        self.stun.iter().all(|q| q.done)
            && self.turn.iter().all(|q| q.done)
            && self.ms_turn.iter().all(|q| q.done)
    }

    /// Whether a datagram from `from` on `socket` is a server's.
    /// `stream`: it came on a TCP/TLS connection to the server, not as a
    /// UDP datagram (a server may listen on the same port for both).
    pub(crate) fn is_server(&self, socket: SocketAddr, from: SocketAddr, stream: bool) -> bool {
        let stun = !stream
            && self
                .stun
                .iter()
                .any(|q| q.socket == socket && q.server.address == from);
        stun || self.turn.iter().any(|q| q.matches(socket, from, stream))
            || self.ms_turn.iter().any(|q| q.matches(socket, from, stream))
    }

    /// Hands a server's datagram to its query. Data relayed by a TURN
    /// server comes back as (relayed address, peer, payload).
    pub(crate) fn handle_input<'a>(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        from: SocketAddr,
        data: &'a [u8],
        stream: bool,
        out: &mut VecDeque<Datagram>,
    ) -> Option<(SocketAddr, SocketAddr, &'a [u8])> {
        let mut relayed = None;
        if let Some(query) = self
            .ms_turn
            .iter_mut()
            .find(|q| q.matches(socket, from, stream))
        {
            relayed = query.handle_input(now, data);
        } else if let Some(query) = self
            .turn
            .iter_mut()
            .find(|q| q.matches(socket, from, stream))
        {
            // Anything else from the server is dropped, as a lost datagram.
            if let Ok(Some((peer, payload))) = query.allocation.handle_input(now, data)
                && let Some(base) = query.relayed
            {
                relayed = Some((base, peer, payload));
            }
        } else if !stream {
            for query in &mut self.stun {
                if query.socket == socket && query.server.address == from {
                    let _ = query.client.handle_input(now, data);
                }
            }
        }
        self.collect(out);
        relayed
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, out: &mut VecDeque<Datagram>) {
        for query in &mut self.stun {
            if query.client.poll_timeout().is_some_and(|t| t <= now) {
                query.client.handle_timeout(now);
            }
        }
        for query in &mut self.turn {
            if query.allocation.poll_timeout().is_some_and(|t| t <= now) {
                query.allocation.handle_timeout(now);
            }
        }
        for query in &mut self.ms_turn {
            query.handle_timeout(now);
        }
        self.collect(out);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let stun = self.stun.iter().filter_map(|q| q.client.poll_timeout());
        let turn = self.turn.iter().filter_map(|q| q.allocation.poll_timeout());
        let ms_turn = self.ms_turn.iter().filter_map(|q| q.poll_timeout());
        stun.chain(turn).chain(ms_turn).min()
    }

    pub(crate) fn poll_result(&mut self) -> Option<Gathered> {
        self.results.pop_front()
    }

    /// Whether `base` is a UDP relayed address of one of the allocations.
    pub(crate) fn is_relay(&self, base: SocketAddr) -> bool {
        self.turn
            .iter()
            .any(|q| q.relayed == Some(base) && q.relay == RelayProtocol::Udp)
            || self.ms_turn.iter().any(|q| q.relayed == Some(base))
    }

    /// Lets `ip` connect to the TCP relayed addresses (RFC 6062 §4.3: a
    /// peer's connection is accepted only with a permission).
    pub(crate) fn permit_tcp_peer(
        &mut self,
        now: Instant,
        ip: std::net::IpAddr,
        out: &mut VecDeque<Datagram>,
    ) {
        for query in &mut self.turn {
            if query.relay == RelayProtocol::Tcp && query.relayed.is_some() {
                let _ = query.allocation.create_permission(now, ip);
            }
        }
        self.collect(out);
    }

    /// Asks TCP relay `relayed` to connect to `peer` (RFC 6062 Connect).
    pub(crate) fn connect_through_relay(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        peer: SocketAddr,
        out: &mut VecDeque<Datagram>,
    ) -> Result<(), RelayError> {
        let query = self
            .turn
            .iter_mut()
            .find(|q| q.relayed == Some(relayed) && q.relay == RelayProtocol::Tcp)
            .ok_or(RelayError::NotRelayed(relayed))?;
        let _ = query.allocation.create_permission(now, peer.ip());
        query.allocation.connect(now, peer)?;
        self.collect(out);
        Ok(())
    }

    /// The ConnectionBind for a data connection to TCP relay `relayed`.
    pub(crate) fn connection_bind(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        connection_id: u32,
    ) -> Result<ConnectionBind, RelayError> {
        let query = self
            .turn
            .iter_mut()
            .find(|q| q.relayed == Some(relayed) && q.relay == RelayProtocol::Tcp)
            .ok_or(RelayError::NotRelayed(relayed))?;
        Ok(query.allocation.connection_bind(now, connection_id)?)
    }

    /// Queues `payload` from relayed address `base` to `peer`, wrapped for
    /// its TURN server, in the agent's queue `out` (the permission, and a
    /// channel for later packets, are asked for on the way). False if
    /// `base` is not a relayed address.
    pub(crate) fn send_through_relay(
        &mut self,
        now: Instant,
        base: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
        out: &mut VecDeque<Datagram>,
    ) -> bool {
        let mut wrapped = Vec::with_capacity(payload.len() + 36);
        match self.wrap_into(now, base, peer, payload, &mut wrapped, out) {
            Ok((source, transport, destination)) => {
                out.push_back(Datagram {
                    source,
                    route: transport.into(),
                    destination,
                    payload: wrapped,
                });
                true
            }
            Err(_) => self.is_relay(base),
        }
    }

    /// Wraps `payload` from relayed address `base` to `peer` into `buf`;
    /// returns (host socket, transport, TURN server) to send it by. The
    /// control messages it causes (a permission, a channel) go into `out`.
    pub(crate) fn wrap_into(
        &mut self,
        now: Instant,
        base: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
        buf: &mut Vec<u8>,
        out: &mut VecDeque<Datagram>,
    ) -> Result<(SocketAddr, ServerTransport, SocketAddr), RelayError> {
        let wrapped = self.wrap(now, base, peer, payload, buf);
        self.collect(out);
        wrapped
    }

    fn wrap(
        &mut self,
        now: Instant,
        base: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(SocketAddr, ServerTransport, SocketAddr), RelayError> {
        for query in &mut self.ms_turn {
            if let Some(wrapped) = query.wrap_into(base, peer, payload, buf) {
                return wrapped;
            }
        }
        let query = self
            .turn
            .iter_mut()
            .find(|q| q.relayed == Some(base) && q.relay == RelayProtocol::Udp)
            .ok_or(RelayError::NotRelayed(base))?;
        if query.channels.insert(peer) {
            let _ = query.allocation.bind_channel(now, peer);
        }
        query.allocation.send_to(now, peer, payload, buf)?;
        Ok((query.socket, query.server.transport, query.server.address))
    }

    /// The TCP connection of an allocation closed: the allocation is lost.
    pub(crate) fn stream_closed(
        &mut self,
        socket: SocketAddr,
        server: SocketAddr,
        out: &mut VecDeque<Datagram>,
    ) {
        for query in &mut self.turn {
            if query.socket == socket
                && query.server.address == server
                && query.server.transport != ServerTransport::Udp
            {
                query.allocation.connection_closed();
            }
        }
        self.collect(out);
    }

    /// Releases every allocation.
    pub(crate) fn close(&mut self, now: Instant, out: &mut VecDeque<Datagram>) {
        for query in &mut self.turn {
            let _ = query.allocation.release(now);
        }
        for query in &mut self.ms_turn {
            query.close(now);
        }
        self.collect(out);
    }
}
