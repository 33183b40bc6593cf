//! The agent: one ICE session for one media stream with one or two
//! components. Sans-IO: the application owns the sockets, hands in what
//! happens with [`Agent::handle_input`] — a datagram, a frame, a
//! connection's fate, the clock — then drains [`Agent::poll_output`] until
//! it returns the next timeout (docs/ice.md).
//!
//! The work is split by phase: `candidates` (local and remote candidates,
//! foundations, pairing), `checks` (sending checks, pacing,
//! retransmissions), `inbound` (requests and responses that arrive),
//! `selection` (nomination, selection, promotion, consent).

mod candidates;
mod checks;
mod gathered;
mod inbound;
mod selection;
mod tcp;

pub use crate::io::{ConnectionId, Datagram, Input, Output, Route, TcpCommand, Transmit};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use edgeice_stun::IntegrityKey;

use crate::candidate::Candidate;
use crate::checklist::CheckList;
use crate::config::AgentConfig;
use crate::event::{CheckState, Event, State};
use crate::gather::Gatherer;
use crate::rng::Random;
use crate::timer::{Timer, TimerTable};

/// Application data that arrived.
#[derive(Debug, PartialEq, Eq)]
pub struct Received<'a> {
    /// The component it belongs to.
    pub component: u16,
    /// Who sent it (the remote candidate's address).
    pub from: SocketAddr,
    /// The bytes, borrowed from the input.
    pub data: &'a [u8],
}

/// Why application data cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No pair is selected for the component yet.
    #[error("component {0} has no selected pair yet")]
    NotConnected(u16),
    /// The relay could not wrap the data (too large for a TURN message).
    #[error("the TURN relay cannot carry this datagram: {0}")]
    Relay(#[from] crate::gather::RelayError),
    /// Longer than an RFC 4571 frame (65535 bytes) on an ICE-TCP pair.
    #[error("{0} bytes do not fit in one ICE-TCP frame")]
    TooLong(usize),
}

/// The other side's ICE credentials.
struct RemoteCredentials {
    ufrag: String,
    key: IntegrityKey,
    /// `remote-ufrag:local-ufrag`, the USERNAME of our checks.
    username: String,
}

/// What the agent keeps for one component (RTP, or RTCP when not
/// multiplexed); an ICE restart resets it as a whole.
#[derive(Clone, Copy, Debug, Default)]
struct Component {
    /// The selected pair.
    selected: Option<usize>,
    /// When its first pair worked (regular nomination waits
    /// `nomination_delay` from there for a better one).
    first_success: Option<Instant>,
    /// When to send the next consent check.
    next_consent: Option<Instant>,
}

/// A host socket the application bound, and its place among them.
#[derive(Clone, Copy, Debug)]
struct HostSocket {
    address: SocketAddr,
    component: u16,
    local_preference: u16,
}

/// What makes two candidates' foundations equal (RFC 8445 §5.1.1.3): the
/// type, the base's IP, the server it came from, and TCP or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FoundationKey {
    kind: crate::candidate::CandidateKind,
    base_ip: std::net::IpAddr,
    server: Option<SocketAddr>,
    tcp: bool,
}

/// A local candidate and what the agent needs to use it.
#[derive(Debug)]
pub(crate) struct Local {
    pub candidate: Candidate,
    /// Where checks from it are sent from: a host socket, or the relayed
    /// address of an allocation.
    pub base: SocketAddr,
    pub local_preference: u16,
    /// Host and relayed candidates are paired; reflexive ones are only
    /// advertised (RFC 8445 §6.1.2.2 replaces them by their base).
    pub pairable: bool,
}

/// An ICE agent (RFC 8445) for one media stream.
pub struct Agent {
    config: AgentConfig,
    controlling: bool,
    tie_breaker: u64,
    local_ufrag: String,
    local_pwd: String,
    local_key: IntegrityKey,
    /// MS-ICE2: the peer sent IMPLEMENTATION-VERSION, so it reads the
    /// standard FINGERPRINT and needs no legacy copies.
    peer_shows_version: bool,
    remote: Option<RemoteCredentials>,
    remote_lite: bool,
    remote_end_of_candidates: bool,
    /// Host sockets, as added.
    sockets: Vec<HostSocket>,
    locals: Vec<Local>,
    remotes: Vec<Candidate>,
    /// Foundation keys: (type, base IP, server, TCP).
    foundations: Vec<FoundationKey>,
    /// The pairs, triggered checks and pacing.
    pairs: CheckList,
    /// One entry per component (index `component - 1`).
    per_component: Vec<Component>,
    gatherer: Gatherer,
    /// ICE-TCP connections, open or being opened, and what the
    /// application is to do with TCP sockets.
    tcp: tcp::Connections,
    /// Application data read from ICE-TCP connections, for
    /// [`Agent::poll_received`].
    received: VecDeque<(u16, SocketAddr, Vec<u8>)>,
    local_gathering_done: bool,
    /// Every deadline, each with its reason.
    timers: TimerTable,
    state: State,
    transmits: VecDeque<Datagram>,
    events: VecDeque<Event>,
    buf: Vec<u8>,
    rng: Random,
}

impl Agent {
    /// A new agent. Gathering starts as host sockets are added.
    pub fn new(config: AgentConfig, now: Instant) -> Agent {
        let mut rng = Random::new(config.rng_seed);
        let (ufrag_len, pwd_len) = config.dialect.credential_lengths();
        let (ufrag, pwd) = config
            .credentials
            .clone()
            .unwrap_or_else(|| (rng.token(ufrag_len), rng.token(pwd_len)));
        let components = usize::from(config.components.max(1));
        Agent {
            // RFC 8445 §6.1.1: a lite agent is controlled.
            controlling: config.controlling && !config.lite,
            tie_breaker: rng.next_u64(),
            local_key: IntegrityKey::new(pwd.as_bytes()),
            peer_shows_version: false,
            local_ufrag: ufrag,
            local_pwd: pwd,
            remote: None,
            remote_lite: false,
            remote_end_of_candidates: false,
            sockets: Vec::new(),
            locals: Vec::new(),
            remotes: Vec::new(),
            foundations: Vec::new(),
            pairs: CheckList::new(now),
            per_component: vec![Component::default(); components],
            gatherer: Gatherer::new(&config, rng.fork()),
            tcp: tcp::Connections::default(),
            received: VecDeque::new(),
            local_gathering_done: false,
            timers: TimerTable::default(),
            state: State::New,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            buf: Vec::with_capacity(1500),
            rng,
            config,
        }
    }

    /// The candidates gathered so far (not the peer-reflexive ones learned
    /// from checks), to signal again after an ICE restart.
    pub fn local_candidates(&self) -> Vec<Candidate> {
        self.locals
            .iter()
            .filter(|l| l.candidate.kind != crate::candidate::CandidateKind::PeerReflexive)
            .filter(|l| {
                l.pairable || l.candidate.kind == crate::candidate::CandidateKind::ServerReflexive
            })
            .map(|l| l.candidate.clone())
            .collect()
    }

    /// The local ICE user fragment (`a=ice-ufrag`).
    pub fn local_ufrag(&self) -> &str {
        &self.local_ufrag
    }

    /// The local ICE password (`a=ice-pwd`).
    pub fn local_password(&self) -> &str {
        &self.local_pwd
    }

    /// Whether the agent is controlling now (a role conflict may change it).
    pub fn is_controlling(&self) -> bool {
        self.controlling
    }

    /// The overall state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The number of components.
    pub fn components(&self) -> u16 {
        self.config.components.max(1)
    }

    /// Sets the other side's credentials (`a=ice-ufrag`, `a=ice-pwd`) and
    /// whether it is an ICE-lite implementation (then this side controls).
    pub fn set_remote_credentials(&mut self, now: Instant, ufrag: &str, pwd: &str, ice_lite: bool) {
        self.remote = Some(RemoteCredentials {
            ufrag: ufrag.to_string(),
            key: IntegrityKey::new(pwd.as_bytes()),
            username: format!("{ufrag}:{}", self.local_ufrag),
        });
        self.remote_lite = ice_lite;
        if ice_lite && !self.controlling && !self.config.lite {
            self.controlling = true;
            self.recompute_pair_priorities();
            self.events
                .push_back(Event::RoleChanged { controlling: true });
        }
        if self.state == State::New && !self.remotes.is_empty() {
            self.set_state(State::Checking, None);
        }
        self.pairs.pace_from(now);
        self.arm_timers();
    }

    /// The other side's ufrag, once known.
    pub fn remote_ufrag(&self) -> Option<&str> {
        self.remote.as_ref().map(|r| r.ufrag.as_str())
    }

    /// Next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.transmits.pop_front()
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn set_state(&mut self, state: State, reason: Option<String>) {
        if self.state == state || self.state == State::Closed {
            return;
        }
        // Failure is final until an ICE restart.
        if self.state == State::Failed && state != State::Checking {
            return;
        }
        self.state = state;
        self.events.push_back(Event::StateChanged { state, reason });
    }

    /// Queues `payload` to go from local `base` to `destination`: straight
    /// out of a host socket, or wrapped for the TURN server whose
    /// allocation `base` is.
    fn send_from_base(
        &mut self,
        now: Instant,
        base: SocketAddr,
        destination: SocketAddr,
        payload: &[u8],
    ) {
        if self
            .gatherer
            .send_through_relay(now, base, destination, payload, &mut self.transmits)
        {
            return;
        }
        self.transmits.push_back(Datagram {
            source: base,
            route: Route::Udp,
            destination,
            payload: payload.to_vec(),
        });
    }

    /// Queues a check or its answer from `base` to `destination`; in
    /// MS-ICE2, until the peer shows IMPLEMENTATION-VERSION, also the copy
    /// with Microsoft's legacy FINGERPRINT that older peers verify (when it
    /// differs: mostly it is the same bytes).
    fn send_stun_from_base(
        &mut self,
        now: Instant,
        base: SocketAddr,
        destination: SocketAddr,
        message: &[u8],
    ) {
        self.send_from_base(now, base, destination, message);
        if self.config.dialect == crate::Dialect::MsIce2
            && !self.peer_shows_version
            && let Some(copy) = edgeice_stun::ms::legacy_fingerprint_copy(message)
        {
            self.send_from_base(now, base, destination, &copy);
        }
    }

    /// Sends application data on `component`'s selected pair.
    pub fn send<'a>(
        &'a mut self,
        now: Instant,
        component: u16,
        data: &'a [u8],
    ) -> Result<Transmit<'a>, SendError> {
        let pair = self
            .selected_index(component)
            .or_else(|| self.early_pair(component))
            .ok_or(SendError::NotConnected(component))?;
        let base = self.locals[self.pairs[pair].local()].base;
        let destination = self.remotes[self.pairs[pair].remote()].address;
        if self.gatherer.is_relay(base) {
            let (source, transport, server) = self
                .gatherer
                .wrap_into(
                    now,
                    base,
                    destination,
                    data,
                    &mut self.buf,
                    &mut self.transmits,
                )
                .map_err(SendError::Relay)?;
            // Wrapping may have asked for a permission or channel.
            self.arm_timers();
            return Ok(Transmit {
                source,
                route: transport.into(),
                destination: server,
                payload: &self.buf,
            });
        }
        if self.locals[self.pairs[pair].local()].candidate.is_tcp()
            && self.connection_of_pair(pair).is_none()
        {
            return Err(SendError::NotConnected(component));
        }
        if let Some(id) = self.connection_of_pair(pair) {
            // ICE-TCP: RFC 4571 framed, in the agent's buffer.
            self.buf.clear();
            if !crate::framing::frame(data, &mut self.buf) {
                return Err(SendError::TooLong(data.len()));
            }
            return Ok(Transmit {
                source: base,
                route: Route::Connection(id),
                destination,
                payload: &self.buf,
            });
        }
        Ok(Transmit {
            source: base,
            route: Route::Udp,
            destination,
            payload: data,
        })
    }

    /// Before selection, data may go on the best pair that works, or that
    /// the controlling side has already nominated while our own check of it
    /// is still waiting or out (RFC 8445 §12.1 lets data flow before
    /// selection): the first packets of a peer that starts sending at once
    /// are answered. The controlling side nominates as soon as its check
    /// works, so its data can arrive before our own check has gone (before
    /// we even have its credentials, when the descriptions cross slowly).
    fn early_pair(&self, component: u16) -> Option<usize> {
        self.pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.component() == component
                    && (p.state() == CheckState::Succeeded
                        || (p.nomination_asked()
                            && !self.controlling
                            && p.state() != CheckState::Failed))
            })
            .max_by_key(|(_, p)| (p.state() == CheckState::Succeeded, p.priority()))
            .map(|(i, _)| i)
    }

    fn selected_index(&self, component: u16) -> Option<usize> {
        let slot = usize::from(component).checked_sub(1)?;
        self.per_component.get(slot).and_then(|c| c.selected)
    }

    /// The one entry point for what happens outside the agent: feed one
    /// input, then drain [`Agent::poll_output`]. Returns application data
    /// that a datagram or a relay's frame carried (data from ICE-TCP
    /// connections comes out as [`Output::Received`]).
    pub fn handle_input<'a>(&mut self, now: Instant, input: Input<'a>) -> Option<Received<'a>> {
        let received = match input {
            Input::Timeout => {
                self.on_timeout(now);
                None
            }
            Input::Datagram {
                socket,
                from,
                payload,
            } => self.on_datagram(now, socket, from, payload),
            Input::ServerFrame {
                socket,
                server,
                frame,
            } => self.on_server_frame(now, socket, server, frame),
            Input::ServerClosed { socket, server } => {
                self.on_server_closed(now, socket, server);
                None
            }
            Input::TcpConnected { id } => {
                // Given up on meanwhile: the application is to close it.
                if !self.on_tcp_connected(now, id) {
                    self.tcp.commands.push_back(TcpCommand::Close { id });
                }
                None
            }
            Input::TcpData { id, data } => {
                self.on_tcp_data(now, id, data);
                None
            }
            Input::TcpClosed { id } => {
                self.on_tcp_closed(now, id);
                None
            }
        };
        self.arm_timers();
        received
    }

    /// Runs what is due at `now`: [`Input::Timeout`] (quinn's name).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle_input(now, Input::Timeout);
    }

    /// What the agent has for the application, one at a time: TCP
    /// commands first (a connection opens before anything is sent on it),
    /// datagrams, data read from ICE-TCP connections, events, and last the
    /// next timeout with its reason — then nothing until the next input.
    /// `None` once closed, or when no timer is set.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(command) = self.tcp.commands.pop_front() {
            return Some(Output::Tcp(command));
        }
        if let Some(datagram) = self.transmits.pop_front() {
            return Some(Output::Transmit(datagram));
        }
        if let Some((component, from, data)) = self.received.pop_front() {
            return Some(Output::Received {
                component,
                from,
                data,
            });
        }
        if let Some(event) = self.events.pop_front() {
            return Some(Output::Event(event));
        }
        self.next_timer()
            .map(|(at, reason)| Output::Timeout { at, reason })
    }

    /// When to hand in [`Input::Timeout`] next: a lookup in the timer
    /// table.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(at, _)| at)
    }

    /// The next deadline and why it was set (for traces and logs).
    pub fn next_timer(&self) -> Option<(Instant, Timer)> {
        if self.state == State::Closed {
            return None;
        }
        self.timers.next()
    }

    /// Refreshes the table's entries that summarise the parts' own
    /// deadlines (pairs, components, server clients, TCP connections).
    /// Called once after every input and command: the one place that
    /// knows where deadlines come from.
    fn arm_timers(&mut self) {
        self.timers
            .put(Timer::Gathering, self.gatherer.poll_timeout());
        self.timers.put(Timer::Pacing, self.next_check_due());
        let retransmission = self
            .pairs
            .iter()
            .filter_map(|p| p.in_flight().map(|f| f.next_at))
            .min();
        self.timers.put(Timer::Retransmission, retransmission);
        let consent = self
            .per_component
            .iter()
            .filter_map(|c| c.next_consent)
            .min();
        self.timers.put(Timer::Consent, consent);
        let nomination = (0..self.per_component.len())
            .filter_map(|slot| self.nomination_wait_ends(slot))
            .min();
        self.timers.put(Timer::Nomination, nomination);
        self.timers
            .put(Timer::TcpConnect, self.next_connection_deadline());
    }

    /// Runs what is due at `now` ([`Input::Timeout`]): gathering
    /// retransmissions, paced checks, check retransmissions, nomination,
    /// consent.
    fn on_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.timers.expire(Timer::IncomingTcp, now);
        self.timers.expire(Timer::GatheringComplete, now);
        // The STUN and TURN clients' deadlines are the table's `Gathering`
        // entry: they run only when it is due, never from the input path.
        if self.timers.is_due(Timer::Gathering, now) {
            self.gatherer.handle_timeout(now, &mut self.transmits);
        }
        self.take_gathered(now);
        self.expire_connections(now);
        self.retransmit_checks(now);
        self.send_paced_check(now);
        self.nominate(now);
        self.refresh_consent(now);
        self.check_for_failure();
    }

    /// The TCP connection from host socket `socket` to server `server`
    /// closed (or could not be opened): what was allocated over it is lost.
    fn on_server_closed(&mut self, now: Instant, socket: SocketAddr, server: SocketAddr) {
        self.gatherer
            .stream_closed(socket, server, &mut self.transmits);
        self.take_gathered(now);
    }

    /// Ends the session: releases TURN allocations; nothing else is sent.
    pub fn close(&mut self, now: Instant) {
        self.gatherer.close(now, &mut self.transmits);
        self.set_state(State::Closed, None);
        self.arm_timers();
    }

    /// An ICE restart (RFC 8445 §9): new local credentials; the remote
    /// credentials and candidates, every pair and the selection are
    /// forgotten, so data waits until the new checks select a pair. Local
    /// candidates are kept: signal them again ([`Agent::local_candidates`])
    /// with the new credentials.
    pub fn restart(&mut self, now: Instant) -> (&str, &str) {
        let (ufrag_len, pwd_len) = self.config.dialect.credential_lengths();
        self.local_ufrag = self.rng.token(ufrag_len);
        self.local_pwd = self.rng.token(pwd_len);
        self.local_key = IntegrityKey::new(self.local_pwd.as_bytes());
        self.remote = None;
        self.remote_end_of_candidates = false;
        self.remotes.clear();
        self.pairs.clear(now);
        // Connections serve pairs that are gone.
        for connection in self.tcp.list.drain(..) {
            self.tcp
                .commands
                .push_back(TcpCommand::Close { id: connection.id });
        }
        self.received.clear();
        self.timers.stop(Timer::IncomingTcp);
        self.per_component.fill(Component::default());
        self.state = State::New;
        self.events.push_back(Event::StateChanged {
            state: State::New,
            reason: Some("ICE restart".into()),
        });
        self.arm_timers();
        (&self.local_ufrag, &self.local_pwd)
    }
}
