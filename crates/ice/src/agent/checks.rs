//! Phase 3, outgoing: which pair is checked next (triggered checks first,
//! then by priority, one every Ta), building and retransmitting requests,
//! and giving up on pairs that never answer.

use std::time::Instant;

use super::Agent;
use super::tcp::TCP_CHECK_TIMEOUT;
use super::{Datagram, Route};
use crate::candidate::CandidateKind;
use crate::check::{CheckRequest, RoleAttribute};
use crate::checklist::{InFlight, Retransmission};
use crate::event::{CheckState, Event, State};
use crate::framing;
use crate::timer::Timer;

impl Agent {
    /// When pacing has a check to send (none from a lite agent, before
    /// the other side's credentials, or once the session is over).
    pub(super) fn next_check_due(&self) -> Option<Instant> {
        if self.config.lite
            || self.remote.is_none()
            || matches!(self.state, State::Failed | State::Closed)
        {
            return None;
        }
        self.pairs.next_check_due()
    }

    /// Sends at most one new check if pacing allows.
    pub(super) fn send_paced_check(&mut self, now: Instant) {
        if self.next_check_due().is_none() {
            return;
        }
        if let Some(pair) = self.pairs.next_check(now, self.config.ta, self.controlling) {
            self.send_check(now, pair, false);
        }
    }

    /// Sends a check (or a consent check) on `pair` now. A TCP pair
    /// without an open connection asks for one first and is checked when
    /// it opens.
    pub(super) fn send_check(&mut self, now: Instant, pair: usize, consent: bool) {
        let Some(remote) = &self.remote else { return };
        let local = &self.locals[self.pairs[pair].local()];
        let tcp_type = local.candidate.tcp_type;
        let role = if self.controlling {
            RoleAttribute::Controlling(self.tie_breaker)
        } else {
            RoleAttribute::Controlled(self.tie_breaker)
        };
        let use_candidate = self.controlling
            && !consent
            && (self.config.nomination == crate::config::Nomination::Aggressive
                || self.pairs[pair].nomination_asked()
                || self.remote_lite);
        let component = local.candidate.component;
        let request = CheckRequest {
            username: &remote.username,
            // RFC 8445 §7.1.1: the priority a peer-reflexive candidate
            // learned from this check would have.
            priority: self.config.dialect.priority(
                CandidateKind::PeerReflexive,
                tcp_type,
                local.local_preference,
                component,
                false,
            ),
            role,
            use_candidate,
            foundation: &local.candidate.foundation,
        };
        let id = self.rng.transaction_id();
        let mut bytes = Vec::with_capacity(128);
        if self
            .config
            .dialect
            .build_request(&mut bytes, id, &request, &remote.key)
            .is_err()
        {
            return;
        }
        let (base, destination) = self.pair_ends(pair);
        // Checks of a pair of `n` active ones share the link: RFC 8445
        // §14.3 stretches their retransmission timer accordingly.
        let active = self
            .pairs
            .iter()
            .filter(|p| matches!(p.state(), CheckState::Waiting | CheckState::InProgress))
            .count() as u32;
        let mut rto = self.config.initial_rto.max(self.config.ta * active.max(1));
        let mut transmissions = 1;
        if tcp_type.is_some() {
            // TCP retransmits for us: one request, a long wait.
            transmissions = self.config.max_transmissions;
            rto = TCP_CHECK_TIMEOUT;
            match self.connection_of_pair(pair) {
                Some(connection) => {
                    let mut framed = Vec::with_capacity(bytes.len() + 2);
                    framing::frame(&bytes, &mut framed);
                    self.transmits.push_back(Datagram {
                        source: base,
                        route: Route::Connection(connection),
                        destination,
                        payload: framed,
                    });
                }
                None if consent => return,
                None => {
                    if !self.open_connection_for(now, pair) {
                        // Nothing we can open (a passive candidate waits to
                        // be connected to): the pair cannot be checked.
                        let p = &mut self.pairs[pair];
                        if p.state() != CheckState::Failed && p.state() != CheckState::Succeeded {
                            p.fail();
                            self.emit_check(
                                pair,
                                None,
                                Some("no TCP connection to check it on".into()),
                            );
                            self.check_for_failure();
                        }
                        return;
                    }
                    // An empty request marks a check waiting for its connection.
                    bytes.clear();
                }
            }
        } else {
            self.send_stun_from_base(now, base, destination, &bytes);
        }
        let started = self.pairs[pair].start_check(InFlight {
            id,
            request: bytes,
            transmissions,
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
        if started {
            self.emit_check(pair, None, None);
        }
    }

    /// Retransmits unanswered checks whose timer ran out; fails pairs whose
    /// last retransmission went unanswered.
    pub(super) fn retransmit_checks(&mut self, now: Instant) {
        for pair in 0..self.pairs.len() {
            let (max_transmissions, max_rto) = (self.config.max_transmissions, self.config.max_rto);
            match self.pairs[pair].retransmit(now, max_transmissions, max_rto) {
                Retransmission::NotDue | Retransmission::ConsentDropped => {}
                Retransmission::GaveUp { sent, failed } => {
                    if failed {
                        self.emit_check(pair, None, Some(format!("no response to {sent} checks")));
                    }
                }
                Retransmission::Resend(bytes) => {
                    let (base, destination) = self.pair_ends(pair);
                    self.send_stun_from_base(now, base, destination, &bytes);
                    self.pairs[pair].resent(bytes);
                }
            }
        }
    }

    /// Reports a pair's state to the application.
    pub(super) fn emit_check(&mut self, pair: usize, code: Option<u16>, reason: Option<String>) {
        let p = &self.pairs[pair];
        self.events.push_back(Event::Check {
            pair: self.describe(pair),
            state: p.state(),
            rtt: p.rtt().filter(|_| p.state() == CheckState::Succeeded),
            code,
            reason,
            nominated: p.is_nominated(),
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
            let mut pairs = self.pairs.iter().filter(|p| p.component() == component);
            let alive = pairs.any(|p| p.state() != CheckState::Failed);
            // A passive TCP candidate of ours may still be connected to by
            // an active one of theirs: pairs appear when that happens.
            if !alive
                && !self.pairs.has_triggered()
                && self.timers.get(Timer::IncomingTcp).is_none()
            {
                let reason = if self.pairs.iter().any(|p| p.component() == component) {
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
