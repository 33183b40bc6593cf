//! Durations counted in fixed buckets: plain integers a core adds to when
//! something ends, summed over cores when metrics are read. No lock and no
//! allocation: observing is a search in a short table and two additions.

use std::marker::PhantomData;
use std::time::Duration;

/// Most buckets a histogram has, the open-ended last one included.
const MAX_BUCKETS: usize = 16;

/// The upper bounds of a histogram's buckets.
pub trait Buckets {
    /// Upper bounds, ascending, at most 15: a last bucket above them all
    /// (`+Inf`) is added.
    const BOUNDS: &'static [Duration];
}

/// How long allocations lived, from the Allocate success to their end
/// (expiry, Refresh with LIFETIME 0, the connection closed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LifetimeBuckets;

impl Buckets for LifetimeBuckets {
    const BOUNDS: &'static [Duration] = &[
        Duration::from_secs(1),
        Duration::from_secs(10),
        Duration::from_secs(30),
        Duration::from_secs(60),
        Duration::from_secs(5 * 60),
        Duration::from_secs(10 * 60),
        Duration::from_secs(30 * 60),
        Duration::from_secs(3600),
        Duration::from_secs(2 * 3600),
        Duration::from_secs(4 * 3600),
        Duration::from_secs(8 * 3600),
        Duration::from_secs(24 * 3600),
    ];
}

/// How long an Allocate took, from the authenticated request reaching the
/// core to its success answer (the relay socket bound in between).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyBuckets;

impl Buckets for LatencyBuckets {
    const BOUNDS: &'static [Duration] = &[
        Duration::from_micros(25),
        Duration::from_micros(50),
        Duration::from_micros(100),
        Duration::from_micros(250),
        Duration::from_micros(500),
        Duration::from_millis(1),
        Duration::from_micros(2500),
        Duration::from_millis(5),
        Duration::from_millis(10),
        Duration::from_millis(25),
        Duration::from_millis(50),
        Duration::from_millis(100),
        Duration::from_millis(250),
        Duration::from_secs(1),
    ];
}

/// Observations of a duration, counted per bucket of `B`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram<B> {
    /// Observations per bucket (not cumulative); index `B::BOUNDS.len()`
    /// is the open-ended one.
    counts: [u64; MAX_BUCKETS],
    sum: Duration,
    buckets: PhantomData<B>,
}

impl<B> Default for Histogram<B> {
    fn default() -> Self {
        Histogram {
            counts: [0; MAX_BUCKETS],
            sum: Duration::ZERO,
            buckets: PhantomData,
        }
    }
}

impl<B: Buckets> Histogram<B> {
    /// Counts one observation.
    pub fn observe(&mut self, value: Duration) {
        // The first bucket whose bound is at least `value` (Prometheus's
        // buckets are "less than or equal").
        let index = B::BOUNDS.partition_point(|bound| *bound < value);
        if let Some(count) = self.counts.get_mut(index) {
            *count += 1;
        }
        self.sum = self.sum.saturating_add(value);
    }

    /// Adds `other`'s observations to these.
    pub fn absorb(&mut self, other: &Histogram<B>) {
        for (count, more) in self.counts.iter_mut().zip(other.counts) {
            *count += more;
        }
        self.sum = self.sum.saturating_add(other.sum);
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The sum of the observed durations.
    pub fn sum(&self) -> Duration {
        self.sum
    }

    /// (upper bound, observations in that bucket alone) per bucket,
    /// ascending; the last bound is `None`, for `+Inf`.
    pub fn buckets(&self) -> impl Iterator<Item = (Option<Duration>, u64)> + '_ {
        let bounds = B::BOUNDS.iter().copied().map(Some).chain([None]);
        bounds.zip(self.counts.iter().copied())
    }

    /// (upper bound, observations at most that long) per bucket, ascending
    /// and cumulative as Prometheus wants them; the last bound is `None`,
    /// for `+Inf`.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<Duration>, u64)> + '_ {
        self.buckets().scan(0u64, |total, (bound, count)| {
            *total += count;
            Some((bound, *total))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_fit_and_ascend() {
        for bounds in [LifetimeBuckets::BOUNDS, LatencyBuckets::BOUNDS] {
            assert!(bounds.len() < MAX_BUCKETS);
            assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn observations_land_in_le_buckets_and_merge() {
        let mut a = Histogram::<LifetimeBuckets>::default();
        a.observe(Duration::from_secs(1)); // on a bound: that bucket
        a.observe(Duration::from_millis(1500));
        a.observe(Duration::from_secs(400_000)); // beyond all: +Inf
        let mut b = Histogram::<LifetimeBuckets>::default();
        b.observe(Duration::ZERO);
        b.absorb(&a);
        assert_eq!(b.count(), 4);
        assert_eq!(
            b.sum(),
            Duration::from_secs(400_000) + Duration::from_millis(2500)
        );
        let buckets: Vec<_> = b.cumulative().collect();
        assert_eq!(buckets.len(), LifetimeBuckets::BOUNDS.len() + 1);
        assert_eq!(buckets[0], (Some(Duration::from_secs(1)), 2));
        assert_eq!(buckets[1], (Some(Duration::from_secs(10)), 3));
        assert_eq!(buckets.last(), Some(&(None, 4)));
        let before_inf = buckets[buckets.len() - 2].1;
        assert_eq!(before_inf, 3);
    }
}
