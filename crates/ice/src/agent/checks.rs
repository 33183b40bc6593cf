//! Phase 3, outgoing: which pair is checked next (triggered checks first,
//! then by priority, one every Ta), building and retransmitting requests,
//! and giving up on pairs that never answer.

use std::time::Instant;

use super::Agent;
use crate::candidate::{CandidateKind, priority};
use crate::check::{CheckRequest, RoleAttribute, build_request, new_transaction_id};
use crate::checklist::{InFlight, MAX_CANCELLED, next_ordinary_check};
use crate::event::{CheckState, Event, State};

impl Agent {
    /// Whether pacing has a check to send once `next_check` comes.
    pub(super) fn has_check_to_send(&self) -> bool {
        if self.remote.is_none() || matches!(self.state, State::Failed | State::Closed) {
            return false;
        }
        !self.triggered.is_empty()
            || self
                .pairs
                .iter()
                .any(|p| matches!(p.state, CheckState::Waiting | CheckState::Frozen))
    }

    /// Sends at most one new check if pacing allows: a triggered one first
    /// (RFC 8445 §6.1.4.2), else the best waiting or frozen pair.
    pub(super) fn send_paced_check(&mut self, now: Instant) {
        if now < self.next_check || !self.has_check_to_send() {
            return;
        }
        let mut next = None;
        while let Some(pair) = self.triggered.pop_front() {
            let Some(p) = self.pairs.get(pair) else {
                continue;
            };
            // A pair that already works is re-checked only to nominate it.
            if p.state != CheckState::Succeeded || p.nominate_next && self.controlling {
                next = Some(pair);
                break;
            }
        }
        let Some(pair) = next.or_else(|| next_ordinary_check(&self.pairs)) else {
            return;
        };
        self.send_check(now, pair, false);
        self.next_check = now + self.config.ta;
    }

    /// Sends a check (or a consent check) on `pair` now.
    pub(super) fn send_check(&mut self, now: Instant, pair: usize, consent: bool) {
        let Some(remote) = &self.remote else { return };
        let local = &self.locals[self.pairs[pair].local];
        let role = if self.controlling {
            RoleAttribute::Controlling(self.tie_breaker)
        } else {
            RoleAttribute::Controlled(self.tie_breaker)
        };
        let use_candidate = self.controlling
            && !consent
            && (self.config.nomination == crate::config::Nomination::Aggressive
                || self.pairs[pair].nominate_next
                || self.remote_lite);
        let request = CheckRequest {
            username: &remote.username,
            // RFC 8445 §7.1.1: the priority a peer-reflexive candidate
            // learned from this check would have.
            priority: priority(
                CandidateKind::PeerReflexive,
                local.local_preference,
                local.candidate.component,
            ),
            role,
            use_candidate,
        };
        let id = new_transaction_id();
        let mut bytes = Vec::with_capacity(128);
        if build_request(&mut bytes, id, &request, &remote.key).is_err() {
            return;
        }
        let base = local.base;
        let destination = self.remotes[self.pairs[pair].remote].address;
        // Checks of a pair of `n` active ones share the link: RFC 8445
        // §14.3 stretches their retransmission timer accordingly.
        let active = self
            .pairs
            .iter()
            .filter(|p| matches!(p.state, CheckState::Waiting | CheckState::InProgress))
            .count() as u32;
        let rto = self.config.initial_rto.max(self.config.ta * active.max(1));
        self.send_from_base(now, base, destination, &bytes);
        let p = &mut self.pairs[pair];
        if let Some(previous) = p.in_flight.take()
            && !previous.consent
        {
            if p.cancelled.len() >= MAX_CANCELLED {
                p.cancelled.remove(0);
            }
            p.cancelled.push(previous);
        }
        p.in_flight = Some(InFlight {
            id,
            request: bytes,
            transmissions: 1,
            last_sent: now,
            next_at: now
                + if consent {
                    self.config.consent_interval
                } else {
                    rto
                },
            rto,
            use_candidate,
            controlling: self.controlling,
            consent,
        });
        if !consent && p.state != CheckState::Succeeded {
            let was = p.state;
            p.state = CheckState::InProgress;
            if was != CheckState::InProgress {
                self.emit_check(pair, None, None);
            }
        }
    }

    /// Retransmits unanswered checks whose timer ran out; fails pairs whose
    /// last retransmission went unanswered.
    pub(super) fn retransmit_checks(&mut self, now: Instant) {
        for pair in 0..self.pairs.len() {
            let Some(in_flight) = &mut self.pairs[pair].in_flight else {
                continue;
            };
            if in_flight.next_at > now {
                continue;
            }
            if in_flight.consent {
                self.pairs[pair].in_flight = None;
                continue;
            }
            if in_flight.transmissions >= self.config.max_transmissions {
                let sent = in_flight.transmissions;
                let nominating = in_flight.use_candidate;
                self.pairs[pair].in_flight = None;
                self.pairs[pair].nominate_next = false;
                // A pair that stops answering its nomination is no use either.
                if self.pairs[pair].state == CheckState::InProgress || nominating {
                    self.pairs[pair].state = CheckState::Failed;
                    self.emit_check(pair, None, Some(format!("no response to {sent} checks")));
                }
                continue;
            }
            in_flight.transmissions += 1;
            in_flight.last_sent = now;
            in_flight.rto = (in_flight.rto * 2).min(self.config.max_rto);
            in_flight.next_at = now + in_flight.rto;
            let bytes = std::mem::take(&mut in_flight.request);
            let base = self.locals[self.pairs[pair].local].base;
            let destination = self.remotes[self.pairs[pair].remote].address;
            self.send_from_base(now, base, destination, &bytes);
            if let Some(in_flight) = &mut self.pairs[pair].in_flight {
                in_flight.request = bytes;
            }
        }
    }

    /// Reports a pair's state to the application.
    pub(super) fn emit_check(&mut self, pair: usize, code: Option<u16>, reason: Option<String>) {
        let p = &self.pairs[pair];
        self.events.push_back(Event::Check {
            pair: self.describe(pair),
            state: p.state,
            rtt: p.rtt.filter(|_| p.state == CheckState::Succeeded),
            code,
            reason,
            nominated: p.nominated,
        });
    }

    /// The agent fails when nothing can work any more: both sides are done
    /// with candidates, and a component has no pair left that is not failed.
    pub(super) fn check_for_failure(&mut self) {
        if !matches!(self.state, State::New | State::Checking)
            || !self.remote_end_of_candidates
            || !self.local_gathering_done
            || self.remote.is_none()
        {
            return;
        }
        for component in 1..=self.components() {
            let mut pairs = self.pairs.iter().filter(|p| p.component == component);
            let alive = pairs.any(|p| p.state != CheckState::Failed);
            if !alive && self.triggered.is_empty() {
                let reason = if self.pairs.iter().any(|p| p.component == component) {
                    format!("all pairs of component {component} failed")
                } else {
                    format!("no candidate pairs for component {component}")
                };
                self.set_state(State::Failed, Some(reason));
                return;
            }
        }
    }
}
