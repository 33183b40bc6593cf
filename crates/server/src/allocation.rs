//! An allocation (RFC 8656 §2.2) and what hangs off it: the permissions
//! that let peers' data in (§9) and the channel bindings that shorten the
//! relayed packets (§12).
//!
//! Lists are small (a call has a handful of peers), so they are vectors
//! scanned linearly: cheaper per packet than hashing.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use edgeice_stun::{IntegrityKey, TransactionId};

use crate::interface::FiveTuple;
use crate::peer_policy::canonical;

/// Permission for one peer IP address (any port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// The peer address, canonical form.
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

/// Why a channel cannot be bound (answered with 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelConflict {
    /// The number is bound to another peer.
    NumberTaken,
    /// The peer is bound to another number.
    PeerTaken,
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
    /// The bandwidth cap, if the server sets one.
    pub budget: Option<ByteBudget>,
    /// Set for an MS-TURN client's allocation.
    pub ms_turn: Option<MsTurnState>,
    /// Channels handed to the kernel fast path.
    pub(crate) fast_routes: Vec<crate::fast_path::KernelChannel>,
    permissions: Vec<Permission>,
    channels: Vec<ChannelBinding>,
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
            budget: None,
            ms_turn: None,
            fast_routes: Vec::new(),
            permissions: Vec::new(),
            channels: Vec::new(),
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
        let ip = canonical(ip);
        self.permissions
            .iter()
            .find(|p| p.ip == ip && p.expires > now)
            .map(|p| p.expires)
    }

    /// Installs or refreshes the permission for `ip`.
    pub fn install_permission(&mut self, ip: IpAddr, expires: Instant) {
        let ip = canonical(ip);
        match self.permissions.iter_mut().find(|p| p.ip == ip) {
            Some(p) => p.expires = expires,
            None => self.permissions.push(Permission { ip, expires }),
        }
    }

    /// The live binding of channel `number`.
    pub fn channel(&self, number: u16, now: Instant) -> Option<&ChannelBinding> {
        self.channels
            .iter()
            .find(|c| c.number == number && c.expires > now)
    }

    /// The live channel number bound to `peer`.
    pub fn channel_for_peer(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
            .map(|c| c.number)
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
        if let Some(c) = self.channels.iter_mut().find(|c| c.number == number) {
            if c.peer != peer {
                return Err(ChannelConflict::NumberTaken);
            }
            c.expires = expires;
            return Ok(());
        }
        if self.channels.iter().any(|c| c.peer == peer) {
            return Err(ChannelConflict::PeerTaken);
        }
        self.channels.push(ChannelBinding {
            number,
            peer,
            expires,
        });
        Ok(())
    }

    /// Drops lapsed permissions, and channel bindings lapsed for `grace`
    /// already (RFC 8656 §12: a number is not reused for 5 minutes).
    pub fn sweep(&mut self, now: Instant, grace: std::time::Duration) {
        self.permissions.retain(|p| p.expires > now);
        self.channels.retain(|c| c.expires + grace > now);
    }

    /// The live permissions.
    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }

    /// The channel bindings, lapsed ones included until swept.
    pub fn channels(&self) -> &[ChannelBinding] {
        &self.channels
    }
}
