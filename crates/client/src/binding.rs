//! STUN Binding (RFC 8489 §7.2, §14.1–14.2): asking a server which address
//! and port it saw the request come from — the server-reflexive address.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use edgeice_stun::{
    Attribute, AttributeType, Class, Message, MessageBuilder, MessageType, Method, TransactionId,
};

use crate::error::{ClientError, InputError};
use crate::ids::RequestIds;
use crate::transaction::{Transaction, TransactionConfig, Transactions, Transport};
use crate::{Transmit, response};

/// Most Binding requests in flight at once.
const MAX_IN_FLIGHT: usize = 16;
/// Most events kept unread.
const MAX_EVENTS: usize = 64;

/// What a Binding request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingEvent {
    /// The server saw the request come from `mapped` (XOR-MAPPED-ADDRESS,
    /// or MAPPED-ADDRESS from servers that only send that).
    Mapped {
        /// The request answered.
        transaction_id: TransactionId,
        /// The server-reflexive address.
        mapped: SocketAddr,
        /// OTHER-ADDRESS, when the server offers NAT behaviour discovery
        /// (RFC 5780): its alternate IP and port.
        other: Option<SocketAddr>,
    },
    /// The server answered with an error, or with a success that carries
    /// no usable address (`code` 0 then).
    Failed {
        /// The request answered.
        transaction_id: TransactionId,
        /// The ERROR-CODE.
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// No answer within the transaction timeout.
    TimedOut {
        /// The request that went unanswered.
        transaction_id: TransactionId,
    },
}

/// A STUN client for Binding requests to one server.
#[derive(Debug)]
pub struct BindingClient {
    server: SocketAddr,
    transport: Transport,
    config: TransactionConfig,
    transactions: Transactions<()>,
    events: VecDeque<BindingEvent>,
    ids: RequestIds,
}

impl BindingClient {
    /// A client for the STUN server at `server`, reached over `transport`.
    pub fn new(server: SocketAddr, transport: Transport, config: TransactionConfig) -> Self {
        BindingClient {
            server,
            transport,
            config,
            transactions: Transactions::new(MAX_IN_FLIGHT),
            events: VecDeque::new(),
            ids: RequestIds::new(config.id_seed),
        }
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Starts a Binding request (with FINGERPRINT); send it with
    /// [`BindingClient::poll_transmit`].
    pub fn send_request(&mut self, now: Instant) -> Result<TransactionId, ClientError> {
        self.start(now, None)
    }

    /// Starts a Binding request with CHANGE-REQUEST (RFC 5780 §7.2): the
    /// server answers from its other IP and/or port. The answer comes from
    /// elsewhere than [`BindingClient::server`]: hand it in all the same.
    pub fn send_change_request(
        &mut self,
        now: Instant,
        change_ip: bool,
        change_port: bool,
    ) -> Result<TransactionId, ClientError> {
        self.start(now, Some((change_ip, change_port)))
    }

    fn start(
        &mut self,
        now: Instant,
        change: Option<(bool, bool)>,
    ) -> Result<TransactionId, ClientError> {
        let id = self.ids.next_id()?;
        let mut buf = Vec::with_capacity(36);
        let kind = MessageType::new(Method::BINDING, Class::Request);
        let mut builder = MessageBuilder::new(&mut buf, kind, id);
        if let Some((change_ip, change_port)) = change {
            builder.add(&Attribute::ChangeRequest {
                change_ip,
                change_port,
            })?;
        }
        builder.add_fingerprint()?;
        let transaction = Transaction::new(now, buf, self.transport, &self.config)?;
        self.transactions.insert(transaction, ())?;
        Ok(id)
    }

    /// Handles a datagram (or one stream frame) from the server. Anything
    /// that is not a response to a request in flight is refused.
    pub fn handle_input(&mut self, _now: Instant, bytes: &[u8]) -> Result<(), InputError> {
        let message = Message::parse(bytes)?;
        if message.has_fingerprint() && message.verify_fingerprint().is_err() {
            return Err(InputError::Integrity);
        }
        if message.method() != Method::BINDING {
            return Err(InputError::Unexpected("non-Binding"));
        }
        let Some((transaction, ())) = self.transactions.take_response(&message) else {
            return Err(InputError::UnknownTransaction);
        };
        let transaction_id = transaction.id();
        let event = match message.class() {
            Class::Error => {
                let (code, reason) = response::error_code(&message);
                BindingEvent::Failed {
                    transaction_id,
                    code,
                    reason,
                }
            }
            _ => match mapped_address(&message) {
                Some(mapped) => BindingEvent::Mapped {
                    transaction_id,
                    mapped,
                    other: match message.get(AttributeType::OTHER_ADDRESS) {
                        Some(Ok(Attribute::OtherAddress(other))) => Some(other),
                        _ => None,
                    },
                },
                None => BindingEvent::Failed {
                    transaction_id,
                    code: 0,
                    reason: "success response without a mapped address".to_owned(),
                },
            },
        };
        self.push_event(event);
        Ok(())
    }

    /// The next request to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        let destination = self.server;
        self.transactions.poll_transmit().map(|payload| Transmit {
            destination,
            payload,
        })
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<BindingEvent> {
        self.events.pop_front()
    }

    /// When to call [`BindingClient::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.transactions.poll_timeout()
    }

    /// Advances the clock: retransmits, and reports requests that timed out.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (transaction, ()) in self.transactions.handle_timeout(now) {
            self.push_event(BindingEvent::TimedOut {
                transaction_id: transaction.id(),
            });
        }
    }

    fn push_event(&mut self, event: BindingEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS.
pub(crate) fn mapped_address(message: &Message<'_>) -> Option<SocketAddr> {
    match message.get(AttributeType::XOR_MAPPED_ADDRESS) {
        Some(Ok(Attribute::XorMappedAddress(addr))) => Some(addr),
        _ => match message.get(AttributeType::MAPPED_ADDRESS) {
            Some(Ok(Attribute::MappedAddress(addr))) => Some(addr),
            _ => None,
        },
    }
}
