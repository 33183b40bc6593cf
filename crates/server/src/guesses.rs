//! Throttling password guessing.
//!
//! Only failures that come with a fresh nonce issued to the source IP are
//! counted: the nonce proves the sender receives what is sent to that IP,
//! so a spoofer cannot run up failures in a victim's name (and lock it out)
//! without first seeing traffic sent to the victim.
//!
//! Three counts, each with exponential backoff once over its limit (a
//! request in backoff is answered 401 without its integrity being checked,
//! so it learns nothing about the password):
//!
//! - per (user name, source IP): tight. Only that user from that address is
//!   held back — which is the attacker, or the attacker's own NAT.
//! - per source IP, across user names: generous, since a NAT can put many
//!   users behind one address. Stops one address trying many names.
//! - per user name, across addresses: generous too. Stops a botnet guessing
//!   one user from many addresses. That count could lock the real user out
//!   under such an attack, so it (and the per-IP count) does not apply to a
//!   (user, IP) pair that authenticated within the last hour: a client that
//!   was working keeps working; a new address for that user waits out the
//!   backoff like everyone else. That is the trade-off.
//!
//! IPv6 sources are counted per /64, which one host usually holds whole.
//! The tables have a fixed number of slots indexed by a keyed hash, so a
//! flood of random addresses or names costs no memory; a slot remembers
//! the full hash of its key, so colliding keys do not share a count, and a
//! slot in backoff is not taken over until its backoff ends.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Slots in each table.
const SLOTS: usize = 4096;

/// How long a successful authentication exempts its (user, IP) pair from
/// the per-IP and per-user counts.
const KNOWN_GOOD_FOR: Duration = Duration::from_secs(3600);

/// Limits of password guessing (failed integrity checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuessLimits {
    /// Failures per (user name, source IP) before backoff (default 5).
    pub per_user_ip: u32,
    /// Failures per source IP, all user names together (default 30).
    pub per_ip: u32,
    /// Failures per user name, all source IPs together (default 100).
    pub per_user: u32,
    /// The first backoff; it doubles with each failure over a limit
    /// (default 1 s).
    pub backoff: Duration,
    /// The longest backoff (default 5 minutes).
    pub max_backoff: Duration,
    /// Failures are forgotten after this long without one (default 10
    /// minutes).
    pub forget_after: Duration,
}

impl Default for GuessLimits {
    fn default() -> Self {
        GuessLimits {
            per_user_ip: 5,
            per_ip: 30,
            per_user: 100,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            forget_after: Duration::from_secs(600),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// The full keyed hash of the key; 0 for an empty slot.
    tag: u64,
    failures: u32,
    last: Option<Instant>,
    blocked_until: Option<Instant>,
}

impl Slot {
    fn blocked(&self, tag: u64, now: Instant) -> bool {
        self.tag == tag && self.blocked_until.is_some_and(|until| now < until)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    UserIp,
    Ip,
    User,
    KnownGood,
}

/// The failure counts, and the pairs that authenticated lately.
#[derive(Debug)]
pub(crate) struct Guesses {
    limits: GuessLimits,
    hasher: std::collections::hash_map::RandomState,
    user_ip: Box<[Slot]>,
    ip: Box<[Slot]>,
    user: Box<[Slot]>,
    /// (tag, last success) per (user, IP).
    known_good: Box<[(u64, Option<Instant>)]>,
}

/// The address a source is counted under: IPv6 per /64.
fn counted(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        _ => ip.to_canonical(),
    }
}

impl Guesses {
    pub(crate) fn new(limits: GuessLimits) -> Self {
        let table = || vec![Slot::default(); SLOTS].into_boxed_slice();
        Guesses {
            limits,
            hasher: std::collections::hash_map::RandomState::new(),
            user_ip: table(),
            ip: table(),
            user: table(),
            known_good: vec![(0, None); SLOTS].into_boxed_slice(),
        }
    }

    /// (slot index, tag) of a key; the tag is never 0.
    fn locate(&self, kind: Kind, user: Option<&str>, ip: Option<IpAddr>) -> (usize, u64) {
        let mut h = self.hasher.build_hasher();
        kind.hash(&mut h);
        user.hash(&mut h);
        ip.map(counted).hash(&mut h);
        let hash = h.finish().max(1);
        ((hash % SLOTS as u64) as usize, hash)
    }

    fn known_good(&self, user: &str, ip: IpAddr, now: Instant) -> bool {
        let (i, tag) = self.locate(Kind::KnownGood, Some(user), Some(ip));
        let (held, last) = self.known_good[i];
        held == tag && last.is_some_and(|t| now.saturating_duration_since(t) < KNOWN_GOOD_FOR)
    }

    /// Whether an attempt by `user` from `ip` must wait: answered without
    /// checking its integrity.
    pub(crate) fn held_back(&self, user: &str, ip: IpAddr, now: Instant) -> bool {
        let (i, tag) = self.locate(Kind::UserIp, Some(user), Some(ip));
        if self.user_ip[i].blocked(tag, now) {
            return true;
        }
        if self.known_good(user, ip, now) {
            return false;
        }
        let (i, tag) = self.locate(Kind::Ip, None, Some(ip));
        if self.ip[i].blocked(tag, now) {
            return true;
        }
        let (i, tag) = self.locate(Kind::User, Some(user), None);
        self.user[i].blocked(tag, now)
    }

    /// Counts a failed integrity check.
    pub(crate) fn failed(&mut self, user: &str, ip: IpAddr, now: Instant) {
        let limits = self.limits;
        let keys = [
            (Kind::UserIp, Some(user), Some(ip), limits.per_user_ip),
            (Kind::Ip, None, Some(ip), limits.per_ip),
            (Kind::User, Some(user), None, limits.per_user),
        ];
        for (kind, user, ip, limit) in keys {
            let (i, tag) = self.locate(kind, user, ip);
            let table = match kind {
                Kind::UserIp => &mut self.user_ip,
                Kind::Ip => &mut self.ip,
                _ => &mut self.user,
            };
            count_failure(&mut table[i], tag, limit, &limits, now);
        }
    }

    /// Records a successful authentication: the pair's own count is
    /// cleared and the pair is exempt from the wider counts for a while.
    pub(crate) fn succeeded(&mut self, user: &str, ip: IpAddr, now: Instant) {
        let (i, tag) = self.locate(Kind::UserIp, Some(user), Some(ip));
        if self.user_ip[i].tag == tag {
            self.user_ip[i] = Slot::default();
        }
        let (i, tag) = self.locate(Kind::KnownGood, Some(user), Some(ip));
        self.known_good[i] = (tag, Some(now));
    }
}

fn count_failure(slot: &mut Slot, tag: u64, limit: u32, limits: &GuessLimits, now: Instant) {
    let stale = slot
        .last
        .is_none_or(|last| now.saturating_duration_since(last) >= limits.forget_after);
    if slot.tag != tag {
        // Another key holds the slot: take it unless that key is in
        // backoff (so a flood cannot wipe a count that holds someone back).
        if slot.blocked_until.is_some_and(|until| now < until) && !stale {
            return;
        }
        *slot = Slot {
            tag,
            ..Slot::default()
        };
    } else if stale {
        slot.failures = 0;
        slot.blocked_until = None;
    }
    slot.failures = slot.failures.saturating_add(1);
    slot.last = Some(now);
    if slot.failures >= limit {
        let doublings = (slot.failures - limit).min(20);
        let backoff = limits
            .backoff
            .saturating_mul(1 << doublings)
            .min(limits.max_backoff);
        slot.blocked_until = Some(now + backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn backoff_doubles_and_failures_are_forgotten() {
        let t0 = Instant::now();
        let mut g = Guesses::new(GuessLimits::default());
        let mallory = ip("198.51.100.66");
        for _ in 0..4 {
            g.failed("alice", mallory, t0);
        }
        assert!(!g.held_back("alice", mallory, t0));
        g.failed("alice", mallory, t0);
        assert!(g.held_back("alice", mallory, t0));
        assert!(!g.held_back("alice", mallory, t0 + Duration::from_secs(1)));
        g.failed("alice", mallory, t0 + Duration::from_secs(1));
        assert!(g.held_back("alice", mallory, t0 + Duration::from_millis(2900)));
        assert!(!g.held_back("alice", mallory, t0 + Duration::from_secs(3)));
        // Others are not held back: another user, or alice elsewhere.
        assert!(!g.held_back("bob", mallory, t0));
        assert!(!g.held_back("alice", ip("192.0.2.10"), t0));
        // Ten quiet minutes later, the count starts again.
        let later = t0 + Duration::from_secs(700);
        g.failed("alice", mallory, later);
        assert!(!g.held_back("alice", mallory, later));
    }

    #[test]
    fn one_ipv6_host_is_one_source() {
        let t0 = Instant::now();
        let mut g = Guesses::new(GuessLimits::default());
        for i in 0..30u16 {
            let source = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i + 1));
            g.failed(&format!("user{i}"), source, t0);
        }
        assert!(g.held_back("carol", ip("2001:db8:0:1::ffff"), t0));
        assert!(!g.held_back("carol", ip("2001:db8:0:2::1"), t0));
    }

    #[test]
    fn a_flood_of_random_names_and_addresses_takes_no_memory_and_locks_nobody_out() {
        let t0 = Instant::now();
        let mut g = Guesses::new(GuessLimits::default());
        let before = std::mem::size_of_val(&*g.user) + std::mem::size_of_val(&*g.ip);
        for i in 0..100_000u32 {
            let source = IpAddr::V4(std::net::Ipv4Addr::from(0xc633_0000 | (i & 0xffff)));
            g.failed(&format!("random{i}"), source, t0);
        }
        let after = std::mem::size_of_val(&*g.user) + std::mem::size_of_val(&*g.ip);
        assert_eq!(before, after);
        assert!(!g.held_back("alice", ip("192.0.2.10"), t0));
    }
}
