//! An MS-TURN client ([MS-TURN]): a relay from a Lync or Skype for Business
//! edge, as those clients ask for one.
//!
//! The dialect in brief (the numbers are in [`edgeice_stun::ms`]): every
//! message starts with a MAGIC-COOKIE attribute instead of the header's
//! cookie; Allocate is answered 401 with REALM and NONCE under swapped
//! numbers, and again with the relayed address in MAPPED-ADDRESS and the
//! reflexive one in MS-XOR-MAPPED-ADDRESS; MESSAGE-INTEGRITY is the RFC
//! 3489 kind; Allocate again refreshes, with LIFETIME 0 it releases. Data
//! goes out in Send requests, which nobody answers, and comes in as Data
//! indications; after Set Active Destination it travels raw for that peer.
//!
//! Sans-IO like [`crate::Allocation`]: feed what the server sends to
//! [`MsTurnClient::handle_input`], send what [`MsTurnClient::poll_transmit`]
//! gives (already framed for TCP), and call
//! [`MsTurnClient::handle_timeout`] when [`MsTurnClient::poll_timeout`]
//! says.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_stun::attribute::{address_value, decode_address, decode_xor_keyed};
use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::{
    Attribute, AttributeType, Class, IntegrityKey, Layout, Message, MessageBuilder, MessageType,
    TransactionId, ms,
};

use crate::error::{ClientError, InputError};
use crate::transaction::{Transaction, TransactionConfig, Transactions, Transport};
use crate::{Transmit, response};

/// Most requests in flight at once.
const MAX_IN_FLIGHT: usize = 8;
/// Most events kept unread.
const MAX_EVENTS: usize = 64;
/// Refresh this long before the allocation would lapse.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Where the client and its credentials are.
#[derive(Clone, Debug)]
pub struct MsTurnConfig {
    /// The edge's address.
    pub server: SocketAddr,
    /// UDP, or TCP with MS-TURN's framing.
    pub transport: Transport,
    /// The TURN user name.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Retransmission settings.
    pub transactions: TransactionConfig,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MsTurnEvent {
    /// The edge granted a relay.
    Allocated {
        /// The relayed address peers send to.
        relayed: SocketAddr,
        /// The client's address as the edge saw it (MS-XOR-MAPPED-ADDRESS).
        reflexive: Option<SocketAddr>,
        /// How long it lasts unless refreshed (refreshes are automatic).
        lifetime: Duration,
    },
    /// The Allocate, a refresh or Set Active Destination was refused, or
    /// went unanswered (`code` is `None` then).
    Failed {
        /// What was asked.
        request: &'static str,
        /// The ERROR-CODE, if the edge answered.
        code: Option<u16>,
        /// Why.
        reason: String,
    },
    /// Set Active Destination was accepted: data for this peer now goes raw.
    ActiveDestination {
        /// The peer.
        peer: SocketAddr,
    },
    /// The relay was given back.
    Released,
}

/// What a transaction was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Allocate { authenticated: bool },
    Refresh,
    Release,
    SetActiveDestination(SocketAddr),
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::Allocate { .. } => "Allocate",
            Purpose::Refresh => "Allocate (refresh)",
            Purpose::Release => "Allocate (release)",
            Purpose::SetActiveDestination(_) => "Set Active Destination",
        }
    }
}

/// The realm and nonce of the edge's challenge, and the key they make.
#[derive(Clone, Debug)]
struct Challenge {
    realm: Vec<u8>,
    nonce: Vec<u8>,
    key: IntegrityKey,
}

/// An MS-TURN client for one relay on one edge.
#[derive(Debug)]
pub struct MsTurnClient {
    config: MsTurnConfig,
    transactions: Transactions<Purpose>,
    events: VecDeque<MsTurnEvent>,
    challenge: Option<Challenge>,
    relayed: Option<SocketAddr>,
    active_destination: Option<SocketAddr>,
    refresh_at: Option<Instant>,
    /// The frame being handed out by `poll_transmit`.
    sending: Vec<u8>,
    next_id: u64,
    id_base: [u8; 8],
}

impl MsTurnClient {
    /// A client that has asked for nothing yet.
    pub fn new(config: MsTurnConfig) -> Result<Self, ClientError> {
        let mut id_base = [0u8; 8];
        crate::ids::RequestIds::new(config.transactions.id_seed).fill(&mut id_base)?;
        Ok(MsTurnClient {
            config,
            transactions: Transactions::new(MAX_IN_FLIGHT),
            events: VecDeque::new(),
            challenge: None,
            relayed: None,
            active_destination: None,
            refresh_at: None,
            sending: Vec::new(),
            next_id: 0,
            id_base,
        })
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.relayed
    }

    /// Asks for a relay: the first Allocate, which the edge challenges.
    pub fn allocate(&mut self, now: Instant) -> Result<(), ClientError> {
        if self.relayed.is_some() {
            return Err(ClientError::WrongState("allocated"));
        }
        self.request(
            now,
            Purpose::Allocate {
                authenticated: false,
            },
            None,
        )
    }

    /// Gives the relay back (Allocate with LIFETIME 0).
    pub fn release(&mut self, now: Instant) -> Result<(), ClientError> {
        if self.relayed.is_none() {
            return Err(ClientError::WrongState("not allocated"));
        }
        self.refresh_at = None;
        self.request(now, Purpose::Release, None)
    }

    /// Asks the edge to relay raw datagrams between this client and `peer`.
    pub fn set_active_destination(
        &mut self,
        now: Instant,
        peer: SocketAddr,
    ) -> Result<(), ClientError> {
        if self.relayed.is_none() {
            return Err(ClientError::WrongState("not allocated"));
        }
        self.request(now, Purpose::SetActiveDestination(peer), Some(peer))
    }

    /// Writes `payload` for `peer` into `out` (cleared first), ready to send
    /// to the edge: raw when `peer` is the active destination, else in a
    /// Send request (which also lets the peer's answers in); framed on TCP.
    pub fn send_to(
        &mut self,
        peer: SocketAddr,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        if self.relayed.is_none() {
            return Err(ClientError::WrongState("not allocated"));
        }
        if self.active_destination == Some(peer) {
            out.clear();
            out.extend_from_slice(payload);
        } else {
            let id = self.next_transaction_id();
            let challenge = self
                .challenge
                .as_ref()
                .ok_or(ClientError::WrongState("not authenticated"))?;
            let kind = MessageType::new(ms::SEND, Class::Request);
            let (cookie, id) = split_id(id);
            let mut b = MessageBuilder::with_cookie(out, kind, cookie, id).layout(Layout::Unpadded);
            b.add_raw(ms::MAGIC_COOKIE, &ms::MAGIC_COOKIE_VALUE.to_be_bytes())?;
            b.add(&Attribute::Username(&self.config.username))?;
            b.add_raw(ms::DESTINATION_ADDRESS, &address_value(&peer))?;
            b.add_raw(ms::MS_VERSION, &1u32.to_be_bytes())?;
            b.add_raw(ms::REALM, &challenge.realm)?;
            b.add_raw(ms::DATA, payload)
                .map_err(|_| ClientError::PayloadTooLong(payload.len()))?;
            b.add_integrity_sha1_rfc3489(&challenge.key, false)?;
        }
        if self.config.transport.is_stream() {
            let header =
                ms::tcp_frame_header(out).ok_or(ClientError::PayloadTooLong(payload.len()))?;
            out.splice(0..0, header);
        }
        Ok(())
    }

    /// Handles one datagram, or one frame's payload on TCP (cut with
    /// [`edgeice_stun::Framing::MsTurn`]). Returns relayed data as
    /// `Some((peer, data))`, borrowing `bytes`.
    pub fn handle_input<'a>(
        &mut self,
        now: Instant,
        bytes: &'a [u8],
    ) -> Result<Option<(SocketAddr, &'a [u8])>, InputError> {
        if !ms::is_ms_turn(bytes) {
            // Raw data: the active destination's.
            return match self.active_destination {
                Some(peer) => Ok(Some((peer, bytes))),
                None => Err(InputError::Unexpected(
                    "raw data without an active destination",
                )),
            };
        }
        let message = Message::parse_either_layout(bytes)?;
        if message.kind() == ms::DATA_INDICATION {
            let peer = message
                .get_raw(ms::REMOTE_ADDRESS)
                .and_then(|v| decode_address(v).ok())
                .ok_or(InputError::Malformed("REMOTE-ADDRESS"))?;
            let data = message
                .get_raw(ms::DATA)
                .ok_or(InputError::Malformed("DATA"))?;
            return Ok(Some((peer, data)));
        }
        let Some((_, purpose)) = self.transactions.take_response(&message) else {
            return Err(InputError::UnknownTransaction);
        };
        self.handle_response(now, &message, purpose)?;
        Ok(None)
    }

    fn handle_response(
        &mut self,
        now: Instant,
        message: &Message<'_>,
        purpose: Purpose,
    ) -> Result<(), InputError> {
        if message.class() == Class::Error {
            let (code, reason) = response::error_code(message);
            let first_challenge = code == 401
                && purpose
                    == (Purpose::Allocate {
                        authenticated: false,
                    })
                && self.challenge.is_none();
            if first_challenge || code == 438 {
                self.learn_challenge(message)?;
                let retry = match purpose {
                    Purpose::Allocate { .. } => Purpose::Allocate {
                        authenticated: true,
                    },
                    other => other,
                };
                let peer = match purpose {
                    Purpose::SetActiveDestination(peer) => Some(peer),
                    _ => None,
                };
                return self
                    .request(now, retry, peer)
                    .map_err(|_| InputError::Unexpected("could not retry"));
            }
            self.push(MsTurnEvent::Failed {
                request: purpose.name(),
                code: Some(code),
                reason,
            });
            return Ok(());
        }
        let key = &self
            .challenge
            .as_ref()
            .ok_or(InputError::Unexpected("success before a challenge"))?
            .key;
        message
            .verify_integrity_sha1_rfc3489(key)
            .map_err(|_| InputError::Integrity)?;
        match purpose {
            Purpose::Allocate { .. } | Purpose::Refresh => {
                let relayed = match message.get(AttributeType::MAPPED_ADDRESS) {
                    Some(Ok(Attribute::MappedAddress(a))) => a,
                    _ => return Err(InputError::Malformed("MAPPED-ADDRESS")),
                };
                let lifetime = match message.get(AttributeType::LIFETIME) {
                    Some(Ok(Attribute::Lifetime(secs))) => Duration::from_secs(secs.into()),
                    _ => return Err(InputError::Malformed("LIFETIME")),
                };
                let reflexive = ms::xor_key(message.as_bytes()).and_then(|key| {
                    let value = message.get_raw(ms::MS_XOR_MAPPED_ADDRESS)?;
                    decode_xor_keyed(value, &key).ok()
                });
                self.refresh_at =
                    Some(now + lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2));
                if purpose != Purpose::Refresh {
                    self.relayed = Some(relayed);
                    self.push(MsTurnEvent::Allocated {
                        relayed,
                        reflexive,
                        lifetime,
                    });
                }
            }
            Purpose::Release => {
                self.relayed = None;
                self.active_destination = None;
                self.push(MsTurnEvent::Released);
            }
            Purpose::SetActiveDestination(peer) => {
                self.active_destination = Some(peer);
                self.push(MsTurnEvent::ActiveDestination { peer });
            }
        }
        Ok(())
    }

    fn learn_challenge(&mut self, message: &Message<'_>) -> Result<(), InputError> {
        let realm = message
            .get_raw(ms::REALM)
            .ok_or(InputError::Malformed("REALM"))?;
        let nonce = message
            .get_raw(ms::NONCE)
            .ok_or(InputError::Malformed("NONCE"))?;
        let realm_text = std::str::from_utf8(realm).map_err(|_| InputError::Malformed("REALM"))?;
        let key = long_term_key(
            &self.config.username,
            realm_text.trim_end_matches('\0'),
            &self.config.password,
            edgeice_stun::attribute::PasswordAlgorithm::MD5,
            Preparation::None,
        )
        .map_err(|_| InputError::Malformed("REALM"))?;
        self.challenge = Some(Challenge {
            realm: realm.to_vec(),
            nonce: nonce.to_vec(),
            key,
        });
        Ok(())
    }

    /// Starts a transaction for `purpose`.
    fn request(
        &mut self,
        now: Instant,
        purpose: Purpose,
        peer: Option<SocketAddr>,
    ) -> Result<(), ClientError> {
        let method = match purpose {
            Purpose::SetActiveDestination(_) => ms::SET_ACTIVE_DESTINATION,
            _ => ms::ALLOCATE,
        };
        let (cookie, id) = split_id(self.next_transaction_id());
        let mut buf = Vec::with_capacity(160);
        let kind = MessageType::new(method, Class::Request);
        let mut b =
            MessageBuilder::with_cookie(&mut buf, kind, cookie, id).layout(Layout::Unpadded);
        b.add_raw(ms::MAGIC_COOKIE, &ms::MAGIC_COOKIE_VALUE.to_be_bytes())?;
        if method == ms::ALLOCATE {
            b.add_raw(ms::MS_VERSION, &1u32.to_be_bytes())?;
        }
        if purpose == Purpose::Release {
            b.add(&Attribute::Lifetime(0))?;
        }
        if let Some(peer) = peer {
            b.add_raw(ms::DESTINATION_ADDRESS, &address_value(&peer))?;
        }
        if let Some(challenge) = &self.challenge {
            b.add(&Attribute::Username(&self.config.username))?;
            b.add_raw(ms::REALM, &challenge.realm)?;
            if method == ms::ALLOCATE {
                b.add_raw(ms::NONCE, &challenge.nonce)?;
            }
            b.add_integrity_sha1_rfc3489(&challenge.key, false)?;
        }
        let transaction =
            Transaction::new(now, buf, self.config.transport, &self.config.transactions)?;
        self.transactions.insert(transaction, purpose)
    }

    /// A fresh 16-byte MS-TURN transaction ID: random, then counted.
    fn next_transaction_id(&mut self) -> [u8; 16] {
        self.next_id += 1;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.id_base);
        id[8..].copy_from_slice(&self.next_id.to_be_bytes());
        id
    }

    /// The next request to send to the edge, framed on TCP.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        let request = self.transactions.poll_transmit()?;
        self.sending.clear();
        if self.config.transport.is_stream() {
            self.sending
                .extend_from_slice(&ms::tcp_frame_header(request)?);
        }
        self.sending.extend_from_slice(request);
        Some(Transmit {
            destination: self.config.server,
            payload: &self.sending,
        })
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<MsTurnEvent> {
        self.events.pop_front()
    }

    /// When to call [`MsTurnClient::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.transactions.poll_timeout(), self.refresh_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Retransmits, gives up on requests, and refreshes the allocation.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (_, purpose) in self.transactions.handle_timeout(now) {
            self.push(MsTurnEvent::Failed {
                request: purpose.name(),
                code: None,
                reason: "no answer from the edge".to_owned(),
            });
        }
        if self.refresh_at.is_some_and(|at| at <= now) {
            self.refresh_at = None;
            if self.request(now, Purpose::Refresh, None).is_err() {
                self.push(MsTurnEvent::Failed {
                    request: Purpose::Refresh.name(),
                    code: None,
                    reason: "too many requests in flight".to_owned(),
                });
            }
        }
    }

    fn push(&mut self, event: MsTurnEvent) {
        if self.events.len() < MAX_EVENTS {
            self.events.push_back(event);
        }
    }
}

/// Splits a 16-byte MS-TURN transaction ID into the header's cookie field
/// and the 12 bytes after it.
fn split_id(id: [u8; 16]) -> ([u8; 4], TransactionId) {
    let mut cookie = [0u8; 4];
    cookie.copy_from_slice(&id[..4]);
    let mut rest = [0u8; 12];
    rest.copy_from_slice(&id[4..]);
    (cookie, TransactionId(rest))
}
