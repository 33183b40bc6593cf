//! Phases 1 and 2: local candidates (host sockets, and what the gatherer
//! learns from servers), remote candidates (signalled or learned from
//! checks), foundations, and forming pairs from them.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{Agent, FoundationKey, HostSocket, Local};
use crate::candidate::{Candidate, CandidateKind, TcpType};
use crate::checklist::{Pair, pair_priority};
use crate::event::{Event, State};
use crate::gather::ServerName;
use crate::timer::Timer;

/// Most remote candidates kept (signalled and peer-reflexive together):
/// pairs are capped anyway, and a peer must not grow the agent without end.
pub(super) const MAX_REMOTES: usize = 500;

/// How long a passive TCP candidate waits for the other side's active ones
/// to connect before the agent may fail.
const INCOMING_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Agent {
    /// Registers a socket the application bound for `component` (one per
    /// interface address and component). It becomes a host candidate
    /// (unless relay-only) and the base for server-reflexive and relayed
    /// candidates from the configured servers.
    pub fn add_host_socket(&mut self, now: Instant, component: u16, address: SocketAddr) {
        if component == 0
            || component > self.components()
            || self.sockets.iter().any(|s| s.address == address)
        {
            return;
        }
        let family_index = self
            .sockets
            .iter()
            .filter(|s| s.component == component && s.address.is_ipv4() == address.is_ipv4())
            .count();
        let index = self
            .sockets
            .iter()
            .filter(|s| s.component == component)
            .count();
        let local_preference =
            self.config
                .dialect
                .host_local_preference(address.ip(), family_index, index);
        self.sockets.push(HostSocket {
            address,
            component,
            local_preference,
        });
        if !self.config.relay_only {
            self.add_local(
                CandidateKind::Host,
                component,
                address,
                address,
                None,
                local_preference,
                None,
            );
        }
        // Lite agents have host candidates only (RFC 8445 §5.2).
        if !self.config.lite {
            self.gatherer
                .start(now, component, address, &mut self.transmits);
        }
        self.local_gathering_done = false;
        // Completion is judged at the next timeout, so that the sockets an
        // application adds in one go count as one gathering.
        self.timers.set(Timer::GatheringComplete, now);
        self.arm_timers();
    }

    /// The foundation of a candidate of `kind` on `base_ip` learned from
    /// `server` (RFC 8445 §5.1.1.3): equal inputs, equal foundations.
    fn foundation(
        &mut self,
        kind: CandidateKind,
        base_ip: IpAddr,
        server: Option<SocketAddr>,
        tcp: bool,
    ) -> String {
        let key = FoundationKey {
            kind,
            base_ip,
            server,
            tcp,
        };
        let index = match self.foundations.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.foundations.push(key);
                self.foundations.len() - 1
            }
        };
        (index + 1).to_string()
    }

    /// Adds a local UDP candidate; returns its index. Reflexive and
    /// relayed ones are announced with the server they came from.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_local(
        &mut self,
        kind: CandidateKind,
        component: u16,
        address: SocketAddr,
        base: SocketAddr,
        related: Option<SocketAddr>,
        local_preference: u16,
        server: Option<ServerName>,
    ) -> usize {
        self.add_local_candidate(
            kind,
            component,
            address,
            base,
            related,
            local_preference,
            server,
            None,
        )
    }

    /// Adds a local candidate, UDP or TCP (`tcp_type`); returns its index.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_local_candidate(
        &mut self,
        kind: CandidateKind,
        component: u16,
        address: SocketAddr,
        base: SocketAddr,
        related: Option<SocketAddr>,
        local_preference: u16,
        server: Option<ServerName>,
        tcp_type: Option<TcpType>,
    ) -> usize {
        if let Some(existing) = self.locals.iter().position(|l| {
            l.candidate.address == address
                && l.candidate.component == component
                && l.candidate.tcp_type == tcp_type
                && (l.candidate.kind == kind || kind == CandidateKind::PeerReflexive)
        }) {
            return existing;
        }
        let foundation = self.foundation(
            kind,
            base.ip(),
            server.as_ref().map(|s| s.address),
            tcp_type.is_some(),
        );
        let relay_over_stream = kind == CandidateKind::Relayed
            && server
                .as_ref()
                .and_then(|s| self.turn_server(s))
                .is_some_and(|t| t.transport != crate::config::ServerTransport::Udp);
        let priority = self.config.dialect.priority(
            kind,
            tcp_type,
            local_preference,
            component,
            relay_over_stream,
        );
        let candidate = Candidate {
            foundation,
            component,
            priority,
            address,
            kind,
            related,
            tcp_type,
        };
        let pairable = matches!(kind, CandidateKind::Host | CandidateKind::Relayed);
        if kind != CandidateKind::PeerReflexive {
            self.events.push_back(Event::CandidateGathered {
                candidate: candidate.clone(),
                server: server.map(|s| s.url),
            });
        }
        self.locals.push(Local {
            candidate,
            base,
            local_preference,
            pairable,
        });
        let index = self.locals.len() - 1;
        if pairable {
            for remote in 0..self.remotes.len() {
                self.add_pair(index, remote, false);
            }
            self.pairs.unfreeze_initial();
        }
        index
    }

    /// Adds a candidate the other side signalled (trickled or in its
    /// description). Candidates of components this agent does not have,
    /// and duplicates, are ignored.
    pub fn add_remote_candidate(&mut self, now: Instant, candidate: Candidate) {
        if candidate.component == 0
            || candidate.component > self.components()
            || self.remotes.len() >= MAX_REMOTES
        {
            return;
        }
        if let Some(known) = self.remotes.iter_mut().find(|r| {
            r.address == candidate.address
                && r.component == candidate.component
                && r.tcp_type == candidate.tcp_type
        }) {
            // A peer-reflexive guess replaced by what the other side says
            // (its pairs' priorities follow the real priority).
            if known.kind == CandidateKind::PeerReflexive {
                *known = candidate;
                self.recompute_pair_priorities();
            }
            return;
        }
        if candidate.is_tcp() {
            self.gatherer
                .permit_tcp_peer(now, candidate.address.ip(), &mut self.transmits);
        }
        let active = candidate.tcp_type == Some(TcpType::Active);
        self.push_remote(candidate);
        if active {
            self.expect_incoming(now);
        }
        if self.state == State::New && self.remote.is_some() {
            self.set_state(State::Checking, None);
        }
        self.pairs.pace_from(now);
        self.arm_timers();
    }

    /// Their active TCP candidates will connect to our passive ones
    /// (through a relay, only once our permission is in): while both exist,
    /// failure waits a while for those connections.
    pub(super) fn expect_incoming(&mut self, now: Instant) {
        let theirs = self
            .remotes
            .iter()
            .any(|r| r.tcp_type == Some(TcpType::Active));
        let ours = self
            .locals
            .iter()
            .any(|l| l.candidate.tcp_type == Some(TcpType::Passive));
        if theirs && ours {
            self.timers.set(Timer::IncomingTcp, now + INCOMING_WAIT);
        }
    }

    pub(super) fn push_remote(&mut self, candidate: Candidate) -> usize {
        self.remotes.push(candidate);
        let remote = self.remotes.len() - 1;
        for local in 0..self.locals.len() {
            if self.locals[local].pairable {
                self.add_pair(local, remote, false);
            }
        }
        self.pairs.unfreeze_initial();
        remote
    }

    /// The other side said `a=end-of-candidates` (RFC 8838): once every
    /// pair has failed, the agent may give up.
    pub fn end_of_remote_candidates(&mut self) {
        self.remote_end_of_candidates = true;
        self.check_for_failure();
        self.arm_timers();
    }

    /// Forms the pair (local, remote) if they can be paired and it is new;
    /// returns its index. `incoming`: formed from a check that arrived, so
    /// a passive TCP candidate may pair with the active one that connected.
    pub(super) fn add_pair(
        &mut self,
        local: usize,
        remote: usize,
        incoming: bool,
    ) -> Option<usize> {
        let l = &self.locals[local];
        let r = &self.remotes[remote];
        if l.candidate.component != r.component || l.base.is_ipv4() != r.address.is_ipv4() {
            return None;
        }
        // RFC 6544 §6.2: active checks passive, simultaneous-open checks
        // simultaneous-open; a passive candidate only answers.
        let transports_match = match (l.candidate.tcp_type, r.tcp_type) {
            (None, None) => true,
            (Some(TcpType::Active), Some(TcpType::Passive)) => true,
            (Some(TcpType::SimultaneousOpen), Some(TcpType::SimultaneousOpen)) => true,
            (Some(TcpType::Passive), Some(TcpType::Active)) => incoming,
            _ => false,
        };
        if !transports_match {
            return None;
        }
        // A link-local address only reaches its own link: pairing it with
        // anything else would only produce failed checks.
        if is_link_local(l.base.ip()) != is_link_local(r.address.ip()) {
            return None;
        }
        if let Some(existing) = self
            .pairs
            .iter()
            .position(|p| p.local() == local && p.remote() == remote)
        {
            return Some(existing);
        }
        if self.pairs.len() >= self.config.max_pairs {
            return None;
        }
        let foundation = format!("{}:{}", l.candidate.foundation, r.foundation);
        let priority = self.pair_priority_of(l.candidate.priority, r.priority);
        let component = r.component;
        Some(
            self.pairs
                .push(Pair::new(local, remote, component, foundation, priority)),
        )
    }

    fn pair_priority_of(&self, local: u32, remote: u32) -> u64 {
        if self.controlling {
            pair_priority(local, remote)
        } else {
            pair_priority(remote, local)
        }
    }

    /// After a role change every pair's priority changes (G and D swap).
    pub(super) fn recompute_pair_priorities(&mut self) {
        for i in 0..self.pairs.len() {
            let local = self.locals[self.pairs[i].local()].candidate.priority;
            let remote = self.remotes[self.pairs[i].remote()].priority;
            let priority = self.pair_priority_of(local, remote);
            self.pairs[i].set_priority(priority);
        }
    }

    /// The local candidate checks use at `base`, UDP or TCP.
    pub(super) fn pairable_local_at(&self, base: SocketAddr, tcp: bool) -> Option<usize> {
        self.locals
            .iter()
            .position(|l| l.pairable && l.base == base && l.candidate.is_tcp() == tcp)
    }

    /// The component a host socket or relayed address belongs to.
    pub(super) fn component_of_base(&self, base: SocketAddr) -> Option<u16> {
        self.locals
            .iter()
            .find(|l| l.base == base)
            .map(|l| l.candidate.component)
            .or_else(|| {
                self.sockets
                    .iter()
                    .find(|s| s.address == base)
                    .map(|s| s.component)
            })
    }

    /// The local preference of the host socket `base` (relayed candidates
    /// inherit the one of the socket their allocation was made from).
    pub(super) fn local_preference_of_socket(&self, socket: SocketAddr) -> u16 {
        self.sockets
            .iter()
            .find(|s| s.address == socket)
            .map_or(65535, |s| s.local_preference)
    }

    pub(super) fn check_gathering_complete(&mut self) {
        if self.timers.get(Timer::GatheringComplete).is_some() {
            return;
        }
        if !self.local_gathering_done && self.gatherer.is_complete() {
            self.local_gathering_done = true;
            self.events.push_back(Event::GatheringComplete);
        }
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    edgeice_candidate::AddressClass::of(ip) == edgeice_candidate::AddressClass::LinkLocal
}
