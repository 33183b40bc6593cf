//! The agent's one source of randomness: credentials, the tie-breaker,
//! transaction IDs of checks and of its STUN/TURN clients, consent jitter.
//! A ChaCha20 stream seeded from [`crate::AgentConfig::rng_seed`] (as
//! quinn-proto's `rng_seed`), or once from the system: the same seed over
//! the same simulated network gives the same run, byte for byte.

use chacha20::ChaCha20Rng;
use chacha20::rand_core::{Rng, SeedableRng};
use edgeice_stun::TransactionId;

/// ICE characters (RFC 8445 §5.3): letters, digits, '+' and '/'.
const ICE_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A seeded cryptographic generator (ufrags, passwords and transaction IDs
/// must not be guessable off-path, RFC 8445 §5.3 and RFC 8489 §6).
pub(crate) struct Random(ChaCha20Rng);

impl std::fmt::Debug for Random {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Its state would predict the next credentials: never shown.
        f.write_str("Random")
    }
}

impl Random {
    /// A generator seeded with `seed`, or from the system's randomness.
    pub(crate) fn new(seed: Option<[u8; 32]>) -> Random {
        let seed = seed.unwrap_or_else(|| {
            let mut seed = [0u8; 32];
            // Without an OS random source nothing else works either; a
            // fixed seed still lets the agent run.
            let _ = getrandom::fill(&mut seed);
            seed
        });
        Random(ChaCha20Rng::from_seed(seed))
    }

    /// A generator of its own for a part of the agent, drawn from this one.
    pub(crate) fn fork(&mut self) -> Random {
        let mut seed = [0u8; 32];
        self.0.fill_bytes(&mut seed);
        Random(ChaCha20Rng::from_seed(seed))
    }

    /// `chars` random ICE characters.
    pub(crate) fn token(&mut self, chars: usize) -> String {
        (0..chars)
            .map(|_| {
                // 256 is a multiple of 64: no bias.
                let byte = self.0.next_u32() as u8;
                char::from(ICE_CHARS[usize::from(byte) % ICE_CHARS.len()])
            })
            .collect()
    }

    /// 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A fresh transaction ID.
    pub(crate) fn transaction_id(&mut self) -> TransactionId {
        let mut id = [0u8; 12];
        self.0.fill_bytes(&mut id);
        TransactionId(id)
    }

    /// A number in [0, 1].
    pub(crate) fn unit(&mut self) -> f64 {
        f64::from(self.0.next_u32()) / f64::from(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_values() {
        let (mut a, mut b) = (Random::new(Some([7; 32])), Random::new(Some([7; 32])));
        assert_eq!(a.token(24), b.token(24));
        assert_eq!(a.transaction_id(), b.transaction_id());
        let mut c = Random::new(Some([8; 32]));
        assert_ne!(a.next_u64(), c.next_u64());
        let token = c.token(64);
        assert!(token.bytes().all(|b| ICE_CHARS.contains(&b)));
    }
}
