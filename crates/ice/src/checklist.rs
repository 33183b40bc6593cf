//! The check list (RFC 8445 §6.1.2): candidate pairs and their check
//! states, ordering, freezing, the one check each pair may have in flight,
//! the triggered-check queue and pacing. The pairs' fields are private:
//! their transitions are the only writers.

use std::collections::VecDeque;
use std::ops::{Index, IndexMut};
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

/// Where a pair stands with nomination (RFC 8445 §8): one state instead
/// of two booleans that could disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum NominationState {
    /// Not nominated, nothing asked.
    #[default]
    None,
    /// Controlling: the next check carries USE-CANDIDATE. Controlled: the
    /// other side nominated the pair before it worked; it is nominated
    /// when its check succeeds.
    Asked,
    /// Nominated: selectable once it works (and it does, unless it failed
    /// later).
    Nominated,
}

/// One local candidate checked against one remote candidate. Its fields
/// are private: the check list's transitions below are the only writers.
#[derive(Debug)]
pub(crate) struct Pair {
    /// Index into the agent's local candidates (a host or relayed one:
    /// what checks are sent from).
    local: usize,
    /// Index into the agent's remote candidates.
    remote: usize,
    component: u16,
    foundation: String,
    priority: u64,
    state: CheckState,
    /// The local candidate the other side saw us as, once a check worked
    /// (the "valid pair" of RFC 8445 §7.2.5.3.2).
    valid_local: Option<usize>,
    nomination: NominationState,
    in_flight: Option<InFlight>,
    /// Checks replaced by a newer one (a triggered check on a pair in
    /// progress, RFC 8445 §7.3.1.4): no longer retransmitted, but their
    /// answers still count. The last few only.
    cancelled: Vec<InFlight>,
    rtt: Option<Duration>,
    /// A TCP pair whose connection could not be opened is tried again,
    /// not before this (the other side may not have let it in yet: an
    /// RFC 6062 relay accepts peers only once its permission is installed).
    retry_at: Option<Instant>,
    /// Connections opened for this pair so far.
    connect_attempts: u8,
    /// Last time a check on this pair was answered (consent freshness).
    last_answer: Option<Instant>,
}

/// What a check's retransmission timer running out comes to.
pub(crate) enum Retransmission {
    /// Nothing was due.
    NotDue,
    /// A consent check went unanswered: dropped, it is not retransmitted.
    ConsentDropped,
    /// The last transmission went unanswered: `sent` in all. The pair
    /// failed if it was in progress or nominating.
    GaveUp { sent: u32, failed: bool },
    /// Send these bytes again (hand them back with
    /// [`Pair::resent`]).
    Resend(Vec<u8>),
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
            nomination: NominationState::None,
            in_flight: None,
            cancelled: Vec::new(),
            rtt: None,
            retry_at: None,
            connect_attempts: 0,
            last_answer: None,
        }
    }

    pub(crate) fn local(&self) -> usize {
        self.local
    }
    pub(crate) fn remote(&self) -> usize {
        self.remote
    }
    pub(crate) fn component(&self) -> u16 {
        self.component
    }
    pub(crate) fn foundation(&self) -> &str {
        &self.foundation
    }
    pub(crate) fn priority(&self) -> u64 {
        self.priority
    }
    pub(crate) fn state(&self) -> CheckState {
        self.state
    }
    pub(crate) fn valid_local(&self) -> Option<usize> {
        self.valid_local
    }
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.rtt
    }
    pub(crate) fn last_answer(&self) -> Option<Instant> {
        self.last_answer
    }
    pub(crate) fn in_flight(&self) -> Option<&InFlight> {
        self.in_flight.as_ref()
    }
    pub(crate) fn is_nominated(&self) -> bool {
        self.nomination == NominationState::Nominated
    }
    /// Whether a nomination was asked for and not yet carried out.
    pub(crate) fn nomination_asked(&self) -> bool {
        self.nomination == NominationState::Asked
    }

    /// Whether checks of this pair may still change the outcome.
    pub(crate) fn is_pending(&self) -> bool {
        matches!(
            self.state,
            CheckState::Frozen | CheckState::Waiting | CheckState::InProgress
        )
    }

    /// Whether a check with transaction `id` is this pair's (in flight or
    /// cancelled).
    pub(crate) fn sent(&self, id: TransactionId) -> bool {
        self.in_flight.as_ref().is_some_and(|f| f.id == id)
            || self.cancelled.iter().any(|f| f.id == id)
    }

    /// Takes the check with transaction `id` out: its answer arrived.
    pub(crate) fn take_answered(&mut self, id: TransactionId) -> Option<InFlight> {
        if self.in_flight.as_ref().is_some_and(|f| f.id == id) {
            return self.in_flight.take();
        }
        let index = self.cancelled.iter().position(|f| f.id == id)?;
        Some(self.cancelled.remove(index))
    }

    pub(crate) fn set_priority(&mut self, priority: u64) {
        self.priority = priority;
    }

    /// Frozen → Waiting.
    pub(crate) fn unfreeze(&mut self) {
        if self.state == CheckState::Frozen {
            self.state = CheckState::Waiting;
        }
    }

    /// To be checked (again): a triggered check, or a role conflict's.
    pub(crate) fn wait(&mut self) {
        self.state = CheckState::Waiting;
    }

    /// The pair cannot work: failed, and a nomination asked for is void.
    pub(crate) fn fail(&mut self) {
        self.state = CheckState::Failed;
        self.forget_nomination_request();
    }

    /// A check of it goes out: the previous one, if any, is cancelled
    /// (its answer still counts); an ordinary check puts the pair in
    /// progress. Whether its state changed.
    pub(crate) fn start_check(&mut self, check: InFlight) -> bool {
        if let Some(previous) = self.in_flight.take()
            && !previous.consent
            && !previous.request.is_empty()
        {
            if self.cancelled.len() >= MAX_CANCELLED {
                self.cancelled.remove(0);
            }
            self.cancelled.push(previous);
        }
        let ordinary = !check.consent;
        self.in_flight = Some(check);
        if ordinary && self.state != CheckState::Succeeded {
            let was = self.state;
            self.state = CheckState::InProgress;
            return was != CheckState::InProgress;
        }
        false
    }

    /// Forgets the check in flight (a stale consent check, a connection
    /// that closed).
    pub(crate) fn drop_check(&mut self) {
        self.in_flight = None;
    }

    /// Runs the retransmission timer of the check in flight at `now`.
    pub(crate) fn retransmit(
        &mut self,
        now: Instant,
        max_transmissions: u32,
        max_rto: Duration,
    ) -> Retransmission {
        let Some(in_flight) = &mut self.in_flight else {
            return Retransmission::NotDue;
        };
        if in_flight.next_at > now {
            return Retransmission::NotDue;
        }
        if in_flight.consent {
            self.in_flight = None;
            return Retransmission::ConsentDropped;
        }
        if in_flight.transmissions >= max_transmissions {
            let sent = in_flight.transmissions;
            let nominating = in_flight.use_candidate;
            self.in_flight = None;
            self.forget_nomination_request();
            // A pair that stops answering its nomination is no use either.
            let failed = self.state == CheckState::InProgress || nominating;
            if failed {
                self.state = CheckState::Failed;
            }
            return Retransmission::GaveUp { sent, failed };
        }
        in_flight.transmissions += 1;
        in_flight.last_sent = now;
        in_flight.rto = (in_flight.rto * 2).min(max_rto);
        in_flight.next_at = now + in_flight.rto;
        Retransmission::Resend(std::mem::take(&mut in_flight.request))
    }

    /// The bytes [`Retransmission::Resend`] lent, back for the next time.
    pub(crate) fn resent(&mut self, request: Vec<u8>) {
        if let Some(in_flight) = &mut self.in_flight {
            in_flight.request = request;
        }
    }

    /// A check of it was answered at `now` (consent freshness counts it).
    pub(crate) fn answered(&mut self, now: Instant) {
        self.last_answer = Some(now);
    }

    /// Its check succeeded: the valid pair's local candidate, the round
    /// trip, and whether that makes it nominated (a check that carried
    /// USE-CANDIDATE, or, controlled, a nomination that came first).
    pub(crate) fn succeed(
        &mut self,
        valid_local: usize,
        rtt: Duration,
        use_candidate: bool,
        controlling: bool,
    ) {
        self.valid_local = Some(valid_local);
        self.rtt = Some(rtt);
        self.state = CheckState::Succeeded;
        if use_candidate || (!controlling && self.nomination_asked()) {
            self.nomination = NominationState::Nominated;
        }
        self.forget_nomination_request();
    }

    /// A lite agent's pair: a check that reached it proves it. Whether it
    /// was not known to work before.
    pub(crate) fn proven_by_check(&mut self, now: Instant) -> bool {
        let new = self.state != CheckState::Succeeded;
        self.state = CheckState::Succeeded;
        self.last_answer = Some(now);
        new
    }

    /// Nominated now (the other side's USE-CANDIDATE on a pair that
    /// works). Whether it was not before.
    pub(crate) fn nominate(&mut self) -> bool {
        let new = !self.is_nominated();
        self.nomination = NominationState::Nominated;
        new
    }

    /// Controlling: nominate it with the next check. Controlled: the
    /// other side nominated it before it worked.
    pub(crate) fn ask_nomination(&mut self) {
        if self.nomination == NominationState::None {
            self.nomination = NominationState::Asked;
        }
    }

    /// A nomination asked for no longer holds (the pair failed, the role
    /// changed).
    pub(crate) fn forget_nomination_request(&mut self) {
        if self.nomination == NominationState::Asked {
            self.nomination = NominationState::None;
        }
    }

    /// A TCP pair whose connection failed: tried again (after one, two,
    /// three seconds) if its check never went out and it has tries left
    /// (`max`). Whether it will be.
    pub(crate) fn retry_connection(&mut self, now: Instant, max: u8) -> bool {
        if self.state != CheckState::InProgress || self.connect_attempts >= max {
            return false;
        }
        self.connect_attempts += 1;
        self.state = CheckState::Waiting;
        self.retry_at = Some(now + Duration::from_secs(u64::from(self.connect_attempts)));
        true
    }
}

/// The pairs of one stream, the queue of triggered checks and the pacing
/// of new checks (one every Ta). Pairs are named by their index, stable
/// until [`CheckList::clear`].
#[derive(Debug)]
pub(crate) struct CheckList {
    pairs: Vec<Pair>,
    /// Pairs to check before any ordinary check (RFC 8445 §7.3.1.4).
    triggered: VecDeque<usize>,
    /// Not before this may the next check go.
    next_check: Instant,
}

impl Index<usize> for CheckList {
    type Output = Pair;
    fn index(&self, pair: usize) -> &Pair {
        &self.pairs[pair]
    }
}

impl IndexMut<usize> for CheckList {
    fn index_mut(&mut self, pair: usize) -> &mut Pair {
        &mut self.pairs[pair]
    }
}

impl CheckList {
    pub(crate) fn new(now: Instant) -> CheckList {
        CheckList {
            pairs: Vec::new(),
            triggered: VecDeque::new(),
            next_check: now,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pairs.len()
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Pair> {
        self.pairs.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, Pair> {
        self.pairs.iter_mut()
    }

    /// Adds a pair; its index.
    pub(crate) fn push(&mut self, pair: Pair) -> usize {
        self.pairs.push(pair);
        self.pairs.len() - 1
    }

    /// Forgets every pair (an ICE restart); checks may go at once.
    pub(crate) fn clear(&mut self, now: Instant) {
        self.pairs.clear();
        self.triggered.clear();
        self.next_check = now;
    }

    /// Queues a triggered check of `pair` (once).
    pub(crate) fn trigger(&mut self, pair: usize) {
        if !self.triggered.contains(&pair) {
            self.triggered.push_back(pair);
        }
    }

    /// Takes `pair` off the triggered-check queue (its check is going out
    /// now, outside the queue: a nomination).
    pub(crate) fn untrigger(&mut self, pair: usize) {
        self.triggered.retain(|&p| p != pair);
    }

    pub(crate) fn has_triggered(&self) -> bool {
        !self.triggered.is_empty()
    }

    /// Checks may go from `now` on, if pacing held them later.
    pub(crate) fn pace_from(&mut self, now: Instant) {
        self.next_check = self.next_check.max(now);
    }

    /// A check went out at `now` outside the pacing (a nomination): the
    /// next one waits a full `ta` after it.
    pub(crate) fn paced_at(&mut self, now: Instant, ta: Duration) {
        self.next_check = self.next_check.max(now + ta);
    }

    /// When pacing has a check to send: when it allows the next one, or
    /// later when the only pairs left wait for a retry.
    pub(crate) fn next_check_due(&self) -> Option<Instant> {
        if !self.triggered.is_empty() {
            return Some(self.next_check);
        }
        self.pairs
            .iter()
            .filter(|p| matches!(p.state, CheckState::Waiting | CheckState::Frozen))
            .map(|p| {
                p.retry_at
                    .map_or(self.next_check, |t| t.max(self.next_check))
            })
            .min()
    }

    /// The pair to check now, if pacing allows one: a triggered check
    /// first (RFC 8445 §6.1.4.2; a pair that already works only to
    /// nominate it, by the controlling agent), else the best waiting or
    /// frozen pair. Taking it starts the next interval of `ta`.
    pub(crate) fn next_check(
        &mut self,
        now: Instant,
        ta: Duration,
        controlling: bool,
    ) -> Option<usize> {
        if self.next_check_due().is_none_or(|t| t > now) {
            return None;
        }
        let mut next = None;
        while let Some(pair) = self.triggered.pop_front() {
            let Some(p) = self.pairs.get(pair) else {
                continue;
            };
            if p.state != CheckState::Succeeded || p.nomination_asked() && controlling {
                next = Some(pair);
                break;
            }
        }
        let pair = next.or_else(|| next_ordinary_check(&self.pairs, now))?;
        self.next_check = now + ta;
        Some(pair)
    }

    /// RFC 8445 §6.1.2.6: see [`unfreeze_initial`].
    pub(crate) fn unfreeze_initial(&mut self) {
        unfreeze_initial(&mut self.pairs);
    }
}

/// How many cancelled checks a pair still accepts answers to.
pub(crate) const MAX_CANCELLED: usize = 4;

/// The next pair to check when pacing allows (RFC 8445 §6.1.4.2): the
/// highest-priority waiting pair, else the highest-priority frozen one
/// (leaving out pairs whose retry is not due at `now`).
fn next_ordinary_check(pairs: &[Pair], now: Instant) -> Option<usize> {
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
fn unfreeze_initial(pairs: &mut [Pair]) {
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
        pairs[i].unfreeze();
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

    #[test]
    fn triggered_checks_go_first_and_checks_are_paced() {
        let now = Instant::now();
        let ta = Duration::from_millis(20);
        let mut list = CheckList::new(now);
        let best = list.push(Pair::new(0, 0, 1, "a".into(), 9));
        let other = list.push(Pair::new(1, 0, 1, "b".into(), 5));
        list.unfreeze_initial();
        list.trigger(other);
        list.trigger(other);
        assert_eq!(list.next_check(now, ta, true), Some(other));
        list[other].start_check(InFlight {
            id: TransactionId([1; 12]),
            request: vec![1],
            transmissions: 1,
            last_sent: now,
            next_at: now + ta * 25,
            rto: ta * 25,
            use_candidate: false,
            controlling: true,
            consent: false,
        });
        assert_eq!(list.next_check(now + ta / 2, ta, true), None);
        assert_eq!(list.next_check_due(), Some(now + ta));
        assert_eq!(list.next_check(now + ta, ta, true), Some(best));
        assert!(list[other].sent(TransactionId([1; 12])));
    }

    #[test]
    fn a_check_sent_outside_the_pacing_takes_the_next_slot() {
        let now = Instant::now();
        let ta = Duration::from_millis(20);
        let mut list = CheckList::new(now);
        list.push(Pair::new(0, 0, 1, "a".into(), 9));
        list.push(Pair::new(1, 0, 1, "b".into(), 5));
        list.unfreeze_initial();
        assert_eq!(list.next_check(now, ta, true), Some(0));
        // A nomination a moment later: the next check waits Ta after it.
        let nominated = now + ta / 4;
        list.paced_at(nominated, ta);
        assert_eq!(list.next_check_due(), Some(nominated + ta));
        assert_eq!(list.next_check(now + ta, ta, true), None);
        assert!(list.next_check(nominated + ta, ta, true).is_some());
    }
}
