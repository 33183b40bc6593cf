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

/// Decodes an XOR-ed address value.
pub(crate) fn decode_xor(value: &[u8], txid: &TransactionId) -> Result<SocketAddr, AttributeError> {
    decode_with(value, Some(txid))
}

fn decode_with(value: &[u8], xor: Option<&TransactionId>) -> Result<SocketAddr, AttributeError> {
    let Some((&[_, family, p0, p1], rest)) = value.split_first_chunk::<4>() else {
        return Err(AttributeError::Length);
    };
    let mut port = u16::from_be_bytes([p0, p1]);
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let ip = match (family, rest.len()) {
        (FAMILY_IPV4, 4) => {
            let mut raw = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            if xor.is_some() {
                raw ^= MAGIC_COOKIE;
            }
            IpAddr::V4(Ipv4Addr::from(raw))
        }
        (FAMILY_IPV6, 16) => {
            let mut raw = [0u8; 16];
            raw.copy_from_slice(rest);
            if let Some(txid) = xor {
                for (b, k) in raw.iter_mut().zip(xor_key(txid)) {
                    *b ^= k;
                }
            }
            IpAddr::V6(Ipv6Addr::from(raw))
        }
        (FAMILY_IPV4 | FAMILY_IPV6, _) => return Err(AttributeError::Length),
        _ => return Err(AttributeError::AddressFamily(family)),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Appends the plain encoding of `addr` to `out`.
pub(crate) fn encode(addr: &SocketAddr, out: &mut Vec<u8>) {
    encode_with(addr, None, out)
}

/// Appends the XOR-ed encoding of `addr` to `out`.
pub(crate) fn encode_xor(addr: &SocketAddr, txid: &TransactionId, out: &mut Vec<u8>) {
    encode_with(addr, Some(txid), out)
}

fn encode_with(addr: &SocketAddr, xor: Option<&TransactionId>, out: &mut Vec<u8>) {
    let mut port = addr.port();
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let family = AddressFamily::of(&addr.ip()).to_u8();
    out.extend_from_slice(&[0, family]);
    out.extend_from_slice(&port.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => {
            let mut raw = u32::from(ip);
            if xor.is_some() {
                raw ^= MAGIC_COOKIE;
            }
            out.extend_from_slice(&raw.to_be_bytes());
        }
        IpAddr::V6(ip) => {
            let mut raw = ip.octets();
            if let Some(txid) = xor {
                for (b, k) in raw.iter_mut().zip(xor_key(txid)) {
                    *b ^= k;
                }
            }
            out.extend_from_slice(&raw);
        }
    }
}

/// The 16-byte key an IPv6 address is XOR-ed with: cookie then transaction ID.
fn xor_key(txid: &TransactionId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    key[4..].copy_from_slice(txid.as_bytes());
    key
}
