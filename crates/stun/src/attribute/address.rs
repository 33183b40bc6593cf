//! The address encoding shared by MAPPED-ADDRESS and its relatives, plain
//! (RFC 8489 §14.1) and XOR-ed with the magic cookie and transaction ID
//! (§14.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::AttributeError;
use crate::header::{MAGIC_COOKIE, TransactionId};

const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// An IP address family as the TURN attributes encode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressFamily {
    /// IPv4 (0x01).
    V4,
    /// IPv6 (0x02).
    V6,
}

impl AddressFamily {
    /// The family's wire value.
    pub const fn to_u8(self) -> u8 {
        match self {
            AddressFamily::V4 => FAMILY_IPV4,
            AddressFamily::V6 => FAMILY_IPV6,
        }
    }

    /// The family of a wire value, if it names one.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            FAMILY_IPV4 => Some(AddressFamily::V4),
            FAMILY_IPV6 => Some(AddressFamily::V6),
            _ => None,
        }
    }

    /// The family of an IP address.
    pub const fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddressFamily::V4,
            IpAddr::V6(_) => AddressFamily::V6,
        }
    }
}

/// Decodes a plain address value.
pub(crate) fn decode(value: &[u8]) -> Result<SocketAddr, AttributeError> {
    decode_with(value, None)
}

/// Decodes a plain address value (MAPPED-ADDRESS's encoding), for
/// attribute types this codec does not model, such as MS-TURN's
/// DESTINATION-ADDRESS.
pub fn decode_address(value: &[u8]) -> Result<SocketAddr, AttributeError> {
    decode(value)
}

/// The plain encoding of `addr`, on the stack: the value of an address
/// attribute this codec does not model, such as MS-TURN's REMOTE-ADDRESS.
pub fn address_value(addr: &SocketAddr) -> AddressValue {
    let mut value = AddressValue {
        bytes: [0; 20],
        len: 0,
    };
    let port = addr.port().to_be_bytes();
    let family = AddressFamily::of(&addr.ip()).to_u8();
    value.bytes[..4].copy_from_slice(&[0, family, port[0], port[1]]);
    value.len = match addr.ip() {
        IpAddr::V4(ip) => {
            value.bytes[4..8].copy_from_slice(&ip.octets());
            8
        }
        IpAddr::V6(ip) => {
            value.bytes[4..20].copy_from_slice(&ip.octets());
            20
        }
    };
    value
}

/// An encoded address value (8 or 20 bytes), see [`address_value`].
#[derive(Clone, Copy, Debug)]
pub struct AddressValue {
    bytes: [u8; 20],
    len: usize,
}

impl std::ops::Deref for AddressValue {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Decodes an XOR-ed address value.
pub(crate) fn decode_xor(value: &[u8], txid: &TransactionId) -> Result<SocketAddr, AttributeError> {
    decode_with(value, Some(&xor_key(MAGIC_COOKIE.to_be_bytes(), txid)))
}

/// Decodes an address XOR-ed with `key`: the message's 16 bytes after the
/// length field (cookie and transaction ID in RFC 8489; Microsoft's
/// MS-XOR-MAPPED-ADDRESS uses whatever the sender put there).
pub fn decode_xor_keyed(value: &[u8], key: &[u8; 16]) -> Result<SocketAddr, AttributeError> {
    decode_with(value, Some(key))
}

fn decode_with(value: &[u8], xor: Option<&[u8; 16]>) -> Result<SocketAddr, AttributeError> {
    let Some((&[_, family, p0, p1], rest)) = value.split_first_chunk::<4>() else {
        return Err(AttributeError::Length);
    };
    let mut port = [p0, p1];
    let ip = match (family, rest.len()) {
        (FAMILY_IPV4, 4) => {
            let mut raw = [rest[0], rest[1], rest[2], rest[3]];
            if let Some(key) = xor {
                apply(&mut raw, key);
            }
            IpAddr::V4(Ipv4Addr::from(raw))
        }
        (FAMILY_IPV6, 16) => {
            let mut raw = [0u8; 16];
            raw.copy_from_slice(rest);
            if let Some(key) = xor {
                apply(&mut raw, key);
            }
            IpAddr::V6(Ipv6Addr::from(raw))
        }
        (FAMILY_IPV4 | FAMILY_IPV6, _) => return Err(AttributeError::Length),
        _ => return Err(AttributeError::AddressFamily(family)),
    };
    if let Some(key) = xor {
        apply(&mut port, key);
    }
    Ok(SocketAddr::new(ip, u16::from_be_bytes(port)))
}

/// Appends the plain encoding of `addr` to `out`.
pub(crate) fn encode(addr: &SocketAddr, out: &mut Vec<u8>) {
    encode_with(addr, None, out)
}

/// Appends the XOR-ed encoding of `addr` to `out`.
pub(crate) fn encode_xor(addr: &SocketAddr, txid: &TransactionId, out: &mut Vec<u8>) {
    encode_with(addr, Some(&xor_key(MAGIC_COOKIE.to_be_bytes(), txid)), out)
}

/// Appends the encoding of `addr` XOR-ed with `key` (see
/// [`decode_xor_keyed`]).
pub fn encode_xor_keyed(addr: &SocketAddr, key: &[u8; 16], out: &mut Vec<u8>) {
    encode_with(addr, Some(key), out)
}

fn encode_with(addr: &SocketAddr, xor: Option<&[u8; 16]>, out: &mut Vec<u8>) {
    let mut port = addr.port().to_be_bytes();
    if let Some(key) = xor {
        apply(&mut port, key);
    }
    let family = AddressFamily::of(&addr.ip()).to_u8();
    out.extend_from_slice(&[0, family]);
    out.extend_from_slice(&port);
    match addr.ip() {
        IpAddr::V4(ip) => {
            let mut raw = ip.octets();
            if let Some(key) = xor {
                apply(&mut raw, key);
            }
            out.extend_from_slice(&raw);
        }
        IpAddr::V6(ip) => {
            let mut raw = ip.octets();
            if let Some(key) = xor {
                apply(&mut raw, key);
            }
            out.extend_from_slice(&raw);
        }
    }
}

/// XORs `bytes` with the front of `key` (the port takes two bytes of it, an
/// IPv4 address four, an IPv6 address all sixteen).
fn apply(bytes: &mut [u8], key: &[u8; 16]) {
    for (b, k) in bytes.iter_mut().zip(key) {
        *b ^= k;
    }
}

/// The 16 bytes an address is XOR-ed with: cookie then transaction ID.
pub(crate) fn xor_key(cookie: [u8; 4], txid: &TransactionId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&cookie);
    key[4..].copy_from_slice(txid.as_bytes());
    key
}
