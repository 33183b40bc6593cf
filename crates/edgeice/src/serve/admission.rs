//! Which TCP/TLS connections are let in: at most so many at once in total
//! and from one IP address, so that idle connections cannot use up the
//! files the relays need. A connection is counted from its accept (TLS
//! handshake included) until its task ends.
//!
//! At the total limit a newcomer is not simply refused, or a few hundred
//! idle connections would lock every TCP client out: the oldest connection
//! that holds no allocation makes room for it instead. A newcomer is the
//! newest of all, so a well-behaved client has its round trip to allocate
//! before it could be the one to go, while an attacker's idle connections
//! are taken first. Only the per-IP limit refuses outright.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};

use edgeice_server::FiveTuple;
use tokio::sync::Notify;

use super::driver::lock;

/// The limits and the connections they count.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// Only clients with a connection open: at most `max_total` entries.
    per_ip: HashMap<IpAddr, usize>,
    /// Connections that may make room for a newcomer, oldest first. Entries
    /// of ended connections are dropped as they come to the front, and
    /// those of connections found holding an allocation leave for good.
    evictable: VecDeque<Weak<Connection>>,
}

/// Why a connection was not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-tcp-connections` are open and every one holds an allocation.
    Total(usize),
    /// `--max-tcp-connections-per-ip` are open from this address.
    PerIp(usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Total(n) => write!(
                f,
                "{n} TCP/TLS connections open, all with allocations (--max-tcp-connections)"
            ),
            Refusal::PerIp(n) => write!(
                f,
                "{n} TCP/TLS connections open from this address (--max-tcp-connections-per-ip)"
            ),
        }
    }
}

/// What the limits know of one connection.
#[derive(Debug)]
pub struct Connection {
    five_tuple: FiveTuple,
    /// [`OPEN`], [`KEPT`] or [`EVICTED`]; kept and evicted are final, so
    /// a connection kept as it is chosen is one or the other, never both.
    state: AtomicU8,
    close: Notify,
}

/// May be evicted.
const OPEN: u8 = 0;
/// Never to make room, though its own 5-tuple holds no allocation: an
/// RFC 6062 data connection.
const KEPT: u8 = 1;
/// Chosen to make room: closing.
const EVICTED: u8 = 2;

impl Connection {
    /// Never evict this connection; false if it was chosen already.
    pub fn keep(&self) -> bool {
        self.settle(KEPT) || self.state.load(Ordering::Acquire) == KEPT
    }

    /// Moves an open connection to `state`; false if it was not open.
    fn settle(&self, state: u8) -> bool {
        self.state
            .compare_exchange(OPEN, state, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn is_evicted(&self) -> bool {
        self.state.load(Ordering::Acquire) == EVICTED
    }

    /// Resolves when the connection has been chosen to make room.
    pub async fn evicted(&self) {
        while !self.is_evicted() {
            self.close.notified().await;
        }
    }
}

/// One connection let in; it stops counting when dropped.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<ConnectionLimits>,
    connection: Arc<Connection>,
}

impl Admitted {
    /// The connection, to wait for its eviction.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }
}

impl ConnectionLimits {
    /// Limits of `max_total` connections, `max_per_ip` from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Counts a connection, making room at the total limit by evicting the
    /// oldest one for which `has_allocation` is false, or says which limit
    /// it would break.
    pub fn admit(
        self: &Arc<Self>,
        five_tuple: FiveTuple,
        has_allocation: impl Fn(&FiveTuple) -> bool,
    ) -> Result<Admitted, Refusal> {
        let ip = client_key(five_tuple.client.ip());
        let mut counts = lock(&self.counts);
        if counts.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(Refusal::PerIp(self.max_per_ip));
        }
        if counts.total >= self.max_total && !counts.evict_one(&has_allocation) {
            return Err(Refusal::Total(self.max_total));
        }
        *counts.per_ip.entry(ip).or_insert(0) += 1;
        counts.total += 1;
        let connection = Arc::new(Connection {
            five_tuple,
            state: AtomicU8::new(OPEN),
            close: Notify::new(),
        });
        counts.evictable.push_back(Arc::downgrade(&connection));
        // Entries of ended connections behind a long-lived one at the
        // front would otherwise pile up: sweep them once they outnumber
        // the open connections (amortised, never per packet).
        if counts.evictable.len() > 2 * counts.total + 64 {
            counts.evictable.retain(|c| {
                c.upgrade()
                    .is_some_and(|c| c.state.load(Ordering::Acquire) == OPEN)
            });
        }
        Ok(Admitted {
            limits: self.clone(),
            connection,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        lock(&self.counts).total
    }
}

impl Counts {
    /// Tells the oldest connection without an allocation to close. Its
    /// file stays open until its task sees that, a moment later, so the
    /// total may pass the limit by the evictions under way.
    fn evict_one(&mut self, has_allocation: &impl Fn(&FiveTuple) -> bool) -> bool {
        while let Some(candidate) = self.evictable.pop_front() {
            let Some(connection) = candidate.upgrade() else {
                continue;
            };
            if connection.state.load(Ordering::Acquire) != OPEN
                || has_allocation(&connection.five_tuple)
            {
                continue;
            }
            if connection.settle(EVICTED) {
                connection.close.notify_one();
                return true;
            }
        }
        false
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = lock(&self.limits.counts);
        counts.total = counts.total.saturating_sub(1);
        let ip = client_key(self.connection.five_tuple.client.ip());
        if let Some(n) = counts.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&ip);
            }
        }
        // Ended connections are skipped when they reach the front; here
        // the front is kept clean so that the queue does not outgrow the
        // connections open.
        let this = Arc::as_ptr(&self.connection);
        while counts
            .evictable
            .front()
            .is_some_and(|c| c.strong_count() == 0 || c.as_ptr() == this)
        {
            counts.evictable.pop_front();
        }
    }
}

/// Whom a connection is counted against: an IPv4 address (also when
/// written IPv4-mapped), or an IPv6 /64, which one host commonly has
/// whole. Other IPv6 forms that embed an IPv4 address (6to4, Teredo,
/// ISATAP...) are chosen by their sender and count as IPv6: counted as the
/// IPv4 address they name, they would spend someone else's share.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeice_server::Transport;

    fn from(ip: &str, port: u16) -> FiveTuple {
        FiveTuple {
            transport: Transport::Tcp,
            client: std::net::SocketAddr::new(ip.parse().unwrap(), port),
            server: "192.0.2.100:3478".parse().unwrap(),
        }
    }

    #[test]
    fn counts_per_ip_and_frees_on_drop() {
        let limits = ConnectionLimits::new(10, 2);
        let none = |_: &FiveTuple| false;
        let first = limits.admit(from("192.0.2.1", 1), none).unwrap();
        let _second = limits.admit(from("192.0.2.1", 2), none).unwrap();
        // The same address in IPv6's mapped form is the same client.
        let mapped = from("::ffff:192.0.2.1", 3);
        assert_eq!(limits.admit(mapped, none).unwrap_err(), Refusal::PerIp(2));
        drop(first);
        assert_eq!(limits.open(), 1);
        let _again = limits.admit(from("192.0.2.1", 4), none).unwrap();
    }

    #[test]
    fn the_oldest_connection_without_an_allocation_makes_room() {
        let limits = ConnectionLimits::new(3, 10);
        let allocated = from("192.0.2.1", 1);
        let has_allocation = |f: &FiveTuple| *f == allocated;
        let with_allocation = limits.admit(allocated, has_allocation).unwrap();
        let idle_old = limits.admit(from("192.0.2.2", 1), has_allocation).unwrap();
        let idle_new = limits.admit(from("192.0.2.3", 1), has_allocation).unwrap();
        let newcomer = limits.admit(from("192.0.2.4", 1), has_allocation).unwrap();
        assert!(idle_old.connection.is_evicted());
        assert!(!idle_new.connection.is_evicted());
        assert!(!with_allocation.connection.is_evicted());
        drop(idle_old);
        let _next = limits.admit(from("192.0.2.5", 1), has_allocation).unwrap();
        assert!(idle_new.connection.is_evicted());
        drop(idle_new);
        let _last = limits.admit(from("192.0.2.6", 1), has_allocation).unwrap();
        assert!(newcomer.connection.is_evicted());
        drop(newcomer);
        drop(_next);
        // Only allocations left besides the newest: refused.
        let everyone = |_: &FiveTuple| true;
        let _full = limits.admit(from("192.0.2.7", 1), everyone).unwrap();
        assert_eq!(
            limits.admit(from("192.0.2.8", 1), everyone).unwrap_err(),
            Refusal::Total(3)
        );
    }

    #[test]
    fn forgets_addresses_and_connections_that_ended() {
        let limits = ConnectionLimits::new(10_000, 1);
        for i in 0..1000u16 {
            drop(limits.admit(from("10.0.0.1", i), |_| false).unwrap());
        }
        let counts = lock(&limits.counts);
        assert!(counts.per_ip.is_empty());
        assert!(counts.evictable.is_empty());
    }

    #[test]
    fn ended_connections_behind_a_long_lived_one_are_swept() {
        let limits = ConnectionLimits::new(10_000, 10_000);
        let _long_lived = limits.admit(from("192.0.2.1", 1), |_| false).unwrap();
        for i in 0..10_000u16 {
            drop(limits.admit(from("192.0.2.2", i), |_| false).unwrap());
        }
        assert!(lock(&limits.counts).evictable.len() <= 2 + 64);
    }

    #[test]
    fn ipv6_counts_per_64_and_embedded_ipv4_is_no_one_elses() {
        let limits = ConnectionLimits::new(100, 2);
        let _a = limits.admit(from("2001:db8:1:2::1", 1), |_| false).unwrap();
        let _b = limits.admit(from("2001:db8:1:2::2", 1), |_| false).unwrap();
        let other_host_same_64 = from("2001:db8:1:2:ffff::3", 1);
        assert_eq!(
            limits.admit(other_host_same_64, |_| false).unwrap_err(),
            Refusal::PerIp(2)
        );
        // An ISATAP or 6to4 address naming 192.0.2.9 does not spend its share.
        let _v4a = limits.admit(from("192.0.2.9", 1), |_| false).unwrap();
        let _isatap = limits
            .admit(from("2001:db8:9::5efe:c000:209", 1), |_| false)
            .unwrap();
        let _sixtofour = limits
            .admit(from("2002:c000:209::1", 1), |_| false)
            .unwrap();
        let _v4b = limits.admit(from("192.0.2.9", 2), |_| false).unwrap();
    }

    #[test]
    fn a_kept_connection_is_never_evicted() {
        let limits = ConnectionLimits::new(1, 10);
        let data = limits.admit(from("192.0.2.1", 1), |_| false).unwrap();
        assert!(data.connection().keep());
        assert_eq!(
            limits.admit(from("192.0.2.2", 1), |_| false).unwrap_err(),
            Refusal::Total(1)
        );
        assert!(!data.connection().is_evicted());
    }

    #[tokio::test]
    async fn an_evicted_connection_hears_it() {
        let limits = ConnectionLimits::new(1, 10);
        let old = limits.admit(from("192.0.2.1", 1), |_| false).unwrap();
        let _new = limits.admit(from("192.0.2.2", 1), |_| false).unwrap();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            old.connection().evicted(),
        )
        .await
        .expect("evicted");
    }
}
