//! STUN attributes: their type numbers, a typed borrowed view of each, and
//! their value encodings.
//!
//! [`Attribute::decode`] turns a raw type-length-value into a typed value that
//! borrows from the datagram; [`Attribute::encode_value`] writes one back.
//! Both are used by [`crate::Message`] and [`crate::MessageBuilder`].

mod address;
mod error_code;
mod kind;
mod lists;

use std::net::SocketAddr;

pub use address::{
    AddressFamily, AddressValue, address_value, decode_address, decode_xor_keyed, encode_xor_keyed,
};
pub use error_code::ErrorCode;
pub use kind::AttributeType;
pub use lists::{PasswordAlgorithm, PasswordAlgorithms, UnknownAttributes};

use crate::header::TransactionId;
use crate::integrity::is_valid_sha256_tag_len;

/// Why an attribute's value could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    /// The value's length is wrong for its type.
    #[error("attribute value has the wrong length")]
    Length,
    /// An address attribute names a family other than IPv4 (1) or IPv6 (2).
    #[error("unknown address family {0:#04x}")]
    AddressFamily(u8),
    /// A text attribute is not UTF-8.
    #[error("attribute text is not valid UTF-8")]
    Utf8,
    /// The value is outside the range its RFC allows.
    #[error("invalid attribute value: {0}")]
    Invalid(&'static str),
}

/// Longest USERNAME accepted (RFC 8489 §14.3 allows fewer than 509 bytes;
/// RFC 5389 allowed 513, and old clients still send that).
pub const MAX_USERNAME_LEN: usize = 513;
/// Longest REALM, NONCE, SOFTWARE, reason phrase or ALTERNATE-DOMAIN value
/// (RFC 8489: fewer than 128 characters, at most 763 bytes).
pub const MAX_TEXT_LEN: usize = 763;

/// The transport protocol number of UDP, for REQUESTED-TRANSPORT.
pub const TRANSPORT_UDP: u8 = 17;
/// The transport protocol number of TCP, for REQUESTED-TRANSPORT (RFC 6062).
pub const TRANSPORT_TCP: u8 = 6;

/// A decoded STUN attribute, borrowing its variable-length parts from the
/// message it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attribute<'a> {
    /// MAPPED-ADDRESS: the client's address, in the clear (RFC 3489 clients).
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS: the client's reflexive transport address.
    XorMappedAddress(SocketAddr),
    /// USERNAME.
    Username(&'a str),
    /// USERHASH: SHA-256 of `username:realm`, for anonymity.
    UserHash(&'a [u8; 32]),
    /// MESSAGE-INTEGRITY: HMAC-SHA1 over the message before it.
    MessageIntegrity(&'a [u8; 20]),
    /// MESSAGE-INTEGRITY-SHA256: HMAC-SHA256, possibly truncated to 16..32 bytes.
    MessageIntegritySha256(&'a [u8]),
    /// FINGERPRINT: CRC-32 of the message before it, XOR 0x5354554e.
    Fingerprint(u32),
    /// ERROR-CODE.
    ErrorCode(ErrorCode<'a>),
    /// REALM.
    Realm(&'a str),
    /// NONCE.
    Nonce(&'a str),
    /// PASSWORD-ALGORITHMS: the algorithms a server offers.
    PasswordAlgorithms(PasswordAlgorithms<'a>),
    /// PASSWORD-ALGORITHM: the algorithm a client chose.
    PasswordAlgorithm(PasswordAlgorithm<'a>),
    /// UNKNOWN-ATTRIBUTES: the types a 420 response did not understand.
    UnknownAttributes(UnknownAttributes<'a>),
    /// SOFTWARE: the agent's name and version.
    Software(&'a str),
    /// ALTERNATE-SERVER: where a 300 response redirects to.
    AlternateServer(SocketAddr),
    /// ALTERNATE-DOMAIN: the TLS name of the ALTERNATE-SERVER.
    AlternateDomain(&'a str),
    /// CHANNEL-NUMBER (0x4000..=0x7FFF for a valid channel).
    ChannelNumber(u16),
    /// LIFETIME in seconds.
    Lifetime(u32),
    /// XOR-PEER-ADDRESS.
    XorPeerAddress(SocketAddr),
    /// DATA.
    Data(&'a [u8]),
    /// XOR-RELAYED-ADDRESS.
    XorRelayedAddress(SocketAddr),
    /// REQUESTED-ADDRESS-FAMILY.
    RequestedAddressFamily(AddressFamily),
    /// EVEN-PORT; `true` asks to reserve the next higher port too.
    EvenPort(bool),
    /// REQUESTED-TRANSPORT: an IP protocol number (17 UDP, 6 TCP).
    RequestedTransport(u8),
    /// DONT-FRAGMENT.
    DontFragment,
    /// RESERVATION-TOKEN.
    ReservationToken(u64),
    /// ADDITIONAL-ADDRESS-FAMILY (dual allocations).
    AdditionalAddressFamily(AddressFamily),
    /// ADDRESS-ERROR-CODE: why one family of a dual allocation failed.
    AddressErrorCode {
        /// The family that could not be allocated.
        family: AddressFamily,
        /// The error.
        error: ErrorCode<'a>,
    },
    /// ICMP: an ICMP error a relay received for a peer.
    Icmp {
        /// ICMP type (7 bits).
        icmp_type: u8,
        /// ICMP code (9 bits).
        code: u16,
        /// Error data (for example the next-hop MTU).
        data: u32,
    },
    /// CONNECTION-ID (RFC 6062).
    ConnectionId(u32),
    /// PRIORITY (ICE).
    Priority(u32),
    /// USE-CANDIDATE (ICE).
    UseCandidate,
    /// ICE-CONTROLLED with its tie-breaker.
    IceControlled(u64),
    /// ICE-CONTROLLING with its tie-breaker.
    IceControlling(u64),
    /// CHANGE-REQUEST (RFC 5780).
    ChangeRequest {
        /// Answer from the other IP address.
        change_ip: bool,
        /// Answer from the other port.
        change_port: bool,
    },
    /// RESPONSE-ORIGIN (RFC 5780): where the response was sent from.
    ResponseOrigin(SocketAddr),
    /// OTHER-ADDRESS (RFC 5780): the server's alternate address.
    OtherAddress(SocketAddr),
    /// RESPONSE-PORT (RFC 5780).
    ResponsePort(u16),
    /// PADDING (RFC 5780).
    Padding(&'a [u8]),
    /// Any type edgeice does not know, kept raw.
    Unknown {
        /// The attribute type.
        kind: AttributeType,
        /// The raw value, without padding.
        value: &'a [u8],
    },
}

fn text(value: &[u8], max: usize) -> Result<&str, AttributeError> {
    if value.len() > max {
        return Err(AttributeError::Length);
    }
    std::str::from_utf8(value).map_err(|_| AttributeError::Utf8)
}

fn exact<const N: usize>(value: &[u8]) -> Result<&[u8; N], AttributeError> {
    value.try_into().map_err(|_| AttributeError::Length)
}

fn u32_of(value: &[u8]) -> Result<u32, AttributeError> {
    exact::<4>(value).map(|b| u32::from_be_bytes(*b))
}

fn u64_of(value: &[u8]) -> Result<u64, AttributeError> {
    exact::<8>(value).map(|b| u64::from_be_bytes(*b))
}

fn family_of(value: &[u8]) -> Result<AddressFamily, AttributeError> {
    let b = exact::<4>(value)?;
    AddressFamily::from_u8(b[0]).ok_or(AttributeError::AddressFamily(b[0]))
}

fn empty(value: &[u8]) -> Result<(), AttributeError> {
    if value.is_empty() {
        Ok(())
    } else {
        Err(AttributeError::Length)
    }
}

impl<'a> Attribute<'a> {
    /// Decodes the value of an attribute of type `kind`; `txid` is the
    /// message's transaction ID, which keys the XOR address types.
    pub fn decode(
        kind: AttributeType,
        value: &'a [u8],
        txid: &TransactionId,
    ) -> Result<Self, AttributeError> {
        use Attribute as A;
        Ok(match kind {
            AttributeType::MAPPED_ADDRESS => A::MappedAddress(address::decode(value)?),
            AttributeType::XOR_MAPPED_ADDRESS => {
                A::XorMappedAddress(address::decode_xor(value, txid)?)
            }
            AttributeType::USERNAME => A::Username(text(value, MAX_USERNAME_LEN)?),
            AttributeType::USERHASH => A::UserHash(exact(value)?),
            AttributeType::MESSAGE_INTEGRITY => A::MessageIntegrity(exact(value)?),
            AttributeType::MESSAGE_INTEGRITY_SHA256 => {
                if !is_valid_sha256_tag_len(value.len()) {
                    return Err(AttributeError::Length);
                }
                A::MessageIntegritySha256(value)
            }
            AttributeType::FINGERPRINT => A::Fingerprint(u32_of(value)?),
            AttributeType::ERROR_CODE => A::ErrorCode(ErrorCode::decode(value)?),
            AttributeType::REALM => A::Realm(text(value, MAX_TEXT_LEN)?),
            AttributeType::NONCE => A::Nonce(text(value, MAX_TEXT_LEN)?),
            AttributeType::PASSWORD_ALGORITHMS => {
                A::PasswordAlgorithms(PasswordAlgorithms::decode(value)?)
            }
            AttributeType::PASSWORD_ALGORITHM => {
                let (alg, rest) = PasswordAlgorithm::decode_one(value)?;
                if !rest.is_empty() {
                    return Err(AttributeError::Length);
                }
                A::PasswordAlgorithm(alg)
            }
            AttributeType::UNKNOWN_ATTRIBUTES => {
                A::UnknownAttributes(UnknownAttributes::decode(value)?)
            }
            AttributeType::SOFTWARE => A::Software(text(value, MAX_TEXT_LEN)?),
            AttributeType::ALTERNATE_SERVER => A::AlternateServer(address::decode(value)?),
            AttributeType::ALTERNATE_DOMAIN => A::AlternateDomain(text(value, MAX_TEXT_LEN)?),
            AttributeType::CHANNEL_NUMBER => {
                let b = exact::<4>(value)?;
                A::ChannelNumber(u16::from_be_bytes([b[0], b[1]]))
            }
            AttributeType::LIFETIME => A::Lifetime(u32_of(value)?),
            AttributeType::XOR_PEER_ADDRESS => A::XorPeerAddress(address::decode_xor(value, txid)?),
            AttributeType::DATA => A::Data(value),
            AttributeType::XOR_RELAYED_ADDRESS => {
                A::XorRelayedAddress(address::decode_xor(value, txid)?)
            }
            AttributeType::REQUESTED_ADDRESS_FAMILY => A::RequestedAddressFamily(family_of(value)?),
            AttributeType::EVEN_PORT => A::EvenPort(exact::<1>(value)?[0] & 0x80 != 0),
            AttributeType::REQUESTED_TRANSPORT => A::RequestedTransport(exact::<4>(value)?[0]),
            AttributeType::DONT_FRAGMENT => {
                empty(value)?;
                A::DontFragment
            }
            AttributeType::RESERVATION_TOKEN => A::ReservationToken(u64_of(value)?),
            AttributeType::ADDITIONAL_ADDRESS_FAMILY => {
                A::AdditionalAddressFamily(family_of(value)?)
            }
            AttributeType::ADDRESS_ERROR_CODE => {
                let family = *value.first().ok_or(AttributeError::Length)?;
                let family =
                    AddressFamily::from_u8(family).ok_or(AttributeError::AddressFamily(family))?;
                A::AddressErrorCode {
                    family,
                    error: ErrorCode::decode(value)?,
                }
            }
            AttributeType::ICMP => {
                let b = exact::<8>(value)?;
                let bits = u16::from_be_bytes([b[2], b[3]]);
                A::Icmp {
                    icmp_type: (bits >> 9) as u8,
                    code: bits & 0x01FF,
                    data: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                }
            }
            AttributeType::CONNECTION_ID => A::ConnectionId(u32_of(value)?),
            AttributeType::PRIORITY => A::Priority(u32_of(value)?),
            AttributeType::USE_CANDIDATE => {
                empty(value)?;
                A::UseCandidate
            }
            AttributeType::ICE_CONTROLLED => A::IceControlled(u64_of(value)?),
            AttributeType::ICE_CONTROLLING => A::IceControlling(u64_of(value)?),
            AttributeType::CHANGE_REQUEST => {
                let flags = u32_of(value)?;
                A::ChangeRequest {
                    change_ip: flags & 0x4 != 0,
                    change_port: flags & 0x2 != 0,
                }
            }
            AttributeType::RESPONSE_ORIGIN => A::ResponseOrigin(address::decode(value)?),
            AttributeType::OTHER_ADDRESS => A::OtherAddress(address::decode(value)?),
            AttributeType::RESPONSE_PORT => {
                let b = exact::<4>(value)?;
                A::ResponsePort(u16::from_be_bytes([b[0], b[1]]))
            }
            AttributeType::PADDING => A::Padding(value),
            kind => A::Unknown { kind, value },
        })
    }

    /// The attribute's type number.
    pub fn kind(&self) -> AttributeType {
        use Attribute as A;
        match self {
            A::MappedAddress(_) => AttributeType::MAPPED_ADDRESS,
            A::XorMappedAddress(_) => AttributeType::XOR_MAPPED_ADDRESS,
            A::Username(_) => AttributeType::USERNAME,
            A::UserHash(_) => AttributeType::USERHASH,
            A::MessageIntegrity(_) => AttributeType::MESSAGE_INTEGRITY,
            A::MessageIntegritySha256(_) => AttributeType::MESSAGE_INTEGRITY_SHA256,
            A::Fingerprint(_) => AttributeType::FINGERPRINT,
            A::ErrorCode(_) => AttributeType::ERROR_CODE,
            A::Realm(_) => AttributeType::REALM,
            A::Nonce(_) => AttributeType::NONCE,
            A::PasswordAlgorithms(_) => AttributeType::PASSWORD_ALGORITHMS,
            A::PasswordAlgorithm(_) => AttributeType::PASSWORD_ALGORITHM,
            A::UnknownAttributes(_) => AttributeType::UNKNOWN_ATTRIBUTES,
            A::Software(_) => AttributeType::SOFTWARE,
            A::AlternateServer(_) => AttributeType::ALTERNATE_SERVER,
            A::AlternateDomain(_) => AttributeType::ALTERNATE_DOMAIN,
            A::ChannelNumber(_) => AttributeType::CHANNEL_NUMBER,
            A::Lifetime(_) => AttributeType::LIFETIME,
            A::XorPeerAddress(_) => AttributeType::XOR_PEER_ADDRESS,
            A::Data(_) => AttributeType::DATA,
            A::XorRelayedAddress(_) => AttributeType::XOR_RELAYED_ADDRESS,
            A::RequestedAddressFamily(_) => AttributeType::REQUESTED_ADDRESS_FAMILY,
            A::EvenPort(_) => AttributeType::EVEN_PORT,
            A::RequestedTransport(_) => AttributeType::REQUESTED_TRANSPORT,
            A::DontFragment => AttributeType::DONT_FRAGMENT,
            A::ReservationToken(_) => AttributeType::RESERVATION_TOKEN,
            A::AdditionalAddressFamily(_) => AttributeType::ADDITIONAL_ADDRESS_FAMILY,
            A::AddressErrorCode { .. } => AttributeType::ADDRESS_ERROR_CODE,
            A::Icmp { .. } => AttributeType::ICMP,
            A::ConnectionId(_) => AttributeType::CONNECTION_ID,
            A::Priority(_) => AttributeType::PRIORITY,
            A::UseCandidate => AttributeType::USE_CANDIDATE,
            A::IceControlled(_) => AttributeType::ICE_CONTROLLED,
            A::IceControlling(_) => AttributeType::ICE_CONTROLLING,
            A::ChangeRequest { .. } => AttributeType::CHANGE_REQUEST,
            A::ResponseOrigin(_) => AttributeType::RESPONSE_ORIGIN,
            A::OtherAddress(_) => AttributeType::OTHER_ADDRESS,
            A::ResponsePort(_) => AttributeType::RESPONSE_PORT,
            A::Padding(_) => AttributeType::PADDING,
            A::Unknown { kind, .. } => *kind,
        }
    }

    /// Appends the encoded value (without header or padding) to `out`.
    ///
    /// Returns an error when the value breaks a limit of its RFC, so that
    /// a builder never emits what a parser would reject.
    pub fn encode_value(
        &self,
        txid: &TransactionId,
        out: &mut Vec<u8>,
    ) -> Result<(), AttributeError> {
        use Attribute as A;
        match *self {
            A::MappedAddress(a)
            | A::AlternateServer(a)
            | A::ResponseOrigin(a)
            | A::OtherAddress(a) => address::encode(&a, out),
            A::XorMappedAddress(a) | A::XorPeerAddress(a) | A::XorRelayedAddress(a) => {
                address::encode_xor(&a, txid, out)
            }
            A::Username(s) => put_text(s, MAX_USERNAME_LEN, out)?,
            A::Realm(s) | A::Nonce(s) | A::Software(s) | A::AlternateDomain(s) => {
                put_text(s, MAX_TEXT_LEN, out)?
            }
            A::UserHash(h) => out.extend_from_slice(h),
            A::MessageIntegrity(h) => out.extend_from_slice(h),
            A::MessageIntegritySha256(h) => {
                if !is_valid_sha256_tag_len(h.len()) {
                    return Err(AttributeError::Length);
                }
                out.extend_from_slice(h)
            }
            A::Fingerprint(v) | A::Lifetime(v) | A::ConnectionId(v) | A::Priority(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            A::ErrorCode(e) => e.encode(0, out)?,
            A::PasswordAlgorithms(list) => out.extend_from_slice(list.as_bytes()),
            A::PasswordAlgorithm(alg) => alg.encode(out)?,
            A::UnknownAttributes(list) => out.extend_from_slice(list.as_bytes()),
            A::ChannelNumber(n) => {
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
            A::Data(d) | A::Padding(d) => out.extend_from_slice(d),
            A::RequestedAddressFamily(f) | A::AdditionalAddressFamily(f) => {
                out.extend_from_slice(&[f.to_u8(), 0, 0, 0])
            }
            A::EvenPort(reserve) => out.push(if reserve { 0x80 } else { 0 }),
            A::RequestedTransport(p) => out.extend_from_slice(&[p, 0, 0, 0]),
            A::DontFragment | A::UseCandidate => {}
            A::ReservationToken(v) | A::IceControlled(v) | A::IceControlling(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            A::AddressErrorCode { family, error } => error.encode(family.to_u8(), out)?,
            A::Icmp {
                icmp_type,
                code,
                data,
            } => {
                if icmp_type > 0x7F || code > 0x01FF {
                    return Err(AttributeError::Invalid("ICMP type or code out of range"));
                }
                let bits = (u16::from(icmp_type) << 9) | code;
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&bits.to_be_bytes());
                out.extend_from_slice(&data.to_be_bytes());
            }
            A::ChangeRequest {
                change_ip,
                change_port,
            } => {
                let flags = (u32::from(change_ip) << 2) | (u32::from(change_port) << 1);
                out.extend_from_slice(&flags.to_be_bytes())
            }
            A::ResponsePort(p) => {
                out.extend_from_slice(&p.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
            A::Unknown { value, .. } => out.extend_from_slice(value),
        }
        Ok(())
    }
}

fn put_text(s: &str, max: usize, out: &mut Vec<u8>) -> Result<(), AttributeError> {
    if s.len() > max {
        return Err(AttributeError::Length);
    }
    out.extend_from_slice(s.as_bytes());
    Ok(())
}
