//! The agent's own view of a candidate: owned, with a socket address, and
//! written back as an RFC 8839 `candidate:` attribute value.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use edgeice_candidate as grammar;
pub use edgeice_candidate::TcpType;

/// Where a candidate comes from, with its RFC 8445 §5.1.2.2 type preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CandidateKind {
    /// An address of one of the agent's interfaces.
    Host,
    /// The agent's address as a STUN server saw it, outside its NAT.
    ServerReflexive,
    /// Learned from a connectivity check.
    PeerReflexive,
    /// An address on a TURN server that relays for the agent.
    Relayed,
}

impl CandidateKind {
    /// The recommended type preference: host 126, peer-reflexive 110,
    /// server-reflexive 100, relayed 0.
    pub fn type_preference(self) -> u32 {
        match self {
            CandidateKind::Host => 126,
            CandidateKind::PeerReflexive => 110,
            CandidateKind::ServerReflexive => 100,
            CandidateKind::Relayed => 0,
        }
    }

    /// The `typ` token: `host`, `srflx`, `prflx`, `relay`.
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateKind::Host => "host",
            CandidateKind::ServerReflexive => "srflx",
            CandidateKind::PeerReflexive => "prflx",
            CandidateKind::Relayed => "relay",
        }
    }
}

/// RFC 8445 §5.1.2.1: `2^24 * type preference + 2^8 * local preference +
/// (256 - component)`.
pub fn priority(kind: CandidateKind, local_preference: u16, component: u16) -> u32 {
    let component = u32::from(component.clamp(1, 256));
    (kind.type_preference() << 24) + (u32::from(local_preference) << 8) + (256 - component)
}

/// RFC 6544 §4.2 priority of a TCP candidate. UDP is preferred (RFC 6544
/// §4.2 recommends it for real-time media), so TCP candidates get type
/// preferences below every UDP one of the same kind; the local preference
/// puts the direction first (`2^13 * direction + other`): active before
/// passive before simultaneous-open for host and relayed candidates,
/// simultaneous-open first for reflexive ones (only it crosses NATs).
pub fn tcp_priority(
    kind: CandidateKind,
    tcp_type: TcpType,
    other_preference: u16,
    component: u16,
) -> u32 {
    let type_preference: u32 = match kind {
        CandidateKind::Host => 90,
        CandidateKind::PeerReflexive => 80,
        CandidateKind::ServerReflexive => 70,
        CandidateKind::Relayed => 0,
    };
    let direction: u32 = match (kind, tcp_type) {
        (CandidateKind::Host | CandidateKind::Relayed, TcpType::Active) => 6,
        (CandidateKind::Host | CandidateKind::Relayed, TcpType::Passive) => 4,
        (CandidateKind::Host | CandidateKind::Relayed, TcpType::SimultaneousOpen) => 2,
        (_, TcpType::SimultaneousOpen) => 6,
        (_, TcpType::Active) => 4,
        (_, TcpType::Passive) => 2,
    };
    let local_preference = (direction << 13) + u32::from(other_preference & 0x1fff);
    let component = u32::from(component.clamp(1, 256));
    (type_preference << 24) + (local_preference << 8) + (256 - component)
}

/// RFC 8421 §4 local preference for the `index`-th address of its family on
/// a dual-stack host: IPv6 and IPv4 interleaved (IPv6 first), so that
/// neither family's checks wait for all of the other's.
pub fn dual_stack_local_preference(ip: IpAddr, index: usize) -> u16 {
    let rank = index.saturating_mul(2) + usize::from(ip.is_ipv4());
    65535u16.saturating_sub(u16::try_from(rank.saturating_mul(8)).unwrap_or(u16::MAX))
}

/// One candidate: what goes into an `a=candidate` line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Candidates with the same type, base IP, server and transport share a
    /// foundation (RFC 8445 §5.1.1.3).
    pub foundation: String,
    /// 1 for RTP, 2 for RTCP.
    pub component: u16,
    /// RFC 8445 §5.1.2 priority.
    pub priority: u32,
    /// The transport address.
    pub address: SocketAddr,
    /// Its type.
    pub kind: CandidateKind,
    /// `raddr`/`rport`: the base of a reflexive candidate, the mapped
    /// address of a relayed one.
    pub related: Option<SocketAddr>,
    /// `None` for UDP; for ICE-TCP (RFC 6544), the `tcptype`.
    pub tcp_type: Option<TcpType>,
}

/// Why a remote candidate line cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CandidateLineError {
    /// Not a candidate line at all.
    #[error(transparent)]
    Grammar(#[from] grammar::CandidateError),
    /// A transport the agent does not speak, or a TCP candidate without
    /// `tcptype`.
    #[error("transport {0} is not supported; UDP and RFC 6544 TCP candidates are")]
    UnsupportedTransport(String),
    /// An mDNS or other host name: the agent only takes IP literals.
    #[error("address {0:?} is a host name; resolve it (mDNS) before handing it to the agent")]
    HostName(String),
    /// A type the agent does not know, or none.
    #[error("candidate type {0:?} is not one of host, srflx, prflx, relay")]
    UnknownType(String),
    /// A priority that is not an RFC 8445 number (MS-ICE draft 6 q-values).
    #[error("priority is not an RFC 8445 32-bit number")]
    Priority,
}

impl Candidate {
    /// Reads a candidate line (`a=candidate:...`, `candidate:...` or the
    /// bare value).
    pub fn parse(line: &str) -> Result<Candidate, CandidateLineError> {
        let parsed = grammar::Candidate::parse(line)?;
        let tcp_type = match (parsed.transport, parsed.tcp_type) {
            (grammar::Transport::Udp, _) => None,
            (grammar::Transport::Tcp, Some(tcp_type)) => Some(tcp_type),
            // MS-ICE2 writes the TCP role as the transport.
            (grammar::Transport::TcpActive, _) => Some(TcpType::Active),
            (grammar::Transport::TcpPassive, _) => Some(TcpType::Passive),
            (transport, _) => {
                return Err(CandidateLineError::UnsupportedTransport(
                    transport.to_string(),
                ));
            }
        };
        let ip = match parsed.address {
            grammar::CandidateAddress::Ip(ip) => ip,
            grammar::CandidateAddress::Name(name) => {
                return Err(CandidateLineError::HostName(name.to_string()));
            }
        };
        let kind = match parsed.kind {
            Some(grammar::CandidateType::Host) => CandidateKind::Host,
            Some(grammar::CandidateType::ServerReflexive) => CandidateKind::ServerReflexive,
            Some(grammar::CandidateType::PeerReflexive) => CandidateKind::PeerReflexive,
            Some(grammar::CandidateType::Relay) => CandidateKind::Relayed,
            Some(grammar::CandidateType::Other(other)) => {
                return Err(CandidateLineError::UnknownType(other.to_string()));
            }
            None => return Err(CandidateLineError::UnknownType(String::new())),
        };
        let priority = match parsed.priority {
            grammar::Priority::Ice(p) => p,
            grammar::Priority::QValue(_) => return Err(CandidateLineError::Priority),
        };
        let related = match parsed.related {
            Some((grammar::CandidateAddress::Ip(ip), port)) => Some(SocketAddr::new(ip, port)),
            _ => None,
        };
        Ok(Candidate {
            foundation: parsed.foundation.to_string(),
            component: parsed.component,
            priority,
            address: SocketAddr::new(ip, parsed.port),
            kind,
            related,
            tcp_type,
        })
    }

    /// Whether this is an ICE-TCP candidate.
    pub fn is_tcp(&self) -> bool {
        self.tcp_type.is_some()
    }
}

impl fmt::Display for Candidate {
    /// The RFC 8839 attribute value, without `a=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "candidate:{} {} {} {} {} {} typ {}",
            self.foundation,
            self.component,
            if self.is_tcp() { "tcp" } else { "udp" },
            self.priority,
            self.address.ip(),
            self.address.port(),
            self.kind.as_str()
        )?;
        if let Some(related) = self.related {
            write!(f, " raddr {} rport {}", related.ip(), related.port())?;
        }
        if let Some(tcp_type) = self.tcp_type {
            write!(f, " tcptype {}", tcp_type.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_rfc_8445() {
        assert_eq!(priority(CandidateKind::Host, 65535, 1), 2130706431);
        assert_eq!(priority(CandidateKind::Relayed, 65535, 2), 16777214);
    }

    #[test]
    fn dual_stack_preferences_interleave_families() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6_first = dual_stack_local_preference(v6, 0);
        let v4_first = dual_stack_local_preference(v4, 0);
        let v6_second = dual_stack_local_preference(v6, 1);
        assert!(v6_first > v4_first && v4_first > v6_second);
    }

    #[test]
    fn lines_round_trip() {
        let line =
            "candidate:3 1 udp 16777215 198.51.100.7 61002 typ relay raddr 10.0.0.5 rport 50001";
        let candidate = Candidate::parse(line).unwrap();
        assert_eq!(candidate.kind, CandidateKind::Relayed);
        assert_eq!(candidate.to_string(), line);
    }

    #[test]
    fn unusable_lines_say_why() {
        assert!(matches!(
            Candidate::parse("candidate:1 1 udp 1 abc.local 9 typ host"),
            Err(CandidateLineError::HostName(_))
        ));
        assert!(matches!(
            Candidate::parse("candidate:1 1 SCTP 1 192.0.2.1 9 typ host"),
            Err(CandidateLineError::UnsupportedTransport(_))
        ));
        // MS-ICE2 spells the TCP role as the transport.
        let ms = Candidate::parse("candidate:1 1 TCP-PASS 1 192.0.2.1 9 typ host").unwrap();
        assert_eq!(ms.tcp_type, Some(TcpType::Passive));
        let tcp = "candidate:1 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active";
        assert_eq!(Candidate::parse(tcp).unwrap().to_string(), tcp);
    }
}
