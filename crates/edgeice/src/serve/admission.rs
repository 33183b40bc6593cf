//! Which TCP/TLS connections are let in: at most so many at once in total
//! and from one IP address, so that idle connections cannot use up the
//! files the relays need. A connection is counted from its accept (TLS
//! handshake included) until its task ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

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
}

/// Why a connection was not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-tcp-connections` are open.
    Total(usize),
    /// `--max-tcp-connections-per-ip` are open from this address.
    PerIp(usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Total(n) => write!(f, "{n} TCP/TLS connections open (--max-tcp-connections)"),
            Refusal::PerIp(n) => write!(
                f,
                "{n} TCP/TLS connections open from this address (--max-tcp-connections-per-ip)"
            ),
        }
    }
}

/// One connection let in; it stops counting when dropped.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
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

    /// Counts a connection from `ip`, or says which limit it would break.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let ip = edgeice_server::peer_policy::canonical(ip);
        let mut counts = lock(&self.counts);
        if counts.total >= self.max_total {
            return Err(Refusal::Total(self.max_total));
        }
        let from_ip = counts.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(Refusal::PerIp(self.max_per_ip));
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(Admitted {
            limits: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        lock(&self.counts).total
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_ip_and_in_total_and_frees_on_drop() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        // The same address in IPv6's mapped form is the same client.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(limits.admit(mapped).unwrap_err(), Refusal::PerIp(2));
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::Total(3));
        drop(first);
        assert_eq!(limits.open(), 2);
        let _again = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::Total(3));
    }

    #[test]
    fn forgets_addresses_with_nothing_open() {
        let limits = ConnectionLimits::new(10_000, 1);
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            drop(limits.admit(ip).unwrap());
        }
        assert!(lock(&limits.counts).per_ip.is_empty());
    }
}
