//! Everything that differs between the wire dialects the agent speaks
//! ([`Dialect`]): how a check, its success and its error are encoded, how
//! they are read and authenticated, how long random credentials are, and
//! how candidate priorities are formed. The agent calls these and stays
//! the same otherwise.
//!
//! MS-ICE2 (libnice's `OC2007R2` mode; docs/ms-dialects.md) differs from
//! RFC 8445 in: attributes not padded (a USERNAME carries its own NUL
//! padding inside its length); requests ordered USE-CANDIDATE, PRIORITY,
//! role, USERNAME, CANDIDATE-IDENTIFIER, IMPLEMENTATION-VERSION; answers
//! echo USERNAME and carry IMPLEMENTATION-VERSION; MESSAGE-INTEGRITY over
//! an input zero-padded to 64 bytes whose header length counts the
//! FINGERPRINT that follows; FINGERPRINT required, with Microsoft's legacy
//! CRC accepted from peers that send no IMPLEMENTATION-VERSION; type
//! preferences host 120, peer-reflexive 110, server-reflexive 100, relayed
//! 30; local preferences built from transport, direction, TURN server and
//! address index bit fields.

use std::net::SocketAddr;

use edgeice_stun::ms::{CANDIDATE_IDENTIFIER, IMPLEMENTATION_VERSION};
use edgeice_stun::{
    Attribute, AttributeType, BuildError, Class, ErrorCode, IntegrityKey, Layout, Message,
    MessageBuilder, MessageType, Method, TransactionId,
};

use crate::candidate::{
    CandidateKind, TcpType, dual_stack_local_preference, priority, tcp_priority,
};
use crate::check::{CheckRequest, RoleAttribute};
use crate::config::{Dialect, ServerTransport};

/// The IMPLEMENTATION-VERSION an MS-ICE2 agent announces (and libnice
/// speaks): 2.
const MS_IMPLEMENTATION_VERSION: u32 = 2;

/// MS-ICE2 local preference fields (bits 12–15 transport, 9–11 direction,
/// 6–8 TURN server index, 0–5 address index).
const MS_TRANSPORT_UDP: u16 = 15;
const MS_TRANSPORT_TCP: u16 = 6;
const MS_DIRECTION_ACTIVE: u16 = 5;
const MS_DIRECTION_PASSIVE: u16 = 2;

/// A value padded with NULs to a multiple of 4 bytes, the padding counted
/// in its length (how MS-ICE2 aligns USERNAME and CANDIDATE-IDENTIFIER in
/// an unpadded message).
fn nul_padded(value: &[u8]) -> Vec<u8> {
    let mut padded = value.to_vec();
    padded.resize(value.len().next_multiple_of(4), 0);
    padded
}

impl Dialect {
    /// Lengths of random local credentials: (ufrag, password) characters.
    pub(crate) fn credential_lengths(self) -> (usize, usize) {
        match self {
            Dialect::Rfc8445 => (6, 24),
            // [MS-ICE2]: 4 and 22, as libnice and Lync generate them.
            Dialect::MsIce2 => (4, 22),
        }
    }

    /// The local preference of a host socket on `ip`, the `family_index`-th
    /// of its address family and the `index`-th of its component.
    pub(crate) fn host_local_preference(
        self,
        ip: std::net::IpAddr,
        family_index: usize,
        index: usize,
    ) -> u16 {
        match self {
            Dialect::Rfc8445 => dual_stack_local_preference(ip, family_index),
            Dialect::MsIce2 => (MS_TRANSPORT_UDP << 12) | ms_address_index(index),
        }
    }

    /// The local preference of a TCP host candidate (before its direction
    /// is folded in by [`Dialect::priority`]): RFC 6544's 13-bit "other
    /// preference", or MS-ICE2's address index.
    pub(crate) fn tcp_host_preference(self, ip: std::net::IpAddr, family_index: usize) -> u16 {
        match self {
            Dialect::Rfc8445 => dual_stack_local_preference(ip, family_index) >> 3,
            Dialect::MsIce2 => ms_address_index(family_index),
        }
    }

    /// The local preference of a relayed candidate allocated from a host
    /// socket whose preference is `socket_preference`, on the
    /// `turn_index`-th TURN server, reached over `transport`; `tcp` for an
    /// RFC 6062 TCP relay.
    pub(crate) fn relayed_local_preference(
        self,
        socket_preference: u16,
        turn_index: usize,
        transport: ServerTransport,
        tcp: bool,
    ) -> u16 {
        match self {
            Dialect::Rfc8445 if tcp => socket_preference >> 3,
            // Among relays, one reached over UDP ranks first, then TCP,
            // then TLS (no head-of-line blocking on UDP), as browsers rank
            // them; distinct priorities besides.
            Dialect::Rfc8445 => socket_preference.saturating_sub(match transport {
                ServerTransport::Udp => 0,
                ServerTransport::Tcp => 1,
                ServerTransport::Tls => 2,
            }),
            Dialect::MsIce2 => {
                let turn = u16::try_from(turn_index.min(7)).unwrap_or(7);
                (socket_preference & 0xf03f) | (turn << 6)
            }
        }
    }

    /// A candidate's priority from its type, transport and local
    /// preference (as the dialect's local preference functions give it);
    /// `relay_over_stream` for a relayed candidate whose TURN server is
    /// reached over TCP or TLS (MS-ICE2 ranks it 20, below UDP's 30; RFC
    /// 8445's local preference has already said so).
    pub(crate) fn priority(
        self,
        kind: CandidateKind,
        tcp_type: Option<TcpType>,
        local_preference: u16,
        component: u16,
        relay_over_stream: bool,
    ) -> u32 {
        match (self, tcp_type) {
            (Dialect::Rfc8445, None) => priority(kind, local_preference, component),
            (Dialect::Rfc8445, Some(t)) => tcp_priority(kind, t, local_preference, component),
            (Dialect::MsIce2, tcp_type) => {
                let type_preference: u32 = match kind {
                    CandidateKind::Host => 120,
                    CandidateKind::PeerReflexive => 110,
                    CandidateKind::ServerReflexive => 100,
                    CandidateKind::Relayed if relay_over_stream => 20,
                    CandidateKind::Relayed => 30,
                };
                let local = match tcp_type {
                    None => local_preference,
                    Some(t) => {
                        let direction = match t {
                            TcpType::Passive => MS_DIRECTION_PASSIVE,
                            TcpType::Active | TcpType::SimultaneousOpen => MS_DIRECTION_ACTIVE,
                        };
                        (MS_TRANSPORT_TCP << 12) | (direction << 9) | (local_preference & 0x1ff)
                    }
                };
                let component = u32::from(component.clamp(1, 256));
                (type_preference << 24) + (u32::from(local) << 8) + (256 - component)
            }
        }
    }

    /// Parses a datagram as a message of this dialect: RFC 8489 for
    /// RFC 8445; for MS-ICE2 either attribute layout, the magic cookie
    /// required (as libnice requires it).
    pub(crate) fn parse(self, data: &[u8]) -> Option<Message<'_>> {
        match self {
            Dialect::Rfc8445 => Message::parse(data).ok(),
            Dialect::MsIce2 => Message::parse_either_layout(data)
                .ok()
                .filter(Message::has_magic_cookie),
        }
    }

    fn builder<'b>(
        self,
        buf: &'b mut Vec<u8>,
        class: Class,
        id: TransactionId,
    ) -> MessageBuilder<'b> {
        let builder = MessageBuilder::new(buf, MessageType::new(Method::BINDING, class), id);
        match self {
            Dialect::Rfc8445 => builder,
            Dialect::MsIce2 => builder.layout(Layout::Unpadded),
        }
    }

    /// MESSAGE-INTEGRITY (if `key`) and FINGERPRINT, the dialect's way.
    fn seal(
        self,
        builder: &mut MessageBuilder<'_>,
        key: Option<&IntegrityKey>,
    ) -> Result<(), BuildError> {
        match (self, key) {
            (Dialect::Rfc8445, Some(key)) => {
                builder.add_integrity_sha1(key)?;
            }
            (Dialect::MsIce2, Some(key)) => {
                builder.add_integrity_sha1_rfc3489(key, true)?;
            }
            (_, None) => {}
        }
        builder.add_fingerprint()?;
        Ok(())
    }

    /// Writes a check request (a Binding request) into `buf`.
    pub(crate) fn build_request(
        self,
        buf: &mut Vec<u8>,
        id: TransactionId,
        request: &CheckRequest<'_>,
        key: &IntegrityKey,
    ) -> Result<(), BuildError> {
        let mut builder = self.builder(buf, Class::Request, id);
        let role = match request.role {
            RoleAttribute::Controlling(tie) => Attribute::IceControlling(tie),
            RoleAttribute::Controlled(tie) => Attribute::IceControlled(tie),
        };
        match self {
            Dialect::Rfc8445 => {
                builder.add(&Attribute::Username(request.username))?;
                builder.add(&Attribute::Priority(request.priority))?;
                builder.add(&role)?;
                if request.use_candidate {
                    builder.add(&Attribute::UseCandidate)?;
                }
            }
            Dialect::MsIce2 => {
                if request.use_candidate {
                    builder.add(&Attribute::UseCandidate)?;
                }
                builder.add(&Attribute::Priority(request.priority))?;
                builder.add(&role)?;
                builder.add_raw(
                    AttributeType::USERNAME,
                    &nul_padded(request.username.as_bytes()),
                )?;
                builder.add_raw(
                    CANDIDATE_IDENTIFIER,
                    &nul_padded(request.foundation.as_bytes()),
                )?;
                builder.add_raw(
                    IMPLEMENTATION_VERSION,
                    &MS_IMPLEMENTATION_VERSION.to_be_bytes(),
                )?;
            }
        }
        self.seal(&mut builder, Some(key))?;
        builder.finish();
        Ok(())
    }

    /// Writes the success answer to a check from `source`, signed with the
    /// local password; MS-ICE2 echoes the request's USERNAME (`username`,
    /// its raw value).
    pub(crate) fn build_success(
        self,
        buf: &mut Vec<u8>,
        id: TransactionId,
        source: SocketAddr,
        username: Option<&[u8]>,
        key: &IntegrityKey,
    ) -> Result<(), BuildError> {
        let mut builder = self.builder(buf, Class::Success, id);
        builder.add(&Attribute::XorMappedAddress(source))?;
        if self == Dialect::MsIce2 {
            if let Some(username) = username {
                builder.add_raw(AttributeType::USERNAME, username)?;
            }
            builder.add_raw(
                IMPLEMENTATION_VERSION,
                &MS_IMPLEMENTATION_VERSION.to_be_bytes(),
            )?;
        }
        self.seal(&mut builder, Some(key))?;
        builder.finish();
        Ok(())
    }

    /// Writes an error answer, signed when `key` is given.
    pub(crate) fn build_error(
        self,
        buf: &mut Vec<u8>,
        id: TransactionId,
        code: u16,
        key: Option<&IntegrityKey>,
    ) -> Result<(), BuildError> {
        let mut builder = self.builder(buf, Class::Error, id);
        builder.add(&Attribute::ErrorCode(ErrorCode::with_default_reason(code)))?;
        if self == Dialect::MsIce2 {
            builder.add_raw(
                IMPLEMENTATION_VERSION,
                &MS_IMPLEMENTATION_VERSION.to_be_bytes(),
            )?;
        }
        self.seal(&mut builder, key)?;
        builder.finish();
        Ok(())
    }

    /// Whether the message's FINGERPRINT is acceptable: RFC 8445 checks it
    /// when present; MS-ICE2 requires it, and takes Microsoft's legacy CRC
    /// only from a message without IMPLEMENTATION-VERSION (a peer that
    /// predates it: [MS-ICE2] §3.1.4.8.2).
    pub(crate) fn fingerprint_ok(self, message: &Message<'_>) -> bool {
        match self {
            Dialect::Rfc8445 => !message.has_fingerprint() || message.verify_fingerprint().is_ok(),
            Dialect::MsIce2 => {
                message.verify_fingerprint().is_ok()
                    || (message.get_raw(IMPLEMENTATION_VERSION).is_none()
                        && message.verify_fingerprint_legacy().is_ok())
            }
        }
    }

    /// Whether MESSAGE-INTEGRITY is present and right for `key`: RFC 8489
    /// style; for MS-ICE2 the RFC 3489 style (or, from a peer that sends
    /// checks the RFC way, RFC 8489's).
    pub(crate) fn integrity_ok(self, message: &Message<'_>, key: &IntegrityKey) -> bool {
        match self {
            Dialect::Rfc8445 => message.verify_integrity_sha1(key).is_ok(),
            Dialect::MsIce2 => {
                message.verify_integrity_sha1_rfc3489(key).is_ok()
                    || message.verify_integrity_sha1(key).is_ok()
            }
        }
    }
}

/// MS-ICE2's 6-bit address index.
fn ms_address_index(index: usize) -> u16 {
    u16::try_from(index.min(63)).unwrap_or(63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_ice2_priorities_follow_libnice() {
        // libnice 0.1.21, OC2007R2, host UDP candidate on the 4th address:
        // 2028995583 (type 120, local preference 0xF003).
        let local = Dialect::MsIce2.host_local_preference("127.0.0.1".parse().unwrap(), 3, 3);
        assert_eq!(local, 0xf003);
        assert_eq!(
            Dialect::MsIce2.priority(CandidateKind::Host, None, local, 1, false),
            2028995583
        );
        // Its checks' PRIORITY: the peer-reflexive one, 0x6EF003FF.
        assert_eq!(
            Dialect::MsIce2.priority(CandidateKind::PeerReflexive, None, local, 1, false),
            0x6ef0_03ff
        );
        let passive = Dialect::MsIce2.priority(
            CandidateKind::Host,
            Some(TcpType::Passive),
            Dialect::MsIce2.tcp_host_preference("127.0.0.1".parse().unwrap(), 0),
            1,
            false,
        );
        assert_eq!(passive >> 8 & 0xffff, (6 << 12) | (2 << 9));
        let relayed =
            Dialect::MsIce2.relayed_local_preference(local, 2, ServerTransport::Udp, false);
        assert_eq!(relayed, 0xf000 | (2 << 6) | 3);
        let over_udp = Dialect::MsIce2.priority(CandidateKind::Relayed, None, relayed, 1, false);
        let over_tcp = Dialect::MsIce2.priority(CandidateKind::Relayed, None, relayed, 1, true);
        assert_eq!((over_udp >> 24, over_tcp >> 24), (30, 20));
    }

    #[test]
    fn ms_ice2_requests_are_unpadded_and_sealed_the_rfc_3489_way() {
        let key = IntegrityKey::new(b"0123456789012345678901");
        let mut buf = Vec::new();
        let request = CheckRequest {
            username: "abcd:ef",
            priority: 1,
            role: RoleAttribute::Controlling(7),
            use_candidate: true,
            foundation: "1",
        };
        Dialect::MsIce2
            .build_request(&mut buf, TransactionId([1; 12]), &request, &key)
            .unwrap();
        let message = Message::parse_unpadded(&buf).unwrap();
        assert_eq!(
            message.get_raw(AttributeType::USERNAME),
            Some(&b"abcd:ef\0"[..])
        );
        assert_eq!(message.get_raw(CANDIDATE_IDENTIFIER), Some(&b"1\0\0\0"[..]));
        assert!(message.verify_integrity_sha1_rfc3489(&key).is_ok());
        assert!(message.verify_integrity_sha1(&key).is_err());
        assert!(Dialect::MsIce2.fingerprint_ok(&message));
        assert!(Dialect::MsIce2.integrity_ok(&message, &key));
        let kinds: Vec<u16> = message.raw_attributes().map(|(k, _)| k.0).collect();
        assert_eq!(
            kinds,
            [
                0x0025, 0x0024, 0x802a, 0x0006, 0x8054, 0x8070, 0x0008, 0x8028
            ]
        );
    }
}
