//! What `/healthz` and `/readyz` answer from, the gauges of open TCP/TLS
//! connections and the bytes of RFC 6062 TCP relays: plain atomics the I/O
//! tasks touch once per connection, timer tick or spliced read, never per
//! relayed datagram.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edgeice_server::Transport;

/// Whether the server takes new work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Listeners are being set up.
    Starting,
    /// Listening, with users loaded.
    Ready,
    /// Finishing what it has, taking nothing new (a drain).
    Draining,
}

/// The timers tick every second; this long without a tick means the
/// process no longer runs its loops (a shard lock held forever, a stuck
/// runtime), and `/healthz` says so.
const STALL: Duration = Duration::from_secs(10);

/// Liveness, readiness and connection counts, in [`super::driver::Shared`].
pub struct Health {
    /// When the server started; the heartbeat counts from here.
    started: Instant,
    /// Milliseconds after `started` of the timers' last tick.
    heartbeat: AtomicU64,
    readiness: AtomicU8,
    /// TCP and TLS connections open (admitted, not yet closed).
    streams: [AtomicUsize; 2],
    /// Bytes spliced between RFC 6062 data connections and their peers:
    /// to peers, to clients.
    spliced: [AtomicU64; 2],
}

impl Health {
    /// Starting, alive as of `now`.
    pub fn new(now: Instant) -> Self {
        Health {
            started: now,
            heartbeat: AtomicU64::new(0),
            readiness: AtomicU8::new(Readiness::Starting as u8),
            streams: [AtomicUsize::new(0), AtomicUsize::new(0)],
            spliced: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// The timers ran at `now`.
    pub fn beat(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.started).as_millis();
        self.heartbeat
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// `Err` with why, when the timers have not run for a while.
    pub fn alive(&self, now: Instant) -> Result<(), String> {
        let last = self.started + Duration::from_millis(self.heartbeat.load(Ordering::Relaxed));
        let silent = now.saturating_duration_since(last);
        if silent > STALL {
            return Err(format!(
                "the timers have not run for {} s",
                silent.as_secs()
            ));
        }
        Ok(())
    }

    /// Moves to `readiness` (a drain sets [`Readiness::Draining`]).
    pub fn set(&self, readiness: Readiness) {
        self.readiness.store(readiness as u8, Ordering::Relaxed);
    }

    /// The state last set.
    pub fn readiness(&self) -> Readiness {
        match self.readiness.load(Ordering::Relaxed) {
            r if r == Readiness::Ready as u8 => Readiness::Ready,
            r if r == Readiness::Draining as u8 => Readiness::Draining,
            _ => Readiness::Starting,
        }
    }

    /// Counts a TCP or TLS connection open until the guard is dropped.
    pub fn stream_open(&self, transport: Transport) -> StreamGuard<'_> {
        let counter = &self.streams[usize::from(transport == Transport::Tls)];
        counter.fetch_add(1, Ordering::Relaxed);
        StreamGuard(counter)
    }

    /// Where a splice counts its bytes: (to peer, to client).
    pub fn spliced_counters(&self) -> (&AtomicU64, &AtomicU64) {
        (&self.spliced[0], &self.spliced[1])
    }

    /// Bytes spliced so far: (to peers, to clients).
    pub fn spliced(&self) -> (u64, u64) {
        (
            self.spliced[0].load(Ordering::Relaxed),
            self.spliced[1].load(Ordering::Relaxed),
        )
    }

    /// TCP and TLS connections open now.
    pub fn streams(&self) -> (usize, usize) {
        (
            self.streams[0].load(Ordering::Relaxed),
            self.streams[1].load(Ordering::Relaxed),
        )
    }
}

/// One connection counted in [`Health::streams`].
pub struct StreamGuard<'a>(&'a AtomicUsize);

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_timers_and_readiness_are_reported() {
        let t0 = Instant::now();
        let health = Health::new(t0);
        assert!(health.alive(t0 + Duration::from_secs(5)).is_ok());
        let stalled = health.alive(t0 + Duration::from_secs(11)).unwrap_err();
        assert!(stalled.contains("11 s"), "{stalled}");
        health.beat(t0 + Duration::from_secs(10));
        assert!(health.alive(t0 + Duration::from_secs(11)).is_ok());

        assert_eq!(health.readiness(), Readiness::Starting);
        health.set(Readiness::Ready);
        assert_eq!(health.readiness(), Readiness::Ready);
        health.set(Readiness::Draining);
        assert_eq!(health.readiness(), Readiness::Draining);
    }

    #[test]
    fn connections_count_while_their_guard_lives() {
        let health = Health::new(Instant::now());
        let tcp = health.stream_open(Transport::Tcp);
        let tls = [Transport::Tls, Transport::Tls].map(|t| health.stream_open(t));
        assert_eq!(health.streams(), (1, 2));
        drop(tcp);
        drop(tls);
        assert_eq!(health.streams(), (0, 0));
    }
}
