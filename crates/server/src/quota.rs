//! Allocation quotas, counted across every core of a process: the driver
//! may run several cores (one per shard of clients), and a user's clients
//! land on different ones, yet the limits are the server's.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use edgeice_stun::ErrorCode;

/// Allocations in use, in total and per user name. Shared (in an `Arc`)
/// by the cores of one server; touched only when allocations are made or
/// end, never on the relay path.
#[derive(Debug, Default)]
pub struct QuotaLedger {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_user: HashMap<String, usize>,
}

impl QuotaLedger {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one more allocation for `user`, unless that would pass a
    /// limit: then the error code to answer (508 server full, 486 user's
    /// quota reached).
    pub(crate) fn take(
        &self,
        user: &str,
        max_total: usize,
        max_per_user: usize,
    ) -> Result<(), u16> {
        let mut counts = self.counts();
        if counts.total >= max_total {
            return Err(ErrorCode::INSUFFICIENT_CAPACITY);
        }
        let used = counts.per_user.get(user).copied().unwrap_or(0);
        if used >= max_per_user {
            return Err(ErrorCode::ALLOCATION_QUOTA_REACHED);
        }
        counts.total += 1;
        *counts.per_user.entry(user.to_owned()).or_insert(0) += 1;
        Ok(())
    }

    /// Counts one allocation of `user` less.
    pub(crate) fn give_back(&self, user: &str) {
        let mut counts = self.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(used) = counts.per_user.get_mut(user) {
            *used = used.saturating_sub(1);
            if *used == 0 {
                counts.per_user.remove(user);
            }
        }
    }

    /// Allocations counted now (made, or being made).
    pub fn total(&self) -> usize {
        self.counts().total
    }
}
