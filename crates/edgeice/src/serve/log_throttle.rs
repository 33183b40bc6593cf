//! Warnings that a flood would repeat thousands of times a second (accept
//! failures, refused connections, relay sockets that cannot be bound) are
//! written at most once per interval, with the count of those left out.

use std::time::{Duration, Instant};

/// Lets one line through per interval and counts the others.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    next: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    /// At most one line per `interval`.
    pub const fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            next: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were
    /// left out since the last one; `None` to leave this one out.
    pub fn ready(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|next| now < next) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + self.interval);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_left_out() {
        let mut throttle = LogThrottle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(throttle.ready(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(throttle.ready(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(throttle.ready(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(throttle.ready(t0 + Duration::from_secs(11)), None);
    }
}
