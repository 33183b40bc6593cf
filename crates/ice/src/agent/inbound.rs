//! Phase 3, incoming: every datagram the application received is handed
//! in here. Server traffic goes to the gatherer; checks and their answers
//! move pairs along; anything else is application data.

use std::net::SocketAddr;
use std::time::Instant;

use edgeice_stun::{AttributeType, Class, ErrorCode, Message, Method};

use super::{Agent, ConnectionId, Datagram, Received, Route};
use crate::candidate::{Candidate, CandidateKind, TcpType};
use crate::check::{
    CheckOutcome, IncomingRequest, Refusal, RoleAttribute, read_request, read_response,
};
use crate::event::{CheckState, Event};

impl Agent {
    /// A datagram that arrived on the local socket `socket` from `from`
    /// ([`crate::Input::Datagram`]). Returns application data, if that is what it
    /// was.
    pub(super) fn on_datagram<'a>(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        from: SocketAddr,
        data: &'a [u8],
    ) -> Option<Received<'a>> {
        if self.state == crate::event::State::Closed {
            return None;
        }
        if self.gatherer.is_server(socket, from, false) {
            let relayed =
                self.gatherer
                    .handle_input(now, socket, from, data, false, &mut self.transmits);
            self.take_gathered(now);
            relayed.and_then(|(base, peer, payload)| {
                self.handle_at_base(now, base, peer, payload, None)
            })
        } else {
            self.handle_at_base(now, socket, from, data, None)
        }
    }

    /// One frame read from the TCP or TLS connection to a TURN server
    /// ([`crate::Input::ServerFrame`]). Returns application data a relay carried,
    /// if that is what it was.
    pub(super) fn on_server_frame<'a>(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        server: SocketAddr,
        frame: &'a [u8],
    ) -> Option<Received<'a>> {
        if self.state == crate::event::State::Closed
            || !self.gatherer.is_server(socket, server, true)
        {
            return None;
        }
        let relayed =
            self.gatherer
                .handle_input(now, socket, server, frame, true, &mut self.transmits);
        self.take_gathered(now);
        relayed
            .and_then(|(base, peer, payload)| self.handle_at_base(now, base, peer, payload, None))
    }

    /// A datagram that reached local `base` (a host socket, a relayed
    /// address, or over ICE-TCP connection `via`) from `from`.
    pub(super) fn handle_at_base<'a>(
        &mut self,
        now: Instant,
        base: SocketAddr,
        from: SocketAddr,
        data: &'a [u8],
        via: Option<ConnectionId>,
    ) -> Option<Received<'a>> {
        if edgeice_stun::demux::classify(data) == edgeice_stun::demux::PacketKind::Stun
            && let Some(message) = self.config.dialect.parse(data)
        {
            if message
                .get_raw(edgeice_stun::ms::IMPLEMENTATION_VERSION)
                .is_some()
            {
                self.peer_shows_version = true;
            }
            if message.method() == Method::BINDING {
                match message.class() {
                    Class::Request => self.handle_request(now, base, from, &message, via),
                    Class::Success | Class::Error => {
                        self.handle_response(now, base, from, &message)
                    }
                    Class::Indication => {} // keepalives
                }
            }
            return None;
        }
        // Over ICE-TCP the connection knows its candidate (and component):
        // active candidates of both components share the base `IP:9`.
        let component = match via {
            Some(id) => {
                let local = self.tcp.list.iter().find(|c| c.id == id)?.local;
                self.locals[local].candidate.component
            }
            None => self.component_of_base(base)?,
        };
        // Only from addresses the other side announced or checked from.
        let known = self
            .remotes
            .iter()
            .any(|r| r.address == from && r.component == component);
        known.then_some(Received {
            component,
            from,
            data,
        })
    }

    fn respond(
        &mut self,
        now: Instant,
        (base, to, via): (SocketAddr, SocketAddr, Option<ConnectionId>),
        request: &Message<'_>,
        result: Result<(), u16>,
    ) {
        let id = *request.transaction_id();
        let dialect = self.config.dialect;
        let mut bytes = Vec::with_capacity(96);
        let built = match result {
            Ok(()) => {
                let username = request.get_raw(AttributeType::USERNAME);
                dialect.build_success(&mut bytes, id, to, username, &self.local_key)
            }
            // 487 is signed: the request was authentic.
            Err(code) if code == ErrorCode::ROLE_CONFLICT => {
                dialect.build_error(&mut bytes, id, code, Some(&self.local_key))
            }
            Err(code) => dialect.build_error(&mut bytes, id, code, None),
        };
        if built.is_err() {
            return;
        }
        match via {
            // Answers go back on the connection the request came on.
            Some(id) => {
                let mut framed = Vec::with_capacity(bytes.len() + 2);
                crate::framing::frame(&bytes, &mut framed);
                self.transmits.push_back(Datagram {
                    source: base,
                    route: Route::Connection(id),
                    destination: to,
                    payload: framed,
                });
            }
            None => self.send_stun_from_base(now, base, to, &bytes),
        }
    }

    fn handle_request(
        &mut self,
        now: Instant,
        base: SocketAddr,
        from: SocketAddr,
        message: &Message<'_>,
        via: Option<ConnectionId>,
    ) {
        let ends = (base, from, via);
        let dialect = self.config.dialect;
        let request = match read_request(message, &self.local_ufrag, &self.local_key, dialect) {
            Ok(request) => request,
            Err(Refusal::Silently) => return,
            Err(Refusal::Code(code)) => return self.respond(now, ends, message, Err(code)),
        };
        if let Some(role) = request.role
            && self.resolve_role_conflict(role)
        {
            return self.respond(now, ends, message, Err(ErrorCode::ROLE_CONFLICT));
        }
        if let Some(connection) = via {
            self.prove_connection(connection);
        }
        self.respond(now, ends, message, Ok(()));
        self.learn_from_request(now, base, from, &request, via);
    }

    /// RFC 8445 §7.3.1.1. Returns true when the request must be refused
    /// with 487 (we keep our role); switches role when we must yield.
    fn resolve_role_conflict(&mut self, role: RoleAttribute) -> bool {
        let conflict = match role {
            RoleAttribute::Controlling(theirs) if self.controlling => Some(theirs),
            RoleAttribute::Controlled(theirs) if !self.controlling => Some(theirs),
            _ => None,
        };
        let Some(theirs) = conflict else { return false };
        // A lite agent is always controlled: the other side must switch.
        if self.config.lite {
            return true;
        }
        // The larger tie-breaker controls: a controlling agent with it keeps
        // its role (487, they switch); a controlled agent with it takes
        // control. The smaller one yields or is told to.
        let ours_larger = self.tie_breaker >= theirs;
        if ours_larger == self.controlling {
            return true;
        }
        self.switch_role();
        false
    }

    pub(super) fn switch_role(&mut self) {
        self.controlling = !self.controlling;
        // Nominations asked for in the old role mean nothing in the new one.
        for pair in self.pairs.iter_mut() {
            pair.forget_nomination_request();
        }
        self.recompute_pair_priorities();
        self.events.push_back(Event::RoleChanged {
            controlling: self.controlling,
        });
    }

    /// What a valid request teaches (RFC 8445 §7.3.1.3–7.3.1.5): a
    /// peer-reflexive remote candidate, a pair to check (triggered), and
    /// for the controlled agent, a nomination.
    fn learn_from_request(
        &mut self,
        now: Instant,
        base: SocketAddr,
        from: SocketAddr,
        request: &IncomingRequest,
        via: Option<ConnectionId>,
    ) {
        // Over ICE-TCP the connection says which local candidate it serves
        // (a relay's passive and active candidates share its address).
        let tcp = via.is_some();
        let local = match via {
            Some(id) => self.tcp.list.iter().find(|c| c.id == id).map(|c| c.local),
            None => self.pairable_local_at(base, false),
        };
        let Some(local) = local else {
            return;
        };
        let component = self.locals[local].candidate.component;
        // Over TCP the other end is the opposite of ours: a connection we
        // accepted on a passive candidate came from an active one, one we
        // opened went to a passive one — even where one address serves
        // both (a TCP relay connects out from its relayed address, RFC 6062).
        let theirs_not = match self.locals[local].candidate.tcp_type {
            Some(TcpType::Passive) => Some(TcpType::Passive),
            Some(TcpType::Active) => Some(TcpType::Active),
            _ => None,
        };
        let remote = match self.remotes.iter().position(|r| {
            r.address == from
                && r.component == component
                && r.is_tcp() == tcp
                && (theirs_not.is_none() || r.tcp_type != theirs_not)
        }) {
            Some(remote) => remote,
            None if self.remotes.len() >= super::candidates::MAX_REMOTES => return,
            None => {
                let candidate = Candidate {
                    foundation: format!("prflx{}", self.remotes.len() + 1),
                    component,
                    priority: request.priority,
                    address: from,
                    kind: CandidateKind::PeerReflexive,
                    related: None,
                    // RFC 6544 §7.2.1: whoever connected to us is active
                    // (and whoever we connected to, passive).
                    tcp_type: tcp.then_some(match theirs_not {
                        Some(TcpType::Active) => TcpType::Passive,
                        _ => TcpType::Active,
                    }),
                };
                self.events.push_back(Event::RemoteCandidateLearned {
                    candidate: candidate.clone(),
                });
                self.push_remote(candidate)
            }
        };
        let Some(pair) = self.add_pair(local, remote, true) else {
            return;
        };
        if self.config.lite {
            // A lite agent does not check: a check that reached it proves
            // the pair, and the other side's nomination selects it.
            if self.pairs[pair].proven_by_check(now) {
                self.emit_check(pair, None, None);
            }
            if request.use_candidate && self.pairs[pair].nominate() {
                self.update_selection(now, component);
            }
            return;
        }
        let p = &mut self.pairs[pair];
        match p.state() {
            CheckState::Succeeded => {}
            CheckState::InProgress => {
                self.pairs.trigger(pair);
            }
            CheckState::Frozen | CheckState::Waiting | CheckState::Failed => {
                p.wait();
                self.pairs.trigger(pair);
            }
        }
        if request.use_candidate && !self.controlling {
            if self.pairs[pair].state() == CheckState::Succeeded {
                if self.pairs[pair].nominate() {
                    self.emit_check(pair, None, None);
                    self.update_selection(now, component);
                }
            } else {
                self.pairs[pair].ask_nomination();
            }
        }
        if self.state == crate::event::State::New && self.remote.is_some() {
            self.set_state(crate::event::State::Checking, None);
        }
        self.pairs.pace_from(now);
    }

    fn handle_response(
        &mut self,
        now: Instant,
        base: SocketAddr,
        from: SocketAddr,
        message: &Message<'_>,
    ) {
        let id = *message.transaction_id();
        let Some(pair) = self.pairs.iter().position(|p| p.sent(id)) else {
            return;
        };
        let Some(remote) = &self.remote else { return };
        let Some(outcome) = read_response(message, &remote.key, self.config.dialect) else {
            return;
        };
        let Some(in_flight) = self.pairs[pair].take_answered(id) else {
            return;
        };
        // RFC 8445 §7.2.5.2.1: the answer must come back the way it went.
        let expected_base = self.locals[self.pairs[pair].local()].base;
        let expected_from = self.remotes[self.pairs[pair].remote()].address;
        if base != expected_base || from != expected_from {
            if !in_flight.consent {
                self.pairs[pair].fail();
                self.emit_check(
                    pair,
                    None,
                    Some(format!("answer came from {from}, not {expected_from}")),
                );
            }
            return;
        }
        match outcome {
            CheckOutcome::Error { code, reason } => {
                if code == ErrorCode::ROLE_CONFLICT {
                    // RFC 8445 §7.2.5.1: take the other role, check again.
                    // Unless an incoming request already made us switch.
                    if in_flight.controlling == self.controlling {
                        self.switch_role();
                    }
                    self.pairs[pair].wait();
                    self.pairs.trigger(pair);
                    self.emit_check(pair, Some(code), Some(reason));
                } else if !in_flight.consent {
                    self.pairs[pair].fail();
                    self.emit_check(pair, Some(code), Some(reason));
                }
            }
            CheckOutcome::Success { mapped } => {
                self.check_succeeded(now, pair, &in_flight, mapped);
            }
        }
    }

    fn check_succeeded(
        &mut self,
        now: Instant,
        pair: usize,
        in_flight: &crate::checklist::InFlight,
        mapped: SocketAddr,
    ) {
        let component = self.pairs[pair].component();
        let base = self.locals[self.pairs[pair].local()].base;
        self.pairs[pair].answered(now);
        if in_flight.consent {
            return;
        }
        // The valid pair's local candidate: whichever of ours the other
        // side saw, or a new peer-reflexive one (RFC 8445 §7.2.5.3.1).
        let tcp_type = self.locals[self.pairs[pair].local()].candidate.tcp_type;
        let valid_local = match self.locals.iter().position(|l| {
            l.candidate.address == mapped
                && l.candidate.component == component
                && l.candidate.is_tcp() == tcp_type.is_some()
        }) {
            Some(local) => local,
            None => {
                let local_preference = self.locals[self.pairs[pair].local()].local_preference;
                self.add_local_candidate(
                    CandidateKind::PeerReflexive,
                    component,
                    mapped,
                    base,
                    Some(base),
                    local_preference,
                    None,
                    tcp_type,
                )
            }
        };
        let p = &mut self.pairs[pair];
        let rtt = now.saturating_duration_since(in_flight.last_sent);
        p.succeed(valid_local, rtt, in_flight.use_candidate, self.controlling);
        let foundation = p.foundation().to_string();
        // RFC 8445 §7.2.5.3.3: the same foundation in other components now
        // has a good chance of working.
        for other in self.pairs.iter_mut() {
            if other.foundation() == foundation {
                other.unfreeze();
            }
        }
        if let Some(slot) = self
            .per_component
            .get_mut(usize::from(component) - 1)
            .map(|c| &mut c.first_success)
            && slot.is_none()
        {
            *slot = Some(now);
        }
        self.emit_check(pair, None, None);
        self.update_selection(now, component);
        self.nominate(now);
    }
}
