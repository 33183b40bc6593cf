//! What the core tells its driver for the operator's records: an
//! allocation started or ended (with what it relayed), and a request was
//! refused (with why). The core does no logging; the driver drains these
//! with [`crate::Server::poll_report`] and writes them as it likes.
//!
//! The per-allocation counters ([`Traffic`]) are plain integers in the
//! allocation the shard already owns: counting a relayed packet is two
//! additions, no lock and no allocation.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use edgeice_stun::Method;

use crate::allocation::AllocationDialect;
use crate::interface::{FiveTuple, RelayTransport};
use crate::peer_policy::PeerRule;

/// Names an allocation for as long as the process runs: unique across the
/// cores of one server (they share the counter), never reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What an allocation relayed through the socket path (the kernel fast
/// path's packets are not in here; see the driver).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets relayed client → peer.
    pub packets_to_peer: u64,
    /// Payload bytes relayed client → peer.
    pub bytes_to_peer: u64,
    /// Packets relayed peer → client.
    pub packets_to_client: u64,
    /// Payload bytes relayed peer → client.
    pub bytes_to_client: u64,
    /// Datagrams that reached the relay from an address no permission
    /// covers, dropped (RFC 8656 §9): a peer answering from another IP.
    pub dropped_from_peers: u64,
}

/// How many peer addresses a record names (it counts them all).
pub const PEERS_NAMED: usize = 4;

/// An allocation as the operator's records describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The user who made it.
    pub user: String,
    /// The realm of the credentials.
    pub realm: String,
    /// The client's 5-tuple (its address, the transport, the listener).
    pub five_tuple: FiveTuple,
    /// The relayed address told to the client.
    pub relay: SocketAddr,
    /// The second relayed address of a dual allocation.
    pub additional_relay: Option<SocketAddr>,
    /// UDP or TCP towards peers.
    pub relay_transport: RelayTransport,
    /// The dialect it was made in.
    pub dialect: AllocationDialect,
    /// How many peer IPs were given a permission (a lapsed one given again
    /// counts again).
    pub peers: u32,
    /// The first [`PEERS_NAMED`] of them.
    pub first_peers: Vec<IpAddr>,
    /// What it relayed.
    pub traffic: Traffic,
    /// How long it has lived.
    pub age: Duration,
    /// How long until it lapses unless refreshed.
    pub expires_in: Duration,
}

/// Why an allocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Not refreshed in time.
    Expired,
    /// The client deleted it (a Refresh with LIFETIME 0).
    Released,
    /// The client's TCP or TLS connection closed (RFC 8656 §3.1).
    ConnectionClosed,
    /// The operator ended it ([`crate::Server::kick`]).
    Kicked,
    /// The server is stopping ([`crate::Server::end_all`]).
    Shutdown,
    /// A drain's deadline came while it still lived.
    Drained,
}

impl EndReason {
    /// A short lowercase name, for records.
    pub fn label(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Released => "released",
            EndReason::ConnectionClosed => "connection-closed",
            EndReason::Kicked => "kicked",
            EndReason::Shutdown => "shutdown",
            EndReason::Drained => "drained",
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The user exists but the request's integrity did not check out.
    WrongPassword,
    /// No such user (and no REST API credential that checks out).
    UnknownUser,
    /// The user and source are in backoff after failed guesses: refused
    /// without a check.
    GuessingBackoff,
    /// The request came from the allocation's 5-tuple under another user.
    WrongUser,
    /// The peer policy refuses the peer.
    PeerForbidden {
        /// The peer asked for.
        peer: SocketAddr,
        /// The rule that refuses it.
        rule: PeerRule,
    },
    /// The user holds as many allocations as it may (486).
    UserQuota,
    /// The server holds as many allocations as it may (508).
    TotalQuota,
    /// No relay port could be bound (508): the range is used up, or the
    /// process is out of files.
    NoRelayPort,
    /// The allocation holds as many permissions as it may (508).
    TooManyPermissions,
    /// The allocation holds as many channels as it may (508).
    TooManyChannels,
    /// A malformed request, or one that breaks the protocol's rules (400).
    BadRequest,
    /// A new Allocate while the server drains, with no alternate to
    /// redirect it to (508).
    Draining,
    /// Any other error response, by its code.
    Other,
}

impl RefusalReason {
    /// A short lowercase name, for records (stable: fail2ban filters and
    /// `edgeice analyze` match on it).
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::WrongPassword => "wrong-password",
            RefusalReason::UnknownUser => "unknown-user",
            RefusalReason::GuessingBackoff => "guessing-backoff",
            RefusalReason::WrongUser => "wrong-user",
            RefusalReason::PeerForbidden { .. } => "peer-forbidden",
            RefusalReason::UserQuota => "user-quota",
            RefusalReason::TotalQuota => "total-quota",
            RefusalReason::NoRelayPort => "no-relay-port",
            RefusalReason::TooManyPermissions => "too-many-permissions",
            RefusalReason::TooManyChannels => "too-many-channels",
            RefusalReason::BadRequest => "bad-request",
            RefusalReason::Draining => "draining",
            RefusalReason::Other => "error",
        }
    }

    /// How many kinds there are, for a driver's table indexed by
    /// [`RefusalReason::index`].
    pub const KINDS: usize = 13;

    /// A small index per kind, below [`RefusalReason::KINDS`].
    pub fn index(self) -> usize {
        match self {
            RefusalReason::WrongPassword => 0,
            RefusalReason::UnknownUser => 1,
            RefusalReason::GuessingBackoff => 2,
            RefusalReason::WrongUser => 3,
            RefusalReason::PeerForbidden { .. } => 4,
            RefusalReason::UserQuota => 5,
            RefusalReason::TotalQuota => 6,
            RefusalReason::NoRelayPort => 7,
            RefusalReason::TooManyPermissions => 8,
            RefusalReason::TooManyChannels => 9,
            RefusalReason::BadRequest => 10,
            RefusalReason::Other => 11,
            RefusalReason::Draining => 12,
        }
    }
}

/// A refused request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Who sent it.
    pub five_tuple: FiveTuple,
    /// The request's method.
    pub method: Method,
    /// The error code answered (or that would have been, had the answer
    /// not been held back).
    pub code: u16,
    /// The user name it carried, when known.
    pub user: Option<String>,
    /// Why.
    pub reason: RefusalReason,
}

/// One record for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// An allocation was made.
    SessionStart(Session),
    /// An allocation ended.
    SessionEnd(Session, EndReason),
    /// A request was refused. Stale nonces and the first, credential-less
    /// request of each client are not refusals: they are how the
    /// handshake goes.
    Refused(Refusal),
}

/// Most reports kept between two drains: the driver drains after every
/// input, so this only bounds a driver that does not.
pub(crate) const MAX_QUEUED_REPORTS: usize = 1024;
