//! The terms the programs relay under, kept in array maps user space
//! writes and the programs read: each route's deadline, and each capped
//! allocation's loan (relay.c's `deadlines`, `lent` and `spent`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use aya::maps::{Array, MapData};

use crate::FastPathError;
use crate::slots::Slots;

/// relay.c's MAX_ENTRIES: the arrays' length.
const ENTRIES: u32 = 65_536;

/// A capped allocation's loan while it has routes in the kernel.
#[derive(Debug)]
struct Loan {
    /// Its index in `lent` and `spent`.
    slot: u32,
    /// Its routes in the kernel.
    routes: usize,
    /// What `lent` holds: how far `spent` may grow.
    limit: u64,
}

/// Deadlines and loans.
pub(crate) struct Terms {
    deadlines: Array<MapData, u64>,
    lent: Array<MapData, u64>,
    spent: Array<MapData, u64>,
    deadline_slots: Slots,
    /// From 1: a route's budget 0 means no cap.
    loan_slots: Slots,
    /// Loans by allocation (client and server address of its 5-tuple).
    loans: HashMap<(SocketAddr, SocketAddr), Loan>,
}

/// A map operation's failure, as the crate reports it.
pub(crate) fn map_error(e: aya::maps::MapError) -> FastPathError {
    FastPathError::Map(e.to_string())
}

impl Terms {
    /// Takes the three arrays out of the loaded object.
    pub(crate) fn take_from(ebpf: &mut aya::Ebpf) -> Result<Terms, FastPathError> {
        let mut array = |name: &str| {
            let map = ebpf
                .take_map(name)
                .ok_or_else(|| FastPathError::Load(format!("no {name} map")))?;
            Array::try_from(map).map_err(map_error)
        };
        Ok(Terms {
            deadlines: array("deadlines")?,
            lent: array("lent")?,
            spent: array("spent")?,
            deadline_slots: Slots::new(0, ENTRIES),
            loan_slots: Slots::new(1, ENTRIES),
            loans: HashMap::new(),
        })
    }

    /// A deadline for a new route: its index.
    pub(crate) fn new_deadline(&mut self, until: Instant) -> Result<u32, FastPathError> {
        let slot = self
            .deadline_slots
            .take()
            .ok_or_else(|| FastPathError::Map("every deadline is in use".into()))?;
        if let Err(e) = self.move_deadline(slot, until) {
            self.deadline_slots.give(slot);
            return Err(e);
        }
        Ok(slot)
    }

    /// Moves the deadline at `slot` (a refresh, or a shorter lifetime).
    pub(crate) fn move_deadline(&mut self, slot: u32, until: Instant) -> Result<(), FastPathError> {
        self.deadlines
            .set(slot, kernel_time(until), 0)
            .map_err(map_error)
    }

    /// Frees the deadline at `slot`, lapsed first.
    pub(crate) fn free_deadline(&mut self, slot: u32) {
        let _ = self.deadlines.set(slot, 0, 0);
        self.deadline_slots.give(slot);
    }

    /// The loan of `client`'s allocation for one more of its routes: its
    /// index, a new one (nothing lent yet) for the first route.
    pub(crate) fn join_loan(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
    ) -> Result<u32, FastPathError> {
        if let Some(loan) = self.loans.get_mut(&(client, server)) {
            loan.routes += 1;
            return Ok(loan.slot);
        }
        let slot = self
            .loan_slots
            .take()
            .ok_or_else(|| FastPathError::Map("every loan slot is in use".into()))?;
        // Nothing lent, nothing spent: no route of it is in the kernel yet.
        let zeroed = self
            .lent
            .set(slot, 0, 0)
            .and_then(|()| self.spent.set(slot, 0, 0));
        if let Err(e) = zeroed {
            self.loan_slots.give(slot);
            return Err(map_error(e));
        }
        self.loans.insert(
            (client, server),
            Loan {
                slot,
                routes: 1,
                limit: 0,
            },
        );
        Ok(slot)
    }

    /// One route of `client`'s allocation left the kernel; the loan goes
    /// with the last one, and what the kernel had not spent of it is
    /// returned (0 while other routes still share it).
    pub(crate) fn leave_loan(&mut self, client: SocketAddr, server: SocketAddr) -> u64 {
        let key = (client, server);
        let Some(loan) = self.loans.get_mut(&key) else {
            return 0;
        };
        loan.routes = loan.routes.saturating_sub(1);
        if loan.routes > 0 {
            return 0;
        }
        let (slot, limit) = (loan.slot, loan.limit);
        self.loans.remove(&key);
        // Its routes are out of the maps already: nothing spends any more.
        let unspent = self
            .spent
            .get(&slot, 0)
            .map_or(0, |spent| limit.saturating_sub(spent));
        let _ = self.lent.set(slot, 0, 0);
        self.loan_slots.give(slot);
        unspent
    }

    /// Lends `client`'s allocation `bytes` more; returns what was left of
    /// the last loan (all of `bytes` when it has no loan).
    ///
    /// The programs only add to `spent`, and never past `lent`; this only
    /// reads `spent` and raises `lent` to what it read plus `bytes`. Bytes
    /// spent between the read and the write are in what is returned and
    /// come out of the new loan, so each byte is counted once.
    pub(crate) fn lend(&mut self, client: SocketAddr, server: SocketAddr, bytes: u64) -> u64 {
        let Some(loan) = self.loans.get_mut(&(client, server)) else {
            return bytes;
        };
        let Ok(spent) = self.spent.get(&loan.slot, 0) else {
            return bytes;
        };
        let left = loan.limit.saturating_sub(spent);
        let limit = spent.saturating_add(bytes);
        if self.lent.set(loan.slot, limit, 0).is_err() {
            // The old loan stands; the new bytes go back.
            return bytes;
        }
        loan.limit = limit;
        left
    }
}

/// `at` in the programs' clock, bpf_ktime_get_ns(): CLOCK_MONOTONIC in
/// nanoseconds, the clock `Instant` reads on Linux.
fn kernel_time(at: Instant) -> u64 {
    let now = Instant::now();
    let clock = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let now_ns = u64::try_from(clock.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(clock.tv_nsec).unwrap_or(0));
    let ahead = at.saturating_duration_since(now).as_nanos();
    now_ns.saturating_add(u64::try_from(ahead).unwrap_or(u64::MAX))
}
