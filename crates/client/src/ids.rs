//! Transaction IDs for indications on the data path: a random 64-bit prefix
//! drawn once, then a counter, so that a Send indication costs no system
//! call. Requests draw fully random IDs
//! ([`crate::transaction::random_transaction_id`]).

use edgeice_stun::TransactionId;

/// Hands out distinct transaction IDs for indications.
#[derive(Debug, Clone)]
pub(crate) struct IndicationIds {
    prefix: [u8; 4],
    counter: u64,
}

impl IndicationIds {
    /// A generator seeded from the system's randomness (a fixed seed if
    /// there is none: indication IDs only need to differ, not be secret).
    pub(crate) fn new() -> Self {
        let mut seed = [0u8; 12];
        let _ = getrandom::fill(&mut seed);
        let [p0, p1, p2, p3, c @ ..] = seed;
        IndicationIds {
            prefix: [p0, p1, p2, p3],
            counter: u64::from_be_bytes(c),
        }
    }

    /// The next ID.
    pub(crate) fn next_id(&mut self) -> TransactionId {
        self.counter = self.counter.wrapping_add(1);
        let mut id = [0u8; 12];
        id[..4].copy_from_slice(&self.prefix);
        id[4..].copy_from_slice(&self.counter.to_be_bytes());
        TransactionId(id)
    }
}
