//! ICE-TCP (RFC 6544): TCP candidates (active, passive, simultaneous-open)
//! and the connections checks and data travel on. The application owns the
//! sockets: it binds listeners and simultaneous-open ports, carries out
//! [`TcpCommand`]s, and reports what happens to each connection; the agent
//! decides what to open and what goes on which connection.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{Agent, Received};
use crate::candidate::{CandidateKind, TcpType, dual_stack_local_preference};
use crate::event::CheckState;

/// Names an ICE-TCP connection between the agent and its application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// What the application must do with TCP sockets for the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpCommand {
    /// Open a connection from `local` (port 0: any port on that IP; else
    /// bind that very port, with address reuse, for a simultaneous open)
    /// to `remote`, then call [`Agent::tcp_connected`] or
    /// [`Agent::tcp_closed`] with `id`.
    Connect {
        /// Names the connection.
        id: ConnectionId,
        /// Where to connect from.
        local: SocketAddr,
        /// Where to connect to.
        remote: SocketAddr,
    },
    /// Close the connection; nothing more will be sent on it.
    Close {
        /// The connection.
        id: ConnectionId,
    },
}

/// How long a connection may take to open before its pair fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a check on an open connection waits for its answer: TCP
/// retransmits for us, so there is one request (RFC 6544 §7.1).
pub(super) const TCP_CHECK_TIMEOUT: Duration = Duration::from_secs(8);

/// A connection the agent knows of.
#[derive(Debug)]
pub(crate) struct Connection {
    pub id: ConnectionId,
    /// The local candidate's base: a listener, a simultaneous-open port,
    /// or `IP:9` for active candidates.
    pub base: SocketAddr,
    pub remote: SocketAddr,
    pub established: bool,
    /// When an outgoing connection that has not opened gives up.
    pub deadline: Option<Instant>,
}

/// The port active candidates are written with (RFC 6544 §4.5).
pub(super) const ACTIVE_PORT: u16 = 9;

impl Agent {
    /// Registers a TCP listener the application bound for `component`:
    /// it becomes a passive host candidate, and `IP:9` an active one (the
    /// application connects from that IP when asked).
    pub fn add_tcp_listener(&mut self, now: Instant, component: u16, listener: SocketAddr) {
        if component == 0 || component > self.components() {
            return;
        }
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
        self.gathering_check_at = Some(now);
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
        self.gathering_check_at = Some(now);
    }

    /// The 13-bit "other preference" of RFC 6544 §4.2 for an address:
    /// RFC 8421's dual-stack ordering, scaled down.
    fn tcp_other_preference(&self, ip: IpAddr) -> u16 {
        let index = self
            .locals
            .iter()
            .filter(|l| {
                l.candidate.tcp_type == Some(TcpType::Passive) && l.base.is_ipv4() == ip.is_ipv4()
            })
            .count();
        dual_stack_local_preference(ip, index) >> 3
    }

    /// Next thing to do with TCP sockets, if any.
    pub fn poll_tcp_command(&mut self) -> Option<TcpCommand> {
        self.tcp_commands.pop_front()
    }

    /// A peer connected to the listener `listener` from `remote`: the agent
    /// takes it (returns its id) if the listener is one of its passive
    /// candidates. Frames read from it go to [`Agent::handle_tcp_frame`].
    pub fn tcp_accepted(
        &mut self,
        listener: SocketAddr,
        remote: SocketAddr,
    ) -> Option<ConnectionId> {
        let passive = self
            .locals
            .iter()
            .any(|l| l.base == listener && l.candidate.tcp_type == Some(TcpType::Passive));
        if !passive {
            return None;
        }
        let id = self.new_connection_id();
        self.connections.push(Connection {
            id,
            base: listener,
            remote,
            established: true,
            deadline: None,
        });
        Some(id)
    }

    /// The connection `id` asked for with [`TcpCommand::Connect`] is open:
    /// the checks waiting for it go out.
    pub fn tcp_connected(&mut self, now: Instant, id: ConnectionId) {
        let Some(connection) = self.connections.iter_mut().find(|c| c.id == id) else {
            return;
        };
        connection.established = true;
        connection.deadline = None;
        let (base, remote) = (connection.base, connection.remote);
        let waiting: Vec<usize> = (0..self.pairs.len())
            .filter(|&p| self.pair_ends(p) == (base, remote) && self.awaits_connection(p))
            .collect();
        for pair in waiting {
            self.send_check(now, pair, false);
        }
    }

    /// The connection `id` closed, or could not be opened: pairs on it fail.
    pub fn tcp_closed(&mut self, now: Instant, id: ConnectionId) {
        let Some(index) = self.connections.iter().position(|c| c.id == id) else {
            return;
        };
        let connection = self.connections.remove(index);
        self.fail_pairs_on(
            now,
            connection.base,
            connection.remote,
            "TCP connection closed",
        );
    }

    /// A frame (RFC 4571, without its length) read from connection `id`.
    /// Returns application data, if that is what it was.
    pub fn handle_tcp_frame<'a>(
        &mut self,
        now: Instant,
        id: ConnectionId,
        frame: &'a [u8],
    ) -> Option<Received<'a>> {
        let connection = self
            .connections
            .iter()
            .find(|c| c.id == id && c.established)?;
        let (base, remote) = (connection.base, connection.remote);
        self.handle_at_base(now, base, remote, frame, Some(id))
    }

    fn new_connection_id(&mut self) -> ConnectionId {
        self.next_connection += 1;
        ConnectionId(self.next_connection)
    }

    /// The local base and remote address of a pair.
    pub(super) fn pair_ends(&self, pair: usize) -> (SocketAddr, SocketAddr) {
        let p = &self.pairs[pair];
        (self.locals[p.local].base, self.remotes[p.remote].address)
    }

    /// Whether the pair's check is waiting for its connection to open.
    fn awaits_connection(&self, pair: usize) -> bool {
        self.pairs[pair]
            .in_flight
            .as_ref()
            .is_some_and(|f| f.request.is_empty())
    }

    /// The open connection a TCP pair's checks and data use.
    pub(super) fn connection_of_pair(&self, pair: usize) -> Option<super::ConnectionId> {
        if !self.locals[self.pairs[pair].local].candidate.is_tcp() {
            return None;
        }
        let (base, remote) = self.pair_ends(pair);
        self.connections
            .iter()
            .find(|c| c.base == base && c.remote == remote && c.established)
            .map(|c| c.id)
    }

    /// For a TCP pair with no connection: asks the application to open one
    /// (active and simultaneous-open candidates only) and marks the pair
    /// as waiting for it. Returns false when nothing can be done (a
    /// passive candidate waits for the other side to connect).
    pub(super) fn open_connection_for(&mut self, now: Instant, pair: usize) -> bool {
        let local = &self.locals[self.pairs[pair].local];
        let (base, remote) = self.pair_ends(pair);
        let from = match local.candidate.tcp_type {
            Some(TcpType::Active) => SocketAddr::new(base.ip(), 0),
            Some(TcpType::SimultaneousOpen) => base,
            _ => return false,
        };
        if !self
            .connections
            .iter()
            .any(|c| c.base == base && c.remote == remote)
        {
            let id = self.new_connection_id();
            self.connections.push(Connection {
                id,
                base,
                remote,
                established: false,
                deadline: Some(now + CONNECT_TIMEOUT),
            });
            self.tcp_commands.push_back(TcpCommand::Connect {
                id,
                local: from,
                remote,
            });
        }
        true
    }

    /// Connections that did not open in time: closed, their pairs failed.
    pub(super) fn expire_connections(&mut self, now: Instant) {
        while let Some(index) = self
            .connections
            .iter()
            .position(|c| c.deadline.is_some_and(|d| d <= now))
        {
            let connection = self.connections.remove(index);
            self.tcp_commands
                .push_back(TcpCommand::Close { id: connection.id });
            self.fail_pairs_on(
                now,
                connection.base,
                connection.remote,
                "TCP connection did not open",
            );
        }
    }

    /// The earliest connection deadline.
    pub(super) fn next_connection_deadline(&self) -> Option<Instant> {
        self.connections.iter().filter_map(|c| c.deadline).min()
    }

    fn fail_pairs_on(&mut self, _now: Instant, base: SocketAddr, remote: SocketAddr, reason: &str) {
        for pair in 0..self.pairs.len() {
            if !self.locals[self.pairs[pair].local].candidate.is_tcp()
                || self.pair_ends(pair) != (base, remote)
            {
                continue;
            }
            self.pairs[pair].in_flight = None;
            self.pairs[pair].nominate_next = false;
            if self.pairs[pair].state != CheckState::Failed {
                self.pairs[pair].state = CheckState::Failed;
                self.emit_check(pair, None, Some(reason.to_string()));
            }
        }
    }
}
