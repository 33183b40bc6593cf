//! TCP allocations (RFC 6062): the relay talks to peers over TCP. The
//! client's control connection carries Allocate, CreatePermission and
//! Connect; each peer connection is then paired with a separate data
//! connection from the client (ConnectionBind), after which the driver
//! passes bytes between the two unchanged.
//!
//! The core keeps the bookkeeping — which connection belongs to which
//! allocation, permissions, the 30-second window for ConnectionBind — and
//! asks the driver, through events, to connect, accept, splice and close.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_stun::{
    Attribute, AttributeType, BuildError, Class, ErrorCode, IntegrityKey, Message, MessageBuilder,
    MessageType, Method, TransactionId,
};

use crate::interface::{ConnectionId, Event, FiveTuple, RelayTransport, Transmit, Transport};
use crate::response::ReplyTo;
use crate::server::{Server, reply};

/// How long a peer connection waits for the client's ConnectionBind
/// (RFC 6062 §5.3).
pub(crate) const BIND_WINDOW: Duration = Duration::from_secs(30);

/// Where a peer connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// The driver is connecting to the peer; the Connect request waits.
    Connecting,
    /// Waiting for the client's ConnectionBind until the deadline.
    AwaitingBind(Instant),
    /// Spliced to a data connection: the driver owns it now.
    Bound,
}

/// One TCP connection between a relay and a peer.
#[derive(Debug)]
pub(crate) struct PeerConnection {
    /// The control connection's 5-tuple (the allocation's).
    pub allocation: FiveTuple,
    pub peer: SocketAddr,
    pub state: State,
    /// The Connect request to answer once connected.
    pub connect: Option<(ReplyTo, IntegrityKey)>,
}

impl Server {
    /// A fresh, hard to guess connection ID: binding a peer connection
    /// also needs the allocation's credentials, but an ID should not be
    /// predictable from the previous one.
    fn new_connection_id(&mut self, relay: SocketAddr) -> ConnectionId {
        loop {
            self.next_connection += 1;
            let tag = self
                .nonces
                .tag_for_token(b"connection-id", relay, self.next_connection);
            let id = ConnectionId(u32::from_be_bytes([tag[0], tag[1], tag[2], tag[3]]));
            if id.0 != 0 && !self.connections.contains_key(&id) {
                return id;
            }
        }
    }

    /// Connect (RFC 6062 §5.2): open a TCP connection to a peer.
    pub(crate) fn connect<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        request: &Message<'_>,
        key: IntegrityKey,
    ) -> Option<Transmit<'s>> {
        let to = ReplyTo::of(request);
        let Some(allocation) = self.allocations.get(&from) else {
            return self.error(from, &to, ErrorCode::ALLOCATION_MISMATCH, Some(&key));
        };
        if allocation.relay_transport != RelayTransport::Tcp {
            return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key));
        }
        let relay = allocation.relay;
        let peer = match request.get(AttributeType::XOR_PEER_ADDRESS) {
            Some(Ok(Attribute::XorPeerAddress(peer))) => peer,
            _ => return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key)),
        };
        if let Err(code) = self.check_peer(&from, peer) {
            return self.refuse_peer(from, &to, code, &key, peer);
        }
        let permitted = self
            .allocations
            .get(&from)
            .is_some_and(|a| a.permits(peer.ip(), now));
        if !permitted {
            return self.error(from, &to, ErrorCode::FORBIDDEN, Some(&key));
        }
        let open = self.connections.values().filter(|c| c.allocation == from);
        if open.clone().any(|c| c.peer == peer) {
            return self.error(from, &to, ErrorCode::CONNECTION_ALREADY_EXISTS, Some(&key));
        }
        if open.count() >= self.config.max_connections_per_allocation {
            return self.error(from, &to, ErrorCode::INSUFFICIENT_CAPACITY, Some(&key));
        }
        let id = self.new_connection_id(relay);
        self.connections.insert(
            id,
            PeerConnection {
                allocation: from,
                peer,
                state: State::Connecting,
                connect: Some((to, key)),
            },
        );
        self.events
            .push_back(Event::ConnectPeer { id, relay, peer });
        None
    }

    /// The driver's answer to [`Event::ConnectPeer`]: answers the Connect.
    pub(crate) fn finish_connect<'s>(
        &'s mut self,
        now: Instant,
        id: ConnectionId,
        connected: bool,
    ) -> Option<Transmit<'s>> {
        let connection = self.connections.get_mut(&id)?;
        let (to, key) = connection.connect.take()?;
        let from = connection.allocation;
        if !connected {
            self.connections.remove(&id);
            return self.error(
                from,
                &to,
                ErrorCode::CONNECTION_TIMEOUT_OR_FAILURE,
                Some(&key),
            );
        }
        connection.state = State::AwaitingBind(now + BIND_WINDOW);
        let body = |b: &mut MessageBuilder<'_>| -> Result<(), BuildError> {
            b.add(&Attribute::ConnectionId(id.0))?;
            Ok(())
        };
        self.respond(from, &to, Class::Success, Some(&key), body)
    }

    /// A peer connected to a TCP relay address: keep it if a permission
    /// covers the peer, and tell the client with a ConnectionAttempt
    /// indication (RFC 6062 §5.3).
    pub(crate) fn incoming_peer<'s>(
        &'s mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
    ) -> Option<Transmit<'s>> {
        let allocation = self
            .by_relay
            .get(&relay)
            .and_then(|from| self.allocations.get(from))
            .filter(|a| a.relay_transport == RelayTransport::Tcp);
        let Some(allocation) = allocation.filter(|a| a.permits(peer.ip(), now)) else {
            self.stats.permission_denied += 1;
            self.events.push_back(Event::RefusePeer { relay, peer });
            return None;
        };
        let from = allocation.five_tuple;
        let open = self
            .connections
            .values()
            .filter(|c| c.allocation == from)
            .count();
        if open >= self.config.max_connections_per_allocation {
            self.events.push_back(Event::RefusePeer { relay, peer });
            return None;
        }
        let id = self.new_connection_id(relay);
        self.connections.insert(
            id,
            PeerConnection {
                allocation: from,
                peer,
                state: State::AwaitingBind(now + BIND_WINDOW),
                connect: None,
            },
        );
        self.events.push_back(Event::AcceptPeer { id, relay, peer });
        let kind = MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication);
        let mut txid = [0u8; 12];
        txid[8..].copy_from_slice(&id.0.to_be_bytes());
        let mut b = MessageBuilder::new(&mut self.scratch, kind, TransactionId(txid));
        b.add(&Attribute::XorPeerAddress(peer)).ok()?;
        b.add(&Attribute::ConnectionId(id.0)).ok()?;
        b.add_fingerprint().ok()?;
        Some(reply(from, b.finish()))
    }

    /// ConnectionBind (RFC 6062 §5.4), on a new data connection from the
    /// client: pair it with the waiting peer connection.
    pub(crate) fn connection_bind<'s>(
        &'s mut self,
        from: FiveTuple,
        request: &Message<'_>,
        username: &str,
        key: IntegrityKey,
    ) -> Option<Transmit<'s>> {
        let to = ReplyTo::of(request);
        if from.transport == Transport::Udp {
            return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key));
        }
        let id = match request.get(AttributeType::CONNECTION_ID) {
            Some(Ok(Attribute::ConnectionId(id))) => ConnectionId(id),
            _ => return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key)),
        };
        let Some(connection) = self
            .connections
            .get(&id)
            .filter(|c| matches!(c.state, State::AwaitingBind(_)))
        else {
            return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key));
        };
        let owner = self
            .allocations
            .get(&connection.allocation)
            .map(|a| a.username.as_str());
        if owner != Some(username) {
            self.stats.auth_failures += 1;
            return self.error(from, &to, ErrorCode::WRONG_CREDENTIALS, Some(&key));
        }
        if let Some(connection) = self.connections.get_mut(&id) {
            connection.state = State::Bound;
        }
        self.events.push_back(Event::Splice { id, data: from });
        self.respond(from, &to, Class::Success, Some(&key), |_| Ok(()))
    }

    /// Closes the peer connections of an allocation that ended.
    pub(crate) fn close_connections_of(&mut self, allocation: &FiveTuple) {
        let events = &mut self.events;
        self.connections.retain(|id, c| {
            let keep = c.allocation != *allocation;
            if !keep {
                events.push_back(Event::ClosePeerConnection { id: *id });
            }
            keep
        });
    }

    /// Closes peer connections whose ConnectionBind did not come in time.
    pub(crate) fn sweep_connections(&mut self, now: Instant) {
        let events = &mut self.events;
        self.connections.retain(|id, c| {
            let keep = !matches!(c.state, State::AwaitingBind(deadline) if deadline <= now);
            if !keep {
                events.push_back(Event::ClosePeerConnection { id: *id });
            }
            keep
        });
    }
}
