//! What the cores of one server share. A driver may run several cores, one
//! per shard of clients; the limits below are the server's, not a core's,
//! so the cores' configs point at one `SharedState`. It is touched only on
//! control paths (allocations made or ended, reservations, 401 answers),
//! never on the relay path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::limiter::Limiter;
use crate::quota::QuotaLedger;

/// State shared by the cores of one server.
#[derive(Debug)]
pub struct SharedState {
    pub(crate) quota: QuotaLedger,
    /// Ports held for a later Allocate: token → (relay address, expiry).
    reservations: Mutex<HashMap<u64, (SocketAddr, Instant)>>,
    /// Bounds 401/438 answers per source IP.
    challenges: Mutex<Limiter>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for SharedState {
    fn default() -> Self {
        SharedState::new((50, 200))
    }
}

impl SharedState {
    /// Shared state allowing `challenges_per_ip.0` 401/438 answers per
    /// source IP and second on average, `.1` at once.
    pub fn new(challenges_per_ip: (u32, u32)) -> Self {
        SharedState {
            quota: QuotaLedger::default(),
            reservations: Mutex::new(HashMap::new()),
            challenges: Mutex::new(Limiter::new(challenges_per_ip.0, challenges_per_ip.1)),
        }
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
}
