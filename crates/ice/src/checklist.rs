//! Candidate pairs and their check states (RFC 8445 §6.1.2): pairing,
//! ordering, freezing, and the one check each pair may have in flight.

use std::time::{Duration, Instant};

use edgeice_stun::TransactionId;

use crate::event::CheckState;

/// RFC 8445 §6.1.2.3: `2^32 * min(G, D) + 2 * max(G, D) + (G > D ? 1 : 0)`,
/// G the controlling agent's candidate priority, D the controlled one's.
pub(crate) fn pair_priority(controlling: u32, controlled: u32) -> u64 {
    let (g, d) = (u64::from(controlling), u64::from(controlled));
    (g.min(d) << 32) + 2 * g.max(d) + u64::from(g > d)
}

/// A check sent and not yet answered.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub id: TransactionId,
    /// The request as sent, for retransmissions.
    pub request: Vec<u8>,
    pub transmissions: u32,
    pub last_sent: Instant,
    pub next_at: Instant,
    pub rto: Duration,
    pub use_candidate: bool,
    /// The role the request was sent in (a 487 answer switches it).
    pub controlling: bool,
    /// A consent freshness check (RFC 7675): not retransmitted, and its
    /// loss does not fail the pair.
    pub consent: bool,
}

/// One local candidate checked against one remote candidate.
#[derive(Debug)]
pub(crate) struct Pair {
    /// Index into the agent's local candidates (a host or relayed one:
    /// what checks are sent from).
    pub local: usize,
    /// Index into the agent's remote candidates.
    pub remote: usize,
    pub component: u16,
    pub foundation: String,
    pub priority: u64,
    pub state: CheckState,
    /// The local candidate the other side saw us as, once a check worked
    /// (the "valid pair" of RFC 8445 §7.2.5.3.2).
    pub valid_local: Option<usize>,
    pub nominated: bool,
    /// Controlling: the next check carries USE-CANDIDATE. Controlled: the
    /// other side nominated the pair before it worked; nominate on success.
    pub nominate_next: bool,
    pub in_flight: Option<InFlight>,
    /// Checks replaced by a newer one (a triggered check on a pair in
    /// progress, RFC 8445 §7.3.1.4): no longer retransmitted, but their
    /// answers still count. The last few only.
    pub cancelled: Vec<InFlight>,
    pub rtt: Option<Duration>,
    /// A TCP pair whose connection could not be opened is tried again,
    /// not before this (the other side may not have let it in yet: an
    /// RFC 6062 relay accepts peers only once its permission is installed).
    pub retry_at: Option<Instant>,
    /// Connections opened for this pair so far.
    pub connect_attempts: u8,
    /// Last time a check on this pair was answered (consent freshness).
    pub last_answer: Option<Instant>,
}

impl Pair {
    pub(crate) fn new(
        local: usize,
        remote: usize,
        component: u16,
        foundation: String,
        priority: u64,
    ) -> Pair {
        Pair {
            local,
            remote,
            component,
            foundation,
            priority,
            state: CheckState::Frozen,
            valid_local: None,
            nominated: false,
            nominate_next: false,
            in_flight: None,
            cancelled: Vec::new(),
            rtt: None,
            retry_at: None,
            connect_attempts: 0,
            last_answer: None,
        }
    }

    /// Whether checks of this pair may still change the outcome.
    pub(crate) fn is_pending(&self) -> bool {
        matches!(
            self.state,
            CheckState::Frozen | CheckState::Waiting | CheckState::InProgress
        )
    }
}

/// How many cancelled checks a pair still accepts answers to.
pub(crate) const MAX_CANCELLED: usize = 4;

/// The next pair to check when pacing allows (RFC 8445 §6.1.4.2): the
/// highest-priority waiting pair, else the highest-priority frozen one
/// (leaving out pairs whose retry is not due at `now`).
pub(crate) fn next_ordinary_check(pairs: &[Pair], now: Instant) -> Option<usize> {
    let best = |state: CheckState| {
        pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.state == state && p.retry_at.is_none_or(|t| t <= now))
            .max_by_key(|(_, p)| p.priority)
            .map(|(i, _)| i)
    };
    best(CheckState::Waiting).or_else(|| best(CheckState::Frozen))
}

/// RFC 8445 §6.1.2.6 for one stream: for each foundation with no pair
/// waiting, checking or done, the pair of the lowest component (then the
/// highest priority) becomes waiting.
pub(crate) fn unfreeze_initial(pairs: &mut [Pair]) {
    let mut foundations: Vec<&str> = Vec::new();
    let active: Vec<String> = pairs
        .iter()
        .filter(|p| p.state != CheckState::Frozen)
        .map(|p| p.foundation.clone())
        .collect();
    let mut chosen: Vec<usize> = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        if pair.state != CheckState::Frozen
            || active.contains(&pair.foundation)
            || foundations.contains(&pair.foundation.as_str())
        {
            continue;
        }
        foundations.push(&pair.foundation);
        let best = pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.foundation == pair.foundation && p.state == CheckState::Frozen)
            .min_by_key(|(_, p)| (p.component, std::cmp::Reverse(p.priority)))
            .map(|(j, _)| j)
            .unwrap_or(i);
        chosen.push(best);
    }
    for i in chosen {
        pairs[i].state = CheckState::Waiting;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_priority_favours_the_controlling_side_on_ties() {
        assert_eq!(pair_priority(10, 10), (10 << 32) + 20);
        assert_eq!(pair_priority(11, 10), (10 << 32) + 22 + 1);
        assert_eq!(pair_priority(10, 11), (10 << 32) + 22);
    }

    #[test]
    fn one_pair_per_foundation_starts_waiting() {
        let mut pairs = vec![
            Pair::new(0, 0, 2, "a".into(), 5),
            Pair::new(0, 1, 1, "a".into(), 4),
            Pair::new(1, 0, 1, "b".into(), 9),
        ];
        unfreeze_initial(&mut pairs);
        let states: Vec<_> = pairs.iter().map(|p| p.state).collect();
        assert_eq!(
            states,
            [CheckState::Frozen, CheckState::Waiting, CheckState::Waiting]
        );
        assert_eq!(next_ordinary_check(&pairs, Instant::now()), Some(2));
    }
}
