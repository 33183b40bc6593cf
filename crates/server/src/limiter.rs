//! Rate limiting of unauthenticated answers per source IP.
//!
//! Anyone can send a request from a spoofed address and have the server
//! answer 401 to it; bounding those answers per IP keeps the server from
//! being used to flood a victim. The table has a fixed number of buckets,
//! indexed by a keyed hash of the IP, so a flood from many addresses costs
//! no memory: colliding addresses simply share a bucket.

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::Instant;

/// Buckets in the table.
const SLOTS: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f32,
    last: Option<Instant>,
}

/// A token bucket per (hashed) source IP.
#[derive(Debug)]
pub(crate) struct Limiter {
    buckets: Box<[Bucket]>,
    hasher: std::collections::hash_map::RandomState,
    per_second: f32,
    burst: f32,
}

impl Limiter {
    /// Allows `per_second` answers per IP on average, `burst` at once.
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let burst = burst.max(1) as f32;
        Limiter {
            buckets: vec![
                Bucket {
                    tokens: burst,
                    last: None
                };
                SLOTS
            ]
            .into_boxed_slice(),
            hasher: std::collections::hash_map::RandomState::new(),
            per_second: per_second as f32,
            burst,
        }
    }

    /// Whether one more answer to `ip` is allowed now; spends a token if so.
    pub(crate) fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let mut hasher = self.hasher.build_hasher();
        ip.hash(&mut hasher);
        let slot = (std::hash::Hasher::finish(&hasher) as usize) % SLOTS;
        let bucket = &mut self.buckets[slot];
        if let Some(last) = bucket.last {
            let refill = now.saturating_duration_since(last).as_secs_f32() * self.per_second;
            bucket.tokens = (bucket.tokens + refill).min(self.burst);
        }
        bucket.last = Some(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(10, 20);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let allowed = (0..100).filter(|_| limiter.allow(ip, t0)).count();
        assert_eq!(allowed, 20);
        // A second later, ten more.
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (0..100).filter(|_| limiter.allow(ip, t1)).count();
        assert_eq!(allowed, 10);
    }
}
