//! What the cores of one server share. A driver may run several cores, one
//! per shard of clients; the limits below are the server's, not a core's,
//! so the cores' configs point at one `SharedState`. It is touched only on
//! control paths (allocations made or ended, reservations, 401 answers,
//! authentication, RFC 5780 Binding), never on the relay path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// Another server new Allocates may be sent to (RFC 8489 §10
/// ALTERNATE-SERVER): another node of the fleet with room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alternate {
    /// Where its clients send (the ALTERNATE-SERVER attribute).
    pub address: SocketAddr,
    /// The name its TLS certificate carries (the ALTERNATE-DOMAIN
    /// attribute, sent only over TLS).
    pub domain: Option<String>,
}

/// Where and whether new Allocates go elsewhere: the alternates known and
/// the drain. Set by the driver (static flags, or a fleet registry).
#[derive(Debug, Default)]
struct Steering {
    /// For UDP and TCP clients, in order of preference.
    alternates: Mutex<Vec<Alternate>>,
    /// For TLS clients (their alternates listen for TLS), in order of
    /// preference.
    tls_alternates: Mutex<Vec<Alternate>>,
    /// The fleet registry's live nodes with room, for UDP and TCP clients
    /// and for TLS clients: used before the static lists above, which
    /// stay in force while the registry names none.
    fleet_alternates: Mutex<(Vec<Alternate>, Vec<Alternate>)>,
    /// Spreads redirects over the alternates of one family.
    next: AtomicUsize,
    draining: AtomicBool,
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
    steering: Steering,
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
            steering: Steering::default(),
        }
    }

    /// Replaces the alternates for UDP and TCP clients (first = preferred;
    /// a fleet registry passes the live nodes with room, this one and
    /// draining ones left out).
    pub fn set_alternates(&self, alternates: Vec<Alternate>) {
        let old = std::mem::replace(&mut *lock(&self.steering.alternates), alternates);
        drop(old);
    }

    /// Replaces the alternates for TLS clients (their addresses are TLS
    /// listeners; `domain` is what their certificates name).
    pub fn set_tls_alternates(&self, alternates: Vec<Alternate>) {
        let old = std::mem::replace(&mut *lock(&self.steering.tls_alternates), alternates);
        drop(old);
    }

    /// Replaces the fleet registry's alternates (for UDP and TCP clients,
    /// for TLS clients): live nodes with room, this one and draining ones
    /// left out. Where the registry names none of a client's family, the
    /// static lists of [`SharedState::set_alternates`] and
    /// [`SharedState::set_tls_alternates`] are used, so `--alternate-server`
    /// stays a fallback beside a registry.
    pub fn set_fleet_alternates(&self, plain: Vec<Alternate>, tls: Vec<Alternate>) {
        let old = std::mem::replace(&mut *lock(&self.steering.fleet_alternates), (plain, tls));
        drop(old);
    }

    /// The alternates for UDP and TCP clients in force: the registry's
    /// when it names any, else the static list.
    pub fn alternates(&self) -> Vec<Alternate> {
        let fleet = lock(&self.steering.fleet_alternates).0.clone();
        if fleet.is_empty() {
            lock(&self.steering.alternates).clone()
        } else {
            fleet
        }
    }

    /// The alternates for TLS clients in force: the registry's when it
    /// names any, else the static list.
    pub fn tls_alternates(&self) -> Vec<Alternate> {
        let fleet = lock(&self.steering.fleet_alternates).1.clone();
        if fleet.is_empty() {
            lock(&self.steering.tls_alternates).clone()
        } else {
            fleet
        }
    }

    /// Starts (`true`) or ends a drain: while draining, every new Allocate
    /// is redirected to an alternate, or refused with 508 when none is
    /// known; allocations already made go on.
    pub fn set_draining(&self, draining: bool) {
        self.steering.draining.store(draining, Ordering::Relaxed);
    }

    /// Whether the server is draining.
    pub fn draining(&self) -> bool {
        self.steering.draining.load(Ordering::Relaxed)
    }

    /// An alternate for a client of `transport` that reached this server
    /// at `local`: one of `local`'s address family (a client can reach no
    /// other over the socket it has), never `local` itself. Redirects are
    /// spread round-robin over those that qualify, as coturn does: a
    /// static list names peers, not a ranking.
    pub(crate) fn alternate_for(
        &self,
        transport: crate::Transport,
        local: SocketAddr,
    ) -> Option<Alternate> {
        let fits = |a: &&Alternate| a.address.is_ipv4() == local.is_ipv4() && a.address != local;
        let pick = |list: &[Alternate]| {
            let count = list.iter().filter(fits).count();
            if count == 0 {
                return None;
            }
            let turn = self.steering.next.fetch_add(1, Ordering::Relaxed) % count;
            list.iter().filter(fits).nth(turn).cloned()
        };
        let fleet = lock(&self.steering.fleet_alternates);
        let (fleet, fixed) = match transport {
            crate::Transport::Tls => (&fleet.1, &self.steering.tls_alternates),
            _ => (&fleet.0, &self.steering.alternates),
        };
        pick(fleet).or_else(|| pick(&lock(fixed)))
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
