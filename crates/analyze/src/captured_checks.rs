//! ICE connectivity checks seen in a capture, given to the calls whose
//! candidates they ran between: a Binding request with credentials (a
//! check, not a gathering request to a STUN server) answered with success
//! or an error. What a capture shows of a pair beats what its addresses
//! suggest (see [`crate::pairs`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use edgeice_candidate::Candidate;

use crate::call::{Call, Side};
use crate::capture::StunPacket;
use crate::pairs::PairCheck;

/// Requests waiting for their answer.
const MAX_WAITING: usize = 4096;
/// Outcomes remembered (the oldest are forgotten first).
const MAX_OUTCOMES: usize = 4096;

/// One check's outcome: (transport, from, to) of the request, and whether
/// it succeeded.
type Outcome = ((&'static str, SocketAddr, SocketAddr), bool);

/// The checks of a capture, as they are read.
#[derive(Default)]
pub struct CapturedChecks {
    /// Transaction → the request's (transport, from, to).
    waiting: HashMap<String, (&'static str, SocketAddr, SocketAddr)>,
    waiting_order: VecDeque<String>,
    outcomes: VecDeque<Outcome>,
    known: HashSet<Outcome>,
}

impl CapturedChecks {
    /// Takes one packet into account.
    pub fn push(&mut self, packet: &StunPacket) {
        match packet.what.as_str() {
            "Binding request" if packet.authenticated => {
                if self.waiting_order.len() >= MAX_WAITING
                    && let Some(old) = self.waiting_order.pop_front()
                {
                    self.waiting.remove(&old);
                }
                let request = (packet.transport, packet.from, packet.to);
                if self
                    .waiting
                    .insert(packet.transaction.clone(), request)
                    .is_none()
                {
                    self.waiting_order.push_back(packet.transaction.clone());
                }
            }
            "Binding success" | "Binding error" => {
                let Some(request) = self.waiting.remove(&packet.transaction) else {
                    return;
                };
                let outcome = (request, packet.what == "Binding success");
                if !self.known.insert(outcome) {
                    return;
                }
                if self.outcomes.len() >= MAX_OUTCOMES
                    && let Some(old) = self.outcomes.pop_front()
                {
                    self.known.remove(&old);
                }
                self.outcomes.push_back(outcome);
            }
            _ => {}
        }
    }

    /// The checks that ran between a candidate of `call`'s offer and one
    /// of its answer.
    pub fn of(&self, call: &Call) -> Vec<PairCheck> {
        // Most inputs are logs, with no capture: nothing to parse for.
        if self.outcomes.is_empty() {
            return Vec::new();
        }
        let (Some(offer), Some(answer)) = (&call.offer, &call.answer) else {
            return Vec::new();
        };
        let (offer, answer) = (endpoints(offer), endpoints(answer));
        self.outcomes
            .iter()
            .filter_map(|&((transport, from, to), succeeded)| {
                let end = |address| crate::pairs::socket_endpoint(transport, address);
                let (from, to) = (end(from), end(to));
                let between = (offer.contains(&from) && answer.contains(&to))
                    || (answer.contains(&from) && offer.contains(&to));
                between.then_some(PairCheck {
                    local: from,
                    remote: to,
                    succeeded,
                })
            })
            .take(crate::pairs::MAX_CHECKS)
            .collect()
    }
}

/// Every candidate endpoint of a side's description.
fn endpoints(side: &Side) -> HashSet<String> {
    side.description
        .media
        .iter()
        .flat_map(|m| &m.candidates)
        .filter_map(|(_, text)| Candidate::parse(text).ok())
        .map(|c| crate::pairs::endpoint(&c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(what: &str, transaction: &str, from: &str, to: &str) -> StunPacket {
        StunPacket {
            file: "t.pcap".into(),
            packet: 1,
            timestamp: String::new(),
            transport: "udp",
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            what: what.into(),
            transaction: transaction.into(),
            error: None,
            authenticated: what.ends_with("request"),
            username: None,
            dialect: "standard",
            mapped_address: None,
            change_request: false,
            peers: Vec::new(),
        }
    }

    #[test]
    fn an_answered_check_is_kept_once_and_a_gathering_request_is_not_a_check() {
        let mut checks = CapturedChecks::default();
        let (a, b) = ("192.0.2.1:5000", "198.51.100.2:6000");
        checks.push(&packet("Binding request", "t1", a, b));
        checks.push(&packet("Binding success", "t1", b, a));
        // A retransmission's answer, and a second identical check.
        checks.push(&packet("Binding success", "t1", b, a));
        checks.push(&packet("Binding request", "t2", a, b));
        checks.push(&packet("Binding success", "t2", b, a));
        let mut gathering = packet("Binding request", "t3", a, "203.0.113.9:3478");
        gathering.authenticated = false;
        checks.push(&gathering);
        checks.push(&packet("Binding success", "t3", "203.0.113.9:3478", a));
        checks.push(&packet("Binding request", "t4", b, a));
        checks.push(&packet("Binding error", "t4", a, b));
        let kept: Vec<_> = checks.outcomes.iter().map(|(_, ok)| *ok).collect();
        assert_eq!(kept, [true, false]);
    }

    #[test]
    fn a_call_gets_the_captured_checks_between_its_candidates_and_its_pairs_show_them() {
        let sip = include_str!("../tests/corpus/healthy-call.sip");
        let (format, mut items) = crate::input::read("call.sip", sip.as_bytes()).unwrap();
        // The relay-to-relay check answered; one from elsewhere, not the call's.
        let (relay_a, relay_b) = ("203.0.113.5:61000", "198.51.100.5:61002");
        let captured = [
            packet("Binding request", "c1", relay_a, relay_b),
            packet("Binding success", "c1", relay_b, relay_a),
            packet("Binding request", "c2", "192.0.2.99:1000", relay_b),
            packet("Binding success", "c2", relay_b, "192.0.2.99:1000"),
        ];
        // Between the answer and the end of the call, as on the wire.
        items.splice(2..2, captured.map(crate::input::Item::Stun));
        let analysis = crate::call::analyze(vec![("call.sip".into(), format, items)]);
        let call = &analysis.calls[0];
        assert_eq!(
            call.checks,
            [PairCheck {
                local: "udp 203.0.113.5:61000".into(),
                remote: "udp 198.51.100.5:61002".into(),
                succeeded: true,
            }]
        );
        let media = crate::pairs::media_pairs(call);
        let crossings: Vec<_> = media[0].pairs.iter().map(|p| p.crossing).collect();
        // The pair checked succeeded; the others are unknown, not guessed.
        assert_eq!(
            crossings
                .iter()
                .filter(|c| **c == crate::pairs::Crossing::Succeeded)
                .count(),
            1
        );
        assert!(crossings.iter().all(|c| matches!(
            c,
            crate::pairs::Crossing::Succeeded | crate::pairs::Crossing::Unknown
        )));
    }
}
