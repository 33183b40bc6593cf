//! RFC 6062 TCP relays: Connect, and ConnectionBind on a new data connection.

use std::net::SocketAddr;
use std::time::Instant;

use edgeice_stun::{
    Attribute, Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};

use super::{Allocation, RelayProtocol, Request};
use crate::error::{ClientError, InputError};
use crate::response::error_code;

impl Allocation {
    /// RFC 6062: asks the server to open a TCP connection to `peer`; then
    /// [`AllocationEvent::Connected`](crate::AllocationEvent::Connected) or [`AllocationEvent::ConnectFailed`](crate::AllocationEvent::ConnectFailed).
    pub fn connect(&mut self, now: Instant, peer: SocketAddr) -> Result<(), ClientError> {
        self.require_allocated()?;
        if self.config.relay != RelayProtocol::Tcp {
            return Err(ClientError::NotTcpRelay);
        }
        self.start(now, Request::Connect { peer }, 0, 0)
    }

    /// RFC 6062: the ConnectionBind request for a new data connection to
    /// the server, for `connection_id` from [`AllocationEvent::Connected`](crate::AllocationEvent::Connected)
    /// or [`AllocationEvent::ConnectionAttempt`](crate::AllocationEvent::ConnectionAttempt). Write
    /// [`ConnectionBind::request`] on the new connection and hand the
    /// first frame read back to [`ConnectionBind::handle_response`].
    pub fn connection_bind(
        &mut self,
        now: Instant,
        connection_id: u32,
    ) -> Result<ConnectionBind, ClientError> {
        self.require_allocated()?;
        if self.config.relay != RelayProtocol::Tcp {
            return Err(ClientError::NotTcpRelay);
        }
        let id = self.ids.next_id()?;
        let mut request = Vec::with_capacity(128);
        let kind = MessageType::new(Method::CONNECTION_BIND, Class::Request);
        let mut builder = MessageBuilder::new(&mut request, kind, id);
        builder.add(&Attribute::ConnectionId(connection_id))?;
        self.add_credentials(&mut builder)?;
        builder.add_fingerprint()?;
        Ok(ConnectionBind {
            request,
            transaction_id: id,
            key: self.auth.as_ref().map(|a| a.key.clone()),
            deadline: now + self.config.transactions.stream_timeout,
        })
    }
}

/// An RFC 6062 ConnectionBind request for a new data connection, and the
/// check of its response. After [`ConnectionBindOutcome::Bound`] the data
/// connection carries the peer's bytes raw, with no framing: bytes a
/// [`edgeice_stun::StreamDecoder`] buffered after the response
/// ([`edgeice_stun::StreamDecoder::pending`]) are the peer's.
#[derive(Debug, Clone)]
pub struct ConnectionBind {
    request: Vec<u8>,
    transaction_id: TransactionId,
    key: Option<IntegrityKey>,
    deadline: Instant,
}

/// What a ConnectionBind came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionBindOutcome {
    /// The data connection is bound to the peer.
    Bound,
    /// Refused (400, 447…); close the data connection.
    Failed {
        /// The ERROR-CODE.
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
}

impl ConnectionBind {
    /// The request to write on the new data connection.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// Its transaction ID.
    pub fn transaction_id(&self) -> TransactionId {
        self.transaction_id
    }

    /// When to give up waiting for the response (39.5 s, as for any
    /// request on a stream) and close the data connection.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Checks the response: the first frame read on the data connection.
    pub fn handle_response(&self, bytes: &[u8]) -> Result<ConnectionBindOutcome, InputError> {
        let message = Message::parse(bytes)?;
        if message.method() != Method::CONNECTION_BIND
            || *message.transaction_id() != self.transaction_id
        {
            return Err(InputError::UnknownTransaction);
        }
        if message.has_fingerprint() && message.verify_fingerprint().is_err() {
            return Err(InputError::Integrity);
        }
        match message.class() {
            Class::Success => {
                if let Some(key) = &self.key
                    && message.verify_integrity(key).is_err()
                {
                    return Err(InputError::Integrity);
                }
                Ok(ConnectionBindOutcome::Bound)
            }
            Class::Error => {
                let (code, reason) = error_code(&message);
                Ok(ConnectionBindOutcome::Failed { code, reason })
            }
            _ => Err(InputError::Unexpected("non-response")),
        }
    }
}
