//! Every deadline of the agent in one table (as quinn-proto's
//! `TimerTable`): `poll_timeout` is a lookup, and each deadline carries
//! why it was set ([`Timer`]), so a wake-up that looks wrong says what
//! scheduled it.
//!
//! Two kinds of entries. The agent's own deadlines (gathering complete,
//! the wait for incoming ICE-TCP connections) live only here: they are
//! set and stopped, and read back. The others summarise deadlines that
//! belong to a part — a pair's retransmission, a component's consent
//! check, a STUN or TURN client's transaction — and are refreshed from
//! those parts by `Agent::arm_timers` after every input, the one function
//! that knows where deadlines come from.

use std::fmt;
use std::time::Instant;

/// Why the agent wants to be woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// A STUN or TURN client's retransmission, refresh or give-up
    /// (server-reflexive and relayed candidates, relayed traffic).
    Gathering,
    /// Host sockets or ICE-TCP ports were added: whether gathering is
    /// complete is judged then, so sockets added in one go count as one.
    GatheringComplete,
    /// Pacing (Ta) lets the next check go: a triggered one, or the best
    /// waiting or frozen pair (including a TCP pair's retry).
    Pacing,
    /// A check's retransmission timer runs out, or its last one does and
    /// the pair fails.
    Retransmission,
    /// Regular nomination: the controlling agent's wait for a better pair
    /// than the first that worked ends.
    Nomination,
    /// A consent freshness check (RFC 7675) is due on a selected pair.
    Consent,
    /// The other side's active ICE-TCP candidates may no longer connect
    /// to our passive ones: failure may be judged.
    IncomingTcp,
    /// An ICE-TCP connection that is being opened gives up.
    TcpConnect,
}

impl Timer {
    /// Every timer, in the order ties are reported.
    pub const ALL: [Timer; 8] = [
        Timer::Gathering,
        Timer::GatheringComplete,
        Timer::Pacing,
        Timer::Retransmission,
        Timer::Nomination,
        Timer::Consent,
        Timer::IncomingTcp,
        Timer::TcpConnect,
    ];

    /// Its name in traces (`edgeice call --trace`).
    pub fn as_str(self) -> &'static str {
        match self {
            Timer::Gathering => "gathering",
            Timer::GatheringComplete => "gathering-complete",
            Timer::Pacing => "pacing",
            Timer::Retransmission => "retransmission",
            Timer::Nomination => "nomination",
            Timer::Consent => "consent",
            Timer::IncomingTcp => "incoming-tcp",
            Timer::TcpConnect => "tcp-connect",
        }
    }
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One deadline per [`Timer`].
#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    /// Sets or stops `timer`.
    pub(crate) fn put(&mut self, timer: Timer, at: Option<Instant>) {
        self.deadlines[timer as usize] = at;
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer as usize]
    }

    /// Whether `timer` is set and due at `now`.
    pub(crate) fn is_due(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| t <= now)
    }

    /// Stops `timer` if it is due at `now`; whether it was.
    pub(crate) fn expire(&mut self, timer: Timer, now: Instant) -> bool {
        let due = self.is_due(timer, now);
        if due {
            self.stop(timer);
        }
        due
    }

    /// The earliest deadline and its reason.
    pub(crate) fn next(&self) -> Option<(Instant, Timer)> {
        Timer::ALL
            .iter()
            .filter_map(|&timer| self.get(timer).map(|t| (t, timer)))
            .min_by_key(|&(t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_earliest_deadline_comes_with_its_reason() {
        let now = Instant::now();
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(Timer::Consent, now + Duration::from_secs(5));
        table.set(Timer::Pacing, now + Duration::from_millis(20));
        assert_eq!(
            table.next(),
            Some((now + Duration::from_millis(20), Timer::Pacing))
        );
        assert!(table.expire(Timer::Pacing, now + Duration::from_millis(20)));
        assert_eq!(table.next().map(|(_, t)| t), Some(Timer::Consent));
    }
}
