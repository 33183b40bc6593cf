//! A TURN client allocation (RFC 8656), with RFC 6062 TCP relays.
//!
//! [`Allocation`] allocates a relayed address with long-term credentials
//! (the first Allocate is answered 401 with REALM and NONCE, the second
//! carries USERNAME, REALM, NONCE and MESSAGE-INTEGRITY; a 438 stale nonce
//! is retried with the new one), then keeps the allocation, its permissions
//! and its channels alive with Refresh, CreatePermission and ChannelBind
//! before they expire. [`Allocation::send_to`] wraps a payload for a peer
//! and [`Allocation::handle_input`] unwraps what the relay sends back; both
//! work in the caller's buffers and allocate nothing per packet.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use edgeice_stun::attribute::{PasswordAlgorithm, TRANSPORT_TCP, TRANSPORT_UDP};
use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::{
    AddressFamily, Attribute, AttributeType, ChannelData, Class, ErrorCode, IntegrityKey,
    MIN_CHANNEL, Message, MessageBuilder, MessageType, Method, TransactionId,
};

use crate::error::{ClientError, InputError};
use crate::ids::IndicationIds;
use crate::response::error_code;
use crate::transaction::{
    Transaction, TransactionConfig, Transactions, Transport, random_transaction_id,
};
use crate::{Transmit, binding};

/// A permission lasts 300 s (RFC 8656 §9).
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// A channel binding lasts 600 s (RFC 8656 §12).
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Refresh this long before a lifetime ends (or at half of a short one).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// When a refresh cannot start (too many requests in flight), try again
/// this much later.
const RETRY_LATER: Duration = Duration::from_secs(1);
/// The lifetime assumed when a success response carries no LIFETIME.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
/// Most requests in flight.
const MAX_TRANSACTIONS: usize = 64;
/// Most permissions kept.
const MAX_PERMISSIONS: usize = 1024;
/// Channels are picked from 0x4000..=0x4FFF (RFC 8656 §12).
const LAST_CHANNEL: u16 = 0x4FFF;
/// Most events kept unread; the oldest are dropped beyond.
const MAX_EVENTS: usize = 256;
/// How many 438 (stale nonce) answers one request may get before it fails.
const MAX_STALE_NONCE_RETRIES: u8 = 3;

/// A user name and password for TURN's long-term credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name, sent in USERNAME.
    pub username: String,
    /// The password, never sent: it keys MESSAGE-INTEGRITY.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What the relay carries to and from peers (REQUESTED-TRANSPORT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelayProtocol {
    /// UDP relaying (RFC 8656).
    Udp,
    /// TCP relaying (RFC 6062); the client must reach the server over TCP
    /// or TLS.
    Tcp,
}

/// Settings of an [`Allocation`].
#[derive(Clone, Debug)]
pub struct AllocationConfig {
    /// The TURN server's address.
    pub server: SocketAddr,
    /// How the client reaches it.
    pub transport: Transport,
    /// Long-term credentials.
    pub credentials: Credentials,
    /// UDP or TCP relaying.
    pub relay: RelayProtocol,
    /// REQUESTED-ADDRESS-FAMILY, to ask for an IPv6 (or explicitly IPv4)
    /// relayed address; `None` leaves it to the server (IPv4).
    pub address_family: Option<AddressFamily>,
    /// LIFETIME to ask for in Allocate and Refresh; `None` takes the
    /// server's default (600 s).
    pub lifetime: Option<Duration>,
    /// How user name, realm and password are prepared for the key
    /// (identical for ASCII; SASLprep is what RFC 5389 servers did).
    pub preparation: Preparation,
    /// Retransmission settings.
    pub transactions: TransactionConfig,
}

impl AllocationConfig {
    /// Settings for a UDP relay on `server` with the defaults.
    pub fn new(server: SocketAddr, transport: Transport, credentials: Credentials) -> Self {
        AllocationConfig {
            server,
            transport,
            credentials,
            relay: RelayProtocol::Udp,
            address_family: None,
            lifetime: None,
            preparation: Preparation::OpaqueString,
            transactions: TransactionConfig::default(),
        }
    }
}

/// Where an allocation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocationState {
    /// Not yet asked for ([`Allocation::allocate`]).
    Idle,
    /// Allocate sent, no success yet.
    Allocating,
    /// The relay is ready.
    Allocated,
    /// Refresh with lifetime 0 sent.
    Releasing,
    /// Released by the client.
    Released,
    /// Refused, timed out, expired or lost; see [`AllocationEvent::Failed`].
    Failed,
}

impl AllocationState {
    fn describe(self) -> &'static str {
        match self {
            AllocationState::Idle => "not allocated yet",
            AllocationState::Allocating => "being allocated",
            AllocationState::Allocated => "allocated",
            AllocationState::Releasing => "being released",
            AllocationState::Released => "released",
            AllocationState::Failed => "failed",
        }
    }
}

/// What happened to an allocation. `code` is `None` when the server never
/// answered (the request timed out) or the allocation expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocationEvent {
    /// The relay is ready.
    Allocated {
        /// The relayed address (XOR-RELAYED-ADDRESS), for relay candidates.
        relayed: SocketAddr,
        /// The client's address as the server saw it (XOR-MAPPED-ADDRESS),
        /// for server-reflexive candidates; `None` if the server left it out.
        mapped: Option<SocketAddr>,
        /// How long the allocation lives unless refreshed (it is refreshed
        /// automatically).
        lifetime: Duration,
    },
    /// An automatic Refresh succeeded.
    Refreshed {
        /// The new lifetime.
        lifetime: Duration,
    },
    /// The allocation failed or was lost: Allocate refused (401 after the
    /// credentials were sent, 403, 437, 441, 486, 508…), a Refresh refused,
    /// no answer, or expiry. Nothing more can be done with it.
    Failed {
        /// The ERROR-CODE, or `None` for a timeout or expiry.
        code: Option<u16>,
        /// The reason phrase, or what happened.
        reason: String,
    },
    /// [`Allocation::release`] completed (or gave up waiting).
    Released,
    /// A permission for `ip` is installed.
    PermissionCreated {
        /// The peer's IP address.
        ip: IpAddr,
    },
    /// A CreatePermission was refused or went unanswered.
    PermissionFailed {
        /// The peer's IP address.
        ip: IpAddr,
        /// The ERROR-CODE, or `None` for a timeout.
        code: Option<u16>,
        /// The reason phrase.
        reason: String,
    },
    /// `channel` is bound to `peer`; [`Allocation::send_to`] now uses it.
    ChannelBound {
        /// The peer.
        peer: SocketAddr,
        /// The channel number.
        channel: u16,
    },
    /// A ChannelBind was refused or went unanswered.
    ChannelBindFailed {
        /// The peer.
        peer: SocketAddr,
        /// The channel number asked for.
        channel: u16,
        /// The ERROR-CODE, or `None` for a timeout.
        code: Option<u16>,
        /// The reason phrase.
        reason: String,
    },
    /// RFC 6062: the server connected to `peer`; open a data connection
    /// and bind it with [`Allocation::connection_bind`].
    Connected {
        /// The peer.
        peer: SocketAddr,
        /// The CONNECTION-ID for ConnectionBind.
        connection_id: u32,
    },
    /// RFC 6062: Connect refused (446, 447…) or unanswered.
    ConnectFailed {
        /// The peer.
        peer: SocketAddr,
        /// The ERROR-CODE, or `None` for a timeout.
        code: Option<u16>,
        /// The reason phrase.
        reason: String,
    },
    /// RFC 6062: a peer connected to the relayed address; accept it by
    /// opening a data connection and binding it with
    /// [`Allocation::connection_bind`] (within 30 s).
    ConnectionAttempt {
        /// The peer.
        peer: SocketAddr,
        /// The CONNECTION-ID for ConnectionBind.
        connection_id: u32,
    },
}

/// What a request in flight was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    Allocate,
    Refresh { lifetime: u32 },
    CreatePermission { ip: IpAddr },
    ChannelBind { peer: SocketAddr, channel: u16 },
    Connect { peer: SocketAddr },
}

/// The tag of a transaction: its request and how often it was retried.
#[derive(Clone, Copy, Debug)]
struct Pending {
    request: Request,
    /// Whether it carried credentials.
    authenticated: bool,
    /// Retries after 401.
    unauthorized: u8,
    /// Retries after 438.
    stale: u8,
}

/// What the server's challenge gave: realm, nonce and the derived key.
#[derive(Clone, Debug)]
struct Auth {
    realm: String,
    nonce: String,
    key: IntegrityKey,
    /// PASSWORD-ALGORITHMS as the server sent it, echoed back (RFC 8489 §9.2).
    algorithms: Option<Vec<u8>>,
    algorithm: u16,
}

#[derive(Clone, Copy, Debug)]
struct Permission {
    installed: bool,
    in_flight: bool,
    refresh_at: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
struct Channel {
    number: u16,
    bound: bool,
    in_flight: bool,
    refresh_at: Option<Instant>,
}

/// A TURN client allocation on one server. See the crate documentation for
/// the calling pattern.
#[derive(Debug)]
pub struct Allocation {
    config: AllocationConfig,
    state: AllocationState,
    auth: Option<Auth>,
    transactions: Transactions<Pending>,
    events: VecDeque<AllocationEvent>,
    relayed: Option<SocketAddr>,
    mapped: Option<SocketAddr>,
    lifetime: Duration,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    refresh_in_flight: bool,
    permissions: HashMap<IpAddr, Permission>,
    channels: HashMap<SocketAddr, Channel>,
    channel_peers: HashMap<u16, SocketAddr>,
    next_channel: u16,
    indication_ids: IndicationIds,
}

impl Allocation {
    /// An allocation not yet asked for; start with [`Allocation::allocate`].
    pub fn new(config: AllocationConfig) -> Self {
        Allocation {
            config,
            state: AllocationState::Idle,
            auth: None,
            transactions: Transactions::new(MAX_TRANSACTIONS),
            events: VecDeque::new(),
            relayed: None,
            mapped: None,
            lifetime: Duration::ZERO,
            refresh_at: None,
            expires_at: None,
            refresh_in_flight: false,
            permissions: HashMap::new(),
            channels: HashMap::new(),
            channel_peers: HashMap::new(),
            next_channel: MIN_CHANNEL,
            indication_ids: IndicationIds::new(),
        }
    }

    /// Sends Allocate. The first one goes without credentials; the
    /// server's 401 brings the realm and nonce for the second.
    pub fn allocate(&mut self, now: Instant) -> Result<(), ClientError> {
        if self.state != AllocationState::Idle {
            return Err(ClientError::WrongState(self.state.describe()));
        }
        if self.config.relay == RelayProtocol::Tcp && !self.config.transport.is_stream() {
            return Err(ClientError::NotTcpRelay);
        }
        self.start(now, Request::Allocate, 0, 0)?;
        self.state = AllocationState::Allocating;
        Ok(())
    }

    /// Installs a permission for `ip` (any port), refreshed every 240 s
    /// while the allocation lives. Does nothing if one exists or is
    /// being created.
    pub fn create_permission(&mut self, now: Instant, ip: IpAddr) -> Result<(), ClientError> {
        self.require_allocated()?;
        if self.permissions.contains_key(&ip) {
            return Ok(());
        }
        if self.permissions.len() >= MAX_PERMISSIONS {
            return Err(ClientError::TooManyPermissions);
        }
        self.start(now, Request::CreatePermission { ip }, 0, 0)?;
        self.permissions.insert(
            ip,
            Permission {
                installed: false,
                in_flight: true,
                refresh_at: None,
            },
        );
        Ok(())
    }

    /// Binds a channel to `peer` (which also installs a permission for its
    /// IP) and returns its number; refreshed every 540 s. Until
    /// [`AllocationEvent::ChannelBound`], [`Allocation::send_to`] keeps
    /// using Send indications.
    pub fn bind_channel(&mut self, now: Instant, peer: SocketAddr) -> Result<u16, ClientError> {
        self.require_allocated()?;
        if let Some(channel) = self.channels.get(&peer) {
            return Ok(channel.number);
        }
        let number = self.free_channel()?;
        self.start(
            now,
            Request::ChannelBind {
                peer,
                channel: number,
            },
            0,
            0,
        )?;
        self.channels.insert(
            peer,
            Channel {
                number,
                bound: false,
                in_flight: true,
                refresh_at: None,
            },
        );
        self.channel_peers.insert(number, peer);
        Ok(number)
    }

    /// Wraps `payload` for `peer` into `out` (cleared first), ready to send
    /// to the server: ChannelData when a channel is bound to `peer` (padded
    /// to 4 bytes on a stream), else a Send indication. Creates the missing
    /// permission for `peer`'s IP (its CreatePermission comes out of
    /// [`Allocation::poll_transmit`]; the relay drops data for `peer` until
    /// it is installed, so wait for [`AllocationEvent::PermissionCreated`]
    /// if the first packets matter). Allocates nothing once `out` is large
    /// enough.
    pub fn send_to(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        self.require_allocated()?;
        if let Some(channel) = self.channels.get(&peer).filter(|c| c.bound) {
            let data = ChannelData {
                channel: channel.number,
                data: payload,
            };
            return data
                .encode(self.config.transport.is_stream(), out)
                .map_err(|_| ClientError::PayloadTooLong(payload.len()));
        }
        if !self.permissions.contains_key(&peer.ip()) {
            self.create_permission(now, peer.ip())?;
        }
        let kind = MessageType::new(Method::SEND, Class::Indication);
        let mut builder = MessageBuilder::new(out, kind, self.indication_ids.next_id());
        builder.add(&Attribute::XorPeerAddress(peer))?;
        builder
            .add(&Attribute::Data(payload))
            .map_err(|_| ClientError::PayloadTooLong(payload.len()))?;
        builder.add_fingerprint()?;
        Ok(())
    }

    /// Handles one datagram (UDP) or one frame (TCP/TLS, as cut by
    /// [`edgeice_stun::StreamDecoder::next_raw`]) from the server.
    ///
    /// Returns `Some((peer, data))` for relayed data — a Data indication or
    /// ChannelData on a channel of this allocation — with `data` borrowing
    /// `bytes`; `None` for responses and other indications, whose outcome
    /// comes out of [`Allocation::poll_event`]. An error means the input
    /// was dropped; the allocation is unaffected.
    pub fn handle_input<'a>(
        &mut self,
        now: Instant,
        bytes: &'a [u8],
    ) -> Result<Option<(SocketAddr, &'a [u8])>, InputError> {
        if bytes.first().is_some_and(|b| b >> 6 == 1) {
            let data = ChannelData::parse(bytes)?;
            let Some(&peer) = self.channel_peers.get(&data.channel) else {
                return Err(InputError::UnknownChannel(data.channel));
            };
            return Ok(Some((peer, data.data)));
        }
        let message = Message::parse(bytes)?;
        if message.has_fingerprint() && message.verify_fingerprint().is_err() {
            return Err(InputError::Integrity);
        }
        match message.class() {
            Class::Indication => self.handle_indication(&message),
            Class::Success | Class::Error => {
                self.handle_response(now, &message)?;
                Ok(None)
            }
            Class::Request => Err(InputError::Unexpected("request")),
        }
    }

    /// Sends Refresh with lifetime 0, ending the allocation; then
    /// [`AllocationEvent::Released`]. Requests in flight are abandoned.
    pub fn release(&mut self, now: Instant) -> Result<(), ClientError> {
        match self.state {
            AllocationState::Allocated => {}
            AllocationState::Idle | AllocationState::Allocating => {
                self.transactions.remove_where(|_| true);
                self.clear();
                self.state = AllocationState::Released;
                self.push_event(AllocationEvent::Released);
                return Ok(());
            }
            other => return Err(ClientError::WrongState(other.describe())),
        }
        self.transactions.remove_where(|_| true);
        self.start(now, Request::Refresh { lifetime: 0 }, 0, 0)?;
        self.state = AllocationState::Releasing;
        // Channels stay known until the server confirms, so that data
        // already on its way is still delivered; nothing is refreshed.
        self.refresh_at = None;
        Ok(())
    }

    /// RFC 6062: asks the server to open a TCP connection to `peer`; then
    /// [`AllocationEvent::Connected`] or [`AllocationEvent::ConnectFailed`].
    pub fn connect(&mut self, now: Instant, peer: SocketAddr) -> Result<(), ClientError> {
        self.require_allocated()?;
        if self.config.relay != RelayProtocol::Tcp {
            return Err(ClientError::NotTcpRelay);
        }
        self.start(now, Request::Connect { peer }, 0, 0)
    }

    /// RFC 6062: the ConnectionBind request for a new data connection to
    /// the server, for `connection_id` from [`AllocationEvent::Connected`]
    /// or [`AllocationEvent::ConnectionAttempt`]. Write
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
        let id = random_transaction_id()?;
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

    /// The next request to send to the server.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        let destination = self.config.server;
        self.transactions
            .poll_transmit()
            .map(|data| Transmit { destination, data })
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<AllocationEvent> {
        self.events.pop_front()
    }

    /// When to call [`Allocation::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let transactions = self.transactions.poll_timeout();
        if self.state != AllocationState::Allocated {
            return transactions;
        }
        let refreshes = self
            .permissions
            .values()
            .filter_map(|p| p.refresh_at)
            .chain(self.channels.values().filter_map(|c| c.refresh_at));
        [transactions, self.refresh_at, self.expires_at]
            .into_iter()
            .flatten()
            .chain(refreshes)
            .min()
    }

    /// Advances the clock: retransmissions, timeouts, and the refreshes of
    /// the allocation, its permissions and its channels.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (transaction, pending) in self.transactions.handle_timeout(now) {
            let _ = transaction;
            self.fail_request(pending.request, None, "no response from the server");
        }
        if self.state != AllocationState::Allocated {
            return;
        }
        if self.expires_at.is_some_and(|t| now >= t) {
            self.fail(None, "the allocation expired".to_owned());
            return;
        }
        if self.refresh_at.is_some_and(|t| now >= t) {
            let lifetime = self.requested_lifetime();
            self.refresh_at = None;
            match self.start(now, Request::Refresh { lifetime }, 0, 0) {
                Ok(()) => self.refresh_in_flight = true,
                Err(_) => self.refresh_at = Some(now + RETRY_LATER),
            }
        }
        let due: Vec<IpAddr> = self
            .permissions
            .iter()
            .filter(|(_, p)| p.refresh_at.is_some_and(|t| now >= t))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in due {
            let started = self.start(now, Request::CreatePermission { ip }, 0, 0);
            if let Some(p) = self.permissions.get_mut(&ip) {
                match started {
                    Ok(()) => {
                        p.in_flight = true;
                        p.refresh_at = None;
                    }
                    Err(_) => p.refresh_at = Some(now + RETRY_LATER),
                }
            }
        }
        let due: Vec<(SocketAddr, u16)> = self
            .channels
            .iter()
            .filter(|(_, c)| c.refresh_at.is_some_and(|t| now >= t))
            .map(|(peer, c)| (*peer, c.number))
            .collect();
        for (peer, channel) in due {
            let started = self.start(now, Request::ChannelBind { peer, channel }, 0, 0);
            if let Some(c) = self.channels.get_mut(&peer) {
                match started {
                    Ok(()) => {
                        c.in_flight = true;
                        c.refresh_at = None;
                    }
                    Err(_) => c.refresh_at = Some(now + RETRY_LATER),
                }
            }
        }
    }

    /// Where the allocation stands.
    pub fn state(&self) -> AllocationState {
        self.state
    }

    /// The settings it was made with.
    pub fn config(&self) -> &AllocationConfig {
        &self.config
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.relayed
    }

    /// The client's address as the server saw it, once allocated.
    pub fn mapped(&self) -> Option<SocketAddr> {
        self.mapped
    }

    /// The lifetime the server granted last.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The channel bound (or being bound) to `peer`.
    pub fn channel(&self, peer: SocketAddr) -> Option<u16> {
        self.channels.get(&peer).map(|c| c.number)
    }

    /// Whether a permission for `ip` is installed.
    pub fn has_permission(&self, ip: IpAddr) -> bool {
        self.permissions.get(&ip).is_some_and(|p| p.installed)
    }

    /// The realm learnt from the server's challenge.
    pub fn realm(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.realm.as_str())
    }

    fn require_allocated(&self) -> Result<(), ClientError> {
        if self.state == AllocationState::Allocated {
            Ok(())
        } else {
            Err(ClientError::WrongState(self.state.describe()))
        }
    }

    fn requested_lifetime(&self) -> u32 {
        self.config
            .lifetime
            .map_or(DEFAULT_LIFETIME.as_secs(), |l| l.as_secs())
            .try_into()
            .unwrap_or(u32::MAX)
    }

    fn free_channel(&mut self) -> Result<u16, ClientError> {
        let count = usize::from(LAST_CHANNEL - MIN_CHANNEL) + 1;
        for _ in 0..count {
            let candidate = self.next_channel;
            self.next_channel = if candidate >= LAST_CHANNEL {
                MIN_CHANNEL
            } else {
                candidate + 1
            };
            if !self.channel_peers.contains_key(&candidate) {
                return Ok(candidate);
            }
        }
        Err(ClientError::NoChannelLeft)
    }

    /// Builds and queues a request.
    fn start(
        &mut self,
        now: Instant,
        request: Request,
        unauthorized: u8,
        stale: u8,
    ) -> Result<(), ClientError> {
        let id = random_transaction_id()?;
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

    fn build(&self, request: Request, id: TransactionId) -> Result<Vec<u8>, ClientError> {
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

    /// USERNAME, REALM, NONCE, the password algorithm if the server offered
    /// a choice, and MESSAGE-INTEGRITY — when a challenge has been met.
    fn add_credentials(&self, builder: &mut MessageBuilder<'_>) -> Result<(), ClientError> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        builder.add(&Attribute::Username(&self.config.credentials.username))?;
        builder.add(&Attribute::Realm(&auth.realm))?;
        builder.add(&Attribute::Nonce(&auth.nonce))?;
        if let Some(algorithms) = &auth.algorithms {
            builder.add_raw(AttributeType::PASSWORD_ALGORITHMS, algorithms)?;
            builder.add(&Attribute::PasswordAlgorithm(PasswordAlgorithm {
                algorithm: auth.algorithm,
                params: &[],
            }))?;
        }
        builder.add_integrity_sha1(&auth.key)?;
        Ok(())
    }

    /// Takes REALM and NONCE (and PASSWORD-ALGORITHMS) from a 401 or 438
    /// and derives the key; `false` when they are missing or unusable.
    fn learn_challenge(&mut self, message: &Message<'_>) -> bool {
        let (Some(Ok(Attribute::Realm(realm))), Some(Ok(Attribute::Nonce(nonce)))) = (
            message.get(AttributeType::REALM),
            message.get(AttributeType::NONCE),
        ) else {
            return false;
        };
        let offered = match message.get(AttributeType::PASSWORD_ALGORITHMS) {
            Some(Ok(Attribute::PasswordAlgorithms(list))) => Some(list),
            _ => None,
        };
        let algorithm = match offered {
            Some(list) => match list
                .iter()
                .map(|a| a.algorithm)
                .find(|a| *a == PasswordAlgorithm::MD5 || *a == PasswordAlgorithm::SHA256)
            {
                Some(a) => a,
                None => return false,
            },
            None => PasswordAlgorithm::MD5,
        };
        if let Some(auth) = &mut self.auth
            && auth.realm == realm
            && auth.algorithm == algorithm
        {
            auth.nonce = nonce.to_owned();
            return true;
        }
        let credentials = &self.config.credentials;
        let Ok(key) = long_term_key(
            &credentials.username,
            realm,
            &credentials.password,
            algorithm,
            self.config.preparation,
        ) else {
            return false;
        };
        self.auth = Some(Auth {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            key,
            algorithms: offered.map(|list| list.as_bytes().to_vec()),
            algorithm,
        });
        true
    }

    fn handle_indication<'a>(
        &mut self,
        message: &Message<'a>,
    ) -> Result<Option<(SocketAddr, &'a [u8])>, InputError> {
        if self.relayed.is_none() {
            return Err(InputError::Unexpected("indication before allocation"));
        }
        let peer = match message.get(AttributeType::XOR_PEER_ADDRESS) {
            Some(Ok(Attribute::XorPeerAddress(peer))) => peer,
            _ => return Err(InputError::Malformed("XOR-PEER-ADDRESS")),
        };
        match message.method() {
            Method::DATA => match message.get(AttributeType::DATA) {
                Some(Ok(Attribute::Data(data))) => Ok(Some((peer, data))),
                _ => Err(InputError::Malformed("DATA")),
            },
            Method::CONNECTION_ATTEMPT => {
                let connection_id = match message.get(AttributeType::CONNECTION_ID) {
                    Some(Ok(Attribute::ConnectionId(id))) => id,
                    _ => return Err(InputError::Malformed("CONNECTION-ID")),
                };
                self.push_event(AllocationEvent::ConnectionAttempt {
                    peer,
                    connection_id,
                });
                Ok(None)
            }
            _ => Err(InputError::Unexpected("indication")),
        }
    }

    fn handle_response(&mut self, now: Instant, message: &Message<'_>) -> Result<(), InputError> {
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
        self.fail_request(pending.request, Some(code), &reason);
        Ok(())
    }

    fn succeed(
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
    fn fail_request(&mut self, request: Request, code: Option<u16>, reason: &str) {
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

    fn schedule_refresh(&mut self, now: Instant, lifetime: Duration) {
        self.lifetime = lifetime;
        self.expires_at = Some(now + lifetime);
        self.refresh_at = Some(now + refresh_delay(lifetime));
    }

    fn fail(&mut self, code: Option<u16>, reason: String) {
        self.transactions.remove_where(|_| true);
        self.clear();
        self.state = AllocationState::Failed;
        self.push_event(AllocationEvent::Failed { code, reason });
    }

    fn finish_release(&mut self) {
        if self.state == AllocationState::Releasing {
            self.clear();
            self.state = AllocationState::Released;
            self.push_event(AllocationEvent::Released);
        }
    }

    fn clear(&mut self) {
        self.refresh_at = None;
        self.expires_at = None;
        self.refresh_in_flight = false;
        self.permissions.clear();
        self.channels.clear();
        self.channel_peers.clear();
    }

    fn push_event(&mut self, event: AllocationEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// LIFETIME of a success response, or the default.
fn lifetime_of(message: &Message<'_>) -> Duration {
    match message.get(AttributeType::LIFETIME) {
        Some(Ok(Attribute::Lifetime(secs))) => Duration::from_secs(secs.into()),
        _ => DEFAULT_LIFETIME,
    }
}

/// When to refresh something that lives `lifetime`: a minute before it
/// ends, or halfway through when it lives two minutes or less.
pub(crate) fn refresh_delay(lifetime: Duration) -> Duration {
    if lifetime > REFRESH_MARGIN * 2 {
        lifetime - REFRESH_MARGIN
    } else {
        lifetime / 2
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_come_a_minute_early_or_halfway() {
        assert_eq!(
            refresh_delay(Duration::from_secs(600)),
            Duration::from_secs(540)
        );
        assert_eq!(
            refresh_delay(Duration::from_secs(300)),
            Duration::from_secs(240)
        );
        assert_eq!(
            refresh_delay(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(refresh_delay(Duration::ZERO), Duration::ZERO);
    }

    const _: () = assert!(LAST_CHANNEL <= edgeice_stun::MAX_CHANNEL);
}
