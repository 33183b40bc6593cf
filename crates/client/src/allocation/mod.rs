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

mod auth;
mod config;
mod event;
mod relay;
mod request;
mod tcp;

pub use config::{AllocationConfig, Credentials, RelayProtocol};
pub use event::{AllocationEvent, AllocationState};
pub use tcp::{ConnectionBind, ConnectionBindOutcome};

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use edgeice_stun::MIN_CHANNEL;

use crate::Transmit;
use crate::error::ClientError;
use crate::ids::{IndicationIds, RequestIds};
use crate::transaction::Transactions;
use auth::Auth;
use request::{Pending, Request};

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
    /// Where request IDs come from (seeded in simulations).
    ids: RequestIds,
    alternate_server: Option<SocketAddr>,
}

impl Allocation {
    /// An allocation not yet asked for; start with [`Allocation::allocate`].
    pub fn new(config: AllocationConfig) -> Self {
        let mut ids = RequestIds::new(config.transactions.id_seed);
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
            indication_ids: IndicationIds::new(&mut ids),
            ids,
            alternate_server: None,
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
        self.require_udp_relay()?;
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

    /// The next request to send to the server.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        let destination = self.config.server;
        self.transactions.poll_transmit().map(|payload| Transmit {
            destination,
            payload,
        })
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

    /// Where a 300 (Try Alternate) answer to Allocate redirected to
    /// (ALTERNATE-SERVER): after that [`AllocationEvent::Failed`], make a
    /// new allocation on this address to follow the redirection.
    pub fn alternate_server(&self) -> Option<SocketAddr> {
        self.alternate_server
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

    fn require_udp_relay(&self) -> Result<(), ClientError> {
        if self.config.relay == RelayProtocol::Udp {
            Ok(())
        } else {
            Err(ClientError::NotUdpRelay)
        }
    }

    /// Tells the allocation that its TCP or TLS connection to the server
    /// closed: the server deletes an allocation whose control connection
    /// closes (RFC 8656), so this one fails (or, when releasing,
    /// counts as released).
    pub fn connection_closed(&mut self) {
        match self.state {
            AllocationState::Releasing => self.finish_release(),
            AllocationState::Allocating | AllocationState::Allocated => {
                self.fail(None, "the connection to the server closed".to_owned())
            }
            _ => {}
        }
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

/// When to refresh something that lives `lifetime`: a minute before it
/// ends, or halfway through when it lives two minutes or less.
pub(crate) fn refresh_delay(lifetime: Duration) -> Duration {
    if lifetime > REFRESH_MARGIN * 2 {
        lifetime - REFRESH_MARGIN
    } else {
        lifetime / 2
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
