//! Where an allocation stands and what happened to it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Where an allocation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocationState {
    /// Not yet asked for ([`Allocation::allocate`](crate::Allocation::allocate)).
    Idle,
    /// Allocate sent, no success yet.
    Allocating,
    /// The relay is ready.
    Allocated,
    /// Refresh with lifetime 0 sent.
    Releasing,
    /// Released by the client.
    Released,
    /// Refused, timed out, expired or lost; see [`AllocationEvent::Failed`](crate::AllocationEvent::Failed).
    Failed,
}

impl AllocationState {
    pub(super) fn describe(self) -> &'static str {
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
    /// credentials were sent, 403, 437, 441, 486, 508…; 300 leaves
    /// [`crate::Allocation::alternate_server`]), a Refresh refused,
    /// no answer, or expiry. Nothing more can be done with it.
    Failed {
        /// The ERROR-CODE, or `None` for a timeout or expiry.
        code: Option<u16>,
        /// The reason phrase, or what happened.
        reason: String,
    },
    /// [`Allocation::release`](crate::Allocation::release) completed (or gave up waiting).
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
    /// `channel` is bound to `peer`; [`Allocation::send_to`](crate::Allocation::send_to) now uses it.
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
    /// and bind it with [`Allocation::connection_bind`](crate::Allocation::connection_bind).
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
    /// [`Allocation::connection_bind`](crate::Allocation::connection_bind) (within 30 s).
    ConnectionAttempt {
        /// The peer.
        peer: SocketAddr,
        /// The CONNECTION-ID for ConnectionBind.
        connection_id: u32,
    },
}
