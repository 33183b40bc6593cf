//! TURN requests (RFC 8656): Allocate, Refresh, CreatePermission and
//! ChannelBind, after authentication.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_stun::attribute::{TRANSPORT_TCP, TRANSPORT_UDP};
use edgeice_stun::{
    AddressFamily, Attribute, AttributeType, BuildError, Class, ErrorCode, IntegrityKey, Message,
    MessageBuilder, Method, is_valid_channel,
};

use crate::allocation::{Allocation, ChannelConflict};
use crate::auth::{self, Rejection};
use crate::interface::{FiveTuple, RelayPort, RelayRequestId, RelayTransport, Transmit, Transport};
use crate::response::{self, ReplyTo};
use crate::server::{PendingAllocation, RESERVATION_LIFETIME, Server, reply};
use crate::session::RefusalReason;

/// ADDITIONAL-ADDRESS-FAMILY as drafts of RFC 8656 numbered it, before
/// IANA assigned 0x8000; coturn's clients (turnutils_uclient -Z) use it.
const ADDITIONAL_ADDRESS_FAMILY_DRAFT: AttributeType = AttributeType(0x8032);

impl Server {
    /// Authenticates a TURN request, then dispatches it by method.
    pub(crate) fn handle_turn_request<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        request: &Message<'_>,
    ) -> Option<Transmit<'s>> {
        let to = ReplyTo::of(request);
        if !matches!(
            request.method(),
            Method::ALLOCATE
                | Method::REFRESH
                | Method::CREATE_PERMISSION
                | Method::CHANNEL_BIND
                | Method::CONNECT
                | Method::CONNECTION_BIND
        ) {
            return self.error(from, &to, ErrorCode::BAD_REQUEST, None);
        }
        if let Some(redirect) = self.redirect_before_auth(&from, request) {
            return self.redirect_unauthenticated(now, from, &to, redirect);
        }
        let auth = match auth::authenticate(&self.config, &self.nonces, now, from.client, request) {
            Ok(auth) => auth,
            Err(rejection) => {
                let Rejection {
                    code, held_back, ..
                } = rejection;
                // The first request of every client carries no credentials
                // and is answered 401 by design: not a failure to count.
                if request.has_integrity() || request.has_integrity_sha256() {
                    self.stats.auth_failures += 1;
                }
                let user = match request.get(AttributeType::USERNAME) {
                    Some(Ok(Attribute::Username(u))) => Some(u),
                    _ => None,
                };
                if let Some(reason) = auth::refusal_reason(&self.config, &rejection, user) {
                    self.report_refusal(from, request.method(), code, user, reason);
                }
                self.stats.guesses_held_back += u64::from(held_back);
                let nonce = match request.get(AttributeType::NONCE) {
                    Some(Ok(Attribute::Nonce(nonce))) => Some(nonce),
                    _ => None,
                };
                let returnable = auth::nonce_is_authentic(&self.nonces, now, from.client, nonce);
                return self.challenge(now, from, &to, code, returnable);
            }
        };
        let key = auth.key;
        let unknown: Vec<AttributeType> = request.unknown_comprehension_required().collect();
        if !unknown.is_empty() {
            self.stats.count_error(ErrorCode::UNKNOWN_ATTRIBUTE);
            let body = response::unknown_attributes(&unknown);
            return self.respond(from, &to, Class::Error, Some(&key), body);
        }
        match request.method() {
            Method::ALLOCATE => return self.allocate(now, from, request, auth.username, key),
            // A data connection has no allocation of its own.
            Method::CONNECTION_BIND => {
                return self.connection_bind(from, request, auth.username, key);
            }
            _ => {}
        }
        let Some(allocation) = self.allocations.get(&from) else {
            return self.error(from, &to, ErrorCode::ALLOCATION_MISMATCH, Some(&key));
        };
        if allocation.username != auth.username {
            self.stats.auth_failures += 1;
            let (code, user) = (ErrorCode::WRONG_CREDENTIALS, Some(auth.username));
            return self.refused(from, &to, code, Some(&key), user, RefusalReason::WrongUser);
        }
        match request.method() {
            Method::REFRESH => self.refresh(now, from, request, key),
            Method::CREATE_PERMISSION => self.create_permission(now, from, request, key),
            Method::CONNECT => self.connect(now, from, request, key),
            _ => self.channel_bind(now, from, request, key),
        }
    }

    /// Answers a request that failed authentication. 401 and 438 carry the
    /// realm and a fresh nonce so the client can retry (under MS-TURN's
    /// swapped numbers for an MS-TURN request).
    ///
    /// `returnable`: the request carried a nonce issued to its source, so
    /// it is not spoofed; it does not spend the source's 401 budget, which
    /// a spoofer sending in that address's name may have spent. The answer
    /// stays within the amplification limit either way.
    pub(crate) fn challenge<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        to: &ReplyTo,
        code: u16,
        returnable: bool,
    ) -> Option<Transmit<'s>> {
        if code != ErrorCode::UNAUTHENTICATED && code != ErrorCode::STALE_NONCE {
            return self.error(from, to, code, None);
        }
        if !returnable && !self.config.shared.allow_challenge(from.client.ip(), now) {
            self.stats.challenges_dropped += 1;
            return None;
        }
        let nonce = self.nonces.issue(now, from.client);
        let realm = self.config.realm.as_str();
        let software = self.config.software.as_deref();
        let ms_turn = to.dialect.is_ms_turn();
        // Only a datagram's source can be spoofed: over TCP and TLS the
        // answer goes to whoever completed the handshake.
        let limit = match from.transport {
            Transport::Udp => response::AMPLIFICATION_CAP * to.request_len,
            _ => usize::MAX,
        };
        // With the reason phrase if it fits, else without (it is for
        // humans); REALM and NONCE are needed, so if they alone do not
        // fit, no answer.
        for reason in [true, false] {
            let body = |b: &mut MessageBuilder<'_>| -> Result<(), BuildError> {
                let error = match reason {
                    true => ErrorCode::with_default_reason(code),
                    false => ErrorCode { code, reason: "" },
                };
                b.add(&Attribute::ErrorCode(error))?;
                if ms_turn {
                    b.add_raw(edgeice_stun::ms::REALM, realm.as_bytes())?;
                    b.add_raw(edgeice_stun::ms::NONCE, nonce.as_bytes())?;
                } else {
                    b.add(&Attribute::Realm(realm))?;
                    b.add(&Attribute::Nonce(&nonce))?;
                }
                Ok(())
            };
            let built = response::build(&mut self.scratch, to, Class::Error, software, None, body);
            if built.is_some_and(|bytes| bytes.len() <= limit) {
                self.stats.count_error(code);
                return Some(reply(from, &self.scratch));
            }
        }
        self.stats.challenges_dropped += 1;
        None
    }

    /// The lifetime to grant for a LIFETIME request (RFC 8656 §7.2):
    /// the default if none or less, capped at the maximum. Not `clamp`:
    /// a maximum set below the default (a short-lived edge, a test) must
    /// win, not panic.
    pub(crate) fn granted_lifetime(&self, request: &Message<'_>) -> Duration {
        let asked = match request.get(AttributeType::LIFETIME) {
            Some(Ok(Attribute::Lifetime(secs))) => Duration::from_secs(secs.into()),
            _ => self.config.default_lifetime,
        };
        asked
            .max(self.config.default_lifetime)
            .min(self.config.max_lifetime)
    }

    fn allocate<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        request: &Message<'_>,
        username: &str,
        key: IntegrityKey,
    ) -> Option<Transmit<'s>> {
        let to = ReplyTo::of(request);
        if let Some(existing) = self.allocations.get(&from) {
            if existing.transaction_id == to.transaction_id {
                // A retransmission whose success response was lost.
                let success = AllocateSuccess {
                    advertised: existing.advertised,
                    additional: existing.additional.map(|(_, advertised)| advertised),
                    client: from.client,
                    lifetime: existing.expires.saturating_duration_since(now),
                    refused_family: None,
                    token: None,
                };
                return self.allocate_success(from, &to, &key, &success);
            }
            return self.error(from, &to, ErrorCode::ALLOCATION_MISMATCH, Some(&key));
        }
        if self.pending.values().any(|p| p.five_tuple == from) {
            // Retransmission while the relay socket is being bound.
            return None;
        }
        // An Allocate claiming a reserved port completes a pair begun here
        // (its port is this server's): it is never sent elsewhere.
        if request.get_raw(AttributeType::RESERVATION_TOKEN).is_none() {
            let steer = self.steer(&from);
            if !matches!(steer, crate::redirect::Steer::Here) {
                return self.send_elsewhere(from, &to, &key, username, steer);
            }
        }
        let relay_transport = match request.get(AttributeType::REQUESTED_TRANSPORT) {
            Some(Ok(Attribute::RequestedTransport(TRANSPORT_UDP))) => RelayTransport::Udp,
            // RFC 6062 §5.1: TCP relays are for clients on TCP or TLS, and
            // take no even ports, reservations or second family.
            Some(Ok(Attribute::RequestedTransport(TRANSPORT_TCP))) => {
                let extras = [
                    AttributeType::EVEN_PORT,
                    AttributeType::RESERVATION_TOKEN,
                    AttributeType::ADDITIONAL_ADDRESS_FAMILY,
                    ADDITIONAL_ADDRESS_FAMILY_DRAFT,
                ];
                if from.transport == Transport::Udp
                    || extras.iter().any(|t| request.get_raw(*t).is_some())
                {
                    return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key));
                }
                RelayTransport::Tcp
            }
            Some(Ok(Attribute::RequestedTransport(_))) => {
                return self.error(from, &to, ErrorCode::UNSUPPORTED_TRANSPORT, Some(&key));
            }
            _ => return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key)),
        };
        let even = request.get(AttributeType::EVEN_PORT);
        let token = request.get(AttributeType::RESERVATION_TOKEN);
        let port = match (even, token) {
            (None, None) => RelayPort::Any,
            (Some(Ok(Attribute::EvenPort(reserve_next))), None) => RelayPort::Even { reserve_next },
            (None, Some(Ok(Attribute::ReservationToken(token)))) => {
                // A reservation is spent even if this Allocate fails later.
                match self.config.shared.claim(token) {
                    Some(relay) => RelayPort::Reserved(relay),
                    None => {
                        return self.error(from, &to, ErrorCode::INSUFFICIENT_CAPACITY, Some(&key));
                    }
                }
            }
            // Both at once, or either malformed (RFC 8656 §7.2).
            _ => return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key)),
        };
        let requested = match request.get(AttributeType::REQUESTED_ADDRESS_FAMILY) {
            Some(Ok(Attribute::RequestedAddressFamily(f))) => Some(f),
            Some(_) => {
                return self.error(
                    from,
                    &to,
                    ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED,
                    Some(&key),
                );
            }
            None => None,
        };
        let additional = match request.get(AttributeType::ADDITIONAL_ADDRESS_FAMILY) {
            Some(Ok(Attribute::AdditionalAddressFamily(AddressFamily::V6))) => {
                Some(AddressFamily::V6)
            }
            Some(_) => return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key)),
            None => match request.get_raw(ADDITIONAL_ADDRESS_FAMILY_DRAFT) {
                // coturn's clients still send the draft code point.
                Some([0x02, 0, 0, 0]) => Some(AddressFamily::V6),
                Some(_) => return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key)),
                None => None,
            },
        };
        if requested.is_some() && additional.is_some() {
            return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key));
        }
        let mut pending = PendingAllocation {
            five_tuple: from,
            reply: to,
            username: username.to_owned(),
            key,
            lifetime: self.granted_lifetime(request),
            additional_family: additional,
            refused_dual: false,
            relay_transport,
            ms_turn: None,
            requested: now,
        };
        let family = match port {
            RelayPort::Reserved(relay) => AddressFamily::of(&relay.ip()),
            _ => requested.unwrap_or(AddressFamily::V4),
        };
        let families = &self.config.relay_families;
        if !families.is_empty() && !families.contains(&family) {
            let code = ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED;
            return self.error(from, &pending.reply, code, Some(&pending.key));
        }
        if pending
            .additional_family
            .is_some_and(|f| !families.is_empty() && !families.contains(&f))
        {
            // Only one family here: the other is refused in the answer.
            pending.additional_family = None;
            pending.refused_dual = true;
        }
        let config = &self.config;
        let limits = (config.max_allocations, config.max_allocations_per_user);
        if let Err(code) = config
            .shared
            .quota
            .take(&pending.username, limits.0, limits.1)
        {
            let reason = quota_reason(code);
            let user = Some(pending.username.as_str());
            return self.refused(from, &pending.reply, code, Some(&pending.key), user, reason);
        }
        self.request_relay(pending, family, port);
        None
    }

    /// Completes an Allocate once the driver has bound (or failed to bind)
    /// its relay socket.
    pub(crate) fn finish_allocate<'s>(
        &'s mut self,
        now: Instant,
        id: RelayRequestId,
        relay: Option<SocketAddr>,
        reserved: Option<SocketAddr>,
        additional: Option<SocketAddr>,
    ) -> Option<Transmit<'s>> {
        let Some(pending) = self.pending.remove(&id) else {
            for relay in relay.into_iter().chain(reserved).chain(additional) {
                self.events.push_back(crate::Event::ReleaseRelay { relay });
            }
            return None;
        };
        let from = pending.five_tuple;
        let Some(relay) = relay else {
            self.config.shared.quota.give_back(&pending.username);
            if let Some(additional) = additional {
                self.events
                    .push_back(crate::Event::ReleaseRelay { relay: additional });
            }
            return self.refused(
                from,
                &pending.reply,
                ErrorCode::INSUFFICIENT_CAPACITY,
                Some(&pending.key),
                Some(&pending.username),
                RefusalReason::NoRelayPort,
            );
        };
        let advertised = self.advertise(relay);
        let additional = additional.map(|bound| (bound, self.advertise(bound)));
        let mut allocation = Allocation::new(
            from,
            relay,
            advertised,
            pending.username.clone(),
            pending.key.clone(),
            pending.reply.transaction_id,
            now + pending.lifetime,
        );
        allocation.created = now;
        allocation.additional = additional;
        allocation.relay_transport = pending.relay_transport;
        allocation.limits = crate::allocation::AllocationLimits {
            max_permissions: self.config.max_permissions_per_allocation,
            max_channels: self.config.max_channels_per_allocation,
        };
        allocation.budget = self
            .config
            .max_bytes_per_second
            .map(|rate| crate::allocation::ByteBudget::new(rate, now));
        allocation.session = self.config.shared.next_session();
        if let Some(state) = pending.ms_turn {
            allocation.ms_turn = Some(state);
        }
        let session = self.session_of(&allocation, now);
        self.report(crate::session::Report::SessionStart(session));
        self.allocations.insert(from, allocation);
        self.by_relay.insert(relay, from);
        if let Some((bound, _)) = additional {
            self.by_relay.insert(bound, from);
        }
        self.stats.allocations_created += 1;
        self.stats
            .allocate_latencies
            .observe(now.saturating_duration_since(pending.requested));
        if let Some(state) = pending.ms_turn {
            let key = &pending.key;
            return self.ms_allocate_done(from, &pending.reply, key, state, pending.lifetime);
        }
        let token = reserved.map(|reserved| {
            let token = self.reservation_token(reserved, id);
            self.config
                .shared
                .reserve(token, reserved, now + RESERVATION_LIFETIME);
            token
        });
        let success = AllocateSuccess {
            advertised,
            additional: additional.map(|(_, advertised)| advertised),
            client: from.client,
            lifetime: pending.lifetime,
            // The second family was asked for but is not offered or could
            // not be bound.
            refused_family: if pending.refused_dual {
                Some(AddressFamily::V6)
            } else {
                pending.additional_family.filter(|_| additional.is_none())
            },
            token,
        };
        self.allocate_success(from, &pending.reply, &pending.key, &success)
    }

    /// The address to tell clients for a relay bound at `relay` (its public
    /// mapping behind NAT), reporting the first private one advertised.
    fn advertise(&mut self, relay: SocketAddr) -> SocketAddr {
        let advertised = match self.config.external_ips.get(&relay.ip()) {
            Some(public) => SocketAddr::new(*public, relay.port()),
            None => relay,
        };
        let ip = advertised.ip();
        if !self.config.private_relay_ok
            && !crate::nat::is_publicly_routable(ip)
            && !self.private_relays_reported.contains(&ip)
        {
            self.private_relays_reported.push(ip);
            let warning = crate::nat::PrivateRelay { ip };
            self.events
                .push_back(crate::Event::PrivateRelayAdvertised(warning));
        }
        advertised
    }

    /// An unguessable token for a reservation: knowing one lets a client
    /// take the held port, so it must not be predictable from another.
    fn reservation_token(&self, reserved: SocketAddr, id: RelayRequestId) -> u64 {
        let tag = self
            .nonces
            .tag_for_token(b"reservation-token", reserved, id.0);
        u64::from_be_bytes(tag)
    }

    fn allocate_success<'s>(
        &'s mut self,
        from: FiveTuple,
        to: &ReplyTo,
        key: &IntegrityKey,
        success: &AllocateSuccess,
    ) -> Option<Transmit<'s>> {
        let body = |b: &mut MessageBuilder<'_>| -> Result<(), BuildError> {
            b.add(&Attribute::XorRelayedAddress(success.advertised))?;
            if let Some(additional) = success.additional {
                b.add(&Attribute::XorRelayedAddress(additional))?;
            }
            if let Some(family) = success.refused_family {
                let error = ErrorCode::with_default_reason(ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED);
                b.add(&Attribute::AddressErrorCode { family, error })?;
            }
            b.add(&Attribute::Lifetime(lifetime_secs(success.lifetime)))?;
            if let Some(token) = success.token {
                b.add(&Attribute::ReservationToken(token))?;
            }
            b.add(&Attribute::XorMappedAddress(success.client))?;
            Ok(())
        };
        self.respond(from, to, Class::Success, Some(key), body)
    }

    fn refresh<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        request: &Message<'_>,
        key: IntegrityKey,
    ) -> Option<Transmit<'s>> {
        let to = ReplyTo::of(request);
        let asked_zero = matches!(
            request.get(AttributeType::LIFETIME),
            Some(Ok(Attribute::Lifetime(0)))
        );
        if let Some(Ok(Attribute::RequestedAddressFamily(family))) =
            request.get(AttributeType::REQUESTED_ADDRESS_FAMILY)
            && self
                .allocations
                .get(&from)
                .is_some_and(|a| a.relays().all(|r| AddressFamily::of(&r.ip()) != family))
        {
            return self.error(
                from,
                &to,
                ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH,
                Some(&key),
            );
        }
        let lifetime = if asked_zero {
            self.remove_allocation(now, &from, crate::session::EndReason::Released);
            Duration::ZERO
        } else {
            let lifetime = self.granted_lifetime(request);
            if let Some(allocation) = self.allocations.get_mut(&from) {
                allocation.expires = now + lifetime;
            }
            self.extend_fast_paths(now, &from);
            lifetime
        };
        let body = |b: &mut MessageBuilder<'_>| -> Result<(), BuildError> {
            b.add(&Attribute::Lifetime(lifetime_secs(lifetime)))?;
            Ok(())
        };
        self.respond(from, &to, Class::Success, Some(&key), body)
    }

    /// Checks that a peer address may be used by the allocation of `from`:
    /// the error code to answer otherwise.
    pub(crate) fn check_peer(&self, from: &FiveTuple, peer: SocketAddr) -> Result<(), u16> {
        let Some(allocation) = self.allocations.get(from) else {
            return Err(ErrorCode::ALLOCATION_MISMATCH);
        };
        if allocation.relay_for(peer.ip()).is_none() {
            return Err(ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH);
        }
        if !self.config.peer_policy.permits_peer(peer) {
            return Err(ErrorCode::FORBIDDEN);
        }
        Ok(())
    }

    /// Answers a peer refused by [`Server::check_peer`] with `code`,
    /// reporting the policy rule behind a 403.
    pub(crate) fn refuse_peer<'s>(
        &'s mut self,
        from: FiveTuple,
        to: &ReplyTo,
        code: u16,
        key: &IntegrityKey,
        peer: SocketAddr,
    ) -> Option<Transmit<'s>> {
        let reason = match self.config.peer_policy.refusing_rule(peer) {
            Some(rule) if code == ErrorCode::FORBIDDEN => {
                RefusalReason::PeerForbidden { peer, rule }
            }
            _ => RefusalReason::Other,
        };
        self.refused(from, to, code, Some(key), None, reason)
    }

    fn create_permission<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        request: &Message<'_>,
        key: IntegrityKey,
    ) -> Option<Transmit<'s>> {
        let to = ReplyTo::of(request);
        let mut peers = Vec::new();
        for attribute in request.attributes() {
            match attribute {
                Ok(Attribute::XorPeerAddress(peer)) => peers.push(peer),
                Err(_) => return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key)),
                Ok(_) => {}
            }
        }
        if peers.is_empty() {
            return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key));
        }
        // More peers than an allocation may hold can never fit; refusing
        // them before any work keeps one 64 KiB request (thousands of
        // addresses) from holding the shard for long.
        if peers.len() > self.config.max_permissions_per_allocation {
            let (code, reason) = (
                ErrorCode::INSUFFICIENT_CAPACITY,
                RefusalReason::TooManyPermissions,
            );
            return self.refused(from, &to, code, Some(&key), None, reason);
        }
        // All or nothing (RFC 8656 §10.2).
        if let Some((peer, code)) = peers
            .iter()
            .find_map(|p| self.check_peer(&from, *p).err().map(|code| (*p, code)))
        {
            return self.refuse_peer(from, &to, code, &key, peer);
        }
        let expires = now + self.config.permission_lifetime;
        let policy = &self.config.peer_policy;
        let Some(allocation) = self.allocations.get_mut(&from) else {
            return self.error(from, &to, ErrorCode::ALLOCATION_MISMATCH, Some(&key));
        };
        let ips: Vec<std::net::IpAddr> = peers.iter().map(SocketAddr::ip).collect();
        if !allocation.has_room_for(&ips, now) {
            let (code, reason) = (
                ErrorCode::INSUFFICIENT_CAPACITY,
                RefusalReason::TooManyPermissions,
            );
            return self.refused(from, &to, code, Some(&key), None, reason);
        }
        for ip in ips {
            // Room was made above, so this cannot fail.
            let relay_ports_only = policy.only_on_relay_ports(ip);
            let _ = allocation.install_permission(ip, now, expires, relay_ports_only);
        }
        self.extend_fast_paths(now, &from);
        self.respond(from, &to, Class::Success, Some(&key), |_| Ok(()))
    }

    fn channel_bind<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        request: &Message<'_>,
        key: IntegrityKey,
    ) -> Option<Transmit<'s>> {
        let to = ReplyTo::of(request);
        if self
            .allocations
            .get(&from)
            .is_some_and(|a| a.relay_transport == RelayTransport::Tcp)
        {
            // Channels carry datagrams; a TCP relay has none (RFC 6062 §5.1).
            return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key));
        }
        let number = match request.get(AttributeType::CHANNEL_NUMBER) {
            Some(Ok(Attribute::ChannelNumber(n))) if is_valid_channel(n) => n,
            _ => return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key)),
        };
        let peer = match request.get(AttributeType::XOR_PEER_ADDRESS) {
            Some(Ok(Attribute::XorPeerAddress(peer))) => peer,
            _ => return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key)),
        };
        if let Err(code) = self.check_peer(&from, peer) {
            return self.refuse_peer(from, &to, code, &key, peer);
        }
        let channel_expires = now + self.config.channel_lifetime;
        let permission_expires = now + self.config.permission_lifetime;
        let relay_ports_only = self.config.peer_policy.only_on_relay_ports(peer.ip());
        let Some(allocation) = self.allocations.get_mut(&from) else {
            return self.error(from, &to, ErrorCode::ALLOCATION_MISMATCH, Some(&key));
        };
        // Both the channel and its permission, or neither.
        let bound = allocation
            .can_bind_channel(number, peer)
            .and_then(|()| {
                allocation
                    .has_room_for(&[peer.ip()], now)
                    .then_some(())
                    .ok_or(ChannelConflict::Full)
            })
            .and_then(|()| allocation.bind_channel(number, peer, channel_expires))
            .and_then(|()| {
                allocation
                    .install_permission(peer.ip(), now, permission_expires, relay_ports_only)
                    .map_err(|_| ChannelConflict::Full)
            });
        match bound {
            Ok(()) => {}
            Err(ChannelConflict::Full) => {
                let (code, reason) = (
                    ErrorCode::INSUFFICIENT_CAPACITY,
                    RefusalReason::TooManyChannels,
                );
                return self.refused(from, &to, code, Some(&key), None, reason);
            }
            Err(_) => return self.error(from, &to, ErrorCode::BAD_REQUEST, Some(&key)),
        }
        self.offer_fast_path(now, &from, number);
        self.respond(from, &to, Class::Success, Some(&key), |_| Ok(()))
    }
}

/// What an Allocate success response says.
struct AllocateSuccess {
    advertised: SocketAddr,
    /// The second relayed address of a dual allocation.
    additional: Option<SocketAddr>,
    client: SocketAddr,
    lifetime: Duration,
    refused_family: Option<AddressFamily>,
    token: Option<u64>,
}

/// The reason a quota refusal is reported with.
pub(crate) fn quota_reason(code: u16) -> RefusalReason {
    match code {
        ErrorCode::ALLOCATION_QUOTA_REACHED => RefusalReason::UserQuota,
        _ => RefusalReason::TotalQuota,
    }
}

fn lifetime_secs(lifetime: Duration) -> u32 {
    u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX)
}
