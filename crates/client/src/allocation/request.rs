//! Building the TURN requests and acting on their responses.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use edgeice_stun::attribute::{TRANSPORT_TCP, TRANSPORT_UDP};
use edgeice_stun::{
    Attribute, AttributeType, Class, ErrorCode, Message, MessageBuilder, MessageType, Method,
    TransactionId,
};

use super::{
    Allocation, AllocationEvent, AllocationState, CHANNEL_LIFETIME, DEFAULT_LIFETIME,
    MAX_STALE_NONCE_RETRIES, PERMISSION_LIFETIME, RelayProtocol, refresh_delay,
};
use crate::binding;
use crate::error::{ClientError, InputError};
use crate::response::error_code;
use crate::transaction::Transaction;

/// What a request in flight was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Request {
    Allocate,
    Refresh { lifetime: u32 },
    CreatePermission { ip: IpAddr },
    ChannelBind { peer: SocketAddr, channel: u16 },
    Connect { peer: SocketAddr },
}

/// The tag of a transaction: its request and how often it was retried.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub(super) request: Request,
    /// Whether it carried credentials.
    pub(super) authenticated: bool,
    /// Retries after 401.
    pub(super) unauthorized: u8,
    /// Retries after 438.
    pub(super) stale: u8,
}

impl Allocation {
    pub(super) fn requested_lifetime(&self) -> u32 {
        self.config
            .lifetime
            .map_or(DEFAULT_LIFETIME.as_secs(), |l| l.as_secs())
            .try_into()
            .unwrap_or(u32::MAX)
    }

    /// Builds and queues a request.
    pub(super) fn start(
        &mut self,
        now: Instant,
        request: Request,
        unauthorized: u8,
        stale: u8,
    ) -> Result<(), ClientError> {
        let id = self.ids.next_id()?;
        let bytes = self.build(request, id)?;
        let transaction =
            Transaction::new(now, bytes, self.config.transport, &self.config.transactions)?;
        self.transactions.insert(
            transaction,
            Pending {
                request,
                authenticated: self.auth.is_some(),
                unauthorized,
                stale,
            },
        )
    }

    pub(super) fn build(
        &self,
        request: Request,
        id: TransactionId,
    ) -> Result<Vec<u8>, ClientError> {
        let method = match request {
            Request::Allocate => Method::ALLOCATE,
            Request::Refresh { .. } => Method::REFRESH,
            Request::CreatePermission { .. } => Method::CREATE_PERMISSION,
            Request::ChannelBind { .. } => Method::CHANNEL_BIND,
            Request::Connect { .. } => Method::CONNECT,
        };
        let mut buf = Vec::with_capacity(160);
        let mut builder =
            MessageBuilder::new(&mut buf, MessageType::new(method, Class::Request), id);
        match request {
            Request::Allocate => {
                let transport = match self.config.relay {
                    RelayProtocol::Udp => TRANSPORT_UDP,
                    RelayProtocol::Tcp => TRANSPORT_TCP,
                };
                builder.add(&Attribute::RequestedTransport(transport))?;
                if let Some(family) = self.config.address_family {
                    builder.add(&Attribute::RequestedAddressFamily(family))?;
                }
                if self.config.lifetime.is_some() {
                    builder.add(&Attribute::Lifetime(self.requested_lifetime()))?;
                }
            }
            Request::Refresh { lifetime } => {
                builder.add(&Attribute::Lifetime(lifetime))?;
            }
            Request::CreatePermission { ip } => {
                builder.add(&Attribute::XorPeerAddress(SocketAddr::new(ip, 0)))?;
            }
            Request::ChannelBind { peer, channel } => {
                builder.add(&Attribute::ChannelNumber(channel))?;
                builder.add(&Attribute::XorPeerAddress(peer))?;
            }
            Request::Connect { peer } => {
                builder.add(&Attribute::XorPeerAddress(peer))?;
            }
        }
        self.add_credentials(&mut builder)?;
        builder.add_fingerprint()?;
        Ok(buf)
    }

    pub(super) fn handle_response(
        &mut self,
        now: Instant,
        message: &Message<'_>,
    ) -> Result<(), InputError> {
        let Some((transaction, pending)) = self.transactions.take_response(message) else {
            return Err(InputError::UnknownTransaction);
        };
        if message.class() == Class::Success && pending.authenticated {
            // RFC 8489 §9.2.5: a success without a valid integrity is
            // discarded, and the request keeps waiting for the real one.
            let valid = self
                .auth
                .as_ref()
                .is_some_and(|a| message.verify_integrity(&a.key).is_ok());
            if !valid {
                let _ = self.transactions.insert(transaction, pending);
                return Err(InputError::Integrity);
            }
        }
        if message.class() == Class::Success {
            self.succeed(now, pending.request, message)?;
            return Ok(());
        }
        let (code, reason) = error_code(message);
        let retry = match code {
            ErrorCode::UNAUTHENTICATED if pending.unauthorized == 0 => {
                self.learn_challenge(message).then_some((1, pending.stale))
            }
            ErrorCode::STALE_NONCE if pending.stale < MAX_STALE_NONCE_RETRIES => self
                .learn_challenge(message)
                .then_some((pending.unauthorized, pending.stale + 1)),
            _ => None,
        };
        if let Some((unauthorized, stale)) = retry
            && self
                .start(now, pending.request, unauthorized, stale)
                .is_ok()
        {
            return Ok(());
        }
        if code == ErrorCode::TRY_ALTERNATE
            && pending.request == Request::Allocate
            && let Some(Ok(Attribute::AlternateServer(alternate))) =
                message.get(AttributeType::ALTERNATE_SERVER)
        {
            self.alternate_server = Some(alternate);
        }
        self.fail_request(pending.request, Some(code), &reason);
        Ok(())
    }

    pub(super) fn succeed(
        &mut self,
        now: Instant,
        request: Request,
        message: &Message<'_>,
    ) -> Result<(), InputError> {
        match request {
            Request::Allocate => {
                if self.state != AllocationState::Allocating {
                    return Ok(());
                }
                let relayed = match message.get(AttributeType::XOR_RELAYED_ADDRESS) {
                    Some(Ok(Attribute::XorRelayedAddress(addr))) => addr,
                    _ => {
                        self.fail(None, "Allocate success without XOR-RELAYED-ADDRESS".into());
                        return Err(InputError::Malformed("XOR-RELAYED-ADDRESS"));
                    }
                };
                let mapped = binding::mapped_address(message);
                let lifetime = lifetime_of(message);
                self.relayed = Some(relayed);
                self.mapped = mapped;
                self.state = AllocationState::Allocated;
                self.schedule_refresh(now, lifetime);
                self.push_event(AllocationEvent::Allocated {
                    relayed,
                    mapped,
                    lifetime,
                });
            }
            Request::Refresh { lifetime: 0 } => self.finish_release(),
            Request::Refresh { .. } => {
                self.refresh_in_flight = false;
                if self.state != AllocationState::Allocated {
                    return Ok(());
                }
                let lifetime = lifetime_of(message);
                self.schedule_refresh(now, lifetime);
                self.push_event(AllocationEvent::Refreshed { lifetime });
            }
            Request::CreatePermission { ip } => {
                let Some(p) = self.permissions.get_mut(&ip) else {
                    return Ok(());
                };
                let first = !p.installed;
                p.installed = true;
                p.in_flight = false;
                p.refresh_at = Some(now + refresh_delay(PERMISSION_LIFETIME));
                if first {
                    self.push_event(AllocationEvent::PermissionCreated { ip });
                }
            }
            Request::ChannelBind { peer, channel } => {
                let Some(c) = self.channels.get_mut(&peer).filter(|c| c.number == channel) else {
                    return Ok(());
                };
                let first = !c.bound;
                c.bound = true;
                c.in_flight = false;
                c.refresh_at = Some(now + refresh_delay(CHANNEL_LIFETIME));
                if first {
                    self.push_event(AllocationEvent::ChannelBound { peer, channel });
                }
            }
            Request::Connect { peer } => match message.get(AttributeType::CONNECTION_ID) {
                Some(Ok(Attribute::ConnectionId(connection_id))) => {
                    self.push_event(AllocationEvent::Connected {
                        peer,
                        connection_id,
                    });
                }
                _ => {
                    self.push_event(AllocationEvent::ConnectFailed {
                        peer,
                        code: None,
                        reason: "Connect success without CONNECTION-ID".to_owned(),
                    });
                    return Err(InputError::Malformed("CONNECTION-ID"));
                }
            },
        }
        Ok(())
    }

    /// A request failed with `code` (`None`: no answer).
    pub(super) fn fail_request(&mut self, request: Request, code: Option<u16>, reason: &str) {
        match request {
            Request::Allocate => {
                if self.state == AllocationState::Allocating {
                    self.fail(code, reason.to_owned());
                }
            }
            Request::Refresh { lifetime: 0 } => self.finish_release(),
            Request::Refresh { .. } => {
                self.refresh_in_flight = false;
                if self.state == AllocationState::Allocated {
                    self.fail(code, reason.to_owned());
                }
            }
            Request::CreatePermission { ip } => {
                if self.permissions.remove(&ip).is_some() {
                    self.push_event(AllocationEvent::PermissionFailed {
                        ip,
                        code,
                        reason: reason.to_owned(),
                    });
                }
            }
            Request::ChannelBind { peer, channel } => {
                if self
                    .channels
                    .get(&peer)
                    .is_some_and(|c| c.number == channel)
                {
                    self.channels.remove(&peer);
                    self.channel_peers.remove(&channel);
                    self.push_event(AllocationEvent::ChannelBindFailed {
                        peer,
                        channel,
                        code,
                        reason: reason.to_owned(),
                    });
                }
            }
            Request::Connect { peer } => {
                if self.state == AllocationState::Allocated {
                    self.push_event(AllocationEvent::ConnectFailed {
                        peer,
                        code,
                        reason: reason.to_owned(),
                    });
                }
            }
        }
    }
}

/// LIFETIME of a success response, or the default.
fn lifetime_of(message: &Message<'_>) -> Duration {
    match message.get(AttributeType::LIFETIME) {
        Some(Ok(Attribute::Lifetime(secs))) => Duration::from_secs(secs.into()),
        _ => DEFAULT_LIFETIME,
    }
}
