//! The settings of an allocation and the credentials it uses.

use std::net::SocketAddr;
use std::time::Duration;

use edgeice_stun::AddressFamily;
use edgeice_stun::credentials::Preparation;

use crate::transaction::{TransactionConfig, Transport};

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

/// Settings of an [`Allocation`](crate::Allocation).
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
