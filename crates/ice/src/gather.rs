//! Phase 1 against servers: server-reflexive candidates from STUN Binding
//! transactions and relayed candidates from TURN allocations, one per
//! (host socket, server) of the same address family, all in parallel and
//! each bounded by its own transaction timeout, so a dead server delays
//! nothing else.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::agent::Datagram;
use crate::config::AgentConfig;

/// What a server query produced.
#[derive(Debug)]
// The server queries that produce these arrive with edgeice-client.
#[allow(dead_code)]
pub(crate) enum Gathered {
    /// A server-reflexive address seen by a STUN server.
    Reflexive {
        component: u16,
        socket: SocketAddr,
        mapped: SocketAddr,
        server: (SocketAddr, String),
    },
    /// A relayed address allocated on a TURN server.
    Relayed {
        component: u16,
        socket: SocketAddr,
        relayed: SocketAddr,
        mapped: SocketAddr,
        server: (SocketAddr, String),
    },
    /// A server gave nothing.
    Failed {
        server: String,
        code: Option<u16>,
        reason: String,
    },
}

/// The server queries of one agent.
pub(crate) struct Gatherer {
    results: VecDeque<Gathered>,
    transmits: VecDeque<Datagram>,
}

impl Gatherer {
    pub(crate) fn new(_config: &AgentConfig) -> Gatherer {
        Gatherer {
            results: VecDeque::new(),
            transmits: VecDeque::new(),
        }
    }

    /// Starts the queries from a new host socket.
    pub(crate) fn start(&mut self, _now: Instant, _component: u16, _socket: SocketAddr) {}

    /// Whether every query has finished (succeeded, failed or timed out).
    pub(crate) fn is_complete(&self) -> bool {
        true
    }

    /// Whether a datagram from `from` on `socket` is a server's.
    pub(crate) fn is_server(&self, _socket: SocketAddr, _from: SocketAddr) -> bool {
        false
    }

    /// Hands a server's datagram to its query. Data relayed by a TURN
    /// server comes back as (relayed address, peer, payload).
    pub(crate) fn handle_input<'a>(
        &mut self,
        _now: Instant,
        _socket: SocketAddr,
        _from: SocketAddr,
        _data: &'a [u8],
    ) -> Option<(SocketAddr, SocketAddr, &'a [u8])> {
        None
    }

    pub(crate) fn handle_timeout(&mut self, _now: Instant) {}

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    pub(crate) fn poll_result(&mut self) -> Option<Gathered> {
        self.results.pop_front()
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Datagram> {
        self.transmits.pop_front()
    }

    /// Whether `base` is a relayed address of one of the allocations.
    pub(crate) fn is_relay(&self, _base: SocketAddr) -> bool {
        false
    }

    /// Wraps a datagram from relayed address `base` to `peer` for its TURN
    /// server; `None` if `base` is not a relayed address.
    pub(crate) fn wrap_for_relay(
        &mut self,
        _now: Instant,
        _base: SocketAddr,
        _peer: SocketAddr,
        _payload: &[u8],
    ) -> Option<Datagram> {
        None
    }

    /// Like [`Gatherer::wrap_for_relay`] into a reused buffer; returns
    /// (host socket, TURN server).
    pub(crate) fn wrap_into(
        &mut self,
        _now: Instant,
        base: SocketAddr,
        _peer: SocketAddr,
        _payload: &[u8],
        _out: &mut Vec<u8>,
    ) -> Result<(SocketAddr, SocketAddr), String> {
        Err(format!("{base} is not a relayed address"))
    }

    /// Releases every allocation.
    pub(crate) fn close(&mut self, _now: Instant) {}
}
