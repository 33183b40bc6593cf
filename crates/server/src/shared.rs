//! What the cores of one server share. A driver may run several cores, one
//! per shard of clients; the limits below are the server's, not a core's,
//! so the cores' configs point at one `SharedState`. It is touched only on
//! control paths (allocations made or ended, reservations, 401 answers,
//! authentication, RFC 5780 Binding), never on the relay path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::guesses::{GuessLimits, Guesses};
use crate::limiter::Limiter;
use crate::quota::QuotaLedger;

/// The rates of the server's throttles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttles {
    /// 401/438 answers per source IP to requests without a nonce issued to
    /// that IP (what a spoofer can send): per second on average, at once
    /// (default 50, 200). Requests with such a nonce prove they can read
    /// what is sent to their address, so they never spend this budget.
    pub challenges_per_ip: (u32, u32),
    /// Binding answers that honour RESPONSE-PORT or CHANGE-REQUEST (RFC
    /// 5780) per source IP: per second on average, at once (default 5, 20).
    /// Such an answer goes to another port, or from another address, than
    /// the request's, so a spoofed request could aim it at any port.
    pub discovery_per_ip: (u32, u32),
    /// Password guessing.
    pub guesses: GuessLimits,
}

impl Default for Throttles {
    fn default() -> Self {
        Throttles {
            challenges_per_ip: (50, 200),
            discovery_per_ip: (5, 20),
            guesses: GuessLimits::default(),
        }
    }
}

/// State shared by the cores of one server.
#[derive(Debug)]
pub struct SharedState {
    pub(crate) quota: QuotaLedger,
    /// Ports held for a later Allocate: token → (relay address, expiry).
    reservations: Mutex<HashMap<u64, (SocketAddr, Instant)>>,
    /// Bounds 401/438 answers per source IP.
    challenges: Mutex<Limiter>,
    /// Bounds RFC 5780 Binding answers per source IP.
    discovery: Mutex<Limiter>,
    /// Failed integrity checks.
    guesses: Mutex<Guesses>,
    /// The last session id handed out (ids are unique across cores).
    sessions: std::sync::atomic::AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for SharedState {
    fn default() -> Self {
        SharedState::with_throttles(Throttles::default())
    }
}

impl SharedState {
    /// Shared state allowing `challenges_per_ip.0` 401/438 answers per
    /// source IP and second on average, `.1` at once; the other throttles
    /// at their defaults.
    pub fn new(challenges_per_ip: (u32, u32)) -> Self {
        SharedState::with_throttles(Throttles {
            challenges_per_ip,
            ..Throttles::default()
        })
    }

    /// Shared state with these throttles.
    pub fn with_throttles(throttles: Throttles) -> Self {
        let (rate, burst) = throttles.challenges_per_ip;
        let (discovery_rate, discovery_burst) = throttles.discovery_per_ip;
        SharedState {
            quota: QuotaLedger::default(),
            reservations: Mutex::new(HashMap::new()),
            challenges: Mutex::new(Limiter::new(rate, burst)),
            discovery: Mutex::new(Limiter::new(discovery_rate, discovery_burst)),
            guesses: Mutex::new(Guesses::new(throttles.guesses)),
            sessions: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A new session id, once per allocation made.
    pub(crate) fn next_session(&self) -> crate::session::SessionId {
        let last = self
            .sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::session::SessionId(last + 1)
    }

    /// Allocations counted now (made, or being made), in all cores.
    pub fn allocations(&self) -> usize {
        self.quota.total()
    }

    pub(crate) fn reserve(&self, token: u64, relay: SocketAddr, expires: Instant) {
        lock(&self.reservations).insert(token, (relay, expires));
    }

    /// Takes the port reserved under `token`, once.
    pub(crate) fn claim(&self, token: u64) -> Option<SocketAddr> {
        lock(&self.reservations)
            .remove(&token)
            .map(|(relay, _)| relay)
    }

    pub(crate) fn has_reservations(&self) -> bool {
        !lock(&self.reservations).is_empty()
    }

    /// Removes the reservations lapsed by `now` and returns their ports.
    pub(crate) fn lapsed_reservations(&self, now: Instant) -> Vec<SocketAddr> {
        let mut lapsed = Vec::new();
        lock(&self.reservations).retain(|_, (relay, expires)| {
            let keep = *expires > now;
            if !keep {
                lapsed.push(*relay);
            }
            keep
        });
        lapsed
    }

    /// Whether one more 401/438 may go to `ip` now.
    pub(crate) fn allow_challenge(&self, ip: IpAddr, now: Instant) -> bool {
        lock(&self.challenges).allow(ip, now)
    }

    /// Whether one more RFC 5780 answer (RESPONSE-PORT, CHANGE-REQUEST)
    /// may go to `ip` now.
    pub(crate) fn allow_discovery(&self, ip: IpAddr, now: Instant) -> bool {
        lock(&self.discovery).allow(ip, now)
    }

    /// Whether `user` from `ip` is in backoff after failed integrity checks.
    pub(crate) fn guess_held_back(&self, user: &str, ip: IpAddr, now: Instant) -> bool {
        lock(&self.guesses).held_back(user, ip, now)
    }

    /// Counts a failed integrity check of `user` from `ip`.
    pub(crate) fn guess_failed(&self, user: &str, ip: IpAddr, now: Instant) {
        lock(&self.guesses).failed(user, ip, now);
    }

    /// Records that `user` authenticated from `ip`.
    pub(crate) fn guess_succeeded(&self, user: &str, ip: IpAddr, now: Instant) {
        lock(&self.guesses).succeeded(user, ip, now);
    }
}
