//! A latency histogram of fixed size: exact below 128 ns, then 64 buckets
//! per power of two (under 1.6% error), so recording is an index and an
//! increment, and threads' histograms merge by adding counts.

/// Values below this are counted exactly.
const LINEAR: u64 = 128;
/// Buckets per power of two above [`LINEAR`] (2^6).
const SUB_BITS: u32 = 6;
/// Powers of two covered above [`LINEAR`]: 2^7 ns to 2^40 ns (~18 min).
const OCTAVES: usize = 34;
const BUCKETS: usize = LINEAR as usize + OCTAVES * (1 << SUB_BITS);

/// Counts of latencies in nanoseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
        }
    }

    /// Counts one value (clamped to the largest bucket).
    pub fn record(&mut self, nanos: u64) {
        let index = bucket(nanos).min(BUCKETS - 1);
        self.counts[index] += 1;
        self.total += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
    }

    /// How many values were recorded.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), as the upper edge of its bucket;
    /// `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(upper_edge(index));
            }
        }
        Some(upper_edge(BUCKETS - 1))
    }
}

fn bucket(nanos: u64) -> usize {
    if nanos < LINEAR {
        return nanos as usize;
    }
    let exponent = 63 - nanos.leading_zeros(); // ≥ 7
    let sub = (nanos >> (exponent - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    LINEAR as usize + (exponent as usize - 7) * (1 << SUB_BITS) + sub as usize
}

fn upper_edge(index: usize) -> u64 {
    if index < LINEAR as usize {
        return index as u64;
    }
    let above = index - LINEAR as usize;
    let exponent = (above >> SUB_BITS) as u32 + 7;
    let sub = (above & ((1 << SUB_BITS) - 1)) as u64;
    let width = 1u64 << (exponent - SUB_BITS);
    (1u64 << exponent) + sub * width + width - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_bucket_error() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 10);
        }
        for (q, exact) in [(0.5, 500_000.0), (0.99, 990_000.0), (0.999, 999_000.0)] {
            let got = h.quantile(q).map_or(0.0, |v| v as f64);
            assert!((got - exact).abs() / exact < 0.02, "q{q}: {got} vs {exact}");
        }
    }

    #[test]
    fn small_values_are_exact_and_huge_ones_clamped() {
        let mut h = Histogram::new();
        h.record(5);
        assert_eq!(h.quantile(1.0), Some(5));
        h.record(u64::MAX);
        assert_eq!(h.count(), 2);
        assert!(h.quantile(1.0).is_some_and(|v| v > 1 << 39));
        let mut merged = Histogram::new();
        merged.merge(&h);
        assert_eq!(merged.count(), 2);
        assert_eq!(Histogram::new().quantile(0.5), None);
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for v in (0..1 << 20).step_by(37) {
            let b = bucket(v);
            assert!(b >= last);
            assert!(upper_edge(b) >= v);
            last = b;
        }
    }
}
