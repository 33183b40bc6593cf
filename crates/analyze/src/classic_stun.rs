//! RFC 3489 ("classic") STUN: no magic cookie, a 128-bit transaction ID,
//! Binding and Shared Secret requests with MAPPED-ADDRESS, CHANGE-REQUEST,
//! CHANGED-ADDRESS and their kin. Old phones, SBCs and NAT-type testers
//! still send it; RFC 5389 parsers reject it for the missing cookie.
//!
//! With no cookie to recognise it by, a datagram is taken for classic STUN
//! only when everything fits: a known message type, a length that is the
//! rest of the datagram, and attributes that are all RFC 3489's (or the
//! comprehension-optional range) and fill it exactly.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A classic STUN message, as much as the report needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClassicStun {
    /// `Binding request`, `Binding success`...
    pub what: &'static str,
    /// The 16-byte transaction ID, in hex.
    pub transaction: String,
    /// MAPPED-ADDRESS (or XOR-MAPPED-ADDRESS, which some servers add).
    pub mapped: Option<SocketAddr>,
    /// The ERROR-CODE of an error response.
    pub error: Option<u16>,
    /// A CHANGE-REQUEST asked for another IP or port (NAT-type testing).
    pub change_request: bool,
    /// USERNAME, if any.
    pub username: Option<String>,
    /// MESSAGE-INTEGRITY present.
    pub authenticated: bool,
}

/// Attributes read at most (a real message has under ten).
const MAX_ATTRIBUTES: usize = 32;

/// Reads `payload` as classic STUN, or `None`.
pub(crate) fn parse(payload: &[u8]) -> Option<ClassicStun> {
    let header = payload.get(..20)?;
    let kind = u16::from_be_bytes([header[0], header[1]]);
    let what = match kind {
        0x0001 => "Binding request",
        0x0101 => "Binding success",
        0x0111 => "Binding error",
        0x0002 => "Shared Secret request",
        0x0102 => "Shared Secret success",
        0x0112 => "Shared Secret error",
        _ => return None,
    };
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    // RFC 5389 messages are not classic; the length is the whole rest.
    if header[4..8] == edgeice_stun::MAGIC_COOKIE.to_be_bytes()
        || !length.is_multiple_of(4)
        || payload.len() != 20 + length
    {
        return None;
    }
    // A response carries attributes; an empty one is noise.
    if kind & 0x0100 != 0 && length == 0 {
        return None;
    }
    let mut message = ClassicStun {
        what,
        transaction: header[4..20].iter().map(|b| format!("{b:02x}")).collect(),
        mapped: None,
        error: None,
        change_request: false,
        username: None,
        authenticated: false,
    };
    let mut rest = &payload[20..];
    for _ in 0..MAX_ATTRIBUTES {
        if rest.is_empty() {
            return Some(message);
        }
        let kind = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
        let len = usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]));
        let value = rest.get(4..4 + len)?;
        match kind {
            0x0001 if message.mapped.is_none() => message.mapped = address(value, None),
            0x8020 | 0x0020 => {
                if let Some(xor) = address(value, Some(&header[4..8])) {
                    message.mapped = Some(xor);
                }
            }
            0x0003 => message.change_request = value.get(3).is_some_and(|flags| flags & 0x06 != 0),
            0x0006 => {
                message.username =
                    Some(String::from_utf8_lossy(value).trim_end_matches('\0').into())
            }
            0x0008 => message.authenticated = true,
            0x0009 => {
                let (class, number) = (*value.get(2)?, *value.get(3)?);
                message.error = Some(u16::from(class & 0x07) * 100 + u16::from(number));
            }
            // RFC 3489's other attributes, and the optional range.
            0x0001..=0x000b | 0x8000..=0xffff => {}
            _ => return None,
        }
        // RFC 3489 attributes are multiples of 4 long; pad anyway.
        rest = rest.get((4 + len).div_ceil(4) * 4..)?;
    }
    None
}

/// An IPv4 (family 1) address attribute; XORed with the cookie bytes for
/// XOR-MAPPED-ADDRESS. IPv6 did not exist in RFC 3489.
fn address(value: &[u8], xor: Option<&[u8]>) -> Option<SocketAddr> {
    if value.len() != 8 || value[1] != 1 {
        return None;
    }
    let mut port = [value[2], value[3]];
    let mut ip = [value[4], value[5], value[6], value[7]];
    if let Some(x) = xor {
        port = [port[0] ^ x[0], port[1] ^ x[1]];
        for (b, k) in ip.iter_mut().zip(x) {
            *b ^= k;
        }
    }
    Some(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(ip)),
        u16::from_be_bytes(port),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attributes {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
        }
        let mut m = kind.to_be_bytes().to_vec();
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0xAB; 16]);
        m.extend(body);
        m
    }

    #[test]
    fn a_binding_exchange_is_read() {
        let request = message(0x0001, &[(0x0003, &[0, 0, 0, 0x06])]);
        let got = parse(&request).unwrap();
        assert_eq!(got.what, "Binding request");
        assert!(got.change_request);
        let mapped = [0, 1, 0x13, 0x88, 203, 0, 113, 9];
        let response = message(0x0101, &[(0x0001, &mapped), (0x0004, &mapped)]);
        let got = parse(&response).unwrap();
        assert_eq!(got.mapped, Some("203.0.113.9:5000".parse().unwrap()));
        assert_eq!(got.transaction, "ab".repeat(16));
        let error = message(0x0111, &[(0x0009, &[0, 0, 4, 20])]);
        assert_eq!(parse(&error).unwrap().error, Some(420));
    }

    #[test]
    fn lookalikes_are_not_classic_stun() {
        // RFC 5389 (the cookie), a wrong length, an unknown type, an
        // unknown comprehension-required attribute, an empty response.
        let mut modern = message(0x0001, &[]);
        modern[4..8].copy_from_slice(&edgeice_stun::MAGIC_COOKIE.to_be_bytes());
        assert_eq!(parse(&modern), None);
        let mut long = message(0x0001, &[]);
        long.push(0);
        assert_eq!(parse(&long), None);
        assert_eq!(parse(&message(0x0003, &[])), None);
        assert_eq!(parse(&message(0x0001, &[(0x0042, &[0; 4])])), None);
        assert_eq!(parse(&message(0x0101, &[])), None);
        assert_eq!(parse(&[0, 1, 0, 0]), None);
        // An attribute running past the end.
        let mut cut = message(0x0101, &[(0x0001, &[0; 8])]);
        cut[23] = 12;
        assert_eq!(parse(&cut), None);
    }
}
