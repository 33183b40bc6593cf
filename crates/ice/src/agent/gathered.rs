//! Phases 1 and 2 against servers, on the agent's side: what the
//! gatherer found (server-reflexive and relayed candidates, RFC 6062
//! connections, failures) turned into local candidates and events.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Agent, tcp};
use crate::event::Event;
use crate::gather::ServerName;

impl Agent {
    /// Takes in what the gatherer found (it sent what it had to straight
    /// into the agent's queue), right after the call that found it.
    pub(super) fn take_gathered(&mut self, now: Instant) {
        while let Some(result) = self.gatherer.poll_result() {
            match result {
                crate::gather::Gathered::Reflexive {
                    component,
                    socket,
                    mapped,
                    server,
                } => {
                    // Not behind a NAT: the reflexive address is the host
                    // one, and would only repeat it (RFC 8445 §5.1.3).
                    if mapped == socket && !self.config.relay_only {
                        continue;
                    }
                    if !self.config.relay_only {
                        let preference = self.local_preference_of_socket(socket);
                        self.add_local(
                            crate::candidate::CandidateKind::ServerReflexive,
                            component,
                            mapped,
                            socket,
                            Some(socket),
                            preference,
                            Some(server),
                        );
                    }
                }
                crate::gather::Gathered::Relayed {
                    component,
                    socket,
                    relayed,
                    mapped,
                    server,
                    transport,
                } => {
                    let preference = self.config.dialect.relayed_local_preference(
                        self.local_preference_of_socket(socket),
                        self.turn_index(&server),
                        transport,
                        false,
                    );
                    self.add_local(
                        crate::candidate::CandidateKind::Relayed,
                        component,
                        relayed,
                        relayed,
                        Some(mapped),
                        preference,
                        Some(server),
                    );
                }
                crate::gather::Gathered::RelayedTcp {
                    component,
                    socket,
                    relayed,
                    mapped,
                    server,
                } => {
                    let preference = self.config.dialect.relayed_local_preference(
                        self.local_preference_of_socket(socket),
                        self.turn_index(&server),
                        crate::config::ServerTransport::Tcp,
                        true,
                    );
                    self.add_local_candidate(
                        crate::candidate::CandidateKind::Relayed,
                        component,
                        relayed,
                        relayed,
                        Some(mapped),
                        preference,
                        Some(server.clone()),
                        Some(crate::candidate::TcpType::Passive),
                    );
                    // And an active one (`IP:9`): the server connects out
                    // for it (RFC 6062 Connect).
                    self.add_local_candidate(
                        crate::candidate::CandidateKind::Relayed,
                        component,
                        SocketAddr::new(relayed.ip(), tcp::ACTIVE_PORT),
                        relayed,
                        Some(mapped),
                        preference,
                        Some(server),
                        Some(crate::candidate::TcpType::Active),
                    );
                    let peers: Vec<std::net::IpAddr> = self
                        .remotes
                        .iter()
                        .filter(|r| r.is_tcp())
                        .map(|r| r.address.ip())
                        .collect();
                    for ip in peers {
                        self.gatherer.permit_tcp_peer(now, ip, &mut self.transmits);
                    }
                    self.expect_incoming(now);
                }
                crate::gather::Gathered::RelayConnected {
                    relayed,
                    peer,
                    connection_id,
                    via,
                } => self.relay_connected(relayed, peer, connection_id, via),
                crate::gather::Gathered::RelayConnectFailed {
                    relayed,
                    peer,
                    reason,
                } => self.relay_connect_failed(now, relayed, peer, &reason),
                crate::gather::Gathered::PeerConnection {
                    relayed,
                    peer,
                    connection_id,
                    via,
                } => self.accept_through_relay(now, relayed, peer, connection_id, via),
                crate::gather::Gathered::Failed {
                    server,
                    code,
                    reason,
                } => {
                    self.events.push_back(Event::GatheringFailed {
                        server,
                        code,
                        reason,
                    });
                }
            }
        }
        self.check_gathering_complete();
        self.check_for_failure();
    }

    /// Which of the configured TURN servers `server` (as the gatherer
    /// names it) is.
    pub(super) fn turn_index(&self, server: &ServerName) -> usize {
        self.config
            .turn_servers
            .iter()
            .position(|t| t.address == server.address && t.url == server.url)
            .unwrap_or(0)
    }

    /// The configured TURN server `server` (as the gatherer names it).
    pub(super) fn turn_server(&self, server: &ServerName) -> Option<&crate::config::TurnServer> {
        self.config
            .turn_servers
            .iter()
            .find(|t| t.address == server.address && t.url == server.url)
    }
}
