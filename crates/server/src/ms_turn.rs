//! MS-TURN ([MS-TURN]): the TURN dialect of Lync and Skype for Business
//! clients, served beside standard TURN on the same ports and recognised
//! per request by its MAGIC-COOKIE attribute.
//!
//! What differs from RFC 8656, and where it is handled:
//! - Allocate creates, refreshes (the same 5-tuple asks again) and, with
//!   LIFETIME 0, deletes; there is no Refresh, CreatePermission or
//!   ChannelBind.
//! - Authentication: REALM and NONCE have swapped numbers, and
//!   MESSAGE-INTEGRITY is the RFC 3489 kind ([`edgeice_stun::ms`]). Send
//!   and Set Active Destination carry no nonce: they are checked against
//!   the key of the allocation they belong to.
//! - Data goes out in Send *requests* (never answered), which also let the
//!   destination's answers in, and comes back in Data indications (0x0115).
//! - Set Active Destination picks one peer whose datagrams then travel raw
//!   both ways: anything from the client without MAGIC-COOKIE is for it.
//!
//! Answers are written by [`crate::response::build`] in the client's
//! attribute layout (see [`Dialect::MsTurn`]).

use std::net::SocketAddr;
use std::time::Instant;

use edgeice_stun::attribute::{address_value, decode_address, encode_xor_keyed};
use edgeice_stun::{
    AddressFamily, Attribute, AttributeType, BuildError, Class, ErrorCode, IntegrityKey, Message,
    MessageBuilder, TransactionId, ms,
};

use crate::allocation::{Allocation, MsTurnState};
use crate::auth::{self, NonceCheck};
use crate::interface::{FiveTuple, RelayPort, Transmit};
use crate::response::{Dialect, ReplyTo};
use crate::server::{PendingAllocation, Server, reply};

/// The highest MS-VERSION served: 1 (OCS 2007) and 2 (OCS 2007 R2) differ
/// in nothing this edge does; 3 brings SHA-256 integrity and 4 IPv6
/// relays, which it does not offer.
const MAX_MS_VERSION: u32 = 2;

/// MS-SERVICE-QUALITY (0x8055): what a client's stream carries and how
/// it wants it delivered.
const MS_SERVICE_QUALITY: AttributeType = AttributeType(0x8055);

/// A request that passed MS-TURN authentication.
struct Authenticated {
    username: String,
    key: IntegrityKey,
}

impl Server {
    /// An MS-TURN message from a client (it starts with MAGIC-COOKIE).
    pub(crate) fn handle_ms_turn<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        contents: &'s [u8],
    ) -> Option<Transmit<'s>> {
        let Ok(message) = Message::parse_either_layout(contents) else {
            self.stats.dropped += 1;
            return None;
        };
        if message.class() != Class::Request {
            self.stats.dropped += 1;
            return None;
        }
        self.stats.ms_turn_requests += 1;
        let to = ReplyTo::of_ms_turn(&message);
        match message.method() {
            ms::ALLOCATE => self.ms_allocate(now, from, &message),
            ms::SEND => self.ms_send(now, from, &message),
            ms::SET_ACTIVE_DESTINATION => self.ms_set_active_destination(now, from, &message),
            _ => self.error(from, &to, ErrorCode::BAD_REQUEST, None),
        }
    }

    /// Authenticates an Allocate with the long-term credentials and a
    /// nonce. A nonce that went stale is still good for refreshing the
    /// allocation it made: libnice does not retry a refused refresh in
    /// this dialect, so a stale answer there would end the call.
    fn ms_authenticate(
        &self,
        now: Instant,
        from: &FiveTuple,
        request: &Message<'_>,
    ) -> Result<Authenticated, auth::Rejection> {
        if !request.has_integrity() {
            return Err(auth::Rejection::new(ErrorCode::UNAUTHENTICATED));
        }
        let (Some(username), Some(_realm), Some(nonce)) = (
            request.get_raw(AttributeType::USERNAME).and_then(text),
            request.get_raw(ms::REALM),
            request.get_raw(ms::NONCE).and_then(text),
        ) else {
            return Err(auth::Rejection::new(ErrorCode::BAD_REQUEST));
        };
        let refreshing_own = self
            .allocations
            .get(from)
            .is_some_and(|a| a.ms_turn.is_some() && a.username == username);
        match self.nonces.check(now, from.client, nonce) {
            NonceCheck::Fresh => {}
            NonceCheck::Stale if refreshing_own => {}
            NonceCheck::Stale => return Err(auth::Rejection::new(ErrorCode::STALE_NONCE)),
            NonceCheck::Invalid => return Err(auth::Rejection::new(ErrorCode::UNAUTHENTICATED)),
        }
        let proves = |key: &IntegrityKey| request.verify_integrity_sha1_rfc3489(key).is_ok();
        let (config, nonces) = (&self.config, &self.nonces);
        let key = auth::check_integrity(config, now, from.client, username, || {
            match config.users.get(username) {
                Some(key) => proves(key).then(|| key.clone()),
                None => auth::rest_api_key(config, nonces, now, username, proves),
            }
        })?;
        Ok(Authenticated {
            username: username.to_owned(),
            key,
        })
    }

    fn ms_allocate<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        request: &Message<'_>,
    ) -> Option<Transmit<'s>> {
        let to = ReplyTo::of_ms_turn(request);
        let auth = match self.ms_authenticate(now, &from, request) {
            Ok(auth) => auth,
            Err(rejection) => {
                let auth::Rejection {
                    code, held_back, ..
                } = rejection;
                if request.has_integrity() {
                    self.stats.auth_failures += 1;
                }
                let user = request.get_raw(AttributeType::USERNAME).and_then(text);
                if let Some(reason) = auth::refusal_reason(&self.config, &rejection, user) {
                    self.report_refusal(from, request.method(), code, user, reason);
                }
                self.stats.guesses_held_back += u64::from(held_back);
                let nonce = request.get_raw(ms::NONCE).and_then(text);
                let returnable = auth::nonce_is_authentic(&self.nonces, now, from.client, nonce);
                return self.challenge(now, from, &to, code, returnable);
            }
        };
        let lifetime = self.granted_lifetime(request);
        let asked_zero = matches!(
            request.get(AttributeType::LIFETIME),
            Some(Ok(Attribute::Lifetime(0)))
        );
        if let Some(existing) = self.allocations.get_mut(&from) {
            // The same 5-tuple asks again: a refresh, or with LIFETIME 0 the
            // end. Only the user who made it may, and only in this dialect.
            if existing.ms_turn.is_none() || existing.username != auth.username {
                self.stats.auth_failures += 1;
                let code = ErrorCode::ALLOCATION_MISMATCH;
                return self.error(from, &to, code, Some(&auth.key));
            }
            if asked_zero {
                self.remove_allocation(now, &from, crate::session::EndReason::Released);
                let body = |b: &mut MessageBuilder<'_>| -> Result<(), BuildError> {
                    b.add(&Attribute::Lifetime(0))?;
                    Ok(())
                };
                return self.respond(from, &to, Class::Success, Some(&auth.key), body);
            }
            existing.expires = now + lifetime;
            let success = MsAllocateSuccess::of(existing, lifetime);
            return self.ms_allocate_success(from, &to, &auth.key, &success);
        }
        if asked_zero || self.pending.values().any(|p| p.five_tuple == from) {
            // Nothing to delete, or a retransmission while the relay
            // socket is being bound.
            return None;
        }
        if !self.config.relay_families.is_empty()
            && !self.config.relay_families.contains(&AddressFamily::V4)
        {
            // MS-VERSION 1 to 3 relay IPv4 only, and no more is served.
            let code = ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED;
            return self.error(from, &to, code, Some(&auth.key));
        }
        let Some(state) = requested_state(request) else {
            return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&auth.key));
        };
        if self.config.shared.draining() {
            // MS-TURN's own redirect (MS-ALTERNATE-SERVER) is not spoken.
            let (code, user) = (
                ErrorCode::INSUFFICIENT_CAPACITY,
                Some(auth.username.as_str()),
            );
            let reason = crate::RefusalReason::Draining;
            self.stats.drain_refusals += 1;
            return self.refused(from, &to, code, Some(&auth.key), user, reason);
        }
        let limits = (
            self.config.max_allocations,
            self.config.max_allocations_per_user,
        );
        if let Err(code) = self
            .config
            .shared
            .quota
            .take(&auth.username, limits.0, limits.1)
        {
            let reason = crate::turn::quota_reason(code);
            let user = Some(auth.username.as_str());
            return self.refused(from, &to, code, Some(&auth.key), user, reason);
        }
        let pending = PendingAllocation {
            five_tuple: from,
            reply: to,
            username: auth.username,
            key: auth.key,
            lifetime,
            additional_family: None,
            refused_dual: false,
            relay_transport: crate::RelayTransport::Udp,
            ms_turn: Some(state),
            requested: now,
        };
        self.request_relay(pending, AddressFamily::V4, RelayPort::Any);
        None
    }

    /// Marks a new allocation as MS-TURN and writes its Allocate answer;
    /// called by `finish_allocate` once the relay socket is bound.
    pub(crate) fn ms_allocate_done<'s>(
        &'s mut self,
        from: FiveTuple,
        to: &ReplyTo,
        key: &IntegrityKey,
        state: MsTurnState,
        lifetime: std::time::Duration,
    ) -> Option<Transmit<'s>> {
        let connection_id = self.ms_connection_id(&from);
        let allocation = self.allocations.get_mut(&from)?;
        allocation.ms_turn = Some(MsTurnState {
            connection_id,
            ..state
        });
        self.stats.ms_turn_allocations_created += 1;
        let success = MsAllocateSuccess::of(allocation, lifetime);
        self.ms_allocate_success(from, to, key, &success)
    }

    /// A 20-byte connection ID for MS-SEQUENCE-NUMBER, unpredictable so
    /// that one client cannot guess another's.
    fn ms_connection_id(&self, from: &FiveTuple) -> [u8; 20] {
        let mut id = [0u8; 20];
        let counter = self.stats.ms_turn_allocations_created;
        let first = self
            .nonces
            .tag_for_token(b"ms-connection-id", from.client, counter);
        let second = self
            .nonces
            .tag_for_token(b"ms-connection-id-2", from.client, counter);
        id[..8].copy_from_slice(&first);
        id[8..16].copy_from_slice(&second);
        id[16..].copy_from_slice(&(counter as u32).to_be_bytes());
        id
    }

    fn ms_allocate_success<'s>(
        &'s mut self,
        from: FiveTuple,
        to: &ReplyTo,
        key: &IntegrityKey,
        success: &MsAllocateSuccess,
    ) -> Option<Transmit<'s>> {
        let tail = to.header_tail();
        let body = |b: &mut MessageBuilder<'_>| -> Result<(), BuildError> {
            // MAPPED-ADDRESS is the *relayed* address in this dialect.
            b.add(&Attribute::MappedAddress(success.relayed))?;
            let mut reflexive = Vec::with_capacity(20);
            encode_xor_keyed(&success.client, &tail, &mut reflexive);
            b.add_raw(ms::MS_XOR_MAPPED_ADDRESS, &reflexive)?;
            b.add(&Attribute::Lifetime(success.lifetime_secs))?;
            b.add_raw(ms::MS_VERSION, &success.version.to_be_bytes())?;
            let mut sequence = [0u8; 24];
            sequence[..20].copy_from_slice(&success.connection_id);
            b.add_raw(ms::MS_SEQUENCE_NUMBER, &sequence)?;
            Ok(())
        };
        self.respond(from, to, Class::Success, Some(key), body)
    }

    /// The allocation of `from` if it is MS-TURN, `request` carries its
    /// user's name and integrity, and its MS-SEQUENCE-NUMBER (when given)
    /// names this allocation and does not go back. Send and Set Active
    /// Destination have no nonce: the allocation's key and the sequence
    /// number are what authenticate them and stop replays.
    fn ms_allocation_of(
        &mut self,
        from: &FiveTuple,
        request: &Message<'_>,
    ) -> Option<&mut Allocation> {
        let allocation = self.allocations.get_mut(from)?;
        let state = allocation.ms_turn.as_mut()?;
        let username = request.get_raw(AttributeType::USERNAME).and_then(text)?;
        if username != allocation.username
            || request
                .verify_integrity_sha1_rfc3489(&allocation.key)
                .is_err()
        {
            return None;
        }
        if let Some(value) = request.get_raw(ms::MS_SEQUENCE_NUMBER) {
            let (id, number) = value.split_first_chunk::<20>()?;
            let number = u32::from_be_bytes(number.try_into().ok()?);
            // Not decreasing rather than increasing: libnice 0.1.21 numbers
            // from 1 whatever the answer said, and resends with the same.
            if *id != state.connection_id || number < state.last_sequence {
                return None;
            }
            state.last_sequence = number;
        }
        Some(allocation)
    }

    /// A Send request: relay its DATA to DESTINATION-ADDRESS and let that
    /// peer's answers in. Never answered, by the dialect's design.
    fn ms_send<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        request: &Message<'s>,
    ) -> Option<Transmit<'s>> {
        let (Some(Ok(peer)), Some(data)) = (
            request.get_raw(ms::DESTINATION_ADDRESS).map(decode_address),
            request.get_raw(ms::DATA),
        ) else {
            self.stats.dropped += 1;
            return None;
        };
        if self.ms_allocation_of(&from, request).is_none() {
            self.stats.auth_failures += 1;
            return None;
        }
        if self.check_peer(&from, peer).is_err() {
            self.stats.permission_denied += 1;
            return None;
        }
        let expires = now + self.config.permission_lifetime;
        let relay_ports_only = self.config.peer_policy.only_on_relay_ports(peer.ip());
        let allocation = self.allocations.get_mut(&from)?;
        if allocation
            .install_permission(peer.ip(), now, expires, relay_ports_only)
            .is_err()
        {
            self.stats.permission_denied += 1;
            return None;
        }
        let relay = allocation.relay_for(peer.ip())?;
        self.relay_out(now, from, relay, peer, data)
    }

    /// Set Active Destination: from now on the client's raw datagrams go to
    /// this peer, and the peer's come back raw. The destination is set
    /// before the answer leaves, as [MS-TURN] §3.3.5.3 asks.
    fn ms_set_active_destination<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        request: &Message<'_>,
    ) -> Option<Transmit<'s>> {
        let to = ReplyTo::of_ms_turn(request);
        let Some(key) = self.ms_allocation_of(&from, request).map(|a| a.key.clone()) else {
            self.stats.auth_failures += 1;
            return self.error(from, &to, ErrorCode::UNAUTHENTICATED, None);
        };
        let peer = match request.get_raw(ms::DESTINATION_ADDRESS).map(decode_address) {
            Some(Ok(peer)) => peer,
            _ => return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key)),
        };
        // An unspecified address clears the destination.
        let destination = (!peer.ip().is_unspecified()).then_some(peer);
        if let Some(peer) = destination
            && let Err(code) = self.check_peer(&from, peer)
        {
            return self.refuse_peer(from, &to, code, &key, peer);
        }
        let expires = now + self.config.permission_lifetime;
        let relay_ports_only =
            destination.is_some_and(|peer| self.config.peer_policy.only_on_relay_ports(peer.ip()));
        let allocation = self.allocations.get_mut(&from)?;
        if let Some(peer) = destination
            && allocation
                .install_permission(peer.ip(), now, expires, relay_ports_only)
                .is_err()
        {
            let code = ErrorCode::INSUFFICIENT_CAPACITY;
            return self.error(from, &to, code, Some(&key));
        }
        let state = allocation.ms_turn.as_mut()?;
        state.active_destination = destination;
        let connection_id = state.connection_id;
        let body = |b: &mut MessageBuilder<'_>| -> Result<(), BuildError> {
            let mut sequence = [0u8; 24];
            sequence[..20].copy_from_slice(&connection_id);
            b.add_raw(ms::MS_SEQUENCE_NUMBER, &sequence)?;
            Ok(())
        };
        self.respond(from, &to, Class::Success, Some(&key), body)
    }

    /// The active destination of the MS-TURN allocation of `from`, if one
    /// is set: where its raw datagrams go.
    pub(crate) fn active_destination(&self, from: &FiveTuple) -> Option<SocketAddr> {
        self.allocations
            .get(from)?
            .ms_turn
            .as_ref()?
            .active_destination
    }

    /// A raw datagram from an MS-TURN client with an active destination.
    pub(crate) fn relay_raw_to_destination<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        destination: SocketAddr,
        contents: &'s [u8],
    ) -> Option<Transmit<'s>> {
        let relay = self.allocations.get(&from)?.relay_for(destination.ip())?;
        self.relay_out(now, from, relay, destination, contents)
    }

    /// Writes an MS-TURN Data indication (MAGIC-COOKIE, REMOTE-ADDRESS,
    /// DATA, unsigned) into the scratch buffer.
    pub(crate) fn ms_data_indication(
        &mut self,
        from: FiveTuple,
        layout: edgeice_stun::Layout,
        peer: SocketAddr,
        data_at: usize,
        datagram: &[u8],
    ) -> Option<Transmit<'_>> {
        // Indications get no response, so the ID only has to differ between
        // messages; the packet count does that for free.
        let mut id = [0u8; 12];
        id[4..].copy_from_slice(&self.stats.relayed_to_client.0.to_be_bytes());
        let cookie = [0x4D, 0x53, 0x44, 0x49];
        let mut b = MessageBuilder::with_cookie(
            &mut self.scratch,
            ms::DATA_INDICATION,
            cookie,
            TransactionId(id),
        )
        .layout(layout);
        b.add_raw(ms::MAGIC_COOKIE, &ms::MAGIC_COOKIE_VALUE.to_be_bytes())
            .ok()?;
        b.add_raw(ms::REMOTE_ADDRESS, &address_value(&peer)).ok()?;
        b.add_raw(ms::DATA, &datagram[data_at..]).ok()?;
        Some(reply(from, b.finish()))
    }
}

/// What an MS-TURN Allocate answer says.
struct MsAllocateSuccess {
    relayed: SocketAddr,
    client: SocketAddr,
    lifetime_secs: u32,
    connection_id: [u8; 20],
    version: u32,
}

impl MsAllocateSuccess {
    fn of(allocation: &Allocation, lifetime: std::time::Duration) -> Self {
        MsAllocateSuccess {
            relayed: allocation.advertised,
            client: allocation.five_tuple.client,
            lifetime_secs: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
            connection_id: allocation
                .ms_turn
                .map(|s| s.connection_id)
                .unwrap_or_default(),
            version: allocation.ms_turn.map_or(1, |s| s.version),
        }
    }
}

/// What an MS-TURN Allocate asks for beyond the standard: MS-VERSION,
/// BANDWIDTH and MS-SERVICE-QUALITY, read into the state its allocation
/// starts with; `None` if one is malformed (answered 400).
fn requested_state(request: &Message<'_>) -> Option<MsTurnState> {
    let u32_of = |value: &[u8]| -> Option<u32> { Some(u32::from_be_bytes(value.try_into().ok()?)) };
    let version = match request.get_raw(ms::MS_VERSION) {
        Some(value) => u32_of(value)?.clamp(1, MAX_MS_VERSION),
        None => 1,
    };
    let bandwidth_kbps = match request.get_raw(ms::BANDWIDTH) {
        Some(value) => Some(u32_of(value)?),
        None => None,
    };
    // Optional (above 0x7FFF): a malformed one is ignored, not refused.
    let service_quality = request
        .get_raw(MS_SERVICE_QUALITY)
        .and_then(|v| v.split_first_chunk::<2>().zip(v.get(2..4)))
        .map(|((stream, _), quality)| {
            (
                u16::from_be_bytes(*stream),
                u16::from_be_bytes([quality[0], quality[1]]),
            )
        });
    Some(MsTurnState {
        active_destination: None,
        layout: request.layout(),
        connection_id: [0; 20],
        last_sequence: 0,
        version,
        bandwidth_kbps,
        service_quality,
    })
}

/// A text attribute's value, without the NUL padding some clients put
/// inside its length.
fn text(value: &[u8]) -> Option<&str> {
    let end = value.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    std::str::from_utf8(&value[..end]).ok()
}

impl Dialect {
    /// Whether this is Microsoft's dialect.
    pub fn is_ms_turn(self) -> bool {
        matches!(self, Dialect::MsTurn(_))
    }
}
