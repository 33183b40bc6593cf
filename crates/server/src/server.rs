//! The server state machine: one entry point for every input, and the
//! tables it keeps (allocations by 5-tuple and by relay address).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_stun::{AddressFamily, Class, Message, Method};

use crate::allocation::Allocation;
use crate::auth::Nonces;
use crate::config::ServerConfig;
use crate::histogram::{Histogram, LatencyBuckets, LifetimeBuckets};
use crate::interface::{Event, FiveTuple, Input, RelayPort, RelayRequestId, Transmit, Transport};
use crate::response::ReplyTo;
use crate::session::{EndReason, Refusal, RefusalReason, Report, Session, SessionId};
use crate::{binding, response};

/// How often lapsed allocations, permissions and channels are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How long a lapsed channel number stays reserved (RFC 8656 §12).
const CHANNEL_REUSE_GRACE: Duration = Duration::from_secs(300);

/// Counters an operator watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Binding requests answered with success.
    pub binding_success: u64,
    /// Error responses sent.
    pub error_responses: u64,
    /// Error responses sent, by error code.
    pub errors_by_code: BTreeMap<u16, u64>,
    /// Requests that carried credentials and were refused (401, 438, 441);
    /// the unauthenticated first request of each client is not counted.
    pub auth_failures: u64,
    /// Allocations created.
    pub allocations_created: u64,
    /// Packets relayed client → peer, and their payload bytes.
    pub relayed_to_peer: (u64, u64),
    /// Packets relayed peer → client, and their payload bytes.
    pub relayed_to_client: (u64, u64),
    /// Packets dropped for lack of a permission or channel.
    pub permission_denied: u64,
    /// Relayed packets dropped: over the allocation's bandwidth cap.
    pub over_bandwidth: u64,
    /// 401/438 answers not sent: over the per-IP rate, or over the
    /// amplification limit.
    pub challenges_dropped: u64,
    /// Attempts refused without checking their integrity: the user and
    /// source were in backoff after failed integrity checks.
    pub guesses_held_back: u64,
    /// RFC 5780 Binding requests (RESPONSE-PORT, CHANGE-REQUEST) not
    /// answered: over the per-IP rate.
    pub discovery_dropped: u64,
    /// Inputs dropped: not STUN or ChannelData, or malformed.
    pub dropped: u64,
    /// MS-TURN requests received (Lync and Skype for Business clients).
    pub ms_turn_requests: u64,
    /// Allocations created for MS-TURN clients (also counted in
    /// `allocations_created`).
    pub ms_turn_allocations_created: u64,
    /// What was relayed for clients of each transport, indexed by
    /// [`Transport::index`] (also counted in `relayed_to_peer` and
    /// `relayed_to_client`); counted as each packet goes.
    pub relayed_by_transport: [TransportTraffic; 3],
    /// How long allocations lived, observed when each ends.
    pub allocation_lifetimes: Histogram<LifetimeBuckets>,
    /// How long successful Allocates took, from the authenticated request
    /// reaching the core to the success answer (the driver binding the
    /// relay socket in between).
    pub allocate_latencies: Histogram<LatencyBuckets>,
    /// New Allocates answered 300 Try Alternate, indexed by
    /// [`crate::RedirectReason::index`].
    pub redirects: [u64; crate::RedirectReason::KINDS],
    /// New Allocates refused with 508 while draining, with no alternate
    /// to redirect them to.
    pub drain_refusals: u64,
}

/// Packets and payload bytes relayed, both ways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportTraffic {
    /// Client → peer: (packets, payload bytes).
    pub to_peer: (u64, u64),
    /// Peer → client: (packets, payload bytes).
    pub to_client: (u64, u64),
}

impl TransportTraffic {
    /// Adds `other`'s counts to these.
    pub fn absorb(&mut self, other: &TransportTraffic) {
        self.to_peer.0 += other.to_peer.0;
        self.to_peer.1 += other.to_peer.1;
        self.to_client.0 += other.to_client.0;
        self.to_client.1 += other.to_client.1;
    }
}

impl Stats {
    /// Adds `other`'s counts to these (a driver running several cores
    /// reports their sum).
    pub fn absorb(&mut self, other: &Stats) {
        self.binding_success += other.binding_success;
        self.error_responses += other.error_responses;
        for (code, count) in &other.errors_by_code {
            *self.errors_by_code.entry(*code).or_insert(0) += count;
        }
        self.auth_failures += other.auth_failures;
        self.allocations_created += other.allocations_created;
        self.relayed_to_peer.0 += other.relayed_to_peer.0;
        self.relayed_to_peer.1 += other.relayed_to_peer.1;
        self.relayed_to_client.0 += other.relayed_to_client.0;
        self.relayed_to_client.1 += other.relayed_to_client.1;
        self.permission_denied += other.permission_denied;
        self.over_bandwidth += other.over_bandwidth;
        self.challenges_dropped += other.challenges_dropped;
        self.guesses_held_back += other.guesses_held_back;
        self.discovery_dropped += other.discovery_dropped;
        self.dropped += other.dropped;
        self.ms_turn_requests += other.ms_turn_requests;
        self.ms_turn_allocations_created += other.ms_turn_allocations_created;
        for (mine, theirs) in self
            .relayed_by_transport
            .iter_mut()
            .zip(&other.relayed_by_transport)
        {
            mine.absorb(theirs);
        }
        self.allocation_lifetimes
            .absorb(&other.allocation_lifetimes);
        self.allocate_latencies.absorb(&other.allocate_latencies);
        for (mine, theirs) in self.redirects.iter_mut().zip(&other.redirects) {
            *mine += theirs;
        }
        self.drain_refusals += other.drain_refusals;
    }

    /// What was relayed for clients of `transport`.
    pub fn traffic(&self, transport: Transport) -> TransportTraffic {
        self.relayed_by_transport[transport.index()]
    }

    /// Counts a packet of `bytes` payload relayed to a peer for a client
    /// on `transport`.
    pub(crate) fn count_to_peer(&mut self, transport: Transport, bytes: usize) {
        let bytes = bytes as u64;
        self.relayed_to_peer.0 += 1;
        self.relayed_to_peer.1 += bytes;
        let by_transport = &mut self.relayed_by_transport[transport.index()].to_peer;
        by_transport.0 += 1;
        by_transport.1 += bytes;
    }

    /// Counts a packet of `bytes` payload relayed to a client on
    /// `transport`.
    pub(crate) fn count_to_client(&mut self, transport: Transport, bytes: usize) {
        let bytes = bytes as u64;
        self.relayed_to_client.0 += 1;
        self.relayed_to_client.1 += bytes;
        let by_transport = &mut self.relayed_by_transport[transport.index()].to_client;
        by_transport.0 += 1;
        by_transport.1 += bytes;
    }

    /// Counts an error response with `code`.
    pub(crate) fn count_error(&mut self, code: u16) {
        self.error_responses += 1;
        *self.errors_by_code.entry(code).or_insert(0) += 1;
    }
}

/// An Allocate request waiting for the driver to bind its relay socket.
#[derive(Debug)]
pub(crate) struct PendingAllocation {
    pub five_tuple: FiveTuple,
    pub reply: ReplyTo,
    pub username: String,
    pub key: edgeice_stun::IntegrityKey,
    pub lifetime: Duration,
    /// IPv6 too, for a dual allocation (ADDITIONAL-ADDRESS-FAMILY).
    pub additional_family: Option<AddressFamily>,
    /// A dual allocation was asked for where IPv6 is not offered.
    pub refused_dual: bool,
    /// UDP or TCP towards peers.
    pub relay_transport: crate::RelayTransport,
    /// For an MS-TURN client, what its allocation starts with (the
    /// connection ID is filled in once the relay is bound).
    pub ms_turn: Option<crate::allocation::MsTurnState>,
    /// When the request reached the core, for the Allocate latency.
    pub requested: Instant,
}

/// How long a port reserved by EVEN-PORT stays held (RFC 8656 §7.2
/// suggests about 30 seconds).
pub(crate) const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// The STUN/TURN server core. See the crate documentation for how to drive it.
#[derive(Debug)]
pub struct Server {
    pub(crate) config: ServerConfig,
    pub(crate) nonces: Nonces,
    pub(crate) allocations: HashMap<FiveTuple, Allocation>,
    pub(crate) by_relay: HashMap<SocketAddr, FiveTuple>,
    pub(crate) pending: HashMap<RelayRequestId, PendingAllocation>,
    /// TCP connections between relays and peers (RFC 6062).
    pub(crate) connections: HashMap<crate::ConnectionId, crate::tcp_relay::PeerConnection>,
    pub(crate) next_connection: u64,
    /// Private relay IPs already reported with [`Event::PrivateRelayAdvertised`].
    pub(crate) private_relays_reported: Vec<std::net::IpAddr>,
    pub(crate) events: VecDeque<Event>,
    /// Records for the operator, drained with [`Server::poll_report`].
    pub(crate) reports: VecDeque<crate::session::Report>,
    /// Responses and Data indications are written here; a [`Transmit`]
    /// borrows it until the next input.
    pub(crate) scratch: Vec<u8>,
    next_relay_request: u64,
    next_sweep: Instant,
    pub(crate) stats: Stats,
}

impl Server {
    /// A server with `config`, starting at `now`.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let nonces = Nonces::new(&config.nonce_secret, now, config.nonce_lifetime);
        Server {
            config,
            nonces,
            allocations: HashMap::new(),
            by_relay: HashMap::new(),
            pending: HashMap::new(),
            private_relays_reported: Vec::new(),
            connections: HashMap::new(),
            next_connection: 0,
            events: VecDeque::new(),
            reports: VecDeque::new(),
            scratch: Vec::with_capacity(1500),
            next_relay_request: 0,
            next_sweep: now + SWEEP_INTERVAL,
            stats: Stats::default(),
        }
    }

    /// Processes one input and returns what to send in answer, if anything:
    /// a response, or a relayed packet. It borrows the server (or the
    /// input), so send it before the next call. Afterwards, drain
    /// [`Server::poll_event`].
    pub fn handle_input<'s>(&'s mut self, now: Instant, input: Input<'s>) -> Option<Transmit<'s>> {
        match input {
            Input::Client { from, payload } => self.handle_client(now, from, payload),
            Input::PeerData {
                relay,
                peer,
                datagram,
            } => self.relay_to_client(now, relay, peer, datagram),
            Input::RelayBound {
                id,
                relay,
                reserved,
                additional,
            } => self.finish_allocate(now, id, relay, reserved, additional),
            Input::ConnectionClosed { from } => {
                self.remove_allocation(now, &from, EndReason::ConnectionClosed);
                let quota = &self.config.shared.quota;
                self.pending.retain(|_, p| {
                    let keep = p.five_tuple != from;
                    if !keep {
                        quota.give_back(&p.username);
                    }
                    keep
                });
                None
            }
            Input::PeerConnected { id, connected } => self.finish_connect(now, id, connected),
            Input::PeerConnection { relay, peer } => self.incoming_peer(now, relay, peer),
            Input::PeerConnectionClosed { id } => {
                self.connections.remove(&id);
                None
            }
        }
    }

    fn handle_client<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        contents: &'s [u8],
    ) -> Option<Transmit<'s>> {
        // The first two bits tell STUN (00) from ChannelData (01). RFC 7983
        // gives ChannelData only 64..=79, but channels of RFC 5766's wider
        // range, still in use, reach 127.
        match contents.first().map(|b| b >> 6) {
            Some(0b01) => self.relay_channel_data(now, from, contents),
            Some(0b00) if edgeice_stun::ms::is_ms_turn(contents) => {
                self.handle_ms_turn(now, from, contents)
            }
            // An MS-TURN client with an active destination sends it raw
            // datagrams: RTP, and STUN-looking MS-ICE2 checks too.
            Some(_) if let Some(destination) = self.active_destination(&from) => {
                self.relay_raw_to_destination(now, from, destination, contents)
            }
            Some(0b00) => self.handle_stun(now, from, contents),
            _ => {
                self.stats.dropped += 1;
                None
            }
        }
    }

    fn handle_stun<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        contents: &'s [u8],
    ) -> Option<Transmit<'s>> {
        let Ok(message) = Message::parse_any_cookie(contents) else {
            self.stats.dropped += 1;
            return None;
        };
        if message.has_fingerprint() && message.verify_fingerprint().is_err() {
            self.stats.dropped += 1;
            return None;
        }
        match (message.class(), message.method()) {
            (Class::Request, Method::BINDING) => {
                if binding::asks_elsewhere(&message, from, &self.config.alternates)
                    && !self.config.shared.allow_discovery(from.client.ip(), now)
                {
                    // An answer aimed at another port or sent from another
                    // address: what a spoofer would use to reflect.
                    self.stats.discovery_dropped += 1;
                    return None;
                }
                let software = self.config.software.as_deref();
                let (alternates, external) = (&self.config.alternates, &self.config.external_ips);
                let answer = binding::respond(
                    &mut self.scratch,
                    &message,
                    from,
                    alternates,
                    external,
                    software,
                )?;
                if answer.success {
                    self.stats.binding_success += 1;
                } else {
                    // A Binding request is refused only for what it asks
                    // without being understood.
                    self.stats
                        .count_error(edgeice_stun::ErrorCode::UNKNOWN_ATTRIBUTE);
                }
                Some(Transmit {
                    transport: from.transport,
                    source: answer.source,
                    destination: answer.destination,
                    payload: answer.bytes,
                })
            }
            (Class::Indication, Method::SEND) => self.relay_send_indication(now, from, &message),
            (Class::Request, _) => self.handle_turn_request(now, from, &message),
            _ => {
                self.stats.dropped += 1;
                None
            }
        }
    }

    /// Starts binding a relay socket: the driver answers with
    /// [`Input::RelayBound`].
    pub(crate) fn request_relay(
        &mut self,
        pending: PendingAllocation,
        family: AddressFamily,
        port: RelayPort,
    ) {
        let id = RelayRequestId(self.next_relay_request);
        self.next_relay_request += 1;
        let additional_family = pending.additional_family;
        let transport = pending.relay_transport;
        self.pending.insert(id, pending);
        self.events.push_back(Event::BindRelay {
            id,
            family,
            port,
            additional_family,
            transport,
        });
    }

    /// The next thing the driver must do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Server::handle_timeout`] is next due, if anything can expire.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.allocations.is_empty() || self.config.shared.has_reservations())
            .then_some(self.next_sweep)
    }

    /// Expires allocations, permissions and channels that have lapsed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        let lapsed: Vec<FiveTuple> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for five_tuple in lapsed {
            self.remove_allocation(now, &five_tuple, EndReason::Expired);
        }
        self.sweep_fast_paths(now);
        for allocation in self.allocations.values_mut() {
            allocation.sweep(now, CHANNEL_REUSE_GRACE);
        }
        self.sweep_connections(now);
        for relay in self.config.shared.lapsed_reservations(now) {
            self.events.push_back(Event::ReleaseRelay { relay });
        }
    }

    /// Deletes an allocation, tells the driver to close its socket and
    /// reports its end.
    pub(crate) fn remove_allocation(
        &mut self,
        now: Instant,
        five_tuple: &FiveTuple,
        why: EndReason,
    ) {
        let Some(allocation) = self.allocations.remove(five_tuple) else {
            return;
        };
        let session = self.session_of(&allocation, now);
        self.report(Report::SessionEnd(session, why));
        self.stats
            .allocation_lifetimes
            .observe(now.saturating_duration_since(allocation.created));
        self.drop_fast_paths(&allocation);
        self.close_connections_of(five_tuple);
        for relay in allocation.relays() {
            self.by_relay.remove(&relay);
            self.events.push_back(Event::ReleaseRelay { relay });
        }
        self.config.shared.quota.give_back(&allocation.username);
    }

    /// The next record for the operator: an allocation started or ended, a
    /// request refused. Drain it after each input, as [`Server::poll_event`].
    pub fn poll_report(&mut self) -> Option<Report> {
        self.reports.pop_front()
    }

    /// Queues a record, unless a driver that never drains has let too many
    /// pile up (then the oldest stay and this one is lost).
    pub(crate) fn report(&mut self, report: Report) {
        if self.reports.len() < crate::session::MAX_QUEUED_REPORTS {
            self.reports.push_back(report);
        }
    }

    /// Reports a refused request.
    pub(crate) fn report_refusal(
        &mut self,
        from: FiveTuple,
        method: edgeice_stun::Method,
        code: u16,
        user: Option<&str>,
        reason: RefusalReason,
    ) {
        let refusal = Refusal {
            five_tuple: from,
            method,
            code,
            user: user.map(str::to_owned),
            reason,
        };
        self.report(Report::Refused(refusal));
    }

    /// An allocation as the records describe it, at `now`.
    pub fn session_of(&self, allocation: &Allocation, now: Instant) -> Session {
        Session {
            id: allocation.session,
            user: allocation.username.clone(),
            realm: self.config.realm.clone(),
            five_tuple: allocation.five_tuple,
            relay: allocation.advertised,
            additional_relay: allocation.additional.map(|(_, advertised)| advertised),
            relay_transport: allocation.relay_transport,
            dialect: allocation.dialect(),
            peers: allocation.peers_permitted,
            first_peers: allocation.first_peers.clone(),
            traffic: allocation.traffic,
            age: now.saturating_duration_since(allocation.created),
            expires_in: allocation.expires.saturating_duration_since(now),
        }
    }

    /// Every live allocation, as the records describe it (for an admin
    /// listing; a control path).
    pub fn sessions(&self, now: Instant) -> Vec<Session> {
        let mut sessions: Vec<Session> = self
            .allocations
            .values()
            .map(|allocation| self.session_of(allocation, now))
            .collect();
        sessions.sort_by_key(|s| s.id);
        sessions
    }

    /// Ends the allocation `id` as the operator asks: it is deleted and
    /// its relay released, so the client's next Refresh gets 437; its end
    /// is reported with [`EndReason::Kicked`]. Returns its 5-tuple (a
    /// driver closes a TCP/TLS client's connection), `None` if no
    /// allocation of this core has that id.
    pub fn kick(&mut self, now: Instant, id: SessionId) -> Option<FiveTuple> {
        let five_tuple = self
            .allocations
            .iter()
            .find(|(_, a)| a.session == id)
            .map(|(k, _)| *k)?;
        self.remove_allocation(now, &five_tuple, EndReason::Kicked);
        Some(five_tuple)
    }

    /// Ends every allocation, reporting each with `why` (the server is
    /// stopping: [`EndReason::Shutdown`]).
    pub fn end_all(&mut self, now: Instant, why: EndReason) {
        let all: Vec<FiveTuple> = self.allocations.keys().copied().collect();
        for five_tuple in all {
            self.remove_allocation(now, &five_tuple, why);
        }
    }

    /// Replaces the users (after the user store changed). Allocations
    /// already made keep the key they were made with until they end.
    /// Returns the users replaced, to be dropped outside any lock.
    pub fn set_users(
        &mut self,
        users: HashMap<String, edgeice_stun::IntegrityKey>,
    ) -> HashMap<String, edgeice_stun::IntegrityKey> {
        std::mem::replace(&mut self.config.users, users)
    }

    /// Replaces the TURN REST API secrets (after a fleet's changed).
    /// Returns those replaced, to be dropped outside any lock.
    pub fn set_auth_secrets(&mut self, secrets: Vec<String>) -> Vec<String> {
        std::mem::replace(&mut self.config.auth_secrets, secrets)
    }

    /// Takes new credentials and peer lists (a reload): see
    /// [`crate::Reloadable`] for what changes and what stays. Only moves
    /// them in, so a driver holding a lock for it holds it briefly; returns
    /// the settings replaced, to drop after.
    pub fn reload(&mut self, new: crate::Reloadable) -> crate::Reloadable {
        self.config.apply(new)
    }

    /// Signs nonces from now on with a fleet's shared `secret`, their
    /// expiry on the Unix clock (`unix_now` is the Unix time at `now`), so
    /// that a 401 from one node and the retry that lands on another
    /// authenticate. Nonces issued before are stale from then on (the
    /// client retries with the 438's fresh one).
    pub fn share_nonces(&mut self, secret: &[u8; 32], now: Instant, unix_now: u64) {
        let (epoch, lifetime) = (self.nonces.epoch, self.config.nonce_lifetime);
        self.nonces = Nonces::shared(secret, epoch, lifetime, now, unix_now);
    }

    /// The user name of the Allocate waiting for `id`'s relay, while it
    /// waits: the driver takes a fleet-wide quota for it before binding.
    pub fn pending_user(&self, id: crate::RelayRequestId) -> Option<&str> {
        self.pending.get(&id).map(|p| p.username.as_str())
    }

    /// Answers the Allocate waiting for `id` with 486 Allocation Quota
    /// Reached instead of binding its relay (the user's fleet-wide quota
    /// is used up), and gives back its place in this server's quota.
    pub fn refuse_relay<'s>(&'s mut self, id: crate::RelayRequestId) -> Option<Transmit<'s>> {
        let pending = self.pending.remove(&id)?;
        self.config.shared.quota.give_back(&pending.username);
        self.refused(
            pending.five_tuple,
            &pending.reply,
            edgeice_stun::ErrorCode::ALLOCATION_QUOTA_REACHED,
            Some(&pending.key),
            Some(&pending.username),
            crate::RefusalReason::UserQuota,
        )
    }

    /// The reloadable part of the settings in force.
    pub fn reloadable(&self) -> crate::Reloadable {
        self.config.reloadable()
    }

    /// Whether any credential could be accepted: a user, or a TURN REST
    /// API secret. Without one every Allocate is refused.
    pub fn can_authenticate(&self) -> bool {
        !self.config.users.is_empty() || !self.config.auth_secrets.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How many relayed addresses there are per client transport, address
    /// family and dialect (a dual allocation counts once in each family).
    pub fn allocations_by_kind(
        &self,
    ) -> BTreeMap<
        (
            Transport,
            AddressFamily,
            crate::allocation::AllocationDialect,
        ),
        usize,
    > {
        let mut counts = BTreeMap::new();
        for allocation in self.allocations.values() {
            for relay in allocation.relays() {
                let key = (
                    allocation.five_tuple.transport,
                    AddressFamily::of(&relay.ip()),
                    allocation.dialect(),
                );
                *counts.entry(key).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The allocation of a 5-tuple, if any.
    pub fn allocation(&self, five_tuple: &FiveTuple) -> Option<&Allocation> {
        self.allocations.get(five_tuple)
    }

    /// How many allocations exist.
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// Writes a response of `class` to `to`'s request, signed with `key`
    /// when given, and addresses it to the client of `from`.
    pub(crate) fn respond<'s>(
        &'s mut self,
        from: FiveTuple,
        to: &ReplyTo,
        class: Class,
        key: Option<&edgeice_stun::IntegrityKey>,
        body: impl FnOnce(&mut edgeice_stun::MessageBuilder<'_>) -> Result<(), edgeice_stun::BuildError>,
    ) -> Option<Transmit<'s>> {
        let software = self.config.software.as_deref();
        let bytes = response::build(&mut self.scratch, to, class, software, key, body)?;
        Some(reply(from, bytes))
    }

    /// Writes an error response and counts it.
    pub(crate) fn error<'s>(
        &'s mut self,
        from: FiveTuple,
        to: &ReplyTo,
        code: u16,
        key: Option<&edgeice_stun::IntegrityKey>,
    ) -> Option<Transmit<'s>> {
        self.refused(from, to, code, key, None, RefusalReason::Other)
    }

    /// Writes an error response, counts it, and reports the refusal with
    /// its reason. `user` when the caller knows it; else the allocation's
    /// user, if the 5-tuple has one.
    pub(crate) fn refused<'s>(
        &'s mut self,
        from: FiveTuple,
        to: &ReplyTo,
        code: u16,
        key: Option<&edgeice_stun::IntegrityKey>,
        user: Option<&str>,
        reason: RefusalReason,
    ) -> Option<Transmit<'s>> {
        let user = user
            .map(str::to_owned)
            .or_else(|| self.allocations.get(&from).map(|a| a.username.clone()));
        let reason = match reason {
            RefusalReason::Other if code == edgeice_stun::ErrorCode::BAD_REQUEST => {
                RefusalReason::BadRequest
            }
            reason => reason,
        };
        let refusal = Refusal {
            five_tuple: from,
            method: to.method,
            code,
            user,
            reason,
        };
        self.report(Report::Refused(refusal));
        self.stats.count_error(code);
        self.respond(from, to, Class::Error, key, response::error_code(code))
    }
}

/// A message back to the client of `from`.
pub(crate) fn reply(from: FiveTuple, payload: &[u8]) -> Transmit<'_> {
    Transmit {
        transport: from.transport,
        source: from.server,
        destination: from.client,
        payload,
    }
}
