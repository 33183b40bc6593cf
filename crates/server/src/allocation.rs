//! An allocation (RFC 8656 §2.2) and what hangs off it: the permissions
//! that let peers' data in (§9) and the channel bindings that shorten the
//! relayed packets (§12).
//!
//! Both are sorted vectors searched by bisection: a call has a handful of
//! peers, where that is as cheap as a scan, and an allocation holding its
//! full quota (256 of each by default) costs eight comparisons a packet,
//! not 256. Lookups allocate nothing; lapsed entries are skipped on use and
//! swept every second.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use edgeice_stun::{IntegrityKey, TransactionId};

use crate::interface::FiveTuple;

/// Permission for one peer IP address (any port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// The peer address; an IPv4-mapped IPv6 address is kept as the IPv4
    /// address it is (a dual-stack socket reports IPv4 peers that way).
    pub ip: IpAddr,
    /// When it lapses unless refreshed.
    pub expires: Instant,
}

/// A channel number bound to one peer transport address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelBinding {
    /// The channel number, 0x4000..=0x7FFF.
    pub number: u16,
    /// The peer.
    pub peer: SocketAddr,
    /// When it lapses unless refreshed.
    pub expires: Instant,
}

/// A token bucket of bytes: the optional bandwidth cap of an allocation,
/// shared by both directions.
#[derive(Clone, Copy, Debug)]
pub struct ByteBudget {
    per_second: u64,
    tokens: u64,
    last: Instant,
}

impl ByteBudget {
    /// `per_second` bytes per second, with one second's worth at once.
    pub fn new(per_second: u64, now: Instant) -> Self {
        ByteBudget {
            per_second,
            tokens: per_second,
            last: now,
        }
    }

    /// Whether `bytes` may pass now; spends them if so.
    pub fn spend(&mut self, bytes: usize, now: Instant) -> bool {
        self.refill(now);
        match self.tokens.checked_sub(bytes as u64) {
            Some(left) => {
                self.tokens = left;
                true
            }
            None => false,
        }
    }

    /// Takes every byte available now, to lend to the kernel fast path
    /// (which relays until the loan is spent, then passes packets up here).
    pub fn lend_all(&mut self, now: Instant) -> u64 {
        self.refill(now);
        std::mem::take(&mut self.tokens)
    }

    /// Takes back what the kernel left of a loan.
    pub fn give_back(&mut self, bytes: u64) {
        self.tokens = self.tokens.saturating_add(bytes).min(self.per_second);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        let refill = (elapsed.as_micros() as u64).saturating_mul(self.per_second) / 1_000_000;
        if refill > 0 {
            self.tokens = self.tokens.saturating_add(refill).min(self.per_second);
            self.last = now;
        }
    }
}

/// Why a channel cannot be bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelConflict {
    /// The number is bound to another peer (answered with 400).
    NumberTaken,
    /// The peer is bound to another number (answered with 400).
    PeerTaken,
    /// The allocation holds as many channels as it may (answered with 508).
    Full,
}

/// The allocation already holds as many permissions as it may (answered
/// with 508 Insufficient Capacity, RFC 8656 §10.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermissionsFull;

/// Most permissions and channels one allocation may hold: without a cap,
/// one client could grow its tables without end (coturn has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocationLimits {
    /// Most permissions (peer IP addresses).
    pub max_permissions: usize,
    /// Most channel bindings, lapsed ones still reserved included.
    pub max_channels: usize,
}

impl Default for AllocationLimits {
    /// 256 of each: a call, even a conference through one relay, has a few
    /// dozen peers at most.
    fn default() -> Self {
        AllocationLimits {
            max_permissions: 256,
            max_channels: 256,
        }
    }
}

/// The TURN dialect an allocation was made in, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AllocationDialect {
    /// RFC 8656 (and RFC 6062).
    Standard,
    /// Microsoft's MS-TURN.
    MsTurn,
}

impl AllocationDialect {
    /// A short lowercase name, for labels.
    pub fn label(self) -> &'static str {
        match self {
            AllocationDialect::Standard => "standard",
            AllocationDialect::MsTurn => "ms-turn",
        }
    }
}

/// What an MS-TURN allocation keeps beyond a standard one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsTurnState {
    /// The peer chosen with Set Active Destination: its datagrams and the
    /// client's travel raw, without Send requests or Data indications.
    pub active_destination: Option<SocketAddr>,
    /// How the client lays out attributes; answers use the same.
    pub layout: edgeice_stun::Layout,
    /// The connection ID of the MS-SEQUENCE-NUMBER the Allocate answer gave.
    pub connection_id: [u8; 20],
    /// The highest MS-SEQUENCE-NUMBER seen on the client's Send and Set
    /// Active Destination requests: a lower one is a replay.
    pub last_sequence: u32,
    /// The MS-VERSION agreed: the client's, at most the highest served.
    pub version: u32,
    /// BANDWIDTH of the Allocate: the peak the client expects, in kbit/s.
    pub bandwidth_kbps: Option<u32>,
    /// MS-SERVICE-QUALITY of the Allocate: (stream type, service quality).
    pub service_quality: Option<(u16, u16)>,
}

/// A relayed transport address leased to one client 5-tuple.
#[derive(Clone, Debug)]
pub struct Allocation {
    /// The client's 5-tuple.
    pub five_tuple: FiveTuple,
    /// The relay socket's own address.
    pub relay: SocketAddr,
    /// The relayed address told to the client (differs behind 1:1 NAT).
    pub advertised: SocketAddr,
    /// The relay of the other address family, for a dual allocation
    /// (RFC 8656 ADDITIONAL-ADDRESS-FAMILY): (bound, advertised).
    pub additional: Option<(SocketAddr, SocketAddr)>,
    /// UDP (RFC 8656) or TCP (RFC 6062) towards peers.
    pub relay_transport: crate::RelayTransport,
    /// Who created it: later requests must come from the same user.
    pub username: String,
    /// That user's key, to sign responses.
    pub key: IntegrityKey,
    /// The Allocate request that created it, to answer retransmissions.
    pub transaction_id: TransactionId,
    /// When it lapses unless refreshed.
    pub expires: Instant,
    /// When it was made (the server sets it when the Allocate succeeds;
    /// [`Allocation::new`] starts it at `expires`).
    pub created: Instant,
    /// The bandwidth cap, if the server sets one.
    pub budget: Option<ByteBudget>,
    /// Set for an MS-TURN client's allocation.
    pub ms_turn: Option<MsTurnState>,
    /// Channels handed to the kernel fast path.
    pub(crate) fast_routes: Vec<crate::fast_path::KernelChannel>,
    /// Caps on the tables below.
    pub limits: AllocationLimits,
    /// Its id in the operator's records.
    pub session: crate::session::SessionId,
    /// What it relayed (plain counters: the relay path adds to them).
    pub traffic: crate::session::Traffic,
    /// How many peer IPs were given a new permission.
    pub peers_permitted: u32,
    /// The first of them, for the records.
    pub first_peers: Vec<IpAddr>,
    /// (IP key, expiry, relay ports only), sorted by key: see [`ip_key`].
    /// The flag marks one of the server's own addresses, to which data
    /// may go on relay ports only.
    permissions: Vec<(u128, Instant, bool)>,
    /// Sorted by channel number.
    channels: Vec<ChannelBinding>,
    /// ((IP key, port), channel number, expiry), sorted by peer: the peer →
    /// client lookup, in one search (the expiry is kept in both tables).
    channels_by_peer: Vec<((u128, u16), u16, Instant)>,
}

/// A peer IP as one integer, so that a lookup compares integers: IPv4 as
/// its IPv4-mapped IPv6 address, which makes an IPv4 peer and its mapped
/// form (how a dual-stack socket reports it) the same peer.
fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().into(),
        IpAddr::V6(v6) => v6.into(),
    }
}

fn peer_key(peer: SocketAddr) -> (u128, u16) {
    (ip_key(peer.ip()), peer.port())
}

impl Allocation {
    /// A new allocation with no permissions.
    pub fn new(
        five_tuple: FiveTuple,
        relay: SocketAddr,
        advertised: SocketAddr,
        username: String,
        key: IntegrityKey,
        transaction_id: TransactionId,
        expires: Instant,
    ) -> Self {
        Allocation {
            five_tuple,
            relay,
            advertised,
            additional: None,
            relay_transport: crate::RelayTransport::Udp,
            username,
            key,
            transaction_id,
            expires,
            created: expires,
            budget: None,
            ms_turn: None,
            fast_routes: Vec::new(),
            limits: AllocationLimits::default(),
            session: crate::session::SessionId::default(),
            traffic: crate::session::Traffic::default(),
            peers_permitted: 0,
            first_peers: Vec::new(),
            permissions: Vec::new(),
            channels: Vec::new(),
            channels_by_peer: Vec::new(),
        }
    }

    /// The dialect it was made in.
    pub fn dialect(&self) -> AllocationDialect {
        match self.ms_turn {
            Some(_) => AllocationDialect::MsTurn,
            None => AllocationDialect::Standard,
        }
    }

    /// The relay sockets' addresses (one, or two for a dual allocation).
    pub fn relays(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        std::iter::once(self.relay).chain(self.additional.map(|(bound, _)| bound))
    }

    /// The relay that talks to peers of `peer`'s address family, if the
    /// allocation has one.
    pub fn relay_for(&self, peer: IpAddr) -> Option<SocketAddr> {
        self.relays()
            .find(|relay| relay.is_ipv4() == peer.is_ipv4())
    }

    /// Whether a live permission covers `ip`.
    pub fn permits(&self, ip: IpAddr, now: Instant) -> bool {
        self.permission_expiry(ip, now).is_some()
    }

    /// When the live permission covering `ip` expires.
    pub fn permission_expiry(&self, ip: IpAddr, now: Instant) -> Option<Instant> {
        self.permission(ip, now).map(|(expires, _)| expires)
    }

    /// The live permission covering `ip`: when it expires, and whether it
    /// lets data go to relay ports only.
    pub fn permission(&self, ip: IpAddr, now: Instant) -> Option<(Instant, bool)> {
        let key = ip_key(ip);
        let i = self.permissions.binary_search_by(|p| p.0.cmp(&key)).ok()?;
        let (_, expires, relay_ports_only) = self.permissions[i];
        (expires > now).then_some((expires, relay_ports_only))
    }

    /// Whether `ips` can all have a permission without going over the cap
    /// (lapsed ones are dropped first to make room).
    pub fn has_room_for(&mut self, ips: &[IpAddr], now: Instant) -> bool {
        let new = |s: &Self| {
            ips.iter()
                .enumerate()
                .filter(|(i, ip)| {
                    let key = ip_key(**ip);
                    // Count each new IP once, however often it is listed.
                    !ips[..*i].iter().any(|other| ip_key(*other) == key)
                        && s.permissions.binary_search_by(|p| p.0.cmp(&key)).is_err()
                })
                .count()
        };
        if self.permissions.len() + new(self) <= self.limits.max_permissions {
            return true;
        }
        self.permissions.retain(|p| p.1 > now);
        self.permissions.len() + new(self) <= self.limits.max_permissions
    }

    /// Installs or refreshes the permission for `ip`, unless that would
    /// take the allocation past its cap. `relay_ports_only` for one of the
    /// server's own addresses (see [`crate::peer_policy::PeerPolicy::only_on_relay_ports`]).
    pub fn install_permission(
        &mut self,
        ip: IpAddr,
        now: Instant,
        expires: Instant,
        relay_ports_only: bool,
    ) -> Result<(), PermissionsFull> {
        let key = ip_key(ip);
        match self.permissions.binary_search_by(|p| p.0.cmp(&key)) {
            Ok(i) => self.permissions[i].1 = expires,
            Err(_) if !self.has_room_for(&[ip], now) => return Err(PermissionsFull),
            Err(_) => {
                // Making room may have moved the slot.
                let i = self
                    .permissions
                    .binary_search_by(|p| p.0.cmp(&key))
                    .unwrap_or_else(|i| i);
                self.permissions.insert(i, (key, expires, relay_ports_only));
                // A new peer (not a refresh): for the records.
                self.peers_permitted = self.peers_permitted.saturating_add(1);
                let ip = std::net::Ipv6Addr::from(key).to_canonical();
                if self.first_peers.len() < crate::session::PEERS_NAMED
                    && !self.first_peers.contains(&ip)
                {
                    self.first_peers.push(ip);
                }
            }
        }
        Ok(())
    }

    /// The live binding of channel `number`.
    pub fn channel(&self, number: u16, now: Instant) -> Option<&ChannelBinding> {
        let i = self
            .channels
            .binary_search_by(|c| c.number.cmp(&number))
            .ok()?;
        let c = &self.channels[i];
        (c.expires > now).then_some(c)
    }

    /// The live channel number bound to `peer`.
    pub fn channel_for_peer(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        let key = peer_key(peer);
        let i = self
            .channels_by_peer
            .binary_search_by(|(p, ..)| p.cmp(&key))
            .ok()?;
        let (_, number, expires) = self.channels_by_peer[i];
        (expires > now).then_some(number)
    }

    /// Binds or refreshes channel `number` to `peer` (RFC 8656 §12.2).
    /// An expired binding still reserves its number and peer until swept,
    /// as the RFC asks (so a late packet cannot reach a new peer).
    pub fn bind_channel(
        &mut self,
        number: u16,
        peer: SocketAddr,
        expires: Instant,
    ) -> Result<(), ChannelConflict> {
        let slot = self.channels.binary_search_by(|c| c.number.cmp(&number));
        if let Ok(i) = slot {
            let c = &mut self.channels[i];
            if c.peer != peer {
                return Err(ChannelConflict::NumberTaken);
            }
            c.expires = expires;
            let key = peer_key(peer);
            if let Ok(j) = self
                .channels_by_peer
                .binary_search_by(|(p, ..)| p.cmp(&key))
            {
                self.channels_by_peer[j].2 = expires;
            }
            return Ok(());
        }
        let key = peer_key(peer);
        let Err(by_peer) = self
            .channels_by_peer
            .binary_search_by(|(p, ..)| p.cmp(&key))
        else {
            return Err(ChannelConflict::PeerTaken);
        };
        if self.channels.len() >= self.limits.max_channels {
            return Err(ChannelConflict::Full);
        }
        let i = slot.unwrap_or_else(|i| i);
        self.channels.insert(
            i,
            ChannelBinding {
                number,
                peer,
                expires,
            },
        );
        self.channels_by_peer
            .insert(by_peer, (key, number, expires));
        Ok(())
    }

    /// Whether channel `number` could be bound to `peer` now, without
    /// binding it.
    pub fn can_bind_channel(&self, number: u16, peer: SocketAddr) -> Result<(), ChannelConflict> {
        match self.channels.binary_search_by(|c| c.number.cmp(&number)) {
            Ok(i) if self.channels[i].peer == peer => Ok(()),
            Ok(_) => Err(ChannelConflict::NumberTaken),
            Err(_)
                if self
                    .channels_by_peer
                    .binary_search_by(|(p, ..)| p.cmp(&peer_key(peer)))
                    .is_ok() =>
            {
                Err(ChannelConflict::PeerTaken)
            }
            Err(_) if self.channels.len() >= self.limits.max_channels => Err(ChannelConflict::Full),
            Err(_) => Ok(()),
        }
    }

    /// Drops lapsed permissions, and channel bindings lapsed for `grace`
    /// already (RFC 8656 §12: a number is not reused for 5 minutes).
    pub fn sweep(&mut self, now: Instant, grace: std::time::Duration) {
        self.permissions.retain(|p| p.1 > now);
        let before = self.channels.len();
        self.channels.retain(|c| c.expires + grace > now);
        if self.channels.len() != before {
            let channels = &self.channels;
            self.channels_by_peer.retain(|(_, number, _)| {
                channels.binary_search_by(|c| c.number.cmp(number)).is_ok()
            });
        }
    }

    /// The permissions, lapsed ones included until swept.
    pub fn permissions(&self) -> impl Iterator<Item = Permission> + '_ {
        self.permissions
            .iter()
            .map(|&(key, expires, _)| Permission {
                ip: std::net::Ipv6Addr::from(key).to_canonical(),
                expires,
            })
    }

    /// The channel bindings, sorted by number, lapsed ones included until
    /// swept.
    pub fn channels(&self) -> &[ChannelBinding] {
        &self.channels
    }
}
