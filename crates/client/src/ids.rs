//! Transaction IDs. Requests draw fully random IDs from [`RequestIds`]:
//! the system's randomness, or a ChaCha20 stream seeded from
//! [`crate::TransactionConfig::id_seed`] so that a simulation replays
//! byte for byte. Indications on the data path take [`IndicationIds`]: a
//! random 64-bit prefix drawn once, then a counter, so that a Send
//! indication costs no system call.

use chacha20::ChaCha20Rng;
use chacha20::rand_core::{Rng, SeedableRng};
use edgeice_stun::TransactionId;

use crate::error::ClientError;

/// Where a client's request IDs come from.
pub(crate) struct RequestIds {
    /// `None`: the system's randomness, drawn per request.
    seeded: Option<ChaCha20Rng>,
}

impl std::fmt::Debug for RequestIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The generator's state would predict the next IDs: not shown.
        f.debug_struct("RequestIds")
            .field("seeded", &self.seeded.is_some())
            .finish()
    }
}

impl RequestIds {
    /// IDs from the system, or from a generator seeded with `seed`.
    pub(crate) fn new(seed: Option<u64>) -> Self {
        RequestIds {
            seeded: seed.map(ChaCha20Rng::seed_from_u64),
        }
    }

    /// Fills `bytes` with the next random bytes.
    pub(crate) fn fill(&mut self, bytes: &mut [u8]) -> Result<(), ClientError> {
        match &mut self.seeded {
            Some(rng) => {
                rng.fill_bytes(bytes);
                Ok(())
            }
            None => getrandom::fill(bytes).map_err(|_| ClientError::NoRandomness),
        }
    }

    /// A fresh random transaction ID.
    pub(crate) fn next_id(&mut self) -> Result<TransactionId, ClientError> {
        let mut id = [0u8; 12];
        self.fill(&mut id)?;
        Ok(TransactionId(id))
    }
}

/// Hands out distinct transaction IDs for indications.
#[derive(Debug, Clone)]
pub(crate) struct IndicationIds {
    prefix: [u8; 4],
    counter: u64,
}

impl IndicationIds {
    /// A generator seeded from `ids` (a fixed seed if there is no
    /// randomness: indication IDs only need to differ, not be secret).
    pub(crate) fn new(ids: &mut RequestIds) -> Self {
        let mut seed = [0u8; 12];
        let _ = ids.fill(&mut seed);
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
