//! Candidates as the JSON report shows them: every field of the line
//! decoded, next to the line itself.

use edgeice_candidate::{Candidate, CandidateType, Dialect, Priority, TcpType, Transport};
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};

/// One candidate line of a media section, decoded.
#[derive(Debug, Serialize)]
pub struct CandidateReport<'a> {
    /// The line number in its file.
    pub line: usize,
    /// The line as written.
    pub text: &'a str,
    /// The decoded fields; absent when the line is malformed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded: Option<Decoded<'a>>,
    /// Why the line could not be read; absent when it could.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The fields of a candidate line.
#[derive(Debug, Serialize)]
pub struct Decoded<'a> {
    /// `rfc`, `ms-ice2` or `ms-ice-draft6`.
    pub dialect: &'static str,
    /// The foundation (for MS-ICE draft 6, the candidate's username).
    pub foundation: &'a str,
    /// The component ID.
    pub component: u16,
    /// `rtp` for component 1, `rtcp` for 2, else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component_name: Option<&'static str>,
    /// The transport as written (`UDP`, `TCP`, `TCP-ACT`, `TCP-PASS`...).
    pub transport: String,
    /// For TCP: `active`, `passive` or `so`, from `tcptype` or from the
    /// MS-ICE2 transport name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_role: Option<&'static str>,
    /// The priority as written (a number, or a draft-6 q-value string).
    pub priority: String,
    /// RFC 8445 priority fields, for numeric priorities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_fields: Option<PriorityFields>,
    /// The address (an IP or a host name).
    pub address: String,
    /// The port.
    pub port: u16,
    /// `public`, `private`, `cgnat`, `unique-local`, `link-local`,
    /// `loopback`, `unusable`, `mdns` or `host-name`.
    pub address_class: &'static str,
    /// `host`, `srflx`, `prflx`, `relay` (or as written); absent in
    /// MS-ICE draft 6 lines, which have no type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The type as the line writes it, when the analysis reads it as
    /// another: Lync's active-TCP host candidate, written `typ srflx` with
    /// `raddr` equal to its address, is a `host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_type: Option<String>,
    /// `raddr`/`rport`: a reflexive candidate's base, a relay's client side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<Related>,
    /// Every other `name value` extension (`generation`, `ufrag`,
    /// `network-id`, `network-cost`...), in order.
    pub extensions: Vec<(&'a str, &'a str)>,
    /// Written as `a=x-candidate-ipv6:` (MS-ICE2).
    pub ipv6_attribute: bool,
}

/// The split of an RFC 8445 priority.
#[derive(Debug, Serialize)]
pub struct PriorityFields {
    /// Bits 31–24.
    pub type_preference: u8,
    /// Bits 23–8.
    pub local_preference: u16,
    /// `256 -` bits 7–0: should equal the line's component.
    pub component: u16,
    /// The local preference's MS-ICE2 bit fields, given when the media
    /// section is an MS-ICE2 agent's (it has a `TCP-ACT`/`TCP-PASS` or
    /// `x-candidate-ipv6` candidate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms_ice2: Option<MsIce2Fields>,
}

/// The MS-ICE2 reading of a local preference.
#[derive(Debug, Serialize)]
pub struct MsIce2Fields {
    /// Bits 15–12 of the local preference (15 UDP, 6 TCP).
    pub transport_preference: u8,
    /// What those bits stand for, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<&'static str>,
    /// Bits 11–9 (5 active, 2 passive).
    pub direction_preference: u8,
    /// What those bits stand for, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    /// Bits 8–0: the agent's own order of interfaces and relays.
    pub other_preference: u16,
}

/// The `raddr`/`rport` of a candidate.
#[derive(Debug, Serialize)]
pub struct Related {
    /// The related address.
    pub address: String,
    /// The related port.
    pub port: u16,
    /// Its address class.
    pub address_class: &'static str,
}

/// Whether a media section's candidates come from an MS-ICE2 agent.
pub fn is_ms_ice2(candidates: &[(usize, String)]) -> bool {
    candidates
        .iter()
        .any(|(_, text)| Candidate::parse(text).is_ok_and(|c| c.dialect == Dialect::MsIce2))
}

impl<'a> CandidateReport<'a> {
    /// Decodes one line; `ms_ice2` asks for the MS-ICE2 priority fields.
    pub fn new(line: usize, text: &'a str, ms_ice2: bool) -> Self {
        match Candidate::parse(text) {
            Ok(c) => CandidateReport {
                line,
                text,
                decoded: Some(Decoded::new(&c, ms_ice2)),
                error: None,
            },
            Err(e) => CandidateReport {
                line,
                text,
                decoded: None,
                error: Some(e.to_string()),
            },
        }
    }
}

impl<'a> Decoded<'a> {
    fn new(c: &Candidate<'a>, ms_ice2: bool) -> Self {
        let tcp_role = match (c.transport, c.tcp_type) {
            (_, Some(role)) => Some(role.as_str()),
            (Transport::TcpActive, None) => Some(TcpType::Active.as_str()),
            (Transport::TcpPassive, None) => Some(TcpType::Passive.as_str()),
            _ => None,
        };
        let priority_fields = match c.priority {
            Priority::Ice(_) => Some(PriorityFields {
                type_preference: c.priority.type_preference().unwrap_or_default(),
                local_preference: c.priority.local_preference().unwrap_or_default(),
                component: c.priority.component().unwrap_or_default(),
                ms_ice2: ms_ice2
                    .then(|| c.priority.ms_ice2_local_preference())
                    .flatten()
                    .map(|f| MsIce2Fields {
                        transport_preference: f.transport,
                        transport: f.transport_name(),
                        direction_preference: f.direction,
                        direction: f.direction_name(),
                        other_preference: f.other,
                    }),
            }),
            Priority::QValue(_) => None,
        };
        Decoded {
            dialect: match c.dialect {
                Dialect::Rfc => "rfc",
                Dialect::MsIce2 => "ms-ice2",
                Dialect::MsIceDraft6 => "ms-ice-draft6",
            },
            foundation: c.foundation,
            component: c.component,
            component_name: match c.component {
                1 => Some("rtp"),
                2 => Some("rtcp"),
                _ => None,
            },
            transport: c.transport.to_string(),
            tcp_role,
            priority: c.priority.to_string(),
            priority_fields,
            address: c.address.to_string(),
            port: c.port,
            address_class: c.address.class().as_str(),
            kind: crate::dialect::effective_kind(c).map(|k: CandidateType<'_>| k.to_string()),
            written_type: crate::dialect::is_ms_active_tcp_host(c)
                .then(|| c.kind.map(|k| k.to_string()))
                .flatten(),
            related: c.related.map(|(address, port)| Related {
                address: address.to_string(),
                port,
                address_class: address.class().as_str(),
            }),
            extensions: c.extensions.clone(),
            ipv6_attribute: c.ipv6_attribute,
        }
    }
}

/// Writes a media section's candidate lines as [`CandidateReport`]s.
pub(crate) fn serialize_candidates<S: Serializer>(
    candidates: &[(usize, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let ms_ice2 = is_ms_ice2(candidates);
    let mut seq = serializer.serialize_seq(Some(candidates.len()))?;
    for (line, text) in candidates {
        seq.serialize_element(&CandidateReport::new(*line, text, ms_ice2))?;
    }
    seq.end()
}
