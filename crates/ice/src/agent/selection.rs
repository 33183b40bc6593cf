//! Phase 4: nomination by the controlling agent, selection of the best
//! nominated pair on both sides, promotion to a better pair once one
//! works, and consent freshness (RFC 7675) on what is selected.

use std::time::{Duration, Instant};

use super::Agent;
use crate::event::{CheckState, Event, PairDescription, State};

impl Agent {
    /// The pair as the application sees it: the valid local candidate once
    /// the pair works.
    pub(super) fn describe(&self, pair: usize) -> PairDescription {
        let p = &self.pairs[pair];
        PairDescription {
            component: p.component(),
            local: self.locals[p.valid_local().unwrap_or(p.local())]
                .candidate
                .clone(),
            remote: self.remotes[p.remote()].clone(),
        }
    }

    /// The selected pair of `component`, as described in events.
    pub fn selected_pair(&self, component: u16) -> Option<PairDescription> {
        self.selected_index(component)
            .map(|pair| self.describe(pair))
    }

    /// Selects the best nominated working pair of `component`; reports a
    /// first selection or a promotion.
    pub(super) fn update_selection(&mut self, now: Instant, component: u16) {
        let slot = usize::from(component) - 1;
        let best = self
            .pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.component() == component && p.is_nominated() && p.state() == CheckState::Succeeded
            })
            .max_by_key(|(_, p)| p.priority())
            .map(|(i, _)| i);
        let Some(best) = best else { return };
        let previous = self.per_component[slot].selected;
        if previous == Some(best) {
            return;
        }
        self.per_component[slot].selected = Some(best);
        self.per_component[slot].next_consent =
            (!self.config.lite).then(|| now + self.consent_delay());
        match previous {
            None => self.events.push_back(Event::Selected {
                pair: self.describe(best),
            }),
            Some(from) => {
                let reason = if self.controlling {
                    "a pair of higher priority succeeded; it was nominated".to_string()
                } else {
                    "the controlling agent nominated a pair of higher priority".to_string()
                };
                self.events.push_back(Event::Promoted {
                    from: self.describe(from),
                    to: self.describe(best),
                    reason,
                });
            }
        }
        self.update_connected_state();
    }

    fn update_connected_state(&mut self) {
        if self.per_component.iter().all(|c| c.selected.is_some())
            && matches!(
                self.state,
                State::New | State::Checking | State::Disconnected
            )
        {
            self.set_state(State::Connected, None);
        }
        if self.state == State::Connected && !self.pairs.iter().any(|p| p.is_pending()) {
            self.set_state(State::Completed, None);
        }
    }

    /// Regular nomination (RFC 8445 §8.1.1): once a pair works, wait
    /// `nomination_delay` for a better one, then re-check the best with
    /// USE-CANDIDATE at once. After selection, a pair of higher priority that
    /// works later is nominated too: the promotion.
    pub(super) fn nominate(&mut self, now: Instant) {
        if !self.controlling {
            self.update_completed();
            return;
        }
        for component in 1..=self.components() {
            let slot = usize::from(component) - 1;
            if self.nomination_in_progress(slot) {
                continue;
            }
            let floor = self.per_component[slot]
                .selected
                .map(|s| self.pairs[s].priority());
            let best = self
                .pairs
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    p.component() == component
                        && p.state() == CheckState::Succeeded
                        && !p.is_nominated()
                        && floor.is_none_or(|f| p.priority() > f)
                })
                .max_by_key(|(_, p)| p.priority())
                .map(|(i, _)| i);
            let Some(best) = best else { continue };
            let better_pending = self.pairs.iter().any(|p| {
                p.component() == component
                    && p.is_pending()
                    && p.priority() > self.pairs[best].priority()
            });
            let waited = self.per_component[slot]
                .first_success
                .is_some_and(|first| now >= first + self.config.nomination_delay);
            if better_pending && !waited {
                continue;
            }
            self.send_nomination(now, best);
        }
        self.update_completed();
    }

    /// Sends the controlling agent's nominating check on `pair` now,
    /// without waiting for a Ta slot (docs/ice.md, "The nominating check
    /// is not held for a Ta slot"): the pair has just worked, so the check
    /// goes through the path, and the NAT binding, its own check opened.
    /// It takes the next slot instead: the next check waits a full Ta
    /// after it.
    fn send_nomination(&mut self, now: Instant, pair: usize) {
        self.pairs[pair].ask_nomination();
        self.pairs.untrigger(pair);
        self.send_check(now, pair, false);
        self.pairs.paced_at(now, self.config.ta);
    }

    /// When regular nomination's wait for a better pair ends in the
    /// component at `slot`, while there is one to wait for: the
    /// controlling agent has a working pair, not yet nominated, and
    /// nothing selected or being nominated.
    pub(super) fn nomination_wait_ends(&self, slot: usize) -> Option<Instant> {
        let waiting = self.controlling
            && self.per_component[slot].selected.is_none()
            && !self.nomination_in_progress(slot)
            && self.awaits_nomination(slot);
        let first = self.per_component[slot].first_success.filter(|_| waiting)?;
        Some(first + self.config.nomination_delay)
    }

    /// Whether regular nomination has something to decide in the
    /// component at `slot`: a pair that works and is not nominated.
    pub(super) fn awaits_nomination(&self, slot: usize) -> bool {
        matches!(self.state, State::New | State::Checking)
            && self.pairs.iter().any(|p| {
                usize::from(p.component()) == slot + 1
                    && p.state() == CheckState::Succeeded
                    && !p.is_nominated()
            })
    }

    /// Whether a check carrying USE-CANDIDATE is queued or unanswered in
    /// the component at `slot`.
    pub(super) fn nomination_in_progress(&self, slot: usize) -> bool {
        self.pairs.iter().any(|p| {
            usize::from(p.component()) == slot + 1
                && p.state() != CheckState::Failed
                && (p.nomination_asked() || p.in_flight().is_some_and(|f| f.use_candidate))
        })
    }

    fn update_completed(&mut self) {
        if self.state == State::Connected && !self.pairs.iter().any(|p| p.is_pending()) {
            self.set_state(State::Completed, None);
        }
    }

    /// A consent interval with ±20% jitter (RFC 7675 §5.1), so that many
    /// sessions do not check in step.
    fn consent_delay(&mut self) -> Duration {
        let factor = 0.8 + 0.4 * self.rng.unit();
        self.config.consent_interval.mul_f64(factor)
    }

    /// Sends due consent checks on selected pairs; reports disconnection
    /// when they go unanswered and failure when consent expires.
    pub(super) fn refresh_consent(&mut self, now: Instant) {
        // Lite agents do not check consent (RFC 7675 §1): the full agent does.
        if self.config.lite {
            return;
        }
        for slot in 0..self.per_component.len() {
            let Some(pair) = self.per_component[slot].selected else {
                continue;
            };
            let last = self.pairs[pair].last_answer().unwrap_or(now);
            let silent = now.saturating_duration_since(last);
            if silent >= self.config.consent_timeout {
                self.per_component[slot].next_consent = None;
                self.set_state(
                    State::Failed,
                    Some(format!(
                        "consent expired: no answer on the selected pair for {} s",
                        silent.as_secs()
                    )),
                );
                continue;
            }
            if silent >= self.config.disconnected_after
                && matches!(self.state, State::Connected | State::Completed)
            {
                self.set_state(
                    State::Disconnected,
                    Some(format!(
                        "no answer to consent checks for {} s",
                        silent.as_secs()
                    )),
                );
            } else if silent < self.config.disconnected_after && self.state == State::Disconnected {
                self.set_state(State::Connected, None);
            }
            if self.per_component[slot]
                .next_consent
                .is_some_and(|t| t <= now)
            {
                // A consent check still unanswered is stale: send a new one.
                let busy = self.pairs[pair].in_flight().is_some_and(|f| !f.consent);
                if !busy {
                    self.pairs[pair].drop_check();
                    self.send_check(now, pair, true);
                }
                self.per_component[slot].next_consent = Some(now + self.consent_delay());
            }
        }
    }
}
