//! The server core's settings. The I/O driver builds this from flags and
//! the config file; the core never reads either.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use edgeice_stun::IntegrityKey;
use edgeice_stun::attribute::PasswordAlgorithm;
use edgeice_stun::credentials::{CredentialError, Preparation, long_term_key};

use crate::peer_policy::PeerPolicy;

/// The two addresses of RFC 5780 NAT behaviour discovery: a primary
/// listener and an alternate that differs in both IP and port. The driver
/// listens on all four combinations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlternateAddress {
    /// The primary address.
    pub primary: SocketAddr,
    /// The alternate address (other IP, other port).
    pub alternate: SocketAddr,
}

impl AlternateAddress {
    /// Whether `local` is one of the four combinations.
    pub fn contains(&self, local: SocketAddr) -> bool {
        let ips = [self.primary.ip(), self.alternate.ip()];
        let ports = [self.primary.port(), self.alternate.port()];
        ips.contains(&local.ip()) && ports.contains(&local.port())
    }

    /// `local` with its IP and/or port switched to the other one.
    pub fn changed(&self, local: SocketAddr, ip: bool, port: bool) -> SocketAddr {
        let other_ip = if local.ip() == self.primary.ip() {
            self.alternate.ip()
        } else {
            self.primary.ip()
        };
        let other_port = if local.port() == self.primary.port() {
            self.alternate.port()
        } else {
            self.primary.port()
        };
        SocketAddr::new(
            if ip { other_ip } else { local.ip() },
            if port { other_port } else { local.port() },
        )
    }
}

/// Settings of the server core.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// SOFTWARE attribute for responses; `None` leaves it out.
    pub software: Option<String>,
    /// The realm of long-term credentials.
    pub realm: String,
    /// Long-term keys of the static users, by user name.
    pub users: HashMap<String, IntegrityKey>,
    /// Shared secrets of the TURN REST API scheme (user name
    /// `expiry:name`, password `base64(HMAC-SHA1(secret, user name))`).
    /// Several are accepted at once, so a secret can be rotated.
    pub auth_secrets: Vec<String>,
    /// Unix time (seconds) when the server started: with the monotonic
    /// `now` of each input it dates REST API user names, without the core
    /// reading a clock.
    pub unix_time_at_start: u64,
    /// Secret that signs nonces, so they need no server state. Random at
    /// start-up in production; fixed in tests.
    pub nonce_secret: [u8; 32],
    /// How long a nonce stays fresh before clients get 438 Stale Nonce.
    pub nonce_lifetime: Duration,
    /// Allocation lifetime when the client asks for none (RFC 8656: 10 min).
    pub default_lifetime: Duration,
    /// Longest allocation lifetime granted (RFC 8656: 1 hour).
    pub max_lifetime: Duration,
    /// Permission lifetime (RFC 8656: 5 min, not negotiable).
    pub permission_lifetime: Duration,
    /// Channel binding lifetime (RFC 8656: 10 min, not negotiable).
    pub channel_lifetime: Duration,
    /// RFC 5780 address pairs (at most one per family).
    pub alternates: Vec<AlternateAddress>,
    /// Relay IP → the address advertised for it, for an edge behind 1:1 NAT.
    pub external_ips: HashMap<IpAddr, IpAddr>,
    /// Do not warn when a private relay address is advertised (for an edge
    /// that serves only its own network).
    pub private_relay_ok: bool,
    /// Ask the driver to relay bound channels in the kernel
    /// ([`crate::Event::FastPathInstall`]) where it can.
    pub kernel_fast_path: bool,
    /// Which peers may be relayed to.
    pub peer_policy: PeerPolicy,
    /// Address families the driver can relay in; an Allocate for another
    /// gets 440. Empty means any.
    pub relay_families: Vec<edgeice_stun::AddressFamily>,
    /// Most peer connections (RFC 6062) per TCP allocation.
    pub max_connections_per_allocation: usize,
    /// Most permissions (peer IP addresses) per allocation; beyond it
    /// CreatePermission and ChannelBind get 508 (default 256).
    pub max_permissions_per_allocation: usize,
    /// Most channels per allocation, lapsed ones still reserved included;
    /// beyond it ChannelBind gets 508 (default 256).
    pub max_channels_per_allocation: usize,
    /// Bandwidth cap per allocation, in bytes per second of relayed
    /// payload, both directions together; `None` for no cap.
    pub max_bytes_per_second: Option<u64>,
    /// Most allocations in total.
    pub max_allocations: usize,
    /// Quotas, reservations and the 401 rate limit; cores built from clones
    /// of this config share them (see [`crate::SharedState`]).
    pub shared: std::sync::Arc<crate::SharedState>,
    /// Most allocations per user name.
    pub max_allocations_per_user: usize,
    /// Allocations (in all cores) from which new Allocates are redirected
    /// to an alternate, when one is known (`None`: from
    /// `max_allocations`, where they would be refused).
    pub redirect_above: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            software: Some(concat!("edgeice ", env!("CARGO_PKG_VERSION")).to_owned()),
            realm: "edgeice".to_owned(),
            users: HashMap::new(),
            auth_secrets: Vec::new(),
            unix_time_at_start: 0,
            nonce_secret: [0; 32],
            nonce_lifetime: Duration::from_secs(600),
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            external_ips: HashMap::new(),
            alternates: Vec::new(),
            private_relay_ok: false,
            kernel_fast_path: false,
            peer_policy: PeerPolicy::default(),
            relay_families: Vec::new(),
            max_connections_per_allocation: 64,
            max_permissions_per_allocation: 256,
            max_channels_per_allocation: 256,
            max_bytes_per_second: None,
            max_allocations: 10_000,
            shared: std::sync::Arc::default(),
            max_allocations_per_user: 1_000,
            redirect_above: None,
        }
    }
}

/// The settings a running server can take anew without a restart (the
/// driver's SIGHUP): credentials and the peer lists. Everything else in
/// [`ServerConfig`] is fixed for the server's life. What changes applies to
/// the requests that follow: allocations live on, but one whose user was
/// removed can no longer refresh (it ends when its lifetime runs out: a
/// revocation), and permissions already granted last until they lapse or
/// are refreshed under the new peer lists.
#[derive(Clone, Debug, Default)]
pub struct Reloadable {
    /// [`ServerConfig::users`].
    pub users: HashMap<String, IntegrityKey>,
    /// [`ServerConfig::auth_secrets`].
    pub auth_secrets: Vec<String>,
    /// [`PeerPolicy::allow`].
    pub allow_peers: Vec<ipnet::IpNet>,
    /// [`PeerPolicy::deny`].
    pub deny_peers: Vec<ipnet::IpNet>,
    /// [`PeerPolicy::deny_private`].
    pub deny_private_peers: bool,
}

impl ServerConfig {
    /// The reloadable part of these settings.
    pub fn reloadable(&self) -> Reloadable {
        Reloadable {
            users: self.users.clone(),
            auth_secrets: self.auth_secrets.clone(),
            allow_peers: self.peer_policy.allow.clone(),
            deny_peers: self.peer_policy.deny.clone(),
            deny_private_peers: self.peer_policy.deny_private,
        }
    }

    /// Takes `new` in place of the reloadable part and returns the part it
    /// replaces (to be dropped by the caller, outside any lock); the rest
    /// (the peer policy's own addresses and relay ports among it) stays.
    pub fn apply(&mut self, new: Reloadable) -> Reloadable {
        Reloadable {
            users: std::mem::replace(&mut self.users, new.users),
            auth_secrets: std::mem::replace(&mut self.auth_secrets, new.auth_secrets),
            allow_peers: std::mem::replace(&mut self.peer_policy.allow, new.allow_peers),
            deny_peers: std::mem::replace(&mut self.peer_policy.deny, new.deny_peers),
            deny_private_peers: std::mem::replace(
                &mut self.peer_policy.deny_private,
                new.deny_private_peers,
            ),
        }
    }

    /// Adds a user whose long-term key is already derived (from a user
    /// store).
    pub fn add_user_key(&mut self, name: &str, key: &[u8]) {
        self.users.insert(name.to_owned(), IntegrityKey::new(key));
    }

    /// Adds a static user, storing only the long-term key (MD5, as every
    /// deployed client supports).
    pub fn add_user(&mut self, name: &str, password: &str) -> Result<(), CredentialError> {
        let key = Self::user_key(&self.realm, name, password)?;
        self.users.insert(name.to_owned(), key);
        Ok(())
    }

    /// The key [`Self::add_user`] stores for a user of `realm`: a driver
    /// that reloads many users keeps the keys of those that did not change
    /// rather than derive them all again.
    pub fn user_key(
        realm: &str,
        name: &str,
        password: &str,
    ) -> Result<IntegrityKey, CredentialError> {
        long_term_key(
            name,
            realm,
            password,
            PasswordAlgorithm::MD5,
            Preparation::OpaqueString,
        )
    }
}
