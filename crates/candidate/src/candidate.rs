//! One candidate line, parsed and written back.

use std::fmt;

use crate::address::CandidateAddress;
use crate::priority::Priority;

/// Which grammar a line follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// RFC 8839 / RFC 5245 (with RFC 6544 for TCP).
    Rfc,
    /// Microsoft MS-ICE2: `TCP-ACT`/`TCP-PASS`, or an `x-candidate-ipv6` line.
    MsIce2,
    /// MS-ICE draft 6 (OCS 2007): username, password and a q-value priority.
    MsIceDraft6,
}

/// The transport of a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport<'a> {
    /// UDP.
    Udp,
    /// TCP (RFC 6544; the role is in [`Candidate::tcp_type`]).
    Tcp,
    /// MS-ICE2 `TCP-ACT`: the agent will open the connection.
    TcpActive,
    /// MS-ICE2 `TCP-PASS`: the agent waits for connections.
    TcpPassive,
    /// Anything else, as written.
    Other(&'a str),
}

impl<'a> Transport<'a> {
    fn parse(token: &'a str) -> Self {
        if token.eq_ignore_ascii_case("udp") {
            Transport::Udp
        } else if token.eq_ignore_ascii_case("tcp") {
            Transport::Tcp
        } else if token.eq_ignore_ascii_case("tcp-act") {
            Transport::TcpActive
        } else if token.eq_ignore_ascii_case("tcp-pass") {
            Transport::TcpPassive
        } else {
            Transport::Other(token)
        }
    }

    /// Whether this is one of the transports candidate lines know.
    fn is_known(&self) -> bool {
        !matches!(self, Transport::Other(_))
    }

    /// Whether the transport is TCP, in any dialect.
    pub fn is_tcp(&self) -> bool {
        matches!(
            self,
            Transport::Tcp | Transport::TcpActive | Transport::TcpPassive
        )
    }
}

impl fmt::Display for Transport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::TcpActive => "TCP-ACT",
            Transport::TcpPassive => "TCP-PASS",
            Transport::Other(t) => t,
        })
    }
}

/// The role of a TCP candidate (RFC 6544 `tcptype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpType {
    /// Opens connections.
    Active,
    /// Accepts connections.
    Passive,
    /// Both at once (simultaneous open).
    SimultaneousOpen,
}

impl TcpType {
    fn parse(token: &str) -> Option<Self> {
        match token {
            "active" => Some(TcpType::Active),
            "passive" => Some(TcpType::Passive),
            "so" => Some(TcpType::SimultaneousOpen),
            _ => None,
        }
    }

    /// The token as written after `tcptype` (`active`, `passive`, `so`).
    pub fn as_str(self) -> &'static str {
        match self {
            TcpType::Active => "active",
            TcpType::Passive => "passive",
            TcpType::SimultaneousOpen => "so",
        }
    }
}

/// Where a candidate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CandidateType<'a> {
    /// An address of the agent's own interface.
    Host,
    /// Its address as a STUN server saw it (outside its NAT).
    ServerReflexive,
    /// Learned from a connectivity check.
    PeerReflexive,
    /// An address on a TURN server that relays for it.
    Relay,
    /// Anything else, as written.
    Other(&'a str),
}

impl<'a> CandidateType<'a> {
    fn parse(token: &'a str) -> Self {
        match token {
            "host" => CandidateType::Host,
            "srflx" => CandidateType::ServerReflexive,
            "prflx" => CandidateType::PeerReflexive,
            "relay" => CandidateType::Relay,
            other => CandidateType::Other(other),
        }
    }
}

impl fmt::Display for CandidateType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CandidateType::Host => "host",
            CandidateType::ServerReflexive => "srflx",
            CandidateType::PeerReflexive => "prflx",
            CandidateType::Relay => "relay",
            CandidateType::Other(t) => t,
        })
    }
}

/// Why a line is not a candidate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CandidateError {
    /// Fewer fields than the grammar needs.
    #[error("candidate line ends before its {0}")]
    Missing(&'static str),
    /// A field that is not what the grammar allows there.
    #[error("invalid {field}: {value:?}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What was there.
        value: String,
    },
    /// An extension name without its value.
    #[error("extension {0:?} has no value")]
    DanglingExtension(String),
}

fn invalid(field: &'static str, value: &str) -> CandidateError {
    CandidateError::Invalid {
        field,
        value: value.chars().take(64).collect(),
    }
}

/// One candidate, borrowing from its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The grammar the line follows.
    pub dialect: Dialect,
    /// Written as `a=x-candidate-ipv6:` (MS-ICE2) rather than `a=candidate:`.
    pub ipv6_attribute: bool,
    /// The foundation; for MS-ICE draft 6, the candidate's username.
    pub foundation: &'a str,
    /// The component: 1 for RTP, 2 for RTCP.
    pub component: u16,
    /// MS-ICE draft 6 only: the candidate's password.
    pub password: Option<&'a str>,
    /// The transport.
    pub transport: Transport<'a>,
    /// The priority.
    pub priority: Priority,
    /// The address.
    pub address: CandidateAddress<'a>,
    /// The port.
    pub port: u16,
    /// The type (`typ`); MS-ICE draft 6 lines have none.
    pub kind: Option<CandidateType<'a>>,
    /// `raddr` and `rport`: the base of a reflexive candidate, or the
    /// client-side address of a relay one.
    pub related: Option<(CandidateAddress<'a>, u16)>,
    /// RFC 6544 `tcptype`.
    pub tcp_type: Option<TcpType>,
    /// Every other extension, in order (`generation`, `ufrag`,
    /// `network-id`, `network-cost`, ...).
    pub extensions: Vec<(&'a str, &'a str)>,
}

/// Strips `a=` and the attribute name, noting an `x-candidate-ipv6` one.
fn strip_attribute(line: &str) -> (&str, bool) {
    // Trim exactly what tokens are split on (ASCII whitespace): a wider
    // trim would eat a token that splitting keeps (a vertical tab, say).
    let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
    let line = line.strip_prefix("a=").unwrap_or(line);
    if let Some(value) = line.strip_prefix("candidate:") {
        (value, false)
    } else if let Some(value) = line.strip_prefix("x-candidate-ipv6:") {
        (value, true)
    } else {
        (line, false)
    }
}

fn number<T: std::str::FromStr>(token: &str, field: &'static str) -> Result<T, CandidateError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(field, token));
    }
    token.parse().map_err(|_| invalid(field, token))
}

impl<'a> Candidate<'a> {
    /// Parses a candidate line: `a=candidate:...`, `candidate:...`,
    /// `a=x-candidate-ipv6:...`, or the bare attribute value.
    pub fn parse(line: &'a str) -> Result<Self, CandidateError> {
        let (value, ipv6_attribute) = strip_attribute(line);
        let tokens: Vec<&'a str> = value.split_ascii_whitespace().collect();
        let field = |i: usize, name: &'static str| {
            tokens.get(i).copied().ok_or(CandidateError::Missing(name))
        };

        // MS-ICE draft 6: `username component password transport q address port`.
        if tokens.len() == 7
            && !tokens.contains(&"typ")
            && Transport::parse(tokens[3]).is_known()
            && let Some(priority) = Priority::parse_qvalue(tokens[4])
        {
            return Ok(Candidate {
                dialect: Dialect::MsIceDraft6,
                ipv6_attribute,
                foundation: tokens[0],
                component: component(tokens[1])?,
                password: Some(tokens[2]),
                transport: Transport::parse(tokens[3]),
                priority,
                address: CandidateAddress::parse(tokens[5]),
                port: number(tokens[6], "port")?,
                kind: None,
                related: None,
                tcp_type: None,
                extensions: Vec::new(),
            });
        }

        let foundation = field(0, "foundation")?;
        if foundation.len() > 32 {
            return Err(invalid("foundation", foundation));
        }
        let component = component(field(1, "component")?)?;
        let transport = Transport::parse(field(2, "transport")?);
        let priority = Priority::Ice(number(field(3, "priority")?, "priority")?);
        let address = CandidateAddress::parse(field(4, "address")?);
        let port = number(field(5, "port")?, "port")?;

        let mut kind = None;
        let (mut raddr, mut rport) = (None, None);
        let mut tcp_type = None;
        let mut extensions = Vec::new();
        let mut rest = tokens[6..].chunks(2);
        for pair in rest.by_ref() {
            let [name, value] = *pair else {
                return Err(CandidateError::DanglingExtension(
                    pair[0].chars().take(64).collect(),
                ));
            };
            match name {
                "typ" if kind.is_none() => kind = Some(CandidateType::parse(value)),
                "raddr" if raddr.is_none() => raddr = Some(CandidateAddress::parse(value)),
                "rport" if rport.is_none() => rport = Some(number(value, "rport")?),
                "tcptype" if tcp_type.is_none() => {
                    tcp_type = Some(TcpType::parse(value).ok_or_else(|| invalid("tcptype", value))?)
                }
                _ => extensions.push((name, value)),
            }
        }
        let Some(kind) = kind else {
            return Err(CandidateError::Missing("typ"));
        };
        let related = match (raddr, rport) {
            (Some(addr), Some(port)) => Some((addr, port)),
            (None, None) => None,
            (Some(_), None) => return Err(CandidateError::Missing("rport")),
            (None, Some(_)) => return Err(CandidateError::Missing("raddr")),
        };
        let dialect = if ipv6_attribute
            || matches!(transport, Transport::TcpActive | Transport::TcpPassive)
        {
            Dialect::MsIce2
        } else {
            Dialect::Rfc
        };
        Ok(Candidate {
            dialect,
            ipv6_attribute,
            foundation,
            component,
            password: None,
            transport,
            priority,
            address,
            port,
            kind: Some(kind),
            related,
            tcp_type,
            extensions,
        })
    }

    /// The value of extension `name`, if present.
    pub fn extension(&self, name: &str) -> Option<&'a str> {
        self.extensions
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// `generation` (trickle ICE generation; 0 when absent).
    pub fn generation(&self) -> Option<&'a str> {
        self.extension("generation")
    }

    /// `ufrag`: which ICE credentials the candidate belongs to.
    pub fn ufrag(&self) -> Option<&'a str> {
        self.extension("ufrag")
    }
}

fn component(token: &str) -> Result<u16, CandidateError> {
    let c: u16 = number(token, "component")?;
    if (1..=256).contains(&c) {
        Ok(c)
    } else {
        Err(invalid("component", token))
    }
}

impl fmt::Display for Candidate<'_> {
    /// Writes the attribute (without `a=`), in the line's own dialect.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.ipv6_attribute {
            "x-candidate-ipv6"
        } else {
            "candidate"
        };
        if self.dialect == Dialect::MsIceDraft6 {
            return write!(
                f,
                "{name}:{} {} {} {} {} {} {}",
                self.foundation,
                self.component,
                self.password.unwrap_or("-"),
                self.transport,
                self.priority,
                self.address,
                self.port
            );
        }
        write!(
            f,
            "{name}:{} {} {} {} {} {}",
            self.foundation, self.component, self.transport, self.priority, self.address, self.port
        )?;
        if let Some(kind) = &self.kind {
            write!(f, " typ {kind}")?;
        }
        if let Some((addr, port)) = &self.related {
            write!(f, " raddr {addr} rport {port}")?;
        }
        if let Some(tcp_type) = self.tcp_type {
            write!(f, " tcptype {}", tcp_type.as_str())?;
        }
        for (name, value) in &self.extensions {
            write!(f, " {name} {value}")?;
        }
        Ok(())
    }
}

/// One entry of `a=remote-candidates` (RFC 8839 §5.2): the candidate the
/// controlling agent selected for a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteCandidate<'a> {
    /// The component.
    pub component: u16,
    /// The address.
    pub address: CandidateAddress<'a>,
    /// The port.
    pub port: u16,
}

/// Parses `a=remote-candidates:1 192.0.2.1 5000 2 192.0.2.1 5001`.
pub fn parse_remote_candidates(line: &str) -> Result<Vec<RemoteCandidate<'_>>, CandidateError> {
    let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
    let line = line.strip_prefix("a=").unwrap_or(line);
    let value = line.strip_prefix("remote-candidates:").unwrap_or(line);
    let tokens: Vec<&str> = value.split_ascii_whitespace().collect();
    if tokens.is_empty() || !tokens.len().is_multiple_of(3) {
        return Err(CandidateError::Missing("component, address and port"));
    }
    tokens
        .chunks_exact(3)
        .map(|t| {
            Ok(RemoteCandidate {
                component: component(t[0])?,
                address: CandidateAddress::parse(t[1]),
                port: number(t[2], "port")?,
            })
        })
        .collect()
}
