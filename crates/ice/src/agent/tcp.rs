//! ICE-TCP (RFC 6544): TCP candidates (active, passive, simultaneous-open)
//! and the connections checks and data travel on. The application owns the
//! sockets: it binds listeners and simultaneous-open ports, carries out
//! [`TcpCommand`]s, and reports what happens to each connection; the agent
//! decides what to open and what goes on which connection.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use edgeice_client::{ConnectionBind, ConnectionBindOutcome};
use edgeice_stun::StreamDecoder;

use super::{Agent, ConnectionId, Received, TcpCommand};
use crate::candidate::{CandidateKind, TcpType};
use crate::event::CheckState;
use crate::framing::FrameDecoder;
use crate::gather::DataConnectionRoute;
use crate::timer::Timer;

/// How long a connection may take to open before its pair fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a check on an open connection waits for its answer: TCP
/// retransmits for us, so there is one request (RFC 6544 §7.1).
pub(super) const TCP_CHECK_TIMEOUT: Duration = Duration::from_secs(8);

/// A connection the agent knows of.
#[derive(Debug)]
pub(crate) struct Connection {
    pub id: ConnectionId,
    /// The local candidate (index) whose pairs use it.
    pub local: usize,
    /// The local candidate's base: a listener, a simultaneous-open port,
    /// `IP:9` for active candidates, or a TCP relayed address.
    pub base: SocketAddr,
    pub remote: SocketAddr,
    /// Open, and (for a data connection through a TURN server) bound.
    pub established: bool,
    /// When an outgoing connection that has not opened gives up.
    pub deadline: Option<Instant>,
    /// Cuts what is read into RFC 4571 frames.
    pub frames: FrameDecoder,
    /// Accepted from anyone, no authentic check on it yet.
    pub unproven: bool,
    /// For a peer's connection through a TCP relay (RFC 6062): the
    /// binding of this data connection, until the server confirms it.
    pub turn: Option<TurnData>,
}

/// The agent's ICE-TCP part: its connections, the ids it hands out, and
/// the commands waiting for the application.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    pub list: Vec<Connection>,
    /// The last id handed out.
    pub next_id: u64,
    pub commands: VecDeque<TcpCommand>,
}

/// A data connection to a TURN server for one peer connection (RFC 6062).
#[derive(Debug)]
pub(crate) struct TurnData {
    /// The server's CONNECTION-ID for the peer connection; `None` while a
    /// Connect request (for an active relayed candidate) awaits it.
    pub connection_id: Option<u32>,
    /// The ConnectionBind sent, once the connection is open.
    pub bind: Option<ConnectionBind>,
    /// Cuts the server's answer out of the stream (STUN framing).
    pub stun: StreamDecoder,
}

impl Connection {
    fn new(id: ConnectionId, local: usize, base: SocketAddr, remote: SocketAddr) -> Connection {
        Connection {
            id,
            local,
            base,
            remote,
            established: false,
            deadline: None,
            frames: FrameDecoder::new(),
            unproven: false,
            turn: None,
        }
    }
}

/// Most accepted connections without an authentic check yet.
const MAX_UNPROVEN_CONNECTIONS: usize = 32;

/// How many times a TCP pair's connection is tried before the pair fails.
const MAX_CONNECT_ATTEMPTS: u8 = 3;

/// The port active candidates are written with (RFC 6544 §4.5).
pub(super) const ACTIVE_PORT: u16 = 9;

impl Agent {
    /// Registers a TCP listener the application bound for `component`:
    /// it becomes a passive host candidate, and `IP:9` an active one (the
    /// application connects from that IP when asked); TCP relays on TURN
    /// servers reached over TCP or TLS are allocated from its IP when
    /// [`crate::AgentConfig::tcp_relays`] is set.
    pub fn add_tcp_listener(&mut self, now: Instant, component: u16, listener: SocketAddr) {
        if component == 0 || component > self.components() {
            return;
        }
        // Relay-only: the listener only anchors TCP relays; nothing host.
        if !self.config.relay_only {
            let preference = self.tcp_other_preference(listener.ip());
            let active = SocketAddr::new(listener.ip(), ACTIVE_PORT);
            self.add_local_candidate(
                CandidateKind::Host,
                component,
                listener,
                listener,
                None,
                preference,
                None,
                Some(TcpType::Passive),
            );
            self.add_local_candidate(
                CandidateKind::Host,
                component,
                active,
                active,
                None,
                preference,
                None,
                Some(TcpType::Active),
            );
        }
        self.gatherer
            .start_tcp_relays(now, component, listener.ip(), &mut self.transmits);
        self.local_gathering_done = false;
        self.timers.set(Timer::GatheringComplete, now);
        self.arm_timers();
    }

    /// Registers a port the application reserved (bound with address
    /// reuse, not listening) for simultaneous-open connections.
    pub fn add_tcp_simultaneous_open(&mut self, now: Instant, component: u16, port: SocketAddr) {
        if component == 0 || component > self.components() {
            return;
        }
        let preference = self.tcp_other_preference(port.ip());
        self.add_local_candidate(
            CandidateKind::Host,
            component,
            port,
            port,
            None,
            preference,
            None,
            Some(TcpType::SimultaneousOpen),
        );
        self.timers.set(Timer::GatheringComplete, now);
        self.arm_timers();
    }

    /// The preference of a TCP host candidate on an address: RFC 6544
    /// §4.2's 13-bit "other preference" (RFC 8421's dual-stack ordering,
    /// scaled down), or MS-ICE2's address index.
    fn tcp_other_preference(&self, ip: IpAddr) -> u16 {
        let index = self
            .locals
            .iter()
            .filter(|l| {
                l.candidate.tcp_type == Some(TcpType::Passive) && l.base.is_ipv4() == ip.is_ipv4()
            })
            .count();
        self.config.dialect.tcp_host_preference(ip, index)
    }

    /// Next thing to do with TCP sockets, if any.
    pub fn poll_tcp_command(&mut self) -> Option<TcpCommand> {
        self.tcp.commands.pop_front()
    }

    /// A peer connected to the listener `listener` from `remote`: the agent
    /// takes it (returns its id) if the listener is one of its passive
    /// candidates. What is read from it goes in as [`crate::Input::TcpData`].
    pub fn tcp_accepted(
        &mut self,
        now: Instant,
        listener: SocketAddr,
        remote: SocketAddr,
    ) -> Option<ConnectionId> {
        let local = self.locals.iter().position(|l| {
            l.base == listener
                && l.candidate.kind == CandidateKind::Host
                && l.candidate.tcp_type == Some(TcpType::Passive)
        })?;
        // Anyone may connect: until a check on it is authentic, a
        // connection costs a deadline, and there are only so many.
        let unproven = self.tcp.list.iter().filter(|c| c.unproven).count();
        if unproven >= MAX_UNPROVEN_CONNECTIONS {
            return None;
        }
        let id = self.new_connection_id();
        let mut connection = Connection::new(id, local, listener, remote);
        connection.established = true;
        connection.unproven = true;
        connection.deadline = Some(now + CONNECT_TIMEOUT);
        self.tcp.list.push(connection);
        self.arm_timers();
        Some(id)
    }

    /// A check authenticated on connection `id`: it is kept.
    pub(super) fn prove_connection(&mut self, id: ConnectionId) {
        if let Some(connection) = self.tcp.list.iter_mut().find(|c| c.id == id && c.unproven) {
            connection.unproven = false;
            connection.deadline = None;
        }
    }

    /// The connection `id` asked for with [`TcpCommand::Connect`] is open:
    /// the checks waiting for it go out. False if the agent gave up on it
    /// meanwhile: close it.
    pub(super) fn on_tcp_connected(&mut self, now: Instant, id: ConnectionId) -> bool {
        let Some(index) = self.tcp.list.iter().position(|c| c.id == id) else {
            return false;
        };
        if let Some(turn_id) = self.tcp.list[index]
            .turn
            .as_ref()
            .and_then(|t| t.connection_id)
        {
            // A data connection: bind it to the peer connection first.
            let base = self.tcp.list[index].base;
            match self.gatherer.connection_bind(now, base, turn_id) {
                Ok(bind) => {
                    self.transmits.push_back(super::Datagram {
                        source: base,
                        route: super::Route::Connection(id),
                        destination: self.tcp.list[index].remote,
                        payload: bind.request().to_vec(),
                    });
                    if let Some(turn) = &mut self.tcp.list[index].turn {
                        turn.bind = Some(bind);
                    }
                }
                Err(_) => {
                    self.close_connection(now, index, "the TURN relay cannot bind the connection")
                }
            }
            return true;
        }
        self.connection_opened(now, index);
        true
    }

    /// Connection `index` is open (and bound, through a relay): the checks
    /// waiting for it go out.
    fn connection_opened(&mut self, now: Instant, index: usize) {
        let connection = &mut self.tcp.list[index];
        connection.established = true;
        connection.deadline = None;
        let (local, remote) = (connection.local, connection.remote);
        let waiting: Vec<usize> = (0..self.pairs.len())
            .filter(|&p| self.pair_uses(p, local, remote) && self.awaits_connection(p))
            .collect();
        for pair in waiting {
            self.send_check(now, pair, false);
        }
    }

    /// Whether pair `pair` is between local candidate `local` and `remote`.
    fn pair_uses(&self, pair: usize, local: usize, remote: SocketAddr) -> bool {
        let p = &self.pairs[pair];
        p.local() == local && self.remotes[p.remote()].address == remote
    }

    /// The connection `id` closed, or could not be opened: pairs on it fail.
    pub(super) fn on_tcp_closed(&mut self, now: Instant, id: ConnectionId) {
        let Some(index) = self.tcp.list.iter().position(|c| c.id == id) else {
            return;
        };
        let connection = self.tcp.list.remove(index);
        self.fail_pairs_on(
            now,
            connection.local,
            connection.remote,
            "TCP connection closed",
        );
    }

    /// Bytes read from connection `id`, as they came. Checks and their
    /// answers are handled; application data waits in
    /// [`Agent::poll_received`].
    pub(super) fn on_tcp_data(&mut self, now: Instant, id: ConnectionId, bytes: &[u8]) {
        let Some(index) = self.tcp.list.iter().position(|c| c.id == id) else {
            return;
        };
        let bytes = if self.tcp.list[index].established {
            bytes.to_vec()
        } else {
            // A data connection through a TURN server: its answer to
            // ConnectionBind comes first, in STUN framing; the peer's bytes
            // follow it.
            let Some(turn) = self.tcp.list[index].turn.as_mut() else {
                return;
            };
            turn.stun.push(bytes);
            let outcome = match (turn.stun.next_raw(), &turn.bind) {
                (Ok(None), _) => return,
                (Ok(Some(frame)), Some(bind)) => bind.handle_response(frame).ok(),
                _ => None,
            };
            let pending = turn.stun.pending().to_vec();
            match outcome {
                Some(ConnectionBindOutcome::Bound) => {
                    self.connection_opened(now, index);
                    pending
                }
                Some(ConnectionBindOutcome::Failed { code, reason }) => {
                    let reason = format!("ConnectionBind refused: {code} {reason}");
                    return self.close_connection(now, index, &reason);
                }
                None => return self.close_connection(now, index, "ConnectionBind failed"),
            }
        };
        let connection = &mut self.tcp.list[index];
        let (base, remote) = (connection.base, connection.remote);
        connection.frames.push(&bytes);
        let mut frames = Vec::new();
        while let Some(frame) = connection.frames.next_frame() {
            frames.push(frame.to_vec());
        }
        for frame in frames {
            if let Some(Received {
                component,
                from,
                data,
            }) = self.handle_at_base(now, base, remote, &frame, Some(id))
            {
                self.received.push_back((component, from, data.to_vec()));
            }
        }
    }

    /// Application data read from an ICE-TCP connection: (component, who
    /// sent it, the bytes).
    pub fn poll_received(&mut self) -> Option<(u16, SocketAddr, Vec<u8>)> {
        self.received.pop_front()
    }

    /// Asks the application to close connection `index` and fails its pairs.
    fn close_connection(&mut self, now: Instant, index: usize, reason: &str) {
        let connection = self.tcp.list.remove(index);
        self.tcp
            .commands
            .push_back(TcpCommand::Close { id: connection.id });
        self.fail_pairs_on(now, connection.local, connection.remote, reason);
    }

    /// A peer connected to one of our TCP relayed addresses (RFC 6062
    /// ConnectionAttempt): open a data connection to the server for it.
    pub(super) fn accept_through_relay(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        peer: SocketAddr,
        connection_id: u32,
        DataConnectionRoute {
            socket,
            server,
            tls,
        }: DataConnectionRoute,
    ) {
        let Some(local) = self.relayed_tcp_local(relayed, TcpType::Passive) else {
            return;
        };
        let id = self.new_connection_id();
        // The data connection goes to the server, but what travels on it is
        // the peer's: the connection is named by the peer.
        let mut connection = Connection::new(id, local, relayed, peer);
        connection.deadline = Some(now + CONNECT_TIMEOUT);
        connection.turn = Some(TurnData {
            connection_id: Some(connection_id),
            bind: None,
            stun: StreamDecoder::new(),
        });
        self.tcp.list.push(connection);
        self.tcp.commands.push_back(TcpCommand::Connect {
            id,
            local: SocketAddr::new(socket.ip(), 0),
            remote: server,
            tls,
        });
    }

    /// Our TCP relay server connected to `peer` for an active relayed
    /// candidate (RFC 6062 Connect succeeded): open the data connection.
    pub(super) fn relay_connected(
        &mut self,
        relayed: SocketAddr,
        peer: SocketAddr,
        connection_id: u32,
        DataConnectionRoute {
            socket,
            server,
            tls,
        }: DataConnectionRoute,
    ) {
        let Some(connection) = self.tcp.list.iter_mut().find(|c| {
            c.base == relayed
                && c.remote == peer
                && c.turn.as_ref().is_some_and(|t| t.connection_id.is_none())
        }) else {
            return;
        };
        if let Some(turn) = &mut connection.turn {
            turn.connection_id = Some(connection_id);
        }
        let id = connection.id;
        self.tcp.commands.push_back(TcpCommand::Connect {
            id,
            local: SocketAddr::new(socket.ip(), 0),
            remote: server,
            tls,
        });
    }

    /// Our TCP relay server could not connect to `peer` (RFC 6062 Connect
    /// refused or timed out).
    pub(super) fn relay_connect_failed(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        peer: SocketAddr,
        reason: &str,
    ) {
        if let Some(index) = self.tcp.list.iter().position(|c| {
            c.base == relayed
                && c.remote == peer
                && c.turn.as_ref().is_some_and(|t| t.connection_id.is_none())
        }) {
            self.close_connection(now, index, reason);
        }
    }

    /// The relayed TCP candidate of this direction on `relayed`.
    fn relayed_tcp_local(&self, relayed: SocketAddr, tcp_type: TcpType) -> Option<usize> {
        self.locals.iter().position(|l| {
            l.base == relayed
                && l.candidate.kind == CandidateKind::Relayed
                && l.candidate.tcp_type == Some(tcp_type)
        })
    }

    fn new_connection_id(&mut self) -> ConnectionId {
        self.tcp.next_id += 1;
        ConnectionId(self.tcp.next_id)
    }

    /// The local base and remote address of a pair.
    pub(super) fn pair_ends(&self, pair: usize) -> (SocketAddr, SocketAddr) {
        let p = &self.pairs[pair];
        (
            self.locals[p.local()].base,
            self.remotes[p.remote()].address,
        )
    }

    /// Whether the pair's check is waiting for its connection to open.
    fn awaits_connection(&self, pair: usize) -> bool {
        self.pairs[pair]
            .in_flight()
            .is_some_and(|f| f.request.is_empty())
    }

    /// The open connection a TCP pair's checks and data use.
    pub(super) fn connection_of_pair(&self, pair: usize) -> Option<super::ConnectionId> {
        if !self.locals[self.pairs[pair].local()].candidate.is_tcp() {
            return None;
        }
        let (local, remote) = (
            self.pairs[pair].local(),
            self.remotes[self.pairs[pair].remote()].address,
        );
        self.tcp
            .list
            .iter()
            .find(|c| c.local == local && c.remote == remote && c.established)
            .map(|c| c.id)
    }

    /// For a TCP pair with no connection: asks the application to open one
    /// (active and simultaneous-open candidates only) and marks the pair
    /// as waiting for it. Returns false when nothing can be done (a
    /// passive candidate waits for the other side to connect).
    pub(super) fn open_connection_for(&mut self, now: Instant, pair: usize) -> bool {
        let local_index = self.pairs[pair].local();
        let local = &self.locals[local_index];
        let relayed = local.candidate.kind == CandidateKind::Relayed;
        let (base, remote) = self.pair_ends(pair);
        let from = match local.candidate.tcp_type {
            Some(TcpType::Active) => SocketAddr::new(base.ip(), 0),
            Some(TcpType::SimultaneousOpen) => base,
            _ => return false,
        };
        if self
            .tcp
            .list
            .iter()
            .any(|c| c.local == local_index && c.remote == remote)
        {
            return true;
        }
        let id = self.new_connection_id();
        let mut connection = Connection::new(id, local_index, base, remote);
        connection.deadline = Some(now + CONNECT_TIMEOUT);
        if relayed {
            // An active relayed candidate: the TURN server connects to the
            // peer (RFC 6062 Connect), then we bind a data connection.
            if self
                .gatherer
                .connect_through_relay(now, base, remote, &mut self.transmits)
                .is_err()
            {
                return false;
            }
            connection.turn = Some(TurnData {
                connection_id: None,
                bind: None,
                stun: StreamDecoder::new(),
            });
        } else {
            self.tcp.commands.push_back(TcpCommand::Connect {
                id,
                local: from,
                remote,
                tls: false,
            });
        }
        self.tcp.list.push(connection);
        true
    }

    /// Connections that did not open in time: closed, their pairs failed.
    pub(super) fn expire_connections(&mut self, now: Instant) {
        while let Some(index) = self
            .tcp
            .list
            .iter()
            .position(|c| c.deadline.is_some_and(|d| d <= now))
        {
            let connection = self.tcp.list.remove(index);
            self.tcp
                .commands
                .push_back(TcpCommand::Close { id: connection.id });
            self.fail_pairs_on(
                now,
                connection.local,
                connection.remote,
                "TCP connection did not open",
            );
        }
    }

    /// The earliest connection deadline.
    pub(super) fn next_connection_deadline(&self) -> Option<Instant> {
        self.tcp.list.iter().filter_map(|c| c.deadline).min()
    }

    /// Fails the TCP pairs between `base` and `remote` — unless a pair's
    /// check never got an answer and it has tries left: then it waits a
    /// little and tries again (at most three times, one, two, three
    /// seconds apart): a relay that accepts the connection and closes it at
    /// once had no permission for us yet.
    fn fail_pairs_on(&mut self, now: Instant, local: usize, remote: SocketAddr, reason: &str) {
        for pair in 0..self.pairs.len() {
            if !self.pair_uses(pair, local, remote) {
                continue;
            }
            let p = &mut self.pairs[pair];
            p.drop_check();
            if p.retry_connection(now, MAX_CONNECT_ATTEMPTS) {
                self.emit_check(pair, None, Some(format!("{reason}; trying again")));
                continue;
            }
            p.forget_nomination_request();
            if p.state() != CheckState::Failed {
                p.fail();
                self.emit_check(pair, None, Some(reason.to_string()));
            }
        }
        self.check_for_failure();
    }
}
