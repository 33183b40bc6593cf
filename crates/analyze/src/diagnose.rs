//! Findings: what is wrong, on which side, with the evidence and the fix.
//! Codes are stable: scripts match on them.

use edgeice_candidate::{AddressClass, Candidate, CandidateAddress, CandidateType, Dialect};
use serde::Serialize;

use crate::call::{Call, Side};
use crate::capture::StunPacket;
use crate::sip::Evidence;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Media cannot flow this way.
    Error,
    /// Media may fail for some peers, or something looks wrong.
    Warning,
    /// Worth knowing.
    Info,
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Stable code, such as `relay-private-address`.
    pub code: &'static str,
    /// How bad.
    pub severity: Severity,
    /// What is wrong, in a sentence or two.
    pub message: String,
    /// What to do about it.
    pub fix: String,
    /// The call, if the finding is about one.
    pub call_id: Option<String>,
    /// The lines that show it.
    pub evidence: Vec<Evidence>,
}

/// Whether a relay or reflexive address can be reached from elsewhere.
fn unreachable(address: &CandidateAddress<'_>) -> Option<AddressClass> {
    let class = address.class();
    matches!(
        class,
        AddressClass::Private
            | AddressClass::Cgnat
            | AddressClass::UniqueLocal
            | AddressClass::LinkLocal
            | AddressClass::Loopback
    )
    .then_some(class)
}

/// Whether checks can reach `address` from another network: not private
/// (by [`unreachable`]'s classes) and not unusable (`0.0.0.0`...). The HTML
/// diagram's pairs are drawn by this, through [`crate::pairs`].
pub(crate) fn reachable_from_elsewhere(address: &CandidateAddress<'_>) -> bool {
    unreachable(address).is_none() && address.class() != AddressClass::Unusable
}

/// A documentation address (RFC 5737's 192.0.2.0/24, 198.51.100.0/24 and
/// 203.0.113.0/24, RFC 3849's 2001:db8::/32): an example value, never a
/// real host — in a relay or reflexive candidate, an example left in a
/// configuration (or an address masked for sharing).
pub(crate) fn documentation(address: &CandidateAddress<'_>) -> Option<&'static str> {
    let CandidateAddress::Ip(ip) = address else {
        return None;
    };
    let is_doc = match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            matches!((a, b, c), (192, 0, 2) | (198, 51, 100) | (203, 0, 113))
        }
        std::net::IpAddr::V6(v6) => v6.segments()[..2] == [0x2001, 0x0db8],
    };
    is_doc
        .then_some("a documentation address (RFC 5737/3849: an example value, no real host has it)")
}

/// A Teredo address (2001::/32): an IPv6 tunnel over IPv4 UDP that
/// Windows clients (Lync, Skype for Business) offer as a host candidate.
pub(crate) fn teredo(address: &CandidateAddress<'_>) -> bool {
    matches!(address, CandidateAddress::Ip(std::net::IpAddr::V6(v6)) if v6.segments()[..2] == [0x2001, 0x0000])
}

fn class_name(class: AddressClass) -> &'static str {
    match class {
        AddressClass::Private => "a private (RFC 1918) address",
        AddressClass::Cgnat => "a carrier-grade NAT (100.64/10) address",
        AddressClass::UniqueLocal => "an IPv6 unique-local address",
        AddressClass::LinkLocal => "a link-local address",
        AddressClass::Loopback => "a loopback address",
        _ => "an address",
    }
}

fn evidence(side: &Side, line: usize, text: &str) -> Evidence {
    Evidence {
        file: side.file.clone(),
        line,
        text: text.to_owned(),
    }
}

/// A timeline event as evidence.
fn event_evidence(event: &crate::call::Event) -> Evidence {
    Evidence {
        file: event.file.clone(),
        line: event.line,
        text: event.what.clone(),
    }
}

/// Whether an address was masked before it was shared: `x.x.x.x`,
/// `1xx.9x.xx.14x`, `*.*.*.*`, `2405:4803:x:x:x:x:x:x`.
fn masked(address: &str) -> bool {
    (address.contains('.') || address.contains(':'))
        && address.contains(['x', 'X', '*'])
        && address
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, 'x' | 'X' | '*' | '.' | ':'))
}

fn who(side: &Side) -> String {
    if side.party.is_empty() && side.role == "excerpt" {
        format!("the candidates pasted in {}", side.file)
    } else if side.party.is_empty() {
        format!("the description in {}", side.file)
    } else if matches!(side.role, "controlling" | "controlled") {
        format!("the {} agent ({})", side.role, side.party)
    } else {
        format!("the {} from {}", side.role, side.party)
    }
}

/// Findings about one side's description.
fn diagnose_side(side: &Side, call_id: Option<&str>, findings: &mut Vec<Finding>) {
    let call = call_id.map(str::to_owned);
    if side.fallback_only {
        findings.push(Finding {
            code: "fallback-sdp-only",
            severity: Severity::Warning,
            message: format!(
                "{} carries only the OCS 2007 compatibility part (ms-proxy-2007fallback): a Lync or Skype for Business endpoint would use the other part, which is missing",
                who(side)
            ),
            fix: "Capture the full INVITE; if it really has only the fallback part, the sender is an OCS 2007-era client.".into(),
            call_id: call.clone(),
            evidence: vec![evidence(side, side.line, "")],
        });
    }
    for media in &side.description.media {
        let mut relay_private = Vec::new();
        let mut relay_unusable = Vec::new();
        let mut srflx_private = Vec::new();
        let mut private_ips: Vec<(String, &str)> = Vec::new();
        let mut srflx_ips: Vec<(String, &str)> = Vec::new();
        let mut kinds = Vec::new();
        // MS-ICE draft 6 lines carry their own username and password.
        let mut draft6 = 0;
        // Candidates whose address was masked before sharing.
        let mut masked_names: Vec<&str> = Vec::new();
        let mut masked_lines = Vec::new();
        // Relay and reflexive candidates at documentation addresses.
        let mut documentation_lines = Vec::new();
        // Host candidates written as mDNS names (`<uuid>.local`).
        let mut mdns_hosts = 0;
        let mut microsoft = false;
        // Public server-reflexive addresses per foundation: one base seen
        // at two public addresses is an address-pooling NAT.
        let mut srflx_by_foundation: Vec<(&str, Vec<String>, Vec<Evidence>)> = Vec::new();
        for (line, text) in &media.candidates {
            let candidate = match Candidate::parse(text) {
                Ok(c) => c,
                Err(e) => {
                    findings.push(Finding {
                        code: "malformed-candidate",
                        severity: Severity::Warning,
                        message: format!("a candidate line of {} cannot be read: {e}", who(side)),
                        fix: "The sending agent wrote an invalid line; it is ignored by its peer."
                            .into(),
                        call_id: call.clone(),
                        evidence: vec![evidence(side, *line, text)],
                    });
                    continue;
                }
            };
            if let CandidateAddress::Name(name) = &candidate.address
                && masked(name)
            {
                if masked_names.len() < 4 && !masked_names.contains(name) {
                    masked_names.push(name);
                }
                masked_lines.push(evidence(side, *line, text));
                continue;
            }
            let kind = crate::dialect::effective_kind(&candidate);
            kinds.push(kind);
            if kind == Some(CandidateType::Host) && candidate.address.class() == AddressClass::Mdns
            {
                mdns_hosts += 1;
            }
            // Which deployment the evidence shows, for the fix to name.
            microsoft |= candidate.dialect != Dialect::Rfc;
            if candidate.kind == Some(CandidateType::ServerReflexive)
                && candidate.address.class() == AddressClass::Public
            {
                let address = candidate.address.to_string();
                match srflx_by_foundation
                    .iter_mut()
                    .find(|(f, _, _)| *f == candidate.foundation)
                {
                    Some((_, addresses, lines)) => {
                        if !addresses.contains(&address) {
                            addresses.push(address);
                            lines.push(evidence(side, *line, text));
                        }
                    }
                    None => srflx_by_foundation.push((
                        candidate.foundation,
                        vec![address],
                        vec![evidence(side, *line, text)],
                    )),
                }
            }
            if candidate.dialect == Dialect::MsIceDraft6 {
                draft6 += 1;
                continue;
            }
            if kind == Some(CandidateType::Relay)
                && candidate.address.class() == AddressClass::Unusable
            {
                relay_unusable.push(evidence(side, *line, text));
                continue;
            }
            if matches!(
                kind,
                Some(CandidateType::Relay | CandidateType::ServerReflexive)
            ) && documentation(&candidate.address).is_some()
            {
                documentation_lines.push(evidence(side, *line, text));
                continue;
            }
            if let Some(class) = unreachable(&candidate.address).map(class_name) {
                match kind {
                    Some(CandidateType::Relay) => {
                        let ip = candidate.address.to_string();
                        if !private_ips.iter().any(|(known, _)| *known == ip) {
                            private_ips.push((ip, class));
                        }
                        relay_private.push(evidence(side, *line, text));
                    }
                    Some(CandidateType::ServerReflexive) => {
                        let ip = candidate.address.to_string();
                        if !srflx_ips.iter().any(|(known, _)| *known == ip) {
                            srflx_ips.push((ip, class));
                        }
                        srflx_private.push(evidence(side, *line, text));
                    }
                    _ => {}
                }
            }
        }
        if !srflx_private.is_empty() {
            findings.push(Finding {
                code: "srflx-private-address",
                severity: Severity::Warning,
                message: format!(
                    "the {} server-reflexive candidates of {} carry {}: {}",
                    media.kind,
                    who(side),
                    srflx_ips
                        .iter()
                        .map(|(ip, class)| format!("{ip}, {class}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                    if srflx_ips.iter().all(|(_, class)| *class == class_name(AddressClass::Cgnat)) {
                        "the client is behind carrier-grade NAT and its STUN server sits inside the carrier's network, so the address it reported is still not public; a peer outside can only reach this client through a relay"
                    } else {
                        "the STUN server that reported them sits inside the same NAT, so they tell nothing about the public side"
                    }
                ),
                fix: "Point clients at a STUN server on the public internet (the edge's public address), and give them a TURN relay for when the NAT is in the way.".into(),
                call_id: call.clone(),
                evidence: srflx_private,
            });
        }
        if !relay_private.is_empty() {
            let addresses: Vec<String> = private_ips
                .iter()
                .map(|(ip, class)| format!("{ip}, {class}"))
                .collect();
            findings.push(Finding {
                code: "relay-private-address",
                severity: Severity::Error,
                message: format!(
                    "the {} relay candidates of {} advertise {}: the TURN/edge server that allocated them is behind NAT without its public address configured, so the other side's connectivity checks can never reach it, and a call that needs the relay connects its signalling and then fails",
                    media.kind,
                    who(side),
                    addresses.join("; ")
                ),
                fix: if microsoft {
                    "Configure the edge's public NAT address. On a Lync or Skype for Business edge: Topology Builder, edit the Edge pool, tick \"A/V Edge service is NAT enabled\", enter the public IP, publish the topology; with `edgeice serve` as the edge: `--external-ip PUBLIC_IP/PRIVATE_IP` (or `--external-ip auto`).".into()
                } else {
                    "Configure the TURN server's public NAT address: coturn's `external-ip=PUBLIC_IP/PRIVATE_IP`, or `edgeice serve --external-ip PUBLIC_IP/PRIVATE_IP` (or `--external-ip auto`).".into()
                },
                call_id: call.clone(),
                evidence: relay_private,
            });
        }
        for (foundation, addresses, lines) in srflx_by_foundation {
            if addresses.len() > 1 {
                findings.push(Finding {
                    code: "address-pooling-nat",
                    severity: Severity::Warning,
                    message: format!(
                        "the {} media of {} has server-reflexive candidates of one foundation ({foundation}) at {} public addresses ({}): its NAT maps one local address to several public ones (address pooling), so a peer's checks may come back from an address the NAT does not expect",
                        media.kind,
                        who(side),
                        addresses.len(),
                        addresses.join(", ")
                    ),
                    fix: "Configure the NAT for paired address pooling (the same public address for all of one host's mappings), or give the client a TURN relay to fall back on.".into(),
                    call_id: call.clone(),
                    evidence: lines,
                });
            }
        }
        if !masked_lines.is_empty() {
            findings.push(Finding {
                code: "malformed-candidate",
                severity: Severity::Warning,
                message: format!(
                    "{} candidate line(s) of {} have a masked address ({}): hidden before the text was shared, so those candidates cannot be judged",
                    masked_lines.len(),
                    who(side),
                    masked_names.join(", ")
                ),
                fix: "Judge the call from the unmasked log, or mask addresses by replacing them with documentation addresses (192.0.2.x, 198.51.100.x, 203.0.113.x, 2001:db8::) of the same kind, which keep the lines readable.".into(),
                call_id: call.clone(),
                evidence: masked_lines,
            });
        }
        if !documentation_lines.is_empty() {
            findings.push(Finding {
                code: "documentation-address",
                // Masking with documentation addresses is what RFC 5737
                // asks for: a note, not an alarm.
                severity: Severity::Info,
                message: format!(
                    "relay or server-reflexive candidates of {} in the {} media carry documentation addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32): either the text was masked before it was shared, or an example value was left in a configuration (a TURN server's external-ip, a NAT mapping), and no peer can reach them",
                    who(side),
                    media.kind
                ),
                fix: "If the addresses were masked, judge from the original text; otherwise put the real public address in the server's configuration (coturn external-ip, edgeice serve --external-ip, the media server's announced address).".into(),
                call_id: call.clone(),
                evidence: documentation_lines,
            });
        }
        if !relay_unusable.is_empty() {
            findings.push(Finding {
                code: "relay-unusable-address",
                severity: Severity::Error,
                message: format!(
                    "the {} relay candidates of {} advertise an address no peer can send to (0.0.0.0, multicast or the like): the TURN server has no relay address of its own configured, so these relays can never carry media",
                    media.kind,
                    who(side)
                ),
                fix: "Give the TURN server the address its relays are reached at: coturn's `relay-ip` (and `external-ip=PUBLIC/PRIVATE` behind NAT), or `edgeice serve --external-ip PUBLIC_IP/PRIVATE_IP`.".into(),
                call_id: call.clone(),
                evidence: relay_unusable,
            });
        }
        // `m=message` is SIP instant messaging (Lync/SfB IM sessions): no
        // media goes to its address.
        if media.candidates.is_empty()
            && !side.fallback_only
            && media.kind != "message"
            && let Some((line, address)) = &media.connection
            && let Ok(ip) = address.parse::<std::net::IpAddr>()
            && let Some(class) = unreachable(&CandidateAddress::Ip(ip))
        {
            findings.push(Finding {
                code: "private-address-without-ice",
                severity: Severity::Warning,
                message: format!(
                    "the {} media of {} goes to {address}, {}, with no ICE candidates: a peer outside that network can only reach it if something on the way (an SBC, a media relay, a NAT-aware proxy) rewrites the address",
                    media.kind,
                    who(side),
                    class_name(class)
                ),
                fix: "Enable ICE on the endpoint, or anchor its media on an SBC or media relay with a public address.".into(),
                call_id: call.clone(),
                evidence: vec![evidence(side, *line, &format!("c=IN {} {address}", if ip.is_ipv4() { "IP4" } else { "IP6" }))],
            });
        }
        if media.candidates.is_empty() || side.fallback_only {
            continue;
        }
        if kinds.is_empty() {
            // Every line was unreadable or masked: said above.
            continue;
        }
        let only_host = kinds.iter().all(|k| matches!(k, Some(CandidateType::Host)));
        // A client that says its media is on the corporate network
        // (Intranet) calls peers on that network: host paths are the
        // ones it needs, so the lack of others is a note.
        let intranet = side
            .media_location
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case("intranet"));
        let (reach_severity, reach_note) = if intranet {
            (
                Severity::Info,
                " (the client says its media is on the corporate network, ms-media-location-type=Intranet: enough for peers on that network)",
            )
        } else {
            (Severity::Warning, "")
        };
        if only_host {
            findings.push(Finding {
                code: "only-host-candidates",
                severity: reach_severity,
                message: format!(
                    "the {} media of {} offers only host candidates{}: unless both ends share a network, nothing can connect{reach_note}",
                    media.kind,
                    who(side),
                    if mdns_hosts == kinds.len() {
                        ", all of them mDNS names (.local) that only a peer on the same link, resolving mDNS, can use"
                    } else {
                        ""
                    }
                ),
                fix: "Give the client a STUN and a TURN server (the edge), and check it can reach them.".into(),
                call_id: call.clone(),
                evidence: vec![evidence(side, media.candidates[0].0, &media.candidates[0].1)],
            });
        } else if !kinds
            .iter()
            .any(|k| matches!(k, Some(CandidateType::Relay)))
        {
            findings.push(Finding {
                code: "no-relay-candidates",
                severity: reach_severity,
                message: format!(
                    "the {} media of {} has no relay candidate: behind a firewall that blocks direct paths, the call will fail{reach_note}",
                    media.kind,
                    who(side)
                ),
                fix: "Check the client's TURN configuration and that it can authenticate to the edge.".into(),
                call_id: call.clone(),
                evidence: vec![evidence(side, media.candidates[0].0, &media.candidates[0].1)],
            });
        }
        if mdns_hosts > 0 && !only_host {
            findings.push(Finding {
                code: "mdns-host-candidates",
                severity: Severity::Info,
                message: format!(
                    "the {} host candidates of {} are mDNS names (.local): a peer that does not resolve mDNS (many SIP and media servers) drops them and can only use the other candidates",
                    media.kind,
                    who(side)
                ),
                fix: "Nothing to fix for a peer elsewhere; a peer on the same network needs mDNS resolution (nss-mdns, or its own mDNS support).".into(),
                call_id: call.clone(),
                evidence: media
                    .candidates
                    .iter()
                    .filter(|(_, t)| t.contains(".local "))
                    .take(3)
                    .map(|(l, t)| evidence(side, *l, t))
                    .collect(),
            });
        }
        // A pasted excerpt rarely quotes the credentials with the
        // candidates: their absence there says nothing.
        if side.role != "excerpt"
            && (media.ufrag.is_none() || !media.has_pwd)
            && draft6 < media.candidates.len()
        {
            findings.push(Finding {
                code: "ice-credentials-missing",
                severity: Severity::Error,
                message: format!(
                    "the {} media of {} has candidates but no a=ice-ufrag/a=ice-pwd: no connectivity check can be authenticated",
                    media.kind,
                    who(side)
                ),
                fix: "The sending agent must include ice-ufrag and ice-pwd (session or media level).".into(),
                call_id: call.clone(),
                evidence: vec![evidence(side, media.candidates[0].0, &media.candidates[0].1)],
            });
        }
    }
}

/// What one media section of one side offers, for comparing the sides.
struct Offered {
    udp: bool,
    tcp: bool,
    v4: bool,
    v6: bool,
    mdns: Vec<Evidence>,
}

fn offered(side: &Side, media: &crate::sdp::Media) -> Offered {
    let mut o = Offered {
        udp: false,
        tcp: false,
        v4: false,
        v6: false,
        mdns: Vec::new(),
    };
    for (line, text) in &media.candidates {
        let Ok(c) = Candidate::parse(text) else {
            continue;
        };
        if c.transport.is_tcp() {
            o.tcp = true;
        } else {
            o.udp = true;
        }
        match c.address {
            CandidateAddress::Ip(ip) if ip.is_ipv4() => o.v4 = true,
            CandidateAddress::Ip(ip) => match ip {
                std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => o.v4 = true,
                _ => o.v6 = true,
            },
            CandidateAddress::Name(_) => {
                if c.address.class() == AddressClass::Mdns {
                    o.mdns.push(evidence(side, *line, text));
                }
                // A name resolves to either family: assume it can match.
                o.v4 = true;
                o.v6 = true;
            }
        }
    }
    o
}

/// Findings that need both sides of a call: can any pair be formed at all?
fn diagnose_pairs(call: &Call, findings: &mut Vec<Finding>) {
    let (Some(offer), Some(answer)) = (&call.offer, &call.answer) else {
        return;
    };
    for (i, offer_media) in offer.description.media.iter().enumerate() {
        let Some(answer_media) = answer.description.media.get(i) else {
            continue;
        };
        if offer_media.candidates.is_empty() || answer_media.candidates.is_empty() {
            continue;
        }
        let (o, a) = (offered(offer, offer_media), offered(answer, answer_media));
        let first = |side: &Side, media: &crate::sdp::Media| {
            evidence(side, media.candidates[0].0, &media.candidates[0].1)
        };
        if !(o.udp && a.udp || o.tcp && a.tcp) {
            findings.push(Finding {
                code: "no-common-transport",
                severity: Severity::Error,
                message: format!(
                    "for {}, one side offers only {} and the other only {}: no candidate pair can be formed",
                    offer_media.kind,
                    if o.tcp { "TCP" } else { "UDP" },
                    if a.tcp { "TCP" } else { "UDP" }
                ),
                fix: "Allow UDP through the firewalls, or give both clients TCP (TURN over TCP or TLS) candidates.".into(),
                call_id: Some(call.call_id.clone()),
                evidence: vec![first(offer, offer_media), first(answer, answer_media)],
            });
        }
        if !(o.v4 && a.v4 || o.v6 && a.v6) {
            findings.push(Finding {
                code: "address-family-mismatch",
                severity: Severity::Error,
                message: format!(
                    "for {}, one side has only IPv{} candidates and the other only IPv{}: they cannot reach each other without a relay that speaks both",
                    offer_media.kind,
                    if o.v6 { 6 } else { 4 },
                    if a.v6 { 6 } else { 4 }
                ),
                fix: "Give the clients a TURN server with dual allocations (ADDITIONAL-ADDRESS-FAMILY), or candidates of a shared family.".into(),
                call_id: Some(call.call_id.clone()),
                evidence: vec![first(offer, offer_media), first(answer, answer_media)],
            });
        }
        for (side, mdns) in [(offer, o.mdns), (answer, a.mdns)] {
            if !mdns.is_empty() {
                findings.push(Finding {
                    code: "mdns-unresolvable",
                    severity: Severity::Warning,
                    message: format!(
                        "{} hides its host addresses behind mDNS .local names: a peer outside its link cannot resolve them, so only its reflexive and relay candidates count",
                        who(side)
                    ),
                    fix: "Expected from browsers; make sure STUN and TURN candidates are there too.".into(),
                    call_id: Some(call.call_id.clone()),
                    evidence: mdns,
                });
            }
        }
    }
}

/// Evidence lines kept per finding; the message says how many there were.
pub(crate) const MAX_EVIDENCE: usize = 10;
/// STUN transactions remembered to pair an error with its request: answers
/// come within seconds, so a window of recent requests is enough, and a
/// capture of millions of packets does not grow the analysis.
const MAX_REQUESTS: usize = 4096;
/// User names quoted by `turn-auth-failed`.
const MAX_USERS: usize = 20;

/// Findings from the STUN/TURN traffic of captures — credentials refused,
/// and the other TURN errors that stop a relay — gathered packet by packet
/// in bounded memory.
#[derive(Debug, Default)]
pub struct StunFindings {
    /// Recent requests: transaction → (authenticated, username, the peers
    /// it names).
    requests: std::collections::HashMap<String, (bool, Option<String>, Vec<std::net::SocketAddr>)>,
    /// The same transactions, oldest first, to forget them in order.
    order: std::collections::VecDeque<String>,
    refused: Vec<Evidence>,
    refused_count: usize,
    users: std::collections::BTreeSet<String>,
    errors: Vec<Evidence>,
    codes: std::collections::BTreeSet<u16>,
    /// The peers named by requests the server answered 403 (Forbidden).
    forbidden_peers: std::collections::BTreeSet<std::net::SocketAddr>,
    /// MS-TURN Allocate requests seen, the first few as evidence, and
    /// whether any MS-TURN answer came.
    ms_turn_allocates: usize,
    ms_turn_evidence: Vec<Evidence>,
    ms_turn_answered: bool,
    ms_turn_servers: std::collections::BTreeSet<std::net::SocketAddr>,
}

impl StunFindings {
    /// Takes one packet into account.
    pub fn push(&mut self, packet: &StunPacket) {
        if packet.dialect == "ms-turn" {
            self.push_ms_turn(packet);
        }
        let Some(code) = packet.error else {
            if packet.what.ends_with("request") && !self.requests.contains_key(&packet.transaction)
            {
                if self.order.len() >= MAX_REQUESTS
                    && let Some(old) = self.order.pop_front()
                {
                    self.requests.remove(&old);
                }
                self.order.push_back(packet.transaction.clone());
                self.requests.insert(
                    packet.transaction.clone(),
                    (
                        packet.authenticated,
                        packet.username.clone(),
                        packet.peers.clone(),
                    ),
                );
            }
            return;
        };
        let request = self.requests.get(&packet.transaction);
        let evidence = Evidence {
            file: packet.file.clone(),
            line: packet.packet,
            text: format!(
                "{} {} from {} to {}",
                packet.what, code, packet.from, packet.to
            ),
        };
        match code {
            // A 401 to a request with credentials (the first 401 of every
            // client, to a request without them, is how TURN starts).
            401 | 441 if request.is_some_and(|r| r.0) => {
                if let Some(user) = request.and_then(|r| r.1.clone())
                    && self.users.len() < MAX_USERS
                {
                    self.users.insert(user);
                }
                self.refused_count += 1;
                if self.refused.len() < MAX_EVIDENCE {
                    self.refused.push(evidence);
                }
            }
            403 | 437 | 442 | 443 | 486 | 508 => {
                if code == 403 {
                    for peer in request.map(|r| r.2.as_slice()).unwrap_or_default() {
                        if self.forbidden_peers.len() < MAX_USERS {
                            self.forbidden_peers.insert(*peer);
                        }
                    }
                }
                self.codes.insert(code);
                if self.errors.len() < MAX_EVIDENCE {
                    self.errors.push(evidence);
                }
            }
            _ => {}
        }
    }

    /// Counts MS-TURN Allocate requests and notes any answer.
    fn push_ms_turn(&mut self, packet: &StunPacket) {
        if packet.what == "Allocate request" {
            self.ms_turn_allocates += 1;
            if self.ms_turn_servers.len() < MAX_USERS {
                self.ms_turn_servers.insert(packet.to);
            }
            if self.ms_turn_evidence.len() < MAX_EVIDENCE {
                self.ms_turn_evidence.push(Evidence {
                    file: packet.file.clone(),
                    line: packet.packet,
                    text: format!(
                        "MS-TURN Allocate request from {} to {}",
                        packet.from, packet.to
                    ),
                });
            }
        } else if packet.what.ends_with("success") || packet.what.ends_with("error") {
            self.ms_turn_answered = true;
        }
    }

    /// The findings so far.
    pub fn findings(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        if self.ms_turn_allocates > 0 && !self.ms_turn_answered {
            let servers: Vec<String> = self.ms_turn_servers.iter().map(|s| s.to_string()).collect();
            findings.push(Finding {
                code: "ms-turn-unanswered",
                severity: Severity::Error,
                message: format!(
                    "{} MS-TURN Allocate requests (Lync or Skype for Business clients) to {} got no answer: that TURN server does not speak MS-TURN (coturn does not), so these clients get no relay candidate and calls across NAT fail",
                    self.ms_turn_allocates,
                    servers.join(", ")
                ),
                fix: "point these clients at an edge that answers MS-TURN: the Lync/Skype for Business A/V Edge, or edgeice serve, which answers MS-TURN and standard TURN on the same ports (check it with edgeice probe --dialect ms-turn)".to_owned(),
                call_id: None,
                evidence: self.ms_turn_evidence.clone(),
            });
        }
        if self.refused_count > 0 {
            let users: Vec<&str> = self.users.iter().map(String::as_str).collect();
            findings.push(turn_auth_failed(
                &if users.is_empty() {
                    "a client".to_owned()
                } else {
                    users.join(", ")
                },
                &format!("{} answers", self.refused_count),
                None,
                self.refused.clone(),
            ));
        }
        if !self.codes.is_empty() {
            let mut finding = turn_error(&self.codes, None, self.errors.clone());
            if let Some(refused) = forbidden_peers(&self.forbidden_peers) {
                finding.message.push_str(&refused.message);
                if refused.all_routine && self.codes.len() == 1 {
                    finding.severity = Severity::Info;
                }
            }
            findings.push(finding);
        }
        findings
    }
}

/// What a TURN server's 403s refused: the peers the requests named, and
/// whether its policy explains them.
struct ForbiddenPeers {
    /// Appended to the `turn-error` message.
    message: String,
    /// Every refused peer is one that servers refuse by default (private,
    /// loopback, link-local...): routine, not a fault.
    all_routine: bool,
}

/// Says which peers 403 refused, and whether the usual peer policy
/// explains it: coturn and edgeice refuse private, loopback and link-local
/// peers unless allowed, so such a refusal is routine; a public peer
/// refused means a deny list or an allow list that leaves it out.
fn forbidden_peers(
    peers: &std::collections::BTreeSet<std::net::SocketAddr>,
) -> Option<ForbiddenPeers> {
    if peers.is_empty() {
        return None;
    }
    let mut routine = Vec::new();
    let mut public = Vec::new();
    for peer in peers {
        let class = CandidateAddress::Ip(peer.ip()).class();
        let shown = peer.to_string();
        match class {
            AddressClass::Public => public.push(shown),
            other => routine.push(format!("{shown} ({})", class_name(other))),
        }
    }
    let mut message = String::new();
    if !routine.is_empty() {
        message.push_str(&format!(
            "; 403 refused the peer {}: servers refuse such peers by default (coturn's denied-peer-ip and no-loopback-peers, edgeice serve's built-in policy), so this is routine unless that peer should be relayed to (then allow its network: coturn allowed-peer-ip, edgeice serve --allow-peer)",
            routine.join(", ")
        ));
    }
    if !public.is_empty() {
        message.push_str(&format!(
            "; 403 refused the public peer {}: no default policy refuses a public address, so the server's deny list (coturn denied-peer-ip, edgeice serve --deny-peer) or an allow list that leaves it out does",
            public.join(", ")
        ));
    }
    Some(ForbiddenPeers {
        message,
        all_routine: public.is_empty(),
    })
}

/// `turn-auth-failed`: `who` had its credentials refused (`how`: the
/// answers counted, or the server that refused).
pub(crate) fn turn_auth_failed(
    who: &str,
    how: &str,
    call_id: Option<String>,
    evidence: Vec<Evidence>,
) -> Finding {
    Finding {
        code: "turn-auth-failed",
        severity: Severity::Error,
        message: format!(
            "the TURN server refused the credentials of {who} ({how}): no relay candidate can be made"
        ),
        fix: "Check the user name, password and realm the client is given (for REST credentials, the shared secret and the clocks).".into(),
        call_id,
        evidence,
    }
}

/// `turn-error`: the server answered these TURN error codes.
pub(crate) fn turn_error(
    codes: &std::collections::BTreeSet<u16>,
    call_id: Option<String>,
    evidence: Vec<Evidence>,
) -> Finding {
    let named: Vec<String> = codes
        .iter()
        .map(|&c| format!("{c} ({})", turn_error_meaning(c).0))
        .collect();
    let fixes: Vec<String> = codes
        .iter()
        .map(|&c| format!("{c}: {}", turn_error_meaning(c).1))
        .collect();
    Finding {
        code: "turn-error",
        severity: Severity::Warning,
        message: format!("the TURN server answered {}", named.join(", ")),
        fix: fixes.join(" "),
        call_id,
        evidence,
    }
}

/// What a TURN error code means, and what an operator does about it.
fn turn_error_meaning(code: u16) -> (&'static str, &'static str) {
    match code {
        403 => (
            "Forbidden",
            "the server's peer policy refused the peer address; allow the peer's network on the server if it should be reachable (a private or loopback peer is refused by default).",
        ),
        437 => (
            "Allocation Mismatch",
            "the allocation had expired or was never made (a client that refreshes too late, or a NAT that changed the client's port); check refresh timing and NAT binding lifetimes.",
        ),
        442 => (
            "Unsupported Transport Protocol",
            "the client asked for a relay transport the server does not offer; enable it on the server or use UDP relays.",
        ),
        443 => (
            "Peer Address Family Mismatch",
            "the peer is IPv4 and the relay IPv6 or the reverse; give the server relay addresses of both families.",
        ),
        486 => (
            "Allocation Quota Reached",
            "the user holds as many allocations as its quota allows; raise the quota (edgeice serve --max-allocations-per-user, coturn user-quota) or find the client that leaks allocations.",
        ),
        508 => (
            "Insufficient Capacity",
            "the server is out of relay ports or allocations; widen --relay-ports or raise --max-allocations.",
        ),
        _ => ("error", "see the server's log for this request."),
    }
}

/// Findings that guess from the candidates whether media can connect: an
/// agent that saw it connect outranks them.
const GUESSES: [&str; 5] = [
    "only-host-candidates",
    "no-relay-candidates",
    "mdns-unresolvable",
    "srflx-private-address",
    "no-common-transport",
];

/// What a browser's dump adds: the pair it selected, the servers that
/// failed it, and a configuration that explains a failure.
fn diagnose_browser(call: &Call, browser: &crate::call::Browser, findings: &mut Vec<Finding>) {
    let call_id = Some(call.call_id.clone());
    let dump = |index: usize, text: String| Evidence {
        file: call
            .offer
            .as_ref()
            .or(call.answer.as_ref())
            .map_or_else(String::new, |s| s.file.clone()),
        line: index,
        text,
    };
    if let Some(pair) = &browser.selected_pair {
        findings.push(Finding {
            code: "ice-connected",
            severity: Severity::Info,
            message: format!(
                "the browser's stats show the selected candidate pair succeeded: {pair}"
            ),
            fix: "Nothing to fix on this connection's path.".into(),
            call_id: call_id.clone(),
            evidence: Vec::new(),
        });
    }
    // One finding per server and code: Chrome repeats them per interface.
    let mut seen: Vec<(&str, u16)> = Vec::new();
    for e in &browser.candidate_errors {
        if seen.contains(&(e.url.as_str(), e.code)) {
            continue;
        }
        seen.push((e.url.as_str(), e.code));
        let turn = e.url.to_ascii_lowercase().starts_with("turn");
        let meaning = match e.code {
            401 => "the TURN server refused the credentials (401 Unauthorized): the page's TURN username or password is wrong or expired".to_owned(),
            701 => "the server could not be reached from this interface (no answer, a DNS failure or no route; Chrome reports 701 for each interface that fails, which is routine for IPv6 or VPN interfaces)".to_owned(),
            code => format!("the server answered {code} ({})", turn_error_meaning(code).0),
        };
        let severity = if call.connected {
            Severity::Info
        } else if call.ice_failed && turn {
            Severity::Error
        } else {
            Severity::Warning
        };
        findings.push(Finding {
            code: "ice-candidate-error",
            severity,
            message: format!(
                "the browser reports an ICE candidate error from {}: {meaning}{}",
                if e.url.is_empty() { "an ICE server" } else { &e.url },
                if e.text.is_empty() { String::new() } else { format!(" — \"{}\"", e.text) }
            ),
            fix: match (e.code, turn) {
                (401, _) => "Check how the page obtains TURN credentials (a shared secret out of step with the server's, an expired time-limited username).".into(),
                (701, true) => "Check that the TURN server's address resolves and that its port is open from the client's network (UDP 3478, or TCP/TLS 443 for restrictive networks).".into(),
                (701, false) => "Routine when another interface or server succeeded; otherwise check the STUN server's address and that UDP to it is allowed.".into(),
                (code, _) => turn_error_meaning(code).1.into(),
            },
            call_id: call_id.clone(),
            evidence: vec![dump(e.index, format!("icecandidateerror {} {} {}", e.url, e.code, e.text))],
        });
    }
    let Some(config) = &browser.configuration else {
        return;
    };
    let relay_gathered = [call.offer.as_ref(), call.answer.as_ref()]
        .into_iter()
        .flatten()
        .filter(|s| s.party == "local")
        .flat_map(|s| s.description.media.iter())
        .flat_map(|m| m.candidates.iter())
        .any(|(_, t)| t.contains(" typ relay"));
    if config.ice_transport_policy.as_deref() == Some("relay") && !relay_gathered && !call.connected
    {
        findings.push(Finding {
            code: "relay-policy-without-relay",
            severity: Severity::Error,
            message: format!(
                "the page set iceTransportPolicy \"relay\" but the browser gathered no relay candidate{}: with that policy nothing else may be used, so nothing can connect",
                if config.has_turn() { "" } else { " — and no TURN server is configured" }
            ),
            fix: "Give the page a TURN server it can reach and authenticate to, or drop the relay-only policy.".into(),
            call_id: call_id.clone(),
            evidence: Vec::new(),
        });
    } else if call.ice_failed && !config.has_turn() {
        findings.push(Finding {
            code: "no-turn-server",
            severity: Severity::Warning,
            message: format!(
                "ICE failed and the page configured no TURN server ({}): when the direct and reflexive paths are blocked there is no relay to fall back on",
                if config.ice_servers.is_empty() { "iceServers is empty".to_owned() } else { format!("iceServers: {}", config.ice_servers.join(", ")) }
            ),
            fix: "Add a TURN server to the page's iceServers (with UDP and TCP/TLS transports).".into(),
            call_id,
            evidence: Vec::new(),
        });
    }
}

/// A Lync/Skype for Business client's own word that the media failed
/// (an `ms-client-diagnostics` code documented as one, 22 to 25, or a
/// reason saying so; 51007 and 51004 are reports, not failures), with the
/// path its `CallerMediaDebug`/`CalleeMediaDebug` shows.
fn diagnose_ms_diagnostics(call: &Call, findings: &mut Vec<Finding>) {
    let Some((event, d)) = call.timeline.iter().find_map(|e| {
        e.diagnostics
            .iter()
            .find(|d| d.media_failed())
            .map(|d| (e, d))
    }) else {
        return;
    };
    let mut paths = Vec::new();
    for (side, who) in [
        ("CallerMediaDebug", "caller"),
        ("CalleeMediaDebug", "callee"),
    ] {
        let field = |f: &str| d.media_field(side, f).filter(|v| !v.is_empty());
        if d.media_debug.iter().all(|(s, _, _)| s != side) {
            continue;
        }
        let mut parts = Vec::new();
        if let Some(site) = field("LocalSite") {
            parts.push(format!("its own address {site}"));
        }
        match field("LocalMR") {
            Some(mr) => parts.push(format!(
                "its media relay (Edge) {mr}{}",
                field("LocalMRTCPPort").map(|p| format!(", TCP port {p}")).unwrap_or_default()
            )),
            // Only when the debug field is whole (it names the site): a
            // pasted one is often cut short.
            None if field("LocalSite").is_some() => parts.push("no media relay of its own (no Edge allocation: the client could not reach or authenticate to its A/V Edge)".into()),
            None => {}
        }
        if let Some(mr) = field("RemoteMR") {
            parts.push(format!(
                "the far side's relay {mr}{}",
                field("RemoteMRTCPPort")
                    .map(|p| format!(", TCP port {p}"))
                    .unwrap_or_default()
            ));
        }
        for flag in ["ICEWarn", "ICEWarnEx"] {
            if let Some(v) = field(flag)
                && !matches!(v, "0" | "0x0")
            {
                // ICEWarnEx's bits are not in the published table.
                let words = (flag == "ICEWarn")
                    .then(|| crate::ms_codes::describe_ice_warn(v))
                    .flatten();
                parts.push(match words {
                    Some(words) => format!("{flag}={v} ({words})"),
                    None => format!("{flag}={v} (the client recorded ICE warnings)"),
                });
            }
        }
        paths.push(format!("the {who} reports {}", parts.join(", ")));
    }
    findings.push(Finding {
        code: "ms-media-failure",
        severity: Severity::Error,
        message: format!(
            "{} says the media could not connect: {}{}",
            event.what,
            crate::report::describe_diagnostics(d),
            if paths.is_empty() { String::new() } else { format!("; {}", paths.join("; ")) }
        ),
        fix: "Read the candidate findings for why; a side without a media relay needs its A/V Edge reachable (TCP 443 and UDP 3478 to the Edge's public address) and, behind NAT, the Edge's public address published (Topology Builder: \"A/V Edge service is NAT enabled\").".into(),
        call_id: Some(call.call_id.clone()),
        evidence: vec![event_evidence(event)],
    });
}

/// Whether the call's far end is on a private network too: the INVITE's
/// request URI names a private address, or the answer's media goes to one.
fn call_inside_one_network(call: &Call) -> Option<String> {
    let private = |host: &str| {
        host.trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .ok()
            .and_then(|ip| unreachable(&CandidateAddress::Ip(ip)))
            .is_some()
    };
    let invite = call.timeline.iter().find(|e| e.what.starts_with("INVITE "));
    if let Some(uri) = invite.and_then(|e| e.what.split_whitespace().nth(1)) {
        let host_port = uri.split(';').next().unwrap_or(uri);
        let host_port = host_port.rsplit('@').next().unwrap_or(host_port);
        let host_port = host_port
            .strip_prefix("sip:")
            .or_else(|| host_port.strip_prefix("sips:"))
            .unwrap_or(host_port);
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => host_port.split(':').next().unwrap_or(host_port),
        };
        if private(host) {
            return Some(format!(
                "the INVITE is addressed to {host}, a private address"
            ));
        }
    }
    let answer = call.answer.as_ref()?;
    answer
        .description
        .media
        .iter()
        .filter_map(|m| m.connection.as_ref())
        .find(|(_, address)| private(address))
        .map(|(_, address)| format!("the answer's media goes to {address}, a private address"))
}

/// The findings about one call, most severe first.
pub fn diagnose_call(call: &Call) -> Vec<Finding> {
    let mut findings = Vec::new();
    for side in call.offer.iter().chain(call.answer.iter()) {
        diagnose_side(side, Some(&call.call_id), &mut findings);
    }
    diagnose_pairs(call, &mut findings);
    if let Some(why) = call_inside_one_network(call) {
        // A room system calling another on the corporate LAN: a private
        // address is what both ends use, not a sign of a NAT in the way.
        for f in &mut findings {
            if f.code == "private-address-without-ice" && f.severity != Severity::Info {
                f.severity = Severity::Info;
                f.message.push_str(&format!(
                    " ({why}: a call inside one network, where that address is reachable)"
                ));
            }
        }
    }
    if call.connected {
        // What the candidates suggest is a guess; the agent saw the media
        // connect. The guesses stay as notes, for other peers.
        for f in &mut findings {
            if GUESSES.contains(&f.code) && f.severity != Severity::Info {
                f.severity = Severity::Info;
                // Its own log shows it connected: no "nothing can connect".
                f.message = f.message.replace(
                    "nothing can connect",
                    "only a peer on a shared network can connect",
                );
                f.message.push_str(
                    " (this connection worked all the same, so this only matters for other peers)",
                );
            }
        }
    }
    if let Some(browser) = &call.browser {
        diagnose_browser(call, browser, &mut findings);
    }
    diagnose_ms_diagnostics(call, &mut findings);
    if call.ice_failed {
        // The state change itself, rather than a check or a server that
        // failed on the way.
        let says = |e: &&crate::call::Event, what: &str| e.what.to_ascii_lowercase().contains(what);
        let failed = call
            .timeline
            .iter()
            .find(|e| says(e, "state failed") || says(e, "statechange: failed"))
            .or_else(|| call.timeline.iter().find(|e| says(e, "failed")));
        let who = if call.source == "webrtc-internals" {
            "the browser"
        } else {
            "the ICE agent"
        };
        findings.push(Finding {
            code: "ice-failed",
            severity: Severity::Error,
            message: format!("{who} reports that ICE failed: no candidate pair worked"),
            fix: "Read the other findings for why the candidates could not reach each other."
                .into(),
            call_id: Some(call.call_id.clone()),
            evidence: failed.map(event_evidence).into_iter().collect(),
        });
    }
    // Only where ICE was in play: a call without candidates has no checks
    // to end during.
    let ice_in_play = [call.offer.as_ref(), call.answer.as_ref()]
        .into_iter()
        .flatten()
        .any(|s| s.description.media.iter().any(|m| !m.candidates.is_empty()));
    if let Some(seconds) = call.seconds_to_bye
        && seconds <= 30.0
        && !call.promoted
        && ice_in_play
        && !call.connected
    {
        let bye = call.timeline.iter().find(|e| e.what.starts_with("BYE "));
        findings.push(Finding {
            code: "call-ended-during-checks",
            severity: Severity::Error,
            message: format!(
                "the call ended {seconds:.1} s after it was answered, with no candidate promotion: its media never connected (ICE gave up){}",
                bye.and_then(|e| e.diagnostics.first())
                    .map(|d| format!("; the BYE says {}", crate::report::describe_diagnostics(d)))
                    .unwrap_or_default()
            ),
            fix: "Read the other findings: the candidates could not reach each other.".into(),
            call_id: Some(call.call_id.clone()),
            evidence: bye.map(event_evidence).into_iter().collect(),
        });
    }
    findings.sort_by_key(|f| f.severity);
    findings
}

/// The findings about a bare SDP description.
pub fn diagnose_description(side: &Side) -> Vec<Finding> {
    let mut findings = Vec::new();
    diagnose_side(side, None, &mut findings);
    findings
}

/// All findings about calls, descriptions and STUN packets held in memory,
/// most severe first.
pub fn diagnose(calls: &[Call], descriptions: &[Side], stun: &[StunPacket]) -> Vec<Finding> {
    let mut from_stun = StunFindings::default();
    for packet in stun {
        from_stun.push(packet);
    }
    let mut findings = from_stun.findings();
    for call in calls {
        findings.extend(diagnose_call(call));
    }
    for side in descriptions {
        findings.extend(diagnose_description(side));
    }
    findings.sort_by_key(|f| f.severity);
    findings
}

#[cfg(test)]
mod forbidden_peer_tests {
    use super::*;

    /// A CreatePermission request naming `peer`, or its 403 answer.
    fn packet(number: usize, peer: Option<std::net::SocketAddr>) -> StunPacket {
        let client: std::net::SocketAddr = "192.0.2.10:50000".parse().unwrap();
        let server: std::net::SocketAddr = "198.51.100.1:3478".parse().unwrap();
        StunPacket {
            file: "t.pcap".into(),
            packet: number,
            timestamp: String::new(),
            transport: "udp",
            from: if peer.is_some() { client } else { server },
            to: if peer.is_some() { server } else { client },
            what: if peer.is_some() {
                "CreatePermission request".into()
            } else {
                "CreatePermission error".into()
            },
            transaction: format!("t{}", number / 2),
            error: peer.is_none().then_some(403),
            authenticated: true,
            username: Some("u".into()),
            dialect: "standard",
            mapped_address: None,
            change_request: false,
            peers: peer.into_iter().collect(),
        }
    }

    fn finding_for(peer: &str) -> Finding {
        let mut stun = StunFindings::default();
        stun.push(&packet(2, Some(peer.parse().unwrap())));
        stun.push(&packet(3, None));
        stun.findings()
            .into_iter()
            .find(|f| f.code == "turn-error")
            .expect("turn-error")
    }

    #[test]
    fn a_private_peer_refused_is_routine() {
        let finding = finding_for("10.1.2.3:4000");
        assert!(
            finding.message.contains("10.1.2.3:4000"),
            "{}",
            finding.message
        );
        assert!(finding.message.contains("routine"), "{}", finding.message);
        assert_eq!(finding.severity, Severity::Info);
    }

    #[test]
    fn a_public_peer_refused_names_the_deny_list() {
        let finding = finding_for("[2a00:1450:4001::1]:4000");
        assert!(
            finding.message.contains("[2a00:1450:4001::1]:4000"),
            "{}",
            finding.message
        );
        assert!(finding.message.contains("deny list"), "{}", finding.message);
        assert_eq!(finding.severity, Severity::Warning);
    }
}
