//! The agent's own view of a candidate: owned, with a socket address, and
//! written back as an RFC 8839 `candidate:` attribute value.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use edgeice_candidate as grammar;

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
}

/// Why a remote candidate line cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CandidateLineError {
    /// Not a candidate line at all.
    #[error(transparent)]
    Grammar(#[from] grammar::CandidateError),
    /// A transport the agent does not speak (TCP candidates need ICE-TCP).
    #[error("transport {0} is not supported; only UDP candidates are used")]
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
        if parsed.transport != grammar::Transport::Udp {
            return Err(CandidateLineError::UnsupportedTransport(
                parsed.transport.to_string(),
            ));
        }
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
        })
    }
}

impl fmt::Display for Candidate {
    /// The RFC 8839 attribute value, without `a=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "candidate:{} {} udp {} {} {} typ {}",
            self.foundation,
            self.component,
            self.priority,
            self.address.ip(),
            self.address.port(),
            self.kind.as_str()
        )?;
        if let Some(related) = self.related {
            write!(f, " raddr {} rport {}", related.ip(), related.port())?;
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
            Candidate::parse("candidate:1 1 tcp 1 192.0.2.1 9 typ host tcptype passive"),
            Err(CandidateLineError::UnsupportedTransport(_))
        ));
    }
}
