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
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Only IPs with a connection open: at most `max_total` entries.
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
    /// Set when the connection must close to make room.
    evicted: AtomicBool,
    close: Notify,
    /// Set for a connection that is never to make room, though its own
    /// 5-tuple holds no allocation: an RFC 6062 data connection.
    kept: AtomicBool,
}

impl Connection {
    /// Never evict this connection.
    pub fn keep(&self) {
        self.kept.store(true, Ordering::Release);
    }

    /// Resolves when the connection has been chosen to make room.
    pub async fn evicted(&self) {
        while !self.evicted.load(Ordering::Acquire) {
            self.close.notified().await;
        }
    }
}

/// One connection let in; it stops counting when dropped.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
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
        let ip = edgeice_server::peer_policy::canonical(five_tuple.client.ip());
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
            evicted: AtomicBool::new(false),
            close: Notify::new(),
            kept: AtomicBool::new(false),
        });
        counts.evictable.push_back(Arc::downgrade(&connection));
        Ok(Admitted {
            limits: self.clone(),
            ip,
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
            if connection.evicted.load(Ordering::Acquire) || connection.kept.load(Ordering::Acquire)
            {
                continue;
            }
            if has_allocation(&connection.five_tuple) {
                continue;
            }
            connection.evicted.store(true, Ordering::Release);
            connection.close.notify_one();
            return true;
        }
        false
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = lock(&self.limits.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
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
        assert!(idle_old.connection.evicted.load(Ordering::Acquire));
        assert!(!idle_new.connection.evicted.load(Ordering::Acquire));
        assert!(!with_allocation.connection.evicted.load(Ordering::Acquire));
        drop(idle_old);
        let _next = limits.admit(from("192.0.2.5", 1), has_allocation).unwrap();
        assert!(idle_new.connection.evicted.load(Ordering::Acquire));
        drop(idle_new);
        let _last = limits.admit(from("192.0.2.6", 1), has_allocation).unwrap();
        assert!(newcomer.connection.evicted.load(Ordering::Acquire));
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
