//! Relayed candidates from an edge that speaks MS-TURN, for an agent in
//! the MS-ICE2 dialect (what a Lync or Skype for Business client asks its
//! A/V Edge for): one [`MsTurnClient`] per (host socket, server), which
//! also carries the relayed candidate's checks and data in Send requests
//! and Data indications.

use std::net::SocketAddr;
use std::time::Instant;

use super::RelayError;
use edgeice_client::{MsTurnClient, MsTurnConfig, MsTurnEvent, TransactionConfig, Transport};

use super::{Gathered, failure_reason, push_allocated};
use crate::config::{ServerTransport, TurnServer};
use crate::io::Datagram;

/// One MS-TURN allocation from one host socket.
pub(super) struct MsTurnQuery {
    component: u16,
    socket: SocketAddr,
    server: TurnServer,
    client: MsTurnClient,
    /// Allocated or failed: gathering no longer waits for it.
    pub(super) done: bool,
    pub(super) relayed: Option<SocketAddr>,
}

impl MsTurnQuery {
    /// Starts an allocation on `server` from `socket`; why not, if it
    /// cannot start.
    pub(super) fn start(
        now: Instant,
        component: u16,
        socket: SocketAddr,
        server: &TurnServer,
        transactions: TransactionConfig,
    ) -> Result<MsTurnQuery, String> {
        let transport = match server.transport {
            ServerTransport::Udp => Transport::Udp,
            ServerTransport::Tcp => Transport::Tcp,
            // Microsoft's edges wrap TURN on 443 in their own pseudo-TLS.
            ServerTransport::Tls => {
                return Err("MS-TURN over TLS is not supported: use UDP or TCP".to_owned());
            }
        };
        let mut client = MsTurnClient::new(MsTurnConfig {
            server: server.address,
            transport,
            username: server.username.clone(),
            password: server.password.clone(),
            transactions,
        })
        .map_err(|e| e.to_string())?;
        client.allocate(now).map_err(|e| e.to_string())?;
        Ok(MsTurnQuery {
            component,
            socket,
            server: server.clone(),
            client,
            done: false,
            relayed: None,
        })
    }

    /// Whether input from `from` on `socket` (over a stream or not) is
    /// this edge talking.
    pub(super) fn matches(&self, socket: SocketAddr, from: SocketAddr, stream: bool) -> bool {
        self.socket == socket
            && self.server.address == from
            && (self.server.transport != ServerTransport::Udp) == stream
    }

    /// Moves what the client wants sent and what it found into the queues.
    pub(super) fn collect(
        &mut self,
        transactions: &TransactionConfig,
        transmits: &mut std::collections::VecDeque<Datagram>,
        results: &mut std::collections::VecDeque<Gathered>,
    ) {
        while let Some(transmit) = self.client.poll_transmit() {
            transmits.push_back(Datagram {
                source: self.socket,
                route: self.server.transport.into(),
                destination: transmit.destination,
                payload: transmit.payload.to_vec(),
            });
        }
        while let Some(event) = self.client.poll_event() {
            match event {
                MsTurnEvent::Allocated {
                    relayed, reflexive, ..
                } => {
                    self.done = true;
                    self.relayed = Some(relayed);
                    let mapped = reflexive.unwrap_or(self.socket);
                    let from = (self.component, self.socket);
                    push_allocated(results, from, &self.server, relayed, mapped);
                }
                MsTurnEvent::Failed { code, reason, .. } => {
                    // A refused Set Active Destination leaves the relay
                    // working through Send requests: nothing lost.
                    if self.done && self.relayed.is_some() && code.is_some() {
                        continue;
                    }
                    self.done = true;
                    results.push_back(Gathered::Failed {
                        server: self.server.url.clone(),
                        code,
                        reason: failure_reason(code, reason, self.relayed, transactions),
                    });
                }
                MsTurnEvent::ActiveDestination { .. } | MsTurnEvent::Released => {}
            }
        }
    }

    /// Hands the edge's datagram to the client; relayed data comes back as
    /// (relayed address, peer, payload).
    pub(super) fn handle_input<'a>(
        &mut self,
        now: Instant,
        data: &'a [u8],
    ) -> Option<(SocketAddr, SocketAddr, &'a [u8])> {
        let (peer, payload) = self.client.handle_input(now, data).ok()??;
        Some((self.relayed?, peer, payload))
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }

    /// Wraps `payload` for `peer` into `out` if `base` is this relay:
    /// (host socket, transport, edge) to send it by.
    pub(super) fn wrap_into(
        &mut self,
        base: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Result<(SocketAddr, ServerTransport, SocketAddr), RelayError>> {
        if self.relayed != Some(base) {
            return None;
        }
        Some(
            self.client
                .send_to(peer, payload, out)
                .map(|()| (self.socket, self.server.transport, self.server.address))
                .map_err(RelayError::from),
        )
    }

    /// Gives the relay back.
    pub(super) fn close(&mut self, now: Instant) {
        let _ = self.client.release(now);
    }
}
