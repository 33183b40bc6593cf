//! The candidate pairs of a call, media line by media line, as ICE forms
//! them (RFC 8445 §6.1.2.2, RFC 6544 §6.2 for TCP), and what the analysis
//! concludes of each: the one place that decides, for the HTML diagram and
//! anything else that draws or lists pairs.
//!
//! A pair is formed only from candidates of the same component, transport
//! and address family, TCP ones only active with passive or
//! simultaneous-open with simultaneous-open. Of a formed pair:
//! - checks the input shows decide first: one that succeeded makes it
//!   `succeeded`, only failed ones `failed`; where the input shows checks
//!   and none of this pair, it is `unknown` — never assumed to work;
//! - else a pair with an end the call's findings name as unusable (an
//!   error whose evidence is that candidate's line, such as a relay at a
//!   private address) `cannot` cross;
//! - else it `can-cross` when one end is reachable from the other's
//!   network by the diagnosis' own address classes, and is `unknown` when
//!   both ends are private (it works only if they share a network).

use edgeice_candidate::{Candidate, CandidateAddress, TcpType, Transport};
use serde::Serialize;

use crate::call::{Call, Side};
use crate::diagnose::Severity;

/// Candidates kept per side and media line (a Lync offer has up to 20).
pub const MAX_CANDIDATES: usize = 24;
/// Checks remembered per call.
pub const MAX_CHECKS: usize = 256;

/// A connectivity check's outcome, as an agent's own log shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PairCheck {
    /// One end, `udp 192.0.2.1:5000` (transport, address and port).
    pub local: String,
    /// The other end.
    pub remote: String,
    /// Whether it succeeded (else it failed).
    pub succeeded: bool,
}

/// What the analysis concludes of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Crossing {
    /// A check of it succeeded.
    Succeeded,
    /// Checks can get through (one end reachable from the other's side).
    CanCross,
    /// Nothing says: both ends private, or checks shown but none of it.
    Unknown,
    /// Its checks failed.
    Failed,
    /// The verdict says it cannot work (an end named by an error finding).
    Cannot,
}

impl Crossing {
    /// The token written in reports (`can-cross`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Crossing::Succeeded => "succeeded",
            Crossing::CanCross => "can-cross",
            Crossing::Unknown => "unknown",
            Crossing::Failed => "failed",
            Crossing::Cannot => "cannot",
        }
    }
}

/// One formed pair: indexes into its media line's candidate lists.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The offer's candidate.
    pub offer: usize,
    /// The answer's candidate.
    pub answer: usize,
    /// What the analysis concludes.
    pub crossing: Crossing,
    /// Why, in a few words.
    pub why: String,
}

/// One media line of a call: both sides' candidates (either may be
/// missing) and the pairs ICE would form between them.
pub struct MediaPairs<'a> {
    /// `audio`, `video`, `application`... (the offer's, else the answer's).
    pub kind: String,
    /// Its position among the media lines (0-based).
    pub index: usize,
    /// The offer's candidates (with their line), component first.
    pub offer: Vec<(usize, Candidate<'a>)>,
    /// The answer's candidates.
    pub answer: Vec<(usize, Candidate<'a>)>,
    /// The pairs formed.
    pub pairs: Vec<Pair>,
}

fn candidates<'a>(side: Option<&'a Side>, index: usize) -> Vec<(usize, Candidate<'a>)> {
    let Some(media) = side.and_then(|s| s.description.media.get(index)) else {
        return Vec::new();
    };
    let mut list: Vec<(usize, Candidate<'a>)> = media
        .candidates
        .iter()
        .filter_map(|(line, text)| Candidate::parse(text).ok().map(|c| (*line, c)))
        .collect();
    list.sort_by_key(|(_, c)| c.component);
    list.truncate(MAX_CANDIDATES);
    list
}

/// Every media line of the call, with its pairs.
pub fn media_pairs(call: &Call) -> Vec<MediaPairs<'_>> {
    let (offer, answer) = (call.offer.as_ref(), call.answer.as_ref());
    let lines = |s: Option<&Side>| s.map_or(0, |s| s.description.media.len());
    let count = lines(offer).max(lines(answer));
    (0..count)
        .map(|index| {
            let kind = [offer, answer]
                .into_iter()
                .flatten()
                .find_map(|s| s.description.media.get(index))
                .map(|m| m.kind.clone())
                .unwrap_or_default();
            let (left, right) = (candidates(offer, index), candidates(answer, index));
            let mut pairs = Vec::new();
            for (i, (o_line, o)) in left.iter().enumerate() {
                for (j, (a_line, a)) in right.iter().enumerate() {
                    if !formed(o, a) {
                        continue;
                    }
                    let (crossing, why) = crossing(call, (offer, *o_line, o), (answer, *a_line, a));
                    pairs.push(Pair {
                        offer: i,
                        answer: j,
                        crossing,
                        why,
                    });
                }
            }
            MediaPairs {
                kind,
                index,
                offer: left,
                answer: right,
                pairs,
            }
        })
        .collect()
}

/// The bare candidates of a description with no other side (one column,
/// no pairs).
pub fn description_media(side: &Side) -> Vec<MediaPairs<'_>> {
    (0..side.description.media.len())
        .map(|index| MediaPairs {
            kind: side.description.media[index].kind.clone(),
            index,
            offer: candidates(Some(side), index),
            answer: Vec::new(),
            pairs: Vec::new(),
        })
        .collect()
}

/// The TCP role of a candidate (RFC 6544 `tcptype`, or MS-ICE2's
/// `TCP-ACT`/`TCP-PASS`), `None` for UDP or an unstated role.
fn tcp_role(c: &Candidate<'_>) -> Option<TcpType> {
    match c.transport {
        Transport::TcpActive => Some(TcpType::Active),
        Transport::TcpPassive => Some(TcpType::Passive),
        _ => c.tcp_type,
    }
}

/// Whether ICE forms the pair at all.
pub fn formed(a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
    use CandidateAddress::Ip;
    let same_family = match (a.address, b.address) {
        (Ip(x), Ip(y)) => v4(x) == v4(y),
        _ => true,
    };
    let tcp = a.transport.is_tcp();
    let roles_fit = match (tcp_role(a), tcp_role(b)) {
        (Some(TcpType::Active), Some(TcpType::Passive))
        | (Some(TcpType::Passive), Some(TcpType::Active))
        | (Some(TcpType::SimultaneousOpen), Some(TcpType::SimultaneousOpen)) => true,
        (Some(_), Some(_)) => false,
        // A role not stated: assume the agents sort it out.
        _ => true,
    };
    a.component == b.component && tcp == b.transport.is_tcp() && (!tcp || roles_fit) && same_family
}

fn v4(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(_) => true,
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    }
}

/// `udp 192.0.2.1:5000`, as checks are keyed.
pub fn endpoint(c: &Candidate<'_>) -> String {
    let transport = if c.transport.is_tcp() { "tcp" } else { "udp" };
    match c.address {
        CandidateAddress::Ip(ip) => {
            socket_endpoint(transport, std::net::SocketAddr::new(ip, c.port))
        }
        address => format!("{transport} {address}:{}", c.port),
    }
}

/// `udp 192.0.2.1:5000` (`[…]` for IPv6): an address seen on the wire,
/// keyed as [`endpoint`] keys a candidate.
pub fn socket_endpoint(transport: &str, address: std::net::SocketAddr) -> String {
    format!("{transport} {address}")
}

type End<'s, 'a> = (Option<&'s Side>, usize, &'s Candidate<'a>);

fn crossing(call: &Call, offer: End<'_, '_>, answer: End<'_, '_>) -> (Crossing, String) {
    let (o, a) = (endpoint(offer.2), endpoint(answer.2));
    let checks: Vec<&PairCheck> = call
        .checks
        .iter()
        .filter(|c| (c.local == o && c.remote == a) || (c.local == a && c.remote == o))
        .collect();
    if checks.iter().any(|c| c.succeeded) {
        return (Crossing::Succeeded, "a check of this pair succeeded".into());
    }
    if !checks.is_empty() {
        return (Crossing::Failed, "its checks failed".into());
    }
    // The verdict: an error finding whose evidence is one of the two lines.
    for (side, line, _) in [offer, answer] {
        let Some(side) = side else { continue };
        if let Some(finding) = call.findings.iter().find(|f| {
            f.severity == Severity::Error
                && f.evidence
                    .iter()
                    .any(|e| e.line == line && e.file == side.file && !e.text.is_empty())
        }) {
            return (
                Crossing::Cannot,
                format!("{}: {}", finding.code, finding.message),
            );
        }
    }
    if !call.checks.is_empty() {
        return (
            Crossing::Unknown,
            "the agents' checks are shown and none of this pair".into(),
        );
    }
    let reachable = |c: &Candidate<'_>| crate::diagnose::reachable_from_elsewhere(&c.address);
    if reachable(offer.2) || reachable(answer.2) {
        (
            Crossing::CanCross,
            "one end is reachable from the other's network".into(),
        )
    } else {
        (
            Crossing::Unknown,
            "both ends are private: only if the two share a network".into(),
        )
    }
}
