//! Phase after the four: data through the selected pair. `--send N` sends
//! numbered probes and times their echoes; `--echo` sends back whatever
//! arrives.

use std::time::{Duration, Instant};

/// Probes start with this, then a 4-byte sequence number.
const PROBE_MAGIC: &[u8] = b"edgeice-probe ";
/// Sent after the last probe, so an `--echo` peer knows it can stop.
pub const BYE: &[u8] = b"edgeice-bye";

/// Probes sent and their echoes.
pub struct Probes {
    total: u32,
    sent: Vec<Instant>,
    rtts: Vec<Duration>,
    received: Vec<bool>,
}

impl Probes {
    /// `total` probes, none sent yet.
    pub fn new(total: u32) -> Probes {
        Probes {
            total,
            sent: Vec::new(),
            rtts: Vec::new(),
            received: Vec::new(),
        }
    }

    /// The next probe to send, if any are left.
    pub fn next(&mut self, now: Instant) -> Option<Vec<u8>> {
        let seq = u32::try_from(self.sent.len()).ok()?;
        if seq >= self.total {
            return None;
        }
        self.sent.push(now);
        self.received.push(false);
        let mut probe = PROBE_MAGIC.to_vec();
        probe.extend_from_slice(&seq.to_be_bytes());
        Some(probe)
    }

    /// Counts an echo; anything else is ignored.
    pub fn echo(&mut self, now: Instant, data: &[u8]) {
        let Some(rest) = data.strip_prefix(PROBE_MAGIC) else {
            return;
        };
        let Some(seq) = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
        else {
            return;
        };
        let seq = seq as usize;
        if let (Some(sent), Some(seen)) = (self.sent.get(seq), self.received.get_mut(seq))
            && !*seen
        {
            *seen = true;
            self.rtts.push(now.saturating_duration_since(*sent));
        }
    }

    /// Whether every probe was sent.
    pub fn all_sent(&self) -> bool {
        self.sent.len() as u64 >= u64::from(self.total)
    }

    /// Whether every probe came back.
    pub fn all_back(&self) -> bool {
        self.rtts.len() as u64 >= u64::from(self.total)
    }

    /// (sent, received, p50, max) for the report.
    pub fn summary(&self) -> (usize, usize, Option<Duration>, Option<Duration>) {
        let mut rtts = self.rtts.clone();
        rtts.sort();
        let p50 = rtts.get(rtts.len() / 2).copied();
        (self.sent.len(), rtts.len(), p50, rtts.last().copied())
    }

    /// At least 90% came back.
    pub fn passed(&self) -> bool {
        self.total > 0 && self.rtts.len() as u64 * 10 >= u64::from(self.total) * 9
    }
}
